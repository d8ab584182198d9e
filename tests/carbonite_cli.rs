//! The Carbonite client through the real binary: `test-endpoint`, secrets at trace level, and
//! two processes sharing one state dir (and so one ledger) under a tight limit.

#[path = "carbonite/harness.rs"]
mod harness;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use carbonite_sync::emulator::Limits;
use harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_carbonite-sync");

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("-C")
        .arg(dir)
        .arg("--color")
        .arg("never")
        .args(args);
    cmd.env_remove("CARBONITE_SYNC_LOG")
        .env_remove("CARBONITE_SYNC_STATE_DIR")
        .env_remove("CARBONITE_SYNC_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A config dir using the in-process emulator, seeded with `users` accounts.
fn emulator_config(users: usize, auth: Option<&str>, api_key: Option<&str>) -> tempfile::TempDir {
    let dir = config_dir(&ConfigSpec {
        target: "emulator: { seed: seed.json }".into(),
        auth: auth.map(str::to_string),
        per_route: "50/1h",
        user_creates: "100/1h",
        extra: "",
    });
    std::fs::write(
        dir.path().join("seed.json"),
        seed_doc(users, api_key).to_string(),
    )
    .unwrap();
    dir
}

#[test]
fn test_endpoint_prints_the_field_table() {
    let dir = emulator_config(3, None, None);
    let out = run(dir.path(), &["test-endpoint", "carbonite-users"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!(text(&out.stdout));

    // Template variables, and a `forEach: companies` endpoint (companies first, then the
    // first company's groups).
    let out = run(
        dir.path(),
        &[
            "test-endpoint",
            "carbonite-user-by-email",
            "--var",
            "email=USER2@corp.example",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("2 API calls (token included), 1 item."),
        "{stdout}"
    );
    assert!(stdout.contains("user2@corp.example"), "{stdout}");
    let out = run(dir.path(), &["test-endpoint", "carbonite-usergroups"], &[]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("3 API calls (token included), 2 items; more pages not read"),
        "{stdout}"
    );

    // Unknown endpoint: exit 1 with the known names.
    let out = run(dir.path(), &["test-endpoint", "carbonite-user"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("hint: known endpoints: carbonite-companies"));
}

#[test]
fn a_canary_secret_never_appears_at_trace_level() {
    const CANARY: &str = "canary-7f3e9b1c-secret";
    let auth = "{ apiKey: { email: admin@corp.example, secret: { env: CARBONITE_TEST_CANARY } } }";
    let dir = emulator_config(2, Some(auth), Some(CANARY));
    let env = [("CARBONITE_TEST_CANARY", CANARY)];
    let out = run(
        dir.path(),
        &["-vvv", "test-endpoint", "carbonite-users"],
        &env,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("carbonite: request detail"),
        "trace logging is on"
    );
    assert!(
        stderr.contains("ApiKeySecret"),
        "the token request body is logged, redacted"
    );
    assert!(stderr.contains("<redacted>"));
    for (name, s) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(!s.contains(CANARY), "the canary leaked into {name}");
    }
    // Same with the env filter set directly, and with a wrong secret (the error path).
    let env = [
        ("CARBONITE_TEST_CANARY", "canary-wrong-0a9d4e"),
        ("CARBONITE_SYNC_LOG", "trace"),
    ];
    let out = run(dir.path(), &["test-endpoint", "carbonite-users"], &env);
    assert_eq!(out.status.code(), Some(1));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(all.contains("Carbonite answered 401"), "{all}");
    assert!(!all.contains("canary-wrong-0a9d4e") && !all.contains(CANARY));
    // Nor in the state dir.
    for entry in std::fs::read_dir(state_dir(dir.path())).unwrap() {
        let path = entry.unwrap().path();
        let content = std::fs::read(&path).unwrap();
        assert!(
            !text(&content).contains(CANARY),
            "canary in {}",
            path.display()
        );
    }

    // A bearer token that the server refuses: the token value is never shown either.
    let auth = "{ bearerToken: { env: CARBONITE_TEST_TOKEN } }";
    let dir = emulator_config(1, Some(auth), None);
    let env = [("CARBONITE_TEST_TOKEN", CANARY)];
    let out = run(
        dir.path(),
        &["-vvv", "test-endpoint", "carbonite-users"],
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(all.contains("Authorization: Bearer <redacted>"), "{all}");
    assert!(!all.contains(CANARY), "the bearer token leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sharing_a_state_dir_never_exceed_the_limit() {
    // The server enforces 5 calls per route per 2 s and answers 429 beyond; both processes
    // pace themselves from the one ledger in the shared state dir.
    let (emu, _seed) = emulator(20, |o| {
        o.limits = Some(Limits {
            per_route: "5/2s".parse().unwrap(),
            creates: "5/2s".parse().unwrap(),
        });
    })
    .await;
    let spec = ConfigSpec {
        per_route: "5/2s",
        user_creates: "5/2s",
        ..ConfigSpec::url(&emu.base_url())
    };
    let dir = config_dir(&spec);
    const RUNS: usize = 6;
    let t0 = Instant::now();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let path = dir.path().to_path_buf();
            std::thread::spawn(move || {
                (0..RUNS)
                    .map(|_| {
                        run(
                            &path,
                            &["test-endpoint", "carbonite-users", "--max-wait", "60s"],
                            &[],
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for w in workers {
        for out in w.join().unwrap() {
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        }
    }
    let elapsed = t0.elapsed();
    let s = stats(&emu.base_url()).await;
    let calls = (2 * RUNS) as u64;
    for route in ["GET /api/users", "POST /api/tokens/apikey"] {
        assert_eq!(count(&s, route, "429"), 0, "{s}");
        assert_eq!(count(&s, route, "200"), calls, "{s}");
    }
    // 12 calls per route at 5 per 2 s: the third batch cannot start before 4 s.
    assert!(elapsed >= Duration::from_secs(4), "{elapsed:?}");
}
