//! Admin routes under `/_emulator/`: no token, no limits, no faults, not counted (SPEC §9).
//!
//! - `GET /_emulator/stats`: per-route outcome counts, creates, injected faults;
//! - `GET /_emulator/users`: every account, `{"Users", "TotalCount"}`;
//! - `GET /_emulator/state`: the state document as it would be saved;
//! - `PUT /_emulator/users/{UserId}`: edit an account out of band — a bare User object, partial,
//!   same validation as the API; an unknown id creates the account with that id (201);
//! - `DELETE /_emulator/users/{UserId}`: remove an account;
//! - `POST /_emulator/reset`: with no body, back to the seed file (empty without one); with a
//!   JSON body, to that seed document. Stats, rate-limit windows and the fault sequence restart.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::api::{apply_patch, json_body, new_user, path_id, store_error, user_reply, users_page};
use super::model::{StateDoc, Store};
use super::persist::load_file;
use super::reply::{ApiError, FieldErrors, add_error, json, json_bytes};
use super::server::App;
use super::validate::{body_bytes, json_object, require_create_fields, require_json, user_patch};

/// `GET /_emulator/stats`.
pub async fn stats(State(app): State<Arc<App>>) -> Response {
    json(StatusCode::OK, &app.stats_report())
}

/// `GET /_emulator/users`.
pub async fn list_users(State(app): State<Arc<App>>) -> Response {
    let store = app.read();
    users_page(store.users(), store.user_count())
}

/// `GET /_emulator/state`.
pub async fn state(State(app): State<Arc<App>>) -> Response {
    match app.read().to_json() {
        Ok(bytes) => json_bytes(StatusCode::OK, bytes),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `PUT /_emulator/users/{UserId}`: partial edit, or create with this id.
pub async fn put_user(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(path)?;
    let obj = json_body(&headers, body)?;
    let exists = app.read().user(&id).is_some();
    let mut errors = FieldErrors::new();
    if !exists {
        require_create_fields(&obj, &mut errors);
    }
    let patch = user_patch(&obj, &mut errors);
    if patch.user_id.is_some_and(|given| given != id) {
        add_error(&mut errors, "UserId", "UserId does not match the URL.");
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let (resp, generation) = {
        let mut store = app.write();
        let result = if store.user(&id).is_some() {
            store
                .update_user(&id, |u| apply_patch(&patch, u))
                .map(|u| user_reply(StatusCode::OK, u))
        } else {
            let user = new_user(id, &patch).ok_or_else(|| {
                ApiError::field("Email", "Email, CompanyId and UserGroupId are required.")
            })?;
            store
                .create_user(user)
                .map(|u| user_reply(StatusCode::CREATED, u))
        };
        (result.map_err(store_error)?, store.generation)
    };
    app.persist(generation).await;
    Ok(resp)
}

/// `DELETE /_emulator/users/{UserId}`.
pub async fn delete_user(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(path)?;
    let generation = {
        let mut store = app.write();
        store.delete_user(&id).map_err(store_error)?;
        store.generation
    };
    app.persist(generation).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /_emulator/reset`.
pub async fn reset(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body_bytes(body)?;
    let fresh = if bytes.iter().all(u8::is_ascii_whitespace) {
        match &app.seed_file {
            None => Store::default(),
            Some(path) => load_file(path)
                .map_err(|e| ApiError::Server(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
        }
    } else {
        require_json(&headers)?;
        let obj = json_object(&bytes)?;
        let doc: StateDoc = serde_json::from_value(serde_json::Value::Object(obj))
            .map_err(|e| ApiError::field("$", e.to_string()))?;
        Store::from_doc(doc).map_err(|problems| {
            let mut errors = FieldErrors::new();
            for p in problems {
                add_error(&mut errors, "$", p);
            }
            ApiError::invalid(errors)
        })?
    };
    let generation = {
        let mut store = app.write();
        store.replace_with(fresh);
        store.generation
    };
    app.reset_counters();
    app.persist(generation).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
