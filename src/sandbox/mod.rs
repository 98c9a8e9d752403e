//! Sandboxes: a throwaway copy of a target, made fast, always cleaned up, never a risk to the
//! target. Four strategies:
//!
//! - `local`: a throwaway cluster started by pgship from local binaries of the target's major
//!   version or newer ([`crate::cluster`]), filled by [`clone`];
//! - `server`: a database `pgship_sandbox_<id>` on `SANDBOX_POSTGRES_URL`, filled by [`clone`];
//! - `template`: `CREATE DATABASE ... TEMPLATE <target>` on the target's own server, when
//!   `[sandbox] allow_template = true` and nobody else is connected to the target;
//! - `neon`: a Neon branch of the target's branch ([`neon`]): copy-on-write, so the time does
//!   not grow with the database.
//!
//! Every sandbox is marked: its name starts with `pgship_sandbox_`/`pgship-sandbox-` (a local
//! cluster lives in pgship's temp root), and a record in pgship's sandbox registry (and, for
//! databases, a comment on the database) holds its id, the owning pid and host, and whether it
//! was kept on purpose. [`gc`] removes what dead runs left behind.
//!
//! [`command`] holds `pgship sandbox create` and `gc` as one call each.

pub mod clone;
pub mod command;
pub mod neon;
pub mod registry;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cluster::{self, ClusterOptions, LocalCluster};
use crate::config::Env;
use crate::db::{ConnectOptions, DbError, DbUrl, connect, quote_ident, quote_literal, tools};
pub use registry::Record;

