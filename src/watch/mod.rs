//! `watch` (SPEC §12): a level-triggered reconcile daemon. Each pass recomputes the plan from
//! scratch with the same engine and guards as `plan`/`apply` and applies it; a refused pass is
//! reported and retried next time, never forced.
//!
//! - **Directory**: an entry cache ([`entries::EntryCache`]) filled by a full read every
//!   `--full-read` (and after a config change), merged from incremental reads (AD uSNChanged,
//!   OpenLDAP entryCSN) in between. Only full reads plan suspends/deletes.
//! - **Carbonite**: the observed-state cache between full refreshes (kept current from write
//!   answers by the executor), a live listing every `--full-refresh`, paced to the budget
//!   (effective period = max(flag, listing pages / route limit)). An idle watch makes no call.
//! - **Config**: watched with notify (debounced ~1 s; editors' rename-on-save is a rename
//!   event); a change triggers a pass; a config that fails to load is reported with its
//!   diagnostics and the last good one keeps running.
//! - **Stop**: SIGINT/SIGTERM finish the operations in flight, journal them, exit 0.

pub mod entries;
pub mod health;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::apply::run::Run;
use crate::apply::{self, OpOutcome, Operation, RunInfo, StopFlag};
use crate::carbonite::{CarboniteClient, ClientOptions};
use crate::config::Config;
use crate::error::{CommandError, Outcome};
use crate::journal::Journal;
use crate::lock::StateLock;
use crate::observed_cache::ObservedCache;
use crate::output::Output;
use crate::pass::{self, ObservedMode, PassOptions};
use crate::reconcile::GuardStatus;
use health::{Health, HealthState};

/// The cadences and the health endpoint.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    pub interval: Duration,
    pub full_read: Duration,
    pub full_refresh: Duration,
    pub listen: Option<std::net::SocketAddr>,
}

