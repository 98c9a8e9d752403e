//! Which tables the pending SQL touches, by the recorded model's keys: the names the SQL uses,
//! plus the tables a write spreads to (foreign keys with cascading actions, `TRUNCATE ...
//! CASCADE`, partitions and inheritance children), and the tables holding a type it changes.
//! When a write may reach anywhere (a trigger or rule on a written table, an opaque
//! statement), every table is touched. Pure.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::catalog::Spread;
use super::touched::{Name, Touched};
use crate::compare::model::Model;

/// The tables to save and compare.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Tables whose rows and contents are recorded (and dumped for the restore method).
    pub tables: BTreeSet<String>,
    /// Tables whose rows the SQL may change (written, or altered in place).
    pub may_change: BTreeSet<String>,
    /// Why every table is in scope, when it is.
    pub everything: Vec<String>,
}

/// `schema.table` -> (schema, table). Model keys put the schema first.
fn split(key: &str) -> (&str, &str) {
    key.split_once('.').unwrap_or(("public", key))
}

pub fn scope(t: &Touched, m0: &Model, spread: &Spread) -> Scope {
    let all: Vec<&String> = m0.tables.keys().collect();
    let resolve = |names: &BTreeSet<Name>| -> BTreeSet<String> {
        all.iter()
            .filter(|k| {
                let (s, n) = split(k);
                names.iter().any(|x| x.matches(s, n))
            })
            .map(|k| (*k).clone())
            .collect()
    };
    let mut written = resolve(&t.written);
    let truncated = resolve(&t.truncated_cascade);
    // TRUNCATE ... CASCADE empties every table referencing a truncated one.
    close(&mut written, &truncated, |parent, out| {
        for fk in spread.foreign_keys.iter().filter(|f| f.parent == parent) {
            out.push(fk.child.clone());
        }
    });
    let seeds = written.clone();
    close(&mut written, &seeds, |parent, out| {
        for fk in spread
            .foreign_keys
            .iter()
            .filter(|f| f.spreads && f.parent == parent)
        {
            out.push(fk.child.clone());
        }
        out.extend(children(m0, parent));
    });

    let mut everything = t.opaque.clone();
    for w in &written {
        if m0.tables.get(w).is_some_and(|x| !x.triggers.is_empty()) {
            everything.push(format!("{w} has triggers, which may write to any table"));
        }
        if spread.rules.contains(w) {
            everything.push(format!("{w} has rules, which may write to any table"));
        }
    }

    let altered = resolve(&t.altered);
    let mut tables: BTreeSet<String> = written.iter().cloned().collect();
    tables.extend(altered.iter().cloned());
    tables.extend(resolve(&t.dropped));
    tables.extend(resolve(&t.renamed));
    tables.extend(
        all.iter()
            .filter(|k| t.schemas.contains(split(k).0))
            .map(|k| (*k).clone()),
    );
    tables.extend(using_types(m0, &t.types));
    let seeds = tables.clone();
    close(&mut tables, &seeds, |parent, out| {
        out.extend(children(m0, parent))
    });

    let mut may_change = written;
    may_change.extend(altered);
    if !everything.is_empty() {
        let every: BTreeSet<String> = all.iter().map(|k| (*k).clone()).collect();
        return Scope {
            tables: every.clone(),
            may_change: every,
            everything,
        };
    }
    Scope {
        tables,
        may_change,
        everything,
    }
}

/// Add to `set` everything `next` reaches from `seeds`, transitively.
fn close(
    set: &mut BTreeSet<String>,
    seeds: &BTreeSet<String>,
    next: impl Fn(&str, &mut Vec<String>),
) {
    let mut todo: Vec<String> = seeds.iter().cloned().collect();
    set.extend(seeds.iter().cloned());
    while let Some(t) = todo.pop() {
        let mut found = Vec::new();
        next(&t, &mut found);
        for f in found {
            if set.insert(f.clone()) {
                todo.push(f);
            }
        }
    }
}

