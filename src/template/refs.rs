//! Which directory attributes a template reads, so the directory is asked for those only.
//!
//! The answer is a static over-approximation taken from the syntax tree: every free variable
//! that is not a reserved name or a function (`{{ mail }}`), and every constant name read
//! through `user`, `attrs` or `all` (`user.mail`, `attrs['msDS-x']`, `all.proxyAddresses`).
//! Names bound by the template itself (`{% set x %}`, loop variables) are included too: asking
//! a server for an attribute that does not exist costs nothing, missing one would silently
//! render empty. A use the tree cannot name — `attrs[var]`, iterating `user`, `user | tojson`
//! — makes the answer [`AttributeRefs::All`].

use std::collections::BTreeSet;

use minijinja::machinery::ast::{self, CallArg, Expr, Stmt};
use minijinja::machinery::{parse, parse_expr};
use minijinja::syntax::SyntaxConfig;

use super::context::{FUNCTIONS, RESERVED_NAMES};

/// The directory attributes a template may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeRefs {
    /// Exactly these names (as written; LDAP compares them case-insensitively).
    Names(BTreeSet<String>),
    /// The template reads attributes by computed name or as a whole: fetch every attribute.
    All,
}

impl AttributeRefs {
    /// Merge `other` into `self`.
    pub fn extend(&mut self, other: AttributeRefs) {
        match (&mut *self, other) {
            (AttributeRefs::All, _) => {}
            (_, AttributeRefs::All) => *self = AttributeRefs::All,
            (AttributeRefs::Names(mine), AttributeRefs::Names(theirs)) => mine.extend(theirs),
        }
    }
}

/// The attributes template `source` reads. A template that does not parse reads
/// [`AttributeRefs::All`] (validation reports it; reading must not depend on it).
pub fn referenced_attributes(source: &str) -> AttributeRefs {
    match parse(source, "<refs>", SyntaxConfig::default()) {
        Ok(stmt) => {
            let mut walker = Walker::default();
            walker.stmt(&stmt);
            walker.finish()
        }
        Err(_) => AttributeRefs::All,
    }
}

/// [`referenced_attributes`] for a standalone expression (an Orchestration `when`).
pub fn referenced_attributes_in_expression(source: &str) -> AttributeRefs {
    match parse_expr(source) {
        Ok(expr) => {
            let mut walker = Walker::default();
            walker.expr(&expr);
            walker.finish()
        }
        Err(_) => AttributeRefs::All,
    }
}

#[derive(Default)]
struct Walker {
    names: BTreeSet<String>,
    dynamic: bool,
}

/// What an expression denotes, as far as attribute access is concerned.
enum Denotes<'a> {
    /// `user`: the entry (reserved names, then attributes).
    Entry,
    /// `attrs` or `user.attrs`: attributes by name.
    Attrs,
    /// `all` or `user.all`: attribute value lists by name.
    All,
    /// A free variable that may be an attribute.
    Attribute(&'a str),
    /// Anything else.
    Other,
}

fn denotes<'a>(expr: &Expr<'a>) -> Denotes<'a> {
    match expr {
        Expr::Var(var) => match var.id {
            "user" => Denotes::Entry,
            "attrs" => Denotes::Attrs,
            "all" => Denotes::All,
            id if RESERVED_NAMES.contains(&id) || FUNCTIONS.contains(&id) => Denotes::Other,
            id => Denotes::Attribute(id),
        },
        Expr::GetAttr(g) if matches!(denotes(&g.expr), Denotes::Entry) => match g.name {
            "attrs" => Denotes::Attrs,
            "all" => Denotes::All,
            _ => Denotes::Other,
        },
        _ => Denotes::Other,
    }
}

impl Walker {
    fn finish(self) -> AttributeRefs {
        if self.dynamic {
            AttributeRefs::All
        } else {
            AttributeRefs::Names(self.names)
        }
    }

    fn name(&mut self, name: &str) {
        self.names.insert(name.to_string());
    }

    /// `container.name` / `container['name']` where the container is entry-like.
    fn member(&mut self, container: &Denotes<'_>, name: &str) {
        match container {
            Denotes::Entry if matches!(name, "dn" | "disabled" | "anchor" | "attrs" | "all") => {}
            _ => self.name(name),
        }
    }

