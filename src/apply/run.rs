//! Running a plan's operations with everything around them: the executor over the observed
//! cache and `suspended.json`, shared by `apply` and `watch`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{Executor, OpOutcome, Operation, Report, RunInfo, StopFlag};
use crate::carbonite::CarboniteClient;
use crate::config::Config;
use crate::journal::Journal;
use crate::observed_cache::ObservedCache;
use crate::state::StateFiles;

/// What an execution writes through.
pub struct Run<'a> {
    pub cfg: &'a Config,
    pub state_dir: &'a Path,
    pub client: &'a CarboniteClient,
    pub journal: &'a Journal,
    pub hooks: Option<&'a crate::webhook::Hooks>,
    pub tables: &'a crate::template::LookupTables,
    /// Set by signal handlers (or a daemon shutting down): no new operation starts.
    pub stop: Arc<StopFlag>,
}

/// Execute `ops` (see [`Executor::run`]), keeping the observed-state cache file and
/// `suspended.json` current.
pub async fn execute(
    run: &Run<'_>,
    info: RunInfo,
    ops: Vec<Operation>,
    on_done: &(dyn Fn(&Operation, &OpOutcome) + Sync),
) -> Report {
    let state = StateFiles::new(run.state_dir);
    let suspended = Mutex::new(state.suspended());
    let cache = ObservedCache::load(run.state_dir, run.client.tenant_key())
        .ok()
        .map(Mutex::new);
    let exec = Executor {
        client: run.client,
        journal: run.journal,
        cache: cache.as_ref(),
        state: &state,
        suspended: &suspended,
        info,
        concurrency: run.cfg.integration.carbonite.concurrency.max(1) as usize,
        stop: &run.stop,
        hooks: run.hooks,
        hook_context: crate::template::RenderContext::new(Arc::new(
            crate::template::LookupIndex::new(run.tables),
        )),
        hook_log: Mutex::default(),
    };
    let report = exec.run(ops, on_done).await;
    save_cache(cache, run.state_dir);
    report
}

pub fn save_cache(cache: Option<Mutex<ObservedCache>>, state_dir: &Path) {
    if let Some(c) = cache {
        let c = c.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = c.save(state_dir) {
            tracing::warn!("cannot update the observed-state cache: {e}");
        }
    }
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn signalled() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
