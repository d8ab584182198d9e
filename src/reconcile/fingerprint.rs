//! `observed_fingerprint` (SPEC §7): `sha256:` + hex of the RFC 8785 (JCS) form of the account
//! restricted to the User fields plus `extraFields`, absent/null/"" all written as null.

use sha2::{Digest, Sha256};

use super::ObservedAccount;

/// The canonical JSON of the account: an object of string-or-null values with keys sorted by
/// UTF-16 code units (JCS); serde_json's string escaping matches JCS for such values.
pub fn canonical_json(a: &ObservedAccount, fields: &[String]) -> String {
    let mut out = Vec::new();
    Canonical::new(fields).write(a, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

pub fn fingerprint(a: &ObservedAccount, fields: &[String]) -> String {
    let digest = Sha256::digest(canonical_json(a, fields).as_bytes());
    format!("sha256:{}", hex::encode(digest))
}

/// The `observed_fingerprint` of a listing (SPEC §7): `sha256:` over the canonical JSON of
/// every account, sorted by id, each followed by a newline.
pub fn observed_fingerprint(accounts: &[ObservedAccount], fields: &[String]) -> String {
    let canonical = Canonical::new(fields);
    let mut sorted: Vec<&ObservedAccount> = accounts.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let mut h = Sha256::new();
    let mut buf = Vec::new();
    for a in sorted {
        buf.clear();
        canonical.write(a, &mut buf);
        buf.push(b'\n');
        h.update(&buf);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// [`canonical_json`] prepared once for many accounts: the keys sorted, deduplicated and
/// written as JSON strings up front.
#[derive(Clone, Debug)]
pub struct Canonical {
    /// (field name, `"name":` as JSON).
    keys: Vec<(String, Vec<u8>)>,
    /// The keys' canonical (UTF-16) order is also their byte order (always for ASCII names):
    /// an account's fields, sorted by bytes, are then read in one walk instead of a search per
    /// key.
    byte_order: bool,
}

impl Canonical {
    pub fn new(fields: &[String]) -> Self {
        let mut keys: Vec<&String> = fields.iter().collect();
        keys.sort_by(|x, y| x.encode_utf16().cmp(y.encode_utf16()));
        keys.dedup();
        Canonical {
            byte_order: keys.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()),
            keys: keys
                .into_iter()
                .map(|k| {
                    let mut json = serde_json::to_vec(k.as_str()).unwrap_or_default();
                    json.push(b':');
                    (k.clone(), json)
                })
                .collect(),
        }
    }

    /// Append the canonical JSON of `a` to `out`.
    pub fn write(&self, a: &ObservedAccount, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut fields = a.fields.iter().peekable();
        for (i, (k, json)) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(json);
            let value = if self.byte_order {
                while fields.next_if(|(n, _)| *n < k.as_str()).is_some() {}
                fields
                    .next_if(|(n, _)| *n == k.as_str())
                    .map(|(_, v)| v.as_str())
                    .filter(|v| !v.is_empty())
            } else {
                a.get(k)
            };
            match value {
                Some(v) => {
                    // Writing a string into a Vec cannot fail.
                    let _ = serde_json::to_writer(&mut *out, v);
                }
                None => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn account() -> ObservedAccount {
        ObservedAccount {
            id: "1".into(),
            fields: Default::default(),
            endpoints: Default::default(),
        }
    }

    #[test]
    fn the_one_walk_reads_what_a_search_per_key_reads() {
        let fields = names(&["UserId", "Email", "Zeta", "LastName", "Émile", "A"]);
        let mut a = account();
        for (k, v) in [
            ("Email", "a@x"),
            ("B", "b"),
            ("Zeta", ""),
            ("Émile", "é"),
            ("A", "1"),
        ] {
            a.fields.insert(k, v.into());
        }
        let ascii = Canonical::new(&fields[..4]);
        assert!(ascii.byte_order);
        let all = Canonical::new(&fields);
        for c in [ascii, all] {
            let mut searched = c.clone();
            searched.byte_order = false;
            let (mut one, mut two) = (Vec::new(), Vec::new());
            c.write(&a, &mut one);
            searched.write(&a, &mut two);
            assert_eq!(
                String::from_utf8(one).unwrap(),
                String::from_utf8(two).unwrap()
            );
        }
    }

    #[test]
    fn null_empty_and_absent_are_the_same() {
        let fields = names(&["Email", "FirstName", "UserId"]);
        let mut a = account();
        a.fields.insert("UserId", "1".into());
        a.fields.insert("Email", "a@x".into());
        let fp1 = fingerprint(&a, &fields);
        a.fields.insert("FirstName", String::new());
        a.fields.insert("Unlisted", "ignored".into());
        assert_eq!(fingerprint(&a, &fields), fp1);
        assert_eq!(
            canonical_json(&a, &fields),
            r#"{"Email":"a@x","FirstName":null,"UserId":"1"}"#
        );
        a.fields.insert("FirstName", "Zoë \"Q\"".into());
        assert_eq!(
            canonical_json(&a, &fields),
            r#"{"Email":"a@x","FirstName":"Zoë \"Q\"","UserId":"1"}"#
        );
        assert_ne!(fingerprint(&a, &fields), fp1);
        // Duplicate and unsorted field lists give the same form, prepared or not.
        let shuffled: Vec<String> = ["UserId", "Email", "FirstName", "Email"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut out = Vec::new();
        Canonical::new(&shuffled).write(&a, &mut out);
        assert_eq!(out, canonical_json(&a, &fields).into_bytes());
    }

    /// The prepared form writes what the straightforward one did (key sort per account,
    /// `serde_json::to_string` per key and value), for awkward keys and values too.
    #[test]
    fn prepared_form_matches_the_reference() {
        fn reference(a: &ObservedAccount, fields: &[String]) -> String {
            let mut keys: Vec<&String> = fields.iter().collect();
            keys.sort_by(|x, y| x.encode_utf16().cmp(y.encode_utf16()));
            keys.dedup();
            let mut out = String::from("{");
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k.as_str()).unwrap());
                out.push(':');
                match a.get(k) {
                    Some(v) => out.push_str(&serde_json::to_string(v).unwrap()),
                    None => out.push_str("null"),
                }
            }
            out.push('}');
            out
        }
        let fields: Vec<String> = [
            "Zed",
            "ä",
            "\u{10000}",
            "\u{ffff}",
            "A\"b",
            "Email",
            "Email",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let values = [
            "",
            "plain",
            "tab\there",
            "quote\"back\\slash",
            "\u{1}ctl",
            "Zoë 😀",
        ];
        let mut accounts = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let mut a = ObservedAccount {
                id: format!("{}", values.len() - i),
                fields: Default::default(),
                endpoints: Default::default(),
            };
            for (j, f) in fields.iter().enumerate() {
                if (i + j) % 3 != 0 {
                    a.fields.insert(f, v.to_string());
                }
            }
            assert_eq!(canonical_json(&a, &fields), reference(&a, &fields));
            accounts.push(a);
        }
        let mut h = Sha256::new();
        let mut sorted: Vec<&ObservedAccount> = accounts.iter().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        for a in sorted {
            h.update(reference(a, &fields).as_bytes());
            h.update(b"\n");
        }
        let want = format!("sha256:{}", hex::encode(h.finalize()));
        assert_eq!(observed_fingerprint(&accounts, &fields), want);
    }
}
