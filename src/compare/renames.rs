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

use std::collections::{BTreeMap, HashMap};

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, KeywordKind, ObjectType, RangeVar, ScanToken, Token};

use super::Difference;
use super::model::*;

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
        let mut sim = Simulation::default();
        for sql in statements {
            let Ok(parsed) = pg_query::parse(sql, 0) else {
                continue;
            };
            for raw in &parsed.protobuf.stmts {
                if let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
                    sim.statement(node);
                }
            }
        }
        sim.renames()
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

/// What a name holds at some point of the SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// The target's object of this name (before the SQL).
    Target(String),
    /// Something the SQL created, or nothing (renamed away, dropped).
    Other,
}

/// The names the SQL has touched so far; a name it has not touched is the target's own.
#[derive(Debug, Default)]
struct Simulation {
    /// Current `schema.table` -> what it is.
    tables: BTreeMap<String, Origin>,
    /// (target `schema.table`, current column) -> what it is.
    columns: BTreeMap<(String, String), Origin>,
}

fn rel_key(rv: &RangeVar) -> String {
    let schema = if rv.schemaname.is_empty() {
        "public"
    } else {
        &rv.schemaname
    };
    format!("{schema}.{}", rv.relname)
}

impl Simulation {
    fn table_origin(&self, name: &str) -> Origin {
        self.tables
            .get(name)
            .cloned()
            .unwrap_or_else(|| Origin::Target(name.to_string()))
    }

    fn move_table(&mut self, old: String, new: String) {
        let origin = self.table_origin(&old);
        self.tables.insert(old, Origin::Other);
        self.tables.insert(new, origin);
    }

    /// Set a column of the current table `table` (when it is the target's) to `origin`.
    fn set_column(&mut self, table: &str, column: &str, origin: Origin) {
        if let Origin::Target(t) = self.table_origin(table) {
            self.columns.insert((t, column.to_string()), origin);
        }
    }

    fn rename_column(&mut self, table: &str, old: &str, new: &str) {
        let Origin::Target(t) = self.table_origin(table) else {
            return;
        };
        let origin = self
            .columns
            .get(&(t.clone(), old.to_string()))
            .cloned()
            .unwrap_or_else(|| Origin::Target(old.to_string()));
        self.columns
            .insert((t.clone(), old.to_string()), Origin::Other);
        self.columns.insert((t, new.to_string()), origin);
    }

