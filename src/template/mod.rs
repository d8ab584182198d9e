//! The template engine (SPEC §4): one minijinja environment for attribute values, formats,
//! webhook URLs/headers/bodies, endpoint queries and orchestration conditions.
//!
//! # Life cycle
//!
//! 1. [`TemplateEngine::new`] once per config load, with [`EngineSettings`] (`undefined` mode
//!    and the named `formats`). Formats are compiled and checked here.
//! 2. [`TemplateEngine::compile`] / [`TemplateEngine::compile_expression`] each template of the
//!    config once. Compiling also runs [`TemplateEngine::check`]: any issue (syntax error,
//!    unknown filter/test/function/format/lookup table, `secret()` misuse) fails the compile,
//!    and *all* issues of the template are returned, located by line/column.
//! 3. [`TemplateEngine::render`] / [`TemplateEngine::eval_condition`] many times, from any
//!    thread (`&self`), with a [`RenderContext`]. Nothing is parsed at render time and the
//!    context is lazy: attribute values are looked up only when a template asks for them.
//!
//! # What templates see
//!
//! Every attribute of the entry by name, case-insensitively, first value (`{{ givenname }}` =
//! `{{ givenName }}`); `attrs['msDS-x']` for any attribute name; `all.<attr>` (list of all values,
//! `[]` when absent); `dn`; `disabled` (bool); `anchor`; `user` (the entry again, for
//! webhooks: `user.mail`); `account` (the observed account, PascalCase fields, when one exists);
//! `formats.<name>`. Reserved names ([`RESERVED_NAMES`]) and functions (`lookup`, `secret`,
//! `format`, `range`, `dict`, `namespace`) win over attribute names; extra variables
//! ([`RenderContext::with_var`]) come next. Binary values are bytes: they print as standard
//! base64, and `guid` / `sid` receive the raw bytes. `none` (e.g. a JSON `null`) prints as empty;
//! booleans print as `true` / `false`.
//!
//! Filters beyond minijinja's built-ins: `normalize`, `ascii`, `regex_replace`, `split`, `guid`,
//! `sid`, `filetime`, `gentime`, `urlencode`, `base64` (see [`filters`] for exact behaviour).
//! Functions: `lookup(table, name, company=, default=)`, `secret(ref)`, `format(name)`.
//!
//! # Undefined values
//!
//! [`Undefined::Lenient`]: undefined prints as empty, and attribute access on undefined is
//! undefined too (`{{ user.mail }}` is empty when there is no user). [`Undefined::Strict`]:
//! printing, iterating or passing an undefined value to a filter/function is an error, but
//! testing it (`{% if mail %}`, `mail is defined`, `mail | default('x')`, conditions) is
//! allowed, so optional attributes stay expressible.
//!
//! # Escaping
//!
//! A template compiled for [`Usage::WebhookBody`] escapes every printed value for its message
//! type: JSON string content (no quotes added: write `"{{ user.mail }}"`), XML text,
//! `application/x-www-form-urlencoded`, or nothing for text. `| safe` opts out. Other usages
//! never escape; use `| urlencode` for values inside URLs.

#![warn(missing_docs)]

mod check;
mod context;
mod error;
mod fast;
pub mod filters;
mod lookup;
mod refs;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use minijinja::value::{Value, ValueKind};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

pub use context::{RESERVED_NAMES, RenderContext, SecretResolver};
pub use error::{FormatIssue, RenderError, TemplateIssue};
pub use lookup::{
    COMPANIES, Company, LookupIndex, LookupMode, LookupTables, TABLES, USER_GROUPS, UserGroup,
};
pub use refs::{AttributeRefs, referenced_attributes, referenced_attributes_in_expression};

use check::{Checked, Known};
use context::Root;
use filters::RegexCache;

/// What `templates.undefined` says about names that resolve to nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Undefined {
    /// Render undefined values as empty (the default).
    #[default]
    Lenient,
    /// Printing or using an undefined value is an error; testing it is allowed.
    Strict,
}

/// Engine settings from the Integration document (`spec.templates`, `spec.formats`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineSettings {
    /// `templates.undefined`.
    pub undefined: Undefined,
    /// Named reusable templates (`formats`), by name.
    pub formats: BTreeMap<String, String>,
}

