//! LK16 attach-partition-scan: `ALTER TABLE ... ATTACH PARTITION`. PostgreSQL scans the whole
//! attached table under ACCESS EXCLUSIVE to check that every row fits the partition bound
//! (and scans the DEFAULT partition, if any, for rows that now belong to the new partition),
//! unless valid CHECK constraints already imply the bound. Before PostgreSQL 12 the
//! partitioned table itself is locked ACCESS EXCLUSIVE for the whole scan.
//!
//! Severity: warning. From 12 on the partitioned table is only locked SHARE UPDATE EXCLUSIVE,
//! and the attached table is usually not in use yet, so the scan costs time and IO more than
//! availability; before 12 it blocks every query on the partitioned table for the whole scan,
//! which is an error. A table created earlier in the same file or transaction is exempt (it
//! is empty), unless the catalog says the partitioned table has a DEFAULT partition. With
//! `--database`, when validated CHECK constraints of the attached table visibly imply the
//! bound (the same values on one column; pgship cannot know the partition key, so it does
//! not drop the finding but lowers it to info), and a foreign table is exempt (it is never
//! scanned).

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AExprKind, AlterTableType, BoolExprType, Node, PartitionBoundSpec, PartitionCmd, RangeVar,
    a_const,
};

use crate::lint::catalog::Catalog;
use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "LK16",
    name: "attach-partition-scan",
    severity: Severity::Warning,
    default_on: true,
    summary: "ATTACH PARTITION scans the attached table (and the DEFAULT partition) under ACCESS \
              EXCLUSIVE to check the partition bound",
    help: "first add a CHECK matching the bound NOT VALID and VALIDATE it (SHARE UPDATE \
           EXCLUSIVE), then ATTACH (no scan), then drop the helper CHECK",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let Some((a, parent_rv)) = ast::alter_table(stmt.node) else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    for (cmd, t) in ast::alter_cmds(a) {
        if t != AlterTableType::AtAttachPartition {
            continue;
        }
        let Some(NodeEnum::PartitionCmd(pc)) = cmd.def.as_ref().and_then(|d| d.node.as_ref())
        else {
            continue;
        };
        if let Some(hit) = attach(ctx, parent_rv, pc) {
            hits.push(hit);
        }
    }
    hits
}

fn attach(ctx: &Context, parent_rv: &RangeVar, pc: &PartitionCmd) -> Option<Hit> {
    let part_rv = pc.name.as_ref()?;
    let bound = pc.bound.as_ref()?;
    let (parent, part) = (ast::rel_name(parent_rv), ast::rel_name(part_rv));
    let part_key = ast::rel_key(part_rv);
    let cat = ctx.catalog.as_ref();
    let has_default = cat
        .and_then(|c| c.table(&ast::rel_key(parent_rv)))
        .is_some_and(|t| t.has_default_partition)
        && !bound.is_default;
    let foreign = cat
        .and_then(|c| c.table(&part_key))
        .is_some_and(|t| t.kind == 'f');
    let scans_part = !(ctx.is_new_table(&part_key) || ast::is_temp(part_rv) || foreign);
    if !scans_part && !has_default {
        return None;
    }
    let old = ctx.pg_version < 12;
    let parent_lock = if old {
        format!(
            "{parent} is locked ACCESS EXCLUSIVE for the whole time (before PostgreSQL 12), \
             blocking every query on it"
        )
    } else {
        format!("{parent} is locked SHARE UPDATE EXCLUSIVE")
    };
    let default_part = if has_default {
        format!(
            "; the DEFAULT partition of {parent} is locked ACCESS EXCLUSIVE and scanned too, for \
             rows that belong to {part}"
        )
    } else {
        String::new()
    };
    let what = if bound.is_default {
        "that no row belongs to another partition"
    } else {
        "the partition bound"
    };
    let message = if scans_part {
        format!(
            "attaching {part} to {parent} scans all of {part} under ACCESS EXCLUSIVE to check \
             {what}; {parent_lock}{default_part}"
        )
    } else {
        format!(
            "attaching {part} to {parent} locks the DEFAULT partition of {parent} ACCESS \
             EXCLUSIVE and scans it for rows that belong to {part}; {parent_lock}"
        )
    };
    let mut hit = Hit::new(message).help(recipe(&part, part_rv, bound, has_default));
    if old {
        hit = hit.severity(Severity::Error);
    }
    if scans_part
        && !has_default
        && let Some(names) = cat.and_then(|c| implied_by(c, &part_key, bound))
    {
        let (s, verb) = if names.len() == 1 {
            ("", "s")
        } else {
            ("s", "")
        };
        hit = Hit::new(format!(
            "attaching {part} to {parent}: the validated CHECK constraint{s} {} on {part} \
             appear{verb} to imply the bound, so PostgreSQL should skip the scan; {parent_lock}",
            names.join(", ")
        ))
        .severity(if old {
            Severity::Warning
        } else {
            Severity::Info
        })
        .help(format!(
            "if the CHECK is on the partition key, nothing to do; otherwise see the recipe: {}",
            recipe(&part, part_rv, bound, false)
        ));
    }
    Some(hit)
}

