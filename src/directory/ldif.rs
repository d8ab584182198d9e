//! RFC 2849 LDIF content records: read them into [`Entry`] values and write entries back.
//!
//! Reading accepts: an optional `version: 1` first line, `#` comments (folded ones too, also
//! between the lines of a record), folded lines (a line starting with one space continues the
//! previous one), `attr: value`, `attr:: base64` (padding optional), `dn::` base64 DNs,
//! attribute options kept in the name (`cn;lang-en`), one or more blank lines between records,
//! CRLF line ends and a leading UTF-8 byte order mark. A record with a DN and no attributes is
//! accepted. Rejected, with the 1-based line: `attr:< URL` values, change records
//! (`changetype:`/`control:` right after the DN), malformed base64, invalid attribute
//! descriptions and DNs.
//!
//! Values: `attr: value` keeps the bytes after the separator's spaces exactly (trailing spaces
//! included). Every value goes through [`AttrValue::from_bytes`], binary when
//! `is_binary(attribute type)` says so or the description has the `;binary` option.
//!
//! Writing ([`write_ldif`]) produces what reading gives back identically (for entries whose
//! values are classified the same way, see [`write_ldif`]).

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};

use super::dn::Dn;
use super::entry::{AttrValue, Entry, attribute_type, is_valid_attribute_description};

/// Lines are folded to at most this many bytes (RFC 2849 suggests 76 columns).
const FOLD_WIDTH: usize = 76;

/// An LDIF input that cannot be read, with the 1-based line where the problem starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("LDIF line {line}: {message}")]
pub struct LdifError {
    /// 1-based line number (the first physical line of a folded line).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parse LDIF content records into entries, in file order. `is_binary` receives an attribute
/// type (without options) and says whether its values are bytes even when they are UTF-8.
///
/// The entries' `anchor` and `disabled` are left at their defaults for the caller to set.
pub fn parse_ldif(input: &[u8], is_binary: &dyn Fn(&str) -> bool) -> Result<Vec<Entry>, LdifError> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut entries = Vec::new();
    let mut current: Option<Entry> = None;
    let mut seen_content = false;
    for line in LogicalLines::new(input) {
        let (number, text) = line?;
        let error = |message: String| LdifError {
            line: number,
            message,
        };
        if text.is_empty() {
            entries.extend(current.take());
            continue;
        }
        if text.first() == Some(&b'#') {
            continue;
        }
        let Some(colon) = text.iter().position(|&c| c == b':') else {
            return Err(error(format!(
                "expected 'attribute: value', found '{}'",
                String::from_utf8_lossy(&text[..text.len().min(40)])
            )));
        };
        let Ok(name) = std::str::from_utf8(&text[..colon]) else {
            return Err(error("attribute description is not ASCII".to_string()));
        };
        let spec = &text[colon + 1..];
        match current.as_mut() {
            None => {
                if !seen_content && name.eq_ignore_ascii_case("version") {
                    seen_content = true;
                    let version = value_bytes(name, spec).map_err(error)?;
                    if version.trim_ascii() != b"1" {
                        return Err(error(format!(
                            "unsupported LDIF version '{}'; only 'version: 1' is known",
                            String::from_utf8_lossy(&version)
                        )));
                    }
                    continue;
                }
                seen_content = true;
                if !name.eq_ignore_ascii_case("dn") {
                    return Err(error(format!(
                        "a record must start with 'dn:', found '{name}:'"
                    )));
                }
                let dn = value_bytes(name, spec).map_err(error)?;
                let dn = String::from_utf8(dn)
                    .map_err(|_| error("the DN is not valid UTF-8".to_string()))?;
                if let Err(e) = Dn::validate(&dn) {
                    return Err(error(format!("invalid DN '{dn}': {e}")));
                }
                current = Some(Entry::new(dn));
            }
            Some(entry) => {
                let first_line = entry.attributes().next().is_none();
                if first_line
                    && (name.eq_ignore_ascii_case("changetype")
                        || name.eq_ignore_ascii_case("control"))
                {
                    return Err(error(
                        "change records are not supported; use content records".to_string(),
                    ));
                }
                if name.eq_ignore_ascii_case("dn") {
                    return Err(error(
                        "'dn:' inside a record; separate records with a blank line".to_string(),
                    ));
                }
                if !is_valid_attribute_description(name) {
                    return Err(error(format!("invalid attribute description '{name}'")));
                }
                let bytes = value_bytes(name, spec).map_err(error)?;
                let binary = is_binary(attribute_type(name))
                    || name
                        .split(';')
                        .skip(1)
                        .any(|opt| opt.eq_ignore_ascii_case("binary"));
                entry.push(name, AttrValue::from_bytes(bytes, binary));
            }
        }
    }
    entries.extend(current);
    Ok(entries)
}

