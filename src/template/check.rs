//! Static checks on a template's syntax tree (`validate` time, SPEC §4).
//!
//! minijinja reports unknown filters, tests and functions only when rendering; we walk the
//! AST instead so every problem is reported up front, all at once, with its location.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use minijinja::machinery::ast::{self, CallArg, CallType, Expr, Stmt};
use minijinja::machinery::{Span, parse, parse_expr};
use minijinja::syntax::SyntaxConfig;

use super::Usage;
use super::error::TemplateIssue;
use super::filters::RegexCache;
use super::lookup::{COMPANIES, TABLES, USER_GROUPS};

/// The message for `secret()` outside the places that may use it.
pub(crate) const SECRET_NOT_ALLOWED: &str =
    "secret() is not allowed here: a secret must never reach a plan";

/// What the environment knows, for name checks.
pub(crate) struct Known<'a> {
    pub(crate) filters: &'a BTreeSet<String>,
    pub(crate) tests: &'a BTreeSet<String>,
    pub(crate) functions: &'a BTreeSet<String>,
    pub(crate) formats: &'a BTreeSet<String>,
    pub(crate) regexes: &'a RegexCache,
}

/// The outcome of a check.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    pub(crate) issues: Vec<TemplateIssue>,
    /// Formats named literally (`format('x')`, `formats.x`) and where, for cycle detection.
    pub(crate) format_refs: BTreeMap<String, usize>,
}

/// Check a template.
pub(crate) fn check_template(source: &str, usage: Usage, known: &Known<'_>) -> Checked {
    match parse(source, "<template>", SyntaxConfig::default()) {
        Ok(stmt) => {
            let mut checker = Checker::new(source, usage, known);
            checker.stmt(&stmt);
            checker.finish()
        }
        Err(err) => syntax_error(source, &err),
    }
}

/// Check a standalone expression (a condition).
pub(crate) fn check_expression(source: &str, usage: Usage, known: &Known<'_>) -> Checked {
    if source.trim().is_empty() {
        return Checked {
            issues: vec![TemplateIssue::at(source, 0, "empty expression")],
            format_refs: BTreeMap::new(),
        };
    }
    match parse_expr(source) {
        Ok(expr) => {
            let mut checker = Checker::new(source, usage, known);
            checker.expr(&expr);
            checker.finish()
        }
        Err(err) => syntax_error(source, &err),
    }
}

fn syntax_error(source: &str, err: &minijinja::Error) -> Checked {
    let detail = err.detail().unwrap_or("invalid template");
    let message = format!("syntax error: {detail}");
    let issue = match (err.range(), err.line()) {
        (Some(range), _) => TemplateIssue::at(source, range.start, message),
        (None, Some(line)) => TemplateIssue {
            message,
            line,
            column: 1,
        },
        (None, None) => TemplateIssue::at(source, 0, message),
    };
    Checked {
        issues: vec![issue],
        format_refs: BTreeMap::new(),
    }
}

/// "did you mean" among `candidates`.
fn suggestion<'c>(name: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
    let best = candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, c)) => format!(" (did you mean '{c}'?)"),
        None => String::new(),
    }
}

struct Checker<'s, 'k> {
    source: &'s str,
    usage: Usage,
    known: &'k Known<'k>,
    issues: Vec<(usize, String)>,
    format_refs: BTreeMap<String, usize>,
    /// Names bound by the template itself (set, for, macro, with...).
    bound: HashSet<&'s str>,
    /// Function calls to check once all bindings are known: (name, offset).
    calls: Vec<(&'s str, usize)>,
}

impl<'s, 'k> Checker<'s, 'k> {
    fn new(source: &'s str, usage: Usage, known: &'k Known<'k>) -> Self {
        Checker {
            source,
            usage,
            known,
            issues: Vec::new(),
            format_refs: BTreeMap::new(),
            bound: HashSet::new(),
            calls: Vec::new(),
        }
    }

