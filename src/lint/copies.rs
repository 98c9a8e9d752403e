//! Where the run copies values before dropping them: `INSERT INTO t2 (...) SELECT ... FROM t1`,
//! `CREATE TABLE t2 AS SELECT ... FROM t1`, and `UPDATE t SET b = a`. A column (or a table)
//! whose values were copied in full earlier in the run loses no data when it is dropped: DL01
//! and DL02 then only report that running code breaks.
//!
//! Only copies that keep every value count: the query reads one table (LEFT JOINs after it are
//! allowed), with no aggregation, DISTINCT, LIMIT, set operation or `ON CONFLICT`, and each
//! copied value is the column itself (a cast allowed). A `WHERE` may only leave out the rows
//! where the copied column is NULL, and a whole-table copy (`SELECT *`) takes no `WHERE`.

use std::collections::HashMap;

use pg_query::NodeEnum;
use pg_query::protobuf::{BoolExprType, JoinType, Node, RangeVar, ResTarget, SelectStmt};

use super::ast;

/// A copy made earlier in the run: in which file (its number in the run), at which line, and
/// where the values went (`user_profiles.bio`).
#[derive(Debug, Clone)]
struct Copy {
    file: u64,
    line: u32,
    to: String,
}

/// The copies of one lint run (carried across files).
#[derive(Debug, Default)]
pub struct Copies {
    /// (table key, column) -> its first full copy.
    columns: HashMap<(String, String), Copy>,
    /// Table key -> its first full copy with `SELECT *`.
    tables: HashMap<String, Copy>,
}

impl Copies {
    /// Where the values of `table`.`column` were copied in full, for a message read in file
    /// `file`: `user_profiles.bio (line 3)`.
    pub fn column(&self, table: &str, column: &str, file: u64) -> Option<String> {
        if let Some(c) = self.columns.get(&(table.to_string(), column.to_string())) {
            return Some(describe(c, file, None));
        }
        // A whole-table copy keeps the column under its name.
        let c = self.tables.get(table)?;
        Some(describe(c, file, Some(column)))
    }

    /// Where every row of `table` was copied in full: by a `SELECT *`, or (when `columns`, the
    /// catalog's, are known) each of its columns.
    pub fn table(&self, table: &str, columns: Option<Vec<&str>>, file: u64) -> Option<String> {
        if let Some(c) = self.tables.get(table) {
            return Some(describe(c, file, None));
        }
        let mut columns = columns.filter(|c| !c.is_empty())?;
        columns.sort_unstable();
        let mut to: Vec<String> = Vec::new();
        for c in columns {
            let copy = self.columns.get(&(table.to_string(), c.to_string()))?;
            let d = describe(copy, file, None);
            if !to.contains(&d) {
                to.push(d);
            }
        }
        Some(to.join(", "))
    }

    /// Record the copies a statement makes.
    pub fn observe(&mut self, node: &NodeEnum, file: u64, line: u32) {
        let at = |to: String| Copy { file, line, to };
        match node {
            NodeEnum::InsertStmt(i)
                if i.on_conflict_clause.is_none() && i.with_clause.is_none() =>
            {
                let (Some(dst), Some(select)) = (&i.relation, select_of(i.select_stmt.as_deref()))
                else {
                    return;
                };
                let names: Vec<Option<String>> = i
                    .cols
                    .iter()
                    .map(|c| match c.node.as_ref() {
                        Some(NodeEnum::ResTarget(r)) => Some(r.name.clone()),
                        _ => None,
                    })
                    .collect();
                self.copy_select(select, dst, &names, at);
            }
            NodeEnum::CreateTableAsStmt(c)
                if c.objtype == pg_query::protobuf::ObjectType::ObjectTable as i32 =>
            {
                let Some(into) = c.into.as_ref() else { return };
                let (Some(dst), Some(select)) = (&into.rel, select_of(c.query.as_deref())) else {
                    return;
                };
                let names: Vec<Option<String>> = into
                    .col_names
                    .iter()
                    .map(|n| ast::string(n).map(str::to_string))
                    .collect();
                self.copy_select(select, dst, &names, at);
            }
            NodeEnum::UpdateStmt(u) if u.from_clause.is_empty() && u.with_clause.is_none() => {
                self.copy_update(u, at);
            }
            _ => {}
        }
    }

    /// The copies of `UPDATE t SET b = a` (within the table).
    fn copy_update(&mut self, u: &pg_query::protobuf::UpdateStmt, at: impl Fn(String) -> Copy) {
        let Some(rv) = &u.relation else { return };
        let Some(filtered) = not_null_filter(u.where_clause.as_deref()) else {
            return;
        };
        let table = ast::rel_key(rv);
        for t in &u.target_list {
            let Some(NodeEnum::ResTarget(r)) = t.node.as_ref() else {
                continue;
            };
            let Some(src) = copied_column(r, &[rv], false) else {
                continue;
            };
            if src != r.name && filtered.iter().all(|f| *f == src) {
                let to = format!("{}.{}", ast::rel_name(rv), r.name);
                self.columns
                    .entry((table.clone(), src))
                    .or_insert_with(|| at(to));
            }
        }
    }

