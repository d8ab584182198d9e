//! Directory read benchmark: `cargo bench --bench directory`.
//!
//! Loads 100k AD-style users into a throwaway slapd (slapadd), then times, in the same run,
//! `ldapsearch -E pr=1000/noprompt` to /dev/null and carbonite-sync's LDAP source reading the
//! same entries with the same attribute list (each in its own process, median of 3), and
//! reports the ratio and our peak RSS (VmHWM). Then loads a smaller set into a Samba AD DC and
//! reports entries/s there. Target (issue 3): within 1.25x of ldapsearch, peak RSS < 150 MB.
//!
//! Environment: BENCH_USERS (default 100000), BENCH_SAMBA_USERS (default 500; 0 skips Samba).

// A benchmark reports on stdout; the output module is for the tool's users.
#![allow(clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use carbonite_sync::config::model::{Flavor, LdapSettings};
use carbonite_sync::config::secret::Secret;
use carbonite_sync::directory::SearchRequest;
use carbonite_sync::directory::dn::Scope;
use carbonite_sync::directory::ldap::LdapSource;
use support::data;
use support::samba::{self, Samba};
use support::slapd::{self, Slapd};

/// What a mapping like examples/quickstart needs, plus the AD flavor's attributes.
const ATTRIBUTES: &[&str] = &[
    "department",
    "employeeID",
    "givenName",
    "mail",
    "objectGUID",
    "sn",
    "uSNChanged",
    "userAccountControl",
];
const FILTER: &str = "(objectClass=user)";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child-read") {
        child_read(&args[i + 1..]);
        return;
    }
    let users = env_usize("BENCH_USERS", 100_000);
    println!("== slapd: {users} users");
    let dir = tempfile::tempdir().expect("temp dir");
    let seed = dir.path().join("users.ldif");
    let started = Instant::now();
    std::fs::write(&seed, data::users(0..users, slapd::STAFF)).expect("write LDIF");
    let server = Slapd::start_with_files(&[seed]);
    println!(
        "generated + slapadd + start: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Wall time, and CPU time (user + system) from /usr/bin/time: on a shared machine the
    // wall time of a two-thread reader suffers more from other load than ldapsearch's.
    let ldapsearch = || {
        let started = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "cpu %U %S", "ldapsearch"])
            .args([
                "-x",
                "-LLL",
                "-H",
                &server.url(),
                "-D",
                slapd::SVC_DN,
                "-w",
                slapd::SVC_PW,
            ])
            .args(["-b", slapd::STAFF, "-E", "pr=1000/noprompt", FILTER])
            .args(ATTRIBUTES)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run ldapsearch under /usr/bin/time");
        let wall = started.elapsed();
        assert!(out.status.success(), "ldapsearch failed");
        let text = String::from_utf8_lossy(&out.stderr);
        let cpu: f64 = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("cpu "))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|v| v.parse::<f64>().ok())
                    .sum()
            })
            .unwrap_or_default();
        (wall, Duration::from_secs_f64(cpu))
    };
    let ours = |attributes: &str| {
        let out = Command::new(std::env::current_exe().expect("current exe"))
            .args([
                "--child-read",
                &server.url(),
                slapd::SVC_DN,
                slapd::SVC_PW,
                slapd::STAFF,
            ])
            .arg(attributes)
            .output()
            .expect("run reader");
        assert!(
            out.status.success(),
            "reader failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let field = |name: &str| -> u64 {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {text}"))
        };
        assert_eq!(field("entries=") as usize, users, "a complete read");
        (
            Duration::from_micros(field("micros=")),
            field("hwm_kb="),
            Duration::from_millis(field("cpu_ms=")),
        )
    };

    // Warm the server's caches once, then alternate.
    ldapsearch();
    let mut theirs = Vec::new();
    let mut mine = Vec::new();
    for _ in 0..3 {
        theirs.push(ldapsearch());
        mine.push(ours(&ATTRIBUTES.join(",")));
    }
    let all = ours("*,objectGUID,uSNChanged");
    theirs.sort();
    mine.sort();
    let ((t, t_cpu), (m, _, m_cpu)) = (theirs[1], mine[1]);
    let rss = mine.iter().map(|(_, kb, _)| *kb).max().unwrap_or_default();
    let secs = |d: &Duration| format!("{:.3}", d.as_secs_f64());
    println!(
        "ldapsearch -E pr=1000/noprompt > /dev/null: {} s wall, {} s CPU (runs: {:?})",
        secs(&t),
        secs(&t_cpu),
        theirs.iter().map(|(d, _)| secs(d)).collect::<Vec<_>>()
    );
    println!(
        "carbonite-sync LdapSource:                 {} s wall, {} s CPU (runs: {:?})",
        secs(&m),
        secs(&m_cpu),
        mine.iter().map(|(d, _, _)| secs(d)).collect::<Vec<_>>()
    );
    println!(
        "ratio ours/ldapsearch: {:.2}x wall, {:.2}x CPU (target <= 1.25x)",
        m.as_secs_f64() / t.as_secs_f64(),
        m_cpu.as_secs_f64() / t_cpu.as_secs_f64().max(0.001)
    );
    println!(
        "peak RSS (VmHWM) of our reader: {:.1} MB (target < 150 MB)",
        rss as f64 / 1024.0
    );
    println!(
        "for comparison, all user attributes (`*`): {} s, {:.1} MB",
        secs(&all.0),
        all.1 as f64 / 1024.0
    );
    println!("entries/s: {:.0}", users as f64 / m.as_secs_f64());
    println!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    drop(server);

    let samba_users = env_usize("BENCH_SAMBA_USERS", 500);
    if samba_users > 0 {
        samba_bench(samba_users);
    }
}

