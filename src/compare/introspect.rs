//! Read a [`Model`] from a live database: a fixed number of catalog queries (thirteen),
//! whatever the number of tables, sent together in one read-only repeatable-read transaction
//! with `search_path = public`, so every `format_type` and `pg_get_*` text is printed the way
//! the vocabulary names types. Works on PostgreSQL 13 to 18.
//!
//! Objects that belong to extensions are left out (they are the extension's), and so are
//! objects PostgreSQL derives: indexes, constraints and triggers cloned onto partitions,
//! inherited constraints, identity sequences (part of their column), NOT NULL constraints
//! (PostgreSQL 18 stores them in pg_constraint; they are the column's nullability).

use std::collections::BTreeMap;

use tokio_postgres::{Client, Row};

use super::SchemaFilter;
use super::model::*;
use crate::db::DbError;

/// `NOT EXISTS` an extension-membership row for the object `oid` of catalog `cat`.
fn not_ext(cat: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = 'pg_catalog.{cat}'::regclass \
         AND e.objid = {oid} AND e.deptype = 'e')"
    )
}

fn filter(col: &str) -> String {
    SchemaFilter::sql(col, 1, 2)
}

fn queries() -> Vec<String> {
    let f = filter("n.nspname");
    vec![
        // 0 schemas
        format!(
            "SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE {f} AND {}",
            not_ext("pg_namespace", "n.oid")
        ),
        // 1 extensions (those in a compared schema or in pg_catalog)
        format!(
            "SELECT x.extname, x.extversion FROM pg_catalog.pg_extension x \
             JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace \
             WHERE ({f} OR n.nspname = 'pg_catalog')"
        ),
        // 2 collations
        format!(
            "SELECT n.nspname, c.collname FROM pg_catalog.pg_collation c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.collnamespace WHERE {f} AND {}",
            not_ext("pg_collation", "c.oid")
        ),
        // 3 enums
        format!(
            "SELECT n.nspname, t.typname, \
               coalesce((SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) \
                         FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid), '{{}}') \
             FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
             WHERE t.typtype = 'e' AND {f} AND {}",
            not_ext("pg_type", "t.oid")
        ),
        // 4 domains
        format!(
            "SELECT n.nspname, t.typname, \
               pg_catalog.format_type(t.typbasetype, t.typtypmod) \
               || CASE WHEN t.typcollation <> 0 AND t.typcollation <> bt.typcollation \
                   THEN ' COLLATE ' || (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) \
                        FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace \
                        WHERE co.oid = t.typcollation) ELSE '' END \
               || CASE WHEN t.typdefault IS NOT NULL THEN ' DEFAULT ' || t.typdefault ELSE '' END \
               || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END \
               || coalesce((SELECT string_agg(' CONSTRAINT ' || quote_ident(c.conname) || ' ' \
                        || pg_catalog.pg_get_constraintdef(c.oid), '' ORDER BY c.conname) \
                    FROM pg_catalog.pg_constraint c WHERE c.contypid = t.oid AND c.contype = 'c'), '') \
             FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
             JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype \
             WHERE t.typtype = 'd' AND {f} AND {}",
            not_ext("pg_type", "t.oid")
        ),
        // 5 sequences, with their owning column; identity sequences come back with deptype 'i'
        format!(
            "SELECT n.nspname, c.relname, pg_catalog.format_type(s.seqtypid, NULL), s.seqstart, \
               s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle, d.deptype::text, \
               dn.nspname, dc.relname, a.attname \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid \
             LEFT JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass \
               AND d.objid = c.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass \
               AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i') \
             LEFT JOIN pg_catalog.pg_class dc ON dc.oid = d.refobjid \
             LEFT JOIN pg_catalog.pg_namespace dn ON dn.oid = dc.relnamespace \
             LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
             WHERE c.relkind = 'S' AND {f} AND {}",
            not_ext("pg_class", "c.oid")
        ),
        // 6 relations: tables, partitioned tables, views, materialized views
        format!(
            "SELECT n.nspname, c.relname, c.relkind::text, c.relpersistence::text, \
               CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END, \
               (SELECT pn.nspname || '.' || pc.relname FROM pg_catalog.pg_inherits i \
                  JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent \
                  JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace \
                  WHERE i.inhrelid = c.oid AND c.relispartition), \
               CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END, \
               coalesce((SELECT array_agg(pn.nspname || '.' || pc.relname ORDER BY i.inhseqno) \
                  FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent \
                  JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace \
                  WHERE i.inhrelid = c.oid AND NOT c.relispartition), '{{}}'), \
               c.relrowsecurity, c.relforcerowsecurity, c.relreplident::text, \
               CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END, \
               d.description, c.oid \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_catalog.pg_description d ON d.objoid = c.oid \
               AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0 \
             WHERE c.relkind IN ('r', 'p', 'v', 'm') AND c.relpersistence <> 't' AND {f} AND {}",
            not_ext("pg_class", "c.oid")
        ),
        // 7 columns of tables
        format!(
            "SELECT n.nspname, c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), \
               a.attnotnull, \
               CASE WHEN a.attgenerated = '' THEN pg_catalog.pg_get_expr(ad.adbin, 0) END, \
               CASE WHEN a.attgenerated <> '' THEN pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) END, \
               a.attidentity::text, \
               CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN \
                 (SELECT CASE WHEN cn.nspname = 'pg_catalog' THEN co.collname \
                         ELSE cn.nspname || '.' || co.collname END \
                  FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace \
                  WHERE co.oid = a.attcollation) END, \
               d.description, a.attnum::int4 \
             FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
             LEFT JOIN pg_catalog.pg_description d ON d.objoid = c.oid \
               AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = a.attnum \
             WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't' AND a.attnum > 0 \
               AND NOT a.attisdropped AND {f} AND {}",
            not_ext("pg_class", "c.oid")
        ),
        // 8 constraints of tables (local, not cloned from a partitioned parent, not NOT NULL)
        format!(
            "SELECT n.nspname, c.relname, co.conname, co.contype::text, \
               pg_catalog.pg_get_constraintdef(co.oid) \
             FROM pg_catalog.pg_constraint co JOIN pg_catalog.pg_class c ON c.oid = co.conrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE co.contype IN ('p', 'f', 'u', 'c', 'x') AND co.conislocal AND co.conparentid = 0 \
               AND c.relkind IN ('r', 'p') AND c.relpersistence <> 't' AND {f} AND {}",
            not_ext("pg_class", "c.oid")
        ),
        // 9 indexes (not those attached to a partitioned parent index)
        format!(
            "SELECT n.nspname, i.relname, c.relname, pg_catalog.pg_get_indexdef(i.oid), \
               d.description \
             FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid \
             JOIN pg_catalog.pg_class c ON c.oid = x.indrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = i.relnamespace \
             LEFT JOIN pg_catalog.pg_description d ON d.objoid = i.oid \
               AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0 \
             WHERE NOT i.relispartition AND c.relkind IN ('r', 'p', 'm') AND c.relpersistence <> 't' \
               AND {f} AND {}",
            not_ext("pg_class", "c.oid")
        ),
        // 10 triggers (user triggers, not clones of a partitioned parent's)
        format!(
            "SELECT n.nspname, c.relname, t.tgname, pg_catalog.pg_get_triggerdef(t.oid), \
               t.tgenabled::text \
             FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND c.relkind IN ('r', 'p', 'v', 'm') \
               AND {f} AND {}",
            not_ext("pg_class", "c.oid")
        ),
        // 11 policies
        format!(
            "SELECT n.nspname, c.relname, p.polname, p.polpermissive, p.polcmd::text, \
               (SELECT array_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(r)::text END \
                  ORDER BY 1) FROM unnest(p.polroles) r), \
               pg_catalog.pg_get_expr(p.polqual, p.polrelid), \
               pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) \
             FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE {f} AND {}",
            not_ext("pg_class", "c.oid")
        ),
        // 12 functions and procedures
        format!(
            "SELECT n.nspname, p.proname, pg_catalog.oidvectortypes(p.proargtypes), p.prokind::text, \
               pg_catalog.pg_get_functiondef(p.oid), d.description \
             FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
             LEFT JOIN pg_catalog.pg_description d ON d.objoid = p.oid \
               AND d.classoid = 'pg_catalog.pg_proc'::regclass AND d.objsubid = 0 \
             WHERE p.prokind IN ('f', 'p', 'w') AND {f} AND {}",
            not_ext("pg_proc", "p.oid")
        ),
        // 13 relation privileges of roles other than the owner
        format!(
            "SELECT n.nspname, c.relname, \
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END, \
               a.privilege_type, a.is_grantable \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a \
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND a.grantee <> c.relowner \
               AND c.relpersistence <> 't' AND {f} AND {}",
            not_ext("pg_class", "c.oid")
        ),
    ]
}

