//! Outbound webhooks and orchestrations (SPEC §2, §3, §4, §8).
//!
//! [`Hooks::compile`] compiles every Webhook's url/path, headers, query and body and every
//! Orchestration's `when` once. [`Hooks::render`] turns a webhook and a render context (`user`,
//! `account`) into a [`Request`]: the body escaped for its `messageType`, a json body checked to
//! parse, secrets resolved (and remembered by the redactor so they never show). [`send`] sends
//! it: an absolute `url` with its own HTTP client (not Carbonite's budget), `target: carbonite`
//! through the Carbonite client (base URL, bearer token, rate-limit ledger). Retries only where
//! §5 allows: idempotent methods, or a connection that was never made.
//!
//! [`Hooks::triggered`] decides which orchestrations a change triggers (its events and `when`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::carbonite::redact::{REDACTED, Redactor};
use crate::carbonite::{CarboniteClient, ClientError};
use crate::config::Config;
use crate::config::model::{Event, MessageType, WebhookTarget};
use crate::config::secret::SecretRef;
use crate::directory::{AttrValue, Entry};
use crate::reconcile::{Action, Change};
use crate::template::AttributeRefs;
use crate::template::{
    CompiledCondition, CompiledTemplate, Escape, RenderContext, SecretResolver, TemplateEngine,
    Usage,
};

/// A compiled webhook.
struct CompiledWebhook {
    method: reqwest::Method,
    target: Target,
    headers: Vec<(String, CompiledTemplate)>,
    query: Vec<(String, CompiledTemplate)>,
    body: Option<CompiledTemplate>,
    message_type: MessageType,
    timeout: Duration,
    expect_status: Vec<u16>,
}

enum Target {
    Url(CompiledTemplate),
    /// A path on the Carbonite base URL; `route` is the ledger route (METHOD + the path with
    /// every `{{ ... }}` written `{}`).
    Carbonite {
        path: CompiledTemplate,
        route: String,
    },
}

struct CompiledOrchestration {
    name: String,
    on: Vec<Event>,
    when: Option<CompiledCondition>,
    steps: Vec<String>,
}

/// Every webhook and orchestration of a config, compiled.
pub struct Hooks {
    engine: TemplateEngine,
    webhooks: BTreeMap<String, CompiledWebhook>,
    orchestrations: Vec<CompiledOrchestration>,
    secrets: Arc<HookSecrets>,
    http: reqwest::Client,
}

/// A rendered request, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub webhook: String,
    pub method: String,
    /// The full URL (for `target: carbonite`: on the Carbonite base URL).
    pub url: String,
    /// Name, value (query already in `url`).
    pub headers: Vec<(String, String)>,
    pub content_type: Option<&'static str>,
    pub body: Option<String>,
    pub timeout: Duration,
    pub expect_status: Vec<u16>,
    /// `Some(route)` when it goes through the Carbonite client.
    pub carbonite_route: Option<String>,
    /// For `target: carbonite`: the path (and query) relative to the base URL.
    pub carbonite_path: Option<String>,
}

/// The answer to a webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("webhook `{0}` is not defined")]
    Unknown(String),
    #[error("webhook `{webhook}`: {what}: {message}")]
    Render {
        webhook: String,
        what: String,
        message: String,
    },
    #[error(
        "webhook `{webhook}`: the json body does not parse after rendering ({message}); nothing was sent"
    )]
    BadJson { webhook: String, message: String },
    #[error("webhook `{webhook}`: {method} {url}: {reason}")]
    Transport {
        webhook: String,
        method: String,
        url: String,
        reason: String,
    },
    #[error("webhook `{webhook}`: {method} {url} answered {status}, expected {expected}{}", body_note(.body))]
    Status {
        webhook: String,
        method: String,
        url: String,
        status: u16,
        expected: String,
        body: String,
    },
    #[error("webhook `{webhook}`: {source}")]
    Carbonite {
        webhook: String,
        #[source]
        source: Box<ClientError>,
    },
}

fn body_note(body: &str) -> String {
    if body.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", crate::carbonite::truncate(body.trim(), 300))
    }
}

/// Resolves `secret()` in webhook templates and registers each value with the redactor.
struct HookSecrets {
    config_dir: std::path::PathBuf,
    redactor: Arc<Redactor>,
}

