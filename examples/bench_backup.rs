//! `scripts/bench-backup`'s measurement: the `full` and `touched` backups of one database,
//! side by side, each as the deploy takes it (dump, then seal: pg_restore --list, sha256,
//! manifest with row counts).
//!
//! Usage: `cargo run --release --example bench_backup -- URL DIR SCHEMA.TABLE`
//! (DIR must not exist; the dumps are written under it and left for the caller to remove).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pgship::backup::{self, Strategy};
use pgship::db::{ConnectOptions, DbUrl, connect, tools::find_dump_tools};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, dir, table] = args.as_slice() else {
        return Err("usage: bench_backup URL DIR SCHEMA.TABLE".into());
    };
    let url = DbUrl::parse(url)?;
    let dir = PathBuf::from(dir);
    let (schema, name) = table.split_once('.').ok_or("SCHEMA.TABLE")?;
    let major = connect(&url, &ConnectOptions::default())
        .await?
        .version
        .major();
    let tools = find_dump_tools(major)?;
    let wait = Duration::from_secs(5);

    let full_dir = dir.join("full");
    let t = Instant::now();
    let f = backup::full(&url, &tools, &full_dir, wait).await?;
    let full_dump = t.elapsed().as_secs_f64();
    let bytes = f.bytes;
    let m = backup::seal(&url, &tools, vec![f], &full_dir, Strategy::Full).await?;
    let full_total = t.elapsed().as_secs_f64();
    println!(
        "full:    dump {full_dump:.2}s, sealed {full_total:.2}s, {:.1} MB, {} tables",
        bytes as f64 / 1e6,
        m.tables.len()
    );

    let touched_dir = dir.join("touched");
    let tables = [(schema.to_string(), name.to_string())];
    let t = Instant::now();
    let files = backup::touched(&url, &tools, &touched_dir, &tables, wait).await?;
    let touched_dump = t.elapsed().as_secs_f64();
    let bytes: u64 = files.iter().map(|f| f.bytes).sum();
    backup::seal(&url, &tools, files, &touched_dir, Strategy::Touched).await?;
    let touched_total = t.elapsed().as_secs_f64();
    println!(
        "touched: dump {touched_dump:.2}s, sealed {touched_total:.2}s, {:.1} MB ({table})",
        bytes as f64 / 1e6
    );
    let ratio = touched_total / full_total;
    println!(
        "touched/full (sealed): {ratio:.3}x (goal <= 0.1x: {})",
        if ratio <= 0.1 { "met" } else { "missed" }
    );
    Ok(())
}
