//! The plan report: one JSON document (its shape is in docs/plan.md), text for a terminal,
//! markdown for `report.md` and pull-request comments.

use std::fmt::Write as _;

use serde::Serialize;

use super::decide::{Decision, Verdict};
use super::{Rehearsal, Sharpened};
use crate::compare::Action;
use crate::db::measure::mode_rank;

/// A pending migration.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub name: String,
    pub file: String,
    pub statements: usize,
    /// Statements already committed by an earlier, interrupted run.
    pub resume_at: usize,
}

/// The sandbox the rehearsal ran on.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxInfo {
    pub id: String,
    pub strategy: String,
    /// `full` or `schema`.
    pub data: String,
    pub seconds: f64,
    /// Kept with `--keep-sandbox` (then `url` is its redacted URL).
    pub kept: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The whole report (`--format json`, `report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub deployment_id: String,
    pub environment: String,
    /// Redacted.
    pub target: String,
    pub server_version: String,
    pub source: String,
    /// The project's git state (`None` outside a repository).
    pub git: Option<super::git::GitState>,
    pub pending: Vec<Pending>,
    pub sandbox: Option<SandboxInfo>,
    pub rehearsal: Option<Rehearsal>,
    pub lint: Vec<Sharpened>,
    pub decision: Decision,
    pub seconds: f64,
}

impl PlanReport {
    /// `schema-comparison.json`: the rehearsed schema change.
    pub fn schema_comparison(&self) -> serde_json::Value {
        match &self.rehearsal {
            None => serde_json::json!({"before": null, "after": null, "differences": []}),
            Some(r) => serde_json::json!({
                "fingerprints": {"before": r.fingerprint_before, "after": r.fingerprint_after},
                "identical": r.fingerprint_after.as_deref() == Some(r.fingerprint_before.as_str()),
                "differences": r.differences,
            }),
        }
    }
}

fn verdict_line(d: &Decision) -> String {
    match d.verdict {
        Verdict::Proceed => "PROCEED: the deployment may go ahead".into(),
        Verdict::ProceedWithWarnings => format!(
            "PROCEED WITH WARNINGS: the deployment may go ahead ({} warning(s))",
            d.reasons.len()
        ),
        Verdict::Abort => format!(
            "ABORT: the deployment must not go ahead ({} reason(s))",
            d.reasons
                .iter()
                .filter(|r| r.action == Action::Abort)
                .count()
        ),
    }
}

/// A row count's table, with its name before when the migrations renamed it.
fn table_shown(c: &super::data::RowCount) -> String {
    match &c.renamed_from {
        Some(old) => format!("{} (renamed from {old})", c.table),
        None => c.table.clone(),
    }
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else {
        format!("{v:.1} ms")
    }
}

/// The statement on one line, without its leading comment lines, cut at 72 characters.
fn first_line(sql: &str) -> String {
    let code: Vec<&str> = sql
        .lines()
        .skip_while(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
        .collect();
    let one: String = code
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if one.chars().count() > 72 {
        format!("{}…", one.chars().take(71).collect::<String>())
    } else {
        one
    }
}

/// The strongest lock per relation (the JSON has every mode).
fn locks_text(s: &super::StatementRun) -> String {
    let mut strongest: Vec<&super::HeldLock> = Vec::new();
    for l in &s.locks {
        match strongest.iter_mut().find(|x| x.relation == l.relation) {
            Some(x) => {
                if mode_rank(&l.raw.mode) > mode_rank(&x.raw.mode) {
                    *x = l;
                }
            }
            None => strongest.push(l),
        }
    }
    let mut parts: Vec<String> = strongest
        .into_iter()
        .map(|l| {
            let mut t = format!("{} on {}", l.mode, l.relation);
            if let Some(n) = &l.named {
                let _ = write!(t, " (named {n} by then)");
            }
            let mut details = Vec::new();
            if let Some(n) = l.table_rows {
                details.push(format!("{n} rows"));
            }
            if let Some(h) = l.held_ms {
                details.push(format!("held {}", ms(h)));
            }
            match &l.held_since {
                Some(since) => details.push(format!(
                    "taken by {} #{} in the same transaction",
                    since.migration, since.statement
                )),
                None if l.held_before => {
                    details.push("held from earlier in the transaction".into())
                }
                None => {}
            }
            if !details.is_empty() {
                let _ = write!(t, " ({})", details.join(", "));
            }
            t
        })
        .collect();
    if s.sampled && !parts.is_empty() {
        parts.push("sampled".into());
    }
    if parts.is_empty() {
        "none on existing tables".into()
    } else {
        parts.join("; ")
    }
}

/// Text for a terminal.
pub fn text(r: &PlanReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "plan {} for {} ({})",
        r.deployment_id, r.environment, r.target
    );
    if let Some(g) = &r.git {
        let _ = writeln!(
            o,
            "git: {} at {}{}",
            g.branch.as_deref().unwrap_or("(detached HEAD)"),
            &g.commit[..g.commit.len().min(12)],
            if g.clean {
                ""
            } else {
                " (uncommitted changes: a deploy refuses those in the migrations folder)"
            }
        );
    }
    let _ = writeln!(o, "\npending migrations ({}):", r.pending.len());
    for item in crate::util::fold_items(&r.pending, 5, 3) {
        let Ok(p) = item else {
            let n = item.err().unwrap_or_default();
            let _ = writeln!(o, "  ... {n} more (report.json lists them all) ...");
            continue;
        };
        let resume = if p.resume_at > 0 {
            format!(", resuming at statement {}", p.resume_at + 1)
        } else {
            String::new()
        };
        let _ = writeln!(o, "  {} ({} statements{resume})", p.name, p.statements);
    }
    if let Some(s) = &r.sandbox {
        let _ = writeln!(
            o,
            "\nsandbox: {} {} ({} data, made in {:.1}s){}",
            s.strategy,
            s.id,
            s.data,
            s.seconds,
            match &s.url {
                Some(u) if s.kept => format!(", kept at {u}"),
                _ => String::new(),
            }
        );
    }
    if let Some(h) = &r.rehearsal {
        let _ = writeln!(o, "\nrehearsal ({} in all):", ms(h.apply_ms));
        for item in crate::util::fold_items(&h.statements, 20, 10) {
            let Ok(s) = item else {
                let n = item.err().unwrap_or_default();
                let _ = writeln!(
                    o,
                    "  ... {n} more statement(s) (report.md and report.json list them all) ..."
                );
                continue;
            };
            let _ = writeln!(
                o,
                "  {} #{} (line {}) {}{}{}",
                s.migration,
                s.statement,
                s.line,
                ms(s.duration_ms),
                s.rows.map(|n| format!(", {n} rows")).unwrap_or_default(),
                if s.alone {
                    ", outside a transaction"
                } else {
                    ""
                }
            );
            let _ = writeln!(o, "      {}", first_line(&s.sql));
            let _ = writeln!(o, "      locks: {}", locks_text(s));
            if !s.rewritten.is_empty() {
                let _ = writeln!(o, "      rewrote: {}", s.rewritten.join(", "));
            }
        }
        if let Some(f) = &h.failure {
            let _ = writeln!(
                o,
                "  FAILED: {} statement {} ({}:{}){}: {}",
                f.migration,
                f.statement,
                f.file,
                f.line,
                sqlstate_note(f),
                f.error
            );
            let _ = writeln!(o, "      {}", first_line(&f.sql));
        }
        if h.failure.is_none() {
            let changed: Vec<_> = h
                .row_counts
                .iter()
                .filter(|c| c.before != c.after)
                .collect();
            let _ = writeln!(o, "\ndata checks:");
            let _ = writeln!(
                o,
                "  row counts: {} table(s), {} changed",
                h.row_counts.len(),
                changed.len()
            );
            for c in h
                .row_counts
                .iter()
                .filter(|c| c.before != c.after || c.renamed_from.is_some())
            {
                let _ = writeln!(
                    o,
                    "    {}: {} -> {}{}",
                    table_shown(c),
                    c.before.map_or("-".into(), |n| n.to_string()),
                    c.after.map_or("-".into(), |n| n.to_string()),
                    if c.unexplained_loss {
                        "  (rows lost without a DELETE or TRUNCATE)"
                    } else {
                        ""
                    }
                );
            }
            if h.violations.is_empty() {
                let _ = writeln!(o, "  new and NOT VALID constraints: no violating rows");
            }
            for v in &h.violations {
                let _ = writeln!(
                    o,
                    "  {} ({}{}) rejects {} row(s)",
                    v.constraint,
                    v.kind,
                    if v.not_valid { ", NOT VALID" } else { "" },
                    v.rows
                );
            }
            for c in &h.checks {
                if c.passed {
                    let _ = writeln!(o, "  check {}: passed", c.file);
                } else if let Some(e) = &c.error {
                    let _ = writeln!(o, "  check {}: FAILED: {e}", c.file);
                } else {
                    let _ = writeln!(
                        o,
                        "  check {}: FAILED, returned {} row(s):",
                        c.file, c.row_count
                    );
                    let _ = writeln!(o, "    {}", c.columns.join(" | "));
                    for row in &c.rows {
                        let cells: Vec<String> = row
                            .iter()
                            .map(|v| v.clone().unwrap_or_else(|| "NULL".into()))
                            .collect();
                        let _ = writeln!(o, "    {}", cells.join(" | "));
                    }
                }
            }
            if let Some(t) = &h.tests {
                let _ = writeln!(
                    o,
                    "  tests `{}`: {} (exit {}, {:.1}s)",
                    t.command,
                    if t.passed { "passed" } else { "FAILED" },
                    t.exit_code.map_or("none".into(), |c| c.to_string()),
                    t.seconds
                );
                if !t.passed {
                    for l in &t.output_tail {
                        let _ = writeln!(o, "    | {l}");
                    }
                }
            }
            let _ = writeln!(o, "\nschema changes ({}):", h.differences.len());
            for d in &h.differences {
                let _ = writeln!(o, "  {}", d.line);
                if let Some(b) = d.breaking_line() {
                    let action = d.policy.map(|a| a.as_str()).unwrap_or("warn");
                    let _ = writeln!(o, "    {b} [{action}]");
                }
            }
        }
        if let Some(rb) = &h.rollback {
            let _ = writeln!(
                o,
                "\nrollback rehearsal ({}, {:.1}s): {}",
                rb.method,
                rb.seconds,
                if rb.proven && rb.reapplied_same_schema {
                    "proven: schema and touched data restored, and the migrations re-apply"
                        .to_string()
                } else {
                    "NOT proven".to_string()
                }
            );
            if !rb.why_method.is_empty() {
                let _ = writeln!(o, "  {}", rb.why_method);
            }
            if let Some(e) = &rb.error {
                let _ = writeln!(o, "  {e}");
            }
            for l in &rb.remaining {
                let _ = writeln!(o, "  still differs: {l}");
            }
        }
    }
    let _ = writeln!(o, "\nlint ({} finding(s)):", r.lint.len());
    for s in &r.lint {
        let f = &s.finding;
        let _ = writeln!(
            o,
            "  {}:{}: {} {} {}: {}",
            f.file,
            f.line,
            f.severity.as_str(),
            f.rule,
            f.name,
            f.message
        );
        if let (Some(adj), Some(was)) = (s.adjusted, s.original_severity) {
            let _ = writeln!(
                o,
                "    {adj} from {} by the rehearsal: {}",
                was.as_str(),
                s.measured.as_deref().unwrap_or("")
            );
        } else if let Some(m) = &s.measured {
            let _ = writeln!(o, "    measured: {m}");
        }
        if let Some(g) = &s.governed_by {
            let _ = writeln!(
                o,
                "    the rehearsal saw this change: the policy for {g} decides"
            );
        }
    }
    let _ = writeln!(o, "\ndecision: {}", verdict_line(&r.decision));
    for reason in &r.decision.reasons {
        let _ = writeln!(
            o,
            "  {} {}: {}",
            reason.action.as_str(),
            reason.code,
            reason.message
        );
    }
    o
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Markdown (`report.md`).
pub fn markdown(r: &PlanReport) -> String {
    let mut o = String::new();
    let icon = match r.decision.verdict {
        Verdict::Proceed => "✅",
        Verdict::ProceedWithWarnings => "⚠️",
        Verdict::Abort => "❌",
    };
    let _ = writeln!(o, "# pgship plan: {} {}\n", r.environment, r.deployment_id);
    let _ = writeln!(o, "{icon} **{}**\n", verdict_line(&r.decision));
    for reason in &r.decision.reasons {
        let _ = writeln!(
            o,
            "- **{}** `{}`: {}",
            reason.action.as_str(),
            reason.code,
            md_cell(&reason.message)
        );
    }
    let _ = writeln!(
        o,
        "\nTarget `{}` (PostgreSQL {}), source {}.\n",
        r.target, r.server_version, r.source
    );
    if let Some(g) = &r.git {
        let _ = writeln!(
            o,
            "Git: `{}` at `{}`{}.\n",
            g.branch.as_deref().unwrap_or("(detached HEAD)"),
            &g.commit[..g.commit.len().min(12)],
            if g.clean {
                ""
            } else {
                ", **uncommitted changes**"
            }
        );
    }
    let _ = writeln!(o, "## Pending migrations\n");
    for item in crate::util::fold_items(&r.pending, 5, 3) {
        match item {
            Ok(p) => {
                let _ = writeln!(o, "- `{}` ({} statements)", p.name, p.statements);
            }
            Err(n) => {
                let _ = writeln!(o, "- ... {n} more (report.json lists them all) ...");
            }
        }
    }
    if let Some(s) = &r.sandbox {
        let _ = writeln!(
            o,
            "\nSandbox: {} `{}`, {} data, made in {:.1} s{}.",
            s.strategy,
            s.id,
            s.data,
            s.seconds,
            match &s.url {
                Some(u) if s.kept => format!(", kept at `{u}`"),
                _ => String::new(),
            }
        );
    }
    if let Some(h) = &r.rehearsal {
        let _ = writeln!(o, "\n## Rehearsal\n");
        let _ = writeln!(
            o,
            "| migration | # | line | time | rows | locks | rewrites |"
        );
        let _ = writeln!(o, "| --- | --- | --- | --- | --- | --- | --- |");
        for s in &h.statements {
            let _ = writeln!(
                o,
                "| `{}` | {} | {} | {} | {} | {} | {} |",
                s.migration,
                s.statement,
                s.line,
                ms(s.duration_ms),
                s.rows.map(|n| n.to_string()).unwrap_or_default(),
                md_cell(&locks_text(s)),
                md_cell(&s.rewritten.join(", "))
            );
        }
        if let Some(f) = &h.failure {
            let _ = writeln!(
                o,
                "\n**Failed:** `{}` statement {} (`{}:{}`){}: {}",
                f.migration,
                f.statement,
                f.file,
                f.line,
                sqlstate_note(f),
                md_cell(&f.error)
            );
        } else {
            let _ = writeln!(o, "\n## Data checks\n");
            let _ = writeln!(
                o,
                "- row counts: {} table(s), {} changed; {} constraint violation(s)",
                h.row_counts.len(),
                h.row_counts.iter().filter(|c| c.before != c.after).count(),
                h.violations.len()
            );
            for c in h
                .row_counts
                .iter()
                .filter(|c| c.before != c.after || c.renamed_from.is_some())
            {
                let _ = writeln!(
                    o,
                    "- `{}`: {} → {} rows{}",
                    table_shown(c),
                    c.before.map_or("-".into(), |n| n.to_string()),
                    c.after.map_or("-".into(), |n| n.to_string()),
                    if c.unexplained_loss {
                        " **(lost without a DELETE or TRUNCATE)**"
                    } else {
                        ""
                    }
                );
            }
            for v in &h.violations {
                let _ = writeln!(o, "- `{}` rejects {} row(s)", v.constraint, v.rows);
            }
            for c in &h.checks {
                let _ = writeln!(
                    o,
                    "- check `{}`: {}",
                    c.file,
                    if c.passed {
                        "passed".to_string()
                    } else {
                        format!("**failed** ({} row(s))", c.row_count)
                    }
                );
            }
            if let Some(t) = &h.tests {
                let _ = writeln!(
                    o,
                    "- tests `{}`: {}",
                    md_cell(&t.command),
                    if t.passed { "passed" } else { "**failed**" }
                );
            }
            let _ = writeln!(o, "\n## Schema changes\n");
            if h.differences.is_empty() {
                let _ = writeln!(o, "None.");
            }
            for d in &h.differences {
                let mark = if d.breaking {
                    format!(
                        " **breaking** ({})",
                        d.policy.map(|a| a.as_str()).unwrap_or("warn")
                    )
                } else {
                    String::new()
                };
                let _ = writeln!(o, "- `{}`{mark}", d.line);
            }
        }
        if let Some(rb) = &h.rollback {
            let _ = writeln!(o, "\n## Rollback rehearsal\n");
            let _ = writeln!(
                o,
                "Method `{}`: {}.",
                rb.method,
                if rb.proven && rb.reapplied_same_schema {
                    "proven (schema fingerprint and touched data restored; the migrations re-apply)"
                } else {
                    "**not proven**"
                }
            );
            if let Some(e) = &rb.error {
                let _ = writeln!(o, "\n{}", md_cell(e));
            }
            for l in &rb.remaining {
                let _ = writeln!(o, "- still differs: `{l}`");
            }
        }
    }
    let _ = writeln!(o, "\n## Lint\n");
    if r.lint.is_empty() {
        let _ = writeln!(o, "No findings.");
    }
    for s in &r.lint {
        let f = &s.finding;
        let adj = match (s.adjusted, s.original_severity) {
            (Some(a), Some(w)) => format!(
                " ({a} from {} by the rehearsal: {})",
                w.as_str(),
                s.measured.as_deref().unwrap_or("")
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "- `{}:{}` **{}** {} `{}`: {}{adj}",
            f.file,
            f.line,
            f.severity.as_str(),
            f.rule,
            f.name,
            md_cell(&f.message)
        );
    }
    o
}

/// ` SQLSTATE xxxxx` unless the server's message already says it.
pub fn sqlstate_note(f: &crate::db::apply::ApplyFailure) -> String {
    match &f.sqlstate {
        Some(s) if !f.error.contains(s.as_str()) => format!(" SQLSTATE {s}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod fold_tests {
    use super::*;

    #[test]
    fn a_long_pending_list_is_folded_in_text_and_markdown() {
        let pending: Vec<Pending> = (0..2000)
            .map(|i| Pending {
                name: format!("{i:04}_m"),
                file: format!("m/{i:04}_m.sql"),
                statements: 1,
                resume_at: 0,
            })
            .collect();
        let r = PlanReport {
            deployment_id: "plan-dev-1".into(),
            environment: "dev".into(),
            target: "postgres://u@h/db".into(),
            server_version: "15.2".into(),
            source: "sql".into(),
            git: None,
            pending,
            sandbox: None,
            rehearsal: None,
            lint: Vec::new(),
            decision: crate::rehearse::decide::decide(
                &crate::rehearse::decide::Facts::default(),
                &crate::rehearse::Policy::default(),
            ),
            seconds: 0.0,
        };
        for out in [text(&r), markdown(&r)] {
            assert!(out.contains("0000_m") && out.contains("1999_m"), "{out}");
            assert!(out.contains("... 1992 more"), "{out}");
            assert!(!out.contains("0100_m"), "{out}");
        }
    }
}
