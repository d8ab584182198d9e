//! `apply [PLANFILE]`: plan and apply (with confirmation), or apply a saved plan exactly.
//! The work is in `crate::apply` (executor, saved plans) and `crate::pass`; this file wires
//! the lock, journal, client, signals and progress, and decides the exit code (SPEC §11:
//! 1 > 3 > 4 > 5 > 0).

use std::collections::BTreeSet;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::apply::run::Run;
use crate::apply::{self, OpOutcome, Operation, Report, RunInfo, Stop, StopFlag};
use crate::carbonite::{CarboniteClient, ClientOptions};
use crate::config::Config;
use crate::error::{CommandError, CommandResult, Outcome};
use crate::journal::Journal;
use crate::lock::StateLock;
use crate::observed_cache::ObservedCache;
use crate::output::Output;
use crate::pass::{self, ObservedMode, PassOptions, rfc3339};
use crate::reconcile::{Action, GuardStatus};
use crate::render::{PlanReport, text};
use crate::state::StateFiles;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A saved plan (`plan --out FILE`): apply exactly its changes, without prompting. Refused
    /// (exit 3, nothing written) when the config or a touched account changed since.
    #[arg(value_name = "PLANFILE")]
    pub plan: Option<PathBuf>,
    /// Do not ask for confirmation (required without a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Allow up to N suspends + deletes beyond `policy.maxDestructive`.
    #[arg(long, value_name = "N")]
    pub allow_destructive: Option<u64>,
    /// Wait up to DUR for rate budget (default 0: stop at once, report what remains and when
    /// the next budget frees, exit 5; a rerun resumes).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub max_wait: Option<Duration>,
    /// Where the Carbonite accounts come from (see `plan --observed`).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ObservedMode::Auto)]
    pub observed: ObservedMode,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

pub fn run(global: &super::GlobalArgs, args: Args, out: &Output) -> CommandResult {
    if args.plan.is_none() && !args.auto_approve && !std::io::stdin().is_terminal() {
        return Err(CommandError::new(
            "apply asks for confirmation, and there is no terminal to ask on",
        )
        .with_hint(
            "pass --auto-approve, or save a reviewed plan with `plan --out FILE` and run \
             `apply FILE`",
        )
        .with_outcome(Outcome::Usage));
    }
    if args.plan.is_some() && args.allow_destructive.is_some() {
        return Err(CommandError::new(
            "--allow-destructive has no effect on a saved plan: it holds what was planned",
        )
        .with_hint("plan again with `plan --out FILE --allow-destructive N`")
        .with_outcome(Outcome::Usage));
    }
    let saved = match &args.plan {
        Some(p) => Some(crate::apply::saved::load(p).map_err(|e| {
            let hint = e.hint();
            CommandError::new(e.to_string()).with_hint(hint)
        })?),
        None => None,
    };
    let dir = global.config_dir();
    let cfg = match crate::config::load(&dir) {
        Ok(c) => c,
        Err(e) => {
            super::validate::report_load_error(&e, out);
            return Ok(Outcome::Error);
        }
    };
    let state_dir = global.state_dir();
    let _lock = StateLock::acquire(&state_dir, &command_line(&args)).map_err(|e| {
        let hint = e.hint();
        CommandError::new(e.to_string())
            .with_hint(hint)
            .with_outcome(Outcome::Refused)
    })?;
    if let Some(plan) = &saved {
        let now = pass::config_digest(&cfg);
        if now != plan.config.digest {
            out.error(&format!(
                "error: stale plan: the config changed since it was planned ({} then, {now} now); \
                 nothing was applied",
                plan.config.digest
            ));
            out.error("hint: review and save a new plan with `plan --out FILE`");
            return Ok(Outcome::Refused);
        }
    }
    super::block_on(run_async(&cfg, &state_dir, &args, saved, out))?
}

