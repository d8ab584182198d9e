//! Responses: JSON bodies and the vendor's error shape
//! `{"Message": "...", "Errors": {"Field": ["..."]}}` (SPEC §5).

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Field name -> problems, in a stable order.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Add one problem for a field.
pub fn add_error(errors: &mut FieldErrors, field: impl Into<String>, message: impl Into<String>) {
    errors.entry(field.into()).or_default().push(message.into());
}

/// An API error answer.
#[derive(Debug)]
pub enum ApiError {
    /// 400 with field errors.
    BadRequest {
        message: String,
        errors: FieldErrors,
    },
    /// 401; the string goes into `WWW-Authenticate`'s `error_description`.
    Unauthorized(&'static str),
    /// 404.
    NotFound(String),
    /// 405.
    MethodNotAllowed,
    /// 409 (no id in the body).
    Conflict(String),
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 415: a body without `Content-Type: application/json`.
    UnsupportedMediaType,
    /// 429 with `Retry-After` seconds.
    TooManyRequests { retry_after: u64 },
    /// A 5xx (faults; internal trouble).
    Server(StatusCode, String),
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody<'a> {
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a FieldErrors>,
}

impl ApiError {
    /// A 400 from collected field errors.
    pub fn invalid(errors: FieldErrors) -> Self {
        ApiError::BadRequest {
            message: "The request is invalid.".into(),
            errors,
        }
    }

    /// A 400 with one field error.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::new();
        add_error(&mut errors, field, message);
        Self::invalid(errors)
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Server(s, _) => *s,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (message, errors): (String, Option<&FieldErrors>) = match &self {
            ApiError::BadRequest { message, errors } => (message.clone(), Some(errors)),
            ApiError::Unauthorized(_) => (
                "Authorization has been denied for this request.".into(),
                None,
            ),
            ApiError::NotFound(m) | ApiError::Conflict(m) | ApiError::Server(_, m) => {
                (m.clone(), None)
            }
            ApiError::MethodNotAllowed => (
                "The requested resource does not support this HTTP method.".into(),
                None,
            ),
            ApiError::PayloadTooLarge => ("The request body is too large.".into(), None),
            ApiError::UnsupportedMediaType => (
                "The request body must be JSON with Content-Type: application/json.".into(),
                None,
            ),
            ApiError::TooManyRequests { retry_after } => (
                format!("Rate limit exceeded. Retry after {retry_after} seconds."),
                None,
            ),
        };
        let mut resp = json(
            status,
            &ErrorBody {
                message: &message,
                errors,
            },
        );
        match &self {
            ApiError::Unauthorized(why) => {
                let v = format!(r#"Bearer error="invalid_token", error_description="{why}""#);
                if let Ok(v) = HeaderValue::from_str(&v) {
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
            }
            ApiError::TooManyRequests { retry_after } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            _ => {}
        }
        resp
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => json_bytes(status, bytes),
        Err(e) => {
            tracing::error!(error = %e, "emulator: cannot serialize a response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A response from JSON that is already serialized.
pub fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        bytes,
    )
        .into_response()
}
