//! What a rule knows besides its statement, and how it evolves statement by statement:
//! transaction boundaries (explicit BEGIN/COMMIT, or how the runner wraps the file), tables
//! created earlier in the file or transaction, constraints added NOT VALID (in this file or an
//! earlier one), tables locked strongly in the current transaction, timeouts set, the
//! PostgreSQL version, and the live catalog when linting against a database.

use std::collections::{HashMap, HashSet};

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ConstrType, TransactionStmtKind};

use super::Hit;
use super::ast;
use super::catalog::Catalog;
use super::copies::Copies;
use super::objects::RunObjects;
use super::rules::transaction_nesting;

/// The top-level `COMMIT` (or `ROLLBACK`) that ended the runner's transaction in a file, and
/// what ran after it.
#[derive(Debug, Clone)]
pub struct RunnerEnd {
    pub line: u32,
    pub column: u32,
    pub sql: String,
    /// A COMMIT (not a ROLLBACK or PREPARE TRANSACTION).
    pub commit: bool,
    /// Earlier migrations of the run that shared the transaction (pgship's whole-run mode),
    /// committed with it.
    pub earlier_migrations: u32,
    /// The statements after it, in order: their line, and the line of the file's BEGIN whose
    /// transaction they run in (`None`: autocommit).
    pub after: Vec<(u32, Option<u32>)>,
}

/// How the runner executes a file's statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    /// Each statement on its own (autocommit), except inside the file's own BEGIN/COMMIT.
    None,
    /// The whole file in one transaction (`--assume-in-transaction`).
    File,
    /// pgship's apply engine: statements in a transaction, except those that cannot run in one
    /// (CREATE INDEX CONCURRENTLY, ...), which run alone between committed segments. With
    /// `per_migration` each file is its own transaction; otherwise the whole run is one.
    Engine { per_migration: bool },
}

/// Linting state. One per run: it carries across files (the run's transaction with pgship's
/// engine, and NOT VALID constraints validated in a later migration).
pub struct Context {
    pub pg_version: u32,
    pub catalog: Option<Catalog>,
    pub wrap: Wrap,
    file_no: u64,
    txn: u64,
    /// An explicit BEGIN open in the file: its line, column and text.
    explicit: Option<(u32, u32, String)>,
    /// The runner's transaction (`Wrap::File`, `Wrap::Engine`) was ended by a top-level
    /// `COMMIT` (or `ROLLBACK`) of this file: the statements after it run in autocommit.
    runner_end: Option<RunnerEnd>,
    /// The previous file ended the runner's transaction: the engine opens a new one.
    reopened: bool,
    /// Earlier files that share the current transaction of pgship's engine (whole-run mode).
    files_in_txn: u32,
    /// Table key -> (file, transaction) where it was created.
    created: HashMap<String, (u64, u64)>,
    /// (table key, constraint) -> transaction it was added NOT VALID in.
    not_valid: HashMap<(String, String), u64>,
    /// NOT VALID `CHECK (col IS NOT NULL)` constraints: (table key, constraint) -> column.
    not_null_check_pending: HashMap<(String, String), String>,
    /// (table key, column) with a validated `CHECK (col IS NOT NULL)`.
    not_null_checked: HashSet<(String, String)>,
    /// Table key -> transaction in which it was locked ACCESS EXCLUSIVE or SHARE ROW EXCLUSIVE.
    strong_locks: HashMap<String, u64>,
    pub lock_timeout_set: bool,
    pub statement_timeout_set: bool,
    /// What the run created, dropped and renamed so far, and its dependencies.
    pub objects: RunObjects,
    /// Values the run copied so far (before dropping them).
    pub copies: Copies,
}

impl Context {
    pub fn new(pg_version: u32, catalog: Option<Catalog>) -> Context {
        Context {
            pg_version,
            catalog,
            wrap: Wrap::None,
            file_no: 0,
            txn: 0,
            explicit: None,
            runner_end: None,
            reopened: false,
            files_in_txn: 0,
            created: HashMap::new(),
            not_valid: HashMap::new(),
            not_null_check_pending: HashMap::new(),
            not_null_checked: HashSet::new(),
            strong_locks: HashMap::new(),
            lock_timeout_set: false,
            statement_timeout_set: false,
            objects: RunObjects::default(),
            copies: Copies::default(),
        }
    }

    /// A new file starts. Its transaction continues from the previous file only with pgship's
    /// engine in whole-run mode.
    pub fn begin_file(&mut self, wrap: Wrap) {
        self.file_no += 1;
        let continues = self.wrap == wrap
            && wrap
                == Wrap::Engine {
                    per_migration: false,
                }
            && !self.reopened;
        if continues {
            self.files_in_txn += 1;
        } else {
            self.txn += 1;
            self.files_in_txn = 0;
        }
        self.reopened = false;
        self.wrap = wrap;
        self.explicit = None;
        self.runner_end = None;
        self.lock_timeout_set = false;
        self.statement_timeout_set = false;
    }

