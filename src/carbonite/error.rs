//! Errors of the Carbonite client. Each names the operation and its object (`list endpoint
//! carbonite-users`, `update user 5a1d...`), the HTTP status and Carbonite's own message when
//! there is one, and carries a hint. Secrets never appear: URLs and messages pass through the
//! client's redactor before they get here.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::ledger::{LedgerError, NoBudget, rfc3339};
use crate::error::{CommandError, Outcome};

/// Field name -> problems, as Carbonite's 400 answers list them.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// A failed Carbonite operation.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Before any call: secrets, templates, the emulator, the HTTP stack.
    #[error("{op}: {message}")]
    Setup {
        op: String,
        message: String,
        hint: Option<String>,
    },
    /// Carbonite answered with an error status.
    #[error("{op}: Carbonite answered {status} to {method} {url}{}", api_message(message.as_deref(), field_errors))]
    Api {
        op: String,
        method: String,
        url: String,
        status: u16,
        message: Option<String>,
        field_errors: FieldErrors,
    },
    /// No answer (connection refused, timeout, reset), after retries.
    #[error("{op}: no answer from {method} {url} after {attempts} attempt(s): {reason}")]
    Transport {
        op: String,
        method: String,
        url: String,
        attempts: u32,
        reason: String,
    },
    /// An answer we cannot use (not JSON, no items array, ...).
    #[error("{op}: unexpected answer from {url}: {problem}")]
    Response {
        op: String,
        url: String,
        problem: String,
    },
    /// The rate-limit ledger has no slot now (and waiting was not allowed that long).
    #[error("{op}: {source}")]
    Budget {
        op: String,
        #[source]
        source: NoBudget,
    },
    /// Carbonite said 429 and asked us to wait longer than allowed.
    #[error("{op}: Carbonite refused {route} with 429; it accepts calls again at {}", rfc3339(*retry_at))]
    RateLimited {
        op: String,
        route: String,
        retry_at: SystemTime,
        retry_after: Duration,
    },
    /// The ledger itself failed (I/O, corrupt file).
    #[error("{op}: {source}")]
    Ledger {
        op: String,
        #[source]
        source: LedgerError,
    },
}

fn api_message(message: Option<&str>, errors: &FieldErrors) -> String {
    let mut s = String::new();
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        s.push_str(": ");
        s.push_str(m);
    }
    for (field, problems) in errors {
        s.push_str(&format!("\n  {field}: {}", problems.join("; ")));
    }
    s
}

impl ClientError {
    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            ClientError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// Exit-code kind: running out of budget stops a run early (5); the rest are errors (1).
    pub fn outcome(&self) -> Outcome {
        match self {
            ClientError::Budget { .. } | ClientError::RateLimited { .. } => Outcome::Stopped,
            ClientError::Ledger {
                source: LedgerError::NoBudget(_),
                ..
            } => Outcome::Stopped,
            _ => Outcome::Error,
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            ClientError::Setup { hint, .. } => hint.clone(),
            ClientError::Api { status, url, .. } => match status {
                401 => Some(
                    "check carbonite.auth: the API key email and secret (or the bearer token) \
                     must belong to this tenant"
                        .into(),
                ),
                403 => Some("the API key lacks the permission for this call".into()),
                404 if url.contains("/api/") => Some(
                    "the route or the object does not exist; routes other than the token and \
                     create calls are assumptions (docs/carbonite-api.md): override the \
                     Endpoint or carbonite.routes"
                        .into(),
                ),
                409 => Some("another account already has this Email".into()),
                _ => None,
            },
            ClientError::Transport { .. } => Some(
                "check the base URL (carbonite.region / baseUrl), the network and \
                 carbonite.timeout"
                    .into(),
            ),
            ClientError::Response { .. } => Some(
                "the response shape is an assumption (docs/carbonite-api.md): check the \
                 Endpoint's `items`, `id` and `pagination` against the tenant's Swagger page"
                    .into(),
            ),
            ClientError::Budget { .. } => Some(
                "rerun after that time, or let the command wait (`--max-wait`); the ledger \
                 protects only runs that share this state dir"
                    .into(),
            ),
            ClientError::RateLimited { .. } => Some(
                "another client spends this tenant's budget (the ledger protects only runs that \
                 share a state dir); rerun after that time"
                    .into(),
            ),
            ClientError::Ledger { source, .. } => source.hint(),
        }
    }
}

impl From<ClientError> for CommandError {
    fn from(e: ClientError) -> Self {
        let mut c = CommandError::new(e.to_string()).with_outcome(e.outcome());
        if let Some(h) = e.hint() {
            c = c.with_hint(h);
        }
        c
    }
}

/// Why a create did not produce an account.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Carbonite answered with an error (400 field errors, 409 duplicate Email, ...): nothing
    /// was created.
    #[error("create user {email}: Carbonite refused it with {status}{}", api_message(message.as_deref(), field_errors))]
    Rejected {
        email: String,
        status: u16,
        message: Option<String>,
        field_errors: FieldErrors,
    },
    /// The request may or may not have been processed (timeout, reset, 5xx, no readable
    /// answer). Never retried by the client: the caller looks the account up (SPEC §8).
    #[error(
        "create user {email}: outcome unknown ({reason}); look the account up before creating it again"
    )]
    UnknownOutcome { email: String, reason: String },
    /// Provably not sent or not processed (no budget, connection refused, auth failure).
    #[error(transparent)]
    NotSent(#[from] ClientError),
}