/// How printed values are escaped in a webhook body (its `messageType`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Escape {
    /// `text`: no escaping.
    #[default]
    Text,
    /// `json`: escaped as JSON string content (quotes, backslashes, control characters).
    Json,
    /// `form`: `application/x-www-form-urlencoded`.
    Form,
    /// `xml`: `& < > " '` as entities.
    Xml,
}

impl Escape {
    fn suffix(self) -> &'static str {
        match self {
            Escape::Text => "",
            Escape::Json => ".json",
            Escape::Form => ".form",
            Escape::Xml => ".xml",
        }
    }
}

/// Where a template is used. Decides whether `secret()` is allowed (SPEC §3: only in Webhook
/// url/headers/query/body and Endpoint headers/query) and how a webhook body escapes values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Usage {
    /// A Mapping attribute value (ends up in plans).
    Attribute,
    /// A named format.
    Format,
    /// An Orchestration `when` condition.
    Condition,
    /// Webhook `url`.
    WebhookUrl,
    /// A Webhook header value.
    WebhookHeader,
    /// A Webhook query value.
    WebhookQuery,
    /// A Webhook body, escaped for its message type.
    WebhookBody(Escape),
    /// An Endpoint header value.
    EndpointHeader,
    /// An Endpoint query value.
    EndpointQuery,
    /// Anywhere else (no secrets).
    Other,
}

impl Usage {
    /// Whether `secret()` may be called in this place.
    pub fn allows_secret(self) -> bool {
        matches!(
            self,
            Usage::WebhookUrl
                | Usage::WebhookHeader
                | Usage::WebhookQuery
                | Usage::WebhookBody(_)
                | Usage::EndpointHeader
                | Usage::EndpointQuery
        )
    }

    fn escape(self) -> Escape {
        match self {
            Usage::WebhookBody(escape) => escape,
            _ => Escape::Text,
        }
    }
}

/// Handle of a template compiled by [`TemplateEngine::compile`]; valid for that engine only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CompiledTemplate {
    engine: u64,
    index: usize,
}

/// Handle of a condition compiled by [`TemplateEngine::compile_expression`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CompiledCondition {
    engine: u64,
    index: usize,
}

#[derive(Debug)]
struct Compiled {
    name: String,
    usage: Usage,
    /// The fast path, when the template has one of its shapes (see [`fast`]).
    fast: Option<fast::Fast>,
}

/// Gives each engine an id, so a handle is never rendered by another engine.
static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

/// The template engine. See the [module docs](self).
#[derive(Debug)]
pub struct TemplateEngine {
    id: u64,
    env: Arc<Environment<'static>>,
    undefined: Undefined,
    formats: Arc<BTreeSet<String>>,
    filters: BTreeSet<String>,
    tests: BTreeSet<String>,
    functions: BTreeSet<String>,
    regexes: Arc<RegexCache>,
    compiled: Vec<Compiled>,
    /// Identical (source, usage, kind) compile to one template.
    dedup: HashMap<(String, Usage, bool), usize>,
}

/// minijinja's built-in filters; probed at construction, so the list may be a superset.
const BUILTIN_FILTERS: &[&str] = &[
    "safe",
    "escape",
    "e",
    "lower",
    "upper",
    "title",
    "capitalize",
    "replace",
    "length",
    "count",
    "dictsort",
    "items",
    "reverse",
    "trim",
    "join",
    "split",
    "lines",
    "default",
    "d",
    "round",
    "abs",
    "int",
    "float",
    "attr",
    "first",
    "last",
    "min",
    "max",
    "sort",
    "list",
    "string",
    "bool",
    "batch",
    "slice",
    "sum",
    "indent",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "map",
    "groupby",
    "unique",
    "chain",
    "zip",
    "pprint",
    "format",
    "tojson",
    "urlencode",
];

/// minijinja's built-in tests; probed at construction.
const BUILTIN_TESTS: &[&str] = &[
    "undefined",
    "defined",
    "none",
    "safe",
    "escaped",
    "boolean",
    "odd",
    "even",
    "divisibleby",
    "number",
    "integer",
    "int",
    "float",
    "string",
    "sequence",
    "iterable",
    "mapping",
    "startingwith",
    "endingwith",
    "lower",
    "upper",
    "sameas",
    "eq",
    "equalto",
    "ne",
    "lt",
    "lessthan",
    "le",
    "gt",
    "greaterthan",
    "ge",
    "in",
    "true",
    "false",
    "filter",
    "test",
];

