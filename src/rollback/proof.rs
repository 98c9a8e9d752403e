//! The proof: the schema fingerprint against the recorded one, and every touched table's row
//! count and content hash against the recorded ones.

use tokio_postgres::Client;

use super::{Inputs, Prepared, Proof, RollbackError, TableCheck};
use crate::compare::diff::diff;
use crate::compare::introspect::introspect;

pub(crate) async fn run(
    client: &Client,
    i: &Inputs<'_>,
    p: &Prepared,
) -> Result<Proof, RollbackError> {
    let model = introspect(client, i.filter).await?;
    let actual_fingerprint = model.fingerprint();
    let differences: Vec<String> = if actual_fingerprint == p.fingerprint {
        Vec::new()
    } else {
        diff(&p.model, &model).into_iter().map(|d| d.line).collect()
    };
    let specs: Vec<_> = p.tables.iter().map(|t| t.spec.clone()).collect();
    let contents = super::catalog::contents(client, &specs).await?;
    let tables: Vec<TableCheck> = p
        .tables
        .iter()
        .map(|t| {
            let key = t.spec.key();
            match contents.get(&key) {
                Some(Ok((rows, hash))) => TableCheck {
                    table: key,
                    rows: t.rows,
                    actual_rows: Some(*rows),
                    equal: *rows == t.rows && *hash == t.hash,
                    note: (*rows == t.rows && *hash != t.hash)
                        .then(|| "same number of rows, different contents".to_string()),
                },
                Some(Err(e)) => TableCheck {
                    table: key,
                    rows: t.rows,
                    actual_rows: None,
                    equal: false,
                    note: Some(format!("cannot be read: {}", e.lines().next().unwrap_or(e))),
                },
                None => TableCheck {
                    table: key,
                    rows: t.rows,
                    actual_rows: None,
                    equal: false,
                    note: Some("was not compared".into()),
                },
            }
        })
        .collect();
    Ok(Proof {
        proven: actual_fingerprint == p.fingerprint && tables.iter().all(|t| t.equal),
        fingerprint: p.fingerprint.clone(),
        actual_fingerprint,
        differences,
        tables,
    })
}
