//! The observed-state cache (SPEC §6.2, §10): the last full listing of Carbonite accounts with
//! the `lookup()` tables, in `<state>/observed-cache.json`, keyed by tenant like the ledger.
//! `plan --observed cache|auto` reads it instead of listing; every full listing rewrites it.
//! The file's first line is a [`CacheSummary`] (what a budget estimate needs, read without
//! parsing the accounts), the second the whole [`ObservedCache`]. Format (versioned) in
//! docs/decisions.md, "Observed-state cache".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::carbonite::ObservedAccount;
use crate::carbonite::raw::RawFields;
use crate::config::Config;
use crate::config::model::{EndpointTarget, PaginationStyle};
use crate::template::LookupTables;

/// The file name in the state dir.
pub const FILE_NAME: &str = "observed-cache.json";

/// The format version this build reads and writes.
pub const VERSION: u32 = 2;

/// The longest first line [`ObservedCache::load_summary`] reads (a summary is a few hundred
/// bytes per endpoint; a longer line is not one).
const SUMMARY_MAX: u64 = 1 << 20;

/// One endpoint group's listing: the accounts of a mapping's endpoints, merged by its key field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CachedGroup {
    /// The endpoints, sorted.
    pub endpoints: Vec<String>,
    /// The Carbonite key field the accounts were merged by.
    pub key_field: String,
    /// The wire-level accounts as listed (unknown fields kept).
    pub accounts: Vec<ObservedAccount>,
}

/// The cache document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObservedCache {
    pub version: u32,
    /// Tenant key (base URL + auth email, as the ledger's); another tenant's cache is never used.
    pub tenant: String,
    /// RFC 3339 time of the last full listing.
    pub listed_at: String,
    pub groups: Vec<CachedGroup>,
    pub lookup_tables: LookupTables,
}

/// A cache without its accounts: the file's first line. Enough for the calls a listing will
/// need (`listing_calls`) and the cache's age, read without parsing megabytes of accounts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheSummary {
    pub version: u32,
    pub tenant: String,
    pub listed_at: String,
    /// Accounts listed per endpoint.
    #[serde(default)]
    pub accounts: BTreeMap<String, u64>,
    #[serde(default)]
    pub companies: u64,
    #[serde(default)]
    pub user_groups: u64,
}

/// Why the cache could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("no observed-state cache in {0}")]
    Missing(PathBuf),
    #[error("the observed-state cache {path} is for another tenant ({found})")]
    OtherTenant { path: PathBuf, found: String },
    #[error("the observed-state cache {path} is unreadable: {message}")]
    Unreadable { path: PathBuf, message: String },
}

