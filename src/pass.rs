//! One reconcile pass, end to end: read the directory and Carbonite concurrently, render the
//! desired state, run the pure core, and describe the result. The I/O edges live here so the
//! commands (`plan`, later `apply` and `watch`) stay thin.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::carbonite::ledger::{Ledger, PlannedCalls};
use crate::carbonite::{CarboniteClient, ClientError, ClientOptions};
use crate::config::Config;
use crate::config::model::{DirectorySource as SourceConfig, USER_FIELDS};
use crate::directory::read::{plan_searches, read_mappings};
use crate::directory::source::DirectoryError;
use crate::observed_cache::{CacheError, CacheSummary, CachedGroup, ObservedCache};
use crate::reconcile::{self, Action, Baseline, ObservedAccount, Plan};
use crate::render::{ObservedSource, PlanMeta};
use crate::template::{EngineSettings, LookupIndex, RenderContext, TemplateEngine, Undefined};

/// Why a pass could not produce a plan.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Carbonite(Box<ClientError>),
    #[error("{0}")]
    Other(String),
    /// `--observed cache` without a usable cache.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// `--observed live` when the budget cannot cover the listing (exit 5).
    #[error("listing needs {needed} calls, {left} left, next budget at {next} (route {route})")]
    NoBudget {
        needed: u64,
        left: u32,
        next: String,
        route: String,
    },
}

impl From<ClientError> for PassError {
    fn from(e: ClientError) -> Self {
        PassError::Carbonite(Box::new(e))
    }
}

/// Where the observed accounts come from (SPEC §6.2 `--observed`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ObservedMode {
    /// List Carbonite now; exit 5 when the rate budget cannot cover the listing.
    Live,
    /// The observed-state cache of the last full listing; no Carbonite call at all.
    Cache,
    /// Live when the listing fits in the remaining budget, else the cache.
    #[default]
    Auto,
}

/// What the caller decides.
#[derive(Clone, Debug, Default)]
pub struct PassOptions {
    pub only_mappings: Option<BTreeSet<String>>,
    pub allow_destructive: Option<u64>,
    pub observed: ObservedMode,
    /// The directory read was incremental (watch): no suspends/deletes are planned (SPEC §12:
    /// only full reads plan them).
    pub incremental: bool,
    /// The observed-state cache as the caller already holds it (watch keeps it between
    /// passes): used instead of reading the file when the accounts come from the cache.
    pub cache: Option<Arc<ObservedCache>>,
}

/// Desired values of one account: every written field (the key field included), `None` empty.
pub type DesiredFields = BTreeMap<String, Option<String>>;

/// A computed plan with everything the renderers and the executor need.
pub struct PassResult {
    pub plan: Plan,
    pub meta: PlanMeta,
    /// Desired values of the accounts that `plan.changes` touch, by (mapping, key); suspends and
    /// deletes of vanished users have none.
    pub desired: BTreeMap<(String, String), DesiredFields>,
    /// In-scope entries per mapping, read completely (what a baseline records).
    pub entry_counts: BTreeMap<String, u64>,
    /// The directory entries of the changes that trigger orchestrations, by (mapping, key):
    /// the `user` of their webhooks.
    pub entries: BTreeMap<(String, String), Arc<crate::directory::Entry>>,
    /// The observed accounts (wire JSON) of those changes, by account id: their `account`.
    pub accounts: BTreeMap<String, serde_json::Value>,
    /// The lookup tables the pass used (webhook templates may call `lookup()`).
    pub lookup_tables: crate::template::LookupTables,
}

/// The accounts and lookup tables a pass diffs against, and where they came from.
struct Observed<'a> {
    /// The listed accounts of every group (converted to the core's form in `finish`, on
    /// another thread while the desired state is rendered).
    accounts: Listed<'a>,
    tables: crate::template::LookupTables,
    source: ObservedSource,
    listed_at: SystemTime,
    /// RFC 3339 listing time of the cache, when the source is the cache.
    cache_listed_at: Option<String>,
}

/// Listed accounts: a cache (owned, or the caller's), or a live listing already being
/// converted to the core's form on another thread.
enum Listed<'a> {
    Owned(ObservedCache),
    Borrowed(&'a ObservedCache),
    Converting(std::thread::JoinHandle<(Arc<Vec<ObservedAccount>>, Fingerprinting)>),
    /// Converted already.
    Ready(Arc<Vec<ObservedAccount>>, Fingerprinting),
}

