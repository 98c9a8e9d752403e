//! The SQL of the fdw engine, as pure builders: the catalog copies of each side, their
//! normalization into name-keyed tables, and the one query that diffs them.
//!
//! Each side (`s_` for the source, `t_` for the target) gets the same temporary tables, filled
//! either from the local catalogs or from foreign tables over a remote's catalogs; the
//! normalization and the diff are then the same SQL for both. Remote catalogs are copied once
//! each (one remote query per catalog), so the diff runs on local temporary tables, whatever
//! the plans postgres_fdw would make for joins of foreign tables.
//!
//! Texts that PostgreSQL computes (`pg_get_expr`, `pg_get_indexdef`, check clauses) come from
//! remote views (`information_schema.columns`, `pg_indexes`,
//! `information_schema.check_constraints`), printed by postgres_fdw's remote session with
//! `search_path = pg_catalog`, GMT, ISO dates; the local side prints them under the same
//! settings ([`SESSION_LIKE_REMOTE`]) so both are compared as equals. Every identifier built
//! here is quoted, every value a literal escaped with `quote_literal`.

use crate::compare::SchemaFilter;
use crate::db::{quote_ident, quote_literal};

/// What postgres_fdw sets on its remote sessions; set locally for the comparison so that the
/// two sides print expressions alike.
pub const SESSION_LIKE_REMOTE: &str = "SET LOCAL search_path = pg_catalog; \
     SET LOCAL TimeZone = 'GMT'; SET LOCAL DateStyle = 'ISO'; \
     SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 3";

/// Where one side's catalogs are read from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// The database the engine runs in (the source, with `--fdw-in source`).
    Local { version: u32 },
    /// A foreign server.
    Remote {
        server: String,
        version: u32,
        /// `information_schema.check_constraints` shows `substring(pg_get_constraintdef)`
        /// (PostgreSQL 17 and older) rather than `pg_get_expr` (18).
        legacy_checks: bool,
        /// `block_size`, to estimate table sizes from `relpages`.
        block_size: u32,
    },
}

impl Origin {
    pub fn version(&self) -> u32 {
        match self {
            Origin::Local { version } | Origin::Remote { version, .. } => *version,
        }
    }
}

/// One side: its table prefix and where its catalogs are.
#[derive(Debug, Clone)]
pub struct SideSql {
    /// `s_` or `t_`.
    pub prefix: &'static str,
    pub origin: Origin,
}

struct Col {
    name: &'static str,
    ty: &'static str,
    /// The first server version that has the column, and the value used before.
    since: u32,
    default: &'static str,
}

const fn col(name: &'static str, ty: &'static str) -> Col {
    Col {
        name,
        ty,
        since: 0,
        default: "",
    }
}

const fn col_since(name: &'static str, ty: &'static str, since: u32, default: &'static str) -> Col {
    Col {
        name,
        ty,
        since,
        default,
    }
}

/// A catalog (or view) copied from each side.
struct Catalog {
    /// The name of the copy (after the side's prefix).
    name: &'static str,
    schema: &'static str,
    relation: &'static str,
    cols: &'static [Col],
    /// A condition on the columns (sent to the remote).
    filter: &'static str,
}

