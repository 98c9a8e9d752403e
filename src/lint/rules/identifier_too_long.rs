//! RB05 identifier-too-long: an identifier longer than 63 bytes anywhere in a statement (a
//! table, column, index, constraint, schema, function or type name, quoted or not), which
//! PostgreSQL silently truncates to its first 63 bytes (NAMEDATALEN - 1) with only a NOTICE;
//! and an enum label longer than 63 bytes, which it refuses.
//!
//! The parser truncates identifiers while scanning, so the parse tree only holds the truncated
//! name: this rule reads the scanner's identifier tokens from the statement text instead.
//!
//! Severity: warning. The statement works, but the object is not called what the migration
//! says: code, ORMs and tools that compare the full name do not find it, and two long names
//! that share their first 63 bytes collide. An over-long enum label is an error (the statement
//! fails).

use pg_query::NodeEnum;
use pg_query::protobuf::Token;

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

/// NAMEDATALEN - 1.
const MAX: usize = 63;

pub static RULE: Rule = Rule {
    id: "RB05",
    name: "identifier-too-long",
    severity: Severity::Warning,
    default_on: true,
    summary: "an identifier longer than 63 bytes, which PostgreSQL silently truncates",
    help: "use a name of at most 63 bytes, so the name in the database is the one the migration \
           and the code use",
    check,
};

/// The name an identifier token stands for: quotes removed and `""` unescaped for `"..."`,
/// `U&"..."` escapes decoded (with the default escape character).
fn decode(raw: &str) -> String {
    if let Some(body) = raw
        .strip_prefix("U&\"")
        .or_else(|| raw.strip_prefix("u&\""))
        .and_then(|r| r.strip_suffix('"'))
    {
        return decode_unicode(&body.replace("\"\"", "\""));
    }
    if let Some(body) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return body.replace("\"\"", "\"");
    }
    raw.to_string()
}

