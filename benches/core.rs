//! Benchmark of the pure reconcile core (issue: "the core alone on 1M synthetic users/accounts
//! with 1% drift; target under 2 s, under 1 KB per user"). Prints figures; asserts nothing.
//!
//! `cargo bench --bench core` (N defaults to 1,000,000; `CORE_BENCH_N` overrides).
#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use carbonite_sync::config::model::*;
use carbonite_sync::directory::{AttrValue, Entry};
use carbonite_sync::reconcile::{self, Desired, DesiredAccount, ObservedAccount};
use carbonite_sync::template::{
    EngineSettings, LookupIndex, LookupTables, RenderContext, TemplateEngine,
};

/// The binary's allocator (src/main.rs), so the figures are those of the shipped program.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time of this process, every thread (user + system), from /proc (10 ms resolution): the
/// machine may be shared, so wall time alone says little; the render uses one thread per core.
fn cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = after.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn rule(field: &str, value: &str) -> AttributeRule {
    AttributeRule {
        field: field.into(),
        value: value.into(),
        compare: Compare::Exact,
        create_only: false,
        strength: Strength::Strong,
        omit_if_empty: false,
    }
}

fn main() {
    let n: usize = std::env::var("CORE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mapping = Mapping {
        name: "employees".into(),
        description: None,
        labels: BTreeMap::new(),
        source: SourceSpec {
            base_dn: "DC=x".into(),
            scope: Scope::Subtree,
            filter: "(a=*)".into(),
        },
        endpoints: vec!["carbonite-users".into()],
        primary_key: KeyPair {
            ldap: "employeeID".into(),
            carbonite: "UserCustom1".into(),
        },
        correlate: vec![Correlate {
            ldap: "mail".into(),
            carbonite: "Email".into(),
            compare: Compare::CaseInsensitive,
        }],
        attributes: vec![
            rule("Email", "{{ mail | lower }}"),
            rule("FirstName", "{{ givenName }}"),
            rule("LastName", "{{ sn }}"),
            rule("UserGroupId", "g1"),
            rule("CompanyId", "c1"),
            rule("Status", "{{ 'Suspended' if disabled else 'Active' }}"),
        ],
    };
    let policy = Policy {
        create: true,
        update: true,
        orphans: Orphans::Suspend,
        max_destructive_count: None,
        max_destructive_percent: None,
        min_source_entries: 1,
        max_source_shrink_percent: 20.0,
    };
    let rss0 = rss_kib("VmRSS:");

    // Synthetic entries (1% drift: every 100th user's first name changed in AD).
    let t = Instant::now();
    let entries: Vec<Arc<Entry>> = (0..n)
        .map(|i| {
            let mut e = Entry::new(format!("CN=User {i},OU=Staff,DC=corp,DC=example"));
            e.push("employeeID", AttrValue::Text(format!("E{i:07}")));
            e.push("mail", AttrValue::Text(format!("User.{i}@corp.example")));
            e.push(
                "givenName",
                AttrValue::Text(if i % 100 == 0 {
                    format!("New{i}")
                } else {
                    format!("Given{i}")
                }),
            );
            e.push("sn", AttrValue::Text(format!("Sur{i}")));
            e.anchor = format!("{i:032x}");
            Arc::new(e)
        })
        .collect();
    let endpoints = Arc::new(std::collections::BTreeSet::from([
        "carbonite-users".to_string()
    ]));
    let observed: Vec<ObservedAccount> = (0..n)
        .map(|i| {
            let mut f = BTreeMap::new();
            f.insert(
                "UserId".to_string(),
                format!("{i:08x}-0000-4000-8000-000000000000"),
            );
            f.insert("UserCustom1".to_string(), format!("E{i:07}"));
            f.insert("Email".to_string(), format!("user.{i}@corp.example"));
            f.insert("FirstName".to_string(), format!("Given{i}"));
            f.insert("LastName".to_string(), format!("Sur{i}"));
            f.insert("UserGroupId".to_string(), "g1".into());
            f.insert("CompanyId".to_string(), "c1".into());
            f.insert("Status".to_string(), "Active".into());
            ObservedAccount {
                id: f["UserId"].clone(),
                fields: f.into_iter().collect(),
                endpoints: endpoints.clone(),
            }
        })
        .collect();
    let build = t.elapsed();
    let rss_inputs = rss_kib("VmRSS:");

    // Desired state: templates rendered per entry.
    let mut engine = TemplateEngine::new(EngineSettings::default()).unwrap();
    let compiled =
        reconcile::desired::compile(&mut engine, std::slice::from_ref(&mapping)).unwrap();
    let ctx = RenderContext::new(Arc::new(LookupIndex::new(&LookupTables::default())));
    let t = Instant::now();
    let c = cpu_s();
    let desired =
        reconcile::desired::render(&engine, &compiled, std::slice::from_ref(&entries), &ctx);
    let render = t.elapsed();
    let render_cpu = cpu_s() - c;
    let rss_desired = rss_kib("VmRSS:");

    // The core: correlation, diff, guards.
    let fields: Vec<String> = USER_FIELDS.iter().map(|s| s.to_string()).collect();
    let suspended = BTreeSet::new();
    let baseline: reconcile::Baseline = [("employees".to_string(), n as u64)].into();
    let t = Instant::now();
    let c = cpu_s();
    let plan = reconcile::reconcile(&reconcile::Input {
        mappings: std::slice::from_ref(&mapping),
        policy: &policy,
        desired: &desired,
        observed: &observed,
        suspended_by_us: &suspended,
        baseline: Some(&baseline),
        fingerprint_fields: &fields,
        options: reconcile::Options {
            plan_destructive: true,
            ..Default::default()
        },
    });
    let core = t.elapsed();
    let core_cpu = cpu_s() - c;
    let peak = rss_kib("VmHWM:");
    let _keep: &Desired = &desired;
    let _k: Option<&DesiredAccount> = desired.accounts.first();

    println!("core benchmark: {n} users and {n} accounts, 1% drift");
    println!(
        "  inputs built        {:>8.2} s  (RSS +{} MiB)",
        build.as_secs_f64(),
        (rss_inputs - rss0) / 1024
    );
    println!(
        "  templates rendered  {:>8.2} s  ({:.2} µs/user; CPU {:.2} s)",
        render.as_secs_f64(),
        render.as_secs_f64() * 1e6 / n as f64,
        render_cpu
    );
    println!(
        "  reconcile core      {:>8.2} s  ({:.2} µs/user; CPU {:.2} s)",
        core.as_secs_f64(),
        core.as_secs_f64() * 1e6 / n as f64,
        core_cpu
    );
    println!(
        "  the core in all     {:>8.2} s  (templates + reconcile; target 2 s; CPU {:.2} s; load {})",
        (render + core).as_secs_f64(),
        render_cpu + core_cpu,
        load()
    );
    println!(
        "  plan: {} changes ({} updates), {} unchanged",
        plan.changes.len(),
        plan.summary.update,
        plan.summary.unchanged
    );
    // "Per user" memory: the core's own overhead is (peak RSS - RSS once the inputs are
    // built) / N, i.e. the desired state rendered plus everything reconcile() allocates; the
    // inputs (entries and observed accounts) are the caller's and are reported separately.
    let per_user = |kib: u64| kib as f64 * 1024.0 / n as f64;
    println!(
        "  memory per user     {:>8.0} B  (core overhead: peak RSS - RSS after inputs, / N)",
        per_user(peak.saturating_sub(rss_inputs))
    );
    println!(
        "    of which desired  {:>8.0} B, reconcile {:.0} B; inputs {:.0} B",
        per_user(rss_desired.saturating_sub(rss_inputs)),
        per_user(peak.saturating_sub(rss_desired)),
        per_user(rss_inputs.saturating_sub(rss0))
    );
    println!(
        "  peak RSS            {:>8} MiB ({:.0} bytes/user incl. inputs)",
        peak / 1024,
        per_user(peak)
    );
}
