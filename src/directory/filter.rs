//! RFC 4515 LDAP search filters: parse to an AST, print canonically, evaluate client-side.
//!
//! Parsing follows RFC 4515 with the tolerance of OpenLDAP's `ldapsearch`:
//! - a filter without outer parentheses (`objectClass=user`, `&(a=1)(b=2)`) is read as if it
//!   were wrapped in them;
//! - whitespace (spaces, tabs, newlines — YAML folds long filters) is allowed around the whole
//!   filter, after `(` and between the parts of `&`, `|` and `!`; it is never stripped from
//!   values, and attribute names cannot contain it;
//! - besides `\XX` hex escapes, the RFC 2254 forms `\*`, `\(`, `\)` and `\\` are accepted;
//! - `(&)` and `(|)` are the RFC 4526 absolute true and false filters.
//!
//! [`fmt::Display`] prints the canonical form: no whitespace, every special byte as a lowercase
//! `\XX` escape (see [`escape_value`]), so `parse(filter.to_string()) == filter`.
//!
//! [`Filter::matches`] implements the client-side evaluation used for LDIF sources and
//! `disabledFilter` (SPEC §6.1); [`Filter::client_side_support`] tells which filters it can
//! evaluate faithfully.

use std::fmt::{self, Write as _};

use super::dn::{Dn, first_ava_value, hex_digit, normalize_case_ignore, prepare_case_ignore};
use super::entry::{AttrValue, Entry, attribute_type, is_valid_attribute_description};

/// The LDAP_MATCHING_RULE_BIT_AND extensible matching rule (Active Directory).
pub const BIT_AND_RULE: &str = "1.2.840.113556.1.4.803";
/// The LDAP_MATCHING_RULE_BIT_OR extensible matching rule (Active Directory).
pub const BIT_OR_RULE: &str = "1.2.840.113556.1.4.804";

/// A parsed LDAP search filter. Assertion values are the raw bytes (escapes undone).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Filter {
    /// `(&f1 f2 ...)`; `(&)` is always true.
    And(Vec<Filter>),
    /// `(|f1 f2 ...)`; `(|)` is always false.
    Or(Vec<Filter>),
    /// `(!f)`.
    Not(Box<Filter>),
    /// `(attr=value)`.
    Equality {
        /// Attribute description (may carry options such as `;lang-en`).
        attr: String,
        /// Assertion value.
        value: Vec<u8>,
    },
    /// `(attr=initial*any1*any2*final)`; at least one of the parts is present and none is
    /// empty.
    Substrings {
        /// Attribute description.
        attr: String,
        /// The part before the first `*`, if any.
        initial: Option<Vec<u8>>,
        /// The parts between `*`s, in order.
        any: Vec<Vec<u8>>,
        /// The part after the last `*`, if any.
        r#final: Option<Vec<u8>>,
    },
    /// `(attr>=value)`.
    GreaterOrEqual {
        /// Attribute description.
        attr: String,
        /// Assertion value.
        value: Vec<u8>,
    },
    /// `(attr<=value)`.
    LessOrEqual {
        /// Attribute description.
        attr: String,
        /// Assertion value.
        value: Vec<u8>,
    },
    /// `(attr=*)`.
    Present {
        /// Attribute description.
        attr: String,
    },
    /// `(attr~=value)`.
    Approx {
        /// Attribute description.
        attr: String,
        /// Assertion value.
        value: Vec<u8>,
    },
    /// `(attr:dn:rule:=value)`; `attr` or `rule` may be absent (not both).
    Extensible {
        /// Attribute description, if given.
        attr: Option<String>,
        /// Matching rule (OID or name), if given.
        rule: Option<String>,
        /// `:dn` — also match the attributes of the entry's DN.
        dn_attrs: bool,
        /// Assertion value.
        value: Vec<u8>,
    },
}

/// Why a filter cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The text is not an RFC 4515 filter.
    #[error("invalid LDAP filter at character {offset}: {message}")]
    Syntax {
        /// 0-based offset in characters (not bytes) into the filter text.
        offset: usize,
        /// What is wrong, and how to fix it when that is not obvious.
        message: String,
    },
    /// The filter is valid but uses a construct client-side evaluation does not support.
    #[error("{construct} cannot be evaluated client-side: {reason}")]
    Unsupported {
        /// The offending sub-filter in canonical form, e.g. `(cn:caseExactMatch:=x)`.
        construct: String,
        /// What is unsupported and what is.
        reason: String,
    },
}

impl FilterError {
    /// The character offset of a syntax error.
    pub fn offset(&self) -> Option<usize> {
        match self {
            FilterError::Syntax { offset, .. } => Some(*offset),
            FilterError::Unsupported { .. } => None,
        }
    }
}

impl Filter {
    /// Parse an RFC 4515 filter (see the module docs for the accepted leniencies).
    pub fn parse(input: &str) -> Result<Filter, FilterError> {
        Parser {
            input,
            bytes: input.as_bytes(),
            pos: 0,
        }
        .parse_top()
    }

    /// `(attr=value)` for a value the tool itself puts into a filter (a primary key, an
    /// anchor's bytes): printing escapes `*`, `(`, `)`, `\`, NUL, control characters and
    /// non-UTF-8 bytes as RFC 4515 requires, so no value can change the filter's meaning.
    pub fn equality(attr: &str, value: impl AsRef<[u8]>) -> Filter {
        Filter::Equality {
            attr: attr.to_string(),
            value: value.as_ref().to_vec(),
        }
    }

    /// The attribute types (options dropped) this filter tests, in first-use order, each once
    /// (compared case-insensitively).
    pub fn attribute_types(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        self.collect_attribute_types(&mut out);
        out
    }

    fn collect_attribute_types(&self, out: &mut Vec<String>) {
        let attr = match self {
            Filter::And(parts) | Filter::Or(parts) => {
                for part in parts {
                    part.collect_attribute_types(out);
                }
                return;
            }
            Filter::Not(inner) => return inner.collect_attribute_types(out),
            Filter::Equality { attr, .. }
            | Filter::Substrings { attr, .. }
            | Filter::GreaterOrEqual { attr, .. }
            | Filter::LessOrEqual { attr, .. }
            | Filter::Present { attr }
            | Filter::Approx { attr, .. } => attr.as_str(),
            Filter::Extensible {
                attr: Some(attr), ..
            } => attr.as_str(),
            Filter::Extensible { attr: None, .. } => return,
        };
        let attr = attribute_type(attr);
        if !out.iter().any(|a| a.eq_ignore_ascii_case(attr)) {
            out.push(attr.to_string());
        }
    }

