//! Watch's directory entry cache and incremental reads (SPEC §12).
//!
//! A full read fills the cache (per planned search, entries by normalised DN) and records a
//! watermark taken *before* it: Active Directory's rootDSE `highestCommittedUSN` (with the DC's
//! `dsServiceName`: another DC forces a full read), or OpenLDAP's greatest `entryCSN` seen —
//! after a full read less the read's duration plus a second (entries changed while it ran are
//! read again once), after an incremental read exactly (`>=` re-reads only that entry). An
//! incremental read asks each search's base and scope for entries changed
//! since — `(uSNChanged>=W+1)` or `(entryCSN>=W)` — and evaluates the mapping filter itself:
//! an entry that matches replaces its cached copy, one that no longer matches leaves the cache
//! (a scope change). Deletions are seen by the next full read. Incremental reads need a change
//! marker (flavor `active-directory` or `openldap`) and mapping filters in the client-side
//! subset (§6.1); otherwise every read is full.
//!
//! The cache and its watermark are saved to `<state>/directory-cache.json` after every read
//! that changed them, so a restarted watch resumes incrementally (the file is keyed by the
//! searches, the flavor and the server: any difference means a full read).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::config::model::Flavor;
use crate::directory::Entry;
use crate::directory::dn::{Dn, Scope};
use crate::directory::filter::Filter;
use crate::directory::read::{MappingEntries, PlannedSearch, plan_searches};
use crate::directory::source::{DirectoryError, DirectorySource, SearchRequest};

/// Where incremental reads resume.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Watermark {
    /// The DC's `dsServiceName` (AD) or the LDAP URL (OpenLDAP).
    pub server: String,
    /// `highestCommittedUSN` (AD) or an entryCSN (OpenLDAP).
    pub value: String,
}

/// What a read did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadStats {
    /// The read was complete (runs source guards and plans suspends/deletes).
    pub full: bool,
    /// Entries the directory returned.
    pub entries_read: u64,
}

pub struct EntryCache {
    flavor: Flavor,
    location: String,
    searches: Vec<PlannedSearch>,
    /// Per search: the mapping filter, when evaluable client-side.
    filters: Vec<Option<Filter>>,
    entries: Vec<BTreeMap<String, Arc<Entry>>>,
    watermark: Option<Watermark>,
    /// The read changed the cache since it was last saved.
    dirty: bool,
}

/// `<state>/directory-cache.json`.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedCache {
    version: u32,
    /// sha256 over the flavor, the server and every search (base, scope, filter, attributes).
    key: String,
    watermark: Watermark,
    /// RFC 3339 time of the last full read.
    last_full_at: String,
    /// Per search: entries as (DN, anchor, disabled, attributes with binary values base64
    /// under `name::`).
    searches: Vec<Vec<SavedEntry>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SavedEntry {
    dn: String,
    anchor: String,
    disabled: bool,
    attributes: BTreeMap<String, Vec<String>>,
}

const FILE: &str = "directory-cache.json";

impl EntryCache {
    pub fn new(cfg: &Config, location: String) -> EntryCache {
        let searches = plan_searches(cfg);
        let filters = searches
            .iter()
            .map(|s| {
                Filter::parse(&s.request.filter)
                    .ok()
                    .filter(|f| f.client_side_support().is_ok())
            })
            .collect();
        EntryCache {
            flavor: cfg.integration.directory.flavor,
            location,
            entries: vec![BTreeMap::new(); searches.len()],
            searches,
            filters,
            watermark: None,
            dirty: false,
        }
    }

    fn key(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(format!("{:?}\0{}\0", self.flavor, self.location));
        for s in &self.searches {
            let r = &s.request;
            h.update(format!(
                "{}\0{:?}\0{}\0{}\0",
                r.base,
                r.scope,
                r.filter,
                r.attributes.join(",")
            ));
        }
        hex::encode(h.finalize())
    }