/// How a sandbox is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The best one available: neon for a Neon target with NEON_API_KEY, else template when
    /// allowed, else server when SANDBOX_POSTGRES_URL is set, else local.
    Auto,
    Local,
    Server,
    Template,
    Neon,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Auto => "auto",
            Strategy::Local => "local",
            Strategy::Server => "server",
            Strategy::Template => "template",
            Strategy::Neon => "neon",
        }
    }

    pub fn parse(s: &str) -> Option<Strategy> {
        <Strategy as clap::ValueEnum>::from_str(s, true).ok()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("{0}")]
    Cluster(#[from] cluster::ClusterError),
    #[error("{0}")]
    Clone(#[from] clone::CloneError),
    #[error("{0}")]
    Neon(#[from] neon::NeonError),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Other(String),
    #[error("interrupted: the sandbox was removed")]
    Interrupted,
}

/// What to make.
#[derive(Debug, Clone)]
pub struct Request {
    pub strategy: Strategy,
    pub data: clone::DataMode,
    /// Write `clone.dump` here too (local and server).
    pub keep_dump: Option<std::path::PathBuf>,
    /// `[sandbox] allow_template`.
    pub allow_template: bool,
    pub lock_wait_timeout: Duration,
}

impl Request {
    /// The request from flags over `[sandbox]` over defaults; a bad value names its key.
    pub fn resolve(
        settings: &crate::config::Settings,
        strategy: Option<Strategy>,
        data: clone::DataMode,
        keep_dump: Option<std::path::PathBuf>,
    ) -> Result<Request, String> {
        let f = &settings.file.sandbox;
        let strategy = match (strategy, f.strategy.as_deref()) {
            (Some(s), _) => s,
            (None, None) => Strategy::Auto,
            (None, Some(s)) => Strategy::parse(s).ok_or_else(|| {
                format!(
                    "[sandbox] strategy = \"{s}\": expected auto, local, server, template or neon"
                )
            })?,
        };
        let lock_wait_timeout = match &f.lock_wait_timeout {
            Some(t) => crate::util::parse_duration(t)
                .map_err(|e| format!("[sandbox] lock_wait_timeout: {e}"))?,
            None => Duration::from_secs(5),
        };
        Ok(Request {
            strategy,
            data,
            keep_dump,
            allow_template: f.allow_template.unwrap_or(false),
            lock_wait_timeout,
        })
    }
}

impl From<SandboxError> for crate::error::Error {
    fn from(e: SandboxError) -> Self {
        match e {
            SandboxError::Refused(m) => crate::error::Error::refused(m),
            SandboxError::Interrupted => crate::error::Error::refused(e.to_string()),
            other => crate::error::Error::usage(other.to_string()),
        }
    }
}

/// A live sandbox. Dropping it without [`Sandbox::destroy`] or [`Sandbox::keep`] removes a
/// local cluster (its own Drop) and leaves databases and branches to `gc`.
pub struct Sandbox {
    pub id: String,
    pub strategy: Strategy,
    pub url: DbUrl,
    pub seconds: f64,
    /// What copying the rows did (local and server; template and neon copy inside the server).
    pub clone_report: Option<clone::CloneReport>,
    resource: Resource,
}

enum Resource {
    Local(LocalCluster),
    Database {
        admin: DbUrl,
        name: String,
    },
    Neon {
        client: neon::NeonClient,
        branch: String,
    },
    Gone,
}

fn sandbox_name(id: &str) -> String {
    format!("pgship_sandbox_{id}")
}

/// Pick the strategy `auto` means for this target.
pub fn resolve(strategy: Strategy, target: &DbUrl, env: &Env, allow_template: bool) -> Strategy {
    if strategy != Strategy::Auto {
        return strategy;
    }
    let neon_host = target.host().ends_with(".neon.tech");
    if neon_host && env.get("NEON_API_KEY").is_some() && env.get("NEON_PROJECT_ID").is_some() {
        Strategy::Neon
    } else if allow_template {
        Strategy::Template
    } else if env
        .get("SANDBOX_POSTGRES_URL")
        .is_some_and(|v| !v.trim().is_empty())
    {
        Strategy::Server
    } else {
        Strategy::Local
    }
}

/// The extensions the target uses that the sandbox server cannot create.
async fn missing_extensions(
    target: &tokio_postgres::Client,
    sandbox: &tokio_postgres::Client,
) -> Result<Vec<String>, DbError> {
    let used: Vec<String> = target
        .query(
            "SELECT extname::text FROM pg_catalog.pg_extension ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| DbError::query("listing the target's extensions", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let available: Vec<String> = sandbox
        .query(
            "SELECT name::text FROM pg_catalog.pg_available_extensions",
            &[],
        )
        .await
        .map_err(|e| DbError::query("listing the sandbox's available extensions", &e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(used
        .into_iter()
        .filter(|e| !available.contains(e))
        .collect())
}

fn marker(id: &str, strategy: Strategy, kept: bool) -> String {
    serde_json::json!({
        "pgship_sandbox": id,
        "strategy": strategy.as_str(),
        "pid": std::process::id(),
        "host": registry::hostname(),
        "kept": kept,
        "created_at": jiff::Timestamp::now().to_string(),
    })
    .to_string()
}

fn dbname_of(url: &DbUrl) -> String {
    url.dbname
        .clone()
        .or_else(|| url.user.clone())
        .unwrap_or_else(|| "postgres".into())
}

/// Wait for Ctrl-C or SIGTERM.
pub async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

impl Sandbox {
    /// Make a sandbox of `target`. On error, Ctrl-C or SIGTERM, whatever was made is removed
    /// before this returns.
    pub async fn create(
        target: &DbUrl,
        req: &Request,
        env: &Env,
        progress: &dyn Fn(clone::Progress),
    ) -> Result<Sandbox, SandboxError> {
        let started = Instant::now();
        let id = format!(
            "{}{}",
            jiff::Timestamp::now().strftime("%Y%m%d%H%M%S"),
            crate::util::random_hex(3)
        );
        let strategy = resolve(req.strategy, target, env, req.allow_template);
        if strategy == Strategy::Local {
            let mut sandbox = create_local(&id, target, req, progress).await?;
            sandbox.seconds = started.elapsed().as_secs_f64();
            return Ok(sandbox);
        }
        let mut sandbox = tokio::select! {
            r = provision(&id, strategy, target, req, env) => r?,
            _ = interrupted() => return Err(SandboxError::Interrupted),
        };
        registry::save(&sandbox.record(false)?)?;
        let fill = sandbox.fill(target, req, progress);
        let filled = tokio::select! {
            r = fill => r.map_err(Some),
            _ = interrupted() => Err(None),
        };
        match filled {
            Ok(report) => {
                sandbox.seconds = started.elapsed().as_secs_f64();
                sandbox.clone_report = report;
                Ok(sandbox)
            }
            Err(e) => {
                let _ = sandbox.destroy().await;
                Err(e.unwrap_or(SandboxError::Interrupted))
            }
        }
    }

    /// Its registry record.
    fn record(&self, kept: bool) -> Result<Record, SandboxError> {
        let kind = match &self.resource {
            Resource::Local(c) => registry::Kind::Local(cluster::KeptCluster {
                dir: c.dir.clone(),
                port: c.port,
                bin: c.bin.dir.clone(),
            }),
            Resource::Database { admin, name } => registry::Kind::Database {
                admin: admin.expose(),
                name: name.clone(),
            },
            Resource::Neon { client, branch } => registry::Kind::Neon {
                project: client.project_id().to_string(),
                branch: branch.clone(),
            },
            Resource::Gone => return Err(SandboxError::Other("the sandbox is gone".into())),
        };
        Ok(Record {
            id: self.id.clone(),
            strategy: self.strategy,
            url: self.url.expose(),
            kept,
            pid: std::process::id(),
            host: registry::hostname(),
            created_at: jiff::Timestamp::now().to_string(),
            kind,
        })
    }

    /// Copy the target into a provisioned server sandbox.
    async fn fill(
        &self,
        target: &DbUrl,
        req: &Request,
        progress: &dyn Fn(clone::Progress),
    ) -> Result<Option<clone::CloneReport>, SandboxError> {
        if self.strategy != Strategy::Server {
            return Ok(None);
        }
        let major = connect(target, &ConnectOptions::default())
            .await?
            .version
            .major();
        let copts = clone_options(req, major, false)?;
        Ok(Some(
            clone::clone(target, &self.url, &copts, progress).await?,
        ))
    }
}

fn clone_options(
    req: &Request,
    major: u32,
    create_missing_roles: bool,
) -> Result<clone::CloneOptions, SandboxError> {
    let tools = tools::find_dump_tools(major).map_err(SandboxError::Other)?;
    let mut copts = clone::CloneOptions::new(tools);
    copts.data = req.data;
    copts.lock_wait_timeout = req.lock_wait_timeout;
    copts.keep_dump = req.keep_dump.clone();
    copts.create_missing_roles = create_missing_roles;
    // Both are for pgship's own throwaway cluster (a superuser there).
    copts.trust_foreign_keys = create_missing_roles;
    Ok(copts)
}

/// A `local` sandbox: the throwaway cluster starts (a copy of the initdb template and a start,
/// 0.1-0.5 s; initdb too on a machine's first run) while the clone reads the target (snapshot,
/// catalog, locks, schema and post-data archives); the restore begins once it is up. On
/// error, Ctrl-C or SIGTERM the cluster is removed before this returns, even one still
/// starting.
async fn create_local(
    id: &str,
    target: &DbUrl,
    req: &Request,
    progress: &dyn Fn(clone::Progress),
) -> Result<Sandbox, SandboxError> {
    let opts = ConnectOptions::default();
    let major = tokio::select! {
        r = connect(target, &opts) => r?.version.major(),
        _ = interrupted() => return Err(SandboxError::Interrupted),
    };
    let mut starting = Some(tokio::task::spawn_blocking(move || {
        LocalCluster::start(&ClusterOptions {
            min_major: Some(major),
            ..Default::default()
        })
    }));
    // The sandbox once its cluster is up (and from then on removed by `destroy`).
    let made: std::cell::RefCell<Option<Sandbox>> = std::cell::RefCell::new(None);
    let copts = match clone_options(req, major, true) {
        Ok(copts) => copts,
        Err(e) => {
            // A cluster that cannot start either (no server binaries) is the first thing to
            // fix: say that, as when the cluster was started before anything else.
            let started = match starting.take() {
                Some(handle) => handle.await,
                None => return Err(e),
            };
            return match started {
                Ok(Ok(mut c)) => {
                    let _ = tokio::task::spawn_blocking(move || c.stop()).await;
                    Err(e)
                }
                Ok(Err(cluster)) => Err(cluster.into()),
                Err(_) => Err(e),
            };
        }
    };
    let outcome = {
        let ready = async {
            let started = match starting.as_mut() {
                Some(handle) => handle.await,
                None => return Err(SandboxError::Other("the cluster is gone".into())),
            };
            starting = None;
            let cluster = started
                .map_err(|e| SandboxError::Other(format!("starting the cluster: {e}")))??;
            let admin_url = cluster.url("postgres");
            let (bin_major, bin_dir) = (cluster.bin.major, cluster.bin.dir.clone());
            let sandbox = Sandbox {
                id: id.to_string(),
                strategy: Strategy::Local,
                url: cluster.url(&dbname_of(target)),
                seconds: 0.0,
                clone_report: None,
                resource: Resource::Local(cluster),
            };
            let url = sandbox.url.clone();
            let record = sandbox.record(false);
            *made.borrow_mut() = Some(sandbox);
            registry::save(&record?)?;
            let admin = connect(&admin_url, &opts).await?;
            let dbname = dbname_of(target);
            if dbname != "postgres" {
                // A fresh cluster has nothing to checkpoint: copying template1's files
                // beats WAL-logging them (PostgreSQL 15's default).
                let strategy = if bin_major >= 15 {
                    " STRATEGY = FILE_COPY"
                } else {
                    ""
                };
                admin
                    .client
                    .batch_execute(&format!(
                        "CREATE DATABASE {}{strategy}",
                        quote_ident(&dbname)
                    ))
                    .await
                    .map_err(|e| DbError::query("creating the sandbox database", &e))?;
            }
            let target_conn = connect(target, &opts).await?;
            let missing = missing_extensions(&target_conn.client, &admin.client).await?;
            if !missing.is_empty() {
                return Err(SandboxError::Refused(format!(
                    "the target uses extension{} {} that the local PostgreSQL {} binaries ({}) do not have: install {} or use --sandbox server or neon",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.join(", "),
                    bin_major,
                    bin_dir.display(),
                    if missing.len() == 1 { "it" } else { "them" },
                )));
            }
            Ok(url)
        };
        tokio::select! {
            r = clone::clone_pending(target, ready, &copts, progress) => match r {
                Ok(report) => Ok(report),
                Err(clone::PendingError::Clone(e)) => Err(e.into()),
                Err(clone::PendingError::Dest(e)) => Err(e),
            },
            _ = interrupted() => Err(SandboxError::Interrupted),
        }
    };
    let sandbox = made.into_inner();
    match (outcome, sandbox) {
        (Ok(report), Some(mut sandbox)) => {
            sandbox.clone_report = Some(report);
            Ok(sandbox)
        }
        (outcome, sandbox) => {
            if let Some(s) = sandbox {
                let _ = s.destroy().await;
            }
            if let Some(handle) = starting.take() {
                // Still starting: wait for it, then remove it.
                if let Ok(Ok(mut c)) = handle.await {
                    let _ = tokio::task::spawn_blocking(move || c.stop()).await;
                }
            }
            Err(outcome
                .err()
                .unwrap_or_else(|| SandboxError::Other("the cluster never started".into())))
        }
    }
}

/// Make the empty sandbox (or, for template and neon, the finished copy).
async fn provision(
    id: &str,
    strategy: Strategy,
    target: &DbUrl,
    req: &Request,
    env: &Env,
) -> Result<Sandbox, SandboxError> {
    let opts = ConnectOptions::default();
    let dbname = dbname_of(target);
    let (url, resource) = match strategy {
        Strategy::Local | Strategy::Auto => {
            return Err(SandboxError::Other(format!(
                "internal: {} sandboxes are made by create_local",
                strategy.as_str()
            )));
        }
        Strategy::Server | Strategy::Template => {
            let admin_url = if strategy == Strategy::Server {
                let raw = env
                    .get("SANDBOX_POSTGRES_URL")
                    .filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| {
                        SandboxError::Refused(
                            "--sandbox server needs SANDBOX_POSTGRES_URL (a server where pgship may create databases)".into(),
                        )
                    })?;
                DbUrl::parse(raw).map_err(DbError::from)?
            } else {
                if !req.allow_template {
                    return Err(SandboxError::Refused(
                        "--sandbox template copies the target on its own server: allow it with [sandbox] allow_template = true in pgship.toml".into(),
                    ));
                }
                target.with_dbname("postgres")
            };
            let name = sandbox_name(id);
            let admin = connect(&admin_url, &opts).await?;
            if strategy == Strategy::Template {
                let others: i64 = admin
                    .client
                    .query_one(
                        "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = $1",
                        &[&dbname],
                    )
                    .await
                    .map_err(|e| DbError::query("counting sessions on the target", &e))?
                    .get(0);
                if others > 0 {
                    return Err(SandboxError::Refused(format!(
                        "--sandbox template needs the target to have no other sessions (CREATE DATABASE ... TEMPLATE copies it while nobody is connected), and {} has {others}: use --sandbox local, server or neon",
                        target.redacted()
                    )));
                }
                admin
                    .client
                    .batch_execute(&format!(
                        "CREATE DATABASE {} TEMPLATE {}",
                        quote_ident(&name),
                        quote_ident(&dbname)
                    ))
                    .await
                    .map_err(|e| DbError::query("CREATE DATABASE ... TEMPLATE", &e))?;
            } else {
                admin
                    .client
                    .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
                    .await
                    .map_err(|e| DbError::query("creating the sandbox database", &e))?;
            }
            let marked = admin
                .client
                .batch_execute(&format!(
                    "COMMENT ON DATABASE {} IS {}",
                    quote_ident(&name),
                    quote_literal(&marker(id, strategy, false))
                ))
                .await;
            if let Err(e) = marked {
                let _ = drop_database(&admin_url, &name).await;
                return Err(DbError::query("marking the sandbox database", &e).into());
            }
            (
                admin_url.with_dbname(&name),
                Resource::Database {
                    admin: admin_url,
                    name,
                },
            )
        }
        Strategy::Neon => {
            let client = neon::NeonClient::from_env(env)?;
            let parent = client.branch_for_host(target.host()).await?;
            let branch = match client
                .create_branch(&parent, &format!("{}{id}", neon::BRANCH_PREFIX))
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    if let Some(b) = e.created_branch() {
                        let _ = client.delete_branch(b).await;
                    }
                    return Err(e.into());
                }
            };
            let url = match neon::branch_url(target, &branch) {
                Ok(u) => u,
                Err(e) => {
                    let _ = client.delete_branch(&branch.id).await;
                    return Err(e.into());
                }
            };
            (
                url,
                Resource::Neon {
                    client,
                    branch: branch.id,
                },
            )
        }
    };
    Ok(Sandbox {
        id: id.to_string(),
        strategy,
        url,
        seconds: 0.0,
        clone_report: None,
        resource,
    })
}

impl Sandbox {
    /// Remove the sandbox: stop and delete the cluster, drop the database, delete the branch.
    pub async fn destroy(mut self) -> Result<(), SandboxError> {
        let resource = std::mem::replace(&mut self.resource, Resource::Gone);
        let result = destroy_resource(resource).await;
        registry::forget(&self.id);
        result
    }

    /// Keep the sandbox after pgship exits (`sandbox create`): record it for `list` and `drop`.
    pub async fn keep(mut self) -> Result<Record, SandboxError> {
        let record = self.record(true)?;
        if let Resource::Local(c) = std::mem::replace(&mut self.resource, Resource::Gone) {
            c.keep()?;
        }
        if let registry::Kind::Database { admin, name } = &record.kind {
            let admin = DbUrl::parse(admin).map_err(DbError::from)?;
            let conn = connect(&admin, &ConnectOptions::default()).await?;
            conn.client
                .batch_execute(&format!(
                    "COMMENT ON DATABASE {} IS {}",
                    quote_ident(name),
                    quote_literal(&marker(&record.id, record.strategy, true))
                ))
                .await
                .map_err(|e| DbError::query("marking the sandbox database as kept", &e))?;
        }
        registry::save(&record)?;
        Ok(record)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // A local cluster stops in its own Drop; databases and branches need a connection,
        // which Drop cannot await: the registry entry lets `gc` remove them.
    }
}

async fn destroy_resource(resource: Resource) -> Result<(), SandboxError> {
    match resource {
        Resource::Local(mut c) => {
            tokio::task::spawn_blocking(move || c.stop())
                .await
                .map_err(|e| SandboxError::Other(format!("stopping the cluster: {e}")))?;
            Ok(())
        }
        Resource::Database { admin, name } => drop_database(&admin, &name).await,
        Resource::Neon { client, branch } => Ok(client.delete_branch(&branch).await?),
        Resource::Gone => Ok(()),
    }
}

async fn drop_database(admin: &DbUrl, name: &str) -> Result<(), SandboxError> {
    let conn = connect(admin, &ConnectOptions::default()).await?;
    let version = conn.version.major();
    let force = if version >= 13 { " WITH (FORCE)" } else { "" };
    conn.client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {}{force}",
            quote_ident(name)
        ))
        .await
        .map_err(|e| DbError::query(format!("dropping the sandbox database {name}"), &e))?;
    Ok(())
}

