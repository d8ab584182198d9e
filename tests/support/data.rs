//! Generated AD-style users, as LDIF both slapd (`slapadd`) and the LDIF source read. Written
//! with plain `format!` rather than the crate's LDIF writer, so the server is the independent
//! judge of what the file says.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

pub const SURNAMES: &[&str] = &[
    "Lee", "Ek", "Åström", "O'Brien", "Smith", "Müller", "Nguyen", "García",
];
pub const GIVEN_NAMES: &[&str] = &["Ann", "Bo", "Zoë", "Émile", "Chris", "Dana", "Li"];
pub const DEPARTMENTS: &[&str] = &["Sales", "Research  and Development", "IT", "Finance "];
/// userAccountControl values: 512 normal, +2 disabled, +32 no password needed, +65536 password
/// never expires.
pub const UAC: &[u32] = &[512, 514, 544, 546, 66048, 66050, 66080, 66082];

/// One `name: value` line, base64 (`::`) when RFC 2849 requires it.
pub fn line(name: &str, value: &[u8]) -> String {
    let safe = !value.is_empty()
        && value
            .iter()
            .all(|b| b.is_ascii() && !matches!(b, b'\0' | b'\n' | b'\r'))
        && !matches!(value[0], b' ' | b':' | b'<')
        && value.last() != Some(&b' ');
    if value.is_empty() {
        format!("{name}:\n")
    } else if safe {
        format!("{name}: {}\n", String::from_utf8_lossy(value))
    } else {
        format!("{name}:: {}\n", STANDARD.encode(value))
    }
}

/// A deterministic objectGUID for user `i`.
pub fn guid(i: usize) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[..8].copy_from_slice(&(i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    g[8..].copy_from_slice(&(i as u64 ^ 0xA5A5_0000_5A5A_FFFF).to_be_bytes());
    g
}

/// A binary SID S-1-5-21-1111-2222-3333-(1000+i).
pub fn sid(i: usize) -> Vec<u8> {
    let mut s = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
    for sub in [21u32, 1111, 2222, 3333, 1000 + i as u32] {
        s.extend_from_slice(&sub.to_le_bytes());
    }
    s
}

/// The RDN value of user `i` (some carry a comma, escaped in the DN).
pub fn common_name(i: usize) -> String {
    if i % 97 == 5 {
        format!("Lee, Ann {i:06}")
    } else {
        format!("User {i:06}")
    }
}

/// The DN of user `i` under `parent`.
pub fn user_dn(i: usize, parent: &str) -> String {
    format!("cn={},{parent}", common_name(i).replace(',', "\\,"))
}

/// LDIF of user `i` under `parent`: an AD-like `user` entry with varied attributes.
pub fn user(i: usize, parent: &str) -> String {
    let mut e = String::with_capacity(700);
    e.push_str(&line("dn", user_dn(i, parent).as_bytes()));
    for class in ["top", "person", "organizationalPerson", "user"] {
        e.push_str(&line("objectClass", class.as_bytes()));
    }
    let sn = SURNAMES[i % SURNAMES.len()];
    let given = GIVEN_NAMES[(i / 3) % GIVEN_NAMES.len()];
    e.push_str(&line("cn", common_name(i).as_bytes()));
    e.push_str(&line("sn", sn.as_bytes()));
    e.push_str(&line("givenName", given.as_bytes()));
    e.push_str(&line("displayName", format!("{given} {sn}").as_bytes()));
    e.push_str(&line("sAMAccountName", format!("u{i:06}").as_bytes()));
    e.push_str(&line(
        "userPrincipalName",
        format!("u{i:06}@corp.example").as_bytes(),
    ));
    e.push_str(&line("mail", format!("user{i}@corp.example").as_bytes()));
    if !i.is_multiple_of(13) {
        e.push_str(&line(
            "employeeID",
            format!("E{:05}", i * 7 % 100_000).as_bytes(),
        ));
    }
    e.push_str(&line(
        "userAccountControl",
        UAC[(i / 2) % UAC.len()].to_string().as_bytes(),
    ));
    if !i.is_multiple_of(11) {
        e.push_str(&line(
            "department",
            DEPARTMENTS[i % DEPARTMENTS.len()].as_bytes(),
        ));
    }
    if i.is_multiple_of(3) {
        e.push_str(&line("title", b"Engineer"));
    }
    if i.is_multiple_of(5) {
        e.push_str(&line("description", b"first"));
        e.push_str(&line("description", format!("second {i}").as_bytes()));
    }
    e.push_str(&line("company", b"Corp"));
    e.push_str(&line("objectGUID", &guid(i)));
    e.push_str(&line("objectSid", &sid(i)));
    e.push_str(&line("uSNChanged", (10_000 + i).to_string().as_bytes()));
    e.push_str(&line(
        "whenChanged",
        format!("2024{:02}{:02}{:02}0000.0Z", 1 + i % 12, 1 + i % 28, i % 24).as_bytes(),
    ));
    e.push_str(&line(
        "objectCategory",
        b"CN=Person,CN=Schema,CN=Configuration,DC=corp,DC=example",
    ));
    e.push('\n');
    e
}

/// LDIF of users `range` under `parent`.
pub fn users(range: std::ops::Range<usize>, parent: &str) -> String {
    let mut out = String::with_capacity(range.len() * 700);
    for i in range {
        out.push_str(&user(i, parent));
    }
    out
}
