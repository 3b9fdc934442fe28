//! [`Summary`]: the first rows of a result rendered as text, for `db.response.summary`.

use std::fmt::{self, Write as _};

/// Longest rendering of one text value, in bytes; longer values are cut (at a character
/// boundary) and end in `…`.
const MAX_CELL: usize = 256;

/// Renders the first [`DbConfig::max_rows`](crate::DbConfig::max_rows) rows of a result into
/// the text of `db.response.summary`, the same way for every integration: one line per row,
/// values separated by `, `; `NULL`, numbers and booleans as written, text quoted (`"a\"b"`),
/// binary as `<n bytes>`, a value of a type the integration cannot read as `<type name>`. Text
/// values are cut to 256 bytes.
///
/// An integration makes one only when `max_rows` > 0 (see
/// [`QueryEvent::max_rows`](crate::QueryEvent::max_rows)), so results cost nothing otherwise.
///
/// # Examples
/// ```
/// use rustmon_sql::Summary;
/// let mut s = Summary::new(2);
/// for (id, name) in [(1, Some("ann")), (2, None), (3, Some("cy"))] {
///     if !s.begin_row() {
///         break;
///     }
///     s.int(id);
///     match name {
///         Some(n) => s.text(n),
///         None => s.null(),
///     };
/// }
/// assert_eq!(s.rows(), 2);
/// assert_eq!(s.finish(), "1, \"ann\"\n2, NULL");
/// ```
#[derive(Clone, Debug, Default)]
pub struct Summary {
    max: usize,
    rows: usize,
    cells: usize,
    text: String,
}

impl Summary {
    /// A summary of at most `max_rows` rows.
    pub fn new(max_rows: usize) -> Self {
        Summary {
            max: max_rows,
            rows: 0,
            cells: 0,
            text: String::new(),
        }
    }

    /// Starts the next row; `false` (and nothing is rendered) once `max_rows` rows are in.
    pub fn begin_row(&mut self) -> bool {
        if self.rows >= self.max {
            return false;
        }
        if self.rows > 0 {
            self.text.push('\n');
        }
        self.rows += 1;
        self.cells = 0;
        true
    }

    /// Whether `max_rows` rows are in.
    pub fn is_full(&self) -> bool {
        self.rows >= self.max
    }

    /// The rows rendered so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    fn sep(&mut self) -> &mut String {
        if self.cells > 0 {
            self.text.push_str(", ");
        }
        self.cells += 1;
        &mut self.text
    }

    /// A `NULL`.
    pub fn null(&mut self) -> &mut Self {
        self.sep().push_str("NULL");
        self
    }

    /// A boolean.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.sep().push_str(if v { "true" } else { "false" });
        self
    }

    /// A signed integer.
    pub fn int(&mut self, v: i64) -> &mut Self {
        let _ = write!(self.sep(), "{v}");
        self
    }

    /// An unsigned integer.
    pub fn uint(&mut self, v: u64) -> &mut Self {
        let _ = write!(self.sep(), "{v}");
        self
    }

    /// A floating-point number.
    pub fn float(&mut self, v: f64) -> &mut Self {
        let _ = write!(self.sep(), "{v}");
        self
    }

    /// Text, quoted and escaped like a Rust string, cut to 256 bytes.
    pub fn text(&mut self, v: &str) -> &mut Self {
        if v.len() <= MAX_CELL {
            let _ = write!(self.sep(), "{v:?}");
        } else {
            let mut end = MAX_CELL;
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            let _ = write!(self.sep(), "{:?}…", &v[..end]);
        }
        self
    }

    /// Binary data: `<n bytes>`.
    pub fn bytes(&mut self, len: usize) -> &mut Self {
        let _ = write!(self.sep(), "<{len} bytes>");
        self
    }

    /// A value that cannot be read, shown by its type: `<type>`.
    pub fn unreadable(&mut self, type_name: &str) -> &mut Self {
        let _ = write!(self.sep(), "<{type_name}>");
        self
    }

    /// A value rendered by its `Display`, unquoted (dates, decimals, …).
    pub fn display(&mut self, v: &dyn fmt::Display) -> &mut Self {
        let _ = write!(self.sep(), "{v}");
        self
    }

    /// The text for `db.response.summary`.
    pub fn finish(self) -> String {
        self.text
    }
}
