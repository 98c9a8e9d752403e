//! What the migrations being linted create, drop and rename, and which of the objects they
//! create depend on others (foreign keys, views, columns of a type, objects in a schema). DL08
//! adds this to the catalog's dependencies (pg_depend), which only know the database as it was
//! before the run, and leaves out dependents that an earlier statement dropped already.

use std::collections::{HashMap, HashSet};

use pg_query::protobuf::{AlterTableType, ConstrType, Node, ObjectType, RangeVar};
use pg_query::{NodeEnum, NodeRef};

use super::ast;
use super::catalog::{Dependent, Object, Part};

/// The objects of one lint run (carried across files).
#[derive(Debug, Default)]
pub struct RunObjects {
    created: HashSet<Object>,
    dropped: HashSet<Object>,
    dropped_parts: HashSet<(String, Part)>,
    dependents: HashMap<Object, Vec<Dependent>>,
    /// Relation key after a rename -> the key before it.
    renamed: HashMap<String, String>,
}

impl RunObjects {
    /// Whether an earlier statement of the run created `object`.
    pub fn created(&self, object: &Object) -> bool {
        self.created.contains(object)
    }

    /// `object` under the name the catalog knows it by (before the run's renames).
    pub fn original(&self, object: &Object) -> Object {
        let Object::Relation(key) = object else {
            return object.clone();
        };
        let mut key = key;
        let mut seen = 0;
        while let Some(before) = self.renamed.get(key) {
            key = before;
            seen += 1;
            if seen > self.renamed.len() {
                break;
            }
        }
        Object::Relation(key.clone())
    }

    /// The dependents the run created on `object`.
    pub fn dependents(&self, object: &Object) -> &[Dependent] {
        self.dependents.get(object).map_or(&[], Vec::as_slice)
    }

    /// Whether an earlier statement dropped `dep` (or what it belongs to).
    pub fn is_gone(&self, dep: &Dependent) -> bool {
        let Some(owner) = &dep.owner else {
            return false;
        };
        self.dropped.contains(&Object::Relation(owner.clone()))
            || dep
                .owner_part
                .as_ref()
                .is_some_and(|p| self.dropped_parts.contains(&(owner.clone(), p.clone())))
    }

    /// Record what a statement creates, drops, renames and makes depend on what.
    pub fn observe(&mut self, node: &NodeEnum) {
        match node {
            NodeEnum::DropStmt(d) => {
                let kind = ObjectType::try_from(d.remove_type).unwrap_or(ObjectType::Undefined);
                self.dropped
                    .extend(d.objects.iter().filter_map(|o| drop_object(kind, o)));
            }
            NodeEnum::CreateStmt(c) => {
                if let Some(rv) = &c.relation {
                    self.create_table(rv, &c.table_elts);
                }
            }
            NodeEnum::AlterTableStmt(_) => self.alter(node),
            NodeEnum::ViewStmt(v) => {
                if let Some(rv) = &v.view {
                    let what = format!("view {}", ast::rel_name(rv));
                    self.create(Object::Relation(ast::rel_key(rv)), &what);
                    self.reads(rv, &what, v.query.as_deref());
                }
            }
            NodeEnum::CreateTableAsStmt(c) => {
                if let Some(rv) = c.into.as_ref().and_then(|i| i.rel.as_ref()) {
                    let word = if c.objtype == ObjectType::ObjectMatview as i32 {
                        "materialized view"
                    } else {
                        "table"
                    };
                    let what = format!("{word} {}", ast::rel_name(rv));
                    self.create(Object::Relation(ast::rel_key(rv)), &what);
                    self.reads(rv, &what, c.query.as_deref());
                }
            }
            NodeEnum::IndexStmt(i) if !i.idxname.is_empty() => {
                let schema = i.relation.as_ref().map_or("", |r| r.schemaname.as_str());
                let what = format!("index {}", i.idxname);
                self.create(Object::Relation(ast::key(schema, &i.idxname)), &what);
            }
            NodeEnum::CreateSeqStmt(s) => {
                if let Some(rv) = &s.sequence {
                    let what = format!("sequence {}", ast::rel_name(rv));
                    self.create(Object::Relation(ast::rel_key(rv)), &what);
                }
            }
            NodeEnum::RenameStmt(r) if r.rename_type == ObjectType::ObjectTable as i32 => {
                if let Some(rv) = &r.relation {
                    let after = ast::key(&rv.schemaname, &r.newname);
                    self.renamed.insert(after, ast::rel_key(rv));
                }
            }
            _ => self.observe_other(node),
        }
    }

