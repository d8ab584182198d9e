//! `compare --base DIR` end to end on the fixture configs of tests/fixtures/compare: a base
//! config and a head that changes the email format and narrows the filter, on an LDIF file.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/compare")
        .join(name)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn compare_in(cwd: &Path, head: &Path, base: &Path, state: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_carbonite-sync"))
        .current_dir(cwd)
        .arg("-C")
        .arg(head)
        .arg("--state-dir")
        .arg(state)
        .arg("compare")
        .arg("--base")
        .arg(base)
        .args(args)
        .env("NO_COLOR", "1")
        .env("CARBONITE_SYNC_NOW", "2026-01-05T10:00:00Z")
        .env_remove("CARBONITE_SYNC_CONFIG")
        .env_remove("CARBONITE_SYNC_STATE_DIR")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn compare(head: &str, base: &str, state: &Path, args: &[&str]) -> Run {
    compare_in(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &fixture(head),
        &fixture(base),
        state,
        args,
    )
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn validate_against_schema(doc: &serde_json::Value) {
    let schema = carbonite_sync::schema::compare_schema();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// (change, key, [fields]) of every reported account.
fn accounts(v: &serde_json::Value) -> Vec<(String, String, Vec<String>)> {
    v["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["change"].as_str().unwrap().to_string(),
                a["key"].as_str().unwrap().to_string(),
                a["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["name"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn email_format_and_narrowed_filter_report_exactly_the_affected_accounts() {
    let state = tempfile::tempdir().unwrap();
    let run = compare(
        "head",
        "base",
        state.path(),
        &["--offline", "--format", "json"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    let v = json(&run);
    validate_against_schema(&v);
    let all = [
        "CompanyId",
        "Email",
        "FirstName",
        "LastName",
        "Status",
        "UserGroupId",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        accounts(&v),
        vec![
            ("changed".into(), "E1004".into(), vec!["Email".to_string()]),
            ("leaving".into(), "E1006".into(), all.clone()),
            ("leaving".into(), "E1007".into(), all),
            ("changed".into(), "E1008".into(), vec!["Email".to_string()]),
        ]
    );
    assert_eq!(v["summary"]["changed"], 2);
    assert_eq!(v["summary"]["leaving"], 2);
    assert_eq!(v["observed"]["lookups"], "unresolved");
    insta::assert_json_snapshot!("offline_json", v);

    let text = compare("head", "base", state.path(), &["--offline"]);
    assert_eq!(text.code, 2);
    assert!(text.stdout.contains("<unresolved:companies/Corp>"));
    insta::assert_snapshot!("offline_text", text.stdout);
    let md = compare(
        "head",
        "base",
        state.path(),
        &["--offline", "--format", "markdown"],
    );
    assert_eq!(md.code, 2);
    insta::assert_snapshot!("offline_markdown", md.stdout);
}

#[test]
fn widening_reports_entering_accounts() {
    // The same edit the other way round: the contractors enter, the emails change back.
    let state = tempfile::tempdir().unwrap();
    let run = compare(
        "base",
        "head",
        state.path(),
        &["--offline", "--format", "json"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    let v = json(&run);
    let got: Vec<(String, String)> = accounts(&v).into_iter().map(|(c, k, _)| (c, k)).collect();
    assert_eq!(
        got,
        [
            ("changed", "E1004"),
            ("entering", "E1006"),
            ("entering", "E1007"),
            ("changed", "E1008")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(
        v["accounts"][1]["fields"][1]["base"],
        serde_json::Value::Null
    );
    assert_eq!(
        v["accounts"][1]["fields"][1]["head"],
        "ed.gray@corp.example"
    );
}

#[test]
fn unchanged_config_exits_0_with_an_empty_result() {
    let state = tempfile::tempdir().unwrap();
    let run = compare(
        "base",
        "base",
        state.path(),
        &["--offline", "--format", "json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = json(&run);
    validate_against_schema(&v);
    assert_eq!(v["accounts"], serde_json::json!([]));
    assert_eq!(
        v["conflicts"],
        serde_json::json!({"added": [], "removed": []})
    );
    assert_eq!(v["guards"], serde_json::json!([]));
    assert_eq!(v["ignored_head_changes"], serde_json::json!([]));
    let text = compare("base", "base", state.path(), &["--offline"]);
    assert_eq!(text.code, 0);
    insta::assert_snapshot!("unchanged_text", text.stdout);
}

#[test]
fn head_changes_to_connections_endpoints_and_secrets_are_reported_not_used() {
    // head-redirect points the directory at another LDAP server, Carbonite at another host
    // with another token, and overrides an Endpoint. Were any of it used, the run would fail
    // (no server, no STOLEN_TOKEN / LDAP_BIND_PASSWORD in the environment).
    let state = tempfile::tempdir().unwrap();
    let run = compare(
        "head-redirect",
        "base",
        state.path(),
        &["--observed", "live", "--format", "json"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    let v = json(&run);
    validate_against_schema(&v);
    assert_eq!(v["accounts"], serde_json::json!([]), "nothing else changed");
    assert_eq!(v["observed"]["source"], "live");
    assert_eq!(v["source"], "../users.ldif", "the base's source is read");
    let paths: Vec<&str> = v["ignored_head_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    for p in [
        "directory.ldap.url",
        "directory.ldif.path",
        "carbonite.baseUrl",
        "carbonite.auth.bearerToken",
        "endpoints.carbonite-users",
    ] {
        assert!(paths.contains(&p), "{p} not in {paths:?}");
    }
    let md = compare(
        "head-redirect",
        "base",
        state.path(),
        &["--format", "markdown"],
    );
    assert_eq!(md.code, 2, "{}", md.stderr);
    insta::assert_snapshot!("redirect_markdown", md.stdout);
}

#[test]
fn live_observed_accounts_show_the_plan_actions_that_change() {
    // The emulator (seeded from the base config) holds E1001, E1004 (Email cdahl@, as the base
    // renders it) and E1006 (a contractor the head drops: an orphan, suspended by policy).
    let state = tempfile::tempdir().unwrap();
    let run = compare(
        "head",
        "base",
        state.path(),
        &["--observed", "live", "--format", "json"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    let v = json(&run);
    validate_against_schema(&v);
    assert_eq!(v["observed"]["source"], "live");
    assert_eq!(v["observed"]["lookups"], "live");
    let by_key = |k: &str| {
        v["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == k)
            .cloned()
            .unwrap()
    };
    let e1004 = by_key("E1004");
    assert_eq!(e1004["base_actions"], serde_json::json!([]));
    assert_eq!(e1004["head_actions"], serde_json::json!(["update"]));
    let e1006 = by_key("E1006");
    assert_eq!(e1006["change"], "leaving");
    assert_eq!(e1006["head_actions"], serde_json::json!(["suspend"]));
    insta::assert_snapshot!(
        "live_text",
        compare("head", "base", state.path(), &["--observed", "cache"]).stdout
    );
}

#[test]
fn markdown_of_5000_changed_accounts_stays_under_60000_characters() {
    let dir = tempfile::tempdir().unwrap();
    let mut ldif = String::from("version: 1\n\n");
    for i in 0..5000 {
        // Every mail differs from the head's first.last format: 5,000 changed accounts.
        ldif.push_str(&format!(
            "dn: CN=User {i:04},OU=Staff,DC=corp,DC=example\nobjectClass: user\ngivenName: User\n\
             sn: N{i:04}\nmail: u{i:04}@corp.example\nemployeeID: E{i:05}\ndepartment: Sales\n\
             userAccountControl: 512\n\n"
        ));
    }
    std::fs::write(dir.path().join("users-5000.ldif"), ldif).unwrap();
    let run = compare_in(
        dir.path(),
        &fixture("head"),
        &fixture("base"),
        dir.path(),
        &[
            "--offline",
            "--snapshot",
            "users-5000.ldif",
            "--format",
            "markdown",
        ],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    let md = run.stdout;
    assert!(
        md.chars().count() < 60_000,
        "{} characters",
        md.chars().count()
    );
    assert!(md.contains("| 0 | 0 | 5000 | 0 | 0 |"), "{}", &md[..600]);
    assert!(md.contains("omitted to keep this comment under 60000 characters"));
    insta::assert_snapshot!("markdown_5000", md);
}

#[test]
fn bad_input_is_a_clear_error_with_a_hint() {
    let state = tempfile::tempdir().unwrap();
    let run = compare("head", "does-not-exist", state.path(), &["--offline"]);
    assert_eq!(run.code, 64);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    let run = compare("head", "base", state.path(), &["--snapshot", "nope.ldif"]);
    assert_eq!(run.code, 64);
    assert!(
        run.stderr
            .contains("hint: write one with `carbonite-sync snapshot"),
        "{}",
        run.stderr
    );
    let run = compare(
        "head",
        "base",
        state.path(),
        &["--offline", "--observed", "cache"],
    );
    assert_eq!(run.code, 64, "{}", run.stderr);
    // A cache-only compare without a cache says how to get one.
    let run = compare("head", "base", state.path(), &["--observed", "cache"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
}

#[test]
fn pr_review_guide_example_is_current() {
    // docs/pr-review.md shows the comment compare prints for the fixture; regenerate it here
    // (rewrite, then fail so the change is committed).
    let state = tempfile::tempdir().unwrap();
    let run = compare(
        "head",
        "base",
        state.path(),
        &["--observed", "live", "--format", "markdown"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/pr-review.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let (start, end) = ("<!-- example:start -->\n", "<!-- example:end -->");
    let a = doc.find(start).expect("start marker") + start.len();
    let b = doc.find(end).expect("end marker");
    if doc[a..b] != run.stdout {
        let updated = format!("{}{}{}", &doc[..a], run.stdout, &doc[b..]);
        std::fs::write(&path, updated).unwrap();
        panic!("docs/pr-review.md's example was out of date and has been regenerated: commit it");
    }
}