const CATALOGS: &[Catalog] = &[
    Catalog {
        name: "namespace",
        schema: "pg_catalog",
        relation: "pg_namespace",
        cols: &[col("oid", "oid"), col("nspname", "name")],
        filter: "",
    },
    Catalog {
        name: "class",
        schema: "pg_catalog",
        relation: "pg_class",
        cols: &[
            col("oid", "oid"),
            col("relname", "name"),
            col("relnamespace", "oid"),
            col("relkind", "\"char\""),
            col("relpersistence", "\"char\""),
            col("relispartition", "bool"),
            col("reltuples", "float4"),
            col("relpages", "int4"),
            col("reltoastrelid", "oid"),
        ],
        filter: "relkind IN ('r', 'p', 'm', 'v', 'i', 'I', 't')",
    },
    Catalog {
        name: "attribute",
        schema: "pg_catalog",
        relation: "pg_attribute",
        cols: &[
            col("attrelid", "oid"),
            col("attname", "name"),
            col("atttypid", "oid"),
            col("atttypmod", "int4"),
            col("attnum", "int2"),
            col("attnotnull", "bool"),
            col("atthasdef", "bool"),
            col("attgenerated", "\"char\""),
            col("attisdropped", "bool"),
        ],
        filter: "attnum > 0 AND NOT attisdropped",
    },
    Catalog {
        name: "type",
        schema: "pg_catalog",
        relation: "pg_type",
        cols: &[
            col("oid", "oid"),
            col("typname", "name"),
            col("typnamespace", "oid"),
            col("typelem", "oid"),
            col("typstorage", "\"char\""),
            col("typtype", "\"char\""),
        ],
        filter: "",
    },
    Catalog {
        name: "enum",
        schema: "pg_catalog",
        relation: "pg_enum",
        cols: &[
            col("enumtypid", "oid"),
            col("enumsortorder", "float4"),
            col("enumlabel", "name"),
        ],
        filter: "",
    },
    Catalog {
        name: "depend",
        schema: "pg_catalog",
        relation: "pg_depend",
        cols: &[
            col("classid", "oid"),
            col("objid", "oid"),
            col("deptype", "\"char\""),
        ],
        // pg_class and pg_type have the same OIDs on every server.
        filter: "deptype = 'e' AND classid IN (1259, 1247)",
    },
    Catalog {
        name: "inherits",
        schema: "pg_catalog",
        relation: "pg_inherits",
        cols: &[col("inhrelid", "oid"), col("inhparent", "oid")],
        filter: "",
    },
    Catalog {
        name: "index",
        schema: "pg_catalog",
        relation: "pg_index",
        cols: &[col("indexrelid", "oid"), col("indrelid", "oid")],
        filter: "",
    },
    Catalog {
        name: "indexes",
        schema: "pg_catalog",
        relation: "pg_indexes",
        cols: &[
            col("schemaname", "name"),
            col("indexname", "name"),
            col("tablespace", "name"),
            col("indexdef", "text"),
        ],
        filter: "",
    },
    Catalog {
        name: "constraint",
        schema: "pg_catalog",
        relation: "pg_constraint",
        cols: &[
            col("oid", "oid"),
            col("conname", "name"),
            col("connamespace", "oid"),
            col("contype", "\"char\""),
            col("condeferrable", "bool"),
            col("condeferred", "bool"),
            col("convalidated", "bool"),
            col("conrelid", "oid"),
            col("conindid", "oid"),
            col("confrelid", "oid"),
            col("confupdtype", "\"char\""),
            col("confdeltype", "\"char\""),
            col("confmatchtype", "\"char\""),
            col("conislocal", "bool"),
            col("connoinherit", "bool"),
            col("conparentid", "oid"),
            col("conkey", "int2[]"),
            col("confkey", "int2[]"),
            col("conexclop", "oid[]"),
            col_since("confdelsetcols", "int2[]", 150000, "NULL::int2[]"),
            col_since("conenforced", "bool", 180000, "true"),
            col_since("conperiod", "bool", 180000, "false"),
        ],
        filter: "contype IN ('p', 'f', 'u', 'c', 'x')",
    },
    Catalog {
        name: "operator",
        schema: "pg_catalog",
        relation: "pg_operator",
        cols: &[
            col("oid", "oid"),
            col("oprname", "name"),
            col("oprnamespace", "oid"),
        ],
        filter: "",
    },
];

/// The schema filter as SQL on `col`, with the include and exclude lists as literals (the
/// statements that use it are `CREATE TABLE AS`, which takes no bind parameters).
pub fn filter_sql(col: &str, filter: &SchemaFilter) -> String {
    let array = |v: &[String]| {
        let items: Vec<String> = v.iter().map(|s| quote_literal(s)).collect();
        format!("ARRAY[{}]::text[]", items.join(", "))
    };
    SchemaFilter::sql(col, 1, 2)
        .replace("$1::text[]", &array(&filter.include))
        .replace("$2::text[]", &array(&filter.exclude))
}

/// `CREATE FOREIGN TABLE <ns>.<name> (...) SERVER <server> OPTIONS (schema_name, table_name)`.
pub fn foreign_table(
    ns: &str,
    name: &str,
    server: &str,
    remote: (&str, &str),
    cols: &[(&str, &str)],
) -> String {
    let cols: Vec<String> = cols
        .iter()
        .map(|(n, t)| format!("{} {t}", quote_ident(n)))
        .collect();
    format!(
        "CREATE FOREIGN TABLE {}.{} ({}) SERVER {} OPTIONS (schema_name {}, table_name {})",
        quote_ident(ns),
        quote_ident(name),
        cols.join(", "),
        quote_ident(server),
        quote_literal(remote.0),
        quote_literal(remote.1)
    )
}

/// The foreign tables a remote side's version check reads: `pg_settings` and `pg_views`.
pub fn probe_tables(ns: &str, side: &SideSql) -> Vec<String> {
    let Origin::Remote { server, .. } = &side.origin else {
        return Vec::new();
    };
    vec![
        foreign_table(
            ns,
            &format!("{}ft_settings", side.prefix),
            server,
            ("pg_catalog", "pg_settings"),
            &[("name", "text"), ("setting", "text")],
        ),
        foreign_table(
            ns,
            &format!("{}ft_views", side.prefix),
            server,
            ("pg_catalog", "pg_views"),
            &[
                ("schemaname", "name"),
                ("viewname", "name"),
                ("definition", "text"),
            ],
        ),
    ]
}

/// Three columns for a remote side: its `server_version_num`, whether its
/// `information_schema.check_constraints` uses `pg_get_constraintdef` (PostgreSQL 17 and
/// older), and its `block_size`.
pub fn probe_select(ns: &str, prefix: &str) -> String {
    let ns = quote_ident(ns);
    format!(
        "(SELECT setting::int FROM {ns}.{p}ft_settings WHERE name = 'server_version_num'), \
         (SELECT definition LIKE '%pg_get_constraintdef%' FROM {ns}.{p}ft_views \
          WHERE schemaname = 'information_schema' AND viewname = 'check_constraints'), \
         (SELECT setting::int FROM {ns}.{p}ft_settings WHERE name = 'block_size')",
        p = prefix
    )
}

