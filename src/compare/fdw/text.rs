//! Expressions printed by a postgres_fdw remote session, rewritten as the catalog engine prints
//! them.
//!
//! postgres_fdw runs its remote sessions with `search_path = pg_catalog`, so every name outside
//! pg_catalog comes back schema-qualified: `nextval('public.t_id_seq'::regclass)`,
//! `'a'::public.mood`, `public.f(x)`, `a OPERATOR(public.===) b`. The vocabulary prints
//! expressions with `search_path = public`, where PostgreSQL leaves out `public.` whenever the
//! name is visible through that path. [`unqualify_public`] removes exactly those qualifiers:
//! outside string and identifier literals, and inside the string literal of a `reg*` constant.
//!
//! The engine decides *whether* two expressions differ on the texts both sides print under
//! `pg_catalog` (see the parent module); this rewrite only shapes the text shown in a
//! `column-default-changed` line.
//!
//! What it cannot know: whether a public *function* is hidden by a pg_catalog function with the
//! same name and argument types (then PostgreSQL keeps `public.`; this keeps it only for
//! types, relations, collations and text-search objects named like one in pg_catalog, which
//! `shadowed` answers).

/// `reg*` types whose constants print a possibly qualified name inside a string literal.
const REG_TYPES: &[&str] = &[
    "regclass",
    "regtype",
    "regproc",
    "regprocedure",
    "regoper",
    "regoperator",
    "regconfig",
    "regdictionary",
    "regcollation",
];

/// `reg*` types naming functions or operators, where shadowing is not checked.
const REG_ROUTINES: &[&str] = &["regproc", "regprocedure", "regoper", "regoperator"];

/// Characters that make up PostgreSQL operators.
const OPERATOR_CHARS: &str = "+-*/<>=~!@#%^&|`?";

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

/// A name as it follows `public.`: a quoted identifier or a plain one. Returns the name
/// unquoted and its length in bytes in `s`.
fn name_at(s: &str) -> Option<(String, usize)> {
    if let Some(rest) = s.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if rest[i + 1..].starts_with('"') {
                    name.push('"');
                    chars.next();
                } else {
                    return Some((name, i + 2));
                }
            } else {
                name.push(c);
            }
        }
        return None;
    }
    let len = s
        .char_indices()
        .find(|(_, c)| !is_ident_char(*c))
        .map_or(s.len(), |(i, _)| i);
    (len > 0 && s.starts_with(is_ident_start)).then(|| (s[..len].to_string(), len))
}

/// The end (exclusive, in bytes) of the string literal opening at `start` (at its quote).
fn literal_end(s: &str, start: usize, escapes: bool) -> usize {
    let bytes = s.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if escapes => i += 2,
            b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    s.len()
}

/// The `reg*` type a literal ending at `end` is cast to, if any.
fn reg_cast(s: &str, end: usize) -> Option<&'static str> {
    let rest = s[end..].strip_prefix("::")?;
    REG_TYPES
        .iter()
        .copied()
        .find(|t| rest.starts_with(t) && !rest[t.len()..].starts_with(is_ident_char))
}

/// Rewrite `expr`, printed with `search_path = pg_catalog`, as PostgreSQL prints it with
/// `search_path = public`. `shadowed(name)` says whether pg_catalog holds a type, relation,
/// collation or text-search object named `name` (which would hide the public one).
pub fn unqualify_public(expr: &str, shadowed: &dyn Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut i = 0;
    let mut prev: Option<char> = None;
    while i < expr.len() {
        let rest = &expr[i..];
        let c = rest.chars().next().expect("not at the end");
        let after_ident = prev.is_some_and(|p| is_ident_char(p) || p == '.' || p == '"');
        // String literals, with the E'' form.
        let escaped = (c == 'E' || c == 'e') && rest[1..].starts_with('\'') && !after_ident;
        if c == '\'' || escaped {
            let open = if escaped { i + 1 } else { i };
            let end = literal_end(expr, open, escaped);
            let body = &expr[open + 1..end.saturating_sub(1).max(open + 1)];
            match reg_cast(expr, end).zip(body.strip_prefix("public.")) {
                Some((reg, name))
                    if REG_ROUTINES.contains(&reg)
                        || !name_at(name).is_some_and(|(n, _)| shadowed(&n)) =>
                {
                    out.push_str(&expr[i..=open]);
                    out.push_str(name);
                    out.push('\'');
                }
                _ => out.push_str(&expr[i..end]),
            }
            i = end;
            prev = Some('\'');
            continue;
        }
        if c == '"' {
            let (_, len) = name_at(rest).unwrap_or((String::new(), rest.len()));
            out.push_str(&rest[..len]);
            i += len;
            prev = Some('"');
            continue;
        }
        if is_ident_start(c) && !after_ident {
            // `OPERATOR(public.op)` prints as the bare operator.
            if let Some(op) = rest.strip_prefix("OPERATOR(public.") {
                let len = op
                    .find(|ch| !OPERATOR_CHARS.contains(ch))
                    .unwrap_or(op.len());
                if len > 0 && op[len..].starts_with(')') {
                    out.push_str(&op[..len]);
                    i += "OPERATOR(public.".len() + len + 1;
                    prev = Some(')');
                    continue;
                }
            }
            let (word, len) = name_at(rest).expect("an identifier starts here");
            if word == "public" && rest[len..].starts_with('.') {
                if let Some((name, name_len)) = name_at(&rest[len + 1..]) {
                    let after = &rest[len + 1 + name_len..];
                    let function = after.starts_with('(');
                    if function || !shadowed(&name) {
                        i += len + 1;
                        continue;
                    }
                }
            }
            out.push_str(&rest[..len]);
            i += len;
            prev = word.chars().last();
            continue;
        }
        out.push(c);
        i += c.len_utf8();
        prev = Some(c);
    }
    out
}

