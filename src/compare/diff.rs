//! The catalog engine: two [`Model`]s in, the differences out, in the vocabulary of
//! compare-vocabulary.md with its normalization rules:
//!
//! 1. the parts of an added or removed table, view or materialized view get no lines;
//! 2. sequences are always listed, identity sequences never (they are their column's);
//! 3. indexes and constraints are separate objects;
//! 4. side effects on columns are listed (a new primary key makes its columns NOT NULL);
//! 5. same name with another definition is `*-changed`, another kind is removed plus added;
//! 6. a partition's or INHERITS child's column change that is exactly its parent's is implied;
//! 7. privileges are compared for roles other than the owner.
//!
//! `source` is what would be deployed, `target` what it would be deployed onto: `*-added`
//! is in source only, and `X -> Y` reads "target has X, source has Y".

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Client;

use super::model::*;
use super::renames::Renames;
use super::{Difference, Kind, SchemaFilter};
use crate::db::DbError;

/// Introspect both databases (concurrently) and diff them.
pub async fn catalog_compare(
    source: &Client,
    target: &Client,
    filter: &SchemaFilter,
) -> Result<Vec<Difference>, DbError> {
    let (s, t) = tokio::try_join!(
        super::introspect::introspect(source, filter),
        super::introspect::introspect(target, filter)
    )?;
    Ok(diff(&s, &t))
}

fn line(kind: Kind, object: &str, line: String) -> Difference {
    let mut d = Difference::new(kind, object, None);
    d.line = line;
    d
}

fn none_or(v: Option<&str>) -> &str {
    v.unwrap_or("none")
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// Keys only in source, keys only in target, and keys in both with both values.
type Split<'a, K, V> = (Vec<&'a K>, Vec<&'a K>, Vec<(&'a K, &'a V, &'a V)>);

/// Added, removed and common keys of two maps.
fn split<'a, K: Ord, V>(source: &'a BTreeMap<K, V>, target: &'a BTreeMap<K, V>) -> Split<'a, K, V> {
    let added = source.keys().filter(|k| !target.contains_key(*k)).collect();
    let removed = target.keys().filter(|k| !source.contains_key(*k)).collect();
    let common = source
        .iter()
        .filter_map(|(k, s)| target.get(k).map(|t| (k, s, t)))
        .collect();
    (added, removed, common)
}

fn sets<'a, K: Ord>(source: &'a BTreeSet<K>, target: &'a BTreeSet<K>) -> (Vec<&'a K>, Vec<&'a K>) {
    (
        source.difference(target).collect(),
        target.difference(source).collect(),
    )
}

/// A line `<kind> <name>` for each name.
fn push_names<K: std::fmt::Display>(out: &mut Vec<Difference>, names: Vec<&K>, kind: Kind) {
    out.extend(
        names
            .into_iter()
            .map(|n| Difference::new(kind, n.to_string(), None)),
    );
}

/// Everything that would change in `target` if `source` were deployed onto it, tables and
/// columns matched by name (a rename is a removal plus an addition).
pub fn diff(source: &Model, target: &Model) -> Vec<Difference> {
    diff_with(source, target, &Renames::default())
}

/// [`diff`], with the tables and columns of `renames` matched across their new names: a
/// `table-renamed` or `column-renamed` line each (not a removal plus an addition), and the
/// other changes to them under their new names. A partition's or INHERITS child's column
/// rename that is its parent's is implied by the parent's line.
pub fn diff_with(source: &Model, target: &Model, renames: &Renames) -> Vec<Difference> {
    if renames.is_empty() {
        return diff_by_name(source, target);
    }
    let mut out = diff_by_name(source, &renames.apply(target));
    let inherited = |(table, old): &(String, String), new: &String| {
        let Some(t) = target.tables.get(table) else {
            return false;
        };
        t.partition_of
            .iter()
            .map(|p| &p.parent)
            .chain(&t.inherits)
            .any(|parent| renames.columns.get(&(parent.clone(), old.clone())) == Some(new))
    };
    let implied: Vec<(String, String)> = renames
        .columns
        .iter()
        .filter(|(k, new)| inherited(k, new))
        .map(|(k, _)| k.clone())
        .collect();
    let mut own = renames.clone();
    own.columns.retain(|k, _| !implied.contains(k));
    out.extend(own.differences());
    super::sort(&mut out);
    out
}

