//! `watch` at scale (issue: "idle API calls per hour; RSS of an idle watch with 100k cached
//! accounts; pass duration at 100k entries"). An LDIF directory of N users and an emulator
//! seeded with exactly the accounts they map to (nothing to change); `watch --interval 5s`
//! lists once, then runs idle passes from the cache. Prints figures; asserts only that the
//! idle passes made no call.
//!
//! `cargo bench --bench watch` (N defaults to 100,000; `WATCH_BENCH_N` overrides).
#![allow(clippy::print_stdout)] // a benchmark reports on stdout

#[path = "../tests/apply/harness.rs"]
mod harness;

use std::io::{BufRead as _, Read as _, Write as _};
use std::process::Stdio;
use std::time::{Duration, Instant};

use harness::*;
use serde_json::json;

fn get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").unwrap().1.to_string()
}

fn metric(m: &str, name: &str) -> f64 {
    m.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let n: usize = std::env::var("WATCH_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let groups = [
        "5a1d2e3f-0000-4000-8000-000000000002",
        "5a1d2e3f-0000-4000-8000-000000000003",
        "5a1d2e3f-0000-4000-8000-000000000001",
    ];
    let users: Vec<_> = (0..n)
        .map(|i| {
            let k = 10_000 + i;
            json!({"UserId": format!("a0000000-0000-4000-8000-{i:012}"),
                   "Email": format!("user{k}@corp.example"), "FirstName": format!("Given{k}"),
                   "LastName": format!("Family{k}"), "CompanyId": COMPANY, "UserGroupId": groups[i % 3],
                   "UserCustom1": format!("E{k}"), "Status": "Active"})
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(dir.path(), &seed(users), &["--rate-limits", "none"]);
    let cfg = config(
        dir.path(),
        &emu.base,
        n,
        "    rateLimits: { perRoute: 1000000/1h, userCreates: 1000000/1h }\n",
    );
    let state = dir.path().join("state");
    let mut child = command(
        &cfg,
        &state,
        &["watch", "--interval", "5s", "--listen", "127.0.0.1:0"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(120)).unwrap();
        if let Some(a) = line.split("health and metrics on http://").nth(1) {
            break a.trim().to_string();
        }
    };
    let wait_passes = |k: f64| {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let m = get(&addr, "/metrics");
            if metric(&m, "carbonite_sync_passes_total{") >= k {
                return m;
            }
            assert!(Instant::now() < deadline, "watch stalled");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let first = wait_passes(1.0);
    let first_duration = metric(&first, "carbonite_sync_pass_duration_seconds");
    let calls_first = metric(&first, "carbonite_sync_api_calls_total{");
    let stats_before = emu.stats();
    let t = Instant::now();
    let mut idle = Vec::new();
    for k in 2..=6 {
        let m = wait_passes(k as f64);
        idle.push(metric(&m, "carbonite_sync_pass_duration_seconds"));
    }
    let elapsed = t.elapsed();
    let rss = rss_mib(child.id());
    assert_eq!(emu.stats(), stats_before, "idle passes called Carbonite");
    let changes = metric(&get(&addr, "/metrics"), "carbonite_sync_changes_total{");
    println!("watch at {n} entries / {n} accounts (release binary, LDIF source, emulator)");
    println!("  first pass (full listing + plan): {first_duration:.2} s, {calls_first} API calls");
    println!(
        "  idle passes (cache): {} in {:.0} s, durations {:?} s, 0 API calls -> 0 calls/hour between full refreshes",
        idle.len(),
        elapsed.as_secs_f64(),
        idle.iter()
            .map(|d| (d * 100.0).round() / 100.0)
            .collect::<Vec<_>>()
    );
    println!("  changes applied: {changes}; RSS of the idle watch: {rss:.0} MiB");
    let pages = n.div_ceil(500);
    println!(
        "  full refresh: {} listing calls every max(6h, {pages} pages / 50 per hour = {:.1} h) -> {:.1} calls/hour on average",
        pages + 3,
        pages as f64 / 50.0,
        (pages + 3) as f64 / (pages as f64 / 50.0).max(6.0)
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
