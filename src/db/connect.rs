//! Opening connections: direct (never through a transaction-mode pooler), over TLS as the
//! URL asks, with a connect timeout, TCP keepalives, `application_name=pgship`, and
//! `client_connection_check_interval` on PostgreSQL 14+ so the server ends pgship's session
//! within about a second when pgship dies (an orphaned backend would otherwise keep its
//! locks until its statement ends).

use std::time::Duration;

use tokio_postgres::config::{ChannelBinding as PgChannelBinding, SslMode as PgSslMode};
use tokio_postgres::{Client, NoTls};

use super::url::{ChannelBinding, DbUrl, SslMode};
use super::{DbError, describe, tls};

/// The name pgship's sessions carry in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "pgship";

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub connect_timeout: Duration,
    /// Session settings sent as startup options (`-c name=value`), so that a migration's
    /// `RESET name` restores pgship's value rather than the server default.
    pub settings: Vec<(String, String)>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(10),
            settings: Vec::new(),
        }
    }
}

/// The server's version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerVersion {
    /// `server_version_num`, e.g. 150020.
    pub num: u32,
    /// `server_version` up to the first space, e.g. `15.20`.
    pub text: String,
}

impl ServerVersion {
    pub fn major(&self) -> u32 {
        self.num / 10000
    }
}

/// An open connection and what pgship learnt while opening it.
pub struct Conn {
    pub client: Client,
    pub version: ServerVersion,
    pub url: DbUrl,
    /// The server's pid for this session.
    pub pid: i32,
    task: tokio::task::JoinHandle<()>,
}

impl Conn {
    /// Ask the server to cancel the statement this session is running (for an interruption),
    /// over TLS when the session uses it. Bounded; a failure only means the statement runs on
    /// until the session ends.
    pub async fn cancel_running(&self) {
        let token = self.client.cancel_token();
        let cancel = async {
            match super::tls::client_config(&self.url) {
                Ok(config) if self.url.sslmode != super::url::SslMode::Disable => {
                    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(config);
                    token.cancel_query(tls).await
                }
                _ => token.cancel_query(tokio_postgres::NoTls).await,
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), cancel).await;
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connect to `url`.
pub async fn connect(url: &DbUrl, opts: &ConnectOptions) -> Result<Conn, DbError> {
    if let Some(host) = url.pooler_host() {
        return Err(DbError::Pooler {
            target: url.redacted(),
            host: host.to_string(),
        });
    }
    match connect_once(url, opts, true).await {
        Err(ConnectFailure::UnknownSetting) => match connect_once(url, opts, false).await {
            Ok(c) => Ok(c),
            Err(f) => Err(f.into_error(url)),
        },
        Ok(c) => Ok(c),
        Err(f) => Err(f.into_error(url)),
    }
}

enum ConnectFailure {
    /// The server does not know `client_connection_check_interval` (PostgreSQL 13).
    UnknownSetting,
    Failed(String, Option<String>),
}

impl ConnectFailure {
    fn into_error(self, url: &DbUrl) -> DbError {
        match self {
            ConnectFailure::UnknownSetting => DbError::Connect {
                target: url.redacted(),
                message: "the server rejected a session setting".into(),
                hint: None,
            },
            ConnectFailure::Failed(message, hint) => DbError::Connect {
                target: url.redacted(),
                message,
                hint,
            },
        }
    }
}

async fn connect_once(
    url: &DbUrl,
    opts: &ConnectOptions,
    check_interval: bool,
) -> Result<Conn, ConnectFailure> {
    let config =
        build_config(url, opts, check_interval).map_err(|m| ConnectFailure::Failed(m, None))?;
    let timeout = url
        .connect_timeout
        .map_or(opts.connect_timeout, Duration::from_secs);
    let tls_config = match url.sslmode {
        SslMode::Disable => None,
        _ => Some(tls::client_config(url).map_err(|m| ConnectFailure::Failed(m, None))?),
    };
    let attempt = async {
        match tls_config {
            None => {
                let (client, connection) = config.connect(NoTls).await?;
                Ok::<_, tokio_postgres::Error>((client, tokio::spawn(drive(connection))))
            }
            Some(tls_config) => {
                let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config);
                let (client, connection) = config.connect(tls).await?;
                Ok((client, tokio::spawn(drive(connection))))
            }
        }
    };
    let (client, task) = match tokio::time::timeout(timeout + Duration::from_secs(1), attempt).await
    {
        Err(_) => {
            return Err(ConnectFailure::Failed(
                format!("timed out after {}s", timeout.as_secs()),
                Some(
                    "check the host and port, and that the server accepts connections from here"
                        .into(),
                ),
            ));
        }
        Ok(Err(e)) => {
            if check_interval
                && e.as_db_error().is_some_and(|d| {
                    d.code().code() == "42704"
                        && d.message().contains("client_connection_check_interval")
                })
            {
                return Err(ConnectFailure::UnknownSetting);
            }
            let message = describe(&e);
            let hint = connect_hint(url, &message);
            return Err(ConnectFailure::Failed(message, hint));
        }
        Ok(Ok(pair)) => pair,
    };
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int, current_setting('server_version'), pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| ConnectFailure::Failed(describe(&e), None))?;
    let num: i32 = row.get(0);
    let text: String = row.get(1);
    let version = ServerVersion {
        num: u32::try_from(num).unwrap_or(0),
        text: text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    Ok(Conn {
        client,
        version,
        url: url.clone(),
        pid: row.get(2),
        task,
    })
}

async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // Errors surface on the next query through the client; nothing to report here.
    let _ = connection.await;
}