/// `\XXXX`, `\+XXXXXX` and `\\` in a `U&"..."` identifier.
fn decode_unicode(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find('\\') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (digits, skip) = if let Some(r) = after.strip_prefix('\\') {
            out.push('\\');
            rest = r;
            continue;
        } else if let Some(six) = after.strip_prefix('+') {
            (six.get(..6), 7)
        } else {
            (after.get(..4), 4)
        };
        match digits
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .and_then(char::from_u32)
        {
            Some(c) => {
                out.push(c);
                rest = &after[skip..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// What PostgreSQL keeps of `name`: at most 63 bytes, cut at a character boundary.
fn truncated(name: &str) -> &str {
    let mut end = MAX.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// The identifiers of `sql` longer than 63 bytes, once each, in order.
fn long_identifiers(sql: &str) -> Vec<String> {
    let Ok(scan) = pg_query::scan(sql) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for t in &scan.tokens {
        if t.token != Token::Ident as i32 && t.token != Token::Uident as i32 {
            continue;
        }
        let (Ok(start), Ok(end)) = (usize::try_from(t.start), usize::try_from(t.end)) else {
            continue;
        };
        let Some(raw) = sql.get(start..end) else {
            continue;
        };
        let name = decode(raw);
        if name.len() > MAX && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Enum labels over 63 bytes (`CREATE TYPE ... AS ENUM`, `ADD VALUE`, `RENAME VALUE ... TO`).
fn long_labels(node: &NodeEnum) -> Vec<(String, String)> {
    let (ty, labels): (&[pg_query::protobuf::Node], Vec<&str>) = match node {
        NodeEnum::CreateEnumStmt(e) => (&e.type_name, ast::strings(&e.vals)),
        NodeEnum::AlterEnumStmt(e) => (&e.type_name, vec![e.new_val.as_str()]),
        _ => return Vec::new(),
    };
    let ty = ast::strings(ty).join(".");
    labels
        .into_iter()
        .filter(|l| l.len() > MAX)
        .map(|l| (ty.clone(), l.to_string()))
        .collect()
}

fn check(stmt: &Stmt, _ctx: &Context) -> Vec<Hit> {
    let names = long_identifiers(stmt.sql);
    let mut hits: Vec<Hit> = names
        .iter()
        .map(|name| {
            let kept = truncated(name);
            let twins: Vec<&str> = names
                .iter()
                .filter(|o| *o != name && truncated(o) == kept)
                .map(String::as_str)
                .collect();
            let mut message = format!(
                "identifier \"{name}\" is {} bytes: PostgreSQL silently truncates it to the 63 \
                 bytes \"{kept}\"",
                name.len()
            );
            if !twins.is_empty() {
                message.push_str(&format!(
                    ", the same name as \"{}\" in this statement",
                    twins.join("\", \"")
                ));
            }
            Hit::new(message).help(format!(
                "use a name of at most 63 bytes (it is {} bytes too long), so the name in the \
                 database is the one the migration and the code use",
                name.len() - MAX
            ))
        })
        .collect();
    for (ty, label) in long_labels(stmt.node) {
        hits.push(
            Hit::new(format!(
                "enum label '{label}' of {ty} is {} bytes: PostgreSQL refuses labels over 63 \
                 bytes (\"invalid enum label\")",
                label.len()
            ))
            .severity(Severity::Error)
            .help("use a label of at most 63 bytes"),
        );
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::{decode, truncated};
    use crate::lint::testing::render;

    fn name(n: usize) -> String {
        "a".repeat(n)
    }

    #[test]
    fn flags_a_long_table_name() {
        let long = format!(
            "user_notification_preferences_by_channel_and_category_{}",
            name(11)
        );
        assert_eq!(long.len(), 65);
        assert_eq!(
            render("RB05", &format!("CREATE TABLE {long} (id bigint);")),
            format!(
                "m.sql:1:1: warning RB05 identifier-too-long: identifier \"{long}\" is 65 bytes: \
                 PostgreSQL silently truncates it to the 63 bytes \"{}\"\n  \
                 1 | CREATE TABLE {long} (id bigint)\n    \
                 | {}\n  \
                 help: use a name of at most 63 bytes (it is 2 bytes too long), so the name in \
                 the database is the one the migration and the code use\n",
                &long[..63],
                "^".repeat(80)
            )
        );
    }

    #[test]
    fn flags_columns_indexes_constraints_and_quoted_names() {
        let long = name(64);
        for sql in [
            format!("ALTER TABLE t ADD COLUMN {long} int;"),
            format!("CREATE INDEX {long} ON t (a);"),
            format!("ALTER TABLE t ADD CONSTRAINT {long} CHECK (a > 0);"),
            format!("CREATE TABLE t (id int, CONSTRAINT \"{long}\" PRIMARY KEY (id));"),
            format!(
                "ALTER TABLE t RENAME COLUMN a TO \"{}\";",
                name(70).to_uppercase()
            ),
            format!("CREATE SCHEMA {long};"),
            format!("SELECT 1 FROM t AS {long};"),
        ] {
            let out = render("RB05", &sql);
            assert!(out.contains("warning RB05"), "{sql}: {out}");
        }
    }

    #[test]
    fn passes_63_bytes_strings_and_comments() {
        let ok = name(63);
        for sql in [
            format!("CREATE TABLE {ok} (id int);"),
            format!("CREATE TABLE \"{ok}\" (id int);"),
            format!("INSERT INTO t (note) VALUES ('{}');", name(200)),
            format!("-- {}\nCREATE TABLE t (id int);", name(200)),
            format!(
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 AS {} $$;",
                name(100)
            ),
            format!("COMMENT ON TABLE t IS '{}';", name(100)),
        ] {
            assert_eq!(render("RB05", &sql), "", "{sql}");
        }
    }

    #[test]
    fn counts_bytes_not_characters() {
        // 32 two-byte characters: 64 bytes.
        let wide = "é".repeat(32);
        let out = render("RB05", &format!("CREATE TABLE \"{wide}\" (id int);"));
        assert!(out.contains("is 64 bytes"), "{out}");
        // Cut at a character boundary: 31 characters, 62 bytes.
        assert_eq!(truncated(&wide), "é".repeat(31));
        assert_eq!(
            render(
                "RB05",
                &format!("CREATE TABLE \"{}\" (id int);", "é".repeat(31))
            ),
            ""
        );
    }

    #[test]
    fn names_that_collide_after_truncation_are_pointed_out() {
        let base = name(63);
        let sql = format!("CREATE TABLE t ({base}_x int, {base}_y int);");
        let out = render("RB05", &sql);
        assert_eq!(out.matches("warning RB05").count(), 2, "{out}");
        assert!(
            out.contains(&format!("the same name as \"{base}_y\"")),
            "{out}"
        );
    }

    #[test]
    fn decodes_quoted_and_unicode_identifiers() {
        assert_eq!(decode("\"a\"\"b\""), "a\"b");
        assert_eq!(decode("U&\"d\\0061t\\+000061\""), "data");
        assert_eq!(decode("plain"), "plain");
        let long = format!("U&\"{}\\0061\"", name(63));
        let out = render("RB05", &format!("CREATE TABLE {long} (id int);"));
        assert!(out.contains("is 64 bytes"), "{out}");
    }

    #[test]
    fn long_enum_labels_are_refused() {
        let label = name(64);
        let out = render("RB05", &format!("ALTER TYPE mood ADD VALUE '{label}';"));
        assert!(out.contains("error RB05"), "{out}");
        assert!(out.contains("invalid enum label"), "{out}");
        let create = render(
            "RB05",
            &format!("CREATE TYPE app.mood AS ENUM ('ok', '{label}');"),
        );
        assert!(create.contains("of app.mood is 64 bytes"), "{create}");
        assert_eq!(
            render(
                "RB05",
                &format!("ALTER TYPE mood ADD VALUE '{}';", name(63))
            ),
            ""
        );
    }
}