/// The value of `name:<spec>`: `: text`, `:: base64` or (rejected) `:< URL`.
fn value_bytes(name: &str, spec: &[u8]) -> Result<Vec<u8>, String> {
    match spec.first() {
        Some(b':') => {
            let encoded = spec[1..].trim_ascii();
            STANDARD_PAD_INDIFFERENT
                .decode(encoded)
                .map_err(|e| format!("invalid base64 value for '{name}': {e}"))
        }
        Some(b'<') => Err(format!(
            "URL values ('{name}:< URL') are not supported; put the value inline or \
             base64-encode it with '{name}::'"
        )),
        _ => {
            let start = spec.iter().position(|&c| c != b' ').unwrap_or(spec.len());
            Ok(spec[start..].to_vec())
        }
    }
}

/// Physical lines joined into logical ones (folding undone), with their first line number.
/// Yields the empty line for a record separator.
struct LogicalLines<'a> {
    rest: &'a [u8],
    line: usize,
    done: bool,
}

impl<'a> LogicalLines<'a> {
    fn new(input: &'a [u8]) -> Self {
        LogicalLines {
            rest: input,
            line: 0,
            done: input.is_empty(),
        }
    }

    /// Next physical line without its line end (LF or CRLF).
    fn physical(&mut self) -> Option<&'a [u8]> {
        if self.done {
            return None;
        }
        self.line += 1;
        let (line, rest) = match self.rest.iter().position(|&c| c == b'\n') {
            Some(end) => (&self.rest[..end], &self.rest[end + 1..]),
            None => {
                self.done = true;
                (self.rest, &b""[..])
            }
        };
        self.rest = rest;
        if rest.is_empty() {
            self.done = true;
        }
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }

    fn next_is_continuation(&self) -> bool {
        !self.done && self.rest.first() == Some(&b' ')
    }
}

