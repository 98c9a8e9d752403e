//! In-place fixes: the SQL that puts back what can be put back without dropping anything (a
//! kept table's comments, grants, row security, replica identity, defaults and nullability;
//! a sequence's options, owner, grants and value; a domain's default and nullability), and
//! the recreation of an enum with its old labels. Pure.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::{EnumColumn, Kind, Object, SequenceValue};
use super::plan::{Facts, Plan, Step, qualified};
use crate::compare::model::{Privileges, ReplicaIdentity, Table};
use crate::db::{quote_ident, quote_literal};

/// `default|notnull` of a domain, put back.
pub(super) fn domain(o: &Object, d0: &str, d1: &str, p: &mut Plan) {
    let split = |d: &str| {
        let (def, nn) = d.rsplit_once('|').unwrap_or((d, "false"));
        (def.to_string(), nn == "true")
    };
    let ((def0, nn0), (def1, nn1)) = (split(d0), split(d1));
    let name = qualified(&o.schema, &o.name);
    if def0 != def1 {
        let sql = if def0.is_empty() {
            format!("ALTER DOMAIN {name} DROP DEFAULT")
        } else {
            format!("ALTER DOMAIN {name} SET DEFAULT {def0}")
        };
        p.late
            .push(Step::new(format!("default of domain {}", o.key()), sql));
    }
    if nn0 != nn1 {
        let word = if nn0 { "SET" } else { "DROP" };
        p.late.push(Step::new(
            format!("nullability of domain {}", o.key()),
            format!("ALTER DOMAIN {name} {word} NOT NULL"),
        ));
    }
}

/// Recreate an enum with its old labels and convert the columns that hold it.
pub(super) fn swap_enum(
    f: &Facts<'_>,
    o: &Object,
    n: &Object,
    recreate: &BTreeMap<u32, String>,
    p: &mut Plan,
) {
    let Some(labels) = f.m0.enums.get(&o.key()) else {
        return;
    };
    let name = qualified(&o.schema, &o.name);
    let tmp_name: String = format!("{}_pgship_old", o.name).chars().take(63).collect();
    let tmp = qualified(&o.schema, &tmp_name);
    let what = format!("enum {} back to its labels", o.key());
    let labels_sql = labels
        .iter()
        .map(|l| quote_literal(l))
        .collect::<Vec<_>>()
        .join(", ");
    p.early.push(Step::new(
        what.clone(),
        format!("ALTER TYPE {name} RENAME TO {}", quote_ident(&tmp_name)),
    ));
    p.early.push(Step::new(
        what.clone(),
        format!("CREATE TYPE {name} AS ENUM ({labels_sql})"),
    ));
    if let Some(owner) = f.type_owners.get(&n.oid).filter(|r| *r != f.current_user) {
        p.early.push(Step::new(
            what.clone(),
            format!("ALTER TYPE {name} OWNER TO {}", quote_ident(owner)),
        ));
    }
    let columns: Vec<&EnumColumn> = f
        .enum_deps
        .columns
        .iter()
        .filter(|c| c.enum_oid == n.oid && !recreate.contains_key(&c.table))
        .collect();
    for c in columns {
        let t = qualified(&c.schema, &c.table_name);
        let col = quote_ident(&c.column);
        let (ty, using) = if c.array {
            (format!("{name}[]"), format!("{col}::text[]::{name}[]"))
        } else {
            (name.clone(), format!("{col}::text::{name}"))
        };
        p.early.push(Step::new(
            format!("column {}.{} converted back to enum {}", c.table_key(), c.column, o.key()),
            format!(
                "ALTER TABLE {t} ALTER COLUMN {col} DROP DEFAULT, ALTER COLUMN {col} TYPE {ty} USING {using}"
            ),
        ));
        // The default dropped here is set again with the table's other attributes.
    }
    p.early.push(Step::new(what, format!("DROP TYPE {tmp}")));
}

