//! The Carbonite emulator over real HTTP (SPEC §5, §9): every route's happy path and every error
//! case, rate limits with Retry-After, token expiry, faults, admin routes, the state file, and
//! the `emulator` command.

#[path = "emulator/harness.rs"]
mod harness;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use carbonite_sync::emulator::{EmulatorOptions, FaultConfig, Limits, start};
use harness::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Token and auth

#[tokio::test]
async fn token_is_jwt_shaped_and_checked_against_api_keys() {
    let emu = Emu::seeded(0).await;
    let token = emu.token().await;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .unwrap();
    let claims: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(claims["sub"], ADMIN_EMAIL);
    let ttl = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(ttl, 3600);

    let (status, body) = emu
        .call(
            Method::POST,
            "/api/tokens/apikey",
            None,
            Some(json!({"Email": ADMIN_EMAIL, "ApiKeySecret": "wrong"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["Message"].is_string());
    let (status, _) = emu
        .call(
            Method::POST,
            "/api/tokens/apikey",
            None,
            Some(json!({"Email": "other@corp.example", "ApiKeySecret": ADMIN_SECRET})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = emu
        .call(
            Method::POST,
            "/api/tokens/apikey",
            None,
            Some(json!({"Email": ADMIN_EMAIL, "ApiKeySecret": ADMIN_SECRET, "Scope": "all"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_fields(&body), ["Scope"]);
    let (status, body) = emu
        .call(Method::POST, "/api/tokens/apikey", None, Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_fields(&body), ["ApiKeySecret", "Email"]);
    let (status, _) = emu
        .raw(
            Method::POST,
            "/api/tokens/apikey",
            None,
            Some("application/x-www-form-urlencoded"),
            "Email=a&ApiKeySecret=b",
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn without_api_keys_any_key_opens_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = seed_doc(1);
    doc.as_object_mut().unwrap().remove("ApiKeys");
    let seed = write_seed(dir.path(), &doc);
    let opts = EmulatorOptions {
        seed_file: Some(seed),
        limits: None,
        ..EmulatorOptions::default()
    };
    let emu = Emu::start(opts, dir).await;
    let (status, body) = emu
        .call(
            Method::POST,
            "/api/tokens/apikey",
            None,
            Some(json!({"Email": "anyone@x.example", "ApiKeySecret": "anything"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(emu.get("/api/users", token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn api_routes_need_a_valid_token() {
    let emu = Emu::seeded(1).await;
    let other = Emu::seeded(0).await;
    let foreign = other.token().await;
    let id = "00000000-0000-4000-8000-000000000001";
    let routes = [
        (Method::GET, "/api/users".to_string()),
        (
            Method::GET,
            "/api/users?email=user1@corp.example".to_string(),
        ),
        (Method::GET, format!("/api/users/{id}")),
        (Method::POST, "/api/users".to_string()),
        (Method::PUT, format!("/api/users/{id}")),
        (Method::DELETE, format!("/api/users/{id}")),
        (Method::GET, "/api/companies".to_string()),
        (Method::POST, "/api/companies".to_string()),
        (Method::GET, format!("/api/usergroups?companyId={CORP}")),
    ];
    for (method, path) in routes {
        for token in [None, Some("garbage"), Some("a.b.c"), Some(foreign.as_str())] {
            let mut req = emu.http.request(method.clone(), emu.url(&path));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
            assert!(resp.headers().contains_key("www-authenticate"));
        }
    }
    // Nothing was deleted by the refused calls.
    assert_eq!(emu.admin_users().await.len(), 1);
}

#[tokio::test]
async fn tokens_expire_after_the_ttl() {
    let (mut opts, dir) = options(1);
    opts.token_ttl = Duration::from_secs(2);
    let emu = Emu::start(opts, dir).await;
    let token = emu.token().await;
    assert_eq!(emu.get("/api/users", &token).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resp = emu
        .http
        .get(emu.url("/api/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.contains("expired"), "{challenge}");
    // A fresh token works again.
    let token = emu.token().await;
    assert_eq!(emu.get("/api/users", &token).await.0, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Users: list, by email, get

#[tokio::test]
async fn listing_pages_in_a_stable_order() {
    let emu = Emu::seeded(7).await;
    let token = emu.token().await;
    let mut seen = Vec::new();
    for page in 1..=4 {
        let (status, body) = emu
            .get(&format!("/api/users?pageNumber={page}&pageSize=3"), &token)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["TotalCount"], 7);
        let users = body["Users"].as_array().unwrap();
        assert_eq!(users.len(), [3, 3, 1, 0][page - 1], "page {page}");
        seen.extend(
            users
                .iter()
                .map(|u| u["Email"].as_str().unwrap().to_string()),
        );
    }
    let expected: Vec<String> = (1..=7).map(|i| format!("user{i}@corp.example")).collect();
    assert_eq!(seen, expected);

    // Every field is present, unset ones as null.
    let (_, body) = emu.get("/api/users?pageSize=500", &token).await;
    let first = &body["Users"][0];
    let mut keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "CompanyId",
            "Email",
            "FirstName",
            "LastName",
            "Status",
            "UserCustom1",
            "UserCustom2",
            "UserCustom3",
            "UserGroupId",
            "UserId"
        ]
    );
    assert_eq!(first["UserCustom2"], Value::Null);
    assert_eq!(first["Status"], "Active");
    // No paging parameters: page 1 of the default size.
    let (_, body) = emu.get("/api/users", &token).await;
    assert_eq!(body["Users"].as_array().unwrap().len(), 7);

    // A new account goes to the end; earlier pages do not shift.
    let (status, _) = emu
        .call(
            Method::POST,
            "/api/users",
            Some(&token),
            Some(new_user("late@corp.example")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, body) = emu.get("/api/users?pageNumber=3&pageSize=3", &token).await;
    let emails: Vec<&str> = body["Users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["Email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["user7@corp.example", "late@corp.example"]);
}

#[tokio::test]
async fn listing_rejects_bad_paging() {
    let emu = Emu::seeded(2).await;
    let token = emu.token().await;
    for (query, field) in [
        ("pageSize=501", "pageSize"),
        ("pageSize=0", "pageSize"),
        ("pageSize=-3", "pageSize"),
        ("pageNumber=0", "pageNumber"),
        ("pageNumber=abc", "pageNumber"),
        ("pageNumber=1&pageNumber=2", "pageNumber"),
        ("email=", "email"),
    ] {
        let (status, body) = emu.get(&format!("/api/users?{query}"), &token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(error_fields(&body), [field], "{query}");
    }
    // Odd but harmless query strings are served; unknown parameters are ignored.
    for query in [
        "",
        "&&&",
        "=",
        "foo=bar",
        "%zz",
        "pageNumber=99999999999",
        "PAGESIZE=500",
    ] {
        let (status, _) = emu.get(&format!("/api/users?{query}"), &token).await;
        assert_eq!(status, StatusCode::OK, "{query}");
    }
}

#[tokio::test]
async fn user_by_email_is_exact_and_case_insensitive() {
    let emu = Emu::seeded(3).await;
    let token = emu.token().await;
    let (status, body) = emu
        .get("/api/users?email=USER2%40Corp.Example", &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["TotalCount"], 1);
    assert_eq!(body["Users"][0]["Email"], "user2@corp.example");
    for miss in ["user2", "ser2@corp.example", "user2@corp.example.org"] {
        let (status, body) = emu.get(&format!("/api/users?email={miss}"), &token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"Users": [], "TotalCount": 0}), "{miss}");
    }
}

#[tokio::test]
async fn get_user_by_id() {
    let emu = Emu::seeded(2).await;
    let token = emu.token().await;
    let id = "00000000-0000-4000-8000-000000000002";
    let (status, body) = emu.get(&format!("/api/users/{id}"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["User"]["UserId"], id);
    assert_eq!(body["User"]["UserCustom1"], "E2");
    // Upper-case GUIDs are the same id.
    let (status, _) = emu
        .get(&format!("/api/users/{}", id.to_uppercase()), &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    for missing in ["00000000-0000-4000-8000-000000000099", "not-a-guid", "%FF"] {
        let (status, body) = emu.get(&format!("/api/users/{missing}"), &token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        assert!(body["Message"].is_string());
    }
}

// ---------------------------------------------------------------------------------------------
// Users: create

#[tokio::test]
async fn create_user_assigns_a_guid() {
    let emu = Emu::seeded(0).await;
    let token = emu.token().await;
    let body = json!({
        "User": {
            "Email": "Ann.Lee@corp.example", "FirstName": "Ann", "LastName": "Lee",
            "CompanyId": CORP.to_uppercase(), "UserGroupId": SALES,
            "UserCustom1": "E1001", "Status": "Suspended"
        },
        "AuditMessage": "created by carbonite-sync"
    });
    let resp = emu
        .http
        .post(emu.url("/api/users"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let (_, created) = read(resp).await;
    let user = &created["User"];
    let id = user["UserId"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok());
    assert_eq!(location, format!("/api/users/{id}"));
    assert_eq!(user["Email"], "Ann.Lee@corp.example");
    assert_eq!(user["CompanyId"], CORP);
    assert_eq!(user["Status"], "Suspended");
    assert_eq!(user["UserCustom2"], Value::Null);
    let (_, fetched) = emu.get(&format!("/api/users/{id}"), &token).await;
    assert_eq!(fetched["User"], *user);

    // Status defaults to Active; AuditMessage is optional.
    let (status, body) = emu
        .call(
            Method::POST,
            "/api/users",
            Some(&token),
            Some(json!({"User": {"Email": "bo@corp.example", "CompanyId": LAB, "UserGroupId": LAB_GROUP}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["User"]["Status"], "Active");
    assert_eq!(body["User"]["FirstName"], Value::Null);
    assert_eq!(emu.stats().await["creates"], 2);
}

#[tokio::test]
async fn create_user_validation_errors() {
    let emu = Emu::seeded(1).await;
    let token = emu.token().await;
    let unknown = "11111111-0000-4000-8000-000000000000";
    let user = |extra: Value| {
        let mut u = json!({"Email": "new@corp.example", "CompanyId": CORP, "UserGroupId": STAFF});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() && k.starts_with('-') {
                u.as_object_mut().unwrap().remove(&k[1..]);
            } else {
                u[k] = v.clone();
            }
        }
        json!({"User": u, "AuditMessage": "t"})
    };
    let cases: Vec<(Value, Vec<&str>)> = vec![
        // Missing wrapper: the user object sent bare.
        (
            json!({"Email": "new@corp.example", "CompanyId": CORP, "UserGroupId": STAFF}),
            vec!["CompanyId", "Email", "User", "UserGroupId"],
        ),
        (json!({"User": null}), vec!["User"]),
        (json!({"User": "x"}), vec!["User"]),
        (
            json!({"User": {"Email": "new@corp.example", "CompanyId": CORP, "UserGroupId": STAFF}, "AuditMessage": 5}),
            vec!["AuditMessage"],
        ),
        (user(json!({"Department": "Sales"})), vec!["Department"]),
        (user(json!({"email": "lower@corp.example"})), vec!["email"]),
        (user(json!({"-Email": null})), vec!["Email"]),
        (user(json!({"Email": null})), vec!["Email"]),
        (user(json!({"Email": "not-an-email"})), vec!["Email"]),
        (user(json!({"Email": "a@b"})), vec!["Email"]),
        (user(json!({"Email": 42})), vec!["Email"]),
        (user(json!({"-CompanyId": null})), vec!["CompanyId"]),
        (user(json!({"CompanyId": "nope"})), vec!["CompanyId"]),
        (user(json!({"CompanyId": unknown})), vec!["CompanyId"]),
        (user(json!({"-UserGroupId": null})), vec!["UserGroupId"]),
        (user(json!({"UserGroupId": unknown})), vec!["UserGroupId"]),
        // A group of another company.
        (user(json!({"UserGroupId": LAB_GROUP})), vec!["UserGroupId"]),
        (user(json!({"UserId": unknown})), vec!["UserId"]),
        (user(json!({"Status": "Deleted"})), vec!["Status"]),
        (user(json!({"Status": "active"})), vec!["Status"]),
        (user(json!({"FirstName": 7})), vec!["FirstName"]),
        (
            user(json!({"UserCustom1": "x".repeat(256)})),
            vec!["UserCustom1"],
        ),
        // Everything wrong at once: all reported together.
        (
            user(json!({"Email": "bad", "Status": "x", "Foo": 1, "-CompanyId": null})),
            vec!["CompanyId", "Email", "Foo", "Status"],
        ),
    ];
    for (body, fields) in cases {
        let (status, resp) = emu
            .call(Method::POST, "/api/users", Some(&token), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(resp["Message"].is_string(), "{resp}");
        assert_eq!(error_fields(&resp), fields, "{body} -> {resp}");
        for msgs in resp["Errors"].as_object().unwrap().values() {
            assert!(msgs.as_array().unwrap().iter().all(Value::is_string));
        }
    }
    assert_eq!(
        emu.admin_users().await.len(),
        1,
        "no failed create wrote anything"
    );
}

#[tokio::test]
async fn create_user_duplicate_email_is_409_case_insensitive() {
    let emu = Emu::seeded(1).await;
    let token = emu.token().await;
    let (status, body) = emu
        .call(
            Method::POST,
            "/api/users",
            Some(&token),
            Some(new_user("USER1@corp.EXAMPLE")),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["Message"].is_string());
    assert!(
        body.get("UserId").is_none() && body.get("User").is_none(),
        "no id in a 409"
    );
}

#[tokio::test]
async fn bodies_must_be_json() {
    let emu = Emu::seeded(1).await;
    let token = emu.token().await;
    let id = "00000000-0000-4000-8000-000000000001";
    let valid = serde_json::to_string(&new_user("x@corp.example")).unwrap();
    for (method, path) in [
        (Method::POST, "/api/users".to_string()),
        (Method::PUT, format!("/api/users/{id}")),
        (Method::POST, "/api/companies".to_string()),
    ] {
        for ct in [
            None,
            Some("text/plain"),
            Some("application/xml"),
            Some("application/jsonx"),
        ] {
            let (status, body) = emu
                .raw(method.clone(), &path, Some(&token), ct, valid.clone())
                .await;
            assert_eq!(
                status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{method} {path} {ct:?}"
            );
            assert!(body["Message"].is_string());
        }
        let (status, body) = emu
            .raw(
                method.clone(),
                &path,
                Some(&token),
                Some("application/json"),
                "{\"User\": ",
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error_fields(&body), ["$"]);
        for junk in ["", "  ", "[]", "null", "\"x\"", "{\"a\":1}{", "\u{feff}{}"] {
            let (status, _) = emu
                .raw(
                    method.clone(),
                    &path,
                    Some(&token),
                    Some("application/json"),
                    junk,
                )
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{junk:?}");
        }
    }
    // A charset parameter is fine.
    let (status, _) = emu
        .raw(
            Method::POST,
            "/api/users",
            Some(&token),
            Some("application/json; charset=utf-8"),
            valid,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Deep nesting and huge bodies are refused, not crashed on.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let (status, _) = emu
        .raw(
            Method::POST,
            "/api/users",
            Some(&token),
            Some("application/json"),
            deep,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let huge = format!(
        "{{\"User\": {{\"FirstName\": \"{}\"}}}}",
        "x".repeat(3 * 1024 * 1024)
    );
    let (status, _) = emu
        .raw(
            Method::POST,
            "/api/users",
            Some(&token),
            Some("application/json"),
            huge,
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

// ---------------------------------------------------------------------------------------------
// Users: update, delete

#[tokio::test]
async fn update_user_is_partial() {
    let emu = Emu::seeded(2).await;
    let token = emu.token().await;
    let id = "00000000-0000-4000-8000-000000000001";
    let path = format!("/api/users/{id}");
    let (status, body) = emu
        .call(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"User": {"LastName": "Lee", "UserCustom2": "x", "UserGroupId": SALES}, "AuditMessage": "m"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let u = &body["User"];
    assert_eq!(u["LastName"], "Lee");
    assert_eq!(u["FirstName"], "First1", "untouched fields stay");
    assert_eq!(u["UserGroupId"], SALES);
    assert_eq!(u["UserCustom2"], "x");

    // Suspend and reactivate; null clears an optional field.
    for status_value in ["Suspended", "Active"] {
        let (status, body) = emu
            .call(
                Method::PUT,
                &path,
                Some(&token),
                Some(json!({"User": {"Status": status_value, "UserCustom2": null}, "AuditMessage": "m"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["User"]["Status"], status_value);
        assert_eq!(body["User"]["UserCustom2"], Value::Null);
    }
    // Moving to another company needs a group of that company.
    let (status, body) = emu
        .call(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"User": {"CompanyId": LAB}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_fields(&body), ["UserGroupId"]);
    let (status, body) = emu
        .call(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"User": {"CompanyId": LAB, "UserGroupId": LAB_GROUP}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The case of one's own email may change; another account's email may not be taken.
    let (status, _) = emu
        .call(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"User": {"Email": "USER1@corp.example"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = emu
        .call(
            Method::PUT,
            &path,
            Some(&token),
            Some(json!({"User": {"Email": "user2@CORP.example"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    for (body, fields) in [
        (json!({"Status": "Suspended"}), vec!["Status", "User"]),
        (json!({"User": {"Status": "Gone"}}), vec!["Status"]),
        (json!({"User": {"Email": null}}), vec!["Email"]),
        (json!({"User": {"CompanyId": null}}), vec!["CompanyId"]),
        (
            json!({"User": {"UserGroupId": "11111111-0000-4000-8000-000000000000"}}),
            vec!["UserGroupId"],
        ),
        (json!({"User": {"Nickname": "x"}}), vec!["Nickname"]),
        (
            json!({"User": {"UserId": "00000000-0000-4000-8000-000000000002"}}),
            vec!["UserId"],
        ),
    ] {
        let (status, resp) = emu
            .call(Method::PUT, &path, Some(&token), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_fields(&resp), fields, "{body}");
    }
    let (status, _) = emu
        .call(
            Method::PUT,
            "/api/users/00000000-0000-4000-8000-000000000099",
            Some(&token),
            Some(json!({"User": {"Status": "Active"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delete_user() {
    let emu = Emu::seeded(2).await;
    let token = emu.token().await;
    let path = "/api/users/00000000-0000-4000-8000-000000000001";
    let (status, body) = emu.call(Method::DELETE, path, Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    assert_eq!(emu.get(path, &token).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        emu.call(Method::DELETE, path, Some(&token), None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, body) = emu.get("/api/users?email=user1@corp.example", &token).await;
    assert_eq!(body["TotalCount"], 0);
    // The email is free again.
    let (status, _) = emu
        .call(
            Method::POST,
            "/api/users",
            Some(&token),
            Some(new_user("user1@corp.example")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

// ---------------------------------------------------------------------------------------------
// Companies and user groups

#[tokio::test]
async fn companies_and_user_groups() {
    let emu = Emu::seeded(0).await;
    let token = emu.token().await;
    let (status, body) = emu.get("/api/companies", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"Companies": [
            {"CompanyId": CORP, "CompanyName": "Corp"},
            {"CompanyId": LAB, "CompanyName": "Lab"}
        ]})
    );
    let (status, body) = emu
        .get(&format!("/api/usergroups?companyId={CORP}"), &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"UserGroups": [
            {"UserGroupId": STAFF, "Name": "Staff", "CompanyId": CORP},
            {"UserGroupId": SALES, "Name": "Sales", "CompanyId": CORP}
        ]})
    );
    let (status, body) = emu.get("/api/usergroups", &token).await;
    assert_eq!(
        (status, error_fields(&body)),
        (StatusCode::BAD_REQUEST, vec!["companyId".into()])
    );
    let (status, _) = emu.get("/api/usergroups?companyId=xyz", &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = emu
        .get(
            "/api/usergroups?companyId=11111111-0000-4000-8000-000000000000",
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Create a company: it gets a GUID and a Default user group.
    let (status, body) = emu
        .call(
            Method::POST,
            "/api/companies",
            Some(&token),
            Some(json!({"Company": {"CompanyName": "Branch", "PartnerId": 12, "IsTrial": true, "UserGroupRule": null}, "AuditMessage": "m"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let company = body["Company"]["CompanyId"].as_str().unwrap().to_string();
    assert_eq!(body["Company"]["CompanyName"], "Branch");
    let (_, groups) = emu
        .get(&format!("/api/usergroups?companyId={company}"), &token)
        .await;
    assert_eq!(groups["UserGroups"][0]["Name"], "Default");
    let group = groups["UserGroups"][0]["UserGroupId"].as_str().unwrap();
    let (status, _) = emu
        .call(
            Method::POST,
            "/api/users",
            Some(&token),
            Some(json!({"User": {"Email": "b@branch.example", "CompanyId": company, "UserGroupId": group}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        emu.get("/api/companies", &token).await.1["Companies"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let (status, _) = emu
        .call(
            Method::POST,
            "/api/companies",
            Some(&token),
            Some(json!({"Company": {"CompanyName": "branch"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    for (body, fields) in [
        (json!({"CompanyName": "X"}), vec!["Company", "CompanyName"]),
        (json!({"Company": {}}), vec!["CompanyName"]),
        (
            json!({"Company": {"CompanyName": " "}}),
            vec!["CompanyName"],
        ),
        (
            json!({"Company": {"CompanyName": "X", "CompanyId": CORP}}),
            vec!["CompanyId"],
        ),
        (
            json!({"Company": {"CompanyName": "X", "IsTrial": "yes"}}),
            vec!["IsTrial"],
        ),
        (
            json!({"Company": {"CompanyName": "X", "Region": "us"}}),
            vec!["Region"],
        ),
    ] {
        let (status, resp) = emu
            .call(
                Method::POST,
                "/api/companies",
                Some(&token),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_fields(&resp), fields, "{body}");
    }
}

// ---------------------------------------------------------------------------------------------
// 404, 405

#[tokio::test]
async fn unknown_paths_and_methods() {
    let emu = Emu::seeded(1).await;
    let token = emu.token().await;
    for path in ["/api/nope", "/api/users/1/extra", "/", "/_emulator/nope"] {
        let (status, body) = emu.get(path, &token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body["Message"].is_string());
    }
    for (method, path) in [
        (
            Method::PATCH,
            "/api/users/00000000-0000-4000-8000-000000000001",
        ),
        (Method::DELETE, "/api/users"),
        (Method::GET, "/api/tokens/apikey"),
        (Method::PUT, "/api/companies"),
    ] {
        let resp = emu
            .http
            .request(method.clone(), emu.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert!(resp.headers().contains_key("allow"));
        let (_, body) = read(resp).await;
        assert!(body["Message"].is_string());
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limits

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let (mut opts, dir) = options(1);
    opts.limits = Some(Limits {
        per_route: "3/5s".parse().unwrap(),
        creates: "2/5s".parse().unwrap(),
    });
    let emu = Emu::start(opts, dir).await;
    let token = emu.token().await;
    // Listing and by-email share the route `GET /api/users`.
    for path in [
        "/api/users",
        "/api/users?email=user1@corp.example",
        "/api/users?pageSize=1",
    ] {
        assert_eq!(emu.get(path, &token).await.0, StatusCode::OK);
    }
    let resp = emu
        .http
        .get(emu.url("/api/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    let (_, body) = read(resp).await;
    assert!(body["Message"].is_string());
    // Another route has its own window; admin routes are not limited.
    let (status, _) = emu
        .get("/api/users/00000000-0000-4000-8000-000000000001", &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..5 {
        emu.admin_users().await;
    }

    // Creates: 2 per 5 s on top of the route's 3.
    for i in 0..2 {
        let (status, _) = emu
            .call(
                Method::POST,
                "/api/users",
                Some(&token),
                Some(new_user(&format!("n{i}@corp.example"))),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let resp = emu
        .http
        .post(emu.url("/api/users"))
        .bearer_auth(&token)
        .json(&new_user("n3@corp.example"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));

    // The token route counts too (1 call so far).
    for _ in 0..2 {
        emu.token().await;
    }
    let (status, _) = emu
        .call(
            Method::POST,
            "/api/tokens/apikey",
            None,
            Some(json!({"Email": ADMIN_EMAIL, "ApiKeySecret": ADMIN_SECRET})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    let stats = emu.stats().await;
    assert_eq!(
        stats["routes"]["GET /api/users"],
        json!({"200": 3, "429": 1})
    );
    assert_eq!(
        stats["routes"]["POST /api/users"],
        json!({"201": 2, "429": 1})
    );
    assert_eq!(
        stats["routes"]["POST /api/tokens/apikey"],
        json!({"200": 3, "429": 1})
    );
    assert_eq!(stats["creates"], 2);
    assert!(stats["routes"].get("GET /_emulator/users").is_none());
}

#[tokio::test]
async fn vendor_limits_by_default() {
    let (mut opts, dir) = options(0);
    opts.limits = EmulatorOptions::default().limits;
    let emu = Emu::start(opts, dir).await;
    let token = emu.token().await;
    for _ in 0..50 {
        assert_eq!(emu.get("/api/companies", &token).await.0, StatusCode::OK);
    }
    let resp = emu
        .http
        .get(emu.url("/api/companies"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&retry), "{retry}");
}

// ---------------------------------------------------------------------------------------------
// Stats and admin routes

#[tokio::test]
async fn stats_count_every_status_per_route_template() {
    let emu = Emu::seeded(2).await;
    let token = emu.token().await;
    emu.get("/api/users/00000000-0000-4000-8000-000000000001", &token)
        .await;
    emu.get("/api/users/00000000-0000-4000-8000-000000000002", &token)
        .await;
    emu.get("/api/users/00000000-0000-4000-8000-000000000099", &token)
        .await;
    emu.get("/api/users", "bad-token").await;
    emu.get("/api/nowhere", &token).await;
    let stats = emu.stats().await;
    assert_eq!(
        stats["routes"],
        json!({
            "GET /api/users/{UserId}": {"200": 2, "404": 1},
            "GET /api/users": {"401": 1},
            "POST /api/tokens/apikey": {"200": 1}
        })
    );
    assert_eq!(
        stats["requests"], 5,
        "unknown paths and admin routes are not counted"
    );
    assert_eq!(stats["faults"]["injected"], json!([]));
}

#[tokio::test]
async fn admin_edits_accounts_out_of_band() {
    let emu = Emu::seeded(2).await;
    let token = emu.token().await;
    let id = "00000000-0000-4000-8000-000000000001";
    let (status, body) = emu
        .call(
            Method::PUT,
            &format!("/_emulator/users/{id}"),
            None,
            Some(json!({"UserCustom1": null, "Status": "Suspended"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = emu.get(&format!("/api/users/{id}"), &token).await;
    assert_eq!(body["User"]["UserCustom1"], Value::Null);
    assert_eq!(body["User"]["Status"], "Suspended");
    assert_eq!(body["User"]["FirstName"], "First1");

    // Same validation as the API.
    for (body, fields) in [
        (json!({"Status": "Nope"}), vec!["Status"]),
        (json!({"Unknown": 1}), vec!["Unknown"]),
        (json!({"UserGroupId": LAB_GROUP}), vec!["UserGroupId"]),
    ] {
        let (status, resp) = emu
            .call(
                Method::PUT,
                &format!("/_emulator/users/{id}"),
                None,
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_fields(&resp), fields);
    }
    let (status, _) = emu
        .call(
            Method::PUT,
            &format!("/_emulator/users/{id}"),
            None,
            Some(json!({"Email": "user2@corp.example"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // An unknown id creates the account with that id.
    let new_id = "22222222-0000-4000-8000-000000000000";
    let (status, _) = emu
        .call(
            Method::PUT,
            &format!("/_emulator/users/{new_id}"),
            None,
            Some(json!({"Status": "Active"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a new account needs Email, CompanyId, UserGroupId"
    );
    let (status, body) = emu
        .call(
            Method::PUT,
            &format!("/_emulator/users/{new_id}"),
            None,
            Some(json!({"Email": "oob@corp.example", "CompanyId": CORP, "UserGroupId": STAFF})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["User"]["UserId"], new_id);
    assert_eq!(
        emu.get(&format!("/api/users/{new_id}"), &token).await.0,
        StatusCode::OK
    );
    let (status, _) = emu
        .call(
            Method::DELETE,
            &format!("/_emulator/users/{new_id}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Admin calls are neither counted nor limited.
    let stats = emu.stats().await;
    assert_eq!(stats["routes"].as_object().unwrap().len(), 2, "{stats}");
}

#[tokio::test]
async fn reset_goes_back_to_the_seed_or_to_a_given_document() {
    let emu = Emu::seeded(3).await;
    let token = emu.token().await;
    emu.call(
        Method::POST,
        "/api/users",
        Some(&token),
        Some(new_user("x@corp.example")),
    )
    .await;
    emu.call(
        Method::DELETE,
        "/api/users/00000000-0000-4000-8000-000000000001",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(emu.admin_users().await.len(), 3);
    let (status, _) = emu.call(Method::POST, "/_emulator/reset", None, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let emails: Vec<String> = emu
        .admin_users()
        .await
        .iter()
        .map(|u| u["Email"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        emails,
        [
            "user1@corp.example",
            "user2@corp.example",
            "user3@corp.example"
        ]
    );
    assert_eq!(emu.stats().await["requests"], 0, "stats restart");
    // Tokens survive a reset.
    assert_eq!(emu.get("/api/users", &token).await.0, StatusCode::OK);

    let (status, _) = emu
        .call(Method::POST, "/_emulator/reset", None, Some(seed_doc(1)))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(emu.admin_users().await.len(), 1);
    let mut bad = seed_doc(1);
    bad["Users"][0]["UserGroupId"] = json!(LAB_GROUP);
    let (status, body) = emu
        .call(Method::POST, "/_emulator/reset", None, Some(bad))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        emu.admin_users().await.len(),
        1,
        "a refused reset changes nothing"
    );
}

// ---------------------------------------------------------------------------------------------
// Faults

/// Run a fixed sequential script against a faulty emulator; return what the client saw and
/// the faults the emulator reports.
async fn faulty_run(faults: &str) -> (Vec<String>, Value, Vec<Value>) {
    let (mut opts, dir) = options(3);
    let mut cfg: FaultConfig = faults.parse().unwrap();
    cfg.timeout_hold = Duration::from_millis(100);
    opts.faults = cfg;
    let emu = Emu::start(opts, dir).await;
    let mut seen = Vec::new();
    let mut token = None;
    while token.is_none() {
        let resp = emu
            .http
            .post(emu.url("/api/tokens/apikey"))
            .json(&json!({"Email": ADMIN_EMAIL, "ApiKeySecret": ADMIN_SECRET}))
            .send()
            .await;
        match resp {
            Ok(r) if r.status() == StatusCode::OK => {
                seen.push("200".into());
                token = read(r).await.1["access_token"].as_str().map(String::from);
            }
            Ok(r) => seen.push(r.status().as_str().to_string()),
            Err(_) => seen.push("no response".into()),
        }
    }
    let token = token.unwrap();
    for i in 0..40 {
        let req = match i % 3 {
            0 => emu.http.get(emu.url("/api/users?pageSize=2")),
            1 => emu
                .http
                .post(emu.url("/api/users"))
                .json(&new_user(&format!("f{i}@corp.example"))),
            _ => emu
                .http
                .put(emu.url("/api/users/00000000-0000-4000-8000-000000000001"))
                .json(&json!({"User": {"UserCustom3": format!("v{i}")}})),
        };
        seen.push(match req.bearer_auth(&token).send().await {
            Ok(r) => r.status().as_str().to_string(),
            Err(_) => "no response".into(),
        });
    }
    let stats = emu.stats().await;
    (seen, stats, emu.admin_users().await)
}

#[tokio::test]
async fn seeded_faults_are_reproducible() {
    let spec = "error=0.15,timeout=0.1,reset=0.1,drop=0.15,seed=20240611";
    let (seen_a, stats_a, users_a) = faulty_run(spec).await;
    let (seen_b, stats_b, users_b) = faulty_run(spec).await;
    assert_eq!(seen_a, seen_b);
    assert_eq!(stats_a["faults"], stats_b["faults"]);
    assert_eq!(stats_a["routes"], stats_b["routes"]);
    let emails = |users: &[Value]| -> Vec<String> {
        users
            .iter()
            .map(|u| u["Email"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(emails(&users_a), emails(&users_b));
    // The run met every kind of fault.
    let counts = &stats_a["faults"]["counts"];
    for kind in ["error", "timeout", "reset", "drop"] {
        assert!(
            counts[kind].as_u64().unwrap_or(0) > 0,
            "no {kind} in {counts}"
        );
    }
    assert_eq!(stats_a["faults"]["seed"], 20240611);
    for f in stats_a["faults"]["injected"].as_array().unwrap() {
        if f["fault"] == "error" {
            assert!([500, 502, 503].contains(&f["status"].as_u64().unwrap()));
        }
        if f["fault"] == "drop" {
            assert_ne!(f["route"], "GET /api/users", "reads are never dropped");
        }
    }
    // Another seed gives another sequence.
    let (_, stats_c, _) = faulty_run("error=0.15,timeout=0.1,reset=0.1,drop=0.15,seed=1").await;
    assert_ne!(stats_a["faults"]["injected"], stats_c["faults"]["injected"]);
}

#[tokio::test]
async fn a_dropped_create_really_creates_the_account() {
    let (mut opts, dir) = options(0);
    opts.faults = "drop=1,seed=3".parse().unwrap();
    let emu = Emu::start(opts, dir).await;
    // Reads and the token are never dropped.
    let token = emu.token().await;
    assert_eq!(emu.get("/api/users", &token).await.0, StatusCode::OK);
    let err = emu
        .http
        .post(emu.url("/api/users"))
        .bearer_auth(&token)
        .json(&new_user("lost@corp.example"))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_status() && !err.is_timeout(), "{err:?}");
    let users = emu.admin_users().await;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["Email"], "lost@corp.example");
    // The client's recovery (SPEC §8): look the account up by email.
    let (_, found) = emu.get("/api/users?email=lost@corp.example", &token).await;
    assert_eq!(found["Users"][0]["UserId"], users[0]["UserId"]);
    // A dropped update is applied too.
    let id = users[0]["UserId"].as_str().unwrap();
    let err = emu
        .http
        .put(emu.url(&format!("/api/users/{id}")))
        .bearer_auth(&token)
        .json(&json!({"User": {"Status": "Suspended"}}))
        .send()
        .await;
    assert!(err.is_err());
    assert_eq!(emu.admin_users().await[0]["Status"], "Suspended");
    let stats = emu.stats().await;
    assert_eq!(stats["creates"], 1);
    assert_eq!(stats["routes"]["POST /api/users"], json!({"drop": 1}));
    assert_eq!(
        stats["routes"]["PUT /api/users/{UserId}"],
        json!({"drop": 1})
    );
    assert_eq!(stats["faults"]["counts"], json!({"drop": 2}));
}

/// Send one raw HTTP request and read until the server ends the connection.
fn raw_exchange(addr: std::net::SocketAddr, request: &str) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(request.as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    Ok(buf)
}

#[tokio::test]
async fn reset_sends_rst_and_timeout_closes_without_a_response() {
    let request = "GET /api/companies HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    let (mut opts, dir) = options(0);
    opts.faults = "reset=1,seed=1".parse().unwrap();
    let emu = Emu::start(opts, dir).await;
    let addr = emu.running.addr();
    let result = tokio::task::spawn_blocking(move || raw_exchange(addr, request))
        .await
        .unwrap();
    let err = result.expect_err("a reset must not look like a clean close");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err:?}");

    let (mut opts, dir) = options(0);
    let mut cfg: FaultConfig = "timeout=1,seed=1".parse().unwrap();
    cfg.timeout_hold = Duration::from_millis(300);
    opts.faults = cfg;
    let emu = Emu::start(opts, dir).await;
    let addr = emu.running.addr();
    let started = Instant::now();
    let bytes = tokio::task::spawn_blocking(move || raw_exchange(addr, request))
        .await
        .unwrap()
        .unwrap();
    assert!(
        bytes.is_empty(),
        "no response bytes: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        emu.stats().await["routes"]["GET /api/companies"],
        json!({"timeout": 1})
    );
}

#[tokio::test]
async fn error_faults_answer_5xx_and_latency_delays() {
    let (mut opts, dir) = options(0);
    opts.faults = "error=1,seed=5".parse().unwrap();
    let emu = Emu::start(opts, dir).await;
    for _ in 0..10 {
        let (status, body) = emu.get("/api/companies", "no-token-needed-to-fail").await;
        assert!([500, 502, 503].contains(&status.as_u16()));
        assert!(body["Message"].is_string());
    }

    let (mut opts, dir) = options(0);
    opts.faults = "latency=250ms".parse().unwrap();
    let emu = Emu::start(opts, dir).await;
    let token = emu.token().await;
    let started = Instant::now();
    assert_eq!(emu.get("/api/companies", &token).await.0, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(250));
    // Admin routes have no latency (no upper-bound timing asserted: only that they work).
    emu.stats().await;
}

// ---------------------------------------------------------------------------------------------
// State file and in-process mode

#[tokio::test]
async fn in_process_mode_keeps_state_across_restarts() {
    let state_dir = tempfile::tempdir().unwrap();
    let seed_dir = tempfile::tempdir().unwrap();
    let seed = write_seed(seed_dir.path(), &seed_doc(2));
    let opts = EmulatorOptions::in_process(state_dir.path(), Some(seed.clone()));
    assert_eq!(opts.limits, Some(Limits::VENDOR));
    assert!(opts.listen.ip().is_loopback() && opts.listen.port() == 0);
    let running = start(opts.clone()).await.unwrap();
    let state_file = state_dir.path().join("emulator.json");
    assert_eq!(running.state_file(), Some(state_file.as_path()));
    assert!(
        state_file.exists(),
        "written at start, so the seed is not read again"
    );
    let emu = Emu {
        base: running.base_url(),
        running,
        http: client(),
        dir: seed_dir,
    };
    let token = emu.token().await;
    let (status, created) = emu
        .call(
            Method::POST,
            "/api/users",
            Some(&token),
            Some(new_user("kept@corp.example")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Written through before the 201: visible on disk now, even without a clean shutdown.
    let on_disk: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert_eq!(on_disk["Users"].as_array().unwrap().len(), 3);
    let text = std::fs::read_to_string(&state_file).unwrap();
    assert!(!text.contains(ADMIN_SECRET), "secrets are stored hashed");
    assert!(text.contains("ApiKeySecretHash"));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&state_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let Emu { running, .. } = emu;
    running.shutdown().await.unwrap();

    // Restart with a different seed: the state wins.
    std::fs::write(&seed, serde_json::to_vec(&seed_doc(0)).unwrap()).unwrap();
    let running = start(opts).await.unwrap();
    let emu = Emu {
        base: running.base_url(),
        running,
        http: client(),
        dir: tempfile::tempdir().unwrap(),
    };
    let token = emu.token().await;
    let id = created["User"]["UserId"].as_str().unwrap();
    let (status, body) = emu.get(&format!("/api/users/{id}"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["User"]["Email"], "kept@corp.example");
    assert_eq!(emu.admin_users().await.len(), 3);
}

#[tokio::test]
async fn bad_seed_files_and_addresses_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = seed_doc(2);
    doc["Users"][1]["Email"] = json!("USER1@corp.example");
    doc["Users"][0]["CompanyId"] = json!("nope");
    let seed = write_seed(dir.path(), &doc);
    let opts = EmulatorOptions {
        seed_file: Some(seed.clone()),
        ..EmulatorOptions::default()
    };
    let err = start(opts.clone()).await.unwrap_err().to_string();
    assert!(
        err.contains("Users[0]") && err.contains("seed.json"),
        "{err}"
    );
    std::fs::write(&seed, "{\"Users\": [], \"Extra\": 1}").unwrap();
    assert!(start(opts.clone()).await.is_err());
    let missing = EmulatorOptions {
        seed_file: Some(dir.path().join("missing.json")),
        ..EmulatorOptions::default()
    };
    assert!(start(missing).await.is_err());
    let public = EmulatorOptions {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..EmulatorOptions::default()
    };
    assert!(
        start(public)
            .await
            .unwrap_err()
            .to_string()
            .contains("loopback")
    );
}

// ---------------------------------------------------------------------------------------------
// The `emulator` command

#[test]
fn the_emulator_command_serves_until_sigterm_and_saves_state() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let seed = write_seed(dir.path(), &seed_doc(1));
    let state = dir.path().join("state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_carbonite-sync"))
        .args([
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--rate-limits",
            "route=100/1m,create=5/1m",
        ])
        .arg("--seed")
        .arg(&seed)
        .arg("--state")
        .arg(&state)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = client();
        let token: Value = http
            .post(format!("{base}/api/tokens/apikey"))
            .json(&json!({"Email": ADMIN_EMAIL, "ApiKeySecret": ADMIN_SECRET}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = token["access_token"].as_str().unwrap();
        let resp = http
            .post(format!("{base}/api/users"))
            .bearer_auth(token)
            .json(&new_user("cli@corp.example"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    });

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
    let saved: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let emails: Vec<&str> = saved["Users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["Email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["user1@corp.example", "cli@corp.example"]);
}

#[test]
fn the_emulator_command_refuses_bad_flags() {
    use std::process::Command;
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_carbonite-sync"))
            .arg("emulator")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("loopback") && stderr.contains("hint:"),
        "{stderr}"
    );
    for bad in [
        ["--rate-limits", "route=0/1h"],
        ["--rate-limits", "routes=5/1h"],
        ["--faults", "error=2"],
        ["--faults", "error=0.6,reset=0.6"],
        ["--token-ttl", "soon"],
        ["--fault-timeout", "0s"],
    ] {
        let out = run(&bad);
        assert_eq!(out.status.code(), Some(64), "{bad:?}");
    }
    let out = run(&[
        "--listen",
        "127.0.0.1:0",
        "--seed",
        "/nonexistent/seed.json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/seed.json"));
}
