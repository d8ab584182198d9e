//! The LDAP directory source (ldap3 over tokio, TLS by rustls).
//!
//! A search opens its own connection (ldap://, ldaps:// or ldap:// + StartTLS), binds (simple
//! bind, or anonymous without `bindDn`), reads every page of a paged-results search (RFC 2696)
//! converting entries as they arrive — the raw protocol data of a page is dropped as soon as
//! its entries are converted — and unbinds. Continuation references are skipped.
//!
//! Completeness (SPEC §6.1): every way a search can end short is an error — a size, time or
//! administrative limit, a referral, partialResults, a page without the paged-results
//! response control, a dropped connection, a timeout, or an answer made only of references.
//! Each error names the server, the base and the filter, and carries a hint.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::asn1::{PL, StructureTag, parse_tag};
use ldap3::controls::{Control, ControlType, PagedResults, RawControl};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, ResultEntry};
use rustls::ClientConfig;

use super::dn::{Dn, Scope};
use super::entry::{AttrValue, Entry, attribute_type};
use super::filter::Filter;
use super::source::{DirectoryError, DirectorySource, Failure, SearchFuture, SearchRequest};
use super::tls;
use crate::config::model::{Flavor, LdapSettings};
use crate::config::secret::Secret;
use crate::template::filters::guid_from_bytes;

/// RFC 2696 paged results.
const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

/// Counters of one search, for tests, logs and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Result pages read.
    pub pages: u32,
    /// Continuation references skipped.
    pub references_skipped: u64,
}

/// What the online check found: who bound where, and how long bind + base read took.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// `CN=...` or `anonymous`.
    pub bound_as: String,
    pub url: String,
    pub base: String,
    pub elapsed: Duration,
}

/// The connection settings and the read logic; [`LdapSource`] runs it on its own thread.
struct Client {
    url: String,
    start_tls: bool,
    bind_dn: Option<String>,
    password: Option<Secret>,
    base_dn: String,
    page_size: u32,
    timeout: Duration,
    ca_file: Option<PathBuf>,
    /// `None` for a plain `ldap://` URL without StartTLS.
    tls: Option<Arc<ClientConfig>>,
    flavor: Flavor,
    disabled: Option<Filter>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `settings`. Reads the CA file now so a bad one fails before any search.
    fn new(
        settings: &LdapSettings,
        password: Option<Secret>,
        flavor: Flavor,
        disabled_filter: Option<&str>,
    ) -> Result<Self, DirectoryError> {
        let error = |failure, message: String| {
            DirectoryError::new(failure, &settings.url, &settings.base_dn, "", message)
        };
        // The system's CA store is loaded only for a TLS connection (a few milliseconds of
        // start-up otherwise); a CA file is always read now, so a bad one fails before any search.
        let tls = if uses_tls(&settings.url, settings.start_tls) || settings.ca_file.is_some() {
            Some(
                tls::client_config(settings.ca_file.as_deref(), settings.insecure_skip_verify)
                    .map_err(|e| {
                        error(Failure::Tls, e)
                            .with_hint("tls.caFile must be a PEM file of CA certificates")
                    })?,
            )
        } else {
            None
        };
        let disabled = disabled_filter
            .map(|f| {
                Filter::parse(f).map_err(|e| {
                    error(
                        Failure::InvalidRequest,
                        format!("invalid disabledFilter {f}: {e}"),
                    )
                })
            })
            .transpose()?;
        Ok(Client {
            url: settings.url.clone(),
            start_tls: settings.start_tls,
            bind_dn: settings.bind_dn.clone(),
            password,
            base_dn: settings.base_dn.clone(),
            page_size: settings.page_size.max(1),
            timeout: settings.timeout,
            ca_file: settings.ca_file.clone(),
            tls,
            flavor,
            disabled,
        })
    }

    /// Run a search and also return its counters.
    async fn search_with_stats(
        &self,
        request: &SearchRequest,
    ) -> Result<(Vec<Entry>, SearchStats), DirectoryError> {
        let filter = Filter::parse(&request.filter).map_err(|e| {
            self.error(
                Failure::InvalidRequest,
                request,
                format!("invalid filter: {e}"),
            )
        })?;
        let canonical = filter.to_string();
        let mut ldap = self.connect(request).await?;
        let result = self.read_pages(&mut ldap, request, &canonical).await;
        let _ = ldap.unbind().await;
        result
    }

