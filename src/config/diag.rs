//! Config diagnostics: a message, a location, a label and a hint, rendered with a source snippet
//! (miette's graphical renderer) and always with `file:line:column`.

use std::path::PathBuf;
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};

use super::node::Loc;

/// One loaded file.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path relative to the config dir, `/`-separated (what diagnostics show).
    pub rel_path: String,
    /// Path on disk.
    pub path: PathBuf,
    /// The text (empty when the file was not valid UTF-8).
    pub text: Arc<str>,
    /// The raw bytes (for the config digest).
    pub bytes: Arc<[u8]>,
}

/// All files a config was loaded from; `Loc::file` indexes `files`.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    pub files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn add(&mut self, file: SourceFile) -> u32 {
        self.files.push(file);
        (self.files.len() - 1) as u32
    }

    pub fn file(&self, loc: &Loc) -> Option<&SourceFile> {
        self.files.get(loc.file as usize)
    }

    /// `path:line:column` of a location.
    pub fn position(&self, loc: &Loc) -> String {
        match self.file(loc) {
            Some(f) if loc.line > 0 => format!("{}:{}:{}", f.rel_path, loc.line, loc.col),
            Some(f) => f.rel_path.clone(),
            None => "<unknown>".into(),
        }
    }
}

/// A config problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    /// Where. `None` for problems of the whole config (e.g. "no Integration").
    pub loc: Option<Loc>,
    /// Short text under the highlighted span.
    pub label: Option<String>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>, loc: Option<Loc>) -> Self {
        Diagnostic {
            message: message.into(),
            loc,
            label: None,
            hint: None,
        }
    }

    pub fn at(loc: Loc, message: impl Into<String>) -> Self {
        Diagnostic::new(message, Some(loc))
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
}

/// Render diagnostics for a terminal or a log: `error: path:line:col: message`, then the
/// snippet. Deterministic for a given input (no terminal-width detection).
pub fn render(diags: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false)
        .with_context_lines(1);
    let mut out = String::new();
    for d in diags {
        let position = d.loc.map(|l| sources.position(&l));
        match &position {
            Some(p) => out.push_str(&format!("error: {p}: {}\n", d.message)),
            None => out.push_str(&format!("error: {}\n", d.message)),
        }
        let snippet_file = d
            .loc
            .filter(|l| l.line > 0)
            .and_then(|l| sources.file(&l).map(|f| (l, f)));
        if let Some((loc, file)) = snippet_file
            && !file.text.is_empty()
        {
            let mut md = MietteDiagnostic::new(d.message.clone());
            let len = snippet_len(&file.text, loc.offset, loc.len);
            md = md.with_label(LabeledSpan::new(
                d.label.clone().or_else(|| d.hint.clone()),
                loc.offset,
                len,
            ));
            if d.label.is_some()
                && let Some(h) = &d.hint
            {
                md = md.with_help(h.clone());
            }
            let report = miette::Report::new(md).with_source_code(NamedSource::new(
                file.rel_path.clone(),
                file.text.to_string(),
            ));
            let mut s = String::new();
            if handler.render_report(&mut s, report.as_ref()).is_ok() {
                // miette's header repeats the message: we already printed it with its position.
                let body: Vec<&str> = s.lines().skip_while(|l| !l.contains("╭─[")).collect();
                for line in body {
                    out.push_str(line.trim_end());
                    out.push('\n');
                }
            }
        } else if let Some(h) = &d.hint {
            out.push_str(&format!("  hint: {h}\n"));
        }
    }
    out
}

/// Highlight one token: the given length, else up to the end of the scalar on that line.
fn snippet_len(text: &str, offset: usize, len: usize) -> usize {
    if offset >= text.len() {
        return 0;
    }
    let rest = &text[offset..];
    let line_end = rest.find('\n').unwrap_or(rest.len());
    if len > 0 {
        return len.min(line_end.max(1));
    }
    let trimmed = rest[..line_end].trim_end();
    // Stop a key at its colon.
    let token_end = trimmed
        .find(": ")
        .or_else(|| trimmed.strip_suffix(':').map(|t| t.len()))
        .unwrap_or(trimmed.len());
    token_end.max(1).min(line_end.max(1))
}