    /// The cache a previous watch saved for this config and server, with the time of its last
    /// full read; `None` when there is none or it belongs to other searches.
    pub fn load(
        cfg: &Config,
        location: String,
        state_dir: &std::path::Path,
    ) -> Option<(EntryCache, std::time::SystemTime)> {
        let mut cache = EntryCache::new(cfg, location);
        let bytes = std::fs::read(state_dir.join(FILE)).ok()?;
        let saved: SavedCache = serde_json::from_slice(&bytes).ok()?;
        if saved.version != 1
            || saved.key != cache.key()
            || saved.searches.len() != cache.searches.len()
        {
            return None;
        }
        let last_full = chrono::DateTime::parse_from_rfc3339(&saved.last_full_at).ok()?;
        for (i, list) in saved.searches.into_iter().enumerate() {
            for e in list {
                let mut entry = crate::webhook::entry_from_saved(&e.dn, &e.attributes);
                entry.anchor = e.anchor;
                entry.disabled = e.disabled;
                cache.entries[i].insert(key(&entry), Arc::new(entry));
            }
        }
        cache.watermark = Some(saved.watermark);
        let at = std::time::SystemTime::UNIX_EPOCH
            + Duration::from_millis(last_full.timestamp_millis().max(0) as u64);
        Some((cache, at))
    }