    /// `validate --online`: bind, then read the base entry.
    async fn check(&self) -> Result<CheckReport, DirectoryError> {
        let started = Instant::now();
        let request = SearchRequest::new(self.base_dn.clone(), Scope::Base, "(objectClass=*)")
            .with_attributes(["1.1"]);
        let mut ldap = self.connect(&request).await?;
        let outcome = async {
            let mut stream = ldap
                .with_timeout(self.timeout)
                .streaming_search(
                    &request.base,
                    ldap3::Scope::Base,
                    &request.filter,
                    vec!["1.1"],
                )
                .await
                .map_err(|e| self.transport_error(&request, e))?;
            let mut found = 0u32;
            while let Some(item) = stream
                .next()
                .await
                .map_err(|e| self.transport_error(&request, e))?
            {
                if !item.is_ref() && !item.is_intermediate() {
                    found += 1;
                }
            }
            let result = stream.finish().await;
            self.check_result(&request, &result, found.into())?;
            if found == 0 {
                return Err(self.error(
                    Failure::NoSuchBase,
                    &request,
                    "the base entry is not readable by the bind account".into(),
                ));
            }
            Ok(())
        }
        .await;
        let _ = ldap.unbind().await;
        outcome?;
        Ok(CheckReport {
            bound_as: self
                .bind_dn
                .clone()
                .unwrap_or_else(|| "anonymous".to_string()),
            url: self.url.clone(),
            base: self.base_dn.clone(),
            elapsed: started.elapsed(),
        })
    }

    fn error(&self, failure: Failure, request: &SearchRequest, message: String) -> DirectoryError {
        DirectoryError::new(failure, &self.url, &request.base, &request.filter, message)
    }