    fn statement(&mut self, node: &NodeEnum) {
        let table_types = [ObjectType::ObjectTable as i32];
        match node {
            NodeEnum::RenameStmt(r) => {
                let Some(rv) = &r.relation else { return };
                let key = rel_key(rv);
                if r.rename_type == ObjectType::ObjectTable as i32 {
                    let (schema, _) = key.split_once('.').unwrap_or(("public", ""));
                    let new = format!("{schema}.{}", r.newname);
                    self.move_table(key, new);
                } else if r.rename_type == ObjectType::ObjectColumn as i32
                    && table_types.contains(&r.relation_type)
                {
                    self.rename_column(&key, &r.subname, &r.newname);
                }
            }
            NodeEnum::AlterObjectSchemaStmt(a) if table_types.contains(&a.object_type) => {
                if let Some(rv) = &a.relation {
                    let new = format!("{}.{}", a.newschema, rv.relname);
                    self.move_table(rel_key(rv), new);
                }
            }
            NodeEnum::CreateStmt(c) => {
                if let Some(rv) = &c.relation {
                    self.tables.insert(rel_key(rv), Origin::Other);
                }
            }
            NodeEnum::CreateTableAsStmt(c) => {
                if let Some(rv) = c.into.as_ref().and_then(|i| i.rel.as_ref()) {
                    self.tables.insert(rel_key(rv), Origin::Other);
                }
            }
            NodeEnum::DropStmt(d) if table_types.contains(&d.remove_type) => {
                for obj in &d.objects {
                    if let Some(NodeEnum::List(l)) = obj.node.as_ref() {
                        let parts: Vec<&str> = l
                            .items
                            .iter()
                            .filter_map(|n| match n.node.as_ref() {
                                Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                                _ => None,
                            })
                            .collect();
                        let key = match parts.as_slice() {
                            [t] => format!("public.{t}"),
                            [.., s, t] => format!("{s}.{t}"),
                            [] => continue,
                        };
                        self.tables.insert(key, Origin::Other);
                    }
                }
            }
            NodeEnum::AlterTableStmt(a) => {
                let Some(rv) = &a.relation else { return };
                let key = rel_key(rv);
                for cmd in &a.cmds {
                    let Some(NodeEnum::AlterTableCmd(c)) = cmd.node.as_ref() else {
                        continue;
                    };
                    if c.subtype == AlterTableType::AtDropColumn as i32 {
                        self.set_column(&key, &c.name, Origin::Other);
                    } else if c.subtype == AlterTableType::AtAddColumn as i32 {
                        if let Some(NodeEnum::ColumnDef(d)) =
                            c.def.as_ref().and_then(|d| d.node.as_ref())
                        {
                            self.set_column(&key, &d.colname, Origin::Other);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn renames(self) -> Renames {
        let mut r = Renames::default();
        for (name, origin) in &self.tables {
            if let Origin::Target(old) = origin {
                if old != name {
                    r.tables.insert(old.clone(), name.clone());
                }
            }
        }
        for ((table, name), origin) in &self.columns {
            if let Origin::Target(old) = origin {
                if old != name {
                    r.columns.insert((table.clone(), old.clone()), name.clone());
                }
            }
        }
        r
    }
}

/// Rewrites the names in the target's definitions (as `pg_get_*def` print them with
/// `search_path = public`) to the source's. A name is only rewritten where it can be what was
/// renamed: a qualified table name anywhere, a bare table name in a view or after
/// `REFERENCES`, a bare column name in its own table's definitions (or in the column list
/// after `REFERENCES` its table), a column qualified by its table's name (or `old`/`new` in a
/// trigger's condition). String literals, casts and function names are left alone. A rewrite
/// that misses only leaves a `*-changed` line that the rename caused (a view keeps its output
/// column's old name, `AS old`, so a view over a renamed column shows as changed).
struct Rewriter<'a> {
    renames: &'a Renames,
    /// Bare table name -> target `schema.table` keys of that name (for `q.col` in views).
    by_bare: HashMap<&'a str, Vec<&'a str>>,
}

/// One part of a name as the scanner read it: its value and byte range.
struct Part {
    value: String,
    start: usize,
    end: usize,
}

/// A replacement of `start..end` of the text.
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

impl Edit {
    fn of(part: &Part, text: String) -> Edit {
        Edit {
            start: part.start,
            end: part.end,
            text,
        }
    }
}

impl<'a> Rewriter<'a> {
    fn new(renames: &'a Renames, target: &'a Model) -> Rewriter<'a> {
        let mut by_bare: HashMap<&str, Vec<&str>> = HashMap::new();
        for key in target.tables.keys() {
            if let Some((_, bare)) = key.split_once('.') {
                by_bare.entry(bare).or_default().push(key);
            }
        }
        Rewriter { renames, by_bare }
    }

    fn table(&self, name: &str, t: &Table) -> Table {
        let own = Some(name);
        let mut t = t.clone();
        t.columns = t
            .columns
            .into_iter()
            .map(|(c, mut col)| {
                col.generated = col.generated.map(|g| self.text(&g, own));
                (self.renames.column(name, &c).to_string(), col)
            })
            .collect();
        for con in t.constraints.values_mut() {
            con.definition = self.text(&con.definition, own);
        }
        for def in t.triggers.values_mut().chain(t.policies.values_mut()) {
            *def = self.text(def, own);
        }
        t.partition_key = t.partition_key.map(|k| self.text(&k, own));
        if let Some(p) = &mut t.partition_of {
            p.parent = self.renames.table(&p.parent).to_string();
        }
        for parent in &mut t.inherits {
            *parent = self.renames.table(parent).to_string();
        }
        t
    }

    /// `text` with the renamed names replaced; `own` is the target table the definition
    /// belongs to (its bare names are its columns), `None` for a view.
    fn text(&self, text: &str, own: Option<&str>) -> String {
        let tokens = match pg_query::scan(text) {
            Ok(s) if !text.trim().is_empty() => s.tokens,
            _ => return text.to_string(),
        };
        let mut edits = Vec::new();
        // The table whose columns bare names are: `own`, or inside `REFERENCES t(...)`, t.
        let mut scope: Option<String> = own.map(str::to_string);
        let mut after_references = false;
        let mut depth = 0usize;
        // The depth the column list after `REFERENCES t` closes at.
        let mut references_list: Option<usize> = None;
        let mut i = 0;
        while i < tokens.len() {
            let t = tokens[i].token;
            if t == Token::References as i32 {
                after_references = true;
            } else if t == Token::Ascii40 as i32 {
                depth += 1;
            } else if t == Token::Ascii41 as i32 {
                depth = depth.saturating_sub(1);
                if references_list == Some(depth) {
                    references_list = None;
                    scope = own.map(str::to_string);
                }
            }
            let Some(parts) = read_name(text, &tokens, i) else {
                i += 1;
                continue;
            };
            let consumed = parts.len() * 2 - 1;
            let call = tokens.get(i + consumed).map(|t| t.token) == Some(Token::Ascii40 as i32);
            let cast = i > 0 && tokens[i - 1].token == Token::Typecast as i32;
            if after_references {
                after_references = false;
                let key = table_key(&parts);
                edits.extend(self.table_name(&parts, &key));
                if call {
                    references_list = Some(depth);
                    scope = Some(key);
                }
            } else if !cast && !call {
                edits.extend(self.name(&parts, scope.as_deref(), own.is_none()));
            }
            i += consumed;
        }
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for e in edits {
            out.push_str(&text[copied..e.start]);
            out.push_str(&e.text);
            copied = e.end;
        }
        out.push_str(&text[copied..]);
        out
    }

    /// A table's name, rewritten when the table is renamed.
    fn table_name(&self, parts: &[Part], key: &str) -> Vec<Edit> {
        let Some((schema, bare)) = self.renames.tables.get(key).and_then(|n| n.split_once('.'))
        else {
            return Vec::new();
        };
        match parts {
            [only] if schema == "public" => vec![Edit::of(only, quote_as_printed(bare))],
            // Moved out of public: qualified in place of the bare name.
            [only] => vec![Edit::of(
                only,
                format!("{}.{}", quote_as_printed(schema), quote_as_printed(bare)),
            )],
            [.., s, t] => vec![
                Edit::of(s, quote_as_printed(schema)),
                Edit::of(t, quote_as_printed(bare)),
            ],
            [] => Vec::new(),
        }
    }

    /// A name outside `REFERENCES`: a qualified table, a column of `scope`, `q.column`, or in
    /// a view a bare table.
    fn name(&self, parts: &[Part], scope: Option<&str>, view: bool) -> Vec<Edit> {
        match parts {
            [only] => match scope {
                Some(table) => self
                    .renames
                    .columns
                    .get(&(table.to_string(), only.value.clone()))
                    .map(|new| Edit::of(only, quote_as_printed(new)))
                    .into_iter()
                    .collect(),
                None if view => self.table_name(parts, &table_key(parts)),
                None => Vec::new(),
            },
            [_, _] if self.renames.tables.contains_key(&table_key(parts)) => {
                self.table_name(parts, &table_key(parts))
            }
            [q, c] => match self.qualifier_table(&q.value, scope) {
                Some(table) => self.qualified_column(&table, Some(q), c),
                None => Vec::new(),
            },
            [s, t, c] => {
                let table = format!("{}.{}", s.value, t.value);
                let mut edits = self.table_name(&parts[..2], &table);
                edits.extend(self.qualified_column(&table, None, c));
                edits
            }
            _ => Vec::new(),
        }
    }

    /// `q.c` where `q` stands for the target table `table`: the column renamed, and `q`
    /// too when it is the table's name and the table is renamed.
    fn qualified_column(&self, table: &str, q: Option<&Part>, c: &Part) -> Vec<Edit> {
        let mut edits = Vec::new();
        let bare = |key: &str| {
            key.split_once('.')
                .map_or(key.to_string(), |(_, b)| b.to_string())
        };
        if let (Some(q), Some(new)) = (q, self.renames.tables.get(table)) {
            if q.value == bare(table) {
                edits.push(Edit::of(q, quote_as_printed(&bare(new))));
            }
        }
        if let Some(new) = self
            .renames
            .columns
            .get(&(table.to_string(), c.value.clone()))
        {
            edits.push(Edit::of(c, quote_as_printed(new)));
        }
        edits
    }

    /// The target table a qualifier `q` of `q.column` names: the definition's own table (by
    /// its name, or `old`/`new` in a trigger), else the one table of that bare name (public
    /// first).
    fn qualifier_table(&self, q: &str, scope: Option<&str>) -> Option<String> {
        if let Some(own) = scope {
            let bare = own.split_once('.').map_or(own, |(_, b)| b);
            if q == bare || q == "old" || q == "new" {
                return Some(own.to_string());
            }
        }
        let keys = self.by_bare.get(q)?;
        let public = format!("public.{q}");
        if keys.contains(&public.as_str()) {
            return Some(public);
        }
        match keys.as_slice() {
            [only] => Some(only.to_string()),
            _ => None,
        }
    }
}

/// `schema.table` of a table name as printed (bare names are in public).
fn table_key(parts: &[Part]) -> String {
    match parts {
        [only] => format!("public.{}", only.value),
        [.., s, t] => format!("{}.{}", s.value, t.value),
        [] => String::new(),
    }
}

/// The name starting at token `i`: identifiers joined by `.`, as `pg_get_*def` print them
/// (quoted, or bare in lower case; keywords print in upper case and are not names).
fn read_name(text: &str, tokens: &[ScanToken], i: usize) -> Option<Vec<Part>> {
    let mut parts = vec![ident(text, tokens.get(i)?)?];
    let mut j = i + 1;
    while tokens
        .get(j)
        .is_some_and(|t| t.token == Token::Ascii46 as i32)
    {
        match tokens.get(j + 1).and_then(|t| ident(text, t)) {
            Some(p) => parts.push(p),
            None => break,
        }
        j += 2;
    }
    Some(parts)
}

/// An identifier token's value and byte range.
fn ident(text: &str, t: &ScanToken) -> Option<Part> {
    let (start, end) = (usize::try_from(t.start).ok()?, usize::try_from(t.end).ok()?);
    let raw = text.get(start..end)?;
    let word =
        t.token == Token::Ident as i32 || t.keyword_kind == KeywordKind::UnreservedKeyword as i32;
    if !word {
        return None;
    }
    let value = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None if raw.chars().any(|c| c.is_ascii_uppercase()) => return None,
        None => raw.to_string(),
    };
    Some(Part { value, start, end })
}

/// A name written as PostgreSQL's `quote_identifier` writes it: bare when it is lower case,
/// digits and underscores (not starting with a digit) and not a keyword other than an
/// unreserved one; quoted otherwise.
fn quote_as_printed(name: &str) -> String {
    let safe_chars = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let keyword = safe_chars
        && pg_query::scan(name)
            .ok()
            .and_then(|s| s.tokens.first().map(|t| t.keyword_kind))
            .is_some_and(|k| {
                k != KeywordKind::NoKeyword as i32 && k != KeywordKind::UnreservedKeyword as i32
            });
    if safe_chars && !keyword {
        name.to_string()
    } else {
        crate::db::quote_ident(name)
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
    fn sql_renames_are_followed_in_order() {
        let r = Renames::from_sql([
            r#"ALTER TABLE "customer" RENAME TO "client";"#,
            r#"ALTER TABLE "client" RENAME COLUMN "full_name" TO "display_name";"#,
            // Chained: the column's second rename, the table's second.
            "ALTER TABLE client RENAME COLUMN display_name TO name",
            "ALTER TABLE client RENAME TO clients",
            // The old name taken by a new table: not the target's customer any more.
            "CREATE TABLE customer (id int)",
            "ALTER TABLE customer RENAME COLUMN id TO cid",
            "ALTER TABLE customer RENAME TO customer_new",
            // Case kept, schemas followed.
            r#"ALTER TABLE app."Orders" RENAME TO "Purchases""#,
            "ALTER TABLE public.audit SET SCHEMA archive",
            // A column dropped and another renamed onto its name.
            "ALTER TABLE invoice DROP COLUMN amount",
            "ALTER TABLE invoice RENAME COLUMN amount_cents TO amount",
            // Views, indexes and constraints are not tables or columns.
            "ALTER VIEW v RENAME TO w",
            "ALTER INDEX i RENAME TO j",
            "ALTER TABLE invoice RENAME CONSTRAINT c1 TO c2",
            "this is not SQL",
        ]);
        assert_eq!(
            r,
            renames(
                &[
                    ("app.Orders", "app.Purchases"),
                    ("public.audit", "archive.audit"),
                    ("public.customer", "public.clients"),
                ],
                &[
                    ("public.customer", "full_name", "name"),
                    ("public.invoice", "amount_cents", "amount"),
                ]
            )
        );
        // Renamed there and back: nothing.
        assert!(
            Renames::from_sql(["ALTER TABLE a RENAME TO b", "ALTER TABLE b RENAME TO a"])
                .is_empty()
        );
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

    /// Definitions as PostgreSQL 15 prints them before and after `ALTER TABLE "Customer"
    /// RENAME TO client; ALTER TABLE client RENAME COLUMN full_name TO "Display"; ... RENAME
    /// COLUMN "order" TO ord; ALTER TABLE invoice RENAME COLUMN customer_id TO client_id`.
    #[test]
    fn definitions_are_rewritten_as_postgres_prints_them_after_the_rename() {
        let mut target = Model::default();
        target.tables.insert(
            "public.Customer".into(),
            table(&[("id", "int"), ("full_name", "text"), ("order", "int")]),
        );
        target
            .tables
            .insert("public.invoice".into(), table(&[("customer_id", "int")]));
        let r = renames(
            &[("public.Customer", "public.client")],
            &[
                ("public.Customer", "full_name", "Display"),
                ("public.Customer", "order", "ord"),
                ("public.invoice", "customer_id", "client_id"),
            ],
        );
        let rw = Rewriter::new(&r, &target);
        let cases = [
            (
                "public.Customer",
                "UNIQUE (email, full_name)",
                r#"UNIQUE (email, "Display")"#,
            ),
            (
                "public.Customer",
                "CHECK ((full_name <> 'full_name'::text))",
                r#"CHECK (("Display" <> 'full_name'::text))"#,
            ),
            (
                "public.invoice",
                r#"FOREIGN KEY (customer_id) REFERENCES "Customer"(id)"#,
                "FOREIGN KEY (client_id) REFERENCES client(id)",
            ),
            (
                "public.Customer",
                r#"CREATE INDEX cust_lower ON public."Customer" USING btree (lower(full_name)) WHERE ("order" > 0)"#,
                r#"CREATE INDEX cust_lower ON public.client USING btree (lower("Display")) WHERE (ord > 0)"#,
            ),
            (
                "public.Customer",
                r#"CREATE TRIGGER t1 BEFORE UPDATE OF full_name ON public."Customer" FOR EACH ROW WHEN ((old.full_name IS DISTINCT FROM new.full_name)) EXECUTE FUNCTION trg()"#,
                r#"CREATE TRIGGER t1 BEFORE UPDATE OF "Display" ON public.client FOR EACH ROW WHEN ((old."Display" IS DISTINCT FROM new."Display")) EXECUTE FUNCTION trg()"#,
            ),
            (
                "public.Customer",
                "AS PERMISSIVE FOR ALL TO PUBLIC USING ((full_name = CURRENT_USER))",
                r#"AS PERMISSIVE FOR ALL TO PUBLIC USING (("Display" = CURRENT_USER))"#,
            ),
            ("public.invoice", "(customer_id * 2)", "(client_id * 2)"),
        ];
        for (own, before, after) in cases {
            assert_eq!(rw.text(before, Some(own)), after, "{before}");
        }
        // A view: its table and columns qualified by the table's name follow; an alias's
        // columns are not known (the view then shows as changed).
        assert_eq!(
            rw.text(
                r#" SELECT "Customer".id, "Customer".full_name FROM "Customer";"#,
                None
            ),
            r#" SELECT client.id, client."Display" FROM client;"#
        );
        // A cast to a type named like a column, and a function named like one, stay.
        let r = renames(&[], &[("public.t", "mood", "feeling")]);
        let rw = Rewriter::new(&r, &target);
        assert_eq!(
            rw.text("CHECK ((mood <> 'x'::mood) AND mood(1))", Some("public.t")),
            "CHECK ((feeling <> 'x'::mood) AND mood(1))"
        );
        // Moved to another schema: a bare reference becomes qualified.
        let r = renames(&[("public.t", "archive.t")], &[]);
        let rw = Rewriter::new(&r, &target);
        assert_eq!(
            rw.text("FOREIGN KEY (a) REFERENCES t(id)", Some("public.u")),
            "FOREIGN KEY (a) REFERENCES archive.t(id)"
        );
    }

    #[test]
    fn names_are_quoted_as_postgres_quotes_them() {
        for (name, printed) in [
            ("display_name", "display_name"),
            ("Display", "\"Display\""),
            ("order", "\"order\""),
            ("user", "\"user\""),
            ("name", "name"),
            ("1st", "\"1st\""),
            ("a b", "\"a b\""),
            ("we\"ird", "\"we\"\"ird\""),
        ] {
            assert_eq!(quote_as_printed(name), printed);
        }
    }
}
