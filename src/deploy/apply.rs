//! DEPLOY (database): under the migration lock (a bounded wait, then a failure naming the
//! holder), prove the target is still what was rehearsed and backed up (the same pending
//! migrations, the same schema fingerprint; else abort, untouched), then apply with the engine
//! in the mode and with the timeouts the rehearsal used. The lock is kept until the deployment
//! ends, so POST_DEPLOY_VALIDATION and ROLLBACK run under it too.

use std::time::Duration;

use serde_json::json;

use super::Ctx;
use super::backup::BackedUp;
use super::decide::Phase;
use super::engine;
use super::log::Log;
use super::policy::filter;
use super::preflight::Preflight;
use crate::compare::introspect::introspect;
use crate::db::apply::{ApplyOptions, Work};
use crate::db::plan as dbplan;
use crate::db::{Conn, ConnectOptions, connect, lock, state};
use crate::error::Result;
use crate::journal::Level;
use crate::rollback::guard;

/// The target's session for the rest of the deployment, holding the migration lock.
pub struct Locked {
    pub conn: Conn,
}

impl Locked {
    pub async fn release(self) {
        let _ = lock::release(&self.conn.client, lock::MIGRATE_LOCK_KEY).await;
    }
}

/// What DEPLOY did.
pub struct Deployed {
    pub applied: engine::Applied,
    /// Something committed on the target.
    pub changed: bool,
    pub before_apply: guard::Snapshot,
    pub after_apply: Option<guard::Snapshot>,
}

/// Connect with the engine's session settings and take the migration lock.
pub async fn lock(
    log: &mut Log,
    t: &Ctx<'_>,
    pf: &Preflight,
) -> Result<std::result::Result<Locked, String>> {
    let conn = connect(
        t.url,
        &ConnectOptions {
            connect_timeout: pf.settings.connect_timeout,
            settings: pf.settings.session(),
        },
    )
    .await?;
    let console = log.console;
    let wait = pf.settings.lock_wait;
    let taken = lock::acquire(&conn.client, lock::MIGRATE_LOCK_KEY, wait, |holder| {
        let who = holder.map_or_else(|| "another session".to_string(), ToString::to_string);
        console.warn(&format!(
            "waiting up to {} for the migration lock held by {who}",
            crate::util::format_duration(wait)
        ));
    })
    .await;
    match taken {
        Ok(()) => Ok(Ok(Locked { conn })),
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// Mark runs killed earlier `interrupted` (the caller holds the lock, so none is live); what
/// they committed stays recorded, the rest is pending again.
async fn finish_dead(log: &mut Log, client: &tokio_postgres::Client) -> Result<()> {
    for run in state::dead_runs(client, true).await? {
        if state::mark_interrupted(client, &run).await? {
            log.warn(
                Phase::Deploy,
                format!(
                    "finished an interrupted deployment: {}; what it committed stays recorded, the rest is pending again",
                    run.describe()
                ),
                json!({"interrupted": run}),
            );
        }
    }
    Ok(())
}

/// With nothing pending, a run killed earlier is still finished: its row stops saying
/// `running`. Takes the lock briefly; a live run holding it is left alone.
pub async fn finish_interrupted(log: &mut Log, t: &Ctx<'_>, pf: &Preflight) -> Result<()> {
    if pf.dead.is_empty() {
        return Ok(());
    }
    if let Ok(locked) = lock(log, t, pf).await? {
        let r = finish_dead(log, &locked.conn.client).await;
        locked.release().await;
        r?;
    }
    Ok(())
}

/// Under the lock: record the deployment, settle runs killed earlier, and check that nothing
/// moved since PREFLIGHT. `Err(reason)` aborts with the target untouched.
pub async fn prove_unchanged(
    log: &mut Log,
    t: &Ctx<'_>,
    pf: &Preflight,
    b: &BackedUp,
    locked: &Locked,
) -> Result<std::result::Result<(), String>> {
    let client = &locked.conn.client;
    state::bootstrap(client).await?;
    finish_dead(log, client).await?;
    let st = state::read(client, &t.project.state).await?;
    let now = dbplan::classify(
        &t.project.source.migrations,
        &st.records,
        &st.partials,
        t.project.state.matching(),
    );
    if now.to_run() != pf.plan.to_run() {
        return Ok(Err(
            "the target's migration state changed since PREFLIGHT (another deployment ran meanwhile): nothing was applied; run the deploy again".into(),
        ));
    }
    let model = introspect(client, &filter(t.project)).await?;
    let fp = model.fingerprint();
    if fp != b.prepared.fingerprint {
        return Ok(Err(format!(
            "the target's schema changed since the backup (fingerprint {} now, {} backed up): nothing was applied; run the deploy again",
            &fp[..fp.len().min(12)],
            &b.prepared.fingerprint[..b.prepared.fingerprint.len().min(12)]
        )));
    }
    Ok(Ok(()))
}

/// Apply the pending migrations. `Err` only for an interruption by a signal (exit 130/143).
pub async fn run(
    log: &mut Log,
    t: &Ctx<'_>,
    pf: &Preflight,
    b: &BackedUp,
    locked: &Locked,
) -> Result<Deployed> {
    let client = &locked.conn.client;
    let watched = &b.state.guard.watched;
    let before_apply = super::guard::before_apply(client, &b.s0, watched).await?;
    let work: Vec<Work<'_>> = pf.plan.work(&t.project.source.migrations);
    let opts = ApplyOptions {
        tx_mode: pf.settings.tx_mode,
        lock_retries: pf.settings.lock_retries,
        backoff: Duration::from_millis(500),
        deployment_id: t.id.clone(),
        server_major: pf.major,
        resolve_running: t.resolve_running,
    };
    let applied = engine::run(
        &locked.conn,
        &t.project.state,
        &work,
        &opts,
        &mut log.journal,
        log.console,
    )
    .await?;
    let changed = match &applied {
        Ok(r) => !r.applied.is_empty(),
        Err(f) => !f.committed.is_empty() || f.partial.is_some(),
    };
    let after_apply = super::guard::after_apply(client, &b.s0, watched).await.ok();
    match &applied {
        Ok(r) => {
            log.end(
                Phase::Deploy,
                Level::Info,
                "proceed",
                format!(
                    "applied {} migration(s) in {}",
                    r.applied.len(),
                    crate::util::format_duration(r.duration)
                ),
                json!({"applied": r.applied}),
            );
        }
        Err(f) => {
            let text = engine::failure_text(f, &pf.settings);
            log.end(
                Phase::Deploy,
                Level::Error,
                "roll-back",
                format!("the apply failed: {text}"),
                json!({"failure": f, "changed": changed}),
            );
        }
    }
    Ok(Deployed {
        applied,
        changed,
        before_apply,
        after_apply,
    })
}
