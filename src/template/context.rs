//! The render context: what a template sees, as lazy minijinja objects.
//!
//! Nothing is copied per render: the root object holds `Arc`s to the entry, the account and the
//! lookup index, and resolves names on demand (case-insensitively for attributes). minijinja
//! objects must be `'static`, which is why [`RenderContext`] takes `Arc`s rather than borrows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};

use super::error::RenderError;
use super::lookup::{LookupIndex, LookupMode, placeholder};
use crate::directory::{AttrValue, Entry};

/// Resolves `secret('NAME')` (environment variable `NAME`) and `secret('file:PATH')` (a file,
/// one trailing newline stripped) references to their values (SPEC §3).
///
/// The error string says why resolution failed (e.g. "environment variable is not set"); it is
/// shown to the user and must never contain a secret value.
pub trait SecretResolver: Send + Sync {
    /// The value of `reference`, exactly as written in the template.
    fn resolve(&self, reference: &str) -> Result<String, String>;
}

impl<F> SecretResolver for F
where
    F: Fn(&str) -> Result<String, String> + Send + Sync,
{
    fn resolve(&self, reference: &str) -> Result<String, String> {
        self(reference)
    }
}

/// Everything one render can see besides the template itself. Cheap to clone (all `Arc`s);
/// build one per entry (or per event) and render all its templates with it.
///
/// ```
/// # use std::sync::Arc;
/// # use carbonite_sync::template::{LookupIndex, LookupTables, RenderContext};
/// # use carbonite_sync::directory::Entry;
/// let lookups = Arc::new(LookupIndex::new(&LookupTables::default()));
/// let ctx = RenderContext::new(lookups).with_entry(Arc::new(Entry::new("CN=Ann,DC=x")));
/// ```
#[derive(Clone)]
pub struct RenderContext {
    pub(crate) entry: Option<Arc<Entry>>,
    pub(crate) account: Option<Value>,
    pub(crate) vars: Arc<BTreeMap<String, String>>,
    pub(crate) lookups: Arc<LookupIndex>,
    pub(crate) lookup_mode: LookupMode,
    pub(crate) secrets: Option<Arc<dyn SecretResolver>>,
}

impl fmt::Debug for RenderContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderContext")
            .field("entry", &self.entry.as_ref().map(|e| &e.dn))
            .field("account", &self.account.is_some())
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("lookup_mode", &self.lookup_mode)
            .field("secrets", &self.secrets.is_some())
            .finish()
    }
}

impl RenderContext {
    /// A context with no entry, no account, strict lookups and no secrets.
    pub fn new(lookups: Arc<LookupIndex>) -> Self {
        RenderContext {
            entry: None,
            account: None,
            vars: Arc::default(),
            lookups,
            lookup_mode: LookupMode::Strict,
            secrets: None,
        }
    }

    /// The directory entry: its attributes, `dn`, `disabled`, `anchor`, `attrs`, `all`, `user`.
    pub fn with_entry(mut self, entry: Arc<Entry>) -> Self {
        self.entry = Some(entry);
        self
    }

    /// The observed Carbonite account (`account.Email`...), a JSON object with PascalCase
    /// fields. Field lookup tries the exact name first, then case-insensitively; `null` fields
    /// are undefined.
    pub fn with_account(mut self, account: Arc<serde_json::Value>) -> Self {
        self.account = Some(match &*account {
            serde_json::Value::Object(_) => Value::from_object(JsonObject(account)),
            other => json_value(other),
        });
        self
    }

    /// An extra top-level variable, e.g. `email` / `companyId` for Endpoint query templates.
    /// Reserved names and function names win over it; it wins over attribute names.
    pub fn with_var(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.vars).insert(name.into(), value.into());
        self
    }

    /// What an unresolved `lookup()` does (default [`LookupMode::Strict`]).
    pub fn with_lookup_mode(mut self, mode: LookupMode) -> Self {
        self.lookup_mode = mode;
        self
    }

    /// Enables `secret()` for templates compiled with a [`Usage`](super::Usage) that allows it.
    pub fn with_secrets(mut self, resolver: Arc<dyn SecretResolver>) -> Self {
        self.secrets = Some(resolver);
        self
    }
}

/// Name of the hidden root variable through which our functions reach the render context; it
/// is not an identifier, so templates cannot name it.
pub(crate) const ROOT_KEY: &str = "\u{1}carbonite-sync";

