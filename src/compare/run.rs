//! The edges of `compare`: build the effective head config (connections, Endpoints and secrets
//! from the base), read the directory and the observed accounts once, compute both sides
//! through the same pipeline as `plan` (templates, `desired::render`, `reconcile`), and diff.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::{Comparison, Side};
use crate::carbonite::{CarboniteClient, ClientError, ClientOptions};
use crate::config::Config;
use crate::config::model::{Auth, CarboniteTarget, DirectorySource as SourceConfig, USER_FIELDS};
use crate::config::secret::SecretRef;
use crate::directory::read::{plan_searches, read_mappings};
use crate::directory::source::DirectorySource;
use crate::observed_cache::{CachedGroup, ObservedCache};
use crate::pass::{ObservedMode, PassError, entries_per_mapping, now, rfc3339, to_observed};
use crate::reconcile::{self, ObservedAccount};
use crate::render::ObservedSource;
use crate::template::{LookupIndex, LookupMode, LookupTables, RenderContext};

/// What the caller decides.
#[derive(Clone, Debug, Default)]
pub struct CompareOptions {
    /// `--snapshot F`: read entries from this LDIF file instead of the base config's source.
    pub snapshot: Option<PathBuf>,
    /// `--offline`: no Carbonite accounts at all.
    pub offline: bool,
    pub observed: ObservedMode,
}

/// A head setting that differs from the base and is not used (SPEC §13): `path` is the YAML
/// key (`directory.ldap.url`, `endpoints.carbonite-users`), values are printable descriptions
/// (secret references by name, never a value; `None`: not set on that side).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct IgnoredChange {
    pub path: String,
    pub base: Option<String>,
    pub head: Option<String>,
}

/// Where `lookup()` tables came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LookupSource {
    /// Listed from Carbonite with the accounts.
    Live,
    /// The observed-state cache.
    Cache,
    /// No tables: `lookup()` rendered `<unresolved:TABLE/NAME>` on both sides.
    Unresolved,
}

/// Facts about a comparison that are not the differences themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompareMeta {
    pub generated_at: String,
    /// Where the directory entries came from (LDIF path or LDAP URL; never credentials).
    pub source: String,
    pub observed_source: ObservedSource,
    /// RFC 3339 time of the listing (live or cached).
    pub listed_at: Option<String>,
    pub cache_age: Option<String>,
    pub lookups: LookupSource,
    /// Head changes to connections, Endpoints and secrets: reported, never used.
    pub ignored: Vec<IgnoredChange>,
    /// Anything else the reader must know (endpoint groups that could not be listed...).
    pub notes: Vec<String>,
}

/// A comparison with its metadata.
pub struct CompareResult {
    pub comparison: Comparison,
    pub meta: CompareMeta,
}

