//! The Carbonite REST client (SPEC §5): every call goes through the rate-limit ledger, a
//! concurrency limit and the retry policy, with the access token managed for the caller.
//!
//! # Retries
//!
//! - Reads (listings, `getUser`), `updateUser`, `deleteUser` and the token call are idempotent:
//!   they are retried on connection errors, timeouts, resets and 5xx, with exponential backoff
//!   and full jitter, at most [`RetryPolicy::max_attempts`] attempts within
//!   [`RetryPolicy::max_elapsed`].
//! - A create (`createUser`) is retried only when it provably did not happen: the connection
//!   could not be opened, or the answer was 429 or a 401 before the token's renewal. A timeout,
//!   a reset, a cut-off answer or a 5xx make its outcome unknown:
//!   [`CreateError::UnknownOutcome`] goes back to the caller, which looks the account up
//!   (SPEC §8).
//! - 429: `Retry-After` is honoured (and recorded in the ledger for every process sharing it);
//!   the retry takes a new ledger slot. A wait beyond the retry budget and the caller's budget
//!   deadline is [`ClientError::RateLimited`] (exit 5).
//! - 401 on a token-authenticated call: the token is renewed once and the call repeated.
//!
//! Each attempt takes a ledger slot before it is sent; without budget the client waits until
//! the next slot when that is before the budget deadline ([`CarboniteClient::set_budget_deadline`],
//! none by default), else fails with [`ClientError::Budget`] (exit 5).
//!
//! # Logging
//!
//! `debug`: one line per attempt (operation, method, URL, status, duration). `trace`: request
//! headers and bodies, response bodies. The Authorization header is never logged; URLs, bodies
//! and messages pass through the [`Redactor`], which knows every secret value the client
//! handled.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::hash::{BuildHasher as _, Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, SemaphorePermit};
use url::Url;

use super::auth::{CachedToken, Credentials};
use super::error::{ClientError, CreateError, FieldErrors};
use super::ledger::{Ledger, LedgerError, Reservation};
use super::pagination::{PageRequest, Pager};
use super::profile::{COMPANIES, TOKEN_ROUTE, USER_BY_EMAIL, USER_GROUPS, USERS};
use super::raw::{Items, RawFields, top_level};
use super::redact::{REDACTED, Redactor};
use crate::config::Config;
use crate::config::model::{
    Auth, Carbonite, CarboniteTarget, Endpoint, EndpointTarget, Pagination, PaginationStyle, Route,
    UndefinedMode,
};
use crate::config::secret::{Secret, SecretRef, is_sensitive_key};
use crate::emulator::{self, EmulatorOptions, RunningEmulator};
use crate::state::ensure_state_dir;
use crate::template::{
    self, Company, CompiledTemplate, EngineSettings, LookupIndex, LookupTables, RenderContext,
    TemplateEngine, Usage, UserGroup,
};

/// API key used with the in-process emulator when the config has no `auth` (the emulator
/// accepts any key when its seed lists none).
pub const EMULATOR_DEFAULT_EMAIL: &str = "carbonite-sync@emulator.invalid";
const EMULATOR_DEFAULT_SECRET: &str = "carbonite-sync-emulator";
/// Bodies logged at trace level are cut after this many bytes.
const TRACE_BODY_LIMIT: usize = 16 * 1024;
/// Added to the request timeout for a call's pessimistic ledger entry.
const LEDGER_HOLD_MARGIN: Duration = Duration::from_secs(2);

/// Bounds of the retry policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (a 401 renewal is not counted).
    pub max_attempts: u32,
    /// No retry starts after this much time since the first attempt.
    pub max_elapsed: Duration,
    /// Backoff before the second attempt (doubled each time, full jitter).
    pub base_delay: Duration,
    /// Longest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts within 60 s; backoff 0.5 s, 1 s, 2 s ... at most 8 s, jittered.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            max_elapsed: Duration::from_secs(60),
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The backoff after failed attempt `attempt` (1-based): a random share (50-100%) of
    /// `base * 2^(attempt-1)`, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        let share = 0.5 + rand::random::<f64>() * 0.5;
        exp.mul_f64(share)
    }
}

/// How the client behaves beyond the config.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Retry bounds.
    pub retry: RetryPolicy,
    /// Wait for rate budget until this time (`None`: fail at once with [`ClientError::Budget`]).
    pub budget_deadline: Option<SystemTime>,
    /// Treat every token as living this long instead of reading its `exp` (for servers whose
    /// clock disagrees with ours, and for tests of the 401 renewal).
    pub token_lifetime_override: Option<Duration>,
}

/// One listed item: its server id (from the Endpoint's `id` pointer) and the whole JSON object,
/// unknown fields included (they are never sent back), as the text the server sent.
#[derive(Clone, Debug)]
pub struct Item {
    /// The server id, when the Endpoint has an `id` pointer.
    pub id: Option<String>,
    /// The item as listed.
    pub raw: Box<RawValue>,
    /// `Some(value)` when the listing also read a key field of the items (`list_accounts`
    /// does, with the id, in the same pass over the text); `None` when it did not.
    pub key: Option<Option<String>>,
}

impl Item {
    /// The item parsed.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.raw.get()).unwrap_or(Value::Null)
    }
}

impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.key == other.key && self.value() == other.value()
    }
}

/// One page (or a few) of a listing.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// The items read.
    pub items: Vec<Item>,
    /// The last total the server announced, if the Endpoint has a `total` pointer.
    pub total: Option<u64>,
    /// Whether more pages were left unread.
    pub more: bool,
    /// HTTP calls made (tokens not included).
    pub calls: u64,
}

/// A user account as answered by `getUser`, `createUser` or `updateUser`.
#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    /// `UserId`.
    pub id: String,
    /// Every field of the `User` object, unknown ones included.
    pub fields: Map<String, Value>,
}

/// An account seen in the listings of a mapping's endpoints, merged by the primary key. Also
/// the account form of the observed-state cache (docs/decisions.md).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ObservedAccount {
    /// The server id (`id` pointer of the endpoint that listed it first).
    pub id: Option<String>,
    /// The primary key's value; `None` when the key field is absent, null or "".
    pub key: Option<String>,
    /// The merged fields: the first endpoint's value wins where two disagree. Kept as listed
    /// (text) unless merged: see [`RawFields`].
    pub fields: RawFields,
    /// Endpoints that listed it, in order.
    pub endpoints: Vec<String>,
}

/// What a delete found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Carbonite deleted it.
    Deleted,
    /// Carbonite answered 404: it was already gone (e.g. an earlier attempt whose answer was
    /// lost deleted it).
    AlreadyGone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Listings and `getUser`.
    Read,
    /// `updateUser`, `deleteUser`: idempotent writes.
    Write,
    /// `createUser`.
    Create,
    /// Another non-idempotent call (a webhook's POST/PATCH): never retried once it may have
    /// been processed, but not a user creation.
    Post,
    /// `POST /api/tokens/apikey`.
    Token,
}

struct Call<'a> {
    op: &'a str,
    kind: Kind,
    method: Method,
    url: Url,
    /// Ledger route (METHOD + path template); `None`: not a Carbonite call.
    route: Option<String>,
    /// Send the bearer token.
    bearer: bool,
    /// Extra headers: name, value, whether the value is secret.
    headers: Vec<(String, String, bool)>,
    body: Option<Value>,
    /// A body sent as is: (Content-Type, text). Takes the place of `body`.
    raw: Option<(String, String)>,
    /// A request timeout other than the client's.
    timeout: Option<Duration>,
    /// A listing's `items` pointer: the answer's value there is kept as text
    /// ([`Reply::items`]), not parsed into `body`.
    items: Option<&'a str>,
}

struct Reply {
    status: u16,
    /// The JSON answer; a listing's items are `null` here, their text is in `items`.
    body: Value,
    /// A listing's items (the answer's value at the call's `items` pointer), as text.
    items: Option<Items>,
    /// The body when it is not JSON (redacted, shortened), for messages.
    text: Option<String>,
    retry_after: Option<Duration>,
}

enum Failure {
    Error(ClientError),
    /// A create that may have happened.
    Unknown(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Error(e)
    }
}

impl Failure {
    fn into_error(self, op: &str, method: &Method, url: &str) -> ClientError {
        match self {
            Failure::Error(e) => e,
            // Only creates have unknown outcomes; for anything else this is a transport error.
            Failure::Unknown(reason) => ClientError::Transport {
                op: op.to_string(),
                method: method.to_string(),
                url: url.to_string(),
                attempts: 1,
                reason,
            },
        }
    }
}