/// How many queries introspection sends, whatever the size of the schema.
pub fn query_count() -> usize {
    queries().len()
}

fn q(schema: &str, name: &str) -> String {
    format!("{schema}.{name}")
}

/// Read the model of the schemas `filter` allows.
pub async fn introspect(client: &Client, filter: &SchemaFilter) -> Result<Model, DbError> {
    let ctx = "reading the schema";
    client
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL search_path = public",
        )
        .await
        .map_err(|e| DbError::query(ctx, &e))?;
    let result = run_queries(client, filter).await;
    let _ = client.batch_execute("ROLLBACK").await;
    build(result.map_err(|e| DbError::query(ctx, &e))?)
}

async fn run_queries(
    client: &Client,
    filter: &SchemaFilter,
) -> Result<Vec<Vec<Row>>, tokio_postgres::Error> {
    let sqls = queries();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] =
        [&filter.include, &filter.exclude];
    // Sent together: tokio-postgres pipelines queries that are polled concurrently.
    let mut futures = Vec::with_capacity(sqls.len());
    for sql in &sqls {
        futures.push(client.query(sql.as_str(), &params));
    }
    let mut out = Vec::with_capacity(futures.len());
    for r in join_all(futures).await {
        out.push(r?);
    }
    Ok(out)
}