fn rel(cfg: &Config, p: &Path) -> String {
    p.strip_prefix(&cfg.dir)
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

fn secret(cfg: &Config, s: &SecretRef) -> String {
    match s {
        SecretRef::File(p) => format!("file:{}", rel(cfg, p)),
        other => other.describe(),
    }
}

/// The settings the head may not change, flattened to `path -> description`.
fn fixed_settings(cfg: &Config) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        m.insert(k.to_string(), v);
    };
    match &cfg.integration.directory.source {
        SourceConfig::Ldap(l) => {
            put("directory.ldap.url", l.url.clone());
            put("directory.ldap.startTls", l.start_tls.to_string());
            if let Some(b) = &l.bind_dn {
                put("directory.ldap.bindDn", b.clone());
            }
            if let Some(p) = &l.password {
                put("directory.ldap.password", secret(cfg, p));
            }
            put("directory.ldap.baseDn", l.base_dn.clone());
            put("directory.ldap.pageSize", l.page_size.to_string());
            put(
                "directory.ldap.timeout",
                humantime::format_duration(l.timeout).to_string(),
            );
            if let Some(c) = &l.ca_file {
                put("directory.ldap.tls.caFile", rel(cfg, c));
            }
            put(
                "directory.ldap.tls.insecureSkipVerify",
                l.insecure_skip_verify.to_string(),
            );
        }
        SourceConfig::Ldif { path, base_dn } => {
            put("directory.ldif.path", rel(cfg, path));
            put("directory.ldif.baseDn", base_dn.clone());
        }
    }
    let c = &cfg.integration.carbonite;
    match &c.target {
        CarboniteTarget::Url(u) => put("carbonite.baseUrl", u.clone()),
        CarboniteTarget::Emulator { seed } => put(
            "carbonite.emulator.seed",
            seed.as_deref().map(|s| rel(cfg, s)).unwrap_or_default(),
        ),
    }
    match &c.auth {
        Some(Auth::ApiKey { email, secret: s }) => {
            put("carbonite.auth.apiKey.email", email.clone());
            put("carbonite.auth.apiKey.secret", secret(cfg, s));
        }
        Some(Auth::BearerToken(s)) => put("carbonite.auth.bearerToken", secret(cfg, s)),
        None => {}
    }
    put(
        "carbonite.rateLimits.perRoute",
        c.rate_limits.per_route.to_string(),
    );
    put(
        "carbonite.rateLimits.userCreates",
        c.rate_limits.user_creates.to_string(),
    );
    put("carbonite.concurrency", c.concurrency.to_string());
    put(
        "carbonite.timeout",
        humantime::format_duration(c.timeout).to_string(),
    );
    put("carbonite.routes.getUser", c.routes.get_user.to_string());
    put(
        "carbonite.routes.createUser",
        c.routes.create_user.to_string(),
    );
    put(
        "carbonite.routes.updateUser",
        c.routes.update_user.to_string(),
    );
    put(
        "carbonite.routes.deleteUser",
        c.routes.delete_user.to_string(),
    );
    m
}

/// Head changes to what compare takes from the base config (SPEC §13).
pub fn ignored_changes(base: &Config, head: &Config) -> Vec<IgnoredChange> {
    let b = fixed_settings(base);
    let h = fixed_settings(head);
    let mut out: Vec<IgnoredChange> = b
        .keys()
        .chain(h.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|k| b.get(*k) != h.get(*k))
        .map(|k| IgnoredChange {
            path: k.clone(),
            base: b.get(k).cloned(),
            head: h.get(k).cloned(),
        })
        .collect();
    let names: BTreeSet<&String> = base.endpoints.keys().chain(head.endpoints.keys()).collect();
    for n in names {
        let (be, he) = (base.endpoints.get(n), head.endpoints.get(n));
        if be != he {
            let say = |e: Option<&crate::config::model::Endpoint>, other_exists: bool| {
                e.map(|_| {
                    if other_exists {
                        "defined (differs)".to_string()
                    } else {
                        "defined".to_string()
                    }
                })
            };
            out.push(IgnoredChange {
                path: format!("endpoints.{n}"),
                base: say(be, he.is_some()),
                head: say(he, be.is_some()),
            });
        }
    }
    out
}

/// The head config as compare evaluates it: its Mappings, formats, templates, policy, flavor,
/// disabledFilter and extraFields; the base's directory source (or `snapshot`), the rest of
/// `carbonite` and every Endpoint.
pub fn effective_head(base: &Config, head: &Config, snapshot: Option<&Path>) -> Config {
    let mut eff = head.clone();
    eff.integration.directory.source = source_of(base, snapshot);
    let extra = std::mem::take(&mut eff.integration.carbonite.extra_fields);
    eff.integration.carbonite = base.integration.carbonite.clone();
    eff.integration.carbonite.extra_fields = extra;
    eff.endpoints = base.endpoints.clone();
    eff
}

/// The base config with `--snapshot` applied.
pub fn effective_base(base: &Config, snapshot: Option<&Path>) -> Config {
    let mut eff = base.clone();
    eff.integration.directory.source = source_of(base, snapshot);
    eff
}

