//! The example GitHub Actions workflows (examples/github-actions/) and the project's own
//! (.github/workflows/) validate against GitHub's workflow JSON Schema, vendored from
//! SchemaStore via the `check-jsonschema` package (tests/fixtures/github/, Apache-2.0).

use std::path::{Path, PathBuf};

fn workflow_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["examples/github-actions", ".github/workflows"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/github/github-workflow.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the workflow schema compiles")
}

fn parse(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn workflows_validate_against_the_github_workflow_schema() {
    let validator = validator();
    let files = workflow_files();
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        let doc = parse(f);
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
    }
}

#[test]
fn the_schema_catches_a_broken_workflow() {
    // Guards against a vacuous validator: a job without `runs-on` and an unknown key.
    let doc =
        serde_json::json!({"on": "push", "jobs": {"x": {"steps": [{"run": "true"}]}}, "bogus": 1});
    assert!(!validator().is_valid(&doc));
}

#[test]
fn every_job_that_calls_carbonite_shares_one_concurrency_group() {
    // Jobs with Carbonite credentials (or that run plan/apply) are in the `carbonite-sync`
    // group; the review job, which makes no Carbonite call, is not.
    for f in workflow_files()
        .iter()
        .filter(|f| f.to_string_lossy().contains("github-actions"))
    {
        let doc = parse(f);
        // The commands the jobs run, and the secrets they are given.
        let mut text = String::new();
        for job in doc["jobs"].as_object().unwrap().values() {
            text.push_str(&job["env"].to_string());
            for step in job["steps"].as_array().unwrap() {
                text.push_str(step["run"].as_str().unwrap_or_default());
                text.push_str(&step["env"].to_string());
            }
        }
        let calls_carbonite = text.contains(" apply ")
            || text.contains(" plan ")
            || text.contains("CARBONITE_API_KEY_SECRET");
        let group = doc["concurrency"]["group"].as_str().or_else(|| {
            doc["jobs"]
                .as_object()
                .and_then(|j| j.values().next())
                .and_then(|j| j["concurrency"]["group"].as_str())
        });
        if calls_carbonite {
            assert_eq!(group, Some("carbonite-sync"), "{}", f.display());
            assert_eq!(doc["concurrency"]["cancel-in-progress"], false);
        } else {
            assert_ne!(group, Some("carbonite-sync"), "{}", f.display());
            assert!(text.contains("--observed cache") && text.contains("--offline"));
        }
    }
}
