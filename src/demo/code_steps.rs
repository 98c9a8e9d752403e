//! The demo's steps where code moves with the database: a good deploy merged, pushed, built and
//! checked (2), a deploy whose app crashes, rolled back code first (5), `rollback <id>` of code
//! and database (7, 8), and the final state of dev and `develop` (9). After each, what the
//! simulated Vercel and `origin` hold is checked against the story.

use super::project::{self};
use super::services::CRASHING_FILE;
use super::steps::{allow_rows_lost, deploy_dev, expect, feature, unchanged};
use super::{Demo, db_error, short};
use crate::db::{ConnectOptions, connect};
use crate::deploy::manual;
use crate::error::{Error, ExitCode, Result};

/// Step 2's app change: the product page shows the reviews.
const REVIEWS_PAGE: (&str, &str) = (
    "src/app/products/[sku]/reviews.tsx",
    "export function Reviews({ sku }: { sku: string }) {\n  return <section>reviews of {sku}</section>;\n}\n",
);

/// Step 5's migration: a good one.
const HELPFUL_VOTES: (&str, &str) = (
    "0004_reviews_helpful_votes",
    "ALTER TABLE \"reviews\" ADD COLUMN \"helpful_votes\" integer DEFAULT 0 NOT NULL;",
);

/// Step 5's app change: code that fails when the app starts.
const HELPFUL_VOTES_PAGE: (&str, &str) = (
    CRASHING_FILE,
    "export function HelpfulVotes() {\n  throw new Error(\"votesClient is not defined\");\n}\n",
);

/// Step 2: the newer migrations and the app's reviews page deployed; the deployment's id.
pub(super) async fn deploy_reviews(d: &Demo<'_>) -> Result<String> {
    d.heading(
        2,
        "pgship deploy dev from feature/reviews: 0002, 0003 and the app's reviews page (expect SUCCESS, exit 0; merged into develop, built, healthy)",
    );
    let before = d.repo.tip("develop")?;
    d.repo.feature("feature/reviews")?;
    project::write_feature(&d.dir, 4, &[], &[REVIEWS_PAGE])?;
    let feature = d
        .repo
        .commit("reviews: table, seed and index (0002, 0003), product page")?;
    let code = deploy_dev(d, None).await?;
    expect(d, "first deploy", code, ExitCode::Ok)?;
    let id = newest_run(d, "deploy-dev-")?;
    d.ui.console.ok(&format!("deployed: {id}"));
    let merge = d.repo.tip("develop")?;
    if d.repo.parents(&merge)? != [before.clone(), feature] {
        return Err(d.surprise(format!(
            "develop's tip {} is not the merge of feature/reviews into {}",
            short(&merge),
            short(&before)
        )));
    }
    d.ui.console.ok(&format!(
        "develop on origin: {} \"{}\"",
        short(&merge),
        d.repo.subject(&merge)?
    ));
    let built = serving(d, &merge, "the first deploy")?;
    d.ui.console.ok(&format!(
        "Vercel built {} as {built} and serves it; the health check answered commit {}",
        short(&merge),
        short(&merge)
    ));
    Ok(id)
}

/// The simulated Vercel serves `commit`: the deployment's id.
fn serving(d: &Demo<'_>, commit: &str, what: &str) -> Result<String> {
    let vercel = &d.services.vercel;
    if vercel.serving_commit().as_deref() != Some(commit) {
        return Err(d.surprise(format!(
            "after {what} Vercel serves {:?}, not {}",
            vercel.serving_commit(),
            short(commit)
        )));
    }
    vercel
        .deployment_of(commit)
        .map(|dep| dep.id)
        .ok_or_else(|| d.surprise(format!("no Vercel deployment of {}", short(commit))))
}

/// Step 5: a good migration whose app change crashes the app: the health check fails after
/// the push, and the code is rolled back before the database.
pub(super) async fn deploy_crashing_app(d: &Demo<'_>) -> Result<()> {
    d.heading(
        5,
        "pgship deploy dev from feature/helpful-votes: a good 0004, but the new code crashes the app (expect ROLLED_BACK, exit 3: code rolled back first, then the database)",
    );
    let before = d.repo.tip("develop")?;
    let serving_before = serving(d, &before, "step 2")?;
    feature(
        d,
        "feature/helpful-votes",
        HELPFUL_VOTES,
        HELPFUL_VOTES_PAGE,
        "reviews: helpful votes",
    )?;
    let code = deploy_dev(d, None).await?;
    expect(d, "deploy whose app crashes", code, ExitCode::RolledBack)?;
    let rollbacks = d.services.vercel.rollbacks();
    if rollbacks.last() != Some(&serving_before) {
        return Err(d.surprise(format!(
            "no instant rollback to {serving_before} (rollbacks: {rollbacks:?})"
        )));
    }
    d.ui.console.ok(&format!(
        "code first: Vercel's instant rollback to {serving_before}, which serves {} again",
        short(&before)
    ));
    let revert = reverted(d, &before, "feature/helpful-votes")?;
    d.ui.console.ok(&format!(
        "the merge was reverted on develop as {} \"{}\" and pushed (develop's files are as before)",
        short(&revert),
        d.repo.subject(&revert)?
    ));
    d.ui.console.ok(
        "then the database: 0004_reviews_helpful_votes rolled back, dev as before the deployment",
    );
    Ok(())
}

