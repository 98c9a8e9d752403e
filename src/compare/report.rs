//! Rendering a comparison: the JSON document, text grouped by object for a terminal, and
//! markdown for a pull-request comment. JSON keeps the vocabulary's raw names; text and
//! markdown quote them as `pg_dump` does where needed ([`super::names`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::data::{Contents, DataReport};
use super::names::Names;
use super::{Action, Difference, Kind};

#[derive(Debug, Clone, Serialize)]
pub struct Fingerprints {
    pub source: String,
    pub target: String,
}

/// The `--format json` document.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Redacted URLs.
    pub source: String,
    pub target: String,
    pub engine: &'static str,
    /// No schema difference (and, with `--data`, no data difference).
    pub identical: bool,
    pub fingerprints: Fingerprints,
    pub differences: Vec<Difference>,
    /// Vocabulary words the engine does not compute (the fdw engine covers a subset).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_covered: Vec<&'static str>,
    pub data: Option<serde_json::Value>,
    /// The compared schemas' names, to quote the text forms' names.
    #[serde(skip)]
    pub names: Names,
}

impl Report {
    pub fn breaking(&self) -> impl Iterator<Item = &Difference> {
        self.differences.iter().filter(|d| d.breaking)
    }

    /// Every line, with `breaking <line>` after each breaking one (the vocabulary's form).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in &self.differences {
            out.push(d.line.clone());
            out.extend(d.breaking_line());
        }
        out
    }

    fn summary(&self) -> String {
        let n = self.differences.len();
        let b = self.breaking().count();
        let aborts = self
            .breaking()
            .filter(|d| d.policy == Some(Action::Abort))
            .count();
        if n == 0 {
            return "no schema differences".into();
        }
        let mut s = format!(
            "{n} difference{}, {b} breaking",
            if n == 1 { "" } else { "s" }
        );
        if aborts > 0 {
            s.push_str(&format!(" ({aborts} that policy aborts on)"));
        }
        s
    }
}

/// The object a difference is grouped under: a table's parts go under the table.
pub fn group_of(d: &Difference) -> String {
    let parent = |o: &str| o.rsplit_once('.').map(|(p, _)| p.to_string());
    let grouped = matches!(
        d.kind,
        Kind::ColumnAdded
            | Kind::ColumnRemoved
            | Kind::ColumnRenamed
            | Kind::ColumnTypeChanged
            | Kind::ColumnNullabilityChanged
            | Kind::ColumnDefaultChanged
            | Kind::ColumnCollationChanged
            | Kind::ColumnGeneratedChanged
            | Kind::ColumnIdentityChanged
            | Kind::ColumnIdentityOptionsChanged
            | Kind::ConstraintAdded
            | Kind::ConstraintRemoved
            | Kind::ConstraintChanged
            | Kind::TriggerAdded
            | Kind::TriggerRemoved
            | Kind::TriggerChanged
            | Kind::PolicyAdded
            | Kind::PolicyRemoved
            | Kind::PolicyChanged
    );
    if grouped {
        parent(&d.object).unwrap_or_else(|| d.object.clone())
    } else if d.kind == Kind::CommentChanged && d.line.starts_with("comment-changed column ") {
        parent(&d.object).unwrap_or_else(|| d.object.clone())
    } else {
        d.object.clone()
    }
}

fn groups(report: &Report) -> BTreeMap<String, Vec<&Difference>> {
    let mut g: BTreeMap<String, Vec<&Difference>> = BTreeMap::new();
    for d in &report.differences {
        g.entry(group_of(d)).or_default().push(d);
    }
    g
}

fn marker(d: &Difference) -> String {
    match (d.breaking, d.policy) {
        (false, _) => String::new(),
        (true, Some(p)) => format!("BREAKING ({})", p.as_str()),
        (true, None) => "BREAKING".into(),
    }
}

