//! rustmon integration for [rusqlite](https://docs.rs/rusqlite): a [`MonitoredConnection`]
//! with rusqlite's statement methods (`execute`, `execute_batch`, `query_row`, `prepare`,
//! `prepare_cached`, `transaction`) that records each statement as a database event, as a child
//! of the current event.
//!
//! Events are named by the statement's fingerprint and carry the attributes of
//! [`rustmon_sql`]'s `db` config (`db.system.name = sqlite`, `db.namespace` = the database file,
//! `db.operation.name`, `db.collection.name`, `db.query.text`), rows returned
//! (`db.response.returned_rows`) or changed (`db.response.affected_rows`), errors with SQLite's
//! extended result code (`db.response.status_code`, e.g. `1555` for a primary-key violation),
//! and with `max_rows` > 0 the first rows of a result in `db.response.summary`. A
//! [`MonitoredTransaction`] is a `TRANSACTION` event with `BEGIN`, its statements and
//! `COMMIT`/`ROLLBACK` as children.
//!
//! A wrapper rather than rusqlite's `trace`/`profile` hooks: those take plain function pointers
//! (no monitor, no parent), report neither rows nor errors, and `profile` is deprecated in SQLite.
//! Everything else of `Connection` is reachable through `Deref` (unrecorded).
//!
//! # Examples
//! ```
//! use rustmon_rusqlite::MonitoredConnection;
//! let conn = MonitoredConnection::open_in_memory()?;
//! conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")?;
//! conn.execute("INSERT INTO t (name) VALUES (?1)", ["a"])?;
//! let name: String = conn.query_row("SELECT name FROM t WHERE id = ?1", [1], |r| r.get(0))?;
//! assert_eq!(name, "a");
//! # Ok::<(), rusqlite::Error>(())
//! ```

use std::cell::RefCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::rc::Rc;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Error, Params, Row, Statement, Transaction};
use rustmon_core::{Monitor, SpanContext};
pub use rustmon_sql::DbConfig;
use rustmon_sql::{ConnectionInfo, Dialect, QueryEvent, SqlInstrument, Summary, system};

/// The plugin name events are tagged with.
pub const PLUGIN: &str = "rusqlite";

#[derive(Clone, Debug)]
struct Shared {
    sql: SqlInstrument,
    conn: ConnectionInfo,
}

impl Shared {
    fn start(&self, sql: &str, parent: Option<SpanContext>) -> QueryEvent {
        self.sql.start_with_parent(&self.conn, sql, parent)
    }
}

fn record_error(ev: &mut QueryEvent, e: &Error) {
    if !ev.is_recording() {
        return;
    }
    match e {
        Error::SqliteFailure(code, msg) => {
            let text = msg
                .as_deref()
                .map_or_else(|| code.to_string(), str::to_owned);
            ev.record_db_error(Some(&code.extended_code.to_string()), "sqlite", text);
        }
        other => {
            ev.record_db_error(None, "rusqlite", other);
        }
    }
}

/// Renders `row` into the result summary (`db.response.summary`), unless it is full.
fn add_row(summary: &mut Summary, row: &Row<'_>) {
    if !summary.begin_row() {
        return;
    }
    for i in 0..row.as_ref().column_count() {
        match row.get_ref(i) {
            Ok(ValueRef::Null) => summary.null(),
            Ok(ValueRef::Integer(v)) => summary.int(v),
            Ok(ValueRef::Real(v)) => summary.float(v),
            Ok(ValueRef::Text(t)) => summary.text(&String::from_utf8_lossy(t)),
            Ok(ValueRef::Blob(b)) => summary.bytes(b.len()),
            Err(_) => summary.unreadable("?"),
        };
    }
}