    /// Check that [`Filter::matches`] evaluates this filter as a server would: and, or, not,
    /// equality, presence, substrings, `>=`, `<=`, `~=`, and extensible matches with the
    /// bitwise rules [`BIT_AND_RULE`] / [`BIT_OR_RULE`] on a named attribute with an integer
    /// value and without `:dn`. The first other construct found is the error.
    pub fn client_side_support(&self) -> Result<(), FilterError> {
        match self {
            Filter::And(parts) | Filter::Or(parts) => {
                parts.iter().try_for_each(Filter::client_side_support)
            }
            Filter::Not(inner) => inner.client_side_support(),
            Filter::Equality { .. }
            | Filter::Substrings { .. }
            | Filter::GreaterOrEqual { .. }
            | Filter::LessOrEqual { .. }
            | Filter::Present { .. }
            | Filter::Approx { .. } => Ok(()),
            Filter::Extensible {
                attr,
                rule,
                dn_attrs,
                value,
            } => {
                let unsupported = |reason: &str| {
                    Err(FilterError::Unsupported {
                        construct: self.to_string(),
                        reason: reason.to_string(),
                    })
                };
                const ONLY: &str = "only the bitwise rules 1.2.840.113556.1.4.803 (AND) and \
                                    1.2.840.113556.1.4.804 (OR) are supported";
                match rule.as_deref() {
                    None => {
                        return unsupported(&format!("extensible match without a rule; {ONLY}"));
                    }
                    Some(BIT_AND_RULE | BIT_OR_RULE) => {}
                    Some(other) => {
                        return unsupported(&format!("matching rule '{other}'; {ONLY}"));
                    }
                }
                if attr.is_none() {
                    return unsupported("a bitwise rule needs an attribute, as in (attr:RULE:=N)");
                }
                if *dn_attrs {
                    return unsupported("':dn' (matching the DN's attributes) is not supported");
                }
                if parse_integer(value).is_none() {
                    return unsupported("a bitwise rule needs an integer value");
                }
                Ok(())
            }
        }
    }

    /// Evaluate the filter against an entry (SPEC §6.1).
    ///
    /// - `=`, `~=` and substrings compare as caseIgnoreMatch: case-insensitively, with leading,
    ///   trailing and repeated inner spaces ignored. `~=` is the same as `=` (no phonetics).
    /// - Attributes for which `is_binary(type)` is true, attributes with the `;binary` option,
    ///   binary values and assertions that are not UTF-8 compare bytes exactly.
    /// - `>=`/`<=` compare as integers when both sides are integers, else as caseIgnore strings
    ///   (bytes for binary attributes).
    /// - The bitwise rules test the integer values' bits (two's complement for negatives):
    ///   803 matches when all asserted bits are set, 804 when any is.
    /// - `objectCategory=<short name>` matches the short name itself or the DN of the class's
    ///   default category (`CN=Person,CN=Schema,...`): the short name's `cn` form is compared
    ///   with the DN's first RDN value, `organizationalUnit` <-> `Organizational-Unit`, and
    ///   `user`, `contact` and `inetOrgPerson` map to `Person` as in Active Directory. An
    ///   assertion that is itself a DN is compared as a DN.
    /// - `=` on the common DN-valued attributes (`member`, `memberOf`, `manager`,
    ///   `distinguishedName`, ...) also matches a value that is the same DN spelled
    ///   differently (spaces after commas, `\2C` for `\,`).
    /// - A filter on an attribute the entry lacks is false, so `(!(x=1))` matches entries
    ///   without `x`, as real servers do for attributes in their schema. Only constructs
    ///   outside [`Filter::client_side_support`] (and bitwise rules on non-integer values) are
    ///   Undefined, which `!` keeps Undefined and which never matches.
    /// - Attribute names are case-insensitive; a name without options also sees its subtypes
    ///   (`cn` sees `cn;lang-en`).
    pub fn matches(&self, entry: &Entry, is_binary: &dyn Fn(&str) -> bool) -> bool {
        self.evaluate(entry, is_binary) == Truth::True
    }

    fn evaluate(&self, entry: &Entry, is_binary: &dyn Fn(&str) -> bool) -> Truth {
        match self {
            Filter::And(parts) => {
                let mut result = Truth::True;
                for part in parts {
                    match part.evaluate(entry, is_binary) {
                        Truth::False => return Truth::False,
                        Truth::Undefined => result = Truth::Undefined,
                        Truth::True => {}
                    }
                }
                result
            }
            Filter::Or(parts) => {
                let mut result = Truth::False;
                for part in parts {
                    match part.evaluate(entry, is_binary) {
                        Truth::True => return Truth::True,
                        Truth::Undefined => result = Truth::Undefined,
                        Truth::False => {}
                    }
                }
                result
            }
            Filter::Not(inner) => match inner.evaluate(entry, is_binary) {
                Truth::True => Truth::False,
                Truth::False => Truth::True,
                Truth::Undefined => Truth::Undefined,
            },
            Filter::Present { attr } => entry.values_with_subtypes(attr).next().is_some().into(),
            Filter::Equality { attr, value } | Filter::Approx { attr, value } => {
                if attribute_type(attr).eq_ignore_ascii_case("objectCategory")
                    && let Ok(assertion) = std::str::from_utf8(value)
                {
                    return entry
                        .values_with_subtypes(attr)
                        .any(|v| object_category_matches(v, assertion))
                        .into();
                }
                let binary = binary_attribute(attr, is_binary);
                let assertion = Prepared::new(value, binary, true, true);
                // DN-valued attributes also match a differently spelled DN
                // (`cn=a, ou=b` = `CN=A,OU=B`).
                let assertion_dn = DN_ATTRIBUTES
                    .iter()
                    .any(|a| attribute_type(attr).eq_ignore_ascii_case(a))
                    .then(|| std::str::from_utf8(value).ok())
                    .flatten()
                    .and_then(|s| Dn::parse(s).ok())
                    .filter(|dn| !dn.is_root());
                entry
                    .values_with_subtypes(attr)
                    .any(|v| {
                        assertion.equals(v, binary)
                            || assertion_dn.as_ref().is_some_and(|a| {
                                v.as_text()
                                    .and_then(|t| Dn::parse(t).ok())
                                    .is_some_and(|d| d == *a)
                            })
                    })
                    .into()
            }
            Filter::Substrings {
                attr,
                initial,
                any,
                r#final,
            } => {
                let binary = binary_attribute(attr, is_binary);
                let initial = initial
                    .as_deref()
                    .map(|p| Prepared::new(p, binary, true, false));
                let any: Vec<_> = any
                    .iter()
                    .map(|p| Prepared::new(p, binary, false, false))
                    .collect();
                let r#final = r#final
                    .as_deref()
                    .map(|p| Prepared::new(p, binary, false, true));
                entry
                    .values_with_subtypes(attr)
                    .any(|v| substrings_match(v, binary, initial.as_ref(), &any, r#final.as_ref()))
                    .into()
            }
            Filter::GreaterOrEqual { attr, value } | Filter::LessOrEqual { attr, value } => {
                let binary = binary_attribute(attr, is_binary);
                let want_greater = matches!(self, Filter::GreaterOrEqual { .. });
                entry
                    .values_with_subtypes(attr)
                    .any(|v| {
                        let ord = compare_ordering(v, value, binary);
                        if want_greater {
                            ord.is_ge()
                        } else {
                            ord.is_le()
                        }
                    })
                    .into()
            }
            Filter::Extensible {
                attr: Some(attr),
                rule: Some(rule),
                dn_attrs: false,
                value,
            } if rule == BIT_AND_RULE || rule == BIT_OR_RULE => {
                let Some(mask) = parse_integer(value) else {
                    return Truth::Undefined;
                };
                let mut result = Truth::False;
                for v in entry.values_with_subtypes(attr) {
                    let Some(n) = parse_integer(v.as_bytes()) else {
                        result = Truth::Undefined;
                        continue;
                    };
                    // Two's complement bits of a 64-bit value (groupType is negative).
                    let (n, mask) = (n as i64, mask as i64);
                    let hit = if rule == BIT_AND_RULE {
                        n & mask == mask
                    } else {
                        n & mask != 0
                    };
                    if hit {
                        return Truth::True;
                    }
                }
                result
            }
            Filter::Extensible { .. } => Truth::Undefined,
        }
    }
}

/// Attributes with DN syntax whose `=` also compares values as DNs (RFC 4514 normalised).
const DN_ATTRIBUTES: &[&str] = &[
    "distinguishedName",
    "member",
    "memberOf",
    "manager",
    "directReports",
    "managedBy",
    "owner",
    "seeAlso",
    "secretary",
];

/// LDAP's three-valued filter result (RFC 4511 §4.5.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    True,
    False,
    Undefined,
}

impl From<bool> for Truth {
    fn from(b: bool) -> Self {
        if b { Truth::True } else { Truth::False }
    }
}

fn binary_attribute(attr: &str, is_binary: &dyn Fn(&str) -> bool) -> bool {
    is_binary(attribute_type(attr))
        || attr
            .split(';')
            .skip(1)
            .any(|opt| opt.eq_ignore_ascii_case("binary"))
}

/// An assertion value prepared once per evaluation: its raw bytes and, unless it is compared
/// as bytes, its caseIgnore-prepared text.
struct Prepared<'a> {
    raw: &'a [u8],
    text: Option<String>,
}