struct CompiledEndpoint {
    endpoint: Endpoint,
    /// Name, template, whether it calls `secret()`.
    query: Vec<(String, CompiledTemplate, bool)>,
    headers: Vec<(String, CompiledTemplate, bool)>,
}

/// Resolves `secret('NAME')` / `secret('file:PATH')` in Endpoint templates and remembers every
/// value for redaction.
struct TemplateSecrets {
    config_dir: PathBuf,
    redactor: Arc<Redactor>,
}

impl template::SecretResolver for TemplateSecrets {
    fn resolve(&self, reference: &str) -> Result<String, String> {
        let r = match reference.strip_prefix("file:") {
            Some(p) => SecretRef::File(self.config_dir.join(p)),
            None => SecretRef::Env(reference.to_string()),
        };
        let s = r.resolve().map_err(|e| e.to_string())?;
        self.redactor.add(s.expose());
        Ok(s.expose().to_string())
    }
}

/// Counters of calls made, per ledger route.
#[derive(Debug, Default)]
struct CallStats {
    calls: Mutex<BTreeMap<String, u64>>,
    /// (route, status or `error`) -> calls, for metrics.
    statuses: Mutex<BTreeMap<(String, String), u64>>,
    attempts: AtomicU64,
}

/// `url` with `params` appended to its query.
fn with_params(url: &Url, params: &[(String, String)]) -> Url {
    let mut u = url.clone();
    if !params.is_empty() {
        u.query_pairs_mut().extend_pairs(params);
    }
    u
}

/// The requests a `pageNumber` / `offset` listing still needs after `next`, as the pager will
/// ask for them when every page is full: `next` and the pages after it, until the items seen
/// reach the announced total. Empty for other styles or without a total.
fn ahead_requests(
    p: &Pagination,
    next: &PageRequest,
    seen: u64,
    total: Option<u64>,
) -> Vec<PageRequest> {
    let (Some(total), Some(size), PageRequest::Params(params)) = (total, p.size, next) else {
        return Vec::new();
    };
    let step = match p.style {
        PaginationStyle::PageNumber => 1,
        PaginationStyle::Offset => i64::from(size),
        _ => return Vec::new(),
    };
    let Some(((param, value), rest)) = params.split_first() else {
        return Vec::new();
    };
    let Ok(value) = value.parse::<i64>() else {
        return Vec::new();
    };
    let pages = total.saturating_sub(seen).div_ceil(u64::from(size.max(1)));
    (0..pages as i64)
        .map(|i| {
            let mut ps = vec![(param.clone(), value.saturating_add(i * step).to_string())];
            ps.extend(rest.iter().cloned());
            PageRequest::Params(ps)
        })
        .collect()
}

/// The calls a listing announced to the ledger ([`Ledger::expect`]), ended on drop.
struct Announced<'l> {
    ledger: &'l Ledger,
    route: Option<String>,
}

impl Drop for Announced<'_> {
    fn drop(&mut self) {
        if let Some(route) = &self.route {
            self.ledger.expect(route, 0, Duration::ZERO);
        }
    }
}

/// A page requested ahead: its request, the call, and its answer once it came.
type AheadPage<'a> = (
    PageRequest,
    PageFuture<'a>,
    Option<Result<Reply, ClientError>>,
);

type PageFuture<'a> = Pin<Box<dyn Future<Output = Result<Reply, ClientError>> + Send + 'a>>;

/// Pages of a listing requested ahead of their turn, in order. They progress while the listing
/// waits for the first of them; each call goes through the ledger like any other.
#[derive(Default)]
struct Ahead<'a> {
    queue: VecDeque<AheadPage<'a>>,
}

impl<'a> Ahead<'a> {
    fn front(&self) -> Option<&PageRequest> {
        self.queue.front().map(|(r, _, _)| r)
    }

    fn requests(&self) -> impl Iterator<Item = &PageRequest> {
        self.queue.iter().map(|(r, _, _)| r)
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn clear(&mut self) {
        self.queue.clear();
    }

    fn push(&mut self, request: PageRequest, fetch: PageFuture<'a>) {
        self.queue.push_back((request, fetch, None));
    }

    /// The answer of the first page (polling the others meanwhile).
    async fn next(&mut self) -> Result<Reply, ClientError> {
        std::future::poll_fn(|cx| {
            for (_, fetch, out) in self.queue.iter_mut() {
                if out.is_none()
                    && let Poll::Ready(v) = fetch.as_mut().poll(cx)
                {
                    *out = Some(v);
                }
            }
            match self.queue.front_mut() {
                Some((_, _, out)) if out.is_some() => {
                    Poll::Ready(self.queue.pop_front().and_then(|(_, _, out)| out))
                }
                _ => Poll::Pending,
            }
        })
        .await
        .unwrap_or_else(|| unreachable!("the first page was answered"))
    }
}

/// The Carbonite client. See the [module docs](self).
pub struct CarboniteClient {
    http: reqwest::Client,
    base: Url,
    creds: Credentials,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    ledger: Ledger,
    permits: Semaphore,
    /// The size of `permits`: how many pages of a listing may be in flight.
    concurrency: usize,
    routes: crate::config::model::Routes,
    endpoints: BTreeMap<String, CompiledEndpoint>,
    engine: TemplateEngine,
    secrets: Arc<TemplateSecrets>,
    redactor: Arc<Redactor>,
    options: ClientOptions,
    budget_deadline: Mutex<Option<SystemTime>>,
    stats: CallStats,
    emulator: Option<RunningEmulator>,
}

impl std::fmt::Debug for CarboniteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarboniteClient")
            .field("base", &self.base.as_str())
            .field("ledger", &self.ledger.key())
            .finish_non_exhaustive()
    }
}

fn setup(op: &str, message: impl Into<String>) -> ClientError {
    ClientError::Setup {
        op: op.to_string(),
        message: message.into(),
        hint: None,
    }
}

/// Install the process-wide rustls provider (ring) once; reqwest is built without one.
pub(crate) fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The in-process emulator's state file for a (canonical) state dir.
fn emulator_state_file(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join(crate::emulator::STATE_FILE_NAME)
}

/// The tenant key of the ledger and the observed-state cache (SPEC §10): base URL + the auth
/// email (`-` with a bearer token); for the in-process emulator `emulator:<state file>`. Computed
/// from the config alone: no secret is resolved, no emulator started, no call made. Equal to
/// [`CarboniteClient::tenant_key`] of a client `connect`ed with the same config and state dir.
pub fn tenant_key(cfg: &Config, state_dir: &Path) -> String {
    let c = &cfg.integration.carbonite;
    let state_dir = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.into());
    let base = match &c.target {
        CarboniteTarget::Url(u) => u.clone(),
        CarboniteTarget::Emulator { .. } => {
            format!("emulator:{}", emulator_state_file(&state_dir).display())
        }
    };
    let email = match (&c.auth, &c.target) {
        (Some(Auth::ApiKey { email, .. }), _) => email.as_str(),
        (Some(Auth::BearerToken(_)), _) => "-",
        (None, CarboniteTarget::Emulator { .. }) => EMULATOR_DEFAULT_EMAIL,
        (None, CarboniteTarget::Url(_)) => "-",
    };
    format!("{base} {email}")
}

/// The config's rate-limit ledger, opened without a client (no secret resolved, no call made):
/// what `plan --observed cache` estimates with.
pub fn open_ledger(cfg: &Config, state_dir: &Path) -> Result<Ledger, ClientError> {
    let c = &cfg.integration.carbonite;
    Ledger::open(
        state_dir,
        tenant_key(cfg, state_dir),
        c.rate_limits,
        c.timeout + LEDGER_HOLD_MARGIN,
    )
    .map_err(|source| ClientError::Ledger {
        op: "open the rate-limit ledger".into(),
        source,
    })
}

impl CarboniteClient {
    /// The tenant key of the ledger and the observed-state cache (see [`tenant_key`]).
    pub fn tenant_key(&self) -> &str {
        self.ledger.key()
    }

    /// Whether the client authenticates with an API key (each run then makes one token call).
    pub fn uses_api_key(&self) -> bool {
        matches!(self.creds, Credentials::ApiKey { .. })
    }

