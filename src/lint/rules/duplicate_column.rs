//! RB06 duplicate-column: a column declared or assigned twice in one statement, which
//! PostgreSQL refuses when it runs:
//! - `CREATE TABLE` and `CREATE TYPE ... AS (...)` with the same column twice ("column "a"
//!   specified more than once"), and `ALTER TABLE` adding the same column twice;
//! - the columns of a view, materialized view or `CREATE TABLE AS`: its column list, or the
//!   output names of its query where there is none (`SELECT t.id, u.id` gives two `id`, and
//!   two unnamed expressions are both `?column?`);
//! - `UPDATE ... SET`, `INSERT ... ON CONFLICT DO UPDATE SET` assigning a column twice
//!   ("multiple assignments to same column"; assignments to different array elements or
//!   fields of one column are allowed), and an `INSERT` column list naming a column twice.
//!
//! Severity: error. The statement always fails, and the fix is to drop or rename one of the
//! two.

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableType, ConstrType, Constraint, Node, ObjectType, ResTarget, SelectStmt, SetOperation,
};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "RB06",
    name: "duplicate-column",
    severity: Severity::Error,
    default_on: true,
    summary: "a column declared or assigned twice in one statement: PostgreSQL refuses it",
    help: "keep one declaration or assignment per column (rename one with AS where a query \
           produces the same name twice)",
    check,
};

/// The names that occur more than once, once each, in order of their second occurrence.
fn duplicates<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    let mut dup: Vec<&str> = Vec::new();
    for n in names {
        if seen.contains(&n) {
            if !dup.contains(&n) {
                dup.push(n);
            }
        } else {
            seen.push(n);
        }
    }
    dup
}

fn res_targets(list: &[Node]) -> impl Iterator<Item = &ResTarget> {
    list.iter().filter_map(|n| match n.node.as_ref()? {
        NodeEnum::ResTarget(r) => Some(r.as_ref()),
        _ => None,
    })
}

/// Columns assigned twice in a `SET` list or an INSERT column list. Several assignments to one
/// column are allowed only when each goes through a subscript or a field (`a[1]`, `a[2]`).
fn assigned_twice(targets: &[Node]) -> Vec<String> {
    let all: Vec<&ResTarget> = res_targets(targets).collect();
    duplicates(all.iter().map(|r| r.name.as_str()))
        .into_iter()
        .filter(|n| all.iter().any(|r| r.name == *n && r.indirection.is_empty()))
        .map(str::to_string)
        .collect()
}

fn column_defs(list: &[Node]) -> Vec<&str> {
    list.iter()
        .filter_map(|n| match n.node.as_ref()? {
            NodeEnum::ColumnDef(c) => Some(c.colname.as_str()),
            _ => None,
        })
        .collect()
}

/// PostgreSQL's `FigureColname` for the cases that are certain: the alias, a column
/// reference's last name, a function's name, a cast's argument (else its type), and
/// `?column?` for constants and operators. `None` when unknown (`*`, other expressions).
fn output_name(r: &ResTarget) -> Option<String> {
    if !r.name.is_empty() {
        return Some(r.name.clone());
    }
    figure(r.val.as_ref()?).map(|(name, _)| name)
}

/// A name and its strength (2: a column or function name, 1: a type name, 0: `?column?`).
fn figure(n: &Node) -> Option<(String, u8)> {
    match n.node.as_ref()? {
        NodeEnum::ColumnRef(c) => match c.fields.last()?.node.as_ref()? {
            NodeEnum::String(s) => Some((s.sval.clone(), 2)),
            _ => None,
        },
        NodeEnum::FuncCall(f) => Some((ast::strings(&f.funcname).last()?.to_string(), 2)),
        NodeEnum::TypeCast(t) => match t.arg.as_deref().and_then(figure) {
            Some((name, 2)) => Some((name, 2)),
            _ => Some((
                ast::strings(&t.type_name.as_ref()?.names)
                    .last()?
                    .to_string(),
                1,
            )),
        },
        NodeEnum::AConst(_) | NodeEnum::AExpr(_) | NodeEnum::BoolExpr(_) => {
            Some(("?column?".to_string(), 0))
        }
        _ => None,
    }
}

