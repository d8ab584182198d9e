//! The reconcile core (SPEC §6): desired accounts and observed accounts in, a [`Plan`] out.
//!
//! PURE: no I/O, no clock, no network. Everything here is plain data so tests (and property
//! tests) can drive it directly; the slow and fallible parts live at the edges.

pub mod desired;
pub mod fields;
pub mod fingerprint;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A fast non-cryptographic hash (foldhash) for the core's big in-memory maps: SipHash was
/// ~15% of the core's time at 300k users. The keys come from the directory and Carbonite, not
/// from an attacker choosing collisions, and nothing depends on iteration order (conflicts and
/// changes are sorted at the end).
type FastHash = foldhash::fast::FixedState;
type HashMap<K, V> = std::collections::HashMap<K, V, FastHash>;
type HashSet<K> = std::collections::HashSet<K, FastHash>;

pub use desired::{CompiledMapping, Desired, DesiredAccount};
pub use fields::Fields;
pub use plan::{
    Action, Change, Conflict, ConflictKind, FieldChange, Guard, GuardStatus, Plan, Summary,
};

use crate::config::model::{Compare, GUID_FIELDS, Mapping, Orphans, Policy, Strength};

/// An account as observed through the inbound endpoints. Empty values are not stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedAccount {
    pub id: String,
    /// Field -> non-empty value (PascalCase names).
    pub fields: Fields,
    /// Endpoints that listed it (shared: most accounts have the same set).
    pub endpoints: Arc<BTreeSet<String>>,
}

impl ObservedAccount {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .get(field)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Per-mapping entry counts of the last complete pass (`<state>/baseline.json`).
pub type Baseline = BTreeMap<String, u64>;

/// Knobs of one pass.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--mapping`: plan only these mappings (None: all).
    pub only_mappings: Option<BTreeSet<String>>,
    /// `--allow-destructive N`.
    pub allow_destructive: Option<u64>,
    /// Plan suspends/deletes at all (watch: only on full reads).
    pub plan_destructive: bool,
}

/// Everything a pass decides on.
pub struct Input<'a> {
    pub mappings: &'a [Mapping],
    pub policy: &'a Policy,
    pub desired: &'a Desired,
    pub observed: &'a [ObservedAccount],
    /// Ids of accounts this tool suspended (`<state>/suspended.json`).
    pub suspended_by_us: &'a BTreeSet<String>,
    pub baseline: Option<&'a Baseline>,
    /// Account fields that count for fingerprints: §5's User fields plus `extraFields`.
    pub fingerprint_fields: &'a [String],
    pub options: Options,
}

const STATUS: &str = "Status";
const ACTIVE: &str = "Active";
const SUSPENDED: &str = "Suspended";

/// Compare two values under a rule's comparison (absent = null = "").
pub fn values_equal(field: &str, a: Option<&str>, b: Option<&str>, compare: Compare) -> bool {
    values_equal_as(GUID_FIELDS.contains(&field), a, b, compare)
}

/// [`values_equal`] with the field's GUID-ness decided by the caller.
fn values_equal_as(guid: bool, a: Option<&str>, b: Option<&str>, compare: Compare) -> bool {
    let a = a.filter(|s| !s.is_empty());
    let b = b.filter(|s| !s.is_empty());
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            if guid {
                return x.eq_ignore_ascii_case(y);
            }
            match compare {
                Compare::Exact => x == y,
                Compare::CaseInsensitive => x == y || x.to_lowercase() == y.to_lowercase(),
                Compare::Trimmed => x.trim() == y.trim(),
            }
        }
        _ => false,
    }
}

/// The namespace of a mapping: the accounts of the endpoints it reads.
fn namespace(m: &Mapping) -> Vec<String> {
    let mut e = m.endpoints.clone();
    e.sort();
    e.dedup();
    e
}

/// Run the reconcile core (big lists of matched accounts diffed on one thread per core).
pub fn reconcile(input: &Input) -> Plan {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    reconcile_with(input, threads)
}