fn diff_by_name(source: &Model, target: &Model) -> Vec<Difference> {
    let mut out = Vec::new();
    let (added, removed) = sets(&source.schemas, &target.schemas);
    push_names(&mut out, added, Kind::SchemaAdded);
    push_names(&mut out, removed, Kind::SchemaRemoved);

    let (added, removed, common) = split(&source.extensions, &target.extensions);
    push_names(&mut out, added, Kind::ExtensionAdded);
    push_names(&mut out, removed, Kind::ExtensionRemoved);
    for (name, s, t) in common {
        if s != t {
            out.push(Difference::new(
                Kind::ExtensionVersionChanged,
                name,
                Some(format!("{t} -> {s}")),
            ));
        }
    }

    let (added, removed) = sets(&source.collations, &target.collations);
    push_names(&mut out, added, Kind::CollationAdded);
    push_names(&mut out, removed, Kind::CollationRemoved);

    enums(source, target, &mut out);

    let (added, removed, common) = split(&source.domains, &target.domains);
    push_names(&mut out, added, Kind::DomainAdded);
    push_names(&mut out, removed, Kind::DomainRemoved);
    for (name, s, t) in common {
        if s != t {
            out.push(Difference::new(Kind::DomainChanged, name, None));
        }
    }

    sequences(source, target, &mut out);
    tables(source, target, &mut out);
    views(source, target, &mut out);
    indexes(source, target, &mut out);
    functions(source, target, &mut out);
    super::sort(&mut out);
    out
}

fn enums(source: &Model, target: &Model, out: &mut Vec<Difference>) {
    let (added, removed, common) = split(&source.enums, &target.enums);
    push_names(out, added, Kind::EnumAdded);
    push_names(out, removed, Kind::EnumRemoved);
    for (name, s, t) in common {
        for label in s.iter().filter(|l| !t.contains(l)) {
            out.push(Difference::new(
                Kind::EnumValueAdded,
                name,
                Some(label.clone()),
            ));
        }
        for label in t.iter().filter(|l| !s.contains(l)) {
            out.push(Difference::enum_value_removed(name, label));
        }
        let s_common: Vec<&String> = s.iter().filter(|l| t.contains(l)).collect();
        let t_common: Vec<&String> = t.iter().filter(|l| s.contains(l)).collect();
        if s_common != t_common {
            out.push(Difference::new(Kind::EnumValuesReordered, name, None));
        }
    }
}

fn options_changes(
    kind: Kind,
    object: &str,
    s: &SequenceOptions,
    t: &SequenceOptions,
    out: &mut Vec<Difference>,
) {
    for ((attr, sv), (_, tv)) in s.fields().into_iter().zip(t.fields()) {
        if sv != tv {
            out.push(Difference::new(
                kind,
                object,
                Some(format!("{attr} {tv} -> {sv}")),
            ));
        }
    }
}

fn sequences(source: &Model, target: &Model, out: &mut Vec<Difference>) {
    let (added, removed, common) = split(&source.sequences, &target.sequences);
    push_names(out, added, Kind::SequenceAdded);
    push_names(out, removed, Kind::SequenceRemoved);
    for (name, s, t) in common {
        if s.data_type != t.data_type {
            out.push(Difference::new(
                Kind::SequenceChanged,
                name,
                Some(format!("type {} -> {}", t.data_type, s.data_type)),
            ));
        }
        options_changes(Kind::SequenceChanged, name, &s.options, &t.options, out);
        if s.owner != t.owner {
            out.push(Difference::new(
                Kind::SequenceOwnerChanged,
                name,
                Some(format!(
                    "{} -> {}",
                    none_or(t.owner.as_deref()),
                    none_or(s.owner.as_deref())
                )),
            ));
        }
        privileges(name, &s.privileges, &t.privileges, out);
    }
}

