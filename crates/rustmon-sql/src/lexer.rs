//! The single-pass SQL normaliser: literals become `?`, lists collapse, comments and redundant
//! whitespace go.

use crate::Dialect;

/// What the previous emitted token was, for spacing and unary-minus decisions.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
enum Last {
    Start,
    Open,
    Comma,
    Operator,
    Word,
    Literal,
    Close,
}

#[derive(Copy, Clone, Default)]
struct Group {
    /// Output length right after the opening bracket.
    start: usize,
    /// Only literals, commas and collapsed groups so far.
    only_lits: bool,
    /// At least one literal.
    has_lit: bool,
}

const MAX_GROUPS: usize = 32;

struct Normaliser<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    dialect: Dialect,
    out: String,
    last: Last,
    space_pending: bool,
    groups: [Group; MAX_GROUPS],
    depth: usize,
    /// Groups opened beyond `MAX_GROUPS` (never collapsed).
    overflow: usize,
    /// The last word was `VALUES`: the next `(` starts a row list.
    values_armed: bool,
    /// Inside a skipped `VALUES` row list: the paren depth.
    skip_depth: usize,
    /// A row list just ended: `, (` continues it.
    values_tail: bool,
}

#[inline]
fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

/// The bytes that may continue an identifier, as a table: identifiers are most of a statement.
const IDENT_CHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
        i += 1;
    }
    t
};

#[inline]
fn is_ident_char(c: u8) -> bool {
    IDENT_CHAR[c as usize]
}

#[inline]
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Normalises `sql`: see [`crate::fingerprint`] for the rules.
pub(crate) fn normalise(sql: &str, dialect: Dialect) -> String {
    let mut n = Normaliser {
        src: sql,
        b: sql.as_bytes(),
        pos: 0,
        dialect,
        out: String::with_capacity(sql.len().min(4096)),
        last: Last::Start,
        space_pending: false,
        groups: [Group::default(); MAX_GROUPS],
        depth: 0,
        overflow: 0,
        values_armed: false,
        skip_depth: 0,
        values_tail: false,
    };
    n.run();
    // Trailing semicolons and spaces carry no meaning.
    while n.out.ends_with(';') || n.out.ends_with(' ') {
        n.out.pop();
    }
    n.out
}