/// [`reconcile`] on at most `threads` threads; the plan does not depend on `threads`.
pub fn reconcile_with(input: &Input, threads: usize) -> Plan {
    let mappings = input.mappings;
    let policy = input.policy;
    let mut plan = Plan::default();
    plan.conflicts
        .extend(input.desired.conflicts.iter().cloned());
    let selected = |m: &Mapping| {
        input
            .options
            .only_mappings
            .as_ref()
            .is_none_or(|s| s.contains(&m.name))
    };
    // Namespaces by index: `ns_of[mapping]` indexes `namespaces`.
    let namespaces: Vec<Vec<String>> = mappings
        .iter()
        .map(namespace)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let ns_of: Vec<usize> = mappings
        .iter()
        .map(|m| {
            namespaces
                .iter()
                .position(|n| *n == namespace(m))
                .unwrap_or(0)
        })
        .collect();

    // Held keys per mapping: conflicts never lose their accounts.
    let mut held = Held(vec![HashSet::default(); namespaces.len()]);
    for (mi, k) in &input.desired.held {
        held.insert((ns_of[*mi], k.clone()));
    }

    // multiple_mappings: one anchor in two mappings (only possible with two mappings).
    // Anchor -> (first mapping, in more than one mapping).
    let mut multi_anchor: HashMap<&str, BTreeSet<usize>> = HashMap::default();
    if mappings.len() > 1 {
        let mut by_anchor: HashMap<&str, (usize, bool)> = HashMap::default();
        by_anchor.reserve(input.desired.accounts.len());
        for d in &input.desired.accounts {
            if !d.anchor().is_empty() {
                let e = by_anchor.entry(d.anchor()).or_insert((d.mapping, false));
                if e.0 != d.mapping {
                    e.1 = true;
                }
            }
        }
        // The mappings of the (rare) anchors in more than one mapping.
        if by_anchor.values().any(|(_, multi)| *multi) {
            for d in &input.desired.accounts {
                if by_anchor.get(d.anchor()).is_some_and(|(_, multi)| *multi) {
                    multi_anchor
                        .entry(d.anchor())
                        .or_default()
                        .insert(d.mapping);
                }
            }
        }
    }

    let mut claimed: BTreeMap<&str, Vec<&DesiredAccount>> = BTreeMap::new(); // account id -> correlators
    let mut matched: Vec<(&DesiredAccount, &ObservedAccount)> = Vec::new();
    let mut creates: Vec<&DesiredAccount> = Vec::new();
    let mut managed_total = 0usize;
    let mut orphans: Vec<(&Mapping, &ObservedAccount, String)> = Vec::new();
    // Accounts without a key, per namespace (the unmanaged ones are counted at the end).
    let mut unkeyed_by_ns: Vec<Vec<&ObservedAccount>> = Vec::with_capacity(namespaces.len());

    for (nsi, ns) in namespaces.iter().enumerate() {
        let ns_mappings: Vec<&Mapping> = mappings
            .iter()
            .enumerate()
            .filter(|(i, _)| ns_of[*i] == nsi)
            .map(|(_, m)| m)
            .collect();
        let key_field = ns_mappings[0].primary_key.carbonite.as_str();
        let ns_desired: Vec<&DesiredAccount> = input
            .desired
            .accounts
            .iter()
            .filter(|d| ns_of[d.mapping] == nsi)
            .collect();
        let accounts: Vec<&ObservedAccount> = input
            .observed
            .iter()
            .filter(|a| a.endpoints.iter().any(|e| ns.contains(e)))
            .collect();
        // One slot per key value of the namespace: how many entries and accounts have it.
        // The map only indexes `slots`, which are in first-seen order (desired first), so the
        // passes below walk them sequentially.
        let mut index: HashMap<&str, u32> = HashMap::default();
        index.reserve(ns_desired.len().max(accounts.len()));
        let mut slots: Vec<Slot> = Vec::with_capacity(ns_desired.len());
        // duplicate_key_source: one key, two entries, in one namespace.
        let desired_slot: Vec<usize> = ns_desired
            .iter()
            .map(|d| {
                let i = slot_of(&mut index, &mut slots, d.key.as_str());
                slots[i].entries += 1;
                i
            })
            .collect();
        let mut unkeyed: Vec<&ObservedAccount> = Vec::new();
        let mut any_duplicate = false;
        for a in &accounts {
            match a.get(key_field) {
                Some(k) => {
                    let i = slot_of(&mut index, &mut slots, k);
                    let slot = &mut slots[i];
                    slot.accounts += 1;
                    slot.first.get_or_insert(*a);
                    any_duplicate |= slot.accounts > 1;
                }
                None => unkeyed.push(a),
            }
        }
        managed_total += slots.iter().filter(|s| s.accounts == 1).count();
        // The accounts of duplicated key values (rare), in input order.
        let mut dup_lists: BTreeMap<&str, Vec<&ObservedAccount>> = BTreeMap::new();
        if any_duplicate {
            for a in &accounts {
                if let Some(k) = a.get(key_field)
                    && slots[index[k] as usize].accounts > 1
                {
                    dup_lists.entry(k).or_default().push(a);
                }
            }
        }
        for (k, list) in &dup_lists {
            held.insert((nsi, k.to_string()));
            for a in list {
                plan.conflicts.push(Conflict {
                    kind: ConflictKind::DuplicateKeyObserved,
                    mapping: None,
                    key: Some(k.to_string()),
                    dn: None,
                    account_id: Some(a.id.clone()),
                    reason: format!("{} accounts have {key_field} {k}", list.len()),
                });
            }
        }
        for (d, &si) in ns_desired.iter().zip(&desired_slot) {
            let m = &mappings[d.mapping];
            let slot = &slots[si];
            let conflict = |kind, reason: String| Conflict {
                kind,
                mapping: Some(m.name.clone()),
                key: Some(d.key.clone()),
                dn: Some(d.dn().to_string()),
                account_id: None,
                reason,
            };
            if let Some(set) = multi_anchor.get(d.anchor()) {
                let names: Vec<&str> = set.iter().map(|i| mappings[*i].name.as_str()).collect();
                plan.conflicts.push(conflict(
                    ConflictKind::MultipleMappings,
                    format!("the entry is in scope of mappings {}", names.join(", ")),
                ));
                held.insert((nsi, d.key.clone()));
                continue;
            }
            if slot.entries > 1 {
                plan.conflicts.push(conflict(
                    ConflictKind::DuplicateKeySource,
                    format!(
                        "{} entries have {} {}",
                        slot.entries, m.primary_key.ldap, d.key
                    ),
                ));
                held.insert((nsi, d.key.clone()));
                continue;
            }
            if slot.accounts > 1 {
                continue; // its accounts are conflicts; the key is held
            }
            if let Some(a) = slot.first {
                matched.push((d, a));
                continue;
            }
            let mut outcome = None;
            for rule in &m.correlate {
                let Some(want) = d
                    .entry
                    .first_text(&rule.ldap)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                else {
                    continue;
                };
                let cands: Vec<&ObservedAccount> = unkeyed
                    .iter()
                    .copied()
                    .filter(|a| {
                        values_equal(
                            &rule.carbonite,
                            a.get(&rule.carbonite),
                            Some(want),
                            rule.compare,
                        )
                    })
                    .collect();
                match cands.len() {
                    0 => continue,
                    1 => {
                        outcome = Some(Ok(cands[0]));
                        break;
                    }
                    n => {
                        outcome = Some(Err(format!(
                            "{n} accounts without a key have {} {want}",
                            rule.carbonite
                        )));
                        break;
                    }
                }
            }
            match outcome {
                Some(Ok(a)) => claimed.entry(&a.id).or_default().push(d),
                Some(Err(reason)) => {
                    held.insert((nsi, d.key.clone()));
                    plan.conflicts
                        .push(conflict(ConflictKind::AmbiguousCorrelation, reason));
                }
                None => creates.push(d),
            }
        }
        // Orphans: managed accounts whose key no in-scope entry has and no conflict holds.
        let owned = ns_mappings.iter().all(|m| selected(m));
        if owned && input.options.plan_destructive {
            for slot in &slots {
                if slot.accounts != 1 || slot.entries > 0 || held.contains(nsi, slot.key) {
                    continue;
                }
                if let Some(a) = slot.first {
                    orphans.push((ns_mappings[0], a, slot.key.to_string()));
                }
            }
        }
        unkeyed_by_ns.push(unkeyed);
    }

    // Correlation claims: an account claimed by two entries is ambiguous for both.
    let mut adopts: Vec<(&DesiredAccount, &ObservedAccount)> = Vec::new();
    let by_id: HashMap<&str, &ObservedAccount> = if claimed.is_empty() {
        HashMap::default()
    } else {
        input.observed.iter().map(|a| (a.id.as_str(), a)).collect()
    };
    let mut adopted_ids = BTreeSet::new();
    for (id, ds) in &claimed {
        if ds.len() == 1 {
            adopts.push((ds[0], by_id[id]));
            adopted_ids.insert(*id);
        } else {
            for d in ds {
                let m = &mappings[d.mapping];
                held.insert((ns_of[d.mapping], d.key.clone()));
                plan.conflicts.push(Conflict {
                    kind: ConflictKind::AmbiguousCorrelation,
                    mapping: Some(m.name.clone()),
                    key: Some(d.key.clone()),
                    dn: Some(d.dn().to_string()),
                    account_id: Some(id.to_string()),
                    reason: format!("account {id} matches {} entries", ds.len()),
                });
            }
        }
    }
    let conflicted_ids: BTreeSet<String> = plan
        .conflicts
        .iter()
        .filter_map(|c| c.account_id.clone())
        .collect();

    let fp = |a: &ObservedAccount| Some(fingerprint::fingerprint(a, input.fingerprint_fields));
    let mut changes: Vec<Change> = Vec::new();

    // Adopt.
    for (d, a) in &adopts {
        let m = &mappings[d.mapping];
        if !selected(m) {
            continue;
        }
        let mut fields = vec![FieldChange {
            name: m.primary_key.carbonite.clone(),
            before: a.get(&m.primary_key.carbonite).map(str::to_string),
            after: Some(d.key.clone()),
        }];
        for (r, want) in m.attributes.iter().zip(d.values.iter()) {
            if r.field == STATUS {
                continue;
            }
            let want = want.clone();
            let have = a.get(&r.field);
            let write = if r.create_only || r.strength == Strength::Weak {
                have.is_none() && want.is_some()
            } else if want.is_none() && r.omit_if_empty {
                false
            } else {
                !values_equal(&r.field, have, want.as_deref(), r.compare)
            };
            if write {
                fields.push(FieldChange {
                    name: r.field.clone(),
                    before: have.map(str::to_string),
                    after: want,
                });
            }
        }
        changes.push(change(Action::Adopt, m, d, Some(a), fp(a), fields));
        status_change(&mut changes, m, d, a, input.suspended_by_us, &fp);
    }

    // Create.
    if policy.create {
        for d in &creates {
            let m = &mappings[d.mapping];
            if !selected(m) {
                continue;
            }
            let mut fields = vec![FieldChange {
                name: m.primary_key.carbonite.clone(),
                before: None,
                after: Some(d.key.clone()),
            }];
            for (r, v) in m.attributes.iter().zip(d.values.iter()) {
                if let Some(v) = v {
                    fields.push(FieldChange {
                        name: r.field.clone(),
                        before: None,
                        after: Some(v.clone()),
                    });
                }
            }
            let missing: Vec<&str> = desired::REQUIRED_FIELDS
                .iter()
                .copied()
                .filter(|f| !fields.iter().any(|c| c.name == *f))
                .collect();
            if !missing.is_empty() {
                plan.conflicts.push(Conflict {
                    kind: ConflictKind::RequiredFieldEmpty,
                    mapping: Some(m.name.clone()),
                    key: Some(d.key.clone()),
                    dn: Some(d.dn().to_string()),
                    account_id: None,
                    reason: format!("cannot create without {}", missing.join(", ")),
                });
                continue;
            }
            changes.push(change(Action::Create, m, d, None, None, fields));
        }
    }

    // Update, reactivate, suspend of matched accounts.
    // Per mapping and rule: (is the Status rule, is a GUID field); and the Status rule's index.
    let rule_kinds: Vec<Vec<(bool, bool)>> = mappings
        .iter()
        .map(|m| {
            m.attributes
                .iter()
                .map(|r| (r.field == STATUS, GUID_FIELDS.contains(&r.field.as_str())))
                .collect()
        })
        .collect();
    // Matched accounts diff independently: big lists are cut into one chunk per core (scoped
    // threads), joined in order, so the result does not depend on the split.
    let diff = |chunk: &[(&DesiredAccount, &ObservedAccount)]| {
        diff_matched(chunk, mappings, &rule_kinds, input, &selected, &fp)
    };
    let parts = in_chunks(&matched, threads, diff);
    let mut unchanged = 0usize;
    for (part, n) in parts {
        changes.extend(part);
        unchanged += n;
    }

    // Orphans.
    for (m, a, key) in &orphans {
        let fp = fp(a);
        match policy.orphans {
            Orphans::Ignore => {}
            Orphans::Suspend => {
                if a.get(STATUS) != Some(SUSPENDED) {
                    changes.push(Change {
                        action: Action::Suspend,
                        mapping: m.name.clone(),
                        key: key.clone(),
                        dn: None,
                        account_id: Some(a.id.clone()),
                        observed_fingerprint: fp,
                        orchestrations: Vec::new(),
                        fields: vec![FieldChange {
                            name: STATUS.into(),
                            before: a.get(STATUS).map(str::to_string),
                            after: Some(SUSPENDED.into()),
                        }],
                    });
                }
            }
            Orphans::Delete => changes.push(Change {
                action: Action::Delete,
                mapping: m.name.clone(),
                key: key.clone(),
                dn: None,
                account_id: Some(a.id.clone()),
                observed_fingerprint: fp,
                orchestrations: Vec::new(),
                fields: Vec::new(),
            }),
        }
    }

    // Unmanaged: accounts without a key that nothing adopted or claimed.
    let unmanaged = unkeyed_by_ns
        .iter()
        .flatten()
        .filter(|a| !adopted_ids.contains(a.id.as_str()) && !conflicted_ids.contains(&a.id))
        .count();

    changes.sort_by(|x, y| (x.action, &x.mapping, &x.key).cmp(&(y.action, &y.mapping, &y.key)));
    plan.changes = changes;
    guards::apply(&mut plan, input, managed_total);
    plan.conflicts.sort_by(|x, y| {
        (x.kind, &x.mapping, &x.key, &x.dn, &x.account_id).cmp(&(
            y.kind,
            &y.mapping,
            &y.key,
            &y.dn,
            &y.account_id,
        ))
    });
    let mut summary = Summary {
        unchanged,
        unmanaged,
        conflict: plan.conflicts.len(),
        ..Summary::default()
    };
    for c in &plan.changes {
        *summary.count(c.action) += 1;
    }
    plan.summary = summary;
    plan
}

