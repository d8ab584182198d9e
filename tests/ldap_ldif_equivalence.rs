//! The same data as a slapd directory and as an LDIF file: the same filters select the same
//! entries (property-style, over a fixed set and generated filters, bitwise rules included),
//! and a snapshot of slapd reads back identically through the LDIF source.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use carbonite_sync::config::model::{Flavor, LdapSettings};
use carbonite_sync::config::secret::Secret;
use carbonite_sync::directory::dn::{Dn, Scope, normalize_case_ignore};
use carbonite_sync::directory::filter::{Filter, escape_value};
use carbonite_sync::directory::ldap::LdapSource;
use carbonite_sync::directory::ldif_source::LdifSource;
use carbonite_sync::directory::read::snapshot_attributes;
use carbonite_sync::directory::snapshot::{self, SnapshotHeader, SnapshotSpec};
use carbonite_sync::directory::{Entry, SearchRequest};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use support::slapd::{self, Slapd};
use support::{data, runtime};

const AD_DISABLED: &str = "(userAccountControl:1.2.840.113556.1.4.803:=2)";
const USERS: usize = 400;

fn ldap_source(server: &Slapd) -> LdapSource {
    let settings = LdapSettings {
        url: server.url(),
        start_tls: false,
        bind_dn: Some(slapd::SVC_DN.to_string()),
        password: None,
        base_dn: slapd::SUFFIX.to_string(),
        page_size: 100,
        timeout: std::time::Duration::from_secs(10),
        ca_file: None,
        insecure_skip_verify: false,
    };
    LdapSource::new(
        &settings,
        Some(Secret::new(slapd::SVC_PW)),
        Flavor::ActiveDirectory,
        Some(AD_DISABLED),
    )
    .unwrap()
}

/// Entries keyed by normalised DN, with the DN text dropped: the server prints DNs its own way
/// (`\2C` for `\,`), which is the same DN.
fn by_dn(entries: Vec<Entry>) -> std::collections::BTreeMap<String, Entry> {
    entries
        .into_iter()
        .map(|mut e| {
            let key = Dn::parse(&e.dn).unwrap().normalized();
            e.dn.clear();
            (key, e)
        })
        .collect()
}

struct Pair {
    server: Slapd,
    ldap: LdapSource,
    ldif: LdifSource,
    rt: tokio::runtime::Runtime,
}

impl Pair {
    fn new() -> Pair {
        let users = data::users(0..USERS, slapd::STAFF);
        let server = Slapd::start(&users);
        let text = format!("version: 1\n\n{}{users}", slapd::base_ldif());
        let ldif = LdifSource::from_bytes(
            text.as_bytes(),
            "same-data.ldif",
            slapd::SUFFIX,
            Flavor::ActiveDirectory,
            Some(AD_DISABLED),
        )
        .unwrap();
        let ldap = ldap_source(&server);
        Pair {
            server,
            ldap,
            ldif,
            rt: runtime(),
        }
    }

    /// Both sources' answers to one search; they must agree entry for entry.
    fn compare(&self, base: &str, scope: Scope, filter: &str) -> Result<usize, String> {
        let request = SearchRequest::new(base, scope, filter).with_attributes([
            "*",
            "objectGUID",
            "uSNChanged",
            "userAccountControl",
        ]);
        let from_ldap = self
            .rt
            .block_on(self.ldap.search_with_stats(&request))
            .map_err(|e| format!("slapd: {e}"))?
            .0;
        let from_ldif = self
            .ldif
            .search_now(&request)
            .map_err(|e| format!("ldif: {e}"))?;
        let (a, b) = (by_dn(from_ldap), by_dn(from_ldif));
        let only_ldap: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).take(3).collect();
        let only_ldif: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).take(3).collect();
        if !only_ldap.is_empty() || !only_ldif.is_empty() {
            return Err(format!(
                "{filter} at {base} ({scope:?}): slapd {} entries, LDIF {}; only slapd {only_ldap:?}; only LDIF {only_ldif:?}",
                a.len(),
                b.len()
            ));
        }
        for (dn, entry) in &a {
            if Some(entry) != b.get(dn) {
                return Err(format!(
                    "{filter}: entry {dn} differs:\nslapd {entry:?}\nLDIF  {:?}",
                    b.get(dn)
                ));
            }
        }
        Ok(a.len())
    }
}

