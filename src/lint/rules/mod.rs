//! The registry: every rule of `lint-rules.md`, one module each, in catalogue order.

use super::Rule;

mod add_check_validating;
mod add_column_rewrite;
mod add_exclusion_constraint;
mod add_foreign_key_validating;
mod add_primary_key;
mod add_required_column;
mod add_unique_constraint;
mod alter_column_type_rewrite;
mod alter_domain_add_constraint;
mod attach_partition_scan;
mod authz_change;
mod cic_corruption_pg14;
mod concurrent_in_txn;
mod create_domain_with_constraint;
mod create_index_not_concurrently;
mod data_dependent_failure;
mod detach_partition_blocking;
mod dml_after_lock_in_txn;
mod drop_cascade;
mod drop_column;
mod drop_database;
mod drop_foreign_key;
mod drop_index_not_concurrently;
mod drop_not_null;
mod drop_schema;
mod drop_sequence;
mod drop_table;
mod duplicate_column;
mod enum_add_value_in_txn;
mod enum_value_unordered;
mod explicit_lock;
mod extension_upgrade;
mod identifier_too_long;
mod invalid_index_risk;
mod json_column;
mod load_impact;
pub mod non_linear_history;
mod non_transactional_stmt;
mod other_rewriting_alter;
mod prefer_robust_stmts;
mod refresh_matview_blocking;
mod reindex_not_concurrently;
mod rename_column;
mod rename_enum_value;
mod rename_schema;
mod rename_table;
mod replica_identity;
mod require_lock_timeout;
mod require_statement_timeout;
mod require_table_schema;
mod rewrite_maintenance;
mod set_not_null_scan;
mod syntax_error;
pub(crate) mod transaction_nesting;
mod trigger_ddl;
mod truncate;
mod truncate_cascade;
mod type_and_naming_style;
mod uncommitted_transaction;
mod untracked_dependency;
mod validate_in_locking_txn;

/// Every rule, in catalogue order.
pub static ALL: &[&Rule] = &[
    &create_index_not_concurrently::RULE,
    &drop_index_not_concurrently::RULE,
    &reindex_not_concurrently::RULE,
    &add_column_rewrite::RULE,
    &alter_column_type_rewrite::RULE,
    &set_not_null_scan::RULE,
    &add_check_validating::RULE,
    &add_foreign_key_validating::RULE,
    &validate_in_locking_txn::RULE,
    &add_unique_constraint::RULE,
    &add_primary_key::RULE,
    &add_exclusion_constraint::RULE,
    &rewrite_maintenance::RULE,
    &refresh_matview_blocking::RULE,
    &detach_partition_blocking::RULE,
    &attach_partition_scan::RULE,
    &other_rewriting_alter::RULE,
    &alter_domain_add_constraint::RULE,
    &create_domain_with_constraint::RULE,
    &trigger_ddl::RULE,
    &explicit_lock::RULE,
    &dml_after_lock_in_txn::RULE,
    &require_lock_timeout::RULE,
    &require_statement_timeout::RULE,
    &load_impact::RULE,
    &drop_table::RULE,
    &drop_column::RULE,
    &drop_schema::RULE,
    &drop_database::RULE,
    &truncate_cascade::RULE,
    &truncate::RULE,
    &drop_sequence::RULE,
    &drop_cascade::RULE,
    &drop_foreign_key::RULE,
    &rename_column::RULE,
    &rename_table::RULE,
    &rename_schema::RULE,
    &rename_enum_value::RULE,
    &drop_not_null::RULE,
    &add_required_column::RULE,
    &enum_value_unordered::RULE,
    &json_column::RULE,
    &authz_change::RULE,
    &replica_identity::RULE,
    &untracked_dependency::RULE,
    &extension_upgrade::RULE,
    &concurrent_in_txn::RULE,
    &enum_add_value_in_txn::RULE,
    &non_transactional_stmt::RULE,
    &transaction_nesting::RULE,
    &uncommitted_transaction::RULE,
    &prefer_robust_stmts::RULE,
    &invalid_index_risk::RULE,
    &data_dependent_failure::RULE,
    &cic_corruption_pg14::RULE,
    &identifier_too_long::RULE,
    &duplicate_column::RULE,
    &require_table_schema::RULE,
    &non_linear_history::RULE,
    &type_and_naming_style::RULE,
    &syntax_error::RULE,
];

/// A rule by ID (`LK01`) or name (`create-index-not-concurrently`).
pub fn find(id_or_name: &str) -> Option<&'static Rule> {
    ALL.iter()
        .copied()
        .find(|r| r.id.eq_ignore_ascii_case(id_or_name) || r.name == id_or_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_unique_and_well_formed() {
        let mut ids = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for r in ALL {
            assert!(ids.insert(r.id), "duplicate id {}", r.id);
            assert!(names.insert(r.name), "duplicate name {}", r.name);
            assert!(
                r.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            );
            assert!(!r.summary.is_empty(), "{} has no summary", r.id);
            assert!(!r.help.is_empty(), "{} has no help", r.id);
        }
        assert_eq!(ALL.len(), 61);
    }
}