fn source_of(base: &Config, snapshot: Option<&Path>) -> SourceConfig {
    match snapshot {
        Some(path) => SourceConfig::Ldif {
            path: path.to_path_buf(),
            base_dn: base.integration.directory.base_dn().to_string(),
        },
        None => base.integration.directory.source.clone(),
    }
}

/// (sorted endpoints, key field): the unit of a listing.
type Group = (Vec<String>, String);

fn groups_of(cfg: &Config) -> BTreeSet<Group> {
    cfg.mappings
        .iter()
        .map(|m| {
            let mut e = m.endpoints.clone();
            e.sort();
            e.dedup();
            (e, m.primary_key.carbonite.clone())
        })
        .collect()
}

/// Accounts and tables both sides diff against.
struct Observed {
    groups: BTreeMap<Group, Vec<ObservedAccount>>,
    tables: Option<LookupTables>,
    source: ObservedSource,
    listed_at: Option<String>,
    lookups: LookupSource,
}

fn from_cache(cache: ObservedCache, wanted: &BTreeSet<Group>) -> (Observed, Vec<Group>) {
    let mut groups = BTreeMap::new();
    for g in cache.groups {
        let k = (g.endpoints, g.key_field);
        if wanted.contains(&k) {
            groups.insert(k, g.accounts.iter().filter_map(to_observed).collect());
        }
    }
    let missing = wanted
        .iter()
        .filter(|g| !groups.contains_key(*g))
        .cloned()
        .collect();
    (
        Observed {
            groups,
            tables: Some(cache.lookup_tables),
            source: ObservedSource::Cache,
            listed_at: Some(cache.listed_at),
            lookups: LookupSource::Cache,
        },
        missing,
    )
}

async fn observe(
    base: &Config,
    wanted: &BTreeSet<Group>,
    state_dir: &Path,
    opts: &CompareOptions,
    notes: &mut Vec<String>,
) -> Result<Observed, PassError> {
    let tenant = crate::carbonite::tenant_key(base, state_dir);
    if opts.offline {
        return Ok(match ObservedCache::load(state_dir, &tenant) {
            Ok(c) => Observed {
                groups: BTreeMap::new(),
                tables: Some(c.lookup_tables),
                source: ObservedSource::None,
                listed_at: None,
                lookups: LookupSource::Cache,
            },
            Err(_) => Observed {
                groups: BTreeMap::new(),
                tables: None,
                source: ObservedSource::None,
                listed_at: None,
                lookups: LookupSource::Unresolved,
            },
        });
    }
    let say_missing = |missing: Vec<Group>, notes: &mut Vec<String>| {
        for (e, k) in missing {
            notes.push(format!(
                "no cached listing of endpoints [{}] keyed by {k}: those mappings were compared \
                 against no accounts",
                e.join(", ")
            ));
        }
    };
    if opts.observed == ObservedMode::Cache {
        let (o, missing) = from_cache(ObservedCache::load(state_dir, &tenant)?, wanted);
        say_missing(missing, notes);
        return Ok(o);
    }
    let client = CarboniteClient::connect(base, state_dir, ClientOptions::default()).await?;
    let summary = ObservedCache::load_summary(state_dir, client.tenant_key()).ok();
    let endpoints: Vec<Vec<String>> = wanted.iter().map(|g| g.0.clone()).collect();
    let short = crate::pass::listing_shortfall(base, &client, &endpoints, summary.as_ref());
    let cache = || ObservedCache::load(state_dir, client.tenant_key()).ok();
    match (opts.observed, short) {
        (ObservedMode::Live, Some(e)) => {
            let _ = client.close().await;
            return Err(e);
        }
        (ObservedMode::Auto, Some(e)) if let Some(cache) = summary.and_then(|_| cache()) => {
            tracing::info!("{e}: using the observed-state cache");
            let _ = client.close().await;
            let (o, missing) = from_cache(cache, wanted);
            say_missing(missing, notes);
            return Ok(o);
        }
        _ => {}
    }
    let listed = async {
        let mut groups = Vec::new();
        for (endpoints, key_field) in wanted {
            groups.push(CachedGroup {
                endpoints: endpoints.clone(),
                key_field: key_field.clone(),
                accounts: client.list_accounts(endpoints, key_field).await?,
            });
        }
        let tables = client.lookup_tables().await?;
        Ok::<_, ClientError>((groups, tables))
    }
    .await;
    let closed = client.close().await;
    let (groups, tables) = listed?;
    closed?;
    let listed_at = rfc3339(now());
    // The cache holds what `plan` lists: save it only when the groups are the base's own.
    if *wanted == groups_of(base) {
        let cache = ObservedCache {
            version: crate::observed_cache::VERSION,
            tenant,
            listed_at: listed_at.clone(),
            groups: groups.clone(),
            lookup_tables: tables.clone(),
        };
        if let Err(e) = cache.save(state_dir) {
            tracing::warn!("cannot write the observed-state cache: {e}");
        }
    }
    Ok(Observed {
        groups: groups
            .into_iter()
            .map(|g| {
                (
                    (g.endpoints, g.key_field),
                    g.accounts.iter().filter_map(to_observed).collect(),
                )
            })
            .collect(),
        tables: Some(tables),
        source: ObservedSource::Live,
        listed_at: Some(listed_at),
        lookups: LookupSource::Live,
    })
}