impl Normaliser<'_> {
    fn run(&mut self) {
        while self.pos < self.b.len() {
            let c = self.b[self.pos];
            match c {
                _ if is_space(c) => {
                    let rest = &self.b[self.pos + 1..];
                    self.pos += 1 + rest
                        .iter()
                        .position(|&c| !is_space(c))
                        .unwrap_or(rest.len());
                    self.space_pending = true;
                }
                b'-' if self.peek(1) == Some(b'-') => self.line_comment(),
                b'#' if self.dialect == Dialect::MySql => self.line_comment(),
                b'/' if self.peek(1) == Some(b'*') => self.block_comment(),
                b'\'' => {
                    let backslash = self.dialect == Dialect::MySql;
                    self.string(self.pos, b'\'', backslash);
                }
                b'"' if self.dialect == Dialect::MySql => self.string(self.pos, b'"', true),
                b'"' => self.quoted_ident(b'"'),
                b'`' if self.dialect != Dialect::Postgres => self.quoted_ident(b'`'),
                b'[' if self.dialect == Dialect::Sqlite => self.quoted_ident(b']'),
                b'0'..=b'9' => self.number(self.pos),
                b'.' if self.peek(1).is_some_and(|d| d.is_ascii_digit())
                    && !matches!(self.last, Last::Word | Last::Close) =>
                {
                    self.number(self.pos)
                }
                b'$' => self.dollar(),
                b'?' => {
                    self.pos += 1;
                    // SQLite's `?NNN`.
                    while self.dialect == Dialect::Sqlite
                        && self.peek(0).is_some_and(|d| d.is_ascii_digit())
                    {
                        self.pos += 1;
                    }
                    self.literal();
                }
                b':' | b'@'
                    if self.dialect == Dialect::Sqlite
                        && self.peek(1).is_some_and(is_ident_start)
                        && !(self.pos > 0 && self.b[self.pos - 1] == b':') =>
                {
                    self.pos += 1;
                    self.skip_ident();
                    self.literal();
                }
                b'-' if self
                    .peek(1)
                    .is_some_and(|d| d.is_ascii_digit() || d == b'.')
                    && matches!(
                        self.last,
                        Last::Start | Last::Open | Last::Comma | Last::Operator
                    ) =>
                {
                    // A negative number: the sign belongs to the literal.
                    self.number(self.pos + 1)
                }
                _ if is_ident_start(c) => self.word(),
                b'(' | b'[' => self.open(c),
                b')' | b']' => self.close(c),
                b',' => self.comma(),
                _ => {
                    self.pos += 1;
                    let kind = if c == b';' {
                        Last::Close
                    } else {
                        Last::Operator
                    };
                    self.emit_byte(c, kind);
                }
            }
        }
    }

    #[inline]
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.b.get(self.pos + ahead).copied()
    }

    fn line_comment(&mut self) {
        while self.pos < self.b.len() && self.b[self.pos] != b'\n' {
            self.pos += 1;
        }
        self.space_pending = true;
    }

    fn block_comment(&mut self) {
        self.pos += 2;
        let nested = self.dialect == Dialect::Postgres;
        let mut level = 1usize;
        while self.pos < self.b.len() {
            if self.b[self.pos] == b'*' && self.peek(1) == Some(b'/') {
                self.pos += 2;
                level -= 1;
                if level == 0 {
                    break;
                }
            } else if nested && self.b[self.pos] == b'/' && self.peek(1) == Some(b'*') {
                self.pos += 2;
                level += 1;
            } else {
                self.pos += 1;
            }
        }
        self.space_pending = true;
    }

    /// A quoted string from the quote at `self.pos`; `start` is where the literal began
    /// (a prefix such as `E` or `_utf8` may precede the quote).
    fn string(&mut self, _start: usize, quote: u8, backslash: bool) {
        self.pos += 1;
        while self.pos < self.b.len() {
            let c = self.b[self.pos];
            if backslash && c == b'\\' {
                self.pos += 2;
            } else if c == quote {
                if self.peek(1) == Some(quote) {
                    self.pos += 2;
                } else {
                    self.pos += 1;
                    break;
                }
            } else {
                self.pos += 1;
            }
        }
        self.pos = self.pos.min(self.b.len());
        self.literal();
    }

    fn quoted_ident(&mut self, close: u8) {
        let start = self.pos;
        self.pos += 1;
        while self.pos < self.b.len() {
            if self.b[self.pos] == close {
                if close != b']' && self.peek(1) == Some(close) {
                    self.pos += 2;
                    continue;
                }
                self.pos += 1;
                break;
            }
            self.pos += 1;
        }
        let end = self.pos.min(self.b.len());
        self.emit_src(start, end, Last::Word);
    }

    /// A number starting at `digits` (after an optional sign at `self.pos`).
    fn number(&mut self, digits: usize) {
        let b = self.b;
        let mut i = digits;
        let mut integer = false;
        if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X' | b'b' | b'B' | b'o' | b'O')) {
            i += 2;
            while i < b.len() && (b[i].is_ascii_hexdigit() || b[i] == b'_') {
                i += 1;
            }
        } else {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
                i += 1;
            }
            integer = true;
            if i < b.len() && b[i] == b'.' {
                integer = false;
                i += 1;
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
                    i += 1;
                }
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                    integer = false;
                }
            }
        }
        if integer && i < b.len() && is_ident_char(b[i]) && digits == self.pos {
            // MySQL allows identifiers that start with digits (`1st_column`).
            self.word();
            return;
        }
        self.pos = i;
        self.literal();
    }

    fn dollar(&mut self) {
        let b = self.b;
        let start = self.pos;
        let mut i = start + 1;
        if i < b.len() && b[i].is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            self.pos = i;
            self.literal();
            return;
        }
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
            i += 1;
        }
        if self.dialect != Dialect::MySql && i < b.len() && b[i] == b'$' {
            // A dollar-quoted string: find the same tag again.
            let tag = &b[start..=i];
            let body = i + 1;
            let end = find(&b[body..], tag).map_or(b.len(), |at| body + at + tag.len());
            self.pos = end;
            self.literal();
            return;
        }
        if i > start + 1 && self.dialect == Dialect::Sqlite {
            // SQLite's `$name` parameter.
            self.pos = i;
            self.literal();
            return;
        }
        self.pos = start + 1;
        self.emit_byte(b'$', Last::Operator);
    }

    fn skip_ident(&mut self) {
        let rest = &self.b[self.pos..];
        self.pos += rest
            .iter()
            .position(|&c| !is_ident_char(c))
            .unwrap_or(rest.len());
    }

    fn word(&mut self) {
        let start = self.pos;
        self.skip_ident();
        let end = self.pos;
        let w = &self.b[start..end];
        if self.peek(0) == Some(b'\'') {
            // Prefixed strings: E'..' (escapes), N'..', X'..', B'..', _charset'..'.
            let escapes = w.eq_ignore_ascii_case(b"e") || self.dialect == Dialect::MySql;
            if w.len() == 1 && matches!(w[0] | 0x20, b'e' | b'n' | b'x' | b'b')
                || (w[0] == b'_' && self.dialect == Dialect::MySql)
            {
                self.string(start, b'\'', escapes);
                return;
            }
        }
        if w.len() == 1
            && (w[0] | 0x20) == b'u'
            && self.peek(0) == Some(b'&')
            && self.peek(1) == Some(b'\'')
        {
            self.pos += 1;
            self.string(start, b'\'', false);
            return;
        }
        if w.eq_ignore_ascii_case(b"true") || w.eq_ignore_ascii_case(b"false") {
            self.literal();
            return;
        }
        // `VALUES (` starts a row list, except MySQL's `= VALUES(col)` function.
        let values = w.eq_ignore_ascii_case(b"values")
            && matches!(self.last, Last::Start | Last::Word | Last::Close);
        self.emit_src(start, end, Last::Word);
        if values {
            self.values_armed = true;
        }
    }

    fn open(&mut self, c: u8) {
        self.pos += 1;
        if self.skip_depth > 0 {
            self.skip_depth += 1;
            return;
        }
        if c == b'(' && (self.values_armed || self.values_tail) {
            let continuing = self.values_tail;
            self.values_armed = false;
            self.values_tail = false;
            self.skip_depth = 1;
            if !continuing {
                self.space();
                self.out.push_str("(?)");
                self.mark(Last::Close);
                self.lit_in_group();
            }
            return;
        }
        self.emit_byte(c, Last::Open);
        if self.depth < MAX_GROUPS && self.overflow == 0 {
            self.groups[self.depth] = Group {
                start: self.out.len(),
                only_lits: true,
                has_lit: false,
            };
            self.depth += 1;
        } else {
            self.overflow += 1;
        }
    }

    fn close(&mut self, c: u8) {
        self.pos += 1;
        if self.skip_depth > 0 {
            self.skip_depth -= 1;
            if self.skip_depth == 0 {
                self.values_tail = true;
            }
            return;
        }
        if self.overflow > 0 {
            self.overflow -= 1;
            self.emit_byte(c, Last::Close);
            return;
        }
        if self.depth == 0 {
            // Unbalanced: emit as is.
            self.emit_byte(c, Last::Close);
            return;
        }
        self.depth -= 1;
        let g = self.groups[self.depth];
        if g.only_lits && g.has_lit {
            self.out.truncate(g.start);
            self.out.push('?');
            self.out.push(c as char);
            self.space_pending = false;
            self.values_armed = false;
            self.values_tail = false;
            self.last = Last::Close;
            self.lit_in_group();
        } else {
            // The enclosing group holds something that is not a literal list.
            self.not_lit_in_group(Last::Operator);
            self.emit_byte(c, Last::Close);
        }
    }

    fn comma(&mut self) {
        self.pos += 1;
        if self.skip_depth > 0 {
            return;
        }
        if self.values_tail && self.next_significant() == Some(b'(') {
            // `VALUES (…), (…)`: the next row joins the collapsed list.
            return;
        }
        self.emit_byte(b',', Last::Comma);
    }

    /// The next byte that is not whitespace or inside a comment.
    fn next_significant(&self) -> Option<u8> {
        let b = self.b;
        let mut i = self.pos;
        while i < b.len() {
            match b[i] {
                c if is_space(c) => i += 1,
                b'-' if b.get(i + 1) == Some(&b'-') => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                }
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    i = find(&b[i + 2..], b"*/").map_or(b.len(), |at| i + 2 + at + 2);
                }
                c => return Some(c),
            }
        }
        None
    }

    fn literal(&mut self) {
        if self.skip_depth > 0 {
            return;
        }
        self.space();
        self.out.push('?');
        self.mark(Last::Literal);
        self.lit_in_group();
    }

    /// A literal (or a collapsed group) inside the current group.
    fn lit_in_group(&mut self) {
        if self.depth > 0 && self.overflow == 0 {
            self.groups[self.depth - 1].has_lit = true;
        }
    }

    fn not_lit_in_group(&mut self, kind: Last) {
        if kind == Last::Comma {
            return;
        }
        if self.overflow > 0 {
            return;
        }
        if self.depth > 0 {
            self.groups[self.depth - 1].only_lits = false;
        }
    }

    fn emit_src(&mut self, start: usize, end: usize, kind: Last) {
        if self.skip_depth > 0 {
            return;
        }
        self.not_lit_in_group(kind);
        self.space_for(kind);
        self.out.push_str(&self.src[start..end]);
        self.mark(kind);
    }

    fn emit_byte(&mut self, c: u8, kind: Last) {
        if self.skip_depth > 0 {
            return;
        }
        // A close bracket of an enclosing group does not taint it.
        if kind != Last::Close && kind != Last::Open {
            self.not_lit_in_group(kind);
        }
        self.space_for(kind);
        self.out.push(c as char);
        self.mark(kind);
    }

    fn mark(&mut self, kind: Last) {
        self.last = kind;
        self.space_pending = false;
        self.values_armed = false;
        self.values_tail = false;
    }

    fn space(&mut self) {
        self.space_for(Last::Literal);
    }

    fn space_for(&mut self, kind: Last) {
        if self.out.is_empty() {
            self.space_pending = false;
            return;
        }
        let want = match kind {
            Last::Close | Last::Comma => false,
            _ => match self.last {
                Last::Open => false,
                Last::Comma => true,
                // Keep a literal apart from what follows, so that `'a'1` does not read back
                // as one token.
                Last::Literal => self.space_pending || matches!(kind, Last::Word | Last::Literal),
                _ => self.space_pending,
            },
        };
        if want {
            self.out.push(' ');
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}
