//! `apply` through the binary against the emulator as a separate process (SPEC §7 saved plan,
//! §8, §11): convergence and journal, saved plans (exact, stale account, stale config, edited
//! file), confirmation without a terminal, the state-dir lock, rate-budget stops and waits,
//! and the canary secret nowhere.
#![allow(clippy::print_stderr)] // figures and progress of long tests go to the test log

#[path = "apply/harness.rs"]
mod harness;

use harness::*;
use serde_json::{Value, json};

const FAST: &str = "    rateLimits: { perRoute: 1000/1h, userCreates: 1000/1h }\n";

/// `managed` accounts already carry keys E10000.. with a stale FirstName (updates);
/// the rest of the `n` users are creates.
fn tenant(managed: usize) -> Vec<Value> {
    (0..managed)
        .map(|i| {
            let k = 10_000 + i;
            let group = [
                "5a1d2e3f-0000-4000-8000-000000000002",
                "5a1d2e3f-0000-4000-8000-000000000003",
                "5a1d2e3f-0000-4000-8000-000000000001",
            ][i % 3];
            json!({"UserId": format!("a0000000-0000-4000-8000-{:012}", i), "Email": format!("user{k}@corp.example"),
                   "FirstName": "Old", "LastName": format!("Family{k}"), "CompanyId": COMPANY,
                   "UserGroupId": group,
                   "UserCustom1": format!("E{k}"), "UserCustom2": null, "UserCustom3": null, "Status": "Active"})
        })
        .collect()
}

#[test]
fn apply_converges_journals_everything_and_leaks_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(dir.path(), &seed(tenant(3)), &["--rate-limits", "none"]);
    let cfg = config(dir.path(), &emu.base, 12, FAST);
    let state = dir.path().join("state");

    let (code, out, err) = run(&cfg, &state, &["-vvv", "apply", "--auto-approve"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("Plan: 9 to create, 0 to adopt, 3 to update"),
        "{out}"
    );
    assert!(
        out.contains("Apply: 9 created, 0 adopted, 3 updated"),
        "{out}"
    );
    assert!(
        !out.contains(CANARY) && !err.contains(CANARY),
        "the secret leaked"
    );
    assert_eq!(journal_complete(&state).unwrap(), 12);
    let users = emu.users();
    assert_eq!(users.len(), 12);
    assert!(duplicates(&users, "UserCustom1").is_empty());
    assert!(state.join("baseline.json").exists());

    // The next plan is empty; so is the one from the cache the writes kept current.
    let (code, out, err) = run(&cfg, &state, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("No changes."), "{out}");
    let (code, out, err) = run(
        &cfg,
        &state,
        &["plan", "--detailed-exitcode", "--observed", "cache"],
    );
    assert_eq!(code, 0, "{out}\n{err}");

    // A saved plan and everything in the state dir: no secret.
    let plan_file = dir.path().join("plan.json");
    let (code, _, err) = run(
        &cfg,
        &state,
        &["plan", "--out", plan_file.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let mut files = vec![plan_file];
    files.extend(
        std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(CANARY),
            "{} holds the secret",
            f.display()
        );
    }
}

#[test]
fn without_a_terminal_apply_needs_auto_approve() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: the refusal comes before any call.
    let cfg = config(dir.path(), "http://127.0.0.1:9", 3, FAST);
    let (code, out, err) = run(&cfg, &dir.path().join("state"), &["apply"]);
    assert_eq!(code, 64, "{out}\n{err}");
    assert!(err.contains("--auto-approve"), "{err}");
    assert!(out.is_empty());
}

#[test]
fn a_saved_plan_is_applied_exactly_or_refused_when_stale() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(dir.path(), &seed(tenant(4)), &["--rate-limits", "none"]);
    let cfg = config(dir.path(), &emu.base, 6, FAST);
    let state = dir.path().join("state");
    let plan_file = dir.path().join("plan.json");
    let plan_arg = plan_file.to_str().unwrap();
    let (code, _, err) = run(&cfg, &state, &["plan", "--out", plan_arg]);
    assert_eq!(code, 0, "{err}");
    let before = emu.users();

    // Someone edits an account the plan updates: refused, nothing written.
    let id = "a0000000-0000-4000-8000-000000000001";
    let (status, _) = emu.admin(
        "PUT",
        &format!("/_emulator/users/{id}"),
        Some(&json!({"LastName": "Edited"})),
    );
    assert_eq!(status, 200);
    let edited = emu.users();
    let (code, out, err) = run(&cfg, &state, &["apply", plan_arg]);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(err.contains("stale plan") && err.contains(id), "{err}");
    assert_eq!(emu.users(), edited, "a stale plan wrote something");
    assert_ne!(edited, before);

    // A fresh plan applies exactly and the next plan is empty.
    let (code, _, err) = run(&cfg, &state, &["plan", "--out", plan_arg]);
    assert_eq!(code, 0, "{err}");
    let saved: Value = serde_json::from_slice(&std::fs::read(&plan_file).unwrap()).unwrap();
    let planned = saved["changes"].as_array().unwrap().len();
    assert_eq!(planned, 6, "{saved}");
    assert!(!state.join("baseline.json").exists());
    let (code, out, err) = run(&cfg, &state, &["apply", plan_arg]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("Apply: 2 created, 0 adopted, 4 updated"),
        "{out}"
    );
    // The saved plan's read becomes the baseline (CI runs only `plan --out` + `apply FILE`).
    let baseline: Value =
        serde_json::from_slice(&std::fs::read(state.join("baseline.json")).unwrap()).unwrap();
    assert_eq!(baseline["mappings"]["employees"], 6, "{baseline}");
    let (code, out, _) = run(&cfg, &state, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}");

    // The config changed since the plan: refused before any call.
    let (code, _, err) = run(&cfg, &state, &["plan", "--out", plan_arg]);
    assert_eq!(code, 0, "{err}");
    let stats = emu.stats();
    let ldif = cfg.join("users.ldif");
    let mut text = std::fs::read_to_string(&ldif).unwrap();
    text.push_str("# touched\n");
    std::fs::write(&ldif, text).unwrap();
    let (code, _, err) = run(&cfg, &state, &["apply", plan_arg]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("config changed"), "{err}");
    assert_eq!(emu.stats(), stats, "a stale-config apply called Carbonite");

    // An edited plan file is not applied.
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&plan_file).unwrap()).unwrap();
    doc["changes"] = json!([{"action": "delete", "mapping": "employees", "key": "E10000",
        "dn": null, "account_id": "a0000000-0000-4000-8000-000000000000",
        "observed_fingerprint": "sha256:00", "orchestrations": [], "fields": []}]);
    std::fs::write(&plan_file, doc.to_string()).unwrap();
    let (code, _, err) = run(&cfg, &state, &["apply", plan_arg]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("edited"), "{err}");
}

