//! RFC 4514 distinguished names: parse, compare, order and print them.
//!
//! A [`Dn`] keeps every attribute value as the bytes it stands for (escapes undone) and, beside
//! it, a normalised form used for every comparison: attribute types lowercased (with the common
//! long names and OIDs mapped to their short names, `commonName`/`2.5.4.3` -> `cn`), values
//! case-folded with insignificant spaces removed (as caseIgnoreMatch, see
//! [`normalize_case_ignore`]), and the parts of a multi-valued RDN sorted. So
//! `CN=Lee\, Ann,OU=Staff,DC=corp` equals `cn=lee\2c ann, ou=staff,dc=CORP`.
//!
//! Parsing is RFC 4514 with the usual legacy tolerance (RFC 2253/1779): spaces around `,`, `+`
//! and `=`, `;` as an RDN separator, and `"quoted"` values. A `#hex` value (a BER encoding) is
//! kept as its bytes and only equals another `#hex` value with the same bytes.
//!
//! Order ([`Ord`]): by the RDN sequence read from the root (rightmost RDN first), comparing
//! normalised RDN strings, so a parent sorts immediately before its subtree and siblings sort by
//! their normalised RDN. `snapshot` uses this order.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};

use unicode_normalization::UnicodeNormalization;

/// A parse error in a DN, with the 0-based character offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DN at character {offset}: {message}")]
pub struct DnError {
    /// 0-based offset in characters (not bytes) into the parsed string.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// One `type=value` pair of an RDN.
#[derive(Debug, Clone)]
pub struct Ava {
    attr_type: String,
    value: Vec<u8>,
    ber: bool,
}

impl Ava {
    /// The attribute type as written (`CN`, `ou`, `2.5.4.3`).
    pub fn attr_type(&self) -> &str {
        &self.attr_type
    }

    /// The value's bytes with all escapes undone (for a `#hex` value: the BER bytes).
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The value as text, when it is UTF-8 and not a `#hex` BER value.
    pub fn value_str(&self) -> Option<&str> {
        if self.ber {
            None
        } else {
            std::str::from_utf8(&self.value).ok()
        }
    }

    /// True when the value was written as `#hex` (a BER encoding kept as bytes).
    pub fn is_ber(&self) -> bool {
        self.ber
    }

    fn normalized(&self) -> String {
        let mut out = normalize_attr_type(&self.attr_type);
        out.push('=');
        if self.ber {
            out.push('#');
            push_hex(&mut out, &self.value);
        } else {
            match std::str::from_utf8(&self.value) {
                Ok(text) => escape_value_into(&mut out, normalize_case_ignore(text).as_bytes()),
                Err(_) => escape_value_into(&mut out, &self.value),
            }
        }
        out
    }
}

/// A relative distinguished name: one or more `type=value` pairs joined by `+`.
#[derive(Debug, Clone)]
pub struct Rdn {
    avas: Vec<Ava>,
    norm: String,
}

impl Rdn {
    fn new(avas: Vec<Ava>) -> Self {
        let mut parts: Vec<String> = avas.iter().map(Ava::normalized).collect();
        parts.sort();
        Rdn {
            avas,
            norm: parts.join("+"),
        }
    }

    /// The pairs in the order written.
    pub fn avas(&self) -> &[Ava] {
        &self.avas
    }

    /// The normalised form, e.g. `cn=lee\, ann`; multi-valued RDNs have their pairs sorted.
    pub fn normalized(&self) -> &str {
        &self.norm
    }
}

impl PartialEq for Rdn {
    fn eq(&self, other: &Self) -> bool {
        self.norm == other.norm
    }
}

impl Eq for Rdn {}

impl fmt::Display for Rdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        for (i, ava) in self.avas.iter().enumerate() {
            if i > 0 {
                out.push('+');
            }
            out.push_str(&ava.attr_type);
            out.push('=');
            if ava.ber {
                out.push('#');
                push_hex(&mut out, &ava.value);
            } else {
                escape_value_into(&mut out, &ava.value);
            }
        }
        f.write_str(&out)
    }
}