    /// Connect (TCP, TLS or StartTLS) and bind.
    async fn connect(&self, request: &SearchRequest) -> Result<Ldap, DirectoryError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_starttls(self.start_tls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url)
            .await
            .map_err(|e| self.connect_error(request, e))?;
        ldap3::drive!(conn);
        let (dn, password) = match (&self.bind_dn, &self.password) {
            (Some(dn), Some(pw)) => (dn.as_str(), pw.expose()),
            (Some(dn), None) => (dn.as_str(), ""),
            (None, _) => ("", ""),
        };
        let result = ldap
            .with_timeout(self.timeout)
            .simple_bind(dn, password)
            .await
            .map_err(|e| self.transport_error(request, e))?;
        if result.rc != 0 {
            return Err(self.bind_error(request, &result));
        }
        Ok(ldap)
    }

    async fn read_pages(
        &self,
        ldap: &mut Ldap,
        request: &SearchRequest,
        filter: &str,
    ) -> Result<(Vec<Entry>, SearchStats), DirectoryError> {
        let attributes: Vec<&str> = if request.attributes.is_empty() {
            vec!["*"]
        } else {
            request.attributes.iter().map(String::as_str).collect()
        };
        let scope = match request.scope {
            Scope::Base => ldap3::Scope::Base,
            Scope::One => ldap3::Scope::OneLevel,
            Scope::Subtree => ldap3::Scope::Subtree,
        };
        let mut entries = Vec::new();
        let mut stats = SearchStats::default();
        let mut refs: Vec<String> = Vec::new();
        let mut names = Names::default();
        // Each page is asked for as soon as the previous one's cookie is in, and the previous
        // page's entries are converted while the server prepares it (paged results are
        // sequential: otherwise the server would wait for our conversion on every page).
        macro_rules! start {
            ($cookie:expr) => {{
                let control: RawControl = PagedResults {
                    size: i32::try_from(self.page_size).unwrap_or(i32::MAX),
                    cookie: $cookie,
                }
                .into();
                ldap.with_timeout(self.timeout)
                    .with_controls(vec![control])
                    .streaming_search(&request.base, scope, filter, &attributes)
                    .await
                    .map_err(|e| self.transport_error(request, e))?
            }};
        }
        let mut stream = start!(Vec::new());
        loop {
            let mut page: Vec<ResultEntry> = Vec::new();
            while let Some(item) = stream
                .next()
                .await
                .map_err(|e| self.transport_error(request, e))?
            {
                if item.is_intermediate() {
                    continue;
                }
                if item.is_ref() {
                    stats.references_skipped += 1;
                    if refs.len() < 3 {
                        refs.extend(reference_urls(item).into_iter().take(1));
                    }
                    continue;
                }
                page.push(item);
            }
            let result = stream.finish().await;
            stats.pages += 1;
            let read = (entries.len() + page.len()) as u64;
            self.check_result(request, &result, read)?;
            let next = match paged_cookie(&result.ctrls) {
                Ok(Some(next)) if !next.is_empty() => Some(next),
                Ok(Some(_)) => None,
                // A base-scope search returns one entry at most: complete without paging (Samba
                // answers the rootDSE without the control).
                Ok(None) if request.scope == Scope::Base => None,
                Ok(None) => {
                    return Err(self
                        .error(
                            Failure::Incomplete,
                            request,
                            format!(
                                "the server did not return the paged-results control after {read} entries, so completeness cannot be confirmed"
                            ),
                        )
                        .with_hint(
                            "the server must support paged results (RFC 2696, OID 1.2.840.113556.1.4.319); AD and OpenLDAP do",
                        ));
                }
                Err(e) => {
                    return Err(self.error(
                        Failure::Incomplete,
                        request,
                        format!("unreadable paged-results control: {e}"),
                    ));
                }
            };
            let next = match next {
                Some(cookie) => Some(start!(cookie)),
                None => None,
            };
            entries.reserve(page.len());
            for item in page {
                let entry = self.convert(item, &mut names).map_err(|message| {
                    self.error(Failure::InvalidEntry, request, message)
                        .with_hint(self.entry_hint())
                })?;
                entries.push(entry);
            }
            match next {
                Some(next) => stream = next,
                None => break,
            }
        }
        if entries.is_empty() && stats.references_skipped > 0 {
            return Err(self
                .error(
                    Failure::Referral,
                    request,
                    format!(
                        "the server answered only with {} reference(s) to other servers ({})",
                        stats.references_skipped,
                        refs.join(", ")
                    ),
                )
                .with_hint(
                    "point baseDn at a naming context this server holds (for a whole AD forest, the global catalog on port 3268/3269)",
                ));
        }
        Ok((entries, stats))
    }

    /// A protocol entry -> [`Entry`], with anchor and disabled set.
    fn convert(&self, item: ResultEntry, names: &mut Names) -> Result<Entry, String> {
        let mut entry = parse_entry(item.0, self.flavor, names)?;
        // The rootDSE (empty DN: watermarks for incremental reads) is no directory object.
        if entry.dn.is_empty() {
            return Ok(entry);
        }
        entry.anchor = anchor(&entry, self.flavor)?;
        if let Some(filter) = &self.disabled {
            entry.disabled = filter.matches(&entry, &|a| self.flavor.is_binary(a));
        }
        Ok(entry)
    }

    fn entry_hint(&self) -> String {
        match self.flavor.anchor_attribute() {
            Some(anchor) => format!(
                "the bind account must be able to read {anchor} on every entry (flavor {}); with another server use flavor generic",
                flavor_name(self.flavor)
            ),
            None => "the server sent an entry the LDAP protocol does not allow".into(),
        }
    }

    /// The end of a page: anything but success is an error.
    fn check_result(
        &self,
        request: &SearchRequest,
        result: &LdapResult,
        read: u64,
    ) -> Result<(), DirectoryError> {
        if result.rc == 0 {
            return Ok(());
        }
        let server_says = server_text(result);
        let (failure, message, hint): (Failure, String, String) = match result.rc {
            4 => (
                Failure::SizeLimit,
                format!("the server's size limit stopped the search after {read} entries{server_says}"),
                "raise the server's size limit for the bind account (OpenLDAP: `limits dn.exact=\"<bindDn>\" size=unlimited` / olcLimits; AD: MaxPageSize and MaxResultSetSize in the LDAP policy) or narrow the mapping's filter".into(),
            ),
            3 => (
                Failure::TimeLimit,
                format!("the server's time limit stopped the search after {read} entries{server_says}"),
                "raise the server's time limit for the bind account (OpenLDAP olcTimeLimit; AD MaxQueryDuration) or narrow the filter".into(),
            ),
            11 => (
                Failure::AdminLimit,
                format!("an administrative limit stopped the search after {read} entries{server_says}"),
                "raise the server's limits for the bind account (AD: MaxPageSize/MaxResultSetSize; OpenLDAP: limits) or lower pageSize".into(),
            ),
            32 => (
                Failure::NoSuchBase,
                format!(
                    "the base DN does not exist{}{server_says}",
                    if result.matched.is_empty() {
                        String::new()
                    } else {
                        format!(" (the server's closest entry is {})", result.matched)
                    }
                ),
                "check directory.ldap.baseDn and the mapping's source.baseDn".into(),
            ),
            10 => (
                Failure::Referral,
                format!(
                    "the server referred the search to {}{server_says}",
                    if result.refs.is_empty() {
                        "another server".to_string()
                    } else {
                        result.refs.join(", ")
                    }
                ),
                "the base is not held by this server: point url at a server that holds it (for a whole AD forest, the global catalog on port 3268/3269)".into(),
            ),
            9 => (
                Failure::Incomplete,
                format!("the server returned partial results{server_says}"),
                "point baseDn at a naming context this server holds".into(),
            ),
            50 => (
                Failure::AccessDenied,
                format!("the bind account may not search here{server_says}"),
                "grant the bind account read access to the base and the attributes the mappings use".into(),
            ),
            12 => (
                Failure::Server,
                format!("the server does not support a control this search needs (paged results){server_says}"),
                "carbonite-sync needs paged results (RFC 2696)".into(),
            ),
            88 => (
                Failure::Incomplete,
                format!("the search was cancelled before it completed{server_says}"),
                "run again; if it persists, raise directory.ldap.timeout".into(),
            ),
            rc => (
                Failure::Server,
                format!("the server answered {} ({rc}){server_says}", result_name(rc)),
                "see the server's message above".into(),
            ),
        };
        Err(self.error(failure, request, message).with_hint(hint))
    }

    fn bind_error(&self, request: &SearchRequest, result: &LdapResult) -> DirectoryError {
        let who = self.bind_dn.as_deref().unwrap_or("anonymous");
        let server_says = server_text(result);
        let (message, hint) = match result.rc {
            49 => (
                format!("bind as {who} failed: invalid credentials{server_says}"),
                "check bindDn and the password secret".to_string(),
            ),
            8 | 13 => (
                format!("bind as {who} refused: the server requires a protected connection{server_says}"),
                "use an ldaps:// URL or `startTls: true`".to_string(),
            ),
            53 => (
                format!("bind as {who} refused{server_says}"),
                "an empty password is an unauthenticated bind, which servers refuse: set `password`".to_string(),
            ),
            rc => (
                format!("bind as {who} failed: {} ({rc}){server_says}", result_name(rc)),
                "check bindDn and the password secret".to_string(),
            ),
        };
        self.error(Failure::Bind, request, message).with_hint(hint)
    }

    fn connect_error(&self, request: &SearchRequest, e: LdapError) -> DirectoryError {
        if let LdapError::LdapResult { result } = &e {
            // StartTLS refused by the server.
            return self
                .error(
                    Failure::Tls,
                    request,
                    format!(
                        "StartTLS failed: {} ({}){}",
                        result_name(result.rc),
                        result.rc,
                        server_text(result)
                    ),
                )
                .with_hint(
                    "the server refused StartTLS: configure TLS on it, or use an ldaps:// URL",
                );
        }
        match &e {
            // A TLS client that meets a plain-LDAP port sees garbage or an early close.
            LdapError::Io { source }
                if tls_error(source).is_some()
                    || (self.uses_tls()
                        && matches!(
                            source.kind(),
                            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
                        )) =>
            {
                self.tls_failure(request, source)
            }
            LdapError::Io { source } => self
                .error(Failure::Connect, request, format!("cannot connect: {source}"))
                .with_hint("check the host and port in directory.ldap.url and that the server is reachable from here"),
            LdapError::Rustls { source } => self.tls_failure(
                request,
                &std::io::Error::new(std::io::ErrorKind::InvalidData, source.clone()),
            ),
            LdapError::DNSName { source } => self
                .error(Failure::Tls, request, format!("the host name is not valid for TLS: {source}"))
                .with_hint("use the server's DNS name in directory.ldap.url"),
            LdapError::Timeout { .. } => self
                .error(
                    Failure::Timeout,
                    request,
                    format!("no connection within {}", humantime::format_duration(self.timeout)),
                )
                .with_hint("check the host, port and firewall, or raise directory.ldap.timeout"),
            _ => self.transport_error(request, e),
        }
    }

    fn uses_tls(&self) -> bool {
        uses_tls(&self.url, self.start_tls)
    }

    fn tls_failure(&self, request: &SearchRequest, source: &std::io::Error) -> DirectoryError {
        let detail = tls_error(source)
            .map(ToString::to_string)
            .unwrap_or_else(|| source.to_string());
        let hint = match tls_error(source) {
            Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer))
            | Some(rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)) => {
                match &self.ca_file {
                    Some(path) => format!(
                        "the server's certificate is not signed by a CA in tls.caFile ({}): give the CA that issued it",
                        path.display()
                    ),
                    None => "the server's certificate is not signed by a CA this system trusts: set tls.caFile to the PEM of the CA that issued it".to_string(),
                }
            }
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => "the certificate does not name this host: use the host name in the certificate in directory.ldap.url".to_string(),
            Some(rustls::Error::InvalidCertificate(_)) => {
                "the server's certificate is not acceptable (expired, wrong usage...): renew it, or set tls.caFile".to_string()
            }
            _ => "is this a TLS port? ldaps:// is usually port 636; for port 389 use ldap:// with `startTls: true`".to_string(),
        };
        self.error(
            Failure::Tls,
            request,
            format!("TLS handshake failed: {detail}"),
        )
        .with_hint(hint)
    }

    /// Errors while an operation is in flight.
    fn transport_error(&self, request: &SearchRequest, e: LdapError) -> DirectoryError {
        match e {
            LdapError::Timeout { .. } => self
                .error(
                    Failure::Timeout,
                    request,
                    format!(
                        "the server did not answer within {}",
                        humantime::format_duration(self.timeout)
                    ),
                )
                .with_hint("raise directory.ldap.timeout, or check the server's load"),
            LdapError::EndOfStream
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. } => self
                .error(
                    Failure::ConnectionLost,
                    request,
                    "the connection was closed before the search completed".into(),
                )
                .with_hint("the server or a firewall dropped the connection; run again, and check the server's idle and size limits"),
            LdapError::Io { source } => self
                .error(
                    Failure::ConnectionLost,
                    request,
                    format!("the connection failed during the search: {source}"),
                )
                .with_hint("run again; check the network path to the server"),
            LdapError::FilterParsing => self.error(
                Failure::InvalidRequest,
                request,
                "the LDAP library could not encode the filter".into(),
            ),
            other => self.error(Failure::Server, request, other.to_string()),
        }
    }
}