pub(super) fn setval(s: &SequenceValue) -> Step {
    let (v, called) = match s.last_value {
        Some(v) => (v, "true"),
        None => (s.start, "false"),
    };
    let (schema, name) = s
        .sequence
        .split_once('.')
        .unwrap_or(("public", &s.sequence));
    Step::new(
        format!("value of sequence {}", s.sequence),
        format!(
            "SELECT pg_catalog.setval({}, {v}, {called})",
            quote_literal(&qualified(schema, name))
        ),
    )
}

/// Put a kept table's attributes back in place.
pub(super) fn table(
    o: &Object,
    t0: &Table,
    t1: &Table,
    doomed_defaults: &BTreeSet<&str>,
    p: &mut Plan,
) {
    let t = qualified(&o.schema, &o.name);
    let key = o.key();
    let lit = |c: &Option<String>| c.as_deref().map_or("NULL".to_string(), quote_literal);
    if t0.comment != t1.comment {
        p.late.push(Step::new(
            format!("comment of {key}"),
            format!("COMMENT ON TABLE {t} IS {}", lit(&t0.comment)),
        ));
    }
    if t0.rls != t1.rls {
        let w = if t0.rls { "ENABLE" } else { "DISABLE" };
        p.late.push(Step::new(
            format!("row security of {key}"),
            format!("ALTER TABLE {t} {w} ROW LEVEL SECURITY"),
        ));
    }
    if t0.force_rls != t1.force_rls {
        let w = if t0.force_rls { "FORCE" } else { "NO FORCE" };
        p.late.push(Step::new(
            format!("row security of {key}"),
            format!("ALTER TABLE {t} {w} ROW LEVEL SECURITY"),
        ));
    }
    if t0.replica_identity != t1.replica_identity {
        match t0.replica_identity {
            ReplicaIdentity::Index => p.warnings.push(format!(
                "the replica identity of {key} (an index) is not put back"
            )),
            r => p.late.push(Step::new(
                format!("replica identity of {key}"),
                format!(
                    "ALTER TABLE {t} REPLICA IDENTITY {}",
                    r.word().to_uppercase()
                ),
            )),
        }
    }
    privileges(
        &format!("TABLE {t}"),
        &key,
        &t0.privileges,
        &t1.privileges,
        p,
    );
    for (name, c0) in &t0.columns {
        let Some(c1) = t1.columns.get(name) else {
            continue;
        };
        let col = quote_ident(name);
        if c0.default != c1.default || doomed_defaults.contains(name.as_str()) {
            let sql = match &c0.default {
                Some(d) => format!("ALTER TABLE {t} ALTER COLUMN {col} SET DEFAULT {d}"),
                None => format!("ALTER TABLE {t} ALTER COLUMN {col} DROP DEFAULT"),
            };
            p.late
                .push(Step::new(format!("default of {key}.{name}"), sql));
        }
        if c0.not_null != c1.not_null {
            let w = if c0.not_null { "SET" } else { "DROP" };
            p.late.push(Step::new(
                format!("nullability of {key}.{name}"),
                format!("ALTER TABLE {t} ALTER COLUMN {col} {w} NOT NULL"),
            ));
        }
        if c0.comment != c1.comment {
            p.late.push(Step::new(
                format!("comment of {key}.{name}"),
                format!("COMMENT ON COLUMN {t}.{col} IS {}", lit(&c0.comment)),
            ));
        }
    }
}

/// GRANT and REVOKE statements that turn `now` into `before` on `target` (`TABLE "s"."t"`).
pub fn privileges(target: &str, key: &str, before: &Privileges, now: &Privileges, p: &mut Plan) {
    let empty = BTreeMap::new();
    let roles: BTreeSet<&String> = before.keys().chain(now.keys()).collect();
    for role in roles {
        let grantee = if role == "PUBLIC" {
            "PUBLIC".to_string()
        } else {
            quote_ident(role)
        };
        let b = before.get(role).unwrap_or(&empty);
        let n = now.get(role).unwrap_or(&empty);
        let what = format!("privileges of {role} on {key}");
        for (privilege, &grant_now) in n {
            match b.get(privilege) {
                None => p.late.push(Step::new(
                    what.clone(),
                    format!("REVOKE {privilege} ON {target} FROM {grantee} CASCADE"),
                )),
                Some(false) if grant_now => p.late.push(Step::new(
                    what.clone(),
                    format!(
                        "REVOKE GRANT OPTION FOR {privilege} ON {target} FROM {grantee} CASCADE"
                    ),
                )),
                _ => {}
            }
        }
        for (privilege, &grant_before) in b {
            let missing = !n.contains_key(privilege);
            let option_lost = grant_before && n.get(privilege) == Some(&false);
            if missing || option_lost {
                let opt = if grant_before {
                    " WITH GRANT OPTION"
                } else {
                    ""
                };
                p.late.push(Step::new(
                    what.clone(),
                    format!("GRANT {privilege} ON {target} TO {grantee}{opt}"),
                ));
            }
        }
    }
}

