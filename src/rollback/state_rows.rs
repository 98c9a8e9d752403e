//! Deleting the migration-state rows of rolled-back migrations (drizzle's table and
//! `pgship.applied_migrations`), so the same migrations apply again afterwards. The rows are
//! deleted in the same transaction as the rollback's own changes.

use tokio_postgres::Client;

use crate::db::plan::version_of;
use crate::db::state::StateTable;
use crate::db::{DbError, quote_literal};
use crate::source::{Migration, MigrationId, SourceKind};

/// Which state tables exist.
#[derive(Debug, Clone, Copy, Default)]
pub struct Present {
    pub drizzle: bool,
    pub pgship: bool,
}

pub async fn present(client: &Client, state: &StateTable) -> Result<Present, DbError> {
    let exists = |q: String| async move {
        client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&q])
            .await
            .map(|r| r.get::<_, bool>(0))
            .map_err(|e| DbError::query(format!("looking up {q}"), &e))
    };
    Ok(Present {
        drizzle: match state.drizzle_qualified() {
            Some(q) => exists(q).await?,
            None => false,
        },
        pgship: exists("pgship.applied_migrations".into()).await?,
    })
}

/// The statements deleting `m`'s state rows.
pub fn deletes(state: &StateTable, present: Present, m: &Migration) -> Vec<String> {
    let mut out = Vec::new();
    if let (true, Some(q), MigrationId::Drizzle { when }) =
        (present.drizzle, state.drizzle_qualified(), &m.id)
    {
        if state.kind == SourceKind::DrizzleV1 {
            out.push(format!(
                "DELETE FROM {q} WHERE name = {} OR (name IS NULL AND created_at = {when})",
                quote_literal(&m.name)
            ));
        } else {
            out.push(format!("DELETE FROM {q} WHERE created_at = {when}"));
        }
    }
    if present.pgship {
        out.push(format!(
            "DELETE FROM pgship.applied_migrations WHERE source_kind = {} AND version = {}",
            quote_literal(state.kind.as_str()),
            quote_literal(&version_of(m))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::DrizzleTable;

    fn mig(id: MigrationId) -> Migration {
        Migration {
            id,
            path: "x".into(),
            ..crate::source::testing::migration("0001_add'x")
        }
    }

    #[test]
    fn deletes_per_source_kind() {
        let all = Present {
            drizzle: true,
            pgship: true,
        };
        let d = StateTable::for_source(SourceKind::Drizzle, &DrizzleTable::default());
        assert_eq!(
            deletes(&d, all, &mig(MigrationId::Drizzle { when: 1700 })),
            [
                "DELETE FROM \"drizzle\".\"__drizzle_migrations\" WHERE created_at = 1700",
                "DELETE FROM pgship.applied_migrations WHERE source_kind = 'drizzle' AND version = '1700'",
            ]
        );
        let v1 = StateTable::for_source(SourceKind::DrizzleV1, &DrizzleTable::default());
        assert!(
            deletes(&v1, all, &mig(MigrationId::Drizzle { when: 5 }))[0]
                .contains("name = '0001_add''x'")
        );
        let sql = StateTable::for_source(SourceKind::Sql, &DrizzleTable::default());
        let m = mig(MigrationId::Sql {
            version: "007".into(),
        });
        assert_eq!(
            deletes(&sql, all, &m),
            ["DELETE FROM pgship.applied_migrations WHERE source_kind = 'sql' AND version = '007'"]
        );
        assert!(deletes(&sql, Present::default(), &m).is_empty());
    }
}
