//! A migration file's text, held once and shared by the statements cut from it.
//!
//! A statement's [`SqlText`] is the file's buffer and a byte range in it, so reading a file of
//! any size keeps one copy of it in memory, however many statements it holds (a 50 MiB data
//! migration was held twice when each statement owned a `String`). It reads as a `&str`
//! (`Deref`), compares, prints and hashes as its text, and clones in constant time.
//!
//! It must never change the text: a slice is exactly the bytes of the file in its range.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Deref, Range};
use std::sync::Arc;

/// A piece of a shared text (the whole of it, or a statement of it). See the module docs.
#[derive(Clone, Default)]
pub struct SqlText {
    /// The whole file. `Arc<String>` rather than `Arc<str>`: a `String` read from disk becomes
    /// shared without being copied.
    file: Arc<String>,
    /// Byte range of this piece in `file` (on char boundaries).
    range: Range<usize>,
}

impl SqlText {
    /// The piece `range` (byte offsets relative to this piece) of this text, sharing its buffer.
    ///
    /// # Panics
    /// When `range` is out of bounds or not on char boundaries, as `&str` slicing does.
    pub fn slice(&self, range: Range<usize>) -> SqlText {
        let _checked = &self.as_str()[range.clone()];
        SqlText {
            file: Arc::clone(&self.file),
            range: self.range.start + range.start..self.range.start + range.end,
        }
    }

    /// The text as a `&str`.
    pub fn as_str(&self) -> &str {
        &self.file[self.range.clone()]
    }

    /// Byte offset of this piece in the text it was cut from (0 for a whole text).
    pub fn start(&self) -> usize {
        self.range.start
    }

    /// Whether this text and `other` are pieces of one buffer (one file held once).
    pub fn is_piece_of(&self, other: &SqlText) -> bool {
        Arc::ptr_eq(&self.file, &other.file)
    }
}

impl From<String> for SqlText {
    /// Shares `text` without copying it.
    fn from(text: String) -> Self {
        let range = 0..text.len();
        SqlText {
            file: Arc::new(text),
            range,
        }
    }
}

impl From<&str> for SqlText {
    fn from(text: &str) -> Self {
        SqlText::from(text.to_string())
    }
}

impl Deref for SqlText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SqlText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for SqlText {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl fmt::Display for SqlText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for SqlText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for SqlText {
    fn eq(&self, other: &SqlText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SqlText {}

impl Hash for SqlText {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for SqlText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SqlText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for SqlText {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<SqlText> for str {
    fn eq(&self, other: &SqlText) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<SqlText> for &str {
    fn eq(&self, other: &SqlText) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<SqlText> for String {
    fn eq(&self, other: &SqlText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl serde::Serialize for SqlText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_share_the_buffer_and_read_as_their_text() {
        let file = SqlText::from("SELECT 1;\nSELECT 2;".to_string());
        let second = file.slice(10..18);
        assert_eq!(second, "SELECT 2");
        assert_eq!(second.start(), 10);
        assert!(second.is_piece_of(&file));
        assert!(!second.is_piece_of(&SqlText::from("SELECT 1;\nSELECT 2;")));
        let inner = second.slice(7..8);
        assert_eq!(inner.as_str(), "2");
        assert_eq!(inner.start(), 17);
        assert_eq!(format!("{second}|{second:?}"), "SELECT 2|\"SELECT 2\"");
        assert_eq!(second, SqlText::from("SELECT 2"));
        assert_eq!("SELECT 2", second);
        assert_eq!(second.trim_start_matches("SELECT "), "2");
        assert_eq!(SqlText::default(), "");
        assert_eq!(
            serde_json::to_string(&second).expect("json"),
            "\"SELECT 2\""
        );
    }

    #[test]
    #[should_panic(expected = "byte index")]
    fn a_slice_off_a_char_boundary_panics_as_str_does() {
        let _ = SqlText::from("é").slice(0..1);
    }
}
