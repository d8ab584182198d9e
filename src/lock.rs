//! The writer lock of a state dir (SPEC §8): an exclusive `flock` on `<state>/lock`, taken by
//! `apply` and `watch` so two writers never run against the same ledger, journal and cache.
//! The kernel releases it when the process dies (a SIGKILLed apply never blocks the next one);
//! the file records who holds it (pid, host, command, start time) for the error message.

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// Who holds the lock, as recorded in the lock file.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub command: String,
    /// RFC 3339.
    pub started_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the state dir {dir} is locked by {}", describe(.holder))]
    Held {
        dir: PathBuf,
        holder: Option<Holder>,
    },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn describe(h: &Option<Holder>) -> String {
    match h {
        Some(h) => format!(
            "`{}` (pid {} on {}, since {})",
            h.command, h.pid, h.host, h.started_at
        ),
        None => "another process".into(),
    }
}

impl LockError {
    pub fn hint(&self) -> String {
        match self {
            LockError::Held { .. } => "wait for that run to finish (a watch daemon holds the lock \
                                       while it runs); the lock is released when its process \
                                       exits, even when it is killed"
                .into(),
            LockError::Io { .. } => "check the permissions of the state dir".into(),
        }
    }
}

/// A held lock; released on drop (and by the kernel if the process dies).
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
}

impl StateLock {
    /// Take the lock without waiting; `command` names the run for whoever finds it held.
    pub fn acquire(state_dir: &Path, command: &str) -> Result<StateLock, LockError> {
        let path = state_dir.join("lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        crate::state::ensure_state_dir(state_dir).map_err(io)?;
        let mut opts = crate::state::private_options();
        opts.read(true).create(true).truncate(false);
        let mut file = opts.open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held {
                    dir: state_dir.to_path_buf(),
                    holder: serde_json::from_str(&text).ok(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let holder = Holder {
            pid: std::process::id(),
            host: hostname(),
            command: command.to_string(),
            started_at: crate::pass::rfc3339(std::time::SystemTime::now()),
        };
        let text = serde_json::to_string(&holder).unwrap_or_default();
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        Ok(StateLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Leave the file (removing it would race with a process that just opened it).
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holder_and_can_go_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(dir.path(), "apply").unwrap();
        let err = StateLock::acquire(dir.path(), "watch").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`apply`"), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        let again = StateLock::acquire(dir.path(), "watch").unwrap();
        assert_eq!(again.path(), dir.path().join("lock"));
    }
}