fn privileges(rel: &str, s: &Privileges, t: &Privileges, out: &mut Vec<Difference>) {
    let empty = BTreeMap::new();
    let roles: BTreeSet<&String> = s.keys().chain(t.keys()).collect();
    for role in roles {
        let sp = s.get(role).unwrap_or(&empty);
        let tp = t.get(role).unwrap_or(&empty);
        for (privilege, &sg) in sp {
            match tp.get(privilege) {
                None => out.push(line(
                    Kind::PrivilegeGranted,
                    rel,
                    format!(
                        "privilege-granted {rel} {role} {privilege}{}",
                        if sg { " with-grant-option" } else { "" }
                    ),
                )),
                Some(&tg) if tg != sg => out.push(line(
                    Kind::PrivilegeGrantOptionChanged,
                    rel,
                    format!(
                        "privilege-grant-option-changed {rel} {role} {privilege} {} -> {}",
                        on_off(tg),
                        on_off(sg)
                    ),
                )),
                Some(_) => {}
            }
        }
        for privilege in tp.keys().filter(|p| !sp.contains_key(*p)) {
            out.push(line(
                Kind::PrivilegeRevoked,
                rel,
                format!("privilege-revoked {rel} {role} {privilege}"),
            ));
        }
    }
}

fn comment(
    what: &str,
    name: &str,
    s: &Option<String>,
    t: &Option<String>,
    out: &mut Vec<Difference>,
) {
    if s != t {
        out.push(line(
            Kind::CommentChanged,
            name,
            format!("comment-changed {what} {name}"),
        ));
    }
}

fn named_defs(
    kinds: (Kind, Kind, Kind),
    parent: &str,
    s: &BTreeMap<String, String>,
    t: &BTreeMap<String, String>,
    out: &mut Vec<Difference>,
) {
    let (added, removed, common) = split(s, t);
    out.extend(
        added
            .into_iter()
            .map(|n| Difference::new(kinds.0, format!("{parent}.{n}"), None)),
    );
    out.extend(
        removed
            .into_iter()
            .map(|n| Difference::new(kinds.1, format!("{parent}.{n}"), None)),
    );
    for (n, sd, td) in common {
        if sd != td {
            out.push(Difference::new(kinds.2, format!("{parent}.{n}"), None));
        }
    }
}

fn columns(name: &str, s: &Table, t: &Table, out: &mut Vec<Difference>) {
    let (added, removed, common) = split(&s.columns, &t.columns);
    for c in added {
        out.push(Difference::new(
            Kind::ColumnAdded,
            format!("{name}.{c}"),
            Some(s.columns[c].data_type.clone()),
        ));
    }
    for c in removed {
        out.push(Difference::column_removed(&format!("{name}.{c}")));
    }
    for (c, sc, tc) in common {
        let obj = format!("{name}.{c}");
        if sc.data_type != tc.data_type {
            out.push(Difference::column_type_changed(
                &obj,
                &tc.data_type,
                &sc.data_type,
            ));
        }
        if sc.not_null != tc.not_null {
            out.push(Difference::column_nullability_changed(
                &obj,
                tc.not_null,
                sc.not_null,
            ));
        }
        // `<kind> <obj> <old|none> -> <new|none>` for optional texts that differ.
        let optional = [
            (Kind::ColumnDefaultChanged, &tc.default, &sc.default),
            (Kind::ColumnCollationChanged, &tc.collation, &sc.collation),
            (Kind::ColumnGeneratedChanged, &tc.generated, &sc.generated),
        ];
        for (kind, old, new) in optional {
            if old != new {
                out.push(Difference::new(
                    kind,
                    &obj,
                    Some(format!(
                        "{} -> {}",
                        none_or(old.as_deref()),
                        none_or(new.as_deref())
                    )),
                ));
            }
        }
        if sc.identity != tc.identity {
            out.push(Difference::new(
                Kind::ColumnIdentityChanged,
                &obj,
                Some(format!(
                    "{} -> {}",
                    Identity::word(tc.identity),
                    Identity::word(sc.identity)
                )),
            ));
        }
        if let (Some(so), Some(to)) = (&sc.identity_options, &tc.identity_options) {
            options_changes(Kind::ColumnIdentityOptionsChanged, &obj, so, to, out);
        }
        comment("column", &obj, &sc.comment, &tc.comment, out);
    }
}

