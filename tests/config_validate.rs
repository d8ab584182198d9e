//! `validate` against a corpus of broken configs: every problem listed with file:line:column,
//! exit 1, nothing on stdout, no panic. The diagnostics users see are snapshotted.

use std::path::Path;
use std::process::Command;

const INTEGRATION: &str = r#"apiVersion: carbonite-sync/v1
kind: Integration
metadata: { name: corp }
spec:
  directory:
    flavor: active-directory
    ldap:
      url: ldaps://dc1.corp.example:636
      bindDn: CN=svc-carbonite,OU=Service,DC=corp,DC=example
      password: { env: LDAP_BIND_PASSWORD }
      baseDn: DC=corp,DC=example
  carbonite:
    region: us
    auth:
      apiKey: { email: admin@corp.example, secret: { env: CARBONITE_API_KEY_SECRET } }
  policy:
    orphans: suspend
    maxDestructive: { count: 25, percent: 5 }
"#;

const MAPPING: &str = r#"apiVersion: carbonite-sync/v1
kind: Mapping
metadata: { name: employees }
spec:
  source:
    baseDn: OU=Staff,DC=corp,DC=example
    filter: (&(objectClass=user)(employeeID=*))
  primaryKey: { ldap: employeeID, carbonite: UserCustom1 }
  attributes:
    Email: { value: "{{ mail | lower }}", compare: caseInsensitive }
    FirstName: "{{ givenName }}"
    LastName: "{{ sn }}"
"#;

const WEBHOOKS: &str = r#"apiVersion: carbonite-sync/v1
kind: Webhook
metadata: { name: notify }
spec:
  url: https://helpdesk.corp.example/api/tickets
  headers: { Authorization: "Bearer {{ secret('HELPDESK_TOKEN') }}" }
  body: '{"title": "{{ user.mail }}"}'
---
apiVersion: carbonite-sync/v1
kind: Orchestration
metadata: { name: on-create }
spec:
  on: [created]
  steps: [ { webhook: notify } ]
"#;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_validate(dir: &Path) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_carbonite-sync"))
        .arg("-C")
        .arg(dir)
        .arg("validate")
        .env("NO_COLOR", "1")
        .env_remove("CARBONITE_SYNC_CONFIG")
        .output()
        .expect("run carbonite-sync");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Write the base config with `files` replacing or adding files, validate it, and check the
/// contract for a broken config. Returns stderr with the temp path normalised.
fn broken(files: &[(&str, &[u8])]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut all: Vec<(&str, &[u8])> = vec![
        ("integration.yaml", INTEGRATION.as_bytes()),
        ("mappings/employees.yaml", MAPPING.as_bytes()),
        ("hooks.yaml", WEBHOOKS.as_bytes()),
    ];
    for (name, text) in files {
        all.retain(|(n, _)| n != name);
        all.push((name, text));
    }
    for (name, text) in all {
        if text.is_empty() {
            continue; // an empty replacement deletes the file
        }
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let r = run_validate(dir.path());
    assert_eq!(r.code, 1, "exit code; stderr:\n{}", r.stderr);
    assert_eq!(r.stdout, "", "nothing on stdout");
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    r.stderr.replace(&dir.path().display().to_string(), "[DIR]")
}

/// Every `error:` line names file:line:column (except whole-config problems, listed here).
fn assert_located(stderr: &str, expected: usize) {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), expected, "number of problems:\n{stderr}");
    for e in errors {
        let rest = e.trim_start_matches("error: ");
        let pos = rest.split(": ").next().unwrap();
        let parts: Vec<&str> = pos.rsplitn(3, ':').collect();
        assert!(
            parts.len() == 3 && parts[0].parse::<u32>().is_ok() && parts[1].parse::<u32>().is_ok(),
            "not located: {e}"
        );
    }
}

#[test]
fn the_base_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("integration.yaml"), INTEGRATION).unwrap();
    std::fs::create_dir(dir.path().join("mappings")).unwrap();
    std::fs::write(dir.path().join("mappings/employees.yaml"), MAPPING).unwrap();
    std::fs::write(dir.path().join("hooks.yaml"), WEBHOOKS).unwrap();
    let r = run_validate(dir.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("Config OK"), "{}", r.stdout);
}