/// One side's desired accounts and plan.
struct Computed {
    desired: reconcile::Desired,
    plan: reconcile::Plan,
}

fn compute_side(
    cfg: &Config,
    entries: crate::directory::read::MappingEntries,
    observed: &Observed,
    state_dir: &Path,
) -> Result<Computed, PassError> {
    let (engine, compiled) = crate::pass::compile_mappings(cfg)?;
    let per_mapping = entries_per_mapping(cfg, entries);
    let tables = observed.tables.clone().unwrap_or_default();
    let mut ctx = RenderContext::new(Arc::new(LookupIndex::new(&tables)));
    if observed.tables.is_none() {
        ctx = ctx.with_lookup_mode(LookupMode::Placeholder);
    }
    let desired = reconcile::desired::render(&engine, &compiled, &per_mapping, &ctx);
    let accounts: Vec<ObservedAccount> = groups_of(cfg)
        .iter()
        .filter_map(|g| observed.groups.get(g))
        .flatten()
        .cloned()
        .collect();
    let mut fields: Vec<String> = USER_FIELDS.iter().map(|s| s.to_string()).collect();
    fields.extend(cfg.integration.carbonite.extra_fields.iter().cloned());
    let state = crate::state::StateFiles::new(state_dir);
    let suspended = state.suspended();
    let baseline = state.baseline();
    let plan = reconcile::reconcile(&reconcile::Input {
        mappings: &cfg.mappings,
        policy: &cfg.integration.policy,
        desired: &desired,
        observed: &accounts,
        suspended_by_us: &suspended,
        baseline: baseline.as_ref(),
        fingerprint_fields: &fields,
        options: reconcile::Options {
            only_mappings: None,
            allow_destructive: None,
            plan_destructive: true,
        },
    });
    Ok(Computed { desired, plan })
}

