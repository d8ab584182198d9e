//! `watch` end to end (SPEC §12): against slapd and the emulator under the vendor's default
//! limits — a new directory user is created, a mapping edit is applied without a restart, a
//! broken edit is reported while the service keeps running and stays healthy, the fix is
//! picked up; an idle watch over 1,000 accounts makes no API call; SIGTERM during an apply
//! leaves every journal intent with a result.
#![allow(clippy::print_stderr)]

#[path = "apply/harness.rs"]
mod harness;
mod support;
#[path = "apply/watch_process.rs"]
mod watch_process;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::*;
use support::slapd::{self, Slapd};
use watch_process::{Watch, wait_for};

const MAPPING: &str = r#"apiVersion: carbonite-sync/v1
kind: Mapping
metadata: { name: staff }
spec:
  source: { baseDn: "ou=staff,dc=corp,dc=example", filter: "(&(objectClass=user)(employeeID=*))" }
  primaryKey: { ldap: employeeID, carbonite: UserCustom1 }
  correlate: [ { ldap: mail, carbonite: Email, compare: caseInsensitive } ]
  attributes:
    Email: { value: "{{ mail | lower }}", compare: caseInsensitive }
    FirstName: "{{ givenName }}"
    LastName: "{{ sn }}"
    CompanyId: { value: "{{ lookup('companies', 'Corp') }}", createOnly: true }
    UserGroupId: "{{ lookup('userGroups', 'Staff') }}"
"#;

fn slapd_config(dir: &Path, server: &Slapd, base: &str) -> PathBuf {
    let cfg = dir.join("cfg");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("integration.yaml"),
        format!(
            r#"apiVersion: carbonite-sync/v1
kind: Integration
metadata: {{ name: lab }}
spec:
  directory:
    flavor: active-directory
    ldap:
      url: {url}
      bindDn: "{bind}"
      password: {{ env: WATCH_BIND_PW }}
      baseDn: "{suffix}"
  carbonite:
    baseUrl: {base}
    auth: {{ apiKey: {{ email: {EMAIL}, secret: {{ env: CANARY_SECRET }} }} }}
"#,
            url = server.url(),
            bind = slapd::SVC_DN,
            suffix = slapd::SUFFIX,
        ),
    )
    .unwrap();
    std::fs::write(cfg.join("staff.yaml"), MAPPING).unwrap();
    cfg
}

fn key_of(i: usize) -> String {
    format!("E{:05}", i * 7 % 100_000)
}

