//! The code half's steps, the same for every provider: git in temporary worktrees (trial merge,
//! merge and push, revert or reset), the host's part through [`Host`], and the health check.
//! `deploy` calls one method per phase.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::git::{self, MergeError, Repo, Trial};
use super::health::{self, Expect};
use super::hook::HookHost;
use super::none::NoHost;
use super::vercel::VercelHost;
use super::{AppSettings, CodeState, Events, GitRollback, Host, ProviderKind, shown_url};

/// The provider's host, chosen by `[app] provider`.
enum AnyHost {
    None(NoHost),
    Vercel(VercelHost),
    Hook(HookHost),
}

/// What the deploy asked of the code half.
#[derive(Debug, Clone, Default)]
pub struct CodeOptions {
    /// `--from <ref>`: deploy this ref instead of the current branch.
    pub from: Option<String>,
    /// `--allow-dirty`: deploy the committed state although tracked files changed.
    pub allow_dirty: bool,
}

/// PREFLIGHT's findings: the plan (None: no code step), why the run must stop, what to say.
#[derive(Debug, Default)]
pub struct Preflighted {
    pub plan: Option<CodeState>,
    pub refusals: Vec<String>,
    pub notes: Vec<String>,
    /// The trial merge's commit: the files the deploy would push.
    pub merged: Option<String>,
}

/// The code half of one environment's deployment.
pub struct App {
    pub settings: AppSettings,
    host: AnyHost,
    /// SIGINT/SIGTERM listened for from the push on: one that arrives during the push is
    /// kept, and ends the wait that follows (never lost, never cutting the push itself).
    signals: std::sync::Mutex<Option<crate::signals::Signals>>,
}

impl App {
    /// `[app]` for `environment`, the host built from its variables. A missing variable the
    /// provider needs is an error naming it.
    pub fn resolve(settings: &crate::config::Settings, environment: &str) -> Result<App, String> {
        let s = AppSettings::resolve(settings, environment)?;
        let host = match s.provider {
            ProviderKind::None => AnyHost::None(NoHost),
            ProviderKind::Vercel => AnyHost::Vercel(VercelHost::from_env(&settings.env)?),
            ProviderKind::Hook => AnyHost::Hook(HookHost::from_env(&settings.env)?),
        };
        Ok(App {
            settings: s,
            host,
            signals: std::sync::Mutex::new(None),
        })
    }

    pub fn kind(&self) -> ProviderKind {
        self.settings.provider
    }

