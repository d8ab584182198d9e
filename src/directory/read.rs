//! What to ask the directory for: the searches of the mappings (identical ones shared) and the
//! attributes the config reads.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::dn::{Dn, Scope};
use super::entry::{Entry, is_valid_attribute_description};
use super::filter::Filter;
use super::source::{DirectoryError, DirectorySource, SearchRequest};
use crate::config::model::{Config, Flavor, WebhookTarget};
use crate::template::{AttributeRefs, referenced_attributes, referenced_attributes_in_expression};

/// The attributes webhook templates (url/path, headers, query, body) and orchestration
/// conditions read (a saved plan records these of each entry whose change triggers one).
pub fn webhook_attributes(config: &Config) -> AttributeRefs {
    let mut refs = AttributeRefs::Names(Default::default());
    for webhook in config.webhooks.values() {
        let url = match &webhook.target {
            WebhookTarget::Url(url) => url,
            WebhookTarget::Carbonite { path } => path,
        };
        refs.extend(referenced_attributes(url));
        for (_, value) in webhook.headers.iter().chain(&webhook.query) {
            refs.extend(referenced_attributes(value));
        }
        if let Some(body) = &webhook.body {
            refs.extend(referenced_attributes(body));
        }
    }
    for orchestration in &config.orchestrations {
        if let Some(when) = &orchestration.when {
            refs.extend(referenced_attributes_in_expression(when));
        }
    }
    refs
}

/// The attributes a reconcile pass needs (SPEC §2, §6.1): those the mappings' templates,
/// primary keys and `correlate` rules read, those of the formats, webhooks and orchestration
/// conditions (their templates see the same entries), the `disabledFilter`'s, and the
/// flavor's anchor and change marker. When a template reads attributes by computed name
/// (`attrs[x]`, iterating `user`), `*` replaces the template-derived names.
///
/// Sorted case-insensitively, each name once; `*` first when present.
pub fn needed_attributes(config: &Config) -> Vec<String> {
    let mut refs = AttributeRefs::Names(Default::default());
    for mapping in &config.mappings {
        for rule in &mapping.attributes {
            refs.extend(referenced_attributes(&rule.value));
        }
    }
    for source in config.integration.templates.formats.values() {
        refs.extend(referenced_attributes(source));
    }
    refs.extend(webhook_attributes(config));
    let mut names = match refs {
        AttributeRefs::All => vec!["*".to_string()],
        AttributeRefs::Names(names) => names.into_iter().collect(),
    };
    for mapping in &config.mappings {
        names.push(mapping.primary_key.ldap.clone());
        names.extend(mapping.correlate.iter().map(|c| c.ldap.clone()));
    }
    names.extend(flavor_attributes(
        config.integration.directory.flavor,
        config.integration.directory.disabled_filter.as_deref(),
    ));
    normalize(names)
}

/// The attributes `snapshot` writes: every user attribute (`*`) or the `--attributes` given,
/// plus the flavor's operational ones (anchor, change marker) and the `disabledFilter`'s, so
/// the LDIF source computes the same anchor and `disabled` from the file.
pub fn snapshot_attributes(
    flavor: Flavor,
    disabled_filter: Option<&str>,
    explicit: Option<&[String]>,
) -> Vec<String> {
    let mut names = match explicit {
        Some(list) => list.to_vec(),
        None => vec!["*".to_string()],
    };
    names.extend(flavor_attributes(flavor, disabled_filter));
    normalize(names)
}

fn flavor_attributes(flavor: Flavor, disabled_filter: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = flavor
        .anchor_attribute()
        .into_iter()
        .chain(flavor.change_marker())
        .map(str::to_string)
        .collect();
    if let Some(filter) = disabled_filter.and_then(|f| Filter::parse(f).ok()) {
        names.extend(filter.attribute_types());
    }
    names
}

/// Valid descriptions only (template variables like `loop` or `my_var` cannot be LDAP
/// attributes), each once case-insensitively, `*` first, then sorted.
fn normalize(names: Vec<String>) -> Vec<String> {
    let star = names.iter().any(|n| n == "*");
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for name in names {
        if name != "*" && is_valid_attribute_description(&name) {
            seen.entry(name.to_ascii_lowercase()).or_insert(name);
        }
    }
    star.then(|| "*".to_string())
        .into_iter()
        .chain(seen.into_values())
        .collect()
}

/// One search of the reconcile read and the mappings that use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSearch {
    pub request: SearchRequest,
    /// Mapping names, sorted.
    pub mappings: Vec<String>,
}

/// The searches of all mappings; mappings with the same (base, scope, filter) — DNs compared
/// normalised, filters in canonical form — share one. All request [`needed_attributes`].
pub fn plan_searches(config: &Config) -> Vec<PlannedSearch> {
    let attributes = needed_attributes(config);
    let mut planned: BTreeMap<(String, u8, String), PlannedSearch> = BTreeMap::new();
    for mapping in &config.mappings {
        let spec = &mapping.source;
        let scope: Scope = spec.scope.into();
        let base_key =
            Dn::parse(&spec.base_dn).map_or_else(|_| spec.base_dn.clone(), |d| d.normalized());
        let filter_key =
            Filter::parse(&spec.filter).map_or_else(|_| spec.filter.clone(), |f| f.to_string());
        let key = (base_key, scope as u8, filter_key);
        planned
            .entry(key)
            .or_insert_with(|| PlannedSearch {
                request: SearchRequest::new(spec.base_dn.clone(), scope, spec.filter.clone())
                    .with_attributes(attributes.clone()),
                mappings: Vec::new(),
            })
            .mappings
            .push(mapping.name.clone());
    }
    planned.into_values().collect()
}

