//! `emulator`: serve the Carbonite API on loopback (SPEC §9).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::emulator::{self, EmulatorOptions, FaultConfig, RateLimitsArg};
use crate::error::{CommandError, CommandResult, Outcome};
use crate::output::Output;

/// Serve the whole Carbonite API (documented and assumed routes) on loopback, with strict
/// validation, token expiry, rate limits and seedable faults. Admin routes under /_emulator/.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on; loopback only (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// State file: loaded on start when it exists, written after every change and on exit.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Seed file ({"ApiKeys", "Companies", "UserGroups", "Users"}), used when no state exists.
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// Lifetime of access tokens.
    #[arg(long, value_name = "DUR", default_value = "1h", value_parser = parse_duration)]
    pub token_ttl: Duration,
    /// `none`, or route=N/DUR,create=N/DUR (an omitted key keeps the vendor's value).
    #[arg(
        long,
        value_name = "LIMITS",
        default_value = "route=50/1h,create=100/1h"
    )]
    pub rate_limits: RateLimitsArg,
    /// Faults: error=P,timeout=P,reset=P,drop=P,latency=DUR,seed=N (probabilities per request).
    #[arg(long, value_name = "SPEC", value_parser = parse_faults)]
    pub faults: Option<Box<FaultConfig>>,
    /// How long a `timeout` fault holds a request before closing the connection.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration)]
    pub fault_timeout: Duration,
}

// Boxed: the fault settings would make this the one large variant of `Command`.
fn parse_faults(s: &str) -> Result<Box<FaultConfig>, String> {
    s.parse()
        .map(Box::new)
        .map_err(|e: emulator::FaultParseError| e.to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("the duration must not be zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// Run until SIGINT/SIGTERM, then save the state.
pub fn run(_global: &super::GlobalArgs, args: Args, out: &Output) -> CommandResult {
    if !args.listen.ip().is_loopback() {
        return Err(CommandError::new(format!(
            "the emulator listens on loopback only, not on {}",
            args.listen
        ))
        .with_hint("use --listen 127.0.0.1:PORT or [::1]:PORT"));
    }
    let mut faults = args.faults.map(|f| *f).unwrap_or_default();
    faults.timeout_hold = args.fault_timeout;
    let opts = EmulatorOptions {
        listen: args.listen,
        state_file: args.state,
        seed_file: args.seed,
        token_ttl: args.token_ttl,
        limits: args.rate_limits.0,
        faults,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::new("cannot start the async runtime").with_source(e))?;
    runtime.block_on(async {
        let running = emulator::start(opts)
            .await
            .map_err(|e| CommandError::new("cannot start the emulator").with_source(e))?;
        out.status(&format!("listening on {}", running.base_url()));
        wait_for_signal().await?;
        running.shutdown().await.map_err(|e| {
            CommandError::new("the emulator did not shut down cleanly").with_source(e)
        })?;
        Ok(Outcome::Success)
    })
}

async fn wait_for_signal() -> CommandResult<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| CommandError::new("cannot listen for SIGTERM").with_source(e))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    Ok(())
}