    /// A client for the config's Carbonite target: a real tenant, or the in-process emulator
    /// (started here, its state in `<state_dir>/emulator.json`). Resolves the auth secret and
    /// opens the ledger in `state_dir` (created with its `.gitignore`).
    pub async fn connect(
        cfg: &Config,
        state_dir: &Path,
        options: ClientOptions,
    ) -> Result<CarboniteClient, ClientError> {
        let op = "connect to Carbonite";
        let c = &cfg.integration.carbonite;
        ensure_state_dir(state_dir).map_err(|e| ClientError::Setup {
            op: op.into(),
            message: format!("cannot create the state dir {}: {e}", state_dir.display()),
            hint: Some("pass --state-dir or set CARBONITE_SYNC_STATE_DIR".into()),
        })?;
        let state_dir = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.into());
        let (base, ledger_base, running) = match &c.target {
            CarboniteTarget::Url(u) => (u.clone(), u.clone(), None),
            CarboniteTarget::Emulator { seed } => {
                let running =
                    emulator::start(EmulatorOptions::in_process(&state_dir, seed.clone()))
                        .await
                        .map_err(|e| ClientError::Setup {
                            op: op.into(),
                            message: format!("cannot start the in-process emulator: {e}"),
                            hint: Some(
                                "check carbonite.emulator.seed, or remove a broken \
                             <state dir>/emulator.json"
                                    .into(),
                            ),
                        })?;
                let state_file = running
                    .state_file()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| emulator_state_file(&state_dir));
                (
                    running.base_url(),
                    format!("emulator:{}", state_file.display()),
                    Some(running),
                )
            }
        };
        let creds = match (&c.auth, &running) {
            (Some(Auth::ApiKey { email, secret }), _) => Credentials::ApiKey {
                email: email.clone(),
                secret: resolve_secret(op, secret, "the API key secret")?,
            },
            (Some(Auth::BearerToken(r)), _) => {
                Credentials::Bearer(resolve_secret(op, r, "the bearer token")?)
            }
            (None, Some(_)) => Credentials::ApiKey {
                email: EMULATOR_DEFAULT_EMAIL.into(),
                secret: Secret::new(EMULATOR_DEFAULT_SECRET),
            },
            (None, None) => {
                return Err(ClientError::Setup {
                    op: op.into(),
                    message: "carbonite.auth is missing".into(),
                    hint: Some("add auth: { apiKey: { email, secret: { env: NAME } } }".into()),
                });
            }
        };
        let engine_settings = EngineSettings {
            undefined: match cfg.integration.templates.undefined {
                UndefinedMode::Lenient => template::Undefined::Lenient,
                UndefinedMode::Strict => template::Undefined::Strict,
            },
            formats: cfg.integration.templates.formats.clone(),
        };
        let settings = ClientSettings {
            base_url: base,
            ledger_base,
            credentials: creds,
            carbonite: c.clone(),
            endpoints: cfg.endpoints.clone(),
            templates: engine_settings,
            config_dir: cfg.dir.clone(),
            state_dir,
        };
        let mut client = CarboniteClient::from_settings(settings, options)?;
        client.emulator = running;
        Ok(client)
    }

    /// A client from explicit settings (no emulator is started).
    pub fn from_settings(
        s: ClientSettings,
        options: ClientOptions,
    ) -> Result<CarboniteClient, ClientError> {
        let op = "connect to Carbonite";
        install_tls_provider();
        let base = Url::parse(s.base_url.trim_end_matches('/'))
            .map_err(|e| setup(op, format!("invalid base URL `{}`: {e}", s.base_url)))?;
        let redactor = Arc::new(Redactor::default());
        match &s.credentials {
            Credentials::ApiKey { secret, .. } => redactor.add(secret.expose()),
            Credentials::Bearer(t) => redactor.add(t.expose()),
        }
        let loopback = base.host_str().is_some_and(|h| {
            h == "localhost"
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
                || h == "[::1]"
        });
        let mut builder = reqwest::Client::builder()
            .timeout(s.carbonite.timeout)
            .connect_timeout(s.carbonite.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .user_agent(concat!("carbonite-sync/", env!("CARGO_PKG_VERSION")));
        if loopback {
            builder = builder.no_proxy();
        }
        // Without an https URL the client never makes a TLS handshake (redirects are off):
        // skip loading the platform's CA store, a few milliseconds before the first request.
        let https = |u: &str| u.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("https:"));
        let plain_http = base.scheme() == "http"
            && s.endpoints.values().all(|e| match &e.target {
                EndpointTarget::Url(u) => !https(u),
                EndpointTarget::Path(_) => true,
            });
        if plain_http {
            builder = builder.tls_certs_only(std::iter::empty());
        }
        let http = builder
            .build()
            .map_err(|e| setup(op, format!("cannot build the HTTP client: {e}")))?;
        let key = format!("{} {}", s.ledger_base, s.credentials.ledger_email());
        let ledger = Ledger::open(
            &s.state_dir,
            key,
            s.carbonite.rate_limits,
            s.carbonite.timeout + LEDGER_HOLD_MARGIN,
        )
        .map_err(|source| ClientError::Ledger {
            op: op.into(),
            source,
        })?;
        let mut engine = TemplateEngine::new(s.templates).map_err(|issues| {
            setup(
                op,
                format!(
                    "the formats do not compile: {}",
                    issues
                        .iter()
                        .map(|i| format!("{}: {}", i.format, i.issue.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            )
        })?;
        let mut endpoints = BTreeMap::new();
        for (name, e) in s.endpoints {
            let mut compile = |pairs: &[(String, String)], usage: Usage, what: &str| {
                pairs
                    .iter()
                    .map(|(k, v)| {
                        let t = engine.compile(v, usage).map_err(|issues| {
                            setup(
                                &format!("prepare endpoint `{name}`"),
                                format!(
                                    "{what} `{k}`: {}",
                                    issues
                                        .iter()
                                        .map(|i| i.message.clone())
                                        .collect::<Vec<_>>()
                                        .join("; ")
                                ),
                            )
                        })?;
                        Ok((k.clone(), t, v.contains("secret(")))
                    })
                    .collect::<Result<Vec<_>, ClientError>>()
            };
            let query = compile(&e.query, Usage::EndpointQuery, "query parameter")?;
            let headers = compile(&e.headers, Usage::EndpointHeader, "header")?;
            endpoints.insert(
                name,
                CompiledEndpoint {
                    endpoint: e,
                    query,
                    headers,
                },
            );
        }
        let concurrency = s.carbonite.concurrency.max(1) as usize;
        Ok(CarboniteClient {
            http,
            base,
            creds: s.credentials,
            token: tokio::sync::Mutex::new(None),
            ledger,
            permits: Semaphore::new(concurrency),
            concurrency,
            routes: s.carbonite.routes,
            endpoints,
            engine,
            secrets: Arc::new(TemplateSecrets {
                config_dir: s.config_dir,
                redactor: redactor.clone(),
            }),
            redactor,
            budget_deadline: Mutex::new(options.budget_deadline),
            options,
            stats: CallStats::default(),
            emulator: None,
        })
    }

    /// The base URL in use (the emulator's when in-process).
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The rate-limit ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The in-process emulator, when the config asked for one.
    pub fn emulator(&self) -> Option<&RunningEmulator> {
        self.emulator.as_ref()
    }

    /// Wait for rate budget until `deadline` (`None`: never wait).
    pub fn set_budget_deadline(&self, deadline: Option<SystemTime>) {
        *self
            .budget_deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = deadline;
    }

    fn budget_deadline(&self) -> Option<SystemTime> {
        *self
            .budget_deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Calls made so far per (ledger route, HTTP status or `error` when no answer came).
    pub fn status_counts(&self) -> BTreeMap<(String, String), u64> {
        self.stats
            .statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn count_status(&self, route: Option<&String>, status: &str) {
        if let Some(r) = route {
            *self
                .stats
                .statuses
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry((r.clone(), status.to_string()))
                .or_default() += 1;
        }
    }

    /// Calls made so far per ledger route (successful or not), and attempts in total.
    pub fn call_counts(&self) -> (BTreeMap<String, u64>, u64) {
        (
            self.stats
                .calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            self.stats.attempts.load(Ordering::Relaxed),
        )
    }

    /// Shut the in-process emulator down (its state is saved); nothing to do for a tenant.
    pub async fn close(mut self) -> Result<(), ClientError> {
        // The completions not written yet (dropping the ledger would write them too).
        if let Err(e) = self.ledger.flush() {
            tracing::debug!("ledger: completions not written: {e}");
        }
        if let Some(e) = self.emulator.take() {
            e.shutdown()
                .await
                .map_err(|e| setup("stop the in-process emulator", e.to_string()))?;
        }
        Ok(())
    }

    /// The redactor; anything printed about Carbonite calls should pass through it.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    // -----------------------------------------------------------------------------------------
    // The call path: token, ledger, concurrency, send, classify, retry.

    fn route_key(method: &Method, path: &str) -> String {
        format!("{method} {path}")
    }

    fn url_for(&self, path: &str, op: &str) -> Result<Url, ClientError> {
        Url::parse(&format!("{}{path}", self.base_url()))
            .map_err(|e| setup(op, format!("invalid URL for path `{path}`: {e}")))
    }

    /// Whether `url` is on the Carbonite host (same scheme, host and port).
    fn is_carbonite(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
    }

    /// The route key of a URL on the Carbonite host: its path, less the base URL's own path.
    fn route_of_url(&self, method: &Method, url: &Url) -> String {
        let prefix = self.base.path().trim_end_matches('/');
        let path = url.path();
        let path = path.strip_prefix(prefix).unwrap_or(path);
        Self::route_key(method, path)
    }

    async fn bearer(&self) -> Result<Secret, ClientError> {
        match &self.creds {
            Credentials::Bearer(t) => Ok(t.clone()),
            Credentials::ApiKey { email, secret } => {
                let mut cache = self.token.lock().await;
                if let Some(t) = cache.as_ref()
                    && t.fresh_at(SystemTime::now())
                {
                    return Ok(t.value.clone());
                }
                let fresh = Box::pin(self.fetch_token(email, secret)).await?;
                let value = fresh.value.clone();
                *cache = Some(fresh);
                Ok(value)
            }
        }
    }

    async fn invalidate(&self, used: &Secret) {
        let mut cache = self.token.lock().await;
        if cache.as_ref().is_some_and(|t| &t.value == used) {
            *cache = None;
        }
    }

    async fn fetch_token(&self, email: &str, secret: &Secret) -> Result<CachedToken, ClientError> {
        let op = format!("get an access token for {email}");
        let (method, path) = TOKEN_ROUTE;
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::POST);
        let url = self.url_for(path, &op)?;
        let shown = self.redactor.url(&url);
        let call = Call {
            op: &op,
            kind: Kind::Token,
            method: method.clone(),
            url,
            route: Some(Self::route_key(&method, path)),
            bearer: false,
            headers: Vec::new(),
            body: Some(json!({"Email": email, "ApiKeySecret": secret.expose()})),
            raw: None,
            timeout: None,
            items: None,
        };
        let reply = self
            .execute(&call)
            .await
            .map_err(|f| f.into_error(&op, &method, &shown))?;
        if !(200..300).contains(&reply.status) {
            return Err(self.api_error(&op, &method, &shown, &reply));
        }
        let token = reply
            .body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ClientError::Response {
                op: op.clone(),
                url: shown.clone(),
                problem: "no `access_token` string in the answer".into(),
            })?;
        self.redactor.add(token);
        let cached = CachedToken::new(
            Secret::new(token),
            SystemTime::now(),
            self.options.token_lifetime_override,
        );
        tracing::debug!(
            email,
            expires_at = %super::ledger::rfc3339(cached.expires_at),
            "carbonite: new access token"
        );
        Ok(cached)
    }

    /// A concurrency permit and a ledger slot, waiting for budget up to the deadline.
    async fn admit(
        &self,
        call: &Call<'_>,
    ) -> Result<(SemaphorePermit<'_>, Option<Reservation>), ClientError> {
        loop {
            let permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| setup(call.op, "the client is shutting down"))?;
            let Some(route) = &call.route else {
                return Ok((permit, None));
            };
            match self.ledger.try_reserve(route, call.kind == Kind::Create) {
                Ok(r) => return Ok((permit, Some(r))),
                Err(LedgerError::NoBudget(nb)) => {
                    drop(permit);
                    if self.budget_deadline().is_some_and(|d| nb.next_at <= d) {
                        let wait = nb
                            .next_at
                            .duration_since(SystemTime::now())
                            .unwrap_or_default();
                        tracing::debug!(
                            op = call.op,
                            route = %route,
                            wait_ms = wait.as_millis() as u64,
                            "carbonite: waiting for rate budget"
                        );
                        let jitter = Duration::from_millis(rand::random::<u64>() % 25);
                        tokio::time::sleep(wait + jitter).await;
                        continue;
                    }
                    return Err(ClientError::Budget {
                        op: call.op.to_string(),
                        source: nb,
                    });
                }
                Err(source) => {
                    return Err(ClientError::Ledger {
                        op: call.op.to_string(),
                        source,
                    });
                }
            }
        }
    }

    fn retry_delay(&self, attempt: u32, started: Instant) -> Option<Duration> {
        let p = &self.options.retry;
        if attempt >= p.max_attempts {
            return None;
        }
        let delay = p.backoff(attempt);
        (started.elapsed() + delay <= p.max_elapsed).then_some(delay)
    }

    fn log_request(&self, call: &Call<'_>, shown: &str, attempt: u32) {
        tracing::debug!(op = call.op, method = %call.method, url = shown, attempt, "carbonite: request");
        if tracing::enabled!(tracing::Level::TRACE) {
            let headers: Vec<String> = call
                .headers
                .iter()
                .map(|(k, v, secret)| {
                    if *secret || is_sensitive_key(k) {
                        format!("{k}: {REDACTED}")
                    } else {
                        format!("{k}: {}", self.redactor.text(v))
                    }
                })
                .chain(
                    call.bearer
                        .then(|| format!("Authorization: Bearer {REDACTED}")),
                )
                .collect();
            let body = call
                .body
                .as_ref()
                .map(|b| truncate(&self.redactor.json(b), TRACE_BODY_LIMIT))
                .unwrap_or_default();
            tracing::trace!(op = call.op, headers = ?headers, body = %body, "carbonite: request detail");
        }
    }

    async fn send(
        &self,
        call: &Call<'_>,
        token: Option<&Secret>,
    ) -> Result<(u16, HeaderMap, Vec<u8>), reqwest::Error> {
        let mut req = self.http.request(call.method.clone(), call.url.clone());
        for (k, v, secret) in &call.headers {
            if let (Ok(name), Ok(mut value)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                value.set_sensitive(*secret || is_sensitive_key(k));
                req = req.header(name, value);
            }
        }
        if let Some(t) = token {
            req = req.bearer_auth(t.expose());
        }
        if let Some(b) = &call.body {
            req = req.json(b);
        }
        if let Some((content_type, text)) = &call.raw {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(text.clone());
        }
        if let Some(t) = call.timeout {
            req = req.timeout(t);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await?.to_vec();
        Ok((status, headers, bytes))
    }

    fn count_call(&self, route: Option<&String>) {
        self.stats.attempts.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = route {
            *self
                .stats
                .calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(r.clone())
                .or_default() += 1;
        }
    }

    async fn execute(&self, call: &Call<'_>) -> Result<Reply, Failure> {
        let started = Instant::now();
        let shown = self.redactor.url(&call.url);
        let mut attempt = 0u32;
        let mut renewed = false;
        loop {
            attempt += 1;
            let token = if call.bearer {
                Some(self.bearer().await?)
            } else {
                None
            };
            let (permit, reservation) = self.admit(call).await?;
            self.log_request(call, &shown, attempt);
            let t0 = Instant::now();
            let sent = self.send(call, token.as_ref()).await;
            if let Some(r) = &reservation
                && let Err(e) = self.ledger.complete(r)
            {
                tracing::warn!(error = %e, "carbonite: cannot record a call's completion in the ledger (its slot stays held longer)");
            }
            drop(permit);
            self.count_call(call.route.as_ref());
            let ms = t0.elapsed().as_millis() as u64;
            self.count_status(
                call.route.as_ref(),
                &sent
                    .as_ref()
                    .map_or_else(|_| "error".to_string(), |(status, _, _)| status.to_string()),
            );
            match sent {
                Err(e) => {
                    let unsent = e.is_connect();
                    let reason = self.redactor.text(&error_chain(&e));
                    tracing::debug!(op = call.op, method = %call.method, url = %shown, attempt, ms, error = %reason, "carbonite: no answer");
                    if matches!(call.kind, Kind::Create | Kind::Post) && !unsent {
                        return Err(Failure::Unknown(reason));
                    }
                    if let Some(delay) = self.retry_delay(attempt, started) {
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(Failure::Error(ClientError::Transport {
                        op: call.op.to_string(),
                        method: call.method.to_string(),
                        url: shown,
                        attempts: attempt,
                        reason,
                    }));
                }
                Ok((status, headers, bytes)) => {
                    tracing::debug!(op = call.op, method = %call.method, url = %shown, attempt, status, ms, "carbonite: response");
                    let reply = self.reply(status, &headers, &bytes, call.items);
                    if tracing::enabled!(tracing::Level::TRACE) {
                        let body = match &reply.text {
                            Some(t) => t.clone(),
                            // The whole answer, items included.
                            None => truncate(
                                &self
                                    .redactor
                                    .json(&serde_json::from_slice(&bytes).unwrap_or(Value::Null)),
                                TRACE_BODY_LIMIT,
                            ),
                        };
                        tracing::trace!(op = call.op, status, body = %body, "carbonite: response body");
                    }
                    if status == 401
                        && !renewed
                        && let (Some(used), Credentials::ApiKey { .. }) = (&token, &self.creds)
                    {
                        // The server refused the token before doing anything: renew and repeat.
                        renewed = true;
                        attempt -= 1;
                        tracing::debug!(op = call.op, "carbonite: 401, renewing the token");
                        self.invalidate(used).await;
                        continue;
                    }
                    if status == 429 {
                        let wait = reply
                            .retry_after
                            .unwrap_or_else(|| self.options.retry.backoff(attempt));
                        let retry_at = SystemTime::now() + wait;
                        if let Some(route) = &call.route
                            && let Err(e) = self.ledger.block_until(route, retry_at)
                        {
                            tracing::warn!(error = %e, "carbonite: cannot record Retry-After in the ledger");
                        }
                        let within_retry = attempt < self.options.retry.max_attempts
                            && started.elapsed() + wait <= self.options.retry.max_elapsed;
                        let within_deadline = self.budget_deadline().is_some_and(|d| retry_at <= d);
                        if within_retry || within_deadline {
                            tracing::debug!(
                                op = call.op,
                                wait_ms = wait.as_millis() as u64,
                                "carbonite: 429, waiting for Retry-After"
                            );
                            // Past the server's time, and past the block recorded above.
                            let jitter = Duration::from_millis(50 + rand::random::<u64>() % 100);
                            tokio::time::sleep(wait + jitter).await;
                            continue;
                        }
                        return Err(Failure::Error(ClientError::RateLimited {
                            op: call.op.to_string(),
                            route: call.route.clone().unwrap_or_else(|| shown.clone()),
                            retry_at,
                            retry_after: wait,
                        }));
                    }
                    if status >= 500 {
                        if matches!(call.kind, Kind::Create | Kind::Post) {
                            return Err(Failure::Unknown(format!("Carbonite answered {status}")));
                        }
                        if let Some(delay) = self.retry_delay(attempt, started) {
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                    }
                    return Ok(reply);
                }
            }
        }
    }

    fn reply(&self, status: u16, headers: &HeaderMap, bytes: &[u8], items: Option<&str>) -> Reply {
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let parsed = match items {
            // A successful listing page: its items stay text (see `raw`).
            Some(ptr) if (200..300).contains(&status) => super::raw::split_at(bytes, ptr),
            _ => serde_json::from_slice::<Value>(bytes).map(|v| (v, None)),
        };
        let (body, items, text) = if bytes.iter().all(u8::is_ascii_whitespace) {
            (Value::Null, None, None)
        } else {
            match parsed {
                Ok((v, items)) => (v, items, None),
                Err(_) => (
                    Value::Null,
                    None,
                    Some(truncate(
                        &self.redactor.text(&String::from_utf8_lossy(bytes)),
                        500,
                    )),
                ),
            }
        };
        Reply {
            status,
            body,
            items,
            text,
            retry_after,
        }
    }

    fn api_error(&self, op: &str, method: &Method, url: &str, reply: &Reply) -> ClientError {
        let (message, field_errors) = api_message(&reply.body);
        let message = message
            .or_else(|| reply.text.clone())
            .map(|m| self.redactor.text(&m));
        ClientError::Api {
            op: op.to_string(),
            method: method.to_string(),
            url: url.to_string(),
            status: reply.status,
            message,
            field_errors,
        }
    }

    // -----------------------------------------------------------------------------------------
    // Listings.

    fn endpoint(&self, name: &str) -> Result<&CompiledEndpoint, ClientError> {
        self.endpoints.get(name).ok_or_else(|| ClientError::Setup {
            op: format!("list endpoint `{name}`"),
            message: "no Endpoint of that name".into(),
            hint: Some(format!(
                "known endpoints: {}",
                self.endpoints
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        })
    }

    fn render(
        &self,
        op: &str,
        what: &str,
        templates: &[(String, CompiledTemplate, bool)],
        vars: &[(&str, &str)],
    ) -> Result<Vec<(String, String, bool)>, ClientError> {
        let mut ctx = RenderContext::new(Arc::new(LookupIndex::new(&LookupTables::default())))
            .with_secrets(self.secrets.clone());
        for (k, v) in vars {
            ctx = ctx.with_var(*k, *v);
        }
        templates
            .iter()
            .map(|(k, t, secret)| {
                let v = self
                    .engine
                    .render(t, &ctx)
                    .map_err(|e| setup(op, format!("{what} `{k}`: {e}")))?;
                if *secret {
                    self.redactor.add(&v);
                }
                Ok((k.clone(), v, *secret))
            })
            .collect()
    }

    /// Read an Endpoint: every page, or at most `max_pages` (one company of a `forEach`
    /// endpoint then), with `vars` (`email`, `companyId`) for its query and header templates.
    async fn read_endpoint(
        &self,
        ce: &CompiledEndpoint,
        vars: &[(&str, &str)],
        max_pages: Option<u64>,
        key_field: Option<&str>,
    ) -> Result<Page, ClientError> {
        let e = &ce.endpoint;
        let op = format!("list endpoint `{}`", e.name);
        let method = Method::from_bytes(e.method.as_bytes()).unwrap_or(Method::GET);
        let query = self.render(&op, "query parameter", &ce.query, vars)?;
        let headers = self.render(&op, "header", &ce.headers, vars)?;
        let mut url = match &e.target {
            EndpointTarget::Path(p) => self.url_for(p, &op)?,
            EndpointTarget::Url(u) => {
                Url::parse(u).map_err(|err| setup(&op, format!("invalid url `{u}`: {err}")))?
            }
        };
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v, _)| (k, v)));
        }
        let ours = self.is_carbonite(&url);
        let route_of = |u: &Url| match (&e.target, ours) {
            (EndpointTarget::Path(p), true) if u.path() == url.path() => {
                Some(Self::route_key(&method, p))
            }
            (_, true) => Some(self.route_of_url(&method, u)),
            (_, false) => None,
        };
        // The pages the total announces are reserved in the ledger together (one write);
        // what the listing did not use is given back when it ends, however it ends.
        let announced = Announced {
            ledger: &self.ledger,
            route: route_of(&url),
        };
        let mut pager = Pager::new(&e.pagination);
        let mut request = pager.first();
        let mut current = url.clone();
        let mut page = Page {
            items: Vec::new(),
            total: None,
            more: false,
            calls: 0,
        };
        // Pages fetched ahead (see `ahead_requests`), in order, each with its request.
        let mut ahead = Ahead::default();
        let fetch = |page_url: Url| {
            let (op, method, headers) = (&op, &method, &headers);
            let route = route_of(&page_url);
            async move {
                let shown = self.redactor.url(&page_url);
                let call = Call {
                    op,
                    kind: Kind::Read,
                    method: method.clone(),
                    url: page_url,
                    route,
                    bearer: ours,
                    headers: headers.clone(),
                    body: None,
                    raw: None,
                    timeout: None,
                    items: Some(e.items.as_str()),
                };
                self.execute(&call)
                    .await
                    .map_err(|f| f.into_error(op, method, &shown))
            }
        };
        loop {
            let page_url = match &request {
                PageRequest::Params(params) => with_params(&url, params),
                PageRequest::Link(link) => {
                    let u = current.join(link).map_err(|err| ClientError::Response {
                        op: op.clone(),
                        url: self.redactor.url(&current),
                        problem: format!("the next-page link is not a URL: {err}"),
                    })?;
                    if u.origin() != url.origin() {
                        return Err(ClientError::Response {
                            op: op.clone(),
                            url: self.redactor.url(&current),
                            problem: format!(
                                "the next-page link points to another host ({}); not following it with our credentials",
                                self.redactor.url(&u)
                            ),
                        });
                    }
                    u
                }
            };
            let shown = self.redactor.url(&page_url);
            let mut reply = if ahead.front() == Some(&request) {
                ahead.next().await?
            } else {
                // Off the predicted path (never in a listing that stays the same while it is
                // read): what is still in flight is dropped.
                ahead.clear();
                fetch(page_url.clone()).await?
            };
            page.calls += 1;
            if !(200..300).contains(&reply.status) {
                return Err(self.api_error(&op, &method, &shown, &reply));
            }
            let response_error = |problem: String| ClientError::Response {
                op: op.clone(),
                url: shown.clone(),
                problem,
            };
            let not_array = |other: &Value| {
                response_error(format!(
                    "`items` {} is {}, not an array",
                    e.items,
                    json_type(other)
                ))
            };
            let items: Vec<Box<RawValue>> = match reply.items.take() {
                Some(Items::Array(items)) => items,
                Some(Items::Other(v)) => return Err(not_array(&v)),
                None if reply.text.is_some() => {
                    return Err(response_error("the answer is not JSON".into()));
                }
                None => {
                    return Err(response_error(format!(
                        "no array at `items` {}",
                        pointer_shown(&e.items)
                    )));
                }
            };
            let mut hasher = foldhash::quality::FixedState::default().build_hasher();
            let mut ids = Vec::with_capacity(items.len());
            // A top-level `id` pointer (`/UserId`) is read without parsing the whole item.
            let top_id = e.id.as_deref().and_then(|p| {
                let t = p.strip_prefix('/')?;
                (!t.contains(['/', '~'])).then_some(t)
            });
            let mut keys = Vec::with_capacity(items.len());
            // The top-level id and key, read in one pass over each item's text.
            let names: Vec<&str> = top_id.into_iter().chain(key_field).collect();
            for (n, v) in items.iter().enumerate() {
                let mut found = if names.is_empty() {
                    Vec::new()
                } else {
                    top_level(v.get(), &names)
                };
                let key = key_field.map(|_| found.pop().flatten().as_ref().and_then(id_string));
                keys.push(key);
                let id = match &e.id {
                    Some(ptr) => match match top_id {
                        Some(_) => found.pop().flatten(),
                        None => serde_json::from_str::<Value>(v.get())
                            .ok()
                            .and_then(|v| v.pointer(ptr).cloned()),
                    }
                    .as_ref()
                    .and_then(id_string)
                    {
                        Some(id) => Some(id),
                        None => {
                            return Err(response_error(format!(
                                "item {} has no id at `id` {ptr}",
                                page.items.len() + n + 1
                            )));
                        }
                    },
                    None => None,
                };
                match &id {
                    Some(id) => id.hash(&mut hasher),
                    None => v.get().hash(&mut hasher),
                }
                ids.push(id);
            }
            let count = items.len();
            let full = e.pagination.size.is_some_and(|n| count == n as usize);
            let next = pager
                .next(&reply.body, count, hasher.finish())
                .map_err(|err| response_error(err.to_string()))?;
            page.total = pager.total();
            page.items.extend(
                ids.into_iter()
                    .zip(items)
                    .zip(keys)
                    .map(|((id, raw), key)| Item { id, raw, key }),
            );
            // Fetch ahead the pages that the total says are still needed, up to the client's
            // concurrency, when this page was full (the server honours our page size).
            if let Some(next) = &next
                && full
                && max_pages.is_none()
            {
                let queued = ahead.requests().cloned().collect::<Vec<_>>();
                let wanted = ahead_requests(&e.pagination, next, pager.seen(), pager.total());
                if let Some(route) = &announced.route {
                    self.ledger.expect(route, wanted.len(), LEDGER_HOLD_MARGIN);
                }
                if !wanted.starts_with(&queued) {
                    ahead.clear();
                }
                for r in wanted
                    .into_iter()
                    .skip(ahead.len())
                    .take(self.concurrency.saturating_sub(ahead.len()))
                {
                    let PageRequest::Params(params) = &r else {
                        break;
                    };
                    let fut = fetch(with_params(&url, params));
                    ahead.push(r, Box::pin(fut));
                }
            }
            match next {
                None => break,
                Some(_) if max_pages.is_some_and(|m| page.calls >= m) => {
                    page.more = true;
                    break;
                }
                Some(r) => {
                    request = r;
                    current = page_url;
                }
            }
        }
        tracing::debug!(
            endpoint = %e.name,
            items = page.items.len(),
            calls = page.calls,
            "carbonite: listing read"
        );
        Ok(page)
    }

    async fn company_ids(&self) -> Result<Vec<String>, ClientError> {
        Ok(self.companies().await?.into_iter().map(|c| c.id).collect())
    }

    /// Every item of Endpoint `name` (all pages; for a `forEach: companies` endpoint, every
    /// company's), with `vars` for its templates.
    pub async fn list_endpoint(
        &self,
        name: &str,
        vars: &[(&str, &str)],
    ) -> Result<Vec<Item>, ClientError> {
        self.list_keyed(name, vars, None).await
    }

    /// [`list_endpoint`](Self::list_endpoint), each item's `key_field` read with its id.
    async fn list_keyed(
        &self,
        name: &str,
        vars: &[(&str, &str)],
        key_field: Option<&str>,
    ) -> Result<Vec<Item>, ClientError> {
        let ce = self.endpoint(name)?;
        if !ce.endpoint.for_each_company {
            return Ok(self.read_endpoint(ce, vars, None, key_field).await?.items);
        }
        let mut items = Vec::new();
        for company in self.company_ids().await? {
            let mut v = vars.to_vec();
            v.push(("companyId", company.as_str()));
            items.extend(self.read_endpoint(ce, &v, None, key_field).await?.items);
        }
        Ok(items)
    }

    /// One call's worth of Endpoint `name`: its first page (for a `forEach: companies` endpoint,
    /// the first company's, after listing the companies). Used by `test-endpoint` and
    /// `validate --online`.
    pub async fn first_page(&self, name: &str, vars: &[(&str, &str)]) -> Result<Page, ClientError> {
        self.pages(name, vars, Some(1)).await
    }

    /// Endpoint `name` read up to `max_pages` pages (`None`: all).
    pub async fn pages(
        &self,
        name: &str,
        vars: &[(&str, &str)],
        max_pages: Option<u64>,
    ) -> Result<Page, ClientError> {
        let ce = self.endpoint(name)?;
        if !ce.endpoint.for_each_company {
            return self.read_endpoint(ce, vars, max_pages, None).await;
        }
        let companies = self.company_ids().await?;
        let Some(first) = companies.first() else {
            return Ok(Page {
                items: Vec::new(),
                total: None,
                more: false,
                calls: 0,
            });
        };
        let mut v = vars.to_vec();
        v.push(("companyId", first.as_str()));
        let mut page = self.read_endpoint(ce, &v, max_pages, None).await?;
        page.more |= companies.len() > 1;
        Ok(page)
    }

    /// The accounts of a mapping: every item of `endpoints`, merged by the primary key field
    /// `key_field` (SPEC §2). The first endpoint's items are the base, each its own account
    /// (duplicate keys are kept: they are conflicts for the reconciler); an item of a later
    /// endpoint is merged into the one account with its key (or, without a key, its id), else
    /// added. Unknown fields are kept as listed.
    pub async fn list_accounts(
        &self,
        endpoints: &[String],
        key_field: &str,
    ) -> Result<Vec<ObservedAccount>, ClientError> {
        let mut lists = Vec::with_capacity(endpoints.len());
        for name in endpoints {
            lists.push((
                name.clone(),
                self.list_keyed(name, &[], Some(key_field)).await?,
            ));
        }
        Ok(merge_accounts(lists, key_field))
    }

    /// Accounts whose Email is `email` (exact, case-insensitive), via `carbonite-user-by-email`.
    pub async fn find_by_email(&self, email: &str) -> Result<Vec<Item>, ClientError> {
        self.list_endpoint(USER_BY_EMAIL, &[("email", email)]).await
    }

    /// Every account via `carbonite-users`.
    pub async fn users(&self) -> Result<Vec<Item>, ClientError> {
        self.list_endpoint(USERS, &[]).await
    }

    /// The companies (`carbonite-companies`): id from the Endpoint's `id` pointer (else
    /// `CompanyId`), name from `CompanyName`.
    pub async fn companies(&self) -> Result<Vec<Company>, ClientError> {
        let ce = self.endpoint(COMPANIES)?;
        let page = self.read_endpoint(ce, &[], None, None).await?;
        Ok(page
            .items
            .into_iter()
            .filter_map(|i| {
                let value = i.value();
                let id =
                    i.id.or_else(|| value.get("CompanyId").and_then(id_string))?;
                let name = value.get("CompanyName").and_then(id_string)?;
                Some(Company { id, name })
            })
            .collect())
    }

    /// The user groups (`carbonite-usergroups`, per company when it says `forEach`): id from
    /// the `id` pointer (else `UserGroupId`), name from `Name`, company from `CompanyId` (else
    /// the company it was listed for).
    pub async fn user_groups(&self, companies: &[Company]) -> Result<Vec<UserGroup>, ClientError> {
        let ce = self.endpoint(USER_GROUPS)?;
        let convert = |items: Vec<Item>, company: Option<&str>| -> Vec<UserGroup> {
            items
                .into_iter()
                .filter_map(|i| {
                    let value = i.value();
                    let id =
                        i.id.or_else(|| value.get("UserGroupId").and_then(id_string))?;
                    let name = value.get("Name").and_then(id_string)?;
                    let company_id = value
                        .get("CompanyId")
                        .and_then(id_string)
                        .or_else(|| company.map(str::to_string))?;
                    Some(UserGroup {
                        id,
                        name,
                        company_id,
                    })
                })
                .collect()
        };
        if !ce.endpoint.for_each_company {
            let page = self.read_endpoint(ce, &[], None, None).await?;
            return Ok(convert(page.items, None));
        }
        let mut groups = Vec::new();
        for c in companies {
            let page = self
                .read_endpoint(ce, &[("companyId", c.id.as_str())], None, None)
                .await?;
            groups.extend(convert(page.items, Some(&c.id)));
        }
        Ok(groups)
    }

    /// The `lookup()` tables: companies, then each company's user groups.
    pub async fn lookup_tables(&self) -> Result<LookupTables, ClientError> {
        let companies = self.companies().await?;
        let user_groups = self.user_groups(&companies).await?;
        Ok(LookupTables {
            companies,
            user_groups,
        })
    }

    /// Make sure a token can be had (API key), returning its expiry; `None` for a static
    /// bearer token (only a call can test it).
    pub async fn check_token(&self) -> Result<Option<SystemTime>, ClientError> {
        match &self.creds {
            Credentials::Bearer(_) => Ok(None),
            Credentials::ApiKey { .. } => {
                self.bearer().await?;
                Ok(self.token.lock().await.as_ref().map(|t| t.expires_at))
            }
        }
    }

    /// Whether the client uses a static bearer token.
    pub fn uses_bearer_token(&self) -> bool {
        matches!(self.creds, Credentials::Bearer(_))
    }

    // -----------------------------------------------------------------------------------------
    // Write routes.

    fn route_call_parts(
        &self,
        route: &Route,
        id: Option<&str>,
        op: &str,
    ) -> Result<(Method, Url, String), ClientError> {
        let method = Method::from_bytes(route.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| setup(op, format!("invalid method in route `{route}`")))?;
        let path = match id {
            Some(id) => route.path.replace("{UserId}", &encode_path_segment(id)),
            None => route.path.clone(),
        };
        let url = self.url_for(&path, op)?;
        Ok((method.clone(), url, Self::route_key(&method, &route.path)))
    }

    /// One call to a configured route (`getUser`, `createUser`, ...) with the bearer token:
    /// the method, the URL as shown in messages (redacted), and the answer or the failure.
    async fn call_route(
        &self,
        op: &str,
        route: &crate::config::model::Route,
        id: Option<&str>,
        kind: Kind,
        body: Option<Value>,
    ) -> Result<(Method, String, Result<Reply, Failure>), ClientError> {
        let (method, url, key) = self.route_call_parts(route, id, op)?;
        let shown = self.redactor.url(&url);
        let call = Call {
            op,
            kind,
            method: method.clone(),
            url,
            route: Some(key),
            bearer: true,
            headers: Vec::new(),
            body,
            raw: None,
            timeout: None,
            items: None,
        };
        let result = self.execute(&call).await;
        Ok((method, shown, result))
    }

    /// `getUser`: the account, or `None` on 404.
    pub async fn get_user(&self, id: &str) -> Result<Option<Account>, ClientError> {
        let op = format!("get user {id}");
        let (method, shown, result) = self
            .call_route(&op, &self.routes.get_user, Some(id), Kind::Read, None)
            .await?;
        let reply = result.map_err(|f| f.into_error(&op, &method, &shown))?;
        match reply.status {
            404 => Ok(None),
            200..=299 => account_of(&reply.body)
                .map(Some)
                .ok_or_else(|| ClientError::Response {
                    op,
                    url: shown,
                    problem: "no `User` object with a `UserId` in the answer".into(),
                }),
            _ => Err(self.api_error(&op, &method, &shown, &reply)),
        }
    }

    /// `createUser` with `{"User": fields, "AuditMessage": audit}`. Never retried once it may
    /// have reached Carbonite: see [`CreateError::UnknownOutcome`].
    pub async fn create_user(
        &self,
        fields: &Map<String, Value>,
        audit: &str,
    ) -> Result<Account, CreateError> {
        let email = fields
            .get("Email")
            .and_then(Value::as_str)
            .unwrap_or("(no Email)")
            .to_string();
        let op = format!("create user {email}");
        let (_, shown, result) = self
            .call_route(
                &op,
                &self.routes.create_user,
                None,
                Kind::Create,
                Some(write_body(fields, audit)),
            )
            .await?;
        match result {
            Err(Failure::Unknown(reason)) => Err(CreateError::UnknownOutcome { email, reason }),
            Err(Failure::Error(e)) => Err(CreateError::NotSent(e)),
            Ok(reply) if (200..300).contains(&reply.status) => {
                account_of(&reply.body).ok_or_else(|| CreateError::UnknownOutcome {
                    email,
                    reason: format!(
                        "Carbonite answered {} without a `User` object carrying a `UserId`",
                        reply.status
                    ),
                })
            }
            Ok(reply) => {
                let (message, field_errors) = api_message(&reply.body);
                let message = message.or(reply.text).map(|m| self.redactor.text(&m));
                tracing::debug!(op = %op, url = %shown, status = reply.status, "carbonite: create refused");
                Err(CreateError::Rejected {
                    email,
                    status: reply.status,
                    message,
                    field_errors,
                })
            }
        }
    }

    /// `updateUser` with only the `changed` fields (never the unknown ones an account was
    /// listed with) and an audit message. Returns the account as answered (or, when the answer
    /// has no `User`, the id with the fields sent).
    pub async fn update_user(
        &self,
        id: &str,
        changed: &Map<String, Value>,
        audit: &str,
    ) -> Result<Account, ClientError> {
        let op = format!("update user {id}");
        let (method, shown, result) = self
            .call_route(
                &op,
                &self.routes.update_user,
                Some(id),
                Kind::Write,
                Some(write_body(changed, audit)),
            )
            .await?;
        let reply = result.map_err(|f| f.into_error(&op, &method, &shown))?;
        if !(200..300).contains(&reply.status) {
            return Err(self.api_error(&op, &method, &shown, &reply));
        }
        Ok(account_of(&reply.body).unwrap_or_else(|| Account {
            id: id.to_string(),
            fields: changed.clone(),
        }))
    }

    /// `deleteUser`. A 404 is [`DeleteOutcome::AlreadyGone`].
    pub async fn delete_user(&self, id: &str) -> Result<DeleteOutcome, ClientError> {
        let op = format!("delete user {id}");
        let (method, shown, result) = self
            .call_route(&op, &self.routes.delete_user, Some(id), Kind::Write, None)
            .await?;
        let reply = result.map_err(|f| f.into_error(&op, &method, &shown))?;
        match reply.status {
            200..=299 => Ok(DeleteOutcome::Deleted),
            404 => Ok(DeleteOutcome::AlreadyGone),
            _ => Err(self.api_error(&op, &method, &shown, &reply)),
        }
    }
}

impl CarboniteClient {
    /// A webhook's call on the Carbonite host (`target: carbonite`): `path` (with its query)
    /// relative to the base URL, with the bearer token, through the ledger under `route`.
    /// Idempotent methods are retried like reads; others never once they may have been
    /// processed. Returns status, headers and the body as text (secrets redacted).
    #[allow(clippy::too_many_arguments)]
    pub async fn raw_call(
        &self,
        op: &str,
        method: &str,
        path: &str,
        route: &str,
        headers: &[(String, String)],
        body: Option<(&str, &str)>,
        timeout: Duration,
    ) -> Result<(u16, Vec<(String, String)>, String), ClientError> {
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|e| setup(op, format!("method `{method}`: {e}")))?;
        let url = self.url_for(path, op)?;
        let shown = self.redactor.url(&url);
        let kind = match method {
            Method::GET | Method::HEAD | Method::OPTIONS => Kind::Read,
            Method::PUT | Method::DELETE => Kind::Write,
            _ => Kind::Post,
        };
        let call = Call {
            op,
            kind,
            method: method.clone(),
            url,
            route: Some(route.to_string()),
            bearer: true,
            headers: headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone(), self.redactor.is_secret(v)))
                .collect(),
            body: None,
            raw: body.map(|(ct, text)| (ct.to_string(), text.to_string())),
            timeout: Some(timeout),
            items: None,
        };
        let reply = self
            .execute(&call)
            .await
            .map_err(|f| f.into_error(op, &method, &shown))?;
        let text = match (&reply.text, &reply.body) {
            (Some(t), _) => t.clone(),
            (None, Value::Null) => String::new(),
            (None, v) => self.redactor.json(v),
        };
        Ok((reply.status, Vec::new(), text))
    }
}