#[test]
fn fixed_filters_select_the_same_entries_on_slapd_and_ldif() {
    let pair = Pair::new();
    let guid = Filter::equality("objectGUID", data::guid(42)).to_string();
    let filters = [
        "(objectClass=user)",
        "(&(objectClass=user)(employeeID=*))",
        "(userAccountControl:1.2.840.113556.1.4.803:=2)",
        "(!(userAccountControl:1.2.840.113556.1.4.803:=2))",
        "(userAccountControl:1.2.840.113556.1.4.803:=65538)",
        "(userAccountControl:1.2.840.113556.1.4.804:=34)",
        "(sn=åström)",
        "(sn=ÅSTRÖM)",
        "(givenName=zo*)",
        "(displayName=*brien)",
        "(department=research and development)",
        "(department=  Research and   Development )",
        "(department=finance)",
        "(department=*and*)",
        "(|(department=Sales)(title=Engineer))",
        "(!(department=Sales))",
        "(employeeID>=E01000)",
        "(employeeID<=E00100)",
        "(uSNChanged>=10300)",
        "(&(uSNChanged>=10100)(uSNChanged<=10120))",
        "(userAccountControl>=66000)",
        "(whenChanged>=20240601000000.0Z)",
        "(mail=USER1*@corp.example)",
        "(cn=lee\\2c ann*)",
        "(description=second 5)",
        "(description=FIRST)",
        "(objectClass=*)",
        "(&)",
        "(|)",
        "(sAMAccountName=u00001*)",
        "(userPrincipalName=*@CORP.EXAMPLE)",
        "(sn=O'Brien)",
        "(displayName=Zoë*Åström)",
        guid.as_str(),
    ];
    let mut matched = 0;
    for filter in filters {
        for (base, scope) in [
            (slapd::SUFFIX, Scope::Subtree),
            (slapd::STAFF, Scope::One),
            (slapd::STAFF, Scope::Base),
        ] {
            matched += pair.compare(base, scope, filter).unwrap();
        }
    }
    // A single user by its own DN, base scope.
    let dn = data::user_dn(5, slapd::STAFF);
    assert_eq!(
        pair.compare(&dn, Scope::Base, "(objectClass=*)").unwrap(),
        1
    );
    assert!(
        matched > 1000,
        "the fixed filters select something: {matched}"
    );
    drop(pair.server);
}

/// Leaves built from the data's own values, so generated filters select real subsets.
fn leaf() -> impl Strategy<Value = String> {
    let text_attr = prop::sample::select(vec![
        ("sn", data::SURNAMES.to_vec()),
        ("givenName", data::GIVEN_NAMES.to_vec()),
        ("department", data::DEPARTMENTS.to_vec()),
        ("title", vec!["Engineer", "engineer", "Boss"]),
        ("company", vec!["Corp", "CORP", "Other"]),
    ]);
    let equality = text_attr
        .clone()
        .prop_flat_map(|(attr, values)| (Just(attr), prop::sample::select(values)))
        .prop_map(|(attr, value)| Filter::equality(attr, value.as_bytes()).to_string());
    let substring = (
        text_attr.prop_flat_map(|(attr, values)| (Just(attr), prop::sample::select(values))),
        0usize..3,
        1usize..4,
    )
        .prop_map(|((attr, value), kind, len)| {
            let chars: Vec<char> = value.chars().collect();
            let len = len.min(chars.len());
            let part = escape_value(
                chars[..len]
                    .iter()
                    .collect::<String>()
                    .to_lowercase()
                    .as_bytes(),
            );
            let tail = escape_value(
                chars[chars.len() - len..]
                    .iter()
                    .collect::<String>()
                    .as_bytes(),
            );
            match kind {
                0 => format!("({attr}={part}*)"),
                1 => format!("({attr}=*{tail})"),
                _ => format!("({attr}=*{part}*)"),
            }
        });
    let presence = prop::sample::select(vec![
        "employeeID",
        "title",
        "department",
        "description",
        "manager",
        "cn",
    ])
    .prop_map(|a| format!("({a}=*)"));
    let ordering = (
        prop::sample::select(vec!["uSNChanged", "userAccountControl"]),
        any::<bool>(),
        prop::sample::select(vec![0u32, 514, 546, 10_050, 10_200, 10_399, 66_050, 70_000]),
    )
        .prop_map(|(attr, ge, v)| format!("({attr}{}{v})", if ge { ">=" } else { "<=" }));
    let id_ordering = (any::<bool>(), 0u32..100_000)
        .prop_map(|(ge, n)| format!("(employeeID{}E{n:05})", if ge { ">=" } else { "<=" }));
    let bitwise = (
        prop::sample::select(vec!["803", "804"]),
        prop::sample::select(vec![2u32, 32, 512, 514, 65_536, 65_538, 66_082]),
    )
        .prop_map(|(rule, mask)| format!("(userAccountControl:1.2.840.113556.1.4.{rule}:={mask})"));
    prop_oneof![
        equality,
        substring,
        presence,
        ordering,
        id_ordering,
        bitwise
    ]
}

fn filter() -> impl Strategy<Value = String> {
    leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| format!("(&{})", v.concat())),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| format!("(|{})", v.concat())),
            inner.prop_map(|f| format!("(!{f})")),
        ]
    })
}

