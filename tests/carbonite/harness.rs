//! Shared by the carbonite_* suites: seeds, config dirs pointing at an emulator, stats.
#![allow(dead_code, reason = "each suite uses a different part of the harness")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use carbonite_sync::carbonite::{CarboniteClient, ClientOptions, RetryPolicy};
use carbonite_sync::emulator::{EmulatorOptions, RunningEmulator, start};
use serde_json::{Value, json};

pub const CORP: &str = "0f8b6c1e-0000-4000-8000-000000000001";
pub const LAB: &str = "0f8b6c1e-0000-4000-8000-000000000002";
pub const STAFF: &str = "5a1d2e3f-0000-4000-8000-000000000001";
pub const SALES: &str = "5a1d2e3f-0000-4000-8000-000000000002";
pub const LAB_GROUP: &str = "5a1d2e3f-0000-4000-8000-000000000003";
pub const ADMIN_EMAIL: &str = "admin@corp.example";
pub const ADMIN_SECRET: &str = "s3cret-api-key";

/// A seed with `users` accounts `user<i>@corp.example` (key `E<i>`), two companies, three groups.
pub fn seed_doc(users: usize, api_key: Option<&str>) -> Value {
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
    let mut doc = json!({
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
    });
    if let Some(secret) = api_key {
        doc["ApiKeys"] = json!([{"Email": ADMIN_EMAIL, "ApiKeySecret": secret}]);
    }
    doc
}

/// Start an emulator seeded with `users` accounts (API key `ADMIN_SECRET`), tuned by `tune`.
pub async fn emulator(
    users: usize,
    tune: impl FnOnce(&mut EmulatorOptions),
) -> (RunningEmulator, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(&seed, seed_doc(users, Some(ADMIN_SECRET)).to_string()).unwrap();
    let mut opts = EmulatorOptions {
        seed_file: Some(seed),
        limits: None,
        ..EmulatorOptions::default()
    };
    tune(&mut opts);
    (start(opts).await.unwrap(), dir)
}

/// Settings for [`config_dir`].
pub struct ConfigSpec<'a> {
    /// `baseUrl: ...`, `emulator: {...}`...: the target line(s) of `carbonite`.
    pub target: String,
    /// The `auth:` value, or `None` for no auth.
    pub auth: Option<String>,
    pub per_route: &'a str,
    pub user_creates: &'a str,
    /// More YAML documents (Endpoints...).
    pub extra: &'a str,
}

impl ConfigSpec<'_> {
    /// Pointing at `base` with the API key read from `api-key.txt`, generous limits.
    pub fn url(base: &str) -> ConfigSpec<'static> {
        ConfigSpec {
            target: format!("baseUrl: {base}"),
            auth: Some(format!(
                "{{ apiKey: {{ email: {ADMIN_EMAIL}, secret: {{ file: api-key.txt }} }} }}"
            )),
            per_route: "100000/1s",
            user_creates: "100000/1s",
            extra: "",
        }
    }
}

/// A config dir: an Integration (LDIF directory source) with `spec`'s Carbonite part, the
/// API key file, and `spec.extra`.
pub fn config_dir(spec: &ConfigSpec<'_>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let auth = spec
        .auth
        .as_ref()
        .map(|a| format!("    auth: {a}\n"))
        .unwrap_or_default();
    let yaml = format!(
        "apiVersion: carbonite-sync/v1
kind: Integration
metadata: {{ name: test }}
spec:
  directory:
    ldif: {{ path: users.ldif, baseDn: \"DC=corp,DC=example\" }}
  carbonite:
    {target}
{auth}    rateLimits: {{ perRoute: {per_route}, userCreates: {user_creates} }}
    timeout: 5s
{extra}",
        target = spec.target,
        per_route = spec.per_route,
        user_creates = spec.user_creates,
        extra = if spec.extra.is_empty() {
            String::new()
        } else {
            format!("---\n{}", spec.extra)
        },
    );
    std::fs::write(dir.path().join("integration.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("api-key.txt"), format!("{ADMIN_SECRET}\n")).unwrap();
    std::fs::write(
        dir.path().join("users.ldif"),
        "dn: CN=Ann,DC=corp,DC=example\nobjectClass: user\ncn: Ann\n",
    )
    .unwrap();
    dir
}

/// `carbonite-users` with page size `size`.
pub fn users_endpoint(size: u32) -> String {
    format!(
        "apiVersion: carbonite-sync/v1
kind: Endpoint
metadata: {{ name: carbonite-users }}
spec:
  method: GET
  path: /api/users
  pagination: {{ style: pageNumber, param: pageNumber, start: 1, sizeParam: pageSize, size: {size}, total: /TotalCount }}
  items: /Users
  id: /UserId
"
    )
}

/// Fast retries for tests (the policy's bounds, not its timing, are under test).
pub fn fast_options() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            ..RetryPolicy::default()
        },
        ..ClientOptions::default()
    }
}

/// Load the config in `dir` and connect, state in `<dir>/.carbonite-sync`.
pub async fn connect(dir: &Path, options: ClientOptions) -> CarboniteClient {
    let cfg = carbonite_sync::config::load(dir).unwrap_or_else(|e| {
        panic!(
            "{}",
            carbonite_sync::config::diag::render(&e.diagnostics, &e.sources, false)
        )
    });
    CarboniteClient::connect(&cfg, &state_dir(dir), options)
        .await
        .unwrap()
}

pub fn state_dir(dir: &Path) -> PathBuf {
    dir.join(".carbonite-sync")
}

/// `GET /_emulator/stats`.
pub async fn stats(base: &str) -> Value {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{base}/_emulator/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `stats.routes[route][status]`, 0 when absent.
pub fn count(stats: &Value, route: &str, status: &str) -> u64 {
    stats["routes"][route][status].as_u64().unwrap_or(0)
}

/// Every response of `route`, whatever its status.
pub fn total(stats: &Value, route: &str) -> u64 {
    stats["routes"][route]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}
