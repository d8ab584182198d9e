//! The quickstart's data through the pure pipeline: LDIF -> scope and filter -> templates ->
//! reconcile against the seed's accounts. Shows a create, an update, an adoption and a
//! conflict, and that applying the plan's changes converges (a second plan is empty).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use carbonite_sync::config::model::Scope as ModelScope;
use carbonite_sync::directory::dn::{Dn, Scope, in_scope};
use carbonite_sync::directory::filter::Filter;
use carbonite_sync::directory::ldif::parse_ldif;
use carbonite_sync::reconcile::{self, Action, ConflictKind, ObservedAccount};
use carbonite_sync::template::{
    Company, EngineSettings, LookupIndex, LookupTables, RenderContext, TemplateEngine, UserGroup,
};

fn quickstart() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart"))
}

fn observed_from_seed(seed: &serde_json::Value) -> (Vec<ObservedAccount>, LookupTables) {
    let accounts = seed["Users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let fields: BTreeMap<String, String> = u
                .as_object()
                .unwrap()
                .iter()
                .filter_map(|(k, v)| {
                    v.as_str()
                        .filter(|s| !s.is_empty())
                        .map(|s| (k.clone(), s.to_string()))
                })
                .collect();
            ObservedAccount {
                id: fields["UserId"].clone(),
                fields: fields.into_iter().collect(),
                endpoints: std::sync::Arc::new(["carbonite-users".to_string()].into()),
            }
        })
        .collect();
    let tables = LookupTables {
        companies: seed["Companies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| Company {
                id: c["CompanyId"].as_str().unwrap().into(),
                name: c["CompanyName"].as_str().unwrap().into(),
            })
            .collect(),
        user_groups: seed["UserGroups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| UserGroup {
                id: g["UserGroupId"].as_str().unwrap().into(),
                name: g["Name"].as_str().unwrap().into(),
                company_id: g["CompanyId"].as_str().unwrap().into(),
            })
            .collect(),
    };
    (accounts, tables)
}

