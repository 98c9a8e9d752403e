//! The table of contents of a `pg_dump -Fc` archive, read directly from the file: each entry's
//! dump id, catalog identity (table oid and oid of the object it was dumped from), type,
//! schema, name, section and the dump ids it depends on. `pg_restore --list` prints the same
//! entries as one line of text each, which cannot be split reliably when names contain
//! spaces; the binary TOC has every field on its own.
//!
//! Archive versions 1.12 to 1.16 (pg_dump 9.5 to 18) are read. Only the TOC is read, never
//! the data that follows it.

use std::path::Path;

/// `teSection` of pg_backup.h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    None,
    PreData,
    Data,
    PostData,
}

/// One TOC entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub dump_id: i32,
    /// `pg_class` oid of the catalog the object lives in (0 for comments, ACLs, data, ...).
    pub tableoid: u32,
    /// The object's oid (for TABLE DATA, the table's).
    pub oid: u32,
    /// `TABLE`, `FK CONSTRAINT`, `COMMENT`, `TABLE DATA`, ...
    pub desc: String,
    pub namespace: Option<String>,
    /// The name: `users`, `users users_pkey` (constraints), `TABLE users` (comments), ...
    pub tag: String,
    pub owner: Option<String>,
    pub section: Section,
    pub deps: Vec<i32>,
}

impl Entry {
    /// `TABLE public.users`: how errors and reports name the entry.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) if !ns.is_empty() => format!("{} {ns}.{}", self.desc, self.tag),
            _ => format!("{} {}", self.desc, self.tag),
        }
    }

    /// Entries that only decorate or connect others (they carry no catalog identity of their
    /// own and are restored whenever an entry they depend on is): comments, grants, sequence
    /// ownership, and the attachment of a partition or of a partition's index.
    pub fn is_attached(&self) -> bool {
        matches!(
            self.desc.as_str(),
            "COMMENT"
                | "ACL"
                | "SECURITY LABEL"
                | "SEQUENCE OWNED BY"
                | "TABLE ATTACH"
                | "INDEX ATTACH"
        )
    }
}

/// Why a TOC could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TocError {
    pub path: String,
    pub message: String,
}

/// Read the TOC of the custom-format archive at `path`.
pub fn read(path: &Path) -> Result<Vec<Entry>, TocError> {
    let bytes = fs_err::read(path).map_err(|e| TocError {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    parse(&bytes).map_err(|message| TocError {
        path: path.display().to_string(),
        message,
    })
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
    int_size: usize,
    off_size: usize,
    version: (u8, u8, u8),
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let v = *self
            .b
            .get(self.at)
            .ok_or_else(|| format!("the archive ends early (byte {})", self.at))?;
        self.at += 1;
        Ok(v)
    }

    /// `ReadInt`: a sign byte, then `int_size` bytes, least significant first.
    fn int(&mut self) -> Result<i64, String> {
        let negative = self.byte()? != 0;
        let mut v: i64 = 0;
        for i in 0..self.int_size {
            let b = i64::from(self.byte()?);
            if i < 8 {
                v |= b << (8 * i);
            }
        }
        Ok(if negative { -v } else { v })
    }

    /// `ReadStr`: a length (negative for NULL), then the bytes.
    fn str(&mut self) -> Result<Option<String>, String> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| "a string length is too large".to_string())?;
        let end = self
            .at
            .checked_add(len)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| format!("the archive ends inside a string (byte {})", self.at))?;
        let s = String::from_utf8_lossy(&self.b[self.at..end]).into_owned();
        self.at = end;
        Ok(Some(s))
    }

    fn at_least(&self, major: u8, minor: u8) -> bool {
        (self.version.0, self.version.1) >= (major, minor)
    }
}

