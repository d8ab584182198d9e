//! `plan` end to end against real servers: a throwaway slapd with 1,000 AD-style users and
//! the Carbonite emulator (in-process, over real HTTP) seeded with accounts in every state.
//! The JSON counts must be exactly what the seed implies.

mod support;

use std::process::Command;

use support::data::{GIVEN_NAMES, SURNAMES, UAC};
use support::slapd::{self, Slapd};

const COMPANY: &str = "0f8b6c1e-4d2a-4c3b-9e5f-1a2b3c4d5e6f";
const GROUP: &str = "5a1d2e3f-0000-4000-8000-000000000001";

fn given(i: usize) -> &'static str {
    GIVEN_NAMES[(i / 3) % GIVEN_NAMES.len()]
}

fn account(i: usize, key: Option<&str>, email: &str, first: &str) -> serde_json::Value {
    let disabled = UAC[(i / 2) % UAC.len()] & 2 != 0;
    serde_json::json!({
        "UserId": format!("00000000-0000-4000-8000-{i:012}"),
        "Email": email,
        "FirstName": first,
        "LastName": SURNAMES[i % SURNAMES.len()],
        "CompanyId": COMPANY,
        "UserGroupId": GROUP,
        "UserCustom1": key,
        "Status": if disabled { "Suspended" } else { "Active" },
    })
}

#[test]
fn plan_against_slapd_and_the_emulator_counts_exactly_what_was_seeded() {
    let n = 1000;
    let server = Slapd::start(&support::data::users(0..n, slapd::STAFF));
    let has_key = |i: usize| !i.is_multiple_of(13);
    let key = |i: usize| format!("E{:05}", i * 7 % 100_000);

    let mut users = Vec::new();
    let (mut unchanged, mut updates, mut adopts) = (0, 0, 0);
    for i in (1..=450).filter(|i| has_key(*i)) {
        let email = format!("user{i}@corp.example");
        if i <= 300 {
            users.push(account(i, Some(&key(i)), &email, given(i)));
            unchanged += 1;
        } else if i <= 400 {
            users.push(account(i, Some(&key(i)), &email, "Old"));
            updates += 1;
        } else {
            users.push(account(i, None, &email.to_uppercase(), given(i)));
            adopts += 1;
        }
    }
    let in_scope = (0..n).filter(|i| has_key(*i)).count();
    let creates = in_scope - unchanged - updates - adopts;

    let cfg = tempfile::tempdir().unwrap();
    let seed = serde_json::json!({
        "Companies": [{"CompanyId": COMPANY, "CompanyName": "Corp"}],
        "UserGroups": [{"UserGroupId": GROUP, "Name": "Staff", "CompanyId": COMPANY}],
        "Users": users,
    });
    std::fs::write(
        cfg.path().join("seed.json"),
        serde_json::to_vec(&seed).unwrap(),
    )
    .unwrap();
    std::fs::write(
        cfg.path().join("integration.yaml"),
        format!(
            r#"apiVersion: carbonite-sync/v1
kind: Integration
metadata: {{ name: lab }}
spec:
  directory:
    flavor: active-directory
    ldap:
      url: {url}
      bindDn: "{bind}"
      password: {{ env: PLAN_SLAPD_BIND_PW }}
      baseDn: "{suffix}"
  carbonite:
    emulator: {{ seed: seed.json }}
---
apiVersion: carbonite-sync/v1
kind: Mapping
metadata: {{ name: staff }}
spec:
  source: {{ baseDn: "{staff}", filter: "(&(objectClass=user)(employeeID=*))" }}
  primaryKey: {{ ldap: employeeID, carbonite: UserCustom1 }}
  correlate: [ {{ ldap: mail, carbonite: Email, compare: caseInsensitive }} ]
  attributes:
    Email: {{ value: "{{{{ mail | lower }}}}", compare: caseInsensitive }}
    FirstName: "{{{{ givenName }}}}"
    LastName: "{{{{ sn }}}}"
    CompanyId: {{ value: "{{{{ lookup('companies', 'Corp') }}}}", createOnly: true }}
    UserGroupId: "{{{{ lookup('userGroups', 'Staff') }}}}"
    Status: "{{{{ 'Suspended' if disabled else 'Active' }}}}"
"#,
            url = server.url(),
            bind = slapd::SVC_DN,
            suffix = slapd::SUFFIX,
            staff = slapd::STAFF,
        ),
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_carbonite-sync"))
        .arg("-C")
        .arg(cfg.path())
        .arg("--state-dir")
        .arg(state.path())
        .args(["plan", "--format", "json"])
        .env("PLAN_SLAPD_BIND_PW", slapd::SVC_PW)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(slapd::SVC_PW),
        "the bind password never reaches the plan"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["summary"];
    assert_eq!(s["create"].as_u64(), Some(creates as u64), "{s}");
    assert_eq!(s["update"].as_u64(), Some(updates as u64), "{s}");
    assert_eq!(s["adopt"].as_u64(), Some(adopts as u64), "{s}");
    assert_eq!(s["unchanged"].as_u64(), Some(unchanged as u64), "{s}");
    assert_eq!(s["conflict"].as_u64(), Some(0), "{s}");
    assert_eq!(s["suspend"].as_u64(), Some(0), "{s}");
    for c in v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "update")
    {
        let names: Vec<&str> = c["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["FirstName"], "{c}");
    }
}
