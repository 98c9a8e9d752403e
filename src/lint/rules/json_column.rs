//! BI08 json-column: `ALTER TABLE ... ADD COLUMN ... json` or `ALTER COLUMN ... TYPE json` (also
//! `json[]`) on a table not created earlier in the same file or transaction. `json` has no
//! equality operator, so existing queries over the table that compare whole rows or columns
//! (`SELECT DISTINCT *`, `UNION`, `GROUP BY`, `IN`) start failing with "could not identify an
//! equality operator for type json". New tables are exempt: no query uses them yet.
//!
//! Severity: warning. Nothing is locked for long or lost, but running queries may break, and
//! `jsonb` is almost always the better type anyway.

use pg_query::protobuf::{AlterTableType, TypeName};

use crate::lint::{Context, Hit, Rule, Severity, Stmt, ast};

pub static RULE: Rule = Rule {
    id: "BI08",
    name: "json-column",
    severity: Severity::Warning,
    default_on: true,
    summary: "a json column breaks existing SELECT DISTINCT, UNION and GROUP BY queries over the \
              table (json has no equality operator)",
    help: "use jsonb",
    check,
};

fn check(stmt: &Stmt, ctx: &Context) -> Vec<Hit> {
    let Some((a, rv)) = ast::alter_table(stmt.node) else {
        return Vec::new();
    };
    if ctx.is_new_table(&ast::rel_key(rv)) {
        return Vec::new();
    }
    let table = ast::rel_name(rv);
    ast::alter_cmds(a)
        .into_iter()
        .filter_map(|(cmd, t)| {
            let adding = match t {
                AlterTableType::AtAddColumn => true,
                AlterTableType::AtAlterColumnType => false,
                _ => return None,
            };
            let def = ast::column_def(cmd)?;
            let ty = def.type_name.as_ref().filter(|t| is_json(t))?;
            let column = if def.colname.is_empty() {
                &cmd.name
            } else {
                &def.colname
            };
            let written = ast::type_name(ty);
            let jsonb = written.replacen("json", "jsonb", 1);
            let what = if adding {
                format!("adding {written} column {table}.{column}")
            } else {
                format!("changing {table}.{column} to {written}")
            };
            Some(
                Hit::new(format!(
                    "{what}: json has no equality operator, so existing SELECT DISTINCT, UNION and \
                     GROUP BY queries over {table} that include {column} start failing"
                ))
                .help(format!("use {jsonb} for {column}")),
            )
        })
        .collect()
}

fn is_json(t: &TypeName) -> bool {
    ast::base_type(t) == "json"
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::render;

    #[test]
    fn flags_adding_a_json_column() {
        assert_eq!(
            render("BI08", "ALTER TABLE events ADD COLUMN payload json;"),
            "m.sql:1:1: warning BI08 json-column: adding json column events.payload: json has no \
             equality operator, so existing SELECT DISTINCT, UNION and GROUP BY queries over events \
             that include payload start failing\n  \
             1 | ALTER TABLE events ADD COLUMN payload json\n    \
             | ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n  \
             help: use jsonb for payload\n"
        );
        let out = render(
            "BI08",
            "ALTER TABLE app.events ADD tags pg_catalog.json[] DEFAULT '{}';",
        );
        assert!(
            out.contains("adding json[] column app.events.tags") && out.contains("use jsonb[]"),
            "{out}"
        );
    }

    #[test]
    fn flags_changing_a_column_to_json() {
        let out = render(
            "BI08",
            "ALTER TABLE events ALTER COLUMN payload TYPE json USING payload::json;",
        );
        assert!(out.contains("changing events.payload to json"), "{out}");
    }

    #[test]
    fn passes_jsonb_new_tables_and_create_table() {
        assert_eq!(
            render("BI08", "ALTER TABLE events ADD COLUMN payload jsonb;"),
            ""
        );
        assert_eq!(
            render("BI08", "ALTER TABLE events ALTER payload TYPE jsonb;"),
            ""
        );
        assert_eq!(render("BI08", "CREATE TABLE e (payload json);"), "");
        assert_eq!(
            render(
                "BI08",
                "CREATE TABLE e (id int);\nALTER TABLE e ADD COLUMN payload json;"
            ),
            ""
        );
        // A user type that happens to end in json is not json.
        assert_eq!(
            render("BI08", "ALTER TABLE events ADD COLUMN p my_json;"),
            ""
        );
    }
}