#[test]
fn unknown_keys_at_several_depths_all_reported() {
    let m = MAPPING
        .replace("  source:", "  sourc: {}\n  source:")
        .replace(
            "    filter:",
            "    scope: subtree\n    filtr: x\n    filter:",
        )
        .replace(
            "compare: caseInsensitive",
            "compare: caseInsensitive, createOnlyy: true",
        );
    let i = INTEGRATION.replace("kind: Integration\n", "kind: Integration\nextra: 1\n");
    let e = broken(&[
        ("mappings/employees.yaml", m.as_bytes()),
        ("integration.yaml", i.as_bytes()),
    ]);
    assert_located(&e, 4);
    insta::assert_snapshot!(e);
}

#[test]
fn wrong_types() {
    let i = INTEGRATION.replace("orphans: suspend", "orphans: [suspend]\n    create: maybe");
    let e = broken(&[("integration.yaml", i.as_bytes())]);
    assert_located(&e, 2);
    insta::assert_snapshot!(e);
}

#[test]
fn yaml_syntax_error() {
    let e = broken(&[(
        "mappings/employees.yaml",
        b"apiVersion: carbonite-sync/v1\nkind: Mapping\nmetadata: { name: x\nspec: {}\n",
    )]);
    assert_located(&e, 1);
    insta::assert_snapshot!(e);
}

#[test]
fn tab_indentation() {
    let m = MAPPING.replace("    filter:", "\tfilter:");
    let e = broken(&[("mappings/employees.yaml", m.as_bytes())]);
    assert_located(&e, 1);
    assert!(e.contains("tabs"), "{e}");
    insta::assert_snapshot!(e);
}

#[test]
fn envelope_errors_missing_kind_unknown_kind_wrong_api_version() {
    let text = "apiVersion: carbonite-sync/v1\nmetadata: { name: a }\nspec: {}\n---\napiVersion: carbonite-sync/v1\nkind: Mapings\nmetadata: { name: b }\nspec: {}\n---\napiVersion: carbonite.io/v2\nkind: Webhook\nmetadata: { name: c }\nspec: { url: https://x.example }\n";
    let e = broken(&[("more.yaml", text.as_bytes())]);
    assert_located(&e, 3);
    insta::assert_snapshot!(e);
}

#[test]
fn two_integrations_and_duplicate_names() {
    let extra = format!(
        "{}---\n{}",
        INTEGRATION.replace("name: corp", "name: other"),
        MAPPING
    );
    let e = broken(&[("extra.yaml", extra.as_bytes())]);
    assert_located(&e, 2);
    insta::assert_snapshot!(e);
}

#[test]
fn dangling_references() {
    let m = MAPPING.replace("  primaryKey:", "  endpoint: carbonite-user\n  primaryKey:");
    let w = WEBHOOKS.replace("webhook: notify }", "webhook: notfy }");
    let e = broken(&[
        ("mappings/employees.yaml", m.as_bytes()),
        ("hooks.yaml", w.as_bytes()),
    ]);
    assert_located(&e, 2);
    insta::assert_snapshot!(e);
}

#[test]
fn literal_secrets() {
    let i = INTEGRATION.replace(
        "password: { env: LDAP_BIND_PASSWORD }",
        "password: hunter2-canary",
    );
    let w = WEBHOOKS.replace(
        "\"Bearer {{ secret('HELPDESK_TOKEN') }}\"",
        "Bearer abc-canary",
    );
    let e = broken(&[
        ("integration.yaml", i.as_bytes()),
        ("hooks.yaml", w.as_bytes()),
    ]);
    assert_located(&e, 2);
    // The literal value may appear only in the source snippet (the user's own line), never in
    // a message or hint.
    for line in e.lines().filter(|l| l.contains("canary")) {
        assert!(
            line.contains('│'),
            "a secret value outside the source snippet: {line}"
        );
    }
    insta::assert_snapshot!(e);
}

#[test]
fn bad_url_region_and_bounds() {
    let i = INTEGRATION
        .replace("ldaps://dc1.corp.example:636", "ldapz//dc1")
        .replace("region: us", "region: eu")
        .replace("count: 25, percent: 5", "count: -1, percent: 500");
    let e = broken(&[("integration.yaml", i.as_bytes())]);
    assert_located(&e, 4);
    insta::assert_snapshot!(e);
}

#[test]
fn missing_primary_key() {
    let m = MAPPING.replace(
        "  primaryKey: { ldap: employeeID, carbonite: UserCustom1 }\n",
        "",
    );
    let e = broken(&[("mappings/employees.yaml", m.as_bytes())]);
    assert_located(&e, 1);
    insta::assert_snapshot!(e);
}

