//! The fast path for the few template shapes that make up most attribute mappings, rendered
//! without minijinja (a render through the VM costs ~1 µs; a reconcile pass renders every rule
//! of every entry).
//!
//! Recognised, exactly (one `{{ … }}` tag and nothing around it, any spaces inside):
//! - a literal without tags, braces or line breaks (`g1`);
//! - `{{ name }}`, `{{ name | lower }}`, `{{ name | upper }}`, `{{ name | trim }}`, where
//!   `name` is a plain identifier that is neither reserved nor a function;
//! - `{{ 'a' if disabled else 'b' }}` (and `if not disabled`), quoted literals without
//!   backslashes;
//! - `{{ lookup('table', 'name') }}` with literal arguments.
//!
//! A fast template renders only in the cases whose result is certain — a text first value, an
//! entry present, no extra variables, a lookup that resolves to exactly one id — and otherwise
//! says `None`, and the caller renders through minijinja. So the output is minijinja's in every
//! case; `tests.rs` checks that property against the VM.

use super::RenderContext;
use super::context::{FUNCTIONS, RESERVED_NAMES};
use crate::directory::AttrValue;

/// A filter the fast path applies itself (minijinja's definitions: `str::to_lowercase`,
/// `str::to_uppercase`, `str::trim`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Filter {
    Lower,
    Upper,
    Trim,
}

/// A recognised template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fast {
    Literal(String),
    Attr {
        name: String,
        filter: Option<Filter>,
    },
    IfDisabled {
        negated: bool,
        then: String,
        otherwise: String,
    },
    Lookup {
        table: String,
        name: String,
    },
}

impl Fast {
    /// Recognise `source`, or `None` when it is anything else.
    pub(crate) fn parse(source: &str) -> Option<Fast> {
        if !source.contains(['{', '}', '\n', '\r']) {
            return Some(Fast::Literal(source.to_string()));
        }
        let inner = source.strip_prefix("{{")?.strip_suffix("}}")?;
        // `{{-`, `-}}`, `{{+` and nested braces are minijinja's business.
        if inner.contains(['{', '}', '\n', '\r']) || inner.starts_with(['-', '+']) {
            return None;
        }
        if inner.ends_with(['-', '+']) {
            return None;
        }
        let mut p = Tokens::new(inner);
        let fast = p.expression()?;
        p.end().then_some(fast)
    }

    /// The rendered text, when certain; `None`: render through minijinja.
    pub(crate) fn render(&self, ctx: &RenderContext) -> Option<String> {
        match self {
            Fast::Literal(s) => Some(s.clone()),
            Fast::Attr { name, filter } => {
                // Extra variables win over attribute names.
                if !ctx.vars.is_empty() {
                    return None;
                }
                let AttrValue::Text(v) = ctx.entry.as_ref()?.first(name)? else {
                    return None;
                };
                Some(match filter {
                    None => v.clone(),
                    Some(Filter::Lower) => v.to_lowercase(),
                    Some(Filter::Upper) => v.to_uppercase(),
                    Some(Filter::Trim) => v.trim().to_string(),
                })
            }
            Fast::IfDisabled {
                negated,
                then,
                otherwise,
            } => {
                let disabled = ctx.entry.as_ref()?.disabled;
                Some(if disabled != *negated {
                    then.clone()
                } else {
                    otherwise.clone()
                })
            }
            Fast::Lookup { table, name } => {
                let name = name.trim();
                if name.is_empty() {
                    return None;
                }
                match ctx.lookups.resolve(table, name, None) {
                    Ok(Some(id)) => Some(id),
                    _ => None,
                }
            }
        }
    }
}

/// A tiny tokenizer over the inside of one `{{ … }}` tag.
struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Tokens<'a> {
    fn new(s: &'a str) -> Self {
        Tokens { rest: s }
    }

    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t']);
    }

    fn end(&mut self) -> bool {
        self.skip_ws();
        self.rest.is_empty()
    }

    fn punct(&mut self, c: char) -> bool {
        self.skip_ws();
        match self.rest.strip_prefix(c) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    fn ident(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let len = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest.len());
        let (id, rest) = self.rest.split_at(len);
        if id.is_empty() || id.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        self.rest = rest;
        Some(id)
    }

    fn keyword(&mut self, kw: &str) -> bool {
        let save = self.rest;
        if self.ident() == Some(kw) {
            true
        } else {
            self.rest = save;
            false
        }
    }

    fn string(&mut self) -> Option<String> {
        self.skip_ws();
        let quote = self
            .rest
            .chars()
            .next()
            .filter(|c| *c == '\'' || *c == '"')?;
        let body = &self.rest[1..];
        let end = body.find(quote)?;
        let s = &body[..end];
        if s.contains(['\\', '\'', '"']) {
            return None;
        }
        self.rest = &body[end + 1..];
        Some(s.to_string())
    }

    fn expression(&mut self) -> Option<Fast> {
        let save = self.rest;
        if let Some(then) = self.string() {
            // 'a' if [not] disabled else 'b'
            if !self.keyword("if") {
                return None;
            }
            let negated = self.keyword("not");
            if !self.keyword("disabled") || !self.keyword("else") {
                return None;
            }
            let otherwise = self.string()?;
            return Some(Fast::IfDisabled {
                negated,
                then,
                otherwise,
            });
        }
        self.rest = save;
        let name = self.ident()?;
        if KEYWORDS.contains(&name) {
            return None;
        }
        if name == "lookup" {
            if !self.punct('(') {
                return None;
            }
            let table = self.string()?;
            if !self.punct(',') {
                return None;
            }
            let arg = self.string()?;
            if !self.punct(')') {
                return None;
            }
            return Some(Fast::Lookup { table, name: arg });
        }
        if RESERVED_NAMES.contains(&name) || FUNCTIONS.contains(&name) {
            return None;
        }
        let filter = if self.punct('|') {
            match self.ident()? {
                "lower" => Some(Filter::Lower),
                "upper" => Some(Filter::Upper),
                "trim" => Some(Filter::Trim),
                _ => return None,
            }
        } else {
            None
        };
        Some(Fast::Attr {
            name: name.to_string(),
            filter,
        })
    }
}

/// Names minijinja reads as constants or operators rather than variables.
const KEYWORDS: &[&str] = &[
    "true", "false", "none", "True", "False", "None", "not", "and", "or", "in", "is", "if", "else",
    "loop", "self", "super", "varargs", "kwargs",
];