    fn finish(mut self) -> Checked {
        for (name, offset) in std::mem::take(&mut self.calls) {
            if self.bound.contains(name) || self.known.functions.contains(name) {
                continue;
            }
            let hint = if self.known.filters.contains(name) {
                format!(" ('{name}' is a filter: write `value | {name}`)")
            } else {
                suggestion(name, self.known.functions.iter().map(String::as_str))
            };
            self.issues
                .push((offset, format!("unknown function '{name}'{hint}")));
        }
        let mut issues: Vec<TemplateIssue> = self
            .issues
            .into_iter()
            .map(|(offset, message)| TemplateIssue::at(self.source, offset, message))
            .collect();
        issues.sort_by_key(|i| (i.line, i.column));
        issues.dedup();
        Checked {
            issues,
            format_refs: self.format_refs,
        }
    }

    fn issue(&mut self, offset: usize, message: impl Into<String>) {
        self.issues.push((offset, message.into()));
    }

    /// Byte offset of `name` inside `span`, searching from `from` (best effort).
    fn offset_of(&self, name: &str, span: Span, from: usize) -> usize {
        let start = usize::try_from(span.start_offset).unwrap_or(0);
        let end = usize::try_from(span.end_offset)
            .unwrap_or(usize::MAX)
            .min(self.source.len());
        if start >= end {
            return start;
        }
        let from = from.clamp(start, end);
        self.source
            .get(from..end)
            .and_then(|hay| hay.find(name))
            .map_or(start, |i| from + i)
    }

