//! The command line itself: exit codes of usage errors, help, version, init, completions, man.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carbonite-sync"))
        .args(args)
        .env_remove("CARBONITE_SYNC_CONFIG")
        .env_remove("CARBONITE_SYNC_STATE_DIR")
        .output()
        .expect("run carbonite-sync")
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    assert_eq!(run(&["--no-such-flag"]).status.code(), Some(64));
    assert_eq!(run(&["no-such-command"]).status.code(), Some(64));
    assert_eq!(run(&[]).status.code(), Some(64));
    assert_eq!(run(&["validate", "--bogus"]).status.code(), Some(64));
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("validate"));
    assert_eq!(run(&["--version"]).status.code(), Some(0));
    assert_eq!(
        run(&["-v", "-q", "validate"]).status.code(),
        Some(64),
        "-v and -q conflict"
    );
}

#[test]
fn init_scaffolds_a_valid_config_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("cfg");
    let t = target.to_str().unwrap();
    let first = run(&["init", t]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(target.join(".schema/carbonite-sync.schema.json").exists());
    let v = run(&["-C", t, "validate"]);
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );
    let before = std::fs::read(target.join("integration.yaml")).unwrap();
    let second = run(&["init", t]);
    assert_eq!(second.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&second.stderr).contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read(target.join("integration.yaml")).unwrap(),
        before,
        "nothing overwritten"
    );
}

#[test]
fn examples_validate() {
    for ex in ["quickstart", "active-directory", "openldap"] {
        let dir = format!("{}/examples/{ex}", env!("CARGO_MANIFEST_DIR"));
        let o = run(&["-C", &dir, "validate"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{ex}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn config_dir_from_environment() {
    let dir = format!("{}/examples/quickstart", env!("CARGO_MANIFEST_DIR"));
    let o = Command::new(env!("CARGO_BIN_EXE_carbonite-sync"))
        .arg("validate")
        .env("CARBONITE_SYNC_CONFIG", &dir)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn schema_command_prints_the_combined_schema() {
    let o = run(&["schema"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["title"], "carbonite-sync config document");
}

#[test]
fn completions_and_man() {
    let c = run(&["completions", "bash"]);
    assert_eq!(c.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&c.stdout).contains("carbonite-sync"));
    let m = run(&["man"]);
    assert_eq!(m.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&m.stdout).contains(".TH"));
}
