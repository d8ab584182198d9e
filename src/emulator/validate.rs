//! Request validation, as strict as a real service: Content-Type, JSON, the `{"User": {...},
//! "AuditMessage": "..."}` envelope, every field's type and form, unknown fields. All problems
//! of a body are collected into one 400.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::model::{MAX_TEXT_LEN, Status, parse_guid};
use super::reply::{ApiError, FieldErrors, add_error};

/// Largest request body accepted (413 beyond).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The fields of a User, in the vendor's spelling.
pub const USER_FIELDS: [&str; 10] = [
    "UserId",
    "Email",
    "FirstName",
    "LastName",
    "CompanyId",
    "UserGroupId",
    "UserCustom1",
    "UserCustom2",
    "UserCustom3",
    "Status",
];

const COMPANY_FIELDS: [&str; 5] = [
    "CompanyId",
    "CompanyName",
    "PartnerId",
    "IsTrial",
    "UserGroupRule",
];

/// 415 unless the request says `Content-Type: application/json` (parameters such as `charset`
/// allowed).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if ok {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// The body bytes, or 413 (over [`BODY_LIMIT`]) / 400 (unreadable).
pub fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::field("$", "The request body could not be read.")
        }
    })
}

/// Parse a JSON object body (400 for empty, malformed or non-object bodies).
pub fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::field(
            "$",
            "A non-empty request body is required.",
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::field(
            "$",
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(ApiError::field(
            "$",
            format!("The request body is not valid JSON: {e}"),
        )),
    }
}

/// Take the wrapped object out of `{"<wrapper>": {...}, "AuditMessage": "..."}`, recording
/// problems with the envelope itself.
pub fn unwrap_envelope(
    mut body: Map<String, Value>,
    wrapper: &str,
    errors: &mut FieldErrors,
) -> Option<Map<String, Value>> {
    let inner = match body.remove(wrapper) {
        Some(Value::Object(m)) => Some(m),
        None | Some(Value::Null) => {
            add_error(errors, wrapper, format!("The {wrapper} field is required."));
            None
        }
        Some(_) => {
            add_error(
                errors,
                wrapper,
                format!("The {wrapper} field must be an object."),
            );
            None
        }
    };
    match body.remove("AuditMessage") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => add_error(
            errors,
            "AuditMessage",
            "The AuditMessage field must be a string.",
        ),
    }
    for key in body.keys() {
        add_error(
            errors,
            key.as_str(),
            format!("Unknown field '{key}'. Expected '{wrapper}' and 'AuditMessage'."),
        );
    }
    inner
}

/// A "set this field" value: `Some(None)` clears an optional field.
pub type Change<T> = Option<T>;

/// The fields present in a User object, checked for type and form. Which fields are required
/// depends on the route and is checked by the caller.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UserPatch {
    pub user_id: Change<Uuid>,
    pub email: Change<String>,
    pub first_name: Change<Option<String>>,
    pub last_name: Change<Option<String>>,
    pub company_id: Change<Uuid>,
    pub user_group_id: Change<Uuid>,
    pub user_custom: [Change<Option<String>>; 3],
    pub status: Change<Status>,
}

/// Why an email is not acceptable, if it is not.
pub fn email_problem(email: &str) -> Option<&'static str> {
    let invalid = Some("The Email field is not a valid e-mail address.");
    if email.is_empty() {
        return Some("The Email field is required.");
    }
    if email.chars().count() > 254 || email.trim() != email {
        return invalid;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return invalid;
    };
    let bad_char = |c: char| c.is_whitespace() || c.is_control() || c == '@';
    if local.is_empty()
        || local.chars().count() > 64
        || local.chars().any(bad_char)
        || domain.chars().any(bad_char)
        || !domain.contains('.')
        || domain.split('.').any(str::is_empty)
    {
        return invalid;
    }
    None
}

fn text(field: &str, v: &Value, errors: &mut FieldErrors) -> Option<Option<String>> {
    match v {
        Value::Null => Some(None),
        Value::String(s) if s.chars().count() > MAX_TEXT_LEN => {
            add_error(
                errors,
                field,
                format!("The field {field} must be at most {MAX_TEXT_LEN} characters long."),
            );
            None
        }
        Value::String(s) => Some(Some(s.clone())),
        _ => {
            add_error(
                errors,
                field,
                format!("The field {field} must be a string or null."),
            );
            None
        }
    }
}

fn guid(field: &str, v: &Value, errors: &mut FieldErrors) -> Option<Uuid> {
    match v {
        Value::Null => {
            add_error(errors, field, format!("The {field} field is required."));
            None
        }
        Value::String(s) => match parse_guid(s) {
            Some(id) => Some(id),
            None => {
                add_error(errors, field, format!("The field {field} must be a GUID."));
                None
            }
        },
        _ => {
            add_error(
                errors,
                field,
                format!("The field {field} must be a GUID string."),
            );
            None
        }
    }
}