/// Text for a terminal or a log: grouped by object, breaking changes marked with the policy's
/// action and the reason.
pub fn text(report: &Report, data_text: Option<&str>) -> String {
    let mut out = format!(
        "compare {} (source) -> {} (target), {} engine\n",
        report.source, report.target, report.engine
    );
    for (object, diffs) in groups(report) {
        out.push_str(&format!("\n{}\n", report.names.group(&object, diffs[0])));
        for d in diffs {
            let sign = match d.line.split_whitespace().next().unwrap_or("") {
                w if w.ends_with("-added")
                    || w == "privilege-granted"
                    || w == "partition-attached" =>
                {
                    '+'
                }
                w if w.ends_with("-removed")
                    || w == "privilege-revoked"
                    || w == "partition-detached" =>
                {
                    '-'
                }
                _ => '~',
            };
            out.push_str(&format!("  {sign} {}", report.names.line(d)));
            if d.breaking {
                out.push_str(&format!(
                    "\n      {}: {}",
                    marker(d),
                    d.reason.as_deref().unwrap_or("")
                ));
            }
            out.push('\n');
        }
    }
    if !report.not_covered.is_empty() {
        out.push_str(&format!(
            "\nnot covered by the {} engine: {}\n",
            report.engine,
            report.not_covered.join(", ")
        ));
    }
    if let Some(d) = data_text {
        out.push('\n');
        out.push_str(d);
        if !d.ends_with('\n') {
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "\n{}\nfingerprints: source {} target {}",
        report.summary(),
        &report.fingerprints.source,
        &report.fingerprints.target
    ));
    out
}

fn md_escape(s: &str) -> String {
    s.replace('`', "'")
}

/// Markdown for a pull-request comment.
pub fn markdown(report: &Report, data_md: Option<&str>) -> String {
    let mut out = format!("### pgship compare: {}\n\n", report.summary());
    out.push_str(&format!(
        "Source `{}` → target `{}` ({} engine).\n",
        md_escape(&report.source),
        md_escape(&report.target),
        report.engine
    ));
    let breaking: Vec<&Difference> = report.breaking().collect();
    if !breaking.is_empty() {
        out.push_str("\n**Breaking changes**\n\n| change | policy | why |\n| --- | --- | --- |\n");
        for d in breaking {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                md_escape(&report.names.line(d)),
                d.policy.map(Action::as_str).unwrap_or("-"),
                d.reason.as_deref().unwrap_or("").replace('|', "\\|")
            ));
        }
    }
    if !report.differences.is_empty() {
        out.push_str("\n<details><summary>All differences</summary>\n\n");
        for (object, diffs) in groups(report) {
            let heading = report.names.group(&object, diffs[0]);
            out.push_str(&format!("- `{}`\n", md_escape(&heading)));
            for d in diffs {
                let flag = if d.breaking { " **breaking**" } else { "" };
                out.push_str(&format!(
                    "  - `{}`{flag}\n",
                    md_escape(&report.names.line(d))
                ));
            }
        }
        out.push_str("\n</details>\n");
    }
    if !report.not_covered.is_empty() {
        out.push_str(&format!(
            "\nNot covered by the {} engine: {}.\n",
            report.engine,
            report.not_covered.join(", ")
        ));
    }
    if let Some(d) = data_md {
        out.push('\n');
        out.push_str(d);
    }
    out.push_str(&format!(
        "\nFingerprints: source `{}`, target `{}`.\n",
        &report.fingerprints.source[..report.fingerprints.source.len().min(16)],
        &report.fingerprints.target[..report.fingerprints.target.len().min(16)]
    ));
    out
}

fn rows(n: i64, exact: bool) -> String {
    match (n, exact) {
        (-1, _) => "unknown".into(),
        (n, true) => n.to_string(),
        (n, false) => format!("~{n}"),
    }
}

fn contents_word(c: Contents) -> &'static str {
    match c {
        Contents::Equal => "equal",
        Contents::Different => "DIFFERENT",
        Contents::NotCompared => "not compared",
    }
}

