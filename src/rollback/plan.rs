//! The restore plan, decided in pure code from what was recorded before the migrations (the
//! model, the object inventory, the dumps' tables of contents) and what the database holds
//! now. Objects are matched by catalog identity (catalog and oid), so a renamed object is the
//! same object and a dropped-and-recreated one is not.
//!
//! - A table is recreated (dropped, restored from the schema dump with its data from the data
//!   dump) when the migrations dropped or renamed it, changed its columns, or changed its rows;
//!   or when dropping something else takes it or one of its columns along (found by a dry run).
//! - Objects the migrations created are dropped; objects they changed or dropped are restored
//!   from the schema dump (views, functions, indexes, constraints, triggers, ...), and with
//!   them everything a drop cascades to. Comments and grants come back with their object.
//! - What can be put back in place is: a kept table's comments, grants, row security, column
//!   defaults and nullability; renamed schemas, types and sequences; sequence options; domain
//!   defaults and constraints; extension versions.
//! - An enum that gained labels is recreated with its old labels under its name and the
//!   columns holding it are converted; what depends on it or on those columns is dropped first
//!   and restored after.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::{Edge, EnumDependents, Kind, Object, ObjectId, SequenceValue};
use super::fixes;
use super::toc::{self, Entry};
use crate::compare::SchemaFilter;
use crate::compare::model::{Model, Table};
use crate::db::{quote_ident, quote_literal};

/// One statement of a script and what it is for (the error names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub what: String,
    pub sql: String,
}

impl Step {
    pub(super) fn new(what: impl Into<String>, sql: impl Into<String>) -> Step {
        Step {
            what: what.into(),
            sql: sql.into(),
        }
    }
}

/// Everything the planner looks at.
pub struct Facts<'a> {
    pub m0: &'a Model,
    pub m1: &'a Model,
    /// The inventory before the migrations, and now.
    pub pre: &'a [Object],
    pub now: &'a [Object],
    pub filter: &'a SchemaFilter,
    /// Tables (model keys) whose rows differ from the recorded ones.
    pub rows_changed: &'a BTreeSet<String>,
    pub toc: &'a [Entry],
    pub data_toc: &'a [Entry],
    /// A schema pgship never drops objects from (where migration state lives).
    pub protected_schema: Option<&'a str>,
    pub enum_deps: &'a EnumDependents,
    /// Owner of each enum type to be recreated, by the type's oid.
    pub type_owners: &'a BTreeMap<u32, String>,
    /// The connected role.
    pub current_user: &'a str,
    /// Pre-existing objects a dry run of the drops removed.
    pub doomed: &'a BTreeSet<(u32, u32)>,
    /// Pre-existing tables a dry run of the drops took a column from.
    pub doomed_columns: &'a BTreeSet<u32>,
    pub sequences: &'a [SequenceValue],
    /// Sequences (model keys) the SQL set or altered.
    pub touched_sequences: &'a BTreeSet<String>,
}

/// What to do.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Objects to drop, unordered (see [`order_drops`]), as indexes into `Facts::now`.
    pub drops: Vec<usize>,
    /// After the drops, before the restore: renames back, extension versions, enum swaps.
    pub early: Vec<Step>,
    /// Schema dump entries to restore (pre-data and post-data lists, in archive order).
    pub pre_ids: Vec<i32>,
    pub post_ids: Vec<i32>,
    /// Data dump entries to restore.
    pub data_ids: Vec<i32>,
    /// After the restore: in-place fixes, sequence values, refreshes.
    pub late: Vec<Step>,
    pub recreated_tables: Vec<String>,
    /// The oids of the recreated tables.
    pub recreate_oids: BTreeSet<u32>,
    pub restored: Vec<String>,
    /// Pre-existing objects the drops remove on purpose.
    pub explicit_doomed: BTreeSet<(u32, u32)>,
    /// Tables that must be restored but whose rows were not dumped.
    pub missing_data: Vec<(String, String)>,
    /// Objects that cannot be put back (the proof will show them).
    pub warnings: Vec<String>,
}

const PG_CLASS: u32 = 1259;

/// Lookups over the facts by catalog identity.
struct Cx<'a> {
    f: &'a Facts<'a>,
    pre_by: BTreeMap<ObjectId, &'a Object>,
    now_by: BTreeMap<ObjectId, &'a Object>,
    /// Schema dump entries with a catalog identity.
    toc_by: BTreeMap<ObjectId, &'a Entry>,
}

