//! Listed items kept as the JSON text the server sent.
//!
//! A 100k-account listing is ~30 MB of JSON. Building a `serde_json::Value` of every item,
//! converting it to the reconcile core's strings and serialising it again for the
//! observed-state cache cost about three times what the reads themselves cost the process
//! (docs/decisions.md, Performance). So a page is split once: the items array into one
//! [`RawValue`] per item (their text, not parsed into values), the rest of the answer into a
//! `Value` for the paging rules. An item's fields are then read by the one thing that needs
//! them: the core's string view ([`scalar_fields`]), a top-level field or two for ids and
//! keys ([`top_level`]), or the whole object where a write answer is merged into it
//! ([`RawFields::to_map`]). The cache writes the text back verbatim.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One account's JSON object as listed (unknown fields included), never re-encoded unless
/// two endpoints' items were merged or a write answer was merged into it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawFields(Box<RawValue>);

impl RawFields {
    /// The item as listed. Anything but an object is wrapped as `{"value": ...}` (as the
    /// merge of listings always did), so an account's fields are always an object.
    pub fn from_raw(raw: Box<RawValue>) -> RawFields {
        if raw.get().trim_start().starts_with('{') {
            RawFields(raw)
        } else {
            let wrapped = format!("{{\"value\":{}}}", raw.get());
            RawFields(RawValue::from_string(wrapped).unwrap_or_else(|_| empty_object()))
        }
    }

    /// The fields of `map`, encoded.
    pub fn from_map(map: &Map<String, Value>) -> RawFields {
        serde_json::value::to_raw_value(map)
            .map(RawFields)
            .unwrap_or_else(|_| RawFields(empty_object()))
    }

    /// Every field, parsed.
    pub fn to_map(&self) -> Map<String, Value> {
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }

    /// One top-level field, parsed (`None` when absent).
    pub fn get(&self, name: &str) -> Option<Value> {
        top_level(self.0.get(), &[name]).pop().flatten()
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for RawFields {
    /// The same fields and values, whatever the order and spacing of the text.
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get() || self.to_map() == other.to_map()
    }
}

impl fmt::Debug for RawFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.get())
    }
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_string()).unwrap_or_else(|_| unreachable!("`{{}}` is JSON"))
}