/// An LDAP server as a [`DirectorySource`].
///
/// Each search runs on a thread of its own with a single-threaded runtime, whatever runtime
/// the caller uses: decoding and converting entries on one thread avoids a cross-thread wake
/// and a cross-thread free per entry, which measured as nearly half the CPU of a read (see
/// docs/decisions.md). Call it from within a tokio runtime (it uses the blocking pool).
#[derive(Clone)]
pub struct LdapSource {
    client: Arc<Client>,
}

impl std::fmt::Debug for LdapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.client.fmt(f)
    }
}

impl LdapSource {
    /// A source for `settings`. Reads the CA file now so a bad one fails before any search.
    pub fn new(
        settings: &LdapSettings,
        password: Option<Secret>,
        flavor: Flavor,
        disabled_filter: Option<&str>,
    ) -> Result<Self, DirectoryError> {
        Ok(LdapSource {
            client: Arc::new(Client::new(settings, password, flavor, disabled_filter)?),
        })
    }

    /// Run a search and also return its counters.
    pub async fn search_with_stats(
        &self,
        request: &SearchRequest,
    ) -> Result<(Vec<Entry>, SearchStats), DirectoryError> {
        let request = request.clone();
        let failed = request.clone();
        self.on_own_thread(&failed, move |client| async move {
            client.search_with_stats(&request).await
        })
        .await
    }

