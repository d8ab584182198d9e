//! `schema [--out-dir DIR]`: print the combined schema, or write every schema file.

use std::path::PathBuf;

use crate::error::{CommandError, CommandResult, Outcome};
use crate::output::Output;
use crate::schema;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write carbonite-sync.schema.json, one schema per kind, and the plan, saved-plan and
    /// compare schemas into DIR.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

pub fn run(_global: &super::GlobalArgs, args: Args, out: &Output) -> CommandResult {
    let schemas = schema::all_schemas();
    match args.out_dir {
        None => {
            let combined = schemas
                .get("carbonite-sync.schema.json")
                .ok_or_else(|| CommandError::new("combined schema missing"))?;
            out.out(&schema::to_text(combined));
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| {
                CommandError::new(format!("cannot create `{}`: {e}", dir.display()))
            })?;
            for (name, v) in &schemas {
                let path = dir.join(name);
                std::fs::write(&path, schema::to_text(v)).map_err(|e| {
                    CommandError::new(format!("cannot write `{}`: {e}", path.display()))
                })?;
            }
            out.status(&format!(
                "wrote {} schema files to {}",
                schemas.len(),
                dir.display()
            ));
        }
    }
    Ok(Outcome::Success)
}
