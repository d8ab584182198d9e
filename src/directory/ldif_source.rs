//! The LDIF directory source: an RFC 2849 file read once, searched client-side.
//!
//! A search applies base DN and scope (DNs compared normalised: `\,` = `\2C`, case and spaces
//! ignored) and the filter with the SPEC §6.1 subset ([`Filter::client_side_support`]); a
//! construct outside it is an error, never silently false. Attribute selection follows LDAP:
//! `*` (or no list) returns everything, otherwise only the named attributes and their
//! subtypes. An LDIF file has no operational/user split, so `+` adds nothing.
//!
//! Anchors: `objectGUID` (active-directory) or `entryUUID` (openldap) when the entry has one,
//! else the normalised DN, so an export without identities still works (and says so in the
//! docs); `disabledFilter` is evaluated on the whole entry.

use std::path::Path;
use std::sync::Arc;

use super::dn::{Dn, in_scope};
use super::entry::{Entry, attribute_type};
use super::filter::Filter;
use super::ldap::{anchor, normalized_dn};
use super::ldif::parse_ldif;
use super::source::{DirectoryError, DirectorySource, Failure, SearchFuture, SearchRequest};
use crate::config::model::Flavor;

/// An LDIF file as a [`DirectorySource`].
#[derive(Debug, Clone)]
pub struct LdifSource {
    location: String,
    base_text: String,
    base: Dn,
    flavor: Flavor,
    entries: Arc<Vec<(Dn, Entry)>>,
}

impl LdifSource {
    /// Read and parse `path`. `base_dn` is the directory's base (`ldif.baseDn`): searches
    /// outside it fail as a server would.
    pub fn load(
        path: &Path,
        base_dn: &str,
        flavor: Flavor,
        disabled_filter: Option<&str>,
    ) -> Result<Self, DirectoryError> {
        let location = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            DirectoryError::new(
                Failure::Ldif,
                &location,
                base_dn,
                "",
                format!("cannot read the LDIF file: {e}"),
            )
            .with_hint("check directory.ldif.path (relative to the config dir)")
        })?;
        Self::from_bytes(&bytes, location, base_dn, flavor, disabled_filter)
    }

    /// Parse LDIF content; `location` names it in messages.
    pub fn from_bytes(
        bytes: &[u8],
        location: impl Into<String>,
        base_dn: &str,
        flavor: Flavor,
        disabled_filter: Option<&str>,
    ) -> Result<Self, DirectoryError> {
        let location = location.into();
        let error =
            |message: String| DirectoryError::new(Failure::Ldif, &location, base_dn, "", message);
        let base = Dn::parse(base_dn).map_err(|e| error(format!("invalid baseDn: {e}")))?;
        let disabled = disabled_filter
            .map(|f| {
                Filter::parse(f).map_err(|e| error(format!("invalid disabledFilter {f}: {e}")))
            })
            .transpose()?;
        let is_binary = |a: &str| flavor.is_binary(a);
        let parsed = parse_ldif(bytes, &is_binary).map_err(|e| {
            error(e.to_string()).with_hint("the file must hold RFC 2849 content records (what `snapshot` or `ldapsearch -LLL` write)")
        })?;
        let mut entries = Vec::with_capacity(parsed.len());
        let mut seen = std::collections::HashSet::with_capacity(parsed.len());
        for mut entry in parsed {
            let dn =
                Dn::parse(&entry.dn).map_err(|e| error(format!("invalid DN {}: {e}", entry.dn)))?;
            if !seen.insert(dn.normalized()) {
                return Err(error(format!("the DN {} appears more than once", entry.dn)));
            }
            entry.anchor = ldif_anchor(&entry, flavor).map_err(error)?;
            if let Some(filter) = &disabled {
                entry.disabled = filter.matches(&entry, &is_binary);
            }
            entries.push((dn, entry));
        }
        Ok(LdifSource {
            location,
            base_text: base_dn.to_string(),
            base,
            flavor,
            entries: Arc::new(entries),
        })
    }

    /// Number of entries in the file.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Run a search synchronously (the LDIF source does no I/O after loading).
    pub fn search_now(&self, request: &SearchRequest) -> Result<Vec<Entry>, DirectoryError> {
        let error = |failure, message: String| {
            DirectoryError::new(
                failure,
                &self.location,
                &request.base,
                &request.filter,
                message,
            )
        };
        let base = Dn::parse(&request.base)
            .map_err(|e| error(Failure::InvalidRequest, format!("invalid base DN: {e}")))?;
        if base != self.base && !base.is_descendant_of(&self.base) {
            return Err(error(
                Failure::NoSuchBase,
                format!(
                    "the base DN is outside the LDIF source's baseDn {}",
                    self.base_text
                ),
            )
            .with_hint("a mapping's source.baseDn must be at or below directory.ldif.baseDn"));
        }
        let filter = Filter::parse(&request.filter)
            .map_err(|e| error(Failure::InvalidRequest, format!("invalid filter: {e}")))?;
        filter.client_side_support().map_err(|e| {
            error(Failure::InvalidRequest, e.to_string()).with_hint(
                "an LDIF source evaluates filters itself: and/or/not, =, =*, substrings, >=, <=, ~=, the bitwise rules 1.2.840.113556.1.4.803/804 and objectCategory=<name>",
            )
        })?;
        let selection = Selection::new(&request.attributes);
        Ok(self
            .entries
            .iter()
            .filter(|(dn, entry)| {
                in_scope(dn, &base, request.scope)
                    && filter.matches(entry, &|a| self.flavor.is_binary(a))
            })
            .map(|(_, entry)| selection.apply(entry))
            .collect())
    }
}