/// The output column names of a query: the leftmost SELECT's for a set operation.
fn query_names(q: &Node) -> Vec<Option<String>> {
    let Some(NodeEnum::SelectStmt(s)) = q.node.as_ref() else {
        return Vec::new();
    };
    let mut s: &SelectStmt = s;
    while s.op != SetOperation::SetopNone as i32 {
        match s.larg.as_deref() {
            Some(l) => s = l,
            None => return Vec::new(),
        }
    }
    if !s.values_lists.is_empty() {
        // VALUES: column1, column2, ...
        return Vec::new();
    }
    res_targets(&s.target_list).map(output_name).collect()
}

/// The column names of a view or table built from a query: the column list first, then the
/// query's own names for the columns the list does not cover.
fn relation_columns(aliases: &[Node], query: Option<&Node>) -> Vec<String> {
    let listed: Vec<String> = ast::strings(aliases)
        .into_iter()
        .map(str::to_string)
        .collect();
    let from_query = query.map(query_names).unwrap_or_default();
    let mut names = listed.clone();
    names.extend(from_query.into_iter().skip(listed.len()).flatten());
    names
}

const DECLARED: &str = "declared twice|column \"{}\" specified more than once";
const NAMED: &str = "named twice|column \"{}\" specified more than once";
const ASSIGNED: &str = "assigned twice|multiple assignments to same column \"{}\"";
const LISTED: &str = "listed twice|column \"{}\" specified more than once";
const ADDED: &str = "added twice|column \"{}\" already exists";

fn check(stmt: &Stmt, _ctx: &Context) -> Vec<Hit> {
    let name =
        |rv: Option<&pg_query::protobuf::RangeVar>| rv.map(ast::rel_name).unwrap_or_default();
    match stmt.node {
        NodeEnum::CreateStmt(c) => {
            let table = name(c.relation.as_ref());
            let mut hits = hits(
                &format!("table {table}"),
                duplicates(column_defs(&c.table_elts)),
                DECLARED,
            );
            for n in c.table_elts.iter().chain(&c.constraints) {
                if let Some(NodeEnum::Constraint(k)) = n.node.as_ref() {
                    hits.extend(key_twice(&table, k));
                }
            }
            hits
        }
        NodeEnum::CompositeTypeStmt(c) => hits(
            &format!("type {}", name(c.typevar.as_ref())),
            duplicates(column_defs(&c.coldeflist)),
            DECLARED,
        ),
        NodeEnum::AlterTableStmt(_) => alter_table(stmt.node),
        NodeEnum::ViewStmt(v) => {
            let cols = relation_columns(&v.aliases, v.query.as_deref());
            hits(
                &format!("view {}", name(v.view.as_ref())),
                duplicates(cols.iter().map(String::as_str)),
                NAMED,
            )
        }
        NodeEnum::CreateTableAsStmt(c) => {
            let Some(into) = c.into.as_ref() else {
                return Vec::new();
            };
            let kind = if c.objtype == ObjectType::ObjectMatview as i32 {
                "materialized view"
            } else {
                "table"
            };
            let cols = relation_columns(&into.col_names, c.query.as_deref());
            hits(
                &format!("{kind} {}", name(into.rel.as_ref())),
                duplicates(cols.iter().map(String::as_str)),
                NAMED,
            )
        }
        NodeEnum::UpdateStmt(u) => hits(
            &format!("UPDATE {}", name(u.relation.as_ref())),
            assigned_twice(&u.target_list),
            ASSIGNED,
        ),
        NodeEnum::InsertStmt(i) => {
            let table = name(i.relation.as_ref());
            let mut out = hits(
                &format!("INSERT INTO {table}"),
                assigned_twice(&i.cols),
                LISTED,
            );
            if let Some(oc) = &i.on_conflict_clause {
                out.extend(hits(
                    &format!("ON CONFLICT DO UPDATE of {table}"),
                    assigned_twice(&oc.target_list),
                    ASSIGNED,
                ));
            }
            out
        }
        _ => Vec::new(),
    }
}

