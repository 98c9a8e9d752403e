//! The demo's project: the example shop (examples/shop, embedded in the binary) as a git
//! repository whose `origin` is a bare repository in the demo's folder, with `main` and
//! `develop`, and the feature branches the story deploys. Its files are written here, never
//! anywhere else.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::git;
use crate::error::{Error, Result};

/// The example project (examples/shop): its config and journal.
const CONFIG_TS: &str = include_str!("../../examples/shop/drizzle.config.ts");
const JOURNAL: &str = include_str!("../../examples/shop/drizzle/meta/_journal.json");

/// The example's migrations, in order, as drizzle-kit wrote them.
const MIGRATIONS: [(&str, &str); 4] = [
    (
        "0000_create_catalog",
        include_str!("../../examples/shop/drizzle/0000_create_catalog.sql"),
    ),
    (
        "0001_add_customer_phone",
        include_str!("../../examples/shop/drizzle/0001_add_customer_phone.sql"),
    ),
    (
        "0002_add_reviews",
        include_str!("../../examples/shop/drizzle/0002_add_reviews.sql"),
    ),
    (
        "0003_seed_and_concurrent_index",
        include_str!("../../examples/shop/drizzle/0003_seed_and_concurrent_index.sql"),
    ),
];

/// The app's health route, as the README shows it: Vercel sets the commit it was built from.
const HEALTH_ROUTE: (&str, &str) = (
    "src/app/api/health/route.ts",
    "export const dynamic = \"force-dynamic\";\n\n\
     export function GET() {\n  \
     return Response.json({ status: \"ok\", commit: process.env.VERCEL_GIT_COMMIT_SHA });\n}\n",
);

/// The app's product page on `main`.
const PRODUCT_PAGE: (&str, &str) = (
    "src/app/products/[sku]/page.tsx",
    "export default function Product() {\n  return <main>product, price and stock</main>;\n}\n",
);

/// What is never committed: the deployments' folders and the file with the cluster's password.
const GITIGNORE: &str = ".deployments/\n.env\n";

/// The demo's git repository: the project folder, a clone of the bare `origin`.
pub struct DemoRepo {
    pub origin: PathBuf,
    pub work: PathBuf,
}

impl DemoRepo {
    /// `origin` (bare) in `root`, and `work` holding the project at 0001 (the journal's first
    /// two entries) with `config` as `pgship.toml`, committed on `main` and pushed as `main` and
    /// `develop`. The repository's own configuration names the demo's identity (the merges and
    /// reverts `deploy` makes are commits too), turns commit signing off and points hooks
    /// nowhere, so the user's global settings cannot stop it; nothing global is changed.
    pub fn create(root: &Path, work: &Path, config: &str) -> Result<DemoRepo> {
        let origin = root.join("origin.git");
        create_dir(&origin)?;
        git::run(&origin, &["init", "-q", "--bare", "-b", "main"])?;
        write_file(&work.join("drizzle.config.ts"), CONFIG_TS)?;
        for (path, text) in [HEALTH_ROUTE, PRODUCT_PAGE, (".gitignore", GITIGNORE)] {
            write_file(&work.join(path), text)?;
        }
        write_file(&work.join("pgship.toml"), config)?;
        set_journal(work, 2, &[])?;
        git::run(work, &["init", "-q", "-b", "main"])?;
        for (key, value) in [
            ("user.name", git::NAME),
            ("user.email", git::EMAIL),
            ("commit.gpgsign", "false"),
            ("core.hooksPath", "/dev/null"),
        ] {
            git::run(work, &["config", key, value])?;
        }
        let url = origin.display().to_string();
        git::run(work, &["remote", "add", "origin", &url])?;
        let repo = DemoRepo {
            origin,
            work: work.to_path_buf(),
        };
        repo.commit("shop: catalog and customer phones (0000, 0001), product page")?;
        git::run(work, &["push", "-q", "origin", "main", "main:develop"])?;
        Ok(repo)
    }

    /// A new branch `name` from `develop` as `origin` has it now, checked out.
    pub fn feature(&self, name: &str) -> Result<()> {
        git::run(&self.work, &["fetch", "-q", "origin"])?;
        git::run(&self.work, &["switch", "-q", "-c", name, "origin/develop"])?;
        Ok(())
    }

    /// Everything in the folder committed on the current branch; the commit.
    pub fn commit(&self, message: &str) -> Result<String> {
        git::run(&self.work, &["add", "-A"])?;
        git::run(&self.work, &["commit", "-q", "-m", message])?;
        git::run(&self.work, &["rev-parse", "HEAD"])
    }

    /// `git <args>` in `origin`, trimmed.
    pub fn origin(&self, args: &[&str]) -> Result<String> {
        git::run(&self.origin, args)
    }

    /// The tip of `branch` on `origin`.
    pub fn tip(&self, branch: &str) -> Result<String> {
        self.origin(&["rev-parse", &format!("refs/heads/{branch}")])
    }

    /// The tree a commit on `origin` holds.
    pub fn tree(&self, commit: &str) -> Result<String> {
        self.origin(&["rev-parse", &format!("{commit}^{{tree}}")])
    }

    /// A commit's parents on `origin`.
    pub fn parents(&self, commit: &str) -> Result<Vec<String>> {
        let line = self.origin(&["rev-list", "--parents", "-n", "1", commit])?;
        Ok(line.split(' ').skip(1).map(str::to_string).collect())
    }

    /// A commit's subject on `origin`.
    pub fn subject(&self, commit: &str) -> Result<String> {
        self.origin(&["log", "-1", "--format=%s", commit])
    }
}

/// A feature's files: its migrations (`tag`, SQL) listed in the journal after the first `n`
/// entries (whose files are written too), and the app's files.
pub fn write_feature(
    dir: &Path,
    n: usize,
    extra: &[(&str, &str)],
    app: &[(&str, &str)],
) -> Result<()> {
    set_journal(dir, n, extra)?;
    for (path, text) in app {
        write_file(&dir.join(path), text)?;
    }
    Ok(())
}

/// The example's journal with its first `n` entries (their files written too), and `extra`
/// written and listed after them.
fn set_journal(dir: &Path, n: usize, extra: &[(&str, &str)]) -> Result<()> {
    let mut j: serde_json::Value = serde_json::from_str(JOURNAL)
        .map_err(|e| Error::usage(format!("the example journal: {e}")))?;
    for (tag, sql) in MIGRATIONS.iter().take(n) {
        write_file(&dir.join(format!("drizzle/{tag}.sql")), sql)?;
    }
    if let Some(entries) = j["entries"].as_array_mut() {
        entries.truncate(n);
        for (i, (tag, sql)) in extra.iter().enumerate() {
            write_file(&dir.join(format!("drizzle/{tag}.sql")), sql)?;
            entries.push(serde_json::json!({
                "idx": n + i, "version": "7", "when": 1795488400000_i64 + i as i64,
                "tag": tag, "breakpoints": true
            }));
        }
    }
    let out = serde_json::to_string_pretty(&j).unwrap_or_default();
    write_file(&dir.join("drizzle/meta/_journal.json"), &out)
}

fn create_dir(path: &Path) -> Result<()> {
    fs_err::create_dir_all(path).map_err(|e| Error::usage(e.to_string()))
}

pub fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    fs_err::write(path, text).map_err(|e| Error::usage(e.to_string()))
}

/// A new file only its owner can read (it holds the cluster's password).
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    let mut f = crate::db::child::create_private(path)
        .map_err(|e| Error::usage(format!("{}: {e}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::usage(format!("{}: {e}", path.display())))
}