impl DirectorySource for LdifSource {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn search<'a>(&'a self, request: &'a SearchRequest) -> SearchFuture<'a> {
        Box::pin(async move { self.search_now(request) })
    }
}

fn ldif_anchor(entry: &Entry, flavor: Flavor) -> Result<String, String> {
    let has_anchor = flavor
        .anchor_attribute()
        .is_some_and(|a| entry.get(a).is_some());
    if has_anchor {
        anchor(entry, flavor)
    } else {
        Ok(normalized_dn(&entry.dn))
    }
}

/// Which attributes a search returns.
enum Selection {
    All,
    Only(Vec<String>),
}

impl Selection {
    fn new(attributes: &[String]) -> Self {
        if attributes.is_empty() || attributes.iter().any(|a| a == "*") {
            Selection::All
        } else {
            Selection::Only(
                attributes
                    .iter()
                    .filter(|a| *a != "+" && *a != "1.1")
                    .map(|a| a.to_ascii_lowercase())
                    .collect(),
            )
        }
    }

    fn apply(&self, entry: &Entry) -> Entry {
        match self {
            Selection::All => entry.clone(),
            Selection::Only(names) => {
                let mut out = Entry::new(entry.dn.clone());
                out.anchor = entry.anchor.clone();
                out.disabled = entry.disabled;
                for attr in entry.attributes() {
                    let wanted = names.iter().any(|n| {
                        attr.name.eq_ignore_ascii_case(n)
                            || (!n.contains(';')
                                && attribute_type(&attr.name).eq_ignore_ascii_case(n))
                    });
                    if wanted {
                        for value in &attr.values {
                            out.push(&attr.name, value.clone());
                        }
                    }
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::dn::Scope;
    use crate::directory::source::Failure;

    const LDIF: &str = "version: 1\n\
        # a comment\n\
        dn: DC=corp,DC=example\nobjectClass: domain\ndc: corp\n\n\
        dn: OU=Staff,DC=corp,DC=example\nobjectClass: organizationalUnit\nou: Staff\n\n\
        dn: CN=Lee\\, Ann,OU=Staff,DC=corp,DC=example\nobjectClass: user\ncn: Lee, Ann\nsn: Lee\n\
        objectGUID:: eFY0EjQSeFYSNFZ4mrze8A==\nuserAccountControl: 514\ncn;lang-de: Anna\n\
        description: long value folded\n  over two lines\n\n\
        dn: CN=Bo Ek,OU=Sub,OU=Staff,DC=corp,DC=example\nobjectClass: user\ncn: Bo Ek\nsn: Ek\nuserAccountControl: 512\n";

    fn source(flavor: Flavor) -> LdifSource {
        LdifSource::from_bytes(
            LDIF.as_bytes(),
            "users.ldif",
            "dc=corp,dc=example",
            flavor,
            flavor.default_disabled_filter(),
        )
        .unwrap()
    }

    fn dns(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|e| e.dn.as_str()).collect()
    }

    #[test]
    fn base_scope_and_filter_with_normalised_dns() {
        let s = source(Flavor::ActiveDirectory);
        let search = |base: &str, scope, filter: &str| {
            s.search_now(&SearchRequest::new(base, scope, filter))
                .unwrap()
        };
        let all = search("dc=corp,dc=example", Scope::Subtree, "(objectClass=user)");
        assert_eq!(all.len(), 2);
        let one = search("ou=staff,dc=corp,dc=example", Scope::One, "(objectClass=*)");
        assert_eq!(dns(&one), ["CN=Lee\\, Ann,OU=Staff,DC=corp,DC=example"]);
        // `\2C` and case: the same DN.
        let base = search(
            "cn=LEE\\2C ANN, ou=staff,dc=corp,dc=example",
            Scope::Base,
            "(objectClass=*)",
        );
        assert_eq!(base.len(), 1);
        assert!(base[0].disabled, "514 has the disabled bit");
        assert_eq!(base[0].anchor, "12345678-1234-5678-1234-56789abcdef0");
        assert_eq!(
            base[0].first_text("description"),
            Some("long value folded over two lines")
        );
        let bitwise = search(
            "dc=corp,dc=example",
            Scope::Subtree,
            "(userAccountControl:1.2.840.113556.1.4.803:=2)",
        );
        assert_eq!(bitwise.len(), 1);
        // Subtypes are seen by their base name.
        assert_eq!(
            search("dc=corp,dc=example", Scope::Subtree, "(cn=anna)").len(),
            1
        );
    }

    #[test]
    fn anchors_fall_back_to_the_dn_and_attributes_are_selected() {
        let s = source(Flavor::ActiveDirectory);
        let bo = s
            .search_now(
                &SearchRequest::new("dc=corp,dc=example", Scope::Subtree, "(sn=ek)")
                    .with_attributes(["CN", "sn"]),
            )
            .unwrap();
        assert_eq!(bo[0].anchor, "cn=bo ek,ou=sub,ou=staff,dc=corp,dc=example");
        let names: Vec<&str> = bo[0].attributes().map(|a| &*a.name).collect();
        assert_eq!(names, ["cn", "sn"]);
        let lee = s
            .search_now(
                &SearchRequest::new("dc=corp,dc=example", Scope::Subtree, "(sn=lee)")
                    .with_attributes(["cn"]),
            )
            .unwrap();
        let names: Vec<&str> = lee[0].attributes().map(|a| &*a.name).collect();
        assert_eq!(names, ["cn", "cn;lang-de"], "subtypes come with their type");
        assert!(lee[0].disabled, "disabled is computed on the whole entry");
        let generic = source(Flavor::Generic);
        let all = generic
            .search_now(&SearchRequest::new(
                "dc=corp,dc=example",
                Scope::Base,
                "(&)",
            ))
            .unwrap();
        assert_eq!(all[0].anchor, "dc=corp,dc=example");
        assert!(!all[0].disabled);
    }

    #[test]
    fn errors_name_the_file_base_and_filter() {
        let s = source(Flavor::ActiveDirectory);
        let outside = s
            .search_now(&SearchRequest::new("dc=other", Scope::Subtree, "(cn=*)"))
            .unwrap_err();
        assert_eq!(outside.failure, Failure::NoSuchBase);
        assert!(outside.to_string().contains("users.ldif"));
        assert!(outside.to_string().contains("dc=other"));
        let unsupported = s
            .search_now(&SearchRequest::new(
                "dc=corp,dc=example",
                Scope::Subtree,
                "(cn:caseExactMatch:=Bo)",
            ))
            .unwrap_err();
        assert_eq!(unsupported.failure, Failure::InvalidRequest);
        assert!(unsupported.to_string().contains("(cn:caseExactMatch:=Bo)"));
        assert!(unsupported.hint.is_some());
        let twice = format!("{LDIF}\ndn: dc=CORP, dc=example\nobjectClass: domain\n");
        let e = LdifSource::from_bytes(
            twice.as_bytes(),
            "twice.ldif",
            "dc=corp,dc=example",
            Flavor::Generic,
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("more than once"), "{e}");
        let bad_guid = "dn: cn=x,dc=corp,dc=example\nobjectGUID:: AAEC\n";
        let e = LdifSource::from_bytes(
            bad_guid.as_bytes(),
            "g.ldif",
            "dc=corp,dc=example",
            Flavor::ActiveDirectory,
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("3 bytes"), "{e}");
        let missing = LdifSource::load(
            Path::new("/nonexistent/users.ldif"),
            "dc=corp,dc=example",
            Flavor::Generic,
            None,
        )
        .unwrap_err();
        assert_eq!(missing.failure, Failure::Ldif);
        assert!(missing.hint.as_deref().unwrap().contains("ldif.path"));
    }
}
