//! Safety guards (SPEC §6.3, §6.8): `minSourceEntries` refuses the whole run; a source shrink
//! against the baseline, a missing baseline and `maxDestructive` refuse only suspends and
//! deletes.

use std::collections::BTreeSet;

use super::plan::{Guard, GuardStatus, Plan};
use super::{Input, namespace};

pub fn apply(plan: &mut Plan, input: &Input, managed_total: usize) {
    let policy = input.policy;
    let mut guards = Vec::new();
    let mut blocked_namespaces: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut run_refused = false;
    for (i, m) in input.mappings.iter().enumerate() {
        let n = input.desired.entry_counts.get(i).copied().unwrap_or(0) as u64;
        let min = policy.min_source_entries;
        let status = if n < min {
            run_refused = true;
            GuardStatus::Refused
        } else {
            GuardStatus::Ok
        };
        guards.push(Guard {
            name: "minSourceEntries".into(),
            mapping: Some(m.name.clone()),
            status,
            detail: format!("{n} entries, minimum {min}"),
        });
        let max = policy.max_source_shrink_percent;
        let (status, detail) = match input.baseline.and_then(|b| b.get(&m.name)) {
            None => (
                GuardStatus::NoBaseline,
                format!("{n} entries, no baseline yet"),
            ),
            Some(&b) => {
                let shrink = if b == 0 || n >= b {
                    0.0
                } else {
                    (b - n) as f64 * 100.0 / b as f64
                };
                let detail =
                    format!("{n} entries vs baseline {b} ({shrink:.1}% fewer, limit {max}%)");
                if shrink > max {
                    (GuardStatus::Refused, detail)
                } else {
                    (GuardStatus::Ok, detail)
                }
            }
        };
        if status != GuardStatus::Ok {
            blocked_namespaces.insert(namespace(m));
        }
        guards.push(Guard {
            name: "maxSourceShrinkPercent".into(),
            mapping: Some(m.name.clone()),
            status,
            detail,
        });
    }

    if run_refused {
        plan.run_refused = true;
        plan.changes.clear();
    }

    // Destructive changes of a namespace whose source guard did not pass are held back.
    let ns_of = |mapping: &str| {
        input
            .mappings
            .iter()
            .find(|m| m.name == mapping)
            .map(namespace)
            .unwrap_or_default()
    };
    let (held, kept): (Vec<_>, Vec<_>) =
        std::mem::take(&mut plan.changes)
            .into_iter()
            .partition(|c| {
                c.action.is_destructive() && blocked_namespaces.contains(&ns_of(&c.mapping))
            });
    plan.changes = kept;
    plan.held_back = held;

    // maxDestructive over what is left.
    let d = plan
        .changes
        .iter()
        .filter(|c| c.action.is_destructive())
        .count() as u64;
    let by_percent = policy
        .max_destructive_percent
        .map(|p| (p * managed_total as f64 / 100.0).floor() as u64);
    let limit = match (policy.max_destructive_count, by_percent) {
        (Some(c), Some(p)) => Some(c.min(p)),
        (c, p) => c.or(p),
    };
    let detail = match (limit, policy.max_destructive_percent) {
        (None, _) => format!("{d}, no bound"),
        (Some(l), Some(p)) if Some(l) != policy.max_destructive_count => {
            format!("{d} of {l} ({p}% of {managed_total} managed accounts)")
        }
        (Some(l), _) => format!("{d} of {l}"),
    };
    let exceeds = limit.is_some_and(|l| d > l);
    let status = if !exceeds {
        GuardStatus::Ok
    } else if input.options.allow_destructive.is_some_and(|a| a >= d) {
        GuardStatus::Overridden
    } else {
        GuardStatus::Refused
    };
    if status == GuardStatus::Refused {
        let (held, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut plan.changes)
            .into_iter()
            .partition(|c| c.action.is_destructive());
        plan.changes = kept;
        plan.held_back.extend(held);
    }
    let detail = if status == GuardStatus::Refused {
        format!("{detail}; rerun with --allow-destructive {d} to allow")
    } else {
        detail
    };
    guards.push(Guard {
        name: "maxDestructive".into(),
        mapping: None,
        status,
        detail,
    });
    plan.guards = guards;
}
