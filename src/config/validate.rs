//! Semantic validation: raw documents -> the model, collecting every problem with its location.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::diag::{Diagnostic, SourceMap};
use super::load::{Documents, Parsed, duplicates};
use super::model::{self, *};
use super::node::{Loc, Sp, did_you_mean};
use super::rate::Rate;
use super::raw::{self, SecretRefRaw};
use super::secret::{SecretRef, is_sensitive_key};
use super::syntax;
use crate::carbonite::profile;
use crate::template::{self, EngineSettings, Escape, TemplateEngine, Usage};

pub struct Validator<'a> {
    dir: &'a Path,
    sources: &'a SourceMap,
    diags: Vec<Diagnostic>,
    /// Built from the Integration's templates settings and formats; checks every template.
    engine: Option<TemplateEngine>,
}

impl<'a> Validator<'a> {
    pub fn new(dir: &'a Path, sources: &'a SourceMap) -> Self {
        Validator {
            dir,
            sources,
            diags: Vec::new(),
            engine: None,
        }
    }

    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diags
    }

    fn err(&mut self, loc: Loc, msg: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(Diagnostic::at(loc, msg));
        self.diags.last_mut().expect("just pushed")
    }

    fn resolve_path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// Validate everything; `None` when the model could not be built (diagnostics say why).
    pub fn validate(&mut self, docs: Documents) -> Option<Config> {
        self.check_names(&docs);

        let integration = match docs.integrations.as_slice() {
            [] if docs.failed_kinds.contains("Integration") => None,
            [] => {
                self.diags.push(
                    Diagnostic::new(
                        "no Integration document found: exactly one is required",
                        None,
                    )
                    .with_hint(
                        "add a document with `kind: Integration` (see `carbonite-sync init`)",
                    ),
                );
                None
            }
            [one] => self.integration(one),
            [first, rest @ ..] => {
                for other in rest {
                    self.err(
                        other.doc.kind.loc,
                        "a second Integration: exactly one is allowed",
                    )
                    .hint = Some(format!(
                        "the first is at {}",
                        self.sources.position(&first.doc.kind.loc)
                    ));
                }
                self.integration(first)
            }
        };

        let endpoints = self.endpoints(&docs.endpoints);
        let webhooks = self.webhooks(&docs.webhooks, integration.as_ref());
        let extra_fields: Vec<String> = integration
            .as_ref()
            .map(|i| i.carbonite.extra_fields.clone())
            .unwrap_or_default();
        let flavor = integration
            .as_ref()
            .map(|i| i.directory.flavor)
            .unwrap_or_default();
        let is_ldif = integration
            .as_ref()
            .is_some_and(|i| matches!(i.directory.source, DirectorySource::Ldif { .. }));
        let base_dn = integration
            .as_ref()
            .map(|i| i.directory.base_dn().to_string())
            .unwrap_or_default();
        let mappings = self.mappings(
            &docs.mappings,
            &endpoints,
            &extra_fields,
            &base_dn,
            is_ldif,
            flavor,
        );
        let orchestrations = self.orchestrations(&docs.orchestrations, &webhooks, &extra_fields);

        let integration = integration?;
        if !self.diags.is_empty() {
            return None;
        }
        Some(Config {
            dir: self.dir.to_path_buf(),
            sources: SourceMap::default(),
            integration,
            mappings,
            endpoints,
            webhooks,
            orchestrations,
        })
    }

    /// Names: DNS labels, unique per kind (a user Endpoint may override a built-in one).
    fn check_names(&mut self, docs: &Documents) {
        fn names<S>(v: &[Parsed<S>]) -> impl Iterator<Item = &Sp<String>> {
            v.iter()
                .filter(|p| !p.builtin)
                .map(|p| &p.doc.metadata.name)
        }
        let all: Vec<(&str, Vec<&Sp<String>>)> = vec![
            ("Integration", names(&docs.integrations).collect()),
            ("Mapping", names(&docs.mappings).collect()),
            ("Endpoint", names(&docs.endpoints).collect()),
            ("Webhook", names(&docs.webhooks).collect()),
            ("Orchestration", names(&docs.orchestrations).collect()),
        ];
        for (kind, list) in all {
            for n in &list {
                if !is_dns_label(&n.value) {
                    self.err(n.loc, format!("invalid name `{}`", n.value)).hint = Some(
                        "names are DNS labels: lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters".into(),
                    );
                }
            }
            for (dup, first) in duplicates(list.into_iter()) {
                let pos = self.sources.position(&first);
                self.err(dup.loc, format!("duplicate {kind} name `{}`", dup.value))
                    .hint = Some(format!("first defined at {pos}"));
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Integration

    fn integration(&mut self, p: &Parsed<raw::IntegrationSpec>) -> Option<Integration> {
        let spec = &p.doc.spec;
        let directory = self.directory(&spec.directory);
        let carbonite = self.carbonite(&spec.carbonite);
        let policy = self.policy(&spec.policy);
        let mut formats = BTreeMap::new();
        for (name, tpl) in spec.formats.iter() {
            if !is_identifier(&name.value) {
                self.err(name.loc, format!("invalid format name `{}`", name.value))
                    .hint = Some(
                    "format names are identifiers (letters, digits, `_`), usable as `formats.NAME`"
                        .into(),
                );
            }
            formats.insert(name.value.clone(), tpl.value.clone());
        }
        let undefined = match spec.templates.undefined.unwrap_or_default() {
            UndefinedMode::Lenient => template::Undefined::Lenient,
            UndefinedMode::Strict => template::Undefined::Strict,
        };
        match TemplateEngine::new(EngineSettings {
            undefined,
            formats: formats.clone(),
        }) {
            Ok(engine) => self.engine = Some(engine),
            Err(issues) => {
                for fi in issues {
                    let loc = spec
                        .formats
                        .iter()
                        .find(|(k, _)| k.value == fi.format)
                        .map(|(_, v)| v.loc);
                    match loc {
                        Some(loc) => {
                            let at =
                                template_loc(loc, fi.issue.line, fi.issue.column, self.sources);
                            self.err(at, format!("template: {}", fi.issue.message));
                        }
                        None => self.diags.push(Diagnostic::new(
                            format!("format `{}`: {}", fi.format, fi.issue.message),
                            None,
                        )),
                    }
                }
            }
        }
        Some(Integration {
            name: p.doc.metadata.name.value.clone(),
            directory: directory?,
            carbonite: carbonite?,
            policy: policy?,
            templates: Templates {
                undefined: spec.templates.undefined.unwrap_or_default(),
                formats,
            },
        })
    }

    fn directory(&mut self, d: &Sp<raw::DirectoryRaw>) -> Option<Directory> {
        let flavor = d.flavor.as_ref().map(|f| f.value).unwrap_or_default();
        let disabled_filter = match &d.disabled_filter {
            Some(f) => {
                // Always evaluated client-side: it must be in the supported subset.
                self.filter(f, true);
                Some(f.value.clone())
            }
            None => flavor.default_disabled_filter().map(str::to_string),
        };
        let source = match (&d.ldap, &d.ldif) {
            (Some(_), Some(ldif)) => {
                self.err(ldif.loc, "give exactly one of `ldap` or `ldif`, not both");
                return None;
            }
            (None, None) => {
                self.err(
                    d.loc,
                    "the directory needs a source: `ldap` (a server) or `ldif` (a file)",
                );
                return None;
            }
            (Some(l), None) => DirectorySource::Ldap(self.ldap(l)?),
            (None, Some(l)) => {
                self.dn(&l.base_dn);
                if l.path.value.trim().is_empty() {
                    self.err(l.path.loc, "the LDIF path is empty");
                }
                DirectorySource::Ldif {
                    path: self.resolve_path(&l.path.value),
                    base_dn: l.base_dn.value.clone(),
                }
            }
        };
        Some(Directory {
            flavor,
            disabled_filter,
            source,
        })
    }

    fn ldap(&mut self, l: &Sp<raw::LdapRaw>) -> Option<LdapSettings> {
        let url = &l.url;
        match url::Url::parse(&url.value) {
            Ok(u) if u.scheme() == "ldap" || u.scheme() == "ldaps" => {
                if u.host_str().is_none_or(str::is_empty) {
                    self.err(url.loc, format!("LDAP URL `{}` has no host", url.value));
                }
                if u.scheme() == "ldaps" && l.start_tls == Some(true) {
                    self.err(
                        url.loc,
                        "`startTls: true` is for ldap:// URLs; ldaps:// is already TLS",
                    );
                }
            }
            Ok(u) => {
                self.err(url.loc, format!("unsupported URL scheme `{}`", u.scheme()))
                    .hint = Some(
                    "use ldap://host:389 (with `startTls: true` for StartTLS) or ldaps://host:636"
                        .into(),
                );
            }
            Err(e) => {
                self.err(url.loc, format!("invalid LDAP URL `{}`: {e}", url.value))
                    .hint = Some("for example ldaps://dc1.corp.example:636".into());
            }
        }
        // Active Directory also binds by user principal name (`svc@corp.example`) or
        // down-level logon name (`CORP\svc`); anything else must be a DN.
        if let Some(b) = &l.bind_dn
            && !is_ad_logon_name(&b.value)
        {
            self.dn(b);
        }
        self.dn(&l.base_dn);
        let password = l
            .password
            .as_ref()
            .and_then(|p| self.secret_ref(p, "the bind password"));
        if l.bind_dn.is_none() && l.password.is_some() {
            self.err(l.loc, "`password` without `bindDn`: give the DN to bind as");
        }
        let page_size = match &l.page_size {
            Some(v) if !(1..=100_000).contains(&v.value) => {
                self.err(
                    v.loc,
                    format!("pageSize must be between 1 and 100000, got {}", v.value),
                );
                1000
            }
            Some(v) => v.value as u32,
            None => 1000,
        };
        let timeout = self.duration(l.timeout.as_ref(), Duration::from_secs(30));
        let tls = l.tls.as_ref();
        Some(LdapSettings {
            url: url.value.clone(),
            start_tls: l.start_tls.unwrap_or(false),
            bind_dn: l.bind_dn.as_ref().map(|b| b.value.clone()),
            password,
            base_dn: l.base_dn.value.clone(),
            page_size,
            timeout,
            ca_file: tls
                .and_then(|t| t.ca_file.as_ref())
                .map(|c| self.resolve_path(&c.value)),
            insecure_skip_verify: tls.and_then(|t| t.insecure_skip_verify).unwrap_or(false),
        })
    }

    fn carbonite(&mut self, c: &Sp<raw::CarboniteRaw>) -> Option<Carbonite> {
        let target = match (&c.region, &c.base_url, &c.emulator) {
            (None, None, None) => {
                self.err(
                    c.loc,
                    "Carbonite needs one of `region`, `baseUrl` or `emulator`",
                )
                .hint =
                    Some("e.g. `region: us`, or `emulator: {}` to try things out locally".into());
                None
            }
            (Some(r), None, None) => match raw::Region::parse(&r.value) {
                Some(region) => Some(CarboniteTarget::Url(region.base_url())),
                None => {
                    let d = self.err(
                        r.loc,
                        format!(
                            "unknown region `{}`, expected one of us, emea, apac, fr",
                            r.value
                        ),
                    );
                    d.hint = Some(
                        match did_you_mean(&r.value, raw::Region::NAMES.iter().copied()) {
                            Some(s) => format!(
                                "did you mean `{s}`? (or give `baseUrl` for a white-label vault)"
                            ),
                            None => "or give `baseUrl` for a white-label vault".into(),
                        },
                    );
                    None
                }
            },
            (None, Some(u), None) => {
                match url::Url::parse(&u.value) {
                    Ok(parsed)
                        if matches!(parsed.scheme(), "https" | "http")
                            && parsed.host_str().is_some() =>
                    {
                        if parsed.query().is_some() || parsed.fragment().is_some() {
                            self.err(u.loc, "baseUrl must not have a query or fragment");
                        }
                    }
                    Ok(parsed) => {
                        self.err(
                            u.loc,
                            format!(
                                "baseUrl must be an http(s) URL, got scheme `{}`",
                                parsed.scheme()
                            ),
                        );
                    }
                    Err(e) => {
                        self.err(u.loc, format!("invalid baseUrl `{}`: {e}", u.value))
                            .hint = Some("for example https://blue.mysecuredatavault.com".into());
                    }
                }
                Some(CarboniteTarget::Url(
                    u.value.trim_end_matches('/').to_string(),
                ))
            }
            (None, None, Some(e)) => Some(CarboniteTarget::Emulator {
                seed: e.seed.as_ref().map(|s| self.resolve_path(&s.value)),
            }),
            _ => {
                let loc = [
                    c.base_url.as_ref().map(|u| u.loc),
                    c.emulator.as_ref().map(|e| e.loc),
                ]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(c.loc);
                self.err(loc, "give exactly one of `region`, `baseUrl` or `emulator`");
                None
            }
        };
        let auth = match &c.auth {
            None => {
                if !matches!(target, Some(CarboniteTarget::Emulator { .. })) && target.is_some() {
                    self.err(c.loc, "Carbonite needs `auth`: `apiKey` or `bearerToken`").hint = Some(
                        "auth: { apiKey: { email: admin@corp.example, secret: { env: CARBONITE_API_KEY_SECRET } } }".into(),
                    );
                }
                None
            }
            Some(a) => match (&a.api_key, &a.bearer_token) {
                (Some(k), None) => {
                    if !k.email.value.contains('@') {
                        self.err(
                            k.email.loc,
                            format!("`{}` is not an email address", k.email.value),
                        );
                    }
                    self.secret_ref(&k.secret, "the API key secret")
                        .map(|secret| Auth::ApiKey {
                            email: k.email.value.clone(),
                            secret,
                        })
                }
                (None, Some(t)) => self
                    .secret_ref(t, "the bearer token")
                    .map(Auth::BearerToken),
                _ => {
                    self.err(a.loc, "give exactly one of `apiKey` or `bearerToken`");
                    None
                }
            },
        };
        let rl = c.rate_limits.as_ref();
        let per_route = self.rate(rl.and_then(|r| r.per_route.as_ref()), "50/1h");
        let user_creates = self.rate(rl.and_then(|r| r.user_creates.as_ref()), "100/1h");
        let concurrency = match &c.concurrency {
            Some(v) if !(1..=64).contains(&v.value) => {
                self.err(
                    v.loc,
                    format!("concurrency must be between 1 and 64, got {}", v.value),
                );
                4
            }
            Some(v) => v.value as u32,
            None => 4,
        };
        let timeout = self.duration(c.timeout.as_ref(), Duration::from_secs(30));
        let mut routes = profile::default_routes();
        for (name, value) in c.routes.iter() {
            let Some(route) = self.route(value) else {
                continue;
            };
            match name.value.as_str() {
                "getUser" => routes.get_user = route,
                "createUser" => routes.create_user = route,
                "updateUser" => routes.update_user = route,
                "deleteUser" => routes.delete_user = route,
                other => {
                    let d = self.err(name.loc, format!("unknown route `{other}`, expected one of getUser, createUser, updateUser, deleteUser"));
                    if let Some(s) = did_you_mean(other, profile::ROUTE_NAMES.iter().copied()) {
                        d.hint = Some(format!("did you mean `{s}`?"));
                    }
                }
            }
        }
        let mut extra_fields = Vec::new();
        for f in &c.extra_fields {
            if !is_identifier(&f.value) {
                self.err(f.loc, format!("invalid field name `{}`", f.value));
            } else if USER_FIELDS.contains(&f.value.as_str()) {
                self.err(f.loc, format!("`{}` is already a User field", f.value));
            } else {
                extra_fields.push(f.value.clone());
            }
        }
        Some(Carbonite {
            target: target?,
            auth,
            rate_limits: RateLimits {
                per_route,
                user_creates,
            },
            concurrency,
            timeout,
            routes,
            extra_fields,
        })
    }

    fn route(&mut self, v: &Sp<String>) -> Option<Route> {
        let mut parts = v.value.split_whitespace();
        let (Some(m), Some(p), None) = (parts.next(), parts.next(), parts.next()) else {
            self.err(v.loc, format!("invalid route `{}`", v.value)).hint =
                Some("write METHOD PATH, e.g. `PATCH /api/users/{UserId}`".into());
            return None;
        };
        let method = m.to_ascii_uppercase();
        if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
            self.err(v.loc, format!("unsupported HTTP method `{m}`"));
            return None;
        }
        if !p.starts_with('/') {
            self.err(v.loc, format!("route path `{p}` must start with `/`"));
            return None;
        }
        Some(Route {
            method,
            path: p.to_string(),
        })
    }

    fn policy(&mut self, p: &raw::PolicyRaw) -> Option<Policy> {
        let (count, percent) = match &p.max_destructive {
            None => (Some(25), Some(5.0)),
            Some(m) => (
                m.count
                    .as_ref()
                    .and_then(|c| self.non_negative(c).map(|v| v as u64)),
                m.percent.as_ref().and_then(|c| self.percent(c)),
            ),
        };
        let min_source_entries = p
            .min_source_entries
            .as_ref()
            .and_then(|v| self.non_negative(v))
            .unwrap_or(1) as u64;
        let shrink = p
            .max_source_shrink_percent
            .as_ref()
            .and_then(|v| self.percent(v))
            .unwrap_or(20.0);
        Some(Policy {
            create: p.create.unwrap_or(true),
            update: p.update.unwrap_or(true),
            orphans: p.orphans.unwrap_or_default(),
            max_destructive_count: count,
            max_destructive_percent: percent,
            min_source_entries,
            max_source_shrink_percent: shrink,
        })
    }

    fn non_negative(&mut self, v: &Sp<i64>) -> Option<i64> {
        if v.value < 0 {
            self.err(v.loc, format!("must not be negative, got {}", v.value));
            None
        } else {
            Some(v.value)
        }
    }

    fn percent(&mut self, v: &Sp<f64>) -> Option<f64> {
        if !(0.0..=100.0).contains(&v.value) {
            self.err(
                v.loc,
                format!("a percentage must be between 0 and 100, got {}", v.value),
            );
            None
        } else {
            Some(v.value)
        }
    }

    fn duration(&mut self, v: Option<&Sp<String>>, default: Duration) -> Duration {
        let Some(v) = v else { return default };
        match humantime::parse_duration(v.value.trim()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.err(v.loc, "the duration must be positive");
                default
            }
            Err(e) => {
                self.err(v.loc, format!("invalid duration `{}`: {e}", v.value))
                    .hint = Some("write e.g. 500ms, 30s, 1h30m".into());
                default
            }
        }
    }

    fn rate(&mut self, v: Option<&Sp<String>>, default: &str) -> Rate {
        let fallback: Rate = default.parse().expect("built-in default rates parse");
        let Some(v) = v else { return fallback };
        match v.value.parse::<Rate>() {
            Ok(r) => r,
            Err(e) => {
                self.err(v.loc, e.to_string()).hint =
                    Some("write N/DURATION, e.g. 50/1h or 5/2s".into());
                fallback
            }
        }
    }

    fn secret_ref(&mut self, v: &Sp<SecretRefRaw>, what: &str) -> Option<SecretRef> {
        match &v.value {
            SecretRefRaw::Env(name) => {
                if name.value.trim().is_empty() {
                    self.err(name.loc, "empty environment variable name");
                    return None;
                }
                Some(SecretRef::Env(name.value.clone()))
            }
            SecretRefRaw::File(path) => Some(SecretRef::File(self.resolve_path(&path.value))),
            SecretRefRaw::Literal => {
                self.err(
                    v.loc,
                    format!("{what} is written as a literal: secrets must never be in the config"),
                )
                .hint = Some("use `{ env: VARIABLE }` or `{ file: path }`".into());
                None
            }
            SecretRefRaw::Invalid(msg) => {
                self.err(v.loc, msg.clone());
                None
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Syntax of embedded languages

    fn filter(&mut self, f: &Sp<String>, client_side: bool) {
        if let Err(e) = syntax::check_filter(&f.value, client_side) {
            let chars = f
                .value
                .get(..e.offset)
                .map(|p| p.chars().count())
                .unwrap_or(0);
            let loc = shift(f.loc, chars, self.sources);
            self.err(loc, format!("invalid LDAP filter: {}", e.message))
                .hint = e.hint;
        }
    }

    fn dn(&mut self, d: &Sp<String>) {
        if let Err(e) = syntax::check_dn(&d.value) {
            self.err(d.loc, format!("invalid DN `{}`: {e}", d.value)).hint =
                Some("a DN is a comma-separated list of attr=value, e.g. OU=Staff,DC=corp,DC=example; escape commas in values as `\\,`".into());
        }
    }

    fn engine(&mut self) -> &TemplateEngine {
        self.engine.get_or_insert_with(|| {
            TemplateEngine::new(EngineSettings::default())
                .expect("an engine without formats always builds")
        })
    }

    fn template(&mut self, t: &Sp<String>, usage: Usage) {
        let issues = self.engine().check(&t.value, usage);
        for issue in issues {
            let loc = template_loc(t.loc, issue.line, issue.column, self.sources);
            self.err(loc, format!("template: {}", issue.message));
        }
    }

    fn condition(&mut self, t: &Sp<String>) {
        let issues = self.engine().check_expression(&t.value, Usage::Condition);
        for issue in issues {
            let loc = template_loc(t.loc, issue.line, issue.column, self.sources);
            self.err(loc, format!("condition: {}", issue.message));
        }
    }

    // -----------------------------------------------------------------------------------------
    // Endpoints, webhooks, mappings, orchestrations

    fn endpoints(&mut self, list: &[Parsed<raw::EndpointSpec>]) -> BTreeMap<String, Endpoint> {
        let mut out = BTreeMap::new();
        // Built-ins first, user documents override by name.
        let (builtin, user): (Vec<_>, Vec<_>) = list.iter().partition(|p| p.builtin);
        for p in builtin.into_iter().chain(user) {
            if let Some(e) = self.endpoint(p) {
                out.insert(e.name.clone(), e);
            }
        }
        out
    }

    fn endpoint(&mut self, p: &Parsed<raw::EndpointSpec>) -> Option<Endpoint> {
        let s = &p.doc.spec;
        let name = p.doc.metadata.name.value.clone();
        let method = match &s.method {
            Some(m) => {
                let up = m.value.to_ascii_uppercase();
                if !["GET", "POST"].contains(&up.as_str()) {
                    self.err(
                        m.loc,
                        format!(
                            "an inbound endpoint lists accounts with GET or POST, not `{}`",
                            m.value
                        ),
                    );
                }
                up
            }
            None => "GET".into(),
        };
        let target = match (&s.path, &s.url) {
            (Some(path), None) => {
                if !path.value.starts_with('/') {
                    self.err(path.loc, format!("path `{}` must start with `/` (it is relative to the Carbonite base URL)", path.value));
                }
                Some(EndpointTarget::Path(path.value.clone()))
            }
            (None, Some(u)) => {
                self.absolute_url(u);
                Some(EndpointTarget::Url(u.value.clone()))
            }
            (Some(_), Some(u)) => {
                self.err(u.loc, "give `path` or `url`, not both");
                None
            }
            (None, None) => {
                self.err(
                    p.doc.metadata.name.loc,
                    format!("Endpoint `{name}` needs `path` or `url`"),
                );
                None
            }
        };
        let query = self.request_values(&s.query, "query parameter", Usage::EndpointQuery);
        let headers = self.request_values(&s.headers, "header", Usage::EndpointHeader);
        let pagination = match &s.pagination {
            None => Pagination {
                style: PaginationStyle::None,
                param: None,
                start: 0,
                size_param: None,
                size: None,
                total: None,
                next: None,
            },
            Some(pg) => self.pagination(pg, &s.query),
        };
        self.pointer(&s.items);
        if let Some(id) = &s.id {
            self.pointer(id);
        }
        Some(Endpoint {
            name,
            method,
            target: target?,
            query,
            headers,
            pagination,
            items: s.items.value.clone(),
            id: s.id.as_ref().map(|i| i.value.clone()),
            for_each_company: s.for_each.is_some(),
            builtin: p.builtin,
        })
    }

    fn pagination(
        &mut self,
        pg: &Sp<raw::PaginationRaw>,
        query: &raw::OrderedMap<Sp<String>>,
    ) -> Pagination {
        let style = pg.style.value;
        let needs_param = matches!(style, PaginationStyle::PageNumber | PaginationStyle::Offset);
        if needs_param && pg.param.is_none() {
            self.err(
                pg.loc,
                "pagination styles `pageNumber` and `offset` need `param`",
            );
        }
        if style == PaginationStyle::NextLink && pg.next.is_none() {
            self.err(
                pg.loc,
                "pagination style `nextLink` needs `next` (a JSON pointer to the next page's URL)",
            );
        }
        for p in [&pg.param, &pg.size_param].into_iter().flatten() {
            if let Some((k, _)) = query.iter().find(|(k, _)| k.value == p.value) {
                self.err(
                    k.loc,
                    format!(
                        "query key `{}` is the pagination parameter: pagination sets it",
                        k.value
                    ),
                );
            }
        }
        let size = match &pg.size {
            Some(v) if v.value < 1 => {
                self.err(v.loc, "page size must be at least 1");
                None
            }
            Some(v) => Some(v.value.min(u32::MAX as i64) as u32),
            None => None,
        };
        if size.is_some() && pg.size_param.is_none() {
            self.err(
                pg.loc,
                "`size` needs `sizeParam` (the query parameter that carries it)",
            );
        }
        for p in [&pg.total, &pg.next].into_iter().flatten() {
            self.pointer(p);
        }
        Pagination {
            style,
            param: pg.param.as_ref().map(|p| p.value.clone()),
            start: pg.start.as_ref().map(|s| s.value).unwrap_or(
                if style == PaginationStyle::PageNumber {
                    1
                } else {
                    0
                },
            ),
            size_param: pg.size_param.as_ref().map(|p| p.value.clone()),
            size,
            total: pg.total.as_ref().map(|p| p.value.clone()),
            next: pg.next.as_ref().map(|p| p.value.clone()),
        }
    }

    fn pointer(&mut self, p: &Sp<String>) {
        if !(p.value.is_empty() || p.value.starts_with('/')) {
            self.err(p.loc, format!("`{}` is not a JSON pointer", p.value))
                .hint = Some(format!("JSON pointers start with `/`, e.g. `/{}`", p.value));
        }
    }

    fn absolute_url(&mut self, u: &Sp<String>) {
        // Templated URLs are checked after removing the template parts.
        let probe = strip_template_tags(&u.value);
        match url::Url::parse(&probe) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
            Ok(parsed) => {
                self.err(
                    u.loc,
                    format!("URL must be http(s), got scheme `{}`", parsed.scheme()),
                );
            }
            Err(e) => {
                self.err(u.loc, format!("invalid URL `{}`: {e}", u.value));
            }
        }
    }

    /// Check the headers or query parameters of a request: no literal secrets, valid templates.
    fn request_values(
        &mut self,
        map: &raw::OrderedMap<Sp<String>>,
        what: &str,
        usage: Usage,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (k, v) in map.iter() {
            self.request_value(k, v, what);
            self.template(v, usage);
            out.push((k.value.clone(), v.value.clone()));
        }
        out
    }

    /// A header or query value: sensitive keys must take their value from `secret()`.
    fn request_value(&mut self, k: &Sp<String>, v: &Sp<String>, what: &str) {
        if is_sensitive_key(&k.value) && !v.value.contains("secret(") {
            self.err(
                v.loc,
                format!("{what} `{}` holds a literal secret", k.value),
            )
            .hint = Some("take it from a secret: \"Bearer {{ secret('HELPDESK_TOKEN') }}\"".into());
        }
    }

    fn webhooks(
        &mut self,
        list: &[Parsed<raw::WebhookSpec>],
        integration: Option<&Integration>,
    ) -> BTreeMap<String, Webhook> {
        let default_timeout = integration
            .map(|i| i.carbonite.timeout)
            .unwrap_or(Duration::from_secs(30));
        let mut out = BTreeMap::new();
        for p in list {
            let s = &p.doc.spec;
            let name = p.doc.metadata.name.value.clone();
            let target = match (&s.url, &s.target, &s.path) {
                (Some(u), None, None) => {
                    self.absolute_url(u);
                    self.template(u, Usage::WebhookUrl);
                    Some(WebhookTarget::Url(u.value.clone()))
                }
                (None, Some(_), Some(path)) => {
                    if !path.value.starts_with('/') {
                        self.err(path.loc, "a Carbonite path must start with `/`");
                    }
                    self.template(path, Usage::WebhookUrl);
                    Some(WebhookTarget::Carbonite {
                        path: path.value.clone(),
                    })
                }
                (None, Some(t), None) => {
                    self.err(t.loc, "`target: carbonite` needs `path`");
                    None
                }
                (None, None, Some(path)) => {
                    self.err(
                        path.loc,
                        "`path` goes with `target: carbonite`; for another service give `url`",
                    );
                    None
                }
                (None, None, None) => {
                    self.err(
                        p.doc.metadata.name.loc,
                        format!("Webhook `{name}` needs `url`, or `target: carbonite` with `path`"),
                    );
                    None
                }
                (Some(u), _, _) => {
                    self.err(
                        u.loc,
                        "give `url`, or `target: carbonite` with `path`, not both",
                    );
                    None
                }
            };
            let method = match &s.method {
                Some(m) => {
                    let up = m.value.to_ascii_uppercase();
                    if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&up.as_str()) {
                        self.err(m.loc, format!("unsupported HTTP method `{}`", m.value));
                    }
                    up
                }
                None => "POST".into(),
            };
            let headers = self.request_values(&s.headers, "header", Usage::WebhookHeader);
            let query = self.request_values(&s.query, "query parameter", Usage::WebhookQuery);
            if let Some(b) = &s.body {
                let escape = match s.message_type.unwrap_or_default() {
                    MessageType::Json => Escape::Json,
                    MessageType::Form => Escape::Form,
                    MessageType::Xml => Escape::Xml,
                    MessageType::Text => Escape::Text,
                };
                self.template(b, Usage::WebhookBody(escape));
            }
            let mut expect_status = Vec::new();
            for st in &s.expect_status {
                if !(100..=599).contains(&st.value) {
                    self.err(st.loc, format!("{} is not an HTTP status", st.value));
                } else {
                    expect_status.push(st.value as u16);
                }
            }
            let timeout = self.duration(s.timeout.as_ref(), default_timeout);
            if let Some(target) = target {
                out.insert(
                    name.clone(),
                    Webhook {
                        name,
                        method,
                        target,
                        headers,
                        query,
                        timeout,
                        message_type: s.message_type.unwrap_or_default(),
                        body: s.body.as_ref().map(|b| b.value.clone()),
                        expect_status,
                    },
                );
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)] // the context a mapping is checked against
    fn mappings(
        &mut self,
        list: &[Parsed<raw::MappingSpec>],
        endpoints: &BTreeMap<String, Endpoint>,
        extra_fields: &[String],
        base_dn: &str,
        is_ldif: bool,
        _flavor: Flavor,
    ) -> Vec<Mapping> {
        let fields: Vec<&str> = USER_FIELDS
            .iter()
            .copied()
            .chain(extra_fields.iter().map(String::as_str))
            .collect();
        let mut out = Vec::new();
        // endpoint name -> (key field, where it was set)
        let mut key_by_endpoint: BTreeMap<String, (String, Loc)> = BTreeMap::new();
        for p in list {
            let s = &p.doc.spec;
            let name = p.doc.metadata.name.value.clone();
            let src = &s.source;
            if let Some(b) = &src.base_dn {
                self.dn(b);
            }
            self.filter(&src.filter, is_ldif);
            let endpoint_names: Vec<Sp<String>> = match &s.endpoint {
                None => vec![Sp::new(profile::USERS.to_string(), p.loc)],
                Some(e) => e.value.0.clone(),
            };
            if endpoint_names.is_empty()
                && let Some(e) = &s.endpoint
            {
                self.err(e.loc, "list at least one endpoint");
            }
            for e in &endpoint_names {
                if !endpoints.contains_key(&e.value) {
                    let d = self.err(e.loc, format!("unknown Endpoint `{}`", e.value));
                    d.hint = Some(
                        match did_you_mean(&e.value, endpoints.keys().map(String::as_str)) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!(
                                "defined endpoints: {}",
                                endpoints.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        },
                    );
                }
            }
            let pk = &s.primary_key;
            self.ldap_attr(&pk.ldap);
            self.field(&pk.carbonite, &fields);
            if pk.carbonite.value == "UserId" {
                self.err(
                    pk.carbonite.loc,
                    "`UserId` is assigned by Carbonite and cannot be the key field",
                )
                .hint = Some("use a field the tool can write, e.g. UserCustom1".into());
            }
            for e in &endpoint_names {
                match key_by_endpoint.get(&e.value) {
                    Some((field, first)) if *field != pk.carbonite.value => {
                        let pos = self.sources.position(first);
                        self.err(pk.carbonite.loc, format!(
                            "mappings reading endpoint `{}` must share the key field: this one uses `{}`, another uses `{field}`",
                            e.value, pk.carbonite.value
                        ))
                        .hint = Some(format!("the other key field is set at {pos}"));
                    }
                    Some(_) => {}
                    None => {
                        key_by_endpoint.insert(
                            e.value.clone(),
                            (pk.carbonite.value.clone(), pk.carbonite.loc),
                        );
                    }
                }
            }
            let mut correlate = Vec::new();
            for c in &s.correlate {
                self.ldap_attr(&c.ldap);
                self.field(&c.carbonite, &fields);
                if c.carbonite.value == pk.carbonite.value {
                    self.err(c.carbonite.loc, "correlating on the key field is pointless: correlation is for accounts without a key");
                }
                correlate.push(Correlate {
                    ldap: c.ldap.value.clone(),
                    carbonite: c.carbonite.value.clone(),
                    compare: c.compare.unwrap_or_default(),
                });
            }
            let mut attributes = Vec::new();
            let mut seen = BTreeSet::new();
            for (field, rule) in s.attributes.iter() {
                self.field(field, &fields);
                if field.value == pk.carbonite.value {
                    self.err(field.loc, format!("`{}` is the key field: it is written from `primaryKey`, not from a rule", field.value)).hint =
                        Some(format!("remove this rule; the key comes from the LDAP attribute `{}`", pk.ldap.value));
                }
                if field.value == "UserId" {
                    self.err(
                        field.loc,
                        "`UserId` is assigned by Carbonite and cannot be mapped",
                    );
                }
                if !seen.insert(field.value.clone()) {
                    self.err(
                        field.loc,
                        format!("field `{}` is mapped twice", field.value),
                    );
                }
                let r = match &rule.value {
                    raw::AttributeRuleRaw::Template(t) => {
                        self.template(&Sp::new(t.clone(), rule.loc), Usage::Attribute);
                        AttributeRule {
                            field: field.value.clone(),
                            value: t.clone(),
                            compare: Compare::Exact,
                            create_only: false,
                            strength: Strength::Strong,
                            omit_if_empty: false,
                        }
                    }
                    raw::AttributeRuleRaw::Rule(full) => {
                        self.template(&full.value, Usage::Attribute);
                        AttributeRule {
                            field: field.value.clone(),
                            value: full.value.value.clone(),
                            compare: full.compare.unwrap_or_default(),
                            create_only: full.create_only.unwrap_or(false),
                            strength: full.strength.unwrap_or_default(),
                            omit_if_empty: full.omit_if_empty.unwrap_or(false),
                        }
                    }
                };
                attributes.push(r);
            }
            out.push(Mapping {
                name,
                description: p.doc.metadata.description.clone(),
                labels: p
                    .doc
                    .metadata
                    .labels
                    .iter()
                    .map(|(k, v)| (k.value.clone(), v.clone()))
                    .collect(),
                source: SourceSpec {
                    base_dn: src
                        .base_dn
                        .as_ref()
                        .map(|b| b.value.clone())
                        .unwrap_or_else(|| base_dn.to_string()),
                    scope: match src.scope.unwrap_or_default() {
                        raw::ScopeRaw::Base => Scope::Base,
                        raw::ScopeRaw::One => Scope::One,
                        raw::ScopeRaw::Subtree => Scope::Subtree,
                    },
                    filter: src.filter.value.clone(),
                },
                endpoints: endpoint_names.into_iter().map(|e| e.value).collect(),
                primary_key: KeyPair {
                    ldap: pk.ldap.value.clone(),
                    carbonite: pk.carbonite.value.clone(),
                },
                correlate,
                attributes,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn ldap_attr(&mut self, a: &Sp<String>) {
        let ok = !a.value.is_empty()
            && (a
                .value
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
                && a.value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';')
                || a.value.chars().all(|c| c.is_ascii_digit() || c == '.'));
        if !ok {
            self.err(
                a.loc,
                format!("`{}` is not an LDAP attribute name", a.value),
            );
        }
    }

    fn field(&mut self, f: &Sp<String>, fields: &[&str]) {
        if !fields.contains(&f.value.as_str()) {
            let d = self.err(f.loc, format!("unknown Carbonite field `{}`", f.value));
            d.hint = Some(match did_you_mean(&f.value, fields.iter().copied()) {
                Some(s) => format!(
                    "did you mean `{s}`? (fields beyond the User object go in `carbonite.extraFields`)"
                ),
                None => format!(
                    "User fields are {}; others must be listed in `carbonite.extraFields`",
                    USER_FIELDS.join(", ")
                ),
            });
        }
    }

    fn orchestrations(
        &mut self,
        list: &[Parsed<raw::OrchestrationSpec>],
        webhooks: &BTreeMap<String, Webhook>,
        extra_fields: &[String],
    ) -> Vec<Orchestration> {
        let fields: Vec<&str> = USER_FIELDS
            .iter()
            .copied()
            .chain(extra_fields.iter().map(String::as_str))
            .collect();
        let mut out = Vec::new();
        for p in list {
            let s = &p.doc.spec;
            let mut on = Vec::new();
            if s.on.is_empty() {
                self.err(
                    p.doc.metadata.name.loc,
                    "an Orchestration needs at least one event in `on`",
                );
            }
            for e in &s.on {
                match model::Event::parse(&e.value) {
                    Some(model::Event::Changed(f)) => {
                        if !fields.contains(&f.as_str()) {
                            self.field(&Sp::new(f.clone(), e.loc), &fields);
                        }
                        on.push(model::Event::Changed(f));
                    }
                    Some(ev) => on.push(ev),
                    None => {
                        let d = self.err(
                            e.loc,
                            format!(
                                "unknown event `{}`, expected one of {}",
                                e.value,
                                model::Event::NAMES.join(", ")
                            ),
                        );
                        if let Some(s) = did_you_mean(&e.value, model::Event::NAMES.iter().copied())
                        {
                            d.hint = Some(format!("did you mean `{s}`?"));
                        }
                    }
                }
            }
            if let Some(w) = &s.when {
                self.condition(w);
            }
            if s.steps.is_empty() {
                self.err(
                    p.doc.metadata.name.loc,
                    "an Orchestration needs at least one step",
                );
            }
            let mut steps = Vec::new();
            for st in &s.steps {
                if !webhooks.contains_key(&st.webhook.value) {
                    let d = self.err(
                        st.webhook.loc,
                        format!("unknown Webhook `{}`", st.webhook.value),
                    );
                    if let Some(s) =
                        did_you_mean(&st.webhook.value, webhooks.keys().map(String::as_str))
                    {
                        d.hint = Some(format!("did you mean `{s}`?"));
                    }
                }
                steps.push(st.webhook.value.clone());
            }
            out.push(Orchestration {
                name: p.doc.metadata.name.value.clone(),
                on,
                when: s.when.as_ref().map(|w| w.value.clone()),
                steps,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// Replace `{{ ... }}` / `{% ... %}` parts with a placeholder so a templated URL can be parsed.
fn strip_template_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find(['{']) {
        let after = &rest[start..];
        let close = if after.starts_with("{{") {
            after.find("}}").map(|e| e + 2)
        } else if after.starts_with("{%") {
            after.find("%}").map(|e| e + 2)
        } else {
            None
        };
        match close {
            Some(end) => {
                out.push_str(&rest[..start]);
                out.push('x');
                rest = &after[end..];
            }
            None => {
                out.push_str(&rest[..start + 1]);
                rest = &rest[start + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// Location of character `offset` inside a single-line scalar starting at `loc`.
fn shift(loc: Loc, offset: usize, sources: &SourceMap) -> Loc {
    template_loc(loc, 1, offset + 1, sources)
}

/// Map a (line, column) inside a scalar's value to a file location. Exact for plain and quoted
/// one-line scalars; for block scalars the line is exact and the column approximate.
fn template_loc(loc: Loc, line: usize, column: usize, sources: &SourceMap) -> Loc {
    let text = sources
        .file(&loc)
        .map(|f| f.text.clone())
        .unwrap_or_else(|| std::sync::Arc::from(""));
    let first = text.get(loc.offset..).and_then(|r| r.chars().next());
    let block = matches!(first, Some('|') | Some('>'));
    let quoted = matches!(first, Some('"') | Some('\''));
    if block {
        // Content starts on the next line, indented.
        let target_line = loc.line + line as u32;
        let line_text = text.lines().nth(target_line as usize - 1).unwrap_or("");
        let indent = line_text.len() - line_text.trim_start().len();
        let col = (indent + column) as u32;
        let offset = super::node::offset_of(&text, target_line, col);
        return Loc {
            file: loc.file,
            line: target_line,
            col,
            offset,
            len: 0,
        };
    }
    if line > 1 {
        // Multi-line flow scalar: point at the scalar.
        return loc;
    }
    let skip = column - 1 + usize::from(quoted);
    let col = loc.col + skip as u32;
    let offset = super::node::offset_of(&text, loc.line, col);
    Loc {
        file: loc.file,
        line: loc.line,
        col,
        offset,
        len: 0,
    }
}

/// `svc@corp.example` or `CORP\svc`: a name AD accepts in a simple bind besides a DN.
fn is_ad_logon_name(name: &str) -> bool {
    !name.contains('=')
        && (name
            .split_once('@')
            .is_some_and(|(u, d)| !u.is_empty() && d.contains('.'))
            || name
                .split_once('\\')
                .is_some_and(|(d, u)| !d.is_empty() && !u.is_empty()))
}

#[cfg(test)]
mod logon_name_tests {
    #[test]
    fn ad_logon_names() {
        assert!(super::is_ad_logon_name("svc@corp.example"));
        assert!(super::is_ad_logon_name("CORP\\svc"));
        assert!(!super::is_ad_logon_name("cn=svc,dc=corp"));
        assert!(!super::is_ad_logon_name("svc"));
        assert!(!super::is_ad_logon_name("@corp.example"));
    }
}
