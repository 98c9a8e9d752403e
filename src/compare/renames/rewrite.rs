//! Rewriting the names inside the target's definitions (`pg_get_*def` texts) to the source's
//! after renames, token by token with PostgreSQL's own scanner, so that a definition that
//! only follows a rename reads the same on both sides.

use std::collections::HashMap;

use pg_query::protobuf::{KeywordKind, ScanToken, Token};

use super::Renames;
use crate::compare::model::{Model, Table};

/// Rewrites the names in the target's definitions (as `pg_get_*def` print them with
/// `search_path = public`) to the source's. A name is only rewritten where it can be what was
/// renamed: a qualified table name anywhere, a bare table name in a view or after
/// `REFERENCES`, a bare column name in its own table's definitions (or in the column list
/// after `REFERENCES` its table), a column qualified by its table's name (or `old`/`new` in a
/// trigger's condition). String literals, casts and function names are left alone. A rewrite
/// that misses only leaves a `*-changed` line that the rename caused (a view keeps its output
/// column's old name, `AS old`, so a view over a renamed column shows as changed).
pub(super) struct Rewriter<'a> {
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

/// Whose columns bare names are as the scan goes: the definition's own table, or inside the
/// column list after `REFERENCES t`, t's.
#[derive(Default)]
struct Scope<'s> {
    own: Option<&'s str>,
    /// The referenced table, and the parenthesis depth its column list closes at.
    referenced: Option<(String, usize)>,
    after_references: bool,
    depth: usize,
}

impl Scope<'_> {
    fn token(&mut self, t: i32) {
        if t == Token::References as i32 {
            self.after_references = true;
        } else if t == Token::Ascii40 as i32 {
            self.depth += 1;
        } else if t == Token::Ascii41 as i32 {
            self.depth = self.depth.saturating_sub(1);
            if self
                .referenced
                .as_ref()
                .is_some_and(|(_, d)| *d == self.depth)
            {
                self.referenced = None;
            }
        }
    }

    fn columns_of(&self) -> Option<&str> {
        self.referenced
            .as_ref()
            .map(|(t, _)| t.as_str())
            .or(self.own)
    }
}

impl<'a> Rewriter<'a> {
    pub(super) fn new(renames: &'a Renames, target: &'a Model) -> Rewriter<'a> {
        let mut by_bare: HashMap<&str, Vec<&str>> = HashMap::new();
        for key in target.tables.keys() {
            if let Some((_, bare)) = key.split_once('.') {
                by_bare.entry(bare).or_default().push(key);
            }
        }
        Rewriter { renames, by_bare }
    }

    pub(super) fn table(&self, name: &str, t: &Table) -> Table {
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
    pub(super) fn text(&self, text: &str, own: Option<&str>) -> String {
        let tokens = match pg_query::scan(text) {
            Ok(s) if !text.trim().is_empty() => s.tokens,
            _ => return text.to_string(),
        };
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for e in self.edits(text, &tokens, own) {
            out.push_str(&text[copied..e.start]);
            out.push_str(&e.text);
            copied = e.end;
        }
        out.push_str(&text[copied..]);
        out
    }

    /// The replacements in `text`, in order.
    fn edits(&self, text: &str, tokens: &[ScanToken], own: Option<&str>) -> Vec<Edit> {
        let mut edits = Vec::new();
        let mut scope = Scope {
            own,
            ..Scope::default()
        };
        let mut i = 0;
        while i < tokens.len() {
            scope.token(tokens[i].token);
            let Some(parts) = read_name(text, tokens, i) else {
                i += 1;
                continue;
            };
            let consumed = parts.len() * 2 - 1;
            let call = tokens
                .get(i + consumed)
                .is_some_and(|t| t.token == Token::Ascii40 as i32);
            let cast = i > 0 && tokens[i - 1].token == Token::Typecast as i32;
            if scope.after_references {
                // `REFERENCES t(cols)`: a table, then its columns.
                scope.after_references = false;
                let key = table_key(&parts);
                edits.extend(self.table_name(&parts, &key));
                if call {
                    scope.referenced = Some((key, scope.depth));
                }
            } else if !cast && !call {
                edits.extend(self.name(&parts, scope.columns_of(), own.is_none()));
            }
            i += consumed;
        }
        edits
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