    /// Types, functions, schemas and extensions created.
    fn observe_other(&mut self, node: &NodeEnum) {
        match node {
            NodeEnum::CreateEnumStmt(e) => self.create_type(&e.type_name),
            NodeEnum::CreateDomainStmt(d) => self.create_type(&d.domainname),
            NodeEnum::CreateRangeStmt(r) => self.create_type(&r.type_name),
            NodeEnum::CompositeTypeStmt(c) => {
                if let Some(rv) = &c.typevar {
                    let what = format!("type {}", ast::rel_name(rv));
                    self.create(Object::Type(ast::rel_key(rv)), &what);
                }
            }
            NodeEnum::CreateFunctionStmt(f) => {
                let name = qualified_key(&f.funcname);
                let what = format!("function {}", ast::strings(&f.funcname).join("."));
                self.create(Object::Function(name), &what);
            }
            NodeEnum::CreateSchemaStmt(s) => {
                self.created.insert(Object::Schema(s.schemaname.clone()));
            }
            NodeEnum::CreateExtensionStmt(e) => {
                self.created.insert(Object::Extension(e.extname.clone()));
            }
            _ => {}
        }
    }

    /// `object` now exists; it is one of the objects of its schema.
    fn create(&mut self, object: Object, what: &str) {
        let schema = match &object {
            Object::Relation(k) | Object::Type(k) | Object::Function(k) => {
                k.split_once('.').map(|(s, _)| s.to_string())
            }
            _ => None,
        };
        if let Some(schema) = schema {
            self.depend(Object::Schema(schema), None, what.to_string(), None, None);
        }
        self.created.insert(object);
    }

    fn create_type(&mut self, names: &[Node]) {
        let what = format!("type {}", ast::strings(names).join("."));
        self.create(Object::Type(qualified_key(names)), &what);
    }

    fn depend(
        &mut self,
        on_object: Object,
        on: Option<Part>,
        description: String,
        owner: Option<String>,
        owner_part: Option<Part>,
    ) {
        self.dependents
            .entry(on_object)
            .or_default()
            .push(Dependent {
                on,
                description: format!("{description} (created earlier in this run)"),
                owner,
                owner_part,
            });
    }

    fn create_table(&mut self, rv: &RangeVar, elts: &[Node]) {
        let table = ast::rel_name(rv);
        let key = ast::rel_key(rv);
        self.create(Object::Relation(key.clone()), &format!("table {table}"));
        for elt in elts {
            match elt.node.as_ref() {
                Some(NodeEnum::ColumnDef(c)) => {
                    self.column(&key, &table, c);
                    for con in ast::column_constraints(c) {
                        self.foreign_key(&key, &table, con, Some(&c.colname));
                    }
                }
                Some(NodeEnum::Constraint(con)) => self.foreign_key(&key, &table, con, None),
                _ => {}
            }
        }
    }

    fn alter(&mut self, node: &NodeEnum) {
        let Some((a, rv)) = ast::alter_table(node) else {
            return;
        };
        let table = ast::rel_name(rv);
        let key = ast::rel_key(rv);
        for (cmd, t) in ast::alter_cmds(a) {
            match t {
                AlterTableType::AtDropColumn => {
                    self.dropped_parts
                        .insert((key.clone(), Part::Column(cmd.name.clone())));
                }
                AlterTableType::AtDropConstraint => {
                    self.dropped_parts
                        .insert((key.clone(), Part::Constraint(cmd.name.clone())));
                }
                AlterTableType::AtAddColumn => {
                    if let Some(c) = ast::column_def(cmd) {
                        self.column(&key, &table, c);
                        for con in ast::column_constraints(c) {
                            self.foreign_key(&key, &table, con, Some(&c.colname));
                        }
                    }
                }
                AlterTableType::AtAddConstraint => {
                    if let Some(con) = ast::constraint_def(cmd) {
                        self.foreign_key(&key, &table, con, None);
                    }
                }
                _ => {}
            }
        }
    }

