//! Unit tests of the pure diff: desired accounts and plans in, differences out.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::config::model::{KeyPair, Scope, SourceSpec};
use crate::directory::Entry;
use crate::reconcile::{Change, ConflictKind, GuardStatus};

fn mapping(name: &str) -> Mapping {
    Mapping {
        name: name.into(),
        description: None,
        labels: BTreeMap::new(),
        source: SourceSpec {
            base_dn: "DC=x".into(),
            scope: Scope::Subtree,
            filter: "(a=*)".into(),
        },
        endpoints: vec!["carbonite-users".into()],
        primary_key: KeyPair {
            ldap: "employeeID".into(),
            carbonite: "UserCustom1".into(),
        },
        correlate: vec![],
        attributes: FIELDS
            .iter()
            .map(|f| crate::config::model::AttributeRule {
                field: f.to_string(),
                value: String::new(),
                compare: crate::config::model::Compare::Exact,
                create_only: false,
                strength: crate::config::model::Strength::Strong,
                omit_if_empty: false,
            })
            .collect(),
    }
}

/// The fields the test mapping renders, in its attribute order.
const FIELDS: [&str; 2] = ["Email", "FirstName"];

fn account(key: &str, fields: &[(&str, &str)]) -> DesiredAccount {
    DesiredAccount {
        mapping: 0,
        key: key.into(),
        values: FIELDS
            .iter()
            .map(|f| {
                fields
                    .iter()
                    .find(|(k, _)| k == f)
                    .and_then(|(_, v)| (!v.is_empty()).then(|| v.to_string()))
            })
            .collect(),
        entry: Arc::new({
            let mut e = Entry::new(format!("CN={key},DC=x"));
            e.anchor = key.into();
            e
        }),
    }
}

fn desired(accounts: Vec<DesiredAccount>) -> Desired {
    Desired {
        accounts,
        ..Desired::default()
    }
}

fn change(action: Action, key: &str) -> Change {
    Change {
        action,
        mapping: "staff".into(),
        key: key.into(),
        dn: None,
        account_id: Some(format!("id-{key}")),
        observed_fingerprint: None,
        orchestrations: vec![],
        fields: vec![],
    }
}

fn conflict(key: &str) -> Conflict {
    Conflict {
        kind: ConflictKind::LookupFailed,
        mapping: Some("staff".into()),
        key: Some(key.into()),
        dn: None,
        account_id: None,
        reason: "UserGroupId: no group Interns".into(),
    }
}

fn guard(status: GuardStatus, detail: &str) -> Guard {
    Guard {
        name: "maxDestructive".into(),
        mapping: None,
        status,
        detail: detail.into(),
    }
}

#[test]
fn identical_sides_have_no_difference() {
    let m = [mapping("staff")];
    let d = desired(vec![account("E1", &[("Email", "a@x")])]);
    let p = Plan {
        changes: vec![change(Action::Update, "E1")],
        conflicts: vec![conflict("E2")],
        guards: vec![guard(GuardStatus::Ok, "1 of 25")],
        ..Plan::default()
    };
    let side = Side {
        mappings: &m,
        desired: &d,
        plan: &p,
    };
    let c = diff(side, side);
    assert!(c.is_empty());
    assert_eq!(c, Comparison::default());
}

/// (field, base, head).
type FieldRow<'a> = (&'a str, Option<&'a str>, Option<&'a str>);

#[test]
fn entering_leaving_changed_and_only_differing_fields() {
    let m = [mapping("staff")];
    let base = desired(vec![
        account("E1", &[("Email", "a@x"), ("FirstName", "Ann")]),
        account("E2", &[("Email", "b@x")]),
    ]);
    let head = desired(vec![
        account("E1", &[("Email", "ann@x"), ("FirstName", "Ann")]),
        account("E3", &[("Email", "c@x"), ("FirstName", "")]),
    ]);
    let p = Plan::default();
    let c = diff(
        Side {
            mappings: &m,
            desired: &base,
            plan: &p,
        },
        Side {
            mappings: &m,
            desired: &head,
            plan: &p,
        },
    );
    let got: Vec<(&str, AccountChange, Vec<FieldRow>)> = c
        .accounts
        .iter()
        .map(|a| {
            (
                a.key.as_str(),
                a.change,
                a.fields
                    .iter()
                    .map(|f| (f.name.as_str(), f.base.as_deref(), f.head.as_deref()))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "E1",
                AccountChange::Changed,
                vec![("Email", Some("a@x"), Some("ann@x"))]
            ),
            (
                "E2",
                AccountChange::Leaving,
                vec![("Email", Some("b@x"), None)]
            ),
            // Empty fields are not listed for an entering account.
            (
                "E3",
                AccountChange::Entering,
                vec![("Email", None, Some("c@x"))]
            ),
        ]
    );
    assert_eq!(
        c.summary,
        CompareSummary {
            entering: 1,
            leaving: 1,
            changed: 1,
            conflicts_added: 0,
            conflicts_removed: 0
        }
    );
}

#[test]
fn plan_only_differences_conflicts_and_guards() {
    // A policy edit (orphans: ignore -> suspend) changes no desired value, only the plan.
    let m = [mapping("staff")];
    let d = desired(vec![]);
    let base = Plan {
        conflicts: vec![conflict("E2")],
        guards: vec![guard(GuardStatus::Ok, "0 of 25")],
        ..Plan::default()
    };
    let head = Plan {
        held_back: vec![change(Action::Suspend, "E9")],
        conflicts: vec![conflict("E3")],
        guards: vec![guard(GuardStatus::Refused, "30 of 25")],
        ..Plan::default()
    };
    let c = diff(
        Side {
            mappings: &m,
            desired: &d,
            plan: &base,
        },
        Side {
            mappings: &m,
            desired: &d,
            plan: &head,
        },
    );
    assert_eq!(c.accounts.len(), 1);
    let a = &c.accounts[0];
    assert_eq!((a.key.as_str(), a.change), ("E9", AccountChange::Changed));
    assert_eq!(
        (a.base_actions.clone(), a.head_actions.clone()),
        (vec![], vec![Action::Suspend])
    );
    assert_eq!(a.head_held_back, vec![Action::Suspend]);
    assert_eq!(a.dn, None);
    assert_eq!(c.conflicts.added, vec![conflict("E3")]);
    assert_eq!(c.conflicts.removed, vec![conflict("E2")]);
    assert_eq!(
        c.guards,
        vec![GuardDiff {
            name: "maxDestructive".into(),
            mapping: None,
            base: Some("ok: 0 of 25".into()),
            head: Some("refused: 30 of 25".into()),
        }]
    );
}

#[test]
fn duplicate_keys_are_left_to_the_conflict_diff() {
    let m = [mapping("staff")];
    let base = desired(vec![account("E1", &[("Email", "a@x")])]);
    let head = desired(vec![
        account("E1", &[("Email", "a@x")]),
        account("E1", &[("Email", "other@x")]),
    ]);
    let p = Plan::default();
    let c = diff(
        Side {
            mappings: &m,
            desired: &base,
            plan: &p,
        },
        Side {
            mappings: &m,
            desired: &head,
            plan: &p,
        },
    );
    assert_eq!(c.accounts.len(), 1);
    assert_eq!(c.accounts[0].change, AccountChange::Leaving);
}
