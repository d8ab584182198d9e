//! `webhook test NAME --user KEY [--mapping NAME] [--send]`: render a webhook for one directory
//! user (secrets redacted) and, with `--send`, send it and show the answer. The observed
//! account (`account` in templates) and the lookup tables come from the observed-state cache
//! when there is one: rendering alone never calls Carbonite.

use std::sync::Arc;

use crate::carbonite::{CarboniteClient, ClientOptions};
use crate::config::Config;
use crate::error::{CommandError, CommandResult, Outcome};
use crate::observed_cache::ObservedCache;
use crate::output::Output;
use crate::template::{LookupIndex, RenderContext};
use crate::webhook::Hooks;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: WebhookCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum WebhookCommand {
    /// Render a webhook for one directory user (secrets redacted); `--send` sends it.
    Test(TestArgs),
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The Webhook's name.
    pub name: String,
    /// The user's primary-key value (e.g. the employeeID).
    #[arg(long, value_name = "KEY")]
    pub user: String,
    /// The mapping whose primary key `--user` is (needed when several mappings have it).
    #[arg(long, value_name = "NAME")]
    pub mapping: Option<String>,
    /// Send the request and show status, headers and body.
    #[arg(long)]
    pub send: bool,
}

pub fn run(global: &super::GlobalArgs, args: Args, out: &Output) -> CommandResult {
    let WebhookCommand::Test(args) = args.command;
    let dir = global.config_dir();
    let cfg = match crate::config::load(&dir) {
        Ok(c) => c,
        Err(e) => {
            super::validate::report_load_error(&e, out);
            return Ok(Outcome::Error);
        }
    };
    if !cfg.webhooks.contains_key(&args.name) {
        let names: Vec<&str> = cfg.webhooks.keys().map(String::as_str).collect();
        return Err(
            CommandError::new(format!("no webhook named `{}`", args.name))
                .with_hint(if names.is_empty() {
                    "the config defines no Webhook".to_string()
                } else {
                    format!("webhooks: {}", names.join(", "))
                })
                .with_outcome(Outcome::Usage),
        );
    }
    let state_dir = global.state_dir();
    super::block_on(test(&cfg, &state_dir, &args, out))?
}

async fn test(
    cfg: &Config,
    state_dir: &std::path::Path,
    args: &TestArgs,
    out: &Output,
) -> CommandResult {
    let mappings: Vec<&crate::config::model::Mapping> = match &args.mapping {
        Some(m) => match cfg.mappings.iter().find(|x| &x.name == m) {
            Some(x) => vec![x],
            None => {
                return Err(CommandError::new(format!("no mapping named `{m}`"))
                    .with_outcome(Outcome::Usage));
            }
        },
        None => cfg.mappings.iter().collect(),
    };
    let source = crate::directory::source::open(&cfg.integration.directory)
        .map_err(|e| CommandError::new(e.to_string()))?;
    let searches = crate::directory::read::plan_searches(cfg);
    let entries = crate::directory::read::read_mappings(source.as_ref(), &searches)
        .await
        .map_err(|e| CommandError::new(e.to_string()))?;
    let mut found = Vec::new();
    for m in &mappings {
        if let Some(list) = entries.get(&m.name) {
            for e in list.iter() {
                if crate::reconcile::desired::key_of(e, &m.primary_key.ldap).as_deref()
                    == Some(args.user.as_str())
                {
                    found.push((*m, e.clone()));
                }
            }
        }
    }
    let (mapping, entry) = match found.len() {
        0 => {
            return Err(CommandError::new(format!(
                "no in-scope directory entry has key `{}`{}",
                args.user,
                args.mapping
                    .as_deref()
                    .map(|m| format!(" in mapping `{m}`"))
                    .unwrap_or_default()
            ))
            .with_hint("the key is the value of the mapping's primaryKey.ldap attribute"));
        }
        1 => found.remove(0),
        _ => {
            let names: Vec<String> = found
                .iter()
                .map(|(m, e)| format!("{} ({})", m.name, e.dn))
                .collect();
            return Err(CommandError::new(format!(
                "{} entries have key `{}`: {}",
                found.len(),
                args.user,
                names.join(", ")
            ))
            .with_hint("pick one with --mapping NAME")
            .with_outcome(Outcome::Usage));
        }
    };
    let dn = entry.dn.clone();
    let cache = ObservedCache::load(state_dir, &crate::carbonite::tenant_key(cfg, state_dir)).ok();
    let tables = cache
        .as_ref()
        .map(|c| c.lookup_tables.clone())
        .unwrap_or_default();
    let mut ctx =
        RenderContext::new(Arc::new(LookupIndex::new(&tables))).with_entry(Arc::new(entry));
    let account = cache.as_ref().and_then(|c| {
        c.groups
            .iter()
            .filter(|g| mapping.endpoints.iter().all(|e| g.endpoints.contains(e)))
            .flat_map(|g| g.accounts.iter())
            .find(|a| a.key.as_deref() == Some(args.user.as_str()))
            .map(|a| serde_json::Value::Object(a.fields.to_map()))
    });
    let has_account = account.is_some();
    if let Some(a) = account {
        ctx = ctx.with_account(Arc::new(a));
    }
    let hooks = Hooks::compile(cfg).map_err(CommandError::new)?;
    let needs_carbonite = hooks.carbonite_route(&args.name).is_some();
    let client = if args.send && needs_carbonite {
        Some(
            CarboniteClient::connect(cfg, state_dir, ClientOptions::default())
                .await
                .map_err(CommandError::from)?,
        )
    } else {
        None
    };
    let base_url = match (&client, &cfg.integration.carbonite.target) {
        (Some(c), _) => c.base_url().to_string(),
        (None, crate::config::model::CarboniteTarget::Url(u)) => u.clone(),
        (None, crate::config::model::CarboniteTarget::Emulator { .. }) => {
            "http://emulator.invalid".to_string()
        }
    };
    let result = async {
        let req = hooks
            .render(&args.name, &ctx, &base_url)
            .map_err(|e| CommandError::new(e.to_string()))?;
        let mut text = format!(
            "# webhook {} for {} ({}), mapping {}; account: {}\n",
            args.name,
            args.user,
            dn,
            mapping.name,
            if has_account {
                "from the observed-state cache"
            } else {
                "none known"
            }
        );
        text.push_str(&hooks.show(&req));
        if !args.send {
            out.out(&text);
            return Ok(Outcome::Success);
        }
        let reply = hooks
            .send_unchecked(&req, client.as_ref())
            .await
            .map_err(|e| CommandError::new(e.to_string()))?;
        text.push_str(&format!("\n# response\nHTTP {}\n", reply.status));
        for (k, v) in &reply.headers {
            let v = if crate::config::secret::is_sensitive_key(k) {
                crate::carbonite::redact::REDACTED.to_string()
            } else {
                hooks.redactor().text(v)
            };
            text.push_str(&format!("{k}: {v}\n"));
        }
        if !reply.body.is_empty() {
            text.push('\n');
            text.push_str(&hooks.redactor().text(&reply.body));
            text.push('\n');
        }
        out.out(&text);
        match hooks.check(&req, &reply) {
            Ok(()) => Ok(Outcome::Success),
            Err(e) => Err(CommandError::new(e.to_string())
                .with_hint("the webhook's expectStatus lists the statuses that count as success")),
        }
    }
    .await;
    if let Some(c) = client {
        let _ = c.close().await;
    }
    result
}