/// Remove a kept sandbox by id (`env`: where a Neon sandbox's NEON_API_KEY comes from).
pub async fn drop_kept(id: &str, env: &Env) -> Result<Record, SandboxError> {
    let record = registry::load(id)?.ok_or_else(|| {
        SandboxError::Refused(format!(
            "no kept sandbox `{id}` (see `pgship sandbox list`)"
        ))
    })?;
    remove_record(&record, env).await?;
    registry::forget(id);
    Ok(record)
}

async fn remove_record(record: &Record, env: &Env) -> Result<(), SandboxError> {
    match &record.kind {
        registry::Kind::Local(k) => {
            cluster::remove_dir(&k.dir, Some(&k.bin))?;
            Ok(())
        }
        registry::Kind::Database { admin, name } => {
            drop_database(&DbUrl::parse(admin).map_err(DbError::from)?, name).await
        }
        // The branch is in the project the record names, whatever NEON_PROJECT_ID says now.
        registry::Kind::Neon { project, branch } => {
            Ok(neon::NeonClient::for_project(env, project)?
                .delete_branch(branch)
                .await?)
        }
    }
}

/// Whether a listed sandbox was kept on purpose or outlived the run that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListedState {
    Kept,
    /// Its run died (killed) without removing it: `gc` removes it.
    Orphaned,
}

