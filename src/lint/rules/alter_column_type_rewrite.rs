//! LK05 alter-column-type-rewrite: `ALTER COLUMN ... [SET DATA] TYPE` on a table that was not
//! created earlier in the same file or transaction.
//!
//! A type change rewrites the table and rebuilds all its indexes under ACCESS EXCLUSIVE,
//! unless the old type is binary-coercible to the new one and `USING` does not change the
//! values. Without `--database` pgship cannot know the old type, so every type change is
//! reported (as squawk and pg-schema-diff do). With it, the changes PostgreSQL does without a
//! rewrite are exempt (checked on PostgreSQL 15): `varchar(n)` to `varchar(m >= n)`,
//! `varchar` or `text`; `text` to `varchar`; `numeric(p,s)` to `numeric(p' >= p, s)` or
//! `numeric`; more or unlimited precision of `timestamp[tz]`, `time[tz]`, `interval`;
//! `varbit(n)` to `varbit(m >= n)`; `cidr` to `inet`; `citext` to or from `text`/`varchar`.
//! What remains is still reported when it costs something: the indexes on the column are
//! rebuilt when the operator class changes (`citext`, `timestamp` to `timestamptz`) or a
//! COLLATE is given, and validated CHECK constraints on the column are re-checked with a full
//! scan. `timestamp` to or from `timestamptz` avoids the rewrite only on 12+ with the session
//! TimeZone set to UTC, which pgship cannot see, so it is a warning with that advice.
//!
//! Severity: error, a lock hazard with a safe alternative (expand/contract: a new column,
//! dual writes, a backfill). The CHECK re-scan and the TimeZone-dependent case are warnings;
//! with `--database`, a small table lowers errors to warnings.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ColumnDef, TypeName};

use super::add_check_validating::{check_definition_expr, column_refs};
use crate::lint::catalog::{Catalog, Column};
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK05",
    name: "alter-column-type-rewrite",
    severity: Severity::Error,
    default_on: true,
    summary: "ALTER COLUMN ... TYPE rewrites the table and its indexes under ACCESS EXCLUSIVE \
              unless the change is binary-coercible",
    help: "expand/contract: add a new column, keep it in sync with a trigger, backfill it in \
           batches, switch the code to it, then drop the old column",
    check,
};

/// What a type change costs, from the old and new types.
#[derive(Debug, PartialEq)]
enum Change {
    Rewrite,
    /// Binary-coercible; `index_rebuild` when the indexes' operator class changes.
    Free {
        index_rebuild: bool,
    },
    /// timestamp <-> timestamptz: free on 12+ only if the session TimeZone is UTC.
    TimeZone,
}

/// A type as base name, modifiers and array dimensions.
#[derive(Debug, PartialEq)]
struct Ty {
    base: String,
    mods: Vec<i32>,
    array: usize,
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
        if t != AlterTableType::AtAlterColumnType {
            continue;
        }
        let Some(def) = ast::column_def(cmd) else {
            continue;
        };
        let Some(new) = def.type_name.as_ref() else {
            continue;
        };
        let col = cmd.name.as_str();
        let old = ctx
            .catalog
            .as_ref()
            .and_then(|c| c.table(&key))
            .and_then(|t| t.columns.get(col));
        let hit = match (ctx.catalog.as_ref(), old) {
            (Some(cat), Some(old)) => known(ctx, cat, &key, &table, col, old, def, new),
            _ => Some(unknown(&table, col, def, new)),
        };
        hits.extend(hit);
    }
    if let Some(t) = ctx.catalog.as_ref().and_then(|c| c.table(&key))
        && t.is_small()
    {
        for h in &mut hits {
            h.severity = Some(match h.severity {
                None | Some(Severity::Error) => Severity::Warning,
                _ => Severity::Info,
            });
            h.message.push_str(&format!(
                " ({table} is small: {} rows, {} bytes)",
                t.rows.max(0.0) as i64,
                t.bytes
            ));
        }
    }
    hits
}