/// A key value of a namespace: the entries and the accounts that have it.
struct Slot<'a> {
    key: &'a str,
    entries: u32,
    accounts: u32,
    /// The first account with the key.
    first: Option<&'a ObservedAccount>,
}

/// The slot of `key`, added when new.
fn slot_of<'a>(
    index: &mut HashMap<&'a str, u32>,
    slots: &mut Vec<Slot<'a>>,
    key: &'a str,
) -> usize {
    *index.entry(key).or_insert_with(|| {
        slots.push(Slot {
            key,
            entries: 0,
            accounts: 0,
            first: None,
        });
        (slots.len() - 1) as u32
    }) as usize
}

/// Keys held by conflicts, per namespace (looked up without allocating).
struct Held(Vec<HashSet<String>>);

impl Held {
    fn insert(&mut self, (ns, key): (usize, String)) {
        self.0[ns].insert(key);
    }
    fn contains(&self, ns: usize, key: &str) -> bool {
        self.0[ns].contains(key)
    }
}

/// Lists at least this long are cut into chunks for several threads.
const PARALLEL_MIN: usize = 10_000;

/// `f` of `items`: in one piece, or — for lists of at least [`PARALLEL_MIN`] with `threads > 1`
/// — in one chunk per thread on scoped threads (the first on this one), results in order. For
/// work whose items are independent, so that the result does not depend on `threads`.
pub(crate) fn in_chunks<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    if threads <= 1 || items.len() < PARALLEL_MIN {
        return vec![f(items)];
    }
    let size = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = items
            .chunks(size)
            .skip(1)
            .map(|chunk| s.spawn(move || f(chunk)))
            .collect();
        let mut parts = vec![f(&items[..size])];
        parts.extend(handles.into_iter().map(|h| {
            h.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }));
        parts
    })
}