/// Helper functions in `ns`: `disp_type` and `disp_expr` print the way the catalog engine
/// does (`search_path = public` and the session's own date and number settings, given in
/// `session` as (name, value) pairs).
pub fn helper_functions(ns: &str, session: &[(&str, String)]) -> String {
    let ns = quote_ident(ns);
    let sets: String = session
        .iter()
        .map(|(name, value)| format!(" SET {name} = {}", quote_literal(value)))
        .collect();
    format!(
        "CREATE FUNCTION {ns}.disp_type(oid, integer) RETURNS text LANGUAGE sql STABLE \
           SET search_path = public AS 'SELECT pg_catalog.format_type($1, $2)';\n\
         CREATE FUNCTION {ns}.disp_expr(pg_node_tree, oid) RETURNS text LANGUAGE sql STABLE \
           SET search_path = public{sets} AS 'SELECT pg_catalog.pg_get_expr($1, $2)';\n"
    )
}

/// The statements copying one side's catalogs into temporary tables `<prefix><catalog>`
/// (for a remote side, through foreign tables in `ns` first).
pub fn copy_side(ns: &str, side: &SideSql, filter: &SchemaFilter) -> String {
    let p = side.prefix;
    let version = side.origin.version();
    let mut sql = String::new();
    for cat in CATALOGS {
        let select: Vec<String> = cat
            .cols
            .iter()
            .filter(|c| c.name != "attisdropped")
            .map(|c| {
                if version >= c.since {
                    quote_ident(c.name)
                } else {
                    format!("{} AS {}", c.default, quote_ident(c.name))
                }
            })
            .collect();
        let from = match &side.origin {
            Origin::Local { .. } => format!("{}.{}", cat.schema, cat.relation),
            Origin::Remote { server, .. } => {
                let ft = format!("{p}ft_{}", cat.name);
                let cols: Vec<(&str, &str)> = cat
                    .cols
                    .iter()
                    .filter(|c| version >= c.since)
                    .map(|c| (c.name, c.ty))
                    .collect();
                sql.push_str(&foreign_table(
                    ns,
                    &ft,
                    server,
                    (cat.schema, cat.relation),
                    &cols,
                ));
                sql.push_str(";\n");
                format!("{}.{}", quote_ident(ns), quote_ident(&ft))
            }
        };
        let filter = if cat.filter.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", cat.filter)
        };
        sql.push_str(&format!(
            "CREATE TEMP TABLE {p}{} AS SELECT {} FROM {from}{filter};\n",
            cat.name,
            select.join(", ")
        ));
    }
    sql.push_str(&copy_texts(ns, side, filter));
    sql.push_str(&format!(
        "CREATE INDEX ON {p}class (oid); CREATE INDEX ON {p}attribute (attrelid, attnum); \
         CREATE INDEX ON {p}type (oid); CREATE INDEX ON {p}namespace (oid); \
         CREATE INDEX ON {p}constraint (conrelid); CREATE INDEX ON {p}depend (objid); \
         CREATE INDEX ON {p}constraint (connamespace, conname); CREATE INDEX ON {p}enum (enumtypid); \
         CREATE INDEX ON {p}checks (conoid); \
         CREATE INDEX ON {p}inherits (inhparent); CREATE INDEX ON {p}index (indrelid); \
         CREATE INDEX ON {p}checks (constraint_schema, constraint_name); \
         CREATE INDEX ON {p}columns (table_schema, table_name, column_name); \
         CREATE INDEX ON {p}indexes (schemaname, indexname);\n\
         ANALYZE {p}namespace, {p}class, {p}attribute, {p}type, {p}enum, {p}depend, \
         {p}inherits, {p}index, {p}indexes, {p}constraint, {p}operator, {p}columns, {p}checks;\n"
    ));
    sql
}