/// The `--data` part of the text report: tables that differ or were not compared, orphaned
/// rows, and a count of the tables that are equal.
pub fn data_text(d: &DataReport, names: &Names) -> String {
    let mut out = String::from("data\n");
    let mut equal = 0;
    for t in &d.tables {
        if !t.differs() && t.contents == Contents::Equal {
            equal += 1;
            continue;
        }
        out.push_str(&format!(
            "  {} rows {} -> {} (target -> source), contents {}",
            names.relation(&t.table),
            rows(t.target_rows, t.exact),
            rows(t.source_rows, t.exact),
            contents_word(t.contents)
        ));
        if let Some(n) = &t.note {
            out.push_str(&format!(" ({n})"));
        }
        out.push('\n');
    }
    for o in d.orphans.iter().filter(|o| o.rows > 0) {
        out.push_str(&format!(
            "  {}: {} orphaned row{} for {} -> {}{}\n",
            o.side,
            o.rows,
            if o.rows == 1 { "" } else { "s" },
            names.member(&o.constraint),
            names.relation(&o.references),
            if o.not_valid { " (NOT VALID)" } else { "" }
        ));
    }
    let keys = d.orphans.len();
    out.push_str(&format!(
        "  {equal} of {} tables equal; {keys} foreign keys checked, {} with orphaned rows\n",
        d.tables.len(),
        d.orphans.iter().filter(|o| o.rows > 0).count()
    ));
    out
}

/// The `--data` part of the markdown report.
pub fn data_markdown(d: &DataReport, names: &Names) -> String {
    let mut out = String::from("**Data**\n\n");
    let differing: Vec<_> = d
        .tables
        .iter()
        .filter(|t| t.differs() || t.contents != Contents::Equal)
        .collect();
    if !differing.is_empty() {
        out.push_str("| table | target rows | source rows | contents | note |\n| --- | --- | --- | --- | --- |\n");
        for t in differing {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                md_escape(&names.relation(&t.table)),
                rows(t.target_rows, t.exact),
                rows(t.source_rows, t.exact),
                contents_word(t.contents),
                t.note.as_deref().unwrap_or("").replace('|', "\\|")
            ));
        }
        out.push('\n');
    }
    for o in d.orphans.iter().filter(|o| o.rows > 0) {
        out.push_str(&format!(
            "- {}: {} orphaned rows for `{}`{}\n",
            o.side,
            o.rows,
            md_escape(&names.member(&o.constraint)),
            if o.not_valid { " (NOT VALID)" } else { "" }
        ));
    }
    out.push_str(&format!(
        "\n{} of {} tables equal, {} foreign keys checked.\n",
        d.tables
            .iter()
            .filter(|t| !t.differs() && t.contents == Contents::Equal)
            .count(),
        d.tables.len(),
        d.orphans.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::BreakingPolicy;

    fn report() -> Report {
        let mut differences = vec![
            Difference::column_removed("public.orders.total_cents"),
            Difference::new(
                Kind::ColumnAdded,
                "public.orders.total",
                Some("numeric(12,2)".into()),
            ),
            Difference::new(Kind::IndexAdded, "public.orders_total_idx", None),
            Difference::table_removed("public.legacy"),
        ];
        BreakingPolicy::default().apply(&mut differences);
        crate::compare::sort(&mut differences);
        Report {
            source: "postgres://u@h/a".into(),
            target: "postgres://u@h/b".into(),
            engine: "catalog",
            identical: false,
            fingerprints: Fingerprints {
                source: "a".repeat(64),
                target: "b".repeat(64),
            },
            differences,
            not_covered: vec![],
            data: None,
            names: Names::default(),
        }
    }

    #[test]
    fn text_groups_by_table_and_marks_breaking() {
        let t = text(&report(), None);
        let orders = t.find("\npublic.orders\n").expect("a group for the table");
        let removed = t
            .find("- column-removed public.orders.total_cents")
            .unwrap();
        assert!(removed > orders);
        assert!(t.contains("BREAKING (warn)"));
        assert!(t.contains("BREAKING (abort)"));
        assert!(t.contains("4 differences, 2 breaking (1 that policy aborts on)"));
    }

    #[test]
    fn lines_repeat_breaking_ones() {
        let l = report().lines();
        assert!(l.contains(&"breaking table-removed public.legacy".to_string()));
        assert!(l.contains(&"index-added public.orders_total_idx".to_string()));
        assert!(
            !l.iter()
                .any(|x| x == "breaking index-added public.orders_total_idx")
        );
    }

    #[test]
    fn markdown_has_a_breaking_table() {
        let m = markdown(&report(), None);
        assert!(m.starts_with("### pgship compare: 4 differences, 2 breaking"));
        assert!(m.contains("| `table-removed public.legacy` | abort |"));
        assert!(m.contains("<details>"));
    }
}