/// The statement methods shared by connections and transactions.
macro_rules! statement_methods {
    () => {
        /// Like rusqlite's `execute`: the rows changed; recorded with
        /// `db.response.affected_rows`.
        pub fn execute<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
            let mut ev = self.shared.start(sql, self.parent());
            let r = self.target().execute(sql, params);
            match &r {
                Ok(n) => {
                    ev.set_affected_rows(*n as u64);
                }
                Err(e) => record_error(&mut ev, e),
            }
            r
        }

        /// Like rusqlite's `execute_batch`: several statements, recorded as one event.
        pub fn execute_batch(&self, sql: &str) -> rusqlite::Result<()> {
            let mut ev = self.shared.start(sql, self.parent());
            let r = self.target().execute_batch(sql);
            if let Err(e) = &r {
                record_error(&mut ev, e);
            }
            r
        }

        /// Like rusqlite's `query_row`: the first row mapped by `f`.
        pub fn query_row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
        where
            P: Params,
            F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
        {
            let ev = self.shared.start(sql, self.parent());
            match self.target().prepare(sql) {
                Ok(stmt) => MonitoredStatement::new(stmt, sql, self.shared.clone(), self.parent())
                    .query_row_with(ev, params, f),
                Err(e) => {
                    let mut ev = ev;
                    record_error(&mut ev, &e);
                    Err(e)
                }
            }
        }

        /// Like rusqlite's `prepare`: executions of the statement are recorded.
        pub fn prepare(&self, sql: &str) -> rusqlite::Result<MonitoredStatement<'_>> {
            let stmt = self.target().prepare(sql)?;
            Ok(MonitoredStatement::new(
                stmt,
                sql,
                self.shared.clone(),
                self.parent(),
            ))
        }

        /// Like rusqlite's `prepare_cached`.
        pub fn prepare_cached(
            &self,
            sql: &str,
        ) -> rusqlite::Result<MonitoredStatement<'_, rusqlite::CachedStatement<'_>>> {
            let stmt = self.target().prepare_cached(sql)?;
            Ok(MonitoredStatement::new(
                stmt,
                sql,
                self.shared.clone(),
                self.parent(),
            ))
        }
    };
}

/// A rusqlite [`Connection`] whose statements are recorded.
///
/// # Examples
/// ```
/// let monitor = rustmon_core::Monitor::builder("svc").build().unwrap();
/// let conn = rustmon_rusqlite::MonitoredConnection::new(rusqlite::Connection::open_in_memory()?)
///     .monitor(monitor);
/// conn.execute_batch("SELECT 1")?;
/// # Ok::<(), rusqlite::Error>(())
/// ```
pub struct MonitoredConnection {
    conn: Connection,
    shared: Shared,
}

impl fmt::Debug for MonitoredConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredConnection")
            .field("connection", &self.shared.conn)
            .finish_non_exhaustive()
    }
}

impl Deref for MonitoredConnection {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl DerefMut for MonitoredConnection {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

impl MonitoredConnection {
    /// Monitors `conn`, recording into the global monitor; `db.namespace` is its file path.
    pub fn new(conn: Connection) -> Self {
        let mut info = ConnectionInfo::new(system::SQLITE, Dialect::Sqlite);
        info = match conn.path() {
            Some(p) if !p.is_empty() => info.with_namespace(p),
            _ => info.with_namespace(":memory:"),
        };
        MonitoredConnection {
            conn,
            shared: Shared {
                sql: SqlInstrument::new(PLUGIN, None),
                conn: info,
            },
        }
    }

    /// Opens (or creates) the database file at `path`, monitored.
    pub fn open(path: impl AsRef<Path>) -> rusqlite::Result<Self> {
        Ok(MonitoredConnection::new(Connection::open(path)?))
    }

    /// Opens an in-memory database, monitored.
    pub fn open_in_memory() -> rusqlite::Result<Self> {
        Ok(MonitoredConnection::new(Connection::open_in_memory()?))
    }

    /// Records into `monitor` instead of the global monitor.
    pub fn monitor(mut self, monitor: Monitor) -> Self {
        self.shared.sql = SqlInstrument::new(PLUGIN, Some(monitor));
        self
    }

    /// The wrapped connection, unmonitored.
    pub fn into_inner(self) -> Connection {
        self.conn
    }

    fn parent(&self) -> Option<SpanContext> {
        rustmon_core::context::current()
    }

    fn target(&self) -> &Connection {
        &self.conn
    }

    statement_methods!();