/// Columns added twice, and keys naming a column twice, in one `ALTER TABLE`.
fn alter_table(node: &NodeEnum) -> Vec<Hit> {
    let Some((a, rv)) = ast::alter_table(node) else {
        return Vec::new();
    };
    let table = ast::rel_name(rv);
    let cmds = ast::alter_cmds(a);
    let adds: Vec<&str> = cmds
        .iter()
        .filter(|(_, t)| *t == AlterTableType::AtAddColumn)
        .filter_map(|(cmd, _)| ast::column_def(cmd).map(|c| c.colname.as_str()))
        .collect();
    let mut out = hits(&format!("ALTER TABLE {table}"), duplicates(adds), ADDED);
    for c in cmds.iter().filter_map(|(cmd, _)| ast::constraint_def(cmd)) {
        out.extend(key_twice(&table, c));
    }
    out
}

fn hits<S: AsRef<str>>(what: &str, columns: Vec<S>, refused: &str) -> Vec<Hit> {
    columns
        .iter()
        .map(|c| hit(what, c.as_ref(), refused))
        .collect()
}

/// A column named twice in the key of a UNIQUE or PRIMARY KEY constraint.
fn key_twice(table: &str, c: &Constraint) -> Vec<Hit> {
    let kind = match ast::constr_type(c) {
        ConstrType::ConstrPrimary => "primary key",
        ConstrType::ConstrUnique => "unique",
        _ => return Vec::new(),
    };
    duplicates(ast::strings(&c.keys))
        .into_iter()
        .map(|col| {
            Hit::new(format!(
                "column \"{col}\" appears twice in the {kind} constraint{} of {table}: PostgreSQL \
                 refuses the statement",
                if c.conname.is_empty() {
                    String::new()
                } else {
                    format!(" {}", c.conname)
                }
            ))
            .help("name each column once in the constraint's column list")
        })
        .collect()
}