impl<'a> Cx<'a> {
    fn new(f: &'a Facts<'a>) -> Cx<'a> {
        Cx {
            f,
            pre_by: f.pre.iter().map(|o| (o.id(), o)).collect(),
            now_by: f.now.iter().map(|o| (o.id(), o)).collect(),
            toc_by: f
                .toc
                .iter()
                .filter(|e| e.tableoid != 0 && !e.is_attached())
                .map(|e| ((e.tableoid, e.oid), e))
                .collect(),
        }
    }

    /// The object as it is now, if it still exists.
    fn now_of(&self, o: &Object) -> Option<&'a Object> {
        self.now_by.get(&o.id()).copied()
    }
}

/// Decide.
pub fn plan<'a>(f: &'a Facts<'a>) -> Plan {
    let cx = Cx::new(f);
    let mut p = Plan::default();
    let mut recreate = tables_to_recreate(&cx);
    choose_drops(&cx, &recreate, &mut p);
    early_renames(f, &|o| cx.now_of(o), &mut p);
    let swaps = enum_swaps(f, &|o| cx.now_of(o));
    for (o, n) in &swaps {
        fixes::swap_enum(f, o, n, &recreate, &mut p);
    }
    let swapped: BTreeSet<ObjectId> = swaps.iter().map(|(o, _)| o.id()).collect();
    let restores = choose_restores(&cx, &swapped, &mut recreate, &mut p);

    p.recreate_oids = recreate.keys().copied().collect();
    for (oid, why) in &recreate {
        if let Some(t) = cx.pre_by.get(&(PG_CLASS, *oid)) {
            p.recreated_tables.push(format!("{} ({why})", t.key()));
        }
    }
    data_entries(f, &recreate, &cx.pre_by, &restores.sequences, &mut p);
    let mut chosen = restores.primary;
    chosen.extend(restores.attached_only.iter().copied());
    let (mut pre_ids, post_ids) = toc::select(f.toc, &chosen);
    pre_ids.retain(|id| !restores.attached_only.contains(id));
    p.pre_ids = pre_ids;
    p.post_ids = post_ids;
    kept_table_fixes(&cx, &recreate, &mut p);
    fixes::sequences(f, &|o| cx.now_of(o), &restores.sequences, &mut p);
    p.late.extend(
        restores
            .refresh
            .into_iter()
            .map(|sql| Step::new("refreshing a materialized view", sql)),
    );
    p
}

/// Pre-existing tables to drop and restore with their rows, and why.
fn tables_to_recreate(cx: &Cx<'_>) -> BTreeMap<u32, String> {
    let renames = type_renames(cx.f);
    cx.f.pre
        .iter()
        .filter(|o| o.kind == Kind::Table && !o.derived)
        .filter_map(|o| {
            table_needs_recreating(cx.f, &renames, o, cx.now_of(o)).map(|why| (o.oid, why))
        })
        .collect()
}

/// Drops: what the migrations created, the current form of what they changed, tables to
/// recreate, and whatever stands in the way of an enum swap. Sub-objects of what is dropped
/// go with it.
fn choose_drops(cx: &Cx<'_>, recreate: &BTreeMap<u32, String>, p: &mut Plan) {
    let f = cx.f;
    let new_relations: BTreeSet<u32> = f
        .now
        .iter()
        .filter(|n| n.class == PG_CLASS && !cx.pre_by.contains_key(&n.id()))
        .map(|n| n.oid)
        .collect();
    let parent_gone = |parent: u32| {
        parent != 0 && (recreate.contains_key(&parent) || new_relations.contains(&parent))
    };
    for (i, n) in f.now.iter().enumerate() {
        if n.derived
            || matches!(n.kind, Kind::ConstraintIndex | Kind::Default)
            || f.protected_schema == Some(n.schema.as_str())
        {
            continue;
        }
        let pre = cx.pre_by.get(&n.id());
        let enum_dep = f.enum_deps.objects.contains(&n.id());
        let wanted = match pre {
            None => allowed(f.filter, n) || enum_dep,
            Some(o) => {
                (n.kind == Kind::Table && recreate.contains_key(&n.oid))
                    || changed(f, o, n)
                    || enum_dep
            }
        };
        let goes_with_parent = (n.kind.is_sub_object()
            || matches!(n.kind, Kind::Index | Kind::Sequence))
            && parent_gone(n.parent);
        if !wanted || goes_with_parent {
            continue;
        }
        p.drops.push(i);
        if pre.is_some() {
            p.explicit_doomed.insert(n.id());
        }
    }
}

/// What `choose_restores` found besides the plan's lists.
#[derive(Default)]
struct Restores {
    /// Schema dump entries to restore.
    primary: BTreeSet<i32>,
    /// Entries whose comments and grants are restored, not the entries themselves (enums
    /// recreated in place).
    attached_only: BTreeSet<i32>,
    refresh: Vec<String>,
    /// Sequences restored from the dump.
    sequences: BTreeSet<String>,
}

