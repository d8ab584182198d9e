//! Keeping secrets out of logs and errors (SPEC §3): every secret value the client handles (the
//! API key secret, tokens, `secret()` results) is registered with a [`Redactor`], and every
//! string the client logs or puts in an error passes through it. On top of that, JSON bodies
//! have the values of sensitive keys (`ApiKeySecret`, `access_token`, anything matching
//! `token|secret|password|api-?key`) replaced, and URLs the values of sensitive or
//! secret-valued query parameters.

use std::sync::RwLock;

use serde_json::Value;

use crate::config::secret::is_sensitive_key;

/// What a redacted value prints as.
pub const REDACTED: &str = "<redacted>";

/// Shorter values are not searched for in text (they would blank out ordinary words); they are
/// still redacted where they appear as a sensitive key's value.
const MIN_SECRET_LEN: usize = 4;

/// The secret values to hide.
#[derive(Debug, Default)]
pub struct Redactor {
    secrets: RwLock<Vec<String>>,
}

impl Redactor {
    /// Register a secret value.
    pub fn add(&self, secret: &str) {
        if secret.len() < MIN_SECRET_LEN {
            return;
        }
        let mut s = self.secrets.write().unwrap_or_else(|p| p.into_inner());
        if !s.iter().any(|x| x == secret) {
            s.push(secret.to_string());
            // Longest first, so a secret containing another is replaced whole.
            s.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
    }

    /// Whether `value` is a registered secret.
    pub fn is_secret(&self, value: &str) -> bool {
        self.secrets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|s| s == value)
    }

    /// `text` with every registered secret replaced.
    pub fn text(&self, text: &str) -> String {
        let secrets = self.secrets.read().unwrap_or_else(|p| p.into_inner());
        let mut out = text.to_string();
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }

    /// A URL for logs and errors: sensitive or secret-valued query parameters replaced.
    pub fn url(&self, url: &url::Url) -> String {
        let mut u = url.clone();
        if u.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    if sensitive_query_key(&k) || self.is_secret(&v) {
                        (k.into_owned(), REDACTED.to_string())
                    } else {
                        (k.into_owned(), v.into_owned())
                    }
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        if !u.username().is_empty() || u.password().is_some() {
            let _ = u.set_username("");
            let _ = u.set_password(None);
        }
        self.text(u.as_str())
    }

    /// A JSON body for logs: sensitive keys' values replaced, then registered secrets.
    pub fn json(&self, body: &Value) -> String {
        let mut v = body.clone();
        redact_json(&mut v);
        self.text(&v.to_string())
    }
}

/// Query parameters whose values are hidden in logged URLs: §3's sensitive keys, and — URLs
/// being where credentials leak most — anything naming a key, signature or auth.
fn sensitive_query_key(k: &str) -> bool {
    let l = k.to_ascii_lowercase();
    is_sensitive_key(k)
        || ["key", "sig", "auth", "pass", "credential"]
            .iter()
            .any(|w| l.contains(w))
}

/// Replace the values of sensitive keys in `v`, recursively.
pub fn redact_json(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if is_sensitive_key(k) && !val.is_null() {
                    *val = Value::String(REDACTED.into());
                } else {
                    redact_json(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hides_registered_values_and_sensitive_keys() {
        let r = Redactor::default();
        r.add("canary-1234");
        r.add("abc"); // too short to search for
        assert_eq!(
            r.text("token canary-1234 and abc"),
            "token <redacted> and abc"
        );
        let body = json!({"Email": "a@b", "ApiKeySecret": "zzz", "access_token": "t",
                          "Users": [{"Note": "canary-1234"}]});
        assert_eq!(
            r.json(&body),
            r#"{"ApiKeySecret":"<redacted>","Email":"a@b","Users":[{"Note":"<redacted>"}],"access_token":"<redacted>"}"#
        );
        let u = url::Url::parse("https://u:p@h/api?email=a%40b&api_key=x&q=canary-1234").unwrap();
        assert_eq!(
            r.url(&u),
            "https://h/api?email=a%40b&api_key=%3Credacted%3E&q=%3Credacted%3E"
        );
    }
}
