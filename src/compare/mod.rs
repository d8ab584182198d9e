//! `compare`: the blast radius of a config change (SPEC §13).
//!
//! This module is PURE: [`diff`] takes what the base and the head config computed on the same
//! directory entries and observed accounts — desired accounts and plans — and returns the
//! differences as data. [`run`] holds the edges (reading, the effective head config).

pub mod run;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::config::model::Mapping;
use crate::reconcile::{Action, Conflict, Desired, DesiredAccount, Guard, Plan};

/// What one config computed: its mappings, desired accounts and plan.
#[derive(Clone, Copy)]
pub struct Side<'a> {
    pub mappings: &'a [Mapping],
    pub desired: &'a Desired,
    pub plan: &'a Plan,
}

/// How an account's place in the desired state changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountChange {
    /// Desired under the head config only (a widened filter, a new mapping).
    Entering,
    /// Desired under the base config only (a narrowed filter, a removed mapping).
    Leaving,
    /// Desired under both, with different field values or different planned actions.
    Changed,
}

impl AccountChange {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountChange::Entering => "entering",
            AccountChange::Leaving => "leaving",
            AccountChange::Changed => "changed",
        }
    }
}

/// One desired field under each config; `None` is empty (or not desired on that side).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FieldDiff {
    pub name: String,
    pub base: Option<String>,
    pub head: Option<String>,
}

/// One account the edit affects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct AccountDiff {
    pub mapping: String,
    /// The primary-key value.
    pub key: String,
    /// The directory entry (the head's, else the base's); `None` for accounts no entry has.
    pub dn: Option<String>,
    pub change: AccountChange,
    /// Desired fields that differ (every desired field for entering and leaving accounts).
    pub fields: Vec<FieldDiff>,
    /// What the base config's plan does to the account (empty: nothing); suspends and deletes
    /// that a guard holds back are included.
    pub base_actions: Vec<Action>,
    /// What the head config's plan does to the account (empty: nothing).
    pub head_actions: Vec<Action>,
    /// The base actions that a guard holds back today (a subset of `base_actions`).
    pub base_held_back: Vec<Action>,
    /// The head actions that a guard holds back today (a subset of `head_actions`).
    pub head_held_back: Vec<Action>,
}

/// Conflicts that only one side has.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ConflictDiff {
    /// Under the head config only.
    pub added: Vec<Conflict>,
    /// Under the base config only.
    pub removed: Vec<Conflict>,
}

/// A guard whose verdict differs: `status: detail` on each side (`None`: no such guard there,
/// e.g. a mapping added or removed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct GuardDiff {
    pub name: String,
    pub mapping: Option<String>,
    pub base: Option<String>,
    pub head: Option<String>,
}

/// Counts of the differences.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CompareSummary {
    pub entering: usize,
    pub leaving: usize,
    pub changed: usize,
    pub conflicts_added: usize,
    pub conflicts_removed: usize,
}

/// The differences between two configs' results, deterministic and sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    pub summary: CompareSummary,
    /// Sorted by mapping, then key.
    pub accounts: Vec<AccountDiff>,
    pub conflicts: ConflictDiff,
    /// Sorted by name, then mapping.
    pub guards: Vec<GuardDiff>,
}

impl Comparison {
    /// No account, conflict or guard differs.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.conflicts.added.is_empty()
            && self.conflicts.removed.is_empty()
            && self.guards.is_empty()
    }
}

/// (mapping name, key), borrowed from the sides.
type AccountKey<'a> = (&'a str, &'a str);
type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// Desired accounts by (mapping name, key). A key that a side has twice is a conflict there
/// (`duplicate_key_source`) and is left out: the conflict diff reports it.
fn desired_by_key<'a>(side: &Side<'a>) -> Map<AccountKey<'a>, &'a DesiredAccount> {
    let mut seen: Map<AccountKey<'a>, Option<&'a DesiredAccount>> = Map::default();
    for a in &side.desired.accounts {
        let name = side.mappings.get(a.mapping).map_or("", |m| m.name.as_str());
        seen.entry((name, a.key.as_str()))
            .and_modify(|v| *v = None)
            .or_insert(Some(a));
    }
    seen.into_iter()
        .filter_map(|(k, v)| v.map(|a| (k, a)))
        .collect()
}

/// Planned actions by (mapping, key), the destructive ones a guard held back included: the
/// reviewer must see that the edit would suspend an account even while a guard (e.g.
/// `no_baseline`) holds it back today; the guard diff says why it is held.
fn actions_by_key(plan: &Plan) -> Map<AccountKey<'_>, Planned> {
    let mut out: Map<AccountKey<'_>, Planned> = Map::default();
    for (c, held) in plan
        .changes
        .iter()
        .map(|c| (c, false))
        .chain(plan.held_back.iter().map(|c| (c, true)))
    {
        let p = out.entry((c.mapping.as_str(), c.key.as_str())).or_default();
        p.actions.push(c.action);
        if held {
            p.held_back.push(c.action);
        }
    }
    for p in out.values_mut() {
        p.actions.sort();
        p.held_back.sort();
    }
    out
}