#[test]
fn quickstart_plan_has_create_update_adopt_and_conflict() {
    let cfg = carbonite_sync::config::load(quickstart()).expect("quickstart config loads");
    let flavor = cfg.integration.directory.flavor;
    let is_binary = |a: &str| flavor.is_binary(a);
    let ldif = std::fs::read(quickstart().join("users.ldif")).unwrap();
    let mut all = parse_ldif(&ldif, &is_binary).expect("LDIF parses");
    let disabled = Filter::parse(
        cfg.integration
            .directory
            .disabled_filter
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    for e in &mut all {
        e.disabled = disabled.matches(e, &is_binary);
        e.anchor = reconcile::desired::key_of(e, "objectGUID").unwrap_or_default();
    }

    let mut engine = TemplateEngine::new(EngineSettings {
        undefined: carbonite_sync::template::Undefined::Lenient,
        formats: cfg.integration.templates.formats.clone(),
    })
    .unwrap();
    let compiled = reconcile::desired::compile(&mut engine, &cfg.mappings).unwrap();
    let entries: Vec<Vec<Arc<_>>> = cfg
        .mappings
        .iter()
        .map(|m| {
            let base = Dn::parse(&m.source.base_dn).unwrap();
            let scope = match m.source.scope {
                ModelScope::Base => Scope::Base,
                ModelScope::One => Scope::One,
                ModelScope::Subtree => Scope::Subtree,
            };
            let filter = Filter::parse(&m.source.filter).unwrap();
            all.iter()
                .filter(|e| {
                    in_scope(&Dn::parse(&e.dn).unwrap(), &base, scope)
                        && filter.matches(e, &is_binary)
                })
                .cloned()
                .map(Arc::new)
                .collect()
        })
        .collect();
    assert_eq!(entries[0].len(), 6, "six staff entries with an employeeID");

    let seed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(quickstart().join("carbonite-seed.json")).unwrap())
            .unwrap();
    let (mut observed, tables) = observed_from_seed(&seed);
    let ctx = RenderContext::new(Arc::new(LookupIndex::new(&tables)));
    let desired = reconcile::desired::render(&engine, &compiled, &entries, &ctx);

    // On several threads (a list of 10,000 entries or more is split) the result is the same as
    // on one: 5,000 copies of every mapping's entries, conflicts included.
    let keyless = Arc::new(carbonite_sync::directory::Entry::new("cn=nokey,dc=example"));
    let many: Vec<Vec<Arc<_>>> = entries
        .iter()
        .map(|l| {
            let mut v: Vec<Arc<_>> = l.iter().cycle().take(l.len() * 5000).cloned().collect();
            for i in (0..v.len()).step_by(997) {
                v[i] = keyless.clone();
            }
            v
        })
        .collect();
    let summary = |d: &reconcile::Desired| {
        let accounts: Vec<_> = d
            .accounts
            .iter()
            .map(|a| {
                (
                    a.mapping,
                    a.key.clone(),
                    a.values.clone(),
                    a.entry.dn.clone(),
                )
            })
            .collect();
        (accounts, format!("{:?}", d.conflicts), d.held.clone())
    };
    let one = reconcile::desired::render_with(&engine, &compiled, &many, &ctx, 1);
    let three = reconcile::desired::render_with(&engine, &compiled, &many, &ctx, 3);
    assert!(one.accounts.len() > desired.accounts.len() * 4900);
    assert!(one.conflicts.len() >= 30, "keyless entries are conflicts");
    assert!(summary(&one) == summary(&three), "parallel render differs");
    let fields: Vec<String> = carbonite_sync::config::model::USER_FIELDS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut suspended = BTreeSet::new();
    let plan_once = |observed: &[ObservedAccount], suspended: &BTreeSet<String>| {
        reconcile::reconcile(&reconcile::Input {
            mappings: &cfg.mappings,
            policy: &cfg.integration.policy,
            desired: &desired,
            observed,
            suspended_by_us: suspended,
            baseline: Some(&[("employees".to_string(), 6u64)].into()),
            fingerprint_fields: &fields,
            options: reconcile::Options {
                plan_destructive: true,
                ..Default::default()
            },
        })
    };
    let plan = plan_once(&observed, &suspended);
    let acts: Vec<(Action, &str)> = plan
        .changes
        .iter()
        .map(|c| (c.action, c.key.as_str()))
        .collect();
    assert_eq!(
        acts,
        vec![
            (Action::Adopt, "E1002"),
            (Action::Create, "E1001"),
            (Action::Create, "E1004"),
            (Action::Update, "E1003")
        ],
        "{plan:#?}"
    );
    let zoe = &plan.changes[3];
    let names: Vec<&str> = zoe.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["FirstName", "LastName", "UserGroupId"],
        "diacritics restored, group follows the department"
    );
    let cy = &plan.changes[2];
    assert!(
        cy.fields
            .iter()
            .any(|f| f.name == "Status" && f.after.as_deref() == Some("Suspended")),
        "disabled user created suspended"
    );
    let ann = &plan.changes[1];
    assert!(ann.fields.iter().any(|f| f.name == "UserGroupId"
        && f.after.as_deref() == Some("5a1d2e3f-0000-4000-8000-000000000002")));
    assert_eq!(
        plan.conflicts
            .iter()
            .filter(|c| c.kind == ConflictKind::DuplicateKeySource)
            .count(),
        2
    );
    assert_eq!(plan.summary.unmanaged, 1, "the admin account is not ours");

    // Apply in memory, then the next plan is empty.
    for c in &plan.changes {
        let target = match c.action {
            Action::Create => {
                observed.push(ObservedAccount {
                    id: format!("new-{}", c.key),
                    fields: Default::default(),
                    endpoints: std::sync::Arc::new(["carbonite-users".to_string()].into()),
                });
                observed.last_mut().unwrap()
            }
            _ => observed
                .iter_mut()
                .find(|a| Some(&a.id) == c.account_id.as_ref())
                .unwrap(),
        };
        for f in &c.fields {
            match &f.after {
                Some(v) => target.fields.insert(&f.name, v.clone()),
                None => target.fields.remove(&f.name),
            };
        }
        if c.action == Action::Suspend {
            suspended.insert(target.id.clone());
        }
    }
    let second = plan_once(&observed, &suspended);
    assert!(second.changes.is_empty(), "{:#?}", second.changes);
}
