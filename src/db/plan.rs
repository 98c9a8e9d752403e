//! Which migrations are applied, pending, edited, missing, skipped or partially applied: pure
//! code over the source and the state rows, so every case is a table test with no database.
//!
//! The rules follow drizzle's (a Drizzle migration is applied when a state row has its
//! `created_at`), but pgship refuses what drizzle does silently: an applied file whose hash
//! changed (edited), a state row whose file is gone (missing), and a migration ordered before
//! the newest applied one that never ran (skipped: drizzle skips it forever, drizzle issue
//! 5769). Nothing here ever repairs state.

use std::cmp::Ordering;

use crate::source::{Migration, MigrationId};

/// A row of migration state, whatever table it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AppliedRecord {
    /// Drizzle: `created_at` as text; SQL: the version.
    pub version: String,
    pub hash: String,
    /// Drizzle's `created_at`, when the record came from drizzle's table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// pgship's name for it, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A migration that a non-transactional step left half-applied: its first
/// `statements_done` statements are committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialRecord {
    pub version: String,
    pub checksum: String,
    pub statements_done: usize,
    /// sha256 of the file through its last committed statement, when recorded.
    pub done_hash: Option<String>,
    /// The statement a run was executing outside a transaction when it ended, if any.
    pub running: Option<usize>,
}

/// What state says about one migration of the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Applied,
    Pending,
    /// Applied, but the file's hash is not the one recorded.
    Edited {
        recorded: String,
    },
    /// Not applied, but ordered before the newest applied migration.
    Skipped,
    /// Partially applied, and the file changed in its committed statements (or the record
    /// predates the committed part's hash): it cannot be continued safely.
    PartialChanged {
        statements_done: usize,
        recorded: String,
    },
    /// Its first `statements_done` statements are committed. `edited` holds the recorded hash
    /// when the file changed after them, in its statements not yet run only (the committed
    /// part is unchanged): it may be continued with `--allow-edited`.
    Partial {
        statements_done: usize,
        edited: Option<String>,
        /// Statement `statements_done + 1` was running outside a transaction when a run
        /// ended: whether it committed is read from the catalog before going on.
        running: bool,
    },
}

/// The classification of a whole source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One status per migration, in source order.
    pub statuses: Vec<Status>,
    /// Records whose migration is no longer in the source.
    pub missing: Vec<AppliedRecord>,
}

impl Plan {
    pub fn indices(&self, pred: impl Fn(&Status) -> bool) -> Vec<usize> {
        self.statuses
            .iter()
            .enumerate()
            .filter(|(_, s)| pred(s))
            .map(|(i, _)| i)
            .collect()
    }

    /// The work to run: [`Plan::to_run`] over `migrations`, with whether each one's first
    /// statement may have run already (see `Status::Partial::running`).
    pub fn work<'a>(&self, migrations: &'a [Migration]) -> Vec<super::apply::Work<'a>> {
        self.to_run()
            .into_iter()
            .map(|(i, start_at)| super::apply::Work {
                migration: &migrations[i],
                start_at,
                uncertain: matches!(self.statuses[i], Status::Partial { running: true, .. }),
            })
            .collect()
    }

    /// Migrations to run, in order, with how many statements are already committed.
    pub fn to_run(&self) -> Vec<(usize, usize)> {
        self.statuses
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Status::Pending => Some((i, 0)),
                Status::Partial {
                    statements_done, ..
                } => Some((i, *statements_done)),
                _ => None,
            })
            .collect()
    }
}

/// The version key a migration is recorded under.
pub fn version_of(m: &Migration) -> String {
    match &m.id {
        MigrationId::Drizzle { when } => when.to_string(),
        MigrationId::Sql { version } => version.clone(),
    }
}

/// Compare two versions numerically (`10` > `9`, `007` == `7`), without overflow: the same
/// order the SQL folder reader sorts files in.
pub use crate::source::sql_dir::compare_versions as cmp_versions;

/// How records are matched to migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matching {
    /// By version (`created_at` for Drizzle 0.x, the file version for SQL folders); a
    /// migration not applied but at or below the newest applied version is skipped.
    Version,
    /// By name (drizzle v1 keys its rows by folder name; rows without a name fall back to
    /// `created_at`); a migration not applied but ordered before an applied one is skipped.
    Name,
}

