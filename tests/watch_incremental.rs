//! Incremental directory reads in `watch` (SPEC §12): against slapd (entryCSN) and a Samba AD
//! DC (uSNChanged above the rootDSE watermark), a changed `mail` reaches the account's Email
//! within a pass or two, and the passes after a change read O(changes) entries, not the
//! directory (counted by `carbonite_sync_directory_entries_read_total`). Latencies are
//! printed (median and max over 20 changes), not asserted.
#![allow(clippy::print_stderr)]

#[path = "apply/harness.rs"]
mod harness;
mod support;
#[path = "apply/watch_process.rs"]
mod watch_process;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::*;
use support::samba::{self, Samba};
use support::slapd::{self, Slapd};
use watch_process::{Watch, wait_for};

const CHANGES: usize = 20;

fn email_of(emu: &Emulator, key: &str) -> String {
    emu.users()
        .iter()
        .find(|u| u["UserCustom1"] == key)
        .and_then(|u| u["Email"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Change `mail` of the given (dn, key) pairs one at a time; the latency of each until the
/// account's Email follows. Also checks that the passes read few entries.
fn measure(
    what: &str,
    watch: &Watch,
    emu: &Emulator,
    targets: &[(String, String)],
    directory_size: u64,
    modify: &dyn Fn(&str, &str),
) {
    let mut latencies = Vec::new();
    // The first incremental read re-reads what changed in the last second of the full read
    // (here: the whole bulk load); measure from a settled state.
    let settled = watch.metric("carbonite_sync_passes_total{") + 2;
    wait_for("two more passes", Duration::from_secs(30), || {
        watch.metric("carbonite_sync_passes_total{") >= settled
    });
    let read_before = watch.metric("carbonite_sync_directory_entries_read_total");
    let passes_before = watch.metric("carbonite_sync_passes_total{");
    for (n, (dn, key)) in targets.iter().enumerate() {
        let mail = format!("changed{n}.{}@corp.example", key.to_ascii_lowercase());
        let t = Instant::now();
        modify(dn, &mail);
        wait_for(&format!("{key}'s Email"), Duration::from_secs(30), || {
            email_of(emu, key) == mail
        });
        latencies.push(t.elapsed().as_secs_f64());
    }
    let read = watch.metric("carbonite_sync_directory_entries_read_total") - read_before;
    let passes = watch.metric("carbonite_sync_passes_total{") - passes_before;
    latencies.sort_by(f64::total_cmp);
    eprintln!(
        "{what}: change -> Carbonite latency over {} changes: median {:.2} s, max {:.2} s; \
         {read} entries read in {passes} passes (directory: {directory_size} entries)",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
    );
    // O(changes): a change is read by the pass after it and once more (`entryCSN>=` the
    // greatest seen), never the whole directory.
    assert!(passes > 0);
    assert!(
        read <= 4 * targets.len() as u64 + passes,
        "{read} entries read for {} changes in {passes} passes:\n{}",
        targets.len(),
        watch.log()
    );
    assert!(
        read < directory_size,
        "{read} entries read: a full read happened"
    );
}

const MAPPING: &str = r#"apiVersion: carbonite-sync/v1
kind: Mapping
metadata: { name: staff }
spec:
  source: { baseDn: "BASE", filter: "(&(objectClass=user)(employeeID=*))" }
  primaryKey: { ldap: employeeID, carbonite: UserCustom1 }
  correlate: [ { ldap: mail, carbonite: Email, compare: caseInsensitive } ]
  attributes:
    Email: { value: "{{ mail | lower }}", compare: caseInsensitive }
    FirstName: "{{ givenName }}"
    LastName: "{{ sn or 'Unknown' }}"
    CompanyId: { value: "{{ lookup('companies', 'Corp') }}", createOnly: true }
    UserGroupId: "{{ lookup('userGroups', 'Staff') }}"
"#;

fn write_config(
    dir: &Path,
    flavor: &str,
    url: &str,
    bind: &str,
    base: &str,
    staff: &str,
    emu: &str,
) -> PathBuf {
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
    flavor: {flavor}
    ldap:
      url: {url}
      bindDn: "{bind}"
      password: {{ env: WATCH_BIND_PW }}
      baseDn: "{base}"
  carbonite:
    baseUrl: {emu}
    auth: {{ apiKey: {{ email: {EMAIL}, secret: {{ env: CANARY_SECRET }} }} }}
    rateLimits: {{ perRoute: 100000/1h, userCreates: 100000/1h }}
"#
        ),
    )
    .unwrap();
    std::fs::write(cfg.join("staff.yaml"), MAPPING.replace("BASE", staff)).unwrap();
    cfg
}

#[test]
fn openldap_entry_csn_changes_follow_in_seconds() {
    let n = 200;
    let server = Slapd::start(&support::data::users(1..n, slapd::STAFF));
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(dir.path(), &seed(Vec::new()), &["--rate-limits", "none"]);
    let cfg = write_config(
        dir.path(),
        "openldap",
        &server.url(),
        slapd::SVC_DN,
        slapd::SUFFIX,
        slapd::STAFF,
        &emu.base,
    );
    let state = dir.path().join("state");
    let in_scope = (1..n).filter(|i| i % 13 != 0).count();
    let watch = Watch::start(&cfg, &state, "2s", &[("WATCH_BIND_PW", slapd::SVC_PW)]);
    wait_for("the initial creates", Duration::from_secs(60), || {
        emu.users().len() == in_scope
    });
    let targets: Vec<(String, String)> = (1..n)
        .filter(|i| i % 13 != 0)
        .take(CHANGES)
        .map(|i| {
            (
                support::data::user_dn(i, slapd::STAFF),
                format!("E{:05}", i * 7 % 100_000),
            )
        })
        .collect();
    let modify = |dn: &str, mail: &str| {
        server.ldapadd(&format!(
            "dn: {dn}\nchangetype: modify\nreplace: mail\nmail: {mail}\n"
        ));
    };
    measure(
        "slapd (entryCSN)",
        &watch,
        &emu,
        &targets,
        (n - 1) as u64,
        &modify,
    );
}

#[test]
fn active_directory_usn_changes_follow_in_seconds() {
    let n = 60;
    let server = Samba::start();
    let mut ldif = String::new();
    for i in 0..n {
        ldif.push_str(&format!(
            "dn: CN=w{i},{users}\nobjectClass: user\nsAMAccountName: w{i}\nuserAccountControl: 512\n\
             employeeID: W{i:04}\nmail: w{i}@ad.example.test\ngivenName: Given{i}\nsn: Family{i}\n\n",
            users = samba::USERS_DN
        ));
    }
    server.ldapadd(&ldif);
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(dir.path(), &seed(Vec::new()), &["--rate-limits", "none"]);
    let cfg = write_config(
        dir.path(),
        "active-directory",
        samba::LDAP_URL,
        "CN=Administrator,CN=Users,DC=ad,DC=example,DC=test",
        samba::DOMAIN_DN,
        samba::USERS_DN,
        &emu.base,
    );
    let state = dir.path().join("state");
    let watch = Watch::start(&cfg, &state, "2s", &[("WATCH_BIND_PW", samba::ADMIN_PW)]);
    // The domain's template also has a few users with an employeeID: count ours.
    let ours = || {
        emu.users()
            .iter()
            .filter(|u| {
                u["UserCustom1"]
                    .as_str()
                    .is_some_and(|k| k.starts_with('W'))
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while ours() != n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} accounts created:\n{}",
            ours(),
            watch.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let targets: Vec<(String, String)> = (0..CHANGES)
        .map(|i| (format!("CN=w{i},{}", samba::USERS_DN), format!("W{i:04}")))
        .collect();
    let modify = |dn: &str, mail: &str| {
        server.ldapadd(&format!(
            "dn: {dn}\nchangetype: modify\nreplace: mail\nmail: {mail}\n"
        ));
    };
    // The Users container holds more than our users (Administrator, krbtgt, ...).
    measure(
        "Samba AD DC (uSNChanged)",
        &watch,
        &emu,
        &targets,
        n as u64,
        &modify,
    );
}

#[test]
fn a_restarted_watch_resumes_incrementally() {
    let n = 120;
    let server = Slapd::start(&support::data::users(1..n, slapd::STAFF));
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(dir.path(), &seed(Vec::new()), &["--rate-limits", "none"]);
    let cfg = write_config(
        dir.path(),
        "openldap",
        &server.url(),
        slapd::SVC_DN,
        slapd::SUFFIX,
        slapd::STAFF,
        &emu.base,
    );
    let state = dir.path().join("state");
    let in_scope = (1..n).filter(|i| i % 13 != 0).count();
    let env = [("WATCH_BIND_PW", slapd::SVC_PW)];
    let watch = Watch::start(&cfg, &state, "2s", &env);
    wait_for("the initial creates", Duration::from_secs(60), || {
        emu.users().len() == in_scope
    });
    // Past the one re-read that follows a full read (the bulk load shares one second).
    let settled = watch.metric("carbonite_sync_passes_total{") + 2;
    wait_for("two more passes", Duration::from_secs(30), || {
        watch.metric("carbonite_sync_passes_total{") >= settled
    });
    assert_eq!(watch.terminate(), Some(0));
    assert!(state.join("directory-cache.json").exists());

    // Changed while no watch ran: the restarted one reads only the change.
    let dn = support::data::user_dn(1, slapd::STAFF);
    server.ldapadd(&format!(
        "dn: {dn}\nchangetype: modify\nreplace: mail\nmail: resumed@corp.example\n"
    ));
    let watch = Watch::start(&cfg, &state, "2s", &env);
    wait_for(
        "the change after the restart",
        Duration::from_secs(30),
        || email_of(&emu, "E00007") == "resumed@corp.example",
    );
    let read = watch.metric("carbonite_sync_directory_entries_read_total");
    eprintln!(
        "restarted watch: {read} entries read (directory: {} entries)",
        n - 1
    );
    assert!(
        read < (n - 1) as u64 / 2,
        "{read} entries read: the restart read in full"
    );
    assert!(
        watch
            .log()
            .contains("resuming from the saved directory cache")
    );
    assert_eq!(watch.terminate(), Some(0));
}
