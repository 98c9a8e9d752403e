//! Names as a text report shows them: quoted as `pg_dump` quotes identifiers, only where
//! needed, so that `public."a.b c"` reads one way. The vocabulary's lines (and the JSON) keep
//! raw names joined by dots; [`Names`] splits such a joined name back into its parts with the
//! schema and relation names of the compared models.

use std::borrow::Cow;
use std::collections::BTreeSet;

use super::model::Model;
use super::{Difference, Kind};

/// An identifier as `pg_dump` writes it: bare when it is a lower-case plain identifier and not
/// a keyword that needs quoting, else in double quotes (inner ones doubled).
pub fn ident(name: &str) -> Cow<'_, str> {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && KEYWORDS.binary_search(&name).is_err() {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(format!("\"{}\"", name.replace('"', "\"\"")))
    }
}

/// The keywords `pg_dump` quotes (reserved, column-name and type-or-function-name keywords of
/// PostgreSQL 18, a superset of older versions'), sorted.
const KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "json",
    "json_array",
    "json_arrayagg",
    "json_exists",
    "json_object",
    "json_objectagg",
    "json_query",
    "json_scalar",
    "json_serialize",
    "json_table",
    "json_value",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "merge_action",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// The schema and relation names of the compared databases, to split joined names.
#[derive(Debug, Clone, Default)]
pub struct Names {
    schemas: BTreeSet<String>,
    /// Tables, views and materialized views, `schema.name` joined.
    relations: BTreeSet<String>,
}

impl Names {
    pub fn from_models(models: &[&Model]) -> Names {
        let mut n = Names::default();
        for m in models {
            n.schemas.extend(m.schemas.iter().cloned());
            n.relations.extend(m.tables.keys().cloned());
            n.relations.extend(m.views.keys().cloned());
        }
        n
    }

