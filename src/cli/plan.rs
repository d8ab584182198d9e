//! `plan`: read the directory and Carbonite, diff, and print what apply would do.

use std::collections::BTreeSet;

use crate::error::{CommandError, CommandResult, Outcome};
use crate::output::Output;
use crate::pass::{self, ObservedMode, PassError, PassOptions};
use crate::render::{PlanReport, json, markdown, saved, text};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit 2 when the plan has changes (0: none, 1: error, 3: refused by a guard).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan only this mapping (repeatable). Suspends/deletes are planned only for endpoints
    /// that the named mappings alone read.
    #[arg(long = "mapping", value_name = "NAME")]
    pub mappings: Vec<String>,
    /// Allow up to N suspends + deletes beyond `policy.maxDestructive`.
    #[arg(long, value_name = "N")]
    pub allow_destructive: Option<u64>,
    /// Where the Carbonite accounts come from: `live` (list now; exit 5 when the rate budget
    /// cannot cover it), `cache` (the last full listing; no Carbonite call), `auto` (live when
    /// the listing fits in the budget, else the cache).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ObservedMode::Auto)]
    pub observed: ObservedMode,
    /// Also save the plan as JSON to F (mode 0600) for `apply F`, whatever `--format` prints.
    /// Not written when `minSourceEntries` refused the run.
    #[arg(long, value_name = "F")]
    pub out: Option<std::path::PathBuf>,
}

pub fn run(global: &super::GlobalArgs, args: Args, out: &Output) -> CommandResult {
    let dir = global.config_dir();
    let cfg = match crate::config::load(&dir) {
        Ok(c) => c,
        Err(e) => {
            super::validate::report_load_error(&e, out);
            return Ok(Outcome::Error);
        }
    };
    for m in &args.mappings {
        if !cfg.mappings.iter().any(|x| &x.name == m) {
            let names: Vec<&str> = cfg.mappings.iter().map(|x| x.name.as_str()).collect();
            return Err(CommandError::new(format!("no mapping named `{m}`"))
                .with_hint(format!("mappings: {}", names.join(", ")))
                .with_outcome(Outcome::Usage));
        }
    }
    let opts = PassOptions {
        only_mappings: (!args.mappings.is_empty())
            .then(|| args.mappings.iter().cloned().collect::<BTreeSet<_>>()),
        allow_destructive: args.allow_destructive,
        observed: args.observed,
        incremental: false,
        cache: None,
    };
    let state_dir = global.state_dir();
    let result = super::block_on(pass::compute(&cfg, &state_dir, &opts))?.map_err(pass_error)?;
    let report = PlanReport {
        plan: &result.plan,
        meta: &result.meta,
    };
    match args.format {
        Format::Text => out.out(&text::render(&report, out.color_stdout())),
        Format::Json => out.out(&json::render(&report)),
        Format::Markdown => out.out(&markdown::render(&report)),
    }
    tracing::debug!("plan: printed");
    if let Some(path) = &args.out {
        if result.plan.run_refused {
            out.status(&format!(
                "note: {} not written: minSourceEntries refused the run",
                path.display()
            ));
        } else {
            let refs = crate::directory::read::webhook_attributes(&cfg);
            let entry_attributes = result
                .entries
                .iter()
                .map(|(k, e)| (k.clone(), crate::webhook::saved_attributes(e, &refs)))
                .collect();
            let orchestrations = crate::webhook::definitions(&cfg, &result.plan.changes);
            let extras = saved::Extras {
                desired: &result.desired,
                entry_attributes: &entry_attributes,
                orchestrations: &orchestrations,
                entry_counts: &result.entry_counts,
            };
            let text = saved::render(&report, &extras)
                .map_err(|e| CommandError::new(format!("cannot serialise the plan: {e}")))?;
            crate::state::write_atomic(path, text.as_bytes(), true).map_err(|e| {
                CommandError::new(format!("cannot write the plan to {}: {e}", path.display()))
                    .with_hint("check that the directory exists and is writable")
            })?;
        }
    }
    Ok(if result.plan.refused() {
        Outcome::Refused
    } else if args.detailed_exitcode && !result.plan.changes.is_empty() {
        Outcome::Changes
    } else {
        Outcome::Success
    })
}

pub(crate) fn pass_error(e: PassError) -> CommandError {
    match e {
        PassError::Carbonite(c) => (*c).into(),
        PassError::Directory(d) => {
            let hint = d.hint.clone();
            let mut err = CommandError::new(d.to_string());
            if let Some(h) = hint {
                err = err.with_hint(h);
            }
            err
        }
        PassError::Other(m) => CommandError::new(m),
        e @ PassError::Cache(crate::observed_cache::CacheError::Missing(_)) => {
            CommandError::new(e.to_string()).with_hint(
                "run a live plan first (`carbonite-sync plan --observed live`): every full \
                 listing saves the cache",
            )
        }
        e @ PassError::Cache(_) => CommandError::new(e.to_string())
            .with_hint("run a live plan (`--observed live`) to rewrite the cache"),
        e @ PassError::NoBudget { .. } => CommandError::new(e.to_string())
            .with_hint(
                "rerun after that time, or use `--observed cache` (or `auto`) to plan from the \
                 last listing",
            )
            .with_outcome(Outcome::Stopped),
    }
}
