//! Renamed tables and columns: which table or column of the target is a source's under another
//! name. Known in two ways, never guessed from similar shapes:
//!
//! - by catalog identity, when both models are of the same database (the rehearsal reads its
//!   sandbox before and after the migrations): the same relation oid is the same table, the
//!   same attnum of it the same column ([`Renames::by_identity`]);
//! - from the SQL that takes the target to the source (its pending migrations): `ALTER TABLE
//!   ... RENAME [COLUMN] ... TO ...` and `ALTER TABLE ... SET SCHEMA`, followed in order
//!   ([`Renames::from_sql`], then [`Renames::validated`] against both models).
//!
//! Otherwise a rename is what the catalogs show: a removal plus an addition.
//!
//! [`Renames::apply`] writes the target model under the source's names (keys, and the names
//! inside definitions: `ON public.old`, `REFERENCES old(col)`, `CHECK ((col > 0))`), so the
//! name-keyed diff reports only what else changed, and [`Renames::differences`] gives the
//! `table-renamed` and `column-renamed` lines.

mod rewrite;
mod sql;

use std::collections::{BTreeMap, HashMap};

use super::Difference;
use super::model::*;
use rewrite::Rewriter;

/// Tables and columns of the target that the source holds under other names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renames {
    /// Target `schema.table` -> its name in the source.
    pub tables: BTreeMap<String, String>,
    /// (target `schema.table`, column) -> the column's name in the source.
    pub columns: BTreeMap<(String, String), String>,
}

