//! Command-line interface: global flags, the command list, dispatch. One file per command; each
//! has an `Args` struct and a `run` that calls into the library — no business logic here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::{CommandError, Outcome};
use crate::output::{ColorChoice, Output};

pub mod apply;
pub mod compare;
pub mod completions;
pub mod emulator;
pub mod init;
pub mod plan;
pub mod schema;
pub mod snapshot;
pub mod test_endpoint;
pub mod validate;
pub mod watch;
pub mod webhook;

/// Keep Carbonite backup accounts in step with Active Directory, the GitOps way.
#[derive(Debug, Parser)]
#[command(name = "carbonite-sync", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted by every command.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Config directory (all *.yaml / *.yml below it are read).
    #[arg(
        short = 'C',
        long = "config-dir",
        global = true,
        env = "CARBONITE_SYNC_CONFIG",
        value_name = "DIR"
    )]
    pub config_dir: Option<PathBuf>,
    /// State directory (ledger, journal, caches). Default: <config dir>/.carbonite-sync/
    #[arg(
        long,
        global = true,
        env = "CARBONITE_SYNC_STATE_DIR",
        value_name = "DIR"
    )]
    pub state_dir: Option<PathBuf>,
    /// When to use colour.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// More logging on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors and results.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl GlobalArgs {
    /// The config dir: `-C`, else `$CARBONITE_SYNC_CONFIG` (clap's env), else `.`.
    pub fn config_dir(&self) -> PathBuf {
        self.config_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// The state dir: `--state-dir`, else `$CARBONITE_SYNC_STATE_DIR`, else `<config>/.carbonite-sync`.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| self.config_dir().join(".carbonite-sync"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scaffold a config directory with commented examples and the JSON Schema.
    Init(init::Args),
    /// Check the whole config offline and report every problem at once.
    Validate(validate::Args),
    /// Read AD and Carbonite, diff, and print what apply would change.
    Plan(plan::Args),
    /// Plan and apply (with confirmation), or apply a saved plan exactly.
    Apply(apply::Args),
    /// Reconcile continuously: a daemon with config reload, health and metrics.
    Watch(watch::Args),
    /// Outbound webhooks: `webhook test NAME --user KEY [--send]`.
    Webhook(webhook::Args),
    /// Show which accounts and fields a config change affects, against a base config.
    Compare(compare::Args),
    /// Print or write the JSON Schemas of the config files.
    Schema(schema::Args),
    /// Call an inbound endpoint once and show the fields of its items.
    TestEndpoint(test_endpoint::Args),
    /// Write directory entries to LDIF (they hold personal data: store them accordingly).
    Snapshot(snapshot::Args),
    /// Run the Carbonite API emulator on loopback.
    Emulator(emulator::Args),
    /// Print shell completions.
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff).
    Man(completions::ManArgs),
}

/// Entry point used by `main.rs`.
pub fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => Outcome::Success.into(),
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Outcome::Usage.into(),
                _ => Outcome::Usage.into(),
            };
        }
    };
    let out = Output::new(cli.global.color, cli.global.quiet);
    init_logging(&cli.global, out.color_stderr());
    let outcome = run(cli, &out);
    outcome.into()
}

/// Run a parsed command line, printing errors, and return the outcome.
pub fn run(cli: Cli, out: &Output) -> Outcome {
    let global = cli.global;
    let result = match cli.command {
        Command::Init(a) => init::run(&global, a, out),
        Command::Validate(a) => validate::run(&global, a, out),
        Command::Plan(a) => plan::run(&global, a, out),
        Command::Apply(a) => apply::run(&global, a, out),
        Command::Webhook(a) => webhook::run(&global, a, out),
        Command::Watch(a) => watch::run(&global, a, out),
        Command::Compare(a) => compare::run(&global, a, out),
        Command::Schema(a) => schema::run(&global, a, out),
        Command::TestEndpoint(a) => test_endpoint::run(&global, a, out),
        Command::Snapshot(a) => snapshot::run(&global, a, out),
        Command::Emulator(a) => emulator::run(&global, a, out),
        Command::Completions(a) => completions::run_completions(a, out),
        Command::Man(a) => completions::run_man(a, out),
    };
    match result {
        Ok(outcome) => outcome,
        Err(e) => {
            report_error(&e, out);
            e.outcome
        }
    }
}

/// Run a future to completion on a fresh multi-threaded tokio runtime (commands are
/// synchronous; the directory and Carbonite clients are async).
pub(crate) fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map(|runtime| runtime.block_on(future))
        .map_err(|e| CommandError::new(format!("cannot start the async runtime: {e}")))
}

/// Print a command error: `error: message`, the `Caused by:` chain, and a `hint:` line.
pub fn report_error(e: &CommandError, out: &Output) {
    let mut text = format!("error: {}", e.message);
    let mut src = std::error::Error::source(e);
    let mut first = true;
    while let Some(s) = src {
        if first {
            text.push_str("\nCaused by:");
            first = false;
        }
        text.push_str(&format!("\n  {s}"));
        src = s.source();
    }
    if let Some(h) = &e.hint {
        text.push_str(&format!("\nhint: {h}"));
    }
    out.error(&text);
}

fn init_logging(global: &GlobalArgs, color: bool) {
    use tracing_subscriber::EnvFilter;
    let level = if global.quiet {
        "error"
    } else {
        match global.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    // Our own crate at the chosen level; dependencies one notch quieter unless -vvv.
    let directive = if global.verbose >= 3 {
        level.to_string()
    } else {
        format!("warn,carbonite_sync={level}")
    };
    let filter =
        EnvFilter::try_from_env("CARBONITE_SYNC_LOG").unwrap_or_else(|_| EnvFilter::new(directive));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match global.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(color).try_init(),
    };
}
