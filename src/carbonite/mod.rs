//! The Carbonite side (SPEC §5): the connector profile (built-in Endpoints and write routes as
//! data), the HTTP client with its auth, pagination, retries and redaction, and the rate-limit
//! ledger shared through the state dir.
//!
//! Module map: `profile` (+ `builtin.yaml`) — the preconfigured connector; `client` — the
//! [`CarboniteClient`] and its operations; `auth` — credentials and the token cache;
//! `pagination` — the paging state machine; `ledger` — sliding-window budgets in
//! `<state>/ledger.json`; `redact` — keeping secrets out of logs; `fields` — the
//! `test-endpoint` field table; `raw` — listed items kept as their JSON text; `online` — the Carbonite part of `validate --online`;
//! `state_dir` — creating the state dir; `error` — [`ClientError`], [`CreateError`].

pub mod auth;
pub mod client;
pub mod error;
pub mod fields;
pub mod ledger;
pub mod online;
pub mod pagination;
pub mod profile;
pub mod raw;
pub mod redact;

pub use client::{
    Account, CarboniteClient, ClientOptions, ClientSettings, DeleteOutcome, Item, ObservedAccount,
    Page, RetryPolicy, open_ledger, tenant_key,
};
pub(crate) use client::{error_chain, install_tls_provider, truncate};
pub use error::{ClientError, CreateError, FieldErrors};
pub use ledger::{Budget, Ledger, LedgerError, NoBudget, PlannedCalls, Reservation, Schedule};
pub use online::{OnlineVerdict, online_check};
