//! Helpers over libpg_query's parse tree, shared by the rules.

use pg_query::NodeEnum;
use pg_query::NodeRef;
use pg_query::protobuf::{
    AlterTableCmd, AlterTableStmt, AlterTableType, ColumnDef, ConstrType, Constraint, Node,
    ObjectType, RangeVar, TypeName,
};

/// The text of a `String` node.
pub fn string(n: &Node) -> Option<&str> {
    match n.node.as_ref()? {
        NodeEnum::String(s) => Some(s.sval.as_str()),
        _ => None,
    }
}

/// The strings of a list of `String` nodes (qualified names, type names).
pub fn strings(nodes: &[Node]) -> Vec<&str> {
    nodes.iter().filter_map(string).collect()
}

/// `schema.name` or `name` as written (identifiers already case-folded by the parser).
pub fn rel_name(rv: &RangeVar) -> String {
    if rv.schemaname.is_empty() {
        rv.relname.clone()
    } else {
        format!("{}.{}", rv.schemaname, rv.relname)
    }
}

/// The key tables are tracked by: `schema.name`, `public` when unqualified.
pub fn rel_key(rv: &RangeVar) -> String {
    key(&rv.schemaname, &rv.relname)
}

pub fn key(schema: &str, name: &str) -> String {
    let schema = if schema.is_empty() { "public" } else { schema };
    format!("{schema}.{name}")
}