impl<'a> Iterator for LogicalLines<'a> {
    type Item = Result<(usize, Cow<'a, [u8]>), LdifError>;

    fn next(&mut self) -> Option<Self::Item> {
        let first = self.physical()?;
        let number = self.line;
        if first.first() == Some(&b' ') {
            return Some(Err(LdifError {
                line: number,
                message: "a continuation line (starting with a space) has no line to continue"
                    .to_string(),
            }));
        }
        if !self.next_is_continuation() || first.is_empty() {
            return Some(Ok((number, Cow::Borrowed(first))));
        }
        let mut joined = first.to_vec();
        while self.next_is_continuation() {
            if let Some(more) = self.physical() {
                joined.extend_from_slice(&more[1..]);
            }
        }
        Some(Ok((number, Cow::Owned(joined))))
    }
}

/// Write `entries` as LDIF content records: `version: 1`, the header lines as `# ` comments,
/// then one record per entry separated by blank lines.
///
/// Attributes come in [`Entry::attributes`] order (by lowercased name), values in their order.
/// Binary values and values that are not an RFC 2849 SAFE-STRING (empty is safe; a leading
/// space, `:` or `<`, a trailing space, NUL, CR, LF or any non-ASCII byte is not) are written
/// as `:: base64`; DNs likewise as `dn::`. Lines longer than 76 bytes are folded.
///
/// Round trip: [`parse_ldif`] gives back equal entries (with default `anchor`/`disabled`) when
/// every value is `Binary` exactly when `is_binary`/`;binary` or non-UTF-8 bytes make
/// [`AttrValue::from_bytes`] choose `Binary`, and DNs and attribute names are valid.
pub fn write_ldif<'e, H, S, E>(header_comment_lines: H, entries: E, out: &mut String)
where
    H: IntoIterator<Item = S>,
    S: AsRef<str>,
    E: IntoIterator<Item = &'e Entry>,
{
    out.push_str("version: 1\n");
    for line in header_comment_lines {
        for part in line.as_ref().split(['\n', '\r']) {
            if part.is_empty() {
                out.push_str("#\n");
            } else {
                push_folded(out, &format!("# {part}"));
            }
        }
    }
    let mut line = String::new();
    for entry in entries {
        out.push('\n');
        line.clear();
        push_attr_value(&mut line, "dn", entry.dn.as_bytes(), false);
        push_folded(out, &line);
        for attr in entry.attributes() {
            for value in &attr.values {
                line.clear();
                let binary = matches!(value, AttrValue::Binary(_));
                push_attr_value(&mut line, &attr.name, value.as_bytes(), binary);
                push_folded(out, &line);
            }
        }
    }
}

fn push_attr_value(line: &mut String, name: &str, value: &[u8], binary: bool) {
    line.push_str(name);
    if value.is_empty() && !binary {
        line.push(':');
    } else if !binary && is_safe_string(value) {
        line.push_str(": ");
        // SAFE-STRING bytes are ASCII.
        line.extend(value.iter().map(|&b| b as char));
    } else {
        line.push_str(":: ");
        STANDARD.encode_string(value, line);
    }
}

/// RFC 2849 SAFE-STRING, plus no trailing space (which the RFC says to base64-encode).
fn is_safe_string(value: &[u8]) -> bool {
    let Some((&first, _)) = value.split_first() else {
        return true;
    };
    !matches!(first, b' ' | b':' | b'<')
        && value.last() != Some(&b' ')
        && value
            .iter()
            .all(|&b| b.is_ascii() && !matches!(b, b'\0' | b'\n' | b'\r'))
}

/// Append `line` and a newline, folded so no physical line exceeds [`FOLD_WIDTH`] bytes;
/// continuation lines start with one space. Splits only at character boundaries.
fn push_folded(out: &mut String, line: &str) {
    let mut rest = line;
    let mut width = FOLD_WIDTH;
    loop {
        if rest.len() <= width {
            out.push_str(rest);
            out.push('\n');
            return;
        }
        let mut cut = width;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push_str(head);
        out.push_str("\n ");
        rest = tail;
        width = FOLD_WIDTH - 1;
    }
}

/// Write entries to a new string; see [`write_ldif`].
pub fn to_ldif_string<'e, H, S, E>(header_comment_lines: H, entries: E) -> String
where
    H: IntoIterator<Item = S>,
    S: AsRef<str>,
    E: IntoIterator<Item = &'e Entry>,
{
    let mut out = String::new();
    write_ldif(header_comment_lines, entries, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ad_binary(attr: &str) -> bool {
        attr.eq_ignore_ascii_case("objectGUID") || attr.eq_ignore_ascii_case("objectSid")
    }

    fn parse(input: &str) -> Vec<Entry> {
        parse_ldif(input.as_bytes(), &ad_binary).unwrap_or_else(|e| panic!("{e}\n{input}"))
    }

    fn parse_err(input: &str) -> LdifError {
        match parse_ldif(input.as_bytes(), &ad_binary) {
            Ok(entries) => panic!("parsed {} entries from\n{input}", entries.len()),
            Err(e) => e,
        }
    }

    fn texts<'a>(e: &'a Entry, attr: &str) -> Vec<&'a str> {
        e.get(attr)
            .map(|a| a.values.iter().filter_map(AttrValue::as_text).collect())
            .unwrap_or_default()
    }