/// Context names that win over attribute names (SPEC §4).
pub const RESERVED_NAMES: [&str; 8] = [
    "dn", "disabled", "anchor", "user", "account", "formats", "attrs", "all",
];

/// Global functions (ours and minijinja's); they win over attribute names too.
pub(crate) const FUNCTIONS: [&str; 6] =
    ["lookup", "secret", "format", "range", "dict", "namespace"];

/// How deep formats may nest (`format()` inside a format...) before we call it a cycle.
const MAX_FORMAT_DEPTH: usize = 16;

/// Template name of a named format inside the environment.
pub(crate) fn format_template_name(name: &str) -> String {
    format!("format:{name}")
}

/// The per-render root object.
pub(crate) struct Root {
    pub(crate) env: Arc<Environment<'static>>,
    pub(crate) formats: Arc<BTreeSet<String>>,
    pub(crate) ctx: RenderContext,
    pub(crate) allow_secrets: bool,
    depth: AtomicUsize,
    /// The first typed failure raised by one of our functions in this render.
    fault: Mutex<Option<RenderError>>,
    /// Secret values handed out in this render, scrubbed from error messages.
    revealed: Mutex<Vec<String>>,
}

impl fmt::Debug for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print revealed secrets.
        f.debug_struct("Root")
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}

impl Root {
    pub(crate) fn new(
        env: Arc<Environment<'static>>,
        formats: Arc<BTreeSet<String>>,
        ctx: &RenderContext,
        allow_secrets: bool,
    ) -> Self {
        Root {
            env,
            formats,
            ctx: ctx.clone(),
            allow_secrets,
            depth: AtomicUsize::new(0),
            fault: Mutex::new(None),
            revealed: Mutex::new(Vec::new()),
        }
    }

    /// Record a typed failure (the first one wins) and turn it into a minijinja error.
    fn fail(&self, err: RenderError) -> Error {
        let message = err.to_string();
        if let Ok(mut slot) = self.fault.lock()
            && slot.is_none()
        {
            *slot = Some(err);
        }
        Error::new(ErrorKind::InvalidOperation, message)
    }

    /// The typed failure of a failed render: ours when one of our functions raised it, else
    /// minijinja's error described. Secret values are scrubbed from every message.
    pub(crate) fn classify(&self, err: &Error, template_name: &str) -> RenderError {
        let fault = self.fault.lock().ok().and_then(|mut slot| slot.take());
        let err = fault.unwrap_or_else(|| describe(err, template_name));
        self.scrub(err)
    }

    fn scrub(&self, err: RenderError) -> RenderError {
        let Ok(revealed) = self.revealed.lock() else {
            return err;
        };
        if revealed.is_empty() {
            return err;
        }
        let clean = |s: String| {
            revealed
                .iter()
                .filter(|v| !v.is_empty())
                .fold(s, |s, v| s.replace(v.as_str(), "<redacted>"))
        };
        match err {
            RenderError::LookupFailed { table, name } => RenderError::LookupFailed {
                table,
                name: clean(name),
            },
            RenderError::LookupAmbiguous {
                table,
                name,
                reason,
            } => RenderError::LookupAmbiguous {
                table,
                name: clean(name),
                reason: clean(reason),
            },
            RenderError::Secret { name, reason } => RenderError::Secret {
                name,
                reason: clean(reason),
            },
            RenderError::Template { message, line } => RenderError::Template {
                message: clean(message),
                line,
            },
        }
    }

    fn entry_value(&self, key: &str) -> Option<Value> {
        self.ctx.entry.as_ref().and_then(|e| entry_lookup(e, key))
    }
}

/// Turn a minijinja error into [`RenderError::Template`], naming the format it came from.
fn describe(err: &Error, template_name: &str) -> RenderError {
    let mut message = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    match err.name() {
        Some(name) if name != template_name => {
            let shown = name.strip_prefix("format:").unwrap_or(name);
            let at = err
                .line()
                .map(|l| format!(", line {l}"))
                .unwrap_or_default();
            RenderError::Template {
                message: format!("in format {shown:?}{at}: {message}"),
                line: None,
            }
        }
        _ => RenderError::Template {
            message,
            line: err.line(),
        },
    }
}