/// Poll every future together and collect their results in order.
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futures.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => results[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results
        .into_iter()
        .map(|r| r.expect("every future finished"))
        .collect()
}

fn options(row: &Row, start: usize) -> SequenceOptions {
    SequenceOptions {
        start: row.get(start),
        increment: row.get(start + 1),
        max: row.get(start + 2),
        min: row.get(start + 3),
        cache: row.get(start + 4),
        cycle: row.get(start + 5),
    }
}

fn build(mut rows: Vec<Vec<Row>>) -> Result<Model, DbError> {
    let mut m = Model::default();
    let privileges_rows = rows.pop().unwrap_or_default();
    let mut it = rows.into_iter();
    let mut next = || it.next().unwrap_or_default();

    for r in next() {
        m.schemas.insert(r.get(0));
    }
    for r in next() {
        m.extensions.insert(r.get(0), r.get(1));
    }
    for r in next() {
        m.collations.insert(q(r.get(0), r.get(1)));
    }
    for r in next() {
        m.enums.insert(q(r.get(0), r.get(1)), r.get(2));
    }
    for r in next() {
        m.domains.insert(
            q(r.get(0), r.get(1)),
            Domain {
                definition: r.get(2),
            },
        );
    }
    // Identity sequences: (table, column) -> options, attached to the column below.
    let mut identity: BTreeMap<(String, String), SequenceOptions> = BTreeMap::new();
    for r in next() {
        let deptype: Option<String> = r.get(9);
        let owner = match (
            r.get::<_, Option<String>>(10),
            r.get::<_, Option<String>>(11),
            r.get::<_, Option<String>>(12),
        ) {
            (Some(s), Some(t), Some(c)) => Some((q(&s, &t), c)),
            _ => None,
        };
        if deptype.as_deref() == Some("i") {
            if let Some(o) = owner {
                identity.insert(o, options(&r, 3));
            }
            continue;
        }
        m.sequences.insert(
            q(r.get(0), r.get(1)),
            Sequence {
                data_type: r.get(2),
                options: options(&r, 3),
                owner: owner.map(|(t, c)| format!("{t}.{c}")),
                privileges: Privileges::new(),
            },
        );
    }
    for r in next() {
        let name = q(r.get(0), r.get(1));
        let kind: String = r.get(2);
        let comment: Option<String> = r.get(12);
        match kind.as_str() {
            "v" | "m" => {
                m.views.insert(
                    name,
                    View {
                        materialized: kind == "m",
                        definition: r.get::<_, Option<String>>(11).unwrap_or_default(),
                        triggers: BTreeMap::new(),
                        privileges: Privileges::new(),
                        comment,
                    },
                );
            }
            _ => {
                let parent: Option<String> = r.get(5);
                let bound: Option<String> = r.get(6);
                m.tables.insert(
                    name,
                    Table {
                        oid: CatalogId(Some(r.get::<_, u32>(13))),
                        unlogged: r.get::<_, String>(3) == "u",
                        partition_key: r.get(4),
                        partition_of: parent.map(|parent| Partition {
                            parent,
                            bound: bound.unwrap_or_default(),
                        }),
                        inherits: r.get(7),
                        rls: r.get(8),
                        force_rls: r.get(9),
                        replica_identity: ReplicaIdentity::from_char(&r.get::<_, String>(10)),
                        columns: BTreeMap::new(),
                        constraints: BTreeMap::new(),
                        triggers: BTreeMap::new(),
                        policies: BTreeMap::new(),
                        privileges: Privileges::new(),
                        comment,
                    },
                );
            }
        }
    }
    for r in next() {
        let table = q(r.get(0), r.get(1));
        let column: String = r.get(2);
        let ident: String = r.get(7);
        let identity_kind = match ident.as_str() {
            "a" => Some(Identity::Always),
            "d" => Some(Identity::ByDefault),
            _ => None,
        };
        let identity_options =
            identity_kind.and_then(|_| identity.get(&(table.clone(), column.clone())).cloned());
        if let Some(t) = m.tables.get_mut(&table) {
            t.columns.insert(
                column,
                Column {
                    attnum: CatalogId(u32::try_from(r.get::<_, i32>(10)).ok()),
                    data_type: r.get(3),
                    not_null: r.get(4),
                    default: r.get(5),
                    identity: identity_kind,
                    identity_options,
                    generated: r.get(6),
                    collation: r.get(8),
                    comment: r.get(9),
                },
            );
        }
    }
    for r in next() {
        let table = q(r.get(0), r.get(1));
        let Some(kind) = ConstraintKind::from_contype(&r.get::<_, String>(3)) else {
            continue;
        };
        if let Some(t) = m.tables.get_mut(&table) {
            t.constraints.insert(
                r.get(2),
                Constraint {
                    kind,
                    definition: r.get(4),
                },
            );
        }
    }
    for r in next() {
        m.indexes.insert(
            q(r.get(0), r.get(1)),
            Index {
                table: q(r.get(0), r.get(2)),
                definition: r.get(3),
                comment: r.get(4),
            },
        );
    }
    for r in next() {
        let rel = q(r.get(0), r.get(1));
        let enabled: String = r.get(4);
        let mut def: String = r.get(3);
        if enabled != "O" {
            let state = match enabled.as_str() {
                "D" => "DISABLED",
                "R" => "ENABLED REPLICA",
                _ => "ENABLED ALWAYS",
            };
            def = format!("{def} [{state}]");
        }
        if let Some(t) = m.tables.get_mut(&rel) {
            t.triggers.insert(r.get(2), def);
        } else if let Some(v) = m.views.get_mut(&rel) {
            v.triggers.insert(r.get(2), def);
        }
    }
    for r in next() {
        let rel = q(r.get(0), r.get(1));
        let permissive: bool = r.get(3);
        let cmd = match r.get::<_, String>(4).as_str() {
            "r" => "SELECT",
            "a" => "INSERT",
            "w" => "UPDATE",
            "d" => "DELETE",
            _ => "ALL",
        };
        let roles: Option<Vec<String>> = r.get(5);
        let mut def = format!(
            "AS {} FOR {cmd} TO {}",
            if permissive {
                "PERMISSIVE"
            } else {
                "RESTRICTIVE"
            },
            roles.unwrap_or_default().join(", ")
        );
        if let Some(u) = r.get::<_, Option<String>>(6) {
            def.push_str(&format!(" USING ({u})"));
        }
        if let Some(c) = r.get::<_, Option<String>>(7) {
            def.push_str(&format!(" WITH CHECK ({c})"));
        }
        if let Some(t) = m.tables.get_mut(&rel) {
            t.policies.insert(r.get(2), def);
        }
    }
    for r in next() {
        let name = format!(
            "{}.{}({})",
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, String>(2)
        );
        m.functions.insert(
            name,
            Function {
                procedure: r.get::<_, String>(3) == "p",
                definition: r.get(4),
                comment: r.get(5),
            },
        );
    }
    for r in privileges_rows {
        let rel = q(r.get(0), r.get(1));
        let role: String = r.get(2);
        let privilege: String = r.get(3);
        let grantable: bool = r.get(4);
        let target = if let Some(t) = m.tables.get_mut(&rel) {
            &mut t.privileges
        } else if let Some(v) = m.views.get_mut(&rel) {
            &mut v.privileges
        } else if let Some(s) = m.sequences.get_mut(&rel) {
            &mut s.privileges
        } else {
            continue;
        };
        let entry = target
            .entry(role)
            .or_default()
            .entry(privilege)
            .or_insert(false);
        // Grants from several grantors: WITH GRANT OPTION from any of them counts.
        *entry |= grantable;
    }
    Ok(m)
}