/// What one plan does to one account.
#[derive(Default, PartialEq, Eq)]
struct Planned {
    actions: Vec<Action>,
    held_back: Vec<Action>,
}

fn all_fields(a: &DesiredAccount, side: &Side, head: bool) -> Vec<FieldDiff> {
    a.fields(&side.mappings[a.mapping])
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .map(|(name, v)| FieldDiff {
            name,
            base: if head { None } else { v.clone() },
            head: if head { v } else { None },
        })
        .collect()
}

fn changed_fields(
    b: &DesiredAccount,
    base: &Side,
    h: &DesiredAccount,
    head: &Side,
) -> Vec<FieldDiff> {
    let bf = b.fields(&base.mappings[b.mapping]);
    let hf = h.fields(&head.mappings[h.mapping]);
    let names: BTreeSet<&String> = bf.keys().chain(hf.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let bv = bf.get(name).cloned().flatten();
            let hv = hf.get(name).cloned().flatten();
            (bv != hv).then(|| FieldDiff {
                name: name.clone(),
                base: bv,
                head: hv,
            })
        })
        .collect()
}

type ConflictKey = (
    &'static str,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

fn conflict_key(c: &Conflict) -> ConflictKey {
    (
        c.kind.as_str(),
        c.mapping.clone(),
        c.key.clone(),
        c.dn.clone(),
        c.account_id.clone(),
        c.reason.clone(),
    )
}

fn only_in(a: &[Conflict], b: &[Conflict]) -> Vec<Conflict> {
    let other: BTreeSet<ConflictKey> = b.iter().map(conflict_key).collect();
    let mut out: Vec<Conflict> = a
        .iter()
        .filter(|c| !other.contains(&conflict_key(c)))
        .cloned()
        .collect();
    out.sort_by_key(conflict_key);
    out
}

fn guard_verdicts(guards: &[Guard]) -> BTreeMap<(String, Option<String>), String> {
    guards
        .iter()
        .map(|g| {
            let status = serde_json::to_value(g.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            (
                (g.name.clone(), g.mapping.clone()),
                format!("{status}: {}", g.detail),
            )
        })
        .collect()
}

/// The differences the edit from `base` to `head` causes.
pub fn diff(base: Side, head: Side) -> Comparison {
    let bd = desired_by_key(&base);
    let hd = desired_by_key(&head);
    let ba = actions_by_key(base.plan);
    let ha = actions_by_key(head.plan);
    let keys: BTreeSet<&AccountKey> = bd
        .keys()
        .chain(hd.keys())
        .chain(ba.keys())
        .chain(ha.keys())
        .collect();
    let mut out = Comparison::default();
    for k in keys {
        let none = Planned::default();
        let (bp, hp) = (ba.get(k).unwrap_or(&none), ha.get(k).unwrap_or(&none));
        let (change, fields, dn) = match (bd.get(k), hd.get(k)) {
            (None, Some(h)) => (
                AccountChange::Entering,
                all_fields(h, &head, true),
                Some(h.dn().to_string()),
            ),
            (Some(b), None) => (
                AccountChange::Leaving,
                all_fields(b, &base, false),
                Some(b.dn().to_string()),
            ),
            (Some(b), Some(h)) => (
                AccountChange::Changed,
                changed_fields(b, &base, h, &head),
                Some(h.dn().to_string()),
            ),
            (None, None) => (AccountChange::Changed, Vec::new(), None),
        };
        if change == AccountChange::Changed && fields.is_empty() && bp == hp {
            continue;
        }
        match change {
            AccountChange::Entering => out.summary.entering += 1,
            AccountChange::Leaving => out.summary.leaving += 1,
            AccountChange::Changed => out.summary.changed += 1,
        }
        out.accounts.push(AccountDiff {
            mapping: k.0.to_string(),
            key: k.1.to_string(),
            dn,
            change,
            fields,
            base_actions: bp.actions.clone(),
            head_actions: hp.actions.clone(),
            base_held_back: bp.held_back.clone(),
            head_held_back: hp.held_back.clone(),
        });
    }
    out.conflicts.added = only_in(&head.plan.conflicts, &base.plan.conflicts);
    out.conflicts.removed = only_in(&base.plan.conflicts, &head.plan.conflicts);
    out.summary.conflicts_added = out.conflicts.added.len();
    out.summary.conflicts_removed = out.conflicts.removed.len();

    let bg = guard_verdicts(&base.plan.guards);
    let hg = guard_verdicts(&head.plan.guards);
    let names: BTreeSet<&(String, Option<String>)> = bg.keys().chain(hg.keys()).collect();
    for n in names {
        let (b, h) = (bg.get(n).cloned(), hg.get(n).cloned());
        if b != h {
            out.guards.push(GuardDiff {
                name: n.0.clone(),
                mapping: n.1.clone(),
                base: b,
                head: h,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
