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
    pub dn: String,
    pub anchor: String,
    /// Rendered rule values by field (`None`: rendered empty). The key field is not here.
    pub fields: BTreeMap<String, Option<String>>,
    pub entry: Arc<Entry>,
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
pub fn render(
    engine: &TemplateEngine,
    mappings: &[CompiledMapping],
    entries: &[Vec<Arc<Entry>>],
    base: &RenderContext,
) -> Desired {
    let mut d = Desired {
        entry_counts: entries.iter().map(Vec::len).collect(),
        ..Desired::default()
    };
    for (mi, (cm, list)) in mappings.iter().zip(entries).enumerate() {
        let m = &cm.mapping;
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
            let ctx = base.clone().with_entry(entry.clone());
            let mut fields = BTreeMap::new();
            let mut failed = None;
            for (rule, tpl) in &cm.rules {
                match engine.render(tpl, &ctx) {
                    Ok(mut v) => {
                        let kept = v.trim_end_matches(['\n', '\r']).len();
                        v.truncate(kept);
                        fields.insert(
                            rule.field.clone(),
                            if v.is_empty() { None } else { Some(v) },
                        );
                    }
                    Err(e) => {
                        let kind = match e {
                            RenderError::LookupFailed { .. }
                            | RenderError::LookupAmbiguous { .. } => ConflictKind::LookupFailed,
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
            let empty_required: Vec<&str> = REQUIRED_FIELDS
                .iter()
                .copied()
                .filter(|f| {
                    m.attributes.iter().any(|r| r.field == *f)
                        && fields.get(*f).is_some_and(Option::is_none)
                })
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
                dn: entry.dn.clone(),
                anchor: entry.anchor.clone(),
                fields,
                entry: entry.clone(),
            });
        }
    }
    d
}
