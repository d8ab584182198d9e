//! The Carbonite emulator (SPEC §9): the whole §5 API, documented and assumed parts, served
//! over real HTTP on loopback, with the vendor's request shapes, strict validation, token
//! expiry, sliding-window rate limits, seedable faults and a state file.
//!
//! Used two ways: `carbonite-sync emulator` (src/cli/emulator.rs) and in-process, when the
//! Integration says `carbonite: { emulator: { seed } }`:
//!
//! ```no_run
//! # async fn demo() -> Result<(), carbonite_sync::emulator::EmulatorError> {
//! use carbonite_sync::emulator::{EmulatorOptions, start};
//! let opts = EmulatorOptions::in_process(std::path::Path::new(".carbonite-sync"), None);
//! let emulator = start(opts).await?;
//! let base_url = emulator.base_url(); // http://127.0.0.1:<port>
//! // ... talk to it with the real client ...
//! emulator.shutdown().await?; // state saved
//! # Ok(()) }
//! ```
//!
//! Module map: `model` (tenant, indexes, file format), `validate` (bodies and queries),
//! `auth` (tokens, API key hashes), `limits` (sliding windows), `faults` (seeded injection),
//! `conn` (connections a fault can cut), `api` and `admin` (handlers), `server` (router and the
//! gate), `persist` (state file).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

mod admin;
mod api;
mod auth;
mod conn;
pub mod faults;
pub mod limits;
mod model;
mod persist;
mod reply;
mod server;
mod validate;

pub use faults::{DEFAULT_FAULT_TIMEOUT, FaultConfig, FaultParseError};
pub use limits::{Limits, LimitsParseError, RateLimitsArg};

/// The state file's name inside the state dir in in-process mode.
pub const STATE_FILE_NAME: &str = "emulator.json";

/// How long shutdown waits for in-flight requests before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How to run an emulator.
#[derive(Clone, Debug)]
pub struct EmulatorOptions {
    /// Where to listen; must be a loopback address (port 0: any free port).
    pub listen: SocketAddr,
    /// Loaded on start when it exists, written after every change and on shutdown.
    pub state_file: Option<PathBuf>,
    /// Loaded when there is no state file (or it does not exist yet).
    pub seed_file: Option<PathBuf>,
    /// Lifetime of access tokens (vendor: one hour).
    pub token_ttl: Duration,
    /// Rate limits; `None` switches them off.
    pub limits: Option<Limits>,
    /// Fault injection (none by default).
    pub faults: FaultConfig,
}

impl Default for EmulatorOptions {
    /// `127.0.0.1:0`, no files, one-hour tokens, the vendor's limits, no faults.
    fn default() -> Self {
        EmulatorOptions {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            state_file: None,
            seed_file: None,
            token_ttl: Duration::from_secs(3600),
            limits: Some(Limits::VENDOR),
            faults: FaultConfig::default(),
        }
    }
}

impl EmulatorOptions {
    /// The Integration's in-process mode (SPEC §9): `127.0.0.1:0`, state in
    /// `<state_dir>/emulator.json`, the seed used only while that file is absent, vendor limits.
    pub fn in_process(state_dir: &Path, seed_file: Option<PathBuf>) -> Self {
        EmulatorOptions {
            state_file: Some(state_dir.join(STATE_FILE_NAME)),
            seed_file,
            ..EmulatorOptions::default()
        }
    }
}

/// Why the emulator could not start or save.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The listen address is not loopback.
    #[error("the emulator listens on loopback only, not on {0}")]
    NotLoopback(SocketAddr),
    /// Binding failed.
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A seed or state file cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A seed or state file is not the expected JSON.
    #[error("{} is not a valid emulator seed/state file", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A seed or state file is inconsistent (bad GUIDs, duplicates, dangling references).
    #[error("{} is not a valid emulator seed/state file:\n  {}", path.display(), problems.join("\n  "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// The state file cannot be written.
    #[error("cannot save the emulator state to {}", path.display())]
    Save {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The server task ended abnormally.
    #[error("the emulator's server task failed: {0}")]
    Task(String),
}

