//! The LDAP source against a real OpenLDAP slapd: complete reads, every failure mode an error
//! naming server, base and filter, TLS, flavors, and RFC 4515 escaping.

mod support;

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use carbonite_sync::config::model::{Flavor, LdapSettings};
use carbonite_sync::config::secret::Secret;
use carbonite_sync::directory::dn::{Dn, Scope};
use carbonite_sync::directory::filter::Filter;
use carbonite_sync::directory::ldap::LdapSource;
use carbonite_sync::directory::{AttrValue, DirectoryError, Entry, Failure, SearchRequest};
use carbonite_sync::template::filters::guid_from_bytes;
use support::slapd::{self, Slapd};
use support::{data, fixture, runtime};

const USERS: &str = "(objectClass=user)";

fn settings(url: &str, bind: Option<&str>) -> LdapSettings {
    LdapSettings {
        url: url.to_string(),
        start_tls: false,
        bind_dn: bind.map(str::to_string),
        password: None,
        base_dn: slapd::SUFFIX.to_string(),
        page_size: 1000,
        timeout: Duration::from_secs(10),
        ca_file: None,
        insecure_skip_verify: false,
    }
}

fn source_with(settings: &LdapSettings, password: &str, flavor: Flavor) -> LdapSource {
    LdapSource::new(
        settings,
        Some(Secret::new(password)),
        flavor,
        flavor.default_disabled_filter(),
    )
    .expect("source")
}

fn svc(server: &Slapd, flavor: Flavor) -> LdapSource {
    source_with(
        &settings(&server.url(), Some(slapd::SVC_DN)),
        slapd::SVC_PW,
        flavor,
    )
}

fn request(base: &str, filter: &str) -> SearchRequest {
    SearchRequest::new(base, Scope::Subtree, filter).with_attributes([
        "*",
        "objectGUID",
        "uSNChanged",
        "userAccountControl",
    ])
}

fn read(source: &LdapSource, request: &SearchRequest) -> Result<Vec<Entry>, DirectoryError> {
    runtime()
        .block_on(source.search_with_stats(request))
        .map(|(entries, _)| entries)
}

fn normalized(dn: &str) -> String {
    Dn::parse(dn).expect("valid DN").normalized()
}

/// Set equality that shows only a few differences.
fn assert_same(got: &BTreeSet<String>, want: &BTreeSet<String>, what: &str) {
    let missing: Vec<_> = want.difference(got).take(5).collect();
    let extra: Vec<_> = got.difference(want).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} got, {} wanted; missing {missing:?}; unexpected {extra:?}",
        got.len(),
        want.len()
    );
}

/// The error must name the server, the base and the filter, and carry a hint.
fn assert_names_request(e: &DirectoryError, url: &str, request: &SearchRequest) {
    let text = e.to_string();
    assert!(text.contains(url), "{text}");
    assert!(text.contains(&request.base), "{text}");
    assert!(text.contains(&request.filter), "{text}");
    assert!(e.hint.is_some(), "no hint: {text}");
}

#[test]
fn ten_thousand_users_are_read_completely_with_anchor_and_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("users.ldif");
    std::fs::write(&seed, data::users(0..10_000, slapd::STAFF)).unwrap();
    let server = Slapd::start_with_files(&[seed]);
    let source = svc(&server, Flavor::ActiveDirectory);
    let req = request(slapd::STAFF, USERS);
    let (entries, stats) = runtime().block_on(source.search_with_stats(&req)).unwrap();
    assert_eq!(entries.len(), 10_000);
    assert_eq!(stats.pages, 10, "1000 per page");
    let dns: BTreeSet<String> = entries.iter().map(|e| normalized(&e.dn)).collect();
    let expected: BTreeSet<String> = (0..10_000)
        .map(|i| normalized(&data::user_dn(i, slapd::STAFF)))
        .collect();
    assert_same(&dns, &expected, "every user, each once");
    for entry in &entries {
        let sam = entry.first_text("sAMAccountName").unwrap();
        let i: usize = sam[1..].parse().unwrap();
        assert_eq!(entry.anchor, guid_from_bytes(&data::guid(i)));
        let uac = data::UAC[(i / 2) % data::UAC.len()];
        assert_eq!(entry.disabled, uac & 2 != 0, "{}", entry.dn);
        assert!(matches!(
            entry.first("objectSid"),
            Some(AttrValue::Binary(_))
        ));
        assert_eq!(entry.get("objectClass").unwrap().values.len(), 4);
    }
    // Pages smaller than the result and a non-dividing size: still complete.
    let mut small = settings(&server.url(), Some(slapd::SVC_DN));
    small.page_size = 333;
    let source = source_with(&small, slapd::SVC_PW, Flavor::ActiveDirectory);
    let req = request(slapd::STAFF, "(employeeID=E0*)");
    let (entries, stats) = runtime().block_on(source.search_with_stats(&req)).unwrap();
    let expected = (0..10_000)
        .filter(|i: &usize| {
            !i.is_multiple_of(13) && format!("E{:05}", i * 7 % 100_000).starts_with("E0")
        })
        .count();
    assert_eq!(entries.len(), expected);
    assert_eq!(stats.pages as usize, expected / 333 + 1);
}

