//! The state directory (SPEC §10): created on first use with a `.gitignore` of `*`, so a state
//! dir inside a git work tree is never committed; owner-only permissions.

use std::io::Write as _;
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
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = private_options().create(true).truncate(true).open(&tmp)?;
        f.write_all(bytes)?;
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