/// Restore every pre-existing object that is gone now or goes with the drops: from the
/// schema dump, or (a constraint written inside its table's definition) from its recorded
/// definition.
fn choose_restores(
    cx: &Cx<'_>,
    swapped: &BTreeSet<ObjectId>,
    recreate: &mut BTreeMap<u32, String>,
    p: &mut Plan,
) -> Restores {
    let f = cx.f;
    let mut r = Restores::default();
    for o in f.pre.iter().filter(|o| !o.derived) {
        let gone = cx.now_of(o).is_none()
            || f.doomed.contains(&o.id())
            || p.explicit_doomed.contains(&o.id())
            || (o.kind == Kind::Table && recreate.contains_key(&o.oid));
        if !gone || o.kind == Kind::ConstraintIndex {
            continue;
        }
        let entry = cx.toc_by.get(&o.id());
        if swapped.contains(&o.id()) {
            r.attached_only.extend(entry.map(|e| e.dump_id));
            continue;
        }
        let Some(e) = entry else {
            restore_from_definition(cx, recreate, o, p);
            continue;
        };
        r.primary.insert(e.dump_id);
        p.restored.push(describe_in(&cx.pre_by, o));
        match o.kind {
            Kind::Table => {
                recreate
                    .entry(o.oid)
                    .or_insert_with(|| "dropped along with other objects".into());
            }
            Kind::MaterializedView if o.def.as_deref() == Some("true") => {
                r.refresh.push(format!(
                    "REFRESH MATERIALIZED VIEW {}",
                    qualified(&o.schema, &o.name)
                ));
            }
            Kind::Sequence => {
                r.sequences.insert(o.key());
            }
            _ => {}
        }
    }
    r
}

/// An object the schema dump holds no entry for: a constraint or a domain constraint written
/// inside its table's (domain's) definition comes back with it, or from its recorded
/// definition when its table stays; a default is set with its table's attributes.
fn restore_from_definition(
    cx: &Cx<'_>,
    recreate: &BTreeMap<u32, String>,
    o: &Object,
    p: &mut Plan,
) {
    let f = cx.f;
    let parent_table = cx.pre_by.get(&(PG_CLASS, o.parent));
    let parent_restored = o.parent != 0
        && (recreate.contains_key(&o.parent)
            || parent_table.is_some_and(|t| cx.now_of(t).is_none()));
    match (o.kind, parent_table, o.def.as_deref()) {
        (Kind::Default, _, _) => {}
        (Kind::Constraint, _, _) if parent_restored => {}
        (Kind::Constraint, Some(t), Some(def)) => p.late.push(Step::new(
            describe_in(&cx.pre_by, o),
            format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {def}",
                qualified(&t.schema, &t.name),
                quote_ident(&o.name)
            ),
        )),
        (Kind::DomainConstraint, _, Some(def)) => {
            let domain = cx.pre_by.get(&(1247, o.parent));
            if let Some(d) =
                domain.filter(|d| cx.now_of(d).is_some() && !f.doomed.contains(&d.id()))
            {
                p.late.push(Step::new(
                    describe_in(&cx.pre_by, o),
                    format!(
                        "ALTER DOMAIN {} ADD CONSTRAINT {} {def}",
                        qualified(&d.schema, &d.name),
                        quote_ident(&o.name)
                    ),
                ));
            }
        }
        _ => p.warnings.push(format!(
            "{} cannot be restored: the schema dump does not hold it",
            describe_in(&cx.pre_by, o)
        )),
    }
}

/// Comments, grants, row security, defaults and nullability of the tables that stay.
fn kept_table_fixes(cx: &Cx<'_>, recreate: &BTreeMap<u32, String>, p: &mut Plan) {
    let f = cx.f;
    for o in f.pre.iter().filter(|o| o.kind == Kind::Table && !o.derived) {
        let Some(n) = cx.now_of(o) else { continue };
        if recreate.contains_key(&o.oid) || n.key() != o.key() {
            continue;
        }
        let (Some(t0), Some(t1)) = (f.m0.tables.get(&o.key()), f.m1.tables.get(&o.key())) else {
            continue;
        };
        // Defaults a drop took along (and the dump does not restore separately).
        let doomed_defaults: BTreeSet<&str> = f
            .pre
            .iter()
            .filter(|d| {
                d.kind == Kind::Default
                    && d.parent == o.oid
                    && !cx.toc_by.contains_key(&d.id())
                    && (f.doomed.contains(&d.id()) || cx.now_of(d).is_none())
            })
            .map(|d| d.name.as_str())
            .collect();
        fixes::table(o, t0, t1, &doomed_defaults, p);
    }
}