/// Parse an archive's header and TOC.
pub fn parse(b: &[u8]) -> Result<Vec<Entry>, String> {
    if b.len() < 5 || &b[..5] != b"PGDMP" {
        return Err("not a pg_dump custom-format archive (no PGDMP header)".into());
    }
    let mut r = Reader {
        b,
        at: 5,
        int_size: 4,
        off_size: 8,
        version: (0, 0, 0),
    };
    r.version = (r.byte()?, r.byte()?, r.byte()?);
    if !r.at_least(1, 12) || r.version.0 > 1 || r.version.1 > 16 {
        return Err(format!(
            "archive version {}.{}.{} is not supported (1.12 to 1.16 are)",
            r.version.0, r.version.1, r.version.2
        ));
    }
    r.int_size = usize::from(r.byte()?);
    r.off_size = usize::from(r.byte()?);
    if !(1..=8).contains(&r.int_size) || !(1..=16).contains(&r.off_size) {
        return Err("the archive header has impossible integer sizes".into());
    }
    let format = r.byte()?;
    if format != 1 {
        return Err(format!(
            "archive format {format} is not the custom format (pg_dump -Fc)"
        ));
    }
    if r.at_least(1, 15) {
        r.byte()?; // compression algorithm
    } else {
        r.int()?; // compression level
    }
    for _ in 0..7 {
        r.int()?; // creation time
    }
    r.str()?; // database name
    r.str()?; // server version
    r.str()?; // pg_dump version
    let count = r.int()?;
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(1 << 20));
    for _ in 0..count {
        out.push(entry(&mut r)?);
    }
    Ok(out)
}

fn entry(r: &mut Reader<'_>) -> Result<Entry, String> {
    let num = |s: Option<String>| s.and_then(|s| s.trim().parse::<u32>().ok()).unwrap_or(0);
    let dump_id = i32::try_from(r.int()?).map_err(|_| "a dump id is out of range".to_string())?;
    r.int()?; // had dumper
    let tableoid = num(r.str()?);
    let oid = num(r.str()?);
    let tag = r.str()?.unwrap_or_default();
    let desc = r.str()?.unwrap_or_default();
    let section = match r.int()? {
        2 => Section::PreData,
        3 => Section::Data,
        4 => Section::PostData,
        _ => Section::None,
    };
    r.str()?; // definition
    r.str()?; // drop statement
    r.str()?; // copy statement
    let namespace = r.str()?;
    r.str()?; // tablespace
    if r.at_least(1, 14) {
        r.str()?; // table access method
    }
    if r.at_least(1, 16) {
        r.int()?; // relkind
    }
    let owner = r.str()?;
    r.str()?; // "with oids", always false now
    let mut deps = Vec::new();
    while let Some(d) = r.str()? {
        deps.push(
            d.trim()
                .parse()
                .map_err(|_| format!("dependency `{d}` of entry {dump_id} is not a number"))?,
        );
    }
    // The custom format's data pointer: a flag byte and an offset.
    r.byte()?;
    for _ in 0..r.off_size {
        r.byte()?;
    }
    Ok(Entry {
        dump_id,
        tableoid,
        oid,
        desc,
        namespace,
        tag,
        owner,
        section,
        deps,
    })
}

/// The entries to restore, in archive order, for the chosen primary entries: the primaries
/// themselves and every attached entry (comment, ACL, ...) of one of them. Returns the
/// pre-data list (pre-data entries and what is attached to them) and the post-data list.
pub fn select(
    entries: &[Entry],
    primary: &std::collections::BTreeSet<i32>,
) -> (Vec<i32>, Vec<i32>) {
    let section_of: std::collections::BTreeMap<i32, Section> =
        entries.iter().map(|e| (e.dump_id, e.section)).collect();
    let mut pre = Vec::new();
    let mut post = Vec::new();
    for e in entries {
        let owner = if primary.contains(&e.dump_id) {
            Some(e.dump_id)
        } else if e.is_attached() {
            e.deps.iter().copied().find(|d| primary.contains(d))
        } else {
            None
        };
        let Some(owner) = owner else { continue };
        let section = if e.section == Section::None {
            section_of.get(&owner).copied().unwrap_or(Section::PreData)
        } else {
            e.section
        };
        match section {
            Section::PostData => post.push(e.dump_id),
            _ => pre.push(e.dump_id),
        }
    }
    (pre, post)
}

