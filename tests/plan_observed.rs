//! `plan --observed live|cache|auto` and `plan --out F` over the quickstart (SPEC §6.2, §7).
//! The config is copied to a temp dir (no git, its own state dir); the Carbonite side is the
//! emulator as a separate process, so its `/_emulator/stats` can show that a cache-based plan
//! makes no call at all.

use std::io::{BufRead as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_carbonite-sync");
const CANARY: &str = "canary-secret-5f0d1e7a";
const EMAIL: &str = "ops@corp.example";

/// An emulator process, killed on drop.
struct Emulator {
    child: Child,
    base: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    /// With `orphan`, the tenant also has a managed account whose user is not in the directory.
    fn start(dir: &Path, orphan: bool) -> Emulator {
        let quick = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
        let mut seed: Value =
            serde_json::from_slice(&std::fs::read(quick.join("carbonite-seed.json")).unwrap())
                .unwrap();
        seed["ApiKeys"] = serde_json::json!([{"Email": EMAIL, "ApiKeySecret": CANARY}]);
        if orphan {
            let mut user = seed["Users"][0].clone();
            user["UserId"] = "b1c2d3e4-0000-4000-8000-0000000000ff".into();
            user["Email"] = "gone@corp.example".into();
            user["UserCustom1"] = "E9999".into();
            seed["Users"].as_array_mut().unwrap().push(user);
        }
        let seed_path = dir.join("seed.json");
        std::fs::write(&seed_path, seed.to_string()).unwrap();
        let mut child = Command::new(BIN)
            .args(["emulator", "--listen", "127.0.0.1:0", "--seed"])
            .arg(&seed_path)
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
        Emulator { child, base }
    }

    /// Requests the emulator has served (admin calls not counted).
    fn requests(&self) -> u64 {
        let addr = self.base.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET /_emulator/stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let body = text.split_once("\r\n\r\n").unwrap().1;
        let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        v["requests"].as_u64().unwrap()
    }
}

/// The quickstart in a temp dir, pointed at `base` with an API key from `$CANARY_SECRET`.
fn config(dir: &Path, base: &str, extra: &str) -> PathBuf {
    let quick = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let cfg = dir.join("cfg");
    std::fs::create_dir_all(&cfg).unwrap();
    for f in ["employees.yaml", "users.ldif"] {
        std::fs::copy(quick.join(f), cfg.join(f)).unwrap();
    }
    let integration = std::fs::read_to_string(quick.join("integration.yaml")).unwrap();
    let integration = integration.replace(
        "    emulator: { seed: carbonite-seed.json }",
        &format!(
            "    baseUrl: {base}\n    auth: {{ apiKey: {{ email: {EMAIL}, secret: {{ env: CANARY_SECRET }} }} }}\n{extra}"
        ),
    );
    std::fs::write(cfg.join("integration.yaml"), integration).unwrap();
    cfg
}

fn plan(cfg: &Path, state: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("-C")
        .arg(cfg)
        .arg("--state-dir")
        .arg(state)
        .arg("plan")
        .args(args)
        .env("NO_COLOR", "1")
        .env("CANARY_SECRET", CANARY)
        .env_remove("CARBONITE_SYNC_STATE_DIR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_cache_plan_matches_the_live_one_and_makes_no_call() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(dir.path(), false);
    let cfg = config(dir.path(), &emu.base, "");
    let state = dir.path().join("state");

    let (code, live, err) = plan(&cfg, &state, &["--format", "json", "--observed", "live"]);
    assert_eq!(code, 0, "{err}");
    let live: Value = serde_json::from_str(&live).unwrap();
    assert_eq!(live["observed"]["source"], "live");
    let cache_file = state.join("observed-cache.json");
    let cache_text = std::fs::read_to_string(&cache_file).unwrap();
    assert!(!cache_text.contains(CANARY));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&cache_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let before = emu.requests();
    assert!(before > 0);
    let (code, cached, err) = plan(&cfg, &state, &["--format", "json", "--observed", "cache"]);
    assert_eq!(code, 0, "{err}");
    let cached: Value = serde_json::from_str(&cached).unwrap();
    assert_eq!(cached["observed"]["source"], "cache");
    assert!(cached["observed"]["cache_age"].is_string(), "{cached}");
    assert!(live["observed"].get("cache_age").is_none());
    assert_eq!(
        cached["observed"]["listed_at"],
        live["observed"]["listed_at"]
    );
    assert_eq!(cached["changes"], live["changes"]);
    assert_eq!(
        cached["observed"]["fingerprint"],
        live["observed"]["fingerprint"]
    );
    assert_eq!(emu.requests(), before, "a cache plan made Carbonite calls");

    // Every format says so.
    let (_, text, _) = plan(&cfg, &state, &["--observed", "cache"]);
    assert!(text.contains("from the cache"), "{text}");
    let (_, md, _) = plan(
        &cfg,
        &state,
        &["--observed", "cache", "--format", "markdown"],
    );
    assert!(md.contains("cache"), "{md}");
    assert_eq!(emu.requests(), before);

    // Another tenant's cache is never used.
    let other = config(&dir.path().join("other"), "http://127.0.0.1:9", "");
    let (code, _, err) = plan(&other, &state, &["--observed", "cache"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another tenant"), "{err}");
}

#[test]
fn cache_without_a_cache_exits_1_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens there: the cache mode must not even try.
    let cfg = config(dir.path(), "http://127.0.0.1:9", "");
    let (code, _, err) = plan(&cfg, &dir.path().join("state"), &["--observed", "cache"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no observed-state cache"), "{err}");
    assert!(err.contains("--observed live"), "{err}");
}

#[test]
fn live_without_budget_exits_5_and_auto_falls_back_to_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(dir.path(), false);
    let cfg = config(
        dir.path(),
        &emu.base,
        "    rateLimits: { perRoute: 2/1h }\n",
    );
    let state = dir.path().join("state");
    let (code, _, err) = plan(&cfg, &state, &["--observed", "live"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = plan(&cfg, &state, &["--observed", "live"]);
    assert_eq!(code, 0, "{err}");
    let before = emu.requests();
    let (code, _, err) = plan(&cfg, &state, &["--observed", "live"]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("listing needs 1 calls, 0 left, next budget at "),
        "{err}"
    );
    assert_eq!(emu.requests(), before);

    let (code, out, err) = plan(&cfg, &state, &["--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["observed"]["source"], "cache");
}

#[test]
fn out_writes_a_private_json_plan_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(dir.path(), false);
    let cfg = config(dir.path(), &emu.base, "");
    let state = dir.path().join("state");
    let file = dir.path().join("plan.json");
    let (code, stdout, err) = plan(&cfg, &state, &["--out", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.starts_with("Plan") || stdout.contains("Plan:"),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(CANARY));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["format_version"], "1");
    assert!(v["plan_digest"].as_str().unwrap().starts_with("sha256:"));
    let ops = v["operations"].as_array().unwrap();
    assert_eq!(ops.len(), v["changes"].as_array().unwrap().len());
    let create = ops.iter().find(|o| o["action"] == "create").unwrap();
    assert_eq!(create["desired"]["UserCustom1"], create["key"]);
    assert!(create["desired"]["Email"].is_string());
    assert!(v["orchestrations"].as_object().unwrap().is_empty());

    // The schema accepts it.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/saved-plan.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");

    // minSourceEntries refuses the run: no file.
    let integration = std::fs::read_to_string(cfg.join("integration.yaml")).unwrap();
    let refused = integration.replace(
        "    orphans: suspend",
        "    orphans: suspend\n    minSourceEntries: 1000",
    );
    assert_ne!(refused, integration);
    std::fs::write(cfg.join("integration.yaml"), refused).unwrap();
    let file2 = dir.path().join("refused.json");
    let (code, _, err) = plan(&cfg, &state, &["--out", file2.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert!(!file2.exists());
}

#[test]
fn out_with_held_back_destructive_changes_writes_the_rest_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(dir.path(), true);
    let cfg = config(dir.path(), &emu.base, "");
    let file = dir.path().join("plan.json");
    let (code, _, err) = plan(
        &cfg,
        &dir.path().join("state"),
        &["--format", "json", "--out", file.to_str().unwrap()],
    );
    assert_eq!(code, 3, "{err}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let actions: Vec<&str> = v["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["action"].as_str().unwrap())
        .collect();
    assert!(!actions.is_empty());
    assert!(!actions.contains(&"suspend"), "{actions:?}");
}

#[test]
fn the_in_process_emulator_quickstart_plans_from_its_cache() {
    let state = tempfile::tempdir().unwrap();
    let quick = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let (code, live, err) = plan(&quick, state.path(), &["--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let ledger = std::fs::read(state.path().join("ledger.json")).unwrap();
    let (code, cached, err) = plan(
        &quick,
        state.path(),
        &["--format", "json", "--observed", "cache"],
    );
    assert_eq!(code, 0, "{err}");
    let (live, cached): (Value, Value) = (
        serde_json::from_str(&live).unwrap(),
        serde_json::from_str(&cached).unwrap(),
    );
    assert_eq!(cached["observed"]["source"], "cache");
    assert_eq!(live["changes"], cached["changes"]);
    // Every call takes a ledger slot: an unchanged ledger means no call.
    assert_eq!(
        std::fs::read(state.path().join("ledger.json")).unwrap(),
        ledger
    );
}
