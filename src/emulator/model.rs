//! The emulator's tenant: API keys, companies, user groups and users, with the indexes the
//! routes need, and the seed/state file format (SPEC §9).
//!
//! Users keep their creation order (a sequence number), which is the stable order of listings:
//! new accounts go to the end, so pages already read do not shift while a client pages through.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::SecretHash;

/// Largest length accepted for a free-text field (names, custom fields, company name).
pub const MAX_TEXT_LEN: usize = 255;

/// An account's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Status {
    /// The account backs up.
    #[default]
    Active,
    /// The account is suspended.
    Suspended,
}

impl Status {
    /// Parse the exact spelling the vendor uses.
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "Active" => Some(Status::Active),
            "Suspended" => Some(Status::Suspended),
            _ => None,
        }
    }
}

fn ser_guid<S: serde::Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&id.hyphenated())
}

/// A Carbonite user account as the API returns it. Unset text fields are `null`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct User {
    /// Server-assigned GUID.
    #[serde(serialize_with = "ser_guid")]
    pub user_id: Uuid,
    /// Unique per tenant, compared case-insensitively.
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    #[serde(serialize_with = "ser_guid")]
    pub company_id: Uuid,
    #[serde(serialize_with = "ser_guid")]
    pub user_group_id: Uuid,
    pub user_custom1: Option<String>,
    pub user_custom2: Option<String>,
    pub user_custom3: Option<String>,
    pub status: Status,
}

/// A company of the tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Company {
    pub company_id: String,
    pub company_name: String,
    /// Vendor field of unknown type: kept as given (string or number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_trial: Option<bool>,
    /// Vendor field of unknown type: kept as given (string or number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_group_rule: Option<serde_json::Value>,
}

/// A user group; belongs to one company.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UserGroup {
    pub user_group_id: String,
    pub name: String,
    pub company_id: String,
}

/// An API key: the secret is held only as a salted SHA-256.
#[derive(Clone, Debug)]
pub struct ApiKey {
    pub email: String,
    pub secret: SecretHash,
}

/// The seed/state file: `{"ApiKeys", "Companies", "UserGroups", "Users"}`, every key optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct StateDoc {
    #[serde(default)]
    pub api_keys: Vec<ApiKeyDoc>,
    #[serde(default)]
    pub companies: Vec<Company>,
    #[serde(default)]
    pub user_groups: Vec<UserGroup>,
    #[serde(default)]
    pub users: Vec<UserDoc>,
}

/// An API key in a file: the plain `ApiKeySecret` (seed files; hashed on load) or the
/// `ApiKeySecretHash` the emulator writes (`sha256$<salt hex>$<hash hex>`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ApiKeyDoc {
    pub email: String,
    #[serde(default)]
    pub api_key_secret: Option<String>,
    #[serde(default)]
    pub api_key_secret_hash: Option<String>,
}

/// A user in a file; `UserId` may be omitted in a seed (one is assigned on load).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UserDoc {
    #[serde(default)]
    pub user_id: Option<String>,
    pub email: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    pub company_id: String,
    pub user_group_id: String,
    #[serde(default)]
    pub user_custom1: Option<String>,
    #[serde(default)]
    pub user_custom2: Option<String>,
    #[serde(default)]
    pub user_custom3: Option<String>,
    #[serde(default)]
    pub status: Status,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ApiKeyOut<'a> {
    email: &'a str,
    api_key_secret_hash: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StateOut<'a> {
    api_keys: Vec<ApiKeyOut<'a>>,
    companies: &'a [Company],
    user_groups: &'a [UserGroup],
    users: Vec<&'a User>,
}

/// Parse a GUID in its canonical 8-4-4-4-12 form, any letter case.
pub fn parse_guid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok()
}

/// The key of the email index: emails are unique case-insensitively.
pub fn email_key(email: &str) -> String {
    email.to_lowercase()
}

/// Why a write was refused after its fields were found well-formed.
#[derive(Debug, PartialEq, Eq)]
pub enum StoreError {
    /// A field refers to something that does not exist, or does not fit (group not in company).
    Field {
        field: &'static str,
        message: String,
    },
    /// Another account has this email (case-insensitively).
    DuplicateEmail,
    /// Another company has this name (case-insensitively).
    DuplicateCompany,
    /// No such account.
    NotFound,
}

/// The tenant's data plus indexes. Mutations bump `generation`, which persistence uses to know
/// what has been saved.
#[derive(Debug, Default)]
pub struct Store {
    api_keys: Vec<ApiKey>,
    companies: Vec<Company>,
    groups: Vec<UserGroup>,
    users: BTreeMap<u64, User>,
    by_id: HashMap<Uuid, u64>,
    by_email: HashMap<String, Uuid>,
    next_seq: u64,
    /// Incremented by every mutation.
    pub generation: u64,
}

