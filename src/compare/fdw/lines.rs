//! From the diff query's rows to [`Difference`]s: lines built with the shared constructors
//! (so breaking marking is the catalog engine's), the target's default texts rewritten for
//! display, children's column lines implied by their parents' dropped (vocabulary rule 6), and
//! a refusal when the target's role could not read some texts.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Client;

use super::{sql, text};
use crate::compare::{Difference, Kind};
use crate::db::{DbError, DbUrl};

/// The differences from the diff query's rows: lines built with the shared constructors,
/// display texts for the target's defaults, children's lines implied by their parents'
/// dropped. Refuses when the target's role could not read some texts.
pub(super) async fn differences(
    client: &Client,
    rows: Vec<tokio_postgres::Row>,
    servers: &[(&'static str, &DbUrl)],
) -> Result<Vec<Difference>, DbError> {
    let mut raw = Vec::new();
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut hidden = Vec::new();
    for r in rows {
        let kind: String = r.get(0);
        let object: String = r.get(1);
        let old: Option<String> = r.get(2);
        match kind.as_str() {
            "parent" => {
                parents.entry(object).or_default().extend(old);
            }
            "?hidden-default" | "?hidden-check" => {
                hidden.push(format!(
                    "{} of {object} on {}",
                    if kind == "?hidden-default" {
                        "the default"
                    } else {
                        "the check clause"
                    },
                    old.unwrap_or_default()
                ));
            }
            _ => raw.push(Raw {
                kind,
                object,
                old,
                new: r.get(3),
                old_disp: r.get(4),
                new_disp: r.get(5),
                old_nn: r.get(6),
                new_nn: r.get(7),
            }),
        }
    }
    if !hidden.is_empty() {
        let side = if hidden.iter().all(|h| h.ends_with("target")) {
            servers
                .last()
                .map(|(_, u)| u.redacted())
                .unwrap_or_default()
        } else {
            "the source or the target".into()
        };
        return Err(DbError::Other(format!(
            "fdw engine: the role used for {side} cannot read {} through information_schema \
             (it shows defaults and check clauses only to the owner of a table)\n  hint: \
             use a role that owns the tables (or is a member of their owner), or --engine catalog",
            hidden.join(", ")
        )));
    }
    let shadowed = shadowed_names(client, &raw).await?;
    let shadow = |n: &str| shadowed.contains(n);
    let mut out: Vec<Difference> = raw.iter().filter_map(|r| r.difference(&shadow)).collect();
    drop_implied(&mut out, &parents);
    Ok(out)
}

/// One row of the diff query.
struct Raw {
    kind: String,
    object: String,
    old: Option<String>,
    new: Option<String>,
    old_disp: Option<String>,
    new_disp: Option<String>,
    old_nn: Option<bool>,
    new_nn: Option<bool>,
}

fn constraint_word(contype: &str) -> &'static str {
    match contype {
        "p" => "primary-key",
        "f" => "foreign-key",
        "u" => "unique",
        "c" => "check",
        _ => "exclusion",
    }
}

impl Raw {
    fn display(
        cmp: &Option<String>,
        disp: &Option<String>,
        shadow: &dyn Fn(&str) -> bool,
    ) -> String {
        match (disp, cmp) {
            (Some(d), _) => d.clone(),
            (None, Some(c)) => text::unqualify_public(c, shadow),
            (None, None) => "none".into(),
        }
    }

    fn difference(&self, shadow: &dyn Fn(&str) -> bool) -> Option<Difference> {
        let obj = self.object.as_str();
        let old = self.old.clone().unwrap_or_default();
        let new = self.new.clone().unwrap_or_default();
        let kind = Kind::parse(&self.kind)?;
        Some(match kind {
            Kind::TableRemoved => Difference::table_removed(obj),
            Kind::ColumnAdded => Difference::new(kind, obj, Some(new)),
            Kind::ColumnRemoved => Difference::column_removed(obj),
            Kind::ColumnTypeChanged => Difference::column_type_changed(obj, &old, &new),
            Kind::ColumnNullabilityChanged => Difference::column_nullability_changed(
                obj,
                self.old_nn.unwrap_or(false),
                self.new_nn.unwrap_or(false),
            ),
            Kind::ColumnDefaultChanged => Difference::new(
                kind,
                obj,
                Some(format!(
                    "{} -> {}",
                    Self::display(&self.old, &self.old_disp, shadow),
                    Self::display(&self.new, &self.new_disp, shadow)
                )),
            ),
            Kind::ConstraintAdded | Kind::ConstraintChanged => {
                Difference::new(kind, obj, Some(constraint_word(&new).into()))
            }
            Kind::ConstraintRemoved => {
                Difference::new(kind, obj, Some(constraint_word(&old).into()))
            }
            Kind::EnumValueAdded => Difference::new(kind, obj, Some(new)),
            Kind::EnumValueRemoved => Difference::enum_value_removed(obj, &old),
            _ => Difference::new(kind, obj, None),
        })
    }
}

/// Which names after `public.` in the remote default texts pg_catalog shadows (one query,
/// only when there are such names).
async fn shadowed_names(client: &Client, raw: &[Raw]) -> Result<BTreeSet<String>, DbError> {
    let mut names: Vec<String> = raw
        .iter()
        .filter(|r| r.kind == "column-default-changed")
        .flat_map(|r| {
            [(&r.old, &r.old_disp), (&r.new, &r.new_disp)]
                .into_iter()
                .filter(|(_, disp)| disp.is_none())
                .filter_map(|(cmp, _)| cmp.as_deref())
                .flat_map(text::public_names)
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Ok(BTreeSet::new());
    }
    let rows = client
        .query(sql::SHADOWED, &[&names])
        .await
        .map_err(|e| DbError::query("fdw engine: checking names against pg_catalog", &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Rule 6 of the vocabulary: a child's column line that is exactly an ancestor's line (its
/// parent's, or the parent's parent's, ... through the partition and INHERITS edges of either
/// side) with the ancestor's name replaced by the child's is implied by it.
fn drop_implied(out: &mut Vec<Difference>, parents: &BTreeMap<String, BTreeSet<String>>) {
    let column_kinds = [
        Kind::ColumnAdded,
        Kind::ColumnRemoved,
        Kind::ColumnTypeChanged,
        Kind::ColumnNullabilityChanged,
        Kind::ColumnDefaultChanged,
    ];
    // (table, line with the object written as the bare column name)
    let shape = |d: &Difference| {
        let (table, column) = d.object.rsplit_once('.')?;
        Some((table.to_string(), d.line.replacen(&d.object, column, 1)))
    };
    let lines: BTreeSet<(String, String)> = out
        .iter()
        .filter(|d| column_kinds.contains(&d.kind))
        .filter_map(shape)
        .collect();
    let ancestors = |table: &str| {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = parents.get(table).into_iter().flatten().collect();
        while let Some(a) = todo.pop() {
            if a != table && seen.insert(a.clone()) {
                todo.extend(parents.get(a).into_iter().flatten());
            }
        }
        seen
    };
    out.retain(|d| {
        if !column_kinds.contains(&d.kind) {
            return true;
        }
        let Some((table, line)) = shape(d) else {
            return true;
        };
        !ancestors(&table)
            .into_iter()
            .any(|a| lines.contains(&(a, line.clone())))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implied_children_lines_are_dropped_transitively() {
        let mut out = vec![
            Difference::new(Kind::ColumnAdded, "public.p.note", Some("text".into())),
            Difference::new(Kind::ColumnAdded, "public.p_1.note", Some("text".into())),
            Difference::new(Kind::ColumnAdded, "public.p_1_a.note", Some("text".into())),
            Difference::new(Kind::ColumnAdded, "public.p_1.extra", Some("text".into())),
            Difference::new(Kind::ColumnAdded, "public.q.note", Some("integer".into())),
            // Implied by the grandparent's line although the parent has no such line.
            Difference::new(Kind::ColumnAdded, "public.p_1_a.extra2", Some("int".into())),
            Difference::new(Kind::ColumnAdded, "public.p.extra2", Some("int".into())),
        ];
        let mut parents = BTreeMap::new();
        parents.insert(
            "public.p_1".to_string(),
            BTreeSet::from(["public.p".to_string()]),
        );
        parents.insert(
            "public.p_1_a".to_string(),
            BTreeSet::from(["public.p_1".to_string()]),
        );
        drop_implied(&mut out, &parents);
        let lines: Vec<&str> = out.iter().map(|d| d.line.as_str()).collect();
        assert_eq!(
            lines,
            vec![
                "column-added public.p.note text",
                "column-added public.p_1.extra text",
                "column-added public.q.note integer",
                "column-added public.p.extra2 int"
            ]
        );
    }

    #[test]
    fn rows_become_lines_with_the_shared_constructors() {
        let raw = Raw {
            kind: "column-default-changed".into(),
            object: "public.t.id".into(),
            old: Some("nextval('public.t_id_seq'::regclass)".into()),
            new: None,
            old_disp: None,
            new_disp: None,
            old_nn: None,
            new_nn: None,
        };
        let d = raw.difference(&|_| false).unwrap();
        assert_eq!(
            d.line,
            "column-default-changed public.t.id nextval('t_id_seq'::regclass) -> none"
        );
        let raw = Raw {
            kind: "constraint-removed".into(),
            object: "public.t.t_pkey".into(),
            old: Some("p".into()),
            new: None,
            old_disp: None,
            new_disp: None,
            old_nn: None,
            new_nn: None,
        };
        assert_eq!(
            raw.difference(&|_| false).unwrap().line,
            "constraint-removed public.t.t_pkey primary-key"
        );
    }
}