    fn stmts(&mut self, stmts: &[Stmt<'_>]) {
        for stmt in stmts {
            self.stmt(stmt);
        }
    }

    fn stmt(&mut self, stmt: &Stmt<'_>) {
        match stmt {
            Stmt::Template(t) => self.stmts(&t.children),
            Stmt::EmitExpr(e) => self.expr(&e.expr),
            Stmt::EmitRaw(_) | Stmt::Continue(_) | Stmt::Break(_) => {}
            Stmt::ForLoop(f) => {
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
                for (_, value) in &w.assignments {
                    self.expr(value);
                }
                self.stmts(&w.body);
            }
            Stmt::Set(s) => self.expr(&s.expr),
            Stmt::SetBlock(s) => {
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
            // Rejected by validation; nothing they could read is known here.
            Stmt::Import(_) | Stmt::FromImport(_) | Stmt::Extends(_) | Stmt::Include(_) => {
                self.dynamic = true;
            }
            Stmt::Macro(m) => self.macro_decl(m),
            Stmt::CallBlock(c) => {
                self.call(&c.call);
                self.macro_decl(&c.macro_decl);
            }
            Stmt::Do(d) => self.call(&d.call),
        }
    }

    fn macro_decl(&mut self, m: &ast::Macro<'_>) {
        for default in &m.defaults {
            self.expr(default);
        }
        self.stmts(&m.body);
    }

    fn call(&mut self, call: &ast::Call<'_>) {
        self.expr(&call.expr);
        self.args(&call.args);
    }

    fn args(&mut self, args: &[CallArg<'_>]) {
        for arg in args {
            match arg {
                CallArg::Pos(e)
                | CallArg::Kwarg(_, e)
                | CallArg::PosSplat(e)
                | CallArg::KwargSplat(e) => self.expr(e),
            }
        }
    }

    fn expr(&mut self, expr: &Expr<'_>) {
        match denotes(expr) {
            // The entry or an attribute map used as a whole (printed, iterated, filtered).
            Denotes::Entry | Denotes::Attrs | Denotes::All => {
                self.dynamic = true;
                return;
            }
            Denotes::Attribute(id) => {
                self.name(id);
                return;
            }
            Denotes::Other => {}
        }
        match expr {
            Expr::Var(_) | Expr::Const(_) => {}
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
            Expr::Filter(f) => {
                if let Some(e) = &f.expr {
                    self.expr(e);
                }
                self.args(&f.args);
            }
            Expr::Test(t) => {
                self.expr(&t.expr);
                self.args(&t.args);
            }
            Expr::GetAttr(g) => match denotes(&g.expr) {
                container @ (Denotes::Entry | Denotes::Attrs | Denotes::All) => {
                    self.member(&container, g.name);
                }
                _ => self.expr(&g.expr),
            },
            Expr::GetItem(g) => match denotes(&g.expr) {
                container @ (Denotes::Entry | Denotes::Attrs | Denotes::All) => {
                    match &g.subscript_expr {
                        Expr::Const(c) if c.value.as_str().is_some() => {
                            self.member(&container, c.value.as_str().unwrap_or_default());
                        }
                        other => {
                            self.dynamic = true;
                            self.expr(other);
                        }
                    }
                }
                _ => {
                    self.expr(&g.expr);
                    self.expr(&g.subscript_expr);
                }
            },
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(source: &str) -> Vec<String> {
        match referenced_attributes(source) {
            AttributeRefs::Names(n) => n.into_iter().collect(),
            AttributeRefs::All => panic!("{source}: expected names, got All"),
        }
    }

    #[test]
    fn free_variables_and_constant_member_access_are_attributes() {
        assert_eq!(
            names(
                "{{ givenName | normalize | lower }}.{{ sn }}@{{ lookup('companies', company) }}"
            ),
            ["company", "givenName", "sn"]
        );
        assert_eq!(
            names(
                "{{ user.mail }} {{ attrs['msDS-cloudExtensionAttribute1'] }} {{ all.proxyAddresses | join(',') }}"
            ),
            ["mail", "msDS-cloudExtensionAttribute1", "proxyAddresses"]
        );
        assert_eq!(
            names(
                "{{ user.attrs.title }} {{ user.all['otherMobile'] }} {{ user.dn }} {{ dn }} {{ anchor }}"
            ),
            ["otherMobile", "title"]
        );
        assert_eq!(
            names("{{ 'Suspended' if disabled else 'Active' }}{{ account.Email }}{{ formats.x }}"),
            Vec::<String>::new()
        );
        assert_eq!(
            names("{% for p in all.mail %}{{ p }}{% endfor %}{% set n = sn %}{{ n }}"),
            ["mail", "n", "p", "sn"],
            "bound names are over-approximated as attributes: harmless"
        );
    }

    #[test]
    fn dynamic_access_reads_everything() {
        for source in [
            "{{ attrs[name] }}",
            "{{ user | tojson }}",
            "{% for a in attrs %}{{ a }}{% endfor %}",
            "{{ all[x] }}",
            "{{ user.attrs | list }}",
            "{{ broken",
        ] {
            assert_eq!(
                referenced_attributes(source),
                AttributeRefs::All,
                "{source}"
            );
        }
    }

    #[test]
    fn expressions() {
        assert_eq!(
            referenced_attributes_in_expression("user.department == 'Sales' and not disabled"),
            AttributeRefs::Names(["department".to_string()].into())
        );
        let mut refs = AttributeRefs::Names(BTreeSet::new());
        refs.extend(referenced_attributes("{{ mail }}"));
        refs.extend(AttributeRefs::All);
        assert_eq!(refs, AttributeRefs::All);
    }
}
