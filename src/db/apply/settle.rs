//! After a crash: did the statement that was running outside a transaction commit?
//!
//! The engine commits an intent record before such a statement runs, so the next run knows
//! which statement was in flight. This module reads the catalog to tell what it did: a
//! concurrent index that exists and is valid was built (done); an invalid one is dropped and
//! built again; a statement whose repetition is harmless (VACUUM, REINDEX, ANALYZE, CLUSTER)
//! runs again. What the catalog cannot tell (a `CALL`, a `DO` block) is never guessed: the run
//! stops and asks, unless the user said what happened (`--resolve-running`).

use pg_query::NodeEnum;
use tokio_postgres::Client;

use crate::db::quote_ident;

/// What the user says happened to a statement the catalog cannot judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResolveRunning {
    /// It committed: record it and go on with the next statement.
    Done,
    /// It did not (or running it again is safe): run it.
    Rerun,
}

impl std::str::FromStr for ResolveRunning {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "done" => Ok(ResolveRunning::Done),
            "rerun" => Ok(ResolveRunning::Rerun),
            other => Err(format!("`{other}`: expected `done` or `rerun`")),
        }
    }
}

/// The verdict on an interrupted statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// It committed; the reason, for the log.
    Done(String),
    /// Run it (again); the reason.
    Rerun(String),
    /// The catalog cannot tell; what it is.
    Unknown(String),
}

/// Judge `sql`, which was running when an earlier run ended.
pub async fn settle(client: &Client, sql: &str) -> Result<Settled, tokio_postgres::Error> {
    let Some(check) = check_for(sql) else {
        return Ok(Settled::Unknown(
            "the catalog cannot show whether it committed".into(),
        ));
    };
    match check {
        Check::IndexBuilt(name) => {
            let row = client
                .query_opt(
                    "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)",
                    &[&name],
                )
                .await?;
            Ok(match row.map(|r| r.get::<_, bool>(0)) {
                Some(true) => Settled::Done(format!("index {name} exists and is valid")),
                Some(false) => Settled::Rerun(format!(
                    "index {name} was left invalid: it is dropped and built again"
                )),
                None => Settled::Rerun(format!("index {name} does not exist")),
            })
        }
        Check::IndexesDropped(names) => {
            let row = client
                .query_one(
                    "SELECT count(*) FROM unnest($1::text[]) n WHERE to_regclass(n) IS NOT NULL",
                    &[&names],
                )
                .await?;
            Ok(if row.get::<_, i64>(0) == 0 {
                Settled::Done(format!("{} no longer exist(s)", names.join(", ")))
            } else {
                Settled::Rerun(format!("{} still exist(s)", names.join(", ")))
            })
        }
        Check::EnumValue { type_name, value } => {
            let row = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_enum WHERE enumtypid = to_regtype($1) AND enumlabel = $2)",
                    &[&type_name, &value],
                )
                .await?;
            Ok(if row.get::<_, bool>(0) {
                Settled::Done(format!("{type_name} has the value '{value}'"))
            } else {
                Settled::Rerun(format!("{type_name} lacks the value '{value}'"))
            })
        }
        Check::Repeatable(what) => Ok(Settled::Rerun(format!("{what} is harmless to run again"))),
    }
}

/// How the catalog shows a statement's effect.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Check {
    /// `CREATE INDEX CONCURRENTLY name`: the index, qualified and quoted.
    IndexBuilt(String),
    /// `DROP INDEX CONCURRENTLY`: the indexes.
    IndexesDropped(Vec<String>),
    /// `ALTER TYPE ... ADD VALUE`.
    EnumValue { type_name: String, value: String },
    /// Running it again does no harm.
    Repeatable(&'static str),
}

fn check_for(sql: &str) -> Option<Check> {
    let parsed = pg_query::parse(sql, 0).ok()?;
    let [raw] = parsed.protobuf.stmts.as_slice() else {
        return None;
    };
    match raw.stmt.as_ref()?.node.as_ref()? {
        NodeEnum::IndexStmt(s) if !s.idxname.is_empty() => {
            let schema = s.relation.as_ref().map_or("", |r| r.schemaname.as_str());
            Some(Check::IndexBuilt(qualified(schema, &s.idxname)))
        }
        NodeEnum::DropStmt(s)
            if s.remove_type == pg_query::protobuf::ObjectType::ObjectIndex as i32 =>
        {
            let names: Vec<String> = s.objects.iter().filter_map(list_name).collect();
            (!names.is_empty()).then_some(Check::IndexesDropped(names))
        }
        NodeEnum::AlterEnumStmt(s) if !s.new_val.is_empty() && s.old_val.is_empty() => {
            let parts: Vec<String> = s.type_name.iter().filter_map(string_of).collect();
            Some(Check::EnumValue {
                type_name: parts
                    .iter()
                    .map(|p| quote_ident(p))
                    .collect::<Vec<_>>()
                    .join("."),
                value: s.new_val.clone(),
            })
        }
        NodeEnum::ReindexStmt(_) => Some(Check::Repeatable("REINDEX")),
        NodeEnum::VacuumStmt(_) => Some(Check::Repeatable("VACUUM/ANALYZE")),
        NodeEnum::ClusterStmt(_) => Some(Check::Repeatable("CLUSTER")),
        _ => None,
    }
}

fn qualified(schema: &str, name: &str) -> String {
    if schema.is_empty() {
        quote_ident(name)
    } else {
        format!("{}.{}", quote_ident(schema), quote_ident(name))
    }
}

fn string_of(n: &pg_query::protobuf::Node) -> Option<String> {
    match n.node.as_ref()? {
        NodeEnum::String(s) => Some(s.sval.clone()),
        _ => None,
    }
}

/// A `List` of name parts (`schema.index`) as a quoted qualified name.
fn list_name(n: &pg_query::protobuf::Node) -> Option<String> {
    let NodeEnum::List(l) = n.node.as_ref()? else {
        return None;
    };
    let parts: Vec<String> = l.items.iter().filter_map(string_of).collect();
    (!parts.is_empty()).then(|| {
        parts
            .iter()
            .map(|p| quote_ident(p))
            .collect::<Vec<_>>()
            .join(".")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_catalog_can_show() {
        assert_eq!(
            check_for("CREATE UNIQUE INDEX CONCURRENTLY \"i\" ON app.t (c)"),
            Some(Check::IndexBuilt("\"app\".\"i\"".into()))
        );
        assert_eq!(
            check_for("DROP INDEX CONCURRENTLY IF EXISTS a.i1"),
            Some(Check::IndexesDropped(vec!["\"a\".\"i1\"".into()]))
        );
        assert_eq!(
            check_for("ALTER TYPE \"public\".\"mood\" ADD VALUE 'meh'"),
            Some(Check::EnumValue {
                type_name: "\"public\".\"mood\"".into(),
                value: "meh".into()
            })
        );
        assert_eq!(
            check_for("VACUUM ANALYZE t"),
            Some(Check::Repeatable("VACUUM/ANALYZE"))
        );
        assert_eq!(check_for("CALL fill()"), None);
        assert_eq!(check_for("CREATE INDEX CONCURRENTLY ON t (c)"), None);
        assert_eq!(check_for("SELECT 1; SELECT 2"), None);
    }
}