impl ListedState {
    pub fn as_str(self) -> &'static str {
        match self {
            ListedState::Kept => "kept",
            ListedState::Orphaned => "orphaned",
        }
    }
}

/// A sandbox `sandbox list` shows.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The sandbox id, or for a throwaway cluster no record names, its folder's name.
    pub id: String,
    pub strategy: Strategy,
    pub state: ListedState,
    /// The URL with its password (None for a cluster no record names).
    pub url: Option<String>,
    pub created_at: Option<String>,
    /// The run that made it.
    pub pid: Option<u32>,
    /// A local sandbox's cluster folder.
    pub dir: Option<std::path::PathBuf>,
    /// A local sandbox's server that still runs: postmaster pid and port.
    pub postmaster: Option<(u32, Option<u16>)>,
}

/// A record's run is dead: on this machine and its process gone (a record of another machine
/// cannot be judged, but the registry is in this machine's temp folder).
fn record_orphaned(r: &Record) -> bool {
    let live_here = r.host == registry::hostname() && cluster::process_alive(r.pid);
    !r.kept && !live_here
}

/// Kept sandboxes, and orphaned ones: records whose run died, and throwaway clusters in the
/// temp root whose run died (found by their folders; `postmaster.pid` tells whether their
/// server still runs). Databases on other servers and Neon branches are listed from the
/// registry only: `gc` also finds those it has no record of.
pub fn list() -> Vec<Listed> {
    let clusters = cluster::leftovers();
    let mut out: Vec<Listed> = registry::all()
        .into_iter()
        .filter_map(|r| listed_record(r, &clusters))
        .collect();
    let recorded: Vec<_> = out.iter().filter_map(|l| l.dir.clone()).collect();
    out.extend(
        clusters
            .into_iter()
            .filter(|c| !c.alive && !c.kept && !recorded.contains(&c.dir))
            .map(|c| Listed {
                id: c
                    .dir
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                strategy: Strategy::Local,
                state: ListedState::Orphaned,
                url: None,
                created_at: c.started_at,
                pid: c.pid,
                postmaster: c.postmaster,
                dir: Some(c.dir),
            }),
    );
    out
}