    /// `validate --online`: bind, then read the base entry.
    pub async fn check(&self) -> Result<CheckReport, DirectoryError> {
        let request =
            SearchRequest::new(self.client.base_dn.clone(), Scope::Base, "(objectClass=*)");
        self.on_own_thread(&request, |client| async move { client.check().await })
            .await
    }

    async fn on_own_thread<T, F, Fut>(
        &self,
        request: &SearchRequest,
        work: F,
    ) -> Result<T, DirectoryError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Client>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, DirectoryError>>,
    {
        let client = self.client.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime for the LDAP read: {e}"))?;
            Ok::<_, String>(runtime.block_on(work(client)))
        })
        .await;
        match joined {
            Ok(Ok(result)) => result,
            Ok(Err(message)) => Err(self.client.error(Failure::Server, request, message)),
            Err(e) => Err(self.client.error(
                Failure::Server,
                request,
                format!("the LDAP read stopped unexpectedly: {e}"),
            )),
        }
    }
}

impl DirectorySource for LdapSource {
    fn location(&self) -> String {
        self.client.url.clone()
    }

    fn search<'a>(&'a self, request: &'a SearchRequest) -> SearchFuture<'a> {
        Box::pin(async move {
            let started = Instant::now();
            let (entries, stats) = self.search_with_stats(request).await?;
            tracing::info!(
                url = %self.client.url,
                base = %request.base,
                filter = %request.filter,
                entries = entries.len(),
                pages = stats.pages,
                references_skipped = stats.references_skipped,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "directory search"
            );
            Ok(entries)
        })
    }
}