    /// Findings only known at the end of a file: `(rule, (line, column), statement, hit)`.
    pub fn end_file(&mut self) -> Vec<(&'static str, (u32, u32), String, Hit)> {
        let mut out = Vec::new();
        // A runner that wraps the file commits what the file's own BEGIN opened (TX04 reports
        // that BEGIN); only a file run statement by statement loses it.
        let open = self.explicit.take();
        if let Some((line, column, sql)) = open.filter(|_| self.wrap == Wrap::None) {
            out.push((
                "TX05",
                (line, column),
                sql,
                Hit::new(
                    "this transaction is never committed: its changes are rolled back when the \
                     session ends",
                ),
            ));
        }
        // pgship's engine gives a top-level COMMIT drizzle's meaning; TX04 says what is then
        // not atomic, which is only known once the file is read. The engine opens a new
        // transaction for the next migration.
        if let Some(end) = self.runner_end.take() {
            self.reopened = true;
            self.txn += 1;
            if let Wrap::Engine { per_migration } = self.wrap
                && let Some(hit) = transaction_nesting::after_engine_commit(&end, per_migration)
            {
                out.push(("TX04", (end.line, end.column), end.sql, hit));
            }
        }
        out
    }

    /// Whether an explicit BEGIN is open.
    pub fn in_explicit_transaction(&self) -> bool {
        self.explicit.is_some()
    }

    /// Whether the transaction the runner wraps the file in (`Wrap::File`, `Wrap::Engine`) is
    /// still open: no top-level `COMMIT` of the file has ended it yet.
    pub fn runner_open(&self) -> bool {
        self.wrap != Wrap::None && self.runner_end.is_none()
    }

    /// Whether statements run in autocommit here: no BEGIN of the file is open, and no runner's
    /// transaction either (none, or the file's COMMIT ended it).
    pub fn autocommit(&self) -> bool {
        self.explicit.is_none() && !self.runner_open()
    }

    /// Whether `node` runs inside a transaction block. For transaction control itself: whether
    /// a transaction is open when it runs.
    pub fn in_transaction_for(&self, node: &NodeEnum) -> bool {
        if self.explicit.is_some() || matches!(node, NodeEnum::TransactionStmt(_)) {
            return !self.autocommit();
        }
        match self.wrap {
            _ if !self.runner_open() => false,
            Wrap::None => false,
            Wrap::File => true,
            Wrap::Engine { .. } => !runs_alone(node, self.pg_version),
        }
    }

    /// The number of the file being linted in the run (from 1).
    pub fn file_no(&self) -> u64 {
        self.file_no
    }

    /// The id of the current transaction (changes at every boundary).
    pub fn txn(&self) -> u64 {
        self.txn
    }

    /// Was the table created earlier in this file or in this transaction?
    pub fn is_new_table(&self, key: &str) -> bool {
        self.created
            .get(key)
            .is_some_and(|&(file, txn)| file == self.file_no || txn == self.txn)
    }

    /// Was `(table, constraint)` added NOT VALID earlier, and in which transaction?
    pub fn not_valid_txn(&self, table: &str, constraint: &str) -> Option<u64> {
        self.not_valid
            .get(&(table.to_string(), constraint.to_string()))
            .copied()
    }

    /// Does the table have a validated `CHECK (col IS NOT NULL)` added earlier in the run?
    pub fn has_not_null_check(&self, table: &str, column: &str) -> bool {
        self.not_null_checked
            .contains(&(table.to_string(), column.to_string()))
    }

    /// Was the table locked ACCESS EXCLUSIVE or SHARE ROW EXCLUSIVE earlier in this transaction?
    pub fn strongly_locked(&self, table: &str) -> bool {
        self.in_any_transaction() && self.strong_locks.get(table) == Some(&self.txn)
    }

    fn in_any_transaction(&self) -> bool {
        !self.autocommit()
    }

    /// Update the state with a statement that has been checked.
    pub fn observe(&mut self, stmt: &super::Stmt) {
        let alone = !stmt.in_transaction;
        if alone {
            self.txn += 1;
        }
        self.objects.observe(stmt.node);
        self.copies.observe(stmt.node, self.file_no, stmt.line);
        match stmt.node {
            NodeEnum::TransactionStmt(t) => self.observe_control(t.kind, stmt),
            NodeEnum::CreateStmt(c) => {
                if let Some(rv) = &c.relation {
                    self.created
                        .insert(ast::rel_key(rv), (self.file_no, self.txn));
                }
            }
            NodeEnum::CreateTableAsStmt(c) => {
                if let Some(rv) = c.into.as_ref().and_then(|i| i.rel.as_ref()) {
                    self.created
                        .insert(ast::rel_key(rv), (self.file_no, self.txn));
                }
            }
            NodeEnum::VariableSetStmt(v) => match v.name.as_str() {
                "lock_timeout" => self.lock_timeout_set = true,
                "statement_timeout" => self.statement_timeout_set = true,
                _ => {}
            },
            NodeEnum::AlterTableStmt(_) => self.observe_alter(stmt.node),
            // Modes SHARE ROW EXCLUSIVE (6) and stronger.
            NodeEnum::LockStmt(l) if l.mode >= 6 => {
                for r in &l.relations {
                    if let Some(NodeEnum::RangeVar(rv)) = r.node.as_ref() {
                        self.strong_locks.insert(ast::rel_key(rv), self.txn);
                    }
                }
            }
            _ => {}
        }
        if let Some(end) = &mut self.runner_end
            && !matches!(stmt.node, NodeEnum::TransactionStmt(_))
        {
            end.after
                .push((stmt.line, self.explicit.as_ref().map(|e| e.0)));
        }
        // A statement run alone, or any statement in autocommit, ends its transaction.
        if self.autocommit() || (alone && self.explicit.is_none()) {
            self.txn += 1;
        }
    }

