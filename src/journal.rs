//! The apply journal `<state>/journal.jsonl` (SPEC §8): one JSON object per line, an `intent`
//! before each Carbonite write and a `result` after it, each fsynced before the run goes on. A
//! crash leaves intents without results; the next `apply`/`watch` resolves them first
//! ([`Journal::open_intents`]). Records carry the plan digest, the config digest and the config
//! dir's git commit. No secret is ever written: records hold actions, keys, account ids, the
//! Email of creates (needed to look them up) and Carbonite's messages (already redacted).
//! Format in docs/decisions.md.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::reconcile::Action;

pub const FILE_NAME: &str = "journal.jsonl";

/// What a record says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// About to send a write.
    Intent(Intent),
    /// What came of it.
    Result(OpResult),
}

/// A write about to be sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// RFC 3339.
    pub ts: String,
    /// The run (one `apply`) that wrote it.
    pub run: String,
    /// The operation: unique per intent; its result carries the same id.
    pub op: String,
    /// `adopt`, `create`, ..., or `orchestration` later.
    pub action: Action,
    pub mapping: String,
    pub key: String,
    /// `null` for creates.
    pub account_id: Option<String>,
    /// Creates: the Email looked up when the outcome is unknown.
    pub email: Option<String>,
    /// Fields written (names only: values may be personal data and are in the plan).
    pub fields: Vec<String>,
    pub plan_digest: Option<String>,
    pub config_digest: String,
    pub git_commit: Option<String>,
    /// An orchestration step (`<orchestration>/<webhook>`) run after the change `action`
    /// describes; absent for the account writes themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Carbonite confirmed the write.
    Ok,
    /// A create whose answer was lost, found afterwards by Email and linked.
    Linked,
    /// A delete that found the account already gone.
    AlreadyGone,
    /// Carbonite refused it, or it could not be resolved.
    Failed,
    /// Never sent: no rate budget, or the run was stopped before it went out.
    NotSent,
    /// An intent of an earlier run that was not resolved to an account: nothing to link; the
    /// next plan decides afresh.
    Abandoned,
}

/// The result of an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpResult {
    pub ts: String,
    pub run: String,
    pub op: String,
    pub result: Verdict,
    /// The account written, created or linked.
    pub account_id: Option<String>,
    /// HTTP status of a refusal.
    pub status: Option<u16>,
    /// Carbonite's message or our reason.
    pub message: Option<String>,
}

/// An open journal: appends are serialised and fsynced.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
    run: String,
}

#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {source}")]
pub struct JournalError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl Journal {
    /// Open (create) `<state>/journal.jsonl` for appending, for run `run`.
    pub fn open(state_dir: &Path, run: impl Into<String>) -> Result<Journal, JournalError> {
        let path = state_dir.join(FILE_NAME);
        let err = |source| JournalError {
            path: path.clone(),
            source,
        };
        crate::state::ensure_state_dir(state_dir).map_err(err)?;
        let mut opts = crate::state::private_options();
        opts.append(true).create(true);
        let mut file = opts.open(&path).map_err(err)?;
        // A crash mid-write can leave a torn last line: start on a fresh one.
        if let Ok(bytes) = std::fs::read(&path)
            && bytes.last().is_some_and(|&b| b != b'\n')
        {
            file.write_all(b"\n").map_err(err)?;
        }
        Ok(Journal {
            path,
            file: Mutex::new(file),
            run: run.into(),
        })
    }

    pub fn run(&self) -> &str {
        &self.run
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record and fsync it.
    pub fn append(&self, record: &Record) -> Result<(), JournalError> {
        let mut line = serde_json::to_vec(record).map_err(|e| JournalError {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(&line)
            .and_then(|()| f.sync_data())
            .map_err(|source| JournalError {
                path: self.path.clone(),
                source,
            })
    }

    /// Intents without a result, oldest first. A torn last line (a crash mid-write) is
    /// ignored; other unreadable lines are skipped with a warning.
    pub fn open_intents(state_dir: &Path) -> Result<Vec<Intent>, JournalError> {
        let path = state_dir.join(FILE_NAME);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(JournalError { path, source }),
        };
        let mut open: BTreeMap<String, (usize, Intent)> = BTreeMap::new();
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| JournalError {
                path: path.clone(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Record>(&line) {
                Ok(Record::Intent(i)) => {
                    open.insert(i.op.clone(), (n, i));
                }
                Ok(Record::Result(r)) => {
                    open.remove(&r.op);
                }
                Err(e) => tracing::warn!(
                    "{}:{}: unreadable journal line skipped: {e}",
                    path.display(),
                    n + 1
                ),
            }
        }
        let mut v: Vec<(usize, Intent)> = open.into_values().collect();
        v.sort_by_key(|(n, _)| *n);
        Ok(v.into_iter().map(|(_, i)| i).collect())
    }

    /// Every record, in order (for tests and tooling).
    pub fn read_all(state_dir: &Path) -> std::io::Result<Vec<Record>> {
        let text = match std::fs::read_to_string(state_dir.join(FILE_NAME)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(op: &str) -> Intent {
        Intent {
            ts: "2026-12-04T00:00:00Z".into(),
            run: "r1".into(),
            op: op.into(),
            action: Action::Create,
            mapping: "employees".into(),
            key: "E1".into(),
            account_id: None,
            email: Some("a@x".into()),
            fields: vec!["Email".into()],
            plan_digest: None,
            config_digest: "sha256:00".into(),
            git_commit: None,
            step: None,
        }
    }

    #[test]
    fn intents_without_results_are_open_and_a_torn_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), "r1").unwrap();
        j.append(&Record::Intent(intent("a"))).unwrap();
        j.append(&Record::Intent(intent("b"))).unwrap();
        j.append(&Record::Result(OpResult {
            ts: "2026-12-04T00:00:01Z".into(),
            run: "r1".into(),
            op: "a".into(),
            result: Verdict::Ok,
            account_id: Some("u1".into()),
            status: None,
            message: None,
        }))
        .unwrap();
        drop(j);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE_NAME))
            .unwrap();
        f.write_all(b"{\"type\":\"intent\",\"ts\":").unwrap();
        let open = Journal::open_intents(dir.path()).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].op, "b");
        assert_eq!(Journal::read_all(dir.path()).unwrap().len(), 3);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