fn command_line(args: &Args) -> String {
    match &args.plan {
        Some(p) => format!("carbonite-sync apply {}", p.display()),
        None => "carbonite-sync apply".into(),
    }
}

async fn run_async(
    cfg: &Config,
    state_dir: &Path,
    args: &Args,
    saved: Option<apply::saved::SavedPlan>,
    out: &Output,
) -> CommandResult {
    let client = CarboniteClient::connect(cfg, state_dir, ClientOptions::default())
        .await
        .map_err(CommandError::from)?;
    let result = with_client(cfg, state_dir, args, saved, &client, out).await;
    let closed = client.close().await;
    let outcome = result?;
    closed.map_err(CommandError::from)?;
    Ok(outcome)
}

async fn with_client(
    cfg: &Config,
    state_dir: &Path,
    args: &Args,
    saved: Option<apply::saved::SavedPlan>,
    client: &CarboniteClient,
    out: &Output,
) -> CommandResult {
    let run_id = uuid::Uuid::new_v4().to_string();
    let journal = Journal::open(state_dir, run_id).map_err(|e| {
        CommandError::new(e.to_string()).with_hint("check the permissions of the state dir")
    })?;
    let load_cache = || match ObservedCache::load(state_dir, client.tenant_key()) {
        Ok(c) => Some(Mutex::new(c)),
        Err(_) => None,
    };

    // Intents an earlier run left open come first: they may be accounts that exist.
    if Journal::open_intents(state_dir)
        .map(|v| !v.is_empty())
        .unwrap_or(false)
    {
        let cache = load_cache();
        let (resolved, linked) = apply::resolve_open_intents(client, &journal, cfg, cache.as_ref())
            .await
            .map_err(|e| {
                CommandError::new(e).with_hint(
                    "the journal has creates of an earlier run whose outcome is unknown; \
                         they must be looked up before anything else is written",
                )
            })?;
        out.status(&format!(
            "Resolved {resolved} unfinished operation(s) of an earlier run ({linked} account(s) \
             found and linked)."
        ));
        apply::run::save_cache(cache, state_dir);
    }

    let info;
    let mut ops;
    let tables;
    let mut refused = false;
    let mut baseline = None;
    match saved {
        Some(plan) => {
            baseline = plan.baseline().cloned();
            info = RunInfo {
                plan_digest: Some(plan.plan_digest.clone()),
                config_digest: plan.config.digest.clone(),
                git_commit: plan.config.git_commit.clone(),
            };
            if plan.changes.is_empty() {
                out.out("No changes.\n");
                if let Some(counts) = &baseline {
                    write_baseline(state_dir, counts, out);
                }
                return Ok(Outcome::Success);
            }
            let pages = listing_pages(cfg, state_dir, client);
            let stale = apply::saved::stale_accounts(
                cfg,
                client,
                &plan.changes,
                pages,
                cfg.integration.carbonite.concurrency as usize,
            )
            .await
            .map_err(CommandError::from)?;
            if !stale.is_empty() {
                let mut msg = format!(
                    "error: stale plan: {} account(s) changed since it was planned; nothing was \
                     applied",
                    stale.len()
                );
                for s in &stale {
                    msg.push_str(&format!(
                        "\n  {}/{} (account {}): {}",
                        s.mapping, s.key, s.account_id, s.why
                    ));
                }
                out.error(&msg);
                out.error("hint: review and save a new plan with `plan --out FILE`");
                return Ok(Outcome::Refused);
            }
            ops = Operation::from_changes(cfg, &plan.changes).map_err(CommandError::new)?;
            for op in &mut ops {
                let saved = plan
                    .operations
                    .iter()
                    .find(|o| o.mapping == op.change.mapping && o.key == op.change.key);
                if let (Some(attrs), Some(dn)) = (
                    saved.and_then(|o| o.entry_attributes.as_ref()),
                    op.change.dn.as_deref(),
                ) {
                    op.entry = Some(Arc::new(crate::webhook::entry_from_saved(dn, attrs)));
                }
            }
            tables = ObservedCache::load(state_dir, client.tenant_key())
                .map(|c| c.lookup_tables)
                .unwrap_or_default();
        }
        None => {
            let opts = PassOptions {
                only_mappings: None,
                allow_destructive: args.allow_destructive,
                observed: args.observed,
                incremental: false,
                cache: None,
            };
            let result = pass::compute_with(cfg, state_dir, &opts, client)
                .await
                .map_err(super::plan::pass_error)?;
            let report = PlanReport {
                plan: &result.plan,
                meta: &result.meta,
            };
            out.out(&text::render(&report, out.color_stdout()));
            refused = result.plan.refused();
            let shrink_refused =
                result.plan.guards.iter().any(|g| {
                    g.name == "maxSourceShrinkPercent" && g.status == GuardStatus::Refused
                });
            if !result.plan.run_refused && !shrink_refused {
                baseline = Some(result.entry_counts.clone());
            }
            info = RunInfo {
                plan_digest: Some(crate::render::saved::plan_digest(&result.plan.changes)),
                config_digest: result.meta.config_digest.clone(),
                git_commit: result.meta.git_commit.clone(),
            };
            if result.plan.run_refused {
                return Ok(Outcome::Refused);
            }
            if !result.plan.changes.is_empty() && !args.auto_approve && !confirm(out).await? {
                out.status("Apply cancelled: nothing was changed.");
                return Ok(Outcome::Error);
            }
            ops = Operation::from_changes(cfg, &result.plan.changes).map_err(CommandError::new)?;
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
            tables = result.lookup_tables.clone();
        }
    }

    let report = if ops.is_empty() {
        Report::default()
    } else {
        let hooks = if ops.iter().any(|o| !o.change.orchestrations.is_empty()) {
            Some(crate::webhook::Hooks::compile(cfg).map_err(CommandError::new)?)
        } else {
            None
        };
        let run = Run {
            cfg,
            state_dir,
            client,
            journal: &journal,
            hooks: hooks.as_ref(),
            tables: &tables,
            stop: Arc::new(StopFlag::default()),
        };
        execute(&run, info, ops, args, out).await
    };
    if let Some(counts) = &baseline {
        write_baseline(state_dir, counts, out);
    }
    print_summary(&report, out);
    Ok(if refused {
        Outcome::Refused
    } else if report.failed().next().is_some() || !report.hook_failures.is_empty() {
        Outcome::Failures
    } else if report.stopped.is_some() || report.not_run() > 0 {
        Outcome::Stopped
    } else {
        Outcome::Success
    })
}

