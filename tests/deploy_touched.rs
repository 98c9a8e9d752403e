//! `pgship deploy --backup touched`: the backup is the restore method's own dumps of the
//! target (taken once, not twice), sealed and verified, and `rollback <id>` restores from it;
//! with the down method (no such dumps) the backup dumps by itself.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::deploy::*;
use common::*;

const TAG: &str = "ALTER TABLE notes ADD COLUMN tag text;\nUPDATE notes SET tag = 'x';\n";

/// `pgship <args>` on `project` with `dev` pointing at `url`, run to its end.
fn pg(project: &Path, url: &str, tmp: &Path, args: &[&str]) -> Out {
    run(&mut cmd(project, url, tmp, args))
}

/// The newest deployment folder of `project`.
fn last_deploy(project: &Path) -> PathBuf {
    let mut out: Vec<PathBuf> = std::fs::read_dir(project.join(".deployments"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("deploy-")
        })
        .collect();
    out.sort();
    out.pop().expect("a deployment folder")
}

/// The other name of `file`'s inode in its folder (a hard link), if any.
fn twin(file: &Path) -> Option<String> {
    let ino = std::fs::metadata(file).unwrap().ino();
    std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.path() != file && e.metadata().unwrap().ino() == ino)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
}

#[test]
fn a_touched_backup_is_the_restore_dumps_sealed_and_rollback_restores_from_it() {
    let Some(db) = TestDb::new() else { return };
    let p = applied_project(&db, &[("002_tag.sql", TAG)]);
    let tmp = private_tmp();
    let before = fingerprint_and_counts(&db.url, &["customers", "notes"]);
    let notes_before = db.query("SELECT id, body FROM notes ORDER BY id");

    let args = ["deploy", "dev", "--sandbox", "local", "--backup", "touched"];
    let out = pg(p.path(), &db.url, tmp.path(), &args);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let dir = last_deploy(p.path());
    let backup = dir.clone();
    let schema = backup.join(pgship::backup::dump::SCHEMA);
    let data = backup.join(pgship::backup::dump::DATA);
    let schema_twin = twin(&schema).expect("backup-schema.dump is the restore method's dump");
    let data_twin = twin(&data).expect("backup-data.dump is the restore method's dump");
    assert!(schema_twin.starts_with("schema-"), "{schema_twin}");
    assert!(data_twin.starts_with("data-"), "{data_twin}");
    let manifest = pgship::backup::check(&backup).expect("the backup verifies");
    let tables: Vec<String> = manifest.tables.iter().map(|t| t.name()).collect();
    assert_eq!(tables, ["public.notes"], "only the touched table's rows");
    assert_eq!(manifest.tables[0].rows, 2);
    assert_eq!(
        db.scalar("SELECT count(*) FROM notes WHERE tag = 'x'")
            .as_deref(),
        Some("2")
    );

    let id = dir.file_name().unwrap().to_string_lossy().to_string();
    let rb = pg(p.path(), &db.url, tmp.path(), &["rollback", &id]);
    assert_eq!(rb.code, 0, "{}\n{}", rb.stdout, rb.stderr);
    assert_eq!(
        fingerprint_and_counts(&db.url, &["customers", "notes"]),
        before
    );
    assert_eq!(
        db.query("SELECT id, body FROM notes ORDER BY id"),
        notes_before
    );
}

#[test]
fn with_down_scripts_the_touched_backup_dumps_by_itself() {
    let Some(db) = TestDb::new() else { return };
    let down = "ALTER TABLE notes DROP COLUMN tag;\n";
    let p = applied_project(&db, &[("002_tag.sql", TAG), ("002_tag.down.sql", down)]);
    let tmp = private_tmp();

    let args = ["deploy", "dev", "--sandbox", "local", "--backup", "touched"];
    let out = pg(p.path(), &db.url, tmp.path(), &args);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let backup = last_deploy(p.path());
    for name in [pgship::backup::dump::SCHEMA, pgship::backup::dump::DATA] {
        let f = backup.join(name);
        assert!(f.is_file(), "{name} missing");
        assert_eq!(twin(&f), None, "{name} was dumped for the backup itself");
    }
    let manifest = pgship::backup::check(&backup).expect("the backup verifies");
    let tables: Vec<String> = manifest.tables.iter().map(|t| t.name()).collect();
    assert_eq!(tables, ["public.notes"]);
}
