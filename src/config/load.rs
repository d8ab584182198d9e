//! Loading a config directory (SPEC §2): walk, read, parse every document, dispatch on `kind`,
//! then validate everything into the model. Every problem found is collected; loading never
//! stops at the first one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diag::{Diagnostic, SourceFile, SourceMap};
use super::node::{self, DeError, Loc, Node, NodeKind, Sp, did_you_mean, one_of};
use super::raw::{self, Document, KINDS};
use super::validate::Validator;
use crate::carbonite::profile;

/// Files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A config that failed to load: every diagnostic, and the sources to render them with.
#[derive(Debug)]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
    pub sources: SourceMap,
}

/// One parsed document of a given kind.
pub struct Parsed<S> {
    pub doc: Document<S>,
    /// Location of the whole document.
    pub loc: Loc,
    /// From the built-in profile rather than a user file.
    pub builtin: bool,
}

/// Every document, by kind, after structural parsing.
#[derive(Default)]
pub struct Documents {
    pub integrations: Vec<Parsed<raw::IntegrationSpec>>,
    pub mappings: Vec<Parsed<raw::MappingSpec>>,
    pub endpoints: Vec<Parsed<raw::EndpointSpec>>,
    pub webhooks: Vec<Parsed<raw::WebhookSpec>>,
    pub orchestrations: Vec<Parsed<raw::OrchestrationSpec>>,
    /// Kinds of documents that failed structural parsing (so "none found" is not reported).
    pub failed_kinds: std::collections::BTreeSet<String>,
}

/// Load and validate the config directory `dir`.
pub fn load(dir: &Path) -> Result<super::model::Config, LoadError> {
    let mut sources = SourceMap::default();
    let mut diags = Vec::new();
    let mut docs = Documents::default();

    // The built-in profile goes through the same path as user files.
    let builtin_id = sources.add(SourceFile {
        rel_path: profile::BUILTIN_FILE_NAME.into(),
        path: PathBuf::from(profile::BUILTIN_FILE_NAME),
        text: Arc::from(profile::BUILTIN_ENDPOINTS_YAML),
        bytes: Arc::from(profile::BUILTIN_ENDPOINTS_YAML.as_bytes()),
    });
    match node::parse_documents(builtin_id, profile::BUILTIN_ENDPOINTS_YAML) {
        Ok(nodes) => {
            for n in &nodes {
                dispatch(n, true, &mut docs, &mut diags);
            }
        }
        Err(e) => diags.push(Diagnostic::at(
            e.loc,
            format!("built-in profile: {}", e.message),
        )),
    }

    match collect_files(dir) {
        Err(d) => diags.push(d),
        Ok(files) if files.is_empty() => diags.push(
            Diagnostic::new(
                format!(
                    "no YAML files (*.yaml, *.yml) found in config directory `{}`",
                    dir.display()
                ),
                None,
            )
            .with_hint(format!(
                "create one with `carbonite-sync init {}`, or point -C at your config directory",
                dir.display()
            )),
        ),
        Ok(files) => {
            for (rel, path) in files {
                read_one(&rel, &path, &mut sources, &mut docs, &mut diags);
            }
        }
    }

    let structural_ok = diags.is_empty();
    let no_files = diags.iter().any(|d| d.loc.is_none());
    let mut validator = Validator::new(dir, &sources);
    let config = validator.validate(docs);
    if !no_files {
        diags.extend(validator.into_diagnostics());
    }
    diags.sort_by_key(|d| d.loc);
    diags.dedup();
    match config {
        Some(mut c) if diags.is_empty() && structural_ok => {
            c.sources = sources;
            Ok(c)
        }
        _ => Err(LoadError {
            diagnostics: diags,
            sources,
        }),
    }
}

