//! Errors of the template engine: compile-time issues and render-time failures.

use std::fmt;

/// A problem found in a template at compile/`validate` time.
///
/// `line` and `column` are 1-based and relative to the template source as the engine received
/// it (the YAML scalar's value after YAML unescaping): line 1, column 1 is its first character.
/// Columns count Unicode scalar values, not bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateIssue {
    /// What is wrong, for a human; never contains a secret value.
    pub message: String,
    /// 1-based line in the template source.
    pub line: usize,
    /// 1-based column (in characters) in the template source; best effort.
    pub column: usize,
}

impl TemplateIssue {
    /// An issue at byte `offset` of `source`.
    pub(crate) fn at(source: &str, offset: usize, message: impl Into<String>) -> Self {
        let (line, column) = line_column(source, offset);
        TemplateIssue {
            message: message.into(),
            line,
            column,
        }
    }
}

impl fmt::Display for TemplateIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// An issue in one of the named formats (`templates.formats`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatIssue {
    /// The format's name (its key under `formats`).
    pub format: String,
    /// The issue, located in that format's source.
    pub issue: TemplateIssue,
}

impl fmt::Display for FormatIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "format {:?}: {}", self.format, self.issue)
    }
}

/// Why a render failed. Messages never contain a secret value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// `lookup()` found no entry (SPEC §6 conflict `lookup_failed`). `name` is the name that
    /// was tried last: the `default=` name when one was given, else the requested name.
    #[error("lookup failed: no {table} entry named {name:?}")]
    LookupFailed {
        /// `companies` or `userGroups`.
        table: String,
        /// The (trimmed) name that did not resolve.
        name: String,
    },
    /// `lookup()` matched several entries, or needs `company=` because the tenant has several
    /// companies.
    #[error("lookup of {name:?} in {table} is ambiguous: {reason}")]
    LookupAmbiguous {
        /// `companies` or `userGroups`.
        table: String,
        /// The (trimmed) name looked up.
        name: String,
        /// What makes it ambiguous and what to do.
        reason: String,
    },
    /// `secret()` could not be resolved, or is not available in this render.
    #[error("secret {name:?}: {reason}")]
    Secret {
        /// The secret reference as written: `NAME` (an environment variable) or `file:PATH`.
        name: String,
        /// Why it failed (from the resolver; must not contain the value).
        reason: String,
    },
    /// Any other failure: undefined value in strict mode, a filter rejecting its input, a
    /// format that nests too deep...
    #[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Template {
        /// What failed.
        message: String,
        /// 1-based line in the template source, when known.
        line: Option<usize>,
    },
}

/// 1-based (line, column) of byte `offset` in `source`; column counts characters.
pub(crate) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let src = "ab\ncdé\nf";
        assert_eq!(line_column(src, 0), (1, 1));
        assert_eq!(line_column(src, 3), (2, 1));
        assert_eq!(line_column(src, 7), (2, 4), "é is one column");
        assert_eq!(line_column(src, 6), (2, 3), "inside a char snaps back");
        assert_eq!(line_column(src, 99), (3, 2));
    }
}