/// The observed fingerprint being computed on its own thread.
type Fingerprinting = std::thread::JoinHandle<String>;

/// The fields an observed fingerprint covers: the User fields and `extraFields`.
fn fingerprint_fields(cfg: &Config) -> Vec<String> {
    let mut fields: Vec<String> = USER_FIELDS.iter().map(|s| s.to_string()).collect();
    fields.extend(cfg.integration.carbonite.extra_fields.iter().cloned());
    fields
}

/// Start the observed fingerprint of `observed` on its own thread.
fn start_fingerprint(observed: &Arc<Vec<ObservedAccount>>, fields: Vec<String>) -> Fingerprinting {
    let observed = observed.clone();
    std::thread::spawn(move || reconcile::fingerprint::observed_fingerprint(&observed, &fields))
}

impl Listed<'_> {
    /// The accounts in the core's form, with their fingerprint when it is already being
    /// computed.
    fn into_core(self) -> (Arc<Vec<ObservedAccount>>, Option<Fingerprinting>) {
        match self {
            Listed::Owned(c) => (Arc::new(core_accounts(&c.groups)), None),
            Listed::Borrowed(c) => (Arc::new(core_accounts(&c.groups)), None),
            Listed::Converting(h) => {
                let (accounts, fingerprinting) = joined(h);
                (accounts, Some(fingerprinting))
            }
            Listed::Ready(accounts, fingerprinting) => (accounts, Some(fingerprinting)),
        }
    }
}

/// The time the pass considers "now": `CARBONITE_SYNC_NOW` (RFC 3339; a testing aid that keeps
/// outputs byte-identical), else the system clock.
pub fn now() -> SystemTime {
    std::env::var("CARBONITE_SYNC_NOW")
        .ok()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| {
            SystemTime::UNIX_EPOCH
                + std::time::Duration::from_millis(t.timestamp_millis().max(0) as u64)
        })
        .unwrap_or_else(SystemTime::now)
}

pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `sha256:` over the sorted (relative path, NUL, bytes) of every loaded YAML file and the LDIF
/// source (SPEC §7).
pub fn config_digest(cfg: &Config) -> String {
    let mut parts: Vec<(String, Vec<u8>)> = cfg
        .sources
        .files
        .iter()
        .filter(|f| !f.rel_path.starts_with('<'))
        .map(|f| (f.rel_path.clone(), f.bytes.to_vec()))
        .collect();
    if let SourceConfig::Ldif { path, .. } = &cfg.integration.directory.source {
        let rel = path
            .strip_prefix(&cfg.dir)
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/");
        parts.push((rel, std::fs::read(path).unwrap_or_default()));
    }
    parts.sort();
    let mut h = Sha256::new();
    for (p, b) in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
        h.update(&b);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// The config dir's git commit, when it is a git work tree.
pub fn git_commit(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| s.len() == 40)
}

/// Read, diff and describe. The directory and Carbonite are read concurrently; with
/// `ObservedMode::Cache` (or `Auto` when the budget cannot cover a listing) the accounts come
/// from the observed-state cache instead, and with `Cache` no client is even built.
pub async fn compute(
    cfg: &Config,
    state_dir: &Path,
    opts: &PassOptions,
) -> Result<PassResult, PassError> {
    if opts.observed == ObservedMode::Cache {
        let started = now();
        let source = crate::directory::source::open(&cfg.integration.directory)?;
        let searches = plan_searches(cfg);
        let read_directory = read_mappings(source.as_ref(), &searches);
        let loading = load_cache_aside(
            state_dir,
            crate::carbonite::tenant_key(cfg, state_dir),
            fingerprint_fields(cfg),
        );
        let ledger = crate::carbonite::open_ledger(cfg, state_dir)?;
        let entries = read_directory.await;
        let observed = joined(loading)?;
        return finish(
            cfg,
            state_dir,
            &ledger,
            entries,
            Ok(observed),
            opts,
            started,
        );
    }

    let client = CarboniteClient::connect(cfg, state_dir, ClientOptions::default()).await?;
    let result = compute_with(cfg, state_dir, opts, &client).await;
    let closed = client.close().await;
    let r = result?;
    closed?;
    Ok(r)
}