impl TemplateEngine {
    /// Build the engine and compile the named formats. Errors list every issue of every
    /// format, including formats that refer to each other in a cycle.
    pub fn new(settings: EngineSettings) -> Result<Self, Vec<FormatIssue>> {
        let regexes = Arc::new(RegexCache::default());
        let mut env = Environment::new();
        // Debug mode makes undefined-value errors name the expression ("`mial` is undefined").
        // Its snapshot of referenced values is never displayed by us.
        env.set_debug(true);
        env.set_undefined_behavior(match settings.undefined {
            Undefined::Lenient => UndefinedBehavior::Chainable,
            Undefined::Strict => UndefinedBehavior::SemiStrict,
        });
        // `debug()` would dump the render context into a plan.
        env.remove_global("debug");
        filters::register(&mut env, regexes.clone());
        context::register(&mut env);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".json") {
                AutoEscape::Custom("json".into())
            } else if name.ends_with(".form") {
                AutoEscape::Custom("form".into())
            } else if name.ends_with(".xml") {
                AutoEscape::Custom("xml".into())
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(format_value);

        let (filters, tests) = probe(&env);
        let functions: BTreeSet<String> = env.globals().map(|(name, _)| name.to_string()).collect();
        let format_names: BTreeSet<String> = settings.formats.keys().cloned().collect();

        let mut issues = Vec::new();
        let mut graph = BTreeMap::new();
        for (name, source) in &settings.formats {
            let known = Known {
                filters: &filters,
                tests: &tests,
                functions: &functions,
                formats: &format_names,
                regexes: &regexes,
            };
            let Checked {
                issues: found,
                format_refs,
            } = check::check_template(source, Usage::Format, &known);
            issues.extend(found.into_iter().map(|issue| FormatIssue {
                format: name.clone(),
                issue,
            }));
            graph.insert(name.clone(), format_refs);
        }
        issues.extend(format_cycles(&graph, &settings.formats));
        if issues.is_empty() {
            for (name, source) in &settings.formats {
                if let Err(e) =
                    env.add_template_owned(context::format_template_name(name), source.clone())
                {
                    issues.push(FormatIssue {
                        format: name.clone(),
                        issue: compile_failure(source, &e),
                    });
                }
            }
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        Ok(TemplateEngine {
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            env: Arc::new(env),
            undefined: settings.undefined,
            formats: Arc::new(format_names),
            filters,
            tests,
            functions,
            regexes,
            compiled: Vec::new(),
            dedup: HashMap::new(),
        })
    }

    /// The `templates.undefined` mode this engine was built with.
    pub fn undefined(&self) -> Undefined {
        self.undefined
    }

    /// Names of the formats.
    pub fn format_names(&self) -> impl Iterator<Item = &str> {
        self.formats.iter().map(String::as_str)
    }

    fn known(&self) -> Known<'_> {
        Known {
            filters: &self.filters,
            tests: &self.tests,
            functions: &self.functions,
            formats: &self.formats,
            regexes: &self.regexes,
        }
    }

    /// Every issue of template `source` used as `usage`: syntax error (alone: nothing else can
    /// be checked then), unknown filter/test/function/format, a literal `lookup` table other
    /// than `companies`/`userGroups`, an invalid literal `regex_replace` pattern, `secret()`
    /// where not allowed, `include`/`extends`/`import`. Sorted by position; empty when valid.
    pub fn check(&self, source: &str, usage: Usage) -> Vec<TemplateIssue> {
        check::check_template(source, usage, &self.known()).issues
    }

    /// [`check`](Self::check) for a standalone expression (a condition).
    pub fn check_expression(&self, expr: &str, usage: Usage) -> Vec<TemplateIssue> {
        check::check_expression(expr, usage, &self.known()).issues
    }

