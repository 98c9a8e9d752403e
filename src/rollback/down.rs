//! The down method: each applied (or partially applied) pending migration's down script, in
//! reverse order, in its own transaction together with the deletion of its state rows, the
//! way the apply engine runs migrations. A down statement PostgreSQL refuses inside a
//! transaction runs alone between committed segments.

use tokio_postgres::Client;

use super::{Inputs, Method, RollbackError, RolledBack, state_rows};
use crate::db::plan::{Status, classify};
use crate::db::{Conn, describe, state};
use crate::source::Migration;

pub(crate) async fn run(conn: &Conn, i: &Inputs<'_>) -> Result<RolledBack, RollbackError> {
    let client = &conn.client;
    let st = state::read(client, i.state).await?;
    let owned: Vec<Migration> = i.pending.iter().map(|m| (*m).clone()).collect();
    let statuses = classify(&owned, &st.records, &st.partials, i.state.matching()).statuses;
    let present = state_rows::present(client, i.state).await?;
    let mut done = Vec::new();
    for (m, status) in i.pending.iter().zip(statuses).rev() {
        if !matches!(
            status,
            Status::Applied
                | Status::Edited { .. }
                | Status::Partial { .. }
                | Status::PartialChanged { .. }
        ) {
            continue;
        }
        let Some(script) = &m.down else {
            return Err(RollbackError::Invalid(format!(
                "{} has no down script; use the restore method",
                m.name
            )));
        };
        let deletes = state_rows::deletes(i.state, present, m);
        let failed =
            |statement: usize, line: u32, message: String, done: &[String]| RollbackError::Down {
                migration: m.name.clone(),
                file: script.path.display().to_string(),
                statement,
                line,
                message,
                done: done.to_vec(),
            };
        exec(client, "BEGIN")
            .await
            .map_err(|e| failed(0, 0, e, &done))?;
        for (n, s) in script.statements.iter().enumerate() {
            let alone = !s.tx.allows_transaction(conn.version.major());
            let r = if alone {
                // Commit what came before, run the statement alone, open the next segment.
                match exec(client, "COMMIT").await {
                    Ok(()) => match exec(client, &s.sql).await {
                        Ok(()) => exec(client, "BEGIN").await,
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                }
            } else {
                exec(client, &s.sql).await
            };
            if let Err(e) = r {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(failed(n + 1, s.line, e, &done));
            }
        }
        let mut tail = vec!["RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL".to_string()];
        tail.extend(deletes);
        tail.push("COMMIT".into());
        for sql in &tail {
            if let Err(e) = exec(client, sql).await {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(failed(
                    script.statements.len(),
                    0,
                    format!("deleting its state rows: {e}"),
                    &done,
                ));
            }
        }
        done.push(m.name.clone());
    }
    Ok(RolledBack {
        method: Method::Down,
        migrations: done,
        dropped: Vec::new(),
        restored: Vec::new(),
        recreated_tables: Vec::new(),
        fixed: Vec::new(),
        warnings: Vec::new(),
        duration_ms: 0,
    })
}

async fn exec(client: &Client, sql: &str) -> Result<(), String> {
    client.batch_execute(sql).await.map_err(|e| describe(&e))
}