    #[test]
    fn rfc2849_example_with_folding_comments_and_base64() {
        let input = "version: 1\n\
# a comment that is\n \
folded\n\
dn: cn=Barbara Jensen, ou=Product Development, dc=airius, dc=com\n\
objectclass: top\n\
objectclass: person\n\
cn: Barbara Jensen\n\
cn: Babs Jensen\n\
description: Babs is a big sailing fan, and travels extensively in sea\n \
rch of perfect sailing conditions.\n\
title:Product Manager, Rod and Reel Division\n\
\n\
\n\
# second\n\
dn:: Y249R2VyYWxkIELDpHJ0ZWwsZGM9Y29t\n\
description:: V2hhdCBhIGNhcmVmdWwgcmVhZGVyIHlvdSBhcmUhICBUaGlzIHZhbHVlIGlzIGJhc2UtNjQtZW5j\n \
b2RlZCBiZWNhdXNlIGl0IGhhcyBhIGNvbnRyb2wgY2hhcmFjdGVyIGluIGl0IChhIENSKS4NICBCeSB0aGUgd2F5LC\n \
B5b3Ugc2hvdWxkIHJlYWxseSBnZXQgb3V0IG1vcmUu\n\
cn;lang-en: Gerald\n\
empty:\n";
        let entries = parse(input);
        assert_eq!(entries.len(), 2);
        let babs = &entries[0];
        assert_eq!(
            babs.dn,
            "cn=Barbara Jensen, ou=Product Development, dc=airius, dc=com"
        );
        assert_eq!(texts(babs, "objectClass"), ["top", "person"]);
        assert_eq!(texts(babs, "cn"), ["Barbara Jensen", "Babs Jensen"]);
        assert_eq!(
            texts(babs, "description"),
            [
                "Babs is a big sailing fan, and travels extensively in search of perfect sailing conditions."
            ]
        );
        assert_eq!(
            texts(babs, "title"),
            ["Product Manager, Rod and Reel Division"]
        );
        let gerald = &entries[1];
        assert_eq!(gerald.dn, "cn=Gerald Bärtel,dc=com");
        assert!(texts(gerald, "description")[0].contains("(a CR).\r  By the way"));
        assert_eq!(texts(gerald, "cn;lang-en"), ["Gerald"]);
        assert_eq!(
            gerald.get("CN;LANG-EN").map(|a| &*a.name),
            Some("cn;lang-en")
        );
        assert_eq!(texts(gerald, "empty"), [""]);
    }

    #[test]
    fn crlf_bom_no_version_and_trailing_spaces() {
        let input = "\u{feff}dn: cn=a,dc=x\r\ncn: a  \r\nsn:   b\r\n\r\ndn: cn=b,dc=x\r\n";
        let entries = parse(input);
        assert_eq!(entries.len(), 2);
        assert_eq!(texts(&entries[0], "cn"), ["a  "]);
        assert_eq!(texts(&entries[0], "sn"), ["b"]);
        assert_eq!(entries[1].attributes().count(), 0);
        assert!(parse("").is_empty());
        assert!(parse("version: 1\n").is_empty());
        assert!(parse("# only\n\n\n").is_empty());
        assert_eq!(parse("version: 1\ndn: cn=a\ncn: a").len(), 1);
    }