/// [`compute`] with a client the caller keeps (apply writes through it afterwards). With
/// `ObservedMode::Cache` the client makes no call.
pub async fn compute_with(
    cfg: &Config,
    state_dir: &Path,
    opts: &PassOptions,
    client: &CarboniteClient,
) -> Result<PassResult, PassError> {
    let source = crate::directory::source::open(&cfg.integration.directory)?;
    let searches = plan_searches(cfg);
    compute_inner(
        cfg,
        state_dir,
        opts,
        client,
        read_mappings(source.as_ref(), &searches),
    )
    .await
}

/// [`compute_with`] over entries the caller read (watch's entry cache, merged from
/// incremental reads).
pub async fn compute_with_entries(
    cfg: &Config,
    state_dir: &Path,
    opts: &PassOptions,
    client: &CarboniteClient,
    entries: crate::directory::read::MappingEntries,
) -> Result<PassResult, PassError> {
    compute_inner(
        cfg,
        state_dir,
        opts,
        client,
        std::future::ready(Ok(entries)),
    )
    .await
}

async fn compute_inner(
    cfg: &Config,
    state_dir: &Path,
    opts: &PassOptions,
    client: &CarboniteClient,
    read_directory: impl std::future::Future<
        Output = Result<crate::directory::read::MappingEntries, DirectoryError>,
    >,
) -> Result<PassResult, PassError> {
    let started = now();
    let groups = endpoint_groups(cfg);
    if opts.observed == ObservedMode::Cache {
        // The caller's cache, or the file's read (and converted) during the directory read.
        let observed = match &opts.cache {
            Some(held) => Ok(from_cache_ref(held)),
            None => Err(load_cache_aside(
                state_dir,
                client.tenant_key().to_string(),
                fingerprint_fields(cfg),
            )),
        };
        let entries = read_directory.await;
        let observed = match observed {
            Ok(held) => held,
            Err(loading) => joined(loading)?,
        };
        return finish(
            cfg,
            state_dir,
            client.ledger(),
            entries,
            Ok(observed),
            opts,
            started,
        );
    }
    // Only the cache's summary line is read here: the accounts are parsed only when the budget
    // sends this pass to the cache.
    fn usable<T>(loaded: Result<T, CacheError>) -> Option<T> {
        match loaded {
            Ok(c) => Some(c),
            Err(CacheError::Missing(_)) => None,
            Err(e) => {
                tracing::warn!("{e}; ignoring it");
                None
            }
        }
    }
    let summary: Option<CacheSummary> =
        usable(ObservedCache::load_summary(state_dir, client.tenant_key()));
    let group_endpoints: Vec<Vec<String>> = groups.keys().cloned().collect();
    let short = listing_shortfall(cfg, client, &group_endpoints, summary.as_ref());
    let use_cache = match (opts.observed, short) {
        (ObservedMode::Live, Some(e)) => return Err(e),
        (ObservedMode::Auto, Some(e)) if summary.is_some() => {
            usable(ObservedCache::load(state_dir, client.tenant_key())).inspect(|_| {
                tracing::info!("{e}: using the observed-state cache");
            })
        }
        _ => None,
    };
    if let Some(cache) = use_cache {
        let entries = read_directory.await;
        return finish(
            cfg,
            state_dir,
            client.ledger(),
            entries,
            Ok(from_cache(cache)),
            opts,
            started,
        );
    }

    let clock = std::time::Instant::now();
    let read_directory = async {
        let r = read_directory.await;
        tracing::debug!(
            ms = clock.elapsed().as_millis() as u64,
            "pass: directory read"
        );
        r
    };
    // As soon as the listing is in (the directory may still be read), the cache is written and
    // the accounts converted to the core's form, each on its own thread; the writer is joined
    // before returning, so a plan still leaves the cache.
    let saving = std::sync::Mutex::new(None);
    let read_carbonite = async {
        let mut listed = Vec::new();
        for (endpoints, key_field) in &groups {
            listed.push(CachedGroup {
                endpoints: endpoints.clone(),
                key_field: key_field.clone(),
                accounts: client.list_accounts(endpoints, key_field).await?,
            });
        }
        let tables = client.lookup_tables().await?;
        tracing::debug!(
            ms = clock.elapsed().as_millis() as u64,
            "pass: accounts listed"
        );
        let listed_at = now();
        let cache = Arc::new(ObservedCache {
            version: crate::observed_cache::VERSION,
            tenant: client.tenant_key().to_string(),
            listed_at: rfc3339(listed_at),
            groups: listed,
            lookup_tables: tables,
        });
        // The fingerprint starts as soon as the accounts are converted: both run while the
        // directory is still being read.
        let converting = std::thread::spawn({
            let (cache, fields) = (cache.clone(), fingerprint_fields(cfg));
            move || {
                let accounts = Arc::new(core_accounts(&cache.groups));
                let fingerprinting = start_fingerprint(&accounts, fields);
                (accounts, fingerprinting)
            }
        });
        let dir = state_dir.to_path_buf();
        let tables = cache.lookup_tables.clone();
        *saving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(std::thread::spawn(move || {
                if let Err(e) = cache.save(&dir) {
                    tracing::warn!(
                        "cannot write the observed-state cache in {}: {e}",
                        dir.display()
                    );
                }
            }));
        Ok::<_, ClientError>(Observed {
            accounts: Listed::Converting(converting),
            tables,
            source: ObservedSource::Live,
            listed_at,
            cache_listed_at: None,
        })
    };
    let (entries, observed) = tokio::join!(read_directory, read_carbonite);
    let result = finish(
        cfg,
        state_dir,
        client.ledger(),
        entries,
        observed,
        opts,
        started,
    );
    tracing::debug!("pass: finished");
    let saving = saving
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(saving) = saving
        && let Err(panic) = saving.join()
    {
        std::panic::resume_unwind(panic);
    }
    tracing::debug!("pass: cache saved");
    result
}

