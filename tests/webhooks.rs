//! Outbound webhooks and orchestrations end to end (SPEC §2, §8): a local HTTP receiver gets
//! exactly the rendered requests after creates (json, form, xml; a value with quotes and
//! `<&>`), `changed:Email` fires only when Email changed, a false `when` skips, a json body that
//! does not parse fails its step without undoing the change, a `target: carbonite` webhook
//! spends from the Carbonite ledger, and `webhook test` shows the request with secrets redacted.
#![allow(clippy::print_stderr)]

#[path = "apply/harness.rs"]
mod harness;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use harness::*;
use serde_json::Value;

const HOOK_TOKEN: &str = "hook-token-4b1d99e2";
const FAST: &str = "    rateLimits: { perRoute: 1000/1h, userCreates: 1000/1h }\n";

/// A request as the receiver saw it.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 receiver answering 201 to everything.
struct Receiver {
    base: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let sink = sink.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut parts = line.split_whitespace();
                        let method = parts.next().unwrap_or_default().to_string();
                        let path = parts.next().unwrap_or_default().to_string();
                        let mut headers = Vec::new();
                        let mut length = 0usize;
                        loop {
                            let mut h = String::new();
                            r.read_line(&mut h).unwrap();
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            let (k, v) = h.split_once(':').unwrap();
                            if k.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap();
                            }
                            headers.push((k.to_string(), v.trim().to_string()));
                        }
                        let mut body = vec![0u8; length];
                        r.read_exact(&mut body).unwrap();
                        sink.lock().unwrap().push(Received {
                            method,
                            path,
                            headers,
                            body: String::from_utf8(body).unwrap(),
                        });
                        let answer = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"ok\": true}";
                        if stream.write_all(answer).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Receiver { base, got }
    }

    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

fn hooks_yaml(receiver: &str) -> String {
    format!(
        r#"apiVersion: carbonite-sync/v1
kind: Webhook
metadata: {{ name: ticket-json }}
spec:
  method: POST
  url: {receiver}/tickets
  headers: {{ X-Token: "{{{{ secret('HOOK_TOKEN') }}}}", X-Request: "create {{{{ user.employeeID }}}}" }}
  messageType: json
  body: |
    {{"title": "Account for {{{{ user.givenName }}}}", "mail": "{{{{ user.mail }}}}", "id": "{{{{ account.UserId }}}}"}}
  expectStatus: [201]
---
apiVersion: carbonite-sync/v1
kind: Webhook
metadata: {{ name: ticket-form }}
spec:
  method: POST
  url: {receiver}/form
  messageType: form
  body: "name={{{{ user.givenName }}}}&mail={{{{ user.mail }}}}"
---
apiVersion: carbonite-sync/v1
kind: Webhook
metadata: {{ name: ticket-xml }}
spec:
  method: POST
  url: {receiver}/xml
  messageType: xml
  body: "<user><name>{{{{ user.givenName }}}}</name><status>{{{{ account.Status }}}}</status></user>"
---
apiVersion: carbonite-sync/v1
kind: Webhook
metadata: {{ name: email-changed }}
spec:
  method: PUT
  url: "{receiver}/email/{{{{ user.employeeID }}}}"
  messageType: text
  body: "{{{{ user.mail }}}}"
---
apiVersion: carbonite-sync/v1
kind: Webhook
metadata: {{ name: never-hook }}
spec:
  url: {receiver}/never
  body: "{{}}"
---
apiVersion: carbonite-sync/v1
kind: Webhook
metadata: {{ name: broken-json }}
spec:
  url: {receiver}/broken
  messageType: json
  body: '{{"name": {{{{ user.givenName }}}}}}'
---
apiVersion: carbonite-sync/v1
kind: Webhook
metadata: {{ name: list-companies }}
spec:
  method: GET
  target: carbonite
  path: /api/companies
---
apiVersion: carbonite-sync/v1
kind: Orchestration
metadata: {{ name: sales-ticket }}
spec:
  on: [created]
  when: "user.department == 'Sales'"
  steps: [ {{ webhook: ticket-json }} ]
---
apiVersion: carbonite-sync/v1
kind: Orchestration
metadata: {{ name: special-create }}
spec:
  on: [created]
  when: "user.employeeID == 'E10000'"
  steps: [ {{ webhook: ticket-form }}, {{ webhook: ticket-xml }} ]
---
apiVersion: carbonite-sync/v1
kind: Orchestration
metadata: {{ name: on-email }}
spec:
  on: ["changed:Email"]
  steps: [ {{ webhook: email-changed }} ]
---
apiVersion: carbonite-sync/v1
kind: Orchestration
metadata: {{ name: nobody }}
spec:
  on: [created, updated]
  when: "user.department == 'Nowhere'"
  steps: [ {{ webhook: never-hook }} ]
---
apiVersion: carbonite-sync/v1
kind: Orchestration
metadata: {{ name: on-name }}
spec:
  on: ["changed:FirstName"]
  steps: [ {{ webhook: broken-json }} ]
---
apiVersion: carbonite-sync/v1
kind: Orchestration
metadata: {{ name: carbonite-call }}
spec:
  on: [created]
  when: "user.employeeID == 'E10001'"
  steps: [ {{ webhook: list-companies }} ]
"#
    )
}