/// Column defaults (`<p>columns`) and check clauses (`<p>checks`). Locally they are printed
/// from the catalogs (exactly, per constraint); remotely they come from information_schema,
/// whose check clauses are keyed by schema and constraint name only.
fn copy_texts(ns: &str, side: &SideSql, filter: &SchemaFilter) -> String {
    let p = side.prefix;
    match &side.origin {
        Origin::Local { .. } => {
            let f = filter_sql("n.nspname", filter);
            format!(
                "CREATE TEMP TABLE {p}columns AS SELECT n.nspname::text AS table_schema, \
                   c.relname::text AS table_name, a.attname::text AS column_name, \
                   pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS column_default, \
                   {ns}.disp_expr(d.adbin, d.adrelid) AS column_default_disp \
                 FROM pg_catalog.pg_attrdef d \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum \
                 JOIN pg_catalog.pg_class c ON c.oid = d.adrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE a.attgenerated = '' AND c.relkind IN ('r', 'p') AND {f};\n\
                 CREATE TEMP TABLE {p}checks AS SELECT k.oid AS conoid, \
                   n.nspname::text AS constraint_schema, k.conname::text AS constraint_name, \
                   pg_catalog.pg_get_expr(k.conbin, k.conrelid) AS check_clause, \
                   NULL::bool AS noinherit, NULL::bool AS notvalid \
                 FROM pg_catalog.pg_constraint k \
                 JOIN pg_catalog.pg_namespace n ON n.oid = k.connamespace \
                 WHERE k.contype = 'c' AND k.conrelid <> 0 AND {f};\n",
                ns = quote_ident(ns)
            )
        }
        Origin::Remote {
            server,
            legacy_checks,
            ..
        } => {
            let columns = foreign_table(
                ns,
                &format!("{p}ft_columns"),
                server,
                ("information_schema", "columns"),
                &[
                    ("table_schema", "text"),
                    ("table_name", "text"),
                    ("column_name", "text"),
                    ("column_default", "text"),
                ],
            );
            let checks = foreign_table(
                ns,
                &format!("{p}ft_checks"),
                server,
                ("information_schema", "check_constraints"),
                &[
                    ("constraint_schema", "text"),
                    ("constraint_name", "text"),
                    ("check_clause", "text"),
                ],
            );
            // PostgreSQL 17 and older show `substring(pg_get_constraintdef(oid) from 7)`:
            // `(<expr>)[ NO INHERIT][ NOT VALID]`. The flags are compared from pg_constraint;
            // here they only tell same-named constraints apart.
            let clause = if *legacy_checks {
                "regexp_replace(regexp_replace(regexp_replace(check_clause, ' NOT VALID$', ''), \
                 ' NO INHERIT$', ''), '^\\((.*)\\)$', '\\1') AS check_clause, \
                 check_clause ~ ' NO INHERIT( NOT VALID)?$' AS noinherit, \
                 check_clause ~ ' NOT VALID$' AS notvalid"
            } else {
                "check_clause, NULL::bool AS noinherit, NULL::bool AS notvalid"
            };
            let ns = quote_ident(ns);
            format!(
                "{columns};\n{checks};\n\
                 CREATE TEMP TABLE {p}columns AS SELECT table_schema, table_name, column_name, \
                   column_default, NULL::text AS column_default_disp \
                 FROM {ns}.{p}ft_columns WHERE column_default IS NOT NULL;\n\
                 CREATE TEMP TABLE {p}checks AS SELECT NULL::oid AS conoid, constraint_schema, \
                   constraint_name, {clause} FROM {ns}.{p}ft_checks;\n"
            )
        }
    }
}

/// The type of attribute `a` as the catalog engine prints it, without the array brackets
/// (`arr.s`): `format_type` of the local type with the same schema and name, or built from the
/// names when there is none (a modifier then shown as `(n)`). `typmod` is `a.atttypmod` or
/// `NULL` (the type without its modifier).
fn type_text(ns: &str, typmod: &str) -> String {
    format!(
        "CASE WHEN lt.oid IS NOT NULL THEN {}.disp_type(lt.oid, {typmod}) \
         ELSE CASE WHEN bn.nspname = 'pg_catalog' OR (bn.nspname = 'public' AND NOT EXISTS \
                (SELECT 1 FROM pg_catalog.pg_type x WHERE x.typname = b.typname \
                 AND x.typnamespace = 'pg_catalog'::regnamespace)) \
              THEN quote_ident(b.typname) \
              ELSE quote_ident(bn.nspname) || '.' || quote_ident(b.typname) END \
           || CASE WHEN {typmod} >= 0 THEN '(' || {typmod} || ')' ELSE '' END END",
        quote_ident(ns)
    )
}