/// A registry record as `list` shows it: none for a sandbox a live run uses.
fn listed_record(r: Record, clusters: &[cluster::Leftover]) -> Option<Listed> {
    let state = if r.kept {
        ListedState::Kept
    } else if record_orphaned(&r) {
        ListedState::Orphaned
    } else {
        return None;
    };
    let dir = match &r.kind {
        registry::Kind::Local(k) => Some(k.dir.clone()),
        _ => None,
    };
    Some(Listed {
        postmaster: dir
            .as_ref()
            .and_then(|d| clusters.iter().find(|c| &c.dir == d))
            .and_then(|c| c.postmaster),
        id: r.id,
        strategy: r.strategy,
        state,
        url: Some(r.url),
        created_at: Some(r.created_at),
        pid: Some(r.pid),
        dir,
    })
}

/// What `gc` removed.
#[derive(Debug, Default, Serialize)]
pub struct Collected {
    pub removed: Vec<String>,
    pub failed: Vec<String>,
}

/// How `gc` judges what it cannot tie to a process of this machine.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// `[sandbox] neon_gc_age`: a Neon branch pgship created that is older than this, and that
    /// no registry record here keeps or ties to a live run, is a leftover.
    pub neon_age: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            neon_age: DEFAULT_NEON_GC_AGE,
        }
    }
}

