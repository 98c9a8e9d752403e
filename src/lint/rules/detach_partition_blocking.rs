//! LK15 detach-partition-blocking: `ALTER TABLE ... DETACH PARTITION` without `CONCURRENTLY`
//! on a partitioned table that was not created earlier in the same file or transaction
//! (`DETACH PARTITION ... FINALIZE` is fine). It also reports the `CONCURRENTLY` forms that
//! PostgreSQL refuses: before 14, and (with `--database`) when the table has a DEFAULT
//! partition.
//!
//! Severity: error. A plain detach takes ACCESS EXCLUSIVE on the partitioned table, the
//! partition and the DEFAULT partition: it is quick once granted, but while it waits every
//! query on the whole partitioned table queues behind it, and `DETACH PARTITION ...
//! CONCURRENTLY` (14+, SHARE UPDATE EXCLUSIVE on the parent) avoids that. Where there is no
//! alternative (PostgreSQL before 14, or a DEFAULT partition known from the catalog) it is a
//! warning.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, PartitionCmd, RangeVar};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, Wrap, ast};

pub static RULE: Rule = Rule {
    id: "LK15",
    name: "detach-partition-blocking",
    severity: Severity::Error,
    default_on: true,
    summary: "DETACH PARTITION without CONCURRENTLY locks the whole partitioned table ACCESS \
              EXCLUSIVE",
    help: "use DETACH PARTITION ... CONCURRENTLY (PostgreSQL 14+, outside a transaction block; \
           finish an interrupted one with DETACH PARTITION ... FINALIZE)",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let Some((a, parent_rv)) = ast::alter_table(stmt.node) else {
        return Vec::new();
    };
    let parent_key = ast::rel_key(parent_rv);
    if ctx.is_new_table(&parent_key) {
        return Vec::new();
    }
    let parent = ast::rel_name(parent_rv);
    // Some(true) when the catalog knows the table has a DEFAULT partition.
    let has_default = ctx
        .catalog
        .as_ref()
        .and_then(|c| c.table(&parent_key))
        .map(|t| t.has_default_partition);
    let mut hits = Vec::new();
    for (cmd, t) in ast::alter_cmds(a) {
        if t != AlterTableType::AtDetachPartition {
            continue;
        }
        let Some((pc, part_rv)) = partition_cmd(cmd.def.as_deref()) else {
            continue;
        };
        let part = ast::rel_name(part_rv);
        if pc.concurrent {
            hits.extend(refused_concurrently(ctx, &parent, &part, has_default));
        } else {
            hits.push(blocking(ctx, &parent, &part, has_default));
        }
    }
    hits
}

fn partition_cmd(def: Option<&pg_query::protobuf::Node>) -> Option<(&PartitionCmd, &RangeVar)> {
    match def?.node.as_ref()? {
        NodeEnum::PartitionCmd(p) => Some((p, p.name.as_ref()?)),
        _ => None,
    }
}

fn blocking(ctx: &Context, parent: &str, part: &str, has_default: Option<bool>) -> Hit {
    let default = if has_default == Some(true) {
        " and its DEFAULT partition"
    } else {
        ""
    };
    let hit = Hit::new(format!(
        "detaching {part} locks {parent}, {part}{default} ACCESS EXCLUSIVE: while it waits for \
         running queries, every new query on {parent} queues behind it"
    ));
    if ctx.pg_version < 14 {
        return hit.severity(Severity::Warning).help(format!(
            "DETACH PARTITION ... CONCURRENTLY needs PostgreSQL 14 (the target is {}): run it \
             with a short lock_timeout and retries, off-peak",
            ctx.pg_version
        ));
    }
    if has_default == Some(true) {
        return hit.severity(Severity::Warning).help(format!(
            "CONCURRENTLY is refused while {parent} has a DEFAULT partition: run it with a short \
             lock_timeout and retries, off-peak"
        ));
    }
    let alone = if ctx.in_explicit_transaction() || ctx.wrap == Wrap::File {
        "; it cannot run inside a transaction block, so give it its own migration outside \
         BEGIN/COMMIT"
    } else if matches!(ctx.wrap, Wrap::Engine { .. }) {
        "; pgship's engine runs it outside the transaction"
    } else {
        ""
    };
    hit.help(format!(
        "ALTER TABLE {parent} DETACH PARTITION {part} CONCURRENTLY (SHARE UPDATE EXCLUSIVE on \
         {parent}; if it is interrupted, finish it with DETACH PARTITION {part} FINALIZE){alone}"
    ))
}

