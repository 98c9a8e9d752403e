//! Schema comparison: what would change in a target if a source's schema were deployed onto
//! it, in the vocabulary of `compare-vocabulary.md`, with breaking changes marked and a
//! schema fingerprint.
//!
//! - [`model`]: the pure schema model (no IO) and its fingerprint.
//! - [`introspect`]: reads a model from a live database in a fixed number of queries.
//! - [`diff`]: model against model, giving [`Difference`]s (the catalog engine).
//! - [`renames`]: renamed tables and columns, by catalog identity or from the SQL.
//! - [`fdw`]: the postgres_fdw engine, computing the covered kinds in SQL.
//! - [`types`]: which column type changes are compatible.
//! - [`data`]: row counts, content hashes and orphaned foreign-key rows.
//! - [`report`]: text, markdown and JSON rendering; [`names`]: names quoted for the text forms.
//! - [`command`]: `pgship compare` as one call: targets resolved from the project's settings,
//!   both databases read, the chosen engine run, the report returned.

pub mod command;
pub mod data;
pub mod diff;
pub mod fdw;
pub mod introspect;
pub mod model;
pub mod names;
pub mod renames;
pub mod report;
pub mod types;

use serde::Serialize;

/// Every word of the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    SchemaAdded,
    SchemaRemoved,
    ExtensionAdded,
    ExtensionRemoved,
    ExtensionVersionChanged,
    CollationAdded,
    CollationRemoved,
    EnumAdded,
    EnumRemoved,
    EnumValueAdded,
    EnumValueRemoved,
    EnumValuesReordered,
    DomainAdded,
    DomainRemoved,
    DomainChanged,
    SequenceAdded,
    SequenceRemoved,
    SequenceChanged,
    SequenceOwnerChanged,
    TableAdded,
    TableRemoved,
    TableRenamed,
    TablePersistenceChanged,
    TableRlsChanged,
    TableRlsForceChanged,
    TableReplicaIdentityChanged,
    TablePartitioningChanged,
    PartitionAttached,
    PartitionDetached,
    TableInheritsChanged,
    ColumnAdded,
    ColumnRemoved,
    ColumnRenamed,
    ColumnTypeChanged,
    ColumnNullabilityChanged,
    ColumnDefaultChanged,
    ColumnCollationChanged,
    ColumnGeneratedChanged,
    ColumnIdentityChanged,
    ColumnIdentityOptionsChanged,
    IndexAdded,
    IndexRemoved,
    IndexChanged,
    ConstraintAdded,
    ConstraintRemoved,
    ConstraintChanged,
    ViewAdded,
    ViewRemoved,
    ViewChanged,
    MaterializedViewAdded,
    MaterializedViewRemoved,
    MaterializedViewChanged,
    FunctionAdded,
    FunctionRemoved,
    FunctionChanged,
    TriggerAdded,
    TriggerRemoved,
    TriggerChanged,
    PolicyAdded,
    PolicyRemoved,
    PolicyChanged,
    PrivilegeGranted,
    PrivilegeRevoked,
    PrivilegeGrantOptionChanged,
    CommentChanged,
}

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::SchemaAdded,
        Kind::SchemaRemoved,
        Kind::ExtensionAdded,
        Kind::ExtensionRemoved,
        Kind::ExtensionVersionChanged,
        Kind::CollationAdded,
        Kind::CollationRemoved,
        Kind::EnumAdded,
        Kind::EnumRemoved,
        Kind::EnumValueAdded,
        Kind::EnumValueRemoved,
        Kind::EnumValuesReordered,
        Kind::DomainAdded,
        Kind::DomainRemoved,
        Kind::DomainChanged,
        Kind::SequenceAdded,
        Kind::SequenceRemoved,
        Kind::SequenceChanged,
        Kind::SequenceOwnerChanged,
        Kind::TableAdded,
        Kind::TableRemoved,
        Kind::TableRenamed,
        Kind::TablePersistenceChanged,
        Kind::TableRlsChanged,
        Kind::TableRlsForceChanged,
        Kind::TableReplicaIdentityChanged,
        Kind::TablePartitioningChanged,
        Kind::PartitionAttached,
        Kind::PartitionDetached,
        Kind::TableInheritsChanged,
        Kind::ColumnAdded,
        Kind::ColumnRemoved,
        Kind::ColumnRenamed,
        Kind::ColumnTypeChanged,
        Kind::ColumnNullabilityChanged,
        Kind::ColumnDefaultChanged,
        Kind::ColumnCollationChanged,
        Kind::ColumnGeneratedChanged,
        Kind::ColumnIdentityChanged,
        Kind::ColumnIdentityOptionsChanged,
        Kind::IndexAdded,
        Kind::IndexRemoved,
        Kind::IndexChanged,
        Kind::ConstraintAdded,
        Kind::ConstraintRemoved,
        Kind::ConstraintChanged,
        Kind::ViewAdded,
        Kind::ViewRemoved,
        Kind::ViewChanged,
        Kind::MaterializedViewAdded,
        Kind::MaterializedViewRemoved,
        Kind::MaterializedViewChanged,
        Kind::FunctionAdded,
        Kind::FunctionRemoved,
        Kind::FunctionChanged,
        Kind::TriggerAdded,
        Kind::TriggerRemoved,
        Kind::TriggerChanged,
        Kind::PolicyAdded,
        Kind::PolicyRemoved,
        Kind::PolicyChanged,
        Kind::PrivilegeGranted,
        Kind::PrivilegeRevoked,
        Kind::PrivilegeGrantOptionChanged,
        Kind::CommentChanged,
    ];

    /// The word as the vocabulary spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SchemaAdded => "schema-added",
            Kind::SchemaRemoved => "schema-removed",
            Kind::ExtensionAdded => "extension-added",
            Kind::ExtensionRemoved => "extension-removed",
            Kind::ExtensionVersionChanged => "extension-version-changed",
            Kind::CollationAdded => "collation-added",
            Kind::CollationRemoved => "collation-removed",
            Kind::EnumAdded => "enum-added",
            Kind::EnumRemoved => "enum-removed",
            Kind::EnumValueAdded => "enum-value-added",
            Kind::EnumValueRemoved => "enum-value-removed",
            Kind::EnumValuesReordered => "enum-values-reordered",
            Kind::DomainAdded => "domain-added",
            Kind::DomainRemoved => "domain-removed",
            Kind::DomainChanged => "domain-changed",
            Kind::SequenceAdded => "sequence-added",
            Kind::SequenceRemoved => "sequence-removed",
            Kind::SequenceChanged => "sequence-changed",
            Kind::SequenceOwnerChanged => "sequence-owner-changed",
            Kind::TableAdded => "table-added",
            Kind::TableRemoved => "table-removed",
            Kind::TableRenamed => "table-renamed",
            Kind::TablePersistenceChanged => "table-persistence-changed",
            Kind::TableRlsChanged => "table-rls-changed",
            Kind::TableRlsForceChanged => "table-rls-force-changed",
            Kind::TableReplicaIdentityChanged => "table-replica-identity-changed",
            Kind::TablePartitioningChanged => "table-partitioning-changed",
            Kind::PartitionAttached => "partition-attached",
            Kind::PartitionDetached => "partition-detached",
            Kind::TableInheritsChanged => "table-inherits-changed",
            Kind::ColumnAdded => "column-added",
            Kind::ColumnRemoved => "column-removed",
            Kind::ColumnRenamed => "column-renamed",
            Kind::ColumnTypeChanged => "column-type-changed",
            Kind::ColumnNullabilityChanged => "column-nullability-changed",
            Kind::ColumnDefaultChanged => "column-default-changed",
            Kind::ColumnCollationChanged => "column-collation-changed",
            Kind::ColumnGeneratedChanged => "column-generated-changed",
            Kind::ColumnIdentityChanged => "column-identity-changed",
            Kind::ColumnIdentityOptionsChanged => "column-identity-options-changed",
            Kind::IndexAdded => "index-added",
            Kind::IndexRemoved => "index-removed",
            Kind::IndexChanged => "index-changed",
            Kind::ConstraintAdded => "constraint-added",
            Kind::ConstraintRemoved => "constraint-removed",
            Kind::ConstraintChanged => "constraint-changed",
            Kind::ViewAdded => "view-added",
            Kind::ViewRemoved => "view-removed",
            Kind::ViewChanged => "view-changed",
            Kind::MaterializedViewAdded => "materialized-view-added",
            Kind::MaterializedViewRemoved => "materialized-view-removed",
            Kind::MaterializedViewChanged => "materialized-view-changed",
            Kind::FunctionAdded => "function-added",
            Kind::FunctionRemoved => "function-removed",
            Kind::FunctionChanged => "function-changed",
            Kind::TriggerAdded => "trigger-added",
            Kind::TriggerRemoved => "trigger-removed",
            Kind::TriggerChanged => "trigger-changed",
            Kind::PolicyAdded => "policy-added",
            Kind::PolicyRemoved => "policy-removed",
            Kind::PolicyChanged => "policy-changed",
            Kind::PrivilegeGranted => "privilege-granted",
            Kind::PrivilegeRevoked => "privilege-revoked",
            Kind::PrivilegeGrantOptionChanged => "privilege-grant-option-changed",
            Kind::CommentChanged => "comment-changed",
        }
    }

    pub fn parse(word: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == word)
    }

    /// The kinds that can be breaking (compare-vocabulary.md, "Breaking lines").
    pub const BREAKABLE: &'static [Kind] = &[
        Kind::TableRemoved,
        Kind::ColumnRemoved,
        Kind::ColumnTypeChanged,
        Kind::EnumValueRemoved,
        Kind::ColumnNullabilityChanged,
        Kind::TableRenamed,
        Kind::ColumnRenamed,
    ];
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What the policy does with a breaking change (DESIGN.md: `abort`, `warn` or `allow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Abort,
    Warn,
    Allow,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "abort" => Some(Action::Abort),
            "warn" => Some(Action::Warn),
            "allow" => Some(Action::Allow),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Abort => "abort",
            Action::Warn => "warn",
            Action::Allow => "allow",
        }
    }
}

/// One difference. `line` is the vocabulary line; `object` the name it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub kind: Kind,
    pub object: String,
    pub line: String,
    pub breaking: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the policy does with it (breaking differences only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Action>,
}

impl Difference {
    /// A difference whose line is `<kind> <object>` followed by `rest` when given.
    pub fn new(kind: Kind, object: impl Into<String>, rest: Option<String>) -> Difference {
        let object = object.into();
        let line = match &rest {
            Some(r) if !r.is_empty() => format!("{kind} {object} {r}"),
            _ => format!("{kind} {object}"),
        };
        Difference {
            kind,
            object,
            line,
            breaking: false,
            reason: None,
            policy: None,
        }
    }

    pub fn breaking(mut self, reason: impl Into<String>) -> Difference {
        self.breaking = true;
        self.reason = Some(reason.into());
        self
    }

    /// `table-removed`: breaking.
    pub fn table_removed(object: &str) -> Difference {
        Difference::new(Kind::TableRemoved, object, None).breaking(
            "the table and all its rows would be dropped; code that still reads or writes it fails",
        )
    }

    /// `column-removed`: breaking.
    pub fn column_removed(object: &str) -> Difference {
        Difference::new(Kind::ColumnRemoved, object, None).breaking(
            "the column and its data would be dropped; running code that selects or inserts it fails",
        )
    }

    /// `table-renamed <s>.<old> -> <s>.<new>` (about the new name): breaking for running code,
    /// as lint rule BI02 rename-table says, but no row is lost.
    pub fn table_renamed(old: &str, new: &str) -> Difference {
        let mut d = Difference::new(Kind::TableRenamed, new, None);
        d.line = format!("{} {old} -> {new}", Kind::TableRenamed);
        d.breaking(
            "the table keeps its rows under the new name; code deployed before still uses the old name and fails until it is redeployed (BI02 rename-table)",
        )
    }

    /// `column-renamed <s>.<t>.<old> -> <new>` (about `<s>.<t>.<new>`; `<t>` is the table's
    /// name in source): breaking for running code, as lint rule BI01 rename-column says, but
    /// no value is lost.
    pub fn column_renamed(table: &str, old: &str, new: &str) -> Difference {
        let mut d = Difference::new(Kind::ColumnRenamed, format!("{table}.{new}"), None);
        d.line = format!("{} {table}.{old} -> {new}", Kind::ColumnRenamed);
        d.breaking(
            "the column keeps its values under the new name; code deployed before still uses the old name and fails until it is redeployed (BI01 rename-column)",
        )
    }

    /// `column-type-changed <old> -> <new>`: breaking unless the change is compatible.
    pub fn column_type_changed(object: &str, old: &str, new: &str) -> Difference {
        let d = Difference::new(
            Kind::ColumnTypeChanged,
            object,
            Some(format!("{old} -> {new}")),
        );
        match types::incompatibility(old, new) {
            None => d,
            Some(why) => d.breaking(why),
        }
    }

    /// `column-nullability-changed`: breaking when it becomes NOT NULL.
    pub fn column_nullability_changed(
        object: &str,
        old_not_null: bool,
        new_not_null: bool,
    ) -> Difference {
        let word = |nn: bool| if nn { "not-null" } else { "nullable" };
        let d = Difference::new(
            Kind::ColumnNullabilityChanged,
            object,
            Some(format!("{} -> {}", word(old_not_null), word(new_not_null))),
        );
        if !old_not_null && new_not_null {
            d.breaking("the column becomes NOT NULL: existing NULLs fail the change, and code that inserts NULL or omits the column starts failing")
        } else {
            d
        }
    }

    /// `enum-value-removed`: breaking.
    pub fn enum_value_removed(object: &str, label: &str) -> Difference {
        Difference::new(Kind::EnumValueRemoved, object, Some(label.to_string())).breaking(
            "rows holding the value cannot be kept, and code that writes it starts failing",
        )
    }

    /// The `breaking <line>` line of a breaking difference.
    pub fn breaking_line(&self) -> Option<String> {
        self.breaking.then(|| format!("breaking {}", self.line))
    }
}

/// Sort differences into a stable order: by object, then by kind, then by line.
pub fn sort(diffs: &mut [Difference]) {
    diffs.sort_by(|a, b| {
        a.object
            .cmp(&b.object)
            .then(a.kind.cmp(&b.kind))
            .then(a.line.cmp(&b.line))
    });
}

/// Which schemas are compared. System schemas (`pg_*`, `information_schema`) never are.
#[derive(Debug, Clone, Default)]
pub struct SchemaFilter {
    /// `--schema`: when not empty, only these.
    pub include: Vec<String>,
    /// `--exclude-schema`, plus pgship's own and the migration-state schema unless
    /// `--include-state`.
    pub exclude: Vec<String>,
}

impl SchemaFilter {
    pub fn allows(&self, schema: &str) -> bool {
        !is_system_schema(schema)
            && !self.exclude.iter().any(|s| s == schema)
            && (self.include.is_empty() || self.include.iter().any(|s| s == schema))
    }

    /// A SQL condition on the schema-name expression `col`, taking `$include` and `$exclude`
    /// as text[] bind parameters numbered `include` and `exclude`.
    pub fn sql(col: &str, include: usize, exclude: usize) -> String {
        format!(
            "({col} !~ '^pg_' AND {col} <> 'information_schema' AND {col} <> ALL(${exclude}::text[]) \
             AND (cardinality(${include}::text[]) = 0 OR {col} = ANY(${include}::text[])))"
        )
    }
}

pub fn is_system_schema(schema: &str) -> bool {
    schema.starts_with("pg_") || schema == "information_schema"
}

/// What the policy does with each breaking kind (`[policy.breaking]` in `pgship.toml`).
///
/// The seed's defaults: a removed table aborts, a removed column warns. The other breaking
/// kinds (renames included: no row is lost) warn by default too: they are reported and a
/// deployment proceeds unless configured to `abort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakingPolicy {
    pub actions: std::collections::BTreeMap<Kind, Action>,
}

impl Default for BreakingPolicy {
    fn default() -> Self {
        let mut actions = std::collections::BTreeMap::new();
        for &k in Kind::BREAKABLE {
            actions.insert(k, Action::Warn);
        }
        actions.insert(Kind::TableRemoved, Action::Abort);
        BreakingPolicy { actions }
    }
}

impl BreakingPolicy {
    /// The defaults overridden by `[policy.breaking]`; unknown kinds or actions are refused
    /// with the key's name.
    pub fn from_config(
        entries: &std::collections::BTreeMap<String, String>,
    ) -> Result<BreakingPolicy, String> {
        let mut p = BreakingPolicy::default();
        for (key, value) in entries {
            let kind = Kind::parse(key)
                .filter(|k| Kind::BREAKABLE.contains(k))
                .ok_or_else(|| {
                    format!(
                        "[policy.breaking] {key}: not a breaking kind (expected one of {})",
                        Kind::BREAKABLE
                            .iter()
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            let action = Action::parse(value).ok_or_else(|| {
                format!("[policy.breaking] {key} = \"{value}\": expected abort, warn or allow")
            })?;
            p.actions.insert(kind, action);
        }
        Ok(p)
    }

    /// Set `policy` on every breaking difference.
    pub fn apply(&self, diffs: &mut [Difference]) {
        for d in diffs.iter_mut().filter(|d| d.breaking) {
            d.policy = Some(*self.actions.get(&d.kind).unwrap_or(&Action::Warn));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_round_trips() {
        for &k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::ALL.len(), 65);
    }

    #[test]
    fn breaking_constructors() {
        let d = Difference::column_type_changed("public.t.c", "integer", "bigint");
        assert_eq!(d.line, "column-type-changed public.t.c integer -> bigint");
        assert!(!d.breaking);
        let d = Difference::column_type_changed("public.t.c", "bigint", "integer");
        assert!(d.breaking);
        assert_eq!(
            d.breaking_line().unwrap(),
            "breaking column-type-changed public.t.c bigint -> integer"
        );
        assert!(Difference::column_nullability_changed("public.t.c", false, true).breaking);
        assert!(!Difference::column_nullability_changed("public.t.c", true, false).breaking);
        assert!(Difference::table_removed("public.t").breaking);
        let d = Difference::table_renamed("public.a", "public.b");
        assert_eq!(
            (d.object.as_str(), d.line.as_str()),
            ("public.b", "table-renamed public.a -> public.b")
        );
        assert!(d.breaking);
        let d = Difference::column_renamed("public.b", "x", "y");
        assert_eq!(
            (d.object.as_str(), d.line.as_str()),
            ("public.b.y", "column-renamed public.b.x -> y")
        );
        assert!(d.breaking);
    }

    #[test]
    fn policy_defaults_and_overrides() {
        let mut diffs = vec![
            Difference::table_removed("public.a"),
            Difference::column_removed("public.b.c"),
            Difference::new(Kind::TableAdded, "public.n", None),
        ];
        BreakingPolicy::default().apply(&mut diffs);
        assert_eq!(diffs[0].policy, Some(Action::Abort));
        assert_eq!(diffs[1].policy, Some(Action::Warn));
        assert_eq!(diffs[2].policy, None);
        let mut renames = vec![
            Difference::table_renamed("public.a", "public.b"),
            Difference::column_renamed("public.b", "x", "y"),
        ];
        BreakingPolicy::default().apply(&mut renames);
        assert_eq!(
            renames[0].policy,
            Some(Action::Warn),
            "a rename loses no row"
        );
        assert_eq!(renames[1].policy, Some(Action::Warn));
        let mut cfg = std::collections::BTreeMap::new();
        cfg.insert("table-renamed".to_string(), "abort".to_string());
        cfg.insert("column-renamed".to_string(), "allow".to_string());
        BreakingPolicy::from_config(&cfg)
            .unwrap()
            .apply(&mut renames);
        assert_eq!(renames[0].policy, Some(Action::Abort));
        assert_eq!(renames[1].policy, Some(Action::Allow));
        let mut cfg = std::collections::BTreeMap::new();
        cfg.insert("column-removed".to_string(), "abort".to_string());
        let p = BreakingPolicy::from_config(&cfg).unwrap();
        p.apply(&mut diffs);
        assert_eq!(diffs[1].policy, Some(Action::Abort));
        cfg.insert("table-added".to_string(), "abort".to_string());
        assert!(
            BreakingPolicy::from_config(&cfg)
                .unwrap_err()
                .contains("table-added")
        );
        cfg.remove("table-added");
        cfg.insert("table-removed".to_string(), "explode".to_string());
        assert!(
            BreakingPolicy::from_config(&cfg)
                .unwrap_err()
                .contains("explode")
        );
    }

    #[test]
    fn schema_filter() {
        let f = SchemaFilter {
            include: vec![],
            exclude: vec!["drizzle".into(), "pgship".into()],
        };
        assert!(f.allows("public"));
        assert!(!f.allows("drizzle"));
        assert!(!f.allows("pg_catalog"));
        assert!(!f.allows("information_schema"));
        let f = SchemaFilter {
            include: vec!["app".into()],
            exclude: vec![],
        };
        assert!(f.allows("app") && !f.allows("public"));
    }
}