fn allowed(filter: &SchemaFilter, o: &Object) -> bool {
    if o.kind == Kind::Extension {
        return filter.allows(&o.schema) || o.schema == "pg_catalog";
    }
    if o.kind == Kind::Schema {
        return filter.allows(&o.name);
    }
    filter.allows(&o.schema)
}

pub(super) fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// `public.users_pkey on public.users`, `public.users`: an object for messages.
fn describe_in(by_id: &BTreeMap<(u32, u32), &Object>, o: &Object) -> String {
    let word = o.kind.word();
    if o.kind.is_sub_object() || matches!(o.kind, Kind::Index | Kind::ConstraintIndex) {
        let class = if o.kind == Kind::DomainConstraint {
            1247
        } else {
            PG_CLASS
        };
        if let Some(t) = by_id.get(&(class, o.parent)) {
            return format!("{word} {} on {}", o.name, t.key());
        }
    }
    format!("{word} {}", o.key())
}

/// `constraint users_pkey on public.users`, `table public.users`: an object of `objects` for
/// messages.
pub fn describe(objects: &[Object], o: &Object) -> String {
    let parent = objects.iter().find(|x| {
        x.oid == o.parent
            && x.class
                == if o.kind == Kind::DomainConstraint {
                    1247
                } else {
                    PG_CLASS
                }
    });
    let by_id: BTreeMap<(u32, u32), &Object> = parent.map(|x| (x.id(), x)).into_iter().collect();
    describe_in(&by_id, o)
}

/// Whether a table differs in a way only recreating it puts back: its columns (names, types,
/// generation, identity, collation), partitioning, inheritance or persistence.
pub fn structure_differs(t0: &Table, t1: &Table) -> bool {
    structure_differs_renamed(t0, t1, &BTreeMap::new())
}

/// [`structure_differs`], reading a column type renamed since (`renamed`: its name now -> its
/// recorded name, as `format_type` prints them) as its recorded name: the type is renamed
/// back in place.
fn structure_differs_renamed(t0: &Table, t1: &Table, renamed: &BTreeMap<String, String>) -> bool {
    let type_of = |t: &str| -> String {
        let base = t.trim_end_matches("[]");
        match renamed.get(base) {
            Some(old) => format!("{old}{}", &t[base.len()..]),
            None => t.to_string(),
        }
    };
    if t0.columns.len() != t1.columns.len()
        || t0.partition_key != t1.partition_key
        || t0.partition_of != t1.partition_of
        || t0.inherits != t1.inherits
        || t0.unlogged != t1.unlogged
    {
        return true;
    }
    t0.columns.iter().any(|(name, c0)| {
        t1.columns.get(name).is_none_or(|c1| {
            c0.data_type != type_of(&c1.data_type)
                || c0.generated != c1.generated
                || c0.identity != c1.identity
                || c0.identity_options != c1.identity_options
                || c0.collation != c1.collation
        })
    })
}

/// Types renamed since they were recorded: their name now -> their recorded name, as
/// `format_type` prints them with `search_path = public`.
fn type_renames(f: &Facts<'_>) -> BTreeMap<String, String> {
    let text = |o: &Object| {
        if o.schema == "public" {
            o.name.clone()
        } else {
            format!("{}.{}", o.schema, o.name)
        }
    };
    let now: BTreeMap<(u32, u32), &Object> = f.now.iter().map(|o| (o.id(), o)).collect();
    f.pre
        .iter()
        .filter(|o| {
            matches!(
                o.kind,
                Kind::Enum | Kind::Domain | Kind::CompositeType | Kind::RangeType
            )
        })
        .filter_map(|o| {
            let n = now.get(&o.id())?;
            (n.key() != o.key()).then(|| (text(n), text(o)))
        })
        .collect()
}

fn table_needs_recreating(
    f: &Facts<'_>,
    renames: &BTreeMap<String, String>,
    o: &Object,
    n: Option<&Object>,
) -> Option<String> {
    let Some(n) = n else {
        return Some("dropped by the migrations".into());
    };
    if n.key() != o.key() {
        return Some(format!("renamed to {}", n.key()));
    }
    if f.doomed.contains(&o.id()) {
        return Some("dropped along with other objects".into());
    }
    if f.doomed_columns.contains(&o.oid) {
        return Some("a column of it goes with other objects".into());
    }
    match (f.m0.tables.get(&o.key()), f.m1.tables.get(&o.key())) {
        (Some(t0), Some(t1)) if structure_differs_renamed(t0, t1, renames) => {
            Some("its columns or partitioning changed".into())
        }
        _ if f.rows_changed.contains(&o.key()) => Some("its rows changed".into()),
        _ => None,
    }
}

