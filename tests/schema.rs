//! The committed `schema/` matches what the binary generates, and the combined schema accepts
//! every shipped example document.

use std::path::Path;

#[test]
fn committed_schemas_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated = carbonite_sync::schema::all_schemas();
    for (name, value) in &generated {
        let path = root.join("schema").join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed,
            carbonite_sync::schema::to_text(value),
            "schema/{name} is out of date: run `cargo run -- schema --out-dir schema`"
        );
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        // GitHub Actions workflows, not config documents (tests/github_workflows.rs).
        if p.ends_with("github-actions") {
            continue;
        }
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

#[test]
fn combined_schema_validates_the_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema = carbonite_sync::schema::config_schemas()
        .remove("carbonite-sync.schema.json")
        .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let mut files = Vec::new();
    yaml_files(&root.join("examples"), &mut files);
    let mut checked = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        for doc in docs {
            let errors: Vec<String> = validator
                .iter_errors(&doc)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{}: {errors:?}", f.display());
            checked += 1;
        }
    }
    assert!(checked >= 6, "examples checked: {checked}");
}

#[test]
fn combined_schema_rejects_a_broken_document() {
    let schema = carbonite_sync::schema::config_schemas()
        .remove("carbonite-sync.schema.json")
        .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let doc = serde_json::json!({"apiVersion": "carbonite-sync/v1", "kind": "Mapping", "metadata": {"name": "x"},
        "spec": {"source": {"filtr": "(x=1)"}, "primaryKey": {"ldap": "a", "carbonite": "UserCustom1"}}});
    assert!(!validator.is_valid(&doc));
}

#[test]
fn config_reference_is_current() {
    // Like rust-analyzer's `ensure_file_contents`: rewrite the file, then fail so the change
    // is committed.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/config-reference.md");
    let generated = carbonite_sync::schema::config_reference();
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        std::fs::write(&path, &generated).unwrap();
        panic!("docs/config-reference.md was out of date and has been regenerated: commit it");
    }
}
