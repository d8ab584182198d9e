//! A directory entry as plain data: DN, attributes (text or bytes), anchor, disabled.

use std::collections::BTreeMap;

/// One attribute value. LDAP values are octet strings: those that are valid UTF-8 and not one of
/// the flavor's binary attributes are `Text`; everything else is `Binary`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttrValue {
    Text(String),
    Binary(Vec<u8>),
}

impl AttrValue {
    /// Classify raw bytes: binary when asked to, or when the bytes are not UTF-8.
    pub fn from_bytes(bytes: Vec<u8>, force_binary: bool) -> Self {
        if force_binary {
            return AttrValue::Binary(bytes);
        }
        match String::from_utf8(bytes) {
            Ok(s) => AttrValue::Text(s),
            Err(e) => AttrValue::Binary(e.into_bytes()),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            AttrValue::Text(s) => s.as_bytes(),
            AttrValue::Binary(b) => b,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            AttrValue::Text(s) => Some(s),
            AttrValue::Binary(_) => None,
        }
    }
}

/// The attribute type of an attribute description: `cn` for `cn;lang-en`.
pub fn attribute_type(description: &str) -> &str {
    description.split(';').next().unwrap_or(description)
}

/// Whether `description` is a valid RFC 4512 attribute description: a name
/// (`ALPHA *(ALPHA / DIGIT / "-")`) or a numeric OID, then any `;option`s
/// (`1*(ALPHA / DIGIT / "-")`).
pub fn is_valid_attribute_description(description: &str) -> bool {
    let mut parts = description.split(';');
    let attr_type = parts.next().unwrap_or_default().as_bytes();
    let type_ok = match attr_type.first() {
        Some(c) if c.is_ascii_alphabetic() => attr_type
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-'),
        Some(c) if c.is_ascii_digit() => attr_type
            .split(|c| *c == b'.')
            .all(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit)),
        _ => false,
    };
    type_ok
        && parts.all(|opt| {
            !opt.is_empty() && opt.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

/// An attribute: its name as the server spelled it, and its values in server order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub values: Vec<AttrValue>,
}

/// A directory entry. Attribute names are case-insensitive (LDAP semantics): the map is keyed by
/// the ASCII-lowercased name and keeps the server's spelling in [`Attribute::name`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    attrs: BTreeMap<String, Attribute>,
    /// Immutable identity per flavor (objectGUID, entryUUID, or the DN for `generic`).
    pub anchor: String,
    /// Result of the client-side `disabledFilter` evaluation.
    pub disabled: bool,
}

impl Entry {
    pub fn new(dn: impl Into<String>) -> Self {
        Entry {
            dn: dn.into(),
            ..Default::default()
        }
    }

    /// Append values to an attribute (created when absent).
    pub fn push(&mut self, name: &str, value: AttrValue) {
        // Look up without allocating a lowercased key: readers push millions of values.
        let mut buf = [0u8; 64];
        if let Some(key) = buf.get_mut(..name.len()) {
            key.copy_from_slice(name.as_bytes());
            key.make_ascii_lowercase();
            if let Ok(key) = std::str::from_utf8(key)
                && let Some(attr) = self.attrs.get_mut(key)
            {
                attr.values.push(value);
                return;
            }
        }
        self.attrs
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Attribute {
                name: name.to_string(),
                values: Vec::new(),
            })
            .values
            .push(value);
    }

    /// The attribute named `name`, looked up case-insensitively.
    pub fn get(&self, name: &str) -> Option<&Attribute> {
        self.attrs.get(&name.to_ascii_lowercase())
    }

    /// The values an LDAP filter on `name` sees: those of `name` itself and, when `name` has no
    /// options, those of its subtypes with options (`cn;lang-en` for `cn`, RFC 4512 §2.5).
    pub fn values_with_subtypes<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a AttrValue> {
        let key = name.to_ascii_lowercase();
        let exact = self.attrs.get(&key);
        // Keys `name;...` sort between `name;` and `name<` (';' + 1 == '<').
        let subtypes = (!key.contains(';'))
            .then(|| self.attrs.range(format!("{key};")..format!("{key}<")))
            .into_iter()
            .flatten()
            .map(|(_, attr)| attr);
        exact
            .into_iter()
            .chain(subtypes)
            .flat_map(|attr| attr.values.iter())
    }

    /// First value of an attribute.
    pub fn first(&self, name: &str) -> Option<&AttrValue> {
        self.get(name).and_then(|a| a.values.first())
    }

    /// First value as text (None when absent or binary).
    pub fn first_text(&self, name: &str) -> Option<&str> {
        self.first(name).and_then(AttrValue::as_text)
    }

    /// All attributes, ordered by lowercased name.
    pub fn attributes(&self) -> impl Iterator<Item = &Attribute> {
        self.attrs.values()
    }

    pub fn remove(&mut self, name: &str) -> Option<Attribute> {
        self.attrs.remove(&name.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_lookup_is_case_insensitive() {
        let mut e = Entry::new("CN=Ann,DC=x");
        e.push("givenName", AttrValue::Text("Ann".into()));
        e.push("GIVENNAME", AttrValue::Text("Anna".into()));
        assert_eq!(e.first_text("givenname"), Some("Ann"));
        assert_eq!(e.get("GivenName").unwrap().values.len(), 2);
        assert_eq!(e.get("givenName").unwrap().name, "givenName");
    }

    #[test]
    fn subtypes_are_seen_by_their_base_name() {
        let mut e = Entry::new("CN=Ann,DC=x");
        e.push("cn", AttrValue::Text("Ann".into()));
        e.push("cn;lang-en", AttrValue::Text("Anne".into()));
        e.push("cn-x", AttrValue::Text("no".into()));
        e.push("cnx", AttrValue::Text("no".into()));
        let seen: Vec<_> = e
            .values_with_subtypes("CN")
            .filter_map(AttrValue::as_text)
            .collect();
        assert_eq!(seen, ["Ann", "Anne"]);
        let seen: Vec<_> = e
            .values_with_subtypes("cn;LANG-EN")
            .filter_map(AttrValue::as_text)
            .collect();
        assert_eq!(seen, ["Anne"]);
        assert_eq!(e.values_with_subtypes("sn").count(), 0);
    }

    #[test]
    fn attribute_descriptions() {
        for ok in [
            "cn",
            "msDS-User-Account-Control-Computed",
            "2.5.4.3",
            "cn;lang-en;x-1",
        ] {
            assert!(is_valid_attribute_description(ok), "{ok}");
        }
        for bad in [
            "", "1cn", "-cn", "c n", "2.5..4", "2.5.", "cn;", "cn;a_b", "cn:", "é",
        ] {
            assert!(!is_valid_attribute_description(bad), "{bad}");
        }
        assert_eq!(attribute_type("userCertificate;binary"), "userCertificate");
    }

    #[test]
    fn non_utf8_is_binary() {
        assert_eq!(
            AttrValue::from_bytes(vec![0xff, 0x00], false),
            AttrValue::Binary(vec![0xff, 0])
        );
        assert_eq!(
            AttrValue::from_bytes(b"ok".to_vec(), true),
            AttrValue::Binary(b"ok".to_vec())
        );
        assert_eq!(
            AttrValue::from_bytes(b"ok".to_vec(), false),
            AttrValue::Text("ok".into())
        );
    }
}
