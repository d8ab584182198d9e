//! JSON Schemas of the config documents (and, later, of plans and compare output), generated
//! from the raw types' doc comments. Committed under `schema/`; a test keeps them current.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde_json::{Value, json};

use crate::config::raw::{self, Document};

/// The draft every schema declares.
const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

fn kind_schema<S: JsonSchema>(kind: &str) -> Value {
    let mut v = serde_json::to_value(schemars::schema_for!(Document<S>)).unwrap_or(Value::Null);
    if let Some(props) = v.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert(
            "kind".into(),
            json!({"const": kind, "description": format!("Always `{kind}` for this document.")}),
        );
    }
    if let Some(obj) = v.as_object_mut() {
        obj.insert("title".into(), json!(format!("carbonite-sync {kind}")));
        obj.insert("$schema".into(), json!(DRAFT));
    }
    v
}

/// Every schema file by name: `carbonite-sync.schema.json` (any document) and one per kind.
pub fn config_schemas() -> BTreeMap<String, Value> {
    let kinds: Vec<(&str, Value)> = vec![
        (
            "Integration",
            kind_schema::<raw::IntegrationSpec>("Integration"),
        ),
        ("Mapping", kind_schema::<raw::MappingSpec>("Mapping")),
        ("Endpoint", kind_schema::<raw::EndpointSpec>("Endpoint")),
        ("Webhook", kind_schema::<raw::WebhookSpec>("Webhook")),
        (
            "Orchestration",
            kind_schema::<raw::OrchestrationSpec>("Orchestration"),
        ),
    ];
    let mut out = BTreeMap::new();
    let mut defs = serde_json::Map::new();
    let mut one_of = Vec::new();
    for (kind, schema) in &kinds {
        out.insert(
            format!("{}.schema.json", kind.to_ascii_lowercase()),
            schema.clone(),
        );
        let mut body = schema.clone();
        if let Some(obj) = body.as_object_mut() {
            if let Some(Value::Object(d)) = obj.remove("$defs") {
                for (k, v) in d {
                    defs.insert(k, v);
                }
            }
            obj.remove("$schema");
        }
        let name = format!("{kind}Document");
        defs.insert(name.clone(), body);
        one_of.push(json!({"$ref": format!("#/$defs/{name}")}));
    }
    let combined = json!({
        "$schema": DRAFT,
        "title": "carbonite-sync config document",
        "description": "One YAML document of a carbonite-sync config directory: apiVersion carbonite-sync/v1 and one of the kinds Integration, Mapping, Endpoint, Webhook, Orchestration.",
        "oneOf": one_of,
        "$defs": Value::Object(defs),
    });
    out.insert("carbonite-sync.schema.json".into(), combined);
    out
}

/// The schema of `plan --format json` (and of saved plans' common part).
pub fn plan_schema() -> Value {
    let mut v = serde_json::to_value(schemars::schema_for!(
        crate::render::json::JsonPlan<'static>
    ))
    .unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("$schema".into(), json!(DRAFT));
    }
    v
}

/// The schema of a saved plan (`plan --out F`).
pub fn saved_plan_schema() -> Value {
    let mut v = serde_json::to_value(schemars::schema_for!(
        crate::render::saved::SavedPlan<'static>
    ))
    .unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("$schema".into(), json!(DRAFT));
    }
    v
}

/// The schema of `compare --format json`.
pub fn compare_schema() -> Value {
    let mut v = serde_json::to_value(schemars::schema_for!(
        crate::render::compare::JsonCompare<'static>
    ))
    .unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("$schema".into(), json!(DRAFT));
    }
    v
}

/// Every schema file under `schema/`: the config schemas, the plan, saved-plan and compare schemas.
pub fn all_schemas() -> BTreeMap<String, Value> {
    let mut all = config_schemas();
    all.insert("plan.schema.json".into(), plan_schema());
    all.insert("saved-plan.schema.json".into(), saved_plan_schema());
    all.insert("compare.schema.json".into(), compare_schema());
    all
}

