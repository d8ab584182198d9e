//! The field table of `test-endpoint` (SPEC §11): for the items of a listing, every field as a
//! JSON pointer, its JSON type(s), a sample value and how many items have it. Pure.
//!
//! Nested objects are walked (`/Address/City`); arrays are leaves (sample `[3 items]`). A field
//! counts for an item when it is present and not null; a null shows up in the type list. The
//! values of sensitive-looking keys (`token`, `secret`, `password`, `api-key`...) are never
//! shown.

use std::collections::BTreeMap;

use serde_json::Value;

use super::redact::REDACTED;
use crate::config::secret::is_sensitive_key;

/// Samples are cut to this many characters.
const SAMPLE_CHARS: usize = 40;

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRow {
    /// JSON pointer inside an item.
    pub pointer: String,
    /// JSON types seen, in a fixed order (`string`, `number`, `boolean`, `array`, `object`,
    /// `null`).
    pub types: Vec<&'static str>,
    /// The first non-null value seen, shortened; `<redacted>` for sensitive keys.
    pub sample: String,
    /// Items in which the field is present and not null.
    pub count: usize,
}

const TYPE_ORDER: [&str; 6] = ["string", "number", "boolean", "array", "object", "null"];

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[derive(Default)]
struct Acc {
    types: [bool; 6],
    sample: Option<String>,
    count: usize,
}

fn escape_token(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= SAMPLE_CHARS {
        return s.to_string();
    }
    let cut: String = s.chars().take(SAMPLE_CHARS - 1).collect();
    format!("{cut}…")
}

fn sample_of(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.replace(['\n', '\r', '\t'], " "),
        Value::Array(a) => format!("[{} item{}]", a.len(), if a.len() == 1 { "" } else { "s" }),
        other => other.to_string(),
    };
    shorten(&s)
}

fn walk(
    v: &Value,
    pointer: &str,
    sensitive: bool,
    seen: &mut BTreeMap<String, Acc>,
    counted: &mut Vec<String>,
) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                let p = format!("{pointer}/{}", escape_token(k));
                walk(child, &p, sensitive || is_sensitive_key(k), seen, counted);
            }
        }
        _ => {
            let acc = seen.entry(pointer.to_string()).or_default();
            let t = type_name(v);
            if let Some(i) = TYPE_ORDER.iter().position(|x| *x == t) {
                acc.types[i] = true;
            }
            if !v.is_null() {
                if !counted.iter().any(|c| c == pointer) {
                    acc.count += 1;
                    counted.push(pointer.to_string());
                }
                if acc.sample.is_none() {
                    acc.sample = Some(if sensitive {
                        REDACTED.to_string()
                    } else {
                        sample_of(v)
                    });
                }
            }
        }
    }
}

/// The table for `items`, sorted by pointer.
pub fn field_table<'a>(items: impl IntoIterator<Item = &'a Value>) -> Vec<FieldRow> {
    let mut seen: BTreeMap<String, Acc> = BTreeMap::new();
    for item in items {
        let mut counted = Vec::new();
        walk(item, "", false, &mut seen, &mut counted);
    }
    seen.into_iter()
        .map(|(pointer, acc)| FieldRow {
            pointer: if pointer.is_empty() {
                "\"\"".into()
            } else {
                pointer
            },
            types: TYPE_ORDER
                .iter()
                .zip(acc.types)
                .filter_map(|(t, on)| on.then_some(*t))
                .collect(),
            sample: acc.sample.unwrap_or_default(),
            count: acc.count,
        })
        .collect()
}

/// The table as aligned text: `POINTER  TYPE  SAMPLE  ITEMS`.
pub fn render_table(rows: &[FieldRow]) -> String {
    let header = ["POINTER", "TYPE", "SAMPLE", "ITEMS"];
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|r| {
            [
                r.pointer.clone(),
                r.types.join("|"),
                r.sample.clone(),
                r.count.to_string(),
            ]
        })
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .map(|c| c[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2)];
    let line = |c: [&str; 4]| {
        let mut s = String::new();
        for (i, cell) in c.iter().enumerate().take(3) {
            s.push_str(cell);
            s.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
        }
        s.push_str(c[3]);
        s.push('\n');
        s
    };
    let mut out = line(header);
    for c in &cells {
        out.push_str(&line([&c[0], &c[1], &c[2], &c[3]]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_of_mixed_items() {
        let items = [
            json!({"UserId": "1", "Email": "a@x", "Status": null, "Tags": ["a"],
                   "Address": {"City": "Oslo", "Zip/Code": 1}, "ApiToken": "t0p",
                   "Note": "a very long note that goes on and on and on beyond forty characters"}),
            json!({"UserId": "2", "Email": null, "Status": "Active", "Extra": true, "Empty": {}}),
        ];
        let rows = field_table(&items);
        let text = render_table(&rows);
        let get = |p: &str| rows.iter().find(|r| r.pointer == p).unwrap();
        assert_eq!(get("/Email").types, ["string", "null"]);
        assert_eq!(get("/Email").count, 1);
        assert_eq!(get("/Status").sample, "Active");
        assert_eq!(get("/UserId").count, 2);
        assert_eq!(get("/Tags").sample, "[1 item]");
        assert_eq!(get("/Address/Zip~1Code").types, ["number"]);
        assert_eq!(get("/ApiToken").sample, REDACTED);
        assert_eq!(get("/Empty").types, ["object"]);
        assert_eq!(get("/Note").sample.chars().count(), 40);
        assert!(get("/Note").sample.ends_with('…'));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), rows.len() + 1);
        assert!(lines[0].starts_with("POINTER"));
        // Columns line up: TYPE starts at the same column on every line.
        let col = lines[0].find("TYPE").unwrap();
        assert!(
            lines
                .iter()
                .skip(1)
                .all(|l| l.chars().nth(col - 1) == Some(' '))
        );
        assert!(!text.contains("t0p"));
    }
}
