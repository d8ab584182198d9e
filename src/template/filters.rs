//! Our filters (SPEC §4): pure functions on strings and bytes, plus their minijinja adapters.
//!
//! Conventions shared by `guid`, `sid`, `filetime` and `gentime`: an undefined or none input
//! passes through unchanged (so lenient mode renders it empty and strict mode reports the
//! undefined name), an empty string gives an empty string, anything else that is not the
//! expected shape is an error naming the filter.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::prelude::{BASE64_STANDARD, BASE64_STANDARD_NO_PAD, Engine as _};
use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, TimeZone as _, Utc};
use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind};
use regex::Regex;
use unicode_normalization::UnicodeNormalization as _;

/// Filters we add to minijinja's built-ins (`split` replaces the built-in one, compatibly).
pub(crate) const FILTERS: [&str; 10] = [
    "normalize",
    "ascii",
    "regex_replace",
    "split",
    "guid",
    "sid",
    "filetime",
    "gentime",
    "urlencode",
    "base64",
];

fn filter_error(filter: &str, message: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("{filter}: {message}"))
}

/// A short, printable excerpt of a rejected input for error messages.
fn excerpt(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}...")
    }
}

/// The string form of a value for text filters: bytes render as base64 (as they print).
fn text_of(value: &Value) -> String {
    match value.kind() {
        ValueKind::Bytes => BASE64_STANDARD.encode(value.as_bytes().unwrap_or_default()),
        ValueKind::Undefined | ValueKind::None => String::new(),
        _ => value.to_string(),
    }
}

fn passes_through(value: &Value) -> bool {
    matches!(value.kind(), ValueKind::Undefined | ValueKind::None)
}

// ---------------------------------------------------------------------------------------------
// normalize / ascii

/// Strip diacritics: NFD, drop combining diacritical marks, recompose (NFC).
///
/// Only the combining *diacritical* mark blocks are dropped (U+0300-036F, U+1AB0-1AFF,
/// U+1DC0-1DFF, U+20D0-20FF, U+FE20-FE2F): vowel signs of Indic and other scripts are
/// letters' parts, not accents, and are kept.
///
/// Letters whose diacritic is not a combining mark in Unicode (they have no decomposition) are
/// mapped explicitly: `ø`->`o`, `đ`/`ð`->`d`, `ł`->`l`, `ħ`->`h`, `ŧ`->`t`, `ı`->`i`, and the
/// ligatures/sharp s `ß`->`ss`, `æ`->`ae`, `œ`->`oe`, `þ`->`th` (with their capitals). Other
/// scripts are left alone (`normalize` is not transliteration: see `ascii`).
pub fn normalize(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.nfd() {
        if is_diacritic(c) {
            continue;
        }
        match c {
            'ø' => out.push('o'),
            'Ø' => out.push('O'),
            'đ' | 'ð' => out.push('d'),
            'Đ' | 'Ð' => out.push('D'),
            'ł' => out.push('l'),
            'Ł' => out.push('L'),
            'ħ' => out.push('h'),
            'Ħ' => out.push('H'),
            'ŧ' => out.push('t'),
            'Ŧ' => out.push('T'),
            'ı' => out.push('i'),
            'ß' => out.push_str("ss"),
            'ẞ' => out.push_str("SS"),
            'æ' => out.push_str("ae"),
            'Æ' => out.push_str("AE"),
            'œ' => out.push_str("oe"),
            'Œ' => out.push_str("OE"),
            'þ' => out.push_str("th"),
            'Þ' => out.push_str("Th"),
            c => out.push(c),
        }
    }
    out.nfc().collect()
}