    /// Check and compile a template once, for rendering many times. Compiling the same source
    /// for the same usage again returns the same handle.
    pub fn compile(
        &mut self,
        source: &str,
        usage: Usage,
    ) -> Result<CompiledTemplate, Vec<TemplateIssue>> {
        let key = (source.to_string(), usage, false);
        if let Some(&index) = self.dedup.get(&key) {
            return Ok(CompiledTemplate {
                engine: self.id,
                index,
            });
        }
        let issues = self.check(source, usage);
        if !issues.is_empty() {
            return Err(issues);
        }
        let index = self.compiled.len();
        let name = format!("t{index}{}", usage.escape().suffix());
        self.add(&name, source)?;
        // Escaping templates always go through minijinja (its formatter escapes).
        let fast = (usage.escape() == Escape::Text)
            .then(|| fast::Fast::parse(source))
            .flatten();
        self.compiled.push(Compiled { name, usage, fast });
        self.dedup.insert(key, index);
        Ok(CompiledTemplate {
            engine: self.id,
            index,
        })
    }

    /// Check and compile a condition (a minijinja expression, e.g. an Orchestration `when`).
    pub fn compile_expression(
        &mut self,
        expr: &str,
        usage: Usage,
    ) -> Result<CompiledCondition, Vec<TemplateIssue>> {
        let key = (expr.to_string(), usage, true);
        if let Some(&index) = self.dedup.get(&key) {
            return Ok(CompiledCondition {
                engine: self.id,
                index,
            });
        }
        let issues = self.check_expression(expr, usage);
        if !issues.is_empty() {
            return Err(issues);
        }
        let index = self.compiled.len();
        let name = format!("c{index}");
        // A valid expression is also valid inside an `if` tag; the check above located any
        // problem in the expression's own coordinates.
        self.add(&name, &format!("{{% if ({expr}) %}}1{{% endif %}}"))?;
        self.compiled.push(Compiled {
            name,
            usage,
            fast: None,
        });
        self.dedup.insert(key, index);
        Ok(CompiledCondition {
            engine: self.id,
            index,
        })
    }

    fn add(&mut self, name: &str, source: &str) -> Result<(), Vec<TemplateIssue>> {
        Arc::make_mut(&mut self.env)
            .add_template_owned(name.to_string(), source.to_string())
            .map_err(|e| vec![compile_failure(source, &e)])
    }

    fn lookup_compiled(&self, engine: u64, index: usize) -> Result<&Compiled, RenderError> {
        self.compiled
            .get(index)
            .filter(|_| engine == self.id)
            .ok_or_else(|| RenderError::Template {
                message: "template handle belongs to another engine".into(),
                line: None,
            })
    }

    fn run(&self, compiled: &Compiled, ctx: &RenderContext) -> Result<String, RenderError> {
        if let Some(text) = compiled.fast.as_ref().and_then(|f| f.render(ctx)) {
            return Ok(text);
        }
        self.run_vm(compiled, ctx)
    }

    /// Render through minijinja (no fast path).
    fn run_vm(&self, compiled: &Compiled, ctx: &RenderContext) -> Result<String, RenderError> {
        let root = Arc::new(Root::new(
            self.env.clone(),
            self.formats.clone(),
            ctx,
            compiled.usage.allows_secret(),
        ));
        let template = self
            .env
            .get_template(&compiled.name)
            .map_err(|e| root.classify(&e, &compiled.name))?;
        template
            .render(Value::from_dyn_object(root.clone()))
            .map_err(|e| root.classify(&e, &compiled.name))
    }

    /// Render a compiled template.
    pub fn render(
        &self,
        template: &CompiledTemplate,
        ctx: &RenderContext,
    ) -> Result<String, RenderError> {
        let compiled = self.lookup_compiled(template.engine, template.index)?;
        self.run(compiled, ctx)
    }

    /// Render through minijinja even when the template has a fast path (tests compare both).
    #[cfg(test)]
    fn render_vm(
        &self,
        template: &CompiledTemplate,
        ctx: &RenderContext,
    ) -> Result<String, RenderError> {
        let compiled = self.lookup_compiled(template.engine, template.index)?;
        self.run_vm(compiled, ctx)
    }

    /// Whether a compiled template has a fast path.
    #[cfg(test)]
    fn has_fast_path(&self, template: &CompiledTemplate) -> bool {
        self.compiled[template.index].fast.is_some()
    }