    /// Begins a (deferred) transaction: a `TRANSACTION` event (parent: the current context)
    /// with `BEGIN`, its statements and `COMMIT`/`ROLLBACK` as children.
    pub fn transaction(&mut self) -> rusqlite::Result<MonitoredTransaction<'_>> {
        let shared = self.shared.clone();
        let mut tx_ev = shared.sql.start_operation(
            &shared.conn,
            "TRANSACTION",
            rustmon_core::context::current(),
        );
        let mut begin = shared
            .sql
            .start_operation(&shared.conn, "BEGIN", tx_ev.context());
        match self.conn.transaction() {
            Ok(tx) => {
                begin.finish();
                let parent = tx_ev.context();
                Ok(MonitoredTransaction {
                    tx: Some(tx),
                    shared,
                    ev: Some(tx_ev),
                    parent,
                })
            }
            Err(e) => {
                record_error(&mut begin, &e);
                record_error(&mut tx_ev, &e);
                Err(e)
            }
        }
    }
}

/// A transaction whose statements are children of its `TRANSACTION` event. Dropping it rolls
/// back (rusqlite's default), recorded as `db.transaction.outcome = dropped`.
pub struct MonitoredTransaction<'c> {
    tx: Option<Transaction<'c>>,
    shared: Shared,
    ev: Option<QueryEvent>,
    parent: Option<SpanContext>,
}

impl fmt::Debug for MonitoredTransaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredTransaction")
            .field("connection", &self.shared.conn)
            .finish_non_exhaustive()
    }
}

impl<'c> MonitoredTransaction<'c> {
    fn parent(&self) -> Option<SpanContext> {
        self.parent
    }

    fn target(&self) -> &Connection {
        match &self.tx {
            Some(tx) => tx,
            // Only `commit`/`rollback` take it, and they consume the transaction.
            None => unreachable!("transaction used after commit or rollback"),
        }
    }

    statement_methods!();

    fn end(mut self, commit: bool) -> rusqlite::Result<()> {
        let name = if commit { "COMMIT" } else { "ROLLBACK" };
        let mut end = self
            .shared
            .sql
            .start_operation(&self.shared.conn, name, self.parent);
        let mut ev = self.ev.take().unwrap_or(QueryEvent::inert());
        let r = match self.tx.take() {
            Some(tx) if commit => tx.commit(),
            Some(tx) => tx.rollback(),
            None => Ok(()),
        };
        ev.event_mut().set(
            "db.transaction.outcome",
            if commit { "commit" } else { "rollback" },
        );
        if let Err(e) = &r {
            record_error(&mut end, e);
            record_error(&mut ev, e);
        }
        r
    }

    /// Commits, recording `COMMIT` and finishing the transaction's event.
    pub fn commit(self) -> rusqlite::Result<()> {
        self.end(true)
    }

    /// Rolls back, recording `ROLLBACK` and finishing the transaction's event.
    pub fn rollback(self) -> rusqlite::Result<()> {
        self.end(false)
    }
}

impl Drop for MonitoredTransaction<'_> {
    fn drop(&mut self) {
        if let Some(ev) = &mut self.ev {
            ev.event_mut().set("db.transaction.outcome", "dropped");
        }
    }
}

/// A prepared statement whose executions are recorded (from `prepare` or `prepare_cached`).
/// Everything else of the statement is reachable through `Deref`.
pub struct MonitoredStatement<'c, S = Statement<'c>> {
    stmt: S,
    sql: Box<str>,
    shared: Shared,
    parent: Option<SpanContext>,
    _conn: std::marker::PhantomData<&'c Connection>,
}

impl<S> fmt::Debug for MonitoredStatement<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredStatement").finish_non_exhaustive()
    }
}

/// A rusqlite statement: `Statement` or `CachedStatement`.
pub trait StatementLike<'c> {
    /// The statement.
    fn statement(&self) -> &Statement<'c>;
    /// The statement, mutably.
    fn statement_mut(&mut self) -> &mut Statement<'c>;
}

impl<'c> StatementLike<'c> for Statement<'c> {
    fn statement(&self) -> &Statement<'c> {
        self
    }
    fn statement_mut(&mut self) -> &mut Statement<'c> {
        self
    }
}

impl<'c> StatementLike<'c> for rusqlite::CachedStatement<'c> {
    fn statement(&self) -> &Statement<'c> {
        self
    }
    fn statement_mut(&mut self) -> &mut Statement<'c> {
        self
    }
}

impl<'c, S: StatementLike<'c>> Deref for MonitoredStatement<'c, S> {
    type Target = Statement<'c>;
    fn deref(&self) -> &Statement<'c> {
        self.stmt.statement()
    }
}

impl<'c, S: StatementLike<'c>> DerefMut for MonitoredStatement<'c, S> {
    fn deref_mut(&mut self) -> &mut Statement<'c> {
        self.stmt.statement_mut()
    }
}