#[test]
fn watch_follows_the_directory_and_the_config_and_survives_a_broken_edit() {
    let server = Slapd::start(&support::data::users(1..12, slapd::STAFF));
    let dir = tempfile::tempdir().unwrap();
    // The vendor's default limits on both sides.
    let emu = Emulator::start(dir.path(), &seed(Vec::new()), &[]);
    let cfg = slapd_config(dir.path(), &server, &emu.base);
    let state = dir.path().join("state");
    let in_scope = (1..12).filter(|i| i % 13 != 0).count();
    let watch = Watch::start(&cfg, &state, "2s", &[("WATCH_BIND_PW", slapd::SVC_PW)]);

    wait_for("the initial creates", Duration::from_secs(60), || {
        emu.users().len() == in_scope
    });

    // A new user in the directory is created.
    let t = Instant::now();
    server.ldapadd(&support::data::user(20, slapd::STAFF));
    wait_for("the new user's account", Duration::from_secs(30), || {
        emu.users()
            .iter()
            .any(|u| u["UserCustom1"] == key_of(20).as_str())
    });
    eprintln!(
        "new directory user -> account in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // A mapping edit is applied without a restart.
    let upper = MAPPING.replace("\"{{ givenName }}\"", "\"{{ givenName | upper }}\"");
    std::fs::write(cfg.join("staff.yaml"), &upper).unwrap();
    wait_for("upper-case first names", Duration::from_secs(30), || {
        let users = emu.users();
        users.len() == in_scope + 1
            && users.iter().all(|u| {
                let f = u["FirstName"].as_str().unwrap_or_default();
                f == f.to_uppercase()
            })
    });

    // A broken edit: reported, the service keeps passing and stays healthy.
    std::fs::write(cfg.join("staff.yaml"), format!("{upper}  oops: [\n")).unwrap();
    watch.wait_line("does not load", Duration::from_secs(30));
    let passes = watch.passes();
    watch.wait_passes(passes + 2, Duration::from_secs(30));
    let (status, health) = watch.healthz();
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["config"]["status"], "error", "{health}");
    assert!(
        health["config"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("staff.yaml:"),
        "{health}"
    );

    // The fix is picked up.
    let fixed = upper.replace("\"{{ sn }}\"", "\"{{ sn | upper }}\"");
    std::fs::write(cfg.join("staff.yaml"), &fixed).unwrap();
    wait_for("upper-case last names", Duration::from_secs(30), || {
        emu.users().iter().all(|u| {
            let f = u["LastName"].as_str().unwrap_or_default();
            f == f.to_uppercase()
        })
    });
    let (status, health) = watch.healthz();
    assert_eq!(status, 200);
    assert_eq!(health["config"]["status"], "ok", "{health}");
    assert_eq!(emu.count_status("429"), 0, "{}", emu.stats());
    let log = watch.log();
    assert!(!log.contains(CANARY) && !log.contains(slapd::SVC_PW));
    assert_eq!(watch.terminate(), Some(0));
    journal_complete(&state).unwrap();
}

#[test]
fn an_idle_watch_makes_no_api_call() {
    let n = 1000;
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(dir.path(), &seed(Vec::new()), &["--rate-limits", "none"]);
    let cfg = config(
        dir.path(),
        &emu.base,
        n,
        "    rateLimits: { perRoute: 100000/1h, userCreates: 100000/1h }\n",
    );
    let state = dir.path().join("state");
    let (code, out, err) = run(&cfg, &state, &["-q", "apply", "--auto-approve"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(emu.users().len(), n);

    let before = emu.stats();
    let watch = Watch::start(&cfg, &state, "300ms", &[]);
    watch.wait_passes(11, Duration::from_secs(60));
    assert_eq!(emu.stats(), before, "an idle watch called Carbonite");
    let (_, metrics) = watch.get("/metrics");
    let duration = metrics
        .lines()
        .find(|l| l.starts_with("carbonite_sync_pass_duration_seconds "))
        .unwrap()
        .to_string();
    eprintln!("idle passes over {n} accounts: {duration}");
    assert!(metrics.contains("carbonite_sync_changes_total{action=\"create\"} 0"));
    assert_eq!(watch.terminate(), Some(0));
}

#[test]
fn sigterm_during_an_apply_leaves_every_operation_journaled() {
    let n = 150;
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(
        dir.path(),
        &seed(Vec::new()),
        &["--rate-limits", "none", "--faults", "latency=60ms,seed=3"],
    );
    let cfg = config(
        dir.path(),
        &emu.base,
        n,
        "    rateLimits: { perRoute: 100000/1h, userCreates: 100000/1h }\n",
    );
    let state = dir.path().join("state");
    let watch = Watch::start(&cfg, &state, "30s", &[]);
    wait_for("creates under way", Duration::from_secs(60), || {
        emu.users().len() >= n / 4
    });
    assert_eq!(watch.terminate(), Some(0));
    let created = emu.users().len();
    assert!(created < n, "the signal came too late: {created}");
    journal_complete(&state).unwrap();
    // The next run completes without duplicates.
    let (code, out, err) = run(&cfg, &state, &["-q", "apply", "--auto-approve"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(emu.users().len(), n);
    assert!(duplicates(&emu.users(), "UserCustom1").is_empty());
}
