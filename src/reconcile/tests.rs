//! Unit and property tests of the pure core: desired and observed state in, plan out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::config::model::{AttributeRule, Correlate, KeyPair, Scope, SourceSpec};
use crate::directory::{AttrValue, Entry};

fn rule(field: &str) -> AttributeRule {
    AttributeRule {
        field: field.into(),
        value: String::new(),
        compare: Compare::Exact,
        create_only: false,
        strength: Strength::Strong,
        omit_if_empty: false,
    }
}

fn mapping(name: &str) -> Mapping {
    let mut email = rule("Email");
    email.compare = Compare::CaseInsensitive;
    let mut company = rule("CompanyId");
    company.create_only = true;
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
        correlate: vec![Correlate {
            ldap: "mail".into(),
            carbonite: "Email".into(),
            compare: Compare::CaseInsensitive,
        }],
        attributes: vec![
            email,
            rule("FirstName"),
            company,
            rule("UserGroupId"),
            rule("Status"),
        ],
    }
}

fn policy() -> Policy {
    Policy {
        create: true,
        update: true,
        orphans: Orphans::Suspend,
        max_destructive_count: Some(25),
        max_destructive_percent: None,
        min_source_entries: 1,
        max_source_shrink_percent: 20.0,
    }
}

fn desired(mapping: usize, key: &str, email: &str, first: &str, status: &str) -> DesiredAccount {
    let mut e = Entry::new(format!("CN={key},DC=x"));
    e.push("mail", AttrValue::Text(email.into()));
    e.anchor = format!("anchor-{key}");
    // In the order of `mapping()`'s attributes: Email, FirstName, CompanyId, UserGroupId, Status.
    let values = vec![
        Some(email.to_lowercase()),
        if first.is_empty() {
            None
        } else {
            Some(first.into())
        },
        Some("c1".into()),
        Some("g1".into()),
        Some(status.into()),
    ];
    DesiredAccount {
        mapping,
        key: key.into(),
        values: values.into_boxed_slice(),
        entry: Arc::new(e),
    }
}

fn account(id: &str, key: Option<&str>, email: &str, first: &str, status: &str) -> ObservedAccount {
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    fields.insert("UserId".into(), id.into());
    if let Some(k) = key {
        fields.insert("UserCustom1".into(), k.into());
    }
    fields.insert("Email".into(), email.into());
    if !first.is_empty() {
        fields.insert("FirstName".into(), first.into());
    }
    fields.insert("CompanyId".into(), "c1".into());
    fields.insert("UserGroupId".into(), "g1".into());
    fields.insert("Status".into(), status.into());
    ObservedAccount {
        id: id.into(),
        fields: fields.into_iter().collect(),
        endpoints: std::sync::Arc::new(["carbonite-users".to_string()].into()),
    }
}

