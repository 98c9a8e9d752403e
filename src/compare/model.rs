//! The schema model: everything `compare` looks at, and nothing else, so that two models are
//! equal exactly when the diff finds no difference. Pure data: no IO.
//!
//! Objects are keyed by their vocabulary name (`schema.table`, `schema.index`, ...) in
//! ordered maps, so the model, its JSON and its fingerprint do not depend on OIDs or on the
//! order the catalog returned rows in. Only what the vocabulary can report is kept: owners,
//! tablespaces and statistics are not. Tables and columns also carry their catalog identity
//! ([`CatalogId`]) for recognising renames between two models of the same database; it is
//! neither serialized (so not in the fingerprint) nor compared.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    pub schemas: BTreeSet<String>,
    /// Extension name -> installed version.
    pub extensions: BTreeMap<String, String>,
    /// `schema.collation`.
    pub collations: BTreeSet<String>,
    /// `schema.type` -> labels in their sort order.
    pub enums: BTreeMap<String, Vec<String>>,
    pub domains: BTreeMap<String, Domain>,
    /// `schema.sequence` (identity sequences are part of their column).
    pub sequences: BTreeMap<String, Sequence>,
    /// Tables and partitioned tables, `schema.table`.
    pub tables: BTreeMap<String, Table>,
    /// Views and materialized views, `schema.view`.
    pub views: BTreeMap<String, View>,
    /// `schema.index`, including indexes behind constraints; not indexes cloned onto
    /// partitions from a partitioned index.
    pub indexes: BTreeMap<String, Index>,
    /// Functions and procedures, `schema.name(argtypes)`.
    pub functions: BTreeMap<String, Function>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    /// The domain's base type, default, NOT NULL, collation and CHECK constraints, as one
    /// normalized definition.
    pub definition: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceOptions {
    pub start: i64,
    pub increment: i64,
    pub max: i64,
    pub min: i64,
    pub cache: i64,
    pub cycle: bool,
}

impl SequenceOptions {
    /// `(attribute, value)` pairs in the vocabulary's order.
    pub fn fields(&self) -> [(&'static str, String); 6] {
        [
            ("start", self.start.to_string()),
            ("increment", self.increment.to_string()),
            ("max", self.max.to_string()),
            ("min", self.min.to_string()),
            ("cache", self.cache.to_string()),
            ("cycle", if self.cycle { "on" } else { "off" }.to_string()),
        ]
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    /// `format_type` of the sequence's data type.
    pub data_type: String,
    pub options: SequenceOptions,
    /// `schema.table.column` of the owning column (OWNED BY), if any.
    pub owner: Option<String>,
    pub privileges: Privileges,
}

/// Relation privileges for roles other than the owner: role -> PRIVILEGE -> grant option.
/// The role is `PUBLIC` for the public pseudo-role.
pub type Privileges = BTreeMap<String, BTreeMap<String, bool>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Identity {
    Always,
    ByDefault,
}

impl Identity {
    pub fn word(id: Option<Identity>) -> &'static str {
        match id {
            None => "none",
            Some(Identity::Always) => "always",
            Some(Identity::ByDefault) => "by-default",
        }
    }
}

/// Which object of its database a table or column is (`pg_class.oid`, `pg_attribute.attnum`),
/// whatever its name. It means nothing in another database, so it is left out of the JSON and
/// the fingerprint, and every two are equal: models are equal when their schemas are.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatalogId(pub Option<u32>);

impl PartialEq for CatalogId {
    fn eq(&self, _: &CatalogId) -> bool {
        true
    }
}

impl Eq for CatalogId {}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// `pg_attribute.attnum`: the same column across a rename, within one database.
    #[serde(skip)]
    pub attnum: CatalogId,
    /// `format_type(atttypid, atttypmod)` with `search_path = public`.
    pub data_type: String,
    pub not_null: bool,
    /// `pg_get_expr` of the default (not of a generation expression).
    pub default: Option<String>,
    pub identity: Option<Identity>,
    /// The identity sequence's options, when `identity` is set.
    pub identity_options: Option<SequenceOptions>,
    /// The generation expression of a generated column.
    pub generated: Option<String>,
    /// An explicit collation differing from the type's.
    pub collation: Option<String>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConstraintKind {
    PrimaryKey,
    ForeignKey,
    Unique,
    Check,
    Exclusion,
}

impl ConstraintKind {
    pub fn from_contype(c: &str) -> Option<ConstraintKind> {
        Some(match c {
            "p" => ConstraintKind::PrimaryKey,
            "f" => ConstraintKind::ForeignKey,
            "u" => ConstraintKind::Unique,
            "c" => ConstraintKind::Check,
            "x" => ConstraintKind::Exclusion,
            _ => return None,
        })
    }

