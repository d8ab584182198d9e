//! `test-endpoint NAME`: call an inbound Endpoint once and show the fields of its items
//! (SPEC §11).

use std::time::{Duration, SystemTime};

use crate::carbonite::fields::{field_table, render_table};
use crate::carbonite::{CarboniteClient, ClientOptions};
use crate::config;
use crate::error::{CommandError, CommandResult, Outcome};
use crate::output::Output;

/// Call an inbound endpoint once (its first page; for a `forEach: companies` endpoint, the first
/// company's) and print a table of the fields in its items: JSON pointer, type, a sample, and
/// how many items have it. Every call goes through the rate-limit ledger.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Endpoint name (built-in, e.g. carbonite-users, or defined in the config).
    pub name: String,
    /// A value for the endpoint's query/header templates, e.g. --var email=ann@corp.example.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Read every page instead of the first (one API call per page).
    #[arg(long)]
    pub all_pages: bool,
    /// Wait up to DUR for rate budget instead of stopping with exit code 5.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub max_wait: Option<Duration>,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err("expected NAME=VALUE, e.g. email=ann@corp.example".into()),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

pub fn run(global: &super::GlobalArgs, args: Args, out: &Output) -> CommandResult {
    let cfg = match config::load(&global.config_dir()) {
        Ok(cfg) => cfg,
        Err(e) => {
            let mut text = config::diag::render(&e.diagnostics, &e.sources, out.color_stderr());
            text.push_str(&format!(
                "{} problem{} found; fix the config first (`carbonite-sync validate`).\n",
                e.diagnostics.len(),
                if e.diagnostics.len() == 1 { "" } else { "s" }
            ));
            out.error(&text);
            return Ok(Outcome::Error);
        }
    };
    let Some(endpoint) = cfg.endpoints.get(&args.name) else {
        let known = cfg.endpoints.keys().cloned().collect::<Vec<_>>().join(", ");
        return Err(
            CommandError::new(format!("no Endpoint named `{}`", args.name))
                .with_hint(format!("known endpoints: {known}")),
        );
    };
    let what = format!(
        "{} {}",
        endpoint.method,
        match &endpoint.target {
            config::model::EndpointTarget::Path(p) => p.clone(),
            config::model::EndpointTarget::Url(u) => u.clone(),
        }
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CommandError::new("cannot start the async runtime").with_source(e))?;
    let state_dir = global.state_dir();
    let options = ClientOptions {
        budget_deadline: args.max_wait.map(|d| SystemTime::now() + d),
        ..ClientOptions::default()
    };
    runtime.block_on(async {
        let client = CarboniteClient::connect(&cfg, &state_dir, options).await?;
        let vars: Vec<(&str, &str)> = args
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let max_pages = if args.all_pages { None } else { Some(1) };
        let result = client.pages(&args.name, &vars, max_pages).await;
        let (calls, _) = client.call_counts();
        let redactor_text = |s: &str| client.redactor().text(s);
        let page = match result {
            Ok(p) => p,
            Err(e) => {
                let _ = client.close().await;
                return Err(CommandError::from(e));
            }
        };
        let values: Vec<serde_json::Value> = page.items.iter().map(|i| i.value()).collect();
        let rows = field_table(values.iter());
        let total_calls: u64 = calls.values().sum();
        let mut text = format!(
            "Endpoint `{}`: {what}; {} API call{} (token included), {} item{}",
            args.name,
            total_calls,
            if total_calls == 1 { "" } else { "s" },
            page.items.len(),
            if page.items.len() == 1 { "" } else { "s" },
        );
        if let Some(t) = page.total {
            text.push_str(&format!(", {t} in total"));
        }
        if page.more {
            text.push_str("; more pages not read (--all-pages reads them)");
        }
        text.push_str(".\n");
        if rows.is_empty() {
            text.push_str("No items: no fields to show.\n");
        } else {
            text.push_str(&render_table(&rows));
        }
        out.out(&redactor_text(&text));
        client.close().await?;
        Ok(Outcome::Success)
    })
}