/// A distinguished name: RDNs from the entry itself (leftmost) up to the root (rightmost).
///
/// Equality, hashing and ordering use the normalised form; [`fmt::Display`] prints an
/// RFC 4514 string that keeps the written attribute types and value case.
#[derive(Debug, Clone, Default)]
pub struct Dn {
    rdns: Vec<Rdn>,
}

impl Dn {
    /// Parse an RFC 4514 string. The empty string (or only spaces) is the root DN.
    pub fn parse(input: &str) -> Result<Dn, DnError> {
        let rdns = Parser::new(input).parse_dn()?;
        Ok(Dn {
            rdns: rdns.into_iter().map(Rdn::new).collect(),
        })
    }

    /// Check that `input` is a valid DN without building the normalised form (cheaper than
    /// [`Dn::parse`] when only the error matters).
    pub fn validate(input: &str) -> Result<(), DnError> {
        let mut parser = Parser::new(input);
        parser.collect = false;
        parser.parse_dn().map(drop)
    }

    /// The root DN (no RDNs).
    pub fn root() -> Dn {
        Dn::default()
    }

    /// True for the root (empty) DN.
    pub fn is_root(&self) -> bool {
        self.rdns.is_empty()
    }

    /// The RDNs, leftmost (the entry's own) first.
    pub fn rdns(&self) -> &[Rdn] {
        &self.rdns
    }

    /// Number of RDNs; the root has depth 0.
    pub fn depth(&self) -> usize {
        self.rdns.len()
    }

    /// The DN without its leftmost RDN; `None` for the root.
    pub fn parent(&self) -> Option<Dn> {
        if self.rdns.is_empty() {
            None
        } else {
            Some(Dn {
                rdns: self.rdns[1..].to_vec(),
            })
        }
    }

    /// True when `self` is strictly below `base` (a DN is not its own descendant). Every
    /// non-root DN descends from the root.
    pub fn is_descendant_of(&self, base: &Dn) -> bool {
        self.depth() > base.depth() && self.ends_with(base)
    }

    fn ends_with(&self, base: &Dn) -> bool {
        let skip = match self.depth().checked_sub(base.depth()) {
            Some(skip) => skip,
            None => return false,
        };
        self.rdns[skip..] == base.rdns[..]
    }

    /// The normalised string, e.g. `cn=lee\, ann,ou=staff,dc=corp`: the form compared by
    /// `==`. Two DNs are equal exactly when their normalised strings are.
    pub fn normalized(&self) -> String {
        let mut out = String::new();
        for (i, rdn) in self.rdns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&rdn.norm);
        }
        out
    }
}

impl PartialEq for Dn {
    fn eq(&self, other: &Self) -> bool {
        self.rdns == other.rdns
    }
}

impl Eq for Dn {}

impl Hash for Dn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for rdn in &self.rdns {
            rdn.norm.hash(state);
        }
        self.rdns.len().hash(state);
    }
}

impl Ord for Dn {
    /// Root-first: compares the normalised RDNs from the rightmost, so a parent sorts right
    /// before its descendants.
    fn cmp(&self, other: &Self) -> Ordering {
        let mine = self.rdns.iter().rev().map(|r| r.norm.as_str());
        let theirs = other.rdns.iter().rev().map(|r| r.norm.as_str());
        mine.cmp(theirs)
    }
}

impl PartialOrd for Dn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rdn) in self.rdns.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            fmt::Display::fmt(rdn, f)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Dn {
    type Err = DnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dn::parse(s)
    }
}

/// The value of the first `type=value` of a DN's leftmost RDN, without parsing the rest:
/// `Person` for `CN=Person,CN=Schema,...`. `None` when the DN does not start with a valid pair
/// or the value is a `#hex` BER value.
pub(crate) fn first_ava_value(input: &str) -> Option<Vec<u8>> {
    let mut parser = Parser::new(input);
    let ava = parser.parse_ava().ok()?;
    (!ava.ber).then_some(ava.value)
}

