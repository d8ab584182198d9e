//! The Carbonite client against the emulator over real HTTP: listings across pages, token
//! renewal, 429 + Retry-After, retries of reads, unknown outcomes of creates, the ledger's
//! budget, and the write routes.

#[path = "carbonite/harness.rs"]
mod harness;

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use carbonite_sync::carbonite::{ClientError, CreateError, DeleteOutcome, online_check};
use carbonite_sync::emulator::{FaultConfig, Limits};
use carbonite_sync::error::Outcome;
use harness::*;
use serde_json::{Map, Value, json};

fn fields(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_2000_accounts_across_pages() {
    let (emu, _seed) = emulator(2000, |_| {}).await;
    let dir = config_dir(&ConfigSpec::url(&emu.base_url()));
    let client = connect(dir.path(), fast_options()).await;
    let items = client.users().await.unwrap();
    assert_eq!(items.len(), 2000);
    let ids: HashSet<_> = items.iter().map(|i| i.id.clone().unwrap()).collect();
    assert_eq!(ids.len(), 2000);
    assert_eq!(items[1999].value()["Email"], "user2000@corp.example");
    let s = stats(&emu.base_url()).await;
    // 4 pages of 500; the total stops the listing without asking for an empty page 5.
    assert_eq!(count(&s, "GET /api/users", "200"), 4);
    assert_eq!(count(&s, "POST /api/tokens/apikey", "200"), 1);
    let (calls, _) = client.call_counts();
    assert_eq!(calls["GET /api/users"], 4);
    assert_eq!(calls["POST /api/tokens/apikey"], 1);
    // A short last page ends a listing too.
    let (emu, _seed) = emulator(1234, |_| {}).await;
    let dir = config_dir(&ConfigSpec::url(&emu.base_url()));
    let client = connect(dir.path(), fast_options()).await;
    assert_eq!(client.users().await.unwrap().len(), 1234);
    assert_eq!(
        count(&stats(&emu.base_url()).await, "GET /api/users", "200"),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiring_mid_listing_is_renewed_after_a_401() {
    // Tokens live 1-2 s; 20 pages at 150 ms each take 3 s. The client is told to trust its
    // token for an hour, so the server's 401 is what triggers the renewal.
    let (emu, _seed) = emulator(2000, |o| {
        o.token_ttl = Duration::from_secs(2);
        o.faults = FaultConfig {
            latency: Duration::from_millis(150),
            ..FaultConfig::default()
        };
    })
    .await;
    // One call at a time, or the pages fetched ahead would end the listing before the token.
    let spec = ConfigSpec {
        target: format!("baseUrl: {}\n    concurrency: 1", emu.base_url()),
        extra: &users_endpoint(100),
        ..ConfigSpec::url(&emu.base_url())
    };
    let dir = config_dir(&spec);
    let mut options = fast_options();
    options.token_lifetime_override = Some(Duration::from_secs(3600));
    let client = connect(dir.path(), options).await;
    let items = client.users().await.unwrap();
    assert_eq!(items.len(), 2000);
    let s = stats(&emu.base_url()).await;
    assert!(count(&s, "GET /api/users", "401") >= 1, "{s}");
    assert!(count(&s, "POST /api/tokens/apikey", "200") >= 2, "{s}");
    assert_eq!(count(&s, "GET /api/users", "200"), 20, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_renewed_before_its_exp() {
    // Tokens live 3-4 s (`exp` in whole seconds); the client renews a tenth of the lifetime
    // (300-400 ms) before `exp`, far more than a request takes here (50 ms), so no 401 is met.
    // 80 pages at 50 ms each outlast the first token.
    let (emu, _seed) = emulator(2000, |o| {
        o.token_ttl = Duration::from_secs(4);
        o.faults = FaultConfig {
            latency: Duration::from_millis(50),
            ..FaultConfig::default()
        };
    })
    .await;
    // One call at a time, or the pages fetched ahead would end the listing before the token.
    let spec = ConfigSpec {
        target: format!("baseUrl: {}\n    concurrency: 1", emu.base_url()),
        extra: &users_endpoint(25),
        ..ConfigSpec::url(&emu.base_url())
    };
    let dir = config_dir(&spec);
    let client = connect(dir.path(), fast_options()).await;
    assert_eq!(client.users().await.unwrap().len(), 2000);
    let s = stats(&emu.base_url()).await;
    assert!(count(&s, "POST /api/tokens/apikey", "200") >= 2, "{s}");
    assert_eq!(count(&s, "GET /api/users", "401"), 0, "{s}");
    assert_eq!(count(&s, "GET /api/users", "200"), 80, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_after_retry_after() {
    // The server allows 3 calls per 2 s; the client's ledger does not know (generous limits),
    // so the 4th page meets a 429 and waits for Retry-After.
    let (emu, _seed) = emulator(2000, |o| {
        o.limits = Some(Limits {
            per_route: "3/2s".parse().unwrap(),
            creates: "100/1h".parse().unwrap(),
        });
    })
    .await;
    let dir = config_dir(&ConfigSpec::url(&emu.base_url()));
    let client = connect(dir.path(), fast_options()).await;
    let t0 = Instant::now();
    assert_eq!(client.users().await.unwrap().len(), 2000);
    let s = stats(&emu.base_url()).await;
    assert!(count(&s, "GET /api/users", "429") >= 1, "{s}");
    assert_eq!(count(&s, "GET /api/users", "200"), 4, "{s}");
    assert!(t0.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_retried_on_5xx_creates_are_not() {
    // Half of all requests fail with 500/502/503, in a fixed order (seeded, sequential client).
    let (emu, _seed) = emulator(5, |o| {
        o.faults = FaultConfig {
            error: 0.5,
            seed: Some(7),
            ..FaultConfig::default()
        };
    })
    .await;
    let dir = config_dir(&ConfigSpec::url(&emu.base_url()));
    let client = connect(dir.path(), fast_options()).await;
    for i in 1..=5 {
        let id = format!("00000000-0000-4000-8000-{i:012}");
        let user = client.get_user(&id).await.unwrap().unwrap();
        assert_eq!(user.id, id);
    }
    let s = stats(&emu.base_url()).await;
    let get = "GET /api/users/{UserId}";
    let errors: u64 = ["500", "502", "503"]
        .iter()
        .map(|c| count(&s, get, c))
        .sum();
    assert!(errors >= 1, "some reads met a 5xx: {s}");
    assert_eq!(count(&s, get, "200"), 5);

    let (mut created, mut unknown, mut calls) = (0, 0, 0);
    for i in 0..12 {
        calls += 1;
        let f = fields(
            json!({"Email": format!("new{i}@corp.example"), "CompanyId": CORP,
                              "UserGroupId": STAFF, "UserCustom1": format!("N{i}")}),
        );
        match client.create_user(&f, "carbonite-sync test").await {
            Ok(a) => {
                created += 1;
                assert_eq!(a.fields["Email"], format!("new{i}@corp.example"));
            }
            Err(CreateError::UnknownOutcome { email, reason }) => {
                unknown += 1;
                assert_eq!(email, format!("new{i}@corp.example"));
                assert!(reason.contains("Carbonite answered 5"), "{reason}");
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        created >= 1 && unknown >= 1,
        "created {created}, unknown {unknown}"
    );
    let s = stats(&emu.base_url()).await;
    // Exactly one request per create: a 5xx is never retried.
    assert_eq!(total(&s, "POST /api/users"), calls, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_create_is_an_unknown_outcome_and_can_be_looked_up() {
    // `drop` commits the write and closes the connection without an answer.
    let (emu, _seed) = emulator(1, |o| {
        o.faults = FaultConfig {
            drop: 1.0,
            seed: Some(1),
            ..FaultConfig::default()
        };
    })
    .await;
    let dir = config_dir(&ConfigSpec::url(&emu.base_url()));
    let client = connect(dir.path(), fast_options()).await;
    let f = fields(json!({"Email": "Dropped@corp.example", "CompanyId": CORP,
                          "UserGroupId": STAFF, "UserCustom1": "D1"}));
    let err = client.create_user(&f, "").await.unwrap_err();
    assert!(matches!(err, CreateError::UnknownOutcome { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("create user Dropped@corp.example: outcome unknown (")
    );
    let s = stats(&emu.base_url()).await;
    assert_eq!(total(&s, "POST /api/users"), 1, "not retried: {s}");
    assert_eq!(s["creates"], 1);
    let found = client.find_by_email("dropped@corp.example").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].value()["UserCustom1"], "D1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_retried_then_reported() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = config_dir(&ConfigSpec::url(&format!("http://127.0.0.1:{port}")));
    let client = connect(dir.path(), fast_options()).await;
    let err = client.users().await.unwrap_err();
    assert!(
        matches!(err, ClientError::Transport { attempts: 4, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("get an access token for admin@corp.example"),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("base URL"));
    // A create whose connection cannot even be opened provably did not happen.
    let f = fields(json!({"Email": "x@corp.example"}));
    let err = client.create_user(&f, "").await.unwrap_err();
    assert!(matches!(err, CreateError::NotSent(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_routes_round_trip_and_errors_name_the_object() {
    let (emu, _seed) = emulator(1, |_| {}).await;
    let dir = config_dir(&ConfigSpec::url(&emu.base_url()));
    let client = connect(dir.path(), fast_options()).await;
    let f = fields(json!({"Email": "ann.lee@corp.example", "FirstName": "Ann",
                          "CompanyId": CORP, "UserGroupId": STAFF, "UserCustom1": "E1001"}));
    let created = client.create_user(&f, "created by test").await.unwrap();
    assert_eq!(created.fields["Status"], "Active");
    let id = created.id.clone();

    let changed = fields(json!({"LastName": "Lee", "UserGroupId": SALES}));
    let updated = client
        .update_user(&id, &changed, "mapping change")
        .await
        .unwrap();
    assert_eq!(updated.fields["LastName"], "Lee");
    assert_eq!(
        updated.fields["FirstName"], "Ann",
        "fields not sent are kept"
    );
    let got = client.get_user(&id).await.unwrap().unwrap();
    assert_eq!(got.fields["UserGroupId"], SALES);

    // Duplicate Email: 409, refused, nothing created.
    let err = client.create_user(&f, "").await.unwrap_err();
    let CreateError::Rejected { status, email, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((*status, email.as_str()), (409, "ann.lee@corp.example"));
    // Field errors are carried over.
    let bad = fields(json!({"Email": "not-an-email", "CompanyId": CORP, "UserGroupId": STAFF}));
    let err = client.create_user(&bad, "").await.unwrap_err();
    let CreateError::Rejected {
        status,
        field_errors,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 400);
    assert!(field_errors.contains_key("Email"), "{err}");
    assert!(err.to_string().contains("\n  Email: "), "{err}");

    // Update of an unknown account: the error names it, the status and the API message.
    let missing = "99999999-0000-4000-8000-000000000000";
    let err = client.update_user(missing, &changed, "").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(
        err.to_string().starts_with(&format!(
            "update user {missing}: Carbonite answered 404 to PUT "
        )),
        "{err}"
    );

    assert_eq!(
        client.delete_user(&id).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        client.delete_user(&id).await.unwrap(),
        DeleteOutcome::AlreadyGone
    );
    assert_eq!(client.get_user(&id).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_tables_and_for_each_companies() {
    let (emu, _seed) = emulator(0, |_| {}).await;
    let dir = config_dir(&ConfigSpec::url(&emu.base_url()));
    let client = connect(dir.path(), fast_options()).await;
    let tables = client.lookup_tables().await.unwrap();
    assert_eq!(tables.companies.len(), 2);
    assert_eq!(tables.user_groups.len(), 3);
    let lab = tables.user_groups.iter().find(|g| g.name == "Lab").unwrap();
    assert_eq!(lab.company_id, LAB);
    let groups = client
        .list_endpoint("carbonite-usergroups", &[])
        .await
        .unwrap();
    assert_eq!(groups.len(), 3);
    let s = stats(&emu.base_url()).await;
    assert_eq!(count(&s, "GET /api/usergroups", "200"), 4);
    // Unknown endpoint: a setup error with the known names.
    let err = client.list_endpoint("nope", &[]).await.unwrap_err();
    assert!(err.hint().unwrap().contains("carbonite-users"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_accounts_merges_endpoints_by_key() {
    let (emu, _seed) = emulator(3, |_| {}).await;
    let by_email = "apiVersion: carbonite-sync/v1
kind: Endpoint
metadata: { name: first-user }
spec:
  path: /api/users
  query: { email: user1@corp.example }
  items: /Users
  id: /UserId
";
    let spec = ConfigSpec {
        extra: by_email,
        ..ConfigSpec::url(&emu.base_url())
    };
    let dir = config_dir(&spec);
    let client = connect(dir.path(), fast_options()).await;
    let accounts = client
        .list_accounts(
            &["carbonite-users".into(), "first-user".into()],
            "UserCustom1",
        )
        .await
        .unwrap();
    assert_eq!(accounts.len(), 3);
    assert_eq!(accounts[0].key.as_deref(), Some("E1"));
    assert_eq!(accounts[0].endpoints, ["carbonite-users", "first-user"]);
    assert_eq!(accounts[1].endpoints, ["carbonite-users"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_budget_is_a_typed_error_or_a_wait() {
    let (emu, _seed) = emulator(10, |_| {}).await;
    let spec = ConfigSpec {
        per_route: "2/2s",
        ..ConfigSpec::url(&emu.base_url())
    };
    let dir = config_dir(&spec);
    let client = connect(dir.path(), fast_options()).await;
    client.first_page("carbonite-users", &[]).await.unwrap();
    client.first_page("carbonite-users", &[]).await.unwrap();
    let err = client.first_page("carbonite-users", &[]).await.unwrap_err();
    assert!(matches!(err, ClientError::Budget { .. }), "{err:?}");
    assert_eq!(err.outcome(), Outcome::Stopped);
    assert!(
        err.to_string().starts_with(
            "list endpoint `carbonite-users`: no rate budget left for `GET /api/users` (2/2s per route); next budget at "
        ),
        "{err}"
    );
    let budget = client.ledger().budget("GET /api/users", false).unwrap();
    assert_eq!(budget.remaining, 0);
    // Allowed to wait: the call goes when the window frees.
    client.set_budget_deadline(Some(SystemTime::now() + Duration::from_secs(10)));
    let t0 = Instant::now();
    client.first_page("carbonite-users", &[]).await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    let s = stats(&emu.base_url()).await;
    assert_eq!(count(&s, "GET /api/users", "200"), 3);
    // The ledger file is private and never holds a secret.
    let ledger = std::fs::read_to_string(state_dir(dir.path()).join("ledger.json")).unwrap();
    assert!(!ledger.contains(ADMIN_SECRET));
    assert!(
        ledger.contains(&format!("{} {ADMIN_EMAIL}", emu.base_url())),
        "{ledger}"
    );
    assert_eq!(
        std::fs::read_to_string(state_dir(dir.path()).join(".gitignore")).unwrap(),
        "*\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_emulator_is_keyed_by_its_state_file() {
    let dir = config_dir(&ConfigSpec {
        target: "emulator: { seed: seed.json }".into(),
        auth: None,
        per_route: "50/1h",
        user_creates: "100/1h",
        extra: "",
    });
    std::fs::write(dir.path().join("seed.json"), seed_doc(3, None).to_string()).unwrap();
    let client = connect(dir.path(), fast_options()).await;
    assert_eq!(client.users().await.unwrap().len(), 3);
    let key = client.ledger().key().to_string();
    let state = std::fs::canonicalize(state_dir(dir.path())).unwrap();
    assert_eq!(
        key,
        format!(
            "emulator:{} carbonite-sync@emulator.invalid",
            state.join("emulator.json").display()
        )
    );
    client.close().await.unwrap();
    assert!(state.join("emulator.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_check_reports_a_verdict_per_check() {
    let (emu, _seed) = emulator(3, |_| {}).await;
    let dir = config_dir(&ConfigSpec::url(&emu.base_url()));
    let cfg = carbonite_sync::config::load(dir.path()).unwrap();
    let verdicts = online_check(&cfg, &state_dir(dir.path())).await;
    let names: Vec<_> = verdicts.iter().map(|v| (v.name.as_str(), v.ok)).collect();
    assert_eq!(
        names,
        [
            ("carbonite connection", true),
            ("carbonite token", true),
            ("carbonite endpoint carbonite-users", true)
        ]
    );
    assert_eq!(verdicts[2].detail, "3 items on the first page, 3 in total");

    // A wrong secret: the token check fails with the API's answer and a hint; nothing more.
    std::fs::write(dir.path().join("api-key.txt"), "wrong").unwrap();
    let verdicts = online_check(&cfg, &state_dir(dir.path())).await;
    assert_eq!(verdicts.len(), 2);
    assert!(!verdicts[1].ok);
    assert!(
        verdicts[1].detail.contains("Carbonite answered 401"),
        "{}",
        verdicts[1].detail
    );
    assert!(verdicts[1].detail.contains("hint: check carbonite.auth"));
    // A missing secret file: the connection check names it.
    std::fs::remove_file(dir.path().join("api-key.txt")).unwrap();
    let verdicts = online_check(&cfg, &state_dir(dir.path())).await;
    assert_eq!(verdicts.len(), 1);
    assert!(
        verdicts[0].detail.contains("api-key.txt"),
        "{}",
        verdicts[0].detail
    );
}