fn tables(source: &Model, target: &Model, out: &mut Vec<Difference>) {
    let (added, removed, common) = split(&source.tables, &target.tables);
    push_names(out, added, Kind::TableAdded);
    out.extend(removed.into_iter().map(|t| Difference::table_removed(t)));
    // Per-table lines first, so that children's lines implied by a parent's can be dropped.
    let mut per_table: BTreeMap<&str, Vec<Difference>> = BTreeMap::new();
    for (name, s, t) in &common {
        let mut d = Vec::new();
        if s.unlogged != t.unlogged {
            let w = |u: bool| if u { "unlogged" } else { "logged" };
            d.push(Difference::new(
                Kind::TablePersistenceChanged,
                *name,
                Some(format!("{} -> {}", w(t.unlogged), w(s.unlogged))),
            ));
        }
        if s.rls != t.rls {
            d.push(Difference::new(
                Kind::TableRlsChanged,
                *name,
                Some(format!("{} -> {}", on_off(t.rls), on_off(s.rls))),
            ));
        }
        if s.force_rls != t.force_rls {
            d.push(Difference::new(
                Kind::TableRlsForceChanged,
                *name,
                Some(format!(
                    "{} -> {}",
                    on_off(t.force_rls),
                    on_off(s.force_rls)
                )),
            ));
        }
        if s.replica_identity != t.replica_identity {
            d.push(Difference::new(
                Kind::TableReplicaIdentityChanged,
                *name,
                Some(format!(
                    "{} -> {}",
                    t.replica_identity.word(),
                    s.replica_identity.word()
                )),
            ));
        }
        if s.partition_key != t.partition_key {
            d.push(Difference::new(
                Kind::TablePartitioningChanged,
                *name,
                Some(format!(
                    "{} -> {}",
                    none_or(t.partition_key.as_deref()),
                    none_or(s.partition_key.as_deref())
                )),
            ));
        }
        if s.partition_of != t.partition_of {
            if let Some(p) = &t.partition_of {
                d.push(line(
                    Kind::PartitionDetached,
                    name,
                    format!("partition-detached {} {name}", p.parent),
                ));
            }
            if let Some(p) = &s.partition_of {
                d.push(line(
                    Kind::PartitionAttached,
                    name,
                    format!("partition-attached {} {name} {}", p.parent, p.bound),
                ));
            }
        }
        if s.inherits != t.inherits {
            let w = |v: &Vec<String>| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.join(", ")
                }
            };
            d.push(Difference::new(
                Kind::TableInheritsChanged,
                *name,
                Some(format!("{} -> {}", w(&t.inherits), w(&s.inherits))),
            ));
        }
        columns(name, s, t, &mut d);
        // Constraints: same name and kind with another definition is changed; another kind
        // is removed plus added.
        let (c_added, c_removed, c_common) = split(&s.constraints, &t.constraints);
        let con = |kind: Kind, c: &str, k: ConstraintKind| {
            Difference::new(kind, format!("{name}.{c}"), Some(k.word().to_string()))
        };
        for c in c_added {
            d.push(con(Kind::ConstraintAdded, c, s.constraints[c].kind));
        }
        for c in c_removed {
            d.push(con(Kind::ConstraintRemoved, c, t.constraints[c].kind));
        }
        for (c, sc, tc) in c_common {
            if sc.kind != tc.kind {
                d.push(con(Kind::ConstraintRemoved, c, tc.kind));
                d.push(con(Kind::ConstraintAdded, c, sc.kind));
            } else if sc.definition != tc.definition {
                d.push(con(Kind::ConstraintChanged, c, sc.kind));
            }
        }
        named_defs(
            (
                Kind::TriggerAdded,
                Kind::TriggerRemoved,
                Kind::TriggerChanged,
            ),
            name,
            &s.triggers,
            &t.triggers,
            &mut d,
        );
        named_defs(
            (Kind::PolicyAdded, Kind::PolicyRemoved, Kind::PolicyChanged),
            name,
            &s.policies,
            &t.policies,
            &mut d,
        );
        privileges(name, &s.privileges, &t.privileges, &mut d);
        comment("table", name, &s.comment, &t.comment, &mut d);
        per_table.insert(name.as_str(), d);
    }
    // Rule 6: a child's column line that is exactly an ancestor's line (parent, or the
    // parent's parent, ...) is implied by it.
    let parents_of = |name: &str| -> BTreeSet<String> {
        let mut p = BTreeSet::new();
        for m in [source, target] {
            if let Some(t) = m.tables.get(name) {
                if let Some(part) = &t.partition_of {
                    p.insert(part.parent.clone());
                }
                p.extend(t.inherits.iter().cloned());
            }
        }
        p
    };
    let raw = per_table.clone();
    for (name, _, _) in &common {
        let mut ancestors = BTreeSet::new();
        let mut todo: Vec<String> = parents_of(name).into_iter().collect();
        while let Some(a) = todo.pop() {
            if a != **name && ancestors.insert(a.clone()) {
                todo.extend(parents_of(&a));
            }
        }
        let implied: BTreeSet<String> = ancestors
            .iter()
            .filter_map(|a| raw.get(a.as_str()))
            .flatten()
            .filter(|d| is_column_kind(d.kind))
            .filter_map(|d| {
                let parent = d.object.rsplit_once('.')?.0;
                let column = &d.object[parent.len()..];
                Some(d.line.replacen(
                    &format!(" {parent}{column}"),
                    &format!(" {name}{column}"),
                    1,
                ))
            })
            .collect();
        if let Some(lines) = per_table.get_mut(name.as_str()) {
            lines.retain(|d| !(is_column_kind(d.kind) && implied.contains(&d.line)));
        }
    }
    out.extend(per_table.into_values().flatten());
}

