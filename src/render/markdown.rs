//! The plan as a pull-request comment: summary table first, details in `<details>`, long plans
//! truncated with a count, never over 60,000 characters (GitHub's limit is 65,536).

use std::fmt::Write;

use super::{PlanReport, cache_line, counts_line, estimate_line, show};
use crate::reconcile::{Action, Change, GuardStatus};

/// Hard ceiling of the rendered comment.
pub const MAX_CHARS: usize = 60_000;

/// Escape text for a markdown table cell or inline code.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ").replace('`', "'")
}

pub fn render(r: &PlanReport) -> String {
    let plan = r.plan;
    let s = &plan.summary;
    let mut head = String::new();
    let _ = writeln!(head, "### carbonite-sync plan\n");
    if let Some(l) = cache_line(r.meta) {
        let _ = writeln!(head, "> **Note:** {l}\n");
    }
    if plan.run_refused {
        let _ = writeln!(
            head,
            "> **Refused:** a mapping has fewer entries than `minSourceEntries`; nothing will change.\n"
        );
    }
    let _ = writeln!(
        head,
        "| create | adopt | update | reactivate | suspend | delete | conflicts | unchanged | unmanaged |"
    );
    let _ = writeln!(head, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        head,
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        s.create,
        s.adopt,
        s.update,
        s.reactivate,
        s.suspend,
        s.delete,
        s.conflict,
        s.unchanged,
        s.unmanaged
    );
    for g in plan.guards.iter().filter(|g| g.status != GuardStatus::Ok) {
        let scope = g
            .mapping
            .as_deref()
            .map(|m| format!(" (`{m}`)"))
            .unwrap_or_default();
        let _ = writeln!(
            head,
            "- :warning: guard `{}`{scope}: **{:?}**: {}",
            g.name,
            g.status,
            cell(&g.detail)
        );
    }
    if !plan.held_back.is_empty() {
        let _ = writeln!(
            head,
            "- {} suspend/delete change(s) held back by the guards.",
            plan.held_back.len()
        );
    }
    if plan.changes.is_empty() {
        let _ = writeln!(head, "\nNo changes. {}", counts_line(plan));
    } else {
        let _ = writeln!(head, "\n{}", estimate_line(r.meta));
    }

    // Details, section by section, until the budget is spent.
    let tail_reserve = 400;
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for action in Action::ALL {
        let items: Vec<String> = plan
            .changes
            .iter()
            .filter(|c| c.action == action)
            .map(change_item)
            .collect();
        if !items.is_empty() {
            sections.push((format!("{} ({})", action.as_str(), items.len()), items));
        }
    }
    if !plan.conflicts.is_empty() {
        let items = plan
            .conflicts
            .iter()
            .map(|c| {
                format!(
                    "- `{}` {} `{}`: {}\n",
                    c.kind.as_str(),
                    cell(c.dn.as_deref().or(c.account_id.as_deref()).unwrap_or("-")),
                    cell(c.key.as_deref().unwrap_or("(no key)")),
                    cell(&c.reason)
                )
            })
            .collect();
        sections.push((format!("conflicts ({})", plan.conflicts.len()), items));
    }
    let (body, omitted) = super::details_within(head.len() + tail_reserve, sections, MAX_CHARS);
    let mut out = head;
    out.push_str(&body);
    if omitted > 0 {
        let _ = writeln!(
            out,
            "\n_{omitted} item(s) omitted to keep this comment under {MAX_CHARS} characters; run `carbonite-sync plan` for the full plan._"
        );
    }
    out
}

fn change_item(c: &Change) -> String {
    let mut s = format!(
        "- **{}** `{}/{}`{} — {}\n",
        c.action.as_str(),
        cell(&c.mapping),
        cell(&c.key),
        c.account_id
            .as_deref()
            .map(|i| format!(" (`{}`)", cell(i)))
            .unwrap_or_default(),
        cell(c.dn.as_deref().unwrap_or("no longer in the directory"))
    );
    for f in &c.fields {
        if f.before.is_none() && c.action == Action::Create {
            let _ = writeln!(s, "  - `{}`: `{}`", cell(&f.name), cell(show(&f.after)));
        } else {
            let _ = writeln!(
                s,
                "  - `{}`: `{}` → `{}`",
                cell(&f.name),
                cell(show(&f.before)),
                cell(show(&f.after))
            );
        }
    }
    if !c.orchestrations.is_empty() {
        let names: Vec<String> = c
            .orchestrations
            .iter()
            .map(|o| format!("`{}`", cell(o)))
            .collect();
        let _ = writeln!(s, "  - then: {}", names.join(", "));
    }
    s
}