#[test]
fn a_held_lock_refuses_a_second_writer_with_who_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "http://127.0.0.1:9", 3, FAST);
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state.join("lock"))
        .unwrap();
    lock.try_lock().unwrap();
    std::fs::write(
        state.join("lock"),
        r#"{"pid":4242,"host":"ci-runner","command":"carbonite-sync watch","started_at":"2026-12-04T10:00:00Z"}"#,
    )
    .unwrap();
    let (code, _, err) = run(&cfg, &state, &["apply", "--auto-approve"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("pid 4242 on ci-runner") && err.contains("carbonite-sync watch"),
        "{err}"
    );
    drop(lock);
}

#[test]
fn forty_creates_wait_for_budget_with_no_429() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(
        dir.path(),
        &seed(Vec::new()),
        &["--rate-limits", "route=20/10s,create=10/10s"],
    );
    let limits = "    rateLimits: { perRoute: 20/10s, userCreates: 10/10s }\n";
    let cfg = config(dir.path(), &emu.base, 40, limits);
    let state = dir.path().join("state");
    let started = std::time::Instant::now();
    let (code, out, err) = run(
        &cfg,
        &state,
        &["apply", "--auto-approve", "--max-wait", "60s"],
    );
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(emu.users().len(), 40);
    assert!(duplicates(&emu.users(), "UserCustom1").is_empty());
    assert_eq!(emu.count_status("429"), 0, "{}", emu.stats());
    assert_eq!(journal_complete(&state).unwrap(), 40);
    // The configured create rate is 10 per 10 s; the first 10 go at once.
    let ideal = 30.0;
    eprintln!(
        "rate test: 40 creates in {secs:.1} s; ideal under 10/10s is {ideal:.0} s after the first \
         window: {:.0}% of the configured rate",
        ideal / secs.max(ideal) * 100.0
    );
}

#[test]
fn without_max_wait_apply_stops_on_the_budget_and_says_when_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(dir.path(), &seed(Vec::new()), &["--rate-limits", "none"]);
    let limits = "    rateLimits: { perRoute: 50/1h, userCreates: 5/1h }\n";
    let cfg = config(dir.path(), &emu.base, 8, limits);
    let state = dir.path().join("state");
    let (code, out, err) = run(&cfg, &state, &["apply", "--auto-approve"]);
    assert_eq!(code, 5, "{out}\n{err}");
    assert!(out.contains("3 remaining, next budget at"), "{out}");
    assert_eq!(emu.users().len(), 5);
    journal_complete(&state).unwrap();
    // A rerun resumes: still no budget, nothing sent, same report.
    let before = emu.stats();
    let (code, out, _) = run(&cfg, &state, &["apply", "--auto-approve"]);
    assert_eq!(code, 5, "{out}");
    assert_eq!(emu.users().len(), 5);
    assert_eq!(emu.stats()["creates"], before["creates"]);
}

/// `apply` under a pseudo-terminal (util-linux `script`): it asks, and only `yes` proceeds.
fn apply_on_a_terminal(
    cfg: &std::path::Path,
    state: &std::path::Path,
    answer: &str,
) -> (i32, String) {
    let cmd = format!(
        "{BIN} -C '{}' --state-dir '{}' apply",
        cfg.display(),
        state.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("NO_COLOR", "1")
        .env("CANARY_SECRET", CANARY)
        .env_remove("CARBONITE_SYNC_STATE_DIR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` (bsdutils) runs the command on a pseudo-terminal");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn on_a_terminal_apply_asks_and_only_yes_proceeds() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(dir.path(), &seed(Vec::new()), &["--rate-limits", "none"]);
    let cfg = config(dir.path(), &emu.base, 3, FAST);
    let state = dir.path().join("state");
    let (code, text) = apply_on_a_terminal(&cfg, &state, "no");
    assert!(
        text.contains("Do you want to apply these changes?"),
        "{text}"
    );
    assert!(text.contains("Apply cancelled"), "{text}");
    assert_eq!(code, 1, "{text}");
    assert!(emu.users().is_empty());
    let (code, text) = apply_on_a_terminal(&cfg, &state, "yes");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("Apply: 3 created"), "{text}");
    assert_eq!(emu.users().len(), 3);
    assert!(!text.contains(CANARY));
}