fn setup(dir: &std::path::Path, receiver: &Receiver, emu: &Emulator) -> std::path::PathBuf {
    let cfg = config(dir, &emu.base, 6, FAST);
    let ldif = std::fs::read_to_string(cfg.join("users.ldif"))
        .unwrap()
        .replace("givenName: Given10000", "givenName: Ann \"Q\" <&>");
    std::fs::write(cfg.join("users.ldif"), ldif).unwrap();
    std::fs::write(cfg.join("hooks.yaml"), hooks_yaml(&receiver.base)).unwrap();
    cfg
}

fn run_hooks(
    cfg: &std::path::Path,
    state: &std::path::Path,
    args: &[&str],
) -> (i32, String, String) {
    let out = command(cfg, state, args)
        .env("HOOK_TOKEN", HOOK_TOKEN)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn route_count(emu: &Emulator, route: &str) -> u64 {
    emu.stats()["routes"][route]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

#[test]
fn orchestrations_send_exactly_the_rendered_requests() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let emu = Emulator::start(dir.path(), &seed(Vec::new()), &["--rate-limits", "none"]);
    let cfg = setup(dir.path(), &receiver, &emu);
    let state = dir.path().join("state");

    let (code, out, err) = run_hooks(&cfg, &state, &["validate"]);
    assert_eq!(code, 0, "{out}\n{err}");

    // The plan names the orchestrations each change triggers.
    let (code, out, err) = run_hooks(&cfg, &state, &["plan", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    let orch = |key: &str| -> Vec<String> {
        plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == key)
            .map(|c| serde_json::from_value(c["orchestrations"].clone()).unwrap())
            .unwrap()
    };
    assert_eq!(orch("E10000"), ["sales-ticket", "special-create"]);
    assert_eq!(orch("E10001"), ["carbonite-call"]);
    assert_eq!(orch("E10003"), ["sales-ticket"]);
    assert!(orch("E10002").is_empty());
    assert!(receiver.take().is_empty(), "plan sent something");

    let companies_before = route_count(&emu, "GET /api/companies");
    let (code, out, err) = run_hooks(&cfg, &state, &["apply", "--auto-approve"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("Orchestrations: 5 webhook call(s) made, 0 failed."),
        "{out}"
    );
    assert!(!out.contains(HOOK_TOKEN) && !err.contains(HOOK_TOKEN));
    let mut got = receiver.take();
    got.sort_by(|a, b| (&a.path, &a.body).cmp(&(&b.path, &b.body)));
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/form", "/tickets", "/tickets", "/xml"], "{got:#?}");

    let users = emu.users();
    let id_of = |key: &str| {
        users
            .iter()
            .find(|u| u["UserCustom1"] == key)
            .and_then(|u| u["UserId"].as_str())
            .unwrap()
            .to_string()
    };
    let form = &got[0];
    assert_eq!(form.method, "POST");
    assert_eq!(
        form.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        form.body,
        "name=Ann+%22Q%22+%3C%26%3E&mail=user10000%40corp.example"
    );
    let json_ann = got[1..3]
        .iter()
        .find(|r| r.body.contains("user10000"))
        .unwrap();
    assert_eq!(json_ann.header("content-type"), Some("application/json"));
    assert_eq!(json_ann.header("x-token"), Some(HOOK_TOKEN));
    assert_eq!(json_ann.header("x-request"), Some("create E10000"));
    assert_eq!(
        json_ann.body,
        format!(
            "{{\"title\": \"Account for Ann \\\"Q\\\" <&>\", \"mail\": \"user10000@corp.example\", \"id\": \"{}\"}}",
            id_of("E10000")
        )
    );
    let parsed: Value = serde_json::from_str(&json_ann.body).unwrap();
    assert_eq!(parsed["title"], "Account for Ann \"Q\" <&>");
    let xml = &got[3];
    assert_eq!(xml.header("content-type"), Some("application/xml"));
    assert_eq!(
        xml.body,
        "<user><name>Ann &quot;Q&quot; &lt;&amp;&gt;</name><status>Active</status></user>"
    );

    // The carbonite-target webhook went through the Carbonite client and its ledger: one
    // listing of the lookup tables plus the webhook's call.
    assert_eq!(
        route_count(&emu, "GET /api/companies"),
        companies_before + 2
    );
    let ledger: Value =
        serde_json::from_slice(&std::fs::read(state.join("ledger.json")).unwrap()).unwrap();
    // Calls still ahead of their `until` are entries; answered ones are `[time, count]` buckets.
    let tenant = ledger["tenants"]
        .as_object()
        .and_then(|t| t.values().next())
        .unwrap_or_else(|| panic!("no tenant in the ledger: {ledger}"));
    let route = "GET /api/companies";
    let entries = tenant["routes"][route].as_array().map_or(0, Vec::len)
        + tenant["settled"][route].as_array().map_or(0, |b| {
            b.iter().map(|b| b[1].as_u64().unwrap_or(0) as usize).sum()
        });
    assert!(entries > 0, "no {route} in the ledger: {ledger}");
    assert_eq!(
        entries as u64,
        route_count(&emu, "GET /api/companies"),
        "every companies call, the webhook's included, is in the ledger: {ledger}"
    );

    // Every step journaled with a result.
    journal_complete(&state).unwrap();
    let journal = std::fs::read_to_string(state.join("journal.jsonl")).unwrap();
    assert_eq!(
        journal
            .matches("\"step\":\"special-create/ticket-xml\"")
            .count(),
        1
    );
    assert!(!journal.contains(HOOK_TOKEN));

    // E10002's mail changes, E10004's first name changes: `changed:Email` fires once, for
    // E10002 only; the broken json body of `changed:FirstName` fails its step (exit 4) and
    // the account update stands; the false `when` never fires.
    let ldif = std::fs::read_to_string(cfg.join("users.ldif"))
        .unwrap()
        .replace(
            "mail: user10002@corp.example",
            "mail: new10002@corp.example",
        )
        .replace("givenName: Given10004", "givenName: Renamed");
    std::fs::write(cfg.join("users.ldif"), ldif).unwrap();
    let (code, out, err) = run_hooks(&cfg, &state, &["apply", "--auto-approve"]);
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(
        out.contains("Apply: 0 created, 0 adopted, 2 updated"),
        "{out}"
    );
    assert!(
        out.contains("on-name/broken-json") && out.contains("does not parse"),
        "{out}"
    );
    let got = receiver.take();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].method, "PUT");
    assert_eq!(got[0].path, "/email/E10002");
    assert_eq!(
        got[0].header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(got[0].body, "new10002@corp.example");
    let users = emu.users();
    let renamed = users.iter().find(|u| u["UserCustom1"] == "E10004").unwrap();
    assert_eq!(renamed["FirstName"], "Renamed");
    let (code, out, _) = run_hooks(&cfg, &state, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}");
    journal_complete(&state).unwrap();
}

#[test]
fn webhook_test_renders_with_secrets_redacted_and_sends() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let emu = Emulator::start(dir.path(), &seed(Vec::new()), &["--rate-limits", "none"]);
    let cfg = setup(dir.path(), &receiver, &emu);
    let state = dir.path().join("state");
    let (code, out, err) = run_hooks(
        &cfg,
        &state,
        &["webhook", "test", "ticket-json", "--user", "E10000"],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(receiver.take().is_empty(), "rendering sent something");
    assert!(!out.contains(HOOK_TOKEN));
    let shown = out.replace(&receiver.base, "http://receiver");
    insta::assert_snapshot!("webhook_test_render", shown);

    let (code, out, err) = run_hooks(
        &cfg,
        &state,
        &[
            "webhook",
            "test",
            "ticket-json",
            "--user",
            "E10000",
            "--send",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("HTTP 201"), "{out}");
    assert!(out.contains("{\"ok\": true}"), "{out}");
    let got = receiver.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("x-token"), Some(HOOK_TOKEN));

    // Unknown user, unknown webhook: clear errors.
    let (code, _, err) = run_hooks(
        &cfg,
        &state,
        &["webhook", "test", "ticket-json", "--user", "E99"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no in-scope directory entry has key `E99`"),
        "{err}"
    );
    let (code, _, err) = run_hooks(
        &cfg,
        &state,
        &["webhook", "test", "nope", "--user", "E10000"],
    );
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("webhooks: broken-json, email-changed"),
        "{err}"
    );
}

#[test]
fn a_saved_plan_carries_what_its_webhooks_need() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    let emu = Emulator::start(dir.path(), &seed(Vec::new()), &["--rate-limits", "none"]);
    let cfg = setup(dir.path(), &receiver, &emu);
    let state = dir.path().join("state");
    let plan_file = dir.path().join("plan.json");
    let plan_arg = plan_file.to_str().unwrap();
    let (code, _, err) = run_hooks(&cfg, &state, &["plan", "--out", plan_arg]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&plan_file).unwrap();
    assert!(!text.contains(HOOK_TOKEN));
    let saved: Value = serde_json::from_str(&text).unwrap();
    let op = saved["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"] == "E10000")
        .unwrap();
    assert_eq!(op["entry_attributes"]["givenName"][0], "Ann \"Q\" <&>");
    assert!(
        saved["orchestrations"]["special-create"]["steps"].is_array(),
        "{saved}"
    );
    // An operation that triggers nothing carries no attributes.
    let quiet = saved["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"] == "E10002")
        .unwrap();
    assert!(quiet["entry_attributes"].is_null(), "{quiet}");

    let (code, out, err) = run_hooks(&cfg, &state, &["apply", plan_arg]);
    assert_eq!(code, 0, "{out}\n{err}");
    let got = receiver.take();
    let form = got
        .iter()
        .find(|r| r.path == "/form")
        .expect("form webhook");
    assert_eq!(
        form.body,
        "name=Ann+%22Q%22+%3C%26%3E&mail=user10000%40corp.example"
    );
    assert_eq!(got.len(), 4, "{got:#?}");
}