impl<'a> Prepared<'a> {
    fn new(raw: &'a [u8], binary: bool, trim_start: bool, trim_end: bool) -> Self {
        let text = match std::str::from_utf8(raw) {
            Ok(text) if !binary => Some(prepare_case_ignore(text, trim_start, trim_end)),
            _ => None,
        };
        Prepared { raw, text }
    }

    fn equals(&self, value: &AttrValue, binary: bool) -> bool {
        match (&self.text, value) {
            (Some(a), AttrValue::Text(v)) if !binary => normalize_case_ignore(v) == *a,
            _ => value.as_bytes() == self.raw,
        }
    }

    /// The bytes to look for in a value prepared as text (`Some`) or compared raw.
    fn needle(&self, text_value: bool) -> Option<&[u8]> {
        if text_value {
            self.text.as_deref().map(str::as_bytes)
        } else {
            Some(self.raw)
        }
    }
}

fn substrings_match(
    value: &AttrValue,
    binary: bool,
    initial: Option<&Prepared<'_>>,
    any: &[Prepared<'_>],
    r#final: Option<&Prepared<'_>>,
) -> bool {
    let prepared;
    let (hay, text_value): (&[u8], bool) = match value {
        AttrValue::Text(v) if !binary => {
            prepared = normalize_case_ignore(v);
            (prepared.as_bytes(), true)
        }
        v => (v.as_bytes(), false),
    };
    let mut pos = 0;
    if let Some(initial) = initial {
        match initial.needle(text_value) {
            Some(p) if hay.starts_with(p) => pos = p.len(),
            _ => return false,
        }
    }
    for part in any {
        let Some(p) = part.needle(text_value) else {
            return false;
        };
        match find(&hay[pos..], p) {
            Some(at) => pos += at + p.len(),
            None => return false,
        }
    }
    match r#final.map(|f| f.needle(text_value)) {
        None => true,
        Some(Some(p)) => hay[pos..].ends_with(p),
        Some(None) => false,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn compare_ordering(value: &AttrValue, assertion: &[u8], binary: bool) -> std::cmp::Ordering {
    if !binary && let (Some(v), Ok(a)) = (value.as_text(), std::str::from_utf8(assertion)) {
        if let (Some(v), Some(a)) = (parse_integer(v.as_bytes()), parse_integer(a.as_bytes())) {
            return v.cmp(&a);
        }
        return normalize_case_ignore(v).cmp(&normalize_case_ignore(a));
    }
    value.as_bytes().cmp(assertion)
}

/// An optionally signed decimal integer, surrounding spaces allowed (Integer syntax).
fn parse_integer(bytes: &[u8]) -> Option<i128> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `objectCategory` equality: see [`Filter::matches`].
fn object_category_matches(value: &AttrValue, assertion: &str) -> bool {
    let Some(value) = value.as_text() else {
        return false;
    };
    if assertion.contains('=') {
        return match (Dn::parse(value), Dn::parse(assertion)) {
            (Ok(v), Ok(a)) => v == a,
            _ => normalize_case_ignore(value) == normalize_case_ignore(assertion),
        };
    }
    let value_category = if value.contains('=') {
        first_ava_value(value)
            .and_then(|v| String::from_utf8(v).ok())
            .map(|v| category_key(&v))
    } else {
        Some(category_key(value))
    };
    value_category == Some(category_key(assertion))
}

/// The lowercased `cn` of a class's default object category, from a short name
/// (`organizationalUnit` -> `organizational-unit`) or a `cn` (`Organizational-Unit`).
fn category_key(name: &str) -> String {
    let name = name.trim();
    // Classes whose defaultObjectCategory is another class's (Active Directory schema).
    const PERSON: &[&str] = &["person", "user", "contact", "inetorgperson"];
    if PERSON.iter().any(|p| name.eq_ignore_ascii_case(p)) {
        return "person".to_string();
    }
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_uppercase() && prev_lower {
            out.push('-');
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        out.extend(c.to_lowercase());
    }
    out
}

/// Escape an assertion value for a filter string (RFC 4515 §3): `*`, `(`, `)`, `\`, NUL,
/// control characters and bytes that are not UTF-8 become `\XX` (lowercase hex); other UTF-8
/// text is kept as is.
pub fn escape_value(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    escape_value_into(&mut out, bytes);
    out
}

fn escape_value_into(out: &mut String, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if matches!(c, '*' | '(' | ')' | '\\') || c.is_control() {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{b:02x}");
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\{b:02x}");
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        write_filter(&mut out, self);
        f.write_str(&out)
    }
}

impl std::str::FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Filter::parse(s)
    }
}

