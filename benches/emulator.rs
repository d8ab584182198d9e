//! Emulator benchmark: runs the real binary (`carbonite-sync emulator`, bench/release profile)
//! seeded with 100k accounts and prints
//!
//! - its resident memory after loading the seed and after serving a full listing;
//! - requests/s for listing pages of 500 (one client, and several concurrent clients);
//! - requests/s for user creates (rate limits off; without a state file, and with one, where
//!   every create is written through to disk before its 201).
//!
//! Run: `cargo bench --bench emulator` (`EMULATOR_BENCH_SECS=N` per phase, default 5;
//! `EMULATOR_BENCH_ACCOUNTS=N`, default 100000). Client and server share the machine's cores.
#![allow(clippy::print_stdout, reason = "a bench prints its figures")]

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CORP: &str = "0f8b6c1e-0000-4000-8000-000000000001";
const STAFF: &str = "5a1d2e3f-0000-4000-8000-000000000001";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn write_seed(path: &Path, accounts: u64) {
    let users: Vec<Value> = (0..accounts)
        .map(|i| {
            json!({
                "UserId": format!("00000000-0000-4000-8000-{i:012}"),
                "Email": format!("user{i}@corp.example"),
                "FirstName": format!("First{i}"),
                "LastName": format!("Last{i}"),
                "CompanyId": CORP,
                "UserGroupId": STAFF,
                "UserCustom1": format!("E{i:06}"),
                "Status": "Active",
            })
        })
        .collect();
    let doc = json!({
        "ApiKeys": [{"Email": "admin@corp.example", "ApiKeySecret": "bench"}],
        "Companies": [{"CompanyId": CORP, "CompanyName": "Corp"}],
        "UserGroups": [{"UserGroupId": STAFF, "Name": "Staff", "CompanyId": CORP}],
        "Users": users,
    });
    std::fs::write(path, serde_json::to_vec(&doc).unwrap()).unwrap();
}

struct Server {
    child: Child,
    base: String,
    started_in: Duration,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_carbonite-sync"))
            .args([
                "emulator",
                "--listen",
                "127.0.0.1:0",
                "--rate-limits",
                "none",
            ])
            .args(args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected: {line}"))
            .to_string();
        Server {
            child,
            base,
            started_in: started.elapsed(),
        }
    }

    /// (VmRSS, VmHWM) in MiB.
    fn memory(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(f64::NAN, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}

async fn token(http: &reqwest::Client, base: &str) -> String {
    let v: Value = http
        .post(format!("{base}/api/tokens/apikey"))
        .json(&json!({"Email": "admin@corp.example", "ApiKeySecret": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// Run `clients` loops of `call` for `secs`; returns (requests/s, failures).
async fn drive<F, Fut>(clients: usize, secs: u64, call: F) -> (f64, u64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (call, done, failed, next) =
                (call.clone(), done.clone(), failed.clone(), next.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if call(n).await {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    (
        done.load(Ordering::Relaxed) as f64 / elapsed,
        failed.load(Ordering::Relaxed),
    )
}

async fn list_pages(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    clients: usize,
    secs: u64,
    pages: u64,
) -> (f64, u64) {
    let (http, base, token) = (http.clone(), base.to_string(), token.to_string());
    drive(clients, secs, move |n| {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        async move {
            let page = n % pages + 1;
            match http
                .get(format!("{base}/api/users?pageNumber={page}&pageSize=500"))
                .bearer_auth(&token)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            }
        }
    })
    .await
}

async fn creates(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    clients: usize,
    secs: u64,
    tag: &str,
) -> (f64, u64) {
    let (http, base, token, tag) = (
        http.clone(),
        base.to_string(),
        token.to_string(),
        tag.to_string(),
    );
    drive(clients, secs, move |n| {
        let (http, base, token, tag) = (http.clone(), base.clone(), token.clone(), tag.clone());
        async move {
            let body = json!({
                "User": {"Email": format!("new{n}.{tag}@corp.example"), "FirstName": "New",
                         "CompanyId": CORP, "UserGroupId": STAFF, "UserCustom1": format!("N{n}")},
                "AuditMessage": "bench"
            });
            matches!(
                http.post(format!("{base}/api/users")).bearer_auth(&token).json(&body).send().await,
                Ok(r) if r.status().as_u16() == 201
            )
        }
    })
    .await
}

fn main() {
    let secs = env_num("EMULATOR_BENCH_SECS", 5);
    let accounts = env_num("EMULATOR_BENCH_ACCOUNTS", 100_000);
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.json");
    write_seed(&seed, accounts);
    let seed_mib = std::fs::metadata(&seed).unwrap().len() as f64 / 1048576.0;
    let pages = accounts.div_ceil(500).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "emulator bench: {accounts} accounts (seed {seed_mib:.1} MiB), {secs}s per phase, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let empty = Server::start(&[]);
    let (rss, _) = empty.memory();
    println!("RSS, empty tenant:                         {rss:7.1} MiB");
    empty.stop();

    let server = Server::start(&["--seed", seed.to_str().unwrap()]);
    let (rss, hwm) = server.memory();
    println!(
        "start with seed:                           {:7.2} s",
        server.started_in.as_secs_f64()
    );
    println!("RSS after loading {accounts} accounts:        {rss:7.1} MiB (peak {hwm:.1} MiB)");
    let base = server.base.clone();
    rt.block_on(async {
        let http = client();
        let token = token(&http, &base).await;
        // One full listing, then memory again (response buffers included).
        let full = Instant::now();
        let mut seen = 0;
        for page in 1..=pages {
            let v: Value = http
                .get(format!("{base}/api/users?pageNumber={page}&pageSize=500"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            seen += v["Users"].as_array().map_or(0, Vec::len);
        }
        assert_eq!(seen as u64, accounts);
        println!("full listing ({pages} pages of 500):          {:7.2} s", full.elapsed().as_secs_f64());
        let (rss, hwm) = server.memory();
        println!("RSS after a full listing:                  {rss:7.1} MiB (peak {hwm:.1} MiB)");

        for clients in [1, 4] {
            let (rps, failed) = list_pages(&http, &base, &token, clients, secs, pages).await;
            println!("list pages of 500, {clients} client(s):          {rps:7.0} req/s ({:.0} accounts/s, {failed} failed)", rps * 500.0);
        }
        for clients in [1, 8] {
            let (rps, failed) = creates(&http, &base, &token, clients, secs, &format!("c{clients}")).await;
            println!("creates, {clients} client(s), no state file:    {rps:7.0} req/s ({failed} failed)");
        }
        let v: Value = http
            .get(format!("{base}/api/users?pageSize=1"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (rss, hwm) = server.memory();
        println!("RSS at the end ({} accounts):          {rss:7.1} MiB (peak {hwm:.1} MiB)", v["TotalCount"]);
    });
    server.stop();

    // Write-through cost: every create is saved (temp file + fsync + rename) before its 201.
    for (label, n) in [("small tenant (100)", 100u64), ("large tenant", accounts)] {
        let seed_n = dir.path().join(format!("seed-{n}.json"));
        write_seed(&seed_n, n);
        let state = dir.path().join(format!("state-{n}.json"));
        let server = Server::start(&[
            "--seed",
            seed_n.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ]);
        let base = server.base.clone();
        rt.block_on(async {
            let http = client();
            let token = token(&http, &base).await;
            for clients in [1, 8] {
                let (rps, failed) = creates(&http, &base, &token, clients, secs, &format!("s{clients}")).await;
                println!("creates, {clients} client(s), state file, {label:>18} ({n}): {rps:7.0} req/s ({failed} failed)");
            }
        });
        server.stop();
    }
}