/// A `pg_restore --use-list` file naming `ids`, in the order given.
pub fn list_file(ids: &[i32]) -> String {
    ids.iter().map(|id| format!("{id};\n")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes archives the way pg_dump does (version 1.14 or 1.16), for tests.
    pub(crate) struct Writer {
        pub b: Vec<u8>,
        minor: u8,
    }

    impl Writer {
        pub fn new(minor: u8, count: usize) -> Writer {
            let mut w = Writer {
                b: b"PGDMP".to_vec(),
                minor,
            };
            w.b.extend([1, minor, 0, 4, 8, 1]);
            if minor >= 15 {
                w.b.push(0);
            } else {
                w.int(-1);
            }
            for v in [1, 2, 3, 4, 5, 126, 0] {
                w.int(v);
            }
            w.str(Some("db"));
            w.str(Some("15.2"));
            w.str(Some("15.2"));
            w.int(count as i64);
            w
        }

        pub fn int(&mut self, v: i64) {
            self.b.push(u8::from(v < 0));
            self.b.extend(&(v.unsigned_abs() as u32).to_le_bytes());
        }

        pub fn str(&mut self, s: Option<&str>) {
            match s {
                None => self.int(-1),
                Some(s) => {
                    self.int(s.len() as i64);
                    self.b.extend(s.as_bytes());
                }
            }
        }

        #[allow(clippy::too_many_arguments)]
        pub fn entry(
            &mut self,
            id: i64,
            oids: (u32, u32),
            desc: &str,
            ns: Option<&str>,
            tag: &str,
            section: i64,
            deps: &[i64],
        ) {
            self.int(id);
            self.int(1);
            self.str(Some(&oids.0.to_string()));
            self.str(Some(&oids.1.to_string()));
            self.str(Some(tag));
            self.str(Some(desc));
            self.int(section);
            self.str(Some("CREATE ..."));
            self.str(Some("DROP ..."));
            self.str(Some(""));
            self.str(ns);
            self.str(Some(""));
            self.str(Some("heap"));
            if self.minor >= 16 {
                self.int(114);
            }
            self.str(Some("postgres"));
            self.str(Some("false"));
            for d in deps {
                self.str(Some(&d.to_string()));
            }
            self.str(None);
            self.b.push(3);
            self.b.extend([0u8; 8]);
        }
    }

    fn archive(minor: u8) -> Vec<u8> {
        let mut w = Writer::new(minor, 5);
        w.entry(
            215,
            (1259, 16396),
            "TABLE",
            Some("public"),
            "users",
            2,
            &[843],
        );
        w.entry(
            3377,
            (0, 0),
            "COMMENT",
            Some("public"),
            "TABLE users",
            1,
            &[215],
        );
        w.entry(
            218,
            (1259, 16422),
            "VIEW",
            Some("my schema"),
            "v orders",
            2,
            &[215],
        );
        w.entry(
            3221,
            (2606, 16405),
            "CONSTRAINT",
            Some("public"),
            "users users_pkey",
            4,
            &[215],
        );
        w.entry(
            3222,
            (0, 0),
            "COMMENT",
            Some("public"),
            "CONSTRAINT users_pkey ON users",
            1,
            &[3221],
        );
        w.b
    }

    #[test]
    fn reads_versions_14_and_16() {
        for minor in [14, 16] {
            let toc = parse(&archive(minor)).unwrap();
            assert_eq!(toc.len(), 5);
            assert_eq!(toc[0].dump_id, 215);
            assert_eq!((toc[0].tableoid, toc[0].oid), (1259, 16396));
            assert_eq!(toc[0].describe(), "TABLE public.users");
            assert_eq!(toc[0].section, Section::PreData);
            assert_eq!(toc[0].deps, [843]);
            assert_eq!(toc[2].namespace.as_deref(), Some("my schema"));
            assert_eq!(toc[2].tag, "v orders");
            assert_eq!(toc[3].section, Section::PostData);
            assert!(toc[1].is_attached() && !toc[0].is_attached());
        }
        assert!(parse(b"PGDMX").unwrap_err().contains("PGDMP"));
        let mut cut = archive(16);
        cut.truncate(cut.len() - 20);
        assert!(parse(&cut).unwrap_err().contains("ends"));
    }

    #[test]
    fn selection_brings_attached_entries_into_their_owners_section() {
        let toc = parse(&archive(16)).unwrap();
        let primary = [215, 3221].into_iter().collect();
        let (pre, post) = select(&toc, &primary);
        assert_eq!(pre, [215, 3377]);
        assert_eq!(post, [3221, 3222]);
        assert_eq!(list_file(&pre), "215;\n3377;\n");
        let (pre, post) = select(&toc, &[218].into_iter().collect());
        assert_eq!((pre, post), (vec![218], vec![]));
    }
}
