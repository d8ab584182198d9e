//! The Carbonite part of `validate --online` (SPEC §11): resolve the secret, get a token, read
//! one listing page of each endpoint the mappings read (`carbonite-users` when none does) — a
//! verdict per check. Every call goes through the ledger like any other.

use std::path::Path;

use super::client::{CarboniteClient, ClientOptions};
use super::ledger::rfc3339;
use super::profile::USERS;
use crate::config::Config;

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnlineVerdict {
    /// What was checked, e.g. `carbonite token`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, or the error (with its hint).
    pub detail: String,
}

fn verdict(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> OnlineVerdict {
    OnlineVerdict {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

fn error_detail(e: &super::error::ClientError) -> String {
    match e.hint() {
        Some(h) => format!("{e}\nhint: {h}"),
        None => e.to_string(),
    }
}

/// Check the Carbonite connection of `cfg`: `carbonite connection` (secrets, emulator, ledger),
/// `carbonite token`, and `carbonite endpoint NAME` (one page) per endpoint read by a mapping.
/// Later checks are skipped (not reported) when an earlier one fails.
pub async fn online_check(cfg: &Config, state_dir: &Path) -> Vec<OnlineVerdict> {
    let mut verdicts = Vec::new();
    let client = match CarboniteClient::connect(cfg, state_dir, ClientOptions::default()).await {
        Ok(c) => {
            verdicts.push(verdict(
                "carbonite connection",
                true,
                format!("{} (state dir {})", c.base_url(), state_dir.display()),
            ));
            c
        }
        Err(e) => {
            verdicts.push(verdict("carbonite connection", false, error_detail(&e)));
            return verdicts;
        }
    };
    match client.check_token().await {
        Ok(Some(exp)) => verdicts.push(verdict(
            "carbonite token",
            true,
            format!("token obtained, valid until {}", rfc3339(exp)),
        )),
        Ok(None) => verdicts.push(verdict(
            "carbonite token",
            true,
            "static bearer token (tested by the listing)",
        )),
        Err(e) => {
            verdicts.push(verdict("carbonite token", false, error_detail(&e)));
            let _ = client.close().await;
            return verdicts;
        }
    }
    let mut endpoints: Vec<&str> = cfg
        .mappings
        .iter()
        .flat_map(|m| m.endpoints.iter().map(String::as_str))
        .collect();
    endpoints.sort_unstable();
    endpoints.dedup();
    if endpoints.is_empty() {
        endpoints.push(USERS);
    }
    for name in endpoints {
        let check = format!("carbonite endpoint {name}");
        match client.first_page(name, &[]).await {
            Ok(page) => {
                let mut detail = format!(
                    "{} item{} on the first page",
                    page.items.len(),
                    if page.items.len() == 1 { "" } else { "s" }
                );
                if let Some(t) = page.total {
                    detail.push_str(&format!(", {t} in total"));
                }
                verdicts.push(verdict(check, true, detail));
            }
            Err(e) => verdicts.push(verdict(check, false, error_detail(&e))),
        }
    }
    if let Err(e) = client.close().await {
        verdicts.push(verdict(
            "carbonite emulator shutdown",
            false,
            error_detail(&e),
        ));
    }
    verdicts
}
