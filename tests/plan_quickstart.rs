//! `plan` end to end on the quickstart: LDIF source, in-process emulator over real HTTP.

use std::process::Command;

fn plan(state: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_carbonite-sync"))
        .arg("-C")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart"))
        .arg("--state-dir")
        .arg(state)
        .arg("plan")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn quickstart_plan_shows_create_update_adopt_and_conflict() {
    let state = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = plan(state.path(), &["--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let s = &v["summary"];
    assert_eq!(
        (
            s["create"].as_u64(),
            s["adopt"].as_u64(),
            s["update"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{stdout}"
    );
    assert_eq!(s["conflict"], 2);
    assert_eq!(v["conflicts"][0]["kind"], "duplicate_key_source");
    assert_eq!(v["observed"]["source"], "live");

    // Deterministic: the same inputs give the same changes.
    let (_, again, _) = plan(state.path(), &["--format", "json"]);
    let w: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(v["changes"], w["changes"]);
    assert_eq!(v["config"]["digest"], w["config"]["digest"]);

    // Exit codes: 2 with --detailed-exitcode when there are changes; text ends with the counts.
    let (code, text, _) = plan(state.path(), &["--detailed-exitcode"]);
    assert_eq!(code, 2);
    assert!(text.contains("Plan: 2 to create, 1 to adopt, 1 to update, 0 to reactivate, 0 to suspend, 0 to delete."), "{text}");
    let (code, md, _) = plan(state.path(), &["--format", "markdown"]);
    assert_eq!(code, 0);
    assert!(md.starts_with("### carbonite-sync plan"));
    let (code, _, err) = plan(state.path(), &["--mapping", "nope"]);
    assert_eq!(code, 64, "{err}");
}