/// The helper-CHECK recipe for this bound, as concrete as the statement allows.
fn recipe(part: &str, part_rv: &RangeVar, bound: &PartitionBoundSpec, has_default: bool) -> String {
    let default = if has_default {
        "; give the DEFAULT partition a validated CHECK that excludes the new bound as well"
    } else {
        ""
    };
    let Some(expr) = check_expr(bound) else {
        return format!(
            "add a CHECK on {part} that implies the bound NOT VALID, VALIDATE it (SHARE UPDATE \
             EXCLUSIVE), ATTACH (no scan), then drop the CHECK{default}"
        );
    };
    let name = format!("{}_bound", part_rv.relname);
    format!(
        "ALTER TABLE {part} ADD CONSTRAINT {name} CHECK ({expr}) NOT VALID; ALTER TABLE {part} \
         VALIDATE CONSTRAINT {name} (SHARE UPDATE EXCLUSIVE); then ATTACH (no scan); then ALTER \
         TABLE {part} DROP CONSTRAINT {name}{default}"
    )
}

/// A bound value of a `FOR VALUES` clause or of a CHECK constraint.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Num(f64, String),
    Str(String),
    Min,
    Max,
    Null,
}

impl Lit {
    fn sql(&self) -> String {
        match self {
            Lit::Num(_, s) => s.clone(),
            Lit::Str(s) => format!("'{}'", s.replace('\'', "''")),
            Lit::Min => "MINVALUE".into(),
            Lit::Max => "MAXVALUE".into(),
            Lit::Null => "NULL".into(),
        }
    }

    /// The same value: the same text, or a date and the same date at midnight (how
    /// `pg_get_constraintdef` prints a `timestamp` bound written as a date).
    fn same(&self, other: &Lit) -> bool {
        match (self, other) {
            (Lit::Num(a, _), Lit::Num(b, _)) => a == b,
            (Lit::Str(a), Lit::Str(b)) => {
                a == b
                    || a.strip_suffix(" 00:00:00") == Some(b.as_str())
                    || b.strip_suffix(" 00:00:00") == Some(a.as_str())
            }
            _ => false,
        }
    }

    /// `self >= other` where that can be told without knowing the type.
    fn at_least(&self, other: &Lit) -> bool {
        match (self, other) {
            (Lit::Num(a, _), Lit::Num(b, _)) => a >= b,
            _ => self.same(other),
        }
    }
}

fn lit(n: &Node) -> Option<Lit> {
    match n.node.as_ref()? {
        NodeEnum::AConst(c) => {
            if c.isnull {
                return Some(Lit::Null);
            }
            match c.val.as_ref()? {
                a_const::Val::Ival(i) => Some(Lit::Num(i.ival as f64, i.ival.to_string())),
                a_const::Val::Fval(f) => Some(Lit::Num(f.fval.parse().ok()?, f.fval.clone())),
                a_const::Val::Sval(s) => Some(Lit::Str(s.sval.clone())),
                a_const::Val::Boolval(b) => Some(Lit::Str(b.boolval.to_string())),
                a_const::Val::Bsval(_) => None,
            }
        }
        NodeEnum::TypeCast(t) => lit(t.arg.as_deref()?),
        NodeEnum::ColumnRef(c) => match ast::strings(&c.fields).as_slice() {
            ["minvalue"] => Some(Lit::Min),
            ["maxvalue"] => Some(Lit::Max),
            _ => None,
        },
        _ => None,
    }
}

