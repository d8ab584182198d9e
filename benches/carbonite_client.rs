//! Carbonite client benchmark against the emulator (in-process, rate limits off), printing:
//!
//! - the calls needed to list N accounts (default 10,000) with the built-in `carbonite-users`
//!   (pages of 500 + the token) and the time that listing takes, client vs raw reqwest;
//! - the client's overhead per call (ledger reservation + completion, token cache, semaphore,
//!   redaction, classification) on small `getUser` calls, against raw reqwest doing the same;
//! - the ledger alone: one reserve + complete.
//!
//! Run: `cargo bench --bench carbonite_client` (`CLIENT_BENCH_ACCOUNTS=N`, default 10000;
//! `CLIENT_BENCH_CALLS=N` small calls per side, default 300). Client and server share the
//! machine's cores; the state dir is a temp dir (so fsync cost is the temp file system's).
#![allow(clippy::print_stdout, reason = "a bench prints its figures")]

use std::time::{Duration, Instant};

use carbonite_sync::carbonite::{CarboniteClient, ClientOptions, Ledger};
use carbonite_sync::config::model::RateLimits;
use carbonite_sync::emulator::{EmulatorOptions, start};
use serde_json::{Value, json};

const CORP: &str = "0f8b6c1e-0000-4000-8000-000000000001";
const STAFF: &str = "5a1d2e3f-0000-4000-8000-000000000001";

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn uid(i: u64) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

fn seed(accounts: u64) -> Value {
    let users: Vec<Value> = (1..=accounts)
        .map(|i| {
            json!({"UserId": uid(i), "Email": format!("user{i}@corp.example"),
                   "FirstName": format!("First{i}"), "LastName": format!("Last{i}"),
                   "CompanyId": CORP, "UserGroupId": STAFF, "UserCustom1": format!("E{i:06}")})
        })
        .collect();
    json!({
        "ApiKeys": [{"Email": "admin@corp.example", "ApiKeySecret": "bench-secret"}],
        "Companies": [{"CompanyId": CORP, "CompanyName": "Corp"}],
        "UserGroups": [{"UserGroupId": STAFF, "Name": "Staff", "CompanyId": CORP}],
        "Users": users,
    })
}