impl SecretResolver for HookSecrets {
    fn resolve(&self, reference: &str) -> Result<String, String> {
        let r = match reference.strip_prefix("file:") {
            Some(p) => SecretRef::File(self.config_dir.join(p)),
            None => SecretRef::Env(reference.to_string()),
        };
        let s = r.resolve().map_err(|e| e.to_string())?;
        self.redactor.add(s.expose());
        Ok(s.expose().to_string())
    }
}

fn escape_of(t: MessageType) -> Escape {
    match t {
        MessageType::Json => Escape::Json,
        MessageType::Form => Escape::Form,
        MessageType::Xml => Escape::Xml,
        MessageType::Text => Escape::Text,
    }
}

fn content_type(t: MessageType) -> &'static str {
    match t {
        MessageType::Json => "application/json",
        MessageType::Form => "application/x-www-form-urlencoded",
        MessageType::Xml => "application/xml",
        MessageType::Text => "text/plain; charset=utf-8",
    }
}

/// The ledger route of a templated Carbonite path: the known route (a write route or an
/// Endpoint's path) it matches segment by segment — a `{{ ... }}` segment matching a `{Name}`
/// placeholder — so a webhook calling `PUT /api/users/{{ account.UserId }}` shares
/// `updateUser`'s budget; otherwise the path with each `{{ ... }}` written `{}`.
fn route_for(method: &str, path: &str, known: &[String]) -> String {
    let generic = route_of(method, path);
    let (m, p) = generic.split_once(' ').unwrap_or(("", ""));
    let segs: Vec<&str> = p.split('/').collect();
    known
        .iter()
        .find(|k| {
            let Some((km, kp)) = k.split_once(' ') else {
                return false;
            };
            let ks: Vec<&str> = kp.split('/').collect();
            km.eq_ignore_ascii_case(m)
                && ks.len() == segs.len()
                && ks
                    .iter()
                    .zip(&segs)
                    .all(|(a, b)| a == b || (*b == "{}" && a.starts_with('{') && a.ends_with('}')))
        })
        .cloned()
        .unwrap_or(generic)
}

/// `{{ account.UserId }}` -> `{}`.
fn route_of(method: &str, path: &str) -> String {
    let mut out = String::new();
    let mut rest = path.split('?').next().unwrap_or(path);
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        out.push_str("{}");
        rest = rest[i..].find("}}").map_or("", |j| &rest[i + j + 2..]);
    }
    out.push_str(rest);
    format!("{} {out}", method.to_ascii_uppercase())
}

/// The events a change raises: its action's, and `changed:<Field>` for every field whose value
/// changes in an update, adoption, suspension or reactivation (a create raises `created` only).
pub fn events(change: &Change) -> Vec<Event> {
    let mut v = vec![match change.action {
        Action::Create => Event::Created,
        Action::Adopt => Event::Adopted,
        Action::Update => Event::Updated,
        Action::Reactivate => Event::Reactivated,
        Action::Suspend => Event::Suspended,
        Action::Delete => Event::Deleted,
    }];
    if change.action != Action::Create {
        for f in &change.fields {
            if f.before != f.after {
                v.push(Event::Changed(f.name.clone()));
            }
        }
    }
    v
}

