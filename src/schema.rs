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