/// The entries of each mapping, by mapping name. Mappings sharing a search share the entries.
pub type MappingEntries = BTreeMap<String, Arc<Vec<Entry>>>;

/// Run every planned search once (one after the other: a directory server serves one
/// client's paged searches best sequentially) and hand each mapping its entries. The first
/// failure fails the whole read: a partial read must never look like a short directory.
pub async fn read_mappings(
    source: &dyn DirectorySource,
    searches: &[PlannedSearch],
) -> Result<MappingEntries, DirectoryError> {
    let mut out = MappingEntries::new();
    for search in searches {
        let entries = Arc::new(source.search(&search.request).await?);
        for mapping in &search.mappings {
            out.insert(mapping.clone(), entries.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: &[(&str, &str)]) -> Config {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        match crate::config::load(dir.path()) {
            Ok(cfg) => cfg,
            Err(e) => panic!("{:?}", e.diagnostics),
        }
    }

    const INTEGRATION: &str = r#"apiVersion: carbonite-sync/v1
kind: Integration
metadata: { name: corp }
spec:
  directory:
    flavor: active-directory
    ldif: { path: users.ldif, baseDn: "DC=corp,DC=example" }
  carbonite:
    emulator: {}
  formats:
    corpEmail: "{{ givenName | lower }}.{{ sn | lower }}@corp.example"
"#;

    fn mapping(name: &str, base: &str, filter: &str, extra: &str) -> String {
        format!(
            r#"apiVersion: carbonite-sync/v1
kind: Mapping
metadata: {{ name: {name} }}
spec:
  source: {{ baseDn: "{base}", filter: "{filter}" }}
  primaryKey: {{ ldap: employeeID, carbonite: UserCustom1 }}
  correlate:
    - {{ ldap: mail, carbonite: Email }}
  attributes:
    Email: "{{{{ formats.corpEmail }}}}"
    Status: "{{{{ 'Suspended' if disabled else 'Active' }}}}"
{extra}"#
        )
    }

    #[test]
    fn only_the_attributes_the_config_reads_are_requested() {
        let cfg = load(&[
            ("integration.yaml", INTEGRATION),
            (
                "a.yaml",
                &mapping(
                    "staff",
                    "OU=Staff,DC=corp,DC=example",
                    "(objectClass=user)",
                    "    FirstName: \"{{ user.givenName }}\"\n    UserCustom2: \"{{ attrs['msDS-cloudExtensionAttribute1'] }}\"\n",
                ),
            ),
            (
                "hooks.yaml",
                "apiVersion: carbonite-sync/v1\nkind: Webhook\nmetadata: { name: hook }\nspec:\n  url: https://example.test/x\n  body: '{\"t\": \"{{ user.title }}\"}'\n---\napiVersion: carbonite-sync/v1\nkind: Orchestration\nmetadata: { name: on-create }\nspec:\n  on: [created]\n  when: \"user.department == 'Sales'\"\n  steps: [ { webhook: hook } ]\n",
            ),
        ]);
        assert_eq!(
            needed_attributes(&cfg),
            [
                "department",
                "employeeID",
                "givenName",
                "mail",
                "msDS-cloudExtensionAttribute1",
                "objectGUID",
                "sn",
                "title",
                "userAccountControl",
                "uSNChanged",
            ]
        );
    }

    #[test]
    fn dynamic_templates_fall_back_to_every_user_attribute() {
        let cfg = load(&[
            ("integration.yaml", INTEGRATION),
            (
                "a.yaml",
                &mapping(
                    "staff",
                    "OU=Staff,DC=corp,DC=example",
                    "(objectClass=user)",
                    "    UserCustom2: \"{% for a in attrs %}{{ a }}{% endfor %}\"\n",
                ),
            ),
        ]);
        let attrs = needed_attributes(&cfg);
        assert_eq!(attrs[0], "*");
        assert!(attrs.iter().any(|a| a == "objectGUID"));
        assert!(attrs.iter().any(|a| a == "employeeID"));
    }

    #[test]
    fn identical_searches_are_shared() {
        let cfg = load(&[
            ("integration.yaml", INTEGRATION),
            (
                "a.yaml",
                &mapping("a", "OU=Staff,DC=corp,DC=example", "(objectClass=user)", ""),
            ),
            // The same DN and filter, spelled differently.
            (
                "b.yaml",
                &mapping("b", "ou=staff, dc=CORP,dc=example", "objectClass=user", ""),
            ),
            (
                "c.yaml",
                &mapping("c", "OU=Staff,DC=corp,DC=example", "(employeeID=*)", ""),
            ),
        ]);
        let searches = plan_searches(&cfg);
        assert_eq!(searches.len(), 2);
        let shared = searches.iter().find(|s| s.mappings.len() == 2).unwrap();
        assert_eq!(shared.mappings, ["a", "b"]);
        assert!(shared.request.attributes.iter().any(|a| a == "objectGUID"));
    }
}
