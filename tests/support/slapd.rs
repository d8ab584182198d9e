//! A throwaway OpenLDAP `slapd`: temp dir, the repo's AD-style schema, seeded with `slapadd`,
//! on random free ports below 32768 (LDAP and LDAPS), killed by pid when dropped — also when
//! the test panics.
//!
//! Accounts: the rootdn [`ADMIN_DN`]; [`SVC_DN`] without size limit (what carbonite-sync
//! should be given); [`LIMITED_DN`] with slapd's default size limit of 500.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{fixture, require_program, wait_until};

pub const SUFFIX: &str = "dc=corp,dc=example";
pub const ADMIN_DN: &str = "cn=admin,dc=corp,dc=example";
pub const ADMIN_PW: &str = "admin-secret";
pub const SVC_DN: &str = "cn=svc,ou=service,dc=corp,dc=example";
pub const SVC_PW: &str = "svc-Secret-42";
pub const LIMITED_DN: &str = "cn=limited,ou=service,dc=corp,dc=example";
pub const LIMITED_PW: &str = "limited-Secret-7";
pub const STAFF: &str = "ou=staff,dc=corp,dc=example";

/// The base entries every instance has: suffix, service accounts, `ou=staff`. Each has an
/// objectGUID, as every AD object does.
pub fn base_ldif() -> String {
    let entries = [
        (
            SUFFIX.to_string(),
            "objectClass: dcObject\nobjectClass: organization\ndc: corp\no: Corp\n".to_string(),
        ),
        (
            format!("ou=service,{SUFFIX}"),
            "objectClass: organizationalUnit\nou: service\n".to_string(),
        ),
        (
            SVC_DN.to_string(),
            format!("objectClass: person\ncn: svc\nsn: svc\nuserPassword: {SVC_PW}\n"),
        ),
        (
            LIMITED_DN.to_string(),
            format!("objectClass: person\ncn: limited\nsn: limited\nuserPassword: {LIMITED_PW}\n"),
        ),
        (
            STAFF.to_string(),
            "objectClass: organizationalUnit\nou: staff\n".to_string(),
        ),
    ];
    let mut out = String::new();
    for (k, (dn, body)) in entries.iter().enumerate() {
        out.push_str(&format!("dn: {dn}\nobjectClass: adObject\n{body}"));
        out.push_str(&super::data::line(
            "objectGUID",
            &super::data::guid(1_000_000 + k),
        ));
        out.push('\n');
    }
    out
}

/// A running slapd. Dropping it kills the process and removes its directory.
pub struct Slapd {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
    pub tls_port: u16,
}

impl Slapd {
    /// Start with the base entries plus `extra_ldif`.
    pub fn start(extra_ldif: &str) -> Slapd {
        let dir = tempfile::tempdir().expect("temp dir");
        let seed = dir.path().join("seed.ldif");
        std::fs::write(&seed, format!("{}{extra_ldif}", base_ldif())).expect("write seed");
        Self::start_in(dir, &[seed])
    }

    /// Start with the base entries plus the LDIF files given (for large generated sets).
    pub fn start_with_files(files: &[PathBuf]) -> Slapd {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().join("base.ldif");
        std::fs::write(&base, base_ldif()).expect("write base");
        let mut all = vec![base];
        all.extend(files.iter().cloned());
        Self::start_in(dir, &all)
    }