/// The default of `[sandbox] neon_gc_age`: longer than any rehearsal runs.
pub const DEFAULT_NEON_GC_AGE: Duration = Duration::from_secs(6 * 3600);

/// Remove what dead runs left behind: sandboxes their registry records name (a local one's
/// cluster stopped and its folder removed), throwaway clusters in pgship's temp root whose
/// owner is gone (not kept ones; a server still running is stopped, and any process left
/// working in the folder killed), the runs' private temp folders (a clone's or a plan's files,
/// such as the target's schema dump, and half-made initdb templates), `pgship_sandbox_*`
/// databases on SANDBOX_POSTGRES_URL (and `server`'s target servers recorded in the registry)
/// whose marker names a dead pid on this host, Neon branches recorded by dead runs, and, with
/// NEON_API_KEY and NEON_PROJECT_ID set, the project's `pgship-sandbox-*` branches older than
/// `opts.neon_age` (those a run on another machine left) unless a record here keeps them or
/// ties them to a live run.
pub async fn gc(env: &Env, opts: &GcOptions) -> Collected {
    let mut out = Collected::default();
    gc_records(env, &mut out).await;
    gc_clusters(&mut out);
    gc_run_folders(&mut out);
    // Databases marked by pgship on the sandbox server, whatever the registry says.
    if let Some(raw) = env
        .get("SANDBOX_POSTGRES_URL")
        .filter(|v| !v.trim().is_empty())
        && let Ok(admin) = DbUrl::parse(raw)
        && let Ok(conn) = connect(&admin, &ConnectOptions::default()).await
    {
        let rows = conn
            .client
            .query(
                "SELECT d.datname::text, pg_catalog.shobj_description(d.oid, 'pg_database') \
                 FROM pg_catalog.pg_database d WHERE d.datname LIKE 'pgship\\_sandbox\\_%'",
                &[],
            )
            .await
            .unwrap_or_default();
        for r in rows {
            let name: String = r.get(0);
            let note: Option<String> = r.get(1);
            let m: serde_json::Value = note
                .as_deref()
                .and_then(|n| serde_json::from_str(n).ok())
                .unwrap_or_default();
            let pid = m["pid"].as_u64().map(|p| p as u32);
            let here = m["host"].as_str() == Some(registry::hostname().as_str());
            // Only this machine's runs can be judged dead; kept sandboxes stay.
            let kept = m["kept"].as_bool() == Some(true);
            if kept || !here || pid.is_some_and(cluster::process_alive) {
                continue;
            }
            match drop_database(&admin, &name).await {
                Ok(()) => out.removed.push(format!("database {name}")),
                Err(e) => out.failed.push(format!("database {name}: {e}")),
            }
        }
    }
    let neon_set = ["NEON_API_KEY", "NEON_PROJECT_ID"]
        .iter()
        .all(|k| env.get(k).is_some_and(|v| !v.trim().is_empty()));
    if neon_set {
        match neon::NeonClient::from_env(env) {
            Ok(client) => gc_neon_branches(&client, opts.neon_age, &mut out).await,
            Err(e) => out.failed.push(format!("Neon branches: {e}")),
        }
    }
    out
}

