//! Secrets (SPEC §3): references resolved lazily by the commands that need them, and a value
//! type that never prints.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable.
    Env(String),
    /// A file (absolute, resolved against the config dir); one trailing newline is stripped.
    File(PathBuf),
}

/// Why a secret could not be read. Names the variable or file, never a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("environment variable `{0}` is not set")]
    MissingEnv(String),
    #[error("environment variable `{0}` is not valid UTF-8")]
    NotUnicode(String),
    #[error("cannot read secret file `{path}`: {reason}")]
    File { path: String, reason: String },
}

impl SecretRef {
    /// Resolve the reference now.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) => Ok(Secret(v)),
                Err(std::env::VarError::NotPresent) => Err(SecretError::MissingEnv(name.clone())),
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(SecretError::NotUnicode(name.clone()))
                }
            },
            SecretRef::File(path) => read_secret_file(path),
        }
    }

    /// A description safe to print: `env:NAME` or `file:PATH`.
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Env(n) => format!("env:{n}"),
            SecretRef::File(p) => format!("file:{}", p.display()),
        }
    }
}

fn read_secret_file(path: &Path) -> Result<Secret, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|e| SecretError::File {
        path: path.display().to_string(),
        reason: e.kind().to_string(),
    })?;
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    Ok(Secret(text.to_string()))
}

/// A secret value. `Debug` and `Display` print `<redacted>`; use [`Secret::expose`] only at the
/// point where the value is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Header/query keys whose values must come from `secret()` (§3).
pub fn is_sensitive_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "authorization"
        || k == "cookie"
        || k.contains("token")
        || k.contains("secret")
        || k.contains("password")
        || k.contains("apikey")
        || k.contains("api-key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn missing_env_names_the_variable() {
        let e = SecretRef::Env("CARBONITE_SYNC_TEST_SURELY_UNSET".into())
            .resolve()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment variable `CARBONITE_SYNC_TEST_SURELY_UNSET` is not set"
        );
    }

    #[test]
    fn file_secret_strips_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "abc\n\n").unwrap();
        assert_eq!(
            SecretRef::File(p.clone()).resolve().unwrap().expose(),
            "abc\n"
        );
        std::fs::write(&p, "abc\n").unwrap();
        assert_eq!(SecretRef::File(p).resolve().unwrap().expose(), "abc");
    }

    #[test]
    fn sensitive_keys() {
        for k in [
            "Authorization",
            "cookie",
            "X-Auth-Token",
            "client_secret",
            "Password",
            "apiKey",
            "X-API-Key",
        ] {
            assert!(is_sensitive_key(k), "{k}");
        }
        for k in ["Accept", "Content-Type", "companyId"] {
            assert!(!is_sensitive_key(k), "{k}");
        }
    }
}
