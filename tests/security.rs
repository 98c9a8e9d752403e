//! Secrets and TLS: a canary password never appears in output, logs, the log table or any
//! process's arguments; sslmode and channel_binding behave as libpq's do.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use pgship::cluster::{ClusterOptions, LocalCluster};
use pgship::db::{ConnectOptions, DbUrl, connect};

/// Scan every process's command line for `needle` until `stop` is set.
fn watch_cmdlines(
    needle: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let mut scans = 0;
        let mut hits = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            for e in std::fs::read_dir("/proc").unwrap().flatten() {
                if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
                    let text = String::from_utf8_lossy(&cmd).replace('\0', " ");
                    if text.contains(&needle) {
                        hits.push(text);
                    }
                }
            }
            scans += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        (scans, hits)
    })
}

#[test]
fn canary_password_never_leaks() {
    let cluster = match LocalCluster::start(&ClusterOptions::default()) {
        Ok(c) => c,
        Err(e) if !in_ci() => return eprintln!("SKIPPED: {e}"),
        Err(e) => panic!("{e}"),
    };
    let good = cluster.url("postgres");
    let canary = good.password.clone().unwrap().expose().to_string();
    assert!(canary.len() >= 32);
    let project = project_with("drizzle-app/drizzle-bad");
    // The URL reaches pgship through .env, as a user would configure it, so no argv holds it.
    std::fs::write(
        project.path().join(".env"),
        format!("DEV_POSTGRES_URL={}\n", good.expose()),
    )
    .unwrap();
    let wrong = format!("canary-wrong-{}", pgship::util::random_hex(8));
    let mut bad = good.clone();
    bad.password = Some(pgship::db::url::Secret::new(wrong.clone()));
    std::fs::write(
        project.path().join(".env.local"),
        format!("UAT_POSTGRES_URL={}\n", bad.expose()),
    )
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_cmdlines(canary.clone(), stop.clone());
    let watcher_wrong = watch_cmdlines(wrong.clone(), stop.clone());
    let mut outputs = Vec::new();
    for args in [
        vec!["status", "dev"],
        vec!["migrate", "dev", "-v"],
        vec!["migrate", "dev", "--format", "json"],
        vec!["status", "dev", "--format", "json"],
        vec!["status", "uat"],
        vec!["migrate", "uat"],
    ] {
        let out = run(pgship(project.path()).args(&args));
        outputs.push((args.join(" "), out));
    }
    // The rehearsal, on the good set: pg_dump, pg_restore and psql on the target and the
    // sandbox, and a test command that prints the sandbox URL it is given.
    let good_project = project_with("drizzle-app/drizzle");
    std::fs::copy(
        project.path().join(".env"),
        good_project.path().join(".env"),
    )
    .unwrap();
    for args in [
        vec![
            "plan",
            "dev",
            "--sandbox",
            "local",
            "--test-cmd",
            "echo \"$DATABASE_URL $DEV_POSTGRES_URL\"; exit 1",
        ],
        vec!["plan", "dev", "--sandbox", "local", "--format", "json"],
        vec!["deploy", "dev", "--sandbox", "local", "--backup", "full"],
    ] {
        let out = run(pgship(good_project.path()).args(&args));
        outputs.push((args.join(" "), out));
    }
    // The deployment just made, rolled back by hand (the guard, the restore, the proof).
    let deployed = std::fs::read_dir(good_project.path().join(".deployments"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .find(|n| n.starts_with("deploy-"))
        .expect("the deploy made its folder");
    let out = run(pgship(good_project.path()).args(["rollback", &deployed]));
    outputs.push((format!("rollback {deployed}"), out));
    stop.store(true, Ordering::Relaxed);
    let (scans, hits) = watcher.join().unwrap();
    let (_, hits_wrong) = watcher_wrong.join().unwrap();
    assert!(scans > 10, "the argv watcher only scanned {scans} times");
    assert!(
        hits.is_empty() && hits_wrong.is_empty(),
        "password in a command line: {hits:?} {hits_wrong:?}"
    );

    assert_eq!(
        outputs[1].1.code, 1,
        "the bad set fails: {}",
        outputs[1].1.stderr
    );
    assert_eq!(
        outputs[4].1.code, 2,
        "a wrong password is a connection error: {}",
        outputs[4].1.stderr
    );
    assert!(
        outputs[4]
            .1
            .stderr
            .contains("password authentication failed"),
        "{}",
        outputs[4].1.stderr
    );
    for (what, out) in &outputs {
        for secret in [&canary, &wrong] {
            assert!(
                !out.stdout.contains(secret.as_str()) && !out.stderr.contains(secret.as_str()),
                "{what} printed a password"
            );
        }
        assert!(
            out.stdout.contains("***") || out.stderr.contains("***"),
            "{what} shows no redacted URL"
        );
    }
    assert_eq!(outputs[6].1.code, 1, "{}", outputs[6].1.stderr);
    assert!(
        outputs[6]
            .1
            .stdout
            .contains("| postgres://postgres:***@127.0.0.1:"),
        "the test command's output keeps the sandbox URL redacted: {}",
        outputs[6].1.stdout
    );
    assert_eq!(outputs[8].1.code, 0, "deploy: {}", outputs[8].1.stderr);
    assert_eq!(outputs[9].1.code, 0, "rollback: {}", outputs[9].1.stderr);
    let mut files = Vec::new();
    for d in [project.path(), good_project.path()].map(|p| p.join(".deployments")) {
        files.extend(files_under(&d));
    }
    // Every artifact, the dumps and manifests included.
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for secret in [&canary, &wrong] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a password",
                f.display()
            );
        }
    }
    let named = |n: &str| files.iter().filter(|f| f.ends_with(n)).count();
    assert_eq!(
        named("report.json"),
        3,
        "both plans and the deploy wrote report.json"
    );
    assert_eq!(named("rollback-state.json"), 1);
    assert!(named("manifest.json") >= 1 && named("backup.dump") == 1);
    let table = query(
        &good.expose(),
        "SELECT string_agg(message || metadata::text, ' ') FROM pgship.deployment_logs",
    );
    let table = table[0][0].clone().unwrap();
    assert!(table.contains("0004_broken_custom"));
    assert!(!table.contains(&canary));
    let deployments = query(
        &good.expose(),
        "SELECT string_agg(target || coalesce(error, '') || coalesce(rollback_state::text, ''), ' ') FROM pgship.deployments",
    );
    assert!(!deployments[0][0].clone().unwrap().contains(&canary));
}

