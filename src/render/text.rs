//! The terminal plan: grouped by action, one block per account, `- old` / `+ new` field diffs
//! (word-level highlights with `similar` when coloured), then the summary lines.

use std::fmt::Write;

use similar::{ChangeTag, TextDiff};

use super::{PlanReport, cache_line, counts_line, estimate_line, plan_line, show};
use crate::reconcile::{Action, Change, GuardStatus};

const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";
const REVERSE: &str = "\x1b[7m";
const RESET: &str = "\x1b[0m";

fn symbol(a: Action) -> &'static str {
    match a {
        Action::Create => "+",
        Action::Adopt => "&",
        Action::Update => "~",
        Action::Reactivate => "^",
        Action::Suspend => "!",
        Action::Delete => "-",
    }
}

fn paint(color: bool, code: &str, s: &str) -> String {
    if color {
        format!("{code}{s}{RESET}")
    } else {
        s.to_string()
    }
}

/// Render the text plan.
pub fn render(r: &PlanReport, color: bool) -> String {
    let plan = r.plan;
    let mut out = String::new();
    if let Some(l) = cache_line(r.meta) {
        let _ = writeln!(out, "{}\n", paint(color, YELLOW, &l));
    }
    if plan.run_refused {
        let _ = writeln!(
            out,
            "{}\n",
            paint(
                color,
                RED,
                "The run is refused: a mapping has fewer entries than minSourceEntries. Nothing will change."
            )
        );
    }
    for action in Action::ALL {
        let changes: Vec<&Change> = plan.changes.iter().filter(|c| c.action == action).collect();
        if changes.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "{}",
            paint(
                color,
                BOLD,
                &format!("{} ({}):", action.as_str(), changes.len())
            )
        );
        for c in changes {
            block(&mut out, c, color);
        }
        out.push('\n');
    }
    if !plan.conflicts.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            paint(
                color,
                BOLD,
                &format!("conflicts ({}), excluded and held:", plan.conflicts.len())
            )
        );
        for c in &plan.conflicts {
            let who = c.dn.as_deref().or(c.account_id.as_deref()).unwrap_or("-");
            let _ = writeln!(
                out,
                "  {} {} {}  {who}: {}",
                paint(color, RED, "x"),
                c.kind.as_str(),
                c.key.as_deref().unwrap_or("(no key)"),
                c.reason
            );
        }
        out.push('\n');
    }
    for g in plan.guards.iter().filter(|g| g.status != GuardStatus::Ok) {
        let status = match g.status {
            GuardStatus::Refused => "refused",
            GuardStatus::NoBaseline => "no baseline",
            GuardStatus::Overridden => "overridden",
            GuardStatus::Ok => "ok",
        };
        let scope = g
            .mapping
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{}",
            paint(
                color,
                YELLOW,
                &format!("guard {}{scope}: {status}: {}", g.name, g.detail)
            )
        );
    }
    if !plan.held_back.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            paint(
                color,
                YELLOW,
                &format!(
                    "{} suspend/delete change(s) held back by the guards above.",
                    plan.held_back.len()
                )
            )
        );
    }
    if plan.guards.iter().any(|g| g.status != GuardStatus::Ok) {
        out.push('\n');
    }
    if plan.changes.is_empty() {
        let _ = writeln!(out, "No changes.");
    } else {
        let _ = writeln!(out, "{}", plan_line(plan));
    }
    let _ = writeln!(out, "{}", counts_line(plan));
    if !plan.changes.is_empty() {
        let _ = writeln!(out, "{}", estimate_line(r.meta));
    }
    out
}

fn block(out: &mut String, c: &Change, color: bool) {
    let head_color = match c.action {
        Action::Create | Action::Reactivate => GREEN,
        Action::Adopt | Action::Update => YELLOW,
        Action::Suspend | Action::Delete => RED,
    };
    let id = c
        .account_id
        .as_deref()
        .map(|i| format!(" [{i}]"))
        .unwrap_or_default();
    let dn = c.dn.as_deref().unwrap_or("(no longer in the directory)");
    let _ = writeln!(
        out,
        "  {} {}/{}{id}  {dn}",
        paint(color, head_color, symbol(c.action)),
        c.mapping,
        c.key
    );
    let width = c.fields.iter().map(|f| f.name.len()).max().unwrap_or(0);
    for f in &c.fields {
        let (old, new) = if color && f.before.is_some() && f.after.is_some() {
            word_diff(show(&f.before), show(&f.after))
        } else {
            (show(&f.before).to_string(), show(&f.after).to_string())
        };
        if f.before.is_some() || c.action != Action::Create {
            let _ = writeln!(
                out,
                "      {:width$}  {} {old}",
                f.name,
                paint(color, RED, "-")
            );
            let _ = writeln!(
                out,
                "      {:width$}  {} {new}",
                "",
                paint(color, GREEN, "+")
            );
        } else {
            let _ = writeln!(
                out,
                "      {:width$}  {} {new}",
                f.name,
                paint(color, GREEN, "+")
            );
        }
    }
    if !c.orchestrations.is_empty() {
        let _ = writeln!(out, "      then: {}", c.orchestrations.join(", "));
    }
}

/// Highlight the words that differ (reverse video) in both values.
fn word_diff(old: &str, new: &str) -> (String, String) {
    let diff = TextDiff::from_words(old, new);
    let (mut o, mut n) = (String::new(), String::new());
    for ch in diff.iter_all_changes() {
        let v = ch.value();
        match ch.tag() {
            ChangeTag::Equal => {
                o.push_str(v);
                n.push_str(v);
            }
            ChangeTag::Delete => o.push_str(&format!("{REVERSE}{RED}{v}{RESET}")),
            ChangeTag::Insert => n.push_str(&format!("{REVERSE}{GREEN}{v}{RESET}")),
        }
    }
    (o, n)
}