/// A type name without `pg_catalog.`, with PostgreSQL's internal names mapped to the SQL ones
/// (`int4` -> `integer`) and its modifiers and array bounds: `character varying(20)`.
pub fn type_name(t: &TypeName) -> String {
    let names = strings(&t.names);
    let base = match names.as_slice() {
        ["pg_catalog", n] => sql_type(n).to_string(),
        [n] => sql_type(n).to_string(),
        other => other.join("."),
    };
    let mods: Vec<String> = t
        .typmods
        .iter()
        .filter_map(|m| match m.node.as_ref()? {
            NodeEnum::AConst(c) => match c.val.as_ref()? {
                pg_query::protobuf::a_const::Val::Ival(i) => Some(i.ival.to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let mut s = base;
    if !mods.is_empty() {
        s.push_str(&format!("({})", mods.join(",")));
    }
    for _ in &t.array_bounds {
        s.push_str("[]");
    }
    s
}

/// The last part of a type's name, lower-case and internal-name-mapped (`int8` -> `bigint`).
pub fn base_type(t: &TypeName) -> String {
    strings(&t.names)
        .last()
        .map(|n| sql_type(n).to_string())
        .unwrap_or_default()
}

fn sql_type(n: &str) -> &str {
    match n {
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "float4" => "real",
        "float8" => "double precision",
        "bool" => "boolean",
        "varchar" => "character varying",
        "bpchar" => "character",
        "timestamptz" => "timestamp with time zone",
        "timestamp" => "timestamp without time zone",
        "timetz" => "time with time zone",
        "time" => "time without time zone",
        "varbit" => "bit varying",
        other => other,
    }
}

/// `ALTER TABLE` (not ALTER INDEX/VIEW/...) and its relation.
pub fn alter_table(node: &NodeEnum) -> Option<(&AlterTableStmt, &RangeVar)> {
    match node {
        NodeEnum::AlterTableStmt(a) if a.objtype == ObjectType::ObjectTable as i32 => {
            Some((a, a.relation.as_ref()?))
        }
        _ => None,
    }
}

/// The subcommands of an `ALTER TABLE`, with their types.
pub fn alter_cmds(a: &AlterTableStmt) -> Vec<(&AlterTableCmd, AlterTableType)> {
    a.cmds
        .iter()
        .filter_map(|n| match n.node.as_ref()? {
            NodeEnum::AlterTableCmd(c) => Some((
                c.as_ref(),
                AlterTableType::try_from(c.subtype).unwrap_or(AlterTableType::Undefined),
            )),
            _ => None,
        })
        .collect()
}

/// The column definition an `ADD COLUMN` carries.
pub fn column_def(cmd: &AlterTableCmd) -> Option<&ColumnDef> {
    match cmd.def.as_ref()?.node.as_ref()? {
        NodeEnum::ColumnDef(c) => Some(c),
        _ => None,
    }
}

/// The constraint an `ADD CONSTRAINT` carries.
pub fn constraint_def(cmd: &AlterTableCmd) -> Option<&Constraint> {
    match cmd.def.as_ref()?.node.as_ref()? {
        NodeEnum::Constraint(c) => Some(c),
        _ => None,
    }
}

/// The constraints of a column definition.
pub fn column_constraints(c: &ColumnDef) -> Vec<&Constraint> {
    c.constraints
        .iter()
        .filter_map(|n| match n.node.as_ref()? {
            NodeEnum::Constraint(c) => Some(c.as_ref()),
            _ => None,
        })
        .collect()
}

pub fn constr_type(c: &Constraint) -> ConstrType {
    ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined)
}

/// Names of the functions called anywhere inside `node` (lower-case, without schema).
///
/// libpg_query's node walk does not descend into `ARRAY[...]` elements, so those are walked
/// here explicitly.
pub fn called_functions(node: &NodeEnum) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo: Vec<NodeEnum> = vec![node.clone()];
    while let Some(n) = todo.pop() {
        let mut visit = |r: NodeRef<'_>| match r {
            NodeRef::FuncCall(f) => {
                if let Some(name) = strings(&f.funcname).last() {
                    out.push(name.to_string());
                }
            }
            NodeRef::AArrayExpr(a) => {
                todo.extend(a.elements.iter().filter_map(|e| e.node.clone()));
            }
            _ => {}
        };
        visit(n.to_ref());
        for (r, _, _, _) in n.nodes() {
            visit(r);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether an expression contains `nextval(...)`, a volatile built-in, or a call to a
/// function pgship does not know (treated as volatile, as squawk and strong_migrations do).
/// `known_stable` lets the catalog vouch for user functions.
pub fn volatile_call(node: &NodeEnum, known_stable: &dyn Fn(&str) -> bool) -> Option<String> {
    called_functions(node)
        .into_iter()
        .find(|f| !NON_VOLATILE.contains(&f.as_str()) && !known_stable(f))
}

/// Built-in functions whose value is fixed for a statement (immutable or stable), which a
/// `DEFAULT` may use on PostgreSQL 11+ without rewriting the table.
pub const NON_VOLATILE: &[&str] = &[
    "now",
    "current_timestamp",
    "current_date",
    "current_time",
    "localtime",
    "localtimestamp",
    "transaction_timestamp",
    "statement_timestamp",
    "current_user",
    "session_user",
    "current_schema",
    "lower",
    "upper",
    "btrim",
    "trim",
    "concat",
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "abs",
    "round",
    "jsonb_build_object",
    "json_build_object",
    "jsonb_build_array",
    "json_build_array",
    "to_jsonb",
    "array_fill",
    "make_date",
    "make_interval",
    "to_timestamp",
    "timezone",
    "length",
    "md5",
    "int4",
    "int8",
    "text",
    "date",
];

/// Whether `rv` is a temporary table (`CREATE TEMP TABLE`).
pub fn is_temp(rv: &RangeVar) -> bool {
    rv.relpersistence == "t"
}

/// The first line of `sql`, for messages.
pub fn first_line(sql: &str) -> &str {
    sql.lines().next().unwrap_or("").trim()
}

/// The constraint's name, or the one PostgreSQL gives an unnamed one: a CHECK is
/// `<table>_<column>_check` when its expression uses one column (`<table>_check` otherwise), a
/// foreign key `<table>_<columns>_fkey`.
pub fn constraint_name(c: &Constraint, relname: &str) -> String {
    if !c.conname.is_empty() {
        return c.conname.clone();
    }
    if constr_type(c) == ConstrType::ConstrForeign {
        let cols = strings(&c.fk_attrs).join("_");
        return format!("{relname}_{cols}_fkey");
    }
    let cols = c
        .raw_expr
        .as_ref()
        .and_then(|e| e.node.as_ref())
        .map(column_refs)
        .unwrap_or_default();
    match cols.as_slice() {
        [one] => format!("{relname}_{one}_check"),
        _ => format!("{relname}_check"),
    }
}

/// The distinct column names an expression refers to, in order of appearance.
pub fn column_refs(node: &NodeEnum) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (n, _, _, _) in node.nodes() {
        if let NodeRef::ColumnRef(c) = n
            && let Some(name) = c.fields.last().and_then(string)
            && !out.iter().any(|o| o == name)
        {
            out.push(name.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_expr(sql: &str) -> NodeEnum {
        let p = pg_query::parse(sql, 0).unwrap();
        let node = p.protobuf.stmts[0]
            .stmt
            .as_ref()
            .unwrap()
            .node
            .clone()
            .unwrap();
        let (a, _) = alter_table(&node).unwrap();
        let (cmd, _) = alter_cmds(a)[0];
        let col = column_def(cmd).unwrap();
        let c = column_constraints(col)
            .into_iter()
            .find(|c| constr_type(c) == ConstrType::ConstrDefault)
            .unwrap();
        c.raw_expr.as_ref().unwrap().node.clone().unwrap()
    }

    #[test]
    fn volatile_calls_are_found_inside_arrays_casts_and_operators() {
        let none = |_: &str| false;
        for (sql, f) in [
            ("ALTER TABLE t ADD COLUMN a int DEFAULT random()", "random"),
            (
                "ALTER TABLE t ADD COLUMN a float8[] DEFAULT ARRAY[random()]",
                "random",
            ),
            (
                "ALTER TABLE t ADD COLUMN a text DEFAULT gen_random_uuid()::text",
                "gen_random_uuid",
            ),
            (
                "ALTER TABLE t ADD COLUMN a int DEFAULT 1 + (random() * 10)::int",
                "random",
            ),
            (
                "ALTER TABLE t ADD COLUMN a text DEFAULT upper(my_fn(1))",
                "my_fn",
            ),
        ] {
            assert_eq!(
                volatile_call(&default_expr(sql), &none).as_deref(),
                Some(f),
                "{sql}"
            );
        }
        for sql in [
            "ALTER TABLE t ADD COLUMN a timestamptz DEFAULT now()",
            "ALTER TABLE t ADD COLUMN a timestamptz DEFAULT CURRENT_TIMESTAMP",
            "ALTER TABLE t ADD COLUMN a int[] DEFAULT ARRAY[1, 2]",
            "ALTER TABLE t ADD COLUMN a text DEFAULT 'x'",
        ] {
            assert_eq!(volatile_call(&default_expr(sql), &none), None, "{sql}");
        }
    }
}