    pub fn word(self) -> &'static str {
        match self {
            ConstraintKind::PrimaryKey => "primary-key",
            ConstraintKind::ForeignKey => "foreign-key",
            ConstraintKind::Unique => "unique",
            ConstraintKind::Check => "check",
            ConstraintKind::Exclusion => "exclusion",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    pub kind: ConstraintKind,
    /// `pg_get_constraintdef`.
    pub definition: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaIdentity {
    #[default]
    Default,
    Full,
    Nothing,
    Index,
}

impl ReplicaIdentity {
    pub fn from_char(c: &str) -> ReplicaIdentity {
        match c {
            "f" => ReplicaIdentity::Full,
            "n" => ReplicaIdentity::Nothing,
            "i" => ReplicaIdentity::Index,
            _ => ReplicaIdentity::Default,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            ReplicaIdentity::Default => "default",
            ReplicaIdentity::Full => "full",
            ReplicaIdentity::Nothing => "nothing",
            ReplicaIdentity::Index => "index",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// `schema.table` of the partitioned parent.
    pub parent: String,
    /// `pg_get_expr(relpartbound)`: `FOR VALUES FROM (...) TO (...)`.
    pub bound: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// `pg_class.oid`: the same table across a rename, within one database.
    #[serde(skip)]
    pub oid: CatalogId,
    pub unlogged: bool,
    /// `pg_get_partkeydef` of a partitioned table.
    pub partition_key: Option<String>,
    pub partition_of: Option<Partition>,
    /// INHERITS parents (not partition parents), in declaration order.
    pub inherits: Vec<String>,
    pub rls: bool,
    pub force_rls: bool,
    pub replica_identity: ReplicaIdentity,
    pub columns: BTreeMap<String, Column>,
    pub constraints: BTreeMap<String, Constraint>,
    /// Trigger name -> `pg_get_triggerdef` and its enabled state.
    pub triggers: BTreeMap<String, String>,
    /// Policy name -> its normalized definition.
    pub policies: BTreeMap<String, String>,
    pub privileges: Privileges,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub materialized: bool,
    /// `pg_get_viewdef`.
    pub definition: String,
    pub triggers: BTreeMap<String, String>,
    pub privileges: Privileges,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// `schema.table` or `schema.view` it is on.
    pub table: String,
    /// `pg_get_indexdef`.
    pub definition: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Function {
    pub procedure: bool,
    /// `pg_get_functiondef`: signature, body, language, volatility and other properties.
    pub definition: String,
    pub comment: Option<String>,
}

impl Model {
    /// A stable hash of the model: SHA-256 of its canonical JSON (ordered maps, no OIDs).
    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_vec(self).expect("the model serializes");
        crate::util::sha256_hex(&json)
    }

    /// How many objects the model holds (for summaries).
    pub fn object_count(&self) -> usize {
        self.schemas.len()
            + self.extensions.len()
            + self.collations.len()
            + self.enums.len()
            + self.domains.len()
            + self.sequences.len()
            + self.tables.len()
            + self.views.len()
            + self.indexes.len()
            + self.functions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_insertion_order_and_sees_changes() {
        let mut a = Model::default();
        a.schemas.insert("public".into());
        a.schemas.insert("other".into());
        a.enums
            .insert("public.mood".into(), vec!["sad".into(), "happy".into()]);
        let mut b = Model::default();
        b.enums
            .insert("public.mood".into(), vec!["sad".into(), "happy".into()]);
        b.schemas.insert("other".into());
        b.schemas.insert("public".into());
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.enums
            .insert("public.mood".into(), vec!["happy".into(), "sad".into()]);
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
    }

    #[test]
    fn catalog_ids_stay_out_of_the_fingerprint_and_equality() {
        let mut a = Model::default();
        a.tables
            .insert("public.t".into(), testing::table(&[("id", "integer")]));
        let mut b = a.clone();
        let t = b.tables.get_mut("public.t").unwrap();
        t.oid = CatalogId(Some(16384));
        t.columns.get_mut("id").unwrap().attnum = CatalogId(Some(1));
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a, b);
        assert!(!serde_json::to_string(&b).unwrap().contains("16384"));
    }
}

/// Builders for tests of the modules that work on models.
#[cfg(test)]
pub mod testing {
    use super::{Column, Table};

    /// A plain table with `(name, type)` columns.
    pub fn table(cols: &[(&str, &str)]) -> Table {
        Table {
            columns: cols
                .iter()
                .map(|(n, t)| {
                    (
                        n.to_string(),
                        Column {
                            data_type: t.to_string(),
                            ..Column::default()
                        },
                    )
                })
                .collect(),
            ..Table::default()
        }
    }
}
