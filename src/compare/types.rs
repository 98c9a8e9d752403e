//! Which column type changes are compatible (compare-vocabulary.md, "Breaking lines").
//!
//! Types are compared as `format_type()` prints them. A change is compatible when:
//! - the type is the same and only its length limit is widened or removed
//!   (`character varying(10)` -> `character varying(20)` or `character varying`);
//! - it is a lossless implicit cast: `smallint` -> `integer` -> `bigint` -> `numeric`,
//!   `real` -> `double precision`, `character varying`/`character` -> `text`,
//!   `timestamp without time zone` -> `timestamp with time zone`;
//! - it goes to unbounded `text` or `character varying`;
//! - arrays follow the rule of their element type.
//!
//! Every other change is breaking.

/// A type as `format_type` prints it, split into base name, modifiers and array depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeName<'a> {
    pub base: String,
    pub mods: Vec<&'a str>,
    pub dims: usize,
    /// Trailing words after the modifiers (`timestamp(3) with time zone`).
    pub raw: &'a str,
}

/// Parse `character varying(255)[]`, `timestamp(3) with time zone`, `numeric(10,2)`.
pub fn parse(t: &str) -> TypeName<'_> {
    let mut rest = t.trim();
    let mut dims = 0;
    while let Some(r) = rest.strip_suffix("[]") {
        dims += 1;
        rest = r.trim_end();
    }
    let (base, mods) = match (rest.find('('), rest.rfind(')')) {
        (Some(open), Some(close)) if close > open && !rest.starts_with('"') => {
            let inner = &rest[open + 1..close];
            let base = format!("{}{}", rest[..open].trim_end(), &rest[close + 1..]);
            (base, inner.split(',').map(str::trim).collect())
        }
        _ => (rest.to_string(), Vec::new()),
    };
    TypeName {
        base,
        mods,
        dims,
        raw: t,
    }
}

/// The rank of a type in a lossless widening chain, if it is in one.
fn chain(base: &str) -> Option<(u8, u8)> {
    Some(match base {
        "smallint" => (0, 0),
        "integer" => (0, 1),
        "bigint" => (0, 2),
        "numeric" => (0, 3),
        "real" => (1, 0),
        "double precision" => (1, 1),
        "character" => (2, 0),
        "character varying" => (2, 1),
        "text" => (2, 2),
        "timestamp without time zone" => (3, 0),
        "timestamp with time zone" => (3, 1),
        _ => return None,
    })
}

/// Types whose modifier is a length or precision limit that can be widened or removed.
fn widens(base: &str, old: &[&str], new: &[&str]) -> bool {
    if new.is_empty() {
        return true;
    }
    if old.is_empty() {
        return false;
    }
    let num = |s: &str| s.parse::<i64>().ok();
    match base {
        "numeric" => {
            // numeric(p, s): more precision with the same scale keeps every value.
            let (op, os) = (num(old[0]), old.get(1).and_then(|s| num(s)).unwrap_or(0));
            let (np, ns) = (num(new[0]), new.get(1).and_then(|s| num(s)).unwrap_or(0));
            match (op, np) {
                (Some(op), Some(np)) => ns >= os && np - ns >= op - os,
                _ => false,
            }
        }
        _ if old.len() == 1 && new.len() == 1 => match (num(old[0]), num(new[0])) {
            (Some(o), Some(n)) => n >= o,
            _ => false,
        },
        _ => false,
    }
}