fn is_diacritic(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

/// Transliterate to ASCII (deunicode): "Zoë Åström" -> "Zoe Astrom", "Москва" -> "Moskva".
/// Characters without a transliteration are dropped.
pub fn ascii(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    deunicode::deunicode_with_tofu(s, "")
}

// ---------------------------------------------------------------------------------------------
// regex_replace

/// Compiled regexes by pattern, shared by all renders of an engine.
#[derive(Debug, Default)]
pub(crate) struct RegexCache {
    compiled: RwLock<HashMap<String, Result<Regex, String>>>,
}

impl RegexCache {
    /// Patterns beyond this many are compiled per call rather than cached (dynamic patterns
    /// built from directory data would otherwise grow the cache without bound).
    const CAPACITY: usize = 512;

    pub(crate) fn get(&self, pattern: &str) -> Result<Regex, String> {
        if let Ok(map) = self.compiled.read()
            && let Some(found) = map.get(pattern)
        {
            return found.clone();
        }
        let compiled = Regex::new(pattern).map_err(|e| e.to_string());
        if let Ok(mut map) = self.compiled.write()
            && map.len() < Self::CAPACITY
        {
            map.insert(pattern.to_string(), compiled.clone());
        }
        compiled
    }
}

/// `value | regex_replace(pattern, replacement)`: replace every match; `$1` / `${name}` in the
/// replacement refer to capture groups (regex crate syntax).
pub(crate) fn regex_replace(
    cache: &RegexCache,
    value: &Value,
    pattern: &str,
    replacement: &str,
) -> Result<Value, Error> {
    if passes_through(value) {
        return Ok(value.clone());
    }
    let re = cache
        .get(pattern)
        .map_err(|e| filter_error("regex_replace", format!("invalid pattern: {e}")))?;
    let text = text_of(value);
    Ok(Value::from(re.replace_all(&text, replacement).into_owned()))
}

// ---------------------------------------------------------------------------------------------
// split

/// `value | split(sep=None, maxsplits=None)` -> list of strings. Without `sep`, splits on runs
/// of whitespace and drops empty items (Python's `str.split()`); undefined gives `[]`.
pub(crate) fn split(
    value: &Value,
    sep: Option<&str>,
    maxsplits: Option<i64>,
) -> Result<Value, Error> {
    if passes_through(value) {
        return Ok(Value::from(Vec::<Value>::new()));
    }
    let text = text_of(value);
    let max = maxsplits.and_then(|m| usize::try_from(m).ok());
    let parts: Vec<Value> = match sep {
        Some("") => return Err(filter_error("split", "empty separator")),
        Some(sep) => match max {
            Some(m) => text.splitn(m + 1, sep).map(Value::from).collect(),
            None => text.split(sep).map(Value::from).collect(),
        },
        None => {
            let mut parts = Vec::new();
            let mut rest = text.trim_start();
            while !rest.is_empty() {
                if max.is_some_and(|m| parts.len() == m) {
                    parts.push(Value::from(rest.trim_end()));
                    break;
                }
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                parts.push(Value::from(&rest[..end]));
                rest = rest[end..].trim_start();
            }
            parts
        }
    };
    Ok(Value::from(parts))
}

// ---------------------------------------------------------------------------------------------
// guid

/// Format 16 bytes as a GUID in Microsoft's layout: the first three groups are little-endian
/// (`objectGUID` byte order), lowercase.
pub fn guid_from_bytes(b: &[u8; 16]) -> String {
    // Hand-rolled: directory reads format one per entry (the anchor).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    const ORDER: [usize; 16] = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    let mut out = String::with_capacity(36);
    for (i, &index) in ORDER.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let byte = b[index];
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// The 16 bytes (Microsoft layout) of a canonical GUID string; inverse of [`guid_from_bytes`].
pub fn guid_to_bytes(s: &str) -> Option<[u8; 16]> {
    let canonical = canonical_guid(s)?;
    let hex: String = canonical.chars().filter(|c| *c != '-').collect();
    let mut raw = [0u8; 16];
    for (i, byte) in raw.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some([
        raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6], raw[8], raw[9], raw[10],
        raw[11], raw[12], raw[13], raw[14], raw[15],
    ])
}

/// A GUID string (any case, optional braces) -> lowercase 8-4-4-4-12.
fn canonical_guid(s: &str) -> Option<String> {
    let s = s.trim();
    let s = match (s.strip_prefix('{'), s.strip_suffix('}')) {
        (Some(_), Some(_)) => s.get(1..s.len() - 1)?,
        (None, None) => s,
        _ => return None,
    };
    if s.len() != 36 {
        return None;
    }
    let well_formed = s.bytes().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => c == b'-',
        _ => c.is_ascii_hexdigit(),
    });
    well_formed.then(|| s.to_ascii_lowercase())
}

