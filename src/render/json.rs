//! The versioned JSON plan (`format_version: "1"`, SPEC §7; schema in `schema/plan.schema.json`,
//! documented in docs/plan-format.md).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ObservedSource, PlanReport};
use crate::reconcile::{Change, Conflict, Guard, Summary};

/// The JSON plan document.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(
    title = "carbonite-sync plan",
    description = "A plan as printed by `plan --format json` (format version 1)."
)]
pub struct JsonPlan<'a> {
    /// Always "1".
    pub format_version: &'static str,
    /// RFC 3339.
    pub generated_at: &'a str,
    pub config: JsonConfig<'a>,
    pub observed: JsonObserved<'a>,
    pub summary: &'a Summary,
    /// Sorted by execution order, then mapping, then key.
    pub changes: &'a [Change],
    pub conflicts: &'a [Conflict],
    pub guards: &'a [Guard],
    pub estimate: JsonEstimate<'a>,
}

/// Which config the plan was computed from.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct JsonConfig<'a> {
    /// `sha256:` over the sorted (relative path, NUL, bytes) of every YAML file and the LDIF source.
    pub digest: &'a str,
    /// The config dir's git commit, when it is a git work tree.
    pub git_commit: Option<&'a str>,
}

/// Where the observed accounts came from.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct JsonObserved<'a> {
    /// `live`, `cache` or `none`.
    pub source: &'a ObservedSource,
    /// RFC 3339 time of the listing.
    pub listed_at: Option<&'a str>,
    /// Human age of the cache ("3h 12m") when `source` is `cache`; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_age: Option<&'a str>,
    /// `sha256:` over the observed accounts.
    pub fingerprint: Option<&'a str>,
}

/// API calls needed and when they can be done under the rate limits.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct JsonEstimate<'a> {
    /// Calls per route (`METHOD /path/template`).
    pub calls: &'a BTreeMap<String, u64>,
    /// RFC 3339.
    pub earliest_completion: Option<&'a str>,
}

pub fn document<'a>(r: &'a PlanReport<'a>) -> JsonPlan<'a> {
    let m = r.meta;
    JsonPlan {
        format_version: "1",
        generated_at: &m.generated_at,
        config: JsonConfig {
            digest: &m.config_digest,
            git_commit: m.git_commit.as_deref(),
        },
        observed: JsonObserved {
            source: &m.observed_source,
            listed_at: m.listed_at.as_deref(),
            cache_age: m.cache_age.as_deref(),
            fingerprint: m.observed_fingerprint.as_deref(),
        },
        summary: &r.plan.summary,
        changes: &r.plan.changes,
        conflicts: &r.plan.conflicts,
        guards: &r.plan.guards,
        estimate: JsonEstimate {
            calls: &m.calls,
            earliest_completion: m.earliest_completion.as_deref(),
        },
    }
}

/// Pretty JSON with a trailing newline.
pub fn render(r: &PlanReport) -> String {
    let mut s = serde_json::to_string_pretty(&document(r))
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}
