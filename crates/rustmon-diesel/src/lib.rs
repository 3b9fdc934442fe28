//! rustmon integration for [diesel](https://diesel.rs) 2.2+ through its `Instrumentation`
//! hook: every statement a connection runs becomes a database event, transactions become
//! `TRANSACTION` events with their statements as children.
//!
//! Install it per connection with `conn.set_instrumentation(DieselInstrumentation::new())`, or
//! for every new connection with
//! `diesel::connection::set_default_instrumentation(rustmon_diesel::default_instrumentation)`.
//!
//! Events are named by the statement's fingerprint (diesel's bind values, which it prints after
//! `-- binds:`, are dropped with the comment) and carry the attributes of [`rustmon_sql`]'s `db`
//! config: `db.system.name` (`postgresql`, `mysql`, `sqlite`, from the connection URL),
//! `db.namespace`, `server.address`, `server.port`, `db.operation.name`, `db.collection.name`,
//! `db.query.text`, and errors (`error.type` = diesel's error kind, e.g. `UniqueViolation`).
//! diesel's hook does not report rows, so no row counts are recorded and `max_rows` has no
//! effect.
//!
//! # Examples
//! ```no_run
//! use diesel::Connection;
//! use rustmon_diesel::DieselInstrumentation;
//! # fn demo() -> diesel::ConnectionResult<()> {
//! let mut conn = diesel::SqliteConnection::establish("app.db")?;
//! conn.set_instrumentation(DieselInstrumentation::new());
//! # Ok(()) }
//! ```

use std::fmt;

use diesel::connection::{Instrumentation, InstrumentationEvent};
use rustmon_core::{Monitor, SpanContext};
pub use rustmon_sql::DbConfig;
use rustmon_sql::{ConnectionInfo, Dialect, QueryEvent, SqlInstrument, system};

/// The plugin name events are tagged with.
pub const PLUGIN: &str = "diesel";

/// A diesel `Instrumentation` that records statements and transactions.
///
/// Records into the global monitor unless built with [`with_monitor`](Self::with_monitor). The
/// connection is described from the URL diesel establishes it with; set it with
/// [`url`](Self::url) when the instrumentation is installed after the connection was made.
pub struct DieselInstrumentation {
    sql: SqlInstrument,
    conn: ConnectionInfo,
    queries: Vec<QueryEvent>,
    transactions: Vec<QueryEvent>,
}

impl fmt::Debug for DieselInstrumentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DieselInstrumentation")
            .field("connection", &self.conn)
            .finish_non_exhaustive()
    }
}

impl Default for DieselInstrumentation {
    fn default() -> Self {
        DieselInstrumentation::new()
    }
}

/// For `diesel::connection::set_default_instrumentation`: every connection established from
/// then on is monitored (into the global monitor).
pub fn default_instrumentation() -> Option<Box<dyn Instrumentation>> {
    Some(Box::new(DieselInstrumentation::new()))
}

impl DieselInstrumentation {
    /// Records into the global monitor.
    pub fn new() -> Self {
        DieselInstrumentation {
            sql: SqlInstrument::new(PLUGIN, None),
            conn: ConnectionInfo::new("other_sql", Dialect::Generic),
            queries: Vec::new(),
            transactions: Vec::new(),
        }
    }

    /// Records into `monitor`.
    pub fn with_monitor(monitor: Monitor) -> Self {
        DieselInstrumentation {
            sql: SqlInstrument::new(PLUGIN, Some(monitor)),
            ..DieselInstrumentation::new()
        }
    }

    /// Describes the connection from the URL it was established with (credentials are not read;
    /// a URL without a scheme is an SQLite file).
    pub fn url(mut self, url: &str) -> Self {
        self.conn = describe(url);
        self
    }

    fn parent(&self) -> Option<SpanContext> {
        match self.transactions.last() {
            Some(tx) => tx.context(),
            None => rustmon_core::context::current(),
        }
    }
}

fn describe(url: &str) -> ConnectionInfo {
    if url.contains("://") || url.starts_with("sqlite:") {
        ConnectionInfo::from_url(url)
    } else {
        ConnectionInfo::new(system::SQLITE, Dialect::Sqlite).with_namespace(url)
    }
}

fn record(ev: &mut QueryEvent, e: &diesel::result::Error) {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(kind, info) => {
            let kind = match kind {
                DatabaseErrorKind::UniqueViolation => "UniqueViolation",
                DatabaseErrorKind::ForeignKeyViolation => "ForeignKeyViolation",
                DatabaseErrorKind::NotNullViolation => "NotNullViolation",
                DatabaseErrorKind::CheckViolation => "CheckViolation",
                DatabaseErrorKind::SerializationFailure => "SerializationFailure",
                DatabaseErrorKind::ReadOnlyTransaction => "ReadOnlyTransaction",
                DatabaseErrorKind::ClosedConnection => "ClosedConnection",
                DatabaseErrorKind::UnableToSendCommand => "UnableToSendCommand",
                _ => "DatabaseError",
            };
            ev.record_db_error(None, kind, info.message());
        }
        Error::NotFound => {
            ev.record_db_error(None, "NotFound", e);
        }
        other => {
            ev.record_db_error(None, "diesel", other);
        }
    }
}

impl Instrumentation for DieselInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartEstablishConnection { url, .. } => {
                self.conn = describe(url);
            }
            InstrumentationEvent::StartQuery { query, .. } => {
                if !self.sql.is_enabled() {
                    self.queries.push(QueryEvent::inert());
                    return;
                }
                let text = query.to_string();
                let parent = self.parent();
                let ev = self.sql.start_with_parent(&self.conn, &text, parent);
                self.queries.push(ev);
            }
            InstrumentationEvent::FinishQuery { error, .. } => {
                if let Some(mut ev) = self.queries.pop() {
                    if let Some(e) = error {
                        record(&mut ev, e);
                    }
                }
            }
            InstrumentationEvent::BeginTransaction { .. } => {
                let parent = self.parent();
                let ev = self.sql.start_operation(&self.conn, "TRANSACTION", parent);
                self.transactions.push(ev);
            }
            InstrumentationEvent::CommitTransaction { .. } => {
                if let Some(mut ev) = self.transactions.pop() {
                    ev.event_mut().set("db.transaction.outcome", "commit");
                }
            }
            InstrumentationEvent::RollbackTransaction { .. } => {
                if let Some(mut ev) = self.transactions.pop() {
                    ev.event_mut().set("db.transaction.outcome", "rollback");
                }
            }
            _ => {}
        }
    }
}