/// The daemon. Returns when a signal stops it.
pub async fn run(
    config_dir: &Path,
    state_dir: &Path,
    opts: WatchOptions,
    out: &Output,
) -> Result<Outcome, CommandError> {
    let mut cfg = crate::config::load(config_dir).map_err(|e| {
        crate::cli::validate::report_load_error(&e, out);
        CommandError::new("the config does not load; watch needs a valid config to start")
            .with_hint("fix the problems above (`carbonite-sync validate`), then start again")
    })?;
    let _lock = StateLock::acquire(state_dir, "carbonite-sync watch").map_err(|e| {
        let hint = e.hint();
        CommandError::new(e.to_string())
            .with_hint(hint)
            .with_outcome(Outcome::Refused)
    })?;
    let health: Health = Arc::new(std::sync::Mutex::new(HealthState {
        started_at: Some(SystemTime::now()),
        interval: opts.interval,
        config_status: "ok".into(),
        config_loaded_at: Some(SystemTime::now()),
        config_digest: Some(pass::config_digest(&cfg)),
        ..Default::default()
    }));
    let stop = Arc::new(StopFlag::default());
    let wake = Arc::new(tokio::sync::Notify::new());
    {
        let (stop, wake) = (stop.clone(), wake.clone());
        tokio::spawn(async move {
            apply::run::signalled().await;
            tracing::info!("signal received: finishing the operations in flight, then stopping");
            stop.signal();
            wake.notify_one();
        });
    }
    let server = match opts.listen {
        Some(addr) => {
            let s = stop.clone();
            let shutdown = async move {
                while s.stop().is_none() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            };
            let (bound, task) = health::serve(addr, health.clone(), shutdown)
                .await
                .map_err(|e| {
                    CommandError::new(format!("cannot listen on {addr}: {e}"))
                        .with_hint("pick a free address with --listen (port 0 picks one)")
                })?;
            out.status(&format!("watch: health and metrics on http://{bound}"));
            Some(task)
        }
        None => None,
    };
    let reload = Arc::new(AtomicBool::new(false));
    let _watcher = watch_config(config_dir, state_dir, reload.clone(), wake.clone())
        .map_err(|e| CommandError::new(format!("cannot watch {}: {e}", config_dir.display())))?;

    let mut client = connect(&cfg, state_dir).await?;
    let journal = Journal::open(state_dir, uuid::Uuid::new_v4().to_string())
        .map_err(|e| CommandError::new(e.to_string()))?;
    resolve_open(&cfg, state_dir, &client, &journal, out).await?;
    // A previous watch's entry cache lets this one resume incrementally.
    let (mut entry_cache, mut last_full) =
        match entries::EntryCache::load(&cfg, directory_location(&cfg), state_dir) {
            Some((cache, at)) => {
                let age = SystemTime::now().duration_since(at).unwrap_or_default();
                out.status(&format!(
                    "watch: resuming from the saved directory cache (last full read {} ago)",
                    humantime::format_duration(Duration::from_secs(age.as_secs()))
                ));
                (cache, Instant::now().checked_sub(age))
            }
            None => (
                entries::EntryCache::new(&cfg, directory_location(&cfg)),
                None,
            ),
        };
    let mut last_full_at = SystemTime::now();
    // The observed-state cache, parsed once and kept while nothing rewrites the file.
    let mut held_cache: Option<Arc<ObservedCache>> = None;
    let mut last_refresh = cache_listed_at(&cfg, state_dir);
    out.status(&format!(
        "watch: passes every {}, full Carbonite listing every {} at most (paced to the budget)",
        humantime::format_duration(opts.interval),
        humantime::format_duration(opts.full_refresh)
    ));

    while stop.stop().is_none() {
        if reload.swap(false, Ordering::SeqCst) {
            match crate::config::load(config_dir) {
                Ok(new) => {
                    let digest = pass::config_digest(&new);
                    let changed = health
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .config_digest
                        .as_deref()
                        != Some(digest.as_str());
                    if changed {
                        out.status("watch: config changed; reloaded");
                        let fresh = connect(&new, state_dir).await;
                        match fresh {
                            Ok(c) => {
                                let old = std::mem::replace(&mut client, c);
                                keep_call_counts(&health, &old);
                                let _ = old.close().await;
                                entry_cache =
                                    entries::EntryCache::new(&new, directory_location(&new));
                                held_cache = None;
                                last_full = None;
                                cfg = new;
                            }
                            Err(e) => {
                                out.error(&format!(
                                    "watch: reloaded config rejected: {}",
                                    e.message
                                ));
                                set_config_error(&health, e.message);
                                wait(&opts, &wake).await;
                                continue;
                            }
                        }
                    }
                    let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
                    h.config_status = "ok".into();
                    h.config_error = None;
                    h.config_loaded_at = Some(SystemTime::now());
                    h.config_digest = Some(digest);
                }
                Err(e) => {
                    crate::cli::validate::report_load_error(&e, out);
                    out.error("watch: the changed config does not load; the last good config keeps running");
                    let summary = e
                        .diagnostics
                        .iter()
                        .map(|d| match &d.loc {
                            Some(l) => format!("{}: {}", e.sources.position(l), d.message),
                            None => d.message.clone(),
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                    set_config_error(&health, summary);
                }
            }
        }
        let refresh_due = refresh_due(&cfg, state_dir, &client, last_refresh, opts.full_refresh);
        let full = last_full.is_none_or(|t| t.elapsed() >= opts.full_read);
        if held_cache.is_none() && !refresh_due {
            held_cache = ObservedCache::load(state_dir, client.tenant_key())
                .ok()
                .map(Arc::new);
        }
        let started = Instant::now();
        let outcome = one_pass(
            &cfg,
            state_dir,
            &client,
            &journal,
            &stop,
            (refresh_due, held_cache.clone()),
            (&mut entry_cache, full),
            &health,
            out,
        )
        .await;
        // A listing or a write rewrote the cache file: parse it again next time.
        if !matches!(&outcome, Ok(p) if !p.listed && !p.wrote) {
            held_cache = None;
        }
        if matches!(&outcome, Ok(p) if p.full_read) {
            last_full = Some(started);
            last_full_at = SystemTime::now() - started.elapsed();
        }
        if outcome.is_ok()
            && let Err(e) = entry_cache.save(state_dir, last_full_at)
        {
            out.error(&format!("watch: cannot save the directory cache: {e}"));
        }
        let now = SystemTime::now();
        {
            let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
            h.pass_duration = started.elapsed().as_secs_f64();
            let result = match &outcome {
                Ok(p) => {
                    h.last_pass_at = Some(now);
                    h.last_error = p.error.clone();
                    if p.listed {
                        last_refresh = Some(now);
                        h.last_refresh_at = Some(now);
                    }
                    h.observed_source = Some(if p.listed { "live" } else { "cache" }.into());
                    p.result
                }
                Err(e) => {
                    h.last_error = Some(e.clone());
                    "error"
                }
            };
            if result == "ok" {
                h.last_success_at = Some(now);
            }
            h.last_result = Some(result.to_string());
            *h.passes.entry(result.to_string()).or_default() += 1;
            h.api_calls = merged_calls(&h, &client);
            h.budget_remaining = budgets(&cfg, &client);
        }
        if let Err(e) = &outcome {
            out.error(&format!("watch: pass failed: {e}"));
        }
        if stop.stop().is_some() {
            break;
        }
        wait(&opts, &wake).await;
    }
    out.status("watch: stopped");
    let _ = client.close().await;
    if let Some(t) = server {
        let _ = t.await;
    }
    Ok(Outcome::Success)
}

async fn wait(opts: &WatchOptions, wake: &tokio::sync::Notify) {
    tokio::select! {
        _ = tokio::time::sleep(opts.interval) => {}
        _ = wake.notified() => {}
    }
}

fn set_config_error(health: &Health, message: String) {
    let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
    h.config_status = "error".into();
    h.config_error = Some(message);
}

async fn connect(cfg: &Config, state_dir: &Path) -> Result<CarboniteClient, CommandError> {
    CarboniteClient::connect(cfg, state_dir, ClientOptions::default())
        .await
        .map_err(CommandError::from)
}

async fn resolve_open(
    cfg: &Config,
    state_dir: &Path,
    client: &CarboniteClient,
    journal: &Journal,
    out: &Output,
) -> Result<(), CommandError> {
    if Journal::open_intents(state_dir)
        .map(|v| v.is_empty())
        .unwrap_or(true)
    {
        return Ok(());
    }
    let cache = ObservedCache::load(state_dir, client.tenant_key())
        .ok()
        .map(std::sync::Mutex::new);
    let (resolved, linked) = apply::resolve_open_intents(client, journal, cfg, cache.as_ref())
        .await
        .map_err(CommandError::new)?;
    apply::run::save_cache(cache, state_dir);
    out.status(&format!(
        "watch: resolved {resolved} unfinished operation(s) of an earlier run ({linked} linked)"
    ));
    Ok(())
}

/// When the cache was listed, if it is this tenant's.
fn cache_listed_at(cfg: &Config, state_dir: &Path) -> Option<SystemTime> {
    let c = ObservedCache::load_summary(state_dir, &crate::carbonite::tenant_key(cfg, state_dir))
        .ok()?;
    let t = chrono::DateTime::parse_from_rfc3339(&c.listed_at).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(t.timestamp_millis().max(0) as u64))
}

/// Whether this pass lists Carbonite: no cache yet, or the effective refresh period —
/// max(`--full-refresh`, pages of a listing / the route limit's rate) — has passed.
fn refresh_due(
    cfg: &Config,
    state_dir: &Path,
    client: &CarboniteClient,
    last: Option<SystemTime>,
    flag: Duration,
) -> bool {
    let Some(last) = last else {
        return true;
    };
    let cache = ObservedCache::load_summary(state_dir, client.tenant_key()).ok();
    if cache.is_none() {
        return true;
    }
    let groups: Vec<Vec<String>> = pass::endpoint_groups(cfg).into_keys().collect();
    let calls = crate::observed_cache::listing_calls(cfg, &groups, cache.as_ref(), false);
    let rate = cfg.integration.carbonite.rate_limits.per_route;
    let worst = calls.values().copied().max().unwrap_or(1);
    let paced = rate
        .per
        .mul_f64(worst as f64 / f64::from(rate.count.max(1)));
    let period = flag.max(paced);
    SystemTime::now().duration_since(last).unwrap_or_default() >= period
}

/// What one pass did.
struct PassReport {
    result: &'static str,
    listed: bool,
    error: Option<String>,
    /// The directory read was complete.
    full_read: bool,
    /// Changes were executed (the executor rewrote the cache file).
    wrote: bool,
}

#[allow(clippy::too_many_arguments)]
async fn one_pass(
    cfg: &Config,
    state_dir: &Path,
    client: &CarboniteClient,
    journal: &Journal,
    stop: &Arc<StopFlag>,
    (refresh, held): (bool, Option<Arc<ObservedCache>>),
    (entry_cache, full): (&mut entries::EntryCache, bool),
    health: &Health,
    out: &Output,
) -> Result<PassReport, String> {
    let source =
        crate::directory::source::open(&cfg.integration.directory).map_err(|e| e.to_string())?;
    let (entries, read) = entry_cache
        .read(source.as_ref(), full)
        .await
        .map_err(|e| e.to_string())?;
    {
        let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
        h.entries_read += read.entries_read;
    }
    if !read.full {
        tracing::debug!(entries = read.entries_read, "directory: incremental read");
    }
    let opts = PassOptions {
        only_mappings: None,
        allow_destructive: None,
        observed: if refresh {
            ObservedMode::Auto
        } else {
            ObservedMode::Cache
        },
        incremental: !read.full,
        cache: held,
    };
    let result =
        match pass::compute_with_entries(cfg, state_dir, &opts, client, entries.clone()).await {
            Ok(r) => r,
            Err(pass::PassError::Cache(crate::observed_cache::CacheError::Missing(_))) => {
                let live = PassOptions {
                    observed: ObservedMode::Auto,
                    ..opts
                };
                pass::compute_with_entries(cfg, state_dir, &live, client, entries)
                    .await
                    .map_err(|e| e.to_string())?
            }
            Err(e) => return Err(e.to_string()),
        };
    let listed = result.meta.observed_source == crate::render::ObservedSource::Live;
    let plan = &result.plan;
    let shrink_refused = plan
        .guards
        .iter()
        .any(|g| g.name == "maxSourceShrinkPercent" && g.status == GuardStatus::Refused);
    if plan.run_refused {
        out.error("watch: minSourceEntries refused the pass; nothing applied (retried next pass)");
        return Ok(PassReport {
            result: "refused",
            listed,
            error: Some("refused by minSourceEntries".into()),
            full_read: read.full,
            wrote: false,
        });
    }
    let mut failed = 0usize;
    if !plan.changes.is_empty() {
        let mut ops = Operation::from_changes(cfg, &plan.changes)?;
        for op in &mut ops {
            let k = (op.change.mapping.clone(), op.change.key.clone());
            op.entry = result.entries.get(&k).cloned();
            op.account = op
                .change
                .account_id
                .as_ref()
                .and_then(|id| result.accounts.get(id))
                .cloned();
        }
        let hooks = if ops.iter().any(|o| !o.change.orchestrations.is_empty()) {
            Some(crate::webhook::Hooks::compile(cfg)?)
        } else {
            None
        };
        out.status(&format!(
            "watch: applying {} change(s): {}",
            plan.changes.len(),
            crate::render::plan_line(plan)
        ));
        let run = Run {
            cfg,
            state_dir,
            client,
            journal,
            hooks: hooks.as_ref(),
            tables: &result.lookup_tables,
            stop: stop.clone(),
        };
        let info = RunInfo {
            plan_digest: Some(crate::render::saved::plan_digest(&plan.changes)),
            config_digest: result.meta.config_digest.clone(),
            git_commit: result.meta.git_commit.clone(),
        };
        let on_done = |op: &Operation, o: &OpOutcome| {
            let (line, important) = apply::describe(op, o);
            if important {
                out.error(&format!("watch: {line}"));
            } else {
                out.status(&format!("watch: {line}"));
            }
        };
        client.set_budget_deadline(None);
        let report = apply::run::execute(&run, info, ops, &on_done).await;
        let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
        for (op, o) in &report.results {
            if o.succeeded() {
                *h.changes
                    .entry(op.change.action.as_str().to_string())
                    .or_default() += 1;
            }
        }
        failed = report.failed().count() + report.hook_failures.len();
        for f in &report.hook_failures {
            out.error(&format!(
                "watch: {} -> {}/{}: {}",
                f.change, f.orchestration, f.webhook, f.message
            ));
        }
    }
    if read.full
        && !shrink_refused
        && let Err(e) = crate::state::StateFiles::new(state_dir)
            .write_baseline(&result.entry_counts, &pass::rfc3339(pass::now()))
    {
        out.error(&format!("watch: cannot write the baseline: {e}"));
    }
    let (result_label, error) = if plan.refused() {
        (
            "refused",
            Some(format!(
                "{} suspend/delete change(s) held back by the guards",
                plan.held_back.len()
            )),
        )
    } else if failed > 0 {
        ("failed", Some(format!("{failed} operation(s) failed")))
    } else {
        ("ok", None)
    };
    Ok(PassReport {
        result: result_label,
        listed,
        error,
        full_read: read.full,
        wrote: !plan.changes.is_empty(),
    })
}

/// The directory's location for watermarks (LDAP URL or LDIF path).
fn directory_location(cfg: &Config) -> String {
    match &cfg.integration.directory.source {
        crate::config::model::DirectorySource::Ldap(l) => l.url.clone(),
        crate::config::model::DirectorySource::Ldif { path, .. } => path.display().to_string(),
    }
}

/// API calls of the clients before this one, plus this one's.
fn merged_calls(h: &HealthState, client: &CarboniteClient) -> BTreeMap<(String, String), u64> {
    let mut m = h.api_calls_before.clone();
    for (k, v) in client.status_counts() {
        *m.entry(k).or_default() += v;
    }
    m
}

/// A client is being replaced: keep its counts.
fn keep_call_counts(health: &Health, old: &CarboniteClient) {
    let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
    for (k, v) in old.status_counts() {
        *h.api_calls_before.entry(k).or_default() += v;
    }
}

/// Remaining budget per route the tool uses (listing and write routes).
fn budgets(cfg: &Config, client: &CarboniteClient) -> BTreeMap<String, u32> {
    let r = &cfg.integration.carbonite.routes;
    let mut routes: Vec<(String, bool)> =
        [&r.create_user, &r.update_user, &r.delete_user, &r.get_user]
            .iter()
            .map(|x| (x.to_string(), std::ptr::eq(*x, &r.create_user)))
            .collect();
    for e in cfg.endpoints.values() {
        if let crate::config::model::EndpointTarget::Path(p) = &e.target {
            routes.push((format!("{} {p}", e.method.to_ascii_uppercase()), false));
        }
    }
    routes
        .into_iter()
        .filter_map(|(route, create)| {
            let b = client.ledger().budget(&route, create).ok()?;
            Some((route, b.remaining))
        })
        .collect()
}

/// Watch the config dir (recursively; the state dir and `.git` ignored — a ConfigMap's
/// `..data` symlink swap counts) and raise
/// `reload` + wake the loop on changes, debounced ~1 s.
fn watch_config(
    config_dir: &Path,
    state_dir: &Path,
    reload: Arc<AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
) -> notify_debouncer_full::notify::Result<
    notify_debouncer_full::Debouncer<
        notify_debouncer_full::notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >,
> {
    use notify_debouncer_full::notify::RecursiveMode;
    let root = std::fs::canonicalize(config_dir).unwrap_or_else(|_| config_dir.to_path_buf());
    let state = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let root_for_filter: PathBuf = root.clone();
    let mut debouncer = notify_debouncer_full::new_debouncer(
        Duration::from_millis(1000),
        None,
        move |res: notify_debouncer_full::DebounceEventResult| {
            let Ok(events) = res else {
                return;
            };
            use notify_debouncer_full::notify::EventKind;
            use notify_debouncer_full::notify::event::ModifyKind;
            let relevant = events.iter().any(|ev| {
                // Reads (our own config loads) and metadata changes are not edits.
                let edit = matches!(
                    ev.kind,
                    EventKind::Create(_)
                        | EventKind::Remove(_)
                        | EventKind::Modify(
                            ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any
                        )
                );
                edit && ev.paths.iter().any(|p| {
                    !p.starts_with(&state)
                        && !p
                            .strip_prefix(&root_for_filter)
                            .unwrap_or(p)
                            .components()
                            .any(|c| c.as_os_str() == ".git")
                })
            });
            if relevant {
                tracing::debug!("config dir changed");
                reload.store(true, Ordering::SeqCst);
                wake.notify_one();
            }
        },
    )?;
    debouncer.watch(&root, RecursiveMode::Recursive)?;
    Ok(debouncer)
}