    #[test]
    fn binary_classification() {
        let input = "dn: cn=a,dc=x\n\
objectGUID:: AAECAwQFBgcICQoLDA0ODw==\n\
objectSid: AbC\n\
photo:: /w==\n\
userCertificate;binary:: QUJD\n\
cn:: w6k=\n\
padless:: QUI\n";
        let e = &parse(input)[0];
        assert_eq!(
            e.first("objectguid"),
            Some(&AttrValue::Binary((0..16).collect()))
        );
        assert_eq!(
            e.first("objectSid"),
            Some(&AttrValue::Binary(b"AbC".to_vec()))
        );
        assert_eq!(e.first("photo"), Some(&AttrValue::Binary(vec![0xff])));
        assert_eq!(
            e.first("userCertificate;binary"),
            Some(&AttrValue::Binary(b"ABC".to_vec()))
        );
        assert_eq!(e.first_text("cn"), Some("é"));
        assert_eq!(e.first_text("padless"), Some("AB"));
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("dn: cn=a\ncn:< file:///etc/passwd\n", 2, "URL values"),
            ("dn:< file:///x\n", 1, "URL values"),
            (
                "dn: cn=a\nchangetype: modify\n",
                2,
                "change records are not supported",
            ),
            (
                "dn: cn=a\ncontrol: 1.2.3\n",
                2,
                "change records are not supported",
            ),
            ("version: 2\n", 1, "unsupported LDIF version"),
            ("\ncn: a\n", 2, "must start with 'dn:'"),
            (
                "dn: cn=a\ncn: a\ndn: cn=b\n",
                3,
                "separate records with a blank line",
            ),
            ("dn: cn=a\n\n continued\n", 3, "continuation line"),
            (" x\n", 1, "continuation line"),
            ("dn: cn=a\ncn a\n", 2, "expected 'attribute: value'"),
            (
                "dn: cn=a\nc_n: a\n",
                2,
                "invalid attribute description 'c_n'",
            ),
            ("dn: cn=a\ncn;: a\n", 2, "invalid attribute description"),
            ("dn: cn=a\ncn:: @@@\n", 2, "invalid base64 value for 'cn'"),
            ("dn: cn=a\n# c\n x\ncn:: Q\n", 4, "invalid base64"),
            ("dn: cn=a,\n", 1, "invalid DN"),
            ("dn:: /w==\n", 1, "not valid UTF-8"),
        ];
        for (input, line, message) in cases {
            let err = parse_err(input);
            assert_eq!(err.line, *line, "{input:?}: {err}");
            assert!(err.to_string().contains(message), "{input:?}: {err}");
        }
    }

    #[test]
    fn non_ascii_attribute_name_is_an_error() {
        let err = parse_ldif(b"dn: cn=a\n\xc3(: x\n", &ad_binary).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("not ASCII"), "{err}");
    }

    #[test]
    fn changetype_later_in_a_record_is_an_attribute() {
        let e = &parse("dn: cn=log\ncn: log\nchangeType: add\n")[0];
        assert_eq!(e.first_text("changetype"), Some("add"));
    }

    #[test]
    fn writer_output_is_readable_and_folded() {
        let mut e = Entry::new(r"CN=Lee\, Ann,OU=Staff,DC=corp");
        e.push("sn", AttrValue::Text("Lee".into()));
        e.push("cn", AttrValue::Text(r"Lee, Ann".into()));
        e.push("description", AttrValue::Text(" leading".into()));
        e.push("givenName", AttrValue::Text("Zoë".into()));
        e.push("objectGUID", AttrValue::Binary(vec![0; 16]));
        e.push("empty", AttrValue::Text(String::new()));
        e.push("info", AttrValue::Text("x".repeat(100)));
        let text = to_ldif_string(["snapshot of ldaps://dc1", "filter: (cn=*)\nsecond"], [&e]);
        let expected = format!(
            "version: 1\n\
# snapshot of ldaps://dc1\n\
# filter: (cn=*)\n\
# second\n\
\n\
dn: CN=Lee\\, Ann,OU=Staff,DC=corp\n\
cn: Lee, Ann\n\
description:: IGxlYWRpbmc=\n\
empty:\n\
givenName:: Wm/Dqw==\n\
info: {}\n {}\n\
objectGUID:: AAAAAAAAAAAAAAAAAAAAAA==\n\
sn: Lee\n",
            "x".repeat(70),
            "x".repeat(30)
        );
        assert_eq!(text, expected);
        assert!(text.lines().all(|l| l.len() <= FOLD_WIDTH));
        assert_eq!(parse_ldif(text.as_bytes(), &ad_binary), Ok(vec![e]));
    }

    #[test]
    fn folding_respects_char_boundaries() {
        let mut out = String::new();
        let line = format!("# {}", "é".repeat(100));
        push_folded(&mut out, &line);
        assert!(out.lines().all(|l| l.len() <= FOLD_WIDTH));
        let unfolded: String = out
            .lines()
            .enumerate()
            .map(|(i, l)| if i == 0 { l } else { &l[1..] })
            .collect();
        assert_eq!(unfolded, line);
    }

    #[test]
    fn safe_strings() {
        for safe in ["", "a", "a b", "a:b", "a<b", "x ~!"] {
            assert!(is_safe_string(safe.as_bytes()), "{safe:?}");
        }
        for unsafe_ in [" a", ":a", "<a", "a ", "a\nb", "a\rb", "a\0", "é"] {
            assert!(!is_safe_string(unsafe_.as_bytes()), "{unsafe_:?}");
        }
    }

    fn arb_dn() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(r"CN=Lee\, Ann,OU=Staff,DC=corp,DC=example".to_string()),
            Just("cn=Zoë Ångström,ou=Ünits,dc=corp".to_string()),
            Just(r"cn=\ leading and trailing\ ,dc=x".to_string()),
            Just(r"cn=a\2Bb+uid=x,dc=x".to_string()),
            Just(String::new()),
            "[a-zA-Z0-9 éß]{1,20}".prop_map(|v| format!("cn={},dc=x", v.trim())),
        ]
    }

    fn arb_text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(" leading".to_string()),
            Just("trailing ".to_string()),
            Just(":colon".to_string()),
            Just("<angle".to_string()),
            Just("multi\nline\r\n".to_string()),
            Just("nul\0byte".to_string()),
            "\\PC{0,100}",
            "[ -~]{0,200}",
        ]
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        let text_attr = prop_oneof![
            Just("cn"),
            Just("sn"),
            Just("description"),
            Just("cn;lang-en"),
            Just("1.2.3.4"),
            Just("givenName"),
        ];
        let text = (text_attr, proptest::collection::vec(arb_text(), 1..4))
            .prop_map(|(a, vs)| (a, vs.into_iter().map(AttrValue::Text).collect::<Vec<_>>()));
        let binary_attr = prop_oneof![Just("objectGUID"), Just("objectSid"), Just("photo;binary")];
        let bytes = proptest::collection::vec(any::<u8>(), 0..40);
        let binary = (binary_attr, proptest::collection::vec(bytes.clone(), 1..3))
            .prop_map(|(a, vs)| (a, vs.into_iter().map(AttrValue::Binary).collect()));
        // Raw bytes for a text attribute: Binary only when they are not UTF-8.
        let raw =
            (Just("jpegPhoto"), proptest::collection::vec(bytes, 1..3)).prop_map(|(a, vs)| {
                (
                    a,
                    vs.into_iter()
                        .map(|v| AttrValue::from_bytes(v, false))
                        .collect(),
                )
            });
        let attr = prop_oneof![4 => text, 2 => binary, 1 => raw];
        (arb_dn(), proptest::collection::vec(attr, 0..8)).prop_map(|(dn, attrs)| {
            let mut e = Entry::new(dn);
            for (name, values) in attrs {
                for v in values {
                    e.push(name, v);
                }
            }
            e
        })
    }

    proptest! {
        #[test]
        fn write_then_parse_round_trips(
            entries in proptest::collection::vec(arb_entry(), 0..5),
            header in proptest::collection::vec("\\PC{0,120}", 0..3),
        ) {
            let text = to_ldif_string(&header, &entries);
            prop_assert!(text.lines().all(|l| l.len() <= FOLD_WIDTH));
            let back = parse_ldif(text.as_bytes(), &ad_binary);
            prop_assert_eq!(back, Ok(entries), "{}", text);
        }

        #[test]
        fn parse_never_panics(input in proptest::collection::vec(
            prop_oneof![
                Just(b'\n'), Just(b' '), Just(b':'), Just(b'#'), Just(b'<'), Just(b'\r'),
                Just(b'd'), Just(b'n'), Just(b'='), Just(b','), any::<u8>(),
            ],
            0..80,
        )) {
            let _ = parse_ldif(&input, &ad_binary);
        }
    }
}
