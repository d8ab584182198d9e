//! `compare` output (SPEC §13): text, markdown (a PR comment, never over 60,000 characters) and
//! JSON (`format_version: "1"`, `kind: "compare"`; schema in `schema/compare.schema.json`).
//! Pure functions of a [`CompareReport`].

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::ObservedSource;
use crate::compare::run::{CompareMeta, IgnoredChange, LookupSource};
use crate::compare::{
    AccountChange, AccountDiff, CompareSummary, Comparison, ConflictDiff, GuardDiff,
};
use crate::reconcile::{Action, Conflict};

/// Hard ceiling of the markdown comment (GitHub's limit is 65,536).
pub const MAX_CHARS: usize = super::markdown::MAX_CHARS;

/// A comparison with its metadata: what every renderer takes.
pub struct CompareReport<'a> {
    pub comparison: &'a Comparison,
    pub meta: &'a CompareMeta,
}

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

fn paint(color: bool, code: &str, s: &str) -> String {
    if color {
        format!("{code}{s}{RESET}")
    } else {
        s.to_string()
    }
}

fn show(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(empty)")
}

/// `update + suspend (held back by a guard)`, or `no change`.
fn actions(a: &[Action], held_back: &[Action]) -> String {
    if a.is_empty() {
        return "no change".into();
    }
    a.iter()
        .map(|x| {
            if held_back.contains(x) {
                format!("{} (held back by a guard)", x.as_str())
            } else {
                x.as_str().to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

fn actions_differ(a: &AccountDiff) -> bool {
    a.base_actions != a.head_actions || a.base_held_back != a.head_held_back
}

/// `Compare: 1 entering, 2 leaving, 3 changed; conflicts: 1 added, 0 removed.`
pub fn counts_line(s: &CompareSummary) -> String {
    format!(
        "Compare: {} entering, {} leaving, {} changed; conflicts: {} added, {} removed.",
        s.entering, s.leaving, s.changed, s.conflicts_added, s.conflicts_removed
    )
}

/// Lines about where the data came from (cache, offline, unresolved lookups) and notes.
pub fn source_lines(meta: &CompareMeta) -> Vec<String> {
    let mut out = Vec::new();
    match meta.observed_source {
        ObservedSource::Cache => out.push(format!(
            "Observed accounts come from the cache (listed {}{}), not a live listing.",
            meta.listed_at.as_deref().unwrap_or("at an unknown time"),
            meta.cache_age
                .as_deref()
                .map(|a| format!(", {a} ago"))
                .unwrap_or_default()
        )),
        ObservedSource::None => out.push(
            "Offline: no Carbonite accounts were read; both configs are compared on the directory alone."
                .into(),
        ),
        ObservedSource::Live => {}
    }
    if meta.lookups == LookupSource::Unresolved {
        out.push(
            "No lookup tables (offline, no observed-state cache): `lookup()` renders `<unresolved:TABLE/NAME>` on both sides."
                .into(),
        );
    }
    out.extend(meta.notes.iter().cloned());
    out
}

fn ignored_header() -> &'static str {
    "Head changes that are NOT used (connections, Endpoints and secrets come from the base config):"
}

fn ignored_line(i: &IgnoredChange) -> String {
    format!(
        "{}: {} -> {}",
        i.path,
        i.base.as_deref().unwrap_or("(unset)"),
        i.head.as_deref().unwrap_or("(unset)")
    )
}

fn conflict_line(c: &Conflict) -> String {
    format!(
        "{} {}/{} {}: {}",
        c.kind.as_str(),
        c.mapping.as_deref().unwrap_or("-"),
        c.key.as_deref().unwrap_or("(no key)"),
        c.dn.as_deref().or(c.account_id.as_deref()).unwrap_or("-"),
        c.reason
    )
}

fn guard_line(g: &GuardDiff) -> String {
    format!(
        "{}{}: {} -> {}",
        g.name,
        g.mapping
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default(),
        g.base.as_deref().unwrap_or("(none)"),
        g.head.as_deref().unwrap_or("(none)")
    )
}

/// Render the terminal form.
pub fn text(r: &CompareReport, color: bool) -> String {
    let c = r.comparison;
    let mut out = String::new();
    for l in source_lines(r.meta) {
        let _ = writeln!(out, "{}", paint(color, YELLOW, &l));
    }
    if !r.meta.ignored.is_empty() {
        let _ = writeln!(out, "{}", paint(color, YELLOW, ignored_header()));
        for i in &r.meta.ignored {
            let _ = writeln!(out, "  {}", ignored_line(i));
        }
    }
    if !out.is_empty() {
        out.push('\n');
    }
    for a in &c.accounts {
        let (sym, code) = match a.change {
            AccountChange::Entering => ("+", GREEN),
            AccountChange::Leaving => ("-", RED),
            AccountChange::Changed => ("~", YELLOW),
        };
        let _ = writeln!(
            out,
            "{} {}/{}  {}",
            paint(color, code, &format!("{sym} {}", a.change.as_str())),
            a.mapping,
            a.key,
            a.dn.as_deref().unwrap_or("(no directory entry)")
        );
        for f in &a.fields {
            match a.change {
                AccountChange::Entering => {
                    let _ = writeln!(out, "    {}: {}", f.name, show(&f.head));
                }
                AccountChange::Leaving => {
                    let _ = writeln!(out, "    {}: {}", f.name, show(&f.base));
                }
                AccountChange::Changed => {
                    let _ = writeln!(out, "    {}", f.name);
                    let _ = writeln!(
                        out,
                        "      {}",
                        paint(color, RED, &format!("- {}", show(&f.base)))
                    );
                    let _ = writeln!(
                        out,
                        "      {}",
                        paint(color, GREEN, &format!("+ {}", show(&f.head)))
                    );
                }
            }
        }
        if actions_differ(a) {
            let _ = writeln!(
                out,
                "    plan: {} -> {}",
                actions(&a.base_actions, &a.base_held_back),
                actions(&a.head_actions, &a.head_held_back)
            );
        }
        out.push('\n');
    }
    section(&mut out, "Conflicts added", &c.conflicts.added, "+", color);
    section(
        &mut out,
        "Conflicts removed",
        &c.conflicts.removed,
        "-",
        color,
    );
    if !c.guards.is_empty() {
        let _ = writeln!(out, "Guards:");
        for g in &c.guards {
            let _ = writeln!(out, "  {}", guard_line(g));
        }
        out.push('\n');
    }
    if c.is_empty() {
        let _ = writeln!(out, "No differences.");
    }
    let _ = writeln!(out, "{}", counts_line(&c.summary));
    out
}

fn section(out: &mut String, title: &str, list: &[Conflict], sym: &str, color: bool) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title} ({}):", list.len());
    for c in list {
        let code = if sym == "+" { RED } else { GREEN };
        let _ = writeln!(
            out,
            "  {}",
            paint(color, code, &format!("{sym} {}", conflict_line(c)))
        );
    }
    out.push('\n');
}

/// Escape text for a markdown table cell or inline code.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ").replace('`', "'")
}

