//! `snapshot --out F [--filter F] [--attributes A,...]`: directory entries to LDIF (SPEC §13).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::config;
use crate::directory::{self, snapshot};
use crate::error::{CommandError, CommandResult, Outcome};
use crate::output::Output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// File to write (replaced atomically; created with mode 0600: it holds personal data).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// LDAP filter selecting the entries. Default: the OR of the mapping filters.
    #[arg(long, value_name = "FILTER")]
    pub filter: Option<String>,
    /// Attributes to write instead of every user attribute (comma-separated). The flavor's
    /// anchor and change marker and the disabledFilter's attributes are always added.
    #[arg(long, value_name = "A,...", value_delimiter = ',')]
    pub attributes: Option<Vec<String>>,
}

pub fn run(global: &super::GlobalArgs, args: Args, out: &Output) -> CommandResult {
    let cfg = match config::load(&global.config_dir()) {
        Ok(cfg) => cfg,
        Err(e) => {
            super::validate::report_load_error(&e, out);
            return Ok(Outcome::Error);
        }
    };
    let attributes: Option<Vec<String>> = args.attributes.map(|list| {
        list.into_iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect()
    });
    let spec =
        snapshot::SnapshotSpec::for_config(&cfg, args.filter.as_deref(), attributes.as_deref())
            .map_err(|e| CommandError::new(format!("cannot take a snapshot: {e}")))?;
    let source = directory::open(&cfg.integration.directory)?;
    let entries = super::block_on(snapshot::take(source.as_ref(), &spec))??;
    let header = snapshot::SnapshotHeader {
        source: source.location(),
        taken_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        version: format!("carbonite-sync {}", env!("CARGO_PKG_VERSION")),
    };
    let text = snapshot::render(&spec, &header, &entries);
    write_private(&args.out, text.as_bytes()).map_err(|e| {
        CommandError::new(format!("cannot write {}: {e}", args.out.display()))
            .with_hint("check that the directory exists and is writable")
    })?;
    out.status(&format!(
        "Wrote {} entr{} to {} (source {}, filter {}).",
        entries.len(),
        if entries.len() == 1 { "y" } else { "ies" },
        args.out.display(),
        header.source,
        spec.filter
    ));
    Ok(Outcome::Success)
}

/// Write `bytes` to `path` through a temporary file in the same directory (mode 0600), then
/// rename: a reader never sees half a snapshot, and nobody else can read the personal data.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snapshot".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