    /// Evaluate a compiled condition for truthiness (Jinja rules: empty strings, `0`, empty
    /// lists and undefined are false). Undefined names are false in both modes; attribute
    /// access on an undefined name is an error in strict mode.
    pub fn eval_condition(
        &self,
        condition: &CompiledCondition,
        ctx: &RenderContext,
    ) -> Result<bool, RenderError> {
        let compiled = self.lookup_compiled(condition.engine, condition.index)?;
        Ok(self.run(compiled, ctx)? == "1")
    }
}

/// Probe which filter and test names the environment really has.
fn probe(env: &Environment<'static>) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut state = env.empty_state();
    let arg = [Value::from("")];
    let filters = BUILTIN_FILTERS
        .iter()
        .chain(filters::FILTERS.iter())
        .filter(|name| {
            !matches!(state.apply_filter(name, &arg), Err(e) if e.kind() == ErrorKind::UnknownFilter)
        })
        .map(|name| name.to_string())
        .collect();
    let tests = BUILTIN_TESTS
        .iter()
        .filter(|name| {
            !matches!(state.perform_test(name, &arg), Err(e) if e.kind() == ErrorKind::UnknownTest)
        })
        .map(|name| name.to_string())
        .collect();
    (filters, tests)
}

/// An unexpected compile failure (after a clean check) as an issue.
fn compile_failure(source: &str, err: &minijinja::Error) -> TemplateIssue {
    let message = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    match err.range() {
        Some(range) => TemplateIssue::at(source, range.start, message),
        None => TemplateIssue {
            message,
            line: err.line().unwrap_or(1),
            column: 1,
        },
    }
}

/// Formats that reach themselves through literal references.
fn format_cycles(
    graph: &BTreeMap<String, BTreeMap<String, usize>>,
    sources: &BTreeMap<String, String>,
) -> Vec<FormatIssue> {
    let mut issues = Vec::new();
    for start in graph.keys() {
        // Depth-first search for a path start -> ... -> start.
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        let mut cycle = None;
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).into_iter().flat_map(|refs| refs.keys()) {
                if next == start {
                    let mut full = path.clone();
                    full.push(next.clone());
                    cycle = Some(full);
                    break;
                }
                if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
            if cycle.is_some() {
                break;
            }
        }
        if let Some(path) = cycle {
            let first_ref = path.get(1).cloned().unwrap_or_default();
            let offset = graph
                .get(start)
                .and_then(|refs| refs.get(&first_ref))
                .copied()
                .unwrap_or(0);
            let source = sources.get(start).map(String::as_str).unwrap_or_default();
            issues.push(FormatIssue {
                format: start.clone(),
                issue: TemplateIssue::at(
                    source,
                    offset,
                    format!(
                        "formats refer to each other in a cycle: {}",
                        path.join(" -> ")
                    ),
                ),
            });
        }
    }
    issues
}

/// The formatter: bytes print as base64, none as empty, booleans as `true`/`false` (JSON
/// style, not Python's `True`); then escape for the template's usage.
fn format_value(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    use base64::prelude::{BASE64_STANDARD, Engine as _};

    let owned;
    let text: &str = match value.kind() {
        ValueKind::Bytes => {
            owned = BASE64_STANDARD.encode(value.as_bytes().unwrap_or_default());
            &owned
        }
        ValueKind::None | ValueKind::Undefined => "",
        ValueKind::Bool if value.is_true() => "true",
        ValueKind::Bool => "false",
        _ => match value.as_str() {
            Some(s) => s,
            None => {
                owned = value.to_string();
                &owned
            }
        },
    };
    let write = |out: &mut minijinja::Output, s: &str| {
        out.write_str(s)
            .map_err(|e| minijinja::Error::new(ErrorKind::WriteFailure, e.to_string()))
    };
    if value.is_safe() {
        return write(out, text);
    }
    let AutoEscape::Custom(kind) = state.auto_escape() else {
        return write(out, text);
    };
    match kind.as_ref() {
        "json" => write(out, &escape_json(text)),
        "xml" => write(out, &escape_xml(text)),
        "form" => {
            let encoded: String = url::form_urlencoded::byte_serialize(text.as_bytes()).collect();
            write(out, &encoded)
        }
        _ => write(out, text),
    }
}

/// JSON string content (without the surrounding quotes).
fn escape_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