fn is_column_kind(k: Kind) -> bool {
    matches!(
        k,
        Kind::ColumnAdded
            | Kind::ColumnRemoved
            | Kind::ColumnTypeChanged
            | Kind::ColumnNullabilityChanged
            | Kind::ColumnDefaultChanged
            | Kind::ColumnCollationChanged
            | Kind::ColumnGeneratedChanged
            | Kind::ColumnIdentityChanged
            | Kind::ColumnIdentityOptionsChanged
    )
}

fn views(source: &Model, target: &Model, out: &mut Vec<Difference>) {
    let words = |m: bool| {
        if m {
            (
                Kind::MaterializedViewAdded,
                Kind::MaterializedViewRemoved,
                Kind::MaterializedViewChanged,
                "materialized-view",
            )
        } else {
            (
                Kind::ViewAdded,
                Kind::ViewRemoved,
                Kind::ViewChanged,
                "view",
            )
        }
    };
    for (name, s) in &source.views {
        match target.views.get(name) {
            Some(t) if t.materialized == s.materialized => {
                let (_, _, changed, what) = words(s.materialized);
                if s.definition != t.definition {
                    out.push(Difference::new(changed, name, None));
                }
                named_defs(
                    (
                        Kind::TriggerAdded,
                        Kind::TriggerRemoved,
                        Kind::TriggerChanged,
                    ),
                    name,
                    &s.triggers,
                    &t.triggers,
                    out,
                );
                privileges(name, &s.privileges, &t.privileges, out);
                comment(what, name, &s.comment, &t.comment, out);
            }
            Some(t) => {
                out.push(Difference::new(words(t.materialized).1, name, None));
                out.push(Difference::new(words(s.materialized).0, name, None));
            }
            None => out.push(Difference::new(words(s.materialized).0, name, None)),
        }
    }
    for (name, t) in &target.views {
        if !source.views.contains_key(name) {
            out.push(Difference::new(words(t.materialized).1, name, None));
        }
    }
}

/// The kind of relation `name` is in `m`: table, view or materialized view.
fn relation_kind(m: &Model, name: &str) -> Option<&'static str> {
    if m.tables.contains_key(name) {
        Some("table")
    } else {
        m.views
            .get(name)
            .map(|v| if v.materialized { "matview" } else { "view" })
    }
}

