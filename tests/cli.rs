//! The command line as a user runs it: demo, status output, configuration errors, protected
//! environments, poolers, dry runs.

mod common;

use common::*;

/// The text of the demo's step `n` on stdout (from its heading to the next one).
fn demo_step(stdout: &str, n: u8) -> &str {
    let start = stdout
        .find(&format!("\n=== {n}. "))
        .unwrap_or_else(|| panic!("no step {n}: {stdout}"));
    let rest = &stdout[start + 1..];
    let end = rest.find("\n=== ").map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

/// `pgship demo` in `dir`, with none of the variables the demo refuses from the environment.
fn demo(dir: &std::path::Path) -> std::process::Command {
    let mut c = pgship(dir);
    for var in [
        "DEV_URL",
        "VERCEL_API_URL",
        "VERCEL_TOKEN",
        "VERCEL_PROJECT_ID",
        "VERCEL_TEAM_ID",
        "VERCEL_DEPLOY_HOOK_URL",
        "PGSHIP_DEMO_DEV_POSTGRES_URL",
    ] {
        c.env_remove(var);
    }
    c.arg("demo");
    c
}

/// The cluster folder the demo names on stderr is gone.
fn assert_cluster_removed(stderr: &str) {
    let dir = stderr
        .lines()
        .find_map(|l| l.split(" in ").nth(1).filter(|p| p.contains("cluster-")))
        .expect("the demo names its cluster folder")
        .trim();
    assert!(!std::path::Path::new(dir).exists(), "{dir} was left behind");
}

/// The position of `needle` in `text` at or after `from`.
fn after(text: &str, from: usize, needle: &str) -> usize {
    text[from..]
        .find(needle)
        .map(|p| from + p)
        .unwrap_or_else(|| panic!("{needle:?} not after {from} in {text}"))
}

#[test]
fn demo_tells_the_deploy_story_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut demo(dir.path()));
    if out.code != 0 && !in_ci() && out.stderr.contains("no PostgreSQL server binaries") {
        return eprintln!("SKIPPED: {}", out.stderr);
    }
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let (o, e) = (&out.stdout, &out.stderr);
    // 1. The project in git, the simulated services.
    assert!(
        e.contains("with main and develop at")
            && e.contains("serves develop from deployment dpl_fake0001"),
        "{e}"
    );
    // 2. The newer migrations deployed: rehearsed, rollback proven, applied, SUCCESS; and the
    // code: merged into develop, pushed, built by Vercel, the health check on the merge.
    let good = demo_step(o, 2);
    assert!(good.contains("git: feature/reviews at "), "{good}");
    assert!(good.contains("pending migrations (2):"), "{good}");
    assert!(good.contains("table-added public.reviews"), "{good}");
    assert!(
        good.contains("proven: schema and touched data restored"),
        "{good}"
    );
    assert!(good.contains("decision: PROCEED"), "{good}");
    assert!(
        good.contains("deployed 2 migration(s) to dev (deploy-dev-"),
        "{good}"
    );
    let first = good
        .split("to dev (")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("the first deployment's id")
        .to_string();
    assert!(e.contains("deployment succeeded"), "{e}");
    let merged = after(e, 0, "merged feature/reviews into develop as ");
    let merge1 = &e[merged + "merged feature/reviews into develop as ".len()..][..12];
    let ready = after(e, merged, "Vercel deployment dpl_fake0002 (");
    let healthy = after(e, ready, &format!(": 200, commit {merge1} after"));
    after(
        e,
        healthy,
        &format!(
            "develop on origin: {merge1} \"Merge feature/reviews into develop (pgship {first})\""
        ),
    );
    after(
        e,
        healthy,
        &format!("Vercel built {merge1} as dpl_fake0002 and serves it"),
    );
    // 3. The broken 0004: caught by the rehearsal, named, aborted before dev changed; nothing
    // merged.
    let bad = demo_step(o, 3);
    assert!(
        bad.contains("FAILED: 0004_add_order_total statement 2"),
        "{bad}"
    );
    assert!(bad.contains("contains null values"), "{bad}");
    assert!(bad.contains("decision: ABORT"), "{bad}");
    assert!(bad.contains("aborted before the target changed"), "{bad}");
    assert!(
        e.contains(&format!(
            "the deploy aborted before dev was touched, and develop is still {merge1}"
        )),
        "{e}"
    );
    // 4. The rehearsal passed, the app's row broke the constraint on dev: ROLLED_BACK, and no
    // code had been pushed.
    let failed = demo_step(o, 4);
    assert!(failed.contains("decision: PROCEED"), "{failed}");
    assert!(failed.contains("tests `"), "{failed}");
    assert!(
        failed.contains("the deployment failed and dev was rolled back to its state before"),
        "{failed}"
    );
    assert!(
        failed.contains("check constraint \"products_price_positive\""),
        "{failed}"
    );
    assert!(e.contains("deployment rolled-back"), "{e}");
    let nothing = after(
        e,
        healthy,
        "no code was pushed by this deployment: nothing to undo in the app",
    );
    after(
        e,
        nothing,
        &format!("nothing was pushed, develop is still {merge1}"),
    );
    // 5. A good migration whose code crashes the app: the health check fails after the push;
    // code rolled back first (instant rollback, then the revert pushed), then the database.
    let crash = demo_step(o, 5);
    assert!(crash.contains("0004_reviews_helpful_votes"), "{crash}");
    assert!(
        crash.contains("the deployment failed and dev was rolled back to its state before"),
        "{crash}"
    );
    assert!(crash.contains("answered 500"), "{crash}");
    let pushed = after(e, nothing, "merged feature/helpful-votes into develop as ");
    let unhealthy = after(e, pushed, "post-deploy validation failed: health check");
    let instant = after(
        e,
        unhealthy,
        "Vercel instant rollback to dpl_fake0002 requested",
    );
    let reverted = after(e, instant, "on develop as ");
    let db = after(e, reverted, "rolled back: proven:");
    after(
        e,
        db,
        &format!(
            "code first: Vercel's instant rollback to dpl_fake0002, which serves {merge1} again"
        ),
    );
    after(
        e,
        db,
        "\"Revert feature/helpful-votes on develop (pgship rollback of deploy-dev-",
    );
    // 6. History, newest first: rolled back twice, aborted, succeeded, and the setup's migrate.
    let hist: Vec<&str> = demo_step(o, 6)
        .lines()
        .skip(2)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(hist.len(), 5, "{hist:?}");
    assert!(hist[0].contains(" rolled-back "), "{hist:?}");
    assert!(hist[0].contains("0004_reviews_helpful_votes"), "{hist:?}");
    assert!(hist[1].contains(" rolled-back "), "{hist:?}");
    assert!(hist[1].contains("0004_products_price_positive"), "{hist:?}");
    assert!(hist[2].contains(" aborted (local only) "), "{hist:?}");
    assert!(hist[3].starts_with(&first), "{hist:?}");
    assert!(hist[3].contains(" succeeded "), "{hist:?}");
    assert!(hist[3].contains(&merge1[..7]), "{hist:?}");
    assert!(hist[4].starts_with("migrate-dev-"), "{hist:?}");
    // 7. rollback <id> of the first: the guard finds the app's row and restores nothing, code
    // included.
    let refused = demo_step(o, 7);
    assert!(
        refused.contains("refused: the rollback of deploy-dev-"),
        "{refused}"
    );
    assert!(refused.contains("public.products: 1 inserted"), "{refused}");
    let kept = after(
        e,
        db,
        "the data-loss guard kept the app's row: nothing was restored, code included",
    );
    // 8. With rows_lost = "allow": code (instant rollback to the first deployment, the merge
    // reverted), then the database, proven.
    let instant = after(e, kept, "Vercel instant rollback to dpl_fake0001 requested");
    let reverted = after(e, instant, &format!("reverted {merge1} on develop as "));
    let proven = after(
        e,
        reverted,
        "rolled back: proven: the schema fingerprint and the contents of",
    );
    after(e, proven, &format!("rolled back {first} (rollback-dev-"));
    // 9. dev is back at 0001 with the app's data as it was before the first deployment; the
    // app line; develop's history with both merges and both reverts.
    let end = demo_step(o, 9);
    assert!(
        end.contains("applied: 2\n  0000_create_catalog\n  0001_add_customer_phone"),
        "{end}"
    );
    assert!(end.contains("pending: 3"), "{end}");
    assert!(
        end.contains("app:      vercel · branch develop on origin · last deployed "),
        "{end}"
    );
    assert!(end.contains(" · serving dpl_fake"), "{end}");
    assert!(
        end.contains("dev's data: 2000 customers, 60 products, reviews table absent"),
        "{end}"
    );
    let log = &end[end
        .find("git log develop (origin):")
        .expect("develop's log")..];
    let subjects: Vec<&str> = log
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(' ').map(|(_, s)| s))
        .collect();
    assert_eq!(subjects.len(), 7, "{log}");
    assert!(
        subjects[0].starts_with(&format!(
            "Revert feature/reviews on develop (pgship rollback of {first})"
        )),
        "{log}"
    );
    assert!(
        subjects[1].starts_with("Revert feature/helpful-votes on develop"),
        "{log}"
    );
    assert!(
        subjects[2].starts_with("Merge feature/helpful-votes into develop"),
        "{log}"
    );
    assert_eq!(
        subjects[4],
        format!("Merge feature/reviews into develop (pgship {first})"),
        "{log}"
    );
    // The cluster's password is never shown: every URL with one is redacted; the simulated
    // Vercel's token appears nowhere.
    for text in [o, e] {
        for (at, _) in text.match_indices("postgres://postgres:") {
            let rest = &text[at + "postgres://postgres:".len()..];
            assert!(rest.starts_with("***@"), "a password shown: {rest:.40}");
        }
        assert!(!text.contains(pgship::demo::vercel_sim::TOKEN));
    }
    assert_cluster_removed(e);
}