/// Whether a connection to `url` is encrypted (ldaps, or StartTLS).
fn uses_tls(url: &str, start_tls: bool) -> bool {
    start_tls
        || url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("ldaps://"))
}

fn flavor_name(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::ActiveDirectory => "active-directory",
        Flavor::Openldap => "openldap",
        Flavor::Generic => "generic",
    }
}

/// The rustls error inside an I/O error, if that is what it is.
fn tls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

fn server_text(result: &LdapResult) -> String {
    let text = result.text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!(": server says \"{text}\"")
    }
}

/// RFC 4511 result code names.
fn result_name(rc: u32) -> &'static str {
    match rc {
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        9 => "partialResults",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        18 => "inappropriateMatching",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "error",
    }
}

/// The cookie of the paged-results response control: `Ok(None)` when the control is missing.
fn paged_cookie(controls: &[Control]) -> Result<Option<Vec<u8>>, String> {
    let Some(raw) = controls.iter().find_map(|c| match c {
        Control(Some(ControlType::PagedResults), raw) => Some(raw),
        Control(None, raw) if raw.ctype == PAGED_RESULTS_OID => Some(raw),
        _ => None,
    }) else {
        return Ok(None);
    };
    let value = raw.val.as_deref().ok_or("the control has no value")?;
    // realSearchControlValue ::= SEQUENCE { size INTEGER, cookie OCTET STRING }
    let (_, tag) = parse_tag(value).map_err(|_| "the control value is not BER".to_string())?;
    let mut parts = tag
        .expect_constructed()
        .ok_or("the control value is not a SEQUENCE")?
        .into_iter();
    let _size = parts.next().ok_or("the control value has no size")?;
    let cookie = parts
        .next()
        .and_then(StructureTag::expect_primitive)
        .ok_or("the control value has no cookie")?;
    Ok(Some(cookie))
}

/// The URLs of a SearchResultReference (best effort; they only go into messages).
fn reference_urls(item: ResultEntry) -> Vec<String> {
    item.0
        .expect_constructed()
        .unwrap_or_default()
        .into_iter()
        .filter_map(StructureTag::expect_primitive)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .collect()
}