/// Sandboxes the registry records of dead runs name (a local one's cluster stopped and its
/// folder removed), and their records.
async fn gc_records(env: &Env, out: &mut Collected) {
    for r in registry::all().into_iter().filter(record_orphaned) {
        let mut what = format!("{} sandbox {} of pid {}", r.strategy.as_str(), r.id, r.pid);
        if let registry::Kind::Local(k) = &r.kind {
            what.push_str(&format!(" (cluster {})", k.dir.display()));
        }
        match remove_record(&r, env).await {
            Ok(()) => {
                registry::forget(&r.id);
                out.removed.push(what);
            }
            Err(e) => out.failed.push(format!("{what}: {e}")),
        }
    }
}

/// Cluster folders of dead runs that no record named (not kept ones).
fn gc_clusters(out: &mut Collected) {
    for l in cluster::leftovers() {
        if l.alive || l.kept {
            continue;
        }
        let what = format!(
            "cluster {}{}",
            l.dir.display(),
            l.pid.map(|p| format!(" of pid {p}")).unwrap_or_default()
        );
        match cluster::remove_dir(&l.dir, l.bin.as_deref()) {
            Ok(()) => out.removed.push(what),
            Err(e) => out.failed.push(format!("{what}: {e}")),
        }
    }
}

/// The private temp folders of dead runs: a clone's or a plan's files (`clone-<pid>-*`: the
/// target's schema dump, passfiles, archives) and half-made templates (`template-build-<pid>-*`).
fn gc_run_folders(out: &mut Collected) {
    for prefix in [clone::private::PREFIX, cluster::TEMPLATE_BUILD] {
        for (path, pid) in cluster::run_folders(prefix) {
            let Some(pid) = pid.filter(|p| !cluster::process_alive(*p)) else {
                continue;
            };
            let what = format!("temp folder {} of pid {pid}", path.display());
            // As for a cluster: a process the run started may still be writing there.
            match cluster::remove_dir(&path, None) {
                Ok(()) => out.removed.push(what),
                Err(e) => out.failed.push(format!("{what}: {e}")),
            }
        }
    }
}

