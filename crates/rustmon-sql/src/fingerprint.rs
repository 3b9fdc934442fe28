//! Fingerprints: the normalised statement, its operation and collection, and a hash.

use std::borrow::Cow;
use std::hash::Hasher;

use crate::intern::intern;
use crate::{Dialect, lexer};

/// A statement's low-cardinality identity: the obfuscated, normalised text with its operation
/// and collection.
///
/// Strings are interned (shared, never freed) while the interner has room, so cloning a
/// fingerprint and using it as an event name does not allocate.
///
/// # Examples
/// ```
/// use rustmon_sql::{Dialect, Fingerprint};
/// let fp = Fingerprint::new("SELECT * FROM orders WHERE id IN (1, 2, 3)", Dialect::Postgres);
/// assert_eq!(fp.text(), "SELECT * FROM orders WHERE id IN (?)");
/// assert_eq!(fp.operation(), Some("SELECT"));
/// assert_eq!(fp.collection(), Some("orders"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    text: Cow<'static, str>,
    hash: u64,
    operation: Option<&'static str>,
    collection: Option<Cow<'static, str>>,
    dialect: Dialect,
}

impl Fingerprint {
    /// Fingerprints `sql` (uncached; see [`FingerprintCache`](crate::FingerprintCache)).
    pub fn new(sql: &str, dialect: Dialect) -> Fingerprint {
        let text = fingerprint(sql, dialect);
        let (operation, collection) = extract(&text, dialect);
        let hash = hash_str(&text);
        Fingerprint {
            collection: collection.map(|c| intern(&c)),
            text: intern(&text),
            hash,
            operation,
            dialect,
        }
    }

    /// The dialect the statement was read in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The normalised, obfuscated statement: the event name.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text as an event name (no allocation when interned).
    pub fn name(&self) -> Cow<'static, str> {
        self.text.clone()
    }

    /// The text cut to at most `max` bytes on a character boundary (no allocation when interned).
    pub fn text_truncated(&self, max: usize) -> Cow<'static, str> {
        truncate_cow(&self.text, max)
    }

    /// A 64-bit hash of the text, stable within a process.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// `SELECT`, `INSERT`, … when recognised.
    pub fn operation(&self) -> Option<&'static str> {
        self.operation
    }

    /// The table the statement works on, when there is one and it can be told.
    pub fn collection(&self) -> Option<&str> {
        self.collection.as_deref()
    }

    /// The collection as an attribute value (no allocation when interned).
    pub fn collection_value(&self) -> Option<Cow<'static, str>> {
        self.collection.clone()
    }
}

#[allow(clippy::ptr_arg)] // the Cow is cloned when it fits
pub(crate) fn truncate_cow(s: &Cow<'static, str>, max: usize) -> Cow<'static, str> {
    if s.len() <= max {
        return s.clone();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(&b[..end]),
        Cow::Owned(o) => Cow::Owned(o[..end].to_owned()),
    }
}

/// Normalises and obfuscates a statement in one pass.
///
/// - string, numeric, boolean, hex, bit, `E''`, `N''`, `_charset''` and dollar-quoted literals,
///   and bound placeholders (`$1`, `?`, `?1`, and SQLite's `:name`, `@name`, `$name`) become `?`;
///   in MySQL `"…"` is a string, elsewhere an identifier;
/// - a bracketed list holding only literals collapses to one: `IN (1, 2, 3)` → `IN (?)`,
///   `ARRAY[1, 2]` → `ARRAY[?]`, and `VALUES (…), (…)` → `VALUES (?)`;
/// - comments (`--`, `/* */`, MySQL `#`) are stripped, whitespace runs become one space, a comma
///   is followed by one space, brackets hug their contents, trailing `;` go;
/// - identifiers (quoted with `"`, `` ` `` or SQLite's `[…]`) and keywords keep their spelling.
///
/// The result is a fixed point: fingerprinting it again changes nothing.
///
/// # Examples
/// ```
/// use rustmon_sql::{fingerprint, Dialect};
/// assert_eq!(
///     fingerprint("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y') -- bulk", Dialect::Postgres),
///     "INSERT INTO t (a, b) VALUES (?)"
/// );
/// assert_eq!(fingerprint(r#"SELECT * FROM `u` WHERE n = "bob""#, Dialect::MySql),
///     "SELECT * FROM `u` WHERE n = ?");
/// ```
pub fn fingerprint(sql: &str, dialect: Dialect) -> String {
    lexer::normalise(sql, dialect)
}

/// FNV-1a over 8-byte words: fast enough for short keys, no dependency.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3);
            h ^= h >> 29;
        }
        for &b in chunks.remainder() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }

    #[inline]
    fn finish(&self) -> u64 {
        // A final avalanche so that the low bits (used for sharding) are well mixed.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

pub(crate) fn hash_str(s: &str) -> u64 {
    let mut h = FastHasher::default();
    h.write(s.as_bytes());
    h.finish()
}

const OPERATIONS: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
    "MERGE",
    "UPSERT",
    "BEGIN",
    "START",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "CREATE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "SET",
    "SHOW",
    "EXPLAIN",
    "DESCRIBE",
    "CALL",
    "EXEC",
    "EXECUTE",
    "PREPARE",
    "DEALLOCATE",
    "PRAGMA",
    "VACUUM",
    "ANALYZE",
    "COPY",
    "LOCK",
    "UNLOCK",
    "GRANT",
    "REVOKE",
    "USE",
    "DO",
    "LISTEN",
    "NOTIFY",
    "UNLISTEN",
    "DECLARE",
    "FETCH",
    "CLOSE",
    "DISCARD",
    "REINDEX",
    "CLUSTER",
    "COMMENT",
    "ATTACH",
    "DETACH",
    "END",
    "VALUES",
    "TABLE",
];