fn fp_fields() -> Vec<String> {
    crate::config::model::USER_FIELDS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

struct World {
    mappings: Vec<Mapping>,
    policy: Policy,
    desired: Desired,
    observed: Vec<ObservedAccount>,
    suspended: BTreeSet<String>,
    baseline: Option<Baseline>,
    options: Options,
}

impl World {
    fn new(accounts: Vec<DesiredAccount>, observed: Vec<ObservedAccount>) -> Self {
        let n = accounts.len();
        World {
            mappings: vec![mapping("employees")],
            policy: policy(),
            desired: Desired {
                accounts,
                conflicts: vec![],
                held: vec![],
                entry_counts: vec![n],
            },
            observed,
            suspended: BTreeSet::new(),
            baseline: Some([("employees".to_string(), n as u64)].into()),
            options: Options {
                plan_destructive: true,
                ..Options::default()
            },
        }
    }

    fn plan(&self) -> Plan {
        let fields = fp_fields();
        reconcile(&Input {
            mappings: &self.mappings,
            policy: &self.policy,
            desired: &self.desired,
            observed: &self.observed,
            suspended_by_us: &self.suspended,
            baseline: self.baseline.as_ref(),
            fingerprint_fields: &fields,
            options: self.options.clone(),
        })
    }

    /// Apply a plan's changes to the observed state in memory, as a perfect server would.
    fn apply(&mut self, plan: &Plan) {
        for c in &plan.changes {
            match c.action {
                Action::Create => {
                    let id = format!("new-{}", c.key);
                    let mut fields: BTreeMap<String, String> = c
                        .fields
                        .iter()
                        .filter_map(|f| f.after.clone().map(|v| (f.name.clone(), v)))
                        .collect();
                    fields.insert("UserId".into(), id.clone());
                    let endpoints = self
                        .mappings
                        .iter()
                        .find(|m| m.name == c.mapping)
                        .unwrap()
                        .endpoints
                        .iter()
                        .cloned()
                        .collect();
                    self.observed.push(ObservedAccount {
                        id,
                        fields: fields.into_iter().collect(),
                        endpoints: std::sync::Arc::new(endpoints),
                    });
                }
                Action::Delete => self
                    .observed
                    .retain(|a| Some(&a.id) != c.account_id.as_ref()),
                _ => {
                    let a = self
                        .observed
                        .iter_mut()
                        .find(|a| Some(&a.id) == c.account_id.as_ref())
                        .unwrap();
                    for f in &c.fields {
                        match &f.after {
                            Some(v) => a.fields.insert(&f.name, v.clone()),
                            None => a.fields.remove(&f.name),
                        };
                    }
                    match c.action {
                        Action::Suspend => {
                            self.suspended.insert(a.id.clone());
                        }
                        Action::Reactivate => {
                            self.suspended.remove(&a.id);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

#[test]
fn big_lists_give_the_same_plan_on_any_number_of_threads() {
    // Past the parallel threshold: 25,000 matched accounts with updates, suspends and
    // reactivations spread over every chunk.
    let n = 25_000;
    let mut accounts = Vec::new();
    let mut observed = Vec::new();
    let mut suspended = BTreeSet::new();
    for i in 0..n {
        let key = format!("E{i:05}");
        let id = format!("u{i}");
        let first = if i % 7 == 0 { "Changed" } else { "Ann" };
        let want = if i % 11 == 0 { "Suspended" } else { "Active" };
        let have = if i % 13 == 0 { "Suspended" } else { "Active" };
        if i % 26 == 0 {
            suspended.insert(id.clone());
        }
        accounts.push(desired(0, &key, &format!("{key}@x"), first, want));
        observed.push(account(&id, Some(&key), &format!("{key}@x"), "Ann", have));
    }
    let mut w = World::new(accounts, observed);
    w.suspended = suspended;
    w.policy.max_destructive_count = None;
    let fields = fp_fields();
    let input = Input {
        mappings: &w.mappings,
        policy: &w.policy,
        desired: &w.desired,
        observed: &w.observed,
        suspended_by_us: &w.suspended,
        baseline: w.baseline.as_ref(),
        fingerprint_fields: &fields,
        options: w.options.clone(),
    };
    let one = reconcile_with(&input, 1);
    assert!(one.summary.update > 3_000, "{:?}", one.summary);
    assert!(one.summary.suspend > 1_000, "{:?}", one.summary);
    assert!(one.summary.reactivate > 0, "{:?}", one.summary);
    for threads in [2, 3, 8] {
        assert_eq!(reconcile_with(&input, threads), one, "{threads} threads");
    }
}

fn actions(p: &Plan) -> Vec<(Action, String)> {
    p.changes
        .iter()
        .map(|c| (c.action, c.key.clone()))
        .collect()
}

#[test]
fn create_adopt_update_unchanged_unmanaged() {
    let w = World::new(
        vec![
            desired(0, "E1", "ann@x", "Ann", "Active"),
            desired(0, "E2", "Bo@X", "Bo", "Active"),
            desired(0, "E3", "cy@x", "Cy", "Active"),
            desired(0, "E4", "di@x", "Di", "Active"),
        ],
        vec![
            account("a2", None, "bo@x", "Bob", "Active"),
            account("a3", Some("E3"), "cy@x", "Cyrus", "Active"),
            account("a4", Some("E4"), "DI@x", "Di", "Active"),
            account("a9", None, "stranger@x", "S", "Active"),
        ],
    );
    let p = w.plan();
    assert_eq!(
        actions(&p),
        vec![
            (Action::Adopt, "E2".into()),
            (Action::Create, "E1".into()),
            (Action::Update, "E3".into())
        ]
    );
    let adopt = &p.changes[0];
    assert_eq!(
        adopt.fields[0],
        FieldChange {
            name: "UserCustom1".into(),
            before: None,
            after: Some("E2".into())
        }
    );
    assert!(
        adopt
            .fields
            .iter()
            .any(|f| f.name == "FirstName" && f.after.as_deref() == Some("Bo"))
    );
    assert!(
        !adopt.fields.iter().any(|f| f.name == "Email"),
        "Email compares case-insensitively"
    );
    let update = &p.changes[2];
    assert_eq!(
        update.fields,
        vec![FieldChange {
            name: "FirstName".into(),
            before: Some("Cyrus".into()),
            after: Some("Cy".into())
        }]
    );
    assert_eq!(p.summary.unchanged, 1);
    assert_eq!(p.summary.unmanaged, 1);
    assert!(p.conflicts.is_empty());
    let create = &p.changes[1];
    assert_eq!(
        create
            .fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        [
            "UserCustom1",
            "Email",
            "FirstName",
            "CompanyId",
            "UserGroupId",
            "Status"
        ]
    );
    assert!(create.account_id.is_none() && create.observed_fingerprint.is_none());
    assert!(
        update
            .observed_fingerprint
            .as_deref()
            .unwrap()
            .starts_with("sha256:")
    );
}

#[test]
fn orphans_suspend_and_reactivate_only_what_we_suspended() {
    let mut w = World::new(
        vec![
            desired(0, "E1", "a@x", "A", "Active"),
            desired(0, "E2", "b@x", "B", "Active"),
            desired(0, "E3", "c@x", "C", "Suspended"),
        ],
        vec![
            account("a1", Some("E1"), "a@x", "A", "Suspended"),
            account("a2", Some("E2"), "b@x", "B", "Suspended"),
            account("a3", Some("E3"), "c@x", "C", "Active"),
            account("a4", Some("GONE"), "d@x", "D", "Active"),
        ],
    );
    w.suspended.insert("a1".into());
    let p = w.plan();
    assert_eq!(
        actions(&p),
        vec![
            (Action::Reactivate, "E1".into()),
            (Action::Suspend, "E3".into()),
            (Action::Suspend, "GONE".into())
        ]
    );
    let orphan = &p.changes[2];
    assert_eq!(orphan.dn, None);
    assert_eq!(
        orphan.fields,
        vec![FieldChange {
            name: "Status".into(),
            before: Some("Active".into()),
            after: Some("Suspended".into())
        }]
    );
}

#[test]
fn update_and_status_change_are_two_changes() {
    let w = World::new(
        vec![desired(0, "E1", "a@x", "New", "Suspended")],
        vec![account("a1", Some("E1"), "a@x", "Old", "Active")],
    );
    let p = w.plan();
    assert_eq!(
        actions(&p),
        vec![
            (Action::Update, "E1".into()),
            (Action::Suspend, "E1".into())
        ]
    );
}

#[test]
fn conflicts_hold_their_keys() {
    let mut d1 = desired(0, "E1", "a@x", "A", "Active");
    let d1b = desired(0, "E1", "a2@x", "A2", "Active");
    Arc::make_mut(&mut d1.entry).anchor = "x1".into();
    let mut w = World::new(
        vec![
            d1,
            d1b,
            desired(0, "E5", "e@x", "E", "Active"),
            desired(0, "E6", "dup@x", "F", "Active"),
        ],
        vec![
            account("a1", Some("E1"), "a@x", "A", "Active"),
            account("a5", Some("E5"), "e@x", "E", "Active"),
            account("a5b", Some("E5"), "e2@x", "E", "Active"),
            account("a6", None, "dup@x", "F", "Active"),
            account("a6b", None, "DUP@x", "F", "Active"),
            account("a7", Some("E7"), "g@x", "G", "Active"),
        ],
    );
    w.desired.held.push((0, "E7".into()));
    w.desired.conflicts.push(Conflict {
        kind: ConflictKind::LookupFailed,
        mapping: Some("employees".into()),
        key: Some("E7".into()),
        dn: Some("CN=E7".into()),
        account_id: None,
        reason: "no userGroups entry".into(),
    });
    let p = w.plan();
    assert!(p.changes.is_empty(), "{:#?}", p.changes);
    let kinds: Vec<ConflictKind> = p.conflicts.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        [
            ConflictKind::DuplicateKeySource,
            ConflictKind::DuplicateKeySource,
            ConflictKind::DuplicateKeyObserved,
            ConflictKind::DuplicateKeyObserved,
            ConflictKind::AmbiguousCorrelation,
            ConflictKind::LookupFailed
        ]
    );
    assert_eq!(p.summary.conflict, 6);
}

#[test]
fn one_anchor_in_two_mappings_is_a_conflict() {
    let mut w = World::new(
        vec![
            desired(0, "E1", "a@x", "A", "Active"),
            desired(1, "E9", "a@x", "A", "Active"),
        ],
        vec![],
    );
    w.mappings.push(mapping("contractors"));
    let anchor = w.desired.accounts[0].anchor().to_string();
    Arc::make_mut(&mut w.desired.accounts[1].entry).anchor = anchor;
    w.desired.entry_counts = vec![1, 1];
    w.baseline = Some([("employees".to_string(), 1), ("contractors".to_string(), 1)].into());
    let p = w.plan();
    assert!(p.changes.is_empty());
    assert_eq!(
        p.conflicts
            .iter()
            .filter(|c| c.kind == ConflictKind::MultipleMappings)
            .count(),
        2
    );
}

#[test]
fn guards() {
    // 40% fewer entries than the baseline: creates/updates go ahead, suspends are held back.
    let accounts: Vec<DesiredAccount> = (0..6)
        .map(|i| desired(0, &format!("E{i}"), &format!("u{i}@x"), "A", "Active"))
        .collect();
    let mut observed: Vec<ObservedAccount> = (0..10)
        .map(|i| {
            account(
                &format!("a{i}"),
                Some(&format!("E{i}")),
                &format!("u{i}@x"),
                "A",
                "Active",
            )
        })
        .collect();
    observed[0].fields.insert("FirstName", "Old".into());
    let mut w = World::new(accounts, observed);
    w.baseline = Some([("employees".to_string(), 10)].into());
    let p = w.plan();
    assert!(p.refused());
    assert_eq!(actions(&p), vec![(Action::Update, "E0".into())]);
    assert_eq!(p.held_back.len(), 4);
    assert_eq!(p.guards[1].status, GuardStatus::Refused);

    // No baseline: destructive held back, reported as no_baseline.
    w.baseline = None;
    let p = w.plan();
    assert_eq!(p.guards[1].status, GuardStatus::NoBaseline);
    assert_eq!(p.held_back.len(), 4);

    // Zero entries: the whole run is refused.
    w.desired.accounts.clear();
    w.desired.entry_counts = vec![0];
    let p = w.plan();
    assert!(p.run_refused && p.changes.is_empty());
    assert_eq!(p.guards[0].status, GuardStatus::Refused);

    // 30 planned suspends with count 25: refused unless --allow-destructive 30.
    let mut w = World::new(
        vec![desired(0, "K", "k@x", "K", "Active")],
        (0..31)
            .map(|i| {
                account(
                    &format!("a{i}"),
                    Some(&format!("E{i}")),
                    &format!("u{i}@x"),
                    "A",
                    "Active",
                )
            })
            .collect(),
    );
    w.observed[30].fields.insert("UserCustom1", "K".into());
    w.observed[30].fields.insert("Email", "k@x".into());
    w.observed[30].fields.insert("FirstName", "K".into());
    let p = w.plan();
    assert_eq!(p.held_back.len(), 30);
    assert_eq!(p.guards[2].status, GuardStatus::Refused);
    w.options.allow_destructive = Some(30);
    let p = w.plan();
    assert_eq!(p.summary.suspend, 30);
    assert_eq!(p.guards[2].status, GuardStatus::Overridden);
    assert!(!p.refused());
}

#[test]
fn mapping_filter_limits_orphans_to_endpoints_read_only_by_named_mappings() {
    let mut w = World::new(
        vec![desired(0, "E1", "a@x", "A", "Active")],
        vec![account("a9", Some("GONE"), "z@x", "Z", "Active")],
    );
    w.mappings.push(mapping("contractors"));
    w.desired.entry_counts = vec![1, 0];
    w.policy.min_source_entries = 0;
    w.baseline = Some([("employees".to_string(), 1), ("contractors".to_string(), 0)].into());
    w.options.only_mappings = Some(["employees".to_string()].into());
    assert!(
        w.plan().changes.iter().all(|c| c.action != Action::Suspend),
        "contractors also read carbonite-users"
    );
    w.options.only_mappings = None;
    assert_eq!(w.plan().summary.suspend, 1);
}

// ---------------------------------------------------------------------------------------------
// Property tests

#[derive(Debug, Clone)]
struct Case {
    entries: Vec<(u8, u8, u8, bool)>, // key, email id, first-name id, disabled
    accounts: Vec<(Option<u8>, u8, u8, bool)>, // key, email id, first-name id, suspended
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((0u8..12, 0u8..12, 0u8..3, any::<bool>()), 0..12),
        prop::collection::vec(
            (prop::option::of(0u8..12), 0u8..12, 0u8..3, any::<bool>()),
            0..12,
        ),
    )
        .prop_map(|(entries, accounts)| Case { entries, accounts })
}

fn world(c: &Case) -> World {
    let names = ["Ann", "Bo", ""];
    let accounts: Vec<DesiredAccount> = c
        .entries
        .iter()
        .map(|(k, e, f, dis)| {
            desired(
                0,
                &format!("E{k}"),
                &format!("u{e}@x"),
                names[*f as usize],
                if *dis { "Suspended" } else { "Active" },
            )
        })
        .collect();
    let observed = c
        .accounts
        .iter()
        .enumerate()
        .map(|(i, (k, e, f, s))| {
            account(
                &format!("a{i}"),
                k.map(|k| format!("E{k}")).as_deref(),
                &format!("U{e}@X"),
                names[*f as usize],
                if *s { "Suspended" } else { "Active" },
            )
        })
        .collect();
    let mut w = World::new(accounts, observed);
    w.policy.max_destructive_count = None;
    w
}

proptest! {
    #[test]
    fn plans_are_deterministic(c in case()) {
        let w = world(&c);
        prop_assert_eq!(w.plan(), w.plan());
    }

    #[test]
    fn applying_a_plan_converges(c in case()) {
        let mut w = world(&c);
        let p = w.plan();
        w.apply(&p);
        let second = w.plan();
        prop_assert!(second.changes.is_empty(), "second plan: {:#?}", second.changes);
    }

    #[test]
    fn unmanaged_and_held_accounts_are_never_touched(c in case()) {
        let w = world(&c);
        let p = w.plan();
        let held: BTreeSet<&str> = p.conflicts.iter().filter_map(|c| c.account_id.as_deref()).collect();
        for ch in &p.changes {
            if let Some(id) = &ch.account_id {
                prop_assert!(!held.contains(id.as_str()), "touched a conflicted account {id}");
                let a = w.observed.iter().find(|a| &a.id == id).unwrap();
                let managed = a.get("UserCustom1").is_some();
                prop_assert!(managed || ch.action == Action::Adopt || (ch.action == Action::Suspend && p.changes.iter().any(|x| x.action == Action::Adopt && x.account_id.as_ref() == Some(id))),
                    "unmanaged account {id} touched by {:?}", ch.action);
            }
        }
    }

    #[test]
    fn users_in_scope_are_never_orphans(c in case()) {
        let w = world(&c);
        let p = w.plan();
        let in_scope: BTreeSet<&str> = w.desired.accounts.iter().map(|d| d.key.as_str()).collect();
        for ch in p.changes.iter().chain(&p.held_back) {
            if ch.dn.is_none() {
                prop_assert!(!in_scope.contains(ch.key.as_str()), "in-scope key {} planned as orphan", ch.key);
            }
        }
    }

    #[test]
    fn guards_hold_for_any_input(c in case(), count in 0u64..4, baseline in 0u64..20) {
        let mut w = world(&c);
        w.policy.max_destructive_count = Some(count);
        w.baseline = Some([("employees".to_string(), baseline)].into());
        let p = w.plan();
        let destructive = p.changes.iter().filter(|c| c.action.is_destructive()).count() as u64;
        prop_assert!(destructive <= count, "{destructive} destructive changes with count {count}");
        let n = w.desired.entry_counts[0];
        if baseline > 0 && (n as f64) < baseline as f64 * 0.8 {
            prop_assert_eq!(destructive, 0);
        }
    }
}