/// The values of the top-level fields `names` of a JSON object (`None` for a missing one, and
/// for every name when `json` is not an object). The last of duplicate keys wins, as in a
/// parsed map.
pub fn top_level(json: &str, names: &[&str]) -> Vec<Option<Value>> {
    struct Pick<'n> {
        names: &'n [&'n str],
    }
    impl<'de> Visitor<'de> for Pick<'_> {
        type Value = Vec<Option<Value>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = vec![None; self.names.len()];
            while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                match self.names.iter().position(|n| *n == key) {
                    Some(i) => {
                        let v = map.next_value::<Value>()?;
                        // A name asked for twice gets the value twice.
                        for (j, n) in self.names.iter().enumerate().skip(i + 1) {
                            if *n == key {
                                found[j] = Some(v.clone());
                            }
                        }
                        found[i] = Some(v);
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(found)
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    de.deserialize_any(Pick { names })
        .unwrap_or_else(|_| vec![None; names.len()])
}

/// The string view of an object's scalar fields, in the object's order: strings as they are,
/// numbers and booleans as JSON writes them; null, empty strings, arrays and objects left out.
/// (The reconcile core compares strings; `null`, `""` and absent are the same to it.)
pub fn scalar_fields(json: &str) -> Vec<(Cow<'_, str>, String)> {
    struct Fields;
    impl<'de> Visitor<'de> for Fields {
        type Value = Vec<(Cow<'de, str>, String)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(12));
            while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                if let Scalar(Some(v)) = map.next_value::<Scalar>()?
                    && !v.is_empty()
                {
                    out.push((key, v));
                }
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    de.deserialize_any(Fields).unwrap_or_default()
}

/// An object key, borrowed from the text unless it has escapes (serde's own `Cow` always
/// copies).
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A field's value as the core's string, or `None` for null and non-scalars.
struct Scalar(Option<String>);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(Some(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                // As a parsed `Value` prints it.
                Ok(Scalar(
                    serde_json::Number::from_f64(v).map(|n| n.to_string()),
                ))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// What a listing answer holds at its `items` pointer.
#[derive(Debug)]
pub enum Items {
    /// An array: each element's text.
    Array(Vec<Box<RawValue>>),
    /// Anything else, parsed (for the error message).
    Other(Value),
}

impl<'de> Deserialize<'de> for Items {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Items;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element::<Box<RawValue>>()? {
                    out.push(item);
                }
                Ok(Items::Array(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Items, A::Error> {
                Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Items::Other)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Items, E> {
                Ok(Items::Other(Value::String(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Items, E> {
                Ok(Items::Other(Value::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Items, E> {
                Ok(Items::Other(Value::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Items, E> {
                Ok(Items::Other(Value::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Items, E> {
                Ok(Items::Other(Value::from(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Items, E> {
                Ok(Items::Other(Value::Null))
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON answer split at the JSON pointer `items`: the answer with that value replaced by
/// `null`, and the value (`None` when the pointer leads nowhere): an array as its elements'
/// text. Array indexes in the pointer are followed too.
pub fn split_at(bytes: &[u8], items: &str) -> Result<(Value, Option<Items>), serde_json::Error> {
    let tokens: Vec<String> = if items.is_empty() {
        Vec::new()
    } else {
        items
            .strip_prefix('/')
            .unwrap_or(items)
            .split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect()
    };
    let mut found = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Split {
        path: &tokens,
        found: &mut found,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, found))
}

struct Split<'p, 'f> {
    path: &'p [String],
    found: &'f mut Option<Items>,
}

impl<'de> DeserializeSeed<'de> for Split<'_, '_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.path.is_empty() {
            *self.found = Some(Items::deserialize(d)?);
            return Ok(Value::Null);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Split<'_, '_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let (head, rest) = (&self.path[0], &self.path[1..]);
        while let Some(key) = map.next_key::<String>()? {
            let v = if key == *head {
                map.next_value_seed(Split {
                    path: rest,
                    found: &mut *self.found,
                })?
            } else {
                map.next_value::<Value>()?
            };
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let (head, rest) = (&self.path[0], &self.path[1..]);
        let index: Option<usize> = head.parse().ok().filter(|_| !head.starts_with('+'));
        let mut out = Vec::new();
        loop {
            let v = if Some(out.len()) == index {
                seq.next_element_seed(Split {
                    path: rest,
                    found: &mut *self.found,
                })?
            } else {
                seq.next_element::<Value>()?
            };
            match v {
                Some(v) => out.push(v),
                None => break,
            }
        }
        Ok(Value::Array(out))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn texts(items: Option<Items>) -> Vec<String> {
        match items {
            Some(Items::Array(a)) => a.iter().map(|r| r.get().to_string()).collect(),
            other => panic!("not an array: {other:?}"),
        }
    }

    #[test]
    fn a_page_splits_at_its_items_and_keeps_the_rest() {
        let page = br#"{"TotalCount": 3, "Data": {"Users": [{"a": 1}, {"b": "x"}], "n": [1, 2]}}"#;
        let (rest, items) = split_at(page, "/Data/Users").unwrap();
        assert_eq!(
            rest,
            serde_json::json!({"TotalCount": 3, "Data": {"Users": null, "n": [1, 2]}})
        );
        assert_eq!(texts(items), [r#"{"a": 1}"#, r#"{"b": "x"}"#]);
        let (rest, items) = split_at(page, "/Missing").unwrap();
        assert!(items.is_none());
        assert_eq!(rest["TotalCount"], 3);
        let (rest, items) = split_at(br#"[1, {"x": [5]}]"#, "/1/x").unwrap();
        assert_eq!(texts(items), ["5"]);
        assert_eq!(rest, serde_json::json!([1, {"x": null}]));
        let (rest, items) = split_at(br#" [1,2] "#, "").unwrap();
        assert_eq!(
            (rest, texts(items)),
            (Value::Null, vec!["1".to_string(), "2".to_string()])
        );
        let (_, items) = split_at(br#"{"a": {"b": 1}}"#, "/a").unwrap();
        assert!(matches!(items, Some(Items::Other(v)) if v == serde_json::json!({"b": 1})));
        assert!(split_at(b"{\"a\": ", "/a").is_err());
        assert!(split_at(b"{} x", "/a").is_err());
    }

    #[test]
    fn fields_read_like_a_parsed_value() {
        let item = r#"{"Email": "a@x", "N": 7, "F": 1.5, "B": true, "Null": null, "E": "",
                       "O": {"x": 1}, "A": [1], "Esc": "\u00e9\"q"}"#;
        let got: Vec<(String, String)> = scalar_fields(item)
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v))
            .collect();
        let want: Vec<(String, String)> = [
            ("Email", "a@x"),
            ("N", "7"),
            ("F", "1.5"),
            ("B", "true"),
            ("Esc", "é\"q"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(
            top_level(item, &["N", "Missing", "O", "N"]),
            vec![
                Some(7.into()),
                None,
                Some(serde_json::json!({"x": 1})),
                Some(7.into())
            ]
        );
        let f = RawFields::from_raw(RawValue::from_string(item.to_string()).unwrap());
        assert_eq!(f.get("Email"), Some("a@x".into()));
        assert_eq!(f, RawFields::from_map(&f.to_map()));
        let wrapped = RawFields::from_raw(RawValue::from_string("[1]".into()).unwrap());
        assert_eq!(wrapped.get("value"), Some(serde_json::json!([1])));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            "[a-zé\"\\\\ ]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z]{1,4}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The string view of the text is the one of the parsed value, field for field.
        #[test]
        fn scalar_fields_agree_with_the_parsed_value(
            fields in prop::collection::btree_map("[a-zA-Z]{1,4}", json_value(), 0..8)
        ) {
            let map: Map<String, Value> = fields.into_iter().collect();
            let text = serde_json::to_string(&map).unwrap();
            let from_value: Vec<(String, String)> = map
                .iter()
                .filter_map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        _ => return None,
                    };
                    (!s.is_empty()).then(|| (k.clone(), s))
                })
                .collect();
            let from_text: Vec<(String, String)> = scalar_fields(&text)
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v))
                .collect();
            prop_assert_eq!(from_text, from_value);
            let page = format!("{{\"Users\":[{text},{text}]}}");
            let (rest, items) = split_at(page.as_bytes(), "/Users").unwrap();
            prop_assert_eq!(rest, serde_json::json!({"Users": null}));
            prop_assert_eq!(texts(items), vec![text.clone(), text]);
        }
    }
}