/// A running emulator. Dropping it stops the server (state is already saved after each
/// change); [`RunningEmulator::shutdown`] also waits for in-flight requests and saves once more.
pub struct RunningEmulator {
    addr: SocketAddr,
    app: Arc<server::App>,
    shutdown_tx: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningEmulator {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the Carbonite base URL to use.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The state file, if any.
    pub fn state_file(&self) -> Option<&Path> {
        self.app.persister.as_ref().map(|p| p.path())
    }

    /// The fault seed in use (given or chosen at random).
    pub fn fault_seed(&self) -> u64 {
        self.app.faults.seed()
    }

    /// Stop accepting, let in-flight requests finish (at most a few seconds), save the state.
    pub async fn shutdown(mut self) -> Result<(), EmulatorError> {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            match tokio::time::timeout(SHUTDOWN_GRACE, task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.is_cancelled() => {}
                Ok(Err(e)) => return Err(EmulatorError::Task(e.to_string())),
                Err(_) => {
                    tracing::warn!("emulator: in-flight requests did not finish; cutting them off");
                    abort.abort();
                }
            }
        }
        if let Some(p) = &self.app.persister {
            let generation = self.app.read().generation;
            p.save_through(&self.app.store, generation, true).await?;
        }
        Ok(())
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
    }
}

/// Load the tenant: the state file when it exists, else the seed, else empty. Returns the
/// store and whether the state file must be written now (it did not exist).
fn load_initial(opts: &EmulatorOptions) -> Result<(model::Store, bool), EmulatorError> {
    if let Some(state) = &opts.state_file
        && state.exists()
    {
        if opts.seed_file.is_some() {
            tracing::info!(state = %state.display(), "emulator: state file exists; seed not loaded");
        }
        return Ok((persist::load_file(state)?, false));
    }
    let store = match &opts.seed_file {
        Some(seed) => persist::load_file(seed)?,
        None => model::Store::default(),
    };
    Ok((store, opts.state_file.is_some()))
}

/// Start an emulator on the current tokio runtime.
pub async fn start(opts: EmulatorOptions) -> Result<RunningEmulator, EmulatorError> {
    if !opts.listen.ip().is_loopback() {
        return Err(EmulatorError::NotLoopback(opts.listen));
    }
    let (store, save_now) = load_initial(&opts)?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| EmulatorError::Bind {
            addr: opts.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| EmulatorError::Bind {
            addr: opts.listen,
            source,
        })?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let app = Arc::new(server::App {
        store: RwLock::new(store),
        seed_file: opts.seed_file.clone(),
        tokens: auth::TokenIssuer::new(opts.token_ttl),
        limiter: opts.limits.map(limits::Limiter::new),
        faults: faults::FaultInjector::new(opts.faults.clone()),
        stats: Mutex::new(server::Stats::default()),
        persister: opts
            .state_file
            .clone()
            .map(|path| persist::Persister::new(path, 0)),
        shutdown: shutdown_rx.clone(),
    });
    if save_now && let Some(p) = &app.persister {
        p.save_through(&app.store, 0, true).await?;
    }

    let router = server::router(app.clone());
    let mut signal = shutdown_rx;
    let serve = axum::serve(
        conn::ControlledListener::new(listener),
        router.into_make_service_with_connect_info::<conn::ConnHandle>(),
    )
    .with_graceful_shutdown(async move {
        let _ = signal.wait_for(|down| *down).await;
    });
    let task = tokio::spawn(async move {
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "emulator: server stopped");
        }
    });
    tracing::info!(%addr, "emulator: listening");
    Ok(RunningEmulator {
        addr,
        app,
        shutdown_tx,
        task: Some(task),
    })
}