/// `refused`: how the column is repeated, then PostgreSQL's error after a `|`.
fn hit(what: &str, column: &str, refused: &str) -> Hit {
    let (how, error) = refused.split_once('|').unwrap_or((refused, ""));
    let error = error.replace("{}", column);
    Hit::new(format!(
        "column \"{column}\" is {how} in {what}: PostgreSQL refuses the statement ({error})"
    ))
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_a_column_declared_twice_in_create_table() {
        assert_eq!(
            render(
                "RB06",
                "CREATE TABLE users (id bigint, email text, Email text);"
            ),
            "m.sql:1:1: error RB06 duplicate-column: column \"email\" is declared twice in table \
             users: PostgreSQL refuses the statement (column \"email\" specified more than once)\n  \
             1 | CREATE TABLE users (id bigint, email text, Email text)\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: keep one declaration or assignment per column (rename one with AS where a \
             query produces the same name twice)\n"
        );
        // Quoted names keep their case: "Email" and email differ.
        assert_eq!(
            render("RB06", "CREATE TABLE users (email text, \"Email\" text);"),
            ""
        );
    }

    #[test]
    fn flags_update_set_and_insert_lists() {
        let up = render(
            "RB06",
            "UPDATE users SET name = 'a', email = 'b', name = 'c';",
        );
        assert!(up.contains("column \"name\" is assigned twice"), "{up}");
        let multi = render("RB06", "UPDATE t SET (b, c) = (1, 2), c = 3;");
        assert!(multi.contains("column \"c\""), "{multi}");
        let ins = render("RB06", "INSERT INTO t (a, b, a) VALUES (1, 2, 3);");
        assert!(
            ins.contains("column \"a\" is listed twice in INSERT INTO t"),
            "{ins}"
        );
        let upsert = render(
            "RB06",
            "INSERT INTO t (id, b) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET b = 1, b = 2;",
        );
        assert!(upsert.contains("ON CONFLICT DO UPDATE of t"), "{upsert}");
    }

    #[test]
    fn element_and_field_assignments_to_one_column_pass() {
        for sql in [
            "UPDATE t SET a[1] = 1, a[2] = 2;",
            "UPDATE t SET c.x = 1, c.y = 2;",
            "INSERT INTO t (a[1], a[2]) VALUES (1, 2);",
            "UPDATE t SET a = 1, b = 2;",
            "INSERT INTO t (a, b) VALUES (1, 2);",
        ] {
            assert_eq!(render("RB06", sql), "", "{sql}");
        }
        // But a whole-column assignment next to an element one is refused.
        assert!(!render("RB06", "UPDATE t SET a = '{}', a[1] = 1;").is_empty());
    }

    #[test]
    fn flags_views_and_tables_from_queries() {
        for (sql, col) in [
            (
                "CREATE VIEW v AS SELECT t.id, u.id FROM t JOIN u ON true;",
                "id",
            ),
            ("CREATE VIEW v AS SELECT 1, 2;", "?column?"),
            ("CREATE VIEW v (x, x) AS SELECT 1, 2;", "x"),
            ("CREATE VIEW v (x) AS SELECT b, x FROM s;", "x"),
            (
                "CREATE VIEW v AS SELECT count(*), count(b) FROM t;",
                "count",
            ),
            ("CREATE VIEW v AS SELECT b::int, b FROM t;", "b"),
            ("CREATE VIEW v AS SELECT 1::int, 2::int;", "int4"),
            (
                "CREATE MATERIALIZED VIEW m AS SELECT a AS x, b AS x FROM t;",
                "x",
            ),
            ("CREATE TABLE c (x, x) AS SELECT 1, 2;", "x"),
            (
                "CREATE TABLE c AS SELECT a, a FROM t UNION SELECT 1, 2;",
                "a",
            ),
            ("CREATE TYPE pair AS (a int, a int);", "a"),
            ("ALTER TABLE t ADD COLUMN z int, ADD COLUMN z int;", "z"),
        ] {
            let out = render("RB06", sql);
            assert!(out.contains(&format!("column \"{col}\"")), "{sql}: {out}");
        }
    }

    #[test]
    fn flags_a_column_twice_in_a_key() {
        let create = render("RB06", "CREATE TABLE t (a int, b int, UNIQUE (a, a));");
        assert!(
            create.contains("column \"a\" appears twice in the unique constraint of t"),
            "{create}"
        );
        let alter = render(
            "RB06",
            "ALTER TABLE t ADD CONSTRAINT t_pk PRIMARY KEY (a, b, a);",
        );
        assert!(
            alter.contains("primary key constraint t_pk of t"),
            "{alter}"
        );
    }

    #[test]
    fn passes_distinct_and_unknown_names() {
        for sql in [
            "CREATE VIEW v AS SELECT t.id, u.id AS u_id FROM t JOIN u ON true;",
            // Unknown without the table's columns (refused if t has a column id).
            "CREATE VIEW v AS SELECT *, id FROM t;",
            "CREATE VIEW v (x, y) AS SELECT a, a FROM t;",
            "CREATE VIEW v AS SELECT 1::int, 2::bigint;",
            "CREATE VIEW v AS VALUES (1, 2);",
            "CREATE TABLE c AS SELECT 1 AS a UNION SELECT 1 AS a;",
            "CREATE INDEX i ON t (a, a);",
            "ALTER TABLE t ADD COLUMN z int, ADD COLUMN y int;",
            "CREATE TABLE t (a int, b int, UNIQUE (a, b), PRIMARY KEY (b, a));",
        ] {
            assert_eq!(render("RB06", sql), "", "{sql}");
        }
    }
}