#[test]
fn generated_filters_select_the_same_entries_on_slapd_and_ldif() {
    let pair = Pair::new();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let (selected, nonempty) = (AtomicUsize::new(0), AtomicUsize::new(0));
    runner
        .run(&filter(), |f| {
            let n = pair
                .compare(slapd::SUFFIX, Scope::Subtree, &f)
                .map_err(TestCaseError::fail)?;
            selected.fetch_add(n, Ordering::Relaxed);
            nonempty.fetch_add(usize::from(n > 0), Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    // The generated filters are not all trivially empty.
    assert!(nonempty.into_inner() > 48, "most filters select something");
    assert!(selected.into_inner() > 96 * 50);
}

/// RFC 4514 escaping of an attribute value for a DN.
fn escape_rdn(value: &str) -> String {
    let mut out = String::new();
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i == last && c == ' ');
        if c == '\0' {
            out.push_str("\\00");
        } else {
            if special {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

#[derive(Debug, Clone)]
struct GeneratedUser {
    cn: String,
    sn: String,
    descriptions: Vec<String>,
    guid: [u8; 16],
    sid_subs: Vec<u32>,
    uac: u32,
    employee_id: Option<String>,
}

fn generated_user() -> impl Strategy<Value = GeneratedUser> {
    (
        "[a-zA-Z0-9 ,+\"\\\\<>;=#éü€]{1,12}",
        "[a-zA-Z :<éÅ€😀]{0,8}[a-zA-Z]",
        prop::collection::vec("[ -~äöüß€\t\n😀:<]{1,24}", 0..4),
        any::<[u8; 16]>(),
        prop::collection::vec(any::<u32>(), 1..6),
        prop::sample::select(data::UAC.to_vec()),
        prop::option::of("[A-Z][0-9]{1,6}"),
    )
        .prop_map(
            |(cn, sn, descriptions, guid, sid_subs, uac, employee_id)| GeneratedUser {
                cn,
                sn,
                descriptions,
                guid,
                sid_subs,
                uac,
                employee_id,
            },
        )
}

fn user_ldif(u: &GeneratedUser, parent: &str) -> String {
    let mut e = data::line(
        "dn",
        format!("cn={},{parent}", escape_rdn(&u.cn)).as_bytes(),
    );
    for class in ["top", "person", "organizationalPerson", "user"] {
        e.push_str(&data::line("objectClass", class.as_bytes()));
    }
    e.push_str(&data::line("cn", u.cn.as_bytes()));
    e.push_str(&data::line("sn", u.sn.as_bytes()));
    let mut seen = BTreeSet::new();
    for d in &u.descriptions {
        // The server refuses values equal under caseIgnoreMatch, and values of only spaces.
        if !d.trim().is_empty() && seen.insert(normalize_case_ignore(d)) {
            e.push_str(&data::line("description", d.as_bytes()));
        }
    }
    e.push_str(&data::line("objectGUID", &u.guid));
    let mut sid = vec![1u8, u.sid_subs.len() as u8, 0, 0, 0, 0, 0, 5];
    for s in &u.sid_subs {
        sid.extend_from_slice(&s.to_le_bytes());
    }
    e.push_str(&data::line("objectSid", &sid));
    e.push_str(&data::line(
        "userAccountControl",
        u.uac.to_string().as_bytes(),
    ));
    if let Some(id) = &u.employee_id {
        e.push_str(&data::line("employeeID", id.as_bytes()));
    }
    e.push('\n');
    e
}

#[test]
fn a_snapshot_of_slapd_reads_back_identically_through_the_ldif_source() {
    let server = Slapd::start("");
    let ldap = ldap_source(&server);
    let rt = runtime();
    let case = std::sync::atomic::AtomicU32::new(0);
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let users = prop::collection::vec(generated_user(), 1..12);
    runner
        .run(&users, |users| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let ou = format!("ou=case{case},{}", slapd::SUFFIX);
            let mut ldif = format!("dn: {ou}\nobjectClass: organizationalUnit\nou: case{case}\n\n");
            let mut names = BTreeSet::new();
            let mut added = 0;
            for u in &users {
                // One entry per RDN: the server compares them as caseIgnoreMatch.
                if names.insert(normalize_case_ignore(&u.cn)) {
                    ldif.push_str(&user_ldif(u, &ou));
                    added += 1;
                }
            }
            server.ldapadd(&ldif);
            let spec = SnapshotSpec {
                bases: vec![ou.clone()],
                filter: "(objectClass=user)".into(),
                attributes: snapshot_attributes(Flavor::ActiveDirectory, Some(AD_DISABLED), None),
            };
            let from_ldap = rt
                .block_on(snapshot::take(&ldap, &spec))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(from_ldap.len(), added);
            let header = SnapshotHeader {
                source: server.url(),
                taken_at: "2024-01-01T00:00:00Z".into(),
                version: "test".into(),
            };
            let text = snapshot::render(&spec, &header, &from_ldap);
            let ldif = LdifSource::from_bytes(
                text.as_bytes(),
                "snapshot.ldif",
                slapd::SUFFIX,
                Flavor::ActiveDirectory,
                Some(AD_DISABLED),
            )
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            let back = rt
                .block_on(snapshot::take(&ldif, &spec))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&back, &from_ldap, "{}", text);
            Ok(())
        })
        .unwrap();
}
