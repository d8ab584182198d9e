//! The Carbonite API routes (SPEC §5), documented and assumed.
//!
//! Order of checks inside a route: token (401), path id (404 when not a GUID), Content-Type
//! (415), body size (413), JSON and fields (400), existence (404), references (400), uniqueness
//! (409). Faults and rate limits come before all of it, in the gate.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::model::{Company, Status, StoreError, User, UserGroup, parse_guid};
use super::reply::{ApiError, FieldErrors, add_error, json as json_reply, json_bytes};
use super::server::App;
use super::validate::{
    UserPatch, body_bytes, company_input, json_object, positive_param, query_params,
    require_create_fields, require_json, unwrap_envelope, user_patch,
};

/// Largest `pageSize` of the listing.
pub const MAX_PAGE_SIZE: u64 = 500;
/// `pageSize` when the client gives none.
pub const DEFAULT_PAGE_SIZE: u64 = 100;

type Body = Result<Bytes, BytesRejection>;

/// The JSON object of a body that must be JSON: 415, 413, 400 as appropriate.
pub fn json_body(headers: &HeaderMap, body: Body) -> Result<Map<String, Value>, ApiError> {
    require_json(headers)?;
    let bytes = body_bytes(body)?;
    json_object(&bytes)
}

/// A path id: a GUID, else 404 (like a route constraint `{id:guid}`).
pub fn path_id(path: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    path.ok()
        .and_then(|Path(s)| parse_guid(&s))
        .ok_or_else(user_not_found)
}

/// 404 for an account.
pub fn user_not_found() -> ApiError {
    ApiError::NotFound("No user with this UserId.".into())
}

/// A store refusal as an answer.
pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Field { field, message } => ApiError::field(field, message),
        StoreError::DuplicateEmail => {
            ApiError::Conflict("A user with this email address already exists.".into())
        }
        StoreError::DuplicateCompany => {
            ApiError::Conflict("A company with this name already exists.".into())
        }
        StoreError::NotFound => user_not_found(),
    }
}

/// Apply the fields present in a patch.
pub fn apply_patch(p: &UserPatch, u: &mut User) {
    if let Some(v) = &p.email {
        u.email = v.clone();
    }
    if let Some(v) = &p.first_name {
        u.first_name = v.clone();
    }
    if let Some(v) = &p.last_name {
        u.last_name = v.clone();
    }
    if let Some(v) = p.company_id {
        u.company_id = v;
    }
    if let Some(v) = p.user_group_id {
        u.user_group_id = v;
    }
    let customs = [
        &mut u.user_custom1,
        &mut u.user_custom2,
        &mut u.user_custom3,
    ];
    for (slot, change) in customs.into_iter().zip(&p.user_custom) {
        if let Some(v) = change {
            *slot = v.clone();
        }
    }
    if let Some(v) = p.status {
        u.status = v;
    }
}

/// A new account from a patch that has the required fields (checked by the caller).
pub fn new_user(id: Uuid, p: &UserPatch) -> Option<User> {
    let mut u = User {
        user_id: id,
        email: p.email.clone()?,
        first_name: None,
        last_name: None,
        company_id: p.company_id?,
        user_group_id: p.user_group_id?,
        user_custom1: None,
        user_custom2: None,
        user_custom3: None,
        status: Status::Active,
    };
    apply_patch(p, &mut u);
    Some(u)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct UserBody<'a> {
    user: &'a User,
}

/// `{"User": ...}` with a status.
pub fn user_reply(status: StatusCode, user: &User) -> Response {
    json_reply(status, &UserBody { user })
}