/// Attribute names seen in one search, shared by all its entries. A search sees a few dozen
/// names at most: a linear scan beats hashing.
/// The attribute names of a read, each with whether its values are binary. A server sends
/// an entry's attributes in the same order every time, so the name after the last one found
/// is tried first.
#[derive(Default)]
struct Names {
    known: Vec<(Vec<u8>, Arc<str>, bool)>,
    next: usize,
}

impl Names {
    /// The shared name for these bytes and whether its values are binary (per `flavor`, or a
    /// `;binary` option); `None` when they are not UTF-8.
    fn intern(&mut self, bytes: Vec<u8>, flavor: Flavor) -> Option<(Arc<str>, bool)> {
        let hit = match self.known.get(self.next) {
            Some((b, _, _)) if *b == bytes => Some(self.next),
            _ => self.known.iter().position(|(b, _, _)| *b == bytes),
        };
        let i = match hit {
            Some(i) => i,
            None => {
                let name: Arc<str> = Arc::from(std::str::from_utf8(&bytes).ok()?);
                let binary = flavor.is_binary(attribute_type(&name))
                    || name
                        .split(';')
                        .skip(1)
                        .any(|o| o.eq_ignore_ascii_case("binary"));
                self.known.push((bytes, name, binary));
                self.known.len() - 1
            }
        };
        self.next = i + 1;
        let (_, name, binary) = &self.known[i];
        Some((name.clone(), *binary))
    }
}

/// Parse a SearchResultEntry without panicking on malformed input:
/// `[APPLICATION 4] SEQUENCE { objectName, attributes SEQUENCE OF SEQUENCE { type, SET OF value } }`.
fn parse_entry(tag: StructureTag, flavor: Flavor, names: &mut Names) -> Result<Entry, String> {
    let mut parts = tag
        .match_id(4)
        .and_then(StructureTag::expect_constructed)
        .ok_or("the server sent a malformed search result entry")?
        .into_iter();
    let dn = parts
        .next()
        .and_then(StructureTag::expect_primitive)
        .ok_or("a search result entry without a DN")?;
    let dn = String::from_utf8(dn).map_err(|e| {
        format!(
            "an entry's DN is not UTF-8: {}",
            String::from_utf8_lossy(e.as_bytes())
        )
    })?;
    let attributes = match parts.next() {
        Some(StructureTag {
            payload: PL::C(attributes),
            ..
        }) => attributes,
        Some(_) => return Err(format!("entry {dn}: malformed attribute list")),
        None => Vec::new(),
    };
    let mut entry = Entry::with_capacity(dn, attributes.len());
    for attribute in attributes {
        let mut pieces = attribute
            .expect_constructed()
            .ok_or_else(|| format!("entry {}: malformed attribute", entry.dn))?
            .into_iter();
        let (name, binary) = pieces
            .next()
            .and_then(StructureTag::expect_primitive)
            .and_then(|n| names.intern(n, flavor))
            .ok_or_else(|| format!("entry {}: malformed attribute name", entry.dn))?;
        let values = pieces
            .next()
            .and_then(StructureTag::expect_constructed)
            .ok_or_else(|| format!("entry {}: attribute {name} has malformed values", entry.dn))?;
        for value in values {
            let bytes = value.expect_primitive().ok_or_else(|| {
                format!("entry {}: attribute {name} has a malformed value", entry.dn)
            })?;
            entry.push_shared(&name, AttrValue::from_bytes(bytes, binary));
        }
    }
    Ok(entry)
}

/// The entry's anchor per flavor (SPEC §2): AD objectGUID in `guid` form, OpenLDAP entryUUID
/// (lowercase), generic the normalised DN.
pub(crate) fn anchor(entry: &Entry, flavor: Flavor) -> Result<String, String> {
    match flavor {
        Flavor::ActiveDirectory => match entry.first("objectGUID") {
            Some(value) => {
                let bytes: &[u8; 16] = value.as_bytes().try_into().map_err(|_| {
                    format!(
                        "entry {}: objectGUID has {} bytes, not 16",
                        entry.dn,
                        value.as_bytes().len()
                    )
                })?;
                Ok(guid_from_bytes(bytes))
            }
            None => Err(format!("entry {} has no objectGUID", entry.dn)),
        },
        Flavor::Openldap => match entry.first_text("entryUUID") {
            Some(uuid) => Ok(uuid.trim().to_ascii_lowercase()),
            None => Err(format!("entry {} has no entryUUID", entry.dn)),
        },
        Flavor::Generic => Ok(normalized_dn(&entry.dn)),
    }
}

