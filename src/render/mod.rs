//! Plan -> text | markdown | JSON (SPEC §7). Pure functions of a [`PlanReport`]: no clock, no
//! terminal detection (colour is a parameter), so snapshots are stable.

pub mod compare;
pub mod json;
pub mod markdown;
pub mod saved;
pub mod text;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::reconcile::Plan;

/// Where the observed accounts came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ObservedSource {
    /// Listed from Carbonite during this run.
    Live,
    /// The observed-state cache of an earlier listing.
    Cache,
    /// No accounts were read (offline).
    None,
}

/// Facts about a plan that are not the plan itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanMeta {
    /// RFC 3339, from the injectable clock.
    pub generated_at: String,
    /// `sha256:...` over the config files and the LDIF source.
    pub config_digest: String,
    pub git_commit: Option<String>,
    pub observed_source: ObservedSource,
    /// RFC 3339 time of the listing the plan is based on.
    pub listed_at: Option<String>,
    /// Human age of the cache ("3h 12m") when the source is the cache.
    pub cache_age: Option<String>,
    /// `sha256:...` over the observed accounts.
    pub observed_fingerprint: Option<String>,
    /// API calls per route that applying the plan needs.
    pub calls: BTreeMap<String, u64>,
    /// RFC 3339: when the last call can be made under the rate limits.
    pub earliest_completion: Option<String>,
}

/// A plan with its metadata: what every renderer takes.
pub struct PlanReport<'a> {
    pub plan: &'a Plan,
    pub meta: &'a PlanMeta,
}

/// `Plan: 3 to create, 1 to adopt, ...`.
pub fn plan_line(plan: &Plan) -> String {
    let s = &plan.summary;
    format!(
        "Plan: {} to create, {} to adopt, {} to update, {} to reactivate, {} to suspend, {} to delete.",
        s.create, s.adopt, s.update, s.reactivate, s.suspend, s.delete
    )
}

/// `Conflicts: 1, unchanged: 120, unmanaged: 4.`
pub fn counts_line(plan: &Plan) -> String {
    let s = &plan.summary;
    format!(
        "Conflicts: {}, unchanged: {}, unmanaged: {}.",
        s.conflict, s.unchanged, s.unmanaged
    )
}

/// `Estimate: 4 API calls (POST /api/users: 3, ...); earliest completion T.`
pub fn estimate_line(meta: &PlanMeta) -> String {
    let total: u64 = meta.calls.values().sum();
    if total == 0 {
        return "Estimate: no API calls needed.".into();
    }
    let per: Vec<String> = meta
        .calls
        .iter()
        .map(|(r, n)| format!("{r}: {n}"))
        .collect();
    let when = meta
        .earliest_completion
        .as_deref()
        .map(|t| format!("; earliest completion {t}"))
        .unwrap_or_default();
    format!(
        "Estimate: {total} API call{} ({}){when}.",
        if total == 1 { "" } else { "s" },
        per.join(", ")
    )
}

/// The line saying the plan is based on the cache, if it is.
pub fn cache_line(meta: &PlanMeta) -> Option<String> {
    match meta.observed_source {
        ObservedSource::Cache => Some(format!(
            "Observed accounts come from the cache (listed {}{}), not a live listing.",
            meta.listed_at.as_deref().unwrap_or("at an unknown time"),
            meta.cache_age
                .as_deref()
                .map(|a| format!(", {a} ago"))
                .unwrap_or_default()
        )),
        ObservedSource::None => {
            Some("No Carbonite accounts were read (offline): every user is planned as new.".into())
        }
        ObservedSource::Live => None,
    }
}

fn show(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(empty)")
}

#[cfg(test)]
mod tests;

/// Markdown `<details>` sections, one per (title, items), appended while the text stays within
/// `max` characters given `used` already spent; items that do not fit are counted. Returns the
/// sections' text and the number of items left out.
pub(crate) fn details_within(
    used: usize,
    sections: Vec<(String, Vec<String>)>,
    max: usize,
) -> (String, usize) {
    use std::fmt::Write as _;
    let mut body = String::new();
    let mut omitted = 0usize;
    for (title, items) in sections {
        let open = format!("\n<details><summary>{title}</summary>\n\n");
        let close = "\n</details>\n";
        if used + body.len() + open.len() + close.len() > max {
            omitted += items.len();
            continue;
        }
        body.push_str(&open);
        let mut shown = 0;
        for it in &items {
            if used + body.len() + it.len() + close.len() > max {
                break;
            }
            body.push_str(it);
            shown += 1;
        }
        if shown < items.len() {
            let _ = writeln!(body, "\n_… {} more not shown._", items.len() - shown);
            omitted += items.len() - shown;
        }
        body.push_str(close);
    }
    (body, omitted)
}
