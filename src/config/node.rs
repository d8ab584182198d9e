//! A located YAML tree and a serde `Deserializer` over it.
//!
//! YAML is parsed once by serde-saphyr (with input budgets) into [`Node`]s that carry the
//! file, line, column and byte offset of every value. Typed config structs are then
//! deserialized from that tree by [`from_node`], which:
//! - reports **every** unknown key of every struct (with a "did you mean"), not just the first,
//!   by checking map keys against the struct's field list before serde sees them;
//! - attaches the location of the innermost node to every other error;
//! - fills [`Sp<T>`] fields with the location of their value, so semantic validation can point
//!   at the exact YAML position.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::{Deserialize, Deserializer};

/// A position in a loaded config file. `file` indexes the loader's source list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc {
    pub file: u32,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (characters).
    pub col: u32,
    /// Byte offset into the file.
    pub offset: usize,
    /// Byte length of the highlighted text (0: a point).
    pub len: usize,
}

/// A YAML value with its location.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub loc: Loc,
    pub kind: NodeKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl NodeKind {
    /// "a string", "a mapping"... for error messages.
    pub fn describe(&self) -> &'static str {
        match self {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The string value of a scalar node (numbers and booleans in their display form).
    pub fn as_scalar_string(&self) -> Option<String> {
        match &self.kind {
            NodeKind::Str(s) => Some(s.clone()),
            NodeKind::Int(i) => Some(i.to_string()),
            NodeKind::Float(f) => Some(f.to_string()),
            NodeKind::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Look up a key of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.kind, NodeKind::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Location of the key `key` in a mapping node (for "unknown key" style messages).
    pub fn key_loc(&self, key: &str) -> Option<Loc> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.kind, NodeKind::Str(s) if s == key))
                .map(|(k, _)| k.loc),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stage 1: serde-saphyr -> Node

/// Intermediate value whose children carry serde-saphyr spans.
struct Parsed(PKind);

enum PKind {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<serde_saphyr::Spanned<Parsed>>),
    Map(Vec<(serde_saphyr::Spanned<Parsed>, serde_saphyr::Spanned<Parsed>)>),
}

impl<'de> Deserialize<'de> for Parsed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Parsed;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Parsed, E> {
                Ok(Parsed(PKind::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Parsed, E> {
                Ok(Parsed(PKind::Int(v.into())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Parsed, E> {
                Ok(Parsed(PKind::Int(v.into())))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Parsed, E> {
                Ok(Parsed(PKind::Int(v)))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Parsed, E> {
                i128::try_from(v)
                    .map(|v| Parsed(PKind::Int(v)))
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Parsed, E> {
                Ok(Parsed(PKind::Float(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Parsed, E> {
                Ok(Parsed(PKind::Str(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Parsed, E> {
                Ok(Parsed(PKind::Str(v)))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Parsed, E> {
                Ok(Parsed(PKind::Str(String::from_utf8_lossy(v).into_owned())))
            }
            fn visit_unit<E>(self) -> Result<Parsed, E> {
                Ok(Parsed(PKind::Null))
            }
            fn visit_none<E>(self) -> Result<Parsed, E> {
                Ok(Parsed(PKind::Null))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
                Parsed::deserialize(d)
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
                Parsed::deserialize(d)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Parsed(PKind::Seq(items)))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
                let mut entries = Vec::new();
                // Keys are read as strings: `on:` is the key "on", not the boolean true.
                while let Some(k) = map.next_key::<serde_saphyr::Spanned<KeyString>>()? {
                    let v = map.next_value()?;
                    let key = serde_saphyr::Spanned::new(
                        Parsed(PKind::Str(k.value.0)),
                        k.referenced,
                        k.defined,
                    );
                    entries.push((key, v));
                }
                Ok(Parsed(PKind::Map(entries)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A mapping key, always taken as its string spelling.
struct KeyString(String);

impl<'de> Deserialize<'de> for KeyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(KeyString)
    }
}

/// Convert a serde-saphyr location into ours, computing the byte offset when it is missing.
fn convert_loc(file: u32, text: &str, loc: &serde_saphyr::Location) -> Loc {
    let line = loc.line() as u32;
    let col = loc.column() as u32;
    let span = loc.span();
    let offset = span
        .byte_offset()
        .map(|o| o as usize)
        .unwrap_or_else(|| offset_of(text, line, col));
    let len = span.byte_len().map(|l| l as usize).unwrap_or(0);
    Loc {
        file,
        line,
        col,
        offset: offset.min(text.len()),
        len,
    }
}

/// Byte offset of a 1-based (line, column) in `text`; columns count characters.
pub fn offset_of(text: &str, line: u32, col: u32) -> usize {
    let mut off = 0usize;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line as usize {
            let chars = col.saturating_sub(1) as usize;
            return off
                + l.char_indices()
                    .nth(chars)
                    .map(|(b, _)| b)
                    .unwrap_or(l.len());
        }
        off += l.len();
    }
    text.len()
}

fn convert(file: u32, text: &str, sp: serde_saphyr::Spanned<Parsed>) -> Node {
    let loc = convert_loc(file, text, &sp.referenced);
    let kind = match sp.value.0 {
        PKind::Null => NodeKind::Null,
        PKind::Bool(b) => NodeKind::Bool(b),
        PKind::Int(i) => NodeKind::Int(i),
        PKind::Float(f) => NodeKind::Float(f),
        PKind::Str(s) => NodeKind::Str(s),
        PKind::Seq(items) => {
            NodeKind::Seq(items.into_iter().map(|i| convert(file, text, i)).collect())
        }
        PKind::Map(entries) => NodeKind::Map(
            entries
                .into_iter()
                .map(|(k, v)| (convert(file, text, k), convert(file, text, v)))
                .collect(),
        ),
    };
    Node { loc, kind }
}

/// A YAML parse failure: message and location.
#[derive(Debug, Clone)]
pub struct ParseError {
    pub message: String,
    pub loc: Loc,
}

/// Input budgets: YAML bombs, deep nesting and huge documents are refused by the parser
/// before they can exhaust memory.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: 64,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_documents: 1_000,
            max_nodes: 500_000,
            max_events: 1_000_000,
            max_total_scalar_bytes: 16 * 1024 * 1024,
            max_recorded_anchor_events: 100_000,
            max_recorded_anchor_bytes: 4 * 1024 * 1024,
            flow_nesting_limit: 64,
        },
        with_snippet: false,
    }
}

/// Parse every document of a YAML stream into located trees.
pub fn parse_documents(file: u32, text: &str) -> Result<Vec<Node>, ParseError> {
    use serde_saphyr::MessageFormatter;
    match serde_saphyr::from_multiple_with_options::<serde_saphyr::Spanned<Parsed>>(text, options())
    {
        Ok(docs) => Ok(docs.into_iter().map(|d| convert(file, text, d)).collect()),
        Err(e) => {
            let loc = e
                .location()
                .filter(|l| l.line() > 0)
                .map(|l| convert_loc(file, text, &l))
                .unwrap_or(Loc {
                    file,
                    line: 1,
                    col: 1,
                    offset: 0,
                    len: 0,
                });
            let message = serde_saphyr::UserMessageFormatter
                .format_message(&e)
                .into_owned();
            Err(ParseError {
                message: tidy_parser_message(&message),
                loc,
            })
        }
    }
}

fn tidy_parser_message(m: &str) -> String {
    let m = m.trim();
    let m = m.strip_prefix("error: ").unwrap_or(m);
    // Location is rendered by our diagnostics; drop a leading "line X column Y: ".
    if let Some(rest) = m.strip_prefix("line ")
        && let Some(idx) = rest.find(": ")
        && rest[..idx].contains("column")
    {
        return rest[idx + 2..].to_string();
    }
    m.to_string()
}

// ---------------------------------------------------------------------------------------------
// Stage 2: Node -> typed structs

/// A value together with the location of the YAML node it came from.
#[derive(Clone, Debug)]
pub struct Sp<T> {
    pub value: T,
    pub loc: Loc,
}

impl<T> Sp<T> {
    pub fn new(value: T, loc: Loc) -> Self {
        Sp { value, loc }
    }
}

impl<T> std::ops::Deref for Sp<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: PartialEq> PartialEq for Sp<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

const SP_MAGIC: &str = "$__carbonite_sync_spanned";
const SP_FIELDS: &[&str] = &["$__loc", "$__value"];

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Sp<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Sp<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a located value")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Sp<T>, A::Error> {
                let mut loc = Loc::default();
                let mut value = None;
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "$__loc" => {
                            let (file, line, col, offset, len): (u32, u32, u32, u64, u64) =
                                map.next_value()?;
                            loc = Loc {
                                file,
                                line,
                                col,
                                offset: offset as usize,
                                len: len as usize,
                            };
                        }
                        "$__value" => value = Some(map.next_value()?),
                        _ => {
                            let _ = map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                value
                    .map(|value| Sp { value, loc })
                    .ok_or_else(|| de::Error::missing_field("$__value"))
            }
        }
        d.deserialize_struct(SP_MAGIC, SP_FIELDS, V(std::marker::PhantomData))
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Sp<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// An error found while deserializing a typed value from a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    pub message: String,
    pub loc: Option<Loc>,
    /// Points at a key rather than a value (unknown keys).
    pub hint: Option<String>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            loc: None,
            hint: None,
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            message: format!("unknown value `{variant}`, expected {}", one_of(expected)),
            loc: None,
            hint: did_you_mean(variant, expected.iter().copied())
                .map(|s| format!("did you mean `{s}`?")),
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            message: format!("unknown key `{field}`"),
            loc: None,
            hint: unknown_key_hint(field, expected.iter().copied()),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        DeError {
            message: format!("missing required key `{field}`"),
            loc: None,
            hint: None,
        }
    }

    fn invalid_type(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        DeError {
            message: format!("expected {exp}, found {}", describe_unexpected(&unexp)),
            loc: None,
            hint: None,
        }
    }
}

fn describe_unexpected(u: &de::Unexpected) -> String {
    match u {
        de::Unexpected::Str(s) => format!("string \"{s}\""),
        de::Unexpected::Map => "a mapping".into(),
        de::Unexpected::Seq => "a list".into(),
        de::Unexpected::Unit => "null".into(),
        other => other.to_string(),
    }
}

/// "one of `a`, `b` or `c`".
pub fn one_of(expected: &[&str]) -> String {
    match expected {
        [] => "nothing".into(),
        [one] => format!("`{one}`"),
        _ => {
            let quoted: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
            format!("one of {}", quoted.join(", "))
        }
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lw = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&lw, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn unknown_key_hint<'a>(
    field: &str,
    expected: impl IntoIterator<Item = &'a str> + Clone,
) -> Option<String> {
    match did_you_mean(field, expected.clone()) {
        Some(s) => Some(format!("did you mean `{s}`?")),
        None => {
            let v: Vec<&str> = expected.into_iter().collect();
            if v.is_empty() {
                None
            } else {
                Some(format!("expected {}", one_of(&v)))
            }
        }
    }
}

/// Collects the errors that do not stop deserialization (unknown keys).
#[derive(Default)]
pub struct Collected {
    pub errors: RefCell<Vec<DeError>>,
}

/// Deserialize `T` from a node. Returns the value (if the structure allowed it) and every error
/// found: all unknown keys, and the hard errors (wrong type, bad value). After a hard error the
/// offending value is replaced by null and deserialization is retried, so one run reports the
/// problems of every optional value, not only the first.
pub fn from_node<T: DeserializeOwned>(node: &Node) -> (Option<T>, Vec<DeError>) {
    const MAX_RETRIES: usize = 25;
    let mut hard: Vec<DeError> = Vec::new();
    let mut soft: Vec<DeError> = Vec::new();
    let mut current = std::borrow::Cow::Borrowed(node);
    for _ in 0..MAX_RETRIES {
        let collected = Collected::default();
        let result = T::deserialize(NodeDe {
            node: &current,
            collected: &collected,
        });
        for e in collected.errors.into_inner() {
            if !soft.contains(&e) {
                soft.push(e);
            }
        }
        match result {
            Ok(v) => {
                let mut errors = std::mem::take(&mut soft);
                errors.extend(hard);
                errors.sort_by_key(|e| e.loc);
                errors.dedup();
                // A value whose bad parts were nulled still goes to semantic validation, so its
                // other problems are reported too; the errors keep the config from loading.
                return (Some(v), errors);
            }
            Err(mut e) => {
                if e.loc.is_none() {
                    e.loc = Some(node.loc);
                }
                let loc = e.loc.unwrap_or_default();
                let seen = hard.iter().any(|h| h.loc == e.loc);
                if !seen {
                    hard.push(e);
                }
                match (seen, nulled(&current, loc)) {
                    (false, Some(next)) => current = std::borrow::Cow::Owned(next),
                    _ => {
                        let mut errors = std::mem::take(&mut soft);
                        errors.extend(hard);
                        errors.sort_by_key(|e| e.loc);
                        errors.dedup();
                        return (None, errors);
                    }
                }
            }
        }
    }
    soft.extend(hard);
    soft.sort_by_key(|e| e.loc);
    (None, soft)
}

/// A copy of `node` with the value at `loc` replaced by null (None if there is no such value,
/// or it is the root).
fn nulled(node: &Node, loc: Loc) -> Option<Node> {
    fn walk(n: &mut Node, loc: Loc) -> bool {
        match &mut n.kind {
            NodeKind::Seq(items) => items.iter_mut().any(|i| replace(i, loc)),
            NodeKind::Map(entries) => entries.iter_mut().any(|(_, v)| replace(v, loc)),
            _ => false,
        }
    }
    fn replace(n: &mut Node, loc: Loc) -> bool {
        if n.loc == loc && !matches!(n.kind, NodeKind::Null) {
            n.kind = NodeKind::Null;
            return true;
        }
        walk(n, loc)
    }
    let mut copy = node.clone();
    if walk(&mut copy, loc) {
        Some(copy)
    } else {
        None
    }
}

/// The serde deserializer over one node.
pub struct NodeDe<'a> {
    node: &'a Node,
    collected: &'a Collected,
}

impl<'a> NodeDe<'a> {
    fn child(&self, node: &'a Node) -> NodeDe<'a> {
        NodeDe {
            node,
            collected: self.collected,
        }
    }

    fn locate(&self, mut e: DeError) -> DeError {
        if e.loc.is_none() {
            e.loc = Some(self.node.loc);
        }
        e
    }

    fn type_error(&self, expected: &str) -> DeError {
        DeError {
            message: format!("expected {expected}, found {}", self.node.kind.describe()),
            loc: Some(self.node.loc),
            hint: None,
        }
    }
}

macro_rules! forward_int {
    ($($method:ident => $visit:ident : $ty:ty),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
                match &self.node.kind {
                    NodeKind::Int(i) => match <$ty>::try_from(*i) {
                        Ok(v) => visitor.$visit(v).map_err(|e| self.locate(e)),
                        Err(_) => Err(DeError {
                            message: format!("number {i} is out of range"),
                            loc: Some(self.node.loc),
                            hint: None,
                        }),
                    },
                    _ => Err(self.type_error("an integer")),
                }
            }
        )*
    };
}

impl<'de, 'a> Deserializer<'de> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.kind {
            NodeKind::Null => visitor.visit_unit(),
            NodeKind::Bool(b) => visitor.visit_bool(*b),
            NodeKind::Int(i) => match i64::try_from(*i) {
                Ok(v) => visitor.visit_i64(v),
                Err(_) => visitor.visit_i128(*i),
            },
            NodeKind::Float(f) => visitor.visit_f64(*f),
            NodeKind::Str(s) => visitor.visit_str(s),
            NodeKind::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter(),
                de: &self,
            }),
            NodeKind::Map(entries) => visitor.visit_map(MapDe {
                entries: entries.iter().collect(),
                pos: 0,
                de: &self,
            }),
        };
        r.map_err(|e| self.locate(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Bool(b) => visitor.visit_bool(*b).map_err(|e| self.locate(e)),
            _ => Err(self.type_error("true or false")),
        }
    }

    forward_int! {
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Float(f) => visitor.visit_f64(*f).map_err(|e| self.locate(e)),
            NodeKind::Int(i) => visitor.visit_f64(*i as f64).map_err(|e| self.locate(e)),
            _ => Err(self.type_error("a number")),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Scalars are accepted where a string is expected, as YAML users expect
        // (`employeeNumber: 1001` is the string "1001").
        match self.node.as_scalar_string() {
            Some(s) => visitor.visit_string(s).map_err(|e| self.locate(e)),
            None => Err(self.type_error("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Null => visitor.visit_none().map_err(|e| self.locate(e)),
            _ => {
                let loc = self.node.loc;
                visitor.visit_some(self).map_err(|mut e| {
                    if e.loc.is_none() {
                        e.loc = Some(loc);
                    }
                    e
                })
            }
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Null => visitor.visit_unit().map_err(|e| self.locate(e)),
            _ => Err(self.type_error("null")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let loc = self.node.loc;
        visitor.visit_newtype_struct(self).map_err(|mut e| {
            if e.loc.is_none() {
                e.loc = Some(loc);
            }
            e
        })
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Seq(items) => visitor
                .visit_seq(SeqDe {
                    items: items.iter(),
                    de: &self,
                })
                .map_err(|e| self.locate(e)),
            _ => Err(self.type_error("a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Map(entries) => visitor
                .visit_map(MapDe {
                    entries: entries.iter().collect(),
                    pos: 0,
                    de: &self,
                })
                .map_err(|e| self.locate(e)),
            _ => Err(self.type_error("a mapping")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == SP_MAGIC {
            return visitor.visit_map(SpannedDe { de: self, step: 0 });
        }
        let NodeKind::Map(entries) = &self.node.kind else {
            return Err(self.type_error("a mapping"));
        };
        // Every unknown key is recorded (not only the first) and skipped.
        let mut kept = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = entry.0.as_scalar_string();
            match key {
                Some(k) if fields.contains(&k.as_str()) => kept.push(entry),
                Some(k) => self.collected.errors.borrow_mut().push(DeError {
                    message: format!("unknown key `{k}`"),
                    loc: Some(entry.0.loc),
                    hint: unknown_key_hint(&k, fields.iter().copied()),
                }),
                None => self.collected.errors.borrow_mut().push(DeError {
                    message: format!("keys must be strings, found {}", entry.0.kind.describe()),
                    loc: Some(entry.0.loc),
                    hint: None,
                }),
            }
        }
        visitor
            .visit_map(MapDe {
                entries: kept,
                pos: 0,
                de: &self,
            })
            .map_err(|e| self.locate(e))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.kind {
            NodeKind::Str(_) | NodeKind::Int(_) | NodeKind::Bool(_) => {
                let s = self.node.as_scalar_string().unwrap_or_default();
                visitor
                    .visit_enum(s.into_deserializer())
                    .map_err(|e: DeError| self.locate(e))
            }
            NodeKind::Map(entries) if entries.len() == 1 => {
                let (k, v) = &entries[0];
                visitor
                    .visit_enum(EnumDe {
                        key: k,
                        value: v,
                        de: &self,
                    })
                    .map_err(|e| self.locate(e))
            }
            _ => Err(self.type_error("a string")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqDe<'s, 'a> {
    items: std::slice::Iter<'a, Node>,
    de: &'s NodeDe<'a>,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'_, '_> {
    type Error = DeError;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some(n) => seed.deserialize(self.de.child(n)).map(Some),
            None => Ok(None),
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'s, 'a> {
    entries: Vec<&'a (Node, Node)>,
    pos: usize,
    de: &'s NodeDe<'a>,
}

impl<'de> de::MapAccess<'de> for MapDe<'_, '_> {
    type Error = DeError;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.get(self.pos) {
            Some((k, _)) => seed.deserialize(self.de.child(k)).map(Some),
            None => Ok(None),
        }
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        let (_, v) = self.entries[self.pos];
        self.pos += 1;
        seed.deserialize(self.de.child(v))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.pos)
    }
}

struct SpannedDe<'a> {
    de: NodeDe<'a>,
    step: u8,
}

impl<'de> de::MapAccess<'de> for SpannedDe<'_> {
    type Error = DeError;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let key = match self.step {
            0 => "$__loc",
            1 => "$__value",
            _ => return Ok(None),
        };
        seed.deserialize(key.into_deserializer()).map(Some)
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        self.step += 1;
        if self.step == 1 {
            let l = self.de.node.loc;
            let tuple = (l.file, l.line, l.col, l.offset as u64, l.len as u64);
            seed.deserialize(TupleDe(tuple))
        } else {
            seed.deserialize(NodeDe {
                node: self.de.node,
                collected: self.de.collected,
            })
        }
    }
}

/// Feeds a location tuple to `Sp`'s visitor.
struct TupleDe((u32, u32, u32, u64, u64));

impl<'de> Deserializer<'de> for TupleDe {
    type Error = DeError;
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (a, b, c, d, e) = self.0;
        let seq = vec![a as u64, b as u64, c as u64, d, e];
        visitor.visit_seq(de::value::SeqDeserializer::new(seq.into_iter()))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct EnumDe<'s, 'a> {
    key: &'a Node,
    value: &'a Node,
    de: &'s NodeDe<'a>,
}

impl<'de, 's, 'a> de::EnumAccess<'de> for EnumDe<'s, 'a> {
    type Error = DeError;
    type Variant = VariantDe<'s, 'a>;
    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), DeError> {
        let v = seed.deserialize(self.de.child(self.key))?;
        Ok((
            v,
            VariantDe {
                value: self.value,
                de: self.de,
            },
        ))
    }
}

struct VariantDe<'s, 'a> {
    value: &'a Node,
    de: &'s NodeDe<'a>,
}

impl<'de> de::VariantAccess<'de> for VariantDe<'_, '_> {
    type Error = DeError;
    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }
    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, DeError> {
        seed.deserialize(self.de.child(self.value))
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.de.child(self.value).deserialize_seq(visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.de
            .child(self.value)
            .deserialize_struct("", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        page_size: Option<u32>,
        name: Sp<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        inner: Inner,
        #[serde(default)]
        tags: Vec<String>,
    }

    fn parse_one(text: &str) -> Node {
        parse_documents(0, text).unwrap().remove(0)
    }

    #[test]
    fn locations_of_values() {
        let n = parse_one("inner:\n  name: ann\n  pageSize: 5\ntags: [a, 1]\n");
        let (v, errs) = from_node::<Outer>(&n);
        assert!(errs.is_empty(), "{errs:?}");
        let v = v.unwrap();
        assert_eq!(v.inner.name.value, "ann");
        assert_eq!((v.inner.name.loc.line, v.inner.name.loc.col), (2, 9));
        assert_eq!(v.inner.page_size, Some(5));
        assert_eq!(v.tags, vec!["a", "1"]);
    }

    #[test]
    fn all_unknown_keys_are_reported() {
        let n = parse_one("inner:\n  nme: ann\n  name: x\n  pagesize: 3\ntagz: []\n");
        let (v, errs) = from_node::<Outer>(&n);
        assert!(v.is_some());
        let msgs: Vec<_> = errs
            .iter()
            .map(|e| (e.message.clone(), e.loc.unwrap().line, e.hint.clone()))
            .collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert_eq!(msgs[0].0, "unknown key `nme`");
        assert_eq!(msgs[0].2.as_deref(), Some("did you mean `name`?"));
        assert_eq!(msgs[1].1, 4);
        assert_eq!(msgs[1].2.as_deref(), Some("did you mean `pageSize`?"));
        assert_eq!(msgs[2].0, "unknown key `tagz`");
    }

    #[test]
    fn type_errors_are_located() {
        let n = parse_one("inner:\n  name: ann\n  pageSize: lots\n");
        let (_, errs) = from_node::<Outer>(&n);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].message, "expected an integer, found a string");
        assert_eq!(errs[0].loc.unwrap().line, 3);
    }

    #[test]
    fn missing_field_points_at_the_struct() {
        let n = parse_one("inner:\n  pageSize: 1\n");
        let (_, errs) = from_node::<Outer>(&n);
        assert_eq!(errs[0].message, "missing required key `name`");
        assert_eq!(errs[0].loc.unwrap().line, 2);
    }

    #[test]
    fn syntax_errors_have_locations() {
        let e = parse_documents(0, "a: b\n c: [\n").unwrap_err();
        assert!(e.loc.line >= 1);
        assert!(!e.message.is_empty());
    }

    #[test]
    fn keys_are_strings() {
        let n = parse_one("on: [created]\nyes: 1\n1: x\n");
        let keys: Vec<_> = match &n.kind {
            NodeKind::Map(e) => e
                .iter()
                .map(|(k, _)| k.as_scalar_string().unwrap())
                .collect(),
            _ => panic!(),
        };
        assert_eq!(keys, ["on", "yes", "1"]);
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut y = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for c in 'b'..='p' {
            y.push_str(&format!("{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
            prev = c;
        }
        assert!(parse_documents(0, &y).is_err());
    }
}