fn account_item(a: &AccountDiff) -> String {
    let mut s = format!(
        "- `{}/{}` — {}",
        cell(&a.mapping),
        cell(&a.key),
        cell(a.dn.as_deref().unwrap_or("no directory entry"))
    );
    if actions_differ(a) {
        let _ = write!(
            s,
            " — plan: {} → **{}**",
            actions(&a.base_actions, &a.base_held_back),
            actions(&a.head_actions, &a.head_held_back)
        );
    }
    s.push('\n');
    for f in &a.fields {
        let _ = match a.change {
            AccountChange::Entering => {
                writeln!(s, "  - `{}`: `{}`", cell(&f.name), cell(show(&f.head)))
            }
            AccountChange::Leaving => {
                writeln!(s, "  - `{}`: `{}`", cell(&f.name), cell(show(&f.base)))
            }
            AccountChange::Changed => writeln!(
                s,
                "  - `{}`: `{}` → `{}`",
                cell(&f.name),
                cell(show(&f.base)),
                cell(show(&f.head))
            ),
        };
    }
    s
}

/// Render the pull-request comment: summary table, what is not used, fields touched, then the
/// accounts in `<details>` until the budget is spent.
pub fn markdown(r: &CompareReport) -> String {
    let c = r.comparison;
    let s = &c.summary;
    let mut head = String::new();
    let _ = writeln!(head, "### carbonite-sync compare\n");
    for l in source_lines(r.meta) {
        let _ = writeln!(head, "> **Note:** {l}\n");
    }
    let _ = writeln!(
        head,
        "| entering | leaving | changed | conflicts added | conflicts removed |"
    );
    let _ = writeln!(head, "|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        head,
        "| {} | {} | {} | {} | {} |\n",
        s.entering, s.leaving, s.changed, s.conflicts_added, s.conflicts_removed
    );
    if !r.meta.ignored.is_empty() {
        let _ = writeln!(head, ":warning: **{}**\n", ignored_header());
        let _ = writeln!(head, "| setting | base (used) | head (ignored) |");
        let _ = writeln!(head, "|---|---|---|");
        for i in &r.meta.ignored {
            let _ = writeln!(
                head,
                "| `{}` | `{}` | `{}` |",
                cell(&i.path),
                cell(i.base.as_deref().unwrap_or("(unset)")),
                cell(i.head.as_deref().unwrap_or("(unset)"))
            );
        }
        head.push('\n');
    }
    for g in &c.guards {
        let _ = writeln!(head, "- guard {}", cell(&guard_line(g)));
    }
    if !c.guards.is_empty() {
        head.push('\n');
    }
    // Which fields the edit touches, and on how many accounts: the reviewer's first question.
    let mut per_field: BTreeMap<&str, usize> = BTreeMap::new();
    for a in c
        .accounts
        .iter()
        .filter(|a| a.change == AccountChange::Changed)
    {
        for f in &a.fields {
            *per_field.entry(f.name.as_str()).or_default() += 1;
        }
    }
    if !per_field.is_empty() {
        let list: Vec<String> = per_field
            .iter()
            .map(|(f, n)| format!("`{}` on {n}", cell(f)))
            .collect();
        let _ = writeln!(head, "Fields changed: {}.\n", list.join(", "));
    }
    if c.is_empty() {
        let _ = writeln!(head, "No differences: this change affects no account.");
    }

    let tail_reserve = 400;
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for kind in [
        AccountChange::Changed,
        AccountChange::Entering,
        AccountChange::Leaving,
    ] {
        let items: Vec<String> = c
            .accounts
            .iter()
            .filter(|a| a.change == kind)
            .map(account_item)
            .collect();
        if !items.is_empty() {
            sections.push((format!("{} ({})", kind.as_str(), items.len()), items));
        }
    }
    let ConflictDiff { added, removed } = &c.conflicts;
    for (title, list) in [("conflicts added", added), ("conflicts removed", removed)] {
        if !list.is_empty() {
            let items = list
                .iter()
                .map(|x| format!("- {}\n", cell(&conflict_line(x))))
                .collect();
            sections.push((format!("{title} ({})", list.len()), items));
        }
    }
    let (body, omitted) = super::details_within(head.len() + tail_reserve, sections, MAX_CHARS);
    let mut out = head;
    out.push_str(&body);
    if omitted > 0 {
        let _ = writeln!(
            out,
            "\n_{omitted} item(s) omitted to keep this comment under {MAX_CHARS} characters; run `carbonite-sync compare --format json` for the full list._"
        );
    }
    out
}

