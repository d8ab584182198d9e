//! Desired state: each in-scope entry -> one desired account, keyed by the primary key, with
//! its mapped fields rendered (SPEC §6.4). Entries that cannot be rendered become conflicts.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::plan::{Conflict, ConflictKind};
use crate::config::model::{AttributeRule, Mapping};
use crate::directory::{AttrValue, Entry};
use crate::template::{
    CompiledTemplate, RenderContext, RenderError, TemplateEngine, TemplateIssue, Usage,
};

/// Fields that Carbonite requires on every account (SPEC §6.6 `required_field_empty`).
pub const REQUIRED_FIELDS: &[&str] = &["Email", "CompanyId", "UserGroupId"];

/// A mapping with its templates compiled once.
#[derive(Debug)]
pub struct CompiledMapping {
    pub mapping: Mapping,
    pub rules: Vec<(AttributeRule, CompiledTemplate)>,
}

/// Compile every rule of every mapping.
pub fn compile(
    engine: &mut TemplateEngine,
    mappings: &[Mapping],
) -> Result<Vec<CompiledMapping>, Vec<(String, TemplateIssue)>> {
    let mut out = Vec::new();
    let mut issues = Vec::new();
    for m in mappings {
        let mut rules = Vec::new();
        for r in &m.attributes {
            match engine.compile(&r.value, Usage::Attribute) {
                Ok(t) => rules.push((r.clone(), t)),
                Err(is) => issues.extend(
                    is.into_iter()
                        .map(|i| (format!("{}.{}", m.name, r.field), i)),
                ),
            }
        }
        out.push(CompiledMapping {
            mapping: m.clone(),
            rules,
        });
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(issues)
    }
}

/// One entry's desired account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredAccount {
    /// Index into the mapping list.
    pub mapping: usize,
    pub key: String,
    /// Rendered rule values in the order of the mapping's `attributes` (`None`: rendered
    /// empty). The key field is not here.
    pub values: Box<[Option<String>]>,
    pub entry: Arc<Entry>,
}

impl DesiredAccount {
    /// The entry's DN.
    pub fn dn(&self) -> &str {
        &self.entry.dn
    }

    /// The entry's anchor.
    pub fn anchor(&self) -> &str {
        &self.entry.anchor
    }

    /// The rendered value of `field` (`Some(None)`: rendered empty; `None`: not mapped).
    /// `mapping` is the account's mapping (`mappings[self.mapping]`).
    pub fn get(&self, mapping: &Mapping, field: &str) -> Option<Option<&str>> {
        let i = mapping.attributes.iter().position(|r| r.field == field)?;
        self.values.get(i).map(Option::as_deref)
    }

    /// Rendered values by field name.
    pub fn fields(&self, mapping: &Mapping) -> BTreeMap<String, Option<String>> {
        mapping
            .attributes
            .iter()
            .zip(self.values.iter())
            .map(|(r, v)| (r.field.clone(), v.clone()))
            .collect()
    }
}

/// Desired accounts of all mappings, the entries excluded as conflicts, and the keys those
/// conflicts hold.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    pub accounts: Vec<DesiredAccount>,
    pub conflicts: Vec<Conflict>,
    /// (mapping index, key) of excluded entries whose key is known: never orphaned.
    pub held: Vec<(usize, String)>,
    /// In-scope entries per mapping (for the source guards).
    pub entry_counts: Vec<usize>,
}

/// The primary-key value of an entry: the first value of the key attribute; binary values as
/// Microsoft's GUID text when 16 bytes (objectGUID), else base64.
pub fn key_of(entry: &Entry, attr: &str) -> Option<String> {
    let v = entry.first(attr)?;
    let s = match v {
        AttrValue::Text(t) => t.trim().to_string(),
        AttrValue::Binary(b) => match <&[u8; 16]>::try_from(b.as_slice()) {
            Ok(g) => crate::template::filters::guid_from_bytes(g),
            Err(_) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(b)
            }
        },
    };
    if s.is_empty() { None } else { Some(s) }
}