fn samba_bench(users: usize) {
    println!("== Samba AD DC: {users} users");
    let server = Samba::start();
    let started = Instant::now();
    let mut ldif = String::new();
    for n in 0..users {
        ldif.push_str(&format!(
            "dn: CN=b{n:06},{}\nobjectClass: user\nsAMAccountName: b{n:06}\nuserAccountControl: 514\nemployeeID: E{n:06}\nmail: b{n}@ad.example.test\ngivenName: B\nsn: User {n}\ndepartment: Sales\n\n",
            samba::USERS_DN
        ));
    }
    server.ldapadd(&ldif);
    println!("ldapadd: {:.1} s", started.elapsed().as_secs_f64());
    let settings = LdapSettings {
        url: samba::LDAP_URL.into(),
        start_tls: false,
        bind_dn: Some(samba::ADMIN.into()),
        password: None,
        base_dn: samba::DOMAIN_DN.into(),
        page_size: 1000,
        timeout: Duration::from_secs(60),
        ca_file: None,
        insecure_skip_verify: false,
    };
    let source = LdapSource::new(
        &settings,
        Some(Secret::new(samba::ADMIN_PW)),
        Flavor::ActiveDirectory,
        Flavor::ActiveDirectory.default_disabled_filter(),
    )
    .expect("source");
    let request = SearchRequest::new(samba::DOMAIN_DN, Scope::Subtree, "(sAMAccountName=b0*)")
        .with_attributes(ATTRIBUTES.iter().copied());
    let rt = support::runtime();
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let (entries, stats) = rt
            .block_on(source.search_with_stats(&request))
            .expect("read");
        assert_eq!(entries.len(), users);
        times.push((started.elapsed(), stats));
    }
    times.sort_by_key(|(d, _)| *d);
    let (median, stats) = times[1];
    println!(
        "carbonite-sync LdapSource: {:.3} s = {:.0} entries/s ({} pages, {} references skipped)",
        median.as_secs_f64(),
        users as f64 / median.as_secs_f64(),
        stats.pages,
        stats.references_skipped
    );
    let started = Instant::now();
    let status = Command::new("ldapsearch")
        .args([
            "-x",
            "-LLL",
            "-H",
            samba::LDAP_URL,
            "-D",
            samba::ADMIN,
            "-w",
            samba::ADMIN_PW,
        ])
        .args([
            "-b",
            samba::DOMAIN_DN,
            "-E",
            "pr=1000/noprompt",
            "(sAMAccountName=b0*)",
        ])
        .args(ATTRIBUTES)
        .stdout(Stdio::null())
        .status()
        .expect("ldapsearch");
    assert!(status.success());
    println!(
        "ldapsearch, same search: {:.3} s",
        started.elapsed().as_secs_f64()
    );
}

/// The measured process: one complete read, then `entries=N micros=T hwm_kb=K`.
fn child_read(args: &[String]) {
    let [url, bind, password, base, attributes, ..] = args else {
        panic!("--child-read URL BIND PASSWORD BASE ATTRS");
    };
    let settings = LdapSettings {
        url: url.clone(),
        start_tls: false,
        bind_dn: Some(bind.clone()),
        password: None,
        base_dn: base.clone(),
        page_size: 1000,
        timeout: Duration::from_secs(60),
        ca_file: None,
        insecure_skip_verify: false,
    };
    let source = LdapSource::new(
        &settings,
        Some(Secret::new(password.as_str())),
        Flavor::ActiveDirectory,
        Flavor::ActiveDirectory.default_disabled_filter(),
    )
    .expect("source");
    let request = SearchRequest::new(base.as_str(), Scope::Subtree, FILTER)
        .with_attributes(attributes.split(','));
    // As the CLI runs it (cli::block_on).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let (entries, _) = rt
        .block_on(source.search_with_stats(&request))
        .expect("read");
    let elapsed = started.elapsed();
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or_default();
    // utime and stime (fields 14 and 15 of /proc/self/stat) in clock ticks of 10 ms.
    let cpu_ms = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after_name = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
            Some((ticks(11)? + ticks(12)?) * 10)
        })
        .unwrap_or_default();
    println!(
        "entries={} micros={} hwm_kb={hwm} cpu_ms={cpu_ms}",
        entries.len(),
        elapsed.as_micros()
    );
}