impl Hooks {
    /// Compile the config's webhooks and orchestrations (`validate` already checked them: an
    /// error here is unexpected and reported as a message).
    pub fn compile(cfg: &Config) -> Result<Hooks, String> {
        let mut engine = crate::pass::template_engine(cfg)?;
        let issues = |what: String| {
            move |e: Vec<crate::template::TemplateIssue>| {
                format!(
                    "{what}: {}",
                    e.iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        };
        let r = &cfg.integration.carbonite.routes;
        let mut known: Vec<String> = [&r.get_user, &r.create_user, &r.update_user, &r.delete_user]
            .iter()
            .map(|r| format!("{} {}", r.method.to_ascii_uppercase(), r.path))
            .collect();
        for e in cfg.endpoints.values() {
            if let crate::config::model::EndpointTarget::Path(p) = &e.target {
                known.push(format!("{} {p}", e.method.to_ascii_uppercase()));
            }
        }
        let mut webhooks = BTreeMap::new();
        for (name, w) in &cfg.webhooks {
            let target = match &w.target {
                WebhookTarget::Url(u) => Target::Url(
                    engine
                        .compile(u, Usage::WebhookUrl)
                        .map_err(issues(format!("webhook {name} url")))?,
                ),
                WebhookTarget::Carbonite { path } => Target::Carbonite {
                    path: engine
                        .compile(path, Usage::WebhookUrl)
                        .map_err(issues(format!("webhook {name} path")))?,
                    route: route_for(&w.method, path, &known),
                },
            };
            let mut headers = Vec::new();
            for (k, v) in &w.headers {
                headers.push((
                    k.clone(),
                    engine
                        .compile(v, Usage::WebhookHeader)
                        .map_err(issues(format!("webhook {name} header {k}")))?,
                ));
            }
            let mut query = Vec::new();
            for (k, v) in &w.query {
                query.push((
                    k.clone(),
                    engine
                        .compile(v, Usage::WebhookQuery)
                        .map_err(issues(format!("webhook {name} query {k}")))?,
                ));
            }
            let body = match &w.body {
                Some(b) => Some(
                    engine
                        .compile(b, Usage::WebhookBody(escape_of(w.message_type)))
                        .map_err(issues(format!("webhook {name} body")))?,
                ),
                None => None,
            };
            let method = reqwest::Method::from_bytes(w.method.to_ascii_uppercase().as_bytes())
                .map_err(|e| format!("webhook {name}: method {}: {e}", w.method))?;
            webhooks.insert(
                name.clone(),
                CompiledWebhook {
                    method,
                    target,
                    headers,
                    query,
                    body,
                    message_type: w.message_type,
                    timeout: w.timeout,
                    expect_status: w.expect_status.clone(),
                },
            );
        }
        let mut orchestrations = Vec::new();
        for o in &cfg.orchestrations {
            let when = match &o.when {
                Some(w) => Some(
                    engine
                        .compile_expression(w, Usage::Condition)
                        .map_err(issues(format!("orchestration {} when", o.name)))?,
                ),
                None => None,
            };
            orchestrations.push(CompiledOrchestration {
                name: o.name.clone(),
                on: o.on.clone(),
                when,
                steps: o.steps.clone(),
            });
        }
        crate::carbonite::install_tls_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("carbonite-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Hooks {
            engine,
            webhooks,
            orchestrations,
            secrets: Arc::new(HookSecrets {
                config_dir: cfg.dir.clone(),
                redactor: Arc::new(Redactor::default()),
            }),
            http,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.orchestrations.is_empty()
    }

    /// The redactor that knows every secret a rendered request used.
    pub fn redactor(&self) -> &Redactor {
        &self.secrets.redactor
    }

    /// Names of the orchestrations `change` triggers: an event they listen to, and a `when`
    /// that holds in `ctx` (a `when` that fails to evaluate does not trigger, with a warning).
    pub fn triggered(&self, change: &Change, ctx: &RenderContext) -> Vec<String> {
        let raised = events(change);
        self.orchestrations
            .iter()
            .filter(|o| o.on.iter().any(|e| raised.contains(e)))
            .filter(|o| match &o.when {
                None => true,
                Some(c) => match self.engine.eval_condition(c, ctx) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(orchestration = %o.name, key = %change.key, "`when` failed: {e}");
                        false
                    }
                },
            })
            .map(|o| o.name.clone())
            .collect()
    }

    /// The ledger route of a `target: carbonite` webhook.
    pub fn carbonite_route(&self, webhook: &str) -> Option<&str> {
        match &self.webhooks.get(webhook)?.target {
            Target::Carbonite { route, .. } => Some(route),
            Target::Url(_) => None,
        }
    }

    /// The webhooks an orchestration runs, in order.
    pub fn steps(&self, orchestration: &str) -> &[String] {
        self.orchestrations
            .iter()
            .find(|o| o.name == orchestration)
            .map_or(&[], |o| o.steps.as_slice())
    }

    /// Render webhook `name` in `ctx` (secrets enabled). `base_url` is Carbonite's, for
    /// `target: carbonite`.
    pub fn render(
        &self,
        name: &str,
        ctx: &RenderContext,
        base_url: &str,
    ) -> Result<Request, HookError> {
        let w = self
            .webhooks
            .get(name)
            .ok_or_else(|| HookError::Unknown(name.to_string()))?;
        let ctx = ctx.clone().with_secrets(self.secrets.clone());
        let render = |t: &CompiledTemplate, what: &str| {
            self.engine
                .render(t, &ctx)
                .map(|s| s.trim().to_string())
                .map_err(|e| HookError::Render {
                    webhook: name.to_string(),
                    what: what.to_string(),
                    message: self.secrets.redactor.text(&e.to_string()),
                })
        };
        let (mut url, carbonite_route) = match &w.target {
            Target::Url(t) => (render(t, "url")?, None),
            Target::Carbonite { path, route } => {
                let p = render(path, "path")?;
                (
                    format!("{}{p}", base_url.trim_end_matches('/')),
                    Some(route.clone()),
                )
            }
        };
        let mut parsed = url::Url::parse(&url).map_err(|e| HookError::Render {
            webhook: name.to_string(),
            what: "url".into(),
            message: format!("`{}` is not a URL: {e}", self.secrets.redactor.text(&url)),
        })?;
        if !w.query.is_empty() {
            let mut pairs = Vec::new();
            for (k, t) in &w.query {
                pairs.push((k.clone(), render(t, &format!("query {k}"))?));
            }
            parsed.query_pairs_mut().extend_pairs(pairs);
            url = parsed.to_string();
        }
        let carbonite_path = carbonite_route.as_ref().map(|_| {
            let mut p = parsed.path().to_string();
            if let Some(q) = parsed.query() {
                p.push('?');
                p.push_str(q);
            }
            p
        });
        let mut headers = Vec::new();
        for (k, t) in &w.headers {
            headers.push((k.clone(), render(t, &format!("header {k}"))?));
        }
        let body = match &w.body {
            Some(t) => {
                // Bodies keep their whitespace: only headers/url/query are trimmed.
                let b = self.engine.render(t, &ctx).map_err(|e| HookError::Render {
                    webhook: name.to_string(),
                    what: "body".into(),
                    message: self.secrets.redactor.text(&e.to_string()),
                })?;
                if w.message_type == MessageType::Json
                    && let Err(e) = serde_json::from_str::<serde_json::Value>(&b)
                {
                    return Err(HookError::BadJson {
                        webhook: name.to_string(),
                        message: e.to_string(),
                    });
                }
                Some(b)
            }
            None => None,
        };
        Ok(Request {
            webhook: name.to_string(),
            method: w.method.to_string(),
            url,
            headers,
            content_type: body.as_ref().map(|_| content_type(w.message_type)),
            body,
            timeout: w.timeout,
            expect_status: w.expect_status.clone(),
            carbonite_route,
            carbonite_path,
        })
    }

    /// The request as shown to people: secrets replaced by `<redacted>`, and sensitive headers
    /// (Authorization, Cookie, token/secret/password/api-key names) redacted whatever their
    /// value.
    pub fn show(&self, r: &Request) -> String {
        let red = &self.secrets.redactor;
        let mut s = format!("{} {}\n", r.method, red.text(&r.url));
        if r.carbonite_route.is_some() {
            s.push_str("Authorization: Bearer <redacted>\n");
        }
        if let Some(ct) = r.content_type {
            s.push_str(&format!("Content-Type: {ct}\n"));
        }
        for (k, v) in &r.headers {
            let v = if crate::config::secret::is_sensitive_key(k) {
                REDACTED.to_string()
            } else {
                red.text(v)
            };
            s.push_str(&format!("{k}: {v}\n"));
        }
        if let Some(b) = &r.body {
            s.push('\n');
            s.push_str(&red.text(b));
            if !b.ends_with('\n') {
                s.push('\n');
            }
        }
        s
    }

    /// Send a rendered request and check its status against `expectStatus` (empty: any 2xx).
    pub async fn send(
        &self,
        r: &Request,
        carbonite: Option<&CarboniteClient>,
    ) -> Result<Reply, HookError> {
        let reply = self.send_unchecked(r, carbonite).await?;
        self.check(r, &reply)?;
        Ok(reply)
    }

    /// Send a rendered request; any status is an answer.
    pub async fn send_unchecked(
        &self,
        r: &Request,
        carbonite: Option<&CarboniteClient>,
    ) -> Result<Reply, HookError> {
        let reply = match (&r.carbonite_route, &r.carbonite_path, carbonite) {
            (Some(route), Some(path), Some(client)) => client
                .raw_call(
                    &format!("webhook {}", r.webhook),
                    &r.method,
                    path,
                    route,
                    &r.headers,
                    r.body
                        .as_ref()
                        .map(|b| (r.content_type.unwrap_or("text/plain"), b.as_str())),
                    r.timeout,
                )
                .await
                .map(|(status, headers, body)| Reply {
                    status,
                    headers,
                    body,
                })
                .map_err(|e| HookError::Carbonite {
                    webhook: r.webhook.clone(),
                    source: Box::new(e),
                })?,
            (Some(_), _, _) => {
                return Err(HookError::Transport {
                    webhook: r.webhook.clone(),
                    method: r.method.clone(),
                    url: self.secrets.redactor.text(&r.url),
                    reason: "a `target: carbonite` webhook needs the Carbonite client".into(),
                });
            }
            _ => self.send_direct(r).await?,
        };
        Ok(reply)
    }

    /// The status against `expectStatus` (empty: any 2xx).
    pub fn check(&self, r: &Request, reply: &Reply) -> Result<(), HookError> {
        let ok = if r.expect_status.is_empty() {
            (200..300).contains(&reply.status)
        } else {
            r.expect_status.contains(&reply.status)
        };
        if ok {
            Ok(())
        } else {
            Err(HookError::Status {
                webhook: r.webhook.clone(),
                method: r.method.clone(),
                url: self.secrets.redactor.text(&r.url),
                status: reply.status,
                expected: if r.expect_status.is_empty() {
                    "2xx".into()
                } else {
                    r.expect_status
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(" or ")
                },
                body: self.secrets.redactor.text(&reply.body),
            })
        }
    }

    /// An absolute-URL webhook: retried (3 attempts, backoff) only when the connection was never
    /// made, or — for idempotent methods — on a transport error or a 5xx.
    async fn send_direct(&self, r: &Request) -> Result<Reply, HookError> {
        let method =
            reqwest::Method::from_bytes(r.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let idempotent = matches!(
            method,
            reqwest::Method::GET
                | reqwest::Method::HEAD
                | reqwest::Method::PUT
                | reqwest::Method::DELETE
                | reqwest::Method::OPTIONS
        );
        let shown = self.secrets.redactor.text(&r.url);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self.http.request(method.clone(), &r.url).timeout(r.timeout);
            for (k, v) in &r.headers {
                req = req.header(k, v);
            }
            if let (Some(b), Some(ct)) = (&r.body, r.content_type) {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, ct)
                    .body(b.clone());
            }
            let retryable = |connect: bool| attempt < 3 && (connect || idempotent);
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp
                        .headers()
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.to_string(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect();
                    let body = resp.text().await.unwrap_or_default();
                    if status >= 500 && retryable(false) {
                        tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
                        continue;
                    }
                    return Ok(Reply {
                        status,
                        headers,
                        body,
                    });
                }
                Err(e) => {
                    if retryable(e.is_connect()) {
                        tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
                        continue;
                    }
                    return Err(HookError::Transport {
                        webhook: r.webhook.clone(),
                        method: r.method.clone(),
                        url: shown,
                        reason: self
                            .secrets
                            .redactor
                            .text(&crate::carbonite::error_chain(&e)),
                    });
                }
            }
        }
    }
}

