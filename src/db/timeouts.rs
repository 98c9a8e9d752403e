//! The `statement_timeout` a pgship session really runs with. pgship sends its own as a startup
//! option (so a migration's `RESET` cannot drop it), and a startup option overrides what the
//! database's owner set with `ALTER DATABASE/ROLE ... SET statement_timeout`. So pgship reads
//! that setting from `pg_db_role_setting` for the connecting role and database, in PostgreSQL's
//! order (role in database, then role, then database, then `ALTER ROLE ALL`), and the lower of
//! the two applies (0 is none on either side): pgship never lifts a limit the DBA put on its
//! sessions, and says which one applies.

use std::time::Duration;

use serde::Serialize;
use tokio_postgres::Client;

use super::DbError;

/// Where a `statement_timeout` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// pgship's own (`--statement-timeout`, `[apply] statement_timeout`, default none).
    Pgship,
    /// `ALTER ROLE r IN DATABASE d SET`.
    RoleInDatabase,
    /// `ALTER ROLE r SET`.
    Role,
    /// `ALTER DATABASE d SET`.
    Database,
    /// `ALTER ROLE ALL SET`.
    AllRoles,
}

/// A `statement_timeout` set on the server for pgship's role or database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Configured {
    /// Zero: none (set to 0 explicitly).
    #[serde(serialize_with = "as_ms", rename = "ms")]
    pub value: Duration,
    pub origin: Origin,
    pub role: String,
    pub database: String,
}

impl Configured {
    /// Whose it is and how it was set: `("the database's", "ALTER DATABASE shop")`.
    fn whose(&self) -> (String, String) {
        match self.origin {
            Origin::RoleInDatabase => (
                format!("role {}'s in this database", ident(&self.role)),
                format!(
                    "ALTER ROLE {} IN DATABASE {}",
                    ident(&self.role),
                    ident(&self.database)
                ),
            ),
            Origin::Role => (
                format!("role {}'s", ident(&self.role)),
                format!("ALTER ROLE {}", ident(&self.role)),
            ),
            Origin::Database => (
                "the database's".into(),
                format!("ALTER DATABASE {}", ident(&self.database)),
            ),
            Origin::AllRoles | Origin::Pgship => ("every role's".into(), "ALTER ROLE ALL".into()),
        }
    }

    /// `the database's 2s (ALTER DATABASE shop SET statement_timeout)`, with `value` or not.
    pub fn describe(&self, value: bool) -> String {
        let (whose, how) = self.whose();
        let v = if value {
            format!(" {}", show(self.value))
        } else {
            String::new()
        };
        format!("{whose}{v} ({how} SET statement_timeout)")
    }
}

/// A name as it is written in SQL: quoted unless it is a plain lowercase identifier.
fn ident(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        super::quote_ident(name)
    }
}

/// The `statement_timeout` that applies, and both candidates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementTimeout {
    /// Zero: none.
    #[serde(serialize_with = "as_ms", rename = "ms")]
    pub value: Duration,
    /// Whose value it is.
    pub applies: Origin,
    #[serde(serialize_with = "as_ms", rename = "pgship_ms")]
    pub pgship: Duration,
    /// The server's setting for the role or database, if any.
    pub configured: Option<Configured>,
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `2s`, `1500ms`, or `none` for zero.
pub fn show(d: Duration) -> String {
    if d.is_zero() {
        "none".into()
    } else {
        crate::util::format_duration(d)
    }
}

impl StatementTimeout {
    /// One line saying which applies and why: `statement_timeout 2s: the database's (ALTER
    /// DATABASE shop SET statement_timeout), lower than pgship's none`.
    pub fn describe(&self) -> String {
        let value = show(self.value);
        match &self.configured {
            None => format!("statement_timeout {value}: pgship's"),
            Some(c) if self.from_server() => format!(
                "statement_timeout {value}: {}, lower than pgship's {}",
                c.describe(false),
                show(self.pgship)
            ),
            Some(c) if c.value.is_zero() => format!(
                "statement_timeout {value}: pgship's; {} is none",
                c.describe(false)
            ),
            Some(c) if c.value == self.pgship => format!(
                "statement_timeout {value}: pgship's, the same as {}",
                c.describe(true)
            ),
            Some(c) => format!(
                "statement_timeout {value}: pgship's, lower than {}",
                c.describe(true)
            ),
        }
    }

    /// Whether the server's setting replaces pgship's.
    pub fn from_server(&self) -> bool {
        self.applies != Origin::Pgship
    }
}

/// The lower of `pgship` and `configured` (zero is none; a tie is pgship's).
pub fn lower(pgship: Duration, configured: Option<Configured>) -> StatementTimeout {
    let theirs = configured.as_ref().map_or(Duration::ZERO, |c| c.value);
    let take_theirs = !theirs.is_zero() && (pgship.is_zero() || theirs < pgship);
    StatementTimeout {
        value: if take_theirs { theirs } else { pgship },
        applies: match (&configured, take_theirs) {
            (Some(c), true) => c.origin,
            _ => Origin::Pgship,
        },
        pgship,
        configured,
    }
}

/// Read the server's `statement_timeout` for this session's role and database and take the
/// lower of it and `pgship`.
pub async fn resolve(client: &Client, pgship: Duration) -> Result<StatementTimeout, DbError> {
    Ok(lower(pgship, configured(client).await?))
}

