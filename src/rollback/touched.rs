//! What the pending SQL touches, read from its parse tree: the tables it writes rows to, the
//! relations it alters, renames, drops or creates, the types and sequences it changes, and the
//! statements whose effects cannot be read from their text (a `DO` block, a call to a user
//! function). Pure: no catalog, no IO; names are resolved against a model by the caller.
//!
//! Reading too much is safe (a table is dumped and compared for nothing); reading too little
//! is not (a table's rows could change without being saved), so whatever is unclear becomes
//! `opaque`, which makes every table touched.

use std::collections::BTreeSet;

use pg_query::protobuf::{AlterTableType, DropBehavior, Node, ObjectType, RangeVar};
use pg_query::{NodeEnum, NodeRef};
use serde::{Deserialize, Serialize};

use crate::lint::ast;
use crate::source::Migration;

/// A relation or type as the SQL names it: the schema is `None` when the name is unqualified
/// and no `SET search_path` said where it lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Name {
    pub schema: Option<String>,
    pub name: String,
}

impl Name {
    pub fn new(schema: Option<&str>, name: &str) -> Name {
        Name {
            schema: schema.filter(|s| !s.is_empty()).map(str::to_string),
            name: name.to_string(),
        }
    }

    /// Whether `schema.name` is this name (any schema when it is unqualified).
    pub fn matches(&self, schema: &str, name: &str) -> bool {
        self.name == name && self.schema.as_deref().is_none_or(|s| s == schema)
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Everything the pending SQL touches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touched {
    /// Tables whose rows a statement writes: INSERT, UPDATE, DELETE, MERGE, COPY FROM (also
    /// inside WITH), TRUNCATE.
    pub written: BTreeSet<Name>,
    /// Tables truncated with CASCADE: every table referencing them loses rows too.
    pub truncated_cascade: BTreeSet<Name>,
    /// Relations whose definition changes: ALTER TABLE, CREATE INDEX/TRIGGER/POLICY/RULE on
    /// them, partitions attached or detached, parents of new partitions and children.
    pub altered: BTreeSet<Name>,
    /// Relations dropped.
    pub dropped: BTreeSet<Name>,
    /// Relations renamed or moved to another schema, by their old name.
    pub renamed: BTreeSet<Name>,
    /// Relations created.
    pub created: BTreeSet<Name>,
    /// Types (enums, domains, composite types) created, altered, renamed or dropped.
    pub types: BTreeSet<Name>,
    /// Sequences altered, or set with `setval('name', ...)`.
    pub sequences: BTreeSet<Name>,
    /// Schemas renamed or dropped: every table in them is touched.
    pub schemas: BTreeSet<String>,
    /// Statements whose effect on data cannot be read from their SQL, each described with its
    /// migration and line. When not empty, every table is touched.
    pub opaque: Vec<String>,
}

impl Touched {
    /// Every relation named as altered, dropped, renamed or written.
    pub fn relations(&self) -> BTreeSet<&Name> {
        self.written
            .iter()
            .chain(&self.truncated_cascade)
            .chain(&self.altered)
            .chain(&self.dropped)
            .chain(&self.renamed)
            .collect()
    }
}

/// Analyze the statements of `migrations`, in order. `user_functions` are the bare names of
/// the functions in the database (a call to one of them may write anything); functions the
/// SQL creates are added as it goes.
pub fn analyze(migrations: &[&Migration], user_functions: &BTreeSet<String>) -> Touched {
    let mut a = Analyzer {
        t: Touched::default(),
        functions: user_functions.clone(),
        search_schema: None,
    };
    for m in migrations {
        // The apply engine resets session settings after every migration.
        a.search_schema = None;
        for (i, s) in m.statements.iter().enumerate() {
            let at = format!("{} statement {} (line {})", m.name, i + 1, s.line);
            a.statement(&s.sql, &at);
        }
    }
    a.t
}

/// Analyze one SQL text (tests, and callers without a `Migration`).
pub fn analyze_sql(sql: &str, user_functions: &BTreeSet<String>) -> Touched {
    let mut a = Analyzer {
        t: Touched::default(),
        functions: user_functions.clone(),
        search_schema: None,
    };
    a.statement(sql, "statement");
    a.t
}

struct Analyzer {
    t: Touched,
    functions: BTreeSet<String>,
    /// The first schema of a `SET search_path` in the current migration.
    search_schema: Option<String>,
}

impl Analyzer {
    fn statement(&mut self, sql: &str, at: &str) {
        let parsed = match pg_query::parse(sql, 0) {
            Ok(p) => p,
            Err(e) => {
                self.t
                    .opaque
                    .push(format!("{at}: could not be parsed ({e})"));
                return;
            }
        };
        for raw in &parsed.protobuf.stmts {
            if let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
                self.node(node, at);
            }
        }
    }

    fn rel(&self, rv: &RangeVar) -> Name {
        let schema = if rv.schemaname.is_empty() {
            self.search_schema.as_deref()
        } else {
            Some(rv.schemaname.as_str())
        };
        Name::new(schema, &rv.relname)
    }

    /// A qualified name from a list of `String` nodes (`schema.name` or `name`).
    fn qualified(&self, parts: &[&str]) -> Option<Name> {
        match parts {
            [name] => Some(Name::new(self.search_schema.as_deref(), name)),
            [.., schema, name] => Some(Name::new(Some(schema), name)),
            [] => None,
        }
    }

    fn list_name(&self, n: &Node) -> Option<Name> {
        match n.node.as_ref()? {
            NodeEnum::List(l) => self.qualified(&ast::strings(&l.items)),
            NodeEnum::TypeName(t) => self.qualified(&ast::strings(&t.names)),
            NodeEnum::String(s) => self.qualified(&[s.sval.as_str()]),
            _ => None,
        }
    }

    fn node(&mut self, node: &NodeEnum, at: &str) {
        self.writes_and_calls(node, at);
        match node {
            NodeEnum::TruncateStmt(t) => {
                let cascade = t.behavior == DropBehavior::DropCascade as i32;
                for n in &t.relations {
                    if let Some(NodeEnum::RangeVar(r)) = &n.node {
                        let name = self.rel(r);
                        if cascade {
                            self.t.truncated_cascade.insert(name.clone());
                        }
                        self.t.written.insert(name);
                    }
                }
            }
            NodeEnum::CopyStmt(c) if c.is_from => {
                if let Some(r) = &c.relation {
                    self.t.written.insert(self.rel(r));
                }
            }
            NodeEnum::AlterTableStmt(a) => self.alter_table(a),
            NodeEnum::RenameStmt(r) => self.rename(r),
            NodeEnum::AlterObjectSchemaStmt(s) => {
                if let Some(r) = &s.relation {
                    self.t.renamed.insert(self.rel(r));
                } else if let Some(n) = s.object.as_deref().and_then(|o| self.list_name(o)) {
                    if is_type(s.object_type) {
                        self.t.types.insert(n);
                    }
                }
            }
            NodeEnum::DropStmt(d) => self.drop(d, at),
            NodeEnum::CreateStmt(c) => {
                if let Some(r) = &c.relation {
                    self.t.created.insert(self.rel(r));
                }
                for p in &c.inh_relations {
                    if let Some(NodeEnum::RangeVar(r)) = &p.node {
                        self.t.altered.insert(self.rel(r));
                    }
                }
            }
            NodeEnum::CreateTableAsStmt(c) => {
                if let Some(r) = c.into.as_ref().and_then(|i| i.rel.as_ref()) {
                    self.t.created.insert(self.rel(r));
                }
            }
            NodeEnum::ViewStmt(v) => {
                if let Some(r) = &v.view {
                    self.t.created.insert(self.rel(r));
                }
            }
            NodeEnum::IndexStmt(i) => {
                if let Some(r) = &i.relation {
                    self.t.altered.insert(self.rel(r));
                }
            }
            NodeEnum::CreateTrigStmt(c) => {
                if let Some(r) = &c.relation {
                    self.t.altered.insert(self.rel(r));
                }
            }
            NodeEnum::CreatePolicyStmt(c) => {
                if let Some(r) = &c.table {
                    self.t.altered.insert(self.rel(r));
                }
            }
            NodeEnum::AlterPolicyStmt(c) => {
                if let Some(r) = &c.table {
                    self.t.altered.insert(self.rel(r));
                }
            }
            NodeEnum::RuleStmt(c) => {
                if let Some(r) = &c.relation {
                    self.t.altered.insert(self.rel(r));
                }
            }
            NodeEnum::AlterEnumStmt(e) => {
                if let Some(n) = self.qualified(&ast::strings(&e.type_name)) {
                    self.t.types.insert(n);
                }
            }
            NodeEnum::AlterDomainStmt(d) => {
                if let Some(n) = self.qualified(&ast::strings(&d.type_name)) {
                    self.t.types.insert(n);
                }
            }
            NodeEnum::CreateEnumStmt(e) => {
                if let Some(n) = self.qualified(&ast::strings(&e.type_name)) {
                    self.t.types.insert(n);
                }
            }
            NodeEnum::CreateDomainStmt(d) => {
                if let Some(n) = self.qualified(&ast::strings(&d.domainname)) {
                    self.t.types.insert(n);
                }
            }
            NodeEnum::CompositeTypeStmt(c) => {
                if let Some(r) = &c.typevar {
                    self.t.types.insert(self.rel(r));
                }
            }
            NodeEnum::AlterSeqStmt(s) => {
                if let Some(r) = &s.sequence {
                    self.t.sequences.insert(self.rel(r));
                }
            }
            NodeEnum::CreateFunctionStmt(f) => {
                if let Some(name) = ast::strings(&f.funcname).last() {
                    self.functions.insert((*name).to_string());
                }
            }
            NodeEnum::CreateSchemaStmt(s) => {
                let saved = self.search_schema.replace(s.schemaname.clone());
                for e in &s.schema_elts {
                    if let Some(n) = &e.node {
                        self.node(n, at);
                    }
                }
                self.search_schema = saved;
            }
            NodeEnum::VariableSetStmt(v) if v.name == "search_path" => {
                self.search_schema = v.args.first().and_then(|a| match a.node.as_ref()? {
                    NodeEnum::AConst(c) => match c.val.as_ref()? {
                        pg_query::protobuf::a_const::Val::Sval(s) => Some(s.sval.clone()),
                        _ => None,
                    },
                    _ => None,
                });
            }
            NodeEnum::DoStmt(_) => self.t.opaque.push(format!(
                "{at}: a DO block (its effects cannot be read from the SQL)"
            )),
            NodeEnum::CallStmt(_) => self.t.opaque.push(format!(
                "{at}: CALL of a procedure (its effects cannot be read from the SQL)"
            )),
            NodeEnum::ExecuteStmt(_) => self.t.opaque.push(format!(
                "{at}: EXECUTE of a prepared statement (its effects cannot be read from the SQL)"
            )),
            _ => {}
        }
    }

    /// Rows written anywhere in the statement (a data-modifying WITH included), calls to user
    /// functions, and `setval('name', ...)`.
    fn writes_and_calls(&mut self, node: &NodeEnum, at: &str) {
        let mut refs = vec![node.to_ref()];
        refs.extend(node.nodes().into_iter().map(|(r, _, _, _)| r));
        for r in refs {
            match r {
                NodeRef::InsertStmt(s) => self.written(s.relation.as_ref()),
                NodeRef::UpdateStmt(s) => self.written(s.relation.as_ref()),
                NodeRef::DeleteStmt(s) => self.written(s.relation.as_ref()),
                NodeRef::MergeStmt(s) => self.written(s.relation.as_ref()),
                NodeRef::FuncCall(f) => self.call(f, at),
                _ => {}
            }
        }
    }

    fn written(&mut self, r: Option<&RangeVar>) {
        if let Some(r) = r {
            let name = self.rel(r);
            self.t.written.insert(name);
        }
    }

    fn call(&mut self, f: &pg_query::protobuf::FuncCall, at: &str) {
        let names = ast::strings(&f.funcname);
        let Some(name) = names.last() else { return };
        let system = names.len() == 2 && names[0] == "pg_catalog";
        if !system && self.functions.contains(*name) {
            self.t.opaque.push(format!(
                "{at}: calls the function {} (its effects cannot be read from the SQL)",
                names.join(".")
            ));
        }
        if matches!(*name, "setval" | "nextval") {
            let first = f.args.first().and_then(|a| match a.node.as_ref()? {
                NodeEnum::AConst(c) => match c.val.as_ref()? {
                    pg_query::protobuf::a_const::Val::Sval(s) => Some(s.sval.clone()),
                    _ => None,
                },
                NodeEnum::TypeCast(c) => match c.arg.as_deref()?.node.as_ref()? {
                    NodeEnum::AConst(c) => match c.val.as_ref()? {
                        pg_query::protobuf::a_const::Val::Sval(s) => Some(s.sval.clone()),
                        _ => None,
                    },
                    _ => None,
                },
                _ => None,
            });
            if let Some(text) = first {
                let parts: Vec<&str> = text.split('.').map(|p| p.trim_matches('"')).collect();
                if let Some(n) = self.qualified(&parts) {
                    self.t.sequences.insert(n);
                }
            }
        }
    }

    fn alter_table(&mut self, a: &pg_query::protobuf::AlterTableStmt) {
        let Some(r) = &a.relation else { return };
        let name = self.rel(r);
        if is_type(a.objtype) {
            self.t.types.insert(name);
            return;
        }
        if a.objtype == ObjectType::ObjectSequence as i32 {
            self.t.sequences.insert(name);
            return;
        }
        for (cmd, kind) in ast::alter_cmds(a) {
            if matches!(
                kind,
                AlterTableType::AtAttachPartition | AlterTableType::AtDetachPartition
            ) {
                if let Some(NodeEnum::PartitionCmd(p)) =
                    cmd.def.as_ref().and_then(|d| d.node.as_ref())
                {
                    if let Some(part) = &p.name {
                        self.t.altered.insert(self.rel(part));
                    }
                }
            }
        }
        self.t.altered.insert(name);
    }

    fn rename(&mut self, r: &pg_query::protobuf::RenameStmt) {
        let kind = r.rename_type;
        if kind == ObjectType::ObjectSchema as i32 {
            self.t.schemas.insert(r.subname.clone());
            return;
        }
        if is_type(kind) {
            if let Some(n) = r.object.as_deref().and_then(|o| self.list_name(o)) {
                self.t.types.insert(n);
            }
            return;
        }
        if kind == ObjectType::ObjectAttribute as i32 {
            if let Some(rel) = &r.relation {
                self.t.types.insert(self.rel(rel));
            }
            return;
        }
        let Some(rel) = &r.relation else { return };
        let name = self.rel(rel);
        if is_relation(kind) {
            self.t.renamed.insert(name.clone());
        }
        self.t.altered.insert(name);
    }

    fn drop(&mut self, d: &pg_query::protobuf::DropStmt, at: &str) {
        let kind = d.remove_type;
        let cascade = d.behavior == DropBehavior::DropCascade as i32;
        if kind == ObjectType::ObjectSchema as i32 {
            for o in &d.objects {
                if let Some(NodeEnum::String(s)) = &o.node {
                    self.t.schemas.insert(s.sval.clone());
                }
            }
            if cascade {
                self.t.opaque.push(format!(
                    "{at}: DROP SCHEMA ... CASCADE (what it drops depends on the database)"
                ));
            }
            return;
        }
        if is_relation(kind) {
            for o in &d.objects {
                if let Some(n) = self.list_name(o) {
                    self.t.dropped.insert(n);
                }
            }
            return;
        }
        if is_type(kind) {
            for o in &d.objects {
                if let Some(n) = self.list_name(o) {
                    self.t.types.insert(n);
                }
            }
        }
        if matches!(
            ObjectType::try_from(kind),
            Ok(ObjectType::ObjectTrigger | ObjectType::ObjectPolicy | ObjectType::ObjectRule)
        ) {
            // `DROP TRIGGER t ON rel`: the last element of the name list is the object, the
            // rest names the relation.
            for o in &d.objects {
                if let Some(NodeEnum::List(l)) = &o.node {
                    let parts = ast::strings(&l.items);
                    if parts.len() >= 2 {
                        if let Some(n) = self.qualified(&parts[..parts.len() - 1]) {
                            self.t.altered.insert(n);
                        }
                    }
                }
            }
        }
        if cascade && !is_relation(kind) {
            self.t.opaque.push(format!(
                "{at}: DROP ... CASCADE of a {} (what it drops depends on the database)",
                object_word(kind)
            ));
        }
    }
}

fn is_type(kind: i32) -> bool {
    kind == ObjectType::ObjectType as i32 || kind == ObjectType::ObjectDomain as i32
}

fn is_relation(kind: i32) -> bool {
    matches!(
        ObjectType::try_from(kind),
        Ok(ObjectType::ObjectTable
            | ObjectType::ObjectView
            | ObjectType::ObjectMatview
            | ObjectType::ObjectForeignTable
            | ObjectType::ObjectSequence
            | ObjectType::ObjectIndex)
    )
}

fn object_word(kind: i32) -> String {
    ObjectType::try_from(kind)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("OBJECT_")
                .to_lowercase()
                .replace('_', " ")
        })
        .unwrap_or_else(|_| "object".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(set: &BTreeSet<Name>) -> Vec<String> {
        let mut v: Vec<String> = set.iter().map(ToString::to_string).collect();
        v.sort();
        v
    }

    fn t(sql: &str) -> Touched {
        analyze_sql(sql, &BTreeSet::new())
    }

    #[test]
    fn writes_including_with_and_merge() {
        let x = t("INSERT INTO app.a SELECT * FROM b; \
                   UPDATE c SET x = 1; DELETE FROM public.d; \
                   WITH moved AS (DELETE FROM e RETURNING *) INSERT INTO f SELECT * FROM moved; \
                   MERGE INTO g USING h ON g.id = h.id WHEN MATCHED THEN DELETE; \
                   TRUNCATE i, j CASCADE; COPY k FROM '/tmp/x'; SELECT * FROM l");
        assert_eq!(
            names(&x.written),
            ["app.a", "c", "e", "f", "g", "i", "j", "k", "public.d"]
        );
        assert_eq!(names(&x.truncated_cascade), ["i", "j"]);
        assert!(x.opaque.is_empty());
    }

    #[test]
    fn ddl_kinds() {
        let x = t("ALTER TABLE users ADD COLUMN age int; \
                   ALTER TABLE users RENAME COLUMN name TO full_name; \
                   ALTER TABLE orders RENAME TO purchases; \
                   ALTER TABLE app.x SET SCHEMA other; \
                   DROP TABLE old_stuff, app.older CASCADE; \
                   CREATE TABLE posts (id int REFERENCES users(id)); \
                   CREATE TABLE m_2025 PARTITION OF measurements FOR VALUES FROM (1) TO (2); \
                   ALTER TABLE events ATTACH PARTITION events_old FOR VALUES FROM (1) TO (2); \
                   CREATE INDEX ON comments (post_id); \
                   DROP TRIGGER trg ON audit; \
                   ALTER TYPE mood ADD VALUE 'meh'; \
                   CREATE TYPE status AS ENUM ('a'); \
                   ALTER DOMAIN app.email ADD CHECK (VALUE <> ''); \
                   ALTER SEQUENCE s RESTART; SELECT setval('public.t_id_seq', 10); \
                   ALTER SCHEMA reports RENAME TO reporting; \
                   CREATE VIEW v AS SELECT 1");
        assert_eq!(
            names(&x.altered),
            [
                "audit",
                "comments",
                "events",
                "events_old",
                "measurements",
                "orders",
                "users"
            ]
        );
        assert_eq!(names(&x.renamed), ["app.x", "orders"]);
        assert_eq!(names(&x.dropped), ["app.older", "old_stuff"]);
        assert_eq!(names(&x.created), ["m_2025", "posts", "v"]);
        assert_eq!(names(&x.types), ["app.email", "mood", "status"]);
        assert_eq!(names(&x.sequences), ["public.t_id_seq", "s"]);
        assert_eq!(x.schemas.iter().collect::<Vec<_>>(), ["reports"]);
        assert!(x.written.is_empty());
        assert!(x.opaque.is_empty(), "{:?}", x.opaque);
    }

    #[test]
    fn opaque_statements() {
        let mut fns = BTreeSet::new();
        fns.insert("backfill".to_string());
        let x = analyze_sql(
            "DO $$ BEGIN UPDATE t SET a = 1; END $$; SELECT backfill(); SELECT now(); \
             CREATE FUNCTION fresh() RETURNS void LANGUAGE sql AS 'SELECT 1'; SELECT fresh(); \
             DROP TYPE mood CASCADE; DROP TYPE other",
            &fns,
        );
        assert_eq!(x.opaque.len(), 4, "{:?}", x.opaque);
        assert!(x.opaque[0].contains("DO block"));
        assert!(x.opaque[1].contains("backfill"));
        assert!(x.opaque[2].contains("fresh"));
        assert!(x.opaque[3].contains("CASCADE of a type"));
        assert_eq!(names(&x.types), ["mood", "other"]);
        let x = t("SELEC oops");
        assert!(
            x.opaque[0].contains("could not be parsed"),
            "{:?}",
            x.opaque
        );
    }

    #[test]
    fn search_path_qualifies_unqualified_names() {
        let x = t("SET search_path TO app, public; UPDATE t SET a = 1; \
                   CREATE SCHEMA s CREATE TABLE inner_t (a int)");
        assert_eq!(names(&x.written), ["app.t"]);
        assert_eq!(names(&x.created), ["s.inner_t"]);
        let n = Name::new(None, "t");
        assert!(n.matches("public", "t") && n.matches("app", "t") && !n.matches("app", "u"));
        assert!(!Name::new(Some("app"), "t").matches("public", "t"));
    }

    #[test]
    fn migrations_reset_the_search_path() {
        use crate::source::{Statement, TxRequirement};
        let mig = |name: &str, sql: &str| Migration {
            statements: vec![Statement {
                sql: sql.into(),
                offset: 0,
                line: 3,
                tx: TxRequirement::Any,
                control: None,
            }],
            ..crate::source::testing::migration(name)
        };
        let a = mig("001_a", "SET search_path = app; DELETE FROM t");
        let b = mig("002_b", "DELETE FROM u; DO $$ BEGIN END $$");
        let x = analyze(&[&a, &b], &BTreeSet::new());
        assert_eq!(names(&x.written), ["app.t", "u"]);
        assert_eq!(x.opaque.len(), 1);
        assert!(
            x.opaque[0].starts_with("002_b statement 1 (line 3)"),
            "{:?}",
            x.opaque
        );
    }
}