impl Renames {
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.columns.is_empty()
    }

    /// The source's name of the target's table `name`.
    pub fn table<'a>(&'a self, name: &'a str) -> &'a str {
        self.tables.get(name).map_or(name, String::as_str)
    }

    /// The source's name of the target's column `column` of table `table` (target name).
    pub fn column<'a>(&'a self, table: &str, column: &'a str) -> &'a str {
        self.columns
            .get(&(table.to_string(), column.to_string()))
            .map_or(column, String::as_str)
    }

    /// Renames by catalog identity. Only meaningful when `source` and `target` were read from
    /// the same database: oids of two databases say nothing about each other.
    pub fn by_identity(source: &Model, target: &Model) -> Renames {
        let mut r = Renames::default();
        let by_oid: HashMap<u32, &String> = source
            .tables
            .iter()
            .filter_map(|(n, t)| t.oid.0.map(|o| (o, n)))
            .collect();
        for (tname, t) in &target.tables {
            let Some(sname) = t.oid.0.and_then(|o| by_oid.get(&o)) else {
                continue;
            };
            if *sname != tname {
                r.tables.insert(tname.clone(), (*sname).clone());
            }
            let by_num: HashMap<u32, &String> = source.tables[*sname]
                .columns
                .iter()
                .filter_map(|(n, c)| c.attnum.0.map(|a| (a, n)))
                .collect();
            for (cname, c) in &t.columns {
                if let Some(scol) = c.attnum.0.and_then(|a| by_num.get(&a)) {
                    if *scol != cname {
                        r.columns
                            .insert((tname.clone(), cname.clone()), (*scol).clone());
                    }
                }
            }
        }
        r
    }

    /// The renames that `statements`, run in order on the target, make: a table or column the
    /// SQL renames (possibly more than once) and that existed before it. Not yet checked
    /// against the models: see [`Renames::validated`]. Unqualified names are taken to be in
    /// `public`; statements that do not parse are skipped.
    pub fn from_sql<'a>(statements: impl IntoIterator<Item = &'a str>) -> Renames {
        sql::renames(statements)
    }

    /// Only the renames both models agree with: the old name in the target, the new one in
    /// the source, and the new name not also the target's own (unless that one is renamed
    /// away too).
    pub fn validated(&self, source: &Model, target: &Model) -> Renames {
        let tables: BTreeMap<String, String> = self
            .tables
            .iter()
            .filter(|(t, s)| {
                target.tables.contains_key(*t)
                    && source.tables.contains_key(*s)
                    && (!target.tables.contains_key(*s) || self.tables.contains_key(*s))
            })
            .map(|(t, s)| (t.clone(), s.clone()))
            .collect();
        let columns = self
            .columns
            .iter()
            .filter(|((t, old), new)| {
                let source_table = tables.get(t).unwrap_or(t);
                let (Some(tt), Some(st)) = (target.tables.get(t), source.tables.get(source_table))
                else {
                    return false;
                };
                let new_taken = tt.columns.contains_key(*new)
                    && !self.columns.contains_key(&(t.clone(), (*new).clone()));
                tt.columns.contains_key(old) && st.columns.contains_key(*new) && !new_taken
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Renames { tables, columns }
    }

    /// `target` as it reads under the source's names: renamed tables and columns under their
    /// new keys, and the names in its definitions rewritten.
    pub fn apply(&self, target: &Model) -> Model {
        if self.is_empty() {
            return target.clone();
        }
        let rw = Rewriter::new(self, target);
        let mut m = target.clone();
        m.tables = target
            .tables
            .iter()
            .map(|(name, t)| (self.table(name).to_string(), rw.table(name, t)))
            .collect();
        for idx in m.indexes.values_mut() {
            idx.definition = rw.text(&idx.definition, Some(&idx.table));
            idx.table = self.table(&idx.table).to_string();
        }
        for v in m.views.values_mut() {
            v.definition = rw.text(&v.definition, None);
            for def in v.triggers.values_mut() {
                *def = rw.text(def, None);
            }
        }
        for s in m.sequences.values_mut() {
            if let Some((table, column)) = s.owner.as_deref().and_then(|o| o.rsplit_once('.')) {
                s.owner = Some(format!(
                    "{}.{}",
                    self.table(table),
                    self.column(table, column)
                ));
            }
        }
        m
    }

    /// The `table-renamed` and `column-renamed` lines (columns named by the table's name in
    /// the source).
    pub fn differences(&self) -> Vec<Difference> {
        let tables = self
            .tables
            .iter()
            .map(|(old, new)| Difference::table_renamed(old, new));
        let columns = self
            .columns
            .iter()
            .map(|((t, old), new)| Difference::column_renamed(self.table(t), old, new));
        tables.chain(columns).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::model::testing::table;

    fn renames(tables: &[(&str, &str)], columns: &[(&str, &str, &str)]) -> Renames {
        Renames {
            tables: tables
                .iter()
                .map(|(o, n)| (o.to_string(), n.to_string()))
                .collect(),
            columns: columns
                .iter()
                .map(|(t, o, n)| ((t.to_string(), o.to_string()), n.to_string()))
                .collect(),
        }
    }

    /// A table with `(name, attnum)` columns and an oid.
    fn with_ids(oid: u32, cols: &[(&str, u32)]) -> Table {
        let mut t = table(&cols.iter().map(|(n, _)| (*n, "text")).collect::<Vec<_>>());
        t.oid = CatalogId(Some(oid));
        for (n, a) in cols {
            t.columns.get_mut(*n).unwrap().attnum = CatalogId(Some(*a));
        }
        t
    }

    #[test]
    fn identity_sees_renames_and_nothing_else() {
        let mut before = Model::default();
        before.tables.insert(
            "public.customer".into(),
            with_ids(10, &[("id", 1), ("full_name", 2)]),
        );
        before.tables.insert(
            "public.notes".into(),
            with_ids(11, &[("id", 1), ("body", 2)]),
        );
        before
            .tables
            .insert("public.log".into(), with_ids(12, &[("id", 1)]));
        let mut after = Model::default();
        // Renamed, one column renamed, another dropped and added again under its old name.
        after.tables.insert(
            "public.client".into(),
            with_ids(10, &[("id", 1), ("display_name", 2), ("full_name", 3)]),
        );
        // Same name, same oid, column dropped and re-added: not a rename.
        after.tables.insert(
            "public.notes".into(),
            with_ids(11, &[("id", 1), ("body", 3)]),
        );
        // Dropped and created again: another table, whatever its name.
        after
            .tables
            .insert("public.log".into(), with_ids(13, &[("id", 1)]));
        let r = Renames::by_identity(&after, &before);
        assert_eq!(
            r,
            renames(
                &[("public.customer", "public.client")],
                &[("public.customer", "full_name", "display_name")]
            )
        );
        // Models without identity (read elsewhere) give nothing.
        let mut plain = after.clone();
        for t in plain.tables.values_mut() {
            t.oid = CatalogId(None);
        }
        assert!(Renames::by_identity(&plain, &before).is_empty());
    }

    #[test]
    fn only_renames_both_models_agree_with_are_kept() {
        let mut target = Model::default();
        target
            .tables
            .insert("public.a".into(), table(&[("x", "int"), ("y", "int")]));
        target.tables.insert("public.b".into(), table(&[]));
        target.tables.insert("public.c".into(), table(&[]));
        let mut source = Model::default();
        source
            .tables
            .insert("public.a2".into(), table(&[("x2", "int"), ("y", "int")]));
        source.tables.insert("public.b".into(), table(&[]));
        source.tables.insert("public.c".into(), table(&[]));
        let r = renames(
            &[
                ("public.a", "public.a2"),
                // The new name is still the target's own table.
                ("public.c", "public.b"),
                // Not in the target.
                ("public.zz", "public.c"),
            ],
            &[
                ("public.a", "x", "x2"),
                // The new name is the target's own column.
                ("public.a", "q", "y"),
                ("public.b", "nope", "other"),
            ],
        );
        assert_eq!(
            r.validated(&source, &target),
            renames(&[("public.a", "public.a2")], &[("public.a", "x", "x2")])
        );
    }
}
