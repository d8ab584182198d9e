//! A directory entry as plain data: DN, attributes (text or bytes), anchor, disabled.

use std::cmp::Ordering;
use std::sync::Arc;

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

/// An attribute: its name as the server spelled it, and its values in server order. Names are
/// shared (`Arc<str>`): a read of 100k entries holds each attribute name once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub name: Arc<str>,
    pub values: Values,
}

/// The values of one attribute. Most attributes have one value, which is stored inline; reads
/// of large directories hold millions of them. Derefs to a slice.
#[derive(Clone)]
pub enum Values {
    One(AttrValue),
    Many(Vec<AttrValue>),
}

impl Values {
    pub fn push(&mut self, value: AttrValue) {
        match self {
            Values::Many(values) => values.push(value),
            Values::One(_) => {
                let Values::One(first) = std::mem::replace(self, Values::Many(Vec::new())) else {
                    return;
                };
                *self = Values::Many(vec![first, value]);
            }
        }
    }
}

impl std::ops::Deref for Values {
    type Target = [AttrValue];

    fn deref(&self) -> &[AttrValue] {
        match self {
            Values::One(value) => std::slice::from_ref(value),
            Values::Many(values) => values,
        }
    }
}

impl PartialEq for Values {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for Values {}

impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Values {
    type Item = &'a AttrValue;
    type IntoIter = std::slice::Iter<'a, AttrValue>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// ASCII-case-insensitive order of attribute names.
fn cmp_names(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// A directory entry. Attribute names are case-insensitive (LDAP semantics): attributes are
/// kept sorted by ASCII-lowercased name, each with the server's spelling in
/// [`Attribute::name`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    attrs: Vec<Attribute>,
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

    /// An entry with room for `attributes` attributes (readers know the count up front).
    pub fn with_capacity(dn: impl Into<String>, attributes: usize) -> Self {
        Entry {
            dn: dn.into(),
            attrs: Vec::with_capacity(attributes),
            ..Default::default()
        }
    }

    /// Append a value to an attribute (created when absent).
    pub fn push(&mut self, name: &str, value: AttrValue) {
        self.push_with(name, || Arc::from(name), value);
    }

    /// [`push`](Self::push) with a shared name (readers intern names across entries).
    pub fn push_shared(&mut self, name: &Arc<str>, value: AttrValue) {
        self.push_with(name, || name.clone(), value);
    }

    fn push_with(&mut self, name: &str, make_name: impl FnOnce() -> Arc<str>, value: AttrValue) {
        // Servers mostly send an attribute's values together and often in name order: the
        // last attribute is checked first.
        let found = match self.attrs.last() {
            Some(last) => match cmp_names(&last.name, name) {
                Ordering::Equal => Ok(self.attrs.len() - 1),
                Ordering::Less => Err(self.attrs.len()),
                Ordering::Greater => self.attrs.binary_search_by(|a| cmp_names(&a.name, name)),
            },
            None => Err(0),
        };
        match found {
            Ok(i) => self.attrs[i].values.push(value),
            Err(i) => self.attrs.insert(
                i,
                Attribute {
                    name: make_name(),
                    values: Values::One(value),
                },
            ),
        }
    }

    /// The attribute named `name`, looked up case-insensitively.
    pub fn get(&self, name: &str) -> Option<&Attribute> {
        self.attrs
            .binary_search_by(|a| cmp_names(&a.name, name))
            .ok()
            .map(|i| &self.attrs[i])
    }

    /// The values an LDAP filter on `name` sees: those of `name` itself and, when `name` has no
    /// options, those of its subtypes with options (`cn;lang-en` for `cn`, RFC 4512 §2.5).
    pub fn values_with_subtypes<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a AttrValue> {
        let exact = self.get(name);
        let subtypes: &'a [Attribute] = if name.contains(';') {
            &[]
        } else {
            // Names `name;...` sort right after `name;` (compared without allocating it).
            let with_semicolon = |n: &str| {
                n.bytes()
                    .map(|c| c.to_ascii_lowercase())
                    .cmp(name.bytes().map(|c| c.to_ascii_lowercase()).chain([b';']))
            };
            let is_subtype = |n: &str| {
                n.len() > name.len()
                    && n.as_bytes()[name.len()] == b';'
                    && n.as_bytes()[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            };
            let start = self
                .attrs
                .partition_point(|a| with_semicolon(&a.name) == Ordering::Less);
            let rest = &self.attrs[start..];
            let len = rest.iter().take_while(|a| is_subtype(&a.name)).count();
            &rest[..len]
        };
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
        self.attrs.iter()
    }

    pub fn remove(&mut self, name: &str) -> Option<Attribute> {
        self.attrs
            .binary_search_by(|a| cmp_names(&a.name, name))
            .ok()
            .map(|i| self.attrs.remove(i))
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
        assert_eq!(&*e.get("givenName").unwrap().name, "givenName");
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