/// `DETACH ... CONCURRENTLY` that PostgreSQL refuses.
fn refused_concurrently(
    ctx: &Context,
    parent: &str,
    part: &str,
    has_default: Option<bool>,
) -> Option<Hit> {
    if ctx.pg_version < 14 {
        return Some(
            Hit::new(format!(
                "DETACH PARTITION ... CONCURRENTLY needs PostgreSQL 14 (the target is {}): this \
                 statement fails",
                ctx.pg_version
            ))
            .help(format!(
                "ALTER TABLE {parent} DETACH PARTITION {part}, with a short lock_timeout and \
                 retries, off-peak"
            )),
        );
    }
    if has_default == Some(true) {
        return Some(
            Hit::new(format!(
                "{parent} has a DEFAULT partition, and CONCURRENTLY is refused then: this \
                 statement fails"
            ))
            .help(format!(
                "ALTER TABLE {parent} DETACH PARTITION {part}, with a short lock_timeout and \
                 retries, off-peak"
            )),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::lint::Wrap;
    use crate::lint::catalog::{Catalog, Table};
    use crate::lint::testing::{Opts, render, render_with};

    fn with_default(has_default_partition: bool) -> Opts {
        let mut cat = Catalog::default();
        cat.tables.insert(
            "public.events".into(),
            Table {
                kind: 'p',
                has_default_partition,
                ..Default::default()
            },
        );
        Opts {
            catalog: Some(cat),
            ..Default::default()
        }
    }

    #[test]
    fn flags_a_plain_detach() {
        assert_eq!(
            render("LK15", "ALTER TABLE events DETACH PARTITION events_2023;"),
            "m.sql:1:1: error LK15 detach-partition-blocking: detaching events_2023 locks events, \
             events_2023 ACCESS EXCLUSIVE: while it waits for running queries, every new query on \
             events queues behind it\n  \
             1 | ALTER TABLE events DETACH PARTITION events_2023\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: ALTER TABLE events DETACH PARTITION events_2023 CONCURRENTLY (SHARE UPDATE \
             EXCLUSIVE on events; if it is interrupted, finish it with DETACH PARTITION \
             events_2023 FINALIZE)\n"
        );
    }

    #[test]
    fn passes_concurrently_finalize_and_new_tables() {
        for sql in [
            "ALTER TABLE events DETACH PARTITION events_2023 CONCURRENTLY;",
            "ALTER TABLE events DETACH PARTITION events_2023 FINALIZE;",
            "CREATE TABLE events (at date) PARTITION BY RANGE (at);\n\
             CREATE TABLE events_2023 PARTITION OF events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');\n\
             ALTER TABLE events DETACH PARTITION events_2023;",
            "ALTER TABLE events ATTACH PARTITION events_2023 FOR VALUES IN (1);",
        ] {
            assert_eq!(render("LK15", sql), "", "{sql}");
        }
    }

    #[test]
    fn before_14_there_is_no_alternative() {
        let opts = Opts {
            pg_version: 13,
            ..Default::default()
        };
        let out = render_with("LK15", "ALTER TABLE events DETACH PARTITION p;", opts);
        assert!(
            out.contains("warning LK15") && out.contains("needs PostgreSQL 14 (the target is 13)"),
            "{out}"
        );
        let opts = Opts {
            pg_version: 13,
            ..Default::default()
        };
        let out = render_with(
            "LK15",
            "ALTER TABLE events DETACH PARTITION p CONCURRENTLY;",
            opts,
        );
        assert!(
            out.contains("error LK15") && out.contains("this statement fails"),
            "{out}"
        );
    }

    #[test]
    fn a_default_partition_rules_out_concurrently() {
        let out = render_with(
            "LK15",
            "ALTER TABLE events DETACH PARTITION p;",
            with_default(true),
        );
        assert!(
            out.contains("warning LK15")
                && out.contains("events, p and its DEFAULT partition ACCESS EXCLUSIVE")
                && out.contains("CONCURRENTLY is refused"),
            "{out}"
        );
        let out = render_with(
            "LK15",
            "ALTER TABLE events DETACH PARTITION p CONCURRENTLY;",
            with_default(true),
        );
        assert!(
            out.contains("error LK15") && out.contains("has a DEFAULT partition"),
            "{out}"
        );
        let out = render_with(
            "LK15",
            "ALTER TABLE events DETACH PARTITION p;",
            with_default(false),
        );
        assert!(
            out.contains("error LK15") && out.contains("CONCURRENTLY (SHARE"),
            "{out}"
        );
        assert_eq!(
            render_with(
                "LK15",
                "ALTER TABLE events DETACH PARTITION p CONCURRENTLY;",
                with_default(false)
            ),
            ""
        );
    }

    #[test]
    fn the_help_says_where_concurrently_can_run() {
        let out = render(
            "LK15",
            "BEGIN;\nALTER TABLE events DETACH PARTITION p;\nCOMMIT;",
        );
        assert!(
            out.contains("cannot run inside a transaction block"),
            "{out}"
        );
        let out = render_with(
            "LK15",
            "ALTER TABLE events DETACH PARTITION p;",
            Opts {
                wrap: Wrap::File,
                ..Default::default()
            },
        );
        assert!(
            out.contains("cannot run inside a transaction block"),
            "{out}"
        );
        let out = render_with(
            "LK15",
            "ALTER TABLE app.events DETACH PARTITION app.p;",
            Opts {
                wrap: Wrap::Engine {
                    per_migration: false,
                },
                ..Default::default()
            },
        );
        assert!(
            out.contains("DETACH PARTITION app.p CONCURRENTLY")
                && out.contains("pgship's engine runs it outside the transaction"),
            "{out}"
        );
    }
}
