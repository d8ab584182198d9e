//! The LDAP source against a real Samba AD DC: AD's identities (objectGUID, objectSid) as
//! AD prints them, userAccountControl semantics, AD time formats in templates, continuation
//! references skipped, LDAPS. Samba's ports are fixed: the tests take turns (support::samba).

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use carbonite_sync::config::model::{Flavor, LdapSettings};
use carbonite_sync::config::secret::Secret;
use carbonite_sync::directory::dn::Scope;
use carbonite_sync::directory::ldap::LdapSource;
use carbonite_sync::directory::{Entry, Failure, SearchRequest};
use carbonite_sync::template::{
    EngineSettings, LookupIndex, LookupTables, RenderContext, TemplateEngine, Usage,
};
use support::samba::{self, Samba};
use support::{data, runtime};

fn settings(url: &str) -> LdapSettings {
    LdapSettings {
        url: url.to_string(),
        start_tls: false,
        bind_dn: Some(samba::ADMIN.to_string()),
        password: None,
        base_dn: samba::DOMAIN_DN.to_string(),
        page_size: 50,
        timeout: Duration::from_secs(20),
        ca_file: None,
        insecure_skip_verify: false,
    }
}

fn ad_source(settings: &LdapSettings) -> LdapSource {
    LdapSource::new(
        settings,
        Some(Secret::new(samba::ADMIN_PW)),
        Flavor::ActiveDirectory,
        Flavor::ActiveDirectory.default_disabled_filter(),
    )
    .unwrap()
}

/// `count` users `t<uac>-<n>` cycling through the userAccountControl values.
fn users_ldif(uacs: &[u32], count: usize) -> String {
    let mut out = String::new();
    for n in 0..count {
        let uac = uacs[n % uacs.len()];
        let name = format!("t{uac}-{n}");
        out.push_str(&format!(
            "dn: CN={name},{users}\nobjectClass: user\nsAMAccountName: {name}\nuserAccountControl: {uac}\nemployeeID: E{n:04}\nmail: {name}@ad.example.test\n{given}accountExpires: 132223104000000000\n\n",
            users = samba::USERS_DN,
            given = data::line("givenName", data::GIVEN_NAMES[n % data::GIVEN_NAMES.len()].as_bytes()),
        ));
    }
    out
}

fn render(entry: &Entry, template: &str) -> String {
    let mut engine = TemplateEngine::new(EngineSettings::default()).unwrap();
    let t = engine.compile(template, Usage::Attribute).unwrap();
    let ctx = RenderContext::new(Arc::new(LookupIndex::new(&LookupTables::default())))
        .with_entry(Arc::new(entry.clone()));
    engine.render(&t, &ctx).unwrap()
}

