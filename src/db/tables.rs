//! The user tables of a database, by name: what the data-loss guard watches before anything
//! is known to be touched. Read-only.

use tokio_postgres::Client;

use super::DbError;

/// Ordinary and partitioned tables (not partitions: a partitioned table stands for them)
/// outside the system schemas and `pgship`: oid and `schema.table`, unquoted, in name order.
pub async fn user_tables(client: &Client) -> Result<Vec<(u32, String)>, DbError> {
    let rows = client
        .query(
            "SELECT c.oid, n.nspname || '.' || c.relname FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgship') \
               AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
             ORDER BY 2",
            &[],
        )
        .await
        .map_err(|e| DbError::query("listing the tables", &e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