#[test]
fn a_size_limit_is_an_error_not_a_short_list() {
    let server = Slapd::start(&data::users(0..600, slapd::STAFF));
    let url = server.url();
    let limited = source_with(
        &settings(&url, Some(slapd::LIMITED_DN)),
        slapd::LIMITED_PW,
        Flavor::ActiveDirectory,
    );
    let req = request(slapd::STAFF, USERS);
    let e = read(&limited, &req).unwrap_err();
    assert_eq!(e.failure, Failure::SizeLimit, "{e}");
    assert!(e.message.contains("size limit"), "{e}");
    assert!(e.hint.as_deref().unwrap().contains("size limit"), "{e:?}");
    assert_names_request(&e, &url, &req);
    // The same search by the unlimited account is complete.
    assert_eq!(
        read(&svc(&server, Flavor::ActiveDirectory), &req)
            .unwrap()
            .len(),
        600
    );
}

#[test]
fn wrong_password_is_a_bind_error_that_never_shows_the_password() {
    let server = Slapd::start("");
    let url = server.url();
    let wrong = "Wrong-Pa55word!";
    let source = source_with(&settings(&url, Some(slapd::SVC_DN)), wrong, Flavor::Generic);
    let req = request(slapd::SUFFIX, USERS);
    let e = read(&source, &req).unwrap_err();
    assert_eq!(e.failure, Failure::Bind, "{e}");
    assert!(e.message.contains("invalid credentials"), "{e}");
    assert!(e.hint.as_deref().unwrap().contains("bindDn"), "{e:?}");
    assert_names_request(&e, &url, &req);
    assert!(!format!("{e} {e:?}").contains(wrong), "password leaked");
    assert!(!format!("{source:?}").contains(wrong), "password leaked");
}

#[test]
fn unreachable_and_unresponsive_servers_are_errors() {
    // Nothing listens on a port we just freed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ldap://127.0.0.1:{port}");
    let req = request(slapd::SUFFIX, USERS);
    let e = read(
        &source_with(&settings(&url, None), "", Flavor::Generic),
        &req,
    )
    .unwrap_err();
    assert_eq!(e.failure, Failure::Connect, "{e}");
    assert_names_request(&e, &url, &req);

    let url = "ldap://no-such-host.invalid:389";
    let e = read(
        &source_with(&settings(url, None), "", Flavor::Generic),
        &req,
    )
    .unwrap_err();
    assert_eq!(e.failure, Failure::Connect, "{e}");
    assert_names_request(&e, url, &req);

    // A server that accepts and never answers: the operation timeout fires.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ldap://{}", silent.local_addr().unwrap());
    let keep = std::thread::spawn(move || {
        let (conn, _) = silent.accept().unwrap();
        std::thread::sleep(Duration::from_secs(3));
        drop(conn);
    });
    let mut s = settings(&url, Some("cn=x"));
    s.timeout = Duration::from_millis(500);
    let e = read(&source_with(&s, "pw", Flavor::Generic), &req).unwrap_err();
    assert_eq!(e.failure, Failure::Timeout, "{e}");
    assert!(e.message.contains("500ms"), "{e}");
    assert_names_request(&e, &url, &req);
    keep.join().unwrap();
}