/// Update, reactivate and suspend changes of matched accounts, and how many are unchanged.
fn diff_matched(
    matched: &[(&DesiredAccount, &ObservedAccount)],
    mappings: &[Mapping],
    rule_kinds: &[Vec<(bool, bool)>],
    input: &Input,
    selected: &(dyn Fn(&Mapping) -> bool + Sync),
    fp: &(dyn Fn(&ObservedAccount) -> Option<String> + Sync),
) -> (Vec<Change>, usize) {
    let policy = input.policy;
    let mut changes = Vec::new();
    let mut unchanged = 0usize;
    for (d, a) in matched {
        let m = &mappings[d.mapping];
        if !selected(m) {
            continue;
        }
        let before = changes.len();
        if policy.update {
            let mut fields = Vec::new();
            let rules = m.attributes.iter().zip(&rule_kinds[d.mapping]);
            for ((r, (status, guid)), want) in rules.zip(d.values.iter()) {
                if *status || r.create_only {
                    continue;
                }
                let want = want.as_deref();
                let have = a.get(&r.field);
                let write = match r.strength {
                    Strength::Weak => have.is_none() && want.is_some(),
                    Strength::Strong => {
                        let skip_empty = want.is_none() && r.omit_if_empty;
                        !skip_empty && !values_equal_as(*guid, have, want, r.compare)
                    }
                };
                if write {
                    fields.push(FieldChange {
                        name: r.field.clone(),
                        before: have.map(str::to_string),
                        after: want.map(str::to_string),
                    });
                }
            }
            if !fields.is_empty() {
                changes.push(change(Action::Update, m, d, Some(a), fp(a), fields));
            }
        }
        status_change(&mut changes, m, d, a, input.suspended_by_us, fp);
        if changes.len() == before {
            unchanged += 1;
        }
    }
    (changes, unchanged)
}

