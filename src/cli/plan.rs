//! `pgship plan <target>`: PREFLIGHT and SANDBOX_VALIDATION. Reads the target only, rehearses
//! the pending migrations on a sandbox of it, and decides whether a deploy may proceed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use super::Globals;
use super::project::Project;
use super::sandbox::{DataArg, sandbox_err, sandbox_request};
use crate::compare::{BreakingPolicy, SchemaFilter};
use crate::config::Target;
use crate::db::apply::{ApplyOptions, TxMode, Work};
use crate::db::plan as dbplan;
use crate::db::{ConnectOptions, DbUrl, connect, state, tools};
use crate::error::{Error, ExitCode, Result};
use crate::journal::console::Format;
use crate::journal::{Journal, Level, phase, run_id};
use crate::lint::{
    self, Context, Outcome, Selection, Severity, Source as LintSource, Wrap, catalog,
};
use crate::rehearse::report::{Pending, PlanReport, SandboxInfo};
use crate::rehearse::{self, Policy, Verdict, decide};
use crate::sandbox::{Sandbox, Strategy};
use crate::source::SourceKind;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Environment name, `local`, or a postgres:// URL. Only read.
    pub target: String,
    /// How to make the sandbox (default: [sandbox] strategy, else auto).
    #[arg(long, value_enum)]
    pub sandbox: Option<Strategy>,
    /// `full` (default): the target's rows; `schema`: no rows (faster, measures less).
    #[arg(long, value_enum, default_value = "full")]
    pub data: DataArg,
    /// The app's tests, run with DATABASE_URL and <ENV>_POSTGRES_URL pointing at the
    /// sandbox after the migrations; a non-zero exit aborts (default: [rehearsal] test_cmd).
    #[arg(long, value_name = "COMMAND")]
    pub test_cmd: Option<String>,
    /// Keep the sandbox afterwards (drop it with `pgship sandbox drop <id>`).
    #[arg(long)]
    pub keep_sandbox: bool,
    /// Folder of check queries that must return no rows (default: [rehearsal] checks_dir,
    /// else pgship/checks).
    #[arg(long, value_name = "DIR")]
    pub checks: Option<PathBuf>,
    /// The engine's settings, as the deploy will use them.
    #[command(flatten)]
    pub engine: super::migrate::EngineArgs,
}

/// `[policy]` with the seed's defaults; every bad value names its key.
pub fn policy(project: &Project) -> Result<Policy> {
    let f = &project.settings.file.policy;
    let mut p = Policy {
        breaking: BreakingPolicy::from_config(&f.breaking).map_err(Error::usage)?,
        ..Policy::default()
    };
    if let Some(ms) = f.max_exclusive_lock_ms {
        p.max_exclusive_lock_ms = ms;
    }
    let keys: [(&str, &Option<String>, &mut crate::compare::Action); 6] = [
        ("long_lock", &f.long_lock, &mut p.long_lock),
        ("lint_error", &f.lint_error, &mut p.lint_error),
        ("lint_warning", &f.lint_warning, &mut p.lint_warning),
        ("rows_lost", &f.rows_lost, &mut p.rows_lost),
        ("violations", &f.violations, &mut p.violations),
        (
            "rollback_unproven",
            &f.rollback_unproven,
            &mut p.rollback_unproven,
        ),
    ];
    for (key, value, slot) in keys {
        if let Some(v) = value {
            *slot = crate::compare::Action::parse(v).ok_or_else(|| {
                Error::usage(format!(
                    "[policy] {key} = \"{v}\": expected abort, warn or allow"
                ))
            })?;
        }
    }
    Ok(p)
}

/// The schemas the rehearsal compares and counts: all but pgship's and the state schema.
fn filter(project: &Project) -> SchemaFilter {
    let mut exclude = vec!["pgship".to_string()];
    if let Some(q) = &project.state.drizzle {
        exclude.push(q.schema.clone());
    }
    SchemaFilter {
        include: Vec::new(),
        exclude,
    }
}