/// The names that follow `public.` in `expr` (outside quotes, or as a `reg*` constant), to ask
/// the database which of them pg_catalog shadows.
pub fn public_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut from = 0;
    while let Some(at) = expr[from..].find("public.") {
        let start = from + at + "public.".len();
        if let Some((name, _)) = name_at(&expr[start..]) {
            names.push(name);
        }
        from = start;
    }
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(expr: &str) -> String {
        unqualify_public(expr, &|_| false)
    }

    #[test]
    fn sequences_and_casts() {
        assert_eq!(
            plain("nextval('public.t_id_seq'::regclass)"),
            "nextval('t_id_seq'::regclass)"
        );
        assert_eq!(
            plain("nextval('public.\"T id\"'::regclass)"),
            "nextval('\"T id\"'::regclass)"
        );
        assert_eq!(plain("'a'::public.mood"), "'a'::mood");
        assert_eq!(plain("'{a}'::public.mood[]"), "'{a}'::mood[]");
        assert_eq!(plain("'x'::public.\"My Type\""), "'x'::\"My Type\"");
        assert_eq!(plain("'x'::other.e2"), "'x'::other.e2");
        assert_eq!(
            plain("nextval('other.s'::regclass)"),
            "nextval('other.s'::regclass)"
        );
    }

    #[test]
    fn functions_operators_collations() {
        assert_eq!(plain("public.f(1, public.g())"), "f(1, g())");
        assert_eq!(plain("(a OPERATOR(public.===) b)"), "(a === b)");
        assert_eq!(
            plain("(a OPERATOR(other.===) b)"),
            "(a OPERATOR(other.===) b)"
        );
        assert_eq!(plain("(x COLLATE public.\"de\")"), "(x COLLATE \"de\")");
        assert_eq!(plain("'english'::regconfig"), "'english'::regconfig");
        assert_eq!(plain("'public.cfg'::regconfig"), "'cfg'::regconfig");
    }

    #[test]
    fn literals_and_identifiers_are_left_alone() {
        assert_eq!(plain("'public.x'::text"), "'public.x'::text");
        assert_eq!(plain("'it''s public.x'"), "'it''s public.x'");
        assert_eq!(plain("E'a\\'public.b'"), "E'a\\'public.b'");
        assert_eq!(plain("\"public\".x"), "\"public\".x");
        assert_eq!(plain("notpublic.x"), "notpublic.x");
        assert_eq!(plain("(public).f"), "(public).f");
        assert_eq!(plain("now()"), "now()");
        assert_eq!(plain("'é'::public.ü"), "'é'::ü");
    }

    #[test]
    fn shadowed_names_keep_their_schema() {
        let shadow = |n: &str| n == "json" || n == "pg_class";
        assert_eq!(
            unqualify_public("'{}'::public.json", &shadow),
            "'{}'::public.json"
        );
        assert_eq!(
            unqualify_public("'public.pg_class'::regclass", &shadow),
            "'public.pg_class'::regclass"
        );
        // Functions are not checked: PostgreSQL resolves them by argument types too.
        assert_eq!(unqualify_public("public.json(1)", &shadow), "json(1)");
        assert_eq!(
            public_names("'public.pg_class'::regclass || public.\"A b\"(1)"),
            vec!["A b".to_string(), "pg_class".to_string()]
        );
    }
}