/// Whether a pre-existing object that still exists differs in a way that is undone by
/// dropping it and restoring it from the dump.
fn changed(f: &Facts<'_>, o: &Object, n: &Object) -> bool {
    let renamed = n.key() != o.key();
    let parent_key = |objs: &[Object], x: &Object| {
        objs.iter()
            .find(|t| t.class == PG_CLASS && t.oid == x.parent)
            .map(Object::key)
    };
    match o.kind {
        Kind::View | Kind::MaterializedView => {
            renamed || f.m0.views.get(&o.key()) != f.m1.views.get(&n.key())
        }
        Kind::Function => renamed || f.m0.functions.get(&o.key()) != f.m1.functions.get(&n.key()),
        Kind::Index => renamed || f.m0.indexes.get(&o.key()) != f.m1.indexes.get(&n.key()),
        Kind::Constraint | Kind::DomainConstraint => n.name != o.name || n.def != o.def,
        Kind::Trigger | Kind::Policy => {
            if n.name != o.name {
                return true;
            }
            let (Some(k0), Some(k1)) = (parent_key(f.pre, o), parent_key(f.now, n)) else {
                return true;
            };
            let defs = |m: &Model, k: &str| {
                let t = m.tables.get(k);
                let v = m.views.get(k);
                match o.kind {
                    Kind::Trigger => t
                        .and_then(|t| t.triggers.get(&o.name))
                        .or_else(|| v.and_then(|v| v.triggers.get(&o.name)))
                        .cloned(),
                    _ => t.and_then(|t| t.policies.get(&o.name)).cloned(),
                }
            };
            // A trigger's text names its table: compare it under the old name.
            let now = defs(f.m1, &k1).map(|d| d.replace(&k1, &k0));
            defs(f.m0, &k0) != now
        }
        Kind::Rule | Kind::Collation | Kind::ForeignTable => renamed,
        _ => false,
    }
}

/// Enums whose labels differ from the recorded ones: (before, now).
fn enum_swaps<'a>(
    f: &'a Facts<'a>,
    now_of: &dyn Fn(&Object) -> Option<&'a Object>,
) -> Vec<(&'a Object, &'a Object)> {
    f.pre
        .iter()
        .filter_map(|o| {
            let n = now_of(o)?;
            enum_labels_differ(f.m0, f.m1, o, n).then_some((o, n))
        })
        .collect()
}

fn enum_labels_differ(m0: &Model, m1: &Model, o: &Object, n: &Object) -> bool {
    o.kind == Kind::Enum
        && m0
            .enums
            .get(&o.key())
            .is_some_and(|before| m1.enums.get(&n.key()) != Some(before))
}

/// The current oids of the enums that must get their old labels back.
pub fn enum_swap_candidates(m0: &Model, m1: &Model, pre: &[Object], now: &[Object]) -> Vec<u32> {
    let now_by: BTreeMap<(u32, u32), &Object> = now.iter().map(|o| (o.id(), o)).collect();
    pre.iter()
        .filter_map(|o| {
            let n = now_by.get(&o.id())?;
            enum_labels_differ(m0, m1, o, n).then_some(n.oid)
        })
        .collect()
}

