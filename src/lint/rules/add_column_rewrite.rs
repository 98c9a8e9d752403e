//! LK04 add-column-rewrite: `ADD COLUMN` that makes PostgreSQL rewrite the table (and rebuild
//! all its indexes) under ACCESS EXCLUSIVE, because every existing row needs its own value:
//!
//! - a volatile `DEFAULT` (`random()`, `gen_random_uuid()`, `clock_timestamp()`,
//!   `nextval(...)`); a function pgship does not know counts as volatile (as squawk and
//!   strong_migrations do), unless `--database` shows it immutable or stable;
//! - a `serial`/`bigserial`/`smallserial` type (its default is `nextval`);
//! - an identity column (its default is a sequence too, so the fast-default path is not
//!   taken; pg-schema-diff says otherwise, PostgreSQL 15 rewrites);
//! - a stored generated column;
//! - any non-NULL `DEFAULT` before PostgreSQL 11 (the fast default arrived in 11: `>= 11`,
//!   not squawk's `> 11`).
//!
//! A non-volatile default (literal, `now()`, casts, constant expressions) on 11+ is instant,
//! and so is a virtual generated column on PostgreSQL 18 (the default kind there; on older
//! versions a generated column without STORED does not parse, which is reported as failing).
//! A column whose type is a domain with constraints is also rewritten, but neither the
//! statement nor the catalog pgship reads says whether a type is such a domain, so that case
//! is not reported.
//!
//! Severity: error, a lock hazard with a safe alternative (add the column plain, set the
//! default for new rows, backfill in batches). Tables created earlier in the same file or
//! transaction are exempt; with `--database`, a small table is a warning.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ColumnDef, ConstrType, RangeVar};

use super::set_not_null_scan::not_null_recipe;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK04",
    name: "add-column-rewrite",
    severity: Severity::Error,
    default_on: true,
    summary: "ADD COLUMN with a volatile default, serial, identity or stored generated column \
              rewrites the whole table under ACCESS EXCLUSIVE",
    help: "add the column without the default, SET DEFAULT for new rows, backfill existing rows \
           in batches, then add NOT NULL through LK06's recipe",
    check,
};

/// Why existing rows need a value computed one by one.
enum Why {
    Volatile(String),
    Serial(String),
    Identity,
    Stored,
    DefaultBefore11,
    /// A virtual generated column on a version that has none: the statement fails.
    VirtualUnsupported,
}

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let Some((a, rv)) = ast::alter_table(stmt.node) else {
        return Vec::new();
    };
    let key = ast::rel_key(rv);
    if ctx.is_new_table(&key) {
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    let mut hits = Vec::new();
    for (cmd, t) in ast::alter_cmds(a) {
        if t != AlterTableType::AtAddColumn {
            continue;
        }
        let Some(col) = ast::column_def(cmd) else {
            continue;
        };
        let Some(why) = why(col, ctx) else {
            continue;
        };
        hits.push(hit(&why, col, rv, &table, ctx));
    }
    if let Some(t) = ctx.catalog.as_ref().and_then(|c| c.table(&key))
        && t.is_small()
    {
        for h in hits.iter_mut().filter(|h| h.severity.is_none()) {
            h.severity = Some(Severity::Warning);
            h.message.push_str(&format!(
                " ({table} is small: {} rows, {} bytes)",
                t.rows.max(0.0) as i64,
                t.bytes
            ));
        }
    }
    hits
}