/// Name-keyed tables built from one side's copies: `<p>rels`, `<p>cols`, `<p>idx`, `<p>cons`,
/// `<p>enums`, `<p>parents`, and `<p>atypes` (the attributes of
/// the compared tables and of the tables their foreign keys reference, with their types). `ns` is excluded (the engine's own schema).
pub fn normalize_side(ns: &str, side: &SideSql, filter: &SchemaFilter) -> String {
    let p = side.prefix;
    // Same-named CHECK constraints of one schema: with PostgreSQL 17's check clauses, those
    // with other NO INHERIT or NOT VALID flags are told apart.
    let same_flags = match side.origin {
        Origin::Remote {
            legacy_checks: true,
            ..
        } => "AND k2.connoinherit = k.connoinherit AND k2.convalidated = k.convalidated",
        _ => "",
    };
    let f = filter_sql("n.nspname", filter);
    let own = quote_literal(ns);
    let not_ext = |cat: u32, oid: &str| {
        format!(
            "NOT EXISTS (SELECT 1 FROM {p}depend d WHERE d.classid = {cat} AND d.objid = {oid})"
        )
    };
    let names = |rel: &str, keys: &str| {
        format!(
            "ARRAY(SELECT a.attname::text FROM unnest({keys}) WITH ORDINALITY u(num, i) \
             JOIN {p}attribute a ON a.attrelid = {rel} AND a.attnum = u.num ORDER BY u.i)::text"
        )
    };
    format!(
        "CREATE TEMP TABLE {p}rels AS SELECT c.oid, n.nspname::text AS nsp, c.relname::text AS rel, \
           CASE WHEN c.relkind IN ('r', 'p') THEN 'table' WHEN c.relkind = 'm' THEN 'matview' \
                ELSE 'view' END AS rk \
         FROM {p}class c JOIN {p}namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'm', 'v') AND c.relpersistence <> 't' AND {f} \
           AND n.nspname <> {own} AND {rel_not_ext};\n\
         CREATE TEMP TABLE {p}atypes AS SELECT a.attrelid, a.attnum, a.attname::text AS col, \
           a.attnotnull AS notnull, a.atthasdef, a.attgenerated, \
           {typ_mod} || arr.s AS typ, {typ_nomod} || arr.s AS typ_nomod, \
           CASE WHEN ln.nspname = 'pg_catalog' THEN pg_catalog.format_type(lt.oid, a.atttypmod) || arr.s \
                ELSE 'text' END AS ft_type \
         FROM {p}attribute a JOIN {p}type ty ON ty.oid = a.atttypid \
         CROSS JOIN LATERAL (SELECT CASE WHEN ty.typelem <> 0 AND ty.typstorage <> 'p' \
                                    THEN '[]' ELSE '' END AS s) arr \
         JOIN {p}type b ON b.oid = CASE WHEN arr.s <> '' THEN ty.typelem ELSE ty.oid END \
         JOIN {p}namespace bn ON bn.oid = b.typnamespace \
         LEFT JOIN (pg_catalog.pg_type lt JOIN pg_catalog.pg_namespace ln ON ln.oid = lt.typnamespace) \
           ON ln.nspname = bn.nspname AND lt.typname = b.typname \
         WHERE a.attrelid IN (SELECT oid FROM {p}rels WHERE rk = 'table' \
           UNION SELECT k.confrelid FROM {p}constraint k JOIN {p}rels r ON r.oid = k.conrelid \
           WHERE k.contype = 'f');\n\
         CREATE TEMP TABLE {p}cols AS SELECT r.nsp, r.rel, t.col, t.notnull, t.typ, \
           d.column_default AS def, d.column_default_disp AS def_disp, \
           (t.atthasdef AND t.attgenerated = '' AND d.column_default IS NULL) AS def_hidden \
         FROM {p}rels r JOIN {p}atypes t ON t.attrelid = r.oid \
         LEFT JOIN {p}columns d ON d.table_schema = r.nsp AND d.table_name = r.rel \
           AND d.column_name = t.col \
         WHERE r.rk = 'table';\n\
         CREATE TEMP TABLE {p}idx AS SELECT n.nspname::text AS nsp, ic.relname::text AS idx, \
           r.nsp || '.' || r.rel AS tbl, x.indexdef AS def \
         FROM {p}index i JOIN {p}class ic ON ic.oid = i.indexrelid \
         JOIN {p}namespace n ON n.oid = ic.relnamespace \
         JOIN {p}rels r ON r.oid = i.indrelid AND r.rk IN ('table', 'matview') \
         LEFT JOIN {p}indexes x ON x.schemaname = n.nspname AND x.indexname = ic.relname \
         WHERE NOT ic.relispartition;\n\
         CREATE TEMP TABLE {p}check_groups AS SELECT constraint_schema, constraint_name, \
           noinherit, notvalid, array_agg(check_clause ORDER BY check_clause) AS cands, count(*) AS n \
         FROM {p}checks WHERE conoid IS NULL GROUP BY 1, 2, 3, 4;\n\
         CREATE TEMP TABLE {p}cons AS SELECT r.nsp, r.rel, k.conname::text AS con, \
           k.contype::text AS kind, \
           concat_ws(',', k.condeferrable, k.condeferred, k.convalidated, k.connoinherit, \
                     k.conenforced, k.conperiod) AS flags, \
           CASE WHEN k.contype IN ('p', 'u', 'x') THEN \
             regexp_replace(ix.indexdef, ' ON ONLY ', ' ON ') \
             || coalesce(' TABLESPACE ' || ix.tablespace, '') END AS idxdef, \
           CASE WHEN k.contype = 'f' THEN concat_ws(' ', {conkey}, fn.nspname || '.' || fc.relname, \
             {confkey}, k.confmatchtype, k.confupdtype, k.confdeltype, {setcols}) END AS fkdef, \
           CASE WHEN k.contype = 'x' THEN ARRAY(SELECT opn.nspname || '.' || o.oprname \
             FROM unnest(k.conexclop) WITH ORDINALITY u(op, i) \
             JOIN {p}operator o ON o.oid = u.op JOIN {p}namespace opn ON opn.oid = o.oprnamespace \
             ORDER BY u.i)::text END AS exclops, \
           coalesce(lc.check_clause, CASE WHEN g.n = 1 AND samename.n = 1 THEN g.cands[1] END) AS chk, \
           CASE WHEN lc.conoid IS NOT NULL THEN ARRAY[lc.check_clause] ELSE g.cands END AS chk_cands, \
           (k.contype = 'c' AND lc.conoid IS NULL AND g.n IS NULL) AS chk_hidden \
         FROM {p}rels r JOIN {p}constraint k ON k.conrelid = r.oid \
         LEFT JOIN {p}class ic ON ic.oid = k.conindid \
         LEFT JOIN {p}indexes ix ON ix.schemaname = r.nsp AND ix.indexname = ic.relname \
         LEFT JOIN {p}class fc ON fc.oid = k.confrelid \
         LEFT JOIN {p}namespace fn ON fn.oid = fc.relnamespace \
         CROSS JOIN LATERAL (SELECT count(*) AS n FROM {p}constraint k2 \
           WHERE k2.contype = 'c' AND k2.connamespace = k.connamespace AND k2.conname = k.conname \
             {same_flags}) samename \
         LEFT JOIN {p}checks lc ON lc.conoid = k.oid \
         LEFT JOIN {p}check_groups g ON k.contype = 'c' AND g.constraint_schema = r.nsp \
           AND g.constraint_name = k.conname::text AND (g.noinherit IS NULL \
             OR (g.noinherit = k.connoinherit AND g.notvalid = NOT k.convalidated)) \
         WHERE r.rk = 'table' AND k.conislocal AND k.conparentid = 0;\n\
         CREATE TEMP TABLE {p}enums AS SELECT n.nspname::text AS nsp, t.typname::text AS typ, \
           coalesce((SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) \
                     FROM {p}enum e WHERE e.enumtypid = t.oid), '{{}}') AS labels \
         FROM {p}type t JOIN {p}namespace n ON n.oid = t.typnamespace \
         WHERE t.typtype = 'e' AND {f} AND {type_not_ext};\n\
         CREATE TEMP TABLE {p}parents AS SELECT cr.nsp || '.' || cr.rel AS child, \
           pr.nsp || '.' || pr.rel AS parent \
         FROM {p}inherits i JOIN {p}rels cr ON cr.oid = i.inhrelid \
         JOIN {p}rels pr ON pr.oid = i.inhparent;\n",
        rel_not_ext = not_ext(1259, "c.oid"),
        typ_mod = type_text(ns, "a.atttypmod"),
        typ_nomod = type_text(ns, "NULL"),
        type_not_ext = not_ext(1247, "t.oid"),
        conkey = names("k.conrelid", "k.conkey"),
        confkey = names("k.confrelid", "k.confkey"),
        setcols = names("k.conrelid", "k.confdelsetcols"),
    )
}