/// Everything [`CarboniteClient::from_settings`] needs.
#[derive(Debug)]
pub struct ClientSettings {
    /// Where to send calls (no trailing slash).
    pub base_url: String,
    /// The base-URL part of the ledger key (`emulator:<state file>` for the in-process emulator).
    pub ledger_base: String,
    /// Resolved credentials.
    pub credentials: Credentials,
    /// Limits, concurrency, timeout, routes.
    pub carbonite: Carbonite,
    /// Endpoints by name.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// For the Endpoint query/header templates.
    pub templates: EngineSettings,
    /// For `secret('file:...')` paths.
    pub config_dir: PathBuf,
    /// Where the ledger lives.
    pub state_dir: PathBuf,
}

fn resolve_secret(op: &str, r: &SecretRef, what: &str) -> Result<Secret, ClientError> {
    r.resolve().map_err(|e| ClientError::Setup {
        op: op.to_string(),
        message: format!("cannot read {what} ({}): {e}", r.describe()),
        hint: Some(match r {
            SecretRef::Env(n) => format!("export {n} before running this command"),
            SecretRef::File(p) => {
                format!("create {} (one trailing newline is stripped)", p.display())
            }
        }),
    })
}

/// `{"User": fields, "AuditMessage": audit}` (no AuditMessage when empty).
fn write_body(fields: &Map<String, Value>, audit: &str) -> Value {
    let mut body = Map::new();
    body.insert("User".into(), Value::Object(fields.clone()));
    if !audit.is_empty() {
        body.insert("AuditMessage".into(), Value::String(audit.into()));
    }
    Value::Object(body)
}