/// `guid`: 16 bytes, a GUID string, or base64 of 16 bytes -> lowercase canonical GUID.
pub fn guid(value: &Value) -> Result<Value, Error> {
    if passes_through(value) {
        return Ok(value.clone());
    }
    let bytes = match value.kind() {
        ValueKind::Bytes => value.as_bytes().unwrap_or_default().to_vec(),
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            if s.trim().is_empty() {
                return Ok(Value::from(""));
            }
            if let Some(canonical) = canonical_guid(s) {
                return Ok(Value::from(canonical));
            }
            decode_base64(s).ok_or_else(|| {
                filter_error(
                    "guid",
                    format!(
                        "{} is not a GUID (expected 16 bytes, a GUID string or base64 of 16 bytes)",
                        excerpt(s)
                    ),
                )
            })?
        }
        other => {
            return Err(filter_error(
                "guid",
                format!("cannot convert {other} to a GUID"),
            ));
        }
    };
    let array: [u8; 16] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| filter_error("guid", format!("expected 16 bytes, got {}", bytes.len())))?;
    Ok(Value::from(guid_from_bytes(&array)))
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    BASE64_STANDARD
        .decode(s)
        .or_else(|_| BASE64_STANDARD_NO_PAD.decode(s))
        .ok()
}

// ---------------------------------------------------------------------------------------------
// sid

/// Format a binary SID: revision, sub-authority count, 48-bit big-endian identifier authority,
/// little-endian u32 sub-authorities -> `S-1-5-21-...`. Authorities of 2^32 and above print
/// in hex (`0x...`), as Windows does.
pub fn sid_from_bytes(b: &[u8]) -> Result<String, String> {
    if b.len() < 8 {
        return Err(format!("a SID has at least 8 bytes, got {}", b.len()));
    }
    let count = usize::from(b[1]);
    if b.len() != 8 + 4 * count {
        return Err(format!(
            "a SID with {count} sub-authorities has {} bytes, got {}",
            8 + 4 * count,
            b.len()
        ));
    }
    let authority = b[2..8]
        .iter()
        .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
    let mut out = if authority >= 1 << 32 {
        format!("S-{}-0x{authority:012X}", b[0])
    } else {
        format!("S-{}-{authority}", b[0])
    };
    for chunk in b[8..].chunks_exact(4) {
        let sub = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        out.push_str(&format!("-{sub}"));
    }
    Ok(out)
}

/// A SID already in string form (`S-1-5-...`, any case of the `S`).
fn canonical_sid(s: &str) -> Option<String> {
    let s = s.trim();
    let rest = s.strip_prefix('S').or_else(|| s.strip_prefix('s'))?;
    let parts: Vec<&str> = rest.strip_prefix('-')?.split('-').collect();
    if parts.len() < 2 {
        return None;
    }
    let decimal = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit());
    let authority_ok = decimal(parts[1])
        || parts[1]
            .strip_prefix("0x")
            .or_else(|| parts[1].strip_prefix("0X"))
            .is_some_and(|h| !h.is_empty() && h.bytes().all(|c| c.is_ascii_hexdigit()));
    (decimal(parts[0]) && authority_ok && parts[2..].iter().all(|p| decimal(p)))
        .then(|| format!("S{}", &rest))
}

/// `sid`: binary SID (or base64 of one, or a SID string) -> `S-1-5-...`.
pub fn sid(value: &Value) -> Result<Value, Error> {
    if passes_through(value) {
        return Ok(value.clone());
    }
    let bytes = match value.kind() {
        ValueKind::Bytes => value.as_bytes().unwrap_or_default().to_vec(),
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            if s.trim().is_empty() {
                return Ok(Value::from(""));
            }
            if let Some(canonical) = canonical_sid(s) {
                return Ok(Value::from(canonical));
            }
            decode_base64(s).ok_or_else(|| {
                filter_error(
                    "sid",
                    format!(
                        "{} is not a SID (expected binary, base64 or S-1-...)",
                        excerpt(s)
                    ),
                )
            })?
        }
        other => {
            return Err(filter_error(
                "sid",
                format!("cannot convert {other} to a SID"),
            ));
        }
    };
    sid_from_bytes(&bytes)
        .map(Value::from)
        .map_err(|e| filter_error("sid", e))
}

// ---------------------------------------------------------------------------------------------
// filetime / gentime

/// Seconds between 1601-01-01 (FILETIME epoch) and 1970-01-01.
const FILETIME_UNIX_OFFSET_SECS: i64 = 11_644_473_600;

