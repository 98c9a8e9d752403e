//! How pending migrations are cut into the units the engine runs: pgship's transactions and
//! statements that run alone. Pure, so every grouping is tested without a database.
//!
//! A migration starts in pgship's batch transaction (one for the whole run, or one per
//! migration). Inside it:
//! - a statement PostgreSQL refuses in a transaction block (`CREATE INDEX CONCURRENTLY`) ends
//!   the transaction, which also commits an intent record naming it (so a crash while it runs
//!   leaves a record the next run checks against the catalog), runs alone, and is recorded
//!   done right after;
//! - the file's own top-level `COMMIT` ends the transaction the same way, and the statements
//!   after it run in autocommit as drizzle runs them: each commits on its own. pgship commits
//!   each one together with its `partial` record, so a crash never loses or repeats it; `CALL`
//!   and `DO` (which may commit themselves) and non-transactional statements run alone, with
//!   their record right after;
//! - the file's own top-level `BEGIN` after such a `COMMIT` opens a transaction again, which its
//!   next `COMMIT` commits together with the record; a `BEGIN` while a transaction is open does
//!   nothing (PostgreSQL only warns).
//!
//! Transaction control is never sent as text: it shapes the steps. The next migration starts
//! in a transaction again (drizzle would leave the rest of its run in autocommit; the end state
//! is the same, and pgship keeps each later migration atomic).

use crate::source::{Migration, TxControl, TxRequirement};

use super::TxMode;

/// One migration to run, and how many of its statements are already committed.
#[derive(Debug, Clone, Copy)]
pub struct Work<'a> {
    pub migration: &'a Migration,
    pub start_at: usize,
    /// Statement `start_at` was running outside a transaction when an earlier run ended: the
    /// engine reads the catalog to tell whether it committed before it runs it again.
    pub uncertain: bool,
}

/// One operation of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Run statement `stmt` of work item `work`.
    Statement { work: usize, stmt: usize },
    /// Reset session settings a migration may have changed.
    Reset,
    /// Record that statement `stmt` of work item `work` is about to run outside a
    /// transaction (a partial record with `stmt` statements done), committed before it starts.
    Intent { work: usize, stmt: usize },
    /// Write work item `work`'s state: complete, or partial with `done` statements committed.
    Record {
        work: usize,
        complete: bool,
        done: usize,
    },
}

/// A unit the engine runs: a transaction, or one statement alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Tx(Vec<Op>),
    Alone(Op),
}

/// Where a migration's statements are running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    /// pgship's transaction.
    Batch,
    /// After the file's own `COMMIT`: each statement commits on its own.
    Auto,
    /// A transaction the file opened with its own `BEGIN` after a `COMMIT`.
    Open,
}