fn why(col: &ColumnDef, ctx: &Context) -> Option<Why> {
    let v = ctx.pg_version;
    let constraints = ast::column_constraints(col);
    if constraints
        .iter()
        .any(|c| ast::constr_type(c) == ConstrType::ConstrIdentity)
    {
        return Some(Why::Identity);
    }
    if let Some(t) = &col.type_name {
        let base = ast::base_type(t);
        if matches!(
            base.as_str(),
            "serial" | "bigserial" | "smallserial" | "serial2" | "serial4" | "serial8"
        ) {
            return Some(Why::Serial(base));
        }
    }
    if let Some(g) = constraints
        .iter()
        .find(|c| ast::constr_type(c) == ConstrType::ConstrGenerated)
    {
        return match g.generated_kind.as_str() {
            "v" if v < 18 => Some(Why::VirtualUnsupported),
            "v" => None,
            _ => Some(Why::Stored),
        };
    }
    let default = constraints
        .iter()
        .find(|c| ast::constr_type(c) == ConstrType::ConstrDefault)
        .and_then(|c| c.raw_expr.as_deref())
        .or(col.raw_default.as_deref())?;
    let expr = default.node.as_ref()?;
    if is_null(expr) {
        return None;
    }
    if v < 11 {
        return Some(Why::DefaultBefore11);
    }
    let stable = |f: &str| {
        ctx.catalog
            .as_ref()
            .is_some_and(|c| c.function_is_stable(f))
    };
    ast::volatile_call(expr, &stable).map(Why::Volatile)
}

/// `NULL` or `NULL::type`: no value to store, no rewrite on any version.
fn is_null(expr: &NodeEnum) -> bool {
    match expr {
        NodeEnum::AConst(c) => c.isnull,
        NodeEnum::TypeCast(t) => t
            .arg
            .as_ref()
            .and_then(|a| a.node.as_ref())
            .is_some_and(is_null),
        _ => false,
    }
}

fn hit(why: &Why, col: &ColumnDef, rv: &RangeVar, table: &str, ctx: &Context) -> Hit {
    let c = &col.colname;
    let v = ctx.pg_version;
    let rewrite = format!("rewrites {table} and all its indexes under ACCESS EXCLUSIVE");
    let message = match why {
        Why::Volatile(f) => {
            let unknown = if ctx.catalog.is_none() && !is_builtin_volatile(f) {
                " (pgship counts functions it does not know as volatile; --database reads their \
                 volatility)"
            } else {
                ""
            };
            format!(
                "adding column {c} to {table} with a volatile DEFAULT ({f}(...)) {rewrite}: every \
                 row gets its own value{unknown}"
            )
        }
        Why::Serial(ty) => format!(
            "adding {ty} column {c} to {table} fills every existing row from a new sequence \
             (DEFAULT nextval, volatile), which {rewrite}"
        ),
        Why::Identity => format!(
            "adding identity column {c} to {table} fills every existing row from its sequence, \
             which {rewrite}"
        ),
        Why::Stored => format!(
            "adding stored generated column {c} to {table} computes it for every row, which \
             {rewrite}"
        ),
        Why::DefaultBefore11 => format!(
            "adding column {c} to {table} with a DEFAULT {rewrite} on PostgreSQL {v} (from 11 \
             on, a non-volatile default is instant)"
        ),
        Why::VirtualUnsupported => {
            return Hit::new(format!(
                "column {c} is a virtual generated column (GENERATED ALWAYS AS (...) without \
                 STORED), which needs PostgreSQL 18; the target is {v}, where this statement \
                 fails"
            ))
            .severity(Severity::Error)
            .help(
                "on this version write STORED (which rewrites the table), or fill a plain column \
                 with a trigger and a batched backfill",
            );
        }
    };
    Hit::new(message).help(help(why, col, rv, v))
}

/// Built-in volatile functions: no need to explain the unknown-function policy for them.
fn is_builtin_volatile(f: &str) -> bool {
    matches!(
        f,
        "random"
            | "gen_random_uuid"
            | "uuid_generate_v4"
            | "uuidv4"
            | "uuidv7"
            | "clock_timestamp"
            | "timeofday"
            | "nextval"
            | "setseed"
            | "txid_current"
    )
}