#[test]
fn tls_modes_and_channel_binding() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, crt, key) = tls_files(dir.path(), &["localhost"]);
    let cluster = match LocalCluster::start(&ClusterOptions {
        tls: Some((crt, key)),
        ..Default::default()
    }) {
        Ok(c) => c,
        Err(e) if !in_ci() => return eprintln!("SKIPPED: {e}"),
        Err(e) => panic!("{e}"),
    };
    let rt = rt();
    let ssl_in_use = |url: &DbUrl| -> Result<bool, String> {
        rt.block_on(async {
            let c = connect(url, &ConnectOptions::default())
                .await
                .map_err(|e| format!("{e} {:?}", e.hint()))?;
            let row = c
                .client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok(row.get(0))
        })
    };
    let ca_path = ca.display().to_string();
    // require: encrypted, certificate not verified (libpq's meaning).
    assert_eq!(
        ssl_in_use(&cluster.url_with("postgres", "sslmode=require")),
        Ok(true)
    );
    // channel binding over TLS with SCRAM.
    assert_eq!(
        ssl_in_use(&cluster.url_with("postgres", "sslmode=require&channel_binding=require")),
        Ok(true)
    );
    // verify-full without the CA: refused, with a hint naming sslrootcert.
    let err = ssl_in_use(&cluster.url_with("postgres", "sslmode=verify-full")).unwrap_err();
    assert!(err.contains("sslrootcert"), "{err}");
    // verify-full and verify-ca with the CA: accepted.
    assert_eq!(
        ssl_in_use(&cluster.url_with(
            "postgres",
            &format!("sslmode=verify-full&sslrootcert={ca_path}")
        )),
        Ok(true)
    );
    assert_eq!(
        ssl_in_use(&cluster.url_with(
            "postgres",
            &format!("sslmode=verify-ca&sslrootcert={ca_path}")
        )),
        Ok(true)
    );
    // verify-full checks the host name: the certificate names localhost, not 127.0.0.1.
    let mut by_ip = cluster.url_with(
        "postgres",
        &format!("sslmode=verify-full&sslrootcert={ca_path}"),
    );
    by_ip.hosts[0].host = "127.0.0.1".into();
    assert!(ssl_in_use(&by_ip).is_err());
    by_ip.sslmode = pgship::db::url::SslMode::VerifyCa;
    assert_eq!(ssl_in_use(&by_ip), Ok(true));
    // channel_binding=require without TLS cannot be satisfied.
    assert!(
        ssl_in_use(&cluster.url_with("postgres", "sslmode=disable&channel_binding=require"))
            .is_err()
    );
    // Unknown libpq parameters do not break anything.
    assert_eq!(
        ssl_in_use(&cluster.url_with(
            "postgres",
            "sslmode=require&gssencmode=disable&pgbouncer=true"
        )),
        Ok(true)
    );
    // The same through the command line.
    let project = project_with("drizzle-app/drizzle");
    let url = cluster.url_with("postgres", "sslmode=verify-full").expose();
    let out = run(pgship(project.path()).args(["status", &url]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("sslrootcert"), "{}", out.stderr);
    let url = cluster
        .url_with(
            "postgres",
            &format!("sslmode=verify-full&sslrootcert={ca_path}&channel_binding=require"),
        )
        .expose();
    let out = run(pgship(project.path()).args(["migrate", &url]));
    assert_eq!(out.code, 0, "{}", out.stderr);
}