/// Group work into steps.
pub fn steps(work: &[Work<'_>], mode: TxMode, server_major: u32) -> Vec<Step> {
    let mut p = Planner {
        out: Vec::new(),
        cur: Vec::new(),
        major: server_major,
    };
    for (wi, w) in work.iter().enumerate() {
        p.migration(wi, w);
        if mode == TxMode::PerMigration {
            p.flush();
        }
    }
    p.flush();
    p.out
}

struct Planner {
    out: Vec<Step>,
    /// The open transaction's operations.
    cur: Vec<Op>,
    major: u32,
}

impl Planner {
    fn migration(&mut self, wi: usize, w: &Work<'_>) {
        let stmts = &w.migration.statements;
        let mut region = region_at(w.migration, w.start_at);
        for si in w.start_at..stmts.len() {
            region = self.statement(wi, si, w, region);
        }
        self.finish(wi, stmts.len(), region);
    }

    /// Plan statement `si`; returns the region the next statement runs in.
    fn statement(&mut self, wi: usize, si: usize, w: &Work<'_>, region: Region) -> Region {
        let s = &w.migration.statements[si];
        let op = Op::Statement { work: wi, stmt: si };
        match (&s.control, region) {
            (Some(TxControl::Begin), Region::Auto) => Region::Open,
            (Some(TxControl::Begin), _) | (Some(TxControl::Commit), Region::Auto) => region,
            (Some(TxControl::Commit), Region::Batch) => {
                self.close(wi, si + 1, w.start_at);
                Region::Auto
            }
            (Some(TxControl::Commit), Region::Open) => {
                self.cur.push(partial(wi, si + 1));
                self.flush();
                Region::Auto
            }
            // Refused control never reaches the engine (`apply` checks first); sent as it is,
            // the server would be the judge.
            (Some(TxControl::Refused(_)), _) | (None, Region::Open) => {
                self.cur.push(op);
                region
            }
            (None, Region::Batch) if s.tx.allows_transaction(self.major) => {
                self.cur.push(op);
                region
            }
            (None, Region::Batch) => {
                self.alone(wi, si);
                region
            }
            (None, Region::Auto) if self.commits_with_record(s.tx) => {
                self.out.push(Step::Tx(vec![op, partial(wi, si + 1)]));
                region
            }
            (None, Region::Auto) => {
                self.alone(wi, si);
                region
            }
        }
    }

    /// In autocommit, may this statement share its transaction with its record?
    fn commits_with_record(&self, tx: TxRequirement) -> bool {
        tx != TxRequirement::MayCommit && tx.allows_transaction(self.major)
    }

    /// Commit the open transaction, with a partial record of work `wi` at `done` when it holds
    /// statements of that migration.
    fn close(&mut self, wi: usize, done: usize, start_at: usize) {
        let has_own = self
            .cur
            .iter()
            .any(|op| matches!(op, Op::Statement { work, .. } if *work == wi));
        if done > start_at && has_own {
            self.cur.push(partial(wi, done));
        }
        self.flush();
    }

    /// Statement `si` alone: its intent committed with the open transaction (or alone), the
    /// statement, then its record in a transaction of its own.
    fn alone(&mut self, wi: usize, si: usize) {
        let intent = Op::Intent { work: wi, stmt: si };
        match self.out.last_mut() {
            // The record just committed says the same: let it carry the intent.
            Some(Step::Tx(ops)) if self.cur.is_empty() && ops.last() == Some(&partial(wi, si)) => {
                *ops.last_mut().expect("not empty") = intent;
            }
            _ => {
                self.cur.push(intent);
                self.flush();
            }
        }
        self.out
            .push(Step::Alone(Op::Statement { work: wi, stmt: si }));
        self.out.push(Step::Tx(vec![partial(wi, si + 1)]));
    }

    /// The migration's complete record, in the transaction its last statements ran in.
    fn finish(&mut self, wi: usize, len: usize, region: Region) {
        let done = [
            Op::Reset,
            Op::Record {
                work: wi,
                complete: true,
                done: len,
            },
        ];
        if self.cur.is_empty()
            && let Some(Step::Tx(ops)) = self.out.last_mut()
            && ops.last() == Some(&partial(wi, len))
        {
            // The last statement committed with (or just before) its record: that record
            // becomes the complete one.
            ops.pop();
            ops.extend(done);
            return;
        }
        match region {
            Region::Batch => self.cur.extend(done),
            Region::Auto => self.out.push(Step::Tx(done.to_vec())),
            // A transaction the file left open is committed with the record, as drizzle's
            // final COMMIT commits it.
            Region::Open => {
                self.cur.extend(done);
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        if !self.cur.is_empty() {
            self.out.push(Step::Tx(std::mem::take(&mut self.cur)));
        }
    }
}

/// The region statement `at` of `m` runs in when a run starts there (a resumed migration whose
/// own `COMMIT` already ran continues in autocommit).
fn region_at(m: &Migration, at: usize) -> Region {
    m.statements[..at.min(m.statements.len())]
        .iter()
        .fold(Region::Batch, |region, s| match (&s.control, region) {
            (Some(TxControl::Commit), _) => Region::Auto,
            (Some(TxControl::Begin), Region::Auto) => Region::Open,
            _ => region,
        })
}

fn partial(work: usize, done: usize) -> Op {
    Op::Record {
        work,
        complete: false,
        done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{MigrationId, Statement};
    use std::path::PathBuf;

    fn stmt(tx: TxRequirement, control: Option<TxControl>) -> Statement {
        Statement {
            sql: "SELECT 1".into(),
            offset: 0,
            line: 1,
            tx,
            control,
        }
    }

    fn mig(name: &str, txs: &[TxRequirement]) -> Migration {
        with(name, txs.iter().map(|t| stmt(*t, None)).collect())
    }

    fn with(name: &str, statements: Vec<Statement>) -> Migration {
        Migration {
            name: name.into(),
            order: 0,
            id: MigrationId::Sql {
                version: "1".into(),
            },
            checksum: "h".into(),
            raw: Default::default(),
            path: PathBuf::from(name),
            statements,
            down: None,
        }
    }

    fn work(ms: &[&Migration]) -> Vec<Work<'static>> {
        ms.iter()
            .map(|m| Work {
                migration: Box::leak(Box::new((*m).clone())),
                start_at: 0,
                uncertain: false,
            })
            .collect()
    }

    use Op::{Intent, Reset, Statement as S};
    use TxRequirement::{Any, MayCommit, NoTransaction, NoTransactionBeforePg12};

    fn rec(work: usize, done: usize) -> Op {
        partial(work, done)
    }

    fn complete(work: usize, done: usize) -> Op {
        Op::Record {
            work,
            complete: true,
            done,
        }
    }

    #[test]
    fn all_in_one_transaction() {
        let a = mig("a", &[Any, Any]);
        let b = mig("b", &[Any]);
        let w = work(&[&a, &b]);
        assert_eq!(
            steps(&w, TxMode::All, 15),
            vec![Step::Tx(vec![
                S { work: 0, stmt: 0 },
                S { work: 0, stmt: 1 },
                Reset,
                complete(0, 2),
                S { work: 1, stmt: 0 },
                Reset,
                complete(1, 1),
            ])]
        );
        assert_eq!(steps(&w, TxMode::PerMigration, 15).len(), 2);
    }

    #[test]
    fn concurrent_statement_runs_alone_and_is_recorded_at_once() {
        let a = mig("a", &[Any]);
        let b = mig("b", &[Any, NoTransaction, Any]);
        let w = work(&[&a, &b]);
        assert_eq!(
            steps(&w, TxMode::All, 15),
            vec![
                Step::Tx(vec![
                    S { work: 0, stmt: 0 },
                    Reset,
                    complete(0, 1),
                    S { work: 1, stmt: 0 },
                    Intent { work: 1, stmt: 1 },
                ]),
                Step::Alone(S { work: 1, stmt: 1 }),
                Step::Tx(vec![rec(1, 2)]),
                Step::Tx(vec![S { work: 1, stmt: 2 }, Reset, complete(1, 3)]),
            ]
        );
    }

    #[test]
    fn migration_ending_with_concurrent_statement() {
        let a = mig("a", &[NoTransaction]);
        assert_eq!(
            steps(&work(&[&a]), TxMode::All, 15),
            vec![
                Step::Tx(vec![Intent { work: 0, stmt: 0 }]),
                Step::Alone(S { work: 0, stmt: 0 }),
                Step::Tx(vec![Reset, complete(0, 1)])
            ]
        );
    }

    #[test]
    fn resume_and_enum_before_pg12() {
        let a = mig("a", &[Any, NoTransactionBeforePg12, Any]);
        let w = [Work {
            migration: &a,
            start_at: 1,
            uncertain: false,
        }];
        assert_eq!(
            steps(&w, TxMode::All, 15),
            vec![Step::Tx(vec![
                S { work: 0, stmt: 1 },
                S { work: 0, stmt: 2 },
                Reset,
                complete(0, 3)
            ])]
        );
        assert_eq!(
            steps(&w, TxMode::All, 11)[1],
            Step::Alone(S { work: 0, stmt: 1 })
        );
    }

    #[test]
    fn a_files_commit_ends_the_batch_and_later_statements_commit_each_with_its_record() {
        // 0: CREATE TABLE, 1: COMMIT, 2: CREATE INDEX CONCURRENTLY, 3: UPDATE, 4: CALL
        let a = mig("a", &[Any]);
        let b = with(
            "b",
            vec![
                stmt(Any, None),
                stmt(Any, Some(TxControl::Commit)),
                stmt(NoTransaction, None),
                stmt(Any, None),
                stmt(MayCommit, None),
            ],
        );
        let c = mig("c", &[Any]);
        let w = work(&[&a, &b, &c]);
        assert_eq!(
            steps(&w, TxMode::All, 15),
            vec![
                Step::Tx(vec![
                    S { work: 0, stmt: 0 },
                    Reset,
                    complete(0, 1),
                    S { work: 1, stmt: 0 },
                    Intent { work: 1, stmt: 2 },
                ]),
                Step::Alone(S { work: 1, stmt: 2 }),
                Step::Tx(vec![rec(1, 3)]),
                Step::Tx(vec![S { work: 1, stmt: 3 }, Intent { work: 1, stmt: 4 }]),
                Step::Alone(S { work: 1, stmt: 4 }),
                Step::Tx(vec![Reset, complete(1, 5)]),
                Step::Tx(vec![S { work: 2, stmt: 0 }, Reset, complete(2, 1)]),
            ]
        );
    }

    #[test]
    fn begin_after_commit_opens_a_transaction_committed_with_its_record() {
        // 0: BEGIN (no-op in the batch), 1: CREATE, 2: COMMIT, 3: BEGIN, 4: ALTER, 5: ALTER,
        // 6: COMMIT, 7: BEGIN, 8: UPDATE (left open: committed with the complete record)
        let b = with(
            "b",
            vec![
                stmt(Any, Some(TxControl::Begin)),
                stmt(Any, None),
                stmt(Any, Some(TxControl::Commit)),
                stmt(Any, Some(TxControl::Begin)),
                stmt(Any, None),
                stmt(Any, None),
                stmt(Any, Some(TxControl::Commit)),
                stmt(Any, Some(TxControl::Begin)),
                stmt(Any, None),
            ],
        );
        assert_eq!(
            steps(&work(&[&b]), TxMode::All, 15),
            vec![
                Step::Tx(vec![S { work: 0, stmt: 1 }, rec(0, 3)]),
                Step::Tx(vec![
                    S { work: 0, stmt: 4 },
                    S { work: 0, stmt: 5 },
                    rec(0, 7)
                ]),
                Step::Tx(vec![S { work: 0, stmt: 8 }, Reset, complete(0, 9)]),
            ]
        );
    }

    #[test]
    fn resuming_after_a_commit_continues_in_autocommit() {
        // Resumed at statement 2 (after the file's COMMIT): it commits on its own, with the
        // migration's complete record.
        let b = with(
            "b",
            vec![
                stmt(Any, None),
                stmt(Any, Some(TxControl::Commit)),
                stmt(Any, None),
            ],
        );
        let w = [Work {
            migration: &b,
            start_at: 2,
            uncertain: false,
        }];
        assert_eq!(
            steps(&w, TxMode::All, 15),
            vec![Step::Tx(vec![
                S { work: 0, stmt: 2 },
                Reset,
                complete(0, 3)
            ])]
        );
        let c = with(
            "c",
            vec![
                stmt(Any, Some(TxControl::Commit)),
                stmt(Any, None),
                stmt(MayCommit, None),
            ],
        );
        let w = [Work {
            migration: &c,
            start_at: 2,
            uncertain: false,
        }];
        assert_eq!(
            steps(&w, TxMode::All, 15),
            vec![
                Step::Tx(vec![Intent { work: 0, stmt: 2 }]),
                Step::Alone(S { work: 0, stmt: 2 }),
                Step::Tx(vec![Reset, complete(0, 3)])
            ]
        );
    }
}