/// Search scope, as in an LDAP search request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The base entry only.
    Base,
    /// The base's immediate children (not the base itself).
    One,
    /// The base and everything below it.
    Subtree,
}

/// Whether an entry named `entry_dn` is returned by a search at `base_dn` with `scope`.
pub fn in_scope(entry_dn: &Dn, base_dn: &Dn, scope: Scope) -> bool {
    match scope {
        Scope::Base => entry_dn == base_dn,
        Scope::One => entry_dn.depth() == base_dn.depth() + 1 && entry_dn.ends_with(base_dn),
        Scope::Subtree => entry_dn.ends_with(base_dn),
    }
}

/// caseIgnoreMatch preparation (after RFC 4518): Unicode NFKC, lowercase, every whitespace run
/// collapsed to one space, leading and trailing spaces dropped. Two strings match under
/// caseIgnoreMatch when their prepared forms are equal.
pub fn normalize_case_ignore(s: &str) -> String {
    prepare_case_ignore(s, true, true)
}

/// [`normalize_case_ignore`] with a choice of trimming each end; substring components keep the
/// (collapsed) spaces at the ends where they meet another component.
pub(crate) fn prepare_case_ignore(s: &str, trim_start: bool, trim_end: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    let mut push = |c: char, out: &mut String| {
        if c.is_whitespace() {
            pending_space = !trim_start || !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            if c.is_ascii() {
                out.push(c.to_ascii_lowercase());
            } else {
                out.extend(c.to_lowercase());
            }
        }
    };
    if s.is_ascii() {
        for c in s.chars() {
            push(c, &mut out);
        }
    } else {
        for c in s.nfkc() {
            push(c, &mut out);
        }
    }
    if pending_space && !trim_end {
        out.push(' ');
    }
    out
}

/// Lowercase an attribute type and map the common long names and OIDs to the short name.
fn normalize_attr_type(attr_type: &str) -> String {
    const ALIASES: &[(&str, &[&str])] = &[
        ("cn", &["commonname", "2.5.4.3"]),
        ("sn", &["surname", "2.5.4.4"]),
        ("c", &["countryname", "2.5.4.6"]),
        ("l", &["localityname", "2.5.4.7"]),
        ("st", &["stateorprovincename", "2.5.4.8"]),
        ("street", &["streetaddress", "2.5.4.9"]),
        ("o", &["organizationname", "2.5.4.10"]),
        ("ou", &["organizationalunitname", "2.5.4.11"]),
        ("dc", &["domaincomponent", "0.9.2342.19200300.100.1.25"]),
        ("uid", &["userid", "0.9.2342.19200300.100.1.1"]),
    ];
    let lower = attr_type.to_ascii_lowercase();
    for (short, others) in ALIASES {
        if others.contains(&lower.as_str()) {
            return (*short).to_string();
        }
    }
    lower
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

/// RFC 4514 §2.4 escaping of a value's bytes: the special characters with a backslash, a
/// leading `#` or space and a trailing space with a backslash, NUL, control characters and
/// bytes that are not UTF-8 as `\XX`.
fn escape_value_into(out: &mut String, bytes: &[u8]) {
    let last = bytes.len().saturating_sub(1);
    let mut offset = 0;
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let at = offset;
            offset += c.len_utf8();
            match c {
                '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                '#' if at == 0 => out.push_str("\\#"),
                ' ' if at == 0 || at == last => out.push_str("\\ "),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            offset += 1;
            let _ = write!(out, "\\{b:02x}");
        }
    }
}