fn change(
    action: Action,
    m: &Mapping,
    d: &DesiredAccount,
    a: Option<&ObservedAccount>,
    fp: Option<String>,
    fields: Vec<FieldChange>,
) -> Change {
    Change {
        action,
        mapping: m.name.clone(),
        key: d.key.clone(),
        dn: Some(d.dn().to_string()),
        account_id: a.map(|a| a.id.clone()),
        observed_fingerprint: fp,
        orchestrations: Vec::new(),
        fields,
    }
}

/// Status transitions of a matched or adopted account (SPEC §6.7): Active -> Suspended is a
/// suspend; Suspended -> Active a reactivate, only for accounts this tool suspended.
fn status_change(
    changes: &mut Vec<Change>,
    m: &Mapping,
    d: &DesiredAccount,
    a: &ObservedAccount,
    suspended_by_us: &BTreeSet<String>,
    fp: &dyn Fn(&ObservedAccount) -> Option<String>,
) {
    let Some(want) = d.get(m, STATUS).flatten() else {
        return;
    };
    let have = a.get(STATUS).unwrap_or(ACTIVE);
    let action = if have == ACTIVE && want == SUSPENDED {
        Action::Suspend
    } else if have == SUSPENDED && want == ACTIVE && suspended_by_us.contains(&a.id) {
        Action::Reactivate
    } else {
        return;
    };
    changes.push(change(
        action,
        m,
        d,
        Some(a),
        fp(a),
        vec![FieldChange {
            name: STATUS.into(),
            before: Some(have.into()),
            after: Some(want.to_string()),
        }],
    ));
}

pub mod guards;

#[cfg(test)]
mod tests;
