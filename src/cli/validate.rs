//! `validate`: offline checks of the whole config, every diagnostic at once.

use crate::config;
use crate::error::{CommandResult, Outcome};
use crate::output::Output;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(global: &super::GlobalArgs, _args: Args, out: &Output) -> CommandResult {
    let dir = global.config_dir();
    match config::load(&dir) {
        Ok(cfg) => {
            out.out(&summary(&cfg));
            Ok(Outcome::Success)
        }
        Err(e) => {
            report_load_error(&e, out);
            Ok(Outcome::Error)
        }
    }
}

/// Print every diagnostic of a failed load, then a count.
pub fn report_load_error(e: &config::LoadError, out: &Output) {
    let mut text = config::diag::render(&e.diagnostics, &e.sources, out.color_stderr());
    let n = e.diagnostics.len();
    text.push_str(&format!(
        "{n} problem{} found; nothing was changed.\n",
        if n == 1 { "" } else { "s" }
    ));
    out.error(&text);
}

fn summary(cfg: &config::Config) -> String {
    let user_endpoints = cfg.endpoints.values().filter(|e| !e.builtin).count();
    format!(
        "Config OK: integration `{}`, {} mapping{}, {} endpoint{} ({} built-in), {} webhook{}, {} orchestration{}.",
        cfg.integration.name,
        cfg.mappings.len(),
        plural(cfg.mappings.len()),
        cfg.endpoints.len(),
        plural(cfg.endpoints.len()),
        cfg.endpoints.len() - user_endpoints,
        cfg.webhooks.len(),
        plural(cfg.webhooks.len()),
        cfg.orchestrations.len(),
        plural(cfg.orchestrations.len()),
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