/// A token of the normalised text, for extraction.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Tok<'a> {
    Word(&'a str),
    /// A quoted identifier, without its quotes.
    Quoted(&'a str),
    Punct(u8),
}

struct Toks<'a> {
    s: &'a str,
    i: usize,
    brackets: bool,
}

impl<'a> Iterator for Toks<'a> {
    type Item = Tok<'a>;
    fn next(&mut self) -> Option<Tok<'a>> {
        let b = self.s.as_bytes();
        while self.i < b.len() && b[self.i] == b' ' {
            self.i += 1;
        }
        if self.i >= b.len() {
            return None;
        }
        let start = self.i;
        let c = b[start];
        let close = match c {
            b'"' => Some(b'"'),
            b'`' => Some(b'`'),
            b'[' if self.brackets => Some(b']'),
            _ => None,
        };
        if let Some(close) = close {
            let mut j = start + 1;
            while j < b.len() {
                if b[j] == close {
                    if close != b']' && b.get(j + 1) == Some(&close) {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j += 1;
            }
            let end = j.min(b.len());
            self.i = (j + 1).min(b.len());
            return Some(Tok::Quoted(&self.s[start + 1..end]));
        }
        if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
            let mut j = start;
            while j < b.len()
                && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'$' || b[j] >= 0x80)
            {
                j += 1;
            }
            self.i = j;
            return Some(Tok::Word(&self.s[start..j]));
        }
        self.i += 1;
        Some(Tok::Punct(c))
    }
}

/// Extraction reads at most this many tokens.
const MAX_TOKENS: usize = 256;