/// The diff of the normalized `s_` and `t_` tables: one row per difference, plus `parent`
/// rows (the partition and INHERITS edges of either side, for the implied-children rule) and
/// `?hidden` rows (texts the target's role may not read). Columns: kind, object, old, new,
/// old display, new display, old not-null, new not-null.
pub const DIFF: &str = "WITH \
  s_t AS (SELECT nsp, rel FROM s_rels WHERE rk = 'table'), \
  t_t AS (SELECT nsp, rel FROM t_rels WHERE rk = 'table'), \
  both_t AS (SELECT nsp, rel FROM s_t INTERSECT SELECT nsp, rel FROM t_t), \
  kept AS (SELECT s.nsp || '.' || s.rel AS name FROM s_rels s \
           JOIN t_rels t ON t.nsp = s.nsp AND t.rel = s.rel AND t.rk = s.rk), \
  cc AS (SELECT nsp, rel, col, s.typ AS s_typ, t.typ AS t_typ, s.notnull AS s_nn, t.notnull AS t_nn, \
           s.def AS s_def, t.def AS t_def, s.def_disp AS s_disp, t.def_disp AS t_disp \
         FROM (SELECT c.* FROM s_cols c JOIN both_t USING (nsp, rel)) s \
         FULL JOIN (SELECT c.* FROM t_cols c JOIN both_t USING (nsp, rel)) t USING (nsp, rel, col)), \
  ii AS (SELECT nsp, idx, s.def AS s_def, t.def AS t_def, s.tbl IS NOT NULL AS in_s, \
           t.tbl IS NOT NULL AS in_t, s.tbl IN (SELECT name FROM kept) AS s_kept, \
           t.tbl IN (SELECT name FROM kept) AS t_kept \
         FROM s_idx s FULL JOIN t_idx t USING (nsp, idx)), \
  kk AS (SELECT nsp, rel, con, s.kind AS s_kind, t.kind AS t_kind, \
           s.flags IS DISTINCT FROM t.flags OR s.idxdef IS DISTINCT FROM t.idxdef \
           OR s.fkdef IS DISTINCT FROM t.fkdef OR s.exclops IS DISTINCT FROM t.exclops \
           OR CASE WHEN s.kind <> 'c' THEN false \
                   WHEN s.chk IS NOT NULL AND t.chk IS NOT NULL THEN s.chk <> t.chk \
                   WHEN s.chk IS NOT NULL THEN NOT coalesce(s.chk = ANY (t.chk_cands), false) \
                   WHEN t.chk IS NOT NULL THEN NOT coalesce(t.chk = ANY (s.chk_cands), false) \
                   ELSE s.chk_cands IS DISTINCT FROM t.chk_cands END AS changed \
         FROM (SELECT c.* FROM s_cons c JOIN both_t USING (nsp, rel)) s \
         FULL JOIN (SELECT c.* FROM t_cons c JOIN both_t USING (nsp, rel)) t USING (nsp, rel, con)), \
  ee AS (SELECT nsp, typ, s.labels AS sl, t.labels AS tl \
         FROM s_enums s FULL JOIN t_enums t USING (nsp, typ)) \
SELECT 'table-added', nsp || '.' || rel, NULL::text, NULL::text, NULL::text, NULL::text, \
       NULL::bool, NULL::bool FROM (SELECT * FROM s_t EXCEPT SELECT * FROM t_t) x \
UNION ALL SELECT 'table-removed', nsp || '.' || rel, NULL, NULL, NULL, NULL, NULL, NULL \
  FROM (SELECT * FROM t_t EXCEPT SELECT * FROM s_t) x \
UNION ALL SELECT 'column-added', nsp || '.' || rel || '.' || col, NULL, s_typ, NULL, NULL, NULL, NULL \
  FROM cc WHERE t_typ IS NULL \
UNION ALL SELECT 'column-removed', nsp || '.' || rel || '.' || col, NULL, NULL, NULL, NULL, NULL, NULL \
  FROM cc WHERE s_typ IS NULL \
UNION ALL SELECT 'column-type-changed', nsp || '.' || rel || '.' || col, t_typ, s_typ, NULL, NULL, NULL, NULL \
  FROM cc WHERE s_typ <> t_typ \
UNION ALL SELECT 'column-nullability-changed', nsp || '.' || rel || '.' || col, NULL, NULL, NULL, NULL, \
  t_nn, s_nn FROM cc WHERE s_nn <> t_nn \
UNION ALL SELECT 'column-default-changed', nsp || '.' || rel || '.' || col, t_def, s_def, t_disp, s_disp, \
  NULL, NULL FROM cc WHERE s_typ IS NOT NULL AND t_typ IS NOT NULL AND s_def IS DISTINCT FROM t_def \
UNION ALL SELECT 'index-added', nsp || '.' || idx, NULL, NULL, NULL, NULL, NULL, NULL FROM ii \
  WHERE in_s AND s_kept AND (NOT in_t OR NOT t_kept) \
UNION ALL SELECT 'index-removed', nsp || '.' || idx, NULL, NULL, NULL, NULL, NULL, NULL FROM ii \
  WHERE in_t AND t_kept AND (NOT in_s OR NOT s_kept) \
UNION ALL SELECT 'index-changed', nsp || '.' || idx, NULL, NULL, NULL, NULL, NULL, NULL FROM ii \
  WHERE in_s AND in_t AND s_kept AND t_kept AND s_def IS DISTINCT FROM t_def \
UNION ALL SELECT 'constraint-added', nsp || '.' || rel || '.' || con, NULL, s_kind, NULL, NULL, NULL, NULL \
  FROM kk WHERE s_kind IS NOT NULL AND s_kind IS DISTINCT FROM t_kind \
UNION ALL SELECT 'constraint-removed', nsp || '.' || rel || '.' || con, t_kind, NULL, NULL, NULL, NULL, NULL \
  FROM kk WHERE t_kind IS NOT NULL AND t_kind IS DISTINCT FROM s_kind \
UNION ALL SELECT 'constraint-changed', nsp || '.' || rel || '.' || con, t_kind, s_kind, NULL, NULL, NULL, NULL \
  FROM kk WHERE s_kind = t_kind AND changed \
UNION ALL SELECT 'enum-added', nsp || '.' || typ, NULL, NULL, NULL, NULL, NULL, NULL FROM ee WHERE tl IS NULL \
UNION ALL SELECT 'enum-removed', nsp || '.' || typ, NULL, NULL, NULL, NULL, NULL, NULL FROM ee WHERE sl IS NULL \
UNION ALL SELECT 'enum-value-added', nsp || '.' || typ, NULL, l, NULL, NULL, NULL, NULL \
  FROM ee, unnest(sl) l WHERE tl IS NOT NULL AND NOT l = ANY (tl) \
UNION ALL SELECT 'enum-value-removed', nsp || '.' || typ, l, NULL, NULL, NULL, NULL, NULL \
  FROM ee, unnest(tl) l WHERE sl IS NOT NULL AND NOT l = ANY (sl) \
UNION ALL SELECT 'enum-values-reordered', nsp || '.' || typ, NULL, NULL, NULL, NULL, NULL, NULL FROM ee \
  WHERE sl IS NOT NULL AND tl IS NOT NULL \
    AND ARRAY(SELECT l FROM unnest(sl) WITH ORDINALITY u(l, i) WHERE l = ANY (tl) ORDER BY i) \
     <> ARRAY(SELECT l FROM unnest(tl) WITH ORDINALITY u(l, i) WHERE l = ANY (sl) ORDER BY i) \
UNION ALL SELECT DISTINCT 'parent', child, parent, NULL, NULL, NULL, NULL::bool, NULL::bool \
  FROM (SELECT * FROM s_parents UNION SELECT * FROM t_parents) p \
UNION ALL SELECT '?hidden-default', nsp || '.' || rel || '.' || col, 'source', NULL, NULL, NULL, NULL, NULL \
  FROM s_cols WHERE def_hidden \
UNION ALL SELECT '?hidden-default', nsp || '.' || rel || '.' || col, 'target', NULL, NULL, NULL, NULL, NULL \
  FROM t_cols WHERE def_hidden \
UNION ALL SELECT '?hidden-check', nsp || '.' || rel || '.' || con, 'source', NULL, NULL, NULL, NULL, NULL \
  FROM s_cons WHERE chk_hidden \
UNION ALL SELECT '?hidden-check', nsp || '.' || rel || '.' || con, 'target', NULL, NULL, NULL, NULL, NULL \
  FROM t_cons WHERE chk_hidden";