/// Renames back (schemas, types, sequences) and extension versions.
fn early_renames<'a>(
    f: &'a Facts<'a>,
    now_of: &dyn Fn(&Object) -> Option<&'a Object>,
    p: &mut Plan,
) {
    let mut schemas = Vec::new();
    let mut others = Vec::new();
    for o in f.pre {
        let Some(n) = now_of(o) else { continue };
        if p.explicit_doomed.contains(&o.id()) {
            continue;
        }
        match o.kind {
            Kind::Schema if n.name != o.name => schemas.push(Step::new(
                format!("schema {} renamed back from {}", o.name, n.name),
                format!(
                    "ALTER SCHEMA {} RENAME TO {}",
                    quote_ident(&n.name),
                    quote_ident(&o.name)
                ),
            )),
            Kind::Extension if n.def != o.def => {
                if let Some(v) = &o.def {
                    others.push(Step::new(
                        format!("extension {} back to version {v}", o.name),
                        format!(
                            "ALTER EXTENSION {} UPDATE TO {}",
                            quote_ident(&o.name),
                            quote_literal(v)
                        ),
                    ));
                }
            }
            Kind::Enum | Kind::Domain | Kind::CompositeType | Kind::RangeType | Kind::Sequence
                if n.name != o.name || n.schema != o.schema =>
            {
                let word = match o.kind {
                    Kind::Sequence => "SEQUENCE",
                    Kind::Domain => "DOMAIN",
                    _ => "TYPE",
                };
                // After the schemas are renamed back, the object is in its current schema's
                // old name.
                let schema_now = f
                    .pre
                    .iter()
                    .find(|s| {
                        s.kind == Kind::Schema && now_of(s).is_some_and(|x| x.name == n.schema)
                    })
                    .map_or(n.schema.clone(), |s| s.name.clone());
                let mut at = qualified(&schema_now, &n.name);
                if n.name != o.name {
                    others.push(Step::new(
                        format!("{} {} renamed back", o.kind.word(), o.key()),
                        format!("ALTER {word} {at} RENAME TO {}", quote_ident(&o.name)),
                    ));
                    at = qualified(&schema_now, &o.name);
                }
                if schema_now != o.schema {
                    others.push(Step::new(
                        format!("{} {} moved back", o.kind.word(), o.key()),
                        format!("ALTER {word} {at} SET SCHEMA {}", quote_ident(&o.schema)),
                    ));
                }
            }
            Kind::Domain => {
                if let (Some(d0), Some(d1)) = (&o.def, &n.def) {
                    if d0 != d1 {
                        fixes::domain(o, d0, d1, p);
                    }
                }
            }
            _ => {}
        }
    }
    p.early.extend(schemas);
    p.early.extend(others);
}

/// Data entries for recreated tables and restored sequences; a table without data is noted.
fn data_entries(
    f: &Facts<'_>,
    recreate: &BTreeMap<u32, String>,
    pre_by: &BTreeMap<(u32, u32), &Object>,
    restored_seqs: &BTreeSet<String>,
    p: &mut Plan,
) {
    let mut covered_seqs = BTreeSet::new();
    for e in f.data_toc {
        match e.desc.as_str() {
            "TABLE DATA" if recreate.contains_key(&e.oid) => p.data_ids.push(e.dump_id),
            "SEQUENCE SET" => {
                let key = format!("{}.{}", e.namespace.as_deref().unwrap_or(""), e.tag);
                if restored_seqs.contains(&key) {
                    p.data_ids.push(e.dump_id);
                    covered_seqs.insert(key);
                }
            }
            _ => {}
        }
    }
    for (oid, why) in recreate {
        let Some(t) = pre_by.get(&(PG_CLASS, *oid)) else {
            continue;
        };
        let partitioned =
            f.m0.tables
                .get(&t.key())
                .is_some_and(|m| m.partition_key.is_some());
        let has_data = f
            .data_toc
            .iter()
            .any(|e| e.desc == "TABLE DATA" && e.oid == *oid);
        if !has_data && !partitioned {
            p.missing_data.push((t.key(), why.clone()));
        }
    }
    for s in f.sequences {
        if restored_seqs.contains(&s.sequence) && !covered_seqs.contains(&s.sequence) {
            p.late.push(fixes::setval(s));
        }
    }
}