fn build_config(
    url: &DbUrl,
    opts: &ConnectOptions,
    check_interval: bool,
) -> Result<tokio_postgres::Config, String> {
    let mut c = tokio_postgres::Config::new();
    if url.hosts.is_empty() {
        c.host("localhost");
    }
    for h in &url.hosts {
        if h.host.starts_with('/') {
            c.host_path(&h.host);
        } else {
            c.host(&h.host);
        }
        c.port(h.port.unwrap_or(5432));
    }
    if let Some(addr) = &url.hostaddr {
        for a in addr.split(',') {
            c.hostaddr(
                a.trim()
                    .parse()
                    .map_err(|_| format!("hostaddr `{a}` is not an IP address"))?,
            );
        }
    }
    c.user(url.user.clone().unwrap_or_else(default_user));
    if let Some(p) = &url.password {
        c.password(p.expose());
    }
    if let Some(db) = &url.dbname {
        c.dbname(db);
    }
    c.application_name(APPLICATION_NAME);
    c.ssl_mode(match url.sslmode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Allow | SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
    });
    c.channel_binding(match url.channel_binding {
        ChannelBinding::Disable => PgChannelBinding::Disable,
        ChannelBinding::Prefer => PgChannelBinding::Prefer,
        ChannelBinding::Require => PgChannelBinding::Require,
    });
    c.connect_timeout(
        url.connect_timeout
            .map_or(opts.connect_timeout, Duration::from_secs),
    );
    c.keepalives(true);
    c.keepalives_idle(Duration::from_secs(15));
    c.keepalives_interval(Duration::from_secs(5));
    c.keepalives_retries(3);
    c.tcp_user_timeout(Duration::from_secs(30));
    let mut options: Vec<String> = url.options.iter().cloned().collect();
    if check_interval {
        options.push("-c client_connection_check_interval=1000".into());
    }
    for (name, value) in &opts.settings {
        options.push(format!("-c {name}={}", escape_option(value)));
    }
    if !options.is_empty() {
        c.options(options.join(" "));
    }
    Ok(c)
}

/// Startup options are split on spaces; a backslash escapes one.
fn escape_option(value: &str) -> String {
    value.replace('\\', "\\\\").replace(' ', "\\ ")
}

pub(crate) fn default_user() -> String {
    std::env::var("PGUSER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "postgres".into())
}

fn connect_hint(url: &DbUrl, message: &str) -> Option<String> {
    let m = message.to_ascii_lowercase();
    if m.contains("unknownissuer") || m.contains("invalid peer certificate") {
        return Some("the server's certificate is not trusted: pass its CA with sslrootcert=<file>, or use sslmode=require to encrypt without verifying".into());
    }
    if m.contains("notvalidforname") {
        return Some("the certificate does not name this host: connect with the name it was issued for, or use sslmode=verify-ca".into());
    }
    if m.contains("channel binding")
        || (url.channel_binding == ChannelBinding::Require && m.contains("authentication"))
    {
        return Some("channel_binding=require needs TLS (sslmode=require or stronger) and SCRAM authentication on the server".into());
    }
    if m.contains("password authentication failed") {
        return Some("check the user and password in the URL".into());
    }
    if m.contains("connection refused") {
        return Some(format!(
            "is PostgreSQL running and listening on {}:{}?",
            url.host(),
            url.port()
        ));
    }
    None
}