    /// A column depends on its type (a user type or domain goes with its data).
    fn column(&mut self, key: &str, table: &str, c: &pg_query::protobuf::ColumnDef) {
        let Some(t) = &c.type_name else {
            return;
        };
        let names = ast::strings(&t.names);
        if names.first() == Some(&"pg_catalog") {
            return;
        }
        self.depend(
            Object::Type(qualified_key(&t.names)),
            None,
            format!("column {} of table {table}", c.colname),
            Some(key.to_string()),
            Some(Part::Column(c.colname.clone())),
        );
    }

    /// A foreign key depends on the referenced table (and on its columns when they are named).
    fn foreign_key(
        &mut self,
        key: &str,
        table: &str,
        con: &pg_query::protobuf::Constraint,
        column: Option<&str>,
    ) {
        if ast::constr_type(con) != ConstrType::ConstrForeign {
            return;
        }
        let Some(pk) = &con.pktable else {
            return;
        };
        let name = if con.conname.is_empty() {
            match column {
                Some(c) => format!("{}_{c}_fkey", table.rsplit('.').next().unwrap_or(table)),
                None => ast::constraint_name(con, table.rsplit('.').next().unwrap_or(table)),
            }
        } else {
            con.conname.clone()
        };
        let description = format!("constraint {name} on table {table}");
        let referenced: Vec<&str> = ast::strings(&con.pk_attrs);
        let parts: Vec<Option<Part>> = if referenced.is_empty() {
            vec![None]
        } else {
            referenced
                .iter()
                .map(|c| Some(Part::Column(c.to_string())))
                .collect()
        };
        for on in parts {
            self.depend(
                Object::Relation(ast::rel_key(pk)),
                on,
                description.clone(),
                Some(key.to_string()),
                Some(Part::Constraint(name.clone())),
            );
        }
    }

    /// A view (or a table or materialized view made from a query) depends on what it reads.
    fn reads(&mut self, rv: &RangeVar, what: &str, query: Option<&Node>) {
        let Some(q) = query.and_then(|q| q.node.as_ref()) else {
            return;
        };
        // A table made AS SELECT holds a copy: it does not depend on its source.
        if what.starts_with("table ") {
            return;
        }
        let mut read: Vec<String> = Vec::new();
        for (n, _, _, _) in q.nodes() {
            if let NodeRef::RangeVar(r) = n {
                read.push(ast::rel_key(r));
            }
        }
        read.sort();
        read.dedup();
        let owner = ast::rel_key(rv);
        for source in read {
            self.depend(
                Object::Relation(source),
                None,
                what.to_string(),
                Some(owner.clone()),
                None,
            );
        }
    }
}

/// `schema.name` of a qualified name given as a list of strings (`public` when unqualified).
fn qualified_key(names: &[Node]) -> String {
    match ast::strings(names).as_slice() {
        [.., schema, name] => ast::key(schema, name),
        [name] => ast::key("", name),
        [] => String::new(),
    }
}

/// The object a DROP names, as the catalog keys it; `None` for kinds DL08 does not look up.
pub fn drop_object(kind: ObjectType, node: &Node) -> Option<Object> {
    use ObjectType as O;
    match kind {
        O::ObjectTable
        | O::ObjectView
        | O::ObjectMatview
        | O::ObjectIndex
        | O::ObjectSequence
        | O::ObjectForeignTable => match node.node.as_ref()? {
            NodeEnum::List(l) => Some(Object::Relation(qualified_key(&l.items))),
            _ => None,
        },
        O::ObjectType | O::ObjectDomain => match node.node.as_ref()? {
            NodeEnum::TypeName(t) => Some(Object::Type(qualified_key(&t.names))),
            _ => None,
        },
        O::ObjectFunction | O::ObjectProcedure | O::ObjectRoutine | O::ObjectAggregate => {
            match node.node.as_ref()? {
                NodeEnum::ObjectWithArgs(f) => Some(Object::Function(qualified_key(&f.objname))),
                _ => None,
            }
        }
        O::ObjectSchema => Some(Object::Schema(ast::string(node)?.to_string())),
        O::ObjectExtension => Some(Object::Extension(ast::string(node)?.to_string())),
        _ => None,
    }
}