impl Object for Root {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        match key {
            ROOT_KEY => Some(Value::from_dyn_object(self.clone())),
            "user" => self
                .ctx
                .entry
                .as_ref()
                .map(|e| Value::from_object(EntryObject(e.clone()))),
            "account" => self.ctx.account.clone(),
            "formats" => Some(Value::from_object(FormatsObject(self.clone()))),
            "dn" | "disabled" | "anchor" | "attrs" | "all" => self.entry_value(key),
            _ if FUNCTIONS.contains(&key) => None,
            _ => match self.ctx.vars.get(key) {
                Some(v) => Some(Value::from(v.as_str())),
                None => self.entry_value(key),
            },
        }
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }
}

/// First value of an attribute as a template value: text as a string, binary as bytes.
fn attr_value(value: &AttrValue) -> Value {
    match value {
        AttrValue::Text(s) => Value::from(s.as_str()),
        AttrValue::Binary(b) => Value::from_bytes(b.clone()),
    }
}

/// Name resolution on an entry: its reserved names, then attributes (case-insensitive).
fn entry_lookup(entry: &Arc<Entry>, key: &str) -> Option<Value> {
    match key {
        "dn" => Some(Value::from(entry.dn.as_str())),
        "disabled" => Some(Value::from(entry.disabled)),
        "anchor" => Some(Value::from(entry.anchor.as_str())),
        "attrs" => Some(Value::from_object(AttrsObject(entry.clone()))),
        "all" => Some(Value::from_object(AllObject(entry.clone()))),
        _ => entry.first(key).map(attr_value),
    }
}

/// `user`: the entry (reserved names, then attributes).
#[derive(Debug)]
struct EntryObject(Arc<Entry>);

impl Object for EntryObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        entry_lookup(&self.0, key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        entry_lookup(&self.0, key)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let names: Vec<Value> = self.0.attributes().map(|a| Value::from(&*a.name)).collect();
        Enumerator::Values(names)
    }

    fn is_true(self: &Arc<Self>) -> bool {
        true
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.dn)
    }
}

/// `attrs['name']`: first value of any attribute, case-insensitively; iterates attribute names.
#[derive(Debug)]
struct AttrsObject(Arc<Entry>);

impl Object for AttrsObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.first(key.as_str()?).map(attr_value)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        self.0.first(key).map(attr_value)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let names: Vec<Value> = self.0.attributes().map(|a| Value::from(&*a.name)).collect();
        Enumerator::Values(names)
    }
}

/// `all.name`: every value of an attribute as a list; an absent attribute is an empty list.
#[derive(Debug)]
struct AllObject(Arc<Entry>);

impl AllObject {
    fn values(&self, key: &str) -> Value {
        let values: Vec<Value> = self
            .0
            .get(key)
            .map(|a| a.values.iter().map(attr_value).collect())
            .unwrap_or_default();
        Value::from(values)
    }
}

impl Object for AllObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(self.values(key.as_str()?))
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        Some(self.values(key))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let names: Vec<Value> = self.0.attributes().map(|a| Value::from(&*a.name)).collect();
        Enumerator::Values(names)
    }
}

/// `formats.name`: renders the named format in the current context.
#[derive(Debug)]
struct FormatsObject(Arc<Root>);

impl Object for FormatsObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        if !self.0.formats.contains(key) {
            return None;
        }
        Some(match render_format(&self.0, key) {
            Ok(s) => Value::from(s),
            // An invalid value fails the render where it is used.
            Err(e) => Value::from(e),
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.0
                .formats
                .iter()
                .map(|n| Value::from(n.as_str()))
                .collect(),
        )
    }
}

/// Render format `name` with the same root (same entry, account, lookups, fault slot).
fn render_format(root: &Arc<Root>, name: &str) -> Result<String, Error> {
    struct DepthGuard<'a>(&'a AtomicUsize);
    impl Drop for DepthGuard<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let depth = root.depth.fetch_add(1, Ordering::Relaxed);
    let _guard = DepthGuard(&root.depth);
    if depth >= MAX_FORMAT_DEPTH {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("format {name:?}: formats nest more than {MAX_FORMAT_DEPTH} deep (a cycle?)"),
        ));
    }
    let template = root.env.get_template(&format_template_name(name))?;
    template.render(Value::from_dyn_object(root.clone()))
}

/// `account`: a JSON object, looked up lazily.
#[derive(Debug)]
struct JsonObject(Arc<serde_json::Value>);