/// AD FILETIME (100-ns intervals since 1601-01-01 UTC) -> RFC 3339 UTC.
///
/// `0` and `9223372036854775807` mean "never / not set" in AD (`accountExpires`, `pwdLastSet`,
/// `lastLogonTimestamp`) and give `None`; the filter renders those as an empty string, so
/// `{{ accountExpires | filetime or 'never' }}` works. Sub-second parts print only when non-zero.
pub fn filetime_to_rfc3339(ticks: i64) -> Result<Option<String>, String> {
    if ticks == 0 || ticks == i64::MAX {
        return Ok(None);
    }
    if ticks < 0 {
        return Err(format!("{ticks} is negative"));
    }
    let secs = ticks / 10_000_000 - FILETIME_UNIX_OFFSET_SECS;
    // `ticks % 10_000_000` is below 10^7, so the product fits u32.
    let nanos = u32::try_from((ticks % 10_000_000) * 100).map_err(|e| e.to_string())?;
    let time = DateTime::<Utc>::from_timestamp(secs, nanos)
        .ok_or_else(|| format!("{ticks} is out of range"))?;
    Ok(Some(time.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
}

/// `filetime`: integer or decimal string -> RFC 3339; "never" (0 / i64::MAX) -> "".
pub fn filetime(value: &Value) -> Result<Value, Error> {
    if passes_through(value) {
        return Ok(value.clone());
    }
    let ticks = match value.kind() {
        ValueKind::Number => value.as_i64(),
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default().trim();
            if s.is_empty() {
                return Ok(Value::from(""));
            }
            s.parse::<i64>().ok()
        }
        _ => None,
    }
    .ok_or_else(|| {
        filter_error(
            "filetime",
            format!(
                "{} is not a FILETIME (an integer of 100-ns intervals since 1601)",
                excerpt(&text_of(value))
            ),
        )
    })?;
    filetime_to_rfc3339(ticks)
        .map(|t| Value::from(t.unwrap_or_default()))
        .map_err(|e| filter_error("filetime", e))
}

/// LDAP GeneralizedTime (RFC 4517: `YYYYMMDDHH[MM[SS]][.fraction](Z|+hhmm|-hhmm)`, e.g. AD's
/// `20230401120000.0Z`) -> RFC 3339 UTC. A fraction is accepted after the seconds only.
pub fn gentime_to_rfc3339(s: &str) -> Result<String, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "{} is not a GeneralizedTime (YYYYMMDDHHMMSS[.f]Z)",
            excerpt(s)
        )
    };
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if !matches!(digits, 10 | 12 | 14) {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<u32, String> {
        s.get(range).and_then(|d| d.parse().ok()).ok_or_else(bad)
    };
    let (year, month, day, hour) = (num(0..4)?, num(4..6)?, num(6..8)?, num(8..10)?);
    let minute = if digits >= 12 { num(10..12)? } else { 0 };
    let second = if digits >= 14 { num(12..14)? } else { 0 };
    let mut rest = &s[digits..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.').or_else(|| rest.strip_prefix(',')) {
        if digits != 14 {
            return Err(bad());
        }
        let len = frac.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 {
            return Err(bad());
        }
        let padded: String = frac[..len]
            .chars()
            .chain("000000000".chars())
            .take(9)
            .collect();
        nanos = padded.parse().map_err(|_| bad())?;
        rest = &frac[len..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 5 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let part = |r: std::ops::Range<usize>| -> Result<i32, String> {
                rest.get(r)
                    .filter(|d| d.bytes().all(|c| c.is_ascii_digit()))
                    .and_then(|d| d.parse().ok())
                    .ok_or_else(bad)
            };
            let (hh, mm) = (part(1..3)?, part(3..5)?);
            let secs = hh * 3600 + mm * 60;
            if rest.starts_with('-') { -secs } else { secs }
        }
        _ => return Err(bad()),
    };
    let year = i32::try_from(year).map_err(|_| bad())?;
    let naive = NaiveDate::from_ymd_opt(year, month, day)
        .and_then(|d| d.and_hms_nano_opt(hour, minute, second, nanos))
        .ok_or_else(bad)?;
    let offset = FixedOffset::east_opt(offset_secs).ok_or_else(bad)?;
    let local = offset
        .from_local_datetime(&naive)
        .single()
        .ok_or_else(bad)?;
    Ok(local
        .with_timezone(&Utc)
        .to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// `gentime`: GeneralizedTime string -> RFC 3339 UTC.
pub fn gentime(value: &Value) -> Result<Value, Error> {
    if passes_through(value) {
        return Ok(value.clone());
    }
    let text = text_of(value);
    if text.trim().is_empty() {
        return Ok(Value::from(""));
    }
    gentime_to_rfc3339(&text)
        .map(Value::from)
        .map_err(|e| filter_error("gentime", e))
}

// ---------------------------------------------------------------------------------------------
// urlencode / base64

/// Percent-encode everything but RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`), for a
/// value placed in a URL path segment or query.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `urlencode` adapter: undefined passes through.
pub(crate) fn urlencode_value(value: &Value) -> Value {
    if passes_through(value) {
        return value.clone();
    }
    Value::from(urlencode(&text_of(value)))
}

/// `base64`: bytes or text -> standard base64 (for text: of its UTF-8 encoding).
pub(crate) fn base64_value(value: &Value) -> Value {
    if passes_through(value) {
        return value.clone();
    }
    match value.kind() {
        ValueKind::Bytes | ValueKind::String => {
            Value::from(BASE64_STANDARD.encode(value.as_bytes().unwrap_or_default()))
        }
        _ => Value::from(BASE64_STANDARD.encode(value.to_string())),
    }
}

/// Register our filters on `env`.
pub(crate) fn register(env: &mut minijinja::Environment<'static>, regexes: Arc<RegexCache>) {
    env.add_filter("normalize", |v: &Value| -> Value {
        if passes_through(v) {
            v.clone()
        } else {
            Value::from(normalize(&text_of(v)))
        }
    });
    env.add_filter("ascii", |v: &Value| -> Value {
        if passes_through(v) {
            v.clone()
        } else {
            Value::from(ascii(&text_of(v)))
        }
    });
    env.add_filter(
        "regex_replace",
        move |v: &Value, pattern: &str, replacement: &str| {
            regex_replace(&regexes, v, pattern, replacement)
        },
    );
    env.add_filter(
        "split",
        |v: &Value, sep: Option<&str>, maxsplits: Option<i64>| split(v, sep, maxsplits),
    );
    env.add_filter("guid", guid);
    env.add_filter("sid", sid);
    env.add_filter("filetime", filetime);
    env.add_filter("gentime", gentime);
    env.add_filter("urlencode", urlencode_value);
    env.add_filter("base64", base64_value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GUID_BYTES: [u8; 16] = [
        0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ];
    const GUID_TEXT: &str = "00112233-4455-6677-8899-aabbccddeeff";

    #[test]
    fn normalize_strips_diacritics() {
        assert_eq!(normalize("Zoë Åström"), "Zoe Astrom");
        assert_eq!(normalize("José Ñúñez"), "Jose Nunez");
        assert_eq!(normalize("Søren Ærø"), "Soren AEro");
        assert_eq!(normalize("Weiß"), "Weiss");
        assert_eq!(normalize("Đorđe Łukasz"), "Dorde Lukasz");
        assert_eq!(normalize("Ğüneş Çelik"), "Gunes Celik");
        assert_eq!(normalize("Москва"), "Москва", "other scripts are kept");
        assert_eq!(normalize("नमस्ते"), "नमस्ते", "vowel signs are not diacritics");
        assert_eq!(normalize("plain"), "plain");
        // Decomposed input (e + combining diaeresis) too.
        assert_eq!(normalize("Zoe\u{0308}"), "Zoe");
    }

    #[test]
    fn ascii_transliterates() {
        assert_eq!(ascii("Zoë Åström"), "Zoe Astrom");
        assert_eq!(ascii("Москва"), "Moskva");
        assert_eq!(ascii("Weiß"), "Weiss");
        assert!(ascii("a\u{1F600}b").is_ascii());
    }

    #[test]
    fn regex_replace_and_cache() {
        let cache = RegexCache::default();
        let v = regex_replace(&cache, &Value::from("a.b-c"), r"[.\-]", "_").unwrap();
        assert_eq!(v.as_str(), Some("a_b_c"));
        let v =
            regex_replace(&cache, &Value::from("john smith"), r"(\w+) (\w+)", "$2, $1").unwrap();
        assert_eq!(v.as_str(), Some("smith, john"));
        let err = regex_replace(&cache, &Value::from("x"), "(", "").unwrap_err();
        assert!(err.to_string().contains("invalid pattern"), "{err}");
        assert!(cache.get("(").is_err(), "errors are cached too");
        assert!(
            regex_replace(&cache, &Value::UNDEFINED, "a", "b")
                .unwrap()
                .is_undefined()
        );
    }

    #[test]
    fn split_like_python() {
        let list = |v: Value| -> Vec<String> {
            v.try_iter()
                .unwrap()
                .map(|x| x.as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            list(split(&Value::from("a,b,,c"), Some(","), None).unwrap()),
            ["a", "b", "", "c"]
        );
        assert_eq!(
            list(split(&Value::from("a,b,c"), Some(","), Some(1)).unwrap()),
            ["a", "b,c"]
        );
        assert_eq!(
            list(split(&Value::from("  a  b c "), None, None).unwrap()),
            ["a", "b", "c"]
        );
        assert_eq!(
            list(split(&Value::from("  a  b c "), None, Some(1)).unwrap()),
            ["a", "b c"]
        );
        assert!(list(split(&Value::UNDEFINED, Some(","), None).unwrap()).is_empty());
        assert!(split(&Value::from("x"), Some(""), None).is_err());
    }

    #[test]
    fn guid_from_bytes_uses_microsoft_layout() {
        assert_eq!(guid_from_bytes(&GUID_BYTES), GUID_TEXT);
        let v = guid(&Value::from_bytes(GUID_BYTES.to_vec())).unwrap();
        assert_eq!(v.as_str(), Some(GUID_TEXT));
    }

    #[test]
    fn guid_from_strings() {
        for input in [
            GUID_TEXT.to_string(),
            GUID_TEXT.to_uppercase(),
            format!("{{{}}}", GUID_TEXT.to_uppercase()),
            format!("  {GUID_TEXT} "),
            BASE64_STANDARD.encode(GUID_BYTES),
            BASE64_STANDARD_NO_PAD.encode(GUID_BYTES),
        ] {
            let v = guid(&Value::from(input.as_str())).unwrap();
            assert_eq!(v.as_str(), Some(GUID_TEXT), "{input}");
        }
        assert_eq!(guid(&Value::from("")).unwrap().as_str(), Some(""));
        assert!(guid(&Value::UNDEFINED).unwrap().is_undefined());
    }

    #[test]
    fn guid_rejects_anything_else() {
        for bad in [
            "nope",
            "{00112233-4455-6677-8899-aabbccddeeff",
            "00112233-4455-6677-8899-aabbccddeefg",
            "0011223344556677-8899-aabbccddeeff-",
            "AAAA",
        ] {
            assert!(guid(&Value::from(bad)).is_err(), "{bad}");
        }
        assert!(guid(&Value::from_bytes(vec![1, 2, 3])).is_err());
        assert!(guid(&Value::from(42)).is_err());
    }

    #[test]
    fn sid_from_binary() {
        // S-1-5-21-1004336348-1177238915-682003330-512
        let mut b = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
        for sub in [21u32, 1004336348, 1177238915, 682003330, 512] {
            b.extend_from_slice(&sub.to_le_bytes());
        }
        let expected = "S-1-5-21-1004336348-1177238915-682003330-512";
        assert_eq!(sid_from_bytes(&b).unwrap(), expected);
        assert_eq!(
            sid(&Value::from_bytes(b.clone())).unwrap().as_str(),
            Some(expected)
        );
        assert_eq!(
            sid(&Value::from(BASE64_STANDARD.encode(&b)))
                .unwrap()
                .as_str(),
            Some(expected)
        );
        assert_eq!(
            sid(&Value::from("s-1-5-32-544")).unwrap().as_str(),
            Some("S-1-5-32-544")
        );
        // Well-known: Everyone = S-1-1-0.
        assert_eq!(
            sid_from_bytes(&[1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap(),
            "S-1-1-0"
        );
        // Large identifier authority prints in hex.
        assert_eq!(
            sid_from_bytes(&[1, 0, 1, 0, 0, 0, 0, 0]).unwrap(),
            "S-1-0x010000000000"
        );
    }

    #[test]
    fn sid_rejects_malformed() {
        assert!(sid(&Value::from_bytes(vec![1, 2, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0])).is_err());
        assert!(sid(&Value::from_bytes(vec![1])).is_err());
        assert!(sid(&Value::from("S-1")).is_err());
        assert!(sid(&Value::from("hello world")).is_err());
    }

    #[test]
    fn filetime_converts() {
        // 2023-04-01T12:00:00Z
        let ticks: i64 = (1_680_350_400 + FILETIME_UNIX_OFFSET_SECS) * 10_000_000;
        assert_eq!(
            filetime(&Value::from(ticks)).unwrap().as_str(),
            Some("2023-04-01T12:00:00Z")
        );
        assert_eq!(
            filetime(&Value::from(ticks.to_string())).unwrap().as_str(),
            Some("2023-04-01T12:00:00Z")
        );
        assert_eq!(
            filetime(&Value::from(ticks + 5_000_000)).unwrap().as_str(),
            Some("2023-04-01T12:00:00.500Z")
        );
        assert_eq!(
            filetime(&Value::from(0)).unwrap().as_str(),
            Some(""),
            "0 = never"
        );
        assert_eq!(
            filetime(&Value::from("9223372036854775807"))
                .unwrap()
                .as_str(),
            Some(""),
            "i64::MAX = never"
        );
        assert_eq!(
            filetime_to_rfc3339(FILETIME_UNIX_OFFSET_SECS * 10_000_000).unwrap(),
            Some("1970-01-01T00:00:00Z".into())
        );
        assert!(filetime(&Value::from(-1)).is_err());
        assert!(filetime(&Value::from("yesterday")).is_err());
        assert!(filetime(&Value::UNDEFINED).unwrap().is_undefined());
    }

    #[test]
    fn gentime_converts() {
        for (input, expected) in [
            ("20230401120000.0Z", "2023-04-01T12:00:00Z"),
            ("20230401120000Z", "2023-04-01T12:00:00Z"),
            ("20230401120000.25Z", "2023-04-01T12:00:00.250Z"),
            ("202304011200Z", "2023-04-01T12:00:00Z"),
            ("2023040112Z", "2023-04-01T12:00:00Z"),
            ("20230401140000+0200", "2023-04-01T12:00:00Z"),
            ("20230401093000-0230", "2023-04-01T12:00:00Z"),
        ] {
            assert_eq!(gentime_to_rfc3339(input).unwrap(), expected, "{input}");
        }
        for bad in [
            "2023",
            "20230401120000",
            "20231301120000Z",
            "20230401120000.Z",
            "202304011200.5Z",
            "20230401120000Q",
            "２０２３04011200Z",
            "20230401120000+1é2",
            "20230401120000+2400x",
            "20230401120000+-100",
        ] {
            assert!(gentime_to_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urlencode_and_base64() {
        assert_eq!(urlencode("a b&c/é~"), "a%20b%26c%2F%C3%A9~");
        assert_eq!(
            base64_value(&Value::from_bytes(vec![0xff, 0])).as_str(),
            Some("/wA=")
        );
        assert_eq!(base64_value(&Value::from("hi")).as_str(), Some("aGk="));
    }

    proptest! {
        #[test]
        fn guid_roundtrips(bytes in proptest::array::uniform16(any::<u8>())) {
            let text = guid_from_bytes(&bytes);
            prop_assert_eq!(guid_to_bytes(&text), Some(bytes));
            let via_filter = guid(&Value::from(text.to_uppercase())).unwrap();
            prop_assert_eq!(via_filter.as_str(), Some(text.as_str()));
            let via_base64 = guid(&Value::from(BASE64_STANDARD.encode(bytes))).unwrap();
            prop_assert_eq!(via_base64.as_str(), Some(text.as_str()));
        }

        #[test]
        fn filters_never_panic(s in "\\PC{0,40}") {
            let v = Value::from(s.as_str());
            let _ = guid(&v);
            let _ = sid(&v);
            let _ = filetime(&v);
            let _ = gentime(&v);
            let _ = normalize(&s);
            let _ = ascii(&s);
        }

        #[test]
        fn normalize_is_idempotent(s in "\\PC{0,40}") {
            let once = normalize(&s);
            prop_assert_eq!(normalize(&once), once.clone());
        }
    }
}