fn config_dir(base: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "apiVersion: carbonite-sync/v1
kind: Integration
metadata: {{ name: bench }}
spec:
  directory:
    ldif: {{ path: users.ldif, baseDn: \"DC=corp,DC=example\" }}
  carbonite:
    baseUrl: {base}
    auth: {{ apiKey: {{ email: admin@corp.example, secret: {{ file: key.txt }} }} }}
    rateLimits: {{ perRoute: 1000000/1s, userCreates: 1000000/1s }}
    concurrency: 1
"
    );
    std::fs::write(dir.path().join("integration.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("key.txt"), "bench-secret").unwrap();
    dir
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn raw_token(http: &reqwest::Client, base: &str) -> String {
    let v: Value = http
        .post(format!("{base}/api/tokens/apikey"))
        .json(&json!({"Email": "admin@corp.example", "ApiKeySecret": "bench-secret"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// Token + every page, as simply as it can be done: (calls, items).
async fn raw_listing(http: &reqwest::Client, base: &str) -> (u64, usize) {
    let token = raw_token(http, base).await;
    let (mut calls, mut items) = (1, 0);
    for page in 1.. {
        let v: Value = http
            .get(format!("{base}/api/users?pageNumber={page}&pageSize=500"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        calls += 1;
        items += v["Users"].as_array().unwrap().len();
        if items as u64 >= v["TotalCount"].as_u64().unwrap() {
            break;
        }
    }
    (calls, items)
}

fn main() {
    let accounts = env_num("CLIENT_BENCH_ACCOUNTS", 10_000);
    let small_calls = env_num("CLIENT_BENCH_CALLS", 300);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let seed_dir = tempfile::tempdir().unwrap();
        let seed_path = seed_dir.path().join("seed.json");
        std::fs::write(&seed_path, seed(accounts).to_string()).unwrap();
        let emu = start(EmulatorOptions {
            seed_file: Some(seed_path),
            limits: None,
            ..EmulatorOptions::default()
        })
        .await
        .unwrap();
        let base = emu.base_url();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();

        println!("carbonite client benchmark: {accounts} accounts, emulator in-process, limits off");

        // Listing: client vs raw, 5 rounds each, alternating.
        let (mut client_times, mut raw_times) = (Vec::new(), Vec::new());
        let mut client_calls = 0;
        let mut raw_calls = 0;
        for _ in 0..5 {
            let dir = config_dir(&base);
            let cfg = carbonite_sync::config::load(dir.path()).unwrap();
            let client = CarboniteClient::connect(
                &cfg,
                &dir.path().join(".carbonite-sync"),
                ClientOptions::default(),
            )
            .await
            .unwrap();
            let t = Instant::now();
            let items = client.users().await.unwrap();
            client_times.push(t.elapsed());
            assert_eq!(items.len() as u64, accounts);
            client_calls = client.call_counts().0.values().sum::<u64>();

            let t = Instant::now();
            let (calls, n) = raw_listing(&http, &base).await;
            raw_times.push(t.elapsed());
            assert_eq!(n as u64, accounts);
            raw_calls = calls;
        }
        let (c, r) = (median(client_times), median(raw_times));
        println!(
            "list {accounts} accounts: {client_calls} calls (token + {} pages of 500); client {:.1} ms, raw reqwest {:.1} ms ({raw_calls} calls)",
            client_calls - 1,
            c.as_secs_f64() * 1e3,
            r.as_secs_f64() * 1e3,
        );
        println!(
            "  per call: client {:.2} ms, raw {:.2} ms, overhead {:.2} ms/call (page parsing into items included)",
            c.as_secs_f64() * 1e3 / client_calls as f64,
            r.as_secs_f64() * 1e3 / raw_calls as f64,
            (c.as_secs_f64() - r.as_secs_f64()) * 1e3 / client_calls as f64,
        );

        // Small calls: getUser through the client vs raw.
        let dir = config_dir(&base);
        let cfg = carbonite_sync::config::load(dir.path()).unwrap();
        let client = CarboniteClient::connect(
            &cfg,
            &dir.path().join(".carbonite-sync"),
            ClientOptions::default(),
        )
        .await
        .unwrap();
        client.check_token().await.unwrap();
        let token = raw_token(&http, &base).await;
        let (mut client_t, mut raw_t) = (Duration::ZERO, Duration::ZERO);
        for i in 0..small_calls {
            let id = uid(i % accounts.max(1) + 1);
            let t = Instant::now();
            client.get_user(&id).await.unwrap().unwrap();
            client_t += t.elapsed();
            let t = Instant::now();
            let resp = http
                .get(format!("{base}/api/users/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let _: Value = resp.json().await.unwrap();
            raw_t += t.elapsed();
        }
        let per = |d: Duration| d.as_secs_f64() * 1e6 / small_calls as f64;
        println!(
            "getUser x{small_calls}: client {:.0} µs/call, raw reqwest {:.0} µs/call, client overhead {:.0} µs/call",
            per(client_t),
            per(raw_t),
            per(client_t) - per(raw_t)
        );

        // The ledger alone.
        let ledger_dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(
            ledger_dir.path(),
            "bench k",
            RateLimits {
                per_route: "1000000/1h".parse().unwrap(),
                user_creates: "1000000/1h".parse().unwrap(),
            },
            Duration::from_secs(30),
        )
        .unwrap();
        let n = 500;
        let t = Instant::now();
        for _ in 0..n {
            let r = ledger.try_reserve("GET /api/users/{UserId}", false).unwrap();
            ledger.complete(&r).unwrap();
        }
        let ledger_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("ledger reserve (fsynced) + complete, {n} entries live: {ledger_us:.0} µs per call");
        println!(
            "client overhead per getUser without the ledger: {:.0} µs/call",
            per(client_t) - per(raw_t) - ledger_us
        );
        emu.shutdown().await.unwrap();
    });
}
