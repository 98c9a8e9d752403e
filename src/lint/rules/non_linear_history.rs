//! RB08 non-linear-history: a pending migration whose version sorts at or before the newest
//! version already applied on the target: it was added out of order (typically merged from a
//! branch that was created before newer migrations were deployed), so it will run after
//! migrations that are numbered after it, against a schema its author did not see.
//!
//! This is a property of the migration folder and the target's history, not of a statement:
//! the per-statement check finds nothing, and the CLI calls [`out_of_order`] with what is
//! pending on the `--pending` target.
//!
//! Severity: warning (opt-in). The migration may well be independent of the newer ones; the
//! finding asks for that to be checked, or for the file to be renumbered.

use std::cmp::Ordering;

use crate::lint::{Context, Hit, Rule, Severity, Stmt};
use crate::source::sql_dir::compare_versions;

pub static RULE: Rule = Rule {
    id: "RB08",
    name: "non-linear-history",
    severity: Severity::Warning,
    default_on: false,
    summary: "a pending migration numbered before one already applied on the target (added out of \
              order)",
    help: "renumber the migration after the newest applied version, or check that it does not \
           depend on or conflict with the migrations applied after it",
    check,
};

/// Directory-level: see [`out_of_order`].
fn check(_stmt: &Stmt, _ctx: &Context) -> Vec<Hit> {
    Vec::new()
}

/// The pending migrations (`(name, version)`) whose version is not after `newest_applied`,
/// each with its finding, in the order given. Versions compare numerically
/// ([`compare_versions`]: `10` > `9`, `007` == `7`); empty versions are ignored.
pub fn out_of_order(
    pending: &[(String, String)],
    newest_applied: Option<&str>,
) -> Vec<(String, Hit)> {
    let Some(newest) = newest_applied.filter(|v| !v.is_empty()) else {
        return Vec::new();
    };
    pending
        .iter()
        .filter(|(_, version)| !version.is_empty())
        .filter_map(|(name, version)| {
            let message = match compare_versions(version, newest) {
                Ordering::Greater => return None,
                Ordering::Less => format!(
                    "migration {name} (version {version}) is pending, but version {newest} is \
                     already applied: it was added out of order and will run after migrations \
                     numbered after it"
                ),
                Ordering::Equal => format!(
                    "migration {name} (version {version}) is pending, but a migration with the \
                     same version is already applied: two migrations share version {version}"
                ),
            };
            let help = format!(
                "renumber {name} after {newest} (the newest applied version), or check that it \
                 does not depend on or conflict with the migrations applied after it"
            );
            Some((name.clone(), Hit::new(message).help(help)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::out_of_order;
    use crate::lint::testing::render;

    fn pending(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flags_a_pending_migration_older_than_the_newest_applied() {
        let found = out_of_order(
            &pending(&[("004_add_note", "004"), ("007_index", "007")]),
            Some("005"),
        );
        assert_eq!(found.len(), 1);
        let (name, hit) = &found[0];
        assert_eq!(name, "004_add_note");
        assert_eq!(
            hit.message,
            "migration 004_add_note (version 004) is pending, but version 005 is already applied: \
             it was added out of order and will run after migrations numbered after it"
        );
        assert_eq!(
            hit.help.as_deref(),
            Some(
                "renumber 004_add_note after 005 (the newest applied version), or check that it \
                 does not depend on or conflict with the migrations applied after it"
            )
        );
        assert_eq!(hit.severity, None);
    }

    #[test]
    fn compares_versions_numerically() {
        // 9 < 10 although "9" > "10" as text; leading zeros do not count.
        let found = out_of_order(&pending(&[("9_a", "9"), ("11_b", "11")]), Some("10"));
        assert_eq!(
            found.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
            ["9_a"]
        );
        assert!(out_of_order(&pending(&[("0011_b", "0011")]), Some("10")).is_empty());
        // Drizzle: millisecond timestamps.
        let drizzle = out_of_order(
            &pending(&[("0003_x", "1717000000000"), ("0004_y", "1719000000000")]),
            Some("1718000000000"),
        );
        assert_eq!(drizzle.len(), 1);
        assert_eq!(drizzle[0].0, "0003_x");
    }

    #[test]
    fn a_shared_version_is_reported() {
        let found = out_of_order(&pending(&[("005_other", "0005")]), Some("5"));
        assert_eq!(found.len(), 1);
        assert!(
            found[0]
                .1
                .message
                .contains("two migrations share version 0005")
        );
    }

    #[test]
    fn passes_linear_history_and_fresh_targets() {
        let p = pending(&[("006_a", "006"), ("007_b", "007")]);
        assert!(out_of_order(&p, Some("005")).is_empty());
        assert!(out_of_order(&p, None).is_empty());
        assert!(out_of_order(&p, Some("")).is_empty());
        assert!(out_of_order(&pending(&[("x", "")]), Some("5")).is_empty());
        assert!(out_of_order(&[], Some("5")).is_empty());
    }

    #[test]
    fn statements_alone_find_nothing() {
        assert_eq!(render("RB08", "CREATE TABLE t (id int);"), "");
    }
}
