//! Rendering findings: text for people (`file:line:col`, rule, severity, message, the
//! statement with a marker, `help:`), JSON, SARIF 2.1.0 for code scanning, and GitHub
//! workflow annotations.

use serde_json::{Value, json};

use super::{Finding, Outcome, Severity, rules};

/// Text: one block per finding, then a summary line.
pub fn text(o: &Outcome) -> String {
    let mut out = String::new();
    for f in &o.findings {
        out.push_str(&format!(
            "{}:{}:{}: {} {} {}: {}\n",
            f.file,
            f.line,
            f.column,
            f.severity.as_str(),
            f.rule,
            f.name,
            f.message
        ));
        let mut lines = f.statement.lines();
        if let Some(first) = lines.next() {
            let gutter = f.line.to_string();
            out.push_str(&format!("  {gutter} | {first}\n"));
            let width = first.trim_end().chars().count().max(1);
            out.push_str(&format!(
                "  {} | {}\n",
                " ".repeat(gutter.len()),
                "^".repeat(width.min(80))
            ));
            let rest = lines.count();
            if rest > 0 {
                out.push_str(&format!(
                    "  {} | ({rest} more line{})\n",
                    " ".repeat(gutter.len()),
                    if rest == 1 { "" } else { "s" }
                ));
            }
        }
        out.push_str(&format!("  help: {}\n\n", f.help));
    }
    let count = |s: Severity| o.findings.iter().filter(|f| f.severity == s).count();
    out.push_str(&format!(
        "{} file{}, {} statement{}: {} error{}, {} warning{}, {} info",
        o.files,
        if o.files == 1 { "" } else { "s" },
        o.statements,
        if o.statements == 1 { "" } else { "s" },
        count(Severity::Error),
        if count(Severity::Error) == 1 { "" } else { "s" },
        count(Severity::Warning),
        if count(Severity::Warning) == 1 {
            ""
        } else {
            "s"
        },
        count(Severity::Info),
    ));
    out
}

/// The `--format json` document.
pub fn json(o: &Outcome) -> Value {
    json!({"files": o.files, "statements": o.statements, "findings": o.findings})
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// SARIF 2.1.0, for GitHub code scanning and other SARIF consumers.
pub fn sarif(o: &Outcome) -> Value {
    let mut rule_ids: Vec<&str> = o.findings.iter().map(|f| f.rule).collect();
    rule_ids.sort_unstable();
    rule_ids.dedup();
    let descriptors: Vec<Value> = rule_ids
        .iter()
        .map(|id| match rules::find(id) {
            Some(r) => json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": {"text": r.summary},
                "help": {"text": r.help},
                "helpUri": format!("docs/rules/{}-{}.md", r.id, r.name),
                "defaultConfiguration": {"level": sarif_level(r.severity), "enabled": r.default_on},
            }),
            None => json!({"id": id, "name": super::UNUSED_IGNORE.1,
                "shortDescription": {"text": "a pgship:ignore comment that silences nothing"}}),
        })
        .collect();
    let results: Vec<Value> = o
        .findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.rule,
                "ruleIndex": rule_ids.iter().position(|id| *id == f.rule),
                "level": sarif_level(f.severity),
                "message": {"text": format!("{} ({}) help: {}", f.message, f.name, f.help)},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": f.file.replace('\\', "/")},
                    "region": {"startLine": f.line, "startColumn": f.column},
                }}],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "pgship",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/pgship/pgship",
                "rules": descriptors,
            }},
            "results": results,
        }],
    })
}

/// Escape a GitHub workflow-command property or message.
fn gh_escape(s: &str, property: bool) -> String {
    let s = s
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    if property {
        s.replace(':', "%3A").replace(',', "%2C")
    } else {
        s
    }
}

/// GitHub Actions workflow commands: `::error file=...,line=...,col=...,title=...::message`.
pub fn github(o: &Outcome) -> String {
    o.findings
        .iter()
        .map(|f: &Finding| {
            let cmd = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "notice",
            };
            format!(
                "::{cmd} file={},line={},col={},title={}::{}",
                gh_escape(&f.file, true),
                f.line,
                f.column,
                gh_escape(&format!("{} {}", f.rule, f.name), true),
                gh_escape(&format!("{}\nhelp: {}", f.message, f.help), false)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
