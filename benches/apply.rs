//! Apply throughput (issue: "throughput against an unlimited emulator with 20 ms latency at
//! concurrency 1, 4, 16 (ops/s)"). Each round: a fresh emulator process (no rate limits,
//! 20 ms added to every answer), an LDIF directory of N users, and `apply --auto-approve`
//! creating them all; then a second round of N updates (every FirstName changed). Prints
//! figures; asserts nothing beyond success.
//!
//! `cargo bench --bench apply` (N defaults to 400; `APPLY_BENCH_N` overrides).
#![allow(clippy::print_stdout)] // a benchmark reports on stdout

#[path = "../tests/apply/harness.rs"]
mod harness;

use std::time::Instant;

use harness::*;

fn main() {
    let n: usize = std::env::var("APPLY_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    println!("apply throughput: {n} operations per round, emulator latency 20 ms, no limits");
    println!(
        "{:>11} {:>14} {:>14}",
        "concurrency", "creates/s", "updates/s"
    );
    for concurrency in [1usize, 4, 16] {
        let dir = tempfile::tempdir().unwrap();
        let emu = Emulator::start(
            dir.path(),
            &seed(Vec::new()),
            &["--rate-limits", "none", "--faults", "latency=20ms,seed=1"],
        );
        let extra = format!(
            "    rateLimits: {{ perRoute: 1000000/1h, userCreates: 1000000/1h }}\n    concurrency: {concurrency}\n"
        );
        let cfg = config(dir.path(), &emu.base, n, &extra);
        let state = dir.path().join("state");
        let t = Instant::now();
        let (code, out, err) = run(&cfg, &state, &["-q", "apply", "--auto-approve"]);
        let creates = t.elapsed().as_secs_f64();
        assert_eq!(code, 0, "{out}\n{err}");
        assert_eq!(emu.users().len(), n);
        // Every FirstName changes: N updates.
        let ldif = std::fs::read_to_string(cfg.join("users.ldif"))
            .unwrap()
            .replace("givenName: Given", "givenName: Renamed");
        std::fs::write(cfg.join("users.ldif"), ldif).unwrap();
        let t = Instant::now();
        let (code, out, err) = run(&cfg, &state, &["-q", "apply", "--auto-approve"]);
        let updates = t.elapsed().as_secs_f64();
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(out.contains(&format!("{n} updated")), "{out}");
        println!(
            "{concurrency:>11} {:>14.1} {:>14.1}",
            n as f64 / creates,
            n as f64 / updates
        );
    }
    println!(
        "(whole command: plan read + listing + writes; ideal at 20 ms is 50 x concurrency ops/s)"
    );
}