#[test]
fn demo_refuses_vercel_variables_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let canary = "vcp_REALtokenCANARY_48fj";
    let out = run(demo(dir.path())
        .env("VERCEL_API_URL", "https://api.vercel.com")
        .env("VERCEL_TOKEN", canary));
    if out.code != 2 && !in_ci() && out.stderr.contains("no PostgreSQL server binaries") {
        return eprintln!("SKIPPED: {}", out.stderr);
    }
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("VERCEL_API_URL is set to another value in the environment"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("unset VERCEL_API_URL"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(canary) && !out.stdout.contains(canary));
    // Nothing was deployed: the story stopped before dev was migrated.
    assert!(!out.stdout.contains("=== 2."), "{}", out.stdout);
    assert_cluster_removed(&out.stderr);
}

#[test]
fn demo_is_cleaned_up_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = demo(dir.path())
        .arg("-v")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut cluster_dir = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(p) = line.split(" in ").nth(1).filter(|p| p.contains("cluster-")) {
            cluster_dir = Some(p.trim().to_string());
            break;
        }
    }
    let Some(cluster_dir) = cluster_dir else {
        let _ = child.wait();
        assert!(!in_ci(), "the demo did not start a cluster");
        return;
    };
    // SAFETY: kill(2) with a child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(
        !std::path::Path::new(&cluster_dir).exists(),
        "{cluster_dir} left behind; {rest:?}"
    );
    // Interrupted (exit 1) or, if the demo won the race, finished (exit 0); never a crash.
    assert!(matches!(status.code(), Some(0 | 1)), "{status:?} {rest:?}");
}

