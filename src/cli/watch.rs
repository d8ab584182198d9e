//! `watch`: the continuous reconcile daemon (SPEC §12). The loop is `crate::watch`.

use std::time::Duration;

use crate::error::CommandResult;
use crate::output::Output;
use crate::watch::WatchOptions;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Time between passes (directory read, plan from the observed cache, apply).
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Time between complete directory reads (the only ones that run source guards and plan
    /// suspends/deletes). Until incremental reads exist every pass reads in full.
    #[arg(long, value_name = "DUR", default_value = "1h", value_parser = parse_duration)]
    pub full_read: Duration,
    /// Time between complete Carbonite listings; at least the time the rate budget needs for
    /// one listing. In between, the observed-state cache (kept current from write answers).
    #[arg(long, value_name = "DUR", default_value = "6h", value_parser = parse_duration)]
    pub full_refresh: Duration,
    /// Serve /healthz and /metrics on ADDR (e.g. 127.0.0.1:9464; port 0 picks one).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(d)
}

pub fn run(global: &super::GlobalArgs, args: Args, out: &Output) -> CommandResult {
    let opts = WatchOptions {
        interval: args.interval,
        full_read: args.full_read,
        full_refresh: args.full_refresh,
        listen: args.listen,
    };
    super::block_on(crate::watch::run(
        &global.config_dir(),
        &global.state_dir(),
        opts,
        out,
    ))?
}