/// The age rule: `pgship-sandbox-*` branches of the project older than `max_age`, except those
/// a record of this machine keeps or ties to a live run.
async fn gc_neon_branches(client: &neon::NeonClient, max_age: Duration, out: &mut Collected) {
    let project = client.project_id();
    let branches = match client.list_branches(neon::BRANCH_PREFIX).await {
        Ok(b) => b,
        Err(e) => {
            out.failed
                .push(format!("Neon branches of project {project}: {e}"));
            return;
        }
    };
    // Read after the registry pass above, so records it removed are gone.
    let spared: Vec<(String, String)> = registry::all()
        .into_iter()
        .filter(|r| !record_orphaned(r))
        .filter_map(|r| match r.kind {
            registry::Kind::Neon { project: p, branch } if p == project => {
                Some((branch, format!("{}{}", neon::BRANCH_PREFIX, r.id)))
            }
            _ => None,
        })
        .collect();
    let now = jiff::Timestamp::now();
    let secs = max_age.as_secs();
    let shown_age = match secs {
        s if s > 0 && max_age.subsec_nanos() == 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && max_age.subsec_nanos() == 0 && s % 60 == 0 => format!("{}m", s / 60),
        _ => crate::util::format_duration(max_age),
    };
    for b in branches {
        if spared
            .iter()
            .any(|(id, name)| *id == b.id || *name == b.name)
        {
            continue;
        }
        // A branch whose age Neon does not tell cannot be judged.
        let Some(created) = b
            .created_at
            .as_deref()
            .and_then(|c| c.parse::<jiff::Timestamp>().ok())
        else {
            continue;
        };
        let age = Duration::try_from(now.duration_since(created)).unwrap_or(Duration::ZERO);
        if age < max_age {
            continue;
        }
        let what = format!(
            "Neon branch {} ({}), created {created}, older than {shown_age}",
            b.name, b.id
        );
        match client.delete_branch(&b.id).await {
            Ok(()) => out.removed.push(what),
            Err(e) => out.failed.push(format!("{what}: {e}")),
        }
    }
}