/// Pretty JSON with a trailing newline, as committed.
pub fn to_text(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// The config reference (docs/config-reference.md), generated from the same schemas: one table
/// per kind, one row per key path with its type, whether it is required and its description.
/// `tests/schema.rs` fails when the committed file differs.
pub fn config_reference() -> String {
    let schemas = config_schemas();
    let mut out = String::from(
        "<!-- Generated from the JSON Schemas by `carbonite_sync::schema::config_reference`; \
         do not edit. `cargo test --test schema` rewrites it when it is out of date. -->\n\
         # Config reference\n\n\
         Every key of every document kind, generated from the JSON Schemas in \
         [`schema/`](../schema) (themselves generated from the code). Every document has the \
         envelope `apiVersion: carbonite-sync/v1`, `kind`, `metadata` (`name` required, a DNS \
         label; `description`; `labels`) and `spec`. Paths are relative to `spec`; `<name>` \
         stands for a map key, `[]` for a list item. Defaults are in the descriptions. See \
         [config.md](config.md) for the layout of a config directory and \
         [decisions.md](decisions.md) for behaviour the spec leaves open.\n",
    );
    for kind in [
        "Integration",
        "Mapping",
        "Endpoint",
        "Webhook",
        "Orchestration",
    ] {
        let Some(schema) = schemas.get(&format!("{}.schema.json", kind.to_ascii_lowercase()))
        else {
            continue;
        };
        let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
        // The spec's own definition (its description, not the envelope's "The kind-specific body").
        let spec = schema
            .pointer("/properties/spec/$ref")
            .and_then(Value::as_str)
            .and_then(|r| defs.get(r.trim_start_matches("#/$defs/")))
            .cloned()
            .unwrap_or(Value::Null);
        out.push_str(&format!("\n## {kind}\n\n"));
        if let Some(d) = spec.get("description").and_then(Value::as_str) {
            out.push_str(&format!("{}\n\n", one_line(d)));
        }
        out.push_str("| key | type | required | description |\n|---|---|---|---|\n");
        let mut rows = Vec::new();
        walk(&spec, &defs, "", &mut rows, 0);
        for (path, ty, required, desc) in rows {
            out.push_str(&format!(
                "| `{path}` | {ty} | {} | {} |\n",
                if required { "yes" } else { "" },
                one_line(&desc).replace('|', "\\|")
            ));
        }
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Follow a `$ref` into `$defs`, keeping the referring node's description.
fn resolve(node: &Value, defs: &Value) -> Value {
    let Some(r) = node.get("$ref").and_then(Value::as_str) else {
        return node.clone();
    };
    let name = r.trim_start_matches("#/$defs/");
    let mut target = defs.get(name).cloned().unwrap_or(Value::Null);
    if let (Some(d), Some(obj)) = (node.get("description"), target.as_object_mut()) {
        obj.insert("description".into(), d.clone());
    }
    target
}

/// The alternatives of a node, `null` dropped (optional keys are `anyOf [T, null]`).
fn alternatives(node: &Value, defs: &Value) -> Vec<Value> {
    let node = resolve(node, defs);
    for key in ["anyOf", "oneOf"] {
        if let Some(list) = node.get(key).and_then(Value::as_array) {
            // An enum written as oneOf of consts stays one node.
            if list.iter().all(|v| v.get("const").is_some()) {
                return vec![node.clone()];
            }
            return list
                .iter()
                .filter(|v| v.get("type").and_then(Value::as_str) != Some("null"))
                .flat_map(|v| alternatives(v, defs))
                .collect();
        }
    }
    vec![node]
}

/// A secret reference (`{ env: NAME }` / `{ file: path }`), shown as one row.
fn is_secret(node: &Value) -> bool {
    let is_ref = |v: &Value| v.get("$ref").and_then(Value::as_str) == Some("#/$defs/SecretRef");
    is_ref(node)
        || node
            .get("anyOf")
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(is_ref))
}

fn type_name(node: &Value, defs: &Value) -> String {
    if is_secret(node) {
        return "secret reference: `{ env: NAME }` or `{ file: path }`".into();
    }
    let alts = alternatives(node, defs);
    let names: Vec<String> = alts
        .iter()
        .map(|n| {
            if let Some(c) = n.get("const") {
                return format!("`{}`", c.as_str().unwrap_or_default());
            }
            if let Some(list) = n
                .get("oneOf")
                .or_else(|| n.get("enum"))
                .and_then(Value::as_array)
            {
                let values: Vec<String> = list
                    .iter()
                    .filter_map(|v| v.get("const").unwrap_or(v).as_str())
                    .map(|v| format!("`{v}`"))
                    .collect();
                return values.join(" \\| ");
            }
            match n.get("type") {
                Some(Value::String(t)) if t == "array" => format!(
                    "list of {}",
                    n.get("items").map_or("any".into(), |i| type_name(i, defs))
                ),
                Some(Value::String(t)) if t == "object" => {
                    if n.get("properties").is_some() {
                        "object".into()
                    } else {
                        match n.get("additionalProperties") {
                            Some(v @ Value::Object(_)) => format!("map of {}", type_name(v, defs)),
                            _ => "object".into(),
                        }
                    }
                }
                Some(Value::String(t)) => t.clone(),
                Some(Value::Array(ts)) => ts
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|t| *t != "null")
                    .collect::<Vec<_>>()
                    .join(" or "),
                _ if n.get("properties").is_some() => "object".into(),
                _ => "any".into(),
            }
        })
        .collect();
    let mut unique: Vec<String> = Vec::new();
    for n in names {
        if !unique.contains(&n) {
            unique.push(n);
        }
    }
    unique.join(" or ")
}

type Row = (String, String, bool, String);

fn walk(node: &Value, defs: &Value, prefix: &str, rows: &mut Vec<Row>, depth: usize) {
    if depth > 8 {
        return;
    }
    for alt in alternatives(node, defs) {
        let required: Vec<&str> = alt
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(props) = alt.get("properties").and_then(Value::as_object) {
            for (key, child) in props {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                if rows.iter().any(|r| r.0 == path) {
                    continue;
                }
                let resolved = resolve(child, defs);
                let desc = child
                    .get("description")
                    .or_else(|| resolved.get("description"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                rows.push((
                    path.clone(),
                    type_name(child, defs),
                    required.contains(&key.as_str()),
                    desc,
                ));
                if !is_secret(child) {
                    walk(child, defs, &path, rows, depth + 1);
                }
            }
        }
        match alt.get("type").and_then(Value::as_str) {
            Some("array") => {
                if let Some(items) = alt.get("items") {
                    walk(items, defs, &format!("{prefix}[]"), rows, depth + 1);
                }
            }
            Some("object") if alt.get("properties").is_none() => {
                if let Some(v @ Value::Object(_)) = alt.get("additionalProperties") {
                    walk(v, defs, &format!("{prefix}.<name>"), rows, depth + 1);
                }
            }
            _ => {}
        }
    }
}
