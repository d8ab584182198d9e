//! Test harness for the emulator: start it in-process on 127.0.0.1:0 and talk to it with a
//! real HTTP client.

use std::path::{Path, PathBuf};
use std::time::Duration;

use carbonite_sync::emulator::{EmulatorOptions, RunningEmulator, start};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const CORP: &str = "0f8b6c1e-0000-4000-8000-000000000001";
pub const LAB: &str = "0f8b6c1e-0000-4000-8000-000000000002";
pub const STAFF: &str = "5a1d2e3f-0000-4000-8000-000000000001";
pub const SALES: &str = "5a1d2e3f-0000-4000-8000-000000000002";
pub const LAB_GROUP: &str = "5a1d2e3f-0000-4000-8000-000000000003";
pub const ADMIN_EMAIL: &str = "admin@corp.example";
pub const ADMIN_SECRET: &str = "s3cret-api-key";

/// Users in the seed: `user1@corp.example` .. `user<n>@corp.example`.
pub fn seed_doc(users: usize) -> Value {
    let users: Vec<Value> = (1..=users)
        .map(|i| {
            json!({
                "UserId": format!("00000000-0000-4000-8000-{i:012}"),
                "Email": format!("user{i}@corp.example"),
                "FirstName": format!("First{i}"),
                "LastName": format!("Last{i}"),
                "CompanyId": CORP,
                "UserGroupId": STAFF,
                "UserCustom1": format!("E{i}"),
            })
        })
        .collect();
    json!({
        "ApiKeys": [{"Email": ADMIN_EMAIL, "ApiKeySecret": ADMIN_SECRET}],
        "Companies": [
            {"CompanyId": CORP, "CompanyName": "Corp"},
            {"CompanyId": LAB, "CompanyName": "Lab"}
        ],
        "UserGroups": [
            {"UserGroupId": STAFF, "Name": "Staff", "CompanyId": CORP},
            {"UserGroupId": SALES, "Name": "Sales", "CompanyId": CORP},
            {"UserGroupId": LAB_GROUP, "Name": "Lab", "CompanyId": LAB}
        ],
        "Users": users,
    })
}

/// Write a seed document into `dir`.
pub fn write_seed(dir: &Path, doc: &Value) -> PathBuf {
    let path = dir.join("seed.json");
    std::fs::write(&path, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    path
}

/// A plain-HTTP client (a TLS provider is installed only because reqwest insists on one).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .retry(reqwest::retry::never())
        .no_proxy()
        .build()
        .unwrap()
}

/// A running emulator, its seed dir, and a client.
pub struct Emu {
    pub running: RunningEmulator,
    pub http: reqwest::Client,
    pub base: String,
    /// Keeps the seed file alive while the emulator runs.
    #[allow(dead_code, reason = "held for its Drop only")]
    pub dir: tempfile::TempDir,
}

/// Options with a seed of `users` accounts and no rate limits.
pub fn options(users: usize) -> (EmulatorOptions, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let seed = write_seed(dir.path(), &seed_doc(users));
    let opts = EmulatorOptions {
        seed_file: Some(seed),
        limits: None,
        ..EmulatorOptions::default()
    };
    (opts, dir)
}

impl Emu {
    pub async fn start(opts: EmulatorOptions, dir: tempfile::TempDir) -> Emu {
        let running = start(opts).await.unwrap();
        let base = running.base_url();
        Emu {
            running,
            http: client(),
            base,
            dir,
        }
    }

    /// Seeded with `users` accounts, no rate limits, no faults.
    pub async fn seeded(users: usize) -> Emu {
        let (opts, dir) = options(users);
        Emu::start(opts, dir).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A token for the seed's API key.
    pub async fn token(&self) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/tokens/apikey",
                None,
                Some(json!({"Email": ADMIN_EMAIL, "ApiKeySecret": ADMIN_SECRET})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// One JSON call; returns status and body (`Null` when empty, a string when not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        read(resp).await
    }

    /// A call with a raw body and content type.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path)).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        read(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn admin_users(&self) -> Vec<Value> {
        let (status, body) = self.call(Method::GET, "/_emulator/users", None, None).await;
        assert_eq!(status, StatusCode::OK);
        body["Users"].as_array().unwrap().clone()
    }

    pub async fn stats(&self) -> Value {
        let (status, body) = self.call(Method::GET, "/_emulator/stats", None, None).await;
        assert_eq!(status, StatusCode::OK);
        body
    }
}

pub async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// A new user body for `POST /api/users`.
pub fn new_user(email: &str) -> Value {
    json!({
        "User": {"Email": email, "FirstName": "Ann", "CompanyId": CORP, "UserGroupId": STAFF},
        "AuditMessage": "test"
    })
}

/// The field names of a 400's `Errors`, sorted.
pub fn error_fields(body: &Value) -> Vec<String> {
    let mut v: Vec<String> = body["Errors"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    v.sort();
    v
}
