//! A throwaway Samba AD DC. Samba's LDAP ports are fixed (389/636/3268), so one instance runs
//! at a time: [`Samba::start`] holds a process-wide lock until the instance is dropped (the
//! Samba suites live in one test binary). The domain is provisioned once per target dir
//! (`CARGO_TARGET_TMPDIR/samba-template-v1`, ~10 s) and each instance starts from a copy of
//! it (~2 s). Dropping an instance kills samba by pid, also when the test panics.

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::{require_program, wait_until};

pub const REALM: &str = "AD.EXAMPLE.TEST";
pub const DOMAIN_DN: &str = "DC=ad,DC=example,DC=test";
pub const USERS_DN: &str = "CN=Users,DC=ad,DC=example,DC=test";
pub const ADMIN: &str = "Administrator@ad.example.test";
pub const ADMIN_PW: &str = "Passw0rd!Carbonite";
pub const LDAP_URL: &str = "ldap://127.0.0.1:389";
pub const LDAPS_URL: &str = "ldaps://127.0.0.1:636";

const PACKAGES: &str =
    "samba samba-ad-dc samba-ad-provision winbind python3-samba samba-dsdb-modules krb5-user";
const TEMPLATE: &str = "samba-template-v1";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A running Samba AD DC on 127.0.0.1.
pub struct Samba {
    child: Child,
    dir: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl Samba {
    pub fn start() -> Samba {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let samba = require_program("samba", PACKAGES);
        require_program("samba-tool", PACKAGES);
        require_program("ldapadd", "ldap-utils");
        assert!(
            TcpStream::connect(("127.0.0.1", 389)).is_err(),
            "port 389 is already in use (another Samba or LDAP server?); the Samba suite needs it"
        );
        let template = template();
        let dir = tempfile::tempdir().expect("temp dir");
        let status = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", template.display()))
            .arg(dir.path())
            .status()
            .expect("cp");
        assert!(status.success(), "copying the Samba template failed");
        let conf = dir.path().join("etc/smb.conf");
        let text = std::fs::read_to_string(&conf).expect("smb.conf");
        std::fs::write(
            &conf,
            text.replace(
                &template.display().to_string(),
                &dir.path().display().to_string(),
            ),
        )
        .expect("rewrite smb.conf");
        let log = std::fs::File::create(dir.path().join("samba.out")).expect("log");
        let mut child = Command::new(samba)
            .args(["-F", "--no-process-group", "-M", "single", "-s"])
            .arg(&conf)
            .arg("--debug-stdout")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn samba");
        let up = wait_until(Duration::from_secs(30), || {
            matches!(child.try_wait(), Ok(Some(_)))
                || (TcpStream::connect(("127.0.0.1", 389)).is_ok()
                    && TcpStream::connect(("127.0.0.1", 636)).is_ok())
        });
        if !up || !matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.path().join("samba.out")).unwrap_or_default();
            panic!("samba did not start; its output:\n{log}");
        }
        Samba {
            child,
            dir,
            _turn: turn,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Samba's own CA certificate (its self-signed LDAPS certificate names DC1.ad.example.test).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("private/tls/ca.pem")
    }

    /// Add entries with `ldapadd` as the domain administrator.
    pub fn ldapadd(&self, ldif: &str) {
        let mut child = Command::new(require_program("ldapadd", "ldap-utils"))
            .args(["-x", "-H", LDAP_URL, "-D", ADMIN, "-w", ADMIN_PW])
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

    /// `samba-tool ARGS -s smb.conf` on this instance's database; its stdout.
    pub fn samba_tool(&self, args: &[&str]) -> String {
        let out = Command::new(require_program("samba-tool", PACKAGES))
            .args(args)
            .arg("-s")
            .arg(self.dir.path().join("etc/smb.conf"))
            .output()
            .expect("samba-tool");
        assert!(
            out.status.success(),
            "samba-tool {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Samba {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The provisioned domain all instances copy; made once per target dir.
fn template() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let template = root.join(TEMPLATE);
    // A template copied from another target dir (a pre-seeded or copied `target/`) still names
    // its old paths in smb.conf: a Samba started from it would use, and write into, the other
    // template's database. Provision a fresh one instead.
    match std::fs::read_to_string(template.join("etc/smb.conf")) {
        Ok(conf) if conf.contains(&format!("{}/", template.display())) => return template,
        Ok(_) => {
            let _ = std::fs::remove_dir_all(&template);
        }
        Err(_) => {}
    }
    let building = root.join(format!("{TEMPLATE}.building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&building).expect("template dir");
    // Debian's python: samba-tool's modules are not importable from other interpreters.
    let out = Command::new("/usr/bin/python3")
        .arg(require_program("samba-tool", PACKAGES))
        .args(["domain", "provision"])
        .arg(format!("--targetdir={}", building.display()))
        .args([
            "--use-rfc2307",
            &format!("--realm={REALM}"),
            "--domain=EXAMPLE",
            &format!("--adminpass={ADMIN_PW}"),
            "--server-role=dc",
            "--dns-backend=SAMBA_INTERNAL",
            "--host-name=dc1",
            "--host-ip=127.0.0.1",
            "--option=interfaces = 127.0.0.1",
            "--option=bind interfaces only = yes",
        ])
        .output()
        .expect("samba-tool domain provision");
    assert!(
        out.status.success(),
        "provisioning the Samba domain failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Provisioning drops these options; add them (simple binds over ldap://, LDAP only, logs
    // and pid inside the dir) and remove the DNS forwarder.
    let conf = building.join("etc/smb.conf");
    let d = template.display();
    let text = std::fs::read_to_string(&conf).expect("smb.conf");
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let key = line.trim().split('=').next().unwrap_or("").trim();
        if matches!(key, "dns forwarder" | "log file") {
            continue;
        }
        lines.push(line.to_string());
        if line.trim() == "[global]" {
            for extra in [
                "ldap server require strong auth = no".to_string(),
                "server services = ldap".to_string(),
                "disable netbios = yes".to_string(),
                format!("log file = {d}/log.%m"),
                format!("pid directory = {d}/run"),
            ] {
                lines.push(format!("\t{extra}"));
            }
        }
    }
    std::fs::create_dir_all(building.join("run")).expect("run dir");
    // Name the template's final path (instances rewrite it to their own), then move it into
    // place in one step; if another process finished first, use its template.
    let text = (lines.join("\n") + "\n").replace(
        &building.display().to_string(),
        &template.display().to_string(),
    );
    std::fs::write(&conf, text).expect("write smb.conf");
    if std::fs::rename(&building, &template).is_err() {
        let _ = std::fs::remove_dir_all(&building);
    }
    template
}