#[test]
fn key_field_rule_and_unknown_fields() {
    let m = MAPPING.replace(
        "    LastName:",
        "    UserCustom1: \"{{ employeeID }}\"\n    Emial: x\n    LastName:",
    );
    let e = broken(&[("mappings/employees.yaml", m.as_bytes())]);
    assert_located(&e, 2);
    insta::assert_snapshot!(e);
}

#[test]
fn alias_bomb_is_refused_by_budget() {
    let mut y = String::from(
        "apiVersion: carbonite-sync/v1\nkind: Mapping\nmetadata: { name: bomb }\nspec:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n",
    );
    let mut prev = 'a';
    for c in 'b'..='z' {
        y.push_str(&format!("  {c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        prev = c;
    }
    let e = broken(&[("bomb.yaml", y.as_bytes())]);
    assert_located(&e, 1);
    insta::assert_snapshot!(e);
}

#[test]
fn deep_nesting_is_refused() {
    let y = format!(
        "apiVersion: carbonite-sync/v1\nkind: Mapping\nmetadata: {{ name: deep }}\nspec: {}{}\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    let e = broken(&[("deep.yaml", y.as_bytes())]);
    assert_located(&e, 1);
}

#[test]
fn non_utf8_file() {
    let e = broken(&[(
        "latin1.yaml",
        b"apiVersion: carbonite-sync/v1\n# Zo\xeb\nkind: Mapping\n",
    )]);
    assert_located(&e, 1);
    assert!(e.contains("latin1.yaml:2:5"), "{e}");
    insta::assert_snapshot!(e);
}

#[test]
fn empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".github")).unwrap();
    std::fs::write(dir.path().join(".github/ci.yaml"), "on: push\n").unwrap();
    let r = run_validate(dir.path());
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    let e = r.stderr.replace(&dir.path().display().to_string(), "[DIR]");
    insta::assert_snapshot!(e);
}

#[test]
fn missing_directory() {
    let r = run_validate(Path::new("/nonexistent/carbonite-sync-config"));
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.contains("no such file or directory"),
        "{}",
        r.stderr
    );
}

#[test]
fn bad_ldap_filter_and_dn() {
    let m = MAPPING
        .replace(
            "(&(objectClass=user)(employeeID=*))",
            "\"(&(objectClass=user)(employeeID=*)\"",
        )
        .replace("OU=Staff,DC=corp", "OU=Staff,,DC=corp");
    let i = INTEGRATION.replace(
        "flavor: active-directory",
        "flavor: active-directory\n    disabledFilter: (cn:caseExactMatch:=x)",
    );
    let e = broken(&[
        ("mappings/employees.yaml", m.as_bytes()),
        ("integration.yaml", i.as_bytes()),
    ]);
    assert_located(&e, 3);
    insta::assert_snapshot!(e);
}

#[test]
fn ldif_source_only_takes_client_side_filters() {
    let i = INTEGRATION.replace(
        "    ldap:\n      url: ldaps://dc1.corp.example:636\n      bindDn: CN=svc-carbonite,OU=Service,DC=corp,DC=example\n      password: { env: LDAP_BIND_PASSWORD }\n      baseDn: DC=corp,DC=example\n",
        "    ldif: { path: users.ldif, baseDn: \"DC=corp,DC=example\" }\n",
    );
    let m = MAPPING.replace(
        "(&(objectClass=user)(employeeID=*))",
        "(&(objectClass=user)(manager:dn:=CN=Boss))",
    );
    let e = broken(&[
        ("integration.yaml", i.as_bytes()),
        ("mappings/employees.yaml", m.as_bytes()),
    ]);
    assert_located(&e, 1);
    insta::assert_snapshot!(e);
}

#[test]
fn template_errors() {
    let m = MAPPING
        .replace("\"{{ givenName }}\"", "\"{{ givenName \"")
        .replace("\"{{ sn }}\"", "\"{{ sn | titlecasee }}\"")
        .replace("    Email:", "    UserCustom2: \"{{ secret('X') }}\"\n    UserCustom3: \"{{ nosuchfn(sn) }}\"\n    Email:");
    let i = INTEGRATION.replace(
        "  policy:",
        "  formats:\n    corpEmail: \"{{ givenName | lowerr }}@corp.example\"\n  policy:",
    );
    let w = WEBHOOKS.replace("  steps:", "  when: \"user.department ==\"\n  steps:");
    let e = broken(&[
        ("mappings/employees.yaml", m.as_bytes()),
        ("integration.yaml", i.as_bytes()),
        ("hooks.yaml", w.as_bytes()),
    ]);
    assert_located(&e, 6);
    insta::assert_snapshot!(e);
}
