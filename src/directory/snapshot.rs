//! `snapshot` (SPEC §13): directory entries written as LDIF that the LDIF source reads back
//! identically.

use std::collections::BTreeMap;

use super::dn::{Dn, Scope};
use super::entry::Entry;
use super::filter::Filter;
use super::ldif::write_ldif;
use super::read::snapshot_attributes;
use super::source::{DirectoryError, DirectorySource, SearchRequest};
use crate::config::model::Config;

/// What a snapshot reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSpec {
    /// Subtree search bases: the mappings' base DNs, each once, none below another.
    pub bases: Vec<String>,
    /// Canonical filter.
    pub filter: String,
    pub attributes: Vec<String>,
}

impl SnapshotSpec {
    /// The spec for a config: bases from the mappings (the directory's base DN when there are
    /// none), `filter` or else the OR of the mapping filters, `attributes` or else every user
    /// attribute — plus the flavor's anchor and change marker and the `disabledFilter`'s.
    pub fn for_config(
        config: &Config,
        filter: Option<&str>,
        attributes: Option<&[String]>,
    ) -> Result<Self, String> {
        let directory = &config.integration.directory;
        let filter = match filter {
            Some(text) => Filter::parse(text).map_err(|e| format!("--filter: {e}"))?,
            None => {
                let mut parts: Vec<Filter> = Vec::new();
                for mapping in &config.mappings {
                    let f = Filter::parse(&mapping.source.filter)
                        .map_err(|e| format!("mapping {}: invalid filter: {e}", mapping.name))?;
                    if !parts.contains(&f) {
                        parts.push(f);
                    }
                }
                match parts.len() {
                    0 => {
                        return Err(
                            "there are no mappings to take filters from: give --filter".into()
                        );
                    }
                    1 => parts.remove(0),
                    _ => Filter::Or(parts),
                }
            }
        };
        let mut bases: Vec<(Dn, String)> = Vec::new();
        let texts: Vec<&str> = if config.mappings.is_empty() {
            vec![directory.base_dn()]
        } else {
            config
                .mappings
                .iter()
                .map(|m| m.source.base_dn.as_str())
                .collect()
        };
        for text in texts {
            let dn = Dn::parse(text).map_err(|e| format!("invalid base DN {text}: {e}"))?;
            if bases
                .iter()
                .any(|(b, _)| *b == dn || dn.is_descendant_of(b))
            {
                continue;
            }
            bases.retain(|(b, _)| !b.is_descendant_of(&dn));
            bases.push((dn, text.to_string()));
        }
        bases.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(SnapshotSpec {
            bases: bases.into_iter().map(|(_, t)| t).collect(),
            filter: filter.to_string(),
            attributes: snapshot_attributes(
                directory.flavor,
                directory.disabled_filter.as_deref(),
                attributes,
            ),
        })
    }
}

/// Read the entries of a snapshot: a subtree search per base, entries sorted by normalised
/// DN (parents before children, see [`Dn`]'s order), each once.
pub async fn take(
    source: &dyn DirectorySource,
    spec: &SnapshotSpec,
) -> Result<Vec<Entry>, DirectoryError> {
    let mut sorted: BTreeMap<Dn, Entry> = BTreeMap::new();
    for base in &spec.bases {
        let request = SearchRequest::new(base.clone(), Scope::Subtree, spec.filter.clone())
            .with_attributes(spec.attributes.clone());
        for entry in source.search(&request).await? {
            // Servers send valid DNs; one that does not parse still gets a stable place.
            let key = Dn::parse(&entry.dn).unwrap_or_default();
            sorted.entry(key).or_insert(entry);
        }
    }
    Ok(sorted.into_values().collect())
}

/// The header facts of a snapshot file. Never credentials.
#[derive(Debug, Clone)]
pub struct SnapshotHeader {
    /// LDAP URL or LDIF path.
    pub source: String,
    /// RFC 3339 time the read finished.
    pub taken_at: String,
    /// `carbonite-sync X.Y.Z`.
    pub version: String,
}

/// The LDIF text of a snapshot: `version: 1`, the header as comments, the entries.
pub fn render(spec: &SnapshotSpec, header: &SnapshotHeader, entries: &[Entry]) -> String {
    let lines = [
        "carbonite-sync snapshot. It holds personal data: store and share it like the directory itself.".to_string(),
        format!("source: {}", header.source),
        format!("base: {}", spec.bases.join(" ; ")),
        format!("filter: {}", spec.filter),
        format!("attributes: {}", spec.attributes.join(" ")),
        format!("taken: {}", header.taken_at),
        format!("version: {}", header.version),
        format!("entries: {}", entries.len()),
    ];
    let mut out = String::with_capacity(entries.len() * 512);
    write_ldif(lines, entries, &mut out);
    out
}
