//! The demo's setup and its database steps: dev at 0001 with the app's data (1), a broken
//! migration caught by the rehearsal (3), a migration that fails on dev only (4), and the
//! history (6). Each deploy goes through `deploy::run` as `pgship deploy dev` does.

use super::project::{self, DemoRepo, write_file, write_private};
use super::services::Services;
use super::{CONFIG, DEV_VAR, Demo, db_error, short};
use crate::cluster::LocalCluster;
use crate::db::{ConnectOptions, DbUrl, connect, quote_ident};
use crate::deploy::{self, Ui};
use crate::error::{ExitCode, Result};
use crate::journal::history;

/// The broken migration (step 3): a NOT NULL column without a default on a table with rows
/// (drizzle-kit writes this when a required column is added to a populated table).
const BROKEN: (&str, &str) = (
    "0004_add_order_total",
    "ALTER TABLE \"orders\" ADD COLUMN \"currency\" varchar(3);--> statement-breakpoint\n\
     ALTER TABLE \"orders\" ADD COLUMN \"total_cents\" integer NOT NULL;",
);

/// Step 3's app change: the order page shows the total.
const ORDER_TOTAL_PAGE: (&str, &str) = (
    "src/app/orders/[id]/total.tsx",
    "export function Total({ cents }: { cents: number }) {\n  return <p>{(cents / 100).toFixed(2)}</p>;\n}\n",
);

/// The migration that fails on dev only (step 4): every product the sandbox holds has a
/// positive price; the row the app writes to dev after the clone has none.
const PRICE_CHECK: (&str, &str) = (
    "0004_products_price_positive",
    "ALTER TABLE \"products\" ADD CONSTRAINT \"products_price_positive\" CHECK (\"products\".\"price_cents\" > 0);",
);

/// Step 4's app change: the product form refuses a price of 0.
const PRICE_FORM: (&str, &str) = (
    "src/app/products/[sku]/price.ts",
    "export const validPrice = (cents: number) => cents > 0;\n",
);

/// The app's write to dev while the deployment runs (a free sample, price 0).
const APP_WRITE: &str = "INSERT INTO products (sku, name, price_cents, stock) VALUES ('FREE-001', 'Free sample', 0, 10)";

/// Step 1: the example project in git, the simulated services, and dev at 0001 with the app's
/// data.
pub(super) async fn setup<'a>(ui: &'a Ui, cluster: &LocalCluster) -> Result<Demo<'a>> {
    let dir = cluster.dir.join("project");
    let repo = DemoRepo::create(&cluster.dir, &dir, CONFIG)?;
    let services = Services::start(&repo)?;
    let url = cluster.url("shop");
    let admin = connect(&cluster.url("postgres"), &ConnectOptions::default()).await?;
    admin
        .client
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident("shop")))
        .await
        .map_err(|e| db_error("creating the demo database", &e))?;
    drop(admin);
    let dotenv = format!("{DEV_VAR}={}\n{}", url.expose(), services.dotenv());
    write_private(&dir.join(".env"), &dotenv)?;
    let d = Demo {
        ui,
        dir,
        repo,
        services,
        url,
    };
    d.heading(
        1,
        &format!(
            "the shop app's Drizzle project in git, Vercel and the app simulated on loopback; \"dev\" is {} at 0001, with the app's data",
            d.url.redacted()
        ),
    );
    migrate_and_seed(&d).await?;
    let develop = d.repo.tip("develop")?;
    let c = ui.console;
    c.ok(&format!(
        "git: origin is the bare repository {} with main and develop at {} (0000, 0001)",
        d.repo.origin.display(),
        short(&develop)
    ));
    c.ok(&format!(
        "Vercel (simulated, {}) serves develop from deployment {}; the app answers at {} (DEV_URL)",
        d.services.vercel.api_url(),
        d.services.initial_deployment,
        d.services.app.url()
    ));
    c.ok("dev is at 0001_add_customer_phone with 2000 customers, 60 products, 5000 orders");
    Ok(d)
}

/// dev migrated to 0001 (`pgship migrate dev`) and filled with the app's data.
async fn migrate_and_seed(d: &Demo<'_>) -> Result<()> {
    let (project, _, _) = d.load_dev()?;
    let args = crate::deploy::migrate::Options::default();
    crate::deploy::migrate::execute(d.ui, &project, "dev", false, &d.url, &args).await?;
    let seed = connect(&d.url, &ConnectOptions::default()).await?;
    seed.client
        .batch_execute(SEED)
        .await
        .map_err(|e| db_error("seeding the demo data", &e))
}

/// A deploy of dev from the checked-out branch as `pgship deploy dev` runs it (the sandbox a
/// local cluster).
pub(super) async fn deploy_dev(d: &Demo<'_>, test_cmd: Option<String>) -> Result<ExitCode> {
    let (project, target, dev) = d.load_dev()?;
    let opts = deploy::Options {
        sandbox: Some(crate::sandbox::Strategy::Local),
        test_cmd,
        ..deploy::Options::default()
    };
    deploy::run(d.ui, &project, &target, &dev, &opts).await
}

/// A new feature branch from `develop` with `migration` (after the example's four) and the
/// app's `file`, committed.
pub(super) fn feature(
    d: &Demo<'_>,
    branch: &str,
    migration: (&str, &str),
    file: (&str, &str),
    message: &str,
) -> Result<String> {
    d.repo.feature(branch)?;
    project::write_feature(&d.dir, 4, &[migration], &[file])?;
    d.repo.commit(message)
}

/// The outcome a step expects, or an error naming the step.
pub(super) fn expect(d: &Demo<'_>, step: &str, code: ExitCode, want: ExitCode) -> Result<()> {
    if code == want {
        return Ok(());
    }
    Err(d.surprise(format!(
        "the demo's {step} ended with exit {} instead of {}",
        code as i32, want as i32
    )))
}