    pub fn as_str(&self) -> &'static str {
        self.settings.provider.as_str()
    }

    /// PREFLIGHT (code): the repository, the feature branch clean, a trial merge into the
    /// environment's branch, the host reachable; all read-only, the git part beside the host's.
    pub async fn preflight(&self, project_dir: &Path, opts: &CodeOptions) -> Preflighted {
        if self.kind() == ProviderKind::None {
            return Preflighted::default();
        }
        let s = self.settings.clone();
        let (dir, o) = (project_dir.to_path_buf(), opts.clone());
        let git_task = tokio::task::spawn_blocking(move || git_preflight(&s, &dir, &o));
        let (git, host) = tokio::join!(git_task, self.host.preflight(&self.settings));
        let mut out = git.unwrap_or_else(|e| Preflighted {
            refusals: vec![format!("git: {e}")],
            ..Preflighted::default()
        });
        match host {
            Err(e) => out.refusals.push(e),
            Ok(current) => {
                if let Some(plan) = out.plan.as_mut() {
                    plan.previous_url = current.as_ref().and_then(|c| c.1.clone());
                    plan.previous_deployment = current.map(|c| c.0);
                }
            }
        }
        out
    }

    /// PREFLIGHT, once the pending migrations are known: those of `files` that the feature
    /// commit of `plan` does not hold as they are on disk (untracked, uncommitted, or another
    /// branch's with `--from`). The database would get them while the pushed code lacks them.
    pub async fn not_in_feature(
        &self,
        project_dir: &Path,
        plan: &CodeState,
        files: Vec<PathBuf>,
    ) -> Result<Vec<PathBuf>, String> {
        self.not_at(project_dir, &plan.feature_commit, &plan.feature, files)
            .await
    }

    /// Those of `files` that `commit` (`what` names it) does not hold as they are on disk.
    pub async fn not_at(
        &self,
        project_dir: &Path,
        commit: &str,
        what: &str,
        files: Vec<PathBuf>,
    ) -> Result<Vec<PathBuf>, String> {
        let commit = commit.to_string();
        let what = format!("comparing the pending migrations with {what}");
        blocking_git(project_dir, what, move |repo| {
            repo.not_at(&commit, &files).map_err(MergeError::from)
        })
        .await
    }

    /// DEPLOY (code), after the database, first step: merge and push. The state gets the merge
    /// commit once it is pushed; the caller records it before [`App::await_live`], so that a
    /// run killed while the host builds still knows what to undo.
    pub async fn push(
        &self,
        project_dir: &Path,
        state: &mut CodeState,
        id: &str,
        ev: &mut dyn Events,
    ) -> Result<(), String> {
        if state.already_merged {
            ev.info(
                format!(
                    "{} is already in {}: no code step",
                    state.feature, state.branch
                ),
                json!({}),
            );
            return Ok(());
        }
        if let Ok(mut held) = self.signals.lock()
            && held.is_none()
        {
            *held = crate::signals::Signals::install().ok();
        }
        let message = format!(
            "Merge {} into {} (pgship {id})",
            state.feature, state.branch
        );
        let what = format!(
            "merging {} into {}/{}",
            state.feature, state.remote, state.branch
        );
        let merged = blocking_git(project_dir, what, {
            let (remote, branch, feature) = (
                state.remote.clone(),
                state.branch.clone(),
                state.feature_commit.clone(),
            );
            move |repo| {
                git::merge_and_push(repo, &worktrees(), &remote, &branch, &feature, &message)
            }
        })
        .await?;
        state.before.clone_from(&merged.before);
        state.merge_commit = Some(merged.merge_commit.clone());
        ev.info(
            format!(
                "merged {} into {} as {} and pushed to {}{}",
                state.feature,
                state.branch,
                short(&merged.merge_commit),
                state.remote,
                if merged.retried {
                    " (the remote had moved: merged again on its new tip)"
                } else {
                    ""
                }
            ),
            json!({"merge_commit": merged.merge_commit, "before": merged.before, "retried": merged.retried}),
        );
        Ok(())
    }

    /// DEPLOY (code), second step: the host builds the pushed merge (started, when the host
    /// must be told) and it is awaited (minutes): SIGINT or SIGTERM ends the wait as a failed
    /// deploy, so the rollback that follows undoes what was pushed. The push itself is never
    /// interrupted (what was pushed must be known to be undone).
    pub async fn await_live(
        &self,
        state: &mut CodeState,
        ev: &mut dyn Events,
    ) -> Result<(), String> {
        let Some(commit) = state.merge_commit.clone() else {
            return Ok(());
        };
        let what = format!("waiting for the app's deployment of {}", short(&commit));
        state.new_deployment = self
            .interruptible(&what, self.host.deploy(&self.settings, &commit, ev))
            .await?;
        Ok(())
    }

    /// POST_DEPLOY_VALIDATION (app): `<ENV>_URL` + health path answers 2xx from the pushed
    /// commit (when it names one). When the host could not say the deployment is live (a deploy
    /// hook without `VERCEL_TOKEN`), the health check is the only proof: the answer must name
    /// the pushed commit, and the build's time (`deploy_timeout`) is waited for too.
    pub async fn check(
        &self,
        state: Option<&CodeState>,
        ev: &mut dyn Events,
    ) -> Result<(), String> {
        let unproven = !self.host_proves_live();
        let (expect, timeout) = match state.and_then(|s| s.merge_commit.clone()) {
            Some(c) if unproven => (
                Expect::NamedCommit(c),
                self.settings.deploy_timeout + self.settings.health_timeout,
            ),
            Some(c) => (Expect::Commit(c), self.settings.health_timeout),
            None => (Expect::Any, self.settings.health_timeout),
        };
        let what = "waiting for the app's health check";
        self.interruptible(what, self.health_within(expect, timeout, ev))
            .await
    }

    /// Whether the host itself says when a pushed commit's deployment is live.
    fn host_proves_live(&self) -> bool {
        match &self.host {
            AnyHost::None(_) => false,
            AnyHost::Vercel(_) => true,
            AnyHost::Hook(h) => h.api.is_some(),
        }
    }

    /// ROLLBACK (code), before the database: the host serves the previous deployment again,
    /// then the merge is reverted (or the branch reset) and pushed. Each step's outcome goes to
    /// `ev`; the first failure is returned after the remaining steps were tried.
    pub async fn roll_back(
        &self,
        project_dir: &Path,
        state: &mut CodeState,
        id: &str,
        ev: &mut dyn Events,
    ) -> Result<(), String> {
        let Some(merge) = state.merge_commit.clone().filter(|_| !state.undone()) else {
            ev.info(
                "no code was pushed by this deployment: nothing to undo in the app".into(),
                json!({}),
            );
            return Ok(());
        };
        let mut errors = Vec::new();
        let restored = match self.host.restore(&self.settings, state, ev).await {
            Ok(r) => r,
            Err(e) => {
                errors.push(e);
                false
            }
        };
        state.instant_rollback = restored;
        if restored {
            if let Err(e) = self.health(Expect::NotCommit(merge.clone()), ev).await {
                errors.push(e);
            }
        }
        match self.undo_git(project_dir, state, &merge, id, ev).await {
            Ok(commit) => {
                if let Err(e) = self
                    .host
                    .after_revert(&self.settings, &commit, restored, ev)
                    .await
                {
                    errors.push(e);
                }
            }
            Err(e) => errors.push(e),
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// After the database was rolled back: the app answers, and not from the rolled-back
    /// commit.
    pub async fn check_after_rollback(
        &self,
        state: Option<&CodeState>,
        ev: &mut dyn Events,
    ) -> Result<(), String> {
        let expect = match state.and_then(|s| s.merge_commit.clone()) {
            Some(c) => Expect::NotCommit(c),
            None => Expect::Any,
        };
        self.health(expect, ev).await
    }

    /// What a person must still run after a code step failed.
    pub fn commands_left(&self, state: &CodeState) -> Vec<String> {
        let mut out = Vec::new();
        if let (Some(prev), false) = (&state.previous_deployment, state.instant_rollback) {
            // Vercel's instant rollback is for production deployments only.
            if self.kind() != ProviderKind::None && self.settings.production {
                out.push(format!("vercel rollback {prev}"));
            }
        }
        if let (Some(merge), false) = (&state.merge_commit, state.undone()) {
            let (r, b) = (&state.remote, &state.branch);
            out.push(format!(
                "git fetch {r} {b} && git switch --detach {r}/{b} && git revert -m 1 {merge} && git push {r} HEAD:{b}"
            ));
        }
        out
    }

    /// `work`, or an error when SIGINT or SIGTERM arrives first, or arrived since the push
    /// (`what` says what was awaited).
    async fn interruptible<T>(
        &self,
        what: &str,
        work: impl std::future::Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        let held = self.signals.lock().ok().and_then(|mut h| h.take());
        let Some(mut signals) = held.or_else(|| crate::signals::Signals::install().ok()) else {
            return work.await;
        };
        let r = tokio::select! {
            r = work => r,
            s = signals.recv() => Err(format!("interrupted by {} while {what}", s.name())),
        };
        if let Ok(mut h) = self.signals.lock() {
            *h = Some(signals);
        }
        r
    }

    /// `status <env>`: the deployment serving the environment now, when the host says.
    pub async fn current(&self) -> Result<Option<String>, String> {
        self.host.current(&self.settings).await
    }

    async fn undo_git(
        &self,
        project_dir: &Path,
        state: &mut CodeState,
        merge: &str,
        id: &str,
        ev: &mut dyn Events,
    ) -> Result<String, String> {
        let (remote, branch, before) = (
            state.remote.clone(),
            state.branch.clone(),
            state.before.clone(),
        );
        let merge_c = merge.to_string();
        match self.settings.git_rollback {
            GitRollback::Revert => {
                let message = format!(
                    "Revert {} on {branch} (pgship rollback of {id})",
                    state.feature
                );
                let what = format!("reverting {} on {}/{branch}", short(merge), state.remote);
                let commit = blocking_git(project_dir, what, move |repo| {
                    git::revert_and_push(repo, &worktrees(), &remote, &branch, &merge_c, &message)
                })
                .await?;
                ev.info(
                    format!(
                        "reverted {} on {} as {} and pushed",
                        short(merge),
                        state.branch,
                        short(&commit)
                    ),
                    json!({"revert_commit": commit}),
                );
                state.revert_commit = Some(commit.clone());
                Ok(commit)
            }
            GitRollback::Reset => {
                let to = before.clone();
                let what = format!("resetting {}/{branch} to {}", state.remote, short(&before));
                blocking_git(project_dir, what, move |repo| {
                    git::reset_and_push(repo, &worktrees(), &remote, &branch, &to, &merge_c)
                })
                .await?;
                ev.info(
                    format!(
                        "reset {} to {} and pushed with a lease on {}",
                        state.branch,
                        short(&before),
                        short(merge)
                    ),
                    json!({"reset_to": before}),
                );
                state.reset = true;
                Ok(before)
            }
        }
    }

    async fn health(&self, expect: Expect, ev: &mut dyn Events) -> Result<(), String> {
        self.health_within(expect, self.settings.health_timeout, ev)
            .await
    }

    async fn health_within(
        &self,
        expect: Expect,
        timeout: std::time::Duration,
        ev: &mut dyn Events,
    ) -> Result<(), String> {
        let Some(url) = self.settings.health_url() else {
            ev.info(
                format!("{} is not set: no health check", self.settings.url_var),
                json!({}),
            );
            return Ok(());
        };
        let shown = shown_url(url.expose());
        let mut progress = |m: &str| ev.progress(m);
        let h = health::wait_healthy(
            url.expose(),
            &expect,
            self.settings.commit_field.as_deref(),
            timeout,
            &mut progress,
        )
        .await
        .map_err(|e| format!("health check {shown}: {e}"))?;
        ev.info(
            format!(
                "health check {shown}: {}{} after {} attempt(s)",
                h.status,
                h.commit
                    .as_deref()
                    .map(|c| format!(", commit {}", short(c)))
                    .unwrap_or_default(),
                h.attempts
            ),
            json!({"health": {"status": h.status, "commit": h.commit, "attempts": h.attempts,
                              "elapsed_ms": h.elapsed.as_millis() as u64}}),
        );
        Ok(())
    }
}

impl Host for AnyHost {
    async fn preflight(&self, s: &AppSettings) -> Result<Option<(String, Option<String>)>, String> {
        match self {
            AnyHost::None(h) => h.preflight(s).await,
            AnyHost::Vercel(h) => h.preflight(s).await,
            AnyHost::Hook(h) => h.preflight(s).await,
        }
    }

    async fn deploy(
        &self,
        s: &AppSettings,
        commit: &str,
        ev: &mut dyn Events,
    ) -> Result<Option<String>, String> {
        match self {
            AnyHost::None(h) => h.deploy(s, commit, ev).await,
            AnyHost::Vercel(h) => h.deploy(s, commit, ev).await,
            AnyHost::Hook(h) => h.deploy(s, commit, ev).await,
        }
    }

    async fn restore(
        &self,
        s: &AppSettings,
        state: &CodeState,
        ev: &mut dyn Events,
    ) -> Result<bool, String> {
        match self {
            AnyHost::None(h) => h.restore(s, state, ev).await,
            AnyHost::Vercel(h) => h.restore(s, state, ev).await,
            AnyHost::Hook(h) => h.restore(s, state, ev).await,
        }
    }

    async fn after_revert(
        &self,
        s: &AppSettings,
        commit: &str,
        restored: bool,
        ev: &mut dyn Events,
    ) -> Result<(), String> {
        match self {
            AnyHost::None(h) => h.after_revert(s, commit, restored, ev).await,
            AnyHost::Vercel(h) => h.after_revert(s, commit, restored, ev).await,
            AnyHost::Hook(h) => h.after_revert(s, commit, restored, ev).await,
        }
    }

    async fn current(&self, s: &AppSettings) -> Result<Option<String>, String> {
        match self {
            AnyHost::None(h) => h.current(s).await,
            AnyHost::Vercel(h) => h.current(s).await,
            AnyHost::Hook(h) => h.current(s).await,
        }
    }
}

/// Temporary worktrees go to the temp folder, never into the user's checkout.
fn worktrees() -> PathBuf {
    std::env::temp_dir()
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// Run a git step on the project's repository on tokio's blocking pool.
/// `what` names the step in an error ("merging feature into origin/develop").
async fn blocking_git<T: Send + 'static>(
    project_dir: &Path,
    what: String,
    f: impl FnOnce(&Repo) -> Result<T, MergeError> + Send + 'static,
) -> Result<T, String> {
    let dir = project_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let repo = Repo::discover(&dir)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} is not in a git repository", dir.display()))?;
        f(&repo).map_err(|e| format!("{what}: {e}"))
    })
    .await
    .map_err(|e| format!("the git worker thread failed: {e}"))?
}