struct Parser<'a> {
    input: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// False when only validating: nothing is allocated.
    collect: bool,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Parser {
            input,
            bytes: input.as_bytes(),
            pos: 0,
            collect: true,
        }
    }

    fn error(&self, at: usize, message: impl Into<String>) -> DnError {
        let at = at.min(self.input.len());
        // `at` is always on a char boundary or at an ASCII byte we just looked at.
        let offset = self
            .input
            .get(..at)
            .map_or(at, |prefix| prefix.chars().count());
        DnError {
            offset,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn keep<T>(&self, into: &mut Vec<T>, item: T) {
        if self.collect {
            into.push(item);
        }
    }

    /// The RDNs as written, leftmost first.
    fn parse_dn(mut self) -> Result<Vec<Vec<Ava>>, DnError> {
        let mut rdns = Vec::new();
        self.skip_spaces();
        if self.peek().is_none() {
            return Ok(rdns);
        }
        loop {
            let mut avas = Vec::new();
            let first = self.parse_ava()?;
            self.keep(&mut avas, first);
            while self.peek() == Some(b'+') {
                self.pos += 1;
                let next = self.parse_ava()?;
                self.keep(&mut avas, next);
            }
            self.keep(&mut rdns, avas);
            match self.peek() {
                None => return Ok(rdns),
                Some(b',' | b';') => {
                    self.pos += 1;
                    self.skip_spaces();
                    if self.peek().is_none() {
                        return Err(self.error(self.pos, "empty RDN after separator"));
                    }
                }
                Some(_) => {
                    return Err(self.error(self.pos, "expected ',' or '+' after a value"));
                }
            }
        }
    }

    fn parse_ava(&mut self) -> Result<Ava, DnError> {
        self.skip_spaces();
        let attr_type = self.parse_attr_type()?;
        self.skip_spaces();
        if self.peek() != Some(b'=') {
            return Err(self.error(
                self.pos,
                format!("expected '=' after attribute type '{attr_type}'"),
            ));
        }
        self.pos += 1;
        self.skip_spaces();
        let (value, ber) = match self.peek() {
            Some(b'#') => (self.parse_hex_value()?, true),
            Some(b'"') => (self.parse_quoted_value()?, false),
            _ => (self.parse_string_value()?, false),
        };
        Ok(Ava {
            attr_type: if self.collect {
                attr_type.to_string()
            } else {
                String::new()
            },
            value,
            ber,
        })
    }

    fn parse_attr_type(&mut self) -> Result<&'a str, DnError> {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() => {
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'-') {
                    self.pos += 1;
                }
            }
            Some(c) if c.is_ascii_digit() => {
                // numericoid = number 1*( "." number )
                loop {
                    let digits = self.pos;
                    while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
                        self.pos += 1;
                    }
                    if self.pos == digits {
                        return Err(self.error(self.pos, "malformed numeric OID attribute type"));
                    }
                    if self.peek() == Some(b'.') {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
            }
            Some(_) => {
                return Err(self.error(self.pos, "expected an attribute type"));
            }
            None => {
                return Err(self.error(self.pos, "expected an attribute type, found end of DN"));
            }
        }
        Ok(&self.input[start..self.pos])
    }

    fn parse_hex_value(&mut self) -> Result<Vec<u8>, DnError> {
        self.pos += 1; // '#'
        let mut value = Vec::new();
        let start = self.pos;
        while let Some(hi) = self.peek().and_then(hex_digit) {
            let Some(lo) = self.bytes.get(self.pos + 1).copied().and_then(hex_digit) else {
                return Err(self.error(self.pos, "odd number of hex digits in '#' value"));
            };
            self.keep(&mut value, hi << 4 | lo);
            self.pos += 2;
        }
        if self.pos == start {
            return Err(self.error(self.pos, "'#' must be followed by hex digits"));
        }
        self.skip_spaces();
        if !matches!(self.peek(), None | Some(b',' | b';' | b'+')) {
            return Err(self.error(self.pos, "unexpected character after '#' hex value"));
        }
        Ok(value)
    }

    fn parse_quoted_value(&mut self) -> Result<Vec<u8>, DnError> {
        let open = self.pos;
        self.pos += 1;
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.error(open, "unterminated quoted value")),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let byte = self.parse_escape()?;
                    self.keep(&mut value, byte);
                }
                Some(c) => {
                    self.keep(&mut value, c);
                    self.pos += 1;
                }
            }
        }
        self.skip_spaces();
        if !matches!(self.peek(), None | Some(b',' | b';' | b'+')) {
            return Err(self.error(self.pos, "unexpected character after quoted value"));
        }
        Ok(value)
    }

    /// An unquoted value up to the next unescaped `,`, `;` or `+`; unescaped trailing spaces are
    /// not part of it (escaped ones are).
    fn parse_string_value(&mut self) -> Result<Vec<u8>, DnError> {
        let mut value = Vec::new();
        let mut len = 0;
        let mut significant = 0;
        while let Some(c) = self.peek() {
            match c {
                b',' | b';' | b'+' => break,
                b'\\' => {
                    let byte = self.parse_escape()?;
                    self.keep(&mut value, byte);
                    len += 1;
                    significant = len;
                }
                _ => {
                    self.keep(&mut value, c);
                    self.pos += 1;
                    len += 1;
                    if c != b' ' {
                        significant = len;
                    }
                }
            }
        }
        value.truncate(significant);
        Ok(value)
    }

    /// `\` followed by a special character or by two hex digits; returns the byte.
    fn parse_escape(&mut self) -> Result<u8, DnError> {
        let at = self.pos;
        let Some(next) = self.bytes.get(at + 1).copied() else {
            return Err(self.error(at, "'\\' at end of DN"));
        };
        if let Some(hi) = hex_digit(next) {
            let Some(lo) = self.bytes.get(at + 2).copied().and_then(hex_digit) else {
                return Err(self.error(
                    at,
                    "'\\' must be followed by two hex digits or a special character",
                ));
            };
            self.pos += 3;
            return Ok(hi << 4 | lo);
        }
        if matches!(
            next,
            b' ' | b'"' | b'#' | b'+' | b',' | b';' | b'<' | b'=' | b'>' | b'\\'
        ) {
            self.pos += 2;
            return Ok(next);
        }
        Err(self.error(
            at,
            "'\\' must be followed by two hex digits or one of ' \"#+,;<=>\\'",
        ))
    }
}