/// Which of `names` pg_catalog holds as a type, relation, collation or text-search object
/// (`$1`: text[]).
pub const SHADOWED: &str = "SELECT typname::text FROM pg_catalog.pg_type \
   WHERE typnamespace = 'pg_catalog'::regnamespace AND typname = ANY ($1::text[]) \
 UNION SELECT relname::text FROM pg_catalog.pg_class \
   WHERE relnamespace = 'pg_catalog'::regnamespace AND relname = ANY ($1::text[]) \
 UNION SELECT collname::text FROM pg_catalog.pg_collation \
   WHERE collnamespace = 'pg_catalog'::regnamespace AND collname = ANY ($1::text[]) \
 UNION SELECT cfgname::text FROM pg_catalog.pg_ts_config \
   WHERE cfgnamespace = 'pg_catalog'::regnamespace AND cfgname = ANY ($1::text[]) \
 UNION SELECT dictname::text FROM pg_catalog.pg_ts_dict \
   WHERE dictnamespace = 'pg_catalog'::regnamespace AND dictname = ANY ($1::text[])";

/// Objects left by earlier runs whose owning session is gone: `(kind, name)` rows, kind being
/// `server`, `schema` or `database`. An owner is recorded as `pid=<pid> start=<micros>` in the
/// object's comment (and the pid in its name); a session with that pid and start time that is
/// still in `pg_stat_activity` keeps its objects. Only objects the current role may drop.
pub const LEFTOVERS: &str = "WITH objs AS (\
   SELECT 'server' AS kind, srvname::text AS name, \
     pg_catalog.obj_description(oid, 'pg_foreign_server') AS note, \
     pg_catalog.pg_has_role(srvowner, 'USAGE') AS mine \
   FROM pg_catalog.pg_foreign_server WHERE srvname LIKE 'pgship\\_cmp\\_%' \
   UNION ALL SELECT 'schema', nspname::text, pg_catalog.obj_description(oid, 'pg_namespace'), \
     pg_catalog.pg_has_role(nspowner, 'USAGE') \
   FROM pg_catalog.pg_namespace WHERE nspname LIKE 'pgship\\_cmp\\_%' \
   UNION ALL SELECT 'database', datname::text, pg_catalog.shobj_description(oid, 'pg_database'), \
     pg_catalog.pg_has_role(datdba, 'USAGE') \
   FROM pg_catalog.pg_database WHERE datname LIKE 'pgship\\_cmp\\_%') \
 SELECT kind, name FROM objs o WHERE mine AND NOT EXISTS (\
   SELECT 1 FROM pg_catalog.pg_stat_activity a \
   WHERE a.pid = coalesce(substring(o.note FROM 'pid=([0-9]+)'), \
                          substring(o.name FROM '^pgship_cmp_([0-9]+)_'))::int \
     AND (a.backend_start IS NULL OR substring(o.note FROM 'start=([0-9]+)') IS NULL \
          OR (extract(epoch FROM a.backend_start) * 1000000)::bigint \
             = substring(o.note FROM 'start=([0-9]+)')::bigint)) \
 ORDER BY kind DESC, name";

