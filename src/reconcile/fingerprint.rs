//! `observed_fingerprint` (SPEC §7): `sha256:` + hex of the RFC 8785 (JCS) form of the account
//! restricted to the User fields plus `extraFields`, absent/null/"" all written as null.

use sha2::{Digest, Sha256};

use super::ObservedAccount;

/// The canonical JSON of the account: an object of string-or-null values with keys sorted by
/// UTF-16 code units (JCS); serde_json's string escaping matches JCS for such values.
pub fn canonical_json(a: &ObservedAccount, fields: &[String]) -> String {
    let mut keys: Vec<&String> = fields.iter().collect();
    keys.sort_by(|x, y| x.encode_utf16().cmp(y.encode_utf16()));
    keys.dedup();
    let mut out = String::from("{");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(k.as_str()).unwrap_or_default());
        out.push(':');
        match a.get(k) {
            Some(v) => out.push_str(&serde_json::to_string(v).unwrap_or_default()),
            None => out.push_str("null"),
        }
    }
    out.push('}');
    out
}

pub fn fingerprint(a: &ObservedAccount, fields: &[String]) -> String {
    let digest = Sha256::digest(canonical_json(a, fields).as_bytes());
    format!("sha256:{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn null_empty_and_absent_are_the_same() {
        let fields: Vec<String> = ["Email", "FirstName", "UserId"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut a = ObservedAccount {
            id: "1".into(),
            fields: BTreeMap::new(),
            endpoints: BTreeSet::new(),
        };
        a.fields.insert("UserId".into(), "1".into());
        a.fields.insert("Email".into(), "a@x".into());
        let fp1 = fingerprint(&a, &fields);
        a.fields.insert("FirstName".into(), String::new());
        a.fields.insert("Unlisted".into(), "ignored".into());
        assert_eq!(fingerprint(&a, &fields), fp1);
        assert_eq!(
            canonical_json(&a, &fields),
            r#"{"Email":"a@x","FirstName":null,"UserId":"1"}"#
        );
        a.fields.insert("FirstName".into(), "Zoë \"Q\"".into());
        assert_eq!(
            canonical_json(&a, &fields),
            r#"{"Email":"a@x","FirstName":"Zoë \"Q\"","UserId":"1"}"#
        );
        assert_ne!(fingerprint(&a, &fields), fp1);
    }
}
