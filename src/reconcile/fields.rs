//! The fields of an observed account: a small sorted vector with interned names.
//!
//! A tenant's accounts all carry the same dozen field names. A `BTreeMap<String, String>` per
//! account spends a node (about 540 bytes) plus one allocation per name on each of them; at
//! 100k accounts that was a third of a pass's peak memory. Here the names are shared `Arc<str>`s
//! (interned per thread) and the pairs sit in one sorted allocation.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// Field name -> value, sorted by name, each name once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields(Vec<(Arc<str>, String)>);

/// Names interned per thread; past this many distinct names, new ones are not remembered.
const INTERNED_MAX: usize = 4096;

type Names = HashMap<Box<str>, Arc<str>, foldhash::fast::FixedState>;

thread_local! {
    static NAMES: RefCell<Names> = RefCell::new(Names::default());
}

/// The shared `Arc<str>` of a field name.
pub fn intern(name: &str) -> Arc<str> {
    NAMES.with(|names| intern_in(&mut names.borrow_mut(), name))
}

fn intern_in(names: &mut Names, name: &str) -> Arc<str> {
    if let Some(n) = names.get(name) {
        return n.clone();
    }
    let n: Arc<str> = Arc::from(name);
    if names.len() < INTERNED_MAX {
        names.insert(name.into(), n.clone());
    }
    n
}

impl Fields {
    pub fn new() -> Self {
        Fields(Vec::new())
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&String> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets `name` to `value`, returning the previous value.
    pub fn insert(&mut self, name: &str, value: String) -> Option<String> {
        match self.find(name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (intern(name), value));
                None
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.find(name).ok().map(|i| self.0.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &String)> {
        self.0.iter().map(|(k, v)| (&**k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| &**k)
    }
}

impl<K: AsRef<str>> FromIterator<(K, String)> for Fields {
    /// Later pairs win over earlier ones with the same name (as a map's `collect`).
    fn from_iter<I: IntoIterator<Item = (K, String)>>(iter: I) -> Self {
        let mut v: Vec<(Arc<str>, String)> = NAMES.with(|names| {
            let mut names = names.borrow_mut();
            iter.into_iter()
                .map(|(k, v)| (intern_in(&mut names, k.as_ref()), v))
                .collect()
        });
        // Stable: equal names keep their order, so the last one is kept below. Input from a
        // JSON object (a sorted map) is sorted already.
        if !v.is_sorted_by(|a, b| a.0 <= b.0) {
            v.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let mut out: Vec<(Arc<str>, String)> = Vec::with_capacity(v.len());
        for (k, val) in v {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = val,
                _ => out.push((k, val)),
            }
        }
        Fields(out)
    }
}

impl<K: AsRef<str>, const N: usize> From<[(K, String); N]> for Fields {
    fn from(pairs: [(K, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Behaves as a `BTreeMap<String, String>` under inserts, removes and collects.
        #[test]
        fn behaves_as_a_sorted_map(
            init in proptest::collection::vec(("[a-d]{1,2}", "[x-z]{0,2}"), 0..12),
            ops in proptest::collection::vec((any::<bool>(), "[a-d]{1,2}", "[x-z]{0,2}"), 0..20),
        ) {
            let mut model: BTreeMap<String, String> = init.iter().cloned().collect();
            let mut f: Fields = init.into_iter().collect();
            for (insert, k, v) in ops {
                if insert {
                    prop_assert_eq!(f.insert(&k, v.clone()), model.insert(k, v));
                } else {
                    prop_assert_eq!(f.remove(&k), model.remove(&k));
                }
                prop_assert_eq!(f.len(), model.len());
                let pairs: Vec<(String, String)> =
                    f.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
                let expected: Vec<(String, String)> = model.clone().into_iter().collect();
                prop_assert_eq!(pairs, expected);
                for k in model.keys() {
                    prop_assert_eq!(f.get(k), model.get(k));
                    prop_assert!(f.contains_key(k));
                }
            }
        }
    }

    #[test]
    fn names_are_shared() {
        let a: Fields = [("Email", "a@x".to_string())].into();
        let b: Fields = [("Email", "b@x".to_string())].into();
        assert!(Arc::ptr_eq(&a.0[0].0, &b.0[0].0));
    }
}