/// The order to drop `objs` in: an object before what it depends on (`edges` are (dependent,
/// referenced) pairs), and otherwise dependents-first by kind (triggers, constraints, indexes,
/// views, tables, sequences, functions, types, schemas), then by name. Cycles are broken by
/// the same order.
pub fn order_drops<'a>(objs: &[&'a Object], edges: &[Edge]) -> Vec<&'a Object> {
    let index: BTreeMap<(u32, u32), usize> =
        objs.iter().enumerate().map(|(i, o)| (o.id(), i)).collect();
    // blockers[j]: dependents of j not yet dropped.
    let mut blockers = vec![0usize; objs.len()];
    let mut refs: Vec<Vec<usize>> = vec![Vec::new(); objs.len()];
    let mut seen = BTreeSet::new();
    for (dep, referenced) in edges {
        let (Some(&a), Some(&b)) = (index.get(dep), index.get(referenced)) else {
            continue;
        };
        if a != b && seen.insert((a, b)) {
            blockers[b] += 1;
            refs[a].push(b);
        }
    }
    let rank = |o: &Object| -> (u8, String) {
        let r = match o.kind {
            Kind::Trigger | Kind::Policy | Kind::Rule => 0,
            Kind::Constraint
                if o.def
                    .as_deref()
                    .is_some_and(|d| d.starts_with("FOREIGN KEY")) =>
            {
                1
            }
            Kind::Constraint | Kind::DomainConstraint | Kind::Default => 2,
            Kind::Index | Kind::ConstraintIndex => 3,
            Kind::MaterializedView => 4,
            Kind::View => 5,
            Kind::Table | Kind::ForeignTable => 6,
            Kind::Sequence => 7,
            Kind::Function => 8,
            Kind::Domain | Kind::CompositeType | Kind::RangeType => 9,
            Kind::Enum => 10,
            Kind::Collation => 11,
            Kind::Extension => 12,
            Kind::Schema => 13,
        };
        (r, o.key())
    };
    let mut done = vec![false; objs.len()];
    let mut out = Vec::with_capacity(objs.len());
    while out.len() < objs.len() {
        let pick = (0..objs.len())
            .filter(|&i| !done[i] && blockers[i] == 0)
            .min_by_key(|&i| rank(objs[i]))
            .or_else(|| {
                (0..objs.len())
                    .filter(|&i| !done[i])
                    .min_by_key(|&i| rank(objs[i]))
            })
            .expect("an object is left");
        done[pick] = true;
        for &b in &refs[pick] {
            blockers[b] = blockers[b].saturating_sub(1);
        }
        out.push(objs[pick]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(kind: Kind, class: u32, oid: u32, name: &str, parent: u32) -> Object {
        Object {
            kind,
            class,
            oid,
            schema: "public".into(),
            name: name.into(),
            parent,
            derived: false,
            def: None,
            drop: format!("DROP {name}"),
        }
    }

    #[test]
    fn drops_go_dependents_first() {
        let schema = obj(Kind::Schema, 2615, 1, "app", 0);
        let table = obj(Kind::Table, PG_CLASS, 2, "posts", 0);
        let view = obj(Kind::View, PG_CLASS, 3, "v_posts", 0);
        let mut fk = obj(Kind::Constraint, 2606, 4, "posts_user_fk", 2);
        fk.def = Some("FOREIGN KEY (user_id) REFERENCES users(id)".into());
        let func = obj(Kind::Function, 1255, 5, "touch()", 0);
        let trigger = obj(Kind::Trigger, 2620, 6, "trg", 2);
        let enum_t = obj(Kind::Enum, 1247, 7, "mood", 0);
        let seq = obj(Kind::Sequence, PG_CLASS, 8, "posts_id_seq", 2);
        let objs = vec![&schema, &enum_t, &func, &table, &view, &seq, &trigger, &fk];
        // The view reads the table; the trigger calls the function; the table's column uses
        // the enum; everything lives in the schema; the table's default uses the sequence.
        let edges = vec![
            ((PG_CLASS, 3), (PG_CLASS, 2)),
            ((2620, 6), (1255, 5)),
            ((2620, 6), (PG_CLASS, 2)),
            ((PG_CLASS, 2), (1247, 7)),
            ((PG_CLASS, 2), (2615, 1)),
            ((PG_CLASS, 2), (PG_CLASS, 8)),
            ((1247, 7), (2615, 1)),
        ];
        let order: Vec<&str> = order_drops(&objs, &edges)
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(
            order,
            [
                "trg",
                "posts_user_fk",
                "v_posts",
                "posts",
                "posts_id_seq",
                "touch()",
                "mood",
                "app"
            ]
        );
        // A cycle is broken by the kinds.
        let cyclic = vec![
            ((PG_CLASS, 2), (PG_CLASS, 3)),
            ((PG_CLASS, 3), (PG_CLASS, 2)),
            ((PG_CLASS, 2), (2615, 1)),
            ((PG_CLASS, 3), (2615, 1)),
        ];
        let order: Vec<&str> = order_drops(&[&table, &view, &schema], &cyclic)
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(order, ["v_posts", "posts", "app"]);
    }

    fn table(cols: &[(&str, &str)]) -> Table {
        crate::compare::model::testing::table(cols)
    }

    #[test]
    fn structure_changes() {
        let a = table(&[("id", "integer"), ("name", "text")]);
        assert!(!structure_differs(&a, &a.clone()));
        assert!(structure_differs(
            &a,
            &table(&[("id", "bigint"), ("name", "text")])
        ));
        assert!(structure_differs(
            &a,
            &table(&[("id", "integer"), ("full_name", "text")])
        ));
        assert!(structure_differs(&a, &table(&[("id", "integer")])));
        let mut b = a.clone();
        b.comment = Some("x".into());
        b.columns.get_mut("name").unwrap().not_null = true;
        b.columns.get_mut("name").unwrap().default = Some("'x'::text".into());
        assert!(!structure_differs(&a, &b), "fixed in place");
        let mut p = Plan::default();
        let o = obj(Kind::Table, PG_CLASS, 2, "users", 0);
        fixes::table(&o, &a, &b, &BTreeSet::new(), &mut p);
        let sql: Vec<&str> = p.late.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            sql,
            [
                "COMMENT ON TABLE \"public\".\"users\" IS NULL",
                "ALTER TABLE \"public\".\"users\" ALTER COLUMN \"name\" DROP DEFAULT",
                "ALTER TABLE \"public\".\"users\" ALTER COLUMN \"name\" DROP NOT NULL",
            ]
        );
    }

    fn entry(
        id: i32,
        oids: (u32, u32),
        desc: &str,
        tag: &str,
        section: toc::Section,
        deps: &[i32],
    ) -> Entry {
        Entry {
            dump_id: id,
            tableoid: oids.0,
            oid: oids.1,
            desc: desc.into(),
            namespace: Some("public".into()),
            tag: tag.into(),
            owner: Some("postgres".into()),
            section,
            deps: deps.to_vec(),
        }
    }

    /// users is kept (its index was dropped), audit was dropped, posts is new.
    fn scenario(with_data: bool) -> Plan {
        use toc::Section::{Data, None as Attached, PostData, PreData};
        let users = obj(Kind::Table, PG_CLASS, 10, "users", 0);
        let idx = obj(Kind::Index, PG_CLASS, 11, "users_name_idx", 10);
        let mut pkey = obj(Kind::Constraint, 2606, 12, "users_pkey", 10);
        pkey.def = Some("PRIMARY KEY (id)".into());
        let pkey_idx = obj(Kind::ConstraintIndex, PG_CLASS, 13, "users_pkey", 10);
        let audit = obj(Kind::Table, PG_CLASS, 30, "audit", 0);
        let posts = obj(Kind::Table, PG_CLASS, 20, "posts", 0);
        let posts_pkey = obj(Kind::Constraint, 2606, 21, "posts_pkey", 20);
        let posts_idx = obj(Kind::ConstraintIndex, PG_CLASS, 22, "posts_pkey", 20);
        let pre = vec![users.clone(), idx, pkey.clone(), pkey_idx.clone(), audit];
        let now = vec![users, pkey, pkey_idx, posts, posts_pkey, posts_idx];
        let mut m0 = Model::default();
        m0.tables
            .insert("public.users".into(), table(&[("id", "integer")]));
        m0.tables
            .insert("public.audit".into(), table(&[("id", "integer")]));
        let mut m1 = Model::default();
        m1.tables
            .insert("public.users".into(), table(&[("id", "integer")]));
        m1.tables
            .insert("public.posts".into(), table(&[("id", "integer")]));
        let schema_toc = vec![
            entry(1, (PG_CLASS, 10), "TABLE", "users", PreData, &[]),
            entry(2, (PG_CLASS, 30), "TABLE", "audit", PreData, &[]),
            entry(3, (0, 0), "COMMENT", "TABLE audit", Attached, &[2]),
            entry(
                4,
                (2606, 12),
                "CONSTRAINT",
                "users users_pkey",
                PostData,
                &[1],
            ),
            entry(5, (PG_CLASS, 11), "INDEX", "users_name_idx", PostData, &[1]),
        ];
        let data_toc = if with_data {
            vec![entry(9, (0, 30), "TABLE DATA", "audit", Data, &[2])]
        } else {
            vec![]
        };
        let filter = SchemaFilter::default();
        let empty = BTreeSet::new();
        let none = BTreeSet::new();
        let deps = EnumDependents::default();
        let owners = BTreeMap::new();
        plan(&Facts {
            m0: &m0,
            m1: &m1,
            pre: &pre,
            now: &now,
            filter: &filter,
            rows_changed: &empty,
            toc: &schema_toc,
            data_toc: &data_toc,
            protected_schema: None,
            enum_deps: &deps,
            type_owners: &owners,
            current_user: "postgres",
            doomed: &none,
            doomed_columns: &BTreeSet::new(),
            sequences: &[],
            touched_sequences: &empty,
        })
    }

    #[test]
    fn plan_drops_the_new_and_restores_the_gone() {
        let p = scenario(true);
        let dropped: Vec<usize> = p.drops.clone();
        assert_eq!(dropped, [3], "only the new table; its key goes with it");
        assert_eq!(p.pre_ids, [2, 3], "the dropped table and its comment");
        assert_eq!(p.post_ids, [5], "the dropped index");
        assert_eq!(p.data_ids, [9]);
        assert_eq!(
            p.restored,
            ["index users_name_idx on public.users", "table public.audit"]
        );
        assert_eq!(
            p.recreated_tables,
            ["public.audit (dropped by the migrations)"]
        );
        assert!(p.missing_data.is_empty() && p.warnings.is_empty());
        let p = scenario(false);
        assert_eq!(
            p.missing_data,
            [(
                "public.audit".to_string(),
                "dropped by the migrations".to_string()
            )]
        );
    }
}