impl Store {
    /// Build a store from a seed/state document, checking it whole; all problems are returned.
    pub fn from_doc(doc: StateDoc) -> Result<Store, Vec<String>> {
        let mut errors = Vec::new();
        let mut store = Store::default();

        for (i, k) in doc.api_keys.into_iter().enumerate() {
            let secret = match (k.api_key_secret, k.api_key_secret_hash) {
                (Some(plain), None) => Some(SecretHash::new(&plain)),
                (None, Some(hashed)) => match SecretHash::parse(&hashed) {
                    Some(h) => Some(h),
                    None => {
                        errors.push(format!(
                            "ApiKeys[{i}].ApiKeySecretHash: expected sha256$<salt hex>$<hash hex>"
                        ));
                        None
                    }
                },
                _ => {
                    errors.push(format!(
                        "ApiKeys[{i}]: exactly one of ApiKeySecret and ApiKeySecretHash is required"
                    ));
                    None
                }
            };
            if let Some(secret) = secret {
                store.api_keys.push(ApiKey {
                    email: k.email,
                    secret,
                });
            }
        }

        let mut company_ids = HashSet::new();
        let mut company_names = HashSet::new();
        for (i, mut c) in doc.companies.into_iter().enumerate() {
            match parse_guid(&c.company_id) {
                Some(id) => {
                    c.company_id = id.to_string();
                    if !company_ids.insert(c.company_id.clone()) {
                        errors.push(format!(
                            "Companies[{i}].CompanyId: duplicate {}",
                            c.company_id
                        ));
                    }
                }
                None => errors.push(format!("Companies[{i}].CompanyId: not a GUID")),
            }
            if c.company_name.trim().is_empty() {
                errors.push(format!("Companies[{i}].CompanyName: must not be empty"));
            } else if !company_names.insert(email_key(&c.company_name)) {
                errors.push(format!(
                    "Companies[{i}].CompanyName: duplicate {:?}",
                    c.company_name
                ));
            }
            store.companies.push(c);
        }

        let mut group_ids = HashSet::new();
        for (i, mut g) in doc.user_groups.into_iter().enumerate() {
            match parse_guid(&g.user_group_id) {
                Some(id) => {
                    g.user_group_id = id.to_string();
                    if !group_ids.insert(g.user_group_id.clone()) {
                        errors.push(format!(
                            "UserGroups[{i}].UserGroupId: duplicate {}",
                            g.user_group_id
                        ));
                    }
                }
                None => errors.push(format!("UserGroups[{i}].UserGroupId: not a GUID")),
            }
            match parse_guid(&g.company_id) {
                Some(id) if company_ids.contains(&id.to_string()) => g.company_id = id.to_string(),
                Some(_) => errors.push(format!("UserGroups[{i}].CompanyId: unknown company")),
                None => errors.push(format!("UserGroups[{i}].CompanyId: not a GUID")),
            }
            store.groups.push(g);
        }

        for (i, u) in doc.users.into_iter().enumerate() {
            let user_id = match u.user_id.as_deref().map(parse_guid) {
                None => Uuid::new_v4(),
                Some(Some(id)) => id,
                Some(None) => {
                    errors.push(format!("Users[{i}].UserId: not a GUID"));
                    continue;
                }
            };
            let (Some(company_id), Some(user_group_id)) =
                (parse_guid(&u.company_id), parse_guid(&u.user_group_id))
            else {
                errors.push(format!(
                    "Users[{i}]: CompanyId and UserGroupId must be GUIDs"
                ));
                continue;
            };
            if let Some(msg) = super::validate::email_problem(&u.email) {
                errors.push(format!("Users[{i}].Email: {msg}"));
                continue;
            }
            let user = User {
                user_id,
                email: u.email,
                first_name: u.first_name,
                last_name: u.last_name,
                company_id,
                user_group_id,
                user_custom1: u.user_custom1,
                user_custom2: u.user_custom2,
                user_custom3: u.user_custom3,
                status: u.status,
            };
            if let Err(e) = store.check_refs(&user) {
                errors.push(format!("Users[{i}]: {}", describe(&e)));
                continue;
            }
            if store.by_id.contains_key(&user_id) {
                errors.push(format!("Users[{i}].UserId: duplicate {user_id}"));
                continue;
            }
            if store.by_email.contains_key(&email_key(&user.email)) {
                errors.push(format!("Users[{i}].Email: duplicate {:?}", user.email));
                continue;
            }
            store.insert(user);
        }
        store.generation = 0;
        if errors.is_empty() {
            Ok(store)
        } else {
            Err(errors)
        }
    }