/// The normalised form of a DN; the text itself when it does not parse.
pub(crate) fn normalized_dn(dn: &str) -> String {
    Dn::parse(dn).map_or_else(|_| dn.to_string(), |d| d.normalized())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::{ASNTag, OctetString, Sequence, Set, Tag, TagClass};

    fn octets(b: &[u8]) -> Tag {
        Tag::OctetString(OctetString {
            inner: b.to_vec(),
            ..Default::default()
        })
    }

    fn entry_tag(dn: &[u8], attrs: &[(&str, &[&[u8]])]) -> StructureTag {
        Tag::Sequence(Sequence {
            id: 4,
            class: TagClass::Application,
            inner: vec![
                octets(dn),
                Tag::Sequence(Sequence {
                    inner: attrs
                        .iter()
                        .map(|(name, values)| {
                            Tag::Sequence(Sequence {
                                inner: vec![
                                    octets(name.as_bytes()),
                                    Tag::Set(Set {
                                        inner: values.iter().map(|v| octets(v)).collect(),
                                        ..Default::default()
                                    }),
                                ],
                                ..Default::default()
                            })
                        })
                        .collect(),
                    ..Default::default()
                }),
            ],
        })
        .into_structure()
    }

    #[test]
    fn entries_are_parsed_with_flavor_binary_attributes_and_anchor() {
        let guid = [
            0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc,
            0xde, 0xf0,
        ];
        let tag = entry_tag(
            b"CN=Ann,DC=x",
            &[
                ("objectGUID", &[&guid]),
                ("cn", &[b"Ann"]),
                ("photo", &[&[0xff, 0xfe]]),
                ("userAccountControl", &[b"514"]),
            ],
        );
        let entry = parse_entry(tag, Flavor::ActiveDirectory, &mut Names::default()).unwrap();
        assert!(matches!(
            entry.first("objectGUID"),
            Some(AttrValue::Binary(_))
        ));
        assert!(matches!(entry.first("photo"), Some(AttrValue::Binary(_))));
        assert_eq!(entry.first_text("CN"), Some("Ann"));
        assert_eq!(
            anchor(&entry, Flavor::ActiveDirectory).unwrap(),
            "12345678-1234-5678-1234-56789abcdef0"
        );
        assert_eq!(anchor(&entry, Flavor::Generic).unwrap(), "cn=ann,dc=x");
        assert!(anchor(&entry, Flavor::Openldap).is_err());
    }

    #[test]
    fn malformed_entries_are_errors_not_panics() {
        let not_entry = Tag::Sequence(Sequence {
            id: 5,
            class: TagClass::Application,
            inner: vec![],
        })
        .into_structure();
        assert!(parse_entry(not_entry, Flavor::Generic, &mut Names::default()).is_err());
        let empty = Tag::Sequence(Sequence {
            id: 4,
            class: TagClass::Application,
            inner: vec![],
        })
        .into_structure();
        assert!(parse_entry(empty, Flavor::Generic, &mut Names::default()).is_err());
        let bad_dn = entry_tag(&[0xff], &[]);
        assert!(parse_entry(bad_dn, Flavor::Generic, &mut Names::default()).is_err());
    }

    #[test]
    fn paging_cookie_missing_or_malformed() {
        assert_eq!(paged_cookie(&[]), Ok(None));
        let control: RawControl = PagedResults {
            size: 0,
            cookie: b"abc".to_vec(),
        }
        .into();
        let found = paged_cookie(&[Control(Some(ControlType::PagedResults), control)]);
        assert_eq!(found, Ok(Some(b"abc".to_vec())));
        let broken = RawControl {
            ctype: PAGED_RESULTS_OID.to_string(),
            crit: false,
            val: Some(vec![0x30, 0x05, 0x02]),
        };
        assert!(paged_cookie(&[Control(Some(ControlType::PagedResults), broken)]).is_err());
    }
}