/// The git half of PREFLIGHT (blocking).
fn git_preflight(s: &AppSettings, dir: &Path, o: &CodeOptions) -> Preflighted {
    match git_plan(s, dir, o) {
        Ok(p) => p,
        Err(e) => Preflighted {
            refusals: vec![e],
            ..Preflighted::default()
        },
    }
}

fn git_plan(s: &AppSettings, dir: &Path, o: &CodeOptions) -> Result<Preflighted, String> {
    let e = |e: git::GitError| e.to_string();
    let repo = Repo::discover(dir).map_err(e)?.ok_or_else(|| {
        format!(
            "[app] provider = \"{}\" deploys code with git, but {} is not in a git repository",
            s.provider.as_str(),
            dir.display()
        )
    })?;
    let feature = match &o.from {
        Some(r) => r.clone(),
        None => repo
            .current_branch()
            .map_err(e)?
            .ok_or("HEAD is detached: name the ref to deploy with --from <branch>".to_string())?,
    };
    if feature == s.branch {
        return Err(format!(
            "the feature branch is {feature}, the environment's own branch: check out the branch to deploy, or pass --from <branch>"
        ));
    }
    let feature_commit = repo.resolve(&feature).map_err(e)?;
    let mut out = Preflighted::default();
    let dirty = repo.dirty_tracked().map_err(e)?;
    if !dirty.is_empty() {
        let list = crate::util::fold_list(&dirty, 8, 3);
        if o.allow_dirty {
            out.notes.push(format!(
                "uncommitted changes are not deployed (--allow-dirty): {list}"
            ));
        } else {
            out.refusals.push(format!(
                "uncommitted changes to tracked files: {list} (commit them, or pass --allow-dirty to deploy the committed state of {feature})"
            ));
        }
    }
    repo.check_remote(&s.remote).map_err(e)?;
    let trial =
        git::trial_merge(&repo, &worktrees(), &s.remote, &s.branch, &feature_commit).map_err(e)?;
    let (tip, already_merged) = match trial {
        Trial::Clean { tip, merged } => {
            out.merged = Some(merged);
            (tip, false)
        }
        Trial::AlreadyMerged { tip } => {
            out.notes.push(format!(
                "{feature} is already merged into {}: no code step",
                s.branch
            ));
            (tip, true)
        }
        Trial::Conflict { files, .. } => {
            out.refusals.push(format!(
                "merging {feature} into {}/{} conflicts in {}: merge or rebase it first",
                s.remote,
                s.branch,
                crate::util::fold_list(&files, 8, 3)
            ));
            return Ok(out);
        }
    };
    if !already_merged {
        out.notes.push(format!(
            "git: {feature} ({}) merges cleanly into {}/{} ({})",
            short(&feature_commit),
            s.remote,
            s.branch,
            short(&tip)
        ));
    }
    out.plan = Some(CodeState {
        provider: s.provider.as_str().into(),
        remote: s.remote.clone(),
        branch: s.branch.clone(),
        feature,
        feature_commit,
        before: tip,
        already_merged,
        ..CodeState::default()
    });
    Ok(out)
}