/// `None` when changing a column from `old` to `new` is compatible, else why it is not.
pub fn incompatibility(old: &str, new: &str) -> Option<String> {
    let (o, n) = (parse(old), parse(new));
    // Anything goes to unbounded text or varchar (arrays included: their text form).
    if n.dims == 0 && n.mods.is_empty() && (n.base == "text" || n.base == "character varying") {
        return None;
    }
    if o.dims != n.dims {
        return Some(format!(
            "{old} -> {new} changes the array dimensions: existing values and the code that reads them do not fit"
        ));
    }
    // Arrays of the same depth: unbounded text or varchar elements take anything.
    if n.mods.is_empty() && (n.base == "text" || n.base == "character varying") {
        return None;
    }
    if o.base == n.base {
        if widens(&o.base, &o.mods, &n.mods) {
            return None;
        }
        return Some(format!(
            "{old} -> {new} narrows the type: existing values may not fit, and the app may write values that no longer fit"
        ));
    }
    if let (Some((fo, ro)), Some((fn_, rn))) = (chain(&o.base), chain(&n.base))
        && fo == fn_
        && rn > ro
    {
        // A lossless cast, but a bounded target may still be narrower than the source.
        let bounded_target = !n.mods.is_empty();
        let ok = match n.base.as_str() {
            // numeric(p,s) from an integer type: needs enough integer digits.
            "numeric" if bounded_target => {
                let digits = match o.base.as_str() {
                    "smallint" => 5,
                    "integer" => 10,
                    _ => 19,
                };
                let p = n.mods[0].parse::<i64>().unwrap_or(0);
                let s = n
                    .mods
                    .get(1)
                    .and_then(|s| s.parse::<i64>().ok())
                    .unwrap_or(0);
                p - s >= digits
            }
            // character(n) -> varchar(m) keeps values when m >= n.
            "character varying" if bounded_target => {
                let old_len = o
                    .mods
                    .first()
                    .and_then(|s| s.parse::<i64>().ok())
                    .unwrap_or(1);
                n.mods[0].parse::<i64>().is_ok_and(|m| m >= old_len)
            }
            _ => true,
        };
        if ok {
            return None;
        }
    }
    Some(format!(
        "{old} -> {new} is not a lossless cast: existing values may fail to convert or change, and running code may read or write the wrong type"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compatible_changes() {
        for (o, n) in [
            ("character varying(10)", "character varying(20)"),
            ("character varying(10)", "character varying"),
            ("character varying(10)", "text"),
            ("character(3)", "text"),
            ("character(3)", "character varying(3)"),
            ("smallint", "integer"),
            ("smallint", "bigint"),
            ("integer", "bigint"),
            ("bigint", "numeric"),
            ("integer", "numeric(12,0)"),
            ("real", "double precision"),
            ("timestamp without time zone", "timestamp with time zone"),
            (
                "timestamp(3) without time zone",
                "timestamp without time zone",
            ),
            ("numeric(10,2)", "numeric(12,2)"),
            ("numeric(10,2)", "numeric"),
            ("integer[]", "bigint[]"),
            ("character varying(5)[]", "character varying(9)[]"),
            ("integer", "text"),
            ("mood", "text"),
            ("jsonb", "character varying"),
            ("integer[]", "text"),
            ("integer[]", "text[]"),
        ] {
            assert_eq!(incompatibility(o, n), None, "{o} -> {n}");
        }
    }

    #[test]
    fn breaking_changes() {
        for (o, n) in [
            ("character varying(20)", "character varying(10)"),
            ("text", "character varying(10)"),
            ("bigint", "integer"),
            ("integer", "smallint"),
            ("numeric", "integer"),
            ("double precision", "real"),
            ("text", "integer"),
            ("timestamp with time zone", "timestamp without time zone"),
            ("integer", "integer[]"),
            ("text", "text[]"),
            ("bigint[]", "integer[]"),
            ("numeric(12,2)", "numeric(10,2)"),
            ("numeric(10,2)", "numeric(10,4)"),
            ("bigint", "numeric(10,0)"),
            ("text", "jsonb"),
            ("json", "jsonb"),
            ("integer", "real"),
            ("mood", "other.mood"),
        ] {
            assert!(
                incompatibility(o, n).is_some(),
                "{o} -> {n} must be breaking"
            );
        }
    }

    #[test]
    fn parse_splits_modifiers_and_arrays() {
        let t = parse("timestamp(3) with time zone[]");
        assert_eq!(t.base, "timestamp with time zone");
        assert_eq!(t.mods, vec!["3"]);
        assert_eq!(t.dims, 1);
        let t = parse("numeric(10,2)");
        assert_eq!((t.base.as_str(), t.mods.len()), ("numeric", 2));
    }
}
