//! The shared application state, the router, and the gate every API request passes: faults,
//! latency, rate limits and stats, in that order.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;
use tokio::sync::watch;

use super::auth::TokenIssuer;
use super::conn::ConnHandle;
use super::faults::{Fault, FaultInjector, FaultReport};
use super::limits::{Limiter, retry_after_secs};
use super::model::Store;
use super::persist::Persister;
use super::reply::ApiError;
use super::validate::BODY_LIMIT;
use super::{admin, api};

/// The token route; it counts against its own limit but is never a "write".
pub const TOKEN_ROUTE: &str = "POST /api/tokens/apikey";
/// The create route; it also counts against the create limit.
pub const CREATE_ROUTE: &str = "POST /api/users";

/// Counters for `GET /_emulator/stats`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Route -> outcome (`"200"`, `"429"`, ..., `"timeout"`, `"reset"`, `"drop"`) -> count.
    pub routes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Accounts created through `POST /api/users` (dropped responses included).
    pub creates: u64,
    /// API requests that reached a route (admin routes and unknown paths excluded).
    pub requests: u64,
}

impl Stats {
    fn record(&mut self, route: &str, outcome: &str) {
        let per_route = match self.routes.get_mut(route) {
            Some(m) => m,
            None => self.routes.entry(route.to_string()).or_default(),
        };
        *per_route.entry(outcome.to_string()).or_default() += 1;
    }
}

/// The body of `GET /_emulator/stats`.
#[derive(Debug, Serialize)]
pub struct StatsReport {
    routes: BTreeMap<String, BTreeMap<String, u64>>,
    creates: u64,
    requests: u64,
    faults: FaultReport,
}

/// Everything the handlers share.
pub struct App {
    /// The tenant.
    pub store: RwLock<Store>,
    /// Where `POST /_emulator/reset` goes back to (empty when absent).
    pub seed_file: Option<PathBuf>,
    pub tokens: TokenIssuer,
    /// `None`: no limits.
    pub limiter: Option<Limiter>,
    pub faults: FaultInjector,
    pub stats: Mutex<Stats>,
    /// `None`: no state file.
    pub persister: Option<Persister>,
    /// Becomes `true` when the server shuts down (cuts `timeout` holds short).
    pub shutdown: watch::Receiver<bool>,
}

impl App {
    /// Read access to the tenant (a poisoned lock is still usable: writes are all-or-nothing).
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Write access to the tenant.
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Save everything up to `generation` before answering; failures are logged, not answered:
    /// the in-memory tenant stays authoritative.
    pub async fn persist(&self, generation: u64) {
        if let Some(p) = &self.persister
            && let Err(e) = p.save_through(&self.store, generation, false).await
        {
            tracing::error!(error = %e, "emulator: cannot save the state file");
        }
    }

    /// Check the bearer token.
    pub fn authorize(&self, headers: &axum::http::HeaderMap) -> Result<String, ApiError> {
        let value = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.tokens
            .verify_header(value)
            .map_err(|e| ApiError::Unauthorized(token_error_text(e)))
    }

    fn lock_stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stats and injected faults.
    pub fn stats_report(&self) -> StatsReport {
        let s = self.lock_stats();
        StatsReport {
            routes: s.routes.clone(),
            creates: s.creates,
            requests: s.requests,
            faults: self.faults.report(),
        }
    }

    /// Forget stats, rate-limit windows and the fault sequence (admin reset).
    pub fn reset_counters(&self) {
        *self.lock_stats() = Stats::default();
        if let Some(l) = &self.limiter {
            l.clear();
        }
        self.faults.restart();
    }
}

fn token_error_text(e: super::auth::TokenError) -> &'static str {
    match e {
        super::auth::TokenError::Missing => "no bearer token",
        super::auth::TokenError::Invalid => "the token is invalid",
        super::auth::TokenError::Expired => "the token expired",
    }
}

/// Faults, latency and rate limits in front of every API route; stats behind them.
async fn gate(
    State(app): State<Arc<App>>,
    matched: MatchedPath,
    req: Request,
    next: Next,
) -> Response {
    let route = format!("{} {}", req.method(), matched.as_str());
    let is_write =
        req.method() != Method::GET && req.method() != Method::HEAD && route != TOKEN_ROUTE;
    let is_create = route == CREATE_ROUTE;
    let conn = req
        .extensions()
        .get::<ConnectInfo<ConnHandle>>()
        .map(|c| c.0.clone());

    let fault = app.faults.draw(&route, is_write);
    app.lock_stats().requests += 1;
    let latency = app.faults.config().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    match fault {
        Some(Fault::Error(status)) => {
            app.lock_stats().record(&route, &status.to_string());
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return ApiError::Server(status, "An error has occurred.".into()).into_response();
        }
        Some(Fault::Timeout) => {
            app.lock_stats().record(&route, "timeout");
            let mut shutdown = app.shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(app.faults.config().timeout_hold) => {}
                _ = shutdown.wait_for(|down| *down) => {}
            }
            if let Some(c) = &conn {
                c.close();
            }
            return StatusCode::GATEWAY_TIMEOUT.into_response();
        }
        Some(Fault::Reset) => {
            app.lock_stats().record(&route, "reset");
            if let Some(c) = &conn {
                c.reset();
            }
            return StatusCode::BAD_GATEWAY.into_response();
        }
        Some(Fault::Drop) | None => {}
    }

    if let Some(limiter) = &app.limiter
        && let Err(wait) = limiter.admit(&route, is_create)
    {
        app.lock_stats().record(&route, "429");
        return ApiError::TooManyRequests {
            retry_after: retry_after_secs(wait),
        }
        .into_response();
    }

    let resp = next.run(req).await;
    let mut stats = app.lock_stats();
    if is_create && resp.status() == StatusCode::CREATED {
        stats.creates += 1;
    }
    if fault == Some(Fault::Drop) {
        stats.record(&route, "drop");
        drop(stats);
        if let Some(c) = &conn {
            c.close();
        }
        return resp;
    }
    stats.record(&route, resp.status().as_str());
    resp
}

async fn not_found() -> ApiError {
    ApiError::NotFound("No HTTP resource was found that matches the request URI.".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Every route: the API behind the gate, the admin routes beside it.
pub fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/api/tokens/apikey", post(api::token))
        .route("/api/users", get(api::list_users).post(api::create_user))
        .route(
            "/api/users/{UserId}",
            get(api::get_user)
                .put(api::update_user)
                .delete(api::delete_user),
        )
        .route(
            "/api/companies",
            get(api::list_companies).post(api::create_company),
        )
        .route("/api/usergroups", get(api::list_user_groups))
        .route_layer(middleware::from_fn_with_state(app.clone(), gate));
    let admin = Router::new()
        .route("/_emulator/stats", get(admin::stats))
        .route("/_emulator/state", get(admin::state))
        .route("/_emulator/users", get(admin::list_users))
        .route(
            "/_emulator/users/{UserId}",
            put(admin::put_user).delete(admin::delete_user),
        )
        .route("/_emulator/reset", post(admin::reset));
    api.merge(admin)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app)
}