fn write_filter(out: &mut String, filter: &Filter) {
    out.push('(');
    match filter {
        Filter::And(parts) | Filter::Or(parts) => {
            out.push(if matches!(filter, Filter::And(_)) {
                '&'
            } else {
                '|'
            });
            for part in parts {
                write_filter(out, part);
            }
        }
        Filter::Not(inner) => {
            out.push('!');
            write_filter(out, inner);
        }
        Filter::Equality { attr, value } => write_simple(out, attr, "=", value),
        Filter::GreaterOrEqual { attr, value } => write_simple(out, attr, ">=", value),
        Filter::LessOrEqual { attr, value } => write_simple(out, attr, "<=", value),
        Filter::Approx { attr, value } => write_simple(out, attr, "~=", value),
        Filter::Present { attr } => {
            out.push_str(attr);
            out.push_str("=*");
        }
        Filter::Substrings {
            attr,
            initial,
            any,
            r#final,
        } => {
            out.push_str(attr);
            out.push('=');
            if let Some(initial) = initial {
                escape_value_into(out, initial);
            }
            out.push('*');
            for part in any {
                escape_value_into(out, part);
                out.push('*');
            }
            if let Some(r#final) = r#final {
                escape_value_into(out, r#final);
            }
        }
        Filter::Extensible {
            attr,
            rule,
            dn_attrs,
            value,
        } => {
            if let Some(attr) = attr {
                out.push_str(attr);
            }
            if *dn_attrs {
                out.push_str(":dn");
            }
            if let Some(rule) = rule {
                out.push(':');
                out.push_str(rule);
            }
            out.push_str(":=");
            escape_value_into(out, value);
        }
    }
    out.push(')');
}

fn write_simple(out: &mut String, attr: &str, op: &str, value: &[u8]) {
    out.push_str(attr);
    out.push_str(op);
    escape_value_into(out, value);
}

struct Parser<'a> {
    input: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// A value split at its unescaped `*`s, with the byte offset of each `*`.
struct StarredValue {
    parts: Vec<Vec<u8>>,
    stars: Vec<usize>,
}

impl Parser<'_> {
    fn error(&self, at: usize, message: impl Into<String>) -> FilterError {
        let at = at.min(self.input.len());
        let offset = self
            .input
            .get(..at)
            .map_or(at, |prefix| prefix.chars().count());
        FilterError::Syntax {
            offset,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn parse_top(mut self) -> Result<Filter, FilterError> {
        self.skip_ws();
        let filter = match self.peek() {
            None => return Err(self.error(self.pos, "empty filter")),
            Some(b'(') => self.parse_filter()?,
            // ldapsearch accepts `objectClass=user` and wraps it in parentheses.
            Some(_) => self.parse_component(None)?,
        };
        self.skip_ws();
        match self.peek() {
            None => Ok(filter),
            Some(b')') => Err(self.error(self.pos, "unbalanced ')': no matching '('")),
            Some(_) => Err(self.error(
                self.pos,
                "text after the end of the filter; combine several filters with (&...) or (|...)",
            )),
        }
    }

    /// `( filtercomp )`, at a `(`.
    fn parse_filter(&mut self) -> Result<Filter, FilterError> {
        let open = self.pos;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b')') {
            return Err(self.error(open, "empty filter '()'"));
        }
        let filter = self.parse_component(Some(open))?;
        if self.peek() == Some(b')') {
            self.pos += 1;
            Ok(filter)
        } else {
            Err(self.unclosed(open))
        }
    }

    fn unclosed(&self, open: usize) -> FilterError {
        let open_offset = self.input[..open].chars().count();
        self.error(
            self.pos,
            format!("unbalanced '(': the '(' at character {open_offset} is never closed"),
        )
    }

    /// `filtercomp`: `&list`, `|list`, `!filter` or an item. `open` is the byte offset of the
    /// enclosing `(`, `None` for a bare top-level filter.
    fn parse_component(&mut self, open: Option<usize>) -> Result<Filter, FilterError> {
        match self.peek() {
            Some(op @ (b'&' | b'|')) => {
                self.pos += 1;
                let mut parts = Vec::new();
                loop {
                    self.skip_ws();
                    match self.peek() {
                        Some(b'(') => parts.push(self.parse_filter()?),
                        Some(b')') | None => break,
                        Some(_) => {
                            return Err(self.error(
                                self.pos,
                                format!("expected '(' to start a filter inside '{}'", op as char),
                            ));
                        }
                    }
                }
                Ok(if op == b'&' {
                    Filter::And(parts)
                } else {
                    Filter::Or(parts)
                })
            }
            Some(b'!') => {
                let bang = self.pos;
                self.pos += 1;
                self.skip_ws();
                if self.peek() != Some(b'(') {
                    return Err(self.error(self.pos, "expected '(' after '!'"));
                }
                let inner = self.parse_filter()?;
                self.skip_ws();
                if self.peek() == Some(b'(') {
                    return Err(self.error(
                        bang,
                        "'!' takes exactly one filter; combine several with (&...) or (|...)",
                    ));
                }
                Ok(Filter::Not(Box::new(inner)))
            }
            _ => self.parse_item(open),
        }
    }

    fn parse_item(&mut self, open: Option<usize>) -> Result<Filter, FilterError> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b';'))
        {
            self.pos += 1;
        }
        let attr = &self.input[start..self.pos];
        if !attr.is_empty() && !is_valid_attribute_description(attr) {
            return Err(self.error(start, format!("invalid attribute description '{attr}'")));
        }
        let attr = attr.to_string();
        let op_at = self.pos;
        match self.peek() {
            Some(b'=') => {
                if attr.is_empty() {
                    return Err(self.error(start, "missing attribute description before '='"));
                }
                self.pos += 1;
                let value = self.parse_value(true, open)?;
                self.item_from_starred(attr, value)
            }
            Some(c @ (b'~' | b'>' | b'<')) => {
                if attr.is_empty() {
                    return Err(self.error(
                        start,
                        format!("missing attribute description before '{}='", c as char),
                    ));
                }
                if self.bytes.get(self.pos + 1) != Some(&b'=') {
                    return Err(self.error(self.pos, format!("expected '=' after '{}'", c as char)));
                }
                self.pos += 2;
                let value = self.parse_value(false, open)?.parts.remove(0);
                Ok(match c {
                    b'~' => Filter::Approx { attr, value },
                    b'>' => Filter::GreaterOrEqual { attr, value },
                    _ => Filter::LessOrEqual { attr, value },
                })
            }
            Some(b':') => self.parse_extensible(attr, open),
            None if open.is_some() => Err(self.unclosed(open.unwrap_or_default())),
            _ if attr.is_empty() => {
                Err(self.error(op_at, "expected an attribute description, '&', '|' or '!'"))
            }
            None => Err(self.error(op_at, format!("expected an operator after '{attr}'"))),
            Some(c) if c.is_ascii_whitespace() => Err(self.error(
                op_at,
                format!(
                    "unexpected space after '{attr}'; no spaces are allowed between an \
                     attribute and its operator"
                ),
            )),
            Some(_) => Err(self.error(
                op_at,
                format!(
                    "expected '=', '~=', '>=', '<=' or ':' after '{attr}'; attribute names \
                     contain only letters, digits, '-', '.' and ';'"
                ),
            )),
        }
    }

    /// `[attr][:dn][:rule]:=value`, at the first `:`.
    fn parse_extensible(
        &mut self,
        attr: String,
        open: Option<usize>,
    ) -> Result<Filter, FilterError> {
        let first_colon = self.pos;
        let mut dn_attrs = false;
        let mut rule = None;
        loop {
            // At a ':'.
            self.pos += 1;
            if self.peek() == Some(b'=') {
                self.pos += 1;
                break;
            }
            let start = self.pos;
            while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.'))
            {
                self.pos += 1;
            }
            let word = &self.input[start..self.pos];
            if word.is_empty() {
                return Err(self.error(start, "expected 'dn', a matching rule or '=' after ':'"));
            }
            if word.eq_ignore_ascii_case("dn") && !dn_attrs && rule.is_none() {
                dn_attrs = true;
            } else if rule.is_none() && is_valid_attribute_description(word) {
                rule = Some(word.to_string());
            } else {
                return Err(self.error(start, format!("unexpected '{word}' in extensible match")));
            }
            if self.peek() != Some(b':') {
                return Err(self.error(self.pos, "expected ':=' in extensible match"));
            }
        }
        let attr = if attr.is_empty() {
            if rule.is_none() {
                return Err(self.error(
                    first_colon,
                    "an extensible match without an attribute needs a matching rule",
                ));
            }
            None
        } else {
            Some(attr)
        };
        let value = self.parse_value(false, open)?.parts.remove(0);
        Ok(Filter::Extensible {
            attr,
            rule,
            dn_attrs,
            value,
        })
    }

    fn item_from_starred(&self, attr: String, value: StarredValue) -> Result<Filter, FilterError> {
        let StarredValue { mut parts, stars } = value;
        if parts.len() == 1 {
            let value = parts.remove(0);
            return Ok(Filter::Equality { attr, value });
        }
        if parts.len() == 2 && parts.iter().all(Vec::is_empty) {
            return Ok(Filter::Present { attr });
        }
        // Between two '*'s there must be something: `a**b` is not a valid substring filter.
        for (i, part) in parts.iter().enumerate().take(parts.len() - 1).skip(1) {
            if part.is_empty() {
                return Err(self.error(stars[i], "empty substring between two '*'"));
            }
        }
        let r#final = parts.pop().filter(|p| !p.is_empty());
        let initial = Some(parts.remove(0)).filter(|p| !p.is_empty());
        Ok(Filter::Substrings {
            attr,
            initial,
            any: parts,
            r#final,
        })
    }

    /// An assertion value up to the closing `)` (or the end for a bare filter), escapes
    /// undone; split at unescaped `*` when `stars` is allowed.
    fn parse_value(
        &mut self,
        stars_allowed: bool,
        open: Option<usize>,
    ) -> Result<StarredValue, FilterError> {
        let mut parts = vec![Vec::new()];
        let mut stars = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return match open {
                    Some(open) => Err(self.unclosed(open)),
                    None => Ok(StarredValue { parts, stars }),
                };
            };
            match c {
                b')' => return Ok(StarredValue { parts, stars }),
                b'(' => {
                    return Err(self.error(self.pos, "unescaped '(' in a value; write it as \\28"));
                }
                0 => return Err(self.error(self.pos, "NUL in a value; write it as \\00")),
                b'*' if stars_allowed => {
                    stars.push(self.pos);
                    parts.push(Vec::new());
                    self.pos += 1;
                }
                b'*' => {
                    return Err(self.error(
                        self.pos,
                        "unescaped '*' is only allowed in '=' filters; write \\2a for a literal '*'",
                    ));
                }
                b'\\' => {
                    let byte = self.parse_escape()?;
                    if let Some(last) = parts.last_mut() {
                        last.push(byte);
                    }
                }
                _ => {
                    if let Some(last) = parts.last_mut() {
                        last.push(c);
                    }
                    self.pos += 1;
                }
            }
        }
    }

    fn parse_escape(&mut self) -> Result<u8, FilterError> {
        let at = self.pos;
        let next = self.bytes.get(at + 1).copied();
        if let Some(hi) = next.and_then(hex_digit) {
            if let Some(lo) = self.bytes.get(at + 2).copied().and_then(hex_digit) {
                self.pos += 3;
                return Ok(hi << 4 | lo);
            }
        } else if let Some(c @ (b'*' | b'(' | b')' | b'\\')) = next {
            // RFC 2254 / 1960 style, still accepted by OpenLDAP.
            self.pos += 2;
            return Ok(c);
        }
        Err(self.error(
            at,
            "bad escape: '\\' must be followed by two hex digits (\\2a for '*', \\28 '(', \\29 ')', \\5c '\\')",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn values_put_into_filters_are_escaped() {
        let f = Filter::equality("cn", b"a*(b)\\c\0\xff");
        assert_eq!(f.to_string(), r"(cn=a\2a\28b\29\5cc\00\ff)");
        assert_eq!(Filter::parse(&f.to_string()), Ok(f));
        let guid = [
            0x28u8, 0x2a, 0x29, 0x5c, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
        ];
        let f = Filter::equality("objectGUID", guid);
        assert_eq!(Filter::parse(&f.to_string()), Ok(f));
    }

    #[test]
    fn attribute_types_of_a_filter() {
        let f = Filter::parse("(&(userAccountControl:1.2.840.113556.1.4.803:=2)(!(CN;lang-en=x))(cn=*)(:dn:2.5.13.5:=y))").unwrap();
        assert_eq!(f.attribute_types(), ["userAccountControl", "CN"]);
    }

    fn parse(s: &str) -> Filter {
        Filter::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn eq(attr: &str, value: &[u8]) -> Filter {
        Filter::Equality {
            attr: attr.into(),
            value: value.to_vec(),
        }
    }

    fn entry(attrs: &[(&str, &str)]) -> Entry {
        let mut e = Entry::new("CN=Test,DC=corp");
        for (name, value) in attrs {
            e.push(name, AttrValue::Text((*value).to_string()));
        }
        e
    }

    fn not_binary(_: &str) -> bool {
        false
    }

    fn ad_binary(attr: &str) -> bool {
        attr.eq_ignore_ascii_case("objectGUID") || attr.eq_ignore_ascii_case("objectSid")
    }

    fn hits(filter: &str, e: &Entry) -> bool {
        let f = parse(filter);
        f.client_side_support()
            .unwrap_or_else(|err| panic!("{filter}: {err}"));
        f.matches(e, &ad_binary)
    }

    #[test]
    fn rfc4515_examples_parse_and_print_canonically() {
        let cases = [
            ("(cn=Babs Jensen)", "(cn=Babs Jensen)"),
            ("(!(cn=Tim Howes))", "(!(cn=Tim Howes))"),
            (
                "(&(objectClass=Person)(|(sn=Jensen)(cn=Babs J*)))",
                "(&(objectClass=Person)(|(sn=Jensen)(cn=Babs J*)))",
            ),
            ("(o=univ*of*mich*)", "(o=univ*of*mich*)"),
            ("(seeAlso=)", "(seeAlso=)"),
            (
                "(cn:caseExactMatch:=Fred Flintstone)",
                "(cn:caseExactMatch:=Fred Flintstone)",
            ),
            ("(cn:=Betty Rubble)", "(cn:=Betty Rubble)"),
            (
                "(sn:dn:2.4.6.8.10:=Barney Rubble)",
                "(sn:dn:2.4.6.8.10:=Barney Rubble)",
            ),
            ("(o:dn:=Ace Industry)", "(o:dn:=Ace Industry)"),
            ("(:1.2.3:=Wilma Flintstone)", "(:1.2.3:=Wilma Flintstone)"),
            ("(:DN:2.4.6.8.10:=Dino)", "(:dn:2.4.6.8.10:=Dino)"),
            (
                r"(o=Parens R Us \28for all your parenthetical needs\29)",
                r"(o=Parens R Us \28for all your parenthetical needs\29)",
            ),
            (r"(cn=*\2A*)", r"(cn=*\2a*)"),
            (r"(filename=C:\5cMyFile)", r"(filename=C:\5cMyFile)"),
            (r"(bin=\00\00\00\04)", r"(bin=\00\00\00\04)"),
            (r"(sn=Lu\c4\8di\c4\87)", "(sn=Lučić)"),
            (
                r"(1.3.6.1.4.1.1466.0=\04\02\48\69)",
                r"(1.3.6.1.4.1.1466.0=\04\02Hi)",
            ),
            ("(cn;lang-en>=M)", "(cn;lang-en>=M)"),
            ("(cn~=Jon)", "(cn~=Jon)"),
            ("(uSNChanged<=100)", "(uSNChanged<=100)"),
            ("(&)", "(&)"),
            ("(|)", "(|)"),
        ];
        for (input, canonical) in cases {
            let f = parse(input);
            assert_eq!(f.to_string(), canonical, "{input}");
            assert_eq!(parse(canonical), f, "{input}");
        }
    }

    #[test]
    fn ast_shapes() {
        assert_eq!(parse("(cn=*)"), Filter::Present { attr: "cn".into() });
        assert_eq!(
            parse("(cn=a*b*c*d)"),
            Filter::Substrings {
                attr: "cn".into(),
                initial: Some(b"a".to_vec()),
                any: vec![b"b".to_vec(), b"c".to_vec()],
                r#final: Some(b"d".to_vec()),
            }
        );
        assert_eq!(
            parse("(cn=*x)"),
            Filter::Substrings {
                attr: "cn".into(),
                initial: None,
                any: vec![],
                r#final: Some(b"x".to_vec()),
            }
        );
        assert_eq!(
            parse("(userAccountControl:1.2.840.113556.1.4.803:=2)"),
            Filter::Extensible {
                attr: Some("userAccountControl".into()),
                rule: Some(BIT_AND_RULE.into()),
                dn_attrs: false,
                value: b"2".to_vec(),
            }
        );
        assert_eq!(parse(r"(cn=\2a)"), eq("cn", b"*"));
        assert_eq!(parse(r"(cn=a\*b\(\)\\)"), eq("cn", b"a*b()\\"));
        assert_eq!(parse("(cn= spaced  )"), eq("cn", b" spaced  "));
    }

    #[test]
    fn bare_filters_and_whitespace_like_ldapsearch() {
        assert_eq!(parse("objectClass=user"), eq("objectClass", b"user"));
        assert_eq!(
            "objectClass=user".parse::<Filter>(),
            Ok(eq("objectClass", b"user"))
        );
        assert_eq!(parse("  (objectClass=user)\n"), eq("objectClass", b"user"));
        assert_eq!(parse("&(a=1)(b=2)"), parse("(&(a=1)(b=2))"));
        assert_eq!(parse("!(a=1)"), parse("(!(a=1))"));
        assert_eq!(
            parse("(&\n  (objectClass=user)\n  (| (a=1) (b=2) )\n  (! (c=3))\n)"),
            parse("(&(objectClass=user)(|(a=1)(b=2))(!(c=3)))")
        );
    }

    #[test]
    fn syntax_errors_have_char_offsets_and_clear_messages() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "empty filter"),
            ("   ", 3, "empty filter"),
            ("()", 0, "empty filter '()'"),
            ("(cn=a", 5, "the '(' at character 0 is never closed"),
            ("(&(cn=a)", 8, "the '(' at character 0 is never closed"),
            ("(cn=a))", 6, "unbalanced ')'"),
            ("cn=a)", 4, "unbalanced ')'"),
            ("(cn=a)(sn=b)", 6, "combine several filters"),
            ("(=a)", 1, "missing attribute description"),
            ("(>=a)", 1, "missing attribute description"),
            ("(cn)", 3, "expected '=', '~=', '>=', '<=' or ':'"),
            ("(cn =a)", 3, "unexpected space"),
            ("(c_n=a)", 2, "expected '='"),
            ("(1cn=a)", 1, "invalid attribute description '1cn'"),
            ("(cn;=a)", 1, "invalid attribute description"),
            ("(é=a)", 1, "expected an attribute description"),
            ("(cné=a)", 3, "expected '='"),
            ("(cn~a)", 3, "expected '=' after '~'"),
            (r"(cn=a\zz)", 5, "bad escape"),
            (r"(cn=a\4)", 5, "bad escape"),
            ("(cn=a\\", 5, "bad escape"),
            ("(cné=a\\", 3, "expected '='"),
            ("(sn=é\\q)", 5, "bad escape"),
            ("(cn=a(b)", 5, "unescaped '('"),
            ("(cn=a**b)", 6, "empty substring"),
            ("(cn>=a*)", 6, "unescaped '*'"),
            ("(cn:foo:bar:=x)", 8, "unexpected 'bar'"),
            ("(cn:=x", 6, "never closed"),
            ("(:=x)", 1, "needs a matching rule"),
            ("(:dn:=x)", 1, "needs a matching rule"),
            ("(cn::=x)", 4, "expected 'dn', a matching rule"),
            ("(cn:1.2=x)", 7, "expected ':='"),
            ("(&(a=1)x)", 7, "expected '(' to start a filter inside '&'"),
            ("(!(a=1)(b=2))", 1, "exactly one filter"),
            ("(!a=1)", 2, "expected '(' after '!'"),
            ("(!)", 2, "expected '(' after '!'"),
            ("(cn=a\0b)", 5, "NUL"),
        ];
        for (input, offset, message) in cases {
            match Filter::parse(input) {
                Ok(f) => panic!("{input:?} parsed as {f}"),
                Err(e) => {
                    assert_eq!(e.offset(), Some(*offset), "{input:?}: {e}");
                    assert!(e.to_string().contains(message), "{input:?}: {e}");
                }
            }
        }
    }

    #[test]
    fn escape_value_covers_specials_controls_and_non_utf8() {
        assert_eq!(escape_value(b"a*b(c)d\\e\0"), r"a\2ab\28c\29d\5ce\00");
        assert_eq!(escape_value("Zoë\n\t".as_bytes()), r"Zoë\0a\09");
        assert_eq!(escape_value(&[0xff, b'a', 0xc3]), r"\ffa\c3");
        assert_eq!(escape_value(b""), "");
    }

    #[test]
    fn client_side_subset() {
        for ok in [
            "(&(objectClass=user)(|(cn=a*)(!(sn~=b)))(x>=1)(y<=2)(z=*))",
            "(userAccountControl:1.2.840.113556.1.4.803:=2)",
            "(groupType:1.2.840.113556.1.4.804:=-2147483646)",
            "(objectCategory=person)",
        ] {
            parse(ok)
                .client_side_support()
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let cases = [
            (
                "(&(a=1)(cn:caseExactMatch:=x))",
                "(cn:caseExactMatch:=x)",
                "caseExactMatch",
            ),
            ("(cn:=x)", "(cn:=x)", "without a rule"),
            (
                "(:1.2.840.113556.1.4.803:=2)",
                "(:1.2.840.113556.1.4.803:=2)",
                "needs an attribute",
            ),
            (
                "(uac:dn:1.2.840.113556.1.4.803:=2)",
                "(uac:dn:1.2.840.113556.1.4.803:=2)",
                ":dn",
            ),
            (
                "(uac:1.2.840.113556.1.4.804:=x)",
                "(uac:1.2.840.113556.1.4.804:=x)",
                "integer",
            ),
            (
                "(member:1.2.840.113556.1.4.1941:=cn=g)",
                "1.2.840.113556.1.4.1941",
                "1.2.840.113556.1.4.1941",
            ),
        ];
        for (input, construct, reason) in cases {
            let err = parse(input).client_side_support().unwrap_err();
            assert_eq!(err.offset(), None);
            let text = err.to_string();
            assert!(text.contains(construct), "{input}: {text}");
            assert!(text.contains(reason), "{input}: {text}");
        }
    }

    #[test]
    fn bitwise_and_on_user_account_control() {
        let disabled = "(userAccountControl:1.2.840.113556.1.4.803:=2)";
        for (uac, expected) in [
            ("512", false),
            ("514", true),
            ("546", true),
            ("66050", true),
            ("66082", true),
            ("66048", false),
        ] {
            let e = entry(&[("userAccountControl", uac)]);
            assert_eq!(hits(disabled, &e), expected, "uac {uac}");
            assert_eq!(hits(&format!("(!{disabled})"), &e), !expected, "uac {uac}");
        }
        // All of the asserted bits (AND) versus any of them (OR): 546 = 512 + 32 + 2.
        let e = entry(&[("userAccountControl", "546")]);
        assert!(hits("(userAccountControl:1.2.840.113556.1.4.803:=34)", &e));
        assert!(!hits("(userAccountControl:1.2.840.113556.1.4.803:=66)", &e));
        assert!(hits("(userAccountControl:1.2.840.113556.1.4.804:=66)", &e));
        assert!(!hits(
            "(userAccountControl:1.2.840.113556.1.4.804:=65536)",
            &e
        ));
        // Negative values are two's complement (a global security group).
        let g = entry(&[("groupType", "-2147483646")]);
        assert!(hits("(groupType:1.2.840.113556.1.4.803:=2147483648)", &g));
        assert!(hits("(groupType:1.2.840.113556.1.4.803:=2)", &g));
        // Absent attribute: false, so its negation matches.
        let none = entry(&[("cn", "x")]);
        assert!(!hits(disabled, &none));
        assert!(hits(&format!("(!{disabled})"), &none));
        // A non-integer value is Undefined: neither the filter nor its negation matches.
        let junk = entry(&[("userAccountControl", "lots")]);
        assert!(!hits(disabled, &junk));
        assert!(!hits(&format!("(!{disabled})"), &junk));
    }

    #[test]
    fn case_ignore_equality_with_spaces() {
        let e = entry(&[
            ("displayName", "  Ann   MARIE  Lee "),
            ("objectClass", "top"),
            ("objectClass", "User"),
            ("sn", "Müller"),
        ]);
        assert!(hits("(displayname=ann marie lee)", &e));
        assert!(hits("(DISPLAYNAME=  Ann Marie   Lee)", &e));
        assert!(!hits("(displayName=AnnMarie Lee)", &e));
        assert!(hits("(displayName~=ANN MARIE LEE)", &e));
        assert!(hits("(objectClass=user)", &e));
        assert!(hits("(&(objectclass=TOP)(objectClass=user))", &e));
        assert!(hits("(sn=MÜLLER)", &e));
        assert!(hits(r"(sn=m\c3\bcller)", &e));
        assert!(!hits("(sn=Muller)", &e));
        assert!(!hits("(givenName=Ann)", &e));
        assert!(hits("(!(givenName=Ann))", &e));
        assert!(hits("(displayName=*)", &e));
        assert!(!hits("(givenName=*)", &e));
    }

    #[test]
    fn substrings() {
        let e = entry(&[("cn", "Lee *star* Ann"), ("mail", "ann.LEE@Corp.Example")]);
        assert!(hits(r"(cn=*\2astar\2a*)", &e));
        assert!(hits(r"(cn=lee \2a*)", &e));
        assert!(!hits(r"(cn=*\2a\2a*)", &e));
        assert!(hits("(mail=ann*@corp.example)", &e));
        assert!(hits("(mail=*LEE*)", &e));
        assert!(hits("(mail=a*n*.*e*)", &e));
        assert!(!hits("(mail=*corp*lee*)", &e));
        // Parts do not overlap.
        let short = entry(&[("cn", "ab")]);
        assert!(!hits("(cn=ab*b)", &short));
        assert!(hits("(cn=a*b)", &short));
        // Repeated spaces collapse; a space at an inner edge of a part is kept.
        let spaced = entry(&[("cn", "John    Smith")]);
        assert!(hits("(cn=john  *)", &spaced));
        assert!(hits("(cn=* smith)", &spaced));
        assert!(!hits("(cn=* smithy)", &spaced));
        assert!(!hits("(cn=johns*)", &spaced));
        assert!(hits("(cn=  JOHN*)", &spaced));
    }

    #[test]
    fn ordering_integer_or_string() {
        let e = entry(&[
            ("uSNChanged", "1000"),
            ("sn", "Miller"),
            ("when", "20240102000000.0Z"),
        ]);
        assert!(hits("(uSNChanged>=999)", &e));
        assert!(hits("(uSNChanged>=1000)", &e));
        assert!(!hits("(uSNChanged>=1001)", &e));
        assert!(hits("(uSNChanged<=1000)", &e));
        // Integer, not string, comparison: "1000" < "999" as strings.
        assert!(!hits("(uSNChanged<=999)", &e));
        assert!(hits("(sn>=m)", &e));
        assert!(hits("(sn<=MZ)", &e));
        assert!(!hits("(sn>=N)", &e));
        assert!(hits("(when>=20240101000000.0Z)", &e));
        assert!(!hits("(when<=20240101000000.0Z)", &e));
    }

    #[test]
    fn binary_guid_equality_uses_exact_bytes() {
        let guid: Vec<u8> = vec![
            0x61, 0x2a, 0x28, 0x29, 0x5c, 0x00, 0xff, 0x41, 0x41, 0x42, 0x43, 0x0a, 0x80, 0xc3,
            0xa9, 0x7f,
        ];
        let mut e = entry(&[("cn", "x")]);
        e.push("objectGUID", AttrValue::Binary(guid.clone()));
        let filter = format!("(objectGUID={})", escape_value(&guid));
        assert_eq!(parse(&filter), eq("objectGUID", &guid));
        assert!(hits(&filter, &e));
        let hex: String = guid.iter().map(|b| format!("\\{b:02X}")).collect();
        assert!(hits(&format!("(objectGUID={hex})"), &e));
        // Binary compare is exact: changing the case of the 'A' bytes breaks it.
        let mut other = guid.clone();
        other[7] = b'a';
        assert!(!hits(&format!("(objectGUID={})", escape_value(&other)), &e));
        assert!(hits(r"(objectGUID=a*)", &e));
        assert!(!hits(r"(objectGUID=A*)", &e));
        // A text value of a binary attribute also compares exactly.
        let t = entry(&[("objectSid", "AbC")]);
        assert!(hits("(objectSid=AbC)", &t));
        assert!(!hits("(objectSid=abc)", &t));
    }

    #[test]
    fn non_utf8_values_compare_bytes_and_binary_option() {
        let mut e = entry(&[]);
        e.push("photo", AttrValue::Binary(vec![0xff, b'A', b'b']));
        e.push("userCertificate;binary", AttrValue::Text("AbC".into()));
        assert!(hits(r"(photo=\ffAb)", &e));
        assert!(!hits(r"(photo=\ffab)", &e));
        assert!(hits(r"(photo=*Ab)", &e));
        assert!(!hits(r"(photo=*ab)", &e));
        assert!(hits("(userCertificate;binary=AbC)", &e));
        assert!(!hits("(userCertificate;binary=abc)", &e));
        // The bare type sees the subtype too.
        assert!(hits("(userCertificate=*)", &e));
        assert!(!hits("(userCertificate;lang-en=*)", &e));
    }

    #[test]
    fn object_category_short_names() {
        let person = entry(&[(
            "objectCategory",
            "CN=Person,CN=Schema,CN=Configuration,DC=corp,DC=example",
        )]);
        assert!(hits("(objectCategory=person)", &person));
        assert!(hits("(objectCategory=PERSON)", &person));
        assert!(hits("(objectCategory=user)", &person));
        assert!(!hits("(objectCategory=group)", &person));
        assert!(hits(
            "(objectCategory=cn=person,cn=schema,cn=configuration,dc=CORP,dc=example)",
            &person
        ));
        assert!(!hits(
            "(objectCategory=cn=person,cn=schema,dc=other)",
            &person
        ));
        let ou = entry(&[(
            "objectCategory",
            "CN=Organizational-Unit,CN=Schema,CN=Configuration,DC=corp",
        )]);
        assert!(hits("(objectCategory=organizationalUnit)", &ou));
        assert!(!hits("(objectCategory=person)", &ou));
        let device = entry(&[("objectCategory", "CN=ms-DS-Device,CN=Schema,DC=corp")]);
        assert!(hits("(objectCategory=msDS-Device)", &device));
        let short = entry(&[("objectCategory", "Person")]);
        assert!(hits("(objectCategory=person)", &short));
        assert!(hits("(objectCategory=user)", &short));
        assert!(!hits("(objectCategory=computer)", &short));
        assert!(!hits("(objectCategory=person)", &entry(&[])));
        assert!(hits("(!(objectCategory=person))", &entry(&[])));
    }

    #[test]
    fn dn_valued_attributes_compare_as_dns() {
        let e = entry(&[
            ("memberOf", r"CN=Sync Users,OU=Groups,DC=corp,DC=example"),
            ("manager", r"CN=Lee\, Ann,OU=Staff,DC=corp"),
            ("description", "CN=A,DC=x"),
        ]);
        assert!(hits(
            "(memberOf=cn=sync users, ou=groups, dc=corp, dc=example)",
            &e
        ));
        assert!(!hits(
            "(memberOf=cn=other,ou=groups,dc=corp,dc=example)",
            &e
        ));
        // In a filter a DN's backslash is itself escaped: \5c.
        assert!(hits(r"(manager=cn=lee\5c2c ann,ou=staff,dc=corp)", &e));
        assert!(hits(r"(manager=CN=Lee\5c, Ann,OU=Staff,DC=corp)", &e));
        // Other attributes compare as strings.
        assert!(hits("(description=cn=a,dc=x)", &e));
        assert!(!hits("(description=cn=a, dc=x)", &e));
    }

    #[test]
    fn unsupported_constructs_are_undefined() {
        let e = entry(&[("cn", "x")]);
        let f = parse("(cn:caseExactMatch:=x)");
        assert!(!f.matches(&e, &not_binary));
        assert!(!parse("(!(cn:caseExactMatch:=x))").matches(&e, &not_binary));
        assert!(parse("(|(cn:caseExactMatch:=x)(cn=x))").matches(&e, &not_binary));
        assert!(!parse("(&(cn:caseExactMatch:=x)(cn=x))").matches(&e, &not_binary));
        assert!(parse("(&)").matches(&e, &not_binary));
        assert!(!parse("(|)").matches(&e, &not_binary));
    }

    fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            "[a-zA-Z0-9 *()\\\\:=éß\u{0}\n]{0,6}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..6),
        ]
    }

    fn arb_part() -> impl Strategy<Value = Vec<u8>> {
        arb_bytes().prop_filter("non-empty", |b| !b.is_empty())
    }

    fn arb_attr() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("cn".to_string()),
            Just("objectGUID".to_string()),
            Just("cn;lang-en".to_string()),
            Just("1.2.840.113556.1.4.8".to_string()),
            "[a-zA-Z][a-zA-Z0-9-]{0,8}",
        ]
    }

    fn arb_filter() -> impl Strategy<Value = Filter> {
        let leaf = prop_oneof![
            (arb_attr(), arb_bytes()).prop_map(|(attr, value)| Filter::Equality { attr, value }),
            (arb_attr(), arb_bytes()).prop_map(|(attr, value)| Filter::Approx { attr, value }),
            (arb_attr(), arb_bytes())
                .prop_map(|(attr, value)| Filter::GreaterOrEqual { attr, value }),
            (arb_attr(), arb_bytes()).prop_map(|(attr, value)| Filter::LessOrEqual { attr, value }),
            arb_attr().prop_map(|attr| Filter::Present { attr }),
            (
                arb_attr(),
                proptest::option::of(arb_part()),
                proptest::collection::vec(arb_part(), 0..3),
                proptest::option::of(arb_part()),
            )
                .prop_filter("some part", |(_, i, a, f)| i.is_some()
                    || !a.is_empty()
                    || f.is_some())
                .prop_map(|(attr, initial, any, r#final)| Filter::Substrings {
                    attr,
                    initial,
                    any,
                    r#final,
                }),
            (
                proptest::option::of(arb_attr()),
                proptest::option::of(prop_oneof![
                    Just(BIT_AND_RULE.to_string()),
                    Just("caseExactMatch".to_string()),
                ]),
                any::<bool>(),
                arb_bytes(),
            )
                .prop_filter("attr or rule", |(a, r, _, _)| a.is_some() || r.is_some())
                .prop_map(|(attr, rule, dn_attrs, value)| Filter::Extensible {
                    attr,
                    rule,
                    dn_attrs,
                    value,
                }),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Filter::And),
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Filter::Or),
                inner.prop_map(|f| Filter::Not(Box::new(f))),
            ]
        })
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(f in arb_filter()) {
            let text = f.to_string();
            let back = Filter::parse(&text);
            prop_assert_eq!(back, Ok(f), "{}", text);
        }

        #[test]
        fn parse_never_panics(s in "[()&|!=*~<>:a-z0-9\\\\ é.;-]{0,30}") {
            if let Ok(f) = Filter::parse(&s) {
                prop_assert_eq!(Filter::parse(&f.to_string()), Ok(f.clone()));
                let _ = f.client_side_support();
                let _ = f.matches(&entry(&[("a", "1"), ("cn", "x")]), &not_binary);
            }
        }

        #[test]
        fn parse_never_panics_on_any_text(s in "\\PC{0,30}") {
            let _ = Filter::parse(&s);
        }
    }
}