/// Classify every migration of `migrations` against `records` and `partials`.
pub fn classify(
    migrations: &[Migration],
    records: &[AppliedRecord],
    partials: &[PartialRecord],
    matching: Matching,
) -> Plan {
    let matches = |r: &AppliedRecord, m: &Migration| {
        let same_version = cmp_versions(&r.version, &version_of(m)) == Ordering::Equal;
        match matching {
            Matching::Version => same_version,
            Matching::Name => r.name.as_deref().map_or(same_version, |n| n == m.name),
        }
    };
    let newest = records
        .iter()
        .map(|r| r.version.as_str())
        .max_by(|a, b| cmp_versions(a, b));
    let last_applied = migrations
        .iter()
        .rposition(|m| records.iter().any(|r| matches(r, m)));
    let statuses = migrations
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let v = version_of(m);
            if let Some(r) = records.iter().find(|r| matches(r, m)) {
                return if r.hash == m.checksum {
                    Status::Applied
                } else {
                    Status::Edited {
                        recorded: r.hash.clone(),
                    }
                };
            }
            if let Some(p) = partials
                .iter()
                .find(|p| cmp_versions(&p.version, &v) == Ordering::Equal)
            {
                let done = p.statements_done;
                let running = p.running == Some(done);
                return if p.checksum == m.checksum {
                    Status::Partial {
                        statements_done: done,
                        edited: None,
                        running,
                    }
                } else if p.done_hash.as_deref() == Some(m.prefix_hash(done).as_str()) {
                    Status::Partial {
                        statements_done: done,
                        edited: Some(p.checksum.clone()),
                        running,
                    }
                } else {
                    Status::PartialChanged {
                        statements_done: done,
                        recorded: p.checksum.clone(),
                    }
                };
            }
            let skipped = match matching {
                Matching::Version => {
                    newest.is_some_and(|n| cmp_versions(&v, n) != Ordering::Greater)
                }
                Matching::Name => last_applied.is_some_and(|last| i < last),
            };
            if skipped {
                Status::Skipped
            } else {
                Status::Pending
            }
        })
        .collect();
    let missing = records
        .iter()
        .filter(|r| !migrations.iter().any(|m| matches(r, m)))
        .cloned()
        .collect();
    Plan { statuses, missing }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn mig(name: &str, when: i64, hash: &str) -> Migration {
        Migration {
            id: MigrationId::Drizzle { when },
            checksum: hash.into(),
            path: PathBuf::from(format!("{name}.sql")),
            ..crate::source::testing::migration(name)
        }
    }

    fn rec(when: i64, hash: &str) -> AppliedRecord {
        AppliedRecord {
            version: when.to_string(),
            hash: hash.into(),
            created_at: Some(when),
            name: None,
        }
    }

    #[test]
    fn table_of_cases() {
        let ms = vec![
            mig("a", 100, "ha"),
            mig("b", 200, "hb"),
            mig("c", 300, "hc"),
            mig("d", 400, "hd"),
        ];
        // (records, expected statuses, missing count)
        let cases: Vec<(Vec<AppliedRecord>, Vec<Status>, usize)> = vec![
            (vec![], vec![Status::Pending; 4], 0),
            (
                vec![rec(100, "ha"), rec(200, "hb")],
                vec![
                    Status::Applied,
                    Status::Applied,
                    Status::Pending,
                    Status::Pending,
                ],
                0,
            ),
            (
                vec![rec(100, "ha"), rec(300, "hc")],
                vec![
                    Status::Applied,
                    Status::Skipped,
                    Status::Applied,
                    Status::Pending,
                ],
                0,
            ),
            (
                vec![rec(100, "edited"), rec(200, "hb")],
                vec![
                    Status::Edited {
                        recorded: "edited".into(),
                    },
                    Status::Applied,
                    Status::Pending,
                    Status::Pending,
                ],
                0,
            ),
            (
                vec![rec(100, "ha"), rec(150, "gone"), rec(200, "hb")],
                vec![
                    Status::Applied,
                    Status::Applied,
                    Status::Pending,
                    Status::Pending,
                ],
                1,
            ),
            (
                vec![
                    rec(100, "ha"),
                    rec(200, "hb"),
                    rec(300, "hc"),
                    rec(400, "hd"),
                    rec(500, "future"),
                ],
                vec![Status::Applied; 4],
                1,
            ),
        ];
        for (i, (records, expected, missing)) in cases.into_iter().enumerate() {
            let plan = classify(&ms, &records, &[], Matching::Version);
            assert_eq!(plan.statuses, expected, "case {i}");
            assert_eq!(plan.missing.len(), missing, "case {i}");
        }
    }

    #[test]
    fn partial_resumes_unless_edited() {
        let ms = vec![mig("a", 100, "ha"), mig("b", 200, "hb")];
        let recs = vec![rec(100, "ha")];
        let partial = vec![PartialRecord {
            version: "200".into(),
            checksum: "hb".into(),
            statements_done: 2,
            done_hash: None,
            running: None,
        }];
        let plan = classify(&ms, &recs, &partial, Matching::Version);
        assert_eq!(
            plan.statuses[1],
            Status::Partial {
                statements_done: 2,
                edited: None,
                running: false
            }
        );
        assert_eq!(plan.to_run(), vec![(1, 2)]);
        let partial = vec![PartialRecord {
            version: "200".into(),
            checksum: "other".into(),
            statements_done: 2,
            done_hash: Some("not the prefix".into()),
            running: None,
        }];
        let plan = classify(&ms, &recs, &partial, Matching::Version);
        assert_eq!(
            plan.statuses[1],
            Status::PartialChanged {
                statements_done: 2,
                recorded: "other".into()
            }
        );
        assert!(plan.to_run().is_empty());
    }

    #[test]
    fn partial_edited_after_its_committed_part_may_continue() {
        let text = "CREATE TABLE a (x int);--> statement-breakpoint\nSELECT 1/0;";
        let mut b = mig("b", 200, "new");
        b.raw = text.into();
        b.statements = crate::source::split::drizzle_chunks(text);
        assert_eq!(b.statements.len(), 2);
        let partial = vec![PartialRecord {
            version: "200".into(),
            checksum: "old".into(),
            statements_done: 1,
            done_hash: Some(b.prefix_hash(1)),
            running: Some(1),
        }];
        let plan = classify(&[b], &[], &partial, Matching::Version);
        assert_eq!(
            plan.statuses[0],
            Status::Partial {
                statements_done: 1,
                edited: Some("old".into()),
                running: true
            }
        );
        assert_eq!(plan.to_run(), vec![(0, 1)]);
    }

    #[test]
    fn drizzle_v1_matches_by_name() {
        let ms = vec![
            mig("20250101000000_a", 1000, "ha"),
            mig("20250102000000_b", 2000, "hb"),
            mig("20250103000000_c", 3000, "hc"),
        ];
        let named = |name: &str, when: i64, hash: &str| AppliedRecord {
            version: when.to_string(),
            hash: hash.into(),
            created_at: Some(when),
            name: Some(name.into()),
        };
        let recs = vec![
            named("20250101000000_a", 1000, "ha"),
            named("20250103000000_c", 3000, "hc"),
            named("gone", 9000, "hg"),
        ];
        let plan = classify(&ms, &recs, &[], Matching::Name);
        assert_eq!(
            plan.statuses,
            vec![Status::Applied, Status::Skipped, Status::Applied]
        );
        assert_eq!(plan.missing.len(), 1);
        // A row without a name (a 0.x-shaped table) falls back to created_at.
        let plan = classify(&ms, &[rec(1000, "ha")], &[], Matching::Name);
        assert_eq!(
            plan.statuses,
            vec![Status::Applied, Status::Pending, Status::Pending]
        );
    }

    #[test]
    fn numeric_versions() {
        assert_eq!(cmp_versions("10", "9"), Ordering::Greater);
        assert_eq!(cmp_versions("007", "7"), Ordering::Equal);
        assert_eq!(
            cmp_versions("20250101000000", "20241231235959"),
            Ordering::Greater
        );
        let mut m = mig("x", 0, "h");
        m.id = MigrationId::Sql {
            version: "002".into(),
        };
        let plan = classify(
            &[m],
            &[AppliedRecord {
                version: "2".into(),
                hash: "h".into(),
                created_at: None,
                name: None,
            }],
            &[],
            Matching::Version,
        );
        assert_eq!(plan.statuses, vec![Status::Applied]);
    }
}
