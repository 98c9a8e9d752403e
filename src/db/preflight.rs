//! Checks on the target before anything is applied that a state table's rows cannot show: the
//! state kept in another table than the configured one (a `drizzle.config.ts` whose
//! `migrations.table` differs from the app's `migrate()` call), and a first pending migration
//! whose objects already exist (the database was migrated by something pgship does not see).
//!
//! Read-only; each finding is a sentence for a refusal that says where the state is and how to
//! configure it.

use pg_query::NodeEnum;
use tokio_postgres::Client;

use super::state::StateTable;
use super::{DbError, quote_ident};
use crate::source::{DrizzleTable, Migration, split};

/// A table shaped like drizzle's state table (`hash text`, `created_at bigint`) holding rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherState {
    pub schema: String,
    pub table: String,
    pub rows: i64,
}

/// Why applying `first` (the first pending migration, from statement `start_at`) onto this
/// target would go wrong, as refusal sentences: empty when nothing looks off. `records` is how
/// many state rows the configured table holds.
pub async fn state_mismatch(
    client: &Client,
    table: &StateTable,
    records: usize,
    first: Option<(&Migration, usize)>,
) -> Result<Vec<String>, DbError> {
    let mut out = Vec::new();
    if let Some(d) = &table.drizzle
        && records == 0
    {
        for other in other_drizzle_tables(client, d).await? {
            out.push(format!(
                "state: the configured state table {}.{} has no rows, but {}.{} holds {} drizzle \
                 state row(s): the app's migrate() keeps its state there. Set `migrations: {{ \
                 schema: \"{}\", table: \"{}\" }}` in drizzle.config.ts (or [migrations] \
                 drizzle_schema/drizzle_table in pgship.toml) so pgship reads the same state",
                d.schema, d.table, other.schema, other.table, other.rows, other.schema, other.table
            ));
        }
    }
    if let Some((m, start_at)) = first {
        let existing = existing_objects(client, m, start_at).await?;
        if !existing.is_empty() {
            out.push(format!(
                "state: {} is pending but the objects it creates already exist ({}): the \
                 database was migrated with its state kept elsewhere (check the state table \
                 settings in drizzle.config.ts or pgship.toml), or by hand",
                m.name,
                fold(&existing, 5)
            ));
        }
    }
    Ok(out)
}

/// Tables other than `configured` with drizzle's state columns and at least one row.
pub async fn other_drizzle_tables(
    client: &Client,
    configured: &DrizzleTable,
) -> Result<Vec<OtherState>, DbError> {
    let rows = client
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgship') \
               AND NOT (n.nspname = $1 AND c.relname = $2) \
               AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'hash' \
                           AND a.atttypid = 'text'::regtype AND NOT a.attisdropped) \
               AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'created_at' \
                           AND a.atttypid = 'bigint'::regtype AND NOT a.attisdropped) \
               AND has_table_privilege(c.oid, 'SELECT') \
             ORDER BY 1, 2",
            &[&configured.schema, &configured.table],
        )
        .await
        .map_err(|e| DbError::query("looking for other drizzle state tables", &e))?;
    let mut out = Vec::new();
    for r in rows {
        let (schema, table): (String, String) = (r.get(0), r.get(1));
        let sql = format!(
            "SELECT count(*) FROM {}.{}",
            quote_ident(&schema),
            quote_ident(&table)
        );
        let count: i64 = client
            .query_one(&sql, &[])
            .await
            .map_err(|e| DbError::query(format!("counting {schema}.{table}"), &e))?
            .get(0);
        if count > 0 {
            out.push(OtherState {
                schema,
                table,
                rows: count,
            });
        }
    }
    Ok(out)
}

/// Objects that statements `start_at..` of `m` create without `IF NOT EXISTS` (tables, views,
/// sequences, named indexes, enum types, schemas) and that already exist, by name. One query
/// for all of them, whatever the size of the migration.
pub async fn existing_objects(
    client: &Client,
    m: &Migration,
    start_at: usize,
) -> Result<Vec<String>, DbError> {
    let mut created = Vec::new();
    for s in m.statements.iter().skip(start_at) {
        let (objects, removes) = created_objects(&s.sql);
        created.extend(objects);
        // Past a DROP or a RENAME, an object may be created again under a name in use before.
        if removes {
            break;
        }
    }
    if created.is_empty() {
        return Ok(Vec::new());
    }
    let kinds: Vec<&str> = created.iter().map(|c| c.kind.as_str()).collect();
    let names: Vec<String> = created
        .iter()
        .map(|c| match c.kind {
            Kind::Schema => c.name.trim_matches('"').replace("\"\"", "\""),
            _ => c.name.clone(),
        })
        .collect();
    let rows = client
        .query(
            "SELECT t.i FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(kind, name, i) \
             WHERE CASE t.kind WHEN 'relation' THEN to_regclass(t.name) IS NOT NULL \
                               WHEN 'type' THEN to_regtype(t.name) IS NOT NULL \
                               ELSE EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = t.name) END \
             ORDER BY t.i",
            &[&kinds, &names],
        )
        .await
        .map_err(|e| {
            DbError::query(
                format!("checking whether the objects {} creates exist", m.name),
                &e,
            )
        })?;
    Ok(rows
        .iter()
        .filter_map(|r| usize::try_from(r.get::<_, i64>(0)).ok())
        .filter_map(|i| created.get(i.wrapping_sub(1)))
        .map(|c| c.name.clone())
        .collect())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Relation,
    Type,
    Schema,
}

