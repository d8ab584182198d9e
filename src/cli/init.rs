//! `init [DIR]`: scaffold a config directory with commented examples and the JSON Schema.

use std::path::{Path, PathBuf};

use crate::error::{CommandError, CommandResult, Outcome};
use crate::output::Output;
use crate::schema;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to create (default: the config dir, `-C` or `.`).
    pub dir: Option<PathBuf>,
}

/// The files `init` writes, relative to the target directory.
pub fn scaffold_files() -> Vec<(&'static str, String)> {
    let combined = schema::config_schemas()
        .remove("carbonite-sync.schema.json")
        .unwrap_or_default();
    vec![
        (
            "integration.yaml",
            include_str!("init_templates/integration.yaml").to_string(),
        ),
        (
            "mappings/employees.yaml",
            include_str!("init_templates/employees.yaml").to_string(),
        ),
        (
            "endpoints.yaml",
            include_str!("init_templates/endpoints.yaml").to_string(),
        ),
        (
            ".schema/carbonite-sync.schema.json",
            schema::to_text(&combined),
        ),
        (".gitignore", ".carbonite-sync/\n".to_string()),
    ]
}

pub fn run(global: &super::GlobalArgs, args: Args, out: &Output) -> CommandResult {
    let dir = args.dir.unwrap_or_else(|| global.config_dir());
    let files = scaffold_files();
    let existing: Vec<String> = files
        .iter()
        .map(|(rel, _)| dir.join(rel))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(CommandError::new(format!(
            "refusing to overwrite existing files: {}",
            existing.join(", ")
        ))
        .with_hint("init writes a fresh config; pick an empty directory"));
    }
    for (rel, text) in &files {
        write_new(&dir.join(rel), text)?;
    }
    out.out(&format!(
        "Created {} files in {}.\nNext: edit integration.yaml and mappings/employees.yaml, then run\n  carbonite-sync -C {} validate",
        files.len(),
        dir.display(),
        dir.display()
    ));
    Ok(Outcome::Success)
}

fn write_new(path: &Path, text: &str) -> Result<(), CommandError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| CommandError::new(format!("cannot create `{}`: {e}", parent.display())))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| CommandError::new(format!("cannot create `{}`: {e}", path.display())))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .map_err(|e| CommandError::new(format!("cannot write `{}`: {e}", path.display())))
}