    /// Transaction control, with the meaning PostgreSQL gives it inside the runner's transaction
    /// (and drizzle's `migrate()` and pgship's engine give it): a BEGIN there does nothing; a
    /// COMMIT (or ROLLBACK) ends it, and what follows runs in autocommit until a BEGIN.
    fn observe_control(&mut self, kind: i32, stmt: &super::Stmt) {
        use TransactionStmtKind as K;
        let kind = K::try_from(kind).unwrap_or(K::Undefined);
        match kind {
            K::TransStmtBegin | K::TransStmtStart
                if self.explicit.is_none() && !self.runner_open() =>
            {
                self.explicit = Some((stmt.line, stmt.column, stmt.sql.to_string()));
                self.txn += 1;
            }
            K::TransStmtCommit | K::TransStmtRollback | K::TransStmtPrepare => {
                if self.explicit.take().is_none() && self.runner_open() {
                    self.runner_end = Some(RunnerEnd {
                        line: stmt.line,
                        column: stmt.column,
                        sql: stmt.sql.to_string(),
                        commit: kind == K::TransStmtCommit,
                        earlier_migrations: self.files_in_txn,
                        after: Vec::new(),
                    });
                }
                self.txn += 1;
            }
            K::TransStmtCommitPrepared | K::TransStmtRollbackPrepared => {
                self.explicit = None;
                self.txn += 1;
            }
            _ => {}
        }
    }

    fn observe_alter(&mut self, node: &NodeEnum) {
        let Some((a, rv)) = ast::alter_table(node) else {
            return;
        };
        let table = ast::rel_key(rv);
        let mut strong = false;
        for (cmd, t) in ast::alter_cmds(a) {
            match t {
                AlterTableType::AtValidateConstraint => {
                    if let Some(col) = self
                        .not_null_check_pending
                        .remove(&(table.clone(), cmd.name.clone()))
                    {
                        self.not_null_checked.insert((table.clone(), col));
                    }
                }
                AlterTableType::AtSetStatistics
                | AlterTableType::AtSetOptions
                | AlterTableType::AtResetOptions
                | AlterTableType::AtSetRelOptions
                | AlterTableType::AtResetRelOptions
                | AlterTableType::AtClusterOn
                | AlterTableType::AtDropCluster
                | AlterTableType::AtAttachPartition
                | AlterTableType::AtDetachPartitionFinalize => {}
                AlterTableType::AtAddConstraint => {
                    strong = true;
                    if let Some(c) = ast::constraint_def(cmd) {
                        let name = ast::constraint_name(c, &rv.relname);
                        if c.skip_validation {
                            self.not_valid
                                .insert((table.clone(), name.clone()), self.txn);
                        }
                        if ast::constr_type(c) == ConstrType::ConstrCheck
                            && let Some(col) = c.raw_expr.as_ref().and_then(|e| is_not_null_test(e))
                        {
                            if c.skip_validation {
                                self.not_null_check_pending
                                    .insert((table.clone(), name), col);
                            } else {
                                self.not_null_checked.insert((table.clone(), col));
                            }
                        }
                    }
                }
                _ => strong = true,
            }
        }
        if strong {
            self.strong_locks.insert(table, self.txn);
        }
    }
}

/// `col IS NOT NULL` -> `col`.
pub fn is_not_null_test(expr: &pg_query::protobuf::Node) -> Option<String> {
    match expr.node.as_ref()? {
        NodeEnum::NullTest(t) if t.nulltesttype == 2 => match t.arg.as_ref()?.node.as_ref()? {
            NodeEnum::ColumnRef(c) => c.fields.last().and_then(ast::string).map(str::to_string),
            _ => None,
        },
        _ => None,
    }
}

/// Statements PostgreSQL refuses inside a transaction block on `pg_version`, which pgship's
/// engine runs alone (the engine's own classification).
pub fn runs_alone(node: &NodeEnum, pg_version: u32) -> bool {
    !crate::source::split::node_tx_requirement(node).allows_transaction(pg_version)
}