/// `{"Users": [...], "TotalCount": n}` serialized while the caller holds the lock.
pub fn users_page<'a>(users: impl Iterator<Item = &'a User>, total: usize) -> Response {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Page<'a> {
        users: Vec<&'a User>,
        total_count: usize,
    }
    let page = Page {
        users: users.collect(),
        total_count: total,
    };
    match serde_json::to_vec(&page) {
        Ok(bytes) => json_bytes(StatusCode::OK, bytes),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `POST /api/tokens/apikey` `{"Email", "ApiKeySecret"}` -> `{"access_token"}`.
pub async fn token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let obj = json_body(&headers, body)?;
    let mut errors = FieldErrors::new();
    let (mut email, mut secret) = (None, None);
    for (key, v) in &obj {
        let slot = match key.as_str() {
            "Email" => &mut email,
            "ApiKeySecret" => &mut secret,
            other => {
                add_error(
                    &mut errors,
                    other,
                    format!("Unknown field '{other}'. Known fields: Email, ApiKeySecret."),
                );
                continue;
            }
        };
        match v.as_str() {
            Some(s) if !s.is_empty() => *slot = Some(s),
            _ => add_error(
                &mut errors,
                key.as_str(),
                format!("The {key} field is required."),
            ),
        }
    }
    for (field, present) in [
        ("Email", obj.contains_key("Email")),
        ("ApiKeySecret", obj.contains_key("ApiKeySecret")),
    ] {
        if !present {
            add_error(
                &mut errors,
                field,
                format!("The {field} field is required."),
            );
        }
    }
    let (Some(email), Some(secret), true) = (email, secret, errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    if !app.read().check_api_key(email, secret) {
        return Err(ApiError::Unauthorized("invalid API key"));
    }
    Ok(json_reply(
        StatusCode::OK,
        &json!({ "access_token": app.tokens.issue(email) }),
    ))
}

/// `GET /api/users?pageNumber=N&pageSize=S` and `GET /api/users?email=E`.
pub async fn list_users(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    app.authorize(&headers)?;
    let params = query_params(raw.as_deref(), &["pageNumber", "pageSize", "email"])?;
    let mut errors = FieldErrors::new();
    let (mut page_number, mut page_size, mut email) = (Some(1), Some(DEFAULT_PAGE_SIZE), None);
    for (name, value) in &params {
        match *name {
            "pageNumber" => page_number = positive_param(name, value, None, &mut errors),
            "pageSize" => page_size = positive_param(name, value, Some(MAX_PAGE_SIZE), &mut errors),
            _ if value.trim().is_empty() => add_error(
                &mut errors,
                "email",
                "The parameter email must not be empty.",
            ),
            _ => email = Some(value.as_str()),
        }
    }
    let (Some(page_number), Some(page_size), true) = (page_number, page_size, errors.is_empty())
    else {
        return Err(ApiError::invalid(errors));
    };
    let skip = usize::try_from((page_number - 1).saturating_mul(page_size)).unwrap_or(usize::MAX);
    let take = usize::try_from(page_size).unwrap_or(usize::MAX);
    let store = app.read();
    Ok(match email {
        Some(e) => {
            let matches: Vec<&User> = store.user_by_email(e).into_iter().collect();
            users_page(matches.iter().copied().skip(skip).take(take), matches.len())
        }
        None => users_page(store.users().skip(skip).take(take), store.user_count()),
    })
}

/// `GET /api/users/{UserId}` -> `{"User"}` or 404.
pub async fn get_user(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    app.authorize(&headers)?;
    let id = path_id(path)?;
    let store = app.read();
    let user = store.user(&id).ok_or_else(user_not_found)?;
    Ok(user_reply(StatusCode::OK, user))
}

/// `POST /api/users` `{"User": {...}, "AuditMessage"}` -> 201 `{"User"}`.
pub async fn create_user(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    app.authorize(&headers)?;
    let obj = json_body(&headers, body)?;
    let mut errors = FieldErrors::new();
    let patch = unwrap_envelope(obj, "User", &mut errors).map(|user| {
        require_create_fields(&user, &mut errors);
        if user.contains_key("UserId") {
            add_error(&mut errors, "UserId", "UserId is assigned by the server.");
        }
        user_patch(&user, &mut errors)
    });
    let user = match patch {
        Some(p) if errors.is_empty() => new_user(Uuid::new_v4(), &p),
        _ => None,
    };
    let Some(user) = user else {
        return Err(ApiError::invalid(errors));
    };
    let (resp, generation) = {
        let mut store = app.write();
        let created = store.create_user(user).map_err(store_error)?;
        let mut resp = user_reply(StatusCode::CREATED, created);
        if let Ok(v) = HeaderValue::from_str(&format!("/api/users/{}", created.user_id)) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        (resp, store.generation)
    };
    app.persist(generation).await;
    Ok(resp)
}

/// `PUT /api/users/{UserId}` `{"User": {changed fields}, "AuditMessage"}` -> 200 `{"User"}`.
pub async fn update_user(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    app.authorize(&headers)?;
    let id = path_id(path)?;
    let obj = json_body(&headers, body)?;
    let mut errors = FieldErrors::new();
    let patch =
        unwrap_envelope(obj, "User", &mut errors).map(|user| user_patch(&user, &mut errors));
    if let Some(Some(given)) = patch.as_ref().map(|p| p.user_id)
        && given != id
    {
        add_error(&mut errors, "UserId", "UserId does not match the URL.");
    }
    let (Some(patch), true) = (patch, errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    let (resp, generation) = {
        let mut store = app.write();
        let updated = store
            .update_user(&id, |u| apply_patch(&patch, u))
            .map_err(store_error)?;
        (user_reply(StatusCode::OK, updated), store.generation)
    };
    app.persist(generation).await;
    Ok(resp)
}

/// `DELETE /api/users/{UserId}` -> 204.
pub async fn delete_user(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    app.authorize(&headers)?;
    let id = path_id(path)?;
    let generation = {
        let mut store = app.write();
        store.delete_user(&id).map_err(store_error)?;
        store.generation
    };
    app.persist(generation).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/companies` -> `{"Companies": [...]}`.
pub async fn list_companies(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    app.authorize(&headers)?;
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Companies<'a> {
        companies: &'a [Company],
    }
    let store = app.read();
    Ok(json_reply(
        StatusCode::OK,
        &Companies {
            companies: store.companies(),
        },
    ))
}

/// `POST /api/companies` `{"Company": {...}, "AuditMessage"}` -> 201 `{"Company"}`; the new
/// company gets a user group named `Default`.
pub async fn create_company(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    app.authorize(&headers)?;
    let obj = json_body(&headers, body)?;
    let mut errors = FieldErrors::new();
    let input =
        unwrap_envelope(obj, "Company", &mut errors).map(|c| company_input(&c, &mut errors));
    let (Some(input), true) = (input, errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    let (resp, generation) = {
        let mut store = app.write();
        let company = store
            .create_company(Company {
                company_id: String::new(),
                company_name: input.company_name,
                partner_id: input.partner_id,
                is_trial: input.is_trial,
                user_group_rule: input.user_group_rule,
            })
            .map_err(store_error)?;
        (
            json_reply(StatusCode::CREATED, &json!({ "Company": company })),
            store.generation,
        )
    };
    app.persist(generation).await;
    Ok(resp)
}

/// `GET /api/usergroups?companyId=C` -> `{"UserGroups": [...]}`; 404 for an unknown company.
pub async fn list_user_groups(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    app.authorize(&headers)?;
    let params = query_params(raw.as_deref(), &["companyId"])?;
    let company = match params.first() {
        None => {
            return Err(ApiError::field(
                "companyId",
                "The parameter companyId is required.",
            ));
        }
        Some((_, v)) => parse_guid(v).ok_or_else(|| {
            ApiError::field("companyId", "The parameter companyId must be a GUID.")
        })?,
    };
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Groups<'a> {
        user_groups: Vec<&'a UserGroup>,
    }
    let store = app.read();
    if !store.has_company(&company) {
        return Err(ApiError::NotFound("No company with this CompanyId.".into()));
    }
    Ok(json_reply(
        StatusCode::OK,
        &Groups {
            user_groups: store.groups_of(&company).collect(),
        },
    ))
}