fn account_of(body: &Value) -> Option<Account> {
    let user = body.get("User")?.as_object()?;
    let id = user.get("UserId").and_then(id_string)?;
    Some(Account {
        id,
        fields: user.clone(),
    })
}

/// A string or number as an id string; anything else (null, "", objects) is no id.
fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn pointer_shown(p: &str) -> &str {
    if p.is_empty() {
        "\"\" (the whole answer)"
    } else {
        p
    }
}

/// Carbonite's `{"Message": ..., "Errors": {"Field": [...]}}`.
fn api_message(body: &Value) -> (Option<String>, FieldErrors) {
    let message = body
        .get("Message")
        .or_else(|| body.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut errors = FieldErrors::new();
    if let Some(Value::Object(map)) = body.get("Errors") {
        for (field, problems) in map {
            let list = match problems {
                Value::Array(a) => a
                    .iter()
                    .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
                    .collect(),
                Value::String(s) => vec![s.clone()],
                other => vec![other.to_string()],
            };
            errors.insert(field.clone(), list);
        }
    }
    (message, errors)
}

/// `Retry-After`: delay-seconds or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let at = SystemTime::from(at);
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// An error's message and its causes, without the URL (reqwest puts it in; ours is redacted
/// separately).
pub(crate) fn error_chain(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the answer was cut off"
    } else {
        "the connection failed"
    };
    parts.push(kind.to_string());
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let text = s.to_string();
        if !parts.iter().any(|p| p == &text) {
            parts.push(text);
        }
        src = s.source();
    }
    parts.join(": ")
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len())
}