/// Step 3: a broken migration: the rehearsal catches it, dev is untouched, nothing merged.
pub(super) async fn deploy_broken(d: &Demo<'_>) -> Result<()> {
    d.heading(
        3,
        "pgship deploy dev from feature/order-total: a broken 0004 (expect ABORTED in SANDBOX_VALIDATION, exit 1, nothing merged)",
    );
    let before = d.repo.tip("develop")?;
    feature(
        d,
        "feature/order-total",
        BROKEN,
        ORDER_TOTAL_PAGE,
        "orders: total and currency",
    )?;
    let code = deploy_dev(d, None).await?;
    expect(d, "broken migration's deploy", code, ExitCode::Refused)?;
    unchanged(d, &before, "the broken migration's deploy")?;
    d.ui.console.ok(&format!(
        "the rehearsal caught it: the deploy aborted before dev was touched, and develop is still {}",
        short(&before)
    ));
    Ok(())
}

/// `develop` on `origin` is still `before` after `what`.
pub(super) fn unchanged(d: &Demo<'_>, before: &str, what: &str) -> Result<()> {
    let now = d.repo.tip("develop")?;
    if now != before {
        return Err(d.surprise(format!(
            "{what} moved develop from {} to {}",
            short(before),
            short(&now)
        )));
    }
    Ok(())
}

/// Step 4: a constraint the rehearsal proved, broken on dev by the app's write after the
/// clone: the apply fails on dev and the deployment rolls itself back; its code was never
/// pushed (the merge comes after the database).
pub(super) async fn deploy_failing_on_dev(d: &Demo<'_>, cluster: &LocalCluster) -> Result<()> {
    d.heading(
        4,
        "pgship deploy dev from feature/price-check: 0004 adds CHECK (price_cents > 0); the app writes a free sample to dev after the sandbox is cloned (expect ROLLED_BACK, exit 3, no code pushed)",
    );
    let before = d.repo.tip("develop")?;
    feature(
        d,
        "feature/price-check",
        PRICE_CHECK,
        PRICE_FORM,
        "products: prices are positive",
    )?;
    let test_cmd = app_write_cmd(cluster, &d.url)?;
    let code = deploy_dev(d, Some(test_cmd)).await?;
    expect(d, "deploy that fails on dev", code, ExitCode::RolledBack)?;
    unchanged(d, &before, "the deploy that failed on dev")?;
    d.ui.console.ok(
        "the rehearsal passed, the apply failed on dev, and the deployment rolled back by itself",
    );
    d.ui.console.ok(&format!(
        "the code is merged only after the database is deployed: nothing was pushed, develop is still {}",
        short(&before)
    ));
    Ok(())
}

/// The `--test-cmd` of step 4: the app's tests run on the sandbox, and meanwhile the app writes
/// to dev with psql (its password in a private passfile, never in the command).
fn app_write_cmd(cluster: &LocalCluster, url: &DbUrl) -> Result<String> {
    let psql = cluster.bin.dir.join("psql");
    let psql = if psql.exists() {
        psql.display().to_string()
    } else {
        "psql".to_string()
    };
    let passfile = cluster.dir.join("demo-app.pgpass");
    write_private(&passfile, &crate::db::child::passfile(&[url]))?;
    let conninfo = crate::db::child::child_url(url, cluster.bin.major);
    Ok(format!(
        "PGPASSFILE={} {} -X -q -v ON_ERROR_STOP=1 -d {} -c {}",
        sh_quote(&passfile.display().to_string()),
        sh_quote(&psql),
        sh_quote(&conninfo),
        sh_quote(APP_WRITE)
    ))
}

/// Step 6: `pgship history dev`.
pub(super) async fn show_history(d: &Demo<'_>) -> Result<()> {
    d.heading(6, "pgship history dev");
    let settings = crate::config::Settings::load(&d.dir, None)?;
    let found = history::collect(&settings, Some("dev"), 20).await?;
    d.ui.console.result(&history::render(&found.items));
    Ok(())
}

/// The example app's data on dev (0001's schema).
const SEED: &str = "\
INSERT INTO customers (email, name, phone)
  SELECT 'customer' || i || '@example.com', 'Customer ' || i, CASE WHEN i % 3 = 0 THEN NULL ELSE '+1 555 ' || lpad(i::text, 4, '0') END
  FROM generate_series(1, 2000) i;
INSERT INTO products (sku, name, price_cents, stock)
  SELECT 'SKU-' || lpad(i::text, 3, '0'), 'Product ' || i, 100 * (1 + i % 50), i % 40 FROM generate_series(1, 60) i;
INSERT INTO orders (customer_id, status)
  SELECT 1 + (i % 2000), (ARRAY['pending','paid','shipped','cancelled'])[1 + i % 4]::order_status FROM generate_series(1, 5000) i;
INSERT INTO order_lines (order_id, product_id, quantity, unit_price)
  SELECT 1 + (i % 5000), 1 + (i % 60), 1 + (i % 3), 4.99 FROM generate_series(1, 12000) i;
ANALYZE;";

/// `s` as one word for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// `pgship.toml` with `[policy] rows_lost = "allow"` (step 8).
pub(super) fn allow_rows_lost(d: &Demo<'_>) -> Result<()> {
    write_file(
        &d.dir.join("pgship.toml"),
        &format!("{CONFIG}\n[policy]\nrows_lost = \"allow\"\n"),
    )?;
    d.repo
        .commit("pgship: a rollback may lose rows written since")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_survive_quotes_and_spaces() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", sh_quote(APP_WRITE)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), APP_WRITE);
    }
}