/// The value of one hex digit (shared with the filter parser).
pub(crate) fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn escaped_comma_forms_are_equal() {
        let a = dn(r"CN=Lee\, Ann,OU=Staff,DC=corp");
        let b = dn(r"cn=lee\2c ann, ou=staff,dc=CORP");
        assert_eq!(a, b);
        assert_eq!(a.normalized(), r"cn=lee\, ann,ou=staff,dc=corp");
        assert_eq!(b.to_string(), r"cn=lee\, ann,ou=staff,dc=CORP");
        assert_eq!(a.rdns()[0].avas()[0].value_str(), Some("Lee, Ann"));
    }

    #[test]
    fn insignificant_spaces_and_aliases() {
        assert_eq!(dn("CN = Ann   Lee , DC=x"), dn("commonName=ann lee,dc=X"));
        assert_eq!(dn("2.5.4.3=Ann,DC=x"), dn("cn=ANN,dc=x"));
        assert_ne!(dn("cn=Ann,dc=x"), dn("cn=Anne,dc=x"));
        // An escaped trailing space is kept in the value, though caseIgnore ignores it.
        let d = dn(r"cn=Ann\ ,dc=x");
        assert_eq!(d.rdns()[0].avas()[0].value(), b"Ann ");
        assert_eq!(d.to_string(), r"cn=Ann\ ,dc=x");
    }

    #[test]
    fn multi_valued_rdn_is_order_insensitive() {
        let a = dn("cn=Ann+uid=ann,dc=x");
        let b = dn("UID=ANN + CN=ann,DC=X");
        assert_eq!(a, b);
        assert_eq!(a.rdns()[0].avas().len(), 2);
        assert_eq!(a.to_string(), "cn=Ann+uid=ann,dc=x");
    }

    #[test]
    fn hex_ber_and_quoted_values() {
        let d = dn("cn=#04024869,dc=x");
        let ava = &d.rdns()[0].avas()[0];
        assert!(ava.is_ber());
        assert_eq!(ava.value(), &[0x04, 0x02, 0x48, 0x69]);
        assert_eq!(ava.value_str(), None);
        assert_eq!(d.to_string(), "cn=#04024869,dc=x");
        assert_ne!(d, dn("cn=Hi,dc=x"));

        let q = dn(r#"cn="Lee, Ann",dc=x"#);
        assert_eq!(q, dn(r"cn=Lee\, Ann,dc=x"));
        assert_eq!(dn("cn=a;dc=x"), dn("cn=a,dc=x"));
    }

    #[test]
    fn utf8_escapes_and_non_utf8_bytes() {
        assert_eq!(dn(r"cn=Jos\C3\A9,dc=x"), dn("cn=JOSÉ,dc=x"));
        let d = dn(r"cn=\ff\00,dc=x");
        assert_eq!(d.rdns()[0].avas()[0].value(), &[0xff, 0x00]);
        assert_eq!(d.to_string(), r"cn=\ff\00,dc=x");
        // NFKC: a decomposed é equals the composed one.
        assert_eq!(dn("cn=Jose\u{301},dc=x"), dn("cn=josé,dc=x"));
    }

    #[test]
    fn display_escapes_specials() {
        let d = dn(r"cn=\#1 \<a\>\;b\+c\\d\22,dc=x");
        assert_eq!(d.rdns()[0].avas()[0].value_str(), Some("#1 <a>;b+c\\d\""));
        assert_eq!(d.to_string(), r#"cn=\#1 \<a\>\;b\+c\\d\",dc=x"#);
        assert_eq!(dn(&d.to_string()), d);
        assert_eq!(dn(r"cn=\ a\ ").to_string(), r"cn=\ a\ ");
        assert_eq!(dn("cn=a\nb").to_string(), r"cn=a\0ab");
    }

    #[test]
    fn root_parent_depth_and_descendants() {
        let root = dn("");
        assert!(root.is_root());
        assert_eq!(dn("  "), root);
        assert_eq!(root.parent(), None);
        let user = dn("CN=Ann,OU=Staff,DC=corp,DC=example");
        let base = dn("ou=staff,dc=CORP,dc=example");
        assert_eq!(user.depth(), 4);
        assert_eq!(user.parent(), Some(base.clone()));
        assert!(user.is_descendant_of(&base));
        assert!(user.is_descendant_of(&root));
        assert!(!base.is_descendant_of(&base));
        assert!(!base.is_descendant_of(&user));
        assert!(!dn("cn=Ann,ou=Other,dc=corp,dc=example").is_descendant_of(&base));
    }

    #[test]
    fn scopes() {
        let base = dn("OU=Staff,DC=corp");
        let child = dn("CN=Ann,OU=Staff,DC=corp");
        let grandchild = dn("CN=x,CN=Ann,OU=Staff,DC=corp");
        let other = dn("CN=Bob,OU=Other,DC=corp");
        assert!(in_scope(&base, &base, Scope::Base));
        assert!(!in_scope(&child, &base, Scope::Base));
        assert!(!in_scope(&base, &base, Scope::One));
        assert!(in_scope(&child, &base, Scope::One));
        assert!(!in_scope(&grandchild, &base, Scope::One));
        assert!(in_scope(&base, &base, Scope::Subtree));
        assert!(in_scope(&grandchild, &base, Scope::Subtree));
        assert!(!in_scope(&other, &base, Scope::Subtree));
        assert!(in_scope(&other, &Dn::root(), Scope::Subtree));
    }

    #[test]
    fn order_puts_parents_before_children() {
        let mut dns: Vec<Dn> = [
            "cn=b,ou=Staff,dc=corp",
            "ou=Staff,dc=corp",
            "cn=A,ou=Staff,dc=corp",
            "dc=corp",
            "cn=z,dc=corp",
            "cn=a,ou=Admins,dc=corp",
        ]
        .iter()
        .map(|s| dn(s))
        .collect();
        dns.sort();
        let got: Vec<String> = dns.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "dc=corp",
                "cn=z,dc=corp",
                "cn=a,ou=Admins,dc=corp",
                "ou=Staff,dc=corp",
                "cn=A,ou=Staff,dc=corp",
                "cn=b,ou=Staff,dc=corp",
            ]
        );
    }

    #[test]
    fn errors_carry_char_offsets() {
        let cases: &[(&str, usize, &str)] = &[
            ("cn", 2, "expected '='"),
            ("=x", 0, "expected an attribute type"),
            ("cn=a,", 5, "empty RDN"),
            ("cn=a,,dc=x", 5, "expected an attribute type"),
            (r"cn=a\", 4, "at end of DN"),
            (r"cn=a\zz", 4, "two hex digits"),
            (r"cn=a\4", 4, "two hex digits"),
            ("cn=#0", 4, "odd number"),
            ("cn=#", 4, "hex digits"),
            ("cn=#00x", 6, "after '#'"),
            ("cn=\"ab", 3, "unterminated"),
            ("cn=\"ab\"x", 7, "after quoted"),
            ("1..2=x", 2, "numeric OID"),
            ("é=x", 0, "attribute type"),
            ("cn=é,_=x", 5, "attribute type"),
        ];
        for (input, offset, message) in cases {
            match Dn::parse(input) {
                Ok(d) => panic!("{input} parsed as {d}"),
                Err(e) => {
                    assert_eq!(e.offset, *offset, "{input}: {e}");
                    assert!(e.message.contains(message), "{input}: {e}");
                }
            }
        }
    }

    #[test]
    fn case_ignore_preparation() {
        assert_eq!(normalize_case_ignore("  Ann \t  LEE "), "ann lee");
        assert_eq!(normalize_case_ignore("ÉLODIE"), "élodie");
        assert_eq!(normalize_case_ignore(""), "");
        assert_eq!(normalize_case_ignore("   "), "");
        assert_eq!(normalize_case_ignore("ﬁ"), "fi"); // NFKC
        assert_eq!(prepare_case_ignore("  Ann  ", false, true), " ann");
        assert_eq!(prepare_case_ignore("  Ann  ", true, false), "ann ");
        assert_eq!(prepare_case_ignore("  ", false, false), " ");
    }

    fn arb_value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            "[ a-zA-Z0-9,+;<>\"#=\\\\éÅ]{0,8}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..6),
        ]
    }

    fn arb_dn() -> impl Strategy<Value = Dn> {
        let ava = (
            prop_oneof![
                Just("cn"),
                Just("OU"),
                Just("dc"),
                Just("2.5.4.3"),
                Just("x-Y1")
            ],
            arb_value(),
            any::<bool>(),
        )
            .prop_map(|(t, value, ber)| Ava {
                attr_type: t.to_string(),
                ber: ber && !value.is_empty(),
                value,
            });
        let rdn = proptest::collection::vec(ava, 1..3).prop_map(Rdn::new);
        proptest::collection::vec(rdn, 0..4).prop_map(|rdns| Dn { rdns })
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(d in arb_dn()) {
            let text = d.to_string();
            let back = Dn::parse(&text).unwrap();
            prop_assert_eq!(&back, &d);
            prop_assert_eq!(back.to_string(), text);
            for (a, b) in back.rdns().iter().zip(d.rdns()) {
                for (x, y) in a.avas().iter().zip(b.avas()) {
                    prop_assert_eq!(x.value(), y.value());
                    prop_assert_eq!(x.is_ber(), y.is_ber());
                }
            }
        }

        #[test]
        fn parse_never_panics_and_validate_agrees(s in "\\PC{0,40}|[a-c= ,+;#\"\\\\0-9]{0,20}") {
            prop_assert_eq!(Dn::validate(&s).err(), Dn::parse(&s).err());
        }

        #[test]
        fn order_is_consistent_with_eq(a in arb_dn(), b in arb_dn()) {
            prop_assert_eq!(a.cmp(&b) == Ordering::Equal, a == b);
            if a.is_descendant_of(&b) {
                prop_assert!(b < a);
            }
        }
    }
}
