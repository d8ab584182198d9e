//! The `DirectorySource` abstraction: a (base, scope, filter, attributes) search that returns
//! plain [`Entry`] values — complete, or an error (SPEC §6.1). Two implementations: LDAP
//! ([`LdapSource`](super::ldap::LdapSource)) and an LDIF file
//! ([`LdifSource`](super::ldif_source::LdifSource)).

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use super::dn::Scope;
use super::entry::Entry;
use super::ldap::LdapSource;
use super::ldif_source::LdifSource;
use crate::config::model::{self, Directory, DirectorySource as SourceConfig};

/// One directory search.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SearchRequest {
    /// Search base DN.
    pub base: String,
    pub scope: Scope,
    /// An RFC 4515 filter (the lenient forms [`Filter::parse`](super::filter::Filter::parse)
    /// accepts are fine; it is sent in canonical form).
    pub filter: String,
    /// Attribute descriptions to return. `*` means every user attribute; operational ones
    /// (`entryUUID`, `entryCSN`, ...) must be named. Empty also means `*`, as in LDAP.
    pub attributes: Vec<String>,
}

impl SearchRequest {
    pub fn new(base: impl Into<String>, scope: Scope, filter: impl Into<String>) -> Self {
        SearchRequest {
            base: base.into(),
            scope,
            filter: filter.into(),
            attributes: Vec::new(),
        }
    }

    pub fn with_attributes<S: Into<String>>(mut self, attrs: impl IntoIterator<Item = S>) -> Self {
        self.attributes = attrs.into_iter().map(Into::into).collect();
        self
    }
}

impl From<model::Scope> for Scope {
    fn from(s: model::Scope) -> Self {
        match s {
            model::Scope::Base => Scope::Base,
            model::Scope::One => Scope::One,
            model::Scope::Subtree => Scope::Subtree,
        }
    }
}

/// What [`DirectorySource::search`] returns.
pub type SearchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Entry>, DirectoryError>> + Send + 'a>>;

/// A place entries come from. Implementations return every entry the search selects, each
/// with its `anchor` and `disabled` set per the flavor, or an error: never a short list.
pub trait DirectorySource: Send + Sync {
    /// Where entries come from, for messages: the LDAP URL or the LDIF file path. Never
    /// contains credentials.
    fn location(&self) -> String;

    /// Run one search.
    fn search<'a>(&'a self, request: &'a SearchRequest) -> SearchFuture<'a>;
}

/// Open the directory source a config describes. Resolves the bind password (an unset
/// variable or unreadable file is an error naming it); an LDIF source is read and parsed now.
pub fn open(directory: &Directory) -> Result<Box<dyn DirectorySource>, DirectoryError> {
    match &directory.source {
        SourceConfig::Ldap(settings) => {
            let password = match &settings.password {
                Some(secret) => Some(secret.resolve().map_err(|e| {
                    DirectoryError::new(
                        Failure::Secret,
                        &settings.url,
                        &settings.base_dn,
                        "",
                        format!("cannot read the bind password: {e}"),
                    )
                    .with_hint(format!(
                        "the password comes from {}; set it before running this command",
                        secret.describe()
                    ))
                })?),
                None => None,
            };
            Ok(Box::new(LdapSource::new(
                settings,
                password,
                directory.flavor,
                directory.disabled_filter.as_deref(),
            )?))
        }
        SourceConfig::Ldif { path, base_dn } => Ok(Box::new(LdifSource::load(
            path,
            base_dn,
            directory.flavor,
            directory.disabled_filter.as_deref(),
        )?)),
    }
}

/// The kind of a directory failure; decides the hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No TCP connection (refused, unreachable, unknown host).
    Connect,
    /// TLS handshake or certificate verification failed, or StartTLS was refused.
    Tls,
    /// No answer within the configured timeout.
    Timeout,
    /// The bind was refused (wrong DN or password, strong auth required...).
    Bind,
    /// The server stopped at its size limit.
    SizeLimit,
    /// The server stopped at its time limit.
    TimeLimit,
    /// The server stopped at an administrative limit.
    AdminLimit,
    /// The base DN does not exist.
    NoSuchBase,
    /// The server referred the search elsewhere, or answered only with references.
    Referral,
    /// A partial result: missing paging control, partialResults, cancelled stream.
    Incomplete,
    /// The connection dropped during the read.
    ConnectionLost,
    /// The bind account may not read what was asked.
    AccessDenied,
    /// Any other error result from the server.
    Server,
    /// The request itself is invalid (filter, DN, unsupported construct).
    InvalidRequest,
    /// A returned entry cannot be used (malformed, no anchor).
    InvalidEntry,
    /// The LDIF file cannot be read or parsed.
    Ldif,
    /// The bind password cannot be resolved.
    Secret,
}

/// A failed directory read. Always names the server (URL or file), the base and the filter;
/// never contains a password. The details are boxed to keep `Result`s small; read them
/// through `Deref` (`err.failure`, `err.hint`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DirectoryError(Box<DirectoryErrorDetails>);

/// The facts of a [`DirectoryError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryErrorDetails {
    pub failure: Failure,
    /// LDAP URL or LDIF path.
    pub server: String,
    pub base: String,
    pub filter: String,
    /// What failed.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl std::ops::Deref for DirectoryError {
    type Target = DirectoryErrorDetails;

    fn deref(&self) -> &DirectoryErrorDetails {
        &self.0
    }
}

impl fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (server {}", self.message, self.server)?;
        if !self.base.is_empty() {
            write!(f, ", base {}", self.base)?;
        }
        if !self.filter.is_empty() {
            write!(f, ", filter {}", self.filter)?;
        }
        f.write_str(")")
    }
}

impl DirectoryError {
    pub fn new(
        failure: Failure,
        server: &str,
        base: &str,
        filter: &str,
        message: impl Into<String>,
    ) -> Self {
        DirectoryError(Box::new(DirectoryErrorDetails {
            failure,
            server: server.to_string(),
            base: base.to_string(),
            filter: filter.to_string(),
            message: message.into(),
            hint: None,
        }))
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.0.hint = Some(hint.into());
        self
    }
}

impl From<DirectoryError> for crate::error::CommandError {
    fn from(e: DirectoryError) -> Self {
        let mut err = crate::error::CommandError::new(e.to_string());
        err.hint = e.0.hint;
        err
    }
}
