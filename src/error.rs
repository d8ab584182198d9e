//! Outcome kinds and the one table that maps them to exit codes (SPEC §11).

use std::process::ExitCode;

/// How a command ended. Commands return this; `main` turns it into the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 0: success (also `plan` with changes, without `--detailed-exitcode`).
    Success,
    /// 1: error (config, connection, API, I/O).
    Error,
    /// 2: `plan --detailed-exitcode` with changes; `compare` with differences.
    Changes,
    /// 3: refused by a guard.
    Refused,
    /// 4: `apply` finished with failed operations.
    Failures,
    /// 5: stopped early (rate budget, `--max-wait`, signal).
    Stopped,
    /// 64: usage error.
    Usage,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::Error => 1,
            Outcome::Changes => 2,
            Outcome::Refused => 3,
            Outcome::Failures => 4,
            Outcome::Stopped => 5,
            Outcome::Usage => 64,
        }
    }
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> Self {
        ExitCode::from(o.code())
    }
}

/// A command failure that is reported to the user: a message, optional causes and a hint.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    pub message: String,
    pub hint: Option<String>,
    pub outcome: Outcome,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl CommandError {
    pub fn new(message: impl Into<String>) -> Self {
        CommandError {
            message: message.into(),
            hint: None,
            outcome: Outcome::Error,
            source: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn with_source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(e));
        self
    }
}

impl From<std::io::Error> for CommandError {
    fn from(e: std::io::Error) -> Self {
        CommandError::new(e.to_string())
    }
}

pub type CommandResult<T = Outcome> = Result<T, CommandError>;
