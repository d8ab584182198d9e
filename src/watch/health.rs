//! What `watch` reports about itself: `/healthz` (JSON) and `/metrics` (Prometheus text, the
//! names of SPEC §12), served with axum on `--listen`. The loop updates a [`Health`]; the
//! handlers only read it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// The daemon's state as the endpoints show it.
#[derive(Debug, Default)]
pub struct HealthState {
    pub started_at: Option<SystemTime>,
    pub interval: Duration,
    /// When the last pass ended (refused or not; a pass that errored does not count).
    pub last_pass_at: Option<SystemTime>,
    pub last_result: Option<String>,
    pub last_error: Option<String>,
    pub last_success_at: Option<SystemTime>,
    /// `ok` or `error` (the last reload failed; the previous config keeps running).
    pub config_status: String,
    pub config_error: Option<String>,
    pub config_loaded_at: Option<SystemTime>,
    pub config_digest: Option<String>,
    pub passes: BTreeMap<String, u64>,
    pub changes: BTreeMap<String, u64>,
    pub entries_read: u64,
    pub pass_duration: f64,
    /// (route, status) -> calls, as counted by the current client plus those before it.
    pub api_calls: BTreeMap<(String, String), u64>,
    /// Calls counted by clients replaced on config reloads.
    pub api_calls_before: BTreeMap<(String, String), u64>,
    pub budget_remaining: BTreeMap<String, u32>,
    /// Observed state: where the last pass took it from, and when the tenant was last listed.
    pub observed_source: Option<String>,
    pub last_refresh_at: Option<SystemTime>,
}

pub type Health = Arc<Mutex<HealthState>>;

fn secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn time(t: Option<SystemTime>) -> serde_json::Value {
    t.map_or(serde_json::Value::Null, |t| crate::pass::rfc3339(t).into())
}

impl HealthState {
    /// Healthy when a pass (refused or not) finished within two intervals — or, before the
    /// first pass, within two intervals of the start.
    pub fn healthy(&self, now: SystemTime) -> bool {
        let limit = self.interval * 2 + Duration::from_secs(5);
        let since = self.last_pass_at.or(self.started_at);
        since.is_some_and(|t| now.duration_since(t).unwrap_or_default() <= limit)
    }

    pub fn detail(&self, now: SystemTime) -> serde_json::Value {
        serde_json::json!({
            "status": if self.healthy(now) { "ok" } else { "stale" },
            "last_pass_at": time(self.last_pass_at),
            "last_result": self.last_result,
            "last_error": self.last_error,
            "last_success_at": time(self.last_success_at),
            "interval_seconds": self.interval.as_secs_f64(),
            "config": {
                "status": self.config_status,
                "error": self.config_error,
                "loaded_at": time(self.config_loaded_at),
                "digest": self.config_digest,
            },
            "observed": {
                "source": self.observed_source,
                "last_refresh_at": time(self.last_refresh_at),
            },
        })
    }

    /// Prometheus text format 0.0.4.
    pub fn metrics(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        family(
            &mut out,
            "carbonite_sync_passes_total",
            "counter",
            "Reconcile passes by result (ok, refused, failed, error).",
        );
        for r in ["ok", "refused", "failed", "error"] {
            let n = self.passes.get(r).copied().unwrap_or(0);
            let _ = writeln!(out, "carbonite_sync_passes_total{{result=\"{r}\"}} {n}");
        }
        family(
            &mut out,
            "carbonite_sync_changes_total",
            "counter",
            "Account changes applied successfully, by action.",
        );
        for a in crate::reconcile::Action::ALL {
            let n = self.changes.get(a.as_str()).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "carbonite_sync_changes_total{{action=\"{}\"}} {n}",
                a.as_str()
            );
        }
        family(
            &mut out,
            "carbonite_sync_api_calls_total",
            "counter",
            "Carbonite API calls by ledger route and HTTP status (`error`: no answer).",
        );
        for ((route, status), n) in &self.api_calls {
            let _ = writeln!(
                out,
                "carbonite_sync_api_calls_total{{route=\"{}\",status=\"{}\"}} {n}",
                label(route),
                label(status)
            );
        }
        family(
            &mut out,
            "carbonite_sync_rate_budget_remaining",
            "gauge",
            "Calls each route could make now under the client-side rate limits.",
        );
        for (route, n) in &self.budget_remaining {
            let _ = writeln!(
                out,
                "carbonite_sync_rate_budget_remaining{{route=\"{}\"}} {n}",
                label(route)
            );
        }
        family(
            &mut out,
            "carbonite_sync_last_success_timestamp_seconds",
            "gauge",
            "Unix time of the last pass that finished without error, refusal or failure.",
        );
        let _ = writeln!(
            out,
            "carbonite_sync_last_success_timestamp_seconds {}",
            self.last_success_at.map_or(0.0, secs)
        );
        family(
            &mut out,
            "carbonite_sync_directory_entries_read_total",
            "counter",
            "Directory entries read (in scope of a mapping).",
        );
        let _ = writeln!(
            out,
            "carbonite_sync_directory_entries_read_total {}",
            self.entries_read
        );
        family(
            &mut out,
            "carbonite_sync_pass_duration_seconds",
            "gauge",
            "Duration of the last pass (read, plan and apply).",
        );
        let _ = writeln!(
            out,
            "carbonite_sync_pass_duration_seconds {:.6}",
            self.pass_duration
        );
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn healthz(State(h): State<Health>) -> impl IntoResponse {
    let now = SystemTime::now();
    let (ok, body) = {
        let s = h.lock().unwrap_or_else(|p| p.into_inner());
        (s.healthy(now), s.detail(now))
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    let text = h.lock().unwrap_or_else(|p| p.into_inner()).metrics();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// Serve `/healthz` and `/metrics` on `addr` until `shutdown` resolves. Returns the bound
/// address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(health);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("health server: {e}");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_use_the_spec_names_and_escape_labels() {
        let mut h = HealthState {
            interval: Duration::from_secs(30),
            ..Default::default()
        };
        h.passes.insert("ok".into(), 3);
        h.api_calls
            .insert(("GET /api/users".into(), "200".into()), 2);
        h.budget_remaining
            .insert("PUT /api/users/{UserId}".into(), 50);
        let m = h.metrics();
        for name in [
            "carbonite_sync_passes_total{result=\"ok\"} 3",
            "carbonite_sync_changes_total{action=\"create\"} 0",
            "carbonite_sync_api_calls_total{route=\"GET /api/users\",status=\"200\"} 2",
            "carbonite_sync_rate_budget_remaining{route=\"PUT /api/users/{UserId}\"} 50",
            "carbonite_sync_last_success_timestamp_seconds 0",
            "carbonite_sync_directory_entries_read_total 0",
            "carbonite_sync_pass_duration_seconds 0.000000",
        ] {
            assert!(m.contains(name), "{name} missing in\n{m}");
        }
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
    }

    #[test]
    fn healthy_within_two_intervals_of_the_last_pass() {
        let now = SystemTime::now();
        let mut h = HealthState {
            interval: Duration::from_secs(10),
            started_at: Some(now),
            ..Default::default()
        };
        assert!(h.healthy(now));
        assert!(!h.healthy(now + Duration::from_secs(60)));
        h.last_pass_at = Some(now + Duration::from_secs(50));
        assert!(h.healthy(now + Duration::from_secs(60)));
    }
}