#[test]
fn status_json_document() {
    let Some(db) = TestDb::new() else { return };
    let project = project_with("drizzle-app/drizzle");
    std::fs::write(
        project.path().join(".env"),
        format!("DEV_POSTGRES_URL={}\n", db.url),
    )
    .unwrap();
    let out = run(pgship(project.path()).args(["status", "dev", "--format", "json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value =
        serde_json::from_str(&out.stdout).expect("one JSON document on stdout");
    assert_eq!(v["pending"].as_array().unwrap().len(), 4);
    assert_eq!(v["applied"].as_array().unwrap().len(), 0);
    assert!(
        v["server_version"].as_str().unwrap().starts_with("15")
            || v["server_version"].as_str().unwrap().contains('.')
    );
    assert!(std::path::Path::new(v["pg_dump"].as_str().unwrap()).exists());
    assert_eq!(v["source"]["kind"], "drizzle");
    assert_eq!(v["source"]["state_table"], "drizzle.__drizzle_migrations");
    // status creates nothing.
    assert!(
        db.scalar("SELECT nspname FROM pg_namespace WHERE nspname IN ('pgship', 'drizzle')")
            .is_none()
    );
    assert_eq!(run(pgship(project.path()).args(["migrate", "dev"])).code, 0);
    let out = run(pgship(project.path()).args(["status", "dev", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let applied: Vec<&str> = v["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        applied,
        [
            "0000_init",
            "0001_add_product_components",
            "0002_rename_full_name",
            "0003_drop_order_total"
        ]
    );
    assert_eq!(
        v["applied"][0]["hash"],
        "e926c27758a8b58fba4c96570c4ca46b6c28d5cd511c283aee0d2dc58c53b6d8"
    );
    assert_eq!(v["applied"][0]["created_at"], 1795484177772_i64);
    // The log of the run is on disk, as JSON lines with the seed's fields.
    let runs: Vec<_> = std::fs::read_dir(project.path().join(".deployments"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1);
    let name = runs[0].file_name().into_string().unwrap();
    assert!(name.starts_with("migrate-dev-"), "{name}");
    let log = std::fs::read_to_string(runs[0].path().join("deployment.log")).unwrap();
    for line in log.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in [
            "timestamp",
            "deploymentId",
            "phase",
            "level",
            "message",
            "metadata",
        ] {
            assert!(e.get(key).is_some(), "{key} missing in {line}");
        }
    }
    let db_lines = db.scalar(&format!(
        "SELECT count(*) FROM pgship.deployment_logs WHERE deployment_id = '{name}'"
    ));
    assert_eq!(db_lines, Some(log.lines().count().to_string()));
}

#[test]
fn protected_environment_needs_yes_off_a_terminal() {
    let Some(db) = TestDb::new() else { return };
    let project = project_with("drizzle-app/drizzle");
    std::fs::write(
        project.path().join(".env"),
        format!("PROD_POSTGRES_URL={}\n", db.url),
    )
    .unwrap();
    let out = run(pgship(project.path())
        .args(["migrate", "prod"])
        .stdin(std::process::Stdio::null()));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--yes"), "{}", out.stderr);
    assert!(
        db.scalar("SELECT to_regclass('public.users')::text")
            .is_none()
    );
    let out = run(pgship(project.path()).args(["migrate", "prod", "--yes"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        db.scalar("SELECT to_regclass('public.users')::text")
            .is_some()
    );
}

#[test]
fn dry_run_changes_nothing() {
    let Some(db) = TestDb::new() else { return };
    let project = project_with("drizzle-app/drizzle");
    let out = run(pgship(project.path()).args(["migrate", &db.url, "--dry-run"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("would apply 4 migration(s)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("0000_init (15 statements)"),
        "{}",
        out.stdout
    );
    assert!(
        db.scalar("SELECT nspname FROM pg_namespace WHERE nspname IN ('pgship', 'drizzle')")
            .is_none()
    );
    assert!(!project.path().join(".deployments").exists());
}

#[test]
fn configuration_and_target_errors_exit_2_and_name_the_thing() {
    let project = project_with("drizzle-app/drizzle");
    std::fs::write(
        project.path().join("pgship.toml"),
        "[apply]\nlock_timout = \"2s\"\n",
    )
    .unwrap();
    let out = run(pgship(project.path()).args(["status", "dev"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("pgship.toml") && out.stderr.contains("lock_timout"),
        "{}",
        out.stderr
    );
    std::fs::remove_file(project.path().join("pgship.toml")).unwrap();

    let out = run(pgship(project.path()).args(["status", "dev"]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("DEV_POSTGRES_URL"), "{}", out.stderr);
    let out = run(pgship(project.path()).args(["status", "staging"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("unknown target `staging`"),
        "{}",
        out.stderr
    );
    let out = run(pgship(project.path()).args([
        "migrate",
        "postgres://u:s3cret@ep-cool-123-pooler.us-east-2.aws.neon.tech/db",
    ]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("pooler") && out.stderr.contains("ep-cool-123.us-east-2.aws.neon.tech"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("s3cret"));

    std::fs::write(
        project.path().join("drizzle.config.ts"),
        "import { defineConfig } from 'drizzle-kit';\nexport default defineConfig({ dialect: 'mysql', out: './drizzle' });\n",
    )
    .unwrap();
    let out = run(pgship(project.path()).args(["status", "dev"]));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("drizzle.config.ts") && out.stderr.contains("mysql"),
        "{}",
        out.stderr
    );

    std::fs::write(
        project.path().join("drizzle.config.ts"),
        "export default { dialect: \"postgresql\", out: \"./db/migrations\", migrations: { schema: \"audit\", table: \"applied\" } };\n",
    )
    .unwrap();
    copy_dir(
        &project.path().join("drizzle"),
        &project.path().join("db/migrations"),
    );
    let Some(db) = TestDb::new() else { return };
    let out = run(pgship(project.path()).args(["migrate", &db.url]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit.applied").as_deref(),
        Some("4")
    );
}
