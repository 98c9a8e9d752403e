//! Preparing the destination: the roles the source's owners and grants need (created only
//! when the caller allows it), whether owners can be kept, how many relations one
//! transaction may lock, and the source's extensions at the source's versions.

use tokio_postgres::Client;

use crate::db::{DbError, quote_ident, quote_literal};

use super::source::Inventory;
use super::{CloneError, CloneOptions, CloneReport};

/// What the destination needs to know before restoring.
pub(crate) struct DestInfo {
    pub superuser: bool,
    /// How many relations one transaction may lock there.
    pub lock_capacity: i64,
}

pub(crate) async fn prepare_dest(
    dst: &Client,
    inv: &Inventory,
    opts: &CloneOptions,
    report: &mut CloneReport,
) -> Result<DestInfo, CloneError> {
    let q = |e: tokio_postgres::Error| DbError::query("inspecting the destination", &e);
    let row = dst
        .query_one(
            "SELECT r.rolsuper, current_setting('max_locks_per_transaction')::int8 \
                    * current_setting('max_connections')::int8 \
             FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(q)?;
    let info = DestInfo {
        superuser: row.get(0),
        lock_capacity: row.get(1),
    };
    // Without superuser rights the restore drops owners, and needs only the other roles.
    let needed: Vec<String> = inv
        .roles
        .iter()
        .filter(|(_, granted)| info.superuser || *granted)
        .map(|(r, _)| r.clone())
        .collect();
    let existing: Vec<String> = dst
        .query(
            "SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname = ANY($1)",
            &[&needed],
        )
        .await
        .map_err(q)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<String> = needed
        .into_iter()
        .filter(|r| !existing.contains(r))
        .collect();
    if !missing.is_empty() {
        create_roles(dst, missing, opts, report).await?;
    }
    if !info.superuser {
        report.warnings.push(
            "the destination user is not a superuser: objects there are owned by it, not by the source's owners".into(),
        );
    }
    create_extensions(dst, inv, report).await?;
    Ok(info)
}

/// Create the roles the restore needs, as `NOLOGIN`, when the caller allows it.
async fn create_roles(
    dst: &Client,
    missing: Vec<String>,
    opts: &CloneOptions,
    report: &mut CloneReport,
) -> Result<(), CloneError> {
    // Predefined roles (pg_*) cannot be created: the destination is too old for the source.
    if !opts.create_missing_roles || missing.iter().any(|r| r.starts_with("pg_")) {
        return Err(CloneError::MissingRoles { roles: missing });
    }
    for role in &missing {
        let sql = format!("CREATE ROLE {} NOLOGIN", quote_ident(role));
        dst.batch_execute(&sql)
            .await
            .map_err(|e| DbError::query(format!("creating role {role}"), &e))?;
    }
    report.roles_created = missing;
    Ok(())
}

/// Create the source's extensions at the source's versions where the destination has the
/// schema and that version; `pg_restore`'s `CREATE EXTENSION IF NOT EXISTS` then keeps them.
async fn create_extensions(
    dst: &Client,
    inv: &Inventory,
    report: &mut CloneReport,
) -> Result<(), CloneError> {
    let q = |e: tokio_postgres::Error| DbError::query("inspecting the destination", &e);
    let schemas: Vec<String> = dst
        .query("SELECT nspname FROM pg_catalog.pg_namespace", &[])
        .await
        .map_err(q)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let names: Vec<String> = inv.extensions.iter().map(|e| e.name.clone()).collect();
    let rows = dst
        .query(
            "SELECT v.name, v.version, e.default_version \
             FROM pg_catalog.pg_available_extension_versions v \
             JOIN pg_catalog.pg_available_extensions e ON e.name = v.name \
             WHERE v.name = ANY($1)",
            &[&names],
        )
        .await
        .map_err(q)?;
    for ext in &inv.extensions {
        let available = rows
            .iter()
            .any(|r| r.get::<_, String>(0) == ext.name && r.get::<_, String>(1) == ext.version);
        let default = rows
            .iter()
            .find(|r| r.get::<_, String>(0) == ext.name)
            .and_then(|r| r.get::<_, Option<String>>(2));
        let mut created = false;
        if available && schemas.contains(&ext.schema) {
            let sql = format!(
                "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {} VERSION {}",
                quote_ident(&ext.name),
                quote_ident(&ext.schema),
                quote_literal(&ext.version)
            );
            created = dst.batch_execute(&sql).await.is_ok();
        }
        if !created && default.as_deref().is_some_and(|d| d != ext.version) {
            report.warnings.push(format!(
                "extension {} will be at version {} in the sandbox (source: {})",
                ext.name,
                default.unwrap_or_default(),
                ext.version
            ));
        }
    }
    Ok(())
}