/// The observed-state cache read, and its accounts converted to the core's form, on their own
/// thread while the directory is read.
fn load_cache_aside(
    state_dir: &Path,
    tenant: String,
    fields: Vec<String>,
) -> std::thread::JoinHandle<Result<Observed<'static>, CacheError>> {
    let dir = state_dir.to_path_buf();
    std::thread::spawn(move || {
        let cache = ObservedCache::load(&dir, &tenant)?;
        let accounts = Arc::new(core_accounts(&cache.groups));
        let fingerprinting = start_fingerprint(&accounts, fields);
        Ok(Observed {
            source: ObservedSource::Cache,
            listed_at: now(),
            cache_listed_at: Some(cache.listed_at),
            tables: cache.lookup_tables,
            accounts: Listed::Ready(accounts, fingerprinting),
        })
    })
}

fn joined<T>(handle: std::thread::JoinHandle<T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// [`PassError::NoBudget`] for the first route whose budget cannot cover a full listing of
/// these endpoint groups now (the calls per route as `observed_cache::listing_calls` counts
/// them), `None` when the listing fits.
pub fn listing_shortfall(
    cfg: &Config,
    client: &CarboniteClient,
    groups: &[Vec<String>],
    cache: Option<&CacheSummary>,
) -> Option<PassError> {
    let needed = crate::observed_cache::listing_calls(cfg, groups, cache, client.uses_api_key());
    needed.iter().find_map(|(route, n)| {
        let b = client.ledger().budget(route, false).ok()?;
        (u64::from(b.remaining) < *n).then(|| PassError::NoBudget {
            needed: *n,
            left: b.remaining,
            next: rfc3339(b.next_free),
            route: route.clone(),
        })
    })
}

/// The template engine of a config (its `undefined` mode and formats).
pub fn template_engine(cfg: &Config) -> Result<TemplateEngine, String> {
    TemplateEngine::new(EngineSettings {
        undefined: match cfg.integration.templates.undefined {
            crate::config::model::UndefinedMode::Lenient => Undefined::Lenient,
            crate::config::model::UndefinedMode::Strict => Undefined::Strict,
        },
        formats: cfg.integration.templates.formats.clone(),
    })
    .map_err(|e| {
        format!(
            "templates: {}",
            e.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

/// The engine with every mapping's templates compiled.
pub fn compile_mappings(
    cfg: &Config,
) -> Result<(TemplateEngine, Vec<reconcile::CompiledMapping>), PassError> {
    let mut engine = template_engine(cfg).map_err(PassError::Other)?;
    let compiled = reconcile::desired::compile(&mut engine, &cfg.mappings).map_err(|e| {
        PassError::Other(format!(
            "templates: {}",
            e.iter()
                .map(|(w, i)| format!("{w}: {i}"))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    Ok((engine, compiled))
}

/// Endpoint groups the mappings read (sorted, deduplicated endpoint names), with their key field.
pub fn endpoint_groups(cfg: &Config) -> BTreeMap<Vec<String>, String> {
    let mut groups: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for m in &cfg.mappings {
        let mut e = m.endpoints.clone();
        e.sort();
        e.dedup();
        groups
            .entry(e)
            .or_insert_with(|| m.primary_key.carbonite.clone());
    }
    groups
}

/// Every account of the groups in the core's form.
fn core_accounts(groups: &[CachedGroup]) -> Vec<ObservedAccount> {
    groups
        .iter()
        .flat_map(|g| g.accounts.iter())
        .filter_map(to_observed)
        .collect()
}

fn from_cache_ref(cache: &ObservedCache) -> Observed<'_> {
    Observed {
        accounts: Listed::Borrowed(cache),
        tables: cache.lookup_tables.clone(),
        source: ObservedSource::Cache,
        listed_at: now(),
        cache_listed_at: Some(cache.listed_at.clone()),
    }
}

fn from_cache(cache: ObservedCache) -> Observed<'static> {
    Observed {
        tables: cache.lookup_tables.clone(),
        source: ObservedSource::Cache,
        listed_at: now(),
        cache_listed_at: Some(cache.listed_at.clone()),
        accounts: Listed::Owned(cache),
    }
}

fn finish(
    cfg: &Config,
    state_dir: &Path,
    ledger: &Ledger,
    entries: Result<crate::directory::read::MappingEntries, DirectoryError>,
    listed: Result<Observed<'_>, ClientError>,
    opts: &PassOptions,
    started: SystemTime,
) -> Result<PassResult, PassError> {
    let entries = entries?;
    let listed = listed?;
    let listed_at = listed.listed_at;
    let tables = listed.tables;
    let fields = fingerprint_fields(cfg);
    // `git rev-parse` (~3 ms) runs while the desired state is rendered.
    let git = std::thread::spawn({
        let dir = cfg.dir.clone();
        move || git_commit(&dir)
    });

    let clock = std::time::Instant::now();
    let (engine, compiled) = compile_mappings(cfg)?;
    let ctx = RenderContext::new(Arc::new(LookupIndex::new(&tables)));
    // The listed accounts are converted to the core's form on another thread while the desired
    // state is rendered on this one; that thread then starts the observed fingerprint, which
    // runs while the core reconciles.
    let (desired, (observed, fingerprinting), per_mapping) = std::thread::scope(|s| {
        let accounts = listed.accounts;
        let converting = s.spawn(|| {
            let (observed, fingerprinting) = accounts.into_core();
            let fingerprinting =
                fingerprinting.unwrap_or_else(|| start_fingerprint(&observed, fields.clone()));
            (observed, fingerprinting)
        });
        let per_mapping = entries_per_mapping(cfg, entries);
        let desired = reconcile::desired::render(&engine, &compiled, &per_mapping, &ctx);
        let converted = converting
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (desired, converted, per_mapping)
    });
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        accounts = desired.accounts.len(),
        "pass: desired state rendered"
    );

    let state = crate::state::StateFiles::new(state_dir);
    let suspended = state.suspended();
    let baseline: Option<Baseline> = state.baseline();
    let mut plan = reconcile::reconcile(&reconcile::Input {
        mappings: &cfg.mappings,
        policy: &cfg.integration.policy,
        desired: &desired,
        observed: observed.as_slice(),
        suspended_by_us: &suspended,
        baseline: baseline.as_ref(),
        fingerprint_fields: &fields,
        options: reconcile::Options {
            only_mappings: opts.only_mappings.clone(),
            allow_destructive: opts.allow_destructive,
            plan_destructive: !opts.incremental,
        },
    });
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        changes = plan.changes.len(),
        "pass: reconciled"
    );

    // The desired accounts of the changes, by (mapping, key): one pass over the desired state
    // picks the few the plan touches (an index of all of them cost ~5 ms at 100k).
    let by_key: std::collections::HashMap<(usize, &str), &reconcile::desired::DesiredAccount> = {
        let wanted: std::collections::HashSet<(usize, &str)> = plan
            .changes
            .iter()
            .filter_map(|c| {
                let mi = cfg.mappings.iter().position(|m| m.name == c.mapping)?;
                Some((mi, c.key.as_str()))
            })
            .collect();
        desired
            .accounts
            .iter()
            .filter(|a| !wanted.is_empty() && wanted.contains(&(a.mapping, a.key.as_str())))
            .map(|a| ((a.mapping, a.key.as_str()), a))
            .collect()
    };

    // Orchestrations each change triggers: their events, and `when` evaluated now (SPEC §7),
    // with the entry as `user` and the observed account as `account`.
    let mut entries = BTreeMap::new();
    let mut accounts = BTreeMap::new();
    let mut hook_calls: BTreeMap<String, u64> = BTreeMap::new();
    if !cfg.orchestrations.is_empty() {
        let hooks = crate::webhook::Hooks::compile(cfg).map_err(PassError::Other)?;
        // The account as templates see it: its non-empty fields as strings.
        let by_id: std::collections::HashMap<&str, &ObservedAccount> =
            observed.iter().map(|a| (a.id.as_str(), a)).collect();
        for c in &mut plan.changes {
            let entry = cfg
                .mappings
                .iter()
                .position(|m| m.name == c.mapping)
                .and_then(|mi| by_key.get(&(mi, c.key.as_str())))
                .map(|a| a.entry.clone());
            let account = c
                .account_id
                .as_deref()
                .and_then(|id| by_id.get(id))
                .map(|a| {
                    let mut m: serde_json::Map<String, serde_json::Value> = a
                        .fields
                        .iter()
                        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
                        .collect();
                    m.insert("UserId".into(), serde_json::Value::String(a.id.clone()));
                    serde_json::Value::Object(m)
                });
            let mut cx = ctx.clone();
            if let Some(e) = &entry {
                cx = cx.with_entry(e.clone());
            }
            if let Some(a) = &account {
                cx = cx.with_account(Arc::new(a.clone()));
            }
            c.orchestrations = hooks.triggered(c, &cx);
            if c.orchestrations.is_empty() {
                continue;
            }
            for o in &c.orchestrations {
                for step in hooks.steps(o) {
                    if let Some(route) = hooks.carbonite_route(step) {
                        *hook_calls.entry(route.to_string()).or_default() += 1;
                    }
                }
            }
            if let Some(e) = entry {
                entries.insert((c.mapping.clone(), c.key.clone()), e);
            }
            if let (Some(id), Some(a)) = (&c.account_id, account) {
                accounts.insert(id.clone(), a);
            }
        }
    }

    // Estimate: calls per route and when the last one can go under the limits and the ledger.
    let routes = &cfg.integration.carbonite.routes;
    let mut calls: BTreeMap<String, u64> = hook_calls;
    for c in &plan.changes {
        let route = match c.action {
            Action::Create => routes.create_user.to_string(),
            Action::Delete => routes.delete_user.to_string(),
            _ => routes.update_user.to_string(),
        };
        *calls.entry(route).or_default() += 1;
    }
    let create_route = routes.create_user.to_string();
    let planned: Vec<PlannedCalls> = calls
        .iter()
        .map(|(route, count)| PlannedCalls {
            route: route.clone(),
            count: *count,
            is_create: *route == create_route,
        })
        .collect();
    let earliest = ledger
        .schedule(&planned, listed_at)
        .ok()
        .map(|s| rfc3339(s.completion));
    tracing::debug!(ms = clock.elapsed().as_millis() as u64, "pass: estimated");
    let observed_fingerprint = fingerprinting
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    tracing::debug!(
        ms = clock.elapsed().as_millis() as u64,
        "pass: fingerprinted"
    );
    let meta = PlanMeta {
        generated_at: rfc3339(started),
        config_digest: config_digest(cfg),
        git_commit: joined(git),
        cache_age: listed
            .cache_listed_at
            .as_deref()
            .and_then(|t| crate::observed_cache::human_age(t, started)),
        listed_at: Some(
            listed
                .cache_listed_at
                .clone()
                .unwrap_or_else(|| rfc3339(listed_at)),
        ),
        observed_source: listed.source,
        observed_fingerprint: Some(observed_fingerprint),
        calls,
        earliest_completion: if plan.changes.is_empty() {
            None
        } else {
            earliest
        },
    };
    // Desired values of the touched accounts, the key field included (for a saved plan).
    let mut desired_values = BTreeMap::new();
    for c in &plan.changes {
        let Some(mi) = cfg.mappings.iter().position(|m| m.name == c.mapping) else {
            continue;
        };
        if let Some(a) = by_key.get(&(mi, c.key.as_str())) {
            let mut fields = a.fields(&cfg.mappings[mi]);
            fields.insert(
                cfg.mappings[mi].primary_key.carbonite.clone(),
                Some(a.key.clone()),
            );
            desired_values.insert((c.mapping.clone(), c.key.clone()), fields);
        }
    }
    let entry_counts = cfg
        .mappings
        .iter()
        .zip(&desired.entry_counts)
        .map(|(m, n)| (m.name.clone(), *n as u64))
        .collect();
    // Freeing the entries, the desired state and the observed accounts one allocation at a time
    // takes tens of milliseconds at 100k users: another thread does it.
    drop(by_key);
    let garbage = (desired, observed, per_mapping);
    std::thread::spawn(move || drop(garbage));
    Ok(PassResult {
        plan,
        meta,
        desired: desired_values,
        entry_counts,
        entries,
        accounts,
        lookup_tables: tables,
    })
}

/// Hand each mapping its entries as shared `Arc<Entry>`s. Mappings that share a search share
/// the entries; each entry is moved (not copied) into its `Arc`.
pub fn entries_per_mapping(
    cfg: &Config,
    entries: crate::directory::read::MappingEntries,
) -> Vec<Vec<Arc<crate::directory::Entry>>> {
    let mut groups: Vec<(Arc<Vec<crate::directory::Entry>>, Vec<String>)> = Vec::new();
    for (name, list) in entries {
        match groups.iter_mut().find(|g| Arc::ptr_eq(&g.0, &list)) {
            Some(g) => g.1.push(name),
            None => groups.push((list, vec![name])),
        }
    }
    let mut by_name: BTreeMap<String, Vec<Arc<crate::directory::Entry>>> = BTreeMap::new();
    for (list, names) in groups {
        let shared: Vec<Arc<crate::directory::Entry>> = match Arc::try_unwrap(list) {
            Ok(owned) => owned.into_iter().map(Arc::new).collect(),
            Err(still_shared) => still_shared.iter().cloned().map(Arc::new).collect(),
        };
        for name in names {
            by_name.insert(name, shared.clone());
        }
    }
    cfg.mappings
        .iter()
        .map(|m| by_name.remove(&m.name).unwrap_or_default())
        .collect()
}

/// The wire-level listing -> the core's view (string fields, empty values dropped).
pub fn to_observed(a: &crate::carbonite::ObservedAccount) -> Option<ObservedAccount> {
    Some(observed_from_raw(
        a.id.clone()?,
        &a.fields,
        endpoint_set(&a.endpoints),
    ))
}

/// [`observed_from`] straight from the listed text (no `Value` in between).
pub fn observed_from_raw(
    id: String,
    fields: &crate::carbonite::raw::RawFields,
    endpoints: Arc<BTreeSet<String>>,
) -> ObservedAccount {
    ObservedAccount {
        id,
        fields: crate::carbonite::raw::scalar_fields(fields.as_str())
            .into_iter()
            .collect(),
        endpoints,
    }
}

/// The shared set of these endpoint names (the previous set again when it is the same: most
/// accounts of a listing were listed by the same endpoints).
fn endpoint_set(names: &[String]) -> Arc<BTreeSet<String>> {
    thread_local! {
        static LAST: std::cell::RefCell<Arc<BTreeSet<String>>> = Default::default();
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.len() != names.len() || !names.iter().all(|n| last.contains(n)) {
            *last = Arc::new(names.iter().cloned().collect());
        }
        last.clone()
    })
}

/// An account's wire fields -> the core's view (string fields, empty values dropped).
pub fn observed_from(
    id: String,
    fields: &serde_json::Map<String, serde_json::Value>,
    endpoints: Arc<BTreeSet<String>>,
) -> ObservedAccount {
    let fields = fields
        .iter()
        .filter_map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => return None,
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => return None,
            };
            (!s.is_empty()).then_some((k, s))
        })
        .collect();
    ObservedAccount {
        id,
        fields,
        endpoints,
    }
}
