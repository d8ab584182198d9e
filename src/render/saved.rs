//! The saved plan (`plan --out F`, SPEC §7 "Saved plan"): the format-1 JSON document plus what
//! `apply F` needs, and `plan_digest`. Schema in `schema/saved-plan.schema.json`, documented in
//! docs/plan-format.md. Never holds a secret: desired values are rendered rule values, and
//! rules cannot call `secret()` (only Endpoint and webhook templates can).

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::PlanReport;
use super::json::JsonPlan;
use crate::pass::DesiredFields;
use crate::reconcile::{Action, Change};

/// A saved plan document.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(
    title = "carbonite-sync saved plan",
    description = "A plan written by `plan --out F` for `apply F` (format version 1)."
)]
pub struct SavedPlan<'a> {
    /// The same fields as `plan --format json`.
    #[serde(flatten)]
    pub plan: JsonPlan<'a>,
    /// `sha256:` + hex of the canonical JSON (sorted keys, no whitespace) of `changes`.
    pub plan_digest: String,
    /// What apply executes: one per element of `changes`, in the same order.
    pub operations: Vec<SavedOperation<'a>>,
    /// Definitions of the orchestrations the operations trigger, by name (`on`, `when`,
    /// `steps`), for the reviewer; apply runs the config's, whose digest must match.
    pub orchestrations: &'a BTreeMap<String, serde_json::Value>,
    /// In-scope entries per mapping of the directory read the plan comes from: `apply FILE`
    /// records them as the baseline (SPEC §6.3) unless the shrink guard refused the read.
    pub entry_counts: &'a BTreeMap<String, u64>,
}

/// One operation apply executes.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SavedOperation<'a> {
    pub action: Action,
    pub mapping: &'a str,
    pub key: &'a str,
    /// The account to write; `null` for creates.
    pub account_id: Option<&'a str>,
    /// The fingerprint apply checks before writing; `null` for creates.
    pub observed_fingerprint: Option<&'a str>,
    /// Every desired field (key field included) for create/adopt/update/reactivate; `null` when
    /// the user is gone (suspend/delete of an orphan). `null` values are empty.
    pub desired: Option<&'a DesiredFields>,
    /// Entry attributes the triggered webhooks and conditions reference (text values as is,
    /// binary ones base64 under `name::`, plus `@disabled` and `@anchor`); empty when the
    /// change triggers no orchestration.
    pub entry_attributes: Option<&'a BTreeMap<String, Vec<String>>>,
}

/// `sha256:` over the canonical JSON of `changes`.
pub fn plan_digest(changes: &[Change]) -> String {
    // serde_json's map is ordered by key (no `preserve_order`): `to_value` sorts every object.
    let canonical = serde_json::to_value(changes)
        .map(|v| v.to_string())
        .unwrap_or_default();
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    )
}

/// What a saved plan holds beyond the JSON plan.
pub struct Extras<'a> {
    /// Desired values by (mapping, key).
    pub desired: &'a BTreeMap<(String, String), DesiredFields>,
    /// Webhook-referenced entry attributes by (mapping, key).
    pub entry_attributes: &'a BTreeMap<(String, String), BTreeMap<String, Vec<String>>>,
    pub orchestrations: &'a BTreeMap<String, serde_json::Value>,
    pub entry_counts: &'a BTreeMap<String, u64>,
}

pub fn document<'a>(r: &'a PlanReport<'a>, extras: &Extras<'a>) -> SavedPlan<'a> {
    let operations = r
        .plan
        .changes
        .iter()
        .map(|c| SavedOperation {
            action: c.action,
            mapping: &c.mapping,
            key: &c.key,
            account_id: c.account_id.as_deref(),
            observed_fingerprint: c.observed_fingerprint.as_deref(),
            desired: extras.desired.get(&(c.mapping.clone(), c.key.clone())),
            entry_attributes: extras
                .entry_attributes
                .get(&(c.mapping.clone(), c.key.clone())),
        })
        .collect();
    SavedPlan {
        plan: document_of(r),
        plan_digest: plan_digest(&r.plan.changes),
        operations,
        orchestrations: extras.orchestrations,
        entry_counts: extras.entry_counts,
    }
}

fn document_of<'a>(r: &'a PlanReport<'a>) -> JsonPlan<'a> {
    super::json::document(r)
}

/// Pretty JSON with a trailing newline.
pub fn render(r: &PlanReport, extras: &Extras) -> Result<String, serde_json::Error> {
    let mut s = serde_json::to_string_pretty(&document(r, extras))?;
    s.push('\n');
    Ok(s)
}
