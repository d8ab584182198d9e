//! Shared by the apply suites: an emulator process with its admin routes, a generated LDIF
//! directory, a config pointing at the emulator with an API key from `$CANARY_SECRET`, and a
//! way to run the binary.
#![allow(dead_code)] // each suite uses a part

use std::io::{BufRead as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_carbonite-sync");
pub const CANARY: &str = "canary-secret-9c41be07";
pub const EMAIL: &str = "ops@corp.example";
pub const COMPANY: &str = "0f8b6c1e-4d2a-4c3b-9e5f-1a2b3c4d5e6f";

/// An emulator process, killed on drop.
pub struct Emulator {
    child: Child,
    pub base: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The quickstart's companies and user groups, our API key, and `users`.
pub fn seed(users: Vec<Value>) -> Value {
    let quick = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let mut seed: Value =
        serde_json::from_slice(&std::fs::read(quick.join("carbonite-seed.json")).unwrap()).unwrap();
    seed["ApiKeys"] = serde_json::json!([{"Email": EMAIL, "ApiKeySecret": CANARY}]);
    seed["Users"] = Value::Array(users);
    seed
}

impl Emulator {
    /// `carbonite-sync emulator --listen 127.0.0.1:0 --seed <seed> ARGS...`.
    pub fn start(dir: &Path, seed: &Value, args: &[&str]) -> Emulator {
        let seed_path = dir.join("seed.json");
        std::fs::write(&seed_path, seed.to_string()).unwrap();
        let mut child = Command::new(BIN)
            .args(["emulator", "--listen", "127.0.0.1:0", "--seed"])
            .arg(&seed_path)
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
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        // Keep draining stderr so the emulator never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = stderr.read_to_string(&mut sink);
        });
        Emulator { child, base }
    }

    /// An admin call (`/_emulator/...`): status and JSON body.
    pub fn admin(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let addr = self.base.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    pub fn stats(&self) -> Value {
        self.admin("GET", "/_emulator/stats", None).1
    }

    /// Every account.
    pub fn users(&self) -> Vec<Value> {
        let v = self.admin("GET", "/_emulator/users", None).1;
        v["Users"].as_array().cloned().unwrap_or_default()
    }

    /// Responses with `status` over all routes.
    pub fn count_status(&self, status: &str) -> u64 {
        let s = self.stats();
        s["routes"]
            .as_object()
            .map(|r| r.values().filter_map(|v| v[status].as_u64()).sum())
            .unwrap_or(0)
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

/// An LDIF directory of `n` staff users E{10000+i} (mail, names, department).
pub fn ldif(n: usize) -> String {
    let mut s = String::from(
        "version: 1\n\ndn: DC=corp,DC=example\nobjectClass: domain\ndc: corp\n\n\
         dn: OU=Staff,DC=corp,DC=example\nobjectClass: organizationalUnit\nou: Staff\n\n",
    );
    let departments = ["Sales", "Engineering", "Staff"];
    for i in 0..n {
        let k = 10_000 + i;
        s.push_str(&format!(
            "dn: CN=User {k},OU=Staff,DC=corp,DC=example\nobjectClass: top\nobjectClass: person\n\
             objectClass: organizationalPerson\nobjectClass: user\ncn: User {k}\ngivenName: Given{k}\n\
             sn: Family{k}\nmail: user{k}@corp.example\nemployeeID: E{k}\ndepartment: {}\n\
             userAccountControl: 512\n\n",
            departments[i % 3]
        ));
    }
    s
}

/// A config dir: the quickstart mapping, `users.ldif` of `n` users, the emulator at `base`
/// with `carbonite_extra` appended to the `carbonite:` block (indented 4 spaces).
pub fn config(dir: &Path, base: &str, n: usize, carbonite_extra: &str) -> PathBuf {
    let quick = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let cfg = dir.join("cfg");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::copy(quick.join("employees.yaml"), cfg.join("employees.yaml")).unwrap();
    std::fs::write(cfg.join("users.ldif"), ldif(n)).unwrap();
    let integration = std::fs::read_to_string(quick.join("integration.yaml")).unwrap();
    let integration = integration.replace(
        "    emulator: { seed: carbonite-seed.json }",
        &format!(
            "    baseUrl: {base}\n    auth: {{ apiKey: {{ email: {EMAIL}, secret: {{ env: CANARY_SECRET }} }} }}\n{carbonite_extra}"
        ),
    );
    std::fs::write(cfg.join("integration.yaml"), integration).unwrap();
    cfg
}

/// Run the binary with `-C cfg --state-dir state ARGS`: (exit code, stdout, stderr).
pub fn run(cfg: &Path, state: &Path, args: &[&str]) -> (i32, String, String) {
    let out = command(cfg, state, args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn command(cfg: &Path, state: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("-C")
        .arg(cfg)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .env("NO_COLOR", "1")
        .env("CANARY_SECRET", CANARY)
        .env_remove("CARBONITE_SYNC_STATE_DIR")
        .stdin(Stdio::null());
    c
}

/// Accounts per value of `field` that occurs more than once.
pub fn duplicates(users: &[Value], field: &str) -> Vec<String> {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for u in users {
        if let Some(v) = u[field].as_str().filter(|v| !v.is_empty()) {
            *seen.entry(v.to_ascii_lowercase()).or_default() += 1;
        }
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(v, _)| v)
        .collect()
}

/// Every journal intent has a result.
pub fn journal_complete(state: &Path) -> Result<usize, String> {
    let text = std::fs::read_to_string(state.join("journal.jsonl")).unwrap_or_default();
    let mut open = std::collections::BTreeSet::new();
    let mut intents = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
        let op = v["op"].as_str().unwrap_or_default().to_string();
        match v["type"].as_str() {
            Some("intent") => {
                intents += 1;
                open.insert(op);
            }
            Some("result") => {
                open.remove(&op);
            }
            _ => return Err(format!("unknown record {line}")),
        }
    }
    if open.is_empty() {
        Ok(intents)
    } else {
        Err(format!("{} intents without a result: {open:?}", open.len()))
    }
}