fn expand_contract(table: &str, col: &str, new: &str) -> String {
    format!(
        "expand/contract: ALTER TABLE {table} ADD COLUMN {col}_new {new}; keep it in sync with a \
         trigger; backfill it in batches; switch reads and writes to it; then drop {col} and \
         rename {col}_new (which old code notices, see BI01)"
    )
}

/// Without the catalog: every type change.
fn unknown(table: &str, col: &str, def: &ColumnDef, new: &TypeName) -> Hit {
    let new_s = ast::type_name(new);
    let maybe = if !value_preserving_using(def, col, new) {
        " (USING computes new values)"
    } else if may_be_free_target(new) {
        "; if the old type is binary-coercible to it (varchar to text, a longer varchar or \
         numeric, ...), there is no rewrite, which pgship can check with --database"
    } else {
        ""
    };
    Hit::new(format!(
        "changing the type of {table}.{col} to {new_s} rewrites {table} and rebuilds its indexes \
         under ACCESS EXCLUSIVE: every read and write waits until it finishes{maybe}"
    ))
    .help(expand_contract(table, col, &new_s))
}

/// A new type that some old type reaches without a rewrite.
fn may_be_free_target(new: &TypeName) -> bool {
    new.array_bounds.is_empty()
        && matches!(
            ast::base_type(new).as_str(),
            "text"
                | "character varying"
                | "numeric"
                | "timestamp without time zone"
                | "timestamp with time zone"
                | "time without time zone"
                | "time with time zone"
                | "interval"
                | "bit varying"
                | "inet"
                | "citext"
        )
}

#[allow(clippy::too_many_arguments)]
fn known(
    ctx: &Context,
    cat: &Catalog,
    key: &str,
    table: &str,
    col: &str,
    old: &Column,
    def: &ColumnDef,
    new: &TypeName,
) -> Option<Hit> {
    let new_s = ast::type_name(new);
    let from_to = format!("{table}.{col} from {} to {new_s}", old.data_type);
    let change = if value_preserving_using(def, col, new) {
        classify(&parse_format_type(&old.data_type), &new_ty(new))
    } else {
        Change::Rewrite
    };
    let collate = def.coll_clause.is_some();
    match change {
        Change::Rewrite => Some(
            Hit::new(format!(
                "changing {from_to} rewrites {table} and rebuilds all its indexes under ACCESS \
                 EXCLUSIVE: every read and write waits until it finishes{}",
                if value_preserving_using(def, col, new) {
                    ""
                } else {
                    " (USING computes new values)"
                }
            ))
            .help(expand_contract(table, col, &new_s)),
        ),
        Change::TimeZone if ctx.pg_version < 12 => Some(
            Hit::new(format!(
                "changing {from_to} rewrites {table} and rebuilds all its indexes under ACCESS \
                 EXCLUSIVE on PostgreSQL {} (12+ skips the rewrite when the session TimeZone is \
                 UTC)",
                ctx.pg_version
            ))
            .help(expand_contract(table, col, &new_s)),
        ),
        Change::TimeZone => {
            let index = if old.indexed {
                format!(
                    "; the indexes on {col} are rebuilt under ACCESS EXCLUSIVE either way (the \
                     operator class changes)"
                )
            } else {
                String::new()
            };
            Some(
                Hit::new(format!(
                    "changing {from_to} rewrites {table} under ACCESS EXCLUSIVE unless the \
                     session TimeZone is UTC (then PostgreSQL 12+ only changes the catalog){index}"
                ))
                .severity(if old.indexed {
                    Severity::Error
                } else {
                    Severity::Warning
                })
                .help(format!(
                    "run SET LOCAL timezone = 'UTC' in the same transaction before the ALTER{}",
                    if old.indexed {
                        format!("; {}", index_help(table, col))
                    } else {
                        String::new()
                    }
                )),
            )
        }
        Change::Free { index_rebuild } if old.indexed && (index_rebuild || collate) => Some(
            Hit::new(format!(
                "changing {from_to} does not rewrite {table}, but rebuilds the indexes on {col} \
                 under ACCESS EXCLUSIVE ({}): every read and write waits for the builds",
                if index_rebuild {
                    "their operator class changes"
                } else {
                    "COLLATE is given; no rebuild only if it is the current collation"
                }
            ))
            .help(index_help(table, col)),
        ),
        Change::Free { .. } => {
            let checks = checks_on(cat, key, col);
            if checks.is_empty() {
                return None;
            }
            Some(
                Hit::new(format!(
                    "changing {from_to} does not rewrite {table}, but re-checks CHECK constraint \
                     {} with a full scan under ACCESS EXCLUSIVE",
                    checks.join(", ")
                ))
                .severity(Severity::Warning)
                .help(format!(
                    "drop the constraint first and add it back after the type change with NOT \
                     VALID, then VALIDATE CONSTRAINT in a later transaction (ALTER TABLE {table} \
                     DROP CONSTRAINT {} ...)",
                    checks[0]
                )),
            )
        }
    }
}

