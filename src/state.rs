//! The state directory (SPEC §10): created on first use with a `.gitignore` of `*`, so a state
//! dir inside a git work tree is never committed; owner-only permissions.

use std::io::Write;
use std::path::Path;

/// Create `dir` (and its parents) if needed, with a `.gitignore` of `*` and, on Unix, mode 0700
/// when this call creates it. An existing `.gitignore` is left alone.
pub fn ensure_state_dir(dir: &Path) -> std::io::Result<()> {
    if !dir.is_dir() {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    let gitignore = dir.join(".gitignore");
    if !gitignore.exists() {
        match private_options().create_new(true).open(&gitignore) {
            Ok(mut f) => f.write_all(b"*\n")?,
            // Another process made it between the check and the open.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `OpenOptions` for a write-only file created with mode 0600 (SPEC §10: files 0600).
pub fn private_options() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o
}

/// Write `bytes` to `path` atomically: a 0600 temp file beside it, optionally fsynced, renamed
/// over the target.
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    write_atomic_with(path, durable, |f| f.write_all(bytes))
}

/// [`write_atomic`] of what `write` streams into the file (buffered), for documents too big
/// to build in memory first (the observed-state cache).
pub fn write_atomic_with(
    path: &Path,
    durable: bool,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let f = private_options().create(true).truncate(true).open(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(256 * 1024, f);
        write(&mut w)?;
        let f = w
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_dir_with_gitignore_and_private_files() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/.carbonite-sync");
        ensure_state_dir(&dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join(".gitignore")).unwrap(),
            "*\n"
        );
        ensure_state_dir(&dir).unwrap();
        let f = dir.join("x.json");
        write_atomic(&f, b"{}", true).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"{}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&f), 0o600);
            assert_eq!(mode(&dir), 0o700);
        }
    }
}

/// The reconcile's own state files: `baseline.json` (per-mapping entry counts of the last
/// complete pass, SPEC §6.3) and `suspended.json` (ids of the accounts this tool suspended,
/// SPEC §6.7). Formats are in docs/decisions.md.
pub struct StateFiles {
    dir: std::path::PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct BaselineFile {
    version: u32,
    /// RFC 3339.
    written_at: String,
    mappings: std::collections::BTreeMap<String, u64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SuspendedFile {
    version: u32,
    accounts: std::collections::BTreeSet<String>,
}

impl StateFiles {
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        StateFiles { dir: dir.into() }
    }

    /// The baseline, if one was written (an unreadable file counts as none: the guard then
    /// reports `no_baseline` and holds destructive actions back, the safe side).
    pub fn baseline(&self) -> Option<std::collections::BTreeMap<String, u64>> {
        let bytes = std::fs::read(self.dir.join("baseline.json")).ok()?;
        serde_json::from_slice::<BaselineFile>(&bytes)
            .ok()
            .map(|b| b.mappings)
    }

    /// Write the baseline: called by `apply`/`watch` passes that read completely and were not
    /// refused by `minSourceEntries` or the shrink guard.
    pub fn write_baseline(
        &self,
        counts: &std::collections::BTreeMap<String, u64>,
        written_at: &str,
    ) -> std::io::Result<()> {
        ensure_state_dir(&self.dir)?;
        let f = BaselineFile {
            version: 1,
            written_at: written_at.to_string(),
            mappings: counts.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&f).map_err(std::io::Error::other)?;
        write_atomic(&self.dir.join("baseline.json"), &bytes, true)
    }

    /// Accounts this tool suspended.
    pub fn suspended(&self) -> std::collections::BTreeSet<String> {
        std::fs::read(self.dir.join("suspended.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<SuspendedFile>(&b).ok())
            .map(|f| f.accounts)
            .unwrap_or_default()
    }

    pub fn write_suspended(&self, ids: &std::collections::BTreeSet<String>) -> std::io::Result<()> {
        ensure_state_dir(&self.dir)?;
        let bytes = serde_json::to_vec_pretty(&SuspendedFile {
            version: 1,
            accounts: ids.clone(),
        })
        .map_err(std::io::Error::other)?;
        write_atomic(&self.dir.join("suspended.json"), &bytes, true)
    }
}

#[cfg(test)]
mod state_file_tests {
    use super::*;

    #[test]
    fn baseline_and_suspended_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateFiles::new(dir.path().join("state"));
        assert!(s.baseline().is_none());
        let counts = [("employees".to_string(), 42u64)].into();
        s.write_baseline(&counts, "2026-12-04T12:00:00Z").unwrap();
        assert_eq!(s.baseline(), Some(counts));
        assert!(dir.path().join("state/.gitignore").exists());
        s.write_suspended(&["a1".to_string()].into()).unwrap();
        assert!(s.suspended().contains("a1"));
    }
}