/// The attributes of `entry` that webhook templates read, for a saved plan: text values as
/// they are, binary values base64 under `<name>::` (as LDIF writes them), plus `@disabled` and
/// `@anchor`. Only attributes the config's webhooks/conditions name (all of them when a template
/// reads by computed name).
pub fn saved_attributes(entry: &Entry, refs: &AttributeRefs) -> BTreeMap<String, Vec<String>> {
    use base64::Engine as _;
    let mut out = BTreeMap::new();
    for a in entry.attributes() {
        let wanted = match refs {
            AttributeRefs::All => true,
            AttributeRefs::Names(n) => n.iter().any(|x| x.eq_ignore_ascii_case(&a.name)),
        };
        if !wanted {
            continue;
        }
        for v in a.values.iter() {
            let (key, value) = match v {
                AttrValue::Text(t) => (a.name.to_string(), t.clone()),
                AttrValue::Binary(b) => (
                    format!("{}::", a.name),
                    base64::engine::general_purpose::STANDARD.encode(b),
                ),
            };
            out.entry(key).or_insert_with(Vec::new).push(value);
        }
    }
    out.insert("@disabled".into(), vec![entry.disabled.to_string()]);
    out.insert("@anchor".into(), vec![entry.anchor.clone()]);
    out
}

/// The definitions (`on`, `when`, `steps`) of the orchestrations `changes` trigger, by name.
pub fn definitions(cfg: &Config, changes: &[Change]) -> BTreeMap<String, serde_json::Value> {
    let used: std::collections::BTreeSet<&str> = changes
        .iter()
        .flat_map(|c| c.orchestrations.iter().map(String::as_str))
        .collect();
    cfg.orchestrations
        .iter()
        .filter(|o| used.contains(o.name.as_str()))
        .map(|o| {
            let on: Vec<String> = o.on.iter().map(event_name).collect();
            (
                o.name.clone(),
                serde_json::json!({"on": on, "when": o.when, "steps": o.steps}),
            )
        })
        .collect()
}

