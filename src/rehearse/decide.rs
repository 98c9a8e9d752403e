//! The decision: pure code from what the rehearsal found and the policy to a verdict with
//! every reason named. Tested as a table of cases, without a database.

use serde::Serialize;

use crate::compare::{Action, Kind};
use crate::lint::Severity;

/// `[policy]` in `pgship.toml`, with the seed's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// A statement that held ACCESS EXCLUSIVE on a non-empty table for longer than this in
    /// rehearsal triggers `long_lock`.
    pub max_exclusive_lock_ms: u64,
    pub long_lock: Action,
    pub lint_error: Action,
    pub lint_warning: Action,
    /// A table lost rows and the migrations hold no DELETE or TRUNCATE for it.
    pub rows_lost: Action,
    /// Rows that a new or NOT VALID foreign key or CHECK does not accept.
    pub violations: Action,
    pub rollback_unproven: Action,
    /// Breaking schema changes, by kind (`[policy.breaking]`).
    pub breaking: crate::compare::BreakingPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_exclusive_lock_ms: 1000,
            long_lock: Action::Abort,
            lint_error: Action::Abort,
            lint_warning: Action::Warn,
            rows_lost: Action::Abort,
            violations: Action::Warn,
            rollback_unproven: Action::Abort,
            breaking: crate::compare::BreakingPolicy::default(),
        }
    }
}

/// A statement that held ACCESS EXCLUSIVE on a table that had rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LongLock {
    pub migration: String,
    pub statement: usize,
    pub relation: String,
    pub held_ms: f64,
    pub table_rows: i64,
}

/// What the rehearsal established, reduced to what the policy looks at.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facts {
    /// `migration statement N (file:line): message` of the statement that failed.
    pub statement_failed: Option<String>,
    /// Check files that returned rows (or failed to run), with why.
    pub checks_failed: Vec<String>,
    /// The test command's failure, if it failed.
    pub test_failed: Option<String>,
    /// Breaking differences: kind, object, their line, and the policy's action for them.
    pub breaking: Vec<(Kind, String, String)>,
    /// Lint findings after the rehearsal sharpened them: rule, severity, where, message.
    pub lint: Vec<(String, Severity, String, String)>,
    /// Every ACCESS EXCLUSIVE lock held on a non-empty table (the policy picks the long ones).
    pub exclusive_locks: Vec<LongLock>,
    /// `schema.table: before -> after` of tables that lost rows unexplained.
    pub rows_lost: Vec<String>,
    /// New or NOT VALID constraints that existing rows violate.
    pub violations: Vec<String>,
    /// `None`: the rollback was not rehearsed (the apply failed first). `Some(Err(why))`: it
    /// could not be proven.
    pub rollback: Option<Result<(), String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Proceed,
    ProceedWithWarnings,
    Abort,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Proceed => "proceed",
            Verdict::ProceedWithWarnings => "proceed-with-warnings",
            Verdict::Abort => "abort",
        }
    }
}

/// One named reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Stable: `statement-failed`, `check-failed`, `test-failed`, `breaking:<kind>`,
    /// `lint-error`, `lint-warning`, `long-exclusive-lock`, `rows-lost`, `violations`,
    /// `rollback-unproven`.
    pub code: String,
    pub action: Action,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    /// Every reason that aborts or warns, aborting ones first; `allow`ed ones are left out.
    pub reasons: Vec<Reason>,
}