fn index_help(table: &str, col: &str) -> String {
    format!(
        "DROP INDEX CONCURRENTLY the indexes on {col} first, change the type, then CREATE INDEX \
         CONCURRENTLY them again (queries go without them meanwhile); or expand/contract with a \
         new column of {table}"
    )
}

/// Validated CHECK constraints of the table that use the column.
fn checks_on(cat: &Catalog, key: &str, col: &str) -> Vec<String> {
    let mut out: Vec<String> = cat
        .constraints
        .iter()
        .filter(|((t, _), c)| {
            t == key
                && c.kind == 'c'
                && c.validated
                && check_definition_expr(&c.definition)
                    .is_some_and(|e| column_refs(&e).iter().any(|r| r == col))
        })
        .map(|((_, name), _)| name.clone())
        .collect();
    out.sort();
    out
}

/// No USING, `USING col`, or `USING col::<the new type>`: the values stay as they are.
fn value_preserving_using(def: &ColumnDef, col: &str, new: &TypeName) -> bool {
    let Some(using) = def.raw_default.as_ref().and_then(|u| u.node.as_ref()) else {
        return true;
    };
    let is_col = |n: &NodeEnum| {
        matches!(n, NodeEnum::ColumnRef(c)
            if c.fields.last().and_then(ast::string) == Some(col))
    };
    match using {
        NodeEnum::TypeCast(t) => {
            t.arg
                .as_ref()
                .and_then(|a| a.node.as_ref())
                .is_some_and(is_col)
                && t.type_name
                    .as_ref()
                    .is_some_and(|tn| ast::type_name(tn) == ast::type_name(new))
        }
        other => is_col(other),
    }
}