/// Kept sequences: options, owner, grants and (when the SQL moved them) values.
pub(super) fn sequences<'a>(
    f: &'a Facts<'a>,
    now_of: &dyn Fn(&Object) -> Option<&'a Object>,
    restored: &BTreeSet<String>,
    p: &mut Plan,
) {
    for o in f.pre.iter().filter(|o| o.kind == Kind::Sequence) {
        if restored.contains(&o.key()) || now_of(o).is_none() {
            continue;
        }
        let n = now_of(o).expect("checked");
        let name = qualified(&o.schema, &o.name);
        if let (Some(s0), Some(s1)) = (f.m0.sequences.get(&o.key()), f.m1.sequences.get(&n.key())) {
            if s0.data_type != s1.data_type || s0.options != s1.options {
                let x = &s0.options;
                p.late.push(Step::new(
                    format!("options of sequence {}", o.key()),
                    format!(
                        "ALTER SEQUENCE {name} AS {} INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {} CACHE {} {}",
                        s0.data_type,
                        x.increment,
                        x.min,
                        x.max,
                        x.start,
                        x.cache,
                        if x.cycle { "CYCLE" } else { "NO CYCLE" }
                    ),
                ));
            }
            if s0.owner != s1.owner {
                let owner = match s0.owner.as_deref().and_then(split_column) {
                    Some((schema, table, column)) => {
                        format!("{}.{}", qualified(schema, table), quote_ident(column))
                    }
                    None => "NONE".into(),
                };
                p.late.push(Step::new(
                    format!("owner of sequence {}", o.key()),
                    format!("ALTER SEQUENCE {name} OWNED BY {owner}"),
                ));
            }
            privileges(
                &format!("SEQUENCE {name}"),
                &o.key(),
                &s0.privileges,
                &s1.privileges,
                p,
            );
        }
        if f.touched_sequences.contains(&o.key()) {
            if let Some(v) = f.sequences.iter().find(|s| s.sequence == o.key()) {
                p.late.push(setval(v));
            }
        }
    }
}

/// `schema.table.column` -> its parts.
fn split_column(s: &str) -> Option<(&str, &str, &str)> {
    let (schema, rest) = s.split_once('.')?;
    let (table, column) = rest.rsplit_once('.')?;
    Some((schema, table, column))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileges_are_turned_back() {
        let mut before = Privileges::new();
        before
            .entry("reader".into())
            .or_default()
            .insert("SELECT".into(), true);
        before
            .entry("PUBLIC".into())
            .or_default()
            .insert("SELECT".into(), false);
        let mut now = Privileges::new();
        now.entry("reader".into())
            .or_default()
            .insert("SELECT".into(), false);
        now.entry("writer".into())
            .or_default()
            .insert("INSERT".into(), false);
        let mut p = Plan::default();
        privileges("TABLE t", "public.t", &before, &now, &mut p);
        let sql: Vec<&str> = p.late.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            sql,
            [
                "GRANT SELECT ON TABLE t TO PUBLIC",
                "GRANT SELECT ON TABLE t TO \"reader\" WITH GRANT OPTION",
                "REVOKE INSERT ON TABLE t FROM \"writer\" CASCADE",
            ]
        );
    }

    #[test]
    fn column_owner_names_split() {
        assert_eq!(split_column("public.t.id"), Some(("public", "t", "id")));
        assert_eq!(split_column("t"), None);
    }
}