fn lits(nodes: &[Node]) -> Option<Vec<Lit>> {
    nodes.iter().map(lit).collect()
}

/// The CHECK expression equivalent to a single-column range or list bound, with `<key>` for
/// the partition key (which the statement does not name).
fn check_expr(bound: &PartitionBoundSpec) -> Option<String> {
    match bound.strategy.as_str() {
        "r" => {
            let (lo, hi) = single_range(bound)?;
            let mut parts = Vec::new();
            if lo != Lit::Min {
                parts.push(format!("<key> >= {}", lo.sql()));
            }
            if hi != Lit::Max {
                parts.push(format!("<key> < {}", hi.sql()));
            }
            (!parts.is_empty()).then(|| parts.join(" AND "))
        }
        "l" => {
            let values = lits(&bound.listdatums)?;
            if values.contains(&Lit::Null) {
                return None;
            }
            let list: Vec<String> = values.iter().map(Lit::sql).collect();
            Some(format!(
                "<key> IS NOT NULL AND <key> IN ({})",
                list.join(", ")
            ))
        }
        _ => None,
    }
}

fn single_range(bound: &PartitionBoundSpec) -> Option<(Lit, Lit)> {
    match (bound.lowerdatums.as_slice(), bound.upperdatums.as_slice()) {
        ([lo], [hi]) => Some((lit(lo)?, lit(hi)?)),
        _ => None,
    }
}

/// One conjunct of a CHECK expression that can help imply a bound.
#[derive(Debug)]
enum Conj {
    /// `col op lit`, with the column on the left.
    Cmp(String, String, Lit),
    /// `col = ANY (ARRAY[...])`, `col IN (...)`.
    In(String, Vec<Lit>),
    NotNull(String),
}

fn column(n: &Node) -> Option<String> {
    match n.node.as_ref()? {
        NodeEnum::ColumnRef(c) => match ast::strings(&c.fields).as_slice() {
            [col] => Some(col.to_string()),
            _ => None,
        },
        _ => None,
    }
}

