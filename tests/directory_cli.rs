//! The directory commands end to end, against a throwaway slapd: `validate --online` (LDAP
//! bind + base read verdicts, LDIF read) and `snapshot` (file, header, mode, read back).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use carbonite_sync::config::model::Flavor;
use carbonite_sync::directory::dn::Scope;
use carbonite_sync::directory::ldif_source::LdifSource;
use carbonite_sync::directory::{AttrValue, SearchRequest};
use support::data;
use support::slapd::{self, Slapd};

const PASSWORD_VAR: &str = "CS_TEST_LDAP_PASSWORD";

fn run(dir: &Path, args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_carbonite-sync"));
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env_remove("CARBONITE_SYNC_CONFIG")
        .env_remove("CARBONITE_SYNC_STATE_DIR")
        .env_remove(PASSWORD_VAR)
        .env("NO_COLOR", "1");
    if let Some(pw) = password {
        cmd.env(PASSWORD_VAR, pw);
    }
    cmd.output().expect("run carbonite-sync")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MAPPING: &str = r#"apiVersion: carbonite-sync/v1
kind: Mapping
metadata: { name: employees }
spec:
  source:
    baseDn: "ou=staff,dc=corp,dc=example"
    filter: "(&(objectClass=user)(employeeID=*))"
  primaryKey: { ldap: employeeID, carbonite: UserCustom1 }
  attributes:
    Email: "{{ mail | lower }}"
    FirstName: "{{ givenName }}"
    LastName: "{{ sn }}"
    Status: "{{ 'Suspended' if disabled else 'Active' }}"
"#;

fn integration(directory: &str) -> String {
    format!(
        "apiVersion: carbonite-sync/v1\nkind: Integration\nmetadata: {{ name: corp }}\nspec:\n  directory:\n{directory}  carbonite:\n    emulator: {{}}\n"
    )
}

fn ldap_config(dir: &Path, url: &str) {
    std::fs::write(
        dir.join("integration.yaml"),
        integration(&format!(
            "    flavor: active-directory\n    ldap:\n      url: {url}\n      bindDn: \"{}\"\n      password: {{ env: {PASSWORD_VAR} }}\n      baseDn: \"{}\"\n      timeout: 5s\n",
            slapd::SVC_DN,
            slapd::SUFFIX
        )),
    )
    .unwrap();
    std::fs::write(dir.join("employees.yaml"), MAPPING).unwrap();
}

#[test]
fn validate_online_gives_a_verdict_per_check_and_never_the_password() {
    let server = Slapd::start(&data::users(0..30, slapd::STAFF));
    let cfg = tempfile::tempdir().unwrap();
    ldap_config(cfg.path(), &server.url());

    let ok = run(cfg.path(), &["validate", "--online"], Some(slapd::SVC_PW));
    let (stdout, stderr) = text(&ok);
    assert_eq!(ok.status.code(), Some(0), "{stdout}{stderr}");
    let verdict = stdout.lines().find(|l| l.starts_with("ldap")).unwrap();
    assert!(verdict.contains(" ok "), "{verdict}");
    assert!(
        verdict.contains(&format!(
            "bind as {} to {}; base {} readable (",
            slapd::SVC_DN,
            server.url(),
            slapd::SUFFIX
        )),
        "{verdict}"
    );

    let wrong = "Wr0ng-And-Secret";
    let bad = run(cfg.path(), &["validate", "--online"], Some(wrong));
    let (stdout, stderr) = text(&bad);
    assert_eq!(bad.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(stdout.contains("invalid credentials"), "{stdout}");
    assert!(stdout.contains("hint: check bindDn"), "{stdout}");
    assert!(
        !stdout.contains(wrong) && !stderr.contains(wrong),
        "password leaked"
    );

    let unset = run(cfg.path(), &["validate", "--online"], None);
    let (stdout, stderr) = text(&unset);
    assert_eq!(unset.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(PASSWORD_VAR),
        "names the variable: {stdout}"
    );

    // Offline validation needs no secret and does not connect.
    drop(server);
    let offline = run(cfg.path(), &["validate"], None);
    assert_eq!(offline.status.code(), Some(0), "{:?}", text(&offline));
    let down = run(cfg.path(), &["validate", "--online"], Some(slapd::SVC_PW));
    let (stdout, _) = text(&down);
    assert_eq!(down.status.code(), Some(1));
    assert!(stdout.contains("cannot connect"), "{stdout}");
}

#[test]
fn snapshot_writes_private_ldif_that_reads_back_through_an_ldif_config() {
    let server = Slapd::start(&data::users(0..40, slapd::STAFF));
    let cfg = tempfile::tempdir().unwrap();
    ldap_config(cfg.path(), &server.url());
    let out_file = cfg.path().join("snap/users.ldif");
    std::fs::create_dir_all(out_file.parent().unwrap()).unwrap();
    let out = run(
        cfg.path(),
        &["snapshot", "--out", out_file.to_str().unwrap()],
        Some(slapd::SVC_PW),
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let expected = (0..40).filter(|i: &usize| !i.is_multiple_of(13)).count();
    assert!(
        stderr.contains(&format!("Wrote {expected} entries")),
        "{stderr}"
    );

    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "personal data: owner only");
    let written = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        written.starts_with("version: 1\n# carbonite-sync snapshot"),
        "{written}"
    );
    assert!(written.contains(&format!("# source: {}", server.url())));
    assert!(written.contains("# filter: (&(objectClass=user)(employeeID=*))"));
    assert!(written.contains(&format!(
        "# version: carbonite-sync {}",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(written.contains("personal data"));
    assert!(
        !written.contains(slapd::SVC_PW),
        "no credentials in the file"
    );
    assert!(written.contains("objectGUID:: "), "binary values as base64");

    // The file is a working LDIF source, with the same anchors and disabled flags.
    let source = LdifSource::load(
        &out_file,
        slapd::SUFFIX,
        Flavor::ActiveDirectory,
        Flavor::ActiveDirectory.default_disabled_filter(),
    )
    .unwrap();
    let entries = source
        .search_now(&SearchRequest::new(
            slapd::STAFF,
            Scope::Subtree,
            "(objectClass=user)",
        ))
        .unwrap();
    assert_eq!(entries.len(), expected);
    for e in &entries {
        assert!(matches!(e.first("objectGUID"), Some(AttrValue::Binary(b)) if b.len() == 16));
        let uac: u32 = e.first_text("userAccountControl").unwrap().parse().unwrap();
        assert_eq!(e.disabled, uac & 2 != 0);
    }

    // --filter and --attributes: fewer attributes, the anchor and disabledFilter's kept.
    let narrow = cfg.path().join("narrow.ldif");
    let out = run(
        cfg.path(),
        &[
            "snapshot",
            "--out",
            narrow.to_str().unwrap(),
            "--filter",
            "(sn=Lee)",
            "--attributes",
            "mail,sn",
        ],
        Some(slapd::SVC_PW),
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let narrow_text = std::fs::read_to_string(&narrow).unwrap();
    assert!(narrow_text.contains("# filter: (sn=Lee)"));
    assert!(narrow_text.contains("userAccountControl: "));
    assert!(narrow_text.contains("objectGUID:: "));
    assert!(!narrow_text.contains("givenName:"), "{narrow_text}");

    // An LDIF config reading the snapshot validates online.
    let ldif_cfg = tempfile::tempdir().unwrap();
    std::fs::copy(&out_file, ldif_cfg.path().join("users.ldif")).unwrap();
    std::fs::write(
        ldif_cfg.path().join("integration.yaml"),
        integration(&format!(
            "    flavor: active-directory\n    ldif: {{ path: users.ldif, baseDn: \"{}\" }}\n",
            slapd::SUFFIX
        )),
    )
    .unwrap();
    std::fs::write(ldif_cfg.path().join("employees.yaml"), MAPPING).unwrap();
    let out = run(ldif_cfg.path(), &["validate", "--online"], None);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{expected} entries under {}", slapd::SUFFIX)),
        "{stdout}"
    );

    // A snapshot of the LDIF source is the same file content (header aside).
    let again = ldif_cfg.path().join("again.ldif");
    let out = run(
        ldif_cfg.path(),
        &["snapshot", "--out", again.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let body = |t: &str| -> String {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        body(&std::fs::read_to_string(&again).unwrap()),
        body(&written)
    );
}