    fn stmts(&mut self, stmts: &[Stmt<'s>]) {
        for stmt in stmts {
            self.stmt(stmt);
        }
    }

    fn bind(&mut self, target: &Expr<'s>) {
        match target {
            Expr::Var(var) => {
                self.bound.insert(var.id);
            }
            Expr::List(list) => {
                for item in &list.items {
                    self.bind(item);
                }
            }
            Expr::Tuple(tuple) => {
                for item in &tuple.items {
                    self.bind(item);
                }
            }
            // `{% set ns.attr = ... %}` binds nothing new.
            other => self.expr(other),
        }
    }

    fn unsupported(&mut self, span: Span, what: &str) {
        self.issue(
            usize::try_from(span.start_offset).unwrap_or(0),
            format!("{{% {what} %}} is not supported in carbonite-sync templates (use formats)"),
        );
    }

    fn stmt(&mut self, stmt: &Stmt<'s>) {
        match stmt {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitExpr(e) => self.expr(&e.expr),
            Stmt::EmitRaw(_) | Stmt::Continue(_) | Stmt::Break(_) => {}
            Stmt::ForLoop(f) => {
                self.bind(&f.target);
                self.expr(&f.iter);
                if let Some(filter) = &f.filter_expr {
                    self.expr(filter);
                }
                self.stmts(&f.body);
                self.stmts(&f.else_body);
            }
            Stmt::IfCond(i) => {
                self.expr(&i.expr);
                self.stmts(&i.true_body);
                self.stmts(&i.false_body);
            }
            Stmt::WithBlock(w) => {
                for (target, value) in &w.assignments {
                    self.bind(target);
                    self.expr(value);
                }
                self.stmts(&w.body);
            }
            Stmt::Set(s) => {
                self.bind(&s.target);
                self.expr(&s.expr);
            }
            Stmt::SetBlock(s) => {
                self.bind(&s.target);
                if let Some(filter) = &s.filter {
                    self.expr(filter);
                }
                self.stmts(&s.body);
            }
            Stmt::AutoEscape(a) => {
                self.expr(&a.enabled);
                self.stmts(&a.body);
            }
            Stmt::FilterBlock(f) => {
                self.expr(&f.filter);
                self.stmts(&f.body);
            }
            Stmt::Block(b) => self.stmts(&b.body),
            Stmt::Import(i) => self.unsupported(i.span(), "import"),
            Stmt::FromImport(i) => self.unsupported(i.span(), "from ... import"),
            Stmt::Extends(e) => self.unsupported(e.span(), "extends"),
            Stmt::Include(i) => self.unsupported(i.span(), "include"),
            Stmt::Macro(m) => self.macro_decl(m),
            Stmt::CallBlock(c) => {
                self.call(&c.call);
                self.macro_decl(&c.macro_decl);
            }
            Stmt::Do(d) => self.call(&d.call),
        }
    }

    fn macro_decl(&mut self, m: &ast::Macro<'s>) {
        self.bound.insert(m.name);
        for arg in &m.args {
            self.bind(arg);
        }
        for default in &m.defaults {
            self.expr(default);
        }
        self.stmts(&m.body);
    }

    fn args(&mut self, args: &[CallArg<'s>]) {
        for arg in args {
            match arg {
                CallArg::Pos(e)
                | CallArg::Kwarg(_, e)
                | CallArg::PosSplat(e)
                | CallArg::KwargSplat(e) => self.expr(e),
            }
        }
    }

    fn expr(&mut self, expr: &Expr<'s>) {
        match expr {
            Expr::Var(var) => {
                if var.id == "secret"
                    && !self.usage.allows_secret()
                    && !self.bound.contains("secret")
                {
                    self.issue(
                        usize::try_from(var.span().start_offset).unwrap_or(0),
                        SECRET_NOT_ALLOWED,
                    );
                }
            }
            Expr::Const(_) => {}
            Expr::Slice(s) => {
                self.expr(&s.expr);
                for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                    self.expr(part);
                }
            }
            Expr::UnaryOp(u) => self.expr(&u.expr),
            Expr::BinOp(b) => {
                self.expr(&b.left);
                self.expr(&b.right);
            }
            Expr::Compare(c) => {
                self.expr(&c.expr);
                for op in &c.ops {
                    self.expr(&op.expr);
                }
            }
            Expr::IfExpr(i) => {
                self.expr(&i.test_expr);
                self.expr(&i.true_expr);
                if let Some(f) = &i.false_expr {
                    self.expr(f);
                }
            }
            Expr::Filter(f) => self.filter(f),
            Expr::Test(t) => {
                if !self.known.tests.contains(t.name) {
                    let from = expr_end(&t.expr);
                    let offset = self.offset_of(t.name, t.span(), from);
                    let hint = suggestion(t.name, self.known.tests.iter().map(String::as_str));
                    self.issue(offset, format!("unknown test '{}'{hint}", t.name));
                }
                self.expr(&t.expr);
                self.args(&t.args);
            }
            Expr::GetAttr(g) => {
                if let Expr::Var(var) = &g.expr
                    && var.id == "formats"
                    && !self.bound.contains("formats")
                {
                    let from = expr_end(&g.expr);
                    let offset = self.offset_of(g.name, g.span(), from);
                    self.format_ref(g.name, offset);
                }
                self.expr(&g.expr);
            }
            Expr::GetItem(g) => {
                if let (Expr::Var(var), Expr::Const(c)) = (&g.expr, &g.subscript_expr)
                    && var.id == "formats"
                    && !self.bound.contains("formats")
                    && let Some(name) = c.value.as_str()
                {
                    let offset = usize::try_from(c.span().start_offset).unwrap_or(0);
                    self.format_ref(name, offset);
                }
                self.expr(&g.expr);
                self.expr(&g.subscript_expr);
            }
            Expr::Call(c) => self.call(c),
            Expr::List(l) => {
                for item in &l.items {
                    self.expr(item);
                }
            }
            Expr::Tuple(t) => {
                for item in &t.items {
                    self.expr(item);
                }
            }
            Expr::Map(m) => {
                for (k, v) in m.keys.iter().zip(&m.values) {
                    self.expr(k);
                    self.expr(v);
                }
            }
        }
    }

    fn filter(&mut self, f: &ast::Spanned<ast::Filter<'s>>) {
        if !self.known.filters.contains(f.name) {
            let from = f.expr.as_ref().map_or(0, expr_end);
            let offset = self.offset_of(f.name, f.span(), from);
            let hint = if self.known.functions.contains(f.name) {
                format!(" ('{}' is a function: write `{}(...)`)", f.name, f.name)
            } else {
                suggestion(f.name, self.known.filters.iter().map(String::as_str))
            };
            self.issue(offset, format!("unknown filter '{}'{hint}", f.name));
        }
        if f.name == "regex_replace"
            && let Some(CallArg::Pos(Expr::Const(pattern))) = f.args.first()
            && let Some(text) = pattern.value.as_str()
            && let Err(e) = self.known.regexes.get(text)
        {
            let offset = usize::try_from(pattern.span().start_offset).unwrap_or(0);
            let first_line = e
                .lines()
                .last()
                .unwrap_or("invalid pattern")
                .trim()
                .to_string();
            self.issue(
                offset,
                format!("regex_replace: invalid pattern: {first_line}"),
            );
        }
        if let Some(e) = &f.expr {
            self.expr(e);
        }
        self.args(&f.args);
    }

    fn format_ref(&mut self, name: &str, offset: usize) {
        self.format_refs.entry(name.to_string()).or_insert(offset);
        if !self.known.formats.contains(name) {
            let hint = suggestion(name, self.known.formats.iter().map(String::as_str));
            self.issue(offset, format!("unknown format '{name}'{hint}"));
        }
    }

    fn call(&mut self, call: &ast::Spanned<ast::Call<'s>>) {
        if let CallType::Function(name) = call.identify_call() {
            let offset = usize::try_from(expr_start(&call.expr)).unwrap_or(0);
            if !self.bound.contains(name) {
                match name {
                    "format" => self.check_format_call(call),
                    "lookup" => self.check_lookup_call(call, offset),
                    _ => {}
                }
            }
            self.calls.push((name, offset));
        }
        self.expr(&call.expr);
        self.args(&call.args);
    }

    fn check_format_call(&mut self, call: &ast::Call<'s>) {
        if let Some(CallArg::Pos(Expr::Const(c))) = call.args.first()
            && let Some(name) = c.value.as_str()
        {
            let offset = usize::try_from(c.span().start_offset).unwrap_or(0);
            self.format_ref(name, offset);
        }
    }

    fn check_lookup_call(&mut self, call: &ast::Call<'s>, offset: usize) {
        let mut positional = 0;
        let mut table: Option<&Expr<'s>> = None;
        let mut splat = false;
        let mut company = false;
        for arg in &call.args {
            match arg {
                CallArg::Pos(e) => {
                    if positional == 0 {
                        table = Some(e);
                    }
                    positional += 1;
                }
                CallArg::Kwarg(name, e) => match *name {
                    "company" => company = true,
                    "default" => {}
                    other => {
                        let at = usize::try_from(expr_start(e)).unwrap_or(offset);
                        let hint = suggestion(other, ["company", "default"]);
                        self.issue(
                            at,
                            format!("lookup(): unknown keyword argument '{other}'{hint}"),
                        );
                    }
                },
                CallArg::PosSplat(_) | CallArg::KwargSplat(_) => splat = true,
            }
        }
        if !splat && positional != 2 {
            self.issue(
                offset,
                format!(
                    "lookup() takes 2 positional arguments (table, name), got {positional}: \
                     lookup('{USER_GROUPS}', department, company='Corp', default='Staff')"
                ),
            );
        }
        if let Some(Expr::Const(c)) = table
            && let Some(name) = c.value.as_str()
        {
            let at = usize::try_from(c.span().start_offset).unwrap_or(offset);
            if !TABLES.contains(&name) {
                let hint = suggestion(name, TABLES);
                self.issue(
                    at,
                    format!(
                        "lookup(): unknown table '{name}' (tables: '{COMPANIES}', '{USER_GROUPS}'){hint}"
                    ),
                );
            } else if name == COMPANIES && company {
                self.issue(
                    at,
                    format!("lookup(): company= applies to '{USER_GROUPS}' only"),
                );
            }
        }
    }
}

/// Start offset of an expression.
fn expr_start(expr: &Expr<'_>) -> u32 {
    expr_span(expr).start_offset
}

/// End offset of an expression (where a filter/test name following it can start).
fn expr_end(expr: &Expr<'_>) -> usize {
    usize::try_from(expr_span(expr).end_offset).unwrap_or(0)
}

fn expr_span(expr: &Expr<'_>) -> Span {
    match expr {
        Expr::Var(s) => s.span(),
        Expr::Const(s) => s.span(),
        Expr::Slice(s) => s.span(),
        Expr::UnaryOp(s) => s.span(),
        Expr::BinOp(s) => s.span(),
        Expr::Compare(s) => s.span(),
        Expr::IfExpr(s) => s.span(),
        Expr::Filter(s) => s.span(),
        Expr::Test(s) => s.span(),
        Expr::GetAttr(s) => s.span(),
        Expr::GetItem(s) => s.span(),
        Expr::Call(s) => s.span(),
        Expr::List(s) => s.span(),
        Expr::Tuple(s) => s.span(),
        Expr::Map(s) => s.span(),
    }
}