/// Render every entry of every mapping. `entries[i]` are the in-scope entries of `mappings[i]`.
/// Big lists are rendered on one thread per core ([`render_with`]).
pub fn render(
    engine: &TemplateEngine,
    mappings: &[CompiledMapping],
    entries: &[Vec<Arc<Entry>>],
    base: &RenderContext,
) -> Desired {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    render_with(engine, mappings, entries, base, threads)
}

/// [`render`] on at most `threads` threads (lists of at least 10,000 entries are split); the
/// result does not depend on `threads`.
pub fn render_with(
    engine: &TemplateEngine,
    mappings: &[CompiledMapping],
    entries: &[Vec<Arc<Entry>>],
    base: &RenderContext,
    threads: usize,
) -> Desired {
    let mut d = Desired {
        entry_counts: entries.iter().map(Vec::len).collect(),
        ..Desired::default()
    };
    for (mi, (cm, list)) in mappings.iter().zip(entries).enumerate() {
        d.accounts.reserve(list.len());
        // Entries render independently: big lists are cut into one chunk per core, rendered
        // on scoped threads and joined in order, so the result is the same as in one piece.
        let parts = super::in_chunks(list, threads, |chunk| {
            render_entries(engine, mi, cm, chunk, base)
        });
        for p in parts {
            d.accounts.extend(p.accounts);
            d.conflicts.extend(p.conflicts);
            d.held.extend(p.held);
        }
    }
    d
}

/// The desired accounts, conflicts and held keys of `list`, entries of mapping `mi`.
fn render_entries(
    engine: &TemplateEngine,
    mi: usize,
    cm: &CompiledMapping,
    list: &[Arc<Entry>],
    base: &RenderContext,
) -> Desired {
    let m = &cm.mapping;
    let mut d = Desired::default();
    // The required fields this mapping writes, with their rule index.
    let required: Vec<(&str, usize)> = REQUIRED_FIELDS
        .iter()
        .filter_map(|f| Some((*f, cm.rules.iter().position(|(r, _)| r.field == *f)?)))
        .collect();
    d.accounts.reserve(list.len());
    let mut ctx = base.clone();
    for entry in list {
        let conflict = |kind, key: Option<String>, reason: String| Conflict {
            kind,
            mapping: Some(m.name.clone()),
            key,
            dn: Some(entry.dn.clone()),
            account_id: None,
            reason,
        };
        let Some(key) = key_of(entry, &m.primary_key.ldap) else {
            d.conflicts.push(conflict(
                ConflictKind::EmptyKey,
                None,
                format!("the entry has no {}", m.primary_key.ldap),
            ));
            continue;
        };
        ctx.entry = Some(entry.clone());
        let mut values = Vec::with_capacity(cm.rules.len());
        let mut failed = None;
        for (rule, tpl) in &cm.rules {
            match engine.render(tpl, &ctx) {
                Ok(mut v) => {
                    let kept = v.trim_end_matches(['\n', '\r']).len();
                    v.truncate(kept);
                    values.push(if v.is_empty() { None } else { Some(v) });
                }
                Err(e) => {
                    let kind = match e {
                        RenderError::LookupFailed { .. } | RenderError::LookupAmbiguous { .. } => {
                            ConflictKind::LookupFailed
                        }
                        _ => ConflictKind::RenderError,
                    };
                    failed = Some((kind, format!("{}: {e}", rule.field)));
                    break;
                }
            }
        }
        if let Some((kind, reason)) = failed {
            d.held.push((mi, key.clone()));
            d.conflicts.push(conflict(kind, Some(key), reason));
            continue;
        }
        let empty_required: Vec<&str> = required
            .iter()
            .filter(|(_, i)| values[*i].is_none())
            .map(|(f, _)| *f)
            .collect();
        if !empty_required.is_empty() {
            d.held.push((mi, key.clone()));
            d.conflicts.push(conflict(
                ConflictKind::RequiredFieldEmpty,
                Some(key),
                format!("{} rendered empty", empty_required.join(", ")),
            ));
            continue;
        }
        d.accounts.push(DesiredAccount {
            mapping: mi,
            key,
            values: values.into_boxed_slice(),
            entry: entry.clone(),
        });
    }
    d
}