    /// Serialize the whole tenant in the state file format (API key secrets hashed).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let out = StateOut {
            api_keys: self
                .api_keys
                .iter()
                .map(|k| ApiKeyOut {
                    email: &k.email,
                    api_key_secret_hash: k.secret.to_string(),
                })
                .collect(),
            companies: &self.companies,
            user_groups: &self.groups,
            users: self.users.values().collect(),
        };
        serde_json::to_vec_pretty(&out)
    }

    /// Does this email/secret pair open a token? With no keys configured, any pair does.
    pub fn check_api_key(&self, email: &str, secret: &str) -> bool {
        if self.api_keys.is_empty() {
            return true;
        }
        // Check every key with the same email so timing does not depend on which one matched.
        let mut ok = false;
        for k in &self.api_keys {
            if k.email.eq_ignore_ascii_case(email) {
                ok |= k.secret.verify(secret);
            }
        }
        ok
    }

    /// Number of accounts.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Accounts in their stable (creation) order.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// One account by id.
    pub fn user(&self, id: &Uuid) -> Option<&User> {
        self.by_id.get(id).and_then(|seq| self.users.get(seq))
    }

    /// The account with this email (case-insensitive), if any.
    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.by_email
            .get(&email_key(email))
            .and_then(|id| self.user(id))
    }

    /// All companies.
    pub fn companies(&self) -> &[Company] {
        &self.companies
    }

    /// Does this company exist?
    pub fn has_company(&self, id: &Uuid) -> bool {
        let id = id.to_string();
        self.companies.iter().any(|c| c.company_id == id)
    }

    /// The user groups of one company.
    pub fn groups_of(&self, company: &Uuid) -> impl Iterator<Item = &UserGroup> {
        let company = company.to_string();
        self.groups.iter().filter(move |g| g.company_id == company)
    }

    /// CompanyId exists, UserGroupId exists and belongs to that company.
    fn check_refs(&self, user: &User) -> Result<(), StoreError> {
        if !self.has_company(&user.company_id) {
            return Err(StoreError::Field {
                field: "CompanyId",
                message: format!("No company with CompanyId {}.", user.company_id),
            });
        }
        let gid = user.user_group_id.to_string();
        match self.groups.iter().find(|g| g.user_group_id == gid) {
            None => Err(StoreError::Field {
                field: "UserGroupId",
                message: format!("No user group with UserGroupId {gid}."),
            }),
            Some(g) if g.company_id != user.company_id.to_string() => Err(StoreError::Field {
                field: "UserGroupId",
                message: format!(
                    "The user group {gid} does not belong to the company {}.",
                    user.company_id
                ),
            }),
            Some(_) => Ok(()),
        }
    }

    fn insert(&mut self, user: User) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_id.insert(user.user_id, seq);
        self.by_email.insert(email_key(&user.email), user.user_id);
        self.users.insert(seq, user);
        self.generation += 1;
    }

    /// Add a new account after checking references and email uniqueness.
    pub fn create_user(&mut self, user: User) -> Result<&User, StoreError> {
        self.check_refs(&user)?;
        if self.by_id.contains_key(&user.user_id) {
            // Only reachable through the admin upsert with an explicit id; callers check first.
            return Err(StoreError::Field {
                field: "UserId",
                message: "An account with this UserId exists.".into(),
            });
        }
        if self.by_email.contains_key(&email_key(&user.email)) {
            return Err(StoreError::DuplicateEmail);
        }
        let id = user.user_id;
        self.insert(user);
        self.user(&id).ok_or(StoreError::NotFound)
    }

    /// Replace an account with `f(old)`, checking references and email uniqueness.
    pub fn update_user(
        &mut self,
        id: &Uuid,
        f: impl FnOnce(&mut User),
    ) -> Result<&User, StoreError> {
        let seq = *self.by_id.get(id).ok_or(StoreError::NotFound)?;
        let old = self.users.get(&seq).ok_or(StoreError::NotFound)?;
        let mut new = old.clone();
        f(&mut new);
        new.user_id = *id;
        self.check_refs(&new)?;
        let old_key = email_key(&old.email);
        let new_key = email_key(&new.email);
        if old_key != new_key && self.by_email.contains_key(&new_key) {
            return Err(StoreError::DuplicateEmail);
        }
        if new != *old {
            self.by_email.remove(&old_key);
            self.by_email.insert(new_key, *id);
            self.users.insert(seq, new);
            self.generation += 1;
        }
        self.user(id).ok_or(StoreError::NotFound)
    }

    /// Remove an account.
    pub fn delete_user(&mut self, id: &Uuid) -> Result<(), StoreError> {
        let seq = self.by_id.remove(id).ok_or(StoreError::NotFound)?;
        if let Some(u) = self.users.remove(&seq) {
            self.by_email.remove(&email_key(&u.email));
        }
        self.generation += 1;
        Ok(())
    }

    /// Add a company and its `Default` user group.
    pub fn create_company(&mut self, mut company: Company) -> Result<&Company, StoreError> {
        let name = email_key(&company.company_name);
        if self
            .companies
            .iter()
            .any(|c| email_key(&c.company_name) == name)
        {
            return Err(StoreError::DuplicateCompany);
        }
        let id = Uuid::new_v4().to_string();
        company.company_id = id.clone();
        self.groups.push(UserGroup {
            user_group_id: Uuid::new_v4().to_string(),
            name: "Default".into(),
            company_id: id,
        });
        self.companies.push(company);
        self.generation += 1;
        self.companies.last().ok_or(StoreError::NotFound)
    }

    /// Replace the whole tenant (admin reset), keeping the generation moving forward.
    pub fn replace_with(&mut self, other: Store) {
        let generation = self.generation + 1;
        *self = other;
        self.generation = generation;
    }
}