/// The `statement_timeout` set for the session's (login) role and database, the most specific
/// first, as PostgreSQL applies them at connection time.
pub async fn configured(client: &Client) -> Result<Option<Configured>, DbError> {
    let ctx = "reading the database's and role's statement_timeout (pg_db_role_setting)";
    let row = client
        .query_opt(CONFIGURED_SQL, &[])
        .await
        .map_err(|e| DbError::query(ctx, &e))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (by_db, by_role): (bool, bool) = (row.get(0), row.get(1));
    let raw: String = row.get(2);
    // The server parses the value as it did when it was set: units, fractions, bare numbers.
    let shown: String = client
        .query_one("SELECT set_config('statement_timeout', $1, true)", &[&raw])
        .await
        .map_err(|e| DbError::query(ctx, &e))?
        .get(0);
    let value = parse_shown(&shown).ok_or_else(|| {
        DbError::Other(format!(
            "{ctx}: cannot read the value `{shown}` PostgreSQL shows for `{raw}`"
        ))
    })?;
    Ok(Some(Configured {
        value,
        origin: match (by_db, by_role) {
            (true, true) => Origin::RoleInDatabase,
            (false, true) => Origin::Role,
            (true, false) => Origin::Database,
            (false, false) => Origin::AllRoles,
        },
        role: row.get(3),
        database: row.get(4),
    }))
}

const CONFIGURED_SQL: &str = "\
SELECT s.setdatabase <> 0, s.setrole <> 0, substr(cfg, length('statement_timeout=') + 1),
       session_user::text, current_database()::text
FROM pg_catalog.pg_db_role_setting s CROSS JOIN LATERAL unnest(s.setconfig) AS cfg
WHERE s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))
  AND s.setrole IN (0, (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = session_user))
  AND cfg LIKE 'statement\\_timeout=%'
ORDER BY s.setrole <> 0 DESC, s.setdatabase <> 0 DESC
LIMIT 1";

/// A `statement_timeout` as PostgreSQL shows it: `0`, `1500ms`, `2s`, `5min`, `1h`, `1d`
/// (a bare number is milliseconds).
pub fn parse_shown(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "" | "ms" => 1,
        "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(Duration::from_millis(n.checked_mul(ms)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(ms: u64) -> Option<Configured> {
        Some(Configured {
            value: Duration::from_millis(ms),
            origin: Origin::Database,
            role: "deploy".into(),
            database: "shop".into(),
        })
    }

    #[test]
    fn the_lower_applies_and_zero_is_none() {
        let s = Duration::from_secs;
        let t = lower(Duration::ZERO, db(2000));
        assert_eq!((t.value, t.applies), (s(2), Origin::Database));
        let t = lower(s(10), db(2000));
        assert_eq!((t.value, t.applies), (s(2), Origin::Database));
        let t = lower(s(1), db(2000));
        assert_eq!((t.value, t.applies), (s(1), Origin::Pgship));
        let t = lower(s(2), db(2000));
        assert_eq!((t.value, t.applies), (s(2), Origin::Pgship));
        let t = lower(s(5), db(0));
        assert_eq!((t.value, t.applies), (s(5), Origin::Pgship));
        let t = lower(Duration::ZERO, None);
        assert_eq!((t.value, t.applies), (Duration::ZERO, Origin::Pgship));
    }

    #[test]
    fn the_line_says_which_applies() {
        let s = Duration::from_secs;
        assert_eq!(
            lower(Duration::ZERO, db(2000)).describe(),
            "statement_timeout 2s: the database's (ALTER DATABASE shop SET statement_timeout), \
             lower than pgship's none"
        );
        assert_eq!(
            lower(s(1), db(2000)).describe(),
            "statement_timeout 1s: pgship's, lower than the database's 2s (ALTER DATABASE shop \
             SET statement_timeout)"
        );
        assert_eq!(
            lower(s(2), db(2000)).describe(),
            "statement_timeout 2s: pgship's, the same as the database's 2s (ALTER DATABASE shop \
             SET statement_timeout)"
        );
        assert_eq!(
            lower(s(5), db(0)).describe(),
            "statement_timeout 5s: pgship's; the database's (ALTER DATABASE shop SET \
             statement_timeout) is none"
        );
        assert_eq!(
            lower(Duration::ZERO, None).describe(),
            "statement_timeout none: pgship's"
        );
        let mut role = db(500).unwrap();
        role.origin = Origin::RoleInDatabase;
        let line = lower(s(3), Some(role)).describe();
        assert!(
            line.starts_with(
                "statement_timeout 500ms: role deploy's in this database (ALTER ROLE deploy IN \
                 DATABASE shop SET statement_timeout)"
            ),
            "{line}"
        );
    }

    #[test]
    fn shown_values_parse() {
        let ms = Duration::from_millis;
        assert_eq!(parse_shown("0"), Some(ms(0)));
        assert_eq!(parse_shown("1500ms"), Some(ms(1500)));
        assert_eq!(parse_shown("2s"), Some(ms(2000)));
        assert_eq!(parse_shown("5min"), Some(ms(300_000)));
        assert_eq!(parse_shown("1h"), Some(ms(3_600_000)));
        assert_eq!(parse_shown("1d"), Some(ms(86_400_000)));
        assert_eq!(parse_shown("250"), Some(ms(250)));
        assert_eq!(parse_shown("2 weeks"), None);
    }
}