/// `develop`'s tip is a revert whose files are those of `before`: its commit.
fn reverted(d: &Demo<'_>, before: &str, feature: &str) -> Result<String> {
    let tip = d.repo.tip("develop")?;
    let subject = d.repo.subject(&tip)?;
    if !subject.starts_with("Revert") || d.repo.tree(&tip)? != d.repo.tree(before)? {
        return Err(d.surprise(format!(
            "develop's tip {} \"{subject}\" is not a revert of {feature}'s merge",
            short(&tip)
        )));
    }
    Ok(tip)
}

/// Steps 7 and 8: `pgship rollback <id>` of the first deployment: refused by the data-loss guard
/// while the app's row would be lost (nothing restored, code included), then done with
/// `[policy] rows_lost = "allow"`: code and database.
pub(super) async fn roll_back_first(d: &Demo<'_>, first: &str) -> Result<()> {
    d.heading(
        7,
        &format!(
            "pgship rollback {first}: the app wrote to products since that deployment (expect NEEDS_HUMAN, exit 4)"
        ),
    );
    let tip = d.repo.tip("develop")?;
    let project = d.project()?;
    match manual::run(d.ui, &project, first, &manual::Options::default()).await {
        Err(e) if e.code == ExitCode::NeedsHuman => {
            d.ui.console.result(&format!("refused: {}", e.message));
        }
        Err(e) => return Err(e),
        Ok(code) => {
            return Err(d.surprise(format!(
                "the data-loss guard did not stop the rollback of {first} (exit {})",
                code as i32
            )));
        }
    }
    unchanged(d, &tip, "the refused rollback")?;
    d.ui.console
        .ok("the data-loss guard kept the app's row: nothing was restored, code included");
    d.heading(
        8,
        &format!(
            "pgship rollback {first} with [policy] rows_lost = \"allow\" in pgship.toml (expect exit 0: code, then database)"
        ),
    );
    allow_rows_lost(d)?;
    let code = manual::run(d.ui, &d.project()?, first, &manual::Options::default()).await?;
    expect(d, "rollback of the first deployment", code, ExitCode::Ok)?;
    let initial = &d.services.initial_deployment;
    if d.services.vercel.rollbacks().last() != Some(initial) {
        return Err(d.surprise(format!("no instant rollback to {initial}")));
    }
    let root = d.repo.origin(&["rev-list", "--max-parents=0", "develop"])?;
    let revert = reverted(d, &root, "feature/reviews")?;
    d.ui.console.ok(&format!(
        "code: Vercel's instant rollback to {initial}; feature/reviews' merge reverted on develop as {} and pushed",
        short(&revert)
    ));
    Ok(())
}

/// Step 9: dev's status (migrations and app) and rows, and `develop`'s history.
pub(super) async fn final_state(d: &Demo<'_>) -> Result<ExitCode> {
    d.heading(9, "pgship status dev: back at 0001; develop's history");
    let (project, _, dev) = d.load_dev()?;
    let report = crate::status::collect(&project, &dev, Some("dev")).await?;
    d.ui.console
        .result(&crate::status::render(&report, d.ui.console.verbose > 0));
    let conn = connect(&dev, &ConnectOptions::default()).await?;
    let row = conn
        .client
        .query_one(
            "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM products), \
                    to_regclass('public.reviews') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| db_error("reading dev's rows", &e))?;
    let (customers, products, reviews): (i64, i64, bool) = (row.get(0), row.get(1), row.get(2));
    d.ui.console.result(&format!(
        "\ndev's data: {customers} customers, {products} products, reviews table {}",
        if reviews { "present" } else { "absent" }
    ));
    let log = d.repo.origin(&["log", "--format=%h %s", "develop"])?;
    d.ui.console
        .result(&format!("\ngit log develop (origin):\n{log}"));
    Ok(ExitCode::Ok)
}

/// The newest run folder under `.deployments/` whose id starts with `prefix`.
fn newest_run(d: &Demo<'_>, prefix: &str) -> Result<String> {
    let root = d.dir.join(".deployments");
    let mut ids: Vec<(i64, String)> = fs_err::read_dir(&root)
        .map_err(|e| Error::usage(e.to_string()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|id| {
            let millis = id.strip_prefix(prefix)?.parse().ok()?;
            Some((millis, id))
        })
        .collect();
    ids.sort();
    ids.pop()
        .map(|(_, id)| id)
        .ok_or_else(|| Error::usage(format!("no {prefix}* run in {}", root.display())))
}