impl ObservedCache {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(FILE_NAME)
    }

    /// The cache for `tenant`, if there is a readable one of this version.
    pub fn load(state_dir: &Path, tenant: &str) -> Result<ObservedCache, CacheError> {
        let path = Self::path(state_dir);
        let bytes = std::fs::read(&path).map_err(|e| open_error(state_dir, &path, e))?;
        let (first, rest) = match bytes.iter().position(|&b| b == b'\n') {
            Some(i) => (&bytes[..i], &bytes[i + 1..]),
            None => (&bytes[..], &[][..]),
        };
        check_summary(&path, parse_summary(&path, first)?, tenant)?;
        serde_json::from_slice(rest).map_err(|e| CacheError::Unreadable {
            path: path.clone(),
            message: e.to_string(),
        })
    }

    /// The summary of the cache for `tenant` (the file's first line only).
    pub fn load_summary(state_dir: &Path, tenant: &str) -> Result<CacheSummary, CacheError> {
        use std::io::{BufRead as _, Read as _};
        let path = Self::path(state_dir);
        let file = std::fs::File::open(&path).map_err(|e| open_error(state_dir, &path, e))?;
        let mut first = Vec::new();
        std::io::BufReader::with_capacity(8192, file.take(SUMMARY_MAX))
            .read_until(b'\n', &mut first)
            .map_err(|e| open_error(state_dir, &path, e))?;
        check_summary(&path, parse_summary(&path, &first)?, tenant)
    }

    /// What the first line of its file says.
    pub fn summary(&self) -> CacheSummary {
        let mut accounts: BTreeMap<String, u64> = BTreeMap::new();
        for e in self.accounts().flat_map(|a| a.endpoints.iter()) {
            match accounts.get_mut(e.as_str()) {
                Some(n) => *n += 1,
                None => {
                    accounts.insert(e.clone(), 1);
                }
            }
        }
        CacheSummary {
            version: self.version,
            tenant: self.tenant.clone(),
            listed_at: self.listed_at.clone(),
            accounts,
            companies: self.lookup_tables.companies.len() as u64,
            user_groups: self.lookup_tables.user_groups.len() as u64,
        }
    }

    /// Write it atomically (its summary line, then the cache), mode 0600, creating the state dir
    /// if needed.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        crate::state::ensure_state_dir(state_dir)?;
        let summary = self.summary();
        crate::state::write_atomic_with(&Self::path(state_dir), false, |w| {
            serde_json::to_writer(&mut *w, &summary).map_err(std::io::Error::other)?;
            w.write_all(b"\n")?;
            serde_json::to_writer(&mut *w, self).map_err(std::io::Error::other)?;
            w.write_all(b"\n")
        })
    }

    /// Every account of every group, in order.
    pub fn accounts(&self) -> impl Iterator<Item = &ObservedAccount> {
        self.groups.iter().flat_map(|g| g.accounts.iter())
    }

    /// How the listing a successful write answered changes the cache (for `apply`, SPEC §6.2:
    /// "every successful write updates it"): `Some(fields)` merges the answered fields into every
    /// cached copy of account `id` (and adds it to `new_in` groups when it is new, a create);
    /// `None` removes it (a delete). `listed_at` is left alone: it dates the last full listing.
    pub fn apply_write(
        &mut self,
        id: &str,
        fields: Option<&serde_json::Map<String, serde_json::Value>>,
        new_in: &[String],
    ) {
        let Some(fields) = fields else {
            for g in &mut self.groups {
                g.accounts.retain(|a| a.id.as_deref() != Some(id));
            }
            return;
        };
        let mut found = false;
        for g in &mut self.groups {
            for a in g
                .accounts
                .iter_mut()
                .filter(|a| a.id.as_deref() == Some(id))
            {
                found = true;
                let mut merged = a.fields.to_map();
                for (k, v) in fields {
                    merged.insert(k.clone(), v.clone());
                }
                a.key = key_value(merged.get(&g.key_field));
                a.fields = RawFields::from_map(&merged);
            }
        }
        if found {
            return;
        }
        for g in &mut self.groups {
            if let Some(first) = g.endpoints.iter().find(|e| new_in.contains(e)) {
                g.accounts.push(ObservedAccount {
                    id: Some(id.to_string()),
                    key: key_value(fields.get(&g.key_field)),
                    fields: RawFields::from_map(fields),
                    endpoints: vec![first.clone()],
                });
            }
        }
    }
}

