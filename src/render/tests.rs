//! Snapshots of what users see: one fixture plan with every action and conflict kind, in the
//! three formats; the JSON validates against the committed schema.

use std::collections::BTreeMap;

use super::*;
use crate::reconcile::*;

fn fc(name: &str, before: Option<&str>, after: Option<&str>) -> FieldChange {
    FieldChange {
        name: name.into(),
        before: before.map(Into::into),
        after: after.map(Into::into),
    }
}

fn ch(
    action: Action,
    key: &str,
    dn: Option<&str>,
    id: Option<&str>,
    fields: Vec<FieldChange>,
) -> Change {
    Change {
        action,
        mapping: "employees".into(),
        key: key.into(),
        dn: dn.map(Into::into),
        account_id: id.map(Into::into),
        observed_fingerprint: id.map(|_| "sha256:5e1f0c".into()),
        orchestrations: if action == Action::Create {
            vec!["on-create".into()]
        } else {
            vec![]
        },
        fields,
    }
}

pub(crate) fn fixture() -> (Plan, PlanMeta) {
    let changes = vec![
        ch(
            Action::Adopt,
            "E1002",
            Some("CN=Bo Ek,OU=Staff,DC=corp,DC=example"),
            Some("7d1c"),
            vec![
                fc("UserCustom1", None, Some("E1002")),
                fc("FirstName", Some("Bob"), Some("Bo")),
            ],
        ),
        ch(
            Action::Create,
            "E1001",
            Some("CN=Lee\\, Ann,OU=Staff,DC=corp,DC=example"),
            None,
            vec![
                fc("UserCustom1", None, Some("E1001")),
                fc("Email", None, Some("ann.lee@corp.example")),
                fc("FirstName", None, Some("Ann")),
                fc("Status", None, Some("Active")),
            ],
        ),
        ch(
            Action::Update,
            "E1003",
            Some("CN=Zoë Åström,OU=Staff,DC=corp,DC=example"),
            Some("9a0b"),
            vec![fc(
                "Email",
                Some("zoe.astrom@old.example"),
                Some("zoe.astrom@corp.example"),
            )],
        ),
        ch(
            Action::Reactivate,
            "E1004",
            Some("CN=Di Ro,OU=Staff,DC=corp,DC=example"),
            Some("aa01"),
            vec![fc("Status", Some("Suspended"), Some("Active"))],
        ),
        ch(
            Action::Suspend,
            "E1005",
            Some("CN=Ed Ux,OU=Staff,DC=corp,DC=example"),
            Some("aa02"),
            vec![fc("Status", Some("Active"), Some("Suspended"))],
        ),
        ch(Action::Delete, "E0999", None, Some("aa03"), vec![]),
    ];
    let kinds = [
        ConflictKind::EmptyKey,
        ConflictKind::DuplicateKeySource,
        ConflictKind::DuplicateKeyObserved,
        ConflictKind::AmbiguousCorrelation,
        ConflictKind::MultipleMappings,
        ConflictKind::RenderError,
        ConflictKind::LookupFailed,
        ConflictKind::RequiredFieldEmpty,
    ];
    let conflicts = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| Conflict {
            kind: *k,
            mapping: Some("employees".into()),
            key: (i > 0).then(|| format!("E20{i:02}")),
            dn: (*k != ConflictKind::DuplicateKeyObserved)
                .then(|| format!("CN=User {i},OU=Staff,DC=corp,DC=example")),
            account_id: (*k == ConflictKind::DuplicateKeyObserved).then(|| "bb01".to_string()),
            reason: format!("reason for {}", k.as_str()),
        })
        .collect::<Vec<_>>();
    let summary = Summary {
        create: 1,
        adopt: 1,
        update: 1,
        reactivate: 1,
        suspend: 1,
        delete: 1,
        unchanged: 120,
        conflict: conflicts.len(),
        unmanaged: 4,
    };
    let guards = vec![
        Guard {
            name: "minSourceEntries".into(),
            mapping: Some("employees".into()),
            status: GuardStatus::Ok,
            detail: "131 entries, minimum 1".into(),
        },
        Guard {
            name: "maxSourceShrinkPercent".into(),
            mapping: Some("employees".into()),
            status: GuardStatus::Ok,
            detail: "131 entries vs baseline 130 (0.0% fewer, limit 20%)".into(),
        },
        Guard {
            name: "maxDestructive".into(),
            mapping: None,
            status: GuardStatus::Ok,
            detail: "2 of 25".into(),
        },
    ];
    let plan = Plan {
        changes,
        conflicts,
        guards,
        summary,
        held_back: vec![],
        run_refused: false,
    };
    let calls: BTreeMap<String, u64> = [
        ("POST /api/users".to_string(), 1),
        ("PUT /api/users/{UserId}".to_string(), 4),
        ("DELETE /api/users/{UserId}".to_string(), 1),
    ]
    .into();
    let meta = PlanMeta {
        generated_at: "2026-12-04T12:00:00Z".into(),
        config_digest: "sha256:0d1e".into(),
        git_commit: None,
        observed_source: ObservedSource::Live,
        listed_at: Some("2026-12-04T11:59:58Z".into()),
        cache_age: None,
        observed_fingerprint: Some("sha256:77aa".into()),
        calls,
        earliest_completion: Some("2026-12-04T12:00:03Z".into()),
    };
    (plan, meta)
}

#[test]
fn text_snapshot() {
    let (plan, meta) = fixture();
    insta::assert_snapshot!(text::render(
        &PlanReport {
            plan: &plan,
            meta: &meta
        },
        false
    ));
}

#[test]
fn text_with_colour_highlights_words() {
    let (plan, meta) = fixture();
    let s = text::render(
        &PlanReport {
            plan: &plan,
            meta: &meta,
        },
        true,
    );
    assert!(s.contains("\x1b[7m\x1b[32mzoe.astrom@corp.example"), "{s}");
}

#[test]
fn empty_plan_says_no_changes() {
    let (mut plan, mut meta) = fixture();
    plan.changes.clear();
    plan.conflicts.clear();
    plan.summary = Summary {
        unchanged: 3,
        ..Summary::default()
    };
    meta.observed_source = ObservedSource::Cache;
    meta.cache_age = Some("2h 5m".into());
    insta::assert_snapshot!(text::render(
        &PlanReport {
            plan: &plan,
            meta: &meta
        },
        false
    ));
}

#[test]
fn markdown_snapshot() {
    let (plan, meta) = fixture();
    insta::assert_snapshot!(markdown::render(&PlanReport {
        plan: &plan,
        meta: &meta
    }));
}

#[test]
fn markdown_of_5000_changes_is_truncated_under_the_limit() {
    let (mut plan, meta) = fixture();
    let template = plan.changes[2].clone();
    plan.changes = (0..5000)
        .map(|i| {
            let mut c = template.clone();
            c.key = format!("E{i:05}");
            c
        })
        .collect();
    plan.summary.update = 5000;
    let md = markdown::render(&PlanReport {
        plan: &plan,
        meta: &meta,
    });
    assert!(md.len() <= markdown::MAX_CHARS, "{} chars", md.len());
    assert!(md.contains("more not shown"));
    assert!(md.contains("omitted to keep this comment under 60000 characters"));
}

#[test]
fn json_snapshot_and_schema() {
    let (plan, meta) = fixture();
    let text = json::render(&PlanReport {
        plan: &plan,
        meta: &meta,
    });
    insta::assert_snapshot!(text);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let schema = crate::schema::plan_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        v["summary"]["conflict"],
        v["conflicts"].as_array().unwrap().len()
    );
}