/// The JSON compare document.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[schemars(
    title = "carbonite-sync compare",
    description = "The differences a config change causes, as printed by `compare --format json` (format version 1)."
)]
pub struct JsonCompare<'a> {
    /// Always "1".
    pub format_version: &'static str,
    /// Always "compare".
    pub kind: &'static str,
    /// RFC 3339.
    pub generated_at: &'a str,
    /// Where the directory entries came from (LDIF path or LDAP URL).
    pub source: &'a str,
    pub observed: JsonCompareObserved<'a>,
    pub summary: &'a CompareSummary,
    /// Sorted by mapping, then key.
    pub accounts: &'a [AccountDiff],
    pub conflicts: &'a ConflictDiff,
    /// Guards whose verdict differs.
    pub guards: &'a [GuardDiff],
    /// Head changes to connections, Endpoints and secrets: reported, never used.
    pub ignored_head_changes: &'a [IgnoredChange],
    /// Anything else the reader must know.
    pub notes: &'a [String],
}

/// Where the observed accounts and the lookup tables came from.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct JsonCompareObserved<'a> {
    /// `live`, `cache` or `none` (offline).
    pub source: &'a ObservedSource,
    /// RFC 3339 time of the listing.
    pub listed_at: Option<&'a str>,
    /// Human age of the cache when `source` is `cache`; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_age: Option<&'a str>,
    /// `live`, `cache`, or `unresolved` (lookup() rendered `<unresolved:TABLE/NAME>`).
    pub lookups: LookupSource,
}

pub fn document<'a>(r: &'a CompareReport<'a>) -> JsonCompare<'a> {
    let m = r.meta;
    let c = r.comparison;
    JsonCompare {
        format_version: "1",
        kind: "compare",
        generated_at: &m.generated_at,
        source: &m.source,
        observed: JsonCompareObserved {
            source: &m.observed_source,
            listed_at: m.listed_at.as_deref(),
            cache_age: m.cache_age.as_deref(),
            lookups: m.lookups,
        },
        summary: &c.summary,
        accounts: &c.accounts,
        conflicts: &c.conflicts,
        guards: &c.guards,
        ignored_head_changes: &m.ignored,
        notes: &m.notes,
    }
}

/// Pretty JSON with a trailing newline.
pub fn json(r: &CompareReport) -> String {
    let mut s = serde_json::to_string_pretty(&document(r))
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}
