//! The engine's settings for one run: flags over `[apply]` in pgship.toml over defaults, and
//! the checks that refuse a limit that is no limit. Shared by `migrate`, `plan` and `deploy`
//! (the rehearsal applies with what the deploy will use).

use std::time::Duration;

use crate::db::apply::{ResolveRunning, TxMode};
use crate::db::timeouts::StatementTimeout;
use crate::error::{Error, Result};
use crate::project::Project;
use crate::util::format_duration;

fn duration_arg(s: &str) -> std::result::Result<Duration, String> {
    crate::util::parse_duration(s)
}

/// How the engine applies: shared by `migrate` and `plan` (which rehearses with what a deploy
/// will use).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EngineArgs {
    /// `all`: every pending migration in one transaction (drizzle's semantics);
    /// `per-migration`: commit each on its own [default: [apply] tx_mode, else all]. `migrate`
    /// refuses, before it starts, a batch whose transaction would not fit in the server's lock
    /// table.
    #[arg(long, value_name = "MODE")]
    pub tx_mode: Option<TxMode>,
    /// How long one statement may wait for a lock before it gives up and is retried
    /// [default: 2s]. At least 1ms (0 would wait forever); above 60s only with
    /// --allow-long-lock-timeout.
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub lock_timeout: Option<Duration>,
    /// Accept a lock timeout above 60s (the app's queries on a table queue behind a statement
    /// waiting for its lock for that long).
    #[arg(long)]
    pub allow_long_lock_timeout: bool,
    /// Limit on one statement's run time [default: none]. A lower statement_timeout set on the
    /// database or role (ALTER DATABASE/ROLE ... SET) applies instead.
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub statement_timeout: Option<Duration>,
    /// A statement that runs outside a transaction (a `CALL`, a `DO` block) was running when an
    /// earlier run ended, and the catalog cannot show whether it committed: `done` records it
    /// as committed, `rerun` runs it again. Without it such a run stops and asks.
    #[arg(long, value_name = "done|rerun")]
    pub resolve_running: Option<ResolveRunning>,
}

/// A lock timeout above this needs `--allow-long-lock-timeout`.
pub const MAX_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// Resolved engine settings: flags over pgship.toml over defaults.
pub struct Settings {
    pub tx_mode: TxMode,
    pub lock_timeout: Duration,
    pub lock_retries: u32,
    pub lock_wait: Duration,
    pub statement_timeout: Duration,
    pub connect_timeout: Duration,
    /// Once connected: whose `statement_timeout` applies (pgship's or the server's lower one),
    /// already in `statement_timeout`.
    pub statement_timeout_from: Option<StatementTimeout>,
}

impl Settings {
    pub fn resolve(
        project: &Project,
        engine: &EngineArgs,
        lock_retries: Option<u32>,
        lock_wait: Option<Duration>,
    ) -> Result<Settings> {
        let f = &project.settings.file.apply;
        let file_path = project
            .settings
            .config_path
            .clone()
            .unwrap_or_else(|| "pgship.toml".into());
        let dur = |v: &Option<String>, key: &str, default: Duration| -> Result<Duration> {
            match v {
                None => Ok(default),
                Some(s) => crate::util::parse_duration(s).map_err(|e| {
                    Error::usage(format!("{}: [apply] {key}: {e}", file_path.display()))
                }),
            }
        };
        let tx_mode = match (&engine.tx_mode, &f.tx_mode) {
            (Some(m), _) => *m,
            (None, Some(s)) => s.parse().map_err(|e| {
                Error::usage(format!("{}: [apply] tx_mode: {e}", file_path.display()))
            })?,
            (None, None) => TxMode::All,
        };
        let allow_long = engine.allow_long_lock_timeout || f.allow_long_lock_timeout == Some(true);
        let file_key = |key: &str| format!("{}: [apply] {key}", file_path.display());
        Ok(Settings {
            tx_mode,
            lock_timeout: match engine.lock_timeout {
                Some(d) => check_lock_timeout(d, "--lock-timeout", allow_long)?,
                None => check_lock_timeout(
                    dur(&f.lock_timeout, "lock_timeout", Duration::from_secs(2))?,
                    &file_key("lock_timeout"),
                    allow_long,
                )?,
            },
            lock_retries: lock_retries.or(f.lock_retries).unwrap_or(5),
            lock_wait: match lock_wait {
                Some(d) => d,
                None => dur(&f.lock_wait, "lock_wait", Duration::from_secs(60))?,
            },
            statement_timeout: match engine.statement_timeout {
                Some(d) => check_statement_timeout(d, "--statement-timeout")?,
                None => check_statement_timeout(
                    dur(&f.statement_timeout, "statement_timeout", Duration::ZERO)?,
                    &file_key("statement_timeout"),
                )?,
            },
            connect_timeout: dur(
                &f.connect_timeout,
                "connect_timeout",
                Duration::from_secs(10),
            )?,
            statement_timeout_from: None,
        })
    }