/// Partitions and inheritance children of `parent`.
fn children(m0: &Model, parent: &str) -> Vec<String> {
    m0.tables
        .iter()
        .filter(|(_, t)| {
            t.partition_of.as_ref().is_some_and(|p| p.parent == parent)
                || t.inherits.iter().any(|i| i == parent)
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// Tables with a column of one of `types` (or an array of it), as `format_type` prints them
/// with `search_path = public`.
fn using_types(m0: &Model, types: &BTreeSet<Name>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (key, t) in &m0.tables {
        for c in t.columns.values() {
            let ty = c.data_type.trim_end_matches("[]");
            let (schema, name) = match ty.rsplit_once('.') {
                Some((s, n)) if !ty.starts_with('"') || s.ends_with('"') => (s, n),
                _ => ("public", ty),
            };
            let unquote = |s: &str| s.trim_matches('"').replace("\"\"", "\"");
            let (schema, name) = (unquote(schema), unquote(name));
            if types.iter().any(|n| n.matches(&schema, &name)) {
                out.insert(key.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::model::{Partition, Table};
    use crate::rollback::catalog::ForeignKey;

    fn table(cols: &[(&str, &str)]) -> Table {
        crate::compare::model::testing::table(cols)
    }

    fn model() -> Model {
        let mut m = Model::default();
        m.tables.insert(
            "public.users".into(),
            table(&[("id", "integer"), ("m", "mood")]),
        );
        m.tables
            .insert("public.orders".into(), table(&[("id", "integer")]));
        m.tables
            .insert("public.audit".into(), table(&[("id", "integer")]));
        m.tables
            .insert("app.tags".into(), table(&[("t", "app.label[]")]));
        m.tables
            .insert("public.events".into(), table(&[("id", "integer")]));
        let mut part = table(&[("id", "integer")]);
        part.partition_of = Some(Partition {
            parent: "public.events".into(),
            bound: "DEFAULT".into(),
        });
        m.tables.insert("public.events_default".into(), part);
        m
    }

    fn spread() -> Spread {
        Spread {
            foreign_keys: vec![
                ForeignKey {
                    child: "public.orders".into(),
                    parent: "public.users".into(),
                    spreads: true,
                },
                ForeignKey {
                    child: "public.audit".into(),
                    parent: "public.orders".into(),
                    spreads: false,
                },
            ],
            rules: BTreeSet::new(),
        }
    }

    fn names(sql: &str) -> Touched {
        super::super::touched::analyze_sql(sql, &BTreeSet::new())
    }

    #[test]
    fn writes_spread_through_cascading_keys_and_partitions() {
        let s = scope(
            &names("DELETE FROM users; INSERT INTO events VALUES (1)"),
            &model(),
            &spread(),
        );
        assert_eq!(
            s.may_change.iter().collect::<Vec<_>>(),
            [
                "public.events",
                "public.events_default",
                "public.orders",
                "public.users"
            ]
        );
        assert!(s.everything.is_empty());
        let s = scope(&names("TRUNCATE orders CASCADE"), &model(), &spread());
        assert_eq!(
            s.may_change.iter().collect::<Vec<_>>(),
            ["public.audit", "public.orders"]
        );
    }

    #[test]
    fn types_schemas_and_ddl_bring_tables_in() {
        let s = scope(
            &names(
                "ALTER TYPE mood ADD VALUE 'x'; ALTER TYPE app.label RENAME VALUE 'a' TO 'b'; \
                    ALTER TABLE orders ADD COLUMN note text; DROP TABLE public.audit",
            ),
            &model(),
            &spread(),
        );
        assert_eq!(
            s.tables.iter().collect::<Vec<_>>(),
            ["app.tags", "public.audit", "public.orders", "public.users"]
        );
        assert_eq!(s.may_change.iter().collect::<Vec<_>>(), ["public.orders"]);
    }

    #[test]
    fn triggers_and_opaque_statements_touch_everything() {
        let mut m = model();
        m.tables
            .get_mut("public.orders")
            .unwrap()
            .triggers
            .insert("trg".into(), "CREATE TRIGGER ...".into());
        let s = scope(&names("UPDATE orders SET id = id"), &m, &spread());
        assert_eq!(s.tables.len(), 6);
        assert!(s.everything[0].contains("public.orders has triggers"));
        let s = scope(&names("DO $$ BEGIN END $$"), &model(), &spread());
        assert_eq!(s.tables.len(), 6);
    }
}