pub fn decide(f: &Facts, p: &Policy) -> Decision {
    let mut reasons = Vec::new();
    let mut add = |code: &str, action: Action, message: String| {
        if action != Action::Allow {
            reasons.push(Reason {
                code: code.to_string(),
                action,
                message,
            });
        }
    };
    if let Some(s) = &f.statement_failed {
        add("statement-failed", Action::Abort, s.clone());
    }
    for c in &f.checks_failed {
        add("check-failed", Action::Abort, c.clone());
    }
    if let Some(t) = &f.test_failed {
        add("test-failed", Action::Abort, t.clone());
    }
    for (kind, _object, line) in &f.breaking {
        let action = p
            .breaking
            .actions
            .get(kind)
            .copied()
            .unwrap_or(Action::Warn);
        add(
            &format!("breaking:{}", kind.as_str()),
            action,
            format!("breaking change: {line}"),
        );
    }
    for (rule, sev, at, msg) in &f.lint {
        match sev {
            Severity::Error => add("lint-error", p.lint_error, format!("{rule} at {at}: {msg}")),
            Severity::Warning => add(
                "lint-warning",
                p.lint_warning,
                format!("{rule} at {at}: {msg}"),
            ),
            Severity::Info => {}
        }
    }
    for l in &f.exclusive_locks {
        if l.held_ms > p.max_exclusive_lock_ms as f64 {
            add(
                "long-exclusive-lock",
                p.long_lock,
                format!(
                    "{} statement {} held ACCESS EXCLUSIVE on {} ({} rows) for {:.0} ms in rehearsal (max_exclusive_lock_ms = {})",
                    l.migration,
                    l.statement,
                    l.relation,
                    l.table_rows,
                    l.held_ms,
                    p.max_exclusive_lock_ms
                ),
            );
        }
    }
    for r in &f.rows_lost {
        add(
            "rows-lost",
            p.rows_lost,
            format!("rows lost without a DELETE or TRUNCATE: {r}"),
        );
    }
    for v in &f.violations {
        add("violations", p.violations, v.clone());
    }
    if let Some(Err(why)) = &f.rollback {
        add(
            "rollback-unproven",
            p.rollback_unproven,
            format!("the rollback could not be proven: {why}"),
        );
    }
    reasons.sort_by_key(|r| r.action != Action::Abort);
    let verdict = if reasons.iter().any(|r| r.action == Action::Abort) {
        Verdict::Abort
    } else if reasons.is_empty() {
        Verdict::Proceed
    } else {
        Verdict::ProceedWithWarnings
    };
    Decision { verdict, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(d: &Decision) -> Vec<(&str, Action)> {
        d.reasons
            .iter()
            .map(|r| (r.code.as_str(), r.action))
            .collect()
    }

    fn lock(ms: f64, rows: i64) -> LongLock {
        LongLock {
            migration: "0001_x".into(),
            statement: 2,
            relation: "public.users".into(),
            held_ms: ms,
            table_rows: rows,
        }
    }

    /// Every reason of the issue, as (facts, policy) -> (verdict, reasons).
    #[test]
    fn decision_table() {
        let d = Policy::default();
        let mut allow_drop = Policy::default();
        allow_drop
            .breaking
            .actions
            .insert(Kind::TableRemoved, Action::Allow);
        let lax_locks = Policy {
            max_exclusive_lock_ms: 5000,
            ..Policy::default()
        };
        let warn_lint = Policy {
            lint_error: Action::Warn,
            ..Policy::default()
        };

        type Case<'a> = (&'a str, Facts, &'a Policy, Verdict, Vec<(&'a str, Action)>);
        let cases: Vec<Case> = vec![
            (
                "nothing found",
                Facts {
                    rollback: Some(Ok(())),
                    ..Facts::default()
                },
                &d,
                Verdict::Proceed,
                vec![],
            ),
            (
                "a failed statement",
                Facts {
                    statement_failed: Some("0004 statement 3: boom".into()),
                    ..Facts::default()
                },
                &d,
                Verdict::Abort,
                vec![("statement-failed", Action::Abort)],
            ),
            (
                "a failed check",
                Facts {
                    checks_failed: vec!["no_orphans.sql returned 2 rows".into()],
                    rollback: Some(Ok(())),
                    ..Facts::default()
                },
                &d,
                Verdict::Abort,
                vec![("check-failed", Action::Abort)],
            ),
            (
                "failed tests",
                Facts {
                    test_failed: Some("exit 1".into()),
                    rollback: Some(Ok(())),
                    ..Facts::default()
                },
                &d,
                Verdict::Abort,
                vec![("test-failed", Action::Abort)],
            ),
            (
                "a removed table aborts by default",
                Facts {
                    breaking: vec![(
                        Kind::TableRemoved,
                        "public.t".into(),
                        "table-removed public.t".into(),
                    )],
                    rollback: Some(Ok(())),
                    ..Facts::default()
                },
                &d,
                Verdict::Abort,
                vec![("breaking:table-removed", Action::Abort)],
            ),
            (
                "a removed table proceeds when the policy allows it",
                Facts {
                    breaking: vec![(
                        Kind::TableRemoved,
                        "public.t".into(),
                        "table-removed public.t".into(),
                    )],
                    rollback: Some(Ok(())),
                    ..Facts::default()
                },
                &allow_drop,
                Verdict::Proceed,
                vec![],
            ),
            (
                "a removed column warns",
                Facts {
                    breaking: vec![(
                        Kind::ColumnRemoved,
                        "public.t.c".into(),
                        "column-removed public.t.c".into(),
                    )],
                    rollback: Some(Ok(())),
                    ..Facts::default()
                },
                &d,
                Verdict::ProceedWithWarnings,
                vec![("breaking:column-removed", Action::Warn)],
            ),
            (
                "renames warn: no row is lost",
                Facts {
                    breaking: vec![
                        (
                            Kind::TableRenamed,
                            "public.b".into(),
                            "table-renamed public.a -> public.b".into(),
                        ),
                        (
                            Kind::ColumnRenamed,
                            "public.b.y".into(),
                            "column-renamed public.b.x -> y".into(),
                        ),
                    ],
                    rollback: Some(Ok(())),
                    ..Facts::default()
                },
                &d,
                Verdict::ProceedWithWarnings,
                vec![
                    ("breaking:table-renamed", Action::Warn),
                    ("breaking:column-renamed", Action::Warn),
                ],
            ),
            (
                "a lint error aborts",
                Facts {
                    lint: vec![("LK01".into(), Severity::Error, "a.sql:3".into(), "m".into())],
                    rollback: Some(Ok(())),
                    ..Facts::default()
                },
                &d,
                Verdict::Abort,
                vec![("lint-error", Action::Abort)],
            ),
            (
                "a lint error warns when the policy says so",
                Facts {
                    lint: vec![("LK01".into(), Severity::Error, "a.sql:3".into(), "m".into())],
                    rollback: Some(Ok(())),
                    ..Facts::default()
                },
                &warn_lint,
                Verdict::ProceedWithWarnings,
                vec![("lint-error", Action::Warn)],
            ),
            (
                "a lint warning warns, info is silent",
                Facts {
                    lint: vec![
                        (
                            "BI01".into(),
                            Severity::Warning,
                            "a.sql:1".into(),
                            "m".into(),
                        ),
                        ("LK25".into(), Severity::Info, "a.sql:2".into(), "m".into()),
                    ],
                    rollback: Some(Ok(())),
                    ..Facts::default()
                },
                &d,
                Verdict::ProceedWithWarnings,
                vec![("lint-warning", Action::Warn)],
            ),
            (
                "ACCESS EXCLUSIVE longer than the limit aborts",
                Facts {
                    exclusive_locks: vec![lock(1500.0, 10)],
                    rollback: Some(Ok(())),
                    ..Facts::default()
                },
                &d,
                Verdict::Abort,
                vec![("long-exclusive-lock", Action::Abort)],
            ),
            (
                "ACCESS EXCLUSIVE under the limit is fine",
                Facts {
                    exclusive_locks: vec![lock(900.0, 10)],
                    rollback: Some(Ok(())),
                    ..Facts::default()
                },
                &d,
                Verdict::Proceed,
                vec![],
            ),
            (
                "the limit comes from the policy",
                Facts {
                    exclusive_locks: vec![lock(1500.0, 10)],
                    rollback: Some(Ok(())),
                    ..Facts::default()
                },
                &lax_locks,
                Verdict::Proceed,
                vec![],
            ),
            (
                "rows lost without a DELETE abort",
                Facts {
                    rows_lost: vec!["public.t: 10 -> 7".into()],
                    rollback: Some(Ok(())),
                    ..Facts::default()
                },
                &d,
                Verdict::Abort,
                vec![("rows-lost", Action::Abort)],
            ),
            (
                "violations of a NOT VALID constraint warn",
                Facts {
                    violations: vec!["public.o.o_fk: 3 orphaned rows".into()],
                    rollback: Some(Ok(())),
                    ..Facts::default()
                },
                &d,
                Verdict::ProceedWithWarnings,
                vec![("violations", Action::Warn)],
            ),
            (
                "an unproven rollback aborts",
                Facts {
                    rollback: Some(Err("fingerprint differs".into())),
                    ..Facts::default()
                },
                &d,
                Verdict::Abort,
                vec![("rollback-unproven", Action::Abort)],
            ),
            (
                "aborting reasons come first",
                Facts {
                    breaking: vec![(
                        Kind::ColumnRemoved,
                        "public.t.c".into(),
                        "column-removed public.t.c".into(),
                    )],
                    rollback: Some(Err("x".into())),
                    ..Facts::default()
                },
                &d,
                Verdict::Abort,
                vec![
                    ("rollback-unproven", Action::Abort),
                    ("breaking:column-removed", Action::Warn),
                ],
            ),
        ];
        for (name, facts, policy, verdict, reasons) in cases {
            let got = decide(&facts, policy);
            assert_eq!(got.verdict, verdict, "{name}");
            assert_eq!(codes(&got), reasons, "{name}");
            for r in &got.reasons {
                assert!(!r.message.is_empty(), "{name}: every reason says why");
            }
        }
    }
}