/// `created`, `changed:Email`, ...
pub fn event_name(e: &Event) -> String {
    match e {
        Event::Created => "created".into(),
        Event::Adopted => "adopted".into(),
        Event::Updated => "updated".into(),
        Event::Suspended => "suspended".into(),
        Event::Reactivated => "reactivated".into(),
        Event::Deleted => "deleted".into(),
        Event::Changed(f) => format!("changed:{f}"),
    }
}

/// The entry a saved plan recorded ([`saved_attributes`]), for `apply FILE`'s orchestrations.
pub fn entry_from_saved(dn: &str, saved: &BTreeMap<String, Vec<String>>) -> Entry {
    use base64::Engine as _;
    let mut e = Entry::new(dn);
    for (k, values) in saved {
        match k.as_str() {
            "@disabled" => e.disabled = values.first().is_some_and(|v| v == "true"),
            "@anchor" => e.anchor = values.first().cloned().unwrap_or_default(),
            _ => {
                for v in values {
                    match k.strip_suffix("::") {
                        Some(name) => {
                            let bytes = base64::engine::general_purpose::STANDARD
                                .decode(v)
                                .unwrap_or_default();
                            e.push(name, AttrValue::Binary(bytes));
                        }
                        None => e.push(k, AttrValue::Text(v.clone())),
                    }
                }
            }
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templated_paths_share_the_known_route() {
        let known = vec![
            "PUT /api/users/{UserId}".to_string(),
            "GET /api/users".to_string(),
        ];
        assert_eq!(
            route_for("put", "/api/users/{{ account.UserId }}", &known),
            "PUT /api/users/{UserId}"
        );
        assert_eq!(
            route_for("GET", "/api/users?x={{ a }}", &known),
            "GET /api/users"
        );
        assert_eq!(
            route_for("POST", "/api/users/{{ account.UserId }}", &known),
            "POST /api/users/{}"
        );
    }

    #[test]
    fn routes_of_templated_paths() {
        assert_eq!(
            route_of("post", "/api/users/{{ account.UserId }}/notes?x={{ y }}"),
            "POST /api/users/{}/notes"
        );
        assert_eq!(route_of("GET", "/api/companies"), "GET /api/companies");
    }

    #[test]
    fn changed_events_only_for_fields_that_change() {
        let change = |action, before: Option<&str>, after: Option<&str>| Change {
            action,
            mapping: "m".into(),
            key: "k".into(),
            dn: None,
            account_id: None,
            observed_fingerprint: None,
            orchestrations: vec![],
            fields: vec![crate::reconcile::FieldChange {
                name: "Email".into(),
                before: before.map(Into::into),
                after: after.map(Into::into),
            }],
        };
        assert_eq!(
            events(&change(Action::Update, Some("a@x"), Some("b@x"))),
            vec![Event::Updated, Event::Changed("Email".into())]
        );
        assert_eq!(
            events(&change(Action::Create, None, Some("b@x"))),
            vec![Event::Created]
        );
    }
}