fn indexes(source: &Model, target: &Model, out: &mut Vec<Difference>) {
    // An index's relation exists on both sides with the same kind: otherwise its lines are
    // implied by the relation's own.
    let kept = |table: &str| {
        relation_kind(source, table).is_some()
            && relation_kind(source, table) == relation_kind(target, table)
    };
    let (added, removed, common) = split(&source.indexes, &target.indexes);
    for i in added {
        if kept(&source.indexes[i].table) {
            out.push(Difference::new(Kind::IndexAdded, i, None));
        }
    }
    for i in removed {
        if kept(&target.indexes[i].table) {
            out.push(Difference::new(Kind::IndexRemoved, i, None));
        }
    }
    for (i, s, t) in common {
        match (kept(&s.table), kept(&t.table)) {
            (true, true) => {
                if s.definition != t.definition {
                    out.push(Difference::new(Kind::IndexChanged, i, None));
                }
                comment("index", i, &s.comment, &t.comment, out);
            }
            (true, false) => out.push(Difference::new(Kind::IndexAdded, i, None)),
            (false, true) => out.push(Difference::new(Kind::IndexRemoved, i, None)),
            (false, false) => {}
        }
    }
}

fn functions(source: &Model, target: &Model, out: &mut Vec<Difference>) {
    let (added, removed, common) = split(&source.functions, &target.functions);
    push_names(out, added, Kind::FunctionAdded);
    push_names(out, removed, Kind::FunctionRemoved);
    for (name, s, t) in common {
        if s.definition != t.definition || s.procedure != t.procedure {
            out.push(Difference::new(Kind::FunctionChanged, name, None));
        }
        comment("function", name, &s.comment, &t.comment, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        crate::compare::model::testing::table(&[])
    }

    fn col(t: &str, not_null: bool) -> Column {
        Column {
            data_type: t.into(),
            not_null,
            ..Default::default()
        }
    }

    fn lines(s: &Model, t: &Model) -> Vec<String> {
        let mut out = Vec::new();
        for d in diff(s, t) {
            out.push(d.line.clone());
            out.extend(d.breaking_line());
        }
        out.sort();
        out
    }

    #[test]
    fn identical_models_give_nothing_and_equal_fingerprints() {
        let mut m = Model::default();
        m.schemas.insert("public".into());
        let mut t = table();
        t.columns.insert("id".into(), col("integer", true));
        m.tables.insert("public.t".into(), t);
        assert!(diff(&m, &m.clone()).is_empty());
        assert_eq!(m.fingerprint(), m.clone().fingerprint());
    }

    #[test]
    fn parts_of_added_and_removed_tables_are_implied() {
        let mut s = Model::default();
        let mut t = table();
        t.columns.insert("id".into(), col("integer", true));
        t.comment = Some("x".into());
        s.tables.insert("public.new".into(), t);
        s.indexes.insert(
            "public.new_pkey".into(),
            Index {
                table: "public.new".into(),
                definition: "CREATE UNIQUE INDEX new_pkey ON public.new USING btree (id)".into(),
                comment: None,
            },
        );
        s.sequences.insert(
            "public.new_id_seq".into(),
            Sequence {
                data_type: "integer".into(),
                owner: Some("public.new.id".into()),
                ..Default::default()
            },
        );
        let t = Model::default();
        assert_eq!(
            lines(&s, &t),
            vec!["sequence-added public.new_id_seq", "table-added public.new"]
        );
        assert_eq!(
            lines(&t, &s),
            vec![
                "breaking table-removed public.new",
                "sequence-removed public.new_id_seq",
                "table-removed public.new"
            ]
        );
    }

    #[test]
    fn a_child_column_change_equal_to_the_parents_is_implied() {
        let mut target = Model::default();
        let mut parent = table();
        parent.partition_key = Some("RANGE (at)".into());
        parent.columns.insert("at".into(), col("date", true));
        let mut child = table();
        child.partition_of = Some(Partition {
            parent: "public.p".into(),
            bound: "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')".into(),
        });
        child.columns.insert("at".into(), col("date", true));
        target.tables.insert("public.p".into(), parent.clone());
        target.tables.insert("public.p_2024".into(), child.clone());
        let mut source = target.clone();
        for t in ["public.p", "public.p_2024"] {
            let tb = source.tables.get_mut(t).unwrap();
            tb.columns.insert("note".into(), col("text", false));
        }
        // Only in the child, and so not implied:
        source
            .tables
            .get_mut("public.p_2024")
            .unwrap()
            .columns
            .insert("extra".into(), col("text", false));
        assert_eq!(
            lines(&source, &target),
            vec![
                "column-added public.p.note text",
                "column-added public.p_2024.extra text"
            ]
        );
    }

    #[test]
    fn kind_changes_are_removed_plus_added() {
        let mut target = Model::default();
        target.tables.insert("public.x".into(), table());
        target.views.insert(
            "public.v".into(),
            View {
                materialized: false,
                definition: " SELECT 1;".into(),
                triggers: BTreeMap::new(),
                privileges: Privileges::new(),
                comment: None,
            },
        );
        let mut source = Model::default();
        let mut v = target.views["public.v"].clone();
        source.views.insert("public.x".into(), v.clone());
        v.materialized = true;
        source.views.insert("public.v".into(), v);
        assert_eq!(
            lines(&source, &target),
            vec![
                "breaking table-removed public.x",
                "materialized-view-added public.v",
                "table-removed public.x",
                "view-added public.x",
                "view-removed public.v",
            ]
        );
    }

    #[test]
    fn sequence_options_privileges_and_enums() {
        let mut target = Model::default();
        target
            .sequences
            .insert("public.s".into(), Sequence::default());
        target
            .enums
            .insert("public.e".into(), vec!["a".into(), "b".into(), "c".into()]);
        let mut t = table();
        t.privileges
            .entry("app".into())
            .or_default()
            .insert("SELECT".into(), false);
        t.privileges
            .entry("PUBLIC".into())
            .or_default()
            .insert("SELECT".into(), false);
        target.tables.insert("public.t".into(), t);
        let mut source = target.clone();
        let s = source.sequences.get_mut("public.s").unwrap();
        s.options.increment = 5;
        s.options.cycle = true;
        s.owner = Some("public.t.id".into());
        source
            .enums
            .insert("public.e".into(), vec!["c".into(), "a".into(), "d".into()]);
        let p = &mut source.tables.get_mut("public.t").unwrap().privileges;
        p.get_mut("app").unwrap().insert("SELECT".into(), true);
        p.get_mut("app").unwrap().insert("INSERT".into(), false);
        p.remove("PUBLIC");
        assert_eq!(
            lines(&source, &target),
            vec![
                "breaking enum-value-removed public.e b",
                "enum-value-added public.e d",
                "enum-value-removed public.e b",
                "enum-values-reordered public.e",
                "privilege-grant-option-changed public.t app SELECT off -> on",
                "privilege-granted public.t app INSERT",
                "privilege-revoked public.t PUBLIC SELECT",
                "sequence-changed public.s cycle off -> on",
                "sequence-changed public.s increment 0 -> 5",
                "sequence-owner-changed public.s none -> public.t.id",
            ]
        );
    }
    /// The Drizzle shape: `ALTER TABLE "customer" RENAME TO "client"`, a column renamed and
    /// one added, on a table with a serial key, an index and a foreign key pointing at it.
    fn renamed_pair() -> (Model, Model) {
        let mut target = Model::default();
        let mut customer = table();
        customer.columns.insert("id".into(), col("integer", true));
        customer
            .columns
            .insert("full_name".into(), col("text", true));
        customer.constraints.insert(
            "customer_pkey".into(),
            Constraint {
                kind: ConstraintKind::PrimaryKey,
                definition: "PRIMARY KEY (id)".into(),
            },
        );
        target.tables.insert("public.customer".into(), customer);
        let mut invoice = table();
        invoice
            .columns
            .insert("customer_id".into(), col("integer", true));
        invoice.constraints.insert(
            "invoice_customer_fk".into(),
            Constraint {
                kind: ConstraintKind::ForeignKey,
                definition: "FOREIGN KEY (customer_id) REFERENCES customer(id)".into(),
            },
        );
        target.tables.insert("public.invoice".into(), invoice);
        target.indexes.insert(
            "public.customer_name_idx".into(),
            Index {
                table: "public.customer".into(),
                definition:
                    "CREATE INDEX customer_name_idx ON public.customer USING btree (full_name)"
                        .into(),
                comment: None,
            },
        );
        target.sequences.insert(
            "public.customer_id_seq".into(),
            Sequence {
                data_type: "integer".into(),
                owner: Some("public.customer.id".into()),
                ..Default::default()
            },
        );
        // What PostgreSQL shows after the renames and the new column.
        let mut source = target.clone();
        let mut client = source.tables.remove("public.customer").unwrap();
        let name = client.columns.remove("full_name").unwrap();
        client.columns.insert("display_name".into(), name);
        client.columns.insert("phone".into(), col("text", false));
        source.tables.insert("public.client".into(), client);
        source
            .tables
            .get_mut("public.invoice")
            .unwrap()
            .constraints
            .get_mut("invoice_customer_fk")
            .unwrap()
            .definition = "FOREIGN KEY (customer_id) REFERENCES client(id)".into();
        let idx = source.indexes.get_mut("public.customer_name_idx").unwrap();
        idx.table = "public.client".into();
        idx.definition =
            "CREATE INDEX customer_name_idx ON public.client USING btree (display_name)".into();
        source
            .sequences
            .get_mut("public.customer_id_seq")
            .unwrap()
            .owner = Some("public.client.id".into());
        (source, target)
    }

    fn lines_with(s: &Model, t: &Model, r: &Renames) -> Vec<String> {
        let mut out = Vec::new();
        for d in diff_with(s, t, r) {
            out.push(d.line.clone());
            out.extend(d.breaking_line());
        }
        out.sort();
        out
    }

    #[test]
    fn renames_are_reported_as_renames_with_the_other_changes() {
        let (source, target) = renamed_pair();
        let r = Renames::from_sql([
            r#"ALTER TABLE "customer" RENAME TO "client";"#,
            r#"ALTER TABLE "client" RENAME COLUMN "full_name" TO "display_name";"#,
            r#"ALTER TABLE "client" ADD COLUMN "phone" text;"#,
        ])
        .validated(&source, &target);
        // The index, the foreign key and the sequence's owner follow the rename: no lines.
        assert_eq!(
            lines_with(&source, &target, &r),
            vec![
                "breaking column-renamed public.client.full_name -> display_name",
                "breaking table-renamed public.customer -> public.client",
                "column-added public.client.phone text",
                "column-renamed public.client.full_name -> display_name",
                "table-renamed public.customer -> public.client",
            ]
        );
        // A real change to the renamed table is still seen.
        let mut changed = source.clone();
        changed
            .tables
            .get_mut("public.client")
            .unwrap()
            .columns
            .get_mut("display_name")
            .unwrap()
            .data_type = "character varying(10)".into();
        assert!(
            lines_with(&changed, &target, &r).contains(
                &"column-type-changed public.client.display_name text -> character varying(10)"
                    .to_string()
            )
        );
        // Without the renames: removed plus added, as before.
        let plain = lines(&source, &target);
        assert!(plain.contains(&"breaking table-removed public.customer".to_string()));
        assert!(plain.contains(&"table-added public.client".to_string()));
    }

    #[test]
    fn a_partitions_column_rename_is_implied_by_its_parents() {
        let mut target = Model::default();
        let mut parent = table();
        parent.partition_key = Some("RANGE (at)".into());
        parent.columns.insert("at".into(), col("date", true));
        let mut child = table();
        child.partition_of = Some(Partition {
            parent: "public.p".into(),
            bound: "DEFAULT".into(),
        });
        child.columns.insert("at".into(), col("date", true));
        target.tables.insert("public.p".into(), parent);
        target.tables.insert("public.p_default".into(), child);
        let mut source = target.clone();
        for t in source.tables.values_mut() {
            let c = t.columns.remove("at").unwrap();
            t.columns.insert("happened_at".into(), c);
            t.partition_key = t
                .partition_key
                .as_ref()
                .map(|_| "RANGE (happened_at)".into());
        }
        let r = Renames::from_sql([
            "ALTER TABLE p RENAME COLUMN at TO happened_at",
            "ALTER TABLE p_default RENAME COLUMN at TO happened_at",
        ])
        .validated(&source, &target);
        assert_eq!(
            lines_with(&source, &target, &r),
            vec![
                "breaking column-renamed public.p.at -> happened_at",
                "column-renamed public.p.at -> happened_at",
            ]
        );
    }
}