#[test]
fn tls_ldaps_and_starttls_with_a_ca_file_and_failures_without() {
    let server = Slapd::start(&data::users(0..5, slapd::STAFF));
    let req = request(slapd::STAFF, USERS);
    let ca = fixture("tls/ca.pem");

    let mut ldaps = settings(&server.ldaps_url(), Some(slapd::SVC_DN));
    ldaps.ca_file = Some(ca.clone());
    assert_eq!(
        read(&source_with(&ldaps, slapd::SVC_PW, Flavor::Generic), &req)
            .unwrap()
            .len(),
        5
    );

    let mut starttls = settings(&server.url(), Some(slapd::SVC_DN));
    starttls.start_tls = true;
    starttls.ca_file = Some(ca.clone());
    assert_eq!(
        read(
            &source_with(&starttls, slapd::SVC_PW, Flavor::Generic),
            &req
        )
        .unwrap()
        .len(),
        5
    );

    // The system store does not know the test CA.
    let mut no_ca = ldaps.clone();
    no_ca.ca_file = None;
    let e = read(&source_with(&no_ca, slapd::SVC_PW, Flavor::Generic), &req).unwrap_err();
    assert_eq!(e.failure, Failure::Tls, "{e}");
    assert!(e.hint.as_deref().unwrap().contains("tls.caFile"), "{e:?}");
    assert_names_request(&e, &server.ldaps_url(), &req);

    // StartTLS with the wrong CA.
    let mut wrong_ca = starttls.clone();
    wrong_ca.ca_file = Some(fixture("tls/other-ca.pem"));
    let e = read(
        &source_with(&wrong_ca, slapd::SVC_PW, Flavor::Generic),
        &req,
    )
    .unwrap_err();
    assert_eq!(e.failure, Failure::Tls, "{e}");
    assert!(e.hint.as_deref().unwrap().contains("tls.caFile"), "{e:?}");

    // ldaps:// to the plain port.
    let mut plain_port = ldaps.clone();
    plain_port.url = format!("ldaps://127.0.0.1:{}", server.port);
    let e = read(
        &source_with(&plain_port, slapd::SVC_PW, Flavor::Generic),
        &req,
    )
    .unwrap_err();
    assert_eq!(e.failure, Failure::Tls, "{e}");

    // A CA file that is not PEM fails before connecting.
    let mut bad = ldaps.clone();
    bad.ca_file = Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
    let e = LdapSource::new(&bad, None, Flavor::Generic, None).unwrap_err();
    assert_eq!(e.failure, Failure::Tls, "{e}");
    assert!(e.message.contains("Cargo.toml"), "{e}");

    // insecureSkipVerify accepts the unknown CA.
    let mut insecure = no_ca.clone();
    insecure.insecure_skip_verify = true;
    assert_eq!(
        read(
            &source_with(&insecure, slapd::SVC_PW, Flavor::Generic),
            &req
        )
        .unwrap()
        .len(),
        5
    );
}

#[test]
fn bad_base_dn_and_referrals_are_errors() {
    let server = Slapd::start("");
    let url = server.url();
    let source = svc(&server, Flavor::Generic);
    let req = request("ou=nope,dc=corp,dc=example", USERS);
    let e = read(&source, &req).unwrap_err();
    assert_eq!(e.failure, Failure::NoSuchBase, "{e}");
    assert!(
        e.message.contains("dc=corp,dc=example"),
        "names the closest entry: {e}"
    );
    assert_names_request(&e, &url, &req);

    // A base outside every naming context: slapd refers to its default referral.
    let req = request("dc=elsewhere,dc=example", USERS);
    let e = read(&source, &req).unwrap_err();
    assert_eq!(e.failure, Failure::Referral, "{e}");
    assert!(e.message.contains("ldap://referral.example"), "{e}");
    assert_names_request(&e, &url, &req);

    // A filter that does not parse is refused before anything is sent.
    let req = request(slapd::SUFFIX, "(cn=a");
    let e = read(&source, &req).unwrap_err();
    assert_eq!(e.failure, Failure::InvalidRequest, "{e}");
}

/// A TCP proxy that forwards a connection to `target` and cuts it after the server has sent
/// `budget` bytes.
fn cutting_proxy(target: u16, budget: usize) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (client, _) = listener.accept().unwrap();
        let server = TcpStream::connect(("127.0.0.1", target)).unwrap();
        let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let up = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = c_read.read(&mut buf) {
                if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let (mut s_read, mut c_write) = (server, client);
        let mut sent = 0;
        let mut buf = [0u8; 8192];
        while sent < budget {
            match s_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let n = n.min(budget - sent);
                    if c_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                }
            }
        }
        let _ = c_write.shutdown(std::net::Shutdown::Both);
        let _ = s_read.shutdown(std::net::Shutdown::Both);
        let _ = up.join();
    });
    (port, handle)
}