fn write_baseline(
    state_dir: &Path,
    counts: &std::collections::BTreeMap<String, u64>,
    out: &Output,
) {
    if let Err(e) = StateFiles::new(state_dir).write_baseline(counts, &rfc3339(pass::now())) {
        out.error(&format!("warning: cannot write the baseline: {e}"));
    }
}

/// Calls one listing of the mappings' endpoints needs (from the cache's counts, if any).
fn listing_pages(cfg: &Config, state_dir: &Path, client: &CarboniteClient) -> u64 {
    let cache = ObservedCache::load_summary(state_dir, client.tenant_key()).ok();
    let groups: Vec<Vec<String>> = pass::endpoint_groups(cfg).into_keys().collect();
    let calls = crate::observed_cache::listing_calls(cfg, &groups, cache.as_ref(), false);
    let lookups = [
        crate::carbonite::profile::COMPANIES,
        crate::carbonite::profile::USER_GROUPS,
    ];
    // Only the account listings count here (lookup tables are not needed for the check).
    let table_routes: BTreeSet<String> = lookups
        .iter()
        .filter_map(|e| cfg.endpoints.get(*e))
        .filter_map(|e| match &e.target {
            crate::config::model::EndpointTarget::Path(p) => {
                Some(format!("{} {p}", e.method.to_ascii_uppercase()))
            }
            _ => None,
        })
        .collect();
    match cache {
        Some(_) => calls
            .iter()
            .filter(|(r, _)| !table_routes.contains(*r))
            .map(|(_, n)| n)
            .sum(),
        // Without a cache the size of the tenant is unknown: read the accounts one by one.
        None => u64::MAX,
    }
}