fn open_error(state_dir: &Path, path: &Path, e: std::io::Error) -> CacheError {
    if e.kind() == std::io::ErrorKind::NotFound {
        CacheError::Missing(state_dir.to_path_buf())
    } else {
        CacheError::Unreadable {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

fn parse_summary(path: &Path, line: &[u8]) -> Result<CacheSummary, CacheError> {
    // An older format has no summary line: its version is all that is read of it.
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    serde_json::from_slice::<CacheSummary>(line).map_err(|e| {
        let message = match serde_json::from_slice::<Version>(line) {
            Ok(v) if v.version != VERSION => {
                format!("format version {} (expected {VERSION})", v.version)
            }
            _ => e.to_string(),
        };
        CacheError::Unreadable {
            path: path.to_path_buf(),
            message,
        }
    })
}

fn check_summary(path: &Path, s: CacheSummary, tenant: &str) -> Result<CacheSummary, CacheError> {
    if s.version != VERSION {
        return Err(CacheError::Unreadable {
            path: path.to_path_buf(),
            message: format!("format version {} (expected {VERSION})", s.version),
        });
    }
    if s.tenant != tenant {
        return Err(CacheError::OtherTenant {
            path: path.to_path_buf(),
            found: s.tenant,
        });
    }
    Ok(s)
}

fn key_value(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Calls a full listing needs, per ledger route: each group's endpoints (pages from the cached
/// account counts of the cache's summary and the page size; one page each without a cache),
/// the lookup tables
/// (companies, then user groups per company when `forEach`) and the token call (API key).
/// Endpoints on another host are not Carbonite's budget and are not counted.
pub fn listing_calls(
    cfg: &Config,
    groups: &[Vec<String>],
    cache: Option<&CacheSummary>,
    token_call: bool,
) -> BTreeMap<String, u64> {
    use crate::carbonite::profile::{COMPANIES, TOKEN_ROUTE, USER_GROUPS};
    let mut calls: BTreeMap<String, u64> = BTreeMap::new();
    let companies = cache.map_or(1, |c| c.companies);
    let count_of = |endpoint: &str| -> u64 {
        if endpoint == COMPANIES {
            return cache.map_or(0, |c| c.companies);
        }
        if endpoint == USER_GROUPS {
            return cache.map_or(0, |c| c.user_groups);
        }
        cache.map_or(0, |c| c.accounts.get(endpoint).copied().unwrap_or(0))
    };
    // Adds one endpoint's listing; says whether it lists the companies first (`forEach`).
    let add = |endpoint: &str, calls: &mut BTreeMap<String, u64>| -> bool {
        let Some(e) = cfg.endpoints.get(endpoint) else {
            return false;
        };
        let EndpointTarget::Path(path) = &e.target else {
            return false;
        };
        let route = format!("{} {path}", e.method.to_ascii_uppercase());
        let per_list = |items: u64| -> u64 {
            match (e.pagination.style, e.pagination.size) {
                (PaginationStyle::None, _) | (_, None) => 1,
                (_, Some(size)) => items.div_ceil(u64::from(size.max(1))).max(1),
            }
        };
        let n = if e.for_each_company {
            companies.max(1) * per_list(count_of(endpoint) / companies.max(1))
        } else {
            per_list(count_of(endpoint))
        };
        *calls.entry(route).or_default() += n;
        e.for_each_company
    };
    // The lookup tables list the companies once and hand them to the user groups.
    let mut company_listings = 1;
    for e in groups.iter().flatten() {
        if add(e, &mut calls) {
            company_listings += 1;
        }
    }
    add(USER_GROUPS, &mut calls);
    for _ in 0..company_listings {
        add(COMPANIES, &mut calls);
    }
    if token_call {
        *calls
            .entry(format!("{} {}", TOKEN_ROUTE.0, TOKEN_ROUTE.1))
            .or_default() += 1;
    }
    calls
}

/// `3h 12m`, `5m`, `40s`: a human age.
pub fn human_age(listed_at: &str, now: SystemTime) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(listed_at).ok()?;
    let now = chrono::DateTime::<chrono::Utc>::from(now);
    let secs = (now - t.with_timezone(&chrono::Utc)).num_seconds().max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    Some(if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{secs}s")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> ObservedCache {
        ObservedCache {
            version: VERSION,
            tenant: "http://x a@b".into(),
            listed_at: "2026-01-01T00:00:00Z".into(),
            groups: vec![CachedGroup {
                endpoints: vec!["carbonite-users".into()],
                key_field: "UserCustom1".into(),
                accounts: vec![ObservedAccount {
                    id: Some("u1".into()),
                    key: Some("E1".into()),
                    fields: RawFields::from_map(
                        serde_json::json!({"UserCustom1": "E1", "Email": "a@x"})
                            .as_object()
                            .unwrap(),
                    ),
                    endpoints: vec!["carbonite-users".into()],
                }],
            }],
            lookup_tables: LookupTables::default(),
        }
    }

    #[test]
    fn round_trip_and_tenant_check() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache();
        c.save(dir.path()).unwrap();
        assert_eq!(ObservedCache::load(dir.path(), "http://x a@b").unwrap(), c);
        let summary = ObservedCache::load_summary(dir.path(), "http://x a@b").unwrap();
        assert_eq!(summary, c.summary());
        assert_eq!(summary.accounts.get("carbonite-users"), Some(&1));
        assert!(matches!(
            ObservedCache::load_summary(dir.path(), "http://y a@b"),
            Err(CacheError::OtherTenant { .. })
        ));
        assert!(matches!(
            ObservedCache::load(dir.path(), "http://y a@b"),
            Err(CacheError::OtherTenant { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(ObservedCache::path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            ObservedCache::load(empty.path(), "k"),
            Err(CacheError::Missing(_))
        ));
    }

    #[test]
    fn an_older_format_is_unreadable_and_says_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut v1 = serde_json::to_value(cache()).unwrap();
        v1["version"] = 1.into();
        std::fs::write(ObservedCache::path(dir.path()), v1.to_string()).unwrap();
        for e in [
            ObservedCache::load(dir.path(), "http://x a@b").unwrap_err(),
            ObservedCache::load_summary(dir.path(), "http://x a@b").unwrap_err(),
        ] {
            assert!(
                e.to_string().contains("format version 1 (expected 2)"),
                "{e}"
            );
        }
    }

    #[test]
    fn writes_update_merge_add_and_remove() {
        let mut c = cache();
        let f = serde_json::json!({"Email": "new@x"});
        c.apply_write("u1", f.as_object(), &[]);
        assert_eq!(
            c.groups[0].accounts[0].fields.get("Email"),
            Some("new@x".into())
        );
        assert_eq!(c.groups[0].accounts[0].key.as_deref(), Some("E1"));
        let n = serde_json::json!({"UserCustom1": "E2"});
        c.apply_write("u2", n.as_object(), &["carbonite-users".into()]);
        assert_eq!(c.groups[0].accounts[1].key.as_deref(), Some("E2"));
        c.apply_write("u1", None, &[]);
        assert_eq!(c.accounts().count(), 1);
    }

    #[test]
    fn a_listing_counts_pages_lookups_and_the_token() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
        let cfg = crate::config::load(&dir).unwrap();
        let groups = vec![vec!["carbonite-users".to_string()]];
        // No cache: one page per listing.
        let calls = listing_calls(&cfg, &groups, None, true);
        assert_eq!(calls.get("GET /api/users"), Some(&1));
        assert_eq!(calls.get("GET /api/companies"), Some(&1));
        assert_eq!(calls.get("GET /api/usergroups"), Some(&1));
        assert_eq!(calls.get("POST /api/tokens/apikey"), Some(&1));
        // 1001 cached accounts at 500 a page: 3 pages; user groups once per company.
        let mut c = cache();
        let a = c.groups[0].accounts[0].clone();
        c.groups[0].accounts = vec![a; 1001];
        c.lookup_tables.companies = vec![
            crate::template::Company {
                id: "c1".into(),
                name: "A".into(),
            },
            crate::template::Company {
                id: "c2".into(),
                name: "B".into(),
            },
        ];
        let calls = listing_calls(&cfg, &groups, Some(&c.summary()), false);
        assert_eq!(calls.get("GET /api/users"), Some(&3));
        assert_eq!(calls.get("GET /api/usergroups"), Some(&2));
        assert_eq!(calls.get("POST /api/tokens/apikey"), None);
    }

    #[test]
    fn ages_read_like_a_person_would() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(3 * 3600 + 12 * 60);
        assert_eq!(
            human_age("1970-01-01T00:00:00Z", now).as_deref(),
            Some("3h 12m")
        );
    }
}