/// `name: value` lines of `samba-tool user show` (it prints objectGUID and objectSid in AD's
/// string forms).
fn show(server: &Samba, user: &str) -> BTreeMap<String, String> {
    server
        .samba_tool(&["user", "show", user])
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn guid_sid_and_ad_times_render_as_ad_prints_them() {
    let server = Samba::start();
    server.ldapadd(&users_ldif(&[514, 544], 6));
    let source = ad_source(&settings(samba::LDAP_URL));
    let request = SearchRequest::new(samba::USERS_DN, Scope::One, "(sAMAccountName=t*)")
        .with_attributes([
            "sAMAccountName",
            "objectGUID",
            "objectSid",
            "whenChanged",
            "accountExpires",
            "pwdLastSet",
            "userAccountControl",
            "uSNChanged",
        ]);
    let (entries, _) = runtime()
        .block_on(source.search_with_stats(&request))
        .unwrap();
    assert_eq!(entries.len(), 6);
    for entry in &entries {
        let name = entry.first_text("sAMAccountName").unwrap();
        let ad = show(&server, name);
        assert_eq!(
            render(entry, "{{ objectGUID | guid }}"),
            ad["objectGUID"],
            "{name}"
        );
        assert_eq!(
            entry.anchor, ad["objectGUID"],
            "the anchor is the guid form"
        );
        assert_eq!(
            render(entry, "{{ objectSid | sid }}"),
            ad["objectSid"],
            "{name}"
        );
        assert!(ad["objectSid"].starts_with("S-1-5-21-"));
        // GeneralizedTime and FILETIME values are usable by templates.
        let changed = render(entry, "{{ whenChanged | gentime }}");
        assert!(
            changed.len() == 20 && changed.ends_with('Z') && changed.contains('T'),
            "{changed}"
        );
        assert_eq!(
            render(entry, "{{ accountExpires | filetime }}"),
            "2020-01-01T00:00:00Z"
        );
        assert_eq!(
            render(entry, "{{ pwdLastSet | filetime or 'never' }}"),
            "never",
            "0 means never"
        );
        assert!(
            render(entry, "{{ uSNChanged | int }}")
                .parse::<u64>()
                .unwrap()
                > 0
        );
    }
}

#[test]
fn user_account_control_variants_and_referrals_at_the_domain_root() {
    let server = Samba::start();
    let disabled = [514u32, 546, 66050, 66082];
    let enabled = [512u32, 544, 66048];
    let all: Vec<u32> = disabled.iter().chain(&enabled).copied().collect();
    server.ldapadd(&users_ldif(&all, 28));
    let source = ad_source(&settings(samba::LDAP_URL));

    // The domain root: paged (50 per page), with continuation references to the
    // Configuration and DNS partitions, which are skipped.
    let request = SearchRequest::new(samba::DOMAIN_DN, Scope::Subtree, "(objectClass=user)")
        .with_attributes(["sAMAccountName", "objectGUID", "userAccountControl"]);
    let (entries, stats) = runtime()
        .block_on(source.search_with_stats(&request))
        .unwrap();
    assert!(stats.references_skipped >= 1, "{stats:?}");
    let ours: Vec<&Entry> = entries
        .iter()
        .filter(|e| {
            e.first_text("sAMAccountName")
                .is_some_and(|n| n.starts_with('t'))
        })
        .collect();
    assert_eq!(ours.len(), 28, "every user, despite the references");
    assert!(
        entries
            .iter()
            .any(|e| e.first_text("sAMAccountName") == Some("Administrator"))
    );
    for entry in &ours {
        let uac: u32 = entry
            .first_text("userAccountControl")
            .unwrap()
            .parse()
            .unwrap();
        assert!(all.contains(&uac), "Samba kept the value {uac}");
        assert_eq!(
            entry.disabled,
            disabled.contains(&uac),
            "{}: {uac}",
            entry.dn
        );
    }
    // AD's own bitwise evaluation agrees with the client-side disabledFilter.
    let request = SearchRequest::new(
        samba::USERS_DN,
        Scope::One,
        "(&(sAMAccountName=t*)(userAccountControl:1.2.840.113556.1.4.803:=2))",
    )
    .with_attributes(["objectGUID", "userAccountControl"]);
    let (server_disabled, _) = runtime()
        .block_on(source.search_with_stats(&request))
        .unwrap();
    assert_eq!(server_disabled.len(), 16);
    assert!(server_disabled.iter().all(|e| e.disabled));

    // A page size above the server's MaxPageSize still reads everything (the server pages).
    let mut big = settings(samba::LDAP_URL);
    big.page_size = 5000;
    let (entries, _) = runtime()
        .block_on(
            ad_source(&big).search_with_stats(
                &SearchRequest::new(samba::USERS_DN, Scope::One, "(sAMAccountName=t*)")
                    .with_attributes(["objectGUID"]),
            ),
        )
        .unwrap();
    assert_eq!(entries.len(), 28);
}

#[test]
fn ldaps_to_samba_names_the_certificate_problem() {
    let server = Samba::start();
    let request = SearchRequest::new(samba::USERS_DN, Scope::One, "(objectClass=user)")
        .with_attributes(["objectGUID"]);
    // Samba's certificate is issued by its own CA to DC1.ad.example.test, not 127.0.0.1.
    let mut with_ca = settings(samba::LDAPS_URL);
    with_ca.ca_file = Some(server.ca_file());
    let e = runtime()
        .block_on(ad_source(&with_ca).search_with_stats(&request))
        .unwrap_err();
    assert_eq!(e.failure, Failure::Tls, "{e}");
    assert!(e.hint.as_deref().unwrap().contains("name"), "{e:?}");

    let mut insecure = settings(samba::LDAPS_URL);
    insecure.insecure_skip_verify = true;
    let (entries, _) = runtime()
        .block_on(ad_source(&insecure).search_with_stats(&request))
        .unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.dn.starts_with("CN=Administrator,"))
    );

    // Wrong password against AD: the bind error, with AD's diagnostic, never the password.
    let source = LdapSource::new(
        &settings(samba::LDAP_URL),
        Some(Secret::new("not-the-Passw0rd")),
        Flavor::ActiveDirectory,
        None,
    )
    .unwrap();
    let e = runtime()
        .block_on(source.search_with_stats(&request))
        .unwrap_err();
    assert_eq!(e.failure, Failure::Bind, "{e}");
    assert!(!e.to_string().contains("not-the-Passw0rd"));
}