impl<'c, S: StatementLike<'c>> MonitoredStatement<'c, S> {
    fn new(stmt: S, sql: &str, shared: Shared, parent: Option<SpanContext>) -> Self {
        MonitoredStatement {
            stmt,
            sql: sql.into(),
            shared,
            parent,
            _conn: std::marker::PhantomData,
        }
    }

    fn start(&self) -> QueryEvent {
        self.shared.start(&self.sql, self.parent)
    }

    /// Like rusqlite's `Statement::execute`.
    pub fn execute<P: Params>(&mut self, params: P) -> rusqlite::Result<usize> {
        let mut ev = self.start();
        let r = self.stmt.statement_mut().execute(params);
        match &r {
            Ok(n) => {
                ev.set_affected_rows(*n as u64);
            }
            Err(e) => record_error(&mut ev, e),
        }
        r
    }

    /// Like rusqlite's `Statement::query_row`.
    pub fn query_row<T, P, F>(&mut self, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        let ev = self.start();
        self.query_row_with(ev, params, f)
    }

    fn query_row_with<T, P, F>(
        &mut self,
        mut ev: QueryEvent,
        params: P,
        f: F,
    ) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        let max = ev.max_rows();
        let r = self.stmt.statement_mut().query_row(params, |row| {
            if max > 0 {
                let mut s = Summary::new(max);
                add_row(&mut s, row);
                ev.set_summary(s.finish());
            }
            f(row)
        });
        match &r {
            Ok(_) => {
                ev.set_returned_rows(1);
            }
            Err(Error::QueryReturnedNoRows) => {
                ev.set_returned_rows(0);
            }
            Err(e) => record_error(&mut ev, e),
        }
        r
    }

    /// Like rusqlite's `Statement::query_map`: the rows mapped by `f`; the event finishes when
    /// the iterator ends or is dropped, with the rows read so far.
    pub fn query_map<'s, T, P, F>(
        &'s mut self,
        params: P,
        mut f: F,
    ) -> rusqlite::Result<impl Iterator<Item = rusqlite::Result<T>> + 's>
    where
        P: Params,
        F: FnMut(&Row<'_>) -> rusqlite::Result<T> + 's,
        T: 's,
    {
        let mut ev = self.start();
        let max = ev.max_rows();
        let summary = (max > 0).then(|| Rc::new(RefCell::new(Summary::new(max))));
        let s2 = summary.clone();
        let rows = self.stmt.statement_mut().query_map(params, move |row| {
            if let Some(s) = &s2 {
                add_row(&mut s.borrow_mut(), row);
            }
            f(row)
        });
        match rows {
            Ok(inner) => Ok(Rows {
                inner,
                ev: Some(ev),
                rows: 0,
                summary,
            }),
            Err(e) => {
                record_error(&mut ev, &e);
                Err(e)
            }
        }
    }

    /// Like rusqlite's `Statement::exists`.
    pub fn exists<P: Params>(&mut self, params: P) -> rusqlite::Result<bool> {
        let mut ev = self.start();
        let r = self.stmt.statement_mut().exists(params);
        match &r {
            Ok(b) => {
                ev.set_returned_rows(u64::from(*b));
            }
            Err(e) => record_error(&mut ev, e),
        }
        r
    }
}

/// Rows of [`MonitoredStatement::query_map`], counting.
struct Rows<I> {
    inner: I,
    ev: Option<QueryEvent>,
    rows: u64,
    summary: Option<Rc<RefCell<Summary>>>,
}

impl<I> Rows<I> {
    fn done(&mut self) {
        if let Some(mut ev) = self.ev.take() {
            ev.set_returned_rows(self.rows);
            if let Some(s) = self.summary.take() {
                let text = std::mem::take(&mut *s.borrow_mut()).finish();
                ev.set_summary(text);
            }
        }
    }
}

impl<T, I: Iterator<Item = rusqlite::Result<T>>> Iterator for Rows<I> {
    type Item = rusqlite::Result<T>;
    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next();
        match &item {
            Some(Ok(_)) => self.rows += 1,
            Some(Err(e)) => {
                if let Some(ev) = &mut self.ev {
                    record_error(ev, e);
                }
                self.done();
            }
            None => self.done(),
        }
        item
    }
}

impl<I> Drop for Rows<I> {
    fn drop(&mut self) {
        self.done();
    }
}