/// Recursively list `*.yaml` / `*.yml` under `dir`, skipping hidden files and directories,
/// sorted by relative path.
fn collect_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, Diagnostic> {
    let meta = std::fs::metadata(dir).map_err(|e| {
        Diagnostic::new(
            format!(
                "cannot read config directory `{}`: {}",
                dir.display(),
                io_reason(&e)
            ),
            None,
        )
        .with_hint("pass the config directory with -C DIR or set CARBONITE_SYNC_CONFIG")
    })?;
    if !meta.is_dir() {
        return Err(
            Diagnostic::new(format!("`{}` is not a directory", dir.display()), None)
                .with_hint("-C takes the config directory, not a file"),
        );
    }
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        let entries = std::fs::read_dir(&abs).map_err(|e| {
            Diagnostic::new(
                format!(
                    "cannot read directory `{}`: {}",
                    abs.display(),
                    io_reason(&e)
                ),
                None,
            )
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| {
                Diagnostic::new(
                    format!("cannot read `{}`: {}", abs.display(), io_reason(&e)),
                    None,
                )
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let rel_child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let ft = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(_) => continue, // dangling symlink: not a config file
            };
            if ft.is_dir() {
                stack.push((path, rel_child));
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                out.push((rel_child, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

fn read_one(
    rel: &str,
    path: &Path,
    sources: &mut SourceMap,
    docs: &mut Documents,
    diags: &mut Vec<Diagnostic>,
) {
    let placeholder = |sources: &mut SourceMap, bytes: Arc<[u8]>| {
        sources.add(SourceFile {
            rel_path: rel.to_string(),
            path: path.to_path_buf(),
            text: Arc::from(""),
            bytes,
        })
    };
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > MAX_FILE_BYTES {
        let id = placeholder(sources, Arc::from(&b""[..]));
        diags.push(
            Diagnostic::at(
                Loc {
                    file: id,
                    ..Loc::default()
                },
                format!("file is too large ({size} bytes; the limit is {MAX_FILE_BYTES})"),
            )
            .with_hint("split the config into several files"),
        );
        return;
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let id = placeholder(sources, Arc::from(&b""[..]));
            diags.push(Diagnostic::at(
                Loc {
                    file: id,
                    ..Loc::default()
                },
                format!("cannot read file: {}", io_reason(&e)),
            ));
            return;
        }
    };
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t.to_string(),
        Err(e) => {
            let good = e.valid_up_to();
            let line = bytes[..good].iter().filter(|b| **b == b'\n').count() as u32 + 1;
            let line_start = bytes[..good]
                .iter()
                .rposition(|b| *b == b'\n')
                .map(|p| p + 1)
                .unwrap_or(0);
            let col = String::from_utf8_lossy(&bytes[line_start..good])
                .chars()
                .count() as u32
                + 1;
            let id = placeholder(sources, Arc::from(bytes.as_slice()));
            diags.push(
                Diagnostic::at(
                    Loc {
                        file: id,
                        line,
                        col,
                        offset: good,
                        len: 0,
                    },
                    format!(
                        "file is not valid UTF-8 (byte 0x{:02x} at line {line}, column {col})",
                        bytes[good]
                    ),
                )
                .with_hint("save the file as UTF-8"),
            );
            return;
        }
    };
    let id = sources.add(SourceFile {
        rel_path: rel.to_string(),
        path: path.to_path_buf(),
        text: Arc::from(text.as_str()),
        bytes: Arc::from(bytes.as_slice()),
    });
    match node::parse_documents(id, &text) {
        Ok(nodes) => {
            for n in &nodes {
                dispatch(n, false, docs, diags);
            }
        }
        Err(e) => {
            // A tab in indentation: point at it, whatever the parser's position.
            let tab_line = text
                .lines()
                .position(|l| l.trim_start_matches(' ').starts_with('\t'));
            let d = match tab_line {
                Some(i) => {
                    let line = text.lines().nth(i).unwrap_or("");
                    let col = line.find('\t').unwrap_or(0) as u32 + 1;
                    let offset = node::offset_of(&text, i as u32 + 1, col);
                    let loc = Loc {
                        file: id,
                        line: i as u32 + 1,
                        col,
                        offset,
                        len: 1,
                    };
                    Diagnostic::at(loc, "invalid YAML: a tab character is used for indentation")
                        .with_label("tab")
                        .with_hint("YAML indentation must use spaces, not tabs")
                }
                None => Diagnostic::at(e.loc, format!("invalid YAML: {}", e.message)),
            };
            diags.push(d);
        }
    }
}

const DOC_KEYS: &[&str] = &["apiVersion", "kind", "metadata", "spec"];

/// Check the envelope of one document and deserialize it by kind.
fn dispatch(n: &Node, builtin: bool, docs: &mut Documents, diags: &mut Vec<Diagnostic>) {
    let NodeKind::Map(_) = &n.kind else {
        diags.push(
            Diagnostic::at(
                n.loc,
                format!(
                    "expected a document with {}, found {}",
                    one_of(DOC_KEYS),
                    n.kind.describe()
                ),
            )
            .with_hint("every document starts with `apiVersion: carbonite-sync/v1` and `kind:`"),
        );
        return;
    };
    let mut ok = true;
    for key in DOC_KEYS {
        if n.get(key).is_none() {
            diags.push(Diagnostic::at(
                n.loc,
                format!("document is missing required key `{key}`"),
            ));
            ok = false;
        }
    }
    if let Some(v) = n.get("apiVersion") {
        let s = v.as_scalar_string().unwrap_or_default();
        if s != raw::API_VERSION {
            diags.push(
                Diagnostic::at(v.loc, format!("unsupported apiVersion `{s}`")).with_hint(format!(
                    "this version of carbonite-sync reads `apiVersion: {}`",
                    raw::API_VERSION
                )),
            );
            ok = false;
        }
    }
    let kind = n
        .get("kind")
        .map(|k| (k.as_scalar_string().unwrap_or_default(), k.loc));
    if let Some((k, loc)) = &kind
        && !KINDS.contains(&k.as_str())
    {
        let mut d = Diagnostic::at(
            *loc,
            format!("unknown kind `{k}`, expected {}", one_of(KINDS)),
        );
        if let Some(s) = did_you_mean(k, KINDS.iter().copied()) {
            d = d.with_hint(format!("did you mean `{s}`?"));
        }
        diags.push(d);
        ok = false;
    }
    let Some((kind, _)) = kind else { return };
    if !ok {
        // Still report unknown keys etc. inside the document when the kind is known.
        if !KINDS.contains(&kind.as_str()) || n.get("spec").is_none() || n.get("metadata").is_none()
        {
            return;
        }
    }
    macro_rules! parse_into {
        ($field:ident, $spec:ty) => {{
            let (doc, errs) = node::from_node::<Document<$spec>>(n);
            diags.extend(errs.into_iter().map(de_diag));
            match (doc, ok) {
                (Some(doc), true) => docs.$field.push(Parsed {
                    doc,
                    loc: n.loc,
                    builtin,
                }),
                _ => {
                    docs.failed_kinds.insert(kind.clone());
                }
            }
        }};
    }
    match kind.as_str() {
        "Integration" => parse_into!(integrations, raw::IntegrationSpec),
        "Mapping" => parse_into!(mappings, raw::MappingSpec),
        "Endpoint" => parse_into!(endpoints, raw::EndpointSpec),
        "Webhook" => parse_into!(webhooks, raw::WebhookSpec),
        "Orchestration" => parse_into!(orchestrations, raw::OrchestrationSpec),
        _ => {}
    }
}

fn de_diag(e: DeError) -> Diagnostic {
    let mut d = Diagnostic::new(e.message, e.loc);
    if let Some(h) = e.hint {
        d = d.with_hint(h);
    }
    d
}

/// Names defined more than once, for the unique-name check.
pub(crate) fn duplicates<'a>(
    names: impl Iterator<Item = &'a Sp<String>>,
) -> Vec<(&'a Sp<String>, Loc)> {
    let mut seen: BTreeMap<&str, Loc> = BTreeMap::new();
    let mut dups = Vec::new();
    for n in names {
        match seen.get(n.value.as_str()) {
            Some(first) => dups.push((n, *first)),
            None => {
                seen.insert(&n.value, n.loc);
            }
        }
    }
    dups
}