/// A human sentence for a store refusal (used in seed diagnostics).
pub fn describe(e: &StoreError) -> String {
    match e {
        StoreError::Field { field, message } => format!("{field}: {message}"),
        StoreError::DuplicateEmail => "Email: duplicate".into(),
        StoreError::DuplicateCompany => "CompanyName: duplicate".into(),
        StoreError::NotFound => "not found".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C1: &str = "0f8b6c1e-0000-4000-8000-000000000001";
    const G1: &str = "5a1d2e3f-0000-4000-8000-000000000001";

    fn doc(users: serde_json::Value) -> StateDoc {
        serde_json::from_value(serde_json::json!({
            "ApiKeys": [{"Email": "admin@corp.example", "ApiKeySecret": "s3cret"}],
            "Companies": [{"CompanyId": C1, "CompanyName": "Corp"}],
            "UserGroups": [{"UserGroupId": G1, "Name": "Staff", "CompanyId": C1}],
            "Users": users,
        }))
        .unwrap()
    }

    #[test]
    fn seed_round_trips_and_hashes_secrets() {
        let store = Store::from_doc(doc(serde_json::json!([
            {"Email": "a@corp.example", "CompanyId": C1, "UserGroupId": G1}
        ])))
        .unwrap();
        assert!(store.check_api_key("admin@corp.example", "s3cret"));
        assert!(!store.check_api_key("admin@corp.example", "wrong"));
        let bytes = store.to_json().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(!text.contains("s3cret"));
        let again = Store::from_doc(serde_json::from_slice(&bytes).unwrap()).unwrap();
        assert!(again.check_api_key("admin@corp.example", "s3cret"));
        assert_eq!(again.user_count(), 1);
        assert_eq!(again.to_json().unwrap(), bytes);
    }

    #[test]
    fn seed_problems_are_all_reported() {
        let errs = Store::from_doc(doc(serde_json::json!([
            {"Email": "a@corp.example", "CompanyId": C1, "UserGroupId": G1},
            {"Email": "A@corp.example", "CompanyId": C1, "UserGroupId": G1},
            {"Email": "b@corp.example", "CompanyId": C1, "UserGroupId": C1},
            {"Email": "nope", "CompanyId": C1, "UserGroupId": G1},
        ])))
        .unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
    }

    #[test]
    fn update_checks_group_company_and_email() {
        let mut store = Store::from_doc(doc(serde_json::json!([
            {"Email": "a@corp.example", "CompanyId": C1, "UserGroupId": G1},
            {"Email": "b@corp.example", "CompanyId": C1, "UserGroupId": G1},
        ])))
        .unwrap();
        let a = store.user_by_email("A@CORP.EXAMPLE").unwrap().user_id;
        assert_eq!(
            store.update_user(&a, |u| u.email = "B@corp.example".into()),
            Err(StoreError::DuplicateEmail)
        );
        let renamed = store
            .update_user(&a, |u| u.email = "A@Corp.Example".into())
            .unwrap();
        assert_eq!(renamed.email, "A@Corp.Example");
        assert!(matches!(
            store.update_user(&a, |u| u.user_group_id = Uuid::nil()),
            Err(StoreError::Field {
                field: "UserGroupId",
                ..
            })
        ));
    }
}
