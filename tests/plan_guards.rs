//! Guards through the binary (SPEC §6.3, §6.8, §11): exit 3 when a guard holds back a suspend
//! or delete (creates and updates still planned), the whole run refused below
//! minSourceEntries, `--allow-destructive`, and `no_baseline`. LDIF source + in-process
//! emulator; baselines are written with the same function apply will use.

use std::path::Path;
use std::process::Command;

use carbonite_sync::state::StateFiles;

const COMPANY: &str = "0f8b6c1e-4d2a-4c3b-9e5f-1a2b3c4d5e6f";
const GROUP: &str = "5a1d2e3f-0000-4000-8000-000000000001";

/// A config dir: `entries` staff users E1..En in LDIF (E1's first name drifted in Carbonite),
/// `accounts` keyed accounts E1..Em in the emulator seed; orphans are suspended.
fn setup(entries: usize, accounts: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut ldif = String::from(
        "version: 1\n\ndn: OU=Staff,DC=corp,DC=example\nobjectClass: organizationalUnit\nou: Staff\n\n",
    );
    for i in 1..=entries {
        ldif.push_str(&format!(
            "dn: CN=User {i},OU=Staff,DC=corp,DC=example\nobjectClass: user\ncn: User {i}\ngivenName: Given{i}\nsn: Sur{i}\nmail: user{i}@corp.example\nemployeeID: E{i}\n\n"
        ));
    }
    std::fs::write(dir.path().join("users.ldif"), ldif).unwrap();
    let users: Vec<serde_json::Value> = (1..=accounts)
        .map(|i| {
            serde_json::json!({
                "UserId": format!("00000000-0000-4000-8000-{i:012}"),
                "Email": format!("user{i}@corp.example"),
                "FirstName": if i == 1 { "Drifted".to_string() } else { format!("Given{i}") },
                "LastName": format!("Sur{i}"),
                "CompanyId": COMPANY, "UserGroupId": GROUP, "UserCustom1": format!("E{i}"), "Status": "Active",
            })
        })
        .collect();
    let seed = serde_json::json!({
        "Companies": [{"CompanyId": COMPANY, "CompanyName": "Corp"}],
        "UserGroups": [{"UserGroupId": GROUP, "Name": "Staff", "CompanyId": COMPANY}],
        "Users": users,
    });
    std::fs::write(
        dir.path().join("seed.json"),
        serde_json::to_vec(&seed).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        r#"apiVersion: carbonite-sync/v1
kind: Integration
metadata: { name: guards }
spec:
  directory:
    ldif: { path: users.ldif, baseDn: "DC=corp,DC=example" }
  carbonite:
    emulator: { seed: seed.json }
  policy:
    orphans: suspend
    maxDestructive: { count: 25 }
---
apiVersion: carbonite-sync/v1
kind: Mapping
metadata: { name: staff }
spec:
  source: { baseDn: "OU=Staff,DC=corp,DC=example", filter: "(&(objectClass=user)(employeeID=*))" }
  primaryKey: { ldap: employeeID, carbonite: UserCustom1 }
  attributes:
    Email: "{{ mail }}"
    FirstName: "{{ givenName }}"
    LastName: "{{ sn }}"
    CompanyId: { value: "{{ lookup('companies', 'Corp') }}", createOnly: true }
    UserGroupId: "{{ lookup('userGroups', 'Staff') }}"
"#,
    )
    .unwrap();
    dir
}

fn baseline(dir: &Path, n: u64) {
    StateFiles::new(dir.join(".carbonite-sync"))
        .write_baseline(&[("staff".to_string(), n)].into(), "2026-12-01T00:00:00Z")
        .unwrap();
}

fn plan(dir: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_carbonite-sync"))
        .arg("-C")
        .arg(dir)
        .args(["plan", "--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), v)
}

fn guard<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["guards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap()
}

#[test]
fn forty_percent_shrink_refuses_suspends_but_keeps_updates() {
    let dir = setup(6, 10);
    baseline(dir.path(), 10);
    let (code, v) = plan(dir.path(), &[]);
    assert_eq!(code, 3);
    assert_eq!(v["summary"]["update"], 1, "{v}");
    assert_eq!(v["summary"]["suspend"], 0);
    assert_eq!(guard(&v, "maxSourceShrinkPercent")["status"], "refused");
}

#[test]
fn zero_entries_refuses_the_whole_run() {
    let dir = setup(0, 3);
    baseline(dir.path(), 3);
    let (code, v) = plan(dir.path(), &[]);
    assert_eq!(code, 3);
    assert_eq!(v["changes"].as_array().unwrap().len(), 0);
    assert_eq!(guard(&v, "minSourceEntries")["status"], "refused");
}

#[test]
fn thirty_suspends_need_allow_destructive_30() {
    let dir = setup(1, 31);
    baseline(dir.path(), 1);
    let (code, v) = plan(dir.path(), &[]);
    assert_eq!(code, 3);
    assert_eq!(v["summary"]["suspend"], 0);
    assert_eq!(guard(&v, "maxDestructive")["status"], "refused");
    let (code, _) = plan(dir.path(), &["--allow-destructive", "29"]);
    assert_eq!(code, 3, "29 does not cover 30");
    let (code, v) = plan(dir.path(), &["--allow-destructive", "30"]);
    assert_eq!(code, 0);
    assert_eq!(v["summary"]["suspend"], 30);
    assert_eq!(guard(&v, "maxDestructive")["status"], "overridden");
}

#[test]
fn no_baseline_is_reported_and_blocks_only_destructive_actions() {
    let dir = setup(2, 2);
    let (code, v) = plan(dir.path(), &[]);
    assert_eq!(
        code, 0,
        "nothing destructive planned: the exit code is unaffected"
    );
    assert_eq!(guard(&v, "maxSourceShrinkPercent")["status"], "no_baseline");
    assert_eq!(v["summary"]["update"], 1);
}