/// Percent-encode an id for a path segment (unreserved characters stay).
fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Merge listings by primary key (see [`CarboniteClient::list_accounts`]).
pub fn merge_accounts(lists: Vec<(String, Vec<Item>)>, key_field: &str) -> Vec<ObservedAccount> {
    let key_of = |raw: &RawValue| {
        top_level(raw.get(), &[key_field])
            .pop()
            .flatten()
            .as_ref()
            .and_then(id_string)
    };
    let mut accounts: Vec<ObservedAccount> = Vec::new();
    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    let mut by_id: HashMap<String, Vec<usize>> = HashMap::new();
    let lists_len = lists.len();
    for (n, (endpoint, items)) in lists.into_iter().enumerate() {
        for item in items {
            let key = match item.key {
                Some(key) => key,
                None => key_of(&item.raw),
            };
            let fields = RawFields::from_raw(item.raw);
            let target = if n == 0 {
                None
            } else {
                let candidates = match (&key, &item.id) {
                    (Some(k), _) => by_key.get(k),
                    (None, Some(id)) => by_id.get(id),
                    (None, None) => None,
                };
                match candidates.map(Vec::as_slice) {
                    Some([one]) => Some(*one),
                    _ => None,
                }
            };
            match target {
                Some(i) => {
                    // Merged accounts are the rare case that re-encodes its fields.
                    let acc = &mut accounts[i];
                    let mut merged = acc.fields.to_map();
                    for (k, v) in fields.to_map() {
                        match merged.get(&k) {
                            None | Some(Value::Null) => {
                                merged.insert(k, v);
                            }
                            Some(existing) if *existing != v => {
                                tracing::debug!(field = %k, endpoint = %endpoint, "carbonite: endpoints disagree on a field; the first endpoint's value is kept");
                            }
                            Some(_) => {}
                        }
                    }
                    acc.fields = RawFields::from_map(&merged);
                    if acc.id.is_none() {
                        acc.id = item.id;
                    }
                    if !acc.endpoints.contains(&endpoint) {
                        acc.endpoints.push(endpoint.clone());
                    }
                }
                None => {
                    let i = accounts.len();
                    // Indexed only for the endpoints still to merge.
                    if n + 1 < lists_len {
                        if let Some(k) = &key {
                            by_key.entry(k.clone()).or_default().push(i);
                        }
                        if let Some(id) = &item.id {
                            by_id.entry(id.clone()).or_default().push(i);
                        }
                    }
                    accounts.push(ObservedAccount {
                        id: item.id,
                        key,
                        fields,
                        endpoints: vec![endpoint.clone()],
                    });
                }
            }
        }
    }
    accounts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, v: Value) -> Item {
        Item {
            id: Some(id.into()),
            raw: serde_json::value::to_raw_value(&v).unwrap(),
            key: None,
        }
    }

    #[test]
    fn merges_by_key_and_keeps_duplicates_of_the_first_endpoint() {
        let a = vec![
            item(
                "1",
                json!({"UserId": "1", "UserCustom1": "E1", "Email": "a@x"}),
            ),
            item(
                "2",
                json!({"UserId": "2", "UserCustom1": "E2", "Email": "b@x"}),
            ),
            item(
                "3",
                json!({"UserId": "3", "UserCustom1": "E2", "Email": "c@x"}),
            ),
            item(
                "4",
                json!({"UserId": "4", "UserCustom1": "", "Email": "d@x"}),
            ),
        ];
        let b = vec![
            item(
                "1",
                json!({"UserId": "1", "UserCustom1": "E1", "Extra": 1, "Email": "other"}),
            ),
            item("2", json!({"UserCustom1": "E2", "Extra": 2})),
            item("9", json!({"UserId": "9", "UserCustom1": "E9"})),
            item("4", json!({"UserId": "4", "Extra": 4})),
        ];
        let m = merge_accounts(vec![("a".into(), a), ("b".into(), b)], "UserCustom1");
        assert_eq!(m.len(), 6);
        assert_eq!(m[0].fields.get("Extra"), Some(1.into()));
        assert_eq!(
            m[0].fields.get("Email"),
            Some("a@x".into()),
            "the first endpoint wins"
        );
        assert_eq!(m[0].endpoints, ["a", "b"]);
        // E2 is duplicated in `a`: the `b` item cannot pick one and stands alone.
        assert!(m[1].fields.get("Extra").is_none());
        assert_eq!(m[4].key.as_deref(), Some("E2"));
        assert_eq!(m[5].key.as_deref(), Some("E9"));
        // No key: merged by id.
        assert_eq!(m[3].key, None);
        assert_eq!(m[3].fields.get("Extra"), Some(4.into()));
    }

    #[test]
    fn helpers() {
        assert_eq!(encode_path_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("x"), None);
        let (m, e) =
            api_message(&json!({"Message": "bad", "Errors": {"Email": ["missing"], "X": "y"}}));
        assert_eq!(m.as_deref(), Some("bad"));
        assert_eq!(e["Email"], ["missing"]);
        assert_eq!(e["X"], ["y"]);
        assert_eq!(truncate("héllo", 2), "h... (6 bytes)");
        let body = write_body(&Map::new(), "");
        assert_eq!(body, json!({"User": {}}));
        let p = RetryPolicy::default();
        for attempt in 1..6 {
            let d = p.backoff(attempt);
            assert!(d <= p.max_delay, "{d:?}");
        }
        assert!(p.backoff(1) >= Duration::from_millis(250));
    }
}
