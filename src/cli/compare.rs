//! `compare --base DIR`: the blast radius of a config change (SPEC §13). The current config
//! (`-C`) is the head; connections, Endpoints and secrets always come from the base.

use std::path::PathBuf;

use crate::compare::run::{self, CompareOptions};
use crate::error::{CommandError, CommandResult, Outcome};
use crate::output::Output;
use crate::pass::ObservedMode;
use crate::render::compare::{self as render, CompareReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config dir to compare against (e.g. a checkout of the base branch). Its directory
    /// source, Carbonite connection, Endpoints and secrets are the ones used.
    #[arg(long, value_name = "DIR")]
    pub base: PathBuf,
    /// Read directory entries from this LDIF snapshot (`carbonite-sync snapshot`) instead of
    /// the base config's source.
    #[arg(long, value_name = "F")]
    pub snapshot: Option<PathBuf>,
    /// Read no Carbonite accounts: compare on the directory alone (lookup tables from the
    /// observed-state cache if there is one).
    #[arg(long, conflicts_with = "observed")]
    pub offline: bool,
    /// Where the Carbonite accounts come from: `live`, `cache` or `auto` (as for `plan`).
    #[arg(long, value_enum, value_name = "MODE")]
    pub observed: Option<ObservedMode>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(global: &super::GlobalArgs, args: Args, out: &Output) -> CommandResult {
    let head_dir = global.config_dir();
    if !args.base.is_dir() {
        return Err(CommandError::new(format!(
            "the base config dir `{}` does not exist",
            args.base.display()
        ))
        .with_hint(
            "check out the base branch first, e.g. `git worktree add ../base origin/main`, then \
             pass `--base ../base` (or its config subdirectory)",
        )
        .with_outcome(Outcome::Usage));
    }
    if let Some(s) = &args.snapshot
        && !s.is_file()
    {
        return Err(
            CommandError::new(format!("the snapshot `{}` does not exist", s.display()))
                .with_hint("write one with `carbonite-sync snapshot --out FILE`")
                .with_outcome(Outcome::Usage),
        );
    }
    let base = match crate::config::load(&args.base) {
        Ok(c) => c,
        Err(e) => {
            out.error(&format!(
                "error: the base config ({}) does not load:",
                args.base.display()
            ));
            super::validate::report_load_error(&e, out);
            return Ok(Outcome::Error);
        }
    };
    let head = match crate::config::load(&head_dir) {
        Ok(c) => c,
        Err(e) => {
            super::validate::report_load_error(&e, out);
            return Ok(Outcome::Error);
        }
    };
    let opts = CompareOptions {
        snapshot: args.snapshot.clone(),
        offline: args.offline,
        observed: args.observed.unwrap_or_default(),
    };
    let state_dir = global.state_dir();
    let mut result = super::block_on(run::compare(&base, &head, &state_dir, &opts))?
        .map_err(super::plan::pass_error)?;
    // Show the source relative to the base config dir when it is inside it.
    if let Ok(rel) = std::path::Path::new(&result.meta.source).strip_prefix(&base.dir) {
        result.meta.source = rel.to_string_lossy().replace('\\', "/");
    }
    let report = CompareReport {
        comparison: &result.comparison,
        meta: &result.meta,
    };
    match args.format {
        Format::Text => out.out(&render::text(&report, out.color_stdout())),
        Format::Json => out.out(&render::json(&report)),
        Format::Markdown => out.out(&render::markdown(&report)),
    }
    Ok(
        if result.comparison.is_empty() && result.meta.ignored.is_empty() {
            Outcome::Success
        } else {
            Outcome::Changes
        },
    )
}