/// Compare `head` against `base` on the same entries and accounts.
pub async fn compare(
    base: &Config,
    head: &Config,
    state_dir: &Path,
    opts: &CompareOptions,
) -> Result<CompareResult, PassError> {
    let started = now();
    let snapshot = opts.snapshot.as_deref();
    let base_eff = effective_base(base, snapshot);
    let head_eff = effective_head(base, head, snapshot);
    let mut notes = Vec::new();

    // One source when both sides read it the same way (the usual case), else one each.
    let same_reading = base_eff.integration.directory.flavor
        == head_eff.integration.directory.flavor
        && base_eff.integration.directory.disabled_filter
            == head_eff.integration.directory.disabled_filter;
    let base_source = crate::directory::source::open(&base_eff.integration.directory)?;
    let head_source: Option<Box<dyn DirectorySource>> = if same_reading {
        None
    } else {
        Some(crate::directory::source::open(
            &head_eff.integration.directory,
        )?)
    };
    let source_location = base_source.location();

    let mut wanted = groups_of(&base_eff);
    for g in groups_of(&head_eff) {
        if g.0.iter().all(|e| base.endpoints.contains_key(e)) {
            wanted.insert(g);
        } else {
            notes.push(format!(
                "endpoints [{}] are not defined by the base config (Endpoints come from the \
                 base): those mappings were compared against no accounts",
                g.0.join(", ")
            ));
        }
    }
    // Base and head are independent until the diff: read (each side's searches) and compute
    // them on two threads, with the Carbonite listing on a third. This function runs as the
    // main future of `cli::block_on`'s multi-thread runtime, on the calling thread, so blocking
    // it in `thread::scope` leaves the runtime's workers free; each scoped thread drives its
    // async part with `Handle::block_on`.
    let handle = tokio::runtime::Handle::current();
    let head_reader = head_source.as_deref().unwrap_or(base_source.as_ref());
    let read = |cfg: &Config, source: &dyn DirectorySource| {
        handle.block_on(read_mappings(source, &plan_searches(cfg)))
    };
    let panicked = |what: &str| PassError::Other(format!("the {what} thread panicked"));
    let (observed, base_entries, head_entries) = std::thread::scope(|s| {
        let listing =
            s.spawn(|| handle.block_on(observe(&base_eff, &wanted, state_dir, opts, &mut notes)));
        let base_read = s.spawn(|| read(&base_eff, base_source.as_ref()));
        // Not on this thread: it is inside the runtime, where `block_on` is not allowed.
        let head_read = s.spawn(|| read(&head_eff, head_reader));
        (listing.join(), base_read.join(), head_read.join())
    });
    let observed = observed.map_err(|_| panicked("Carbonite listing"))??;
    let base_entries = base_entries.map_err(|_| panicked("base read"))??;
    let head_entries = head_entries.map_err(|_| panicked("head read"))??;
    tracing::debug!(
        "compare: read at {:?}",
        started.elapsed().unwrap_or_default()
    );
    let (b, h) = std::thread::scope(|s| {
        let b = s.spawn(|| compute_side(&base_eff, base_entries, &observed, state_dir));
        let h = compute_side(&head_eff, head_entries, &observed, state_dir);
        (b.join(), h)
    });
    let b = b.map_err(|_| panicked("base evaluation"))??;
    let h = h?;
    tracing::debug!(
        "compare: both sides computed at {:?}",
        started.elapsed().unwrap_or_default()
    );
    let comparison = super::diff(
        Side {
            mappings: &base_eff.mappings,
            desired: &b.desired,
            plan: &b.plan,
        },
        Side {
            mappings: &head_eff.mappings,
            desired: &h.desired,
            plan: &h.plan,
        },
    );
    tracing::debug!(
        "compare: diffed at {:?}",
        started.elapsed().unwrap_or_default()
    );
    let cache_age = match observed.source {
        ObservedSource::Cache => observed
            .listed_at
            .as_deref()
            .and_then(|t| crate::observed_cache::human_age(t, started)),
        _ => None,
    };
    // Freeing two evaluations of a large directory takes a noticeable time (about a second at
    // 100k entries); nothing needs it done before the result is printed.
    std::thread::spawn(move || drop((b, h, base_eff, head_eff, observed.groups)));
    Ok(CompareResult {
        comparison,
        meta: CompareMeta {
            generated_at: rfc3339(started),
            source: source_location,
            observed_source: observed.source,
            listed_at: observed.listed_at,
            cache_age,
            lookups: observed.lookups,
            ignored: ignored_changes(base, head),
            notes,
        },
    })
}