/// Check every field of a User object; unknown fields are errors.
pub fn user_patch(obj: &Map<String, Value>, errors: &mut FieldErrors) -> UserPatch {
    let mut p = UserPatch::default();
    for (key, v) in obj {
        match key.as_str() {
            "UserId" => p.user_id = guid(key, v, errors),
            "Email" => match v {
                Value::String(s) => match email_problem(s) {
                    None => p.email = Some(s.clone()),
                    Some(msg) => add_error(errors, "Email", msg),
                },
                Value::Null => add_error(errors, "Email", "The Email field is required."),
                _ => add_error(errors, "Email", "The field Email must be a string."),
            },
            "FirstName" => p.first_name = text(key, v, errors),
            "LastName" => p.last_name = text(key, v, errors),
            "CompanyId" => p.company_id = guid(key, v, errors),
            "UserGroupId" => p.user_group_id = guid(key, v, errors),
            "UserCustom1" => p.user_custom[0] = text(key, v, errors),
            "UserCustom2" => p.user_custom[1] = text(key, v, errors),
            "UserCustom3" => p.user_custom[2] = text(key, v, errors),
            "Status" => match v.as_str().and_then(Status::parse) {
                Some(s) => p.status = Some(s),
                None => add_error(
                    errors,
                    "Status",
                    "The field Status must be 'Active' or 'Suspended'.",
                ),
            },
            other => add_error(
                errors,
                other,
                format!(
                    "Unknown field '{other}'. Known fields: {}.",
                    USER_FIELDS.join(", ")
                ),
            ),
        }
    }
    p
}

/// Record "required" errors for the fields a new account must have.
pub fn require_create_fields(obj: &Map<String, Value>, errors: &mut FieldErrors) {
    for field in ["Email", "CompanyId", "UserGroupId"] {
        if !obj.contains_key(field) {
            add_error(errors, field, format!("The {field} field is required."));
        }
    }
}

/// A company to create, checked.
#[derive(Debug, Default)]
pub struct CompanyInput {
    pub company_name: String,
    pub partner_id: Option<Value>,
    pub is_trial: Option<bool>,
    pub user_group_rule: Option<Value>,
}

/// Check a Company object for `POST /api/companies`.
pub fn company_input(obj: &Map<String, Value>, errors: &mut FieldErrors) -> CompanyInput {
    let mut c = CompanyInput::default();
    if !obj.contains_key("CompanyName") {
        add_error(errors, "CompanyName", "The CompanyName field is required.");
    }
    let scalar = |key: &str, v: &Value, errors: &mut FieldErrors| match v {
        Value::Null => None,
        Value::String(_) | Value::Number(_) => Some(v.clone()),
        _ => {
            add_error(
                errors,
                key,
                format!("The field {key} must be a string or a number."),
            );
            None
        }
    };
    for (key, v) in obj {
        match key.as_str() {
            "CompanyName" => match v {
                Value::String(s) if !s.trim().is_empty() && s.chars().count() <= MAX_TEXT_LEN => {
                    c.company_name = s.clone()
                }
                Value::String(s) if !s.trim().is_empty() => add_error(
                    errors,
                    key,
                    format!(
                        "The field CompanyName must be at most {MAX_TEXT_LEN} characters long."
                    ),
                ),
                _ => add_error(errors, key, "The CompanyName field is required."),
            },
            "CompanyId" => add_error(errors, key, "CompanyId is assigned by the server."),
            "PartnerId" => c.partner_id = scalar(key, v, errors),
            "UserGroupRule" => c.user_group_rule = scalar(key, v, errors),
            "IsTrial" => match v {
                Value::Null => {}
                Value::Bool(b) => c.is_trial = Some(*b),
                _ => add_error(errors, key, "The field IsTrial must be true or false."),
            },
            other => add_error(
                errors,
                other,
                format!(
                    "Unknown field '{other}'. Known fields: {}.",
                    COMPANY_FIELDS.join(", ")
                ),
            ),
        }
    }
    c
}

/// Query parameters by name, matched case-insensitively as ASP.NET does; unknown parameters are
/// ignored, a known one given twice is an error.
pub fn query_params(
    raw: Option<&str>,
    known: &[&'static str],
) -> Result<Vec<(&'static str, String)>, ApiError> {
    let mut found: Vec<(&'static str, String)> = Vec::new();
    let mut errors = FieldErrors::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if let Some(name) = known.iter().find(|n| n.eq_ignore_ascii_case(&k)) {
            if found.iter().any(|(n, _)| n == name) {
                add_error(
                    &mut errors,
                    *name,
                    format!("The parameter {name} is given twice."),
                );
            } else {
                found.push((name, v.into_owned()));
            }
        }
    }
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(ApiError::invalid(errors))
    }
}

