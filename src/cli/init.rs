use crate::error::{CommandError, CommandResult};
use crate::output::Output;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_global: &super::GlobalArgs, _args: Args, _out: &Output) -> CommandResult {
    Err(CommandError::new("not built yet"))
}