#[test]
fn a_dropped_connection_mid_read_is_an_error() {
    let server = Slapd::start(&data::users(0..3000, slapd::STAFF));
    let (port, proxy) = cutting_proxy(server.port, 400_000);
    let url = format!("ldap://127.0.0.1:{port}");
    let source = source_with(
        &settings(&url, Some(slapd::SVC_DN)),
        slapd::SVC_PW,
        Flavor::ActiveDirectory,
    );
    let req = request(slapd::STAFF, USERS);
    let e = read(&source, &req).unwrap_err();
    assert_eq!(e.failure, Failure::ConnectionLost, "{e}");
    assert_names_request(&e, &url, &req);
    proxy.join().unwrap();
}

#[test]
fn values_put_into_filters_are_escaped_and_match_exactly() {
    let tricky = "Star*(Paren)\\Back";
    let ldif = format!(
        "dn: cn=tricky,{staff}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\ncn: tricky\nsn: {tricky}\n\n\
         dn: cn=plain,{staff}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\ncn: plain\nsn: Star\n\n{users}",
        staff = slapd::STAFF,
        users = data::users(0..20, slapd::STAFF),
    );
    let server = Slapd::start(&ldif);
    let source = svc(&server, Flavor::Generic);
    let filter = Filter::equality("sn", tricky.as_bytes()).to_string();
    let found = read(&source, &request(slapd::STAFF, &filter)).unwrap();
    assert_eq!(found.len(), 1, "{filter}");
    assert_eq!(found[0].first_text("sn"), Some(tricky));
    // Binary values: an objectGUID full of filter metacharacters.
    let ad = svc(&server, Flavor::ActiveDirectory);
    for i in [0usize, 7, 19] {
        let filter = Filter::equality("objectGUID", data::guid(i)).to_string();
        let found = read(&ad, &request(slapd::STAFF, &filter)).unwrap();
        assert_eq!(found.len(), 1, "{filter}");
        assert_eq!(found[0].anchor, guid_from_bytes(&data::guid(i)));
    }
}

#[test]
fn flavors_give_their_anchors_and_disabled_flags() {
    let ldif = format!(
        "{}dn: cn=locked,{staff}\nobjectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: user\ncn: locked\nsn: Locked\npwdAccountLockedTime: 20240101000000Z\n\n",
        data::users(0..4, slapd::STAFF),
        staff = slapd::STAFF
    );
    let server = Slapd::start(&ldif);
    let req = SearchRequest::new(slapd::STAFF, Scope::One, USERS);

    let openldap = svc(&server, Flavor::Openldap);
    let entries = read(
        &openldap,
        &req.clone()
            .with_attributes(["cn", "entryUUID", "entryCSN", "pwdAccountLockedTime"]),
    )
    .unwrap();
    assert_eq!(entries.len(), 5);
    for e in &entries {
        let uuid = e.first_text("entryUUID").unwrap();
        assert_eq!(e.anchor, uuid.to_ascii_lowercase());
        assert_eq!(e.disabled, e.first_text("cn") == Some("locked"), "{}", e.dn);
        assert!(e.first_text("entryCSN").is_some());
    }
    // Without its anchor attribute an entry is an error (the bind account cannot see it).
    let e = read(&openldap, &req.clone().with_attributes(["cn"])).unwrap_err();
    assert_eq!(e.failure, Failure::InvalidEntry, "{e}");
    assert!(e.message.contains("entryUUID"), "{e}");

    let generic = svc(&server, Flavor::Generic);
    let entries = read(&generic, &req.clone().with_attributes(["cn"])).unwrap();
    for e in &entries {
        assert_eq!(e.anchor, e.dn.to_ascii_lowercase());
        assert!(
            !e.disabled,
            "generic: never disabled without disabledFilter"
        );
    }

    // AD: disabledFilter evaluated client-side on the returned userAccountControl.
    let ad = svc(&server, Flavor::ActiveDirectory);
    let entries = read(
        &ad,
        &SearchRequest::new(slapd::STAFF, Scope::One, "(sAMAccountName=*)")
            .with_attributes(["objectGUID", "userAccountControl"]),
    )
    .unwrap();
    assert_eq!(entries.len(), 4);
    for e in &entries {
        let uac: u32 = e.first_text("userAccountControl").unwrap().parse().unwrap();
        assert_eq!(e.disabled, uac & 2 != 0);
    }
}