async fn confirm(out: &Output) -> CommandResult<bool> {
    out.status("\nDo you want to apply these changes? Only 'yes' is accepted.");
    out.status("  Enter a value: ");
    let line = tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        std::io::stdin().read_line(&mut s).map(|_| s)
    })
    .await
    .map_err(|e| CommandError::new(format!("cannot read the answer: {e}")))?
    .map_err(|e| CommandError::new(format!("cannot read the answer: {e}")))?;
    Ok(line.trim() == "yes")
}

async fn execute(
    run: &Run<'_>,
    info: RunInfo,
    ops: Vec<Operation>,
    args: &Args,
    out: &Output,
) -> Report {
    let deadline = args
        .max_wait
        .filter(|d| !d.is_zero())
        .map(|d| SystemTime::now() + d);
    run.client.set_budget_deadline(deadline);
    let signals = tokio::spawn(stop_on_signal(run.stop.clone()));
    let progress = out.progress(ops.len() as u64);
    let on_done = |op: &Operation, o: &OpOutcome| {
        let (line, important) = apply::describe(op, o);
        progress.item(&line, important);
    };
    let report = apply::run::execute(run, info, ops, &on_done).await;
    progress.finish();
    signals.abort();
    report
}

async fn stop_on_signal(stop: Arc<StopFlag>) {
    apply::run::signalled().await;
    tracing::warn!("signal received: finishing the operations in flight, starting no more");
    stop.signal();
}

fn print_summary(report: &Report, out: &Output) {
    if report.results.is_empty() {
        return;
    }
    let count = |a: Action| {
        report
            .results
            .iter()
            .filter(|(op, o)| op.change.action == a && o.succeeded())
            .count()
    };
    let failed: Vec<_> = report.failed().collect();
    let mut s = format!(
        "\nApply: {} created, {} adopted, {} updated, {} reactivated, {} suspended, {} deleted; {} failed, {} not run.\n",
        count(Action::Create),
        count(Action::Adopt),
        count(Action::Update),
        count(Action::Reactivate),
        count(Action::Suspend),
        count(Action::Delete),
        failed.len(),
        report.not_run(),
    );
    if !failed.is_empty() {
        s.push_str("\nFailed operations:\n");
        for (op, o) in &failed {
            if let OpOutcome::Failed { status, message } = o {
                let status = status.map(|s| format!(" [{s}]")).unwrap_or_default();
                s.push_str(&format!("  {}{status}: {message}\n", op.label()));
            }
        }
    }
    if report.hooks_sent > 0 || !report.hook_failures.is_empty() {
        s.push_str(&format!(
            "Orchestrations: {} webhook call(s) made, {} failed.\n",
            report.hooks_sent,
            report.hook_failures.len()
        ));
    }
    if !report.hook_failures.is_empty() {
        s.push_str("\nFailed orchestration steps (the account changes stand):\n");
        for f in &report.hook_failures {
            s.push_str(&format!(
                "  {} -> {}/{}: {}\n",
                f.change, f.orchestration, f.webhook, f.message
            ));
        }
    }
    match report.stopped {
        Some(Stop::Budget(next)) => s.push_str(&format!(
            "\nStopped on the rate budget: {} remaining, next budget at {}. Rerun apply to \
             resume (or allow waiting with --max-wait).\n",
            report.not_run(),
            rfc3339(next)
        )),
        Some(Stop::Signal) => s.push_str(&format!(
            "\nInterrupted: operations in flight finished; {} remaining. Rerun apply to resume.\n",
            report.not_run()
        )),
        None => {}
    }
    out.out(&s);
}