/// The new type from the parse tree, with modifiers as `format_type` shows them.
fn new_ty(t: &TypeName) -> Ty {
    let base = ast::base_type(t);
    let mut mods: Vec<i32> = t
        .typmods
        .iter()
        .filter_map(|m| match m.node.as_ref()? {
            NodeEnum::AConst(c) => match c.val.as_ref()? {
                pg_query::protobuf::a_const::Val::Ival(i) => Some(i.ival),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let mut base = base;
    if base == "interval" && !mods.is_empty() {
        // The first modifier is the field range; 32767 is "all fields".
        if mods[0] == 0x7FFF {
            mods.remove(0);
        } else {
            base = "interval (fields)".into();
        }
    }
    if base == "numeric" && mods.len() == 1 {
        mods.push(0);
    }
    Ty {
        base,
        mods,
        array: t.array_bounds.len(),
    }
}

/// `character varying(10)[]`, `timestamp(3) with time zone`, `numeric(10,2)`,
/// `public.citext` -> base (without schema), modifiers, array dimensions.
fn parse_format_type(s: &str) -> Ty {
    let mut s = s.trim().to_string();
    let mut array = 0;
    while let Some(rest) = s.strip_suffix("[]") {
        s = rest.to_string();
        array += 1;
    }
    let mut mods = Vec::new();
    if let (Some(open), Some(close)) = (s.find('('), s.find(')'))
        && open < close
    {
        mods = s[open + 1..close]
            .split(',')
            .filter_map(|m| m.trim().parse().ok())
            .collect();
        s = format!("{}{}", &s[..open], &s[close + 1..]);
    }
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let base = if s.starts_with("interval ") {
        "interval (fields)".to_string()
    } else if s.contains(' ') {
        s
    } else {
        s.rsplit('.').next().unwrap_or(&s).to_string()
    };
    Ty { base, mods, array }
}

/// Whether precision `old` -> `new` loses nothing: the new one is unlimited or not smaller.
fn wider(old: &[i32], new: &[i32]) -> bool {
    match (old.first(), new.first()) {
        (_, None) => true,
        (Some(o), Some(n)) => n >= o,
        (None, Some(_)) => false,
    }
}

fn classify(old: &Ty, new: &Ty) -> Change {
    if old.array > 0 || new.array > 0 {
        // Arrays of a binary-coercible type are still rewritten (checked on PostgreSQL 15).
        return if old == new {
            Change::Free {
                index_rebuild: false,
            }
        } else {
            Change::Rewrite
        };
    }
    let (o, n) = (old.base.as_str(), new.base.as_str());
    let free = Change::Free {
        index_rebuild: false,
    };
    if o == n && old.mods == new.mods {
        return free;
    }
    let textual = |b: &str| b == "text" || b == "character varying";
    let timestamps = ["timestamp without time zone", "timestamp with time zone"];
    match (o, n) {
        (o, "text") if textual(o) => free,
        (o, "character varying") if textual(o) => {
            if new.mods.is_empty() || (o == n && wider(&old.mods, &new.mods)) {
                free
            } else {
                Change::Rewrite
            }
        }
        ("citext", n) | (n, "citext")
            if textual(n) && (n == "text" || new.mods.is_empty() || o != "citext") =>
        {
            Change::Free {
                index_rebuild: true,
            }
        }
        ("numeric", "numeric") => match (old.mods.as_slice(), new.mods.as_slice()) {
            (_, []) => free,
            ([p, s], [p2, s2]) if s2 == s && p2 >= p => free,
            _ => Change::Rewrite,
        },
        (
            "timestamp without time zone"
            | "timestamp with time zone"
            | "time without time zone"
            | "time with time zone"
            | "bit varying",
            _,
        ) if o == n => {
            if wider(&old.mods, &new.mods) {
                free
            } else {
                Change::Rewrite
            }
        }
        ("interval" | "interval (fields)", "interval") => {
            if wider(&old.mods, &new.mods) {
                free
            } else {
                Change::Rewrite
            }
        }
        ("cidr", "inet") => free,
        (o, n) if timestamps.contains(&o) && timestamps.contains(&n) => {
            if wider(&old.mods, &new.mods) {
                Change::TimeZone
            } else {
                Change::Rewrite
            }
        }
        _ => Change::Rewrite,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::lint::catalog::{Catalog, Column, Constraint, Table};
    use crate::lint::testing::{Opts, render, render_with};

    fn cat(cols: &[(&str, &str, bool)]) -> Catalog {
        let mut c = Catalog::default();
        c.tables.insert(
            "public.t".into(),
            Table {
                kind: 'r',
                bytes: 1 << 30,
                rows: 1e7,
                columns: cols
                    .iter()
                    .map(|(n, ty, indexed)| {
                        (
                            n.to_string(),
                            Column {
                                data_type: ty.to_string(),
                                not_null: false,
                                indexed: *indexed,
                            },
                        )
                    })
                    .collect::<HashMap<_, _>>(),
                ..Default::default()
            },
        );
        c
    }

    fn with(catalog: Catalog, pg_version: u32) -> Opts {
        Opts {
            pg_version,
            catalog: Some(catalog),
            ..Default::default()
        }
    }

    /// The rendered finding of `ALTER TABLE t ALTER COLUMN c TYPE <new>` with `c` of type `old`.
    fn change(old: &str, new: &str, indexed: bool) -> String {
        render_with(
            "LK05",
            &format!("ALTER TABLE t ALTER COLUMN c TYPE {new};"),
            with(cat(&[("c", old, indexed)]), 17),
        )
    }

    #[test]
    fn flags_every_type_change_without_the_catalog() {
        assert_eq!(
            render("LK05", "ALTER TABLE users ALTER COLUMN age TYPE bigint;"),
            "m.sql:1:1: error LK05 alter-column-type-rewrite: changing the type of users.age to \
             bigint rewrites users and rebuilds its indexes under ACCESS EXCLUSIVE: every read \
             and write waits until it finishes\n  \
             1 | ALTER TABLE users ALTER COLUMN age TYPE bigint\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: expand/contract: ALTER TABLE users ADD COLUMN age_new bigint; keep it in sync \
             with a trigger; backfill it in batches; switch reads and writes to it; then drop age \
             and rename age_new (which old code notices, see BI01)\n"
        );
        // Section 10.1: varchar -> text is flagged too without the catalog, with a hint.
        let text = render(
            "LK05",
            "ALTER TABLE users ALTER COLUMN name SET DATA TYPE text;",
        );
        assert!(text.contains("error LK05"), "{text}");
        assert!(text.contains("pgship can check with --database"), "{text}");
    }

    #[test]
    fn binary_coercible_changes_are_exempt_with_the_catalog() {
        for (old, new) in [
            ("character varying(10)", "varchar(20)"),
            ("character varying(10)", "varchar"),
            ("character varying(10)", "text"),
            ("character varying", "text"),
            ("text", "varchar"),
            ("numeric(10,2)", "numeric(12,2)"),
            ("numeric(10,2)", "numeric"),
            ("numeric(10,0)", "numeric(12)"),
            ("timestamp(3) without time zone", "timestamp(6)"),
            ("timestamp(3) with time zone", "timestamptz"),
            ("time(3) without time zone", "time"),
            ("interval(3)", "interval"),
            ("interval day", "interval"),
            ("interval(3)", "interval(6)"),
            ("bit varying(5)", "varbit(10)"),
            ("cidr", "inet"),
            ("integer", "int4"),
            ("character varying(10)", "varchar(10)"),
        ] {
            assert_eq!(change(old, new, true), "", "{old} -> {new}");
        }
    }

    #[test]
    fn rewriting_changes_are_flagged_with_the_catalog() {
        for (old, new) in [
            ("integer", "bigint"),
            ("smallint", "integer"),
            ("character varying(20)", "varchar(10)"),
            ("text", "varchar(20)"),
            ("character varying", "char(5)"),
            ("character varying", "varchar(10)"),
            ("numeric(10,2)", "numeric(12,3)"),
            ("numeric", "numeric(12,2)"),
            ("timestamp(6) without time zone", "timestamp(3)"),
            ("character varying(10)[]", "varchar(20)[]"),
            ("character varying[]", "text[]"),
            ("inet", "cidr"),
            ("text", "integer"),
        ] {
            let out = change(old, new, false);
            assert!(
                out.contains("error LK05") && out.contains(&format!("from {old} to")),
                "{old} -> {new}: {out}"
            );
            assert!(
                out.contains("rewrites t and rebuilds all its indexes"),
                "{out}"
            );
        }
    }

    #[test]
    fn a_value_changing_using_is_a_rewrite() {
        let out = change("character varying(10)", "text USING lower(c)", false);
        assert!(out.contains("USING computes new values"), "{out}");
        assert_eq!(change("character varying(10)", "text USING c", false), "");
        assert_eq!(
            change("character varying(10)", "text USING c::text", false),
            ""
        );
        assert!(
            change(
                "character varying(10)",
                "varchar(20) USING c::varchar(5)",
                false
            )
            .contains("error LK05")
        );
        let no_cat = render("LK05", "ALTER TABLE t ALTER c TYPE int USING c::int;");
        assert!(no_cat.contains("error LK05"), "{no_cat}");
    }

    #[test]
    fn index_rebuilds_are_reported() {
        let citext = change("text", "public.citext", true);
        assert!(
            citext.contains("does not rewrite t, but rebuilds the indexes on c"),
            "{citext}"
        );
        assert!(citext.contains("operator class changes"), "{citext}");
        assert_eq!(change("text", "citext", false), "");
        assert_eq!(change("citext", "text", false), "");
        let collate = change("text", "text COLLATE \"C\"", true);
        assert!(collate.contains("COLLATE is given"), "{collate}");
        assert_eq!(change("text", "text COLLATE \"C\"", false), "");
    }

    #[test]
    fn timestamp_to_timestamptz_depends_on_the_time_zone_and_version() {
        let out = change("timestamp without time zone", "timestamptz", false);
        assert!(out.contains("warning LK05"), "{out}");
        assert!(out.contains("unless the session TimeZone is UTC"), "{out}");
        assert!(out.contains("SET LOCAL timezone = 'UTC'"), "{out}");
        let indexed = change("timestamp with time zone", "timestamp", true);
        assert!(
            indexed.contains("error LK05")
                && indexed.contains("rebuilt under ACCESS EXCLUSIVE either way"),
            "{indexed}"
        );
        let v11 = render_with(
            "LK05",
            "ALTER TABLE t ALTER c TYPE timestamptz;",
            with(cat(&[("c", "timestamp without time zone", false)]), 11),
        );
        assert!(
            v11.contains("error LK05") && v11.contains("on PostgreSQL 11"),
            "{v11}"
        );
    }

    #[test]
    fn checks_on_the_column_are_rechecked() {
        let mut c = cat(&[("c", "character varying(10)", false)]);
        c.constraints.insert(
            ("public.t".into(), "t_c_check".into()),
            Constraint {
                kind: 'c',
                validated: true,
                definition: "CHECK ((length((c)::text) > 0))".into(),
            },
        );
        c.constraints.insert(
            ("public.t".into(), "t_other_check".into()),
            Constraint {
                kind: 'c',
                validated: true,
                definition: "CHECK ((other > 0))".into(),
            },
        );
        let out = render_with("LK05", "ALTER TABLE t ALTER c TYPE text;", with(c, 17));
        assert!(out.contains("warning LK05"), "{out}");
        assert!(
            out.contains("re-checks CHECK constraint t_c_check with a full scan"),
            "{out}"
        );
        assert!(!out.contains("t_other_check"), "{out}");
    }

    #[test]
    fn passes_new_tables_and_unknown_columns_are_flagged() {
        assert_eq!(
            render(
                "LK05",
                "CREATE TABLE t (c int);\nALTER TABLE t ALTER COLUMN c TYPE bigint;"
            ),
            ""
        );
        // A column the catalog does not know (added by an earlier migration): flagged.
        let out = render_with(
            "LK05",
            "ALTER TABLE t ALTER COLUMN d TYPE text;",
            with(cat(&[("c", "text", false)]), 17),
        );
        assert!(
            out.contains("error LK05") && out.contains("changing the type of t.d"),
            "{out}"
        );
        assert_eq!(
            render("LK05", "ALTER TABLE t ALTER COLUMN c SET DEFAULT 1;"),
            ""
        );
    }

    #[test]
    fn small_tables_are_a_warning() {
        let mut c = cat(&[("c", "integer", false)]);
        let t = c.tables.get_mut("public.t").unwrap();
        t.rows = 3.0;
        t.bytes = 8192;
        let out = render_with("LK05", "ALTER TABLE t ALTER c TYPE bigint;", with(c, 17));
        assert!(
            out.contains("warning LK05") && out.contains("3 rows"),
            "{out}"
        );
    }

    #[test]
    fn format_type_parses() {
        assert_eq!(
            parse_format_type("timestamp(3) with time zone"),
            Ty {
                base: "timestamp with time zone".into(),
                mods: vec![3],
                array: 0
            }
        );
        assert_eq!(
            parse_format_type("character varying(10)[]"),
            Ty {
                base: "character varying".into(),
                mods: vec![10],
                array: 1
            }
        );
        assert_eq!(parse_format_type("public.citext").base, "citext");
        assert_eq!(parse_format_type("numeric(10,2)").mods, vec![10, 2]);
        assert_eq!(
            parse_format_type("interval day to second(3)").base,
            "interval (fields)"
        );
    }
}