impl JsonObject {
    fn field(&self, key: &str) -> Option<Value> {
        let serde_json::Value::Object(map) = &*self.0 else {
            return None;
        };
        let found = map.get(key).or_else(|| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })?;
        match found {
            serde_json::Value::Null => None,
            other => Some(json_value(other)),
        }
    }
}

impl Object for JsonObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.field(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        self.field(key)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match &*self.0 {
            serde_json::Value::Object(map) => {
                Enumerator::Values(map.keys().map(|k| Value::from(k.as_str())).collect())
            }
            _ => Enumerator::Empty,
        }
    }
}

/// A JSON value as a template value (nested objects stay lazy).
fn json_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => {
            Value::from(items.iter().map(json_value).collect::<Vec<_>>())
        }
        serde_json::Value::Object(_) => Value::from_object(JsonObject(Arc::new(v.clone()))),
    }
}

// ---------------------------------------------------------------------------------------------
// functions

fn root_of(state: &State) -> Result<Arc<Root>, Error> {
    state
        .lookup(ROOT_KEY)
        .and_then(|v| v.downcast_object::<Root>())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                "this function needs a carbonite-sync render context",
            )
        })
}

/// A function argument as lookup text: undefined/none are empty, bytes are base64.
fn arg_text(value: Option<&Value>) -> String {
    match value {
        None => String::new(),
        Some(v) => match v.kind() {
            ValueKind::Undefined | ValueKind::None => String::new(),
            ValueKind::Bytes => {
                use base64::prelude::{BASE64_STANDARD, Engine as _};
                BASE64_STANDARD.encode(v.as_bytes().unwrap_or_default())
            }
            _ => v.to_string(),
        },
    }
}

/// `lookup(table, name, company=, default=)`.
fn lookup(
    state: &State,
    table: String,
    name: Option<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let root = root_of(state)?;
    let company: Option<Value> = kwargs.get("company")?;
    let default: Option<Value> = kwargs.get("default")?;
    kwargs.assert_all_used()?;
    let company = Some(arg_text(company.as_ref())).filter(|c| !c.trim().is_empty());
    let index = &root.ctx.lookups;
    let mut tried = arg_text(name.as_ref()).trim().to_string();
    let attempts = [
        Some(tried.clone()),
        default.as_ref().map(|d| arg_text(Some(d))),
    ];
    for candidate in attempts.into_iter().flatten() {
        let candidate = candidate.trim();
        if candidate.is_empty() {
            continue;
        }
        tried = candidate.to_string();
        match index.resolve(&table, candidate, company.as_deref()) {
            Ok(Some(id)) => return Ok(Value::from(id)),
            Ok(None) => {}
            Err(e @ RenderError::Template { .. }) => {
                return Err(Error::new(ErrorKind::InvalidOperation, e.to_string()));
            }
            Err(e) => return Err(root.fail(e)),
        }
    }
    match root.ctx.lookup_mode {
        LookupMode::Placeholder => Ok(Value::from(placeholder(&table, &tried))),
        LookupMode::Strict => Err(root.fail(RenderError::LookupFailed { table, name: tried })),
    }
}

/// `secret('NAME')` / `secret('file:PATH')`.
fn secret(state: &State, reference: String) -> Result<Value, Error> {
    let root = root_of(state)?;
    if !root.allow_secrets {
        return Err(root.fail(RenderError::Secret {
            name: reference,
            reason: "secret() is not allowed here: a secret must never reach a plan".into(),
        }));
    }
    let Some(resolver) = root.ctx.secrets.clone() else {
        return Err(root.fail(RenderError::Secret {
            name: reference,
            reason: "no secret resolver is available to this render".into(),
        }));
    };
    match resolver.resolve(&reference) {
        Ok(value) => {
            if let Ok(mut revealed) = root.revealed.lock() {
                revealed.push(value.clone());
            }
            Ok(Value::from(value))
        }
        Err(reason) => Err(root.fail(RenderError::Secret {
            name: reference,
            reason,
        })),
    }
}

/// `format('name')`: the named format rendered in the current context.
fn format(state: &State, name: String) -> Result<Value, Error> {
    let root = root_of(state)?;
    if !root.formats.contains(&name) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("format(): no format named {name:?}"),
        ));
    }
    render_format(&root, &name).map(Value::from)
}

/// Register `lookup`, `secret` and `format`.
pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_function("lookup", lookup);
    env.add_function("secret", secret);
    env.add_function("format", format);
}