    /// `schema.name` joined, split at the longest known schema (else at the first dot).
    fn split_schema<'a>(&self, joined: &'a str) -> (&'a str, &'a str) {
        let known = self
            .schemas
            .iter()
            .filter(|s| joined.len() > s.len() && joined.starts_with(s.as_str()))
            .filter(|s| joined.as_bytes()[s.len()] == b'.')
            .map(String::len)
            .max();
        match known {
            Some(n) => (&joined[..n], &joined[n + 1..]),
            None => joined.split_once('.').unwrap_or(("", joined)),
        }
    }

    /// A `schema.name` joined name, quoted.
    pub fn relation(&self, joined: &str) -> String {
        match self.split_schema(joined) {
            ("", name) => ident(name).into_owned(),
            (schema, name) => format!("{}.{}", ident(schema), ident(name)),
        }
    }

    /// A `schema.relation.member` joined name (a column, constraint, trigger or policy),
    /// quoted: the relation is the longest known one it starts with (else all but the part
    /// after the last dot).
    pub fn member(&self, joined: &str) -> String {
        let known = self
            .relations
            .iter()
            .filter(|r| joined.len() > r.len() && joined.starts_with(r.as_str()))
            .filter(|r| joined.as_bytes()[r.len()] == b'.')
            .map(String::len)
            .max();
        let (relation, member) = match known {
            Some(n) => (&joined[..n], &joined[n + 1..]),
            None => joined.rsplit_once('.').unwrap_or(("", joined)),
        };
        if relation.is_empty() {
            return ident(member).into_owned();
        }
        format!("{}.{}", self.relation(relation), ident(member))
    }

    /// A `schema.name(argtypes)` function, the name quoted (the argument types are printed
    /// by PostgreSQL, quoted already).
    pub fn function(&self, joined: &str) -> String {
        let (schema, rest) = self.split_schema(joined);
        let (name, args) = rest.find('(').map_or((rest, ""), |i| rest.split_at(i));
        match schema {
            "" => format!("{}{args}", ident(name)),
            _ => format!("{}.{}{args}", ident(schema), ident(name)),
        }
    }

    /// An object of a difference of `kind`, quoted by its shape.
    fn object(&self, kind: Kind, comment_of: Option<&str>, joined: &str) -> String {
        use Kind::*;
        match (kind, comment_of) {
            (SchemaAdded | SchemaRemoved, _)
            | (ExtensionAdded | ExtensionRemoved | ExtensionVersionChanged, _) => {
                ident(joined).into_owned()
            }
            (CommentChanged, Some("column")) => self.member(joined),
            (CommentChanged, Some("function")) => self.function(joined),
            (FunctionAdded | FunctionRemoved | FunctionChanged, _) => self.function(joined),
            (k, _) if is_member_kind(k) => self.member(joined),
            _ => self.relation(joined),
        }
    }

    /// The heading of a group of differences (the object, or the table of a part).
    pub fn group(&self, group: &str, first: &Difference) -> String {
        if group == first.object {
            self.object(first.kind, comment_word(first), group)
        } else {
            self.relation(group)
        }
    }

    /// A difference's line with its names quoted; the line as it is when it does not have
    /// the shape its kind gives lines.
    pub fn line(&self, d: &Difference) -> String {
        self.quoted_line(d).unwrap_or_else(|| d.line.clone())
    }

    fn quoted_line(&self, d: &Difference) -> Option<String> {
        let word = comment_word(d);
        let head = match word {
            Some(w) => format!("{} {w} ", d.kind),
            None => format!("{} ", d.kind),
        };
        let after_head = d.line.strip_prefix(&head)?;
        match d.kind {
            Kind::PartitionAttached | Kind::PartitionDetached => {
                return self.partition_line(d, &head, after_head);
            }
            Kind::TableRenamed => {
                let old = after_head.strip_suffix(&format!(" -> {}", d.object))?;
                let (old, new) = (self.relation(old), self.relation(&d.object));
                return Some(format!("{head}{old} -> {new}"));
            }
            Kind::ColumnRenamed => return self.column_renamed_line(d, &head, after_head),
            _ => {}
        }
        let rest = after_head.strip_prefix(d.object.as_str())?;
        if !(rest.is_empty() || rest.starts_with(' ')) {
            return None;
        }
        let object = self.object(d.kind, word, &d.object);
        let rest = match d.kind {
            Kind::SequenceOwnerChanged => self.old_new(rest, |n| self.member(n)),
            Kind::TableInheritsChanged => self.old_new(rest, |list| {
                list.split(", ")
                    .map(|r| self.relation(r))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            Kind::ColumnCollationChanged => self.old_new(rest, |c| match c.contains('.') {
                true => self.relation(c),
                false => ident(c).into_owned(),
            }),
            Kind::PrivilegeGranted | Kind::PrivilegeRevoked | Kind::PrivilegeGrantOptionChanged => {
                privilege_rest(d.kind, rest)?
            }
            _ => rest.to_string(),
        };
        Some(format!("{head}{object}{rest}"))
    }

    /// ` <old|none> -> <new|none>` with each side's names quoted by `quote`.
    fn old_new(&self, rest: &str, quote: impl Fn(&str) -> String) -> String {
        let side = |s: &str| match s {
            "none" => s.to_string(),
            _ => quote(s),
        };
        match rest.strip_prefix(' ').and_then(|r| r.split_once(" -> ")) {
            Some((old, new)) => format!(" {} -> {}", side(old), side(new)),
            None => rest.to_string(),
        }
    }

    /// `column-renamed <s>.<t>.<old> -> <new>`, about `<s>.<t>.<new>`.
    fn column_renamed_line(&self, d: &Difference, head: &str, after_head: &str) -> Option<String> {
        let (old, new) = after_head.rsplit_once(" -> ")?;
        let table = d.object.strip_suffix(new)?.strip_suffix('.')?;
        old.strip_prefix(table)?.strip_prefix('.')?;
        Some(format!("{head}{} -> {}", self.member(old), ident(new)))
    }

    /// `partition-attached <parent> <child> <bound>` / `partition-detached <parent> <child>`:
    /// the child is the object.
    fn partition_line(&self, d: &Difference, head: &str, after_head: &str) -> Option<String> {
        let needle = format!(" {}", d.object);
        let at = after_head
            .match_indices(&needle)
            .map(|(i, _)| i)
            .find(|&i| {
                let end = i + needle.len();
                end == after_head.len() || after_head.as_bytes()[end] == b' '
            })?;
        let parent = &after_head[..at];
        let bound = &after_head[at + needle.len()..];
        Some(format!(
            "{head}{} {}{bound}",
            self.relation(parent),
            self.relation(&d.object)
        ))
    }
}

/// ` <role> <PRIVILEGE>[ with-grant-option]` or ` <role> <PRIVILEGE> <on|off> -> <on|off>`
/// with the role quoted (`PUBLIC` is the keyword, left bare).
fn privilege_rest(kind: Kind, rest: &str) -> Option<String> {
    let (body, tail) = match kind {
        Kind::PrivilegeGranted => match rest.strip_suffix(" with-grant-option") {
            Some(b) => (b, " with-grant-option"),
            None => (rest, ""),
        },
        Kind::PrivilegeGrantOptionChanged => {
            let cut = rest.rmatch_indices(' ').nth(2)?.0;
            (&rest[..cut], &rest[cut..])
        }
        _ => (rest, ""),
    };
    let (role, privilege) = body.strip_prefix(' ')?.rsplit_once(' ')?;
    let role = match role {
        "PUBLIC" => Cow::Borrowed(role),
        _ => ident(role),
    };
    Some(format!(" {role} {privilege}{tail}"))
}

/// The kinds whose object is `schema.relation.member`.
fn is_member_kind(kind: Kind) -> bool {
    use Kind::*;
    matches!(
        kind,
        ColumnAdded
            | ColumnRemoved
            | ColumnRenamed
            | ColumnTypeChanged
            | ColumnNullabilityChanged
            | ColumnDefaultChanged
            | ColumnCollationChanged
            | ColumnGeneratedChanged
            | ColumnIdentityChanged
            | ColumnIdentityOptionsChanged
            | ConstraintAdded
            | ConstraintRemoved
            | ConstraintChanged
            | TriggerAdded
            | TriggerRemoved
            | TriggerChanged
            | PolicyAdded
            | PolicyRemoved
            | PolicyChanged
    )
}

/// The word after `comment-changed` (`table`, `column`, ...).
fn comment_word(d: &Difference) -> Option<&str> {
    if d.kind != Kind::CommentChanged {
        return None;
    }
    d.line.strip_prefix("comment-changed ")?.split(' ').next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::model::testing::table;

    fn names() -> Names {
        let mut m = Model::default();
        for s in ["public", "my.app", "Sales"] {
            m.schemas.insert(s.into());
        }
        for t in ["public.a.b", "public.order", "my.app.t", "Sales.Q1 totals"] {
            m.tables.insert(t.into(), table(&[]));
        }
        Names::from_models(&[&m])
    }

    #[test]
    fn identifiers_are_quoted_where_pg_dump_quotes_them() {
        for plain in ["users", "_x1", "name", "text", "a1"] {
            assert_eq!(ident(plain), plain);
        }
        for (raw, shown) in [
            ("Users", "\"Users\""),
            ("a.b c", "\"a.b c\""),
            ("user", "\"user\""),
            ("order", "\"order\""),
            ("1abc", "\"1abc\""),
            ("we\"ird", "\"we\"\"ird\""),
            ("café", "\"café\""),
            ("", "\"\""),
        ] {
            assert_eq!(ident(raw), shown, "{raw}");
        }
        assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]), "sorted");
    }

    #[test]
    fn joined_names_split_at_known_schemas_and_relations() {
        let n = names();
        assert_eq!(n.relation("my.app.t"), "\"my.app\".t");
        assert_eq!(n.relation("public.a.b"), "public.\"a.b\"");
        assert_eq!(n.relation("Sales.Q1 totals"), "\"Sales\".\"Q1 totals\"");
        assert_eq!(n.relation("other.x"), "other.x", "an unknown schema");
        assert_eq!(n.member("public.a.b.c"), "public.\"a.b\".c");
        assert_eq!(n.member("public.order.Total"), "public.\"order\".\"Total\"");
        assert_eq!(
            n.member("public.zz.y"),
            "public.zz.y",
            "an unknown relation"
        );
        assert_eq!(
            n.function("my.app.Add(integer, \"my.app\".money)"),
            "\"my.app\".\"Add\"(integer, \"my.app\".money)"
        );
    }

    fn line(kind: Kind, object: &str, line: &str) -> String {
        let mut d = Difference::new(kind, object, None);
        d.line = line.into();
        names().line(&d)
    }

    #[test]
    fn lines_quote_every_name_they_hold() {
        assert_eq!(
            line(
                Kind::ColumnAdded,
                "public.a.b.c d",
                "column-added public.a.b.c d text"
            ),
            "column-added public.\"a.b\".\"c d\" text"
        );
        assert_eq!(
            line(
                Kind::TableAdded,
                "Sales.Q1 totals",
                "table-added Sales.Q1 totals"
            ),
            "table-added \"Sales\".\"Q1 totals\""
        );
        assert_eq!(
            line(Kind::SchemaAdded, "my.app", "schema-added my.app"),
            "schema-added \"my.app\""
        );
        assert_eq!(
            line(
                Kind::PrivilegeGranted,
                "public.order",
                "privilege-granted public.order app user SELECT with-grant-option"
            ),
            "privilege-granted public.\"order\" \"app user\" SELECT with-grant-option"
        );
        assert_eq!(
            line(
                Kind::PrivilegeGrantOptionChanged,
                "public.order",
                "privilege-grant-option-changed public.order PUBLIC SELECT off -> on"
            ),
            "privilege-grant-option-changed public.\"order\" PUBLIC SELECT off -> on"
        );
        assert_eq!(
            line(
                Kind::PartitionAttached,
                "public.a.b",
                "partition-attached public.order public.a.b FOR VALUES IN (1)"
            ),
            "partition-attached public.\"order\" public.\"a.b\" FOR VALUES IN (1)"
        );
        assert_eq!(
            line(
                Kind::SequenceOwnerChanged,
                "public.s",
                "sequence-owner-changed public.s none -> public.a.b.id"
            ),
            "sequence-owner-changed public.s none -> public.\"a.b\".id"
        );
        assert_eq!(
            line(
                Kind::TableInheritsChanged,
                "public.order",
                "table-inherits-changed public.order none -> public.a.b, my.app.t"
            ),
            "table-inherits-changed public.\"order\" none -> public.\"a.b\", \"my.app\".t"
        );
        assert_eq!(
            line(
                Kind::CommentChanged,
                "public.order.When",
                "comment-changed column public.order.When"
            ),
            "comment-changed column public.\"order\".\"When\""
        );
        assert_eq!(
            line(
                Kind::EnumValueAdded,
                "public.Mood",
                "enum-value-added public.Mood very happy"
            ),
            "enum-value-added public.\"Mood\" very happy",
            "a label is a value, not a name"
        );
        let renamed = Difference::table_renamed("public.order", "my.app.Orders");
        assert_eq!(
            names().line(&renamed),
            "table-renamed public.\"order\" -> \"my.app\".\"Orders\""
        );
        let renamed = Difference::column_renamed("public.a.b", "c", "New c");
        assert_eq!(
            names().line(&renamed),
            "column-renamed public.\"a.b\".c -> \"New c\""
        );
        // A line without its kind's shape is shown as it is.
        assert_eq!(
            line(Kind::TableAdded, "public.x", "table-added public.y"),
            "table-added public.y"
        );
    }

    #[test]
    fn group_headings_are_quoted_by_their_shape() {
        let n = names();
        let col = Difference::new(Kind::ColumnRemoved, "public.a.b.c", None);
        assert_eq!(n.group("public.a.b", &col), "public.\"a.b\"");
        let f = Difference::new(Kind::FunctionAdded, "public.Go()", None);
        assert_eq!(n.group("public.Go()", &f), "public.\"Go\"()");
    }
}
