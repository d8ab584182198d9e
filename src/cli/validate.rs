//! `validate [--online]`: offline checks of the whole config, every diagnostic at once; with
//! `--online` also resolves secrets and tests each connection, one verdict line per check.

use std::time::Instant;

use crate::config::model::DirectorySource as SourceConfig;
use crate::config::{self, Config};
use crate::directory::ldap::LdapSource;
use crate::directory::{self, DirectoryError};
use crate::error::{CommandResult, Outcome};
use crate::output::Output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also resolve secrets and test each connection (LDAP bind + base read), with a verdict
    /// per check; exit 1 when any check fails.
    #[arg(long)]
    pub online: bool,
}

pub fn run(global: &super::GlobalArgs, args: Args, out: &Output) -> CommandResult {
    let dir = global.config_dir();
    let cfg = match config::load(&dir) {
        Ok(cfg) => cfg,
        Err(e) => {
            report_load_error(&e, out);
            return Ok(Outcome::Error);
        }
    };
    out.out(&summary(&cfg));
    if !args.online {
        return Ok(Outcome::Success);
    }
    let verdicts = super::block_on(online_checks(&cfg, &global.state_dir()))?;
    for verdict in &verdicts {
        out.out(&verdict.line());
    }
    if verdicts.iter().all(|v| v.ok) {
        Ok(Outcome::Success)
    } else {
        Ok(Outcome::Error)
    }
}

/// The outcome of one online check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Short name of what was checked: `ldap`, `ldif`, `carbonite`.
    pub check: &'static str,
    pub ok: bool,
    /// What was found; for a failure, the error.
    pub detail: String,
    /// What to do about a failure.
    pub hint: Option<String>,
}

impl Verdict {
    fn passed(check: &'static str, detail: String) -> Self {
        Verdict {
            check,
            ok: true,
            detail,
            hint: None,
        }
    }

    fn failed(check: &'static str, e: &DirectoryError) -> Self {
        Verdict {
            check,
            ok: false,
            detail: e.to_string(),
            hint: e.hint.clone(),
        }
    }

    /// `ldap       ok      bind as ... (12 ms)`, with a `hint:` line under a failure.
    pub fn line(&self) -> String {
        let status = if self.ok { "ok" } else { "FAILED" };
        let mut line = format!("{:<10} {:<7} {}", self.check, status, self.detail);
        if let Some(hint) = &self.hint {
            line.push_str(&format!("\n{:<18} hint: {hint}", ""));
        }
        line
    }
}

/// Every online check, in order: the directory, then Carbonite (connection, token, one page
/// of each endpoint the mappings read).
async fn online_checks(cfg: &Config, state_dir: &std::path::Path) -> Vec<Verdict> {
    let mut verdicts = vec![directory_check(cfg).await];
    for v in crate::carbonite::online_check(cfg, state_dir).await {
        verdicts.push(Verdict {
            check: "carbonite",
            ok: v.ok,
            detail: format!("{}: {}", v.name.trim_start_matches("carbonite "), v.detail),
            hint: None,
        });
    }
    verdicts
}

/// LDAP: resolve the password, connect, bind, read the base entry. LDIF: read and parse the
/// file and count what is under the base DN.
async fn directory_check(cfg: &Config) -> Verdict {
    let directory = &cfg.integration.directory;
    let started = Instant::now();
    match &directory.source {
        SourceConfig::Ldap(settings) => {
            let source = settings
                .password
                .as_ref()
                .map(|p| p.resolve())
                .transpose()
                .map_err(|e| {
                    DirectoryError::new(
                        directory::Failure::Secret,
                        &settings.url,
                        &settings.base_dn,
                        "",
                        format!("cannot read the bind password: {e}"),
                    )
                    .with_hint("set the variable or file the password secret names")
                })
                .and_then(|password| {
                    LdapSource::new(
                        settings,
                        password,
                        directory.flavor,
                        directory.disabled_filter.as_deref(),
                    )
                });
            let report = match source {
                Ok(source) => source.check().await,
                Err(e) => Err(e),
            };
            match report {
                Ok(r) => Verdict::passed(
                    "ldap",
                    format!(
                        "bind as {} to {}; base {} readable ({} ms)",
                        r.bound_as,
                        r.url,
                        r.base,
                        r.elapsed.as_millis()
                    ),
                ),
                Err(e) => Verdict::failed("ldap", &e),
            }
        }
        SourceConfig::Ldif { base_dn, .. } => {
            let source = match directory::open(directory) {
                Ok(source) => source,
                Err(e) => return Verdict::failed("ldif", &e),
            };
            let request = directory::SearchRequest::new(
                base_dn.clone(),
                directory::dn::Scope::Subtree,
                "(objectClass=*)",
            );
            match source.search(&request).await {
                Ok(entries) => Verdict::passed(
                    "ldif",
                    format!(
                        "read {}: {} entries under {base_dn} ({} ms)",
                        source.location(),
                        entries.len(),
                        started.elapsed().as_millis()
                    ),
                ),
                Err(e) => Verdict::failed("ldif", &e),
            }
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