/// The expression a session uses to record itself as an owner, matching [`LEFTOVERS`].
pub const OWNER_START: &str = "(SELECT (extract(epoch FROM backend_start) * 1000000)::bigint \
   FROM pg_catalog.pg_stat_activity WHERE pid = pg_catalog.pg_backend_pid())";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_lists_become_escaped_literals() {
        let f = SchemaFilter {
            include: vec![],
            exclude: vec!["pgship".into(), "it's".into()],
        };
        let sql = filter_sql("n.nspname", &f);
        assert!(
            sql.contains("<> ALL(ARRAY['pgship', 'it''s']::text[])"),
            "{sql}"
        );
        assert!(sql.contains("cardinality(ARRAY[]::text[]) = 0"), "{sql}");
        assert!(!sql.contains('$'), "{sql}");
    }

    #[test]
    fn foreign_tables_quote_names_and_options() {
        let sql = foreign_table(
            "pgship_cmp_1_ab",
            "t_ft_class",
            "pgship_cmp_1_ab",
            ("pg_catalog", "pg_class"),
            &[("oid", "oid"), ("relkind", "\"char\"")],
        );
        assert_eq!(
            sql,
            "CREATE FOREIGN TABLE \"pgship_cmp_1_ab\".\"t_ft_class\" (\"oid\" oid, \"relkind\" \"char\") \
             SERVER \"pgship_cmp_1_ab\" OPTIONS (schema_name 'pg_catalog', table_name 'pg_class')"
        );
    }

    #[test]
    fn version_gated_columns_are_replaced_by_their_default() {
        let side = |version| SideSql {
            prefix: "t_",
            origin: Origin::Remote {
                server: "srv".into(),
                version,
                legacy_checks: version < 180000,
                block_size: 8192,
            },
        };
        let old = copy_side("ns", &side(150000), &SchemaFilter::default());
        assert!(old.contains("true AS \"conenforced\""), "{old}");
        assert!(!old.contains("\"conenforced\" bool"), "{old}");
        assert!(old.contains("\"confdelsetcols\" int2[]"), "{old}");
        assert!(old.contains("NOT VALID$"), "{old}");
        let new = copy_side("ns", &side(180000), &SchemaFilter::default());
        assert!(new.contains("\"conenforced\" bool"), "{new}");
        assert!(!new.contains("NOT VALID$"), "{new}");
    }
}