fn conjuncts(n: &Node, out: &mut Vec<Conj>) {
    match n.node.as_ref() {
        Some(NodeEnum::BoolExpr(b)) if b.boolop == BoolExprType::AndExpr as i32 => {
            for arg in &b.args {
                conjuncts(arg, out);
            }
        }
        Some(NodeEnum::NullTest(t)) if t.nulltesttype == 2 => {
            if let Some(col) = t.arg.as_deref().and_then(column) {
                out.push(Conj::NotNull(col));
            }
        }
        Some(NodeEnum::AExpr(e)) => {
            let (Some(l), Some(r)) = (e.lexpr.as_deref(), e.rexpr.as_deref()) else {
                return;
            };
            let op = ast::strings(&e.name).join(".");
            let kind = AExprKind::try_from(e.kind).unwrap_or(AExprKind::Undefined);
            match kind {
                AExprKind::AexprOp => {
                    if let (Some(col), Some(v)) = (column(l), lit(r)) {
                        out.push(Conj::Cmp(col, op, v));
                    } else if let (Some(v), Some(col)) = (lit(l), column(r)) {
                        let flipped = match op.as_str() {
                            ">=" => "<=",
                            "<=" => ">=",
                            ">" => "<",
                            "<" => ">",
                            other => other,
                        };
                        out.push(Conj::Cmp(col, flipped.to_string(), v));
                    }
                }
                AExprKind::AexprOpAny | AExprKind::AexprIn if op == "=" => {
                    let items = match r.node.as_ref() {
                        Some(NodeEnum::AArrayExpr(a)) => lits(&a.elements),
                        Some(NodeEnum::List(l)) => lits(&l.items),
                        Some(NodeEnum::TypeCast(t)) => {
                            match t.arg.as_deref().and_then(|a| a.node.as_ref()) {
                                Some(NodeEnum::AArrayExpr(a)) => lits(&a.elements),
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    if let (Some(col), Some(items)) = (column(l), items) {
                        out.push(Conj::In(col, items));
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// The conjuncts of a `pg_get_constraintdef` text (`CHECK (...)`), parsed by PostgreSQL's
/// parser.
fn check_conjuncts(definition: &str) -> Vec<Conj> {
    let mut out = Vec::new();
    let Ok(parsed) = pg_query::parse(&format!("ALTER TABLE t ADD {definition}"), 0) else {
        return out;
    };
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        let Some((a, _)) = ast::alter_table(node) else {
            continue;
        };
        for (cmd, _) in ast::alter_cmds(a) {
            if let Some(expr) = ast::constraint_def(cmd).and_then(|c| c.raw_expr.as_deref()) {
                conjuncts(expr, &mut out);
            }
        }
    }
    out
}

/// Names of the validated CHECK constraints of `table` (in the catalog) that visibly imply a
/// single-column range or list bound, or None. Conservative: exact values (or numbers that are
/// provably inside the bound), one column, and for a list an explicit NOT NULL.
fn implied_by(cat: &Catalog, table: &str, bound: &PartitionBoundSpec) -> Option<Vec<String>> {
    let mut checks: Vec<(&str, Vec<Conj>)> = cat
        .constraints
        .iter()
        .filter(|((t, _), c)| t == table && c.kind == 'c' && c.validated)
        .map(|((_, name), c)| (name.as_str(), check_conjuncts(&c.definition)))
        .collect();
    checks.sort_by(|a, b| a.0.cmp(b.0));
    let all: Vec<(&str, &Conj)> = checks
        .iter()
        .flat_map(|(n, cs)| cs.iter().map(move |c| (*n, c)))
        .collect();
    let not_null = |col: &str| {
        cat.table(table)
            .and_then(|t| t.columns.get(col))
            .is_some_and(|c| c.not_null)
    };
    let mut used: Vec<&str> = match bound.strategy.as_str() {
        "r" => {
            let (lo, hi) = single_range(bound)?;
            if lo == Lit::Min && hi == Lit::Max {
                return None;
            }
            let lower = |col: &str| {
                all.iter().find(|(_, c)| {
                    matches!(c, Conj::Cmp(k, op, v) if k == col
                        && (op == ">=" || op == ">") && v.at_least(&lo))
                })
            };
            let upper = |col: &str| {
                all.iter().find(|(_, c)| match c {
                    Conj::Cmp(k, op, v) if k == col => {
                        (op == "<" && hi.at_least(v))
                            || (op == "<=" && hi.at_least(v) && !hi.same(v))
                    }
                    _ => false,
                })
            };
            all.iter().find_map(|(_, c)| {
                let Conj::Cmp(col, _, _) = c else {
                    return None;
                };
                let l = if lo == Lit::Min {
                    None
                } else {
                    Some(lower(col)?.0)
                };
                let u = if hi == Lit::Max {
                    None
                } else {
                    Some(upper(col)?.0)
                };
                Some(l.into_iter().chain(u).collect())
            })?
        }
        "l" => {
            let values = lits(&bound.listdatums)?;
            if values.contains(&Lit::Null) {
                return None;
            }
            all.iter().find_map(|(name, c)| {
                let (col, items) = match c {
                    Conj::In(col, items) => (col, items.clone()),
                    Conj::Cmp(col, op, v) if op == "=" => (col, vec![v.clone()]),
                    _ => return None,
                };
                if !items.iter().all(|i| values.iter().any(|v| v.same(i))) {
                    return None;
                }
                let nn = all
                    .iter()
                    .find(|(_, c)| matches!(c, Conj::NotNull(k) if k == col))
                    .map(|(n, _)| *n);
                match nn {
                    Some(n) => Some(vec![*name, n]),
                    None if not_null(col) => Some(vec![*name]),
                    None => None,
                }
            })?
        }
        _ => return None,
    };
    used.sort_unstable();
    used.dedup();
    Some(used.into_iter().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use crate::lint::catalog::{Catalog, Column, Constraint, Table};
    use crate::lint::testing::{Opts, render, render_with};

    const RANGE: &str = "ALTER TABLE events ATTACH PARTITION events_2024 FOR VALUES FROM \
                         ('2024-01-01') TO ('2025-01-01');";

    fn catalog(checks: &[(&str, &str, bool)], default_partition: bool) -> Opts {
        let mut cat = Catalog::default();
        cat.tables.insert(
            "public.events".into(),
            Table {
                kind: 'p',
                has_default_partition: default_partition,
                ..Default::default()
            },
        );
        let mut part = Table {
            kind: 'r',
            ..Default::default()
        };
        part.columns.insert(
            "region".into(),
            Column {
                data_type: "text".into(),
                not_null: true,
                indexed: false,
            },
        );
        cat.tables.insert("public.events_2024".into(), part);
        for (name, def, validated) in checks {
            cat.constraints.insert(
                ("public.events_2024".into(), name.to_string()),
                Constraint {
                    kind: 'c',
                    validated: *validated,
                    definition: def.to_string(),
                },
            );
        }
        Opts {
            catalog: Some(cat),
            ..Default::default()
        }
    }

    #[test]
    fn flags_an_attach() {
        assert_eq!(
            render("LK16", RANGE),
            "m.sql:1:1: warning LK16 attach-partition-scan: attaching events_2024 to events \
             scans all of events_2024 under ACCESS EXCLUSIVE to check the partition bound; \
             events is locked SHARE UPDATE EXCLUSIVE\n  \
             1 | ALTER TABLE events ATTACH PARTITION events_2024 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: ALTER TABLE events_2024 ADD CONSTRAINT events_2024_bound CHECK (<key> >= \
             '2024-01-01' AND <key> < '2025-01-01') NOT VALID; ALTER TABLE events_2024 VALIDATE \
             CONSTRAINT events_2024_bound (SHARE UPDATE EXCLUSIVE); then ATTACH (no scan); then \
             ALTER TABLE events_2024 DROP CONSTRAINT events_2024_bound\n"
        );
    }

    #[test]
    fn the_help_follows_the_bound() {
        let out = render(
            "LK16",
            "ALTER TABLE orders ATTACH PARTITION orders_eu FOR VALUES IN ('de', 'it''s');",
        );
        assert!(
            out.contains("CHECK (<key> IS NOT NULL AND <key> IN ('de', 'it''s'))"),
            "{out}"
        );
        let out = render(
            "LK16",
            "ALTER TABLE m ATTACH PARTITION m_low FOR VALUES FROM (MINVALUE) TO (-5);",
        );
        assert!(out.contains("CHECK (<key> < -5)"), "{out}");
        let out = render(
            "LK16",
            "ALTER TABLE h ATTACH PARTITION h0 FOR VALUES WITH (MODULUS 4, REMAINDER 0);",
        );
        assert!(
            out.contains("add a CHECK on h0 that implies the bound"),
            "{out}"
        );
        let out = render(
            "LK16",
            "ALTER TABLE events ATTACH PARTITION events_rest DEFAULT;",
        );
        assert!(
            out.contains("to check that no row belongs to another partition"),
            "{out}"
        );
    }

    #[test]
    fn before_12_the_parent_is_locked_too() {
        let out = render_with(
            "LK16",
            RANGE,
            Opts {
                pg_version: 11,
                ..Default::default()
            },
        );
        assert!(
            out.contains("error LK16")
                && out.contains("events is locked ACCESS EXCLUSIVE for the whole time"),
            "{out}"
        );
        let out = render_with(
            "LK16",
            RANGE,
            Opts {
                pg_version: 12,
                ..Default::default()
            },
        );
        assert!(out.contains("warning LK16"), "{out}");
    }

    #[test]
    fn a_new_table_is_not_scanned() {
        let sql = "CREATE TABLE events_2024 (LIKE events);\n".to_string() + RANGE;
        assert_eq!(render("LK16", &sql), "");
        // ... but the DEFAULT partition still is.
        let out = render_with("LK16", &sql, catalog(&[], true));
        assert!(
            out.contains("m.sql:2:1: warning LK16")
                && out.contains(
                    "locks the DEFAULT partition of events ACCESS EXCLUSIVE and scans it"
                ),
            "{out}"
        );
    }

    #[test]
    fn a_validated_check_on_the_bound_lowers_it_to_info() {
        let def = "CHECK (((at >= '2024-01-01'::date) AND (at < '2025-01-01'::date)))";
        let out = render_with("LK16", RANGE, catalog(&[("b", def, true)], false));
        assert!(
            out.contains("info LK16")
                && out.contains("CHECK constraint b on events_2024 appears to imply"),
            "{out}"
        );
        // Split over two constraints, timestamps printed at midnight.
        let out = render_with(
            "LK16",
            RANGE,
            catalog(
                &[
                    (
                        "lo",
                        "CHECK ((at >= '2024-01-01 00:00:00'::timestamp without time zone))",
                        true,
                    ),
                    (
                        "hi",
                        "CHECK ((at < '2025-01-01 00:00:00'::timestamp without time zone))",
                        true,
                    ),
                ],
                false,
            ),
        );
        assert!(
            out.contains("info LK16") && out.contains("constraints hi, lo"),
            "{out}"
        );
        // Narrower integer ranges imply the bound too.
        let out = render_with(
            "LK16",
            "ALTER TABLE events ATTACH PARTITION events_2024 FOR VALUES FROM (100) TO (200);",
            catalog(&[("b", "CHECK (((n >= 120) AND (n <= 150)))", true)], false),
        );
        assert!(out.contains("info LK16"), "{out}");
    }

    #[test]
    fn a_check_that_does_not_imply_the_bound_changes_nothing() {
        for (def, validated) in [
            // Not validated.
            (
                "CHECK (((at >= '2024-01-01'::date) AND (at < '2025-01-01'::date))) NOT VALID",
                false,
            ),
            // Wider than the bound.
            (
                "CHECK (((at >= '2023-01-01'::date) AND (at < '2025-01-01'::date)))",
                true,
            ),
            // One side only.
            ("CHECK ((at >= '2024-01-01'::date))", true),
            // The bounds on two different columns.
            (
                "CHECK (((a >= '2024-01-01'::date) AND (b < '2025-01-01'::date)))",
                true,
            ),
            // A time zone offset: it depends on the session's TimeZone.
            (
                "CHECK (((at >= '2024-01-01 00:00:00+00'::timestamp with time zone) AND (at < '2025-01-01 00:00:00+00'::timestamp with time zone)))",
                true,
            ),
            // OR is not a conjunction.
            (
                "CHECK (((at >= '2024-01-01'::date) OR (at < '2025-01-01'::date)))",
                true,
            ),
        ] {
            let out = render_with("LK16", RANGE, catalog(&[("b", def, validated)], false));
            assert!(out.contains("warning LK16"), "{def}: {out}");
        }
        // A matching CHECK does not help with the DEFAULT partition.
        let def = "CHECK (((at >= '2024-01-01'::date) AND (at < '2025-01-01'::date)))";
        let out = render_with("LK16", RANGE, catalog(&[("b", def, true)], true));
        assert!(
            out.contains("warning LK16") && out.contains("DEFAULT partition"),
            "{out}"
        );
    }

    #[test]
    fn list_bounds_need_not_null_as_well() {
        let sql =
            "ALTER TABLE events ATTACH PARTITION events_2024 FOR VALUES IN ('de', 'fr', 'it');";
        // A NOT NULL column.
        let out = render_with(
            "LK16",
            sql,
            catalog(
                &[(
                    "b",
                    "CHECK ((region = ANY (ARRAY['de'::text, 'fr'::text])))",
                    true,
                )],
                false,
            ),
        );
        assert!(out.contains("info LK16"), "{out}");
        // A nullable column without IS NOT NULL: PostgreSQL still scans.
        let out = render_with(
            "LK16",
            sql,
            catalog(
                &[(
                    "b",
                    "CHECK ((country = ANY (ARRAY['de'::text, 'fr'::text])))",
                    true,
                )],
                false,
            ),
        );
        assert!(out.contains("warning LK16"), "{out}");
        let out = render_with(
            "LK16",
            sql,
            catalog(
                &[(
                    "b",
                    "CHECK (((country IS NOT NULL) AND (country = ANY (ARRAY['de'::text, 'fr'::text]))))",
                    true,
                )],
                false,
            ),
        );
        assert!(out.contains("info LK16"), "{out}");
        // A value outside the bound.
        let out = render_with(
            "LK16",
            sql,
            catalog(
                &[(
                    "b",
                    "CHECK ((region = ANY (ARRAY['de'::text, 'es'::text])))",
                    true,
                )],
                false,
            ),
        );
        assert!(out.contains("warning LK16"), "{out}");
    }

    #[test]
    fn a_foreign_table_is_not_scanned() {
        let mut opts = catalog(&[], false);
        if let Some(c) = opts.catalog.as_mut() {
            c.tables.get_mut("public.events_2024").unwrap().kind = 'f';
        }
        assert_eq!(render_with("LK16", RANGE, opts), "");
    }
}