    /// Take the lower of pgship's and the server's `statement_timeout` (see
    /// [`crate::db::timeouts`]); returns whether the server's replaces pgship's, in which case
    /// the session must be opened again with [`Settings::session`].
    pub fn honour(&mut self, st: StatementTimeout) -> bool {
        let replaced = st.from_server();
        self.statement_timeout = st.value;
        self.statement_timeout_from = Some(st);
        replaced
    }

    /// The line saying which `statement_timeout` applies, once known.
    pub fn statement_timeout_line(&self) -> Option<String> {
        self.statement_timeout_from
            .as_ref()
            .map(StatementTimeout::describe)
    }

    /// Session settings sent as startup options.
    pub fn session(&self) -> Vec<(String, String)> {
        vec![
            (
                "lock_timeout".into(),
                self.lock_timeout.as_millis().to_string(),
            ),
            (
                "statement_timeout".into(),
                self.statement_timeout.as_millis().to_string(),
            ),
        ]
    }
}

/// Refuse a lock timeout that is no limit: under 1ms (PostgreSQL gets 0, which waits forever),
/// or above [`MAX_LOCK_TIMEOUT`] unless `allow_long`. `origin` names the flag or the key.
pub fn check_lock_timeout(d: Duration, origin: &str, allow_long: bool) -> Result<Duration> {
    if d.as_millis() == 0 {
        return Err(Error::usage(format!(
            "{origin} must be at least 1ms: PostgreSQL reads a lock_timeout of 0 as no limit, so a \
             statement of pgship's would wait for its lock for ever while the app's queries on \
             that table queue behind it"
        ))
        .with_hint(
            "keep it short (the default is 2s): after a lock timeout pgship rolls back and retries \
             (--lock-retries)",
        ));
    }
    if d > MAX_LOCK_TIMEOUT && !allow_long {
        return Err(Error::usage(format!(
            "{origin} {} is above {}: the app's queries on a table would queue behind a statement \
             of pgship's waiting for its lock for up to that long",
            format_duration(d),
            format_duration(MAX_LOCK_TIMEOUT)
        ))
        .with_hint(
            "pass --allow-long-lock-timeout (or set [apply] allow_long_lock_timeout = true) to \
             accept it, or keep it short and raise --lock-retries",
        ));
    }
    Ok(d)
}

/// Refuse a statement timeout under 1ms but not zero: PostgreSQL would get 0, no limit.
pub fn check_statement_timeout(d: Duration, origin: &str) -> Result<Duration> {
    if !d.is_zero() && d.as_millis() == 0 {
        return Err(Error::usage(format!(
            "{origin} is under 1ms, which PostgreSQL would read as 0 (no limit): use 0 for none, \
             or at least 1ms"
        )));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ExitCode;

    #[test]
    fn lock_timeouts_that_are_no_limit_are_refused() {
        let ms = Duration::from_millis;
        let e = check_lock_timeout(Duration::ZERO, "--lock-timeout", false).unwrap_err();
        assert_eq!(e.code, ExitCode::Usage);
        assert!(
            e.message.starts_with("--lock-timeout must be at least 1ms"),
            "{e}"
        );
        assert!(check_lock_timeout(Duration::from_micros(400), "k", true).is_err());
        let e =
            check_lock_timeout(ms(61_000), "pgship.toml: [apply] lock_timeout", false).unwrap_err();
        assert!(
            e.message
                .starts_with("pgship.toml: [apply] lock_timeout 61s is above 60s"),
            "{e}"
        );
        assert!(e.hint.unwrap().contains("--allow-long-lock-timeout"));
        assert_eq!(
            check_lock_timeout(ms(61_000), "k", true).unwrap(),
            ms(61_000)
        );
        assert_eq!(
            check_lock_timeout(ms(60_000), "k", false).unwrap(),
            ms(60_000)
        );
        assert_eq!(check_lock_timeout(ms(1), "k", false).unwrap(), ms(1));
    }

    #[test]
    fn a_statement_timeout_under_a_millisecond_is_refused_but_zero_is_none() {
        assert!(
            check_statement_timeout(Duration::from_micros(500), "--statement-timeout").is_err()
        );
        assert_eq!(
            check_statement_timeout(Duration::ZERO, "k").unwrap(),
            Duration::ZERO
        );
    }
}
