//! The only module that opens database connections: URLs, TLS, connecting, the advisory lock,
//! migration state, the apply engine, and discovery of the PostgreSQL client tools.
//!
//! Every SQL value here is a bind parameter; identifiers are quoted with [`quote_ident`].
//! No error produced here carries a password: URLs are shown only in redacted form.

pub mod apply;
pub mod blockers;
pub mod child;
pub mod connect;
pub mod history;
pub mod kept;
pub mod lock;
pub mod measure;
pub mod plan;
pub mod preflight;
pub mod slots;
pub mod state;
pub mod tables;
pub mod timeouts;
pub mod tls;
pub mod tools;
pub mod url;

pub use connect::{Conn, ConnectOptions, ServerVersion, connect};
pub use url::DbUrl;

/// A database error, described for a person.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Url(#[from] url::UrlError),
    #[error("cannot connect to {target}: {message}")]
    Connect {
        target: String,
        message: String,
        hint: Option<String>,
    },
    #[error("{target}: `{host}` is a transaction-mode pooler")]
    Pooler { target: String, host: String },
    #[error("{context}: {message}")]
    Query { context: String, message: String },
    #[error("{0}")]
    Other(String),
}

impl DbError {
    pub fn query(context: impl Into<String>, e: &tokio_postgres::Error) -> DbError {
        DbError::Query {
            context: context.into(),
            message: describe(e),
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            DbError::Connect { hint, .. } => hint.clone(),
            DbError::Pooler { host, .. } => Some(format!(
                "session advisory locks and multi-statement transactions need a direct connection: use `{}` (without -pooler)",
                host.replacen("-pooler", "", 1)
            )),
            _ => None,
        }
    }
}

impl From<DbError> for crate::Error {
    fn from(e: DbError) -> Self {
        let hint = e.hint();
        let mut err = crate::Error::usage(e.to_string());
        err.hint = hint;
        err
    }
}

/// Describe a driver error: the server's message with SQLSTATE, detail and hint, or the whole
/// cause chain for client-side errors (tokio-postgres's own `Display` says only "db error").
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return describe_db(db);
    }
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// `ERROR: message (SQLSTATE 42P01)` plus detail and hint lines.
pub fn describe_db(db: &tokio_postgres::error::DbError) -> String {
    let mut s = format!(
        "{}: {} (SQLSTATE {})",
        db.severity(),
        db.message(),
        db.code().code()
    );
    if let Some(d) = db.detail() {
        s.push_str(&format!("\n  detail: {d}"));
    }
    if let Some(h) = db.hint() {
        s.push_str(&format!("\n  hint: {h}"));
    }
    s
}

/// Quote an SQL identifier: `a"b` -> `"a""b"`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quote an SQL string literal for the few places a value cannot be bound (`SET`).
pub fn quote_literal(value: &str) -> String {
    let escaped = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("users"), "\"users\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b'"), "E'a\\\\b'''");
    }
}