/// A positive integer query value within `max`, or a field error.
pub fn positive_param(
    name: &str,
    value: &str,
    max: Option<u64>,
    errors: &mut FieldErrors,
) -> Option<u64> {
    match value.trim().parse::<u64>() {
        Ok(n) if n >= 1 && max.is_none_or(|m| n <= m) => Some(n),
        _ => {
            let range = match max {
                Some(m) => format!("from 1 to {m}"),
                None => "of at least 1".into(),
            };
            add_error(
                errors,
                name,
                format!("The parameter {name} must be an integer {range}."),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy as _;
    use serde_json::json;

    #[test]
    fn emails() {
        for ok in ["a@b.c", "ann.lee+x@corp.example", "Zoë@exämple.org"] {
            assert_eq!(email_problem(ok), None, "{ok}");
        }
        for bad in [
            "", "a", "a@", "@b.c", "a@b", "a@@b.c", "a b@c.d", " a@b.c", "a@b..c", "a@.b",
        ] {
            assert!(email_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn user_fields_are_checked_and_unknown_fields_refused() {
        let obj = json!({
            "Email": "ann@corp.example",
            "FirstName": null,
            "CompanyId": "0F8B6C1E-0000-4000-8000-000000000001",
            "UserGroupId": "not-a-guid",
            "Status": "active",
            "Department": "Sales",
            "UserCustom2": 5,
        });
        let mut errors = FieldErrors::new();
        let p = user_patch(obj.as_object().unwrap(), &mut errors);
        assert_eq!(p.email.as_deref(), Some("ann@corp.example"));
        assert_eq!(p.first_name, Some(None));
        assert_eq!(
            p.company_id.unwrap().to_string(),
            "0f8b6c1e-0000-4000-8000-000000000001"
        );
        let keys: Vec<_> = errors.keys().cloned().collect();
        assert_eq!(keys, ["Department", "Status", "UserCustom2", "UserGroupId"]);
    }

    #[test]
    fn envelope_problems() {
        let mut errors = FieldErrors::new();
        let body = json!({"Email": "a@b.c", "AuditMessage": 3});
        assert!(unwrap_envelope(body.as_object().unwrap().clone(), "User", &mut errors).is_none());
        let keys: Vec<_> = errors.keys().cloned().collect();
        assert_eq!(keys, ["AuditMessage", "Email", "User"]);
    }

    proptest::proptest! {
        #[test]
        fn any_body_is_answered_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            if let Ok(obj) = json_object(&bytes) {
                let mut errors = FieldErrors::new();
                if let Some(user) = unwrap_envelope(obj.clone(), "User", &mut errors) {
                    let _ = user_patch(&user, &mut errors);
                }
                let _ = company_input(&obj, &mut errors);
            }
        }

        #[test]
        fn any_user_object_is_checked_without_panicking(
            fields in proptest::collection::btree_map(
                proptest::sample::select(USER_FIELDS.to_vec()).prop_map(String::from),
                proptest::prop_oneof![
                    proptest::strategy::Just(Value::Null),
                    proptest::bool::ANY.prop_map(Value::Bool),
                    proptest::num::i64::ANY.prop_map(|n| json!(n)),
                    ".{0,300}".prop_map(Value::String),
                ],
                0..10,
            )
        ) {
            let obj: Map<String, Value> = fields.into_iter().collect();
            let mut errors = FieldErrors::new();
            let p = user_patch(&obj, &mut errors);
            // Whatever was accepted is well-formed.
            if let Some(e) = &p.email {
                proptest::prop_assert!(email_problem(e).is_none());
            }
        }

        #[test]
        fn any_query_string_is_parsed_without_panicking(raw in ".{0,200}") {
            let _ = query_params(Some(&raw), &["pageNumber", "pageSize", "email"]);
        }
    }

    #[test]
    fn query_parsing_survives_odd_input() {
        for raw in [
            "",
            "&&",
            "=",
            "pageNumber",
            "%zz=1",
            "pageNumber=%FF%FE",
            "a=b=c",
        ] {
            let _ = query_params(Some(raw), &["pageNumber", "pageSize", "email"]);
        }
        let p = query_params(Some("PAGENUMBER=2&x=1"), &["pageNumber"]).unwrap();
        assert_eq!(p, vec![("pageNumber", "2".to_string())]);
        assert!(query_params(Some("pageSize=1&pagesize=2"), &["pageSize"]).is_err());
        let mut errors = FieldErrors::new();
        assert_eq!(
            positive_param("pageSize", "501", Some(500), &mut errors),
            None
        );
        assert_eq!(
            positive_param("pageSize", "0", Some(500), &mut errors),
            None
        );
        assert_eq!(positive_param("pageSize", "-1", None, &mut errors), None);
        assert_eq!(
            positive_param("pageNumber", "99999999999999999999", None, &mut errors),
            None
        );
        assert_eq!(
            positive_param("pageSize", "500", Some(500), &mut errors),
            Some(500)
        );
    }
}