    fn start_in(dir: tempfile::TempDir, seeds: &[PathBuf]) -> Slapd {
        let slapd = require_program("slapd", "slapd ldap-utils");
        let slapadd = require_program("slapadd", "slapd ldap-utils");
        let conf = dir.path().join("slapd.conf");
        std::fs::create_dir_all(dir.path().join("db")).expect("db dir");
        std::fs::write(&conf, config(dir.path())).expect("write slapd.conf");
        for seed in seeds {
            let out = Command::new(&slapadd)
                .args(["-q", "-f"])
                .arg(&conf)
                .arg("-l")
                .arg(seed)
                .output()
                .expect("run slapadd");
            assert!(
                out.status.success(),
                "slapadd {} failed: {}",
                seed.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut last_log = String::new();
        for _attempt in 0..8 {
            let (port, tls_port) = (free_port(), free_port());
            if port == tls_port {
                continue;
            }
            let log_path = dir.path().join("slapd.log");
            let log = std::fs::File::create(&log_path).expect("log file");
            let mut child = Command::new(&slapd)
                .arg("-f")
                .arg(&conf)
                .arg("-h")
                .arg(format!(
                    "ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/"
                ))
                .args(["-d", "0"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("spawn slapd");
            let up = wait_until(Duration::from_secs(10), || {
                matches!(child.try_wait(), Ok(Some(_)))
                    || (TcpStream::connect(("127.0.0.1", port)).is_ok()
                        && TcpStream::connect(("127.0.0.1", tls_port)).is_ok())
            });
            if up && matches!(child.try_wait(), Ok(None)) {
                return Slapd {
                    child,
                    dir,
                    port,
                    tls_port,
                };
            }
            // Lost a port race (or a real failure): stop it and try other ports.
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("slapd did not start; its log:\n{last_log}");
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.tls_port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Run `ldapadd` as the rootdn (for entries added while running, with overlays).
    pub fn ldapadd(&self, ldif: &str) {
        let ldapadd = require_program("ldapadd", "ldap-utils");
        let mut child = Command::new(ldapadd)
            .args(["-x", "-H", &self.url(), "-D", ADMIN_DN, "-w", ADMIN_PW])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ldapadd");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(ldif.as_bytes())
            .expect("write ldif");
        let out = child.wait_with_output().expect("ldapadd");
        assert!(
            out.status.success(),
            "ldapadd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path) -> String {
    let schema = fixture("ad-lite.schema");
    let tls = fixture("tls");
    let d = dir.display();
    let mut c = String::new();
    for s in ["core", "cosine", "inetorgperson"] {
        let _ = writeln!(c, "include /etc/ldap/schema/{s}.schema");
    }
    let _ = writeln!(c, "include {}", schema.display());
    let _ = writeln!(c, "modulepath /usr/lib/ldap");
    let _ = writeln!(c, "moduleload back_mdb");
    // pwdAccountLockedTime (the openldap flavor's disabledFilter) is defined by ppolicy.
    let _ = writeln!(c, "moduleload ppolicy");
    let _ = writeln!(c, "pidfile {d}/slapd.pid");
    let _ = writeln!(c, "argsfile {d}/slapd.args");
    let _ = writeln!(c, "TLSCACertificateFile {}/ca.pem", tls.display());
    let _ = writeln!(c, "TLSCertificateFile {}/server.pem", tls.display());
    let _ = writeln!(c, "TLSCertificateKeyFile {}/server.key", tls.display());
    // slapd's default, stated: non-admin searches stop at 500 entries.
    let _ = writeln!(c, "sizelimit 500");
    // Searches outside the suffix get a referral, as from a server of a larger tree.
    let _ = writeln!(c, "referral ldap://referral.example/");
    let _ = writeln!(c, "database mdb");
    let _ = writeln!(c, "maxsize 4294967296");
    let _ = writeln!(c, "suffix \"{SUFFIX}\"");
    let _ = writeln!(c, "rootdn \"{ADMIN_DN}\"");
    let _ = writeln!(c, "rootpw {ADMIN_PW}");
    let _ = writeln!(c, "directory {d}/db");
    let _ = writeln!(c, "dbnosync");
    let _ = writeln!(c, "index objectClass eq");
    let _ = writeln!(
        c,
        "limits dn.exact=\"{SVC_DN}\" size=unlimited time=unlimited"
    );
    let _ = writeln!(c, "access to * by * read");
    c
}

/// A port in 20000..32768 that is free right now (slapd may still lose a race for it; the
/// caller retries).
fn free_port() -> u16 {
    use std::hash::{BuildHasher as _, Hasher as _};
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        let port = 20000 + (h.finish() % 12768) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