fn help(why: &Why, col: &ColumnDef, rv: &RangeVar, v: u32) -> String {
    let table = ast::rel_name(rv);
    let c = &col.colname;
    let ty = plain_type(col);
    let add = format!("ALTER TABLE {table} ADD COLUMN {c} {ty}");
    let not_null = col.is_not_null
        || ast::column_constraints(col)
            .iter()
            .any(|k| ast::constr_type(k) == ConstrType::ConstrNotnull);
    let not_null = if not_null {
        format!("; then make it NOT NULL: {}", not_null_recipe(rv, c, v))
    } else {
        String::new()
    };
    match why {
        Why::Volatile(_) | Why::DefaultBefore11 => {
            let set = default_sql(col, rv)
                .unwrap_or_else(|| format!("ALTER TABLE {table} ALTER COLUMN {c} SET DEFAULT ..."));
            format!(
                "{add}; then {set} (only new rows get it); backfill existing rows in batches \
                 (UPDATE ... WHERE {c} IS NULL AND <key range>){not_null}"
            )
        }
        Why::Serial(_) => {
            // A serial column is NOT NULL too.
            let seq = format!("{}_{c}_seq", rv.relname);
            format!(
                "{add}; CREATE SEQUENCE {seq} OWNED BY {table}.{c}; ALTER TABLE {table} ALTER \
                 COLUMN {c} SET DEFAULT nextval('{seq}'); backfill existing rows in batches \
                 (UPDATE ... SET {c} = nextval('{seq}') WHERE {c} IS NULL AND <key range>); then \
                 make it NOT NULL: {}",
                not_null_recipe(rv, c, v)
            )
        }
        Why::Identity => format!(
            "{add}; backfill it in batches from a sequence; make it NOT NULL ({}); then ALTER \
             TABLE {table} ALTER COLUMN {c} ADD GENERATED BY DEFAULT AS IDENTITY (START WITH \
             <max + 1>), which does not rewrite",
            not_null_recipe(rv, c, v)
        ),
        Why::Stored => {
            let virt = if v >= 18 {
                " On PostgreSQL 18, a VIRTUAL generated column (the default kind) is instant."
            } else {
                ""
            };
            format!(
                "{add}; keep it filled for new and updated rows with a BEFORE INSERT OR UPDATE \
                 trigger; backfill existing rows in batches{not_null}.{virt}"
            )
        }
        Why::VirtualUnsupported => String::new(),
    }
}

/// The column's type without serial: `bigserial` -> `bigint`, as written otherwise.
fn plain_type(col: &ColumnDef) -> String {
    let Some(t) = &col.type_name else {
        return String::new();
    };
    match ast::base_type(t).as_str() {
        "serial" | "serial4" => "integer".into(),
        "bigserial" | "serial8" => "bigint".into(),
        "smallserial" | "serial2" => "smallint".into(),
        _ => ast::type_name(t),
    }
}

