//! `completions SHELL` and `man`.

use clap::CommandFactory;

use crate::error::{CommandResult, Outcome};
use crate::output::Output;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {}

pub fn run_completions(args: CompletionsArgs, out: &Output) -> CommandResult {
    let mut cmd = super::Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "carbonite-sync", &mut buf);
    out.out_bytes(&buf);
    Ok(Outcome::Success)
}

pub fn run_man(_args: ManArgs, out: &Output) -> CommandResult {
    let cmd = super::Cli::command();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut buf)?;
    out.out_bytes(&buf);
    Ok(Outcome::Success)
}