fn display(project_dir: &Path, path: &Path) -> String {
    path.strip_prefix(project_dir)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Lint the pending migrations as the engine will run them, with the target's catalog.
fn lint_pending(
    project: &Project,
    chosen: &[(usize, usize)],
    tx_mode: TxMode,
    pg_version: u32,
    cat: Option<catalog::Catalog>,
) -> Result<Outcome> {
    let f = &project.settings.file.lint;
    let sel = Selection {
        enable: f.enable.iter().cloned().collect(),
        disable: f.disable.iter().cloned().collect(),
    };
    sel.validate()
        .map_err(|e| Error::usage(format!("[lint]: {e}")))?;
    let mut ctx = Context::new(pg_version, cat);
    let mut out = Outcome::default();
    let drizzle = project.source.kind != SourceKind::Sql;
    for (i, _) in chosen {
        let m = &project.source.migrations[*i];
        let text = String::from_utf8(m.raw.clone())
            .map_err(|_| Error::usage(format!("{}: not UTF-8 text", m.path.display())))?;
        let src = LintSource {
            name: display(&project.settings.project_dir, &m.path),
            text: &text,
            drizzle,
            wrap: Wrap::Engine {
                per_migration: tx_mode == TxMode::PerMigration,
            },
        };
        lint::lint_source(&src, &mut ctx, &sel, &mut out);
    }
    Ok(out)
}

pub async fn run(globals: &Globals, args: Args) -> Result<ExitCode> {
    let (project, target, url) = Project::with_target(globals, &args.target)?;
    execute(globals, &project, &target, &url, &args).await
}

/// Plan `project`'s pending migrations for `url`. Shared with `demo`.
pub async fn execute(
    globals: &Globals,
    project: &Project,
    target: &Target,
    url: &DbUrl,
    args: &Args,
) -> Result<ExitCode> {
    let console = globals.console;
    let started = Instant::now();
    let policy = policy(project)?;
    let mig_args = super::migrate::Args {
        target: args.target.clone(),
        dry_run: false,
        engine: args.engine.clone(),
        lock_retries: None,
        lock_wait: None,
        allow_edited: false,
    };
    let mut settings = super::migrate::Settings::resolve(project, &mig_args)?;
    let rf = &project.settings.file.rehearsal;
    let test_cmd = args.test_cmd.clone().or_else(|| rf.test_cmd.clone());
    let test_timeout = match &rf.test_timeout {
        Some(t) => Some(
            crate::util::parse_duration(t)
                .map_err(|e| Error::usage(format!("[rehearsal] test_timeout: {e}")))?,
        ),
        None => None,
    };
    let checks_dir = args.checks.clone().unwrap_or_else(|| {
        project
            .settings
            .project_dir
            .join(rf.checks_dir.as_deref().unwrap_or("pgship/checks"))
    });
    let check_files: Vec<(PathBuf, String)> = rehearse::data::check_files(&checks_dir)
        .map_err(|e| Error::usage(format!("{}: {e}", checks_dir.display())))?
        .into_iter()
        .map(|p| {
            let shown = display(&project.settings.project_dir, &p);
            (p, shown)
        })
        .collect();

    // PREFLIGHT: everything read from the target, in a read-only session.
    let id = run_id("plan", &target.name);
    let mut journal = Journal::create(&project.settings.project_dir, &id).map_err(|e| {
        Error::usage(format!(
            "cannot write the deployment log under .deployments/: {e}"
        ))
    })?;
    let log =
        |journal: &mut Journal, ph: &str, level: Level, msg: String, meta: serde_json::Value| {
            console.line(level, &msg);
            journal.log(ph, level, msg, meta);
        };
    let pf_started = Instant::now();
    log(
        &mut journal,
        phase::PREFLIGHT,
        Level::Info,
        format!("plan for {} ({})", target.name, url.redacted()),
        json!({"phase_event": "start", "target": url.redacted(), "environment": target.name}),
    );
    if let Some(host) = url.pooler_host() {
        return Err(Error::usage(format!(
            "{} is a connection pooler host ({host}): pgship needs a direct connection",
            url.redacted()
        ))
        .with_hint("use the endpoint host without `-pooler`"));
    }
    let mut session = vec![(
        "default_transaction_read_only".to_string(),
        "on".to_string(),
    )];
    session.extend(settings.session());
    let conn = connect(
        url,
        &ConnectOptions {
            connect_timeout: settings.connect_timeout,
            settings: session,
        },
    )
    .await?;
    // The rehearsal applies with the statement_timeout a deploy will get on this target.
    let st = crate::db::timeouts::resolve(&conn.client, settings.statement_timeout).await?;
    let server_set = st.configured.is_some();
    settings.honour(st);
    log(
        &mut journal,
        phase::PREFLIGHT,
        if server_set {
            Level::Info
        } else {
            Level::Debug
        },
        settings.statement_timeout_line().unwrap_or_default(),
        json!({"statement_timeout": settings.statement_timeout_from}),
    );
    let major = conn.version.major();
    let server_version = conn.version.text.clone();
    let dump_tools = tools::find_dump_tools(major).map_err(|e| {
        Error::usage(e).with_hint(
            "the rehearsal dumps the sandbox with them; install the PostgreSQL client tools of the server's version",
        )
    })?;
    let source = &project.source;
    let st = state::read(&conn.client, &project.state).await?;
    let classified = dbplan::classify(
        &source.migrations,
        &st.records,
        &st.partials,
        project.state.matching(),
    );
    let mut refusals = super::migrate::refusals(project, &classified, None);
    refusals.extend(
        super::migrate::state_refusals(&conn.client, project, st.records.len(), &classified)
            .await?,
    );
    if !refusals.is_empty() {
        let msg = format!("PREFLIGHT refused:\n  {}", refusals.join("\n  "));
        log(
            &mut journal,
            phase::PREFLIGHT,
            Level::Error,
            msg.clone(),
            json!({"reasons": refusals}),
        );
        return Err(Error::refused(msg).with_hint(format!(
            "the log is in {}",
            journal.dir.join("deployment.log").display()
        )));
    }
    let git = rehearse::git::state(&project.settings.project_dir);
    match &git {
        Some(g) => log(
            &mut journal,
            phase::PREFLIGHT,
            if g.clean { Level::Info } else { Level::Warn },
            format!(
                "git: {} at {}{}",
                g.branch.as_deref().unwrap_or("(detached HEAD)"),
                &g.commit[..g.commit.len().min(12)],
                if g.clean {
                    ""
                } else {
                    " with uncommitted changes (a deploy would refuse them)"
                }
            ),
            json!({"branch": g.branch, "commit": g.commit, "clean": g.clean}),
        ),
        None => log(
            &mut journal,
            phase::PREFLIGHT,
            Level::Debug,
            "git: the project is not in a git repository".into(),
            json!({}),
        ),
    }
    let to_run = classified.to_run();
    let pending: Vec<Pending> = to_run
        .iter()
        .map(|(i, start)| {
            let m = &source.migrations[*i];
            Pending {
                name: m.name.clone(),
                file: display(&project.settings.project_dir, &m.path),
                statements: m.statements.len(),
                resume_at: *start,
            }
        })
        .collect();
    log(
        &mut journal,
        phase::PREFLIGHT,
        Level::Info,
        format!(
            "PostgreSQL {}, {} pending migration(s), pg_dump from {}",
            conn.version.text,
            pending.len(),
            dump_tools.dir.display()
        ),
        json!({"server_version": conn.version.text, "pending": pending.iter().map(|p| &p.name).collect::<Vec<_>>(),
               "pg_dump": dump_tools.dir.display().to_string(), "tx_mode": settings.tx_mode}),
    );
    if to_run.is_empty() {
        log(
            &mut journal,
            phase::PREFLIGHT,
            Level::Info,
            "nothing pending: the target is up to date".into(),
            json!({"phase_event": "end", "decision": "nothing-to-do", "duration_ms": pf_started.elapsed().as_millis() as u64}),
        );
        let report = PlanReport {
            deployment_id: id.clone(),
            environment: target.name.clone(),
            target: url.redacted(),
            server_version: conn.version.text.clone(),
            source: source.kind.as_str().to_string(),
            git: git.clone(),
            pending,
            sandbox: None,
            rehearsal: None,
            lint: Vec::new(),
            decision: decide::decide(&decide::Facts::default(), &policy),
            seconds: started.elapsed().as_secs_f64(),
        };
        return finish(globals, &journal, &report, true);
    }
    let cat = catalog::load(&conn.client).await.ok();
    let lint_out = lint_pending(project, &to_run, settings.tx_mode, major, cat)?;
    let errors = lint_out
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    log(
        &mut journal,
        phase::PREFLIGHT,
        Level::Info,
        format!(
            "static lint: {} finding(s), {errors} at error severity",
            lint_out.findings.len()
        ),
        json!({"phase_event": "end", "findings": lint_out.findings.len(), "errors": errors,
               "duration_ms": pf_started.elapsed().as_millis() as u64}),
    );
    drop(conn);

    // SANDBOX_VALIDATION.
    let sv_started = Instant::now();
    let data = args.data;
    let req = sandbox_request(&project.settings, args.sandbox, data, None)?;
    log(
        &mut journal,
        phase::SANDBOX_VALIDATION,
        Level::Info,
        format!("making a sandbox of {}", url.redacted()),
        json!({"phase_event": "start", "strategy": req.strategy}),
    );
    let terminal =
        console.format == Format::Text && crate::journal::Console::is_terminal() && !console.quiet;
    let progress = |p: crate::sandbox::clone::Progress| {
        if terminal {
            anstream::eprint!("\r\x1b[2K· {}", p.line());
        }
    };
    let sb = Sandbox::create(url, &req, &project.settings.env, &progress)
        .await
        .map_err(sandbox_err)?;
    if terminal {
        anstream::eprintln!();
    }
    log(
        &mut journal,
        phase::SANDBOX_VALIDATION,
        Level::Info,
        format!(
            "sandbox {} ({}) ready in {:.1}s{}",
            sb.id,
            sb.strategy.as_str(),
            sb.seconds,
            sb.clone_report
                .as_ref()
                .map(|r| format!(": {}", r.summary()))
                .unwrap_or_default()
        ),
        json!({"sandbox": sb.id, "strategy": sb.strategy, "seconds": sb.seconds,
               "clone": sb.clone_report.as_ref().map(|r| json!({"tables": r.tables, "bytes": r.bytes}))}),
    );
    for w in sb.clone_report.iter().flat_map(|r| &r.warnings) {
        log(
            &mut journal,
            phase::SANDBOX_VALIDATION,
            Level::Warn,
            w.clone(),
            json!({}),
        );
    }
    let mut sandbox_info = SandboxInfo {
        id: sb.id.clone(),
        strategy: sb.strategy.as_str().to_string(),
        data: match data {
            DataArg::Full => "full".into(),
            DataArg::Schema => "schema".into(),
        },
        seconds: sb.seconds,
        kept: false,
        url: None,
    };
    let work_dir = crate::sandbox::clone::private::PrivateDir::create()
        .map_err(|e| Error::usage(format!("cannot make a private folder: {e}")))?;
    let work: Vec<Work<'_>> = classified.work(&source.migrations);
    let mut url_vars = vec!["DATABASE_URL".to_string()];
    url_vars.extend(target.var.clone());
    let opts = rehearse::Options {
        work: &work,
        state: &project.state,
        apply: ApplyOptions {
            tx_mode: settings.tx_mode,
            lock_retries: settings.lock_retries,
            backoff: Duration::from_millis(500),
            deployment_id: id.clone(),
            server_major: major,
            resolve_running: args.engine.resolve_running,
        },
        session: settings.session(),
        connect_timeout: settings.connect_timeout,
        filter: filter(project),
        checks: check_files,
        test_cmd,
        test_timeout,
        project_dir: project.settings.project_dir.clone(),
        url_vars,
        tools: dump_tools,
        work_dir: work_dir.path().to_path_buf(),
        breaking: policy.breaking.clone(),
    };
    let sb_url = sb.url.clone();
    let outcome = {
        let mut sv_log = |level: Level, msg: String, meta: serde_json::Value| {
            log(&mut journal, phase::SANDBOX_VALIDATION, level, msg, meta)
        };
        tokio::select! {
            r = rehearse::rehearse(&sb_url, &opts, &mut sv_log) => Some(r),
            _ = crate::sandbox::interrupted() => None,
        }
    };
    drop(work_dir);
    let rehearsal = match outcome {
        None => {
            let _ = sb.destroy().await;
            journal.log(
                phase::SANDBOX_VALIDATION,
                Level::Error,
                "interrupted; the sandbox was removed",
                json!({}),
            );
            return Err(Error::refused(
                "interrupted: the sandbox was removed and the target was not changed",
            ));
        }
        Some(Err(e)) => {
            let _ = sb.destroy().await;
            return Err(Error::usage(format!(
                "the rehearsal failed on the sandbox: {e}"
            )));
        }
        Some(Ok(r)) => r,
    };
    if args.keep_sandbox {
        sandbox_info.url = Some(sb.url.redacted());
        sb.keep().await.map_err(sandbox_err)?;
        sandbox_info.kept = true;
    } else if let Err(e) = sb.destroy().await {
        console.warn(&format!(
            "could not remove the sandbox: {e} (`pgship sandbox gc` will)"
        ));
    }

    // The decision.
    let files: BTreeMap<String, String> = work
        .iter()
        .map(|w| {
            (
                w.migration.name.clone(),
                display(&project.settings.project_dir, &w.migration.path),
            )
        })
        .collect();
    let lint = rehearse::sharpen(&lint_out.findings, Some(&rehearsal), &files, &policy);
    let facts = rehearse::facts(Some(&rehearsal), &lint, None);
    let decision = decide::decide(&facts, &policy);
    log(
        &mut journal,
        phase::SANDBOX_VALIDATION,
        if decision.verdict == Verdict::Abort {
            Level::Error
        } else {
            Level::Info
        },
        format!(
            "decision: {}{}",
            decision.verdict.as_str(),
            if decision.reasons.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    decision
                        .reasons
                        .iter()
                        .map(|r| r.code.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ),
        json!({"phase_event": "end", "decision": decision.verdict, "reasons": decision.reasons,
               "duration_ms": sv_started.elapsed().as_millis() as u64}),
    );
    let report = PlanReport {
        deployment_id: id.clone(),
        environment: target.name.clone(),
        target: url.redacted(),
        server_version,
        source: source.kind.as_str().to_string(),
        git,
        pending,
        sandbox: Some(sandbox_info),
        rehearsal: Some(rehearsal),
        lint,
        decision,
        seconds: started.elapsed().as_secs_f64(),
    };
    let proceed = report.decision.verdict != Verdict::Abort;
    finish(globals, &journal, &report, proceed)
}

/// Write the artifacts, print the report, and pick the exit code.
fn finish(
    globals: &Globals,
    journal: &Journal,
    report: &PlanReport,
    proceed: bool,
) -> Result<ExitCode> {
    let console = globals.console;
    let write = |name: &str, text: &str| -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = journal.dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| Error::usage(format!("writing {}: {e}", path.display())))?;
        f.write_all(text.as_bytes())
            .map_err(|e| Error::usage(format!("writing {}: {e}", path.display())))
    };
    let json_doc = serde_json::to_value(report).unwrap_or_default();
    write(
        "report.json",
        &serde_json::to_string_pretty(&json_doc).unwrap_or_default(),
    )?;
    write("report.md", &rehearse::report::markdown(report))?;
    write(
        "schema-comparison.json",
        &serde_json::to_string_pretty(&report.schema_comparison()).unwrap_or_default(),
    )?;
    match console.format {
        Format::Json => console.json(&json_doc),
        Format::Markdown => console.result(&rehearse::report::markdown(report)),
        _ => console.result(&rehearse::report::text(report)),
    }
    console.step(&format!("report and log in {}", journal.dir.display()));
    Ok(if proceed {
        ExitCode::Ok
    } else {
        ExitCode::Refused
    })
}