/// `ALTER TABLE t ALTER COLUMN c SET DEFAULT <expr>`, deparsed.
fn default_sql(col: &ColumnDef, rv: &RangeVar) -> Option<String> {
    let expr = ast::column_constraints(col)
        .into_iter()
        .find(|c| ast::constr_type(c) == ConstrType::ConstrDefault)
        .and_then(|c| c.raw_expr.clone())?;
    let cmd = pg_query::protobuf::AlterTableCmd {
        subtype: AlterTableType::AtColumnDefault as i32,
        name: col.colname.clone(),
        def: Some(expr),
        behavior: pg_query::protobuf::DropBehavior::DropRestrict as i32,
        ..Default::default()
    };
    super::add_check_validating::alter_sql(rv, vec![cmd])
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Table};
    use crate::lint::testing::{Opts, render, render_with};

    fn v(pg_version: u32) -> Opts {
        Opts {
            pg_version,
            ..Default::default()
        }
    }

    #[test]
    fn flags_a_volatile_default() {
        assert_eq!(
            render(
                "LK04",
                "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();"
            ),
            "m.sql:1:1: error LK04 add-column-rewrite: adding column token to users with a \
             volatile DEFAULT (gen_random_uuid(...)) rewrites users and all its indexes under \
             ACCESS EXCLUSIVE: every row gets its own value\n  \
             1 | ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid()\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: ALTER TABLE users ADD COLUMN token uuid; then ALTER TABLE users ALTER COLUMN \
             token SET DEFAULT gen_random_uuid() (only new rows get it); backfill existing rows \
             in batches (UPDATE ... WHERE token IS NULL AND <key range>)\n"
        );
    }

    #[test]
    fn non_volatile_defaults_are_instant_from_11() {
        for sql in [
            "ALTER TABLE users ADD COLUMN n int DEFAULT 0;",
            "ALTER TABLE users ADD COLUMN n int NOT NULL DEFAULT 0;",
            "ALTER TABLE users ADD COLUMN at timestamptz DEFAULT now();",
            "ALTER TABLE users ADD COLUMN at timestamptz DEFAULT CURRENT_TIMESTAMP;",
            "ALTER TABLE users ADD COLUMN tags text[] DEFAULT '{}'::text[];",
            "ALTER TABLE users ADD COLUMN d date DEFAULT (now() + interval '1 day')::date;",
            "ALTER TABLE users ADD COLUMN n text DEFAULT lower('X');",
            "ALTER TABLE users ADD COLUMN n int;",
            "ALTER TABLE users ADD COLUMN n int DEFAULT NULL;",
        ] {
            assert_eq!(render_with("LK04", sql, v(11)), "", "{sql}");
            assert_eq!(render("LK04", sql), "", "{sql}");
        }
    }

    #[test]
    fn any_default_rewrites_before_11() {
        let out = render_with(
            "LK04",
            "ALTER TABLE users ADD COLUMN n int DEFAULT 0;",
            v(10),
        );
        assert!(out.contains("error LK04"), "{out}");
        assert!(
            out.contains("on PostgreSQL 10 (from 11 on, a non-volatile default is instant)"),
            "{out}"
        );
        assert!(
            out.contains("SET DEFAULT 0 (only new rows get it)"),
            "{out}"
        );
        // Exactly 11 is fast already (squawk's `> 11` is off by one).
        assert_eq!(
            render_with(
                "LK04",
                "ALTER TABLE users ADD COLUMN n int DEFAULT 0;",
                v(11)
            ),
            ""
        );
        // A NULL default stores nothing, on any version.
        assert_eq!(
            render_with(
                "LK04",
                "ALTER TABLE users ADD COLUMN n int DEFAULT NULL;",
                v(10)
            ),
            ""
        );
    }

    #[test]
    fn volatile_builtins_and_unknown_functions() {
        for (sql, f) in [
            (
                "ALTER TABLE t ADD COLUMN r float DEFAULT random();",
                "random",
            ),
            (
                "ALTER TABLE t ADD COLUMN at timestamptz DEFAULT clock_timestamp();",
                "clock_timestamp",
            ),
            (
                "ALTER TABLE t ADD COLUMN n bigint DEFAULT nextval('s');",
                "nextval",
            ),
            (
                "ALTER TABLE t ADD COLUMN n int DEFAULT (random() * 10)::int;",
                "random",
            ),
        ] {
            let out = render("LK04", sql);
            assert!(
                out.contains(&format!("volatile DEFAULT ({f}(...))")),
                "{sql}: {out}"
            );
            assert!(!out.contains("does not know"), "{sql}: {out}");
        }
        let unknown = render(
            "LK04",
            "ALTER TABLE t ADD COLUMN code text DEFAULT make_code();",
        );
        assert!(
            unknown.contains("volatile DEFAULT (make_code(...))"),
            "{unknown}"
        );
        assert!(
            unknown.contains("counts functions it does not know as volatile"),
            "{unknown}"
        );
    }

    #[test]
    fn the_catalog_vouches_for_stable_user_functions() {
        let mut cat = Catalog::default();
        cat.functions.insert("make_code".into(), 's');
        cat.functions.insert("next_code".into(), 'v');
        let opts = || Opts {
            catalog: Some(cat.clone()),
            ..Default::default()
        };
        assert_eq!(
            render_with(
                "LK04",
                "ALTER TABLE t ADD COLUMN c text DEFAULT make_code();",
                opts()
            ),
            ""
        );
        let out = render_with(
            "LK04",
            "ALTER TABLE t ADD COLUMN c text DEFAULT next_code();",
            opts(),
        );
        assert!(out.contains("volatile DEFAULT (next_code(...))"), "{out}");
        assert!(!out.contains("does not know"), "{out}");
    }

    #[test]
    fn serial_identity_and_stored_generated_columns_rewrite() {
        let serial = render("LK04", "ALTER TABLE items ADD COLUMN id bigserial;");
        assert!(
            serial.contains("adding bigserial column id to items fills every existing row"),
            "{serial}"
        );
        assert!(serial.contains("ADD COLUMN id bigint"), "{serial}");
        assert!(
            serial.contains(
                "help: ALTER TABLE items ADD COLUMN id bigint; CREATE SEQUENCE items_id_seq OWNED \
                 BY items.id; ALTER TABLE items ALTER COLUMN id SET DEFAULT \
                 nextval('items_id_seq');"
            ),
            "{serial}"
        );
        assert!(serial.contains("then make it NOT NULL"), "{serial}");
        let pk = render(
            "LK04",
            "ALTER TABLE items ADD COLUMN id serial PRIMARY KEY;",
        );
        assert!(pk.contains("adding serial column id"), "{pk}");
        let identity = render(
            "LK04",
            "ALTER TABLE items ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;",
        );
        assert!(
            identity.contains("adding identity column id to items"),
            "{identity}"
        );
        assert!(
            identity.contains("ADD GENERATED BY DEFAULT AS IDENTITY"),
            "{identity}"
        );
        let stored = render(
            "LK04",
            "ALTER TABLE items ADD COLUMN total numeric GENERATED ALWAYS AS (qty * price) STORED;",
        );
        assert!(
            stored.contains("adding stored generated column total"),
            "{stored}"
        );
        assert!(
            stored.contains("BEFORE INSERT OR UPDATE trigger"),
            "{stored}"
        );
    }

    #[test]
    fn virtual_generated_columns_are_instant_on_18_and_fail_before() {
        let sql = "ALTER TABLE items ADD COLUMN total numeric GENERATED ALWAYS AS (qty * price);";
        assert_eq!(render_with("LK04", sql, v(18)), "");
        assert_eq!(
            render_with(
                "LK04",
                "ALTER TABLE items ADD COLUMN total numeric GENERATED ALWAYS AS (qty * price) VIRTUAL;",
                v(18)
            ),
            ""
        );
        let old = render_with("LK04", sql, v(17));
        assert!(
            old.contains("needs PostgreSQL 18; the target is 17"),
            "{old}"
        );
        let stored18 = render_with(
            "LK04",
            "ALTER TABLE items ADD COLUMN total numeric GENERATED ALWAYS AS (qty * price) STORED;",
            v(18),
        );
        assert!(
            stored18.contains("a VIRTUAL generated column (the default kind) is instant"),
            "{stored18}"
        );
    }

    #[test]
    fn not_null_adds_the_not_null_step() {
        let out = render(
            "LK04",
            "ALTER TABLE users ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();",
        );
        assert!(
            out.contains(
                "then make it NOT NULL: ALTER TABLE users ADD CONSTRAINT users_token_check"
            ),
            "{out}"
        );
    }

    #[test]
    fn passes_new_tables_and_other_statements() {
        for sql in [
            "CREATE TABLE items (id bigserial PRIMARY KEY, token uuid DEFAULT gen_random_uuid());",
            "CREATE TABLE items (n int);\nALTER TABLE items ADD COLUMN id bigserial;",
            "BEGIN;\nCREATE TABLE items (n int);\nCOMMIT;\nALTER TABLE items ADD COLUMN r float DEFAULT random();",
            "ALTER TABLE items ALTER COLUMN token SET DEFAULT gen_random_uuid();",
        ] {
            assert_eq!(render("LK04", sql), "", "{sql}");
        }
    }

    #[test]
    fn the_catalog_lowers_small_tables() {
        let mut cat = Catalog::default();
        cat.tables.insert(
            "public.items".into(),
            Table {
                kind: 'r',
                bytes: 8192,
                rows: 7.0,
                ..Default::default()
            },
        );
        let out = render_with(
            "LK04",
            "ALTER TABLE items ADD COLUMN id bigserial;",
            Opts {
                catalog: Some(cat),
                ..Default::default()
            },
        );
        assert!(
            out.contains("warning LK04") && out.contains("7 rows"),
            "{out}"
        );
    }
}
