//! `apply PLANFILE` (SPEC §7 "Saved plan"): read the file `plan --out` wrote, check it was not
//! edited (its `plan_digest`), that the config is the one it was planned from (config digest),
//! and that no account it touches changed since (each account's fingerprint, read back with
//! `getUser`, or with one listing when that costs fewer calls).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use futures_util::StreamExt as _;
use serde::Deserialize;

use crate::carbonite::{CarboniteClient, ClientError};
use crate::config::Config;
use crate::config::model::USER_FIELDS;
use crate::reconcile::Change;
use crate::reconcile::fingerprint::fingerprint;

/// The parts of a saved plan that apply uses.
#[derive(Debug, Deserialize)]
pub struct SavedPlan {
    pub format_version: String,
    pub config: SavedConfig,
    pub changes: Vec<Change>,
    pub plan_digest: String,
    #[serde(default)]
    pub operations: Vec<SavedOperation>,
    /// Entry counts of the read the plan comes from (absent in older files).
    #[serde(default)]
    pub entry_counts: Option<BTreeMap<String, u64>>,
    #[serde(default)]
    pub guards: Vec<serde_json::Value>,
}

impl SavedPlan {
    /// The baseline this plan's read establishes: its entry counts, unless the shrink guard
    /// refused the read (a file is never written when `minSourceEntries` refused it).
    pub fn baseline(&self) -> Option<&BTreeMap<String, u64>> {
        let shrink_refused = self
            .guards
            .iter()
            .any(|g| g["name"] == "maxSourceShrinkPercent" && g["status"] == "refused");
        self.entry_counts.as_ref().filter(|_| !shrink_refused)
    }
}

/// What apply reads of each saved operation (beyond its change).
#[derive(Debug, Deserialize)]
pub struct SavedOperation {
    pub mapping: String,
    pub key: String,
    #[serde(default)]
    pub entry_attributes: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Debug, Deserialize)]
pub struct SavedConfig {
    pub digest: String,
    pub git_commit: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the plan {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: not a saved plan: {message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: plan format version {found}; this carbonite-sync reads version 1")]
    Version { path: String, found: String },
    #[error("{path}: the changes do not match the plan digest: the file was edited or is damaged")]
    Digest { path: String },
}

impl LoadError {
    pub fn hint(&self) -> &'static str {
        match self {
            LoadError::Read { .. } => "check the path; `plan --out FILE` writes a saved plan",
            LoadError::Parse { .. } | LoadError::Version { .. } => {
                "apply takes the file written by `plan --out FILE` (not `plan --format json` output)"
            }
            LoadError::Digest { .. } => {
                "a saved plan is applied exactly as reviewed; run `plan --out FILE` again"
            }
        }
    }
}

/// Read and check a saved plan.
pub fn load(path: &Path) -> Result<SavedPlan, LoadError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: shown.clone(),
        source,
    })?;
    let plan: SavedPlan = serde_json::from_slice(&bytes).map_err(|e| LoadError::Parse {
        path: shown.clone(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    if plan.format_version != "1" {
        return Err(LoadError::Version {
            path: shown,
            found: plan.format_version,
        });
    }
    if crate::render::saved::plan_digest(&plan.changes) != plan.plan_digest {
        return Err(LoadError::Digest { path: shown });
    }
    Ok(plan)
}

/// One touched account that no longer looks as planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stale {
    pub mapping: String,
    pub key: String,
    pub account_id: String,
    /// What differs: "gone" or "changed".
    pub why: String,
}

/// Fingerprint check of every account the plan touches. Reads each with `getUser`, or lists
/// the mappings' endpoints once when that takes fewer calls (`listing_pages`: the calls one
/// listing of those endpoints needs).
pub async fn stale_accounts(
    cfg: &Config,
    client: &CarboniteClient,
    changes: &[Change],
    listing_pages: u64,
    concurrency: usize,
) -> Result<Vec<Stale>, ClientError> {
    let mut fields: Vec<String> = USER_FIELDS.iter().map(|s| s.to_string()).collect();
    fields.extend(cfg.integration.carbonite.extra_fields.iter().cloned());
    let touched: Vec<&Change> = changes.iter().filter(|c| c.account_id.is_some()).collect();
    if touched.is_empty() {
        return Ok(Vec::new());
    }
    let ids: BTreeSet<&str> = touched
        .iter()
        .filter_map(|c| c.account_id.as_deref())
        .collect();
    let mut now: BTreeMap<String, Option<String>> = BTreeMap::new();
    if listing_pages < ids.len() as u64 {
        tracing::info!(
            accounts = ids.len(),
            pages = listing_pages,
            "checking the plan's accounts with one listing"
        );
        for (endpoints, key_field) in crate::pass::endpoint_groups(cfg) {
            for a in client.list_accounts(&endpoints, &key_field).await? {
                if let Some(id) = a.id.clone().filter(|id| ids.contains(id.as_str())) {
                    let o =
                        crate::pass::observed_from_raw(id.clone(), &a.fields, Default::default());
                    now.insert(id, Some(fingerprint(&o, &fields)));
                }
            }
        }
    } else {
        let got: Vec<Result<(String, Option<String>), ClientError>> =
            futures_util::stream::iter(ids.iter().copied())
                .map(|id| {
                    let fields = &fields;
                    async move {
                        let fp = client.get_user(id).await?.map(|a| {
                            let o = crate::pass::observed_from(a.id, &a.fields, Default::default());
                            fingerprint(&o, fields)
                        });
                        Ok((id.to_string(), fp))
                    }
                })
                .buffer_unordered(concurrency.max(1))
                .collect()
                .await;
        for r in got {
            let (id, fp) = r?;
            now.insert(id, fp);
        }
    }
    let mut stale = Vec::new();
    for c in touched {
        let Some(id) = c.account_id.as_deref() else {
            continue;
        };
        let why = match now.get(id).cloned().flatten() {
            None => Some("gone"),
            Some(fp) if Some(fp.as_str()) != c.observed_fingerprint.as_deref() => Some("changed"),
            Some(_) => None,
        };
        if let Some(why) = why {
            stale.push(Stale {
                mapping: c.mapping.clone(),
                key: c.key.clone(),
                account_id: id.to_string(),
                why: why.to_string(),
            });
        }
    }
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_plan_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let change = serde_json::json!({"action": "create", "mapping": "m", "key": "E1",
            "dn": "CN=a", "account_id": null, "observed_fingerprint": null,
            "orchestrations": [], "fields": [{"name": "Email", "before": null, "after": "a@x"}]});
        let changes: Vec<Change> = serde_json::from_value(serde_json::json!([change])).unwrap();
        let digest = crate::render::saved::plan_digest(&changes);
        let doc = serde_json::json!({"format_version": "1",
            "config": {"digest": "sha256:00", "git_commit": null},
            "changes": [change], "plan_digest": digest});
        let path = dir.path().join("plan.json");
        std::fs::write(&path, doc.to_string()).unwrap();
        assert_eq!(load(&path).unwrap().changes, changes);
        let edited = doc.to_string().replace("a@x", "b@x");
        std::fs::write(&path, edited).unwrap();
        assert!(matches!(load(&path), Err(LoadError::Digest { .. })));
        std::fs::write(&path, "{\n  \"format_version\": 1").unwrap();
        let e = load(&path).unwrap_err();
        assert!(e.to_string().contains(":2:"), "{e}");
    }
}
