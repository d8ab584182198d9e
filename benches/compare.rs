//! `compare` benchmark: `cargo bench --bench compare`.
//!
//! Generates an LDIF snapshot of BENCH_USERS (default 100,000) AD-style users (the same
//! generator as the directory tests) and times `carbonite-sync compare` of the fixture configs
//! in tests/fixtures/compare (base vs a head with a new email format and a narrowed filter),
//! median of 3, with the peak RSS from `/usr/bin/time` when it exists:
//! - offline, JSON: every user's Email changes (the largest possible output);
//! - offline, markdown (the PR comment, truncated at 60,000 characters);
//! - offline, base against itself: no difference (the floor: two evaluations, nothing to print);
//! - `--observed cache` with a cache of one account per user: both plans computed as well.
//!
//! Figures only, no assertions.
#![allow(clippy::print_stdout)] // a benchmark reports on stdout

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// One run: wall time, peak RSS in MB (when /usr/bin/time is there), exit code, stdout bytes.
fn run(dir: &Path, head: &Path, base: &Path, args: &[&str]) -> (Duration, Option<f64>, i32, usize) {
    let bin = env!("CARGO_BIN_EXE_carbonite-sync");
    let timed = Path::new("/usr/bin/time").exists();
    let mut cmd = if timed {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "%M"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.current_dir(dir)
        .arg("-C")
        .arg(head)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("compare")
        .arg("--base")
        .arg(base)
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let out = cmd.output().expect("run carbonite-sync");
    let elapsed = started.elapsed();
    let rss = timed
        .then(|| {
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .and_then(|l| l.trim().parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
        })
        .flatten();
    if out.stdout.is_empty() || std::env::var("BENCH_DEBUG").is_ok() {
        let n = out.stdout.len().min(400);
        println!(
            "  stdout: {}\n  stderr: {}",
            String::from_utf8_lossy(&out.stdout[..n]),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    (
        elapsed,
        rss,
        out.status.code().unwrap_or(-1),
        out.stdout.len(),
    )
}

fn main() {
    let n: usize = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compare");
    let (base, head) = (root.join("base"), root.join("head"));
    let dir = tempfile::tempdir().expect("temp dir");
    let t = Instant::now();
    let ldif = format!(
        "version: 1\n\n{}",
        support::data::users(0..n, "OU=Staff,DC=corp,DC=example")
    );
    std::fs::write(dir.path().join("users.ldif"), &ldif).expect("write LDIF");
    println!(
        "== {n} users: LDIF snapshot of {:.1} MB written in {:.1} s",
        ldif.len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // An observed-state cache with one account per user that has an employeeID, as the base
    // config renders it (so the base plan is mostly unchanged and the head plan updates).
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let cfg = carbonite_sync::config::load(&base).expect("base config");
    let accounts: Vec<carbonite_sync::carbonite::ObservedAccount> = (0..n)
        .filter(|i| !i.is_multiple_of(13))
        .map(|i| {
            let key = format!("E{:05}", i * 7 % 100_000);
            let mut fields = serde_json::Map::new();
            fields.insert("UserId".into(), format!("id-{i}").into());
            fields.insert("Email".into(), format!("user{i}@corp.example").into());
            fields.insert("UserCustom1".into(), key.clone().into());
            fields.insert("Status".into(), "Active".into());
            carbonite_sync::carbonite::ObservedAccount {
                id: Some(format!("id-{i}")),
                key: Some(key),
                fields: carbonite_sync::carbonite::raw::RawFields::from_map(&fields),
                endpoints: vec!["carbonite-users".into()],
            }
        })
        .collect();
    let cache = carbonite_sync::observed_cache::ObservedCache {
        version: carbonite_sync::observed_cache::VERSION,
        tenant: carbonite_sync::carbonite::tenant_key(&cfg, &state),
        listed_at: "2026-01-01T00:00:00Z".into(),
        groups: vec![carbonite_sync::observed_cache::CachedGroup {
            endpoints: vec!["carbonite-users".into()],
            key_field: "UserCustom1".into(),
            accounts,
        }],
        // Without tables every lookup() fails: both sides would be all conflicts, no difference.
        lookup_tables: carbonite_sync::template::LookupTables {
            companies: vec![carbonite_sync::template::Company {
                id: "0f8b6c1e-4d2a-4c3b-9e5f-1a2b3c4d5e6f".into(),
                name: "Corp".into(),
            }],
            user_groups: ["Staff", "Sales", "IT"]
                .iter()
                .enumerate()
                .map(|(i, name)| carbonite_sync::template::UserGroup {
                    id: format!("5a1d2e3f-0000-4000-8000-00000000000{i}"),
                    name: (*name).into(),
                    company_id: "0f8b6c1e-4d2a-4c3b-9e5f-1a2b3c4d5e6f".into(),
                })
                .collect(),
        },
    };
    let _ = std::fs::remove_dir_all(&state);

    let scenarios: [(&str, &Path, &[&str]); 4] = [
        (
            "offline, json, head vs base",
            &head,
            &["--offline", "--snapshot", "users.ldif", "--format", "json"],
        ),
        (
            "offline, markdown, head vs base",
            &head,
            &[
                "--offline",
                "--snapshot",
                "users.ldif",
                "--format",
                "markdown",
            ],
        ),
        (
            "offline, text, base vs base (no difference)",
            &base,
            &["--offline", "--snapshot", "users.ldif"],
        ),
        (
            "--observed cache (100k-account cache), json, head vs base",
            &head,
            &[
                "--observed",
                "cache",
                "--snapshot",
                "users.ldif",
                "--format",
                "json",
            ],
        ),
    ];
    for (name, h, args) in scenarios {
        let cached = args.contains(&"cache");
        let mut times = Vec::new();
        let mut rss = None;
        let mut last = (0, 0);
        for _ in 0..3 {
            let _ = std::fs::remove_dir_all(&state);
            if cached {
                std::fs::create_dir_all(&state).expect("state dir");
                // The tenant key names the state dir; write the cache where the run looks.
                let mut c = cache.clone();
                c.tenant = carbonite_sync::carbonite::tenant_key(&cfg, &state);
                c.save(&state).expect("write cache");
            }
            let (d, r, code, bytes) = run(dir.path(), h, &base, args);
            times.push(d);
            rss = match (rss, r) {
                (Some(a), Some(b)) => Some(f64::max(a, b)),
                (a, b) => a.or(b),
            };
            last = (code, bytes);
        }
        println!(
            "{name}: median {:.2} s (runs: {}), exit {}, {:.1} MB of output{}",
            median(times.clone()).as_secs_f64(),
            times
                .iter()
                .map(|t| format!("{:.2}", t.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" / "),
            last.0,
            last.1 as f64 / 1e6,
            rss.map(|r| format!(", peak RSS {r:.0} MB"))
                .unwrap_or_default()
        );
    }
}
