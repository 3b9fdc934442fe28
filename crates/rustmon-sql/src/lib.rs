//! Statement fingerprinting and obfuscation, and the shared helpers of rustmon's SQL
//! integrations (sqlx, tokio-postgres, rusqlite, …).
//!
//! - [`fingerprint`] normalises a statement in one pass: literals become `?`, literal lists
//!   collapse, comments go. The result names the event (low cardinality) and, cut to
//!   [`DbConfig::query_len`], is `db.query.text`.
//! - [`Fingerprint`] adds the operation (`db.operation.name`) and table (`db.collection.name`);
//!   [`FingerprintCache`] keeps them per statement text, bounded.
//! - [`DbConfig`] is the live configuration (plugin `db`) every SQL integration reads.
//! - [`SqlInstrument`] starts a database event with the common attributes and N+1 detection
//!   ([`NPlusOne`]), so each integration stays thin.
//!
//! # Examples
//! ```
//! use rustmon_sql::{fingerprint, Dialect};
//! let fp = fingerprint("SELECT id FROM users WHERE email = 'a@b.c' AND age > 30", Dialect::Postgres);
//! assert_eq!(fp, "SELECT id FROM users WHERE email = ? AND age > ?");
//! ```

mod cache;
mod config;
mod fingerprint;
mod instrument;
mod intern;
mod lexer;
mod nplusone;
mod summary;

pub use cache::FingerprintCache;
pub use config::DbConfig;
pub use fingerprint::{Fingerprint, fingerprint};
pub use instrument::{ConnectionInfo, QueryEvent, SqlInstrument, system};
pub use nplusone::NPlusOne;
pub use summary::Summary;

/// The SQL dialect a statement is read in: it decides what quotes mean and which comments and
/// placeholders exist.
///
/// # Examples
/// ```
/// use rustmon_sql::{fingerprint, Dialect};
/// // In MySQL a double-quoted token is a string; in PostgreSQL an identifier.
/// assert_eq!(fingerprint(r#"SELECT "x""#, Dialect::MySql), "SELECT ?");
/// assert_eq!(fingerprint(r#"SELECT "x""#, Dialect::Postgres), r#"SELECT "x""#);
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL: `"ident"`, `E'…'` escapes, `$tag$…$tag$` strings, `$1`, nested comments.
    Postgres,
    /// MySQL and MariaDB: `` `ident` ``, `"string"`, backslash escapes, `#` comments.
    MySql,
    /// SQLite: `"ident"`, `` `ident` ``, `[ident]`, `?NNN`, `:name`, `@name`, `$name`.
    Sqlite,
    /// Anything else: standard quoting, `"ident"` and `` `ident` ``.
    Generic,
}