impl Kind {
    fn as_str(&self) -> &'static str {
        match self {
            Kind::Relation => "relation",
            Kind::Type => "type",
            Kind::Schema => "schema",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Created {
    kind: Kind,
    /// Quoted, qualified when the SQL qualified it.
    name: String,
}

/// What `sql` creates without `IF NOT EXISTS`, as far as the parser tells, and whether it also
/// drops or renames something (which ends the check: names may be reused after it).
fn created_objects(sql: &str) -> (Vec<Created>, bool) {
    // Data statements create nothing: only whether they parse matters, which the parser tells
    // without building the tree (the bulk of a data migration is INSERTs).
    let first = split::first_token_offset(sql).unwrap_or(0);
    if split::plain_dml(&sql[first..]) {
        return (Vec::new(), pg_query::split_with_parser(sql).is_err());
    }
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return (Vec::new(), true);
    };
    let mut removes = false;
    let rel = |r: &pg_query::protobuf::RangeVar| Created {
        kind: Kind::Relation,
        name: qualified(&r.schemaname, &r.relname),
    };
    let mut out = Vec::new();
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            continue;
        };
        match node {
            NodeEnum::CreateStmt(s) if !s.if_not_exists => out.extend(s.relation.as_ref().map(rel)),
            NodeEnum::CreateSeqStmt(s) if !s.if_not_exists => {
                out.extend(s.sequence.as_ref().map(rel));
            }
            NodeEnum::ViewStmt(s) if !s.replace => out.extend(s.view.as_ref().map(rel)),
            NodeEnum::IndexStmt(s) if !s.if_not_exists && !s.idxname.is_empty() => {
                let schema = s.relation.as_ref().map_or("", |r| r.schemaname.as_str());
                out.push(Created {
                    kind: Kind::Relation,
                    name: qualified(schema, &s.idxname),
                });
            }
            NodeEnum::CreateEnumStmt(s) => out.push(Created {
                kind: Kind::Type,
                name: type_name(&s.type_name),
            }),
            NodeEnum::CreateSchemaStmt(s) if !s.if_not_exists && !s.schemaname.is_empty() => {
                out.push(Created {
                    kind: Kind::Schema,
                    name: quote_ident(&s.schemaname),
                });
            }
            NodeEnum::DropStmt(_) | NodeEnum::RenameStmt(_) => removes = true,
            _ => {}
        }
    }
    (out, removes)
}

fn qualified(schema: &str, name: &str) -> String {
    if schema.is_empty() {
        quote_ident(name)
    } else {
        format!("{}.{}", quote_ident(schema), quote_ident(name))
    }
}

fn type_name(parts: &[pg_query::protobuf::Node]) -> String {
    let names: Vec<String> = parts
        .iter()
        .filter_map(|n| match n.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(quote_ident(&s.sval)),
            _ => None,
        })
        .collect();
    names.join(".")
}

fn fold(items: &[String], keep: usize) -> String {
    crate::util::fold_list(items, keep, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_drizzle_statements_create() {
        let (got, removes) = created_objects(
            "CREATE TABLE \"users\" (id int);\nCREATE TABLE IF NOT EXISTS t2 (a int);\n\
             CREATE TYPE \"public\".\"role\" AS ENUM('a');\nCREATE INDEX \"users_idx\" ON \"app\".\"users\" (id);\n\
             CREATE SCHEMA \"app\";\nCREATE SEQUENCE s;\nCREATE OR REPLACE VIEW v AS SELECT 1;\n\
             ALTER TABLE users ADD COLUMN b int;",
        );
        let names: Vec<(Kind, &str)> = got
            .iter()
            .map(|c| (c.kind.clone(), c.name.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (Kind::Relation, "\"users\""),
                (Kind::Type, "\"public\".\"role\""),
                (Kind::Relation, "\"app\".\"users_idx\""),
                (Kind::Schema, "\"app\""),
                (Kind::Relation, "\"s\""),
            ]
        );
        assert!(!removes);
        assert!(created_objects("not sql at all").0.is_empty());
        assert_eq!(
            created_objects("-- rows\nINSERT INTO users VALUES (1), (2)"),
            (Vec::new(), false)
        );
        assert!(created_objects("INSERT INTO users VALUES ((1)").1);
        assert!(created_objects("DROP TABLE a; CREATE TABLE a (x int)").1);
    }
}