    /// Save the cache when a read changed it (atomic, 0600). `last_full_at`: when the last
    /// full read started.
    pub fn save(
        &mut self,
        state_dir: &std::path::Path,
        last_full_at: std::time::SystemTime,
    ) -> std::io::Result<()> {
        let Some(watermark) = self.watermark.clone().filter(|_| self.dirty) else {
            return Ok(());
        };
        let all = crate::template::AttributeRefs::All;
        let saved = SavedCache {
            version: 1,
            key: self.key(),
            watermark,
            last_full_at: crate::pass::rfc3339(last_full_at),
            searches: self
                .entries
                .iter()
                .map(|m| {
                    m.values()
                        .map(|e| {
                            let mut attributes = crate::webhook::saved_attributes(e, &all);
                            attributes.remove("@disabled");
                            attributes.remove("@anchor");
                            SavedEntry {
                                dn: e.dn.clone(),
                                anchor: e.anchor.clone(),
                                disabled: e.disabled,
                                attributes,
                            }
                        })
                        .collect()
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
        crate::state::write_atomic(&state_dir.join(FILE), &bytes, false)?;
        self.dirty = false;
        Ok(())
    }

    /// Whether incremental reads are possible at all for this config.
    pub fn incremental_capable(&self) -> bool {
        self.flavor.change_marker().is_some() && self.filters.iter().all(Option::is_some)
    }

    pub fn watermark(&self) -> Option<&Watermark> {
        self.watermark.as_ref()
    }

    /// Read: in full when `full`, when no watermark is known or the server changed, else
    /// incrementally. Returns the merged entries of every mapping.
    pub async fn read(
        &mut self,
        source: &dyn DirectorySource,
        full: bool,
    ) -> Result<(MappingEntries, ReadStats), DirectoryError> {
        let incremental = !full && self.incremental_capable() && self.watermark.is_some();
        let stats = if incremental {
            match self.read_incremental(source).await? {
                Some(n) => ReadStats {
                    full: false,
                    entries_read: n,
                },
                None => self.read_full(source).await?,
            }
        } else {
            self.read_full(source).await?
        };
        Ok((self.mapping_entries(), stats))
    }

    fn mapping_entries(&self) -> MappingEntries {
        let mut out = MappingEntries::new();
        for (search, entries) in self.searches.iter().zip(&self.entries) {
            let list: Arc<Vec<Entry>> =
                Arc::new(entries.values().map(|e| Entry::clone(e)).collect());
            for m in &search.mappings {
                out.insert(m.clone(), list.clone());
            }
        }
        out
    }

    async fn read_full(
        &mut self,
        source: &dyn DirectorySource,
    ) -> Result<ReadStats, DirectoryError> {
        let started = std::time::Instant::now();
        let before = if self.flavor == Flavor::ActiveDirectory {
            self.ad_watermark(source).await
        } else {
            None
        };
        let mut n = 0u64;
        let mut max_csn: Option<String> = None;
        let mut fresh = Vec::with_capacity(self.searches.len());
        for search in &self.searches {
            let list = source.search(&search.request).await?;
            n += list.len() as u64;
            let mut map = BTreeMap::new();
            for e in list {
                note_csn(&mut max_csn, &e);
                map.insert(key(&e), Arc::new(e));
            }
            fresh.push(map);
        }
        self.entries = fresh;
        self.dirty = true;
        self.watermark = match self.flavor {
            Flavor::ActiveDirectory => before,
            Flavor::Openldap => max_csn.map(|c| Watermark {
                server: self.location.clone(),
                value: csn_minus(&c, started.elapsed() + Duration::from_secs(1)),
            }),
            Flavor::Generic => None,
        };
        Ok(ReadStats {
            full: true,
            entries_read: n,
        })
    }

    /// `None` when the watermark no longer applies (another DC): the caller reads in full.
    async fn read_incremental(
        &mut self,
        source: &dyn DirectorySource,
    ) -> Result<Option<u64>, DirectoryError> {
        let Some(w) = self.watermark.clone() else {
            return Ok(None);
        };
        let (filter, next) = match self.flavor {
            Flavor::ActiveDirectory => {
                let Some(now) = self.ad_watermark(source).await else {
                    return Ok(None);
                };
                if now.server != w.server {
                    tracing::info!(
                        before = %w.server,
                        now = %now.server,
                        "directory: another domain controller answers; reading in full"
                    );
                    return Ok(None);
                }
                let from = w.value.parse::<u64>().unwrap_or(0) + 1;
                (format!("(uSNChanged>={from})"), Some(now))
            }
            Flavor::Openldap => (format!("(entryCSN>={})", w.value), None),
            Flavor::Generic => return Ok(None),
        };
        let mut n = 0u64;
        let mut max_csn: Option<String> = None;
        for (i, search) in self.searches.iter().enumerate() {
            let Some(mapping_filter) = &self.filters[i] else {
                return Ok(None);
            };
            let mut attributes = search.request.attributes.clone();
            attributes.extend(mapping_filter.attribute_types());
            let request = SearchRequest {
                base: search.request.base.clone(),
                scope: search.request.scope,
                filter: filter.clone(),
                attributes,
            };
            let changed = source.search(&request).await?;
            n += changed.len() as u64;
            self.dirty |= !changed.is_empty();
            let flavor = self.flavor;
            for e in changed {
                note_csn(&mut max_csn, &e);
                let k = key(&e);
                if mapping_filter.matches(&e, &|a| flavor.is_binary(a)) {
                    self.entries[i].insert(k, Arc::new(e));
                } else {
                    self.entries[i].remove(&k);
                }
            }
        }
        self.watermark = match (self.flavor, next) {
            (Flavor::ActiveDirectory, Some(now)) => Some(now),
            (Flavor::Openldap, _) => Some(Watermark {
                server: w.server.clone(),
                value: max_csn.filter(|c| *c > w.value).unwrap_or(w.value),
            }),
            _ => None,
        };
        Ok(Some(n))
    }

    /// rootDSE `highestCommittedUSN` and `dsServiceName`.
    async fn ad_watermark(&self, source: &dyn DirectorySource) -> Option<Watermark> {
        let request = SearchRequest::new("", Scope::Base, "(objectClass=*)")
            .with_attributes(["highestCommittedUSN", "dsServiceName"]);
        match source.search(&request).await {
            Ok(list) => {
                let e = list.first()?;
                Some(Watermark {
                    server: e.first_text("dsServiceName")?.to_string(),
                    value: e.first_text("highestCommittedUSN")?.to_string(),
                })
            }
            Err(e) => {
                tracing::warn!("directory: cannot read the rootDSE watermark: {e}");
                None
            }
        }
    }
}

/// Keep the greatest entryCSN seen.
fn note_csn(max: &mut Option<String>, e: &Entry) {
    if let Some(c) = e.first_text("entryCSN")
        && max.as_deref().is_none_or(|m| c > m)
    {
        *max = Some(c.to_string());
    }
}

fn key(e: &Entry) -> String {
    Dn::parse(&e.dn).map_or_else(|_| e.dn.to_ascii_lowercase(), |d| d.normalized())
}

/// An entryCSN (`YYYYmmddHHMMSS.ffffffZ#...`) moved back by `by` (whole seconds, rounded
/// up), as the smallest CSN of that second; unparsable values are returned unchanged.
fn csn_minus(csn: &str, by: Duration) -> String {
    let Some(stamp) = csn.get(..14) else {
        return csn.to_string();
    };
    match chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S") {
        Ok(t) => {
            let secs = by.as_secs() + u64::from(by.subsec_nanos() > 0);
            let t = t - chrono::Duration::seconds(secs as i64);
            format!("{}.000000Z#000000#000#000000", t.format("%Y%m%d%H%M%S"))
        }
        Err(_) => csn.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csn_overlap() {
        assert_eq!(
            csn_minus(
                "20261204193212.123456Z#000000#000#000000",
                Duration::from_secs(5)
            ),
            "20261204193207.000000Z#000000#000#000000"
        );
        assert_eq!(csn_minus("junk", Duration::from_secs(5)), "junk");
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;
    use crate::directory::AttrValue;
    use crate::directory::source::SearchFuture;

    /// A directory that answers full reads with `all` and incremental reads with `changed`.
    struct Scripted {
        all: Vec<Entry>,
        changed: std::sync::Mutex<Vec<Entry>>,
    }

    impl DirectorySource for Scripted {
        fn location(&self) -> String {
            "scripted".into()
        }
        fn search<'a>(&'a self, request: &'a SearchRequest) -> SearchFuture<'a> {
            let answer = if request.filter.starts_with("(entryCSN>=") {
                std::mem::take(&mut *self.changed.lock().unwrap())
            } else {
                self.all.clone()
            };
            Box::pin(async move { Ok(answer) })
        }
    }

    fn user(cn: &str, key: Option<&str>, csn: &str) -> Entry {
        let mut e = Entry::new(format!("cn={cn},ou=staff,dc=corp,dc=example"));
        e.push("objectClass", AttrValue::Text("inetOrgPerson".into()));
        if let Some(k) = key {
            e.push("employeeNumber", AttrValue::Text(k.into()));
        }
        e.push("mail", AttrValue::Text(format!("{cn}@corp.example")));
        e.push("entryCSN", AttrValue::Text(csn.into()));
        e
    }

    #[test]
    fn incremental_reads_replace_add_and_drop_entries_that_leave_the_scope() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/openldap");
        let cfg = crate::config::load(&dir).unwrap();
        let mut cache = EntryCache::new(&cfg, "scripted".into());
        assert!(cache.incremental_capable());
        let source = Scripted {
            all: vec![
                user(
                    "ann",
                    Some("E1"),
                    "20261204100000.000001Z#000000#000#000000",
                ),
                user("bo", Some("E2"), "20261204100000.000002Z#000000#000#000000"),
            ],
            changed: std::sync::Mutex::new(Vec::new()),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let count = |m: &MappingEntries| m.values().next().map_or(0, |v| v.len());
        let (m, stats) = rt.block_on(cache.read(&source, false)).unwrap();
        assert!(stats.full);
        assert_eq!(count(&m), 2);
        // bo loses his employeeNumber (leaves the mapping's filter), cy arrives, ann changes.
        *source.changed.lock().unwrap() = vec![
            user("bo", None, "20261204100100.000001Z#000000#000#000000"),
            user("cy", Some("E3"), "20261204100100.000002Z#000000#000#000000"),
            user(
                "ann",
                Some("E1"),
                "20261204100100.000003Z#000000#000#000000",
            ),
        ];
        let (m, stats) = rt.block_on(cache.read(&source, false)).unwrap();
        assert!(!stats.full);
        assert_eq!(stats.entries_read, 3);
        let dns: Vec<&str> = m
            .values()
            .next()
            .unwrap()
            .iter()
            .map(|e| e.dn.as_str())
            .collect();
        assert_eq!(dns.len(), 2, "{dns:?}");
        assert!(
            dns.iter().any(|d| d.starts_with("cn=cy"))
                && !dns.iter().any(|d| d.starts_with("cn=bo"))
        );
        assert_eq!(
            cache.watermark().unwrap().value,
            "20261204100100.000003Z#000000#000#000000"
        );
        // Saved and loaded back: the same entries and watermark.
        let state = tempfile::tempdir().unwrap();
        cache
            .save(state.path(), std::time::SystemTime::now())
            .unwrap();
        let (loaded, _) = EntryCache::load(&cfg, "scripted".into(), state.path()).unwrap();
        assert_eq!(loaded.watermark(), cache.watermark());
        assert_eq!(count(&loaded.mapping_entries()), 2);
        assert!(EntryCache::load(&cfg, "elsewhere".into(), state.path()).is_none());
    }
}
