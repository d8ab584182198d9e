//! The `lookup()` tables: Carbonite companies and user groups, resolved by name.
//!
//! [`LookupTables`] is plain data (it is persisted with the observed-state cache);
//! [`LookupIndex`] is the same data prepared for constant-time, case-insensitive resolution,
//! built once per run and shared by every render.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::error::RenderError;

/// Table name of the companies table in `lookup('companies', ...)`.
pub const COMPANIES: &str = "companies";
/// Table name of the user-group table in `lookup('userGroups', ...)`.
pub const USER_GROUPS: &str = "userGroups";
/// Every table `lookup()` knows.
pub const TABLES: [&str; 2] = [COMPANIES, USER_GROUPS];

/// A Carbonite company, as listed by the `carbonite-companies` endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Company {
    /// `CompanyId` (a GUID).
    pub id: String,
    /// `CompanyName`.
    pub name: String,
}

/// A Carbonite user group, as listed by the `carbonite-usergroups` endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserGroup {
    /// `UserGroupId` (a GUID).
    pub id: String,
    /// `Name`.
    pub name: String,
    /// `CompanyId` of the company the group belongs to.
    pub company_id: String,
}

/// The tables `lookup()` resolves names against; they come from the observed state (SPEC §6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupTables {
    /// Companies of the tenant.
    pub companies: Vec<Company>,
    /// User groups of all companies of the tenant.
    pub user_groups: Vec<UserGroup>,
}

/// What an unresolved `lookup()` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LookupMode {
    /// An unresolved name is [`RenderError::LookupFailed`] (a `lookup_failed` conflict).
    #[default]
    Strict,
    /// An unresolved name renders as `<unresolved:TABLE/NAME>`; for plans built without the
    /// tables (e.g. offline review).
    Placeholder,
}

/// Matching key: trimmed and case-insensitive (Unicode lowercase).
fn key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// [`LookupTables`] indexed for resolution. Build it once ([`LookupIndex::new`]) and share it
/// (`Arc`) between renders.
#[derive(Debug, Default)]
pub struct LookupIndex {
    /// company name key -> ids (more than one id: ambiguous).
    companies_by_name: HashMap<String, Vec<String>>,
    /// lowercased company id -> id as the server spells it.
    companies_by_id: HashMap<String, String>,
    /// (lowercased company id, group name key) -> group ids.
    groups_by_company: HashMap<(String, String), Vec<String>>,
    /// group name key -> group ids in any company.
    groups_by_name: HashMap<String, Vec<String>>,
    /// How many companies the tenant has (from both tables).
    company_count: usize,
}

impl LookupIndex {
    /// Index `tables`.
    pub fn new(tables: &LookupTables) -> Self {
        let mut index = LookupIndex::default();
        let mut company_ids = HashSet::new();
        for company in &tables.companies {
            let id = company.id.trim();
            index
                .companies_by_name
                .entry(key(&company.name))
                .or_default()
                .push(id.to_string());
            index
                .companies_by_id
                .insert(id.to_lowercase(), id.to_string());
            company_ids.insert(id.to_lowercase());
        }
        for group in &tables.user_groups {
            let company = group.company_id.trim().to_lowercase();
            let id = group.id.trim().to_string();
            index
                .groups_by_company
                .entry((company.clone(), key(&group.name)))
                .or_default()
                .push(id.clone());
            index
                .groups_by_name
                .entry(key(&group.name))
                .or_default()
                .push(id);
            company_ids.insert(company);
        }
        index.company_count = company_ids.len();
        index
    }

    /// Resolve `name` in `table`; `company` (a company name or id) scopes `userGroups`.
    ///
    /// `Ok(None)` means "not found"; ambiguity and unknown tables are errors.
    pub fn resolve(
        &self,
        table: &str,
        name: &str,
        company: Option<&str>,
    ) -> Result<Option<String>, RenderError> {
        let wanted = key(name);
        match table {
            COMPANIES => self.company_id(&wanted, name),
            USER_GROUPS => {
                let ids = match company {
                    Some(company) => {
                        let Some(company_id) = self.company_by_name_or_id(company)? else {
                            return Err(RenderError::LookupFailed {
                                table: COMPANIES.to_string(),
                                name: company.trim().to_string(),
                            });
                        };
                        self.groups_by_company
                            .get(&(company_id.to_lowercase(), wanted))
                    }
                    None if self.company_count > 1 => {
                        return Err(RenderError::LookupAmbiguous {
                            table: table.to_string(),
                            name: name.trim().to_string(),
                            reason: format!(
                                "the tenant has {} companies: pass company='<company name or id>'",
                                self.company_count
                            ),
                        });
                    }
                    None => self.groups_by_name.get(&wanted),
                };
                single(ids, table, name)
            }
            other => Err(RenderError::Template {
                message: format!(
                    "lookup(): unknown table {other:?} (expected '{COMPANIES}' or '{USER_GROUPS}')"
                ),
                line: None,
            }),
        }
    }