/// The normalised text's tokens, read only as far as extraction looks: the operation and the
/// collection usually come within the first dozen tokens of a long statement.
struct Tokens<'a> {
    lexer: Toks<'a>,
    read: Vec<Tok<'a>>,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str, dialect: Dialect) -> Self {
        Tokens {
            lexer: Toks {
                s: text,
                i: 0,
                brackets: dialect == Dialect::Sqlite,
            },
            read: Vec::with_capacity(32),
        }
    }

    /// The `j`-th token, or `None` past the end (or past [`MAX_TOKENS`]).
    fn get(&mut self, j: usize) -> Option<Tok<'a>> {
        while self.read.len() <= j && self.read.len() < MAX_TOKENS {
            self.read.push(self.lexer.next()?);
        }
        self.read.get(j).copied()
    }

    fn is_kw(&mut self, j: usize, kw: &str) -> bool {
        matches!(self.get(j), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    /// The first index from `j` on whose token is not one of `words`.
    fn skip(&mut self, mut j: usize, words: &[&str]) -> usize {
        while let Some(Tok::Word(w)) = self.get(j) {
            if !words.iter().any(|k| k.eq_ignore_ascii_case(w)) {
                break;
            }
            j += 1;
        }
        j
    }

    /// The (possibly schema-qualified) name starting at token `j`.
    fn qualified_name(&mut self, mut j: usize) -> Option<String> {
        let mut name = String::new();
        loop {
            match self.get(j) {
                Some(Tok::Word(w)) | Some(Tok::Quoted(w)) => {
                    if w.is_empty() || w == "?" {
                        return None;
                    }
                    name.push_str(w)
                }
                _ => return None,
            }
            if self.get(j + 1) == Some(Tok::Punct(b'.')) {
                name.push('.');
                j += 2;
            } else {
                break;
            }
        }
        // A lone keyword is not a table (`SELECT … FROM (`, `DELETE FROM WHERE` cannot happen).
        if name.is_empty() { None } else { Some(name) }
    }
}

/// The operation and collection of a normalised statement.
pub(crate) fn extract(text: &str, dialect: Dialect) -> (Option<&'static str>, Option<String>) {
    let mut toks = Tokens::new(text, dialect);
    let mut i = 0;
    let mut depth = 0usize;
    while toks.get(i) == Some(Tok::Punct(b'(')) {
        i += 1;
        depth += 1;
    }
    let Some(Tok::Word(first)) = toks.get(i) else {
        return (None, None);
    };
    let mut op = OPERATIONS
        .iter()
        .copied()
        .find(|o| o.eq_ignore_ascii_case(first));
    if first.eq_ignore_ascii_case("WITH") {
        // The statement after the common table expressions.
        let mut d = depth;
        let mut j = i + 1;
        op = None;
        while let Some(t) = toks.get(j) {
            match t {
                Tok::Punct(b'(') => d += 1,
                Tok::Punct(b')') => d = d.saturating_sub(1),
                Tok::Word(w) if d == depth => {
                    if let Some(o) = ["SELECT", "INSERT", "UPDATE", "DELETE", "MERGE"]
                        .into_iter()
                        .find(|o| o.eq_ignore_ascii_case(w))
                    {
                        op = Some(o);
                        i = j;
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
    }
    let Some(op) = op else {
        return (None, None);
    };
    let at = match op {
        "SELECT" | "DELETE" => {
            // FROM at the statement's own depth.
            let mut d = depth;
            let mut j = i + 1;
            let mut found = None;
            while let Some(t) = toks.get(j) {
                match t {
                    Tok::Punct(b'(') => d += 1,
                    Tok::Punct(b')') => {
                        if d == depth {
                            break;
                        }
                        d -= 1;
                    }
                    Tok::Word(w) if d == depth && w.eq_ignore_ascii_case("FROM") => {
                        found = Some(toks.skip(j + 1, &["ONLY"]));
                        break;
                    }
                    _ => {}
                }
                j += 1;
            }
            found
        }
        "INSERT" | "REPLACE" => Some(toks.skip(
            i + 1,
            &[
                "INTO",
                "IGNORE",
                "OR",
                "REPLACE",
                "ROLLBACK",
                "ABORT",
                "FAIL",
                "LOW_PRIORITY",
                "DELAYED",
                "HIGH_PRIORITY",
            ],
        )),
        "UPDATE" => Some(toks.skip(
            i + 1,
            &[
                "ONLY",
                "LOW_PRIORITY",
                "IGNORE",
                "OR",
                "ROLLBACK",
                "ABORT",
                "FAIL",
                "REPLACE",
            ],
        )),
        "TRUNCATE" => Some(toks.skip(i + 1, &["TABLE", "ONLY"])),
        "CREATE" | "DROP" | "ALTER" => {
            let j = toks.skip(
                i + 1,
                &[
                    "OR",
                    "REPLACE",
                    "TEMP",
                    "TEMPORARY",
                    "UNLOGGED",
                    "GLOBAL",
                    "LOCAL",
                    "UNIQUE",
                ],
            );
            if toks.is_kw(j, "TABLE") {
                Some(toks.skip(j + 1, &["IF", "NOT", "EXISTS", "ONLY"]))
            } else if toks.is_kw(j, "INDEX") {
                // CREATE INDEX name ON table
                let mut k = j + 1;
                while toks.get(k).is_some() && !toks.is_kw(k, "ON") {
                    k += 1;
                }
                toks.is_kw(k, "ON").then(|| toks.skip(k + 1, &["ONLY"]))
            } else {
                None
            }
        }
        _ => None,
    };
    (Some(op), at.and_then(|j| toks.qualified_name(j)))
}