    /// The copies of `INSERT INTO dst (names) <select>` / `CREATE TABLE dst (names) AS <select>`.
    fn copy_select(
        &mut self,
        s: &SelectStmt,
        dst: &RangeVar,
        names: &[Option<String>],
        at: impl Fn(String) -> Copy,
    ) {
        let Some((source, joined)) = single_source(s) else {
            return;
        };
        let Some(filtered) = not_null_filter(s.where_clause.as_deref()) else {
            return;
        };
        let table = ast::rel_key(source);
        let dst_name = ast::rel_name(dst);
        for (i, t) in s.target_list.iter().enumerate() {
            let Some(NodeEnum::ResTarget(r)) = t.node.as_ref() else {
                continue;
            };
            if is_star(r, source, joined) {
                if filtered.is_empty() {
                    self.tables
                        .entry(table.clone())
                        .or_insert_with(|| at(dst_name.clone()));
                }
                continue;
            }
            let Some(src) = copied_column(r, &[source], joined) else {
                continue;
            };
            if !filtered.iter().all(|f| *f == src) {
                continue;
            }
            // The destination column: the insert's list, else the select's name for it.
            let to = match names.get(i).cloned().flatten() {
                Some(n) => format!("{dst_name}.{n}"),
                None if names.is_empty() && !r.name.is_empty() => {
                    format!("{dst_name}.{}", r.name)
                }
                None if names.is_empty() => format!("{dst_name}.{src}"),
                None => continue,
            };
            self.columns
                .entry((table.clone(), src))
                .or_insert_with(|| at(to));
        }
    }
}

fn describe(c: &Copy, file: u64, column: Option<&str>) -> String {
    let to = match column {
        Some(col) => format!("{}.{col}", c.to),
        None => c.to.clone(),
    };
    if c.file == file {
        format!("{to} (line {})", c.line)
    } else {
        format!("{to} (in an earlier migration of this run)")
    }
}

/// The plain `SELECT` of an INSERT or CREATE TABLE AS.
fn select_of(node: Option<&Node>) -> Option<&SelectStmt> {
    match node?.node.as_ref()? {
        NodeEnum::SelectStmt(s)
            if s.op == pg_query::protobuf::SetOperation::SetopNone as i32
                && s.values_lists.is_empty()
                && s.distinct_clause.is_empty()
                && s.group_clause.is_empty()
                && s.having_clause.is_none()
                && s.limit_count.is_none()
                && s.limit_offset.is_none()
                && s.with_clause.is_none()
                && s.into_clause.is_none() =>
        {
            Some(s)
        }
        _ => None,
    }
}

/// The one table a SELECT reads every row of: `FROM t`, or `FROM t LEFT JOIN ...` (then
/// `true`: column references must name it).
fn single_source(s: &SelectStmt) -> Option<(&RangeVar, bool)> {
    let [from] = s.from_clause.as_slice() else {
        return None;
    };
    let mut node = from.node.as_ref()?;
    let mut joined = false;
    loop {
        match node {
            NodeEnum::RangeVar(rv) => return Some((rv, joined)),
            NodeEnum::JoinExpr(j) if j.jointype == JoinType::JoinLeft as i32 => {
                joined = true;
                node = j.larg.as_ref()?.node.as_ref()?;
            }
            _ => return None,
        }
    }
}

/// The columns a WHERE requires to be NOT NULL when it only does that (`a IS NOT NULL AND
/// ...`); empty without a WHERE; `None` for any other condition.
fn not_null_filter(w: Option<&Node>) -> Option<Vec<String>> {
    let Some(w) = w else {
        return Some(Vec::new());
    };
    match w.node.as_ref()? {
        NodeEnum::BoolExpr(b) if b.boolop == BoolExprType::AndExpr as i32 => {
            let mut out = Vec::new();
            for a in &b.args {
                out.extend(not_null_filter(Some(a))?);
            }
            Some(out)
        }
        NodeEnum::NullTest(_) => Some(vec![super::context::is_not_null_test(w)?]),
        _ => None,
    }
}

/// `*` or `source.*`.
fn is_star(r: &ResTarget, source: &RangeVar, joined: bool) -> bool {
    let Some(NodeEnum::ColumnRef(c)) = r.val.as_ref().and_then(|v| v.node.as_ref()) else {
        return false;
    };
    let star = matches!(
        c.fields.last().and_then(|f| f.node.as_ref()),
        Some(NodeEnum::AStar(_))
    );
    let qualifier: Vec<&str> = ast::strings(&c.fields);
    star && if qualifier.is_empty() {
        !joined
    } else {
        names(source, &qualifier)
    }
}

/// The source column a target copies as it is (or cast): `col`, `t.col`, `col::type`.
fn copied_column(r: &ResTarget, sources: &[&RangeVar], joined: bool) -> Option<String> {
    let mut val = r.val.as_ref()?.node.as_ref()?;
    if let NodeEnum::TypeCast(t) = val {
        val = t.arg.as_ref()?.node.as_ref()?;
    }
    let NodeEnum::ColumnRef(c) = val else {
        return None;
    };
    let parts = ast::strings(&c.fields);
    if parts.len() != c.fields.len() {
        return None;
    }
    let (column, qualifier) = parts.split_last()?;
    if qualifier.is_empty() && joined {
        return None;
    }
    let own = qualifier.is_empty() || sources.iter().any(|s| names(s, qualifier));
    own.then(|| column.to_string())
}

/// Whether `qualifier` (`t`, `s.t`, or the alias) names `source`.
fn names(source: &RangeVar, qualifier: &[&str]) -> bool {
    match qualifier {
        [q] => match &source.alias {
            Some(a) => a.aliasname == *q,
            None => source.relname == *q,
        },
        [schema, table] => {
            source.alias.is_none() && source.relname == *table && {
                let s = if source.schemaname.is_empty() {
                    "public"
                } else {
                    source.schemaname.as_str()
                };
                s == *schema
            }
        }
        _ => false,
    }
}