    fn company_id(&self, wanted: &str, name: &str) -> Result<Option<String>, RenderError> {
        single(self.companies_by_name.get(wanted), COMPANIES, name)
    }

    /// A company given by name (preferred) or by id.
    fn company_by_name_or_id(&self, company: &str) -> Result<Option<String>, RenderError> {
        if let Some(id) = self.company_id(&key(company), company)? {
            return Ok(Some(id));
        }
        Ok(self
            .companies_by_id
            .get(&company.trim().to_lowercase())
            .cloned())
    }
}

fn single(
    ids: Option<&Vec<String>>,
    table: &str,
    name: &str,
) -> Result<Option<String>, RenderError> {
    match ids.map(Vec::as_slice) {
        None | Some([]) => Ok(None),
        Some([id]) => Ok(Some(id.clone())),
        Some(many) => Err(RenderError::LookupAmbiguous {
            table: table.to_string(),
            name: name.trim().to_string(),
            reason: format!("{} entries have this name", many.len()),
        }),
    }
}

/// The text a [`LookupMode::Placeholder`] lookup renders for an unresolved name.
pub(crate) fn placeholder(table: &str, name: &str) -> String {
    format!("<unresolved:{table}/{}>", name.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tables(
        companies: &[(&str, &str)],
        groups: &[(&str, &str, &str)],
    ) -> LookupTables {
        LookupTables {
            companies: companies
                .iter()
                .map(|(id, name)| Company {
                    id: id.to_string(),
                    name: name.to_string(),
                })
                .collect(),
            user_groups: groups
                .iter()
                .map(|(id, name, company_id)| UserGroup {
                    id: id.to_string(),
                    name: name.to_string(),
                    company_id: company_id.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn resolves_trimmed_and_case_insensitively() {
        let index = LookupIndex::new(&tables(
            &[("C1", "Corp")],
            &[("G1", "Staff", "C1"), ("G2", "Straße", "C1")],
        ));
        assert_eq!(
            index.resolve(COMPANIES, "  corp ", None).unwrap(),
            Some("C1".into())
        );
        assert_eq!(
            index.resolve(USER_GROUPS, "STAFF", None).unwrap(),
            Some("G1".into())
        );
        assert_eq!(
            index.resolve(USER_GROUPS, "STRASSE", None).unwrap(),
            None,
            "case folding is lowercase, not full folding"
        );
        assert_eq!(
            index.resolve(USER_GROUPS, "straße", None).unwrap(),
            Some("G2".into())
        );
        assert_eq!(index.resolve(USER_GROUPS, "nope", None).unwrap(), None);
    }

    #[test]
    fn several_companies_need_company() {
        let index = LookupIndex::new(&tables(
            &[("C1", "Corp"), ("C2", "Other")],
            &[("G1", "Staff", "C1"), ("G2", "Staff", "c2")],
        ));
        assert!(matches!(
            index.resolve(USER_GROUPS, "Staff", None),
            Err(RenderError::LookupAmbiguous { .. })
        ));
        assert_eq!(
            index.resolve(USER_GROUPS, "staff", Some("other")).unwrap(),
            Some("G2".into())
        );
        assert_eq!(
            index.resolve(USER_GROUPS, "staff", Some("c1")).unwrap(),
            Some("G1".into()),
            "company by id, case-insensitively"
        );
        assert_eq!(
            index.resolve(USER_GROUPS, "staff", Some("Nope")),
            Err(RenderError::LookupFailed {
                table: COMPANIES.into(),
                name: "Nope".into()
            })
        );
    }

    #[test]
    fn duplicate_names_are_ambiguous() {
        let index = LookupIndex::new(&tables(
            &[("C1", "Corp")],
            &[("G1", "Staff", "C1"), ("G2", "staff ", "C1")],
        ));
        assert!(matches!(
            index.resolve(USER_GROUPS, "Staff", None),
            Err(RenderError::LookupAmbiguous { .. })
        ));
    }

    #[test]
    fn tables_roundtrip_through_json() {
        let t = tables(&[("C1", "Corp")], &[("G1", "Staff", "C1")]);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<LookupTables>(&json).unwrap(), t);
    }
}
