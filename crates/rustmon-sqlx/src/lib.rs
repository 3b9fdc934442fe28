//! rustmon integration for [sqlx](https://docs.rs/sqlx) 0.8: every statement executed on a
//! [`MonitoredPool`], a [`MonitoredConnection`] or a [`MonitoredTransaction`] becomes a
//! database event.
//!
//! sqlx has no hook API, so monitoring is a thin wrapper: swap `Pool<DB>` for
//! `MonitoredPool<DB>` where the pool is built, and every `sqlx::query(…).fetch_*(&pool)`,
//! `query_as`, `query_scalar`, `raw_sql` and `execute` call in the program is recorded without
//! further change — the wrapper implements [`Executor`] and delegates each call to sqlx, timing
//! the returned future or stream. `pool.begin()` gives a [`MonitoredTransaction`] (statements on
//! `&mut *tx`… become `&mut tx`), `pool.acquire()` a [`MonitoredConnection`].
//!
//! Each statement event is named by the statement's fingerprint (see [`rustmon_sql`]) and carries
//! `db.system.name`, `db.namespace`, `db.operation.name`, `db.collection.name`, `db.query.text`,
//! `server.address`, `server.port`, `db.response.returned_rows` (rows streamed back) or
//! `db.response.affected_rows`, errors with the database's code (`db.response.status_code`:
//! SQLSTATE for PostgreSQL, the error number for MySQL/MariaDB), and on a pool the time spent
//! waiting for a connection (`db.client.connection.wait_time`, seconds), and with `max_rows` > 0
//! the first rows of the result in `db.response.summary` (see [`render_row`]). Its parent is the
//! current context when the statement is issued, or the transaction it runs in. A transaction
//! is an event `TRANSACTION` (with `db.transaction.outcome`: `commit`, `rollback` or
//! `dropped`) whose children are `BEGIN`, the statements, and `COMMIT`/`ROLLBACK`.
//!
//! The configuration is [`DbConfig`] (plugin `db`), read live from the monitor.
//!
//! # Examples
//! ```no_run
//! # async fn demo() -> Result<(), sqlx::Error> {
//! use rustmon_sqlx::MonitoredPool;
//! let pool = MonitoredPool::new(sqlx::PgPool::connect("postgres://localhost/shop").await?);
//! let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&pool).await?;
//! let mut tx = pool.begin().await?;
//! sqlx::query("UPDATE orders SET paid = true WHERE id = $1").bind(7_i64).execute(&mut tx).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
//!
//! Features: `postgres`, `mysql` (MySQL and MariaDB) and `sqlite` (bundled SQLite), all on by
//! default. SQLite events carry `db.namespace` = the database file.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use futures_core::Stream;
use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::TryStreamExt;
use rustmon_core::metrics::{Metric, MetricData, Number};
use rustmon_core::{KeyValue, Monitor, SpanContext};
pub use rustmon_sql::DbConfig;
use rustmon_sql::{ConnectionInfo, Dialect, QueryEvent, SqlInstrument, Summary};
use sqlx_core::Either;
use sqlx_core::column::ColumnIndex;
use sqlx_core::connection::Connection;
use sqlx_core::database::Database;
#[allow(unused_imports)] // unused when no driver feature is on
use sqlx_core::decode::Decode;
use sqlx_core::describe::Describe;
use sqlx_core::error::{DatabaseError, Error};
use sqlx_core::executor::{Execute, Executor};
use sqlx_core::ext::async_stream::TryAsyncStream;
use sqlx_core::pool::{Pool, PoolConnection};
use sqlx_core::row::Row;
use sqlx_core::transaction::Transaction;
#[allow(unused_imports)] // unused when no driver feature is on
use sqlx_core::type_info::TypeInfo;
use sqlx_core::value::ValueRef;

/// The plugin name events are tagged with.
pub const PLUGIN: &str = "sqlx";

/// A sqlx database this crate knows how to describe: its `db.system.name`, SQL dialect, the
/// rows a result affected and the native error code.
pub trait MonitoredDatabase: Database {
    /// `db.system.name`.
    const SYSTEM: &'static str;
    /// The dialect statements are fingerprinted in.
    const DIALECT: Dialect;
    /// Rows an `INSERT`/`UPDATE`/`DELETE` changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;
    /// The database's own code for an error (`db.response.status_code`).
    fn error_code(error: &dyn DatabaseError) -> Option<Cow<'_, str>> {
        error.code()
    }
    /// What events say about a connection made with `options` (server, port, database; never
    /// credentials).
    fn connection_info(options: &<Self::Connection as Connection>::Options) -> ConnectionInfo;
    /// Renders one (non-null) value of a result row into `out`.
    fn render_value(value: Self::ValueRef<'_>, out: &mut Summary);
    /// Renders `row` as the next line of `out` (see [`render_row`]).
    fn render_row(row: &Self::Row, out: &mut Summary);
}

/// Renders `row` as the next line of a result summary (`db.response.summary`, see
/// [`Summary`]), unless `out` already holds its `max_rows` rows. Integers, floats, booleans,
/// text and binary values are shown; other types (dates, decimals, JSON, …) by their type name.
///
/// The monitored executors call this for the first `max_rows` rows of each result when
/// [`DbConfig::max_rows`] > 0; it is public for integrations built on sqlx (sea-orm).
pub fn render_row<DB: MonitoredDatabase>(row: &DB::Row, out: &mut Summary) {
    DB::render_row(row, out);
}

#[allow(dead_code)] // unused when no driver feature is on
fn render_columns<DB: MonitoredDatabase>(row: &DB::Row, out: &mut Summary)
where
    usize: ColumnIndex<DB::Row>,
{
    if !out.begin_row() {
        return;
    }
    for i in 0..row.len() {
        match row.try_get_raw(i) {
            Ok(v) if v.is_null() => {
                out.null();
            }
            Ok(v) => DB::render_value(v, out),
            Err(_) => {
                out.unreadable("?");
            }
        }
    }
}

/// Decodes `value` as `T` and renders it with `f`, or shows the type name when that fails.
#[allow(dead_code)] // unused when no driver feature is on
fn render_as<'r, DB, T>(
    value: DB::ValueRef<'r>,
    out: &mut Summary,
    type_name: &str,
    f: impl FnOnce(T, &mut Summary),
) where
    DB: Database,
    T: Decode<'r, DB>,
{
    match T::decode(value) {
        Ok(v) => f(v, out),
        Err(_) => {
            out.unreadable(type_name);
        }
    }
}

#[cfg(feature = "postgres")]
impl MonitoredDatabase for sqlx_postgres::Postgres {
    const SYSTEM: &'static str = rustmon_sql::system::POSTGRESQL;
    const DIALECT: Dialect = Dialect::Postgres;
    fn rows_affected(result: &sqlx_postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }
    fn connection_info(options: &sqlx_postgres::PgConnectOptions) -> ConnectionInfo {
        server_info(
            ConnectionInfo::new(Self::SYSTEM, Self::DIALECT),
            options.get_host(),
            options.get_port(),
            options.get_database(),
        )
    }
    fn render_row(row: &Self::Row, out: &mut Summary) {
        render_columns::<Self>(row, out);
    }
    fn render_value(value: sqlx_postgres::PgValueRef<'_>, out: &mut Summary) {
        let ty = value.type_info().into_owned();
        let name = ty.name();
        type P = sqlx_postgres::Postgres;
        match name {
            "BOOL" => render_as::<P, bool>(value, out, name, |v, o| {
                o.bool(v);
            }),
            "INT2" => render_as::<P, i16>(value, out, name, |v, o| {
                o.int(v.into());
            }),
            "INT4" => render_as::<P, i32>(value, out, name, |v, o| {
                o.int(v.into());
            }),
            "INT8" => render_as::<P, i64>(value, out, name, |v, o| {
                o.int(v);
            }),
            "FLOAT4" => render_as::<P, f32>(value, out, name, |v, o| {
                o.float(v.into());
            }),
            "FLOAT8" => render_as::<P, f64>(value, out, name, |v, o| {
                o.float(v);
            }),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" | "UNKNOWN" => {
                render_as::<P, &str>(value, out, name, |v, o| {
                    o.text(v);
                })
            }
            "BYTEA" => render_as::<P, &[u8]>(value, out, name, |v, o| {
                o.bytes(v.len());
            }),
            _ => {
                out.unreadable(name);
            }
        }
    }
}

#[cfg(feature = "mysql")]
impl MonitoredDatabase for sqlx_mysql::MySql {
    const SYSTEM: &'static str = rustmon_sql::system::MYSQL;
    const DIALECT: Dialect = Dialect::MySql;
    fn rows_affected(result: &sqlx_mysql::MySqlQueryResult) -> u64 {
        result.rows_affected()
    }
    fn connection_info(options: &sqlx_mysql::MySqlConnectOptions) -> ConnectionInfo {
        server_info(
            ConnectionInfo::new(Self::SYSTEM, Self::DIALECT),
            options.get_host(),
            options.get_port(),
            options.get_database(),
        )
    }
    fn error_code(error: &dyn DatabaseError) -> Option<Cow<'_, str>> {
        match error.try_downcast_ref::<sqlx_mysql::MySqlDatabaseError>() {
            Some(e) => Some(Cow::Owned(e.number().to_string())),
            None => error.code(),
        }
    }
    fn render_row(row: &Self::Row, out: &mut Summary) {
        render_columns::<Self>(row, out);
    }
    fn render_value(value: sqlx_mysql::MySqlValueRef<'_>, out: &mut Summary) {
        let ty = value.type_info().into_owned();
        let name = ty.name();
        type M = sqlx_mysql::MySql;
        match name {
            "BOOLEAN" => render_as::<M, bool>(value, out, name, |v, o| {
                o.bool(v);
            }),
            "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" | "YEAR" => {
                render_as::<M, i64>(value, out, name, |v, o| {
                    o.int(v);
                })
            }
            n if n.ends_with(" UNSIGNED") => render_as::<M, u64>(value, out, name, |v, o| {
                o.uint(v);
            }),
            "FLOAT" | "DOUBLE" => render_as::<M, f64>(value, out, name, |v, o| {
                o.float(v);
            }),
            "DECIMAL" => render_as::<M, &str>(value, out, name, |v, o| {
                o.display(&v);
            }),
            "CHAR" | "VARCHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM"
            | "SET" | "JSON" => render_as::<M, &str>(value, out, name, |v, o| {
                o.text(v);
            }),
            "BINARY" | "VARBINARY" | "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
                render_as::<M, &[u8]>(value, out, name, |v, o| {
                    o.bytes(v.len());
                })
            }
            _ => {
                out.unreadable(name);
            }
        }
    }
}

#[cfg(feature = "sqlite")]
impl MonitoredDatabase for sqlx_sqlite::Sqlite {
    const SYSTEM: &'static str = rustmon_sql::system::SQLITE;
    const DIALECT: Dialect = Dialect::Sqlite;
    fn rows_affected(result: &sqlx_sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
    fn connection_info(options: &sqlx_sqlite::SqliteConnectOptions) -> ConnectionInfo {
        let file = options.get_filename().to_string_lossy();
        let file = if file.is_empty() { ":memory:" } else { &*file };
        ConnectionInfo::new(Self::SYSTEM, Self::DIALECT).with_namespace(file)
    }
    fn render_row(row: &Self::Row, out: &mut Summary) {
        render_columns::<Self>(row, out);
    }
    fn render_value(value: sqlx_sqlite::SqliteValueRef<'_>, out: &mut Summary) {
        let ty = value.type_info().into_owned();
        let name = ty.name();
        type S = sqlx_sqlite::Sqlite;
        // The value's own storage class (SQLite is dynamically typed).
        match name {
            "INTEGER" => render_as::<S, i64>(value, out, name, |v, o| {
                o.int(v);
            }),
            "REAL" => render_as::<S, f64>(value, out, name, |v, o| {
                o.float(v);
            }),
            "TEXT" => render_as::<S, &str>(value, out, name, |v, o| {
                o.text(v);
            }),
            "BLOB" => render_as::<S, &[u8]>(value, out, name, |v, o| {
                o.bytes(v.len());
            }),
            _ => {
                out.unreadable(name);
            }
        }
    }
}

/// A connection a [`MonitoredConnection`] can run statements on: a pooled connection, or a
/// driver's own connection type.
pub trait AsConnection<DB: Database>: Send {
    /// The driver connection.
    fn as_connection(&mut self) -> &mut DB::Connection;
}

impl<DB: Database> AsConnection<DB> for PoolConnection<DB> {
    fn as_connection(&mut self) -> &mut DB::Connection {
        self
    }
}

#[cfg(feature = "postgres")]
impl AsConnection<sqlx_postgres::Postgres> for sqlx_postgres::PgConnection {
    fn as_connection(&mut self) -> &mut sqlx_postgres::PgConnection {
        self
    }
}

#[cfg(feature = "mysql")]
impl AsConnection<sqlx_mysql::MySql> for sqlx_mysql::MySqlConnection {
    fn as_connection(&mut self) -> &mut sqlx_mysql::MySqlConnection {
        self
    }
}

/// What every wrapper shares: the instrument, the connection description, metric pacing.
struct Shared {
    sql: SqlInstrument,
    conn: ConnectionInfo,
    last_metrics: AtomicU64,
    epoch: Instant,
    start_unix_nanos: u64,
}

impl Shared {
    fn new(sql: SqlInstrument, conn: ConnectionInfo) -> Arc<Shared> {
        Arc::new(Shared {
            sql,
            conn,
            last_metrics: AtomicU64::new(0),
            epoch: Instant::now(),
            start_unix_nanos: rustmon_core::now_unix_nanos(),
        })
    }

    fn start(&self, sql: &str, parent: Option<SpanContext>) -> QueryEvent {
        self.sql.start_with_parent(&self.conn, sql, parent)
    }
}

#[allow(dead_code)] // unused when no driver feature is on
fn server_info(info: ConnectionInfo, host: &str, port: u16, db: Option<&str>) -> ConnectionInfo {
    let info = if host.is_empty() || host.starts_with('/') {
        info
    } else {
        info.with_server(host, Some(port))
    };
    match db {
        Some(db) if !db.is_empty() => info.with_namespace(db),
        _ => info,
    }
}

fn record_error<DB: MonitoredDatabase>(ev: &mut QueryEvent, e: &Error) {
    if !ev.is_recording() {
        return;
    }
    match e.as_database_error() {
        Some(db) => {
            let code = DB::error_code(db);
            ev.record_db_error(code.as_deref(), "database", db.message());
        }
        None => {
            ev.record_db_error(None, error_kind(e), e);
        }
    }
}

fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::Configuration(_) => "configuration",
        Error::Database(_) => "database",
        Error::Io(_) => "io",
        Error::Tls(_) => "tls",
        Error::Protocol(_) => "protocol",
        Error::RowNotFound => "row_not_found",
        Error::TypeNotFound { .. } => "type_not_found",
        Error::ColumnIndexOutOfBounds { .. } => "column_index_out_of_bounds",
        Error::ColumnNotFound(_) => "column_not_found",
        Error::ColumnDecode { .. } => "column_decode",
        Error::Encode(_) => "encode",
        Error::Decode(_) => "decode",
        Error::AnyDriverError(_) => "driver",
        Error::PoolTimedOut => "pool_timed_out",
        Error::PoolClosed => "pool_closed",
        Error::WorkerCrashed => "worker_crashed",
        _ => "sqlx",
    }
}

/// What `fetch_many` streams.
type ResultStream<'e, DB> =
    BoxStream<'e, Result<Either<<DB as Database>::QueryResult, <DB as Database>::Row>, Error>>;

/// A statement's result stream, counting rows and finishing the event at its end.
struct Instrumented<'e, DB: MonitoredDatabase> {
    inner: ResultStream<'e, DB>,
    ev: Option<QueryEvent>,
    rows: u64,
    affected: u64,
    results: bool,
    /// The first rows, rendered; `None` unless `max_rows` > 0.
    summary: Option<Summary>,
}

impl<'e, DB: MonitoredDatabase> Instrumented<'e, DB> {
    fn new(inner: ResultStream<'e, DB>, ev: QueryEvent) -> Self {
        let max = ev.max_rows();
        let ev = ev.is_recording().then_some(ev);
        Instrumented {
            inner,
            ev,
            rows: 0,
            affected: 0,
            results: false,
            summary: (max > 0).then(|| Summary::new(max)),
        }
    }

    fn done(&mut self) {
        if let Some(mut ev) = self.ev.take() {
            if self.rows > 0 || !self.results {
                ev.set_returned_rows(self.rows);
            } else {
                ev.set_affected_rows(self.affected);
            }
            if let Some(s) = self.summary.take() {
                if s.rows() > 0 {
                    ev.set_summary(s.finish());
                }
            }
        }
    }
}

impl<DB: MonitoredDatabase> Stream for Instrumented<'_, DB> {
    type Item = Result<Either<DB::QueryResult, DB::Row>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = this.inner.as_mut().poll_next(cx);
        if this.ev.is_some() {
            match &item {
                Poll::Ready(Some(Ok(Either::Right(row)))) => {
                    this.rows += 1;
                    if let Some(s) = &mut this.summary {
                        render_row::<DB>(row, s);
                    }
                }
                Poll::Ready(Some(Ok(Either::Left(r)))) => {
                    this.results = true;
                    this.affected += DB::rows_affected(r);
                }
                Poll::Ready(Some(Err(e))) => {
                    if let Some(ev) = &mut this.ev {
                        record_error::<DB>(ev, e);
                    }
                    this.done();
                }
                Poll::Ready(None) => this.done(),
                Poll::Pending => {}
            }
        }
        item
    }
}

impl<DB: MonitoredDatabase> Drop for Instrumented<'_, DB> {
    fn drop(&mut self) {
        // Dropped before the end (e.g. after the first row): record what was seen.
        self.done();
    }
}

fn fetch_many_on<'e, 'q: 'e, DB, E>(
    conn: &'e mut DB::Connection,
    ev: QueryEvent,
    query: E,
) -> ResultStream<'e, DB>
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    E: 'q + Execute<'q, DB>,
{
    Box::pin(Instrumented::<DB>::new(conn.fetch_many(query), ev))
}

fn fetch_optional_on<'e, 'q: 'e, DB, E>(
    conn: &'e mut DB::Connection,
    mut ev: QueryEvent,
    query: E,
) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    E: 'q + Execute<'q, DB>,
{
    let fut = conn.fetch_optional(query);
    Box::pin(async move {
        let r = fut.await;
        match &r {
            Ok(row) => {
                ev.set_returned_rows(u64::from(row.is_some()));
                let max = ev.max_rows();
                if let (Some(row), true) = (row, max > 0) {
                    let mut s = Summary::new(max);
                    render_row::<DB>(row, &mut s);
                    ev.set_summary(s.finish());
                }
            }
            Err(e) => record_error::<DB>(&mut ev, e),
        }
        r
    })
}

#[cfg(feature = "sqlite")]
impl AsConnection<sqlx_sqlite::Sqlite> for sqlx_sqlite::SqliteConnection {
    fn as_connection(&mut self) -> &mut sqlx_sqlite::SqliteConnection {
        self
    }
}

/// A sqlx [`Pool`] whose statements are recorded.
///
/// Use `&MonitoredPool` wherever `&Pool` was used as an executor. [`begin`](Self::begin) and
/// [`acquire`](Self::acquire) return monitored wrappers; everything else of `Pool` is reachable
/// through `Deref` (statements run on `&*pool` directly are **not** recorded). Pool gauges are
/// recorded as metrics (`db.client.connection.count` by `db.client.connection.state` `idle` /
/// `used`, and `db.client.connection.max`) at most once per metrics interval when connections
/// are acquired, or on demand with [`record_pool_metrics`](Self::record_pool_metrics).
///
/// # Examples
/// ```no_run
/// # async fn demo(monitor: rustmon_core::Monitor) -> Result<(), sqlx::Error> {
/// use rustmon_sqlx::MonitoredPool;
/// let pool = sqlx::MySqlPool::connect("mysql://root@127.0.0.1/test").await?;
/// let pool = MonitoredPool::new(pool).monitor(monitor).system_name("mariadb");
/// sqlx::query("SELECT 1").execute(&pool).await?;
/// # Ok(()) }
/// ```
pub struct MonitoredPool<DB: MonitoredDatabase> {
    pool: Pool<DB>,
    shared: Arc<Shared>,
}

impl<DB: MonitoredDatabase> Clone for MonitoredPool<DB> {
    fn clone(&self) -> Self {
        MonitoredPool {
            pool: self.pool.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<DB: MonitoredDatabase> fmt::Debug for MonitoredPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredPool")
            .field("pool", &self.pool)
            .field("connection", &self.shared.conn)
            .finish()
    }
}

impl<DB: MonitoredDatabase> Deref for MonitoredPool<DB> {
    type Target = Pool<DB>;
    fn deref(&self) -> &Pool<DB> {
        &self.pool
    }
}

impl<DB: MonitoredDatabase> MonitoredPool<DB> {
    /// Monitors `pool`, recording into the global monitor; server, port and database name come
    /// from the pool's connect options (never its credentials).
    pub fn new(pool: Pool<DB>) -> Self {
        let conn = DB::connection_info(&pool.connect_options());
        MonitoredPool {
            pool,
            shared: Shared::new(SqlInstrument::new(PLUGIN, None), conn),
        }
    }

    /// Records into `monitor` instead of the global monitor.
    pub fn monitor(self, monitor: Monitor) -> Self {
        let conn = self.shared.conn.clone();
        MonitoredPool {
            pool: self.pool,
            shared: Shared::new(SqlInstrument::new(PLUGIN, Some(monitor)), conn),
        }
    }

    /// Overrides `db.system.name`, e.g. `mariadb` for a MariaDB server behind the MySQL driver.
    pub fn system_name(self, system: &'static str) -> Self {
        let conn = self.shared.conn.clone().with_system(system);
        MonitoredPool {
            pool: self.pool,
            shared: Shared::new(self.shared.sql.clone(), conn),
        }
    }

    /// The wrapped pool.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// The wrapped pool, unmonitored.
    pub fn into_inner(self) -> Pool<DB> {
        self.pool
    }

    /// What events say about the connection (`db.system.name`, server, database).
    pub fn connection_info(&self) -> &ConnectionInfo {
        &self.shared.conn
    }

    /// Acquires a connection; statements on it are recorded.
    pub async fn acquire(&self) -> Result<MonitoredConnection<DB>, Error> {
        let conn = self.pool.acquire().await?;
        self.maybe_record_metrics();
        Ok(MonitoredConnection {
            inner: conn,
            shared: self.shared.clone(),
            _db: std::marker::PhantomData,
        })
    }

    /// Begins a transaction, recorded as a `TRANSACTION` event (parent: the current context)
    /// with `BEGIN`, its statements and `COMMIT`/`ROLLBACK` as children.
    pub async fn begin(&self) -> Result<MonitoredTransaction<'static, DB>, Error> {
        let shared = self.shared.clone();
        let mut tx_ev = shared.sql.start_operation(
            &shared.conn,
            "TRANSACTION",
            rustmon_core::context::current(),
        );
        let mut begin_ev = shared
            .sql
            .start_operation(&shared.conn, "BEGIN", tx_ev.context());
        let started = Instant::now();
        let r = self.pool.begin().await;
        if tx_ev.is_recording() {
            begin_ev.event_mut().set(
                "db.client.connection.wait_time",
                started.elapsed().as_secs_f64(),
            );
        }
        self.maybe_record_metrics();
        match r {
            Ok(tx) => {
                begin_ev.finish();
                Ok(MonitoredTransaction::new(tx, shared, tx_ev))
            }
            Err(e) => {
                record_error::<DB>(&mut begin_ev, &e);
                record_error::<DB>(&mut tx_ev, &e);
                Err(e)
            }
        }
    }

    /// Records the pool gauges now: `db.client.connection.count` (`idle`, `used`) and
    /// `db.client.connection.max`, with `db.client.connection.pool.name` = the database name.
    pub fn record_pool_metrics(&self) {
        let Some(monitor) = self.shared.sql.monitor() else {
            return;
        };
        if !monitor.is_enabled() {
            return;
        }
        let size = i64::from(self.pool.size());
        let idle = i64::try_from(self.pool.num_idle()).unwrap_or(i64::MAX);
        let max = i64::from(self.pool.options().get_max_connections());
        let now = rustmon_core::now_unix_nanos();
        let name: Cow<'static, str> = self
            .shared
            .conn
            .namespace()
            .map_or(Cow::Borrowed(DB::SYSTEM), |n| Cow::Owned(n.to_owned()));
        let gauge = |metric: &'static str,
                     description: &'static str,
                     value: i64,
                     state: Option<&'static str>| {
            let mut attributes = vec![
                KeyValue::new("db.client.connection.pool.name", name.clone()),
                KeyValue::new("db.system.name", DB::SYSTEM),
            ];
            if let Some(s) = state {
                attributes.push(KeyValue::new("db.client.connection.state", s));
            }
            Metric {
                name: Cow::Borrowed(metric),
                description: Cow::Borrowed(description),
                unit: Cow::Borrowed("{connection}"),
                attributes,
                start_unix_nanos: self.shared.start_unix_nanos,
                time_unix_nanos: now,
                data: MetricData::Gauge(Number::I64(value)),
            }
        };
        monitor.record_metrics([
            gauge(
                "db.client.connection.count",
                "Connections in the pool by state",
                idle,
                Some("idle"),
            ),
            gauge(
                "db.client.connection.count",
                "Connections in the pool by state",
                (size - idle).max(0),
                Some("used"),
            ),
            gauge(
                "db.client.connection.max",
                "The most connections the pool may open",
                max,
                None,
            ),
        ]);
    }

    fn maybe_record_metrics(&self) {
        let Some(monitor) = self.shared.sql.monitor() else {
            return;
        };
        let interval = monitor.core_config().get().metrics_interval_ms.max(100);
        let now = self.shared.epoch.elapsed().as_millis() as u64 + interval;
        let last = self.shared.last_metrics.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= interval
            && self
                .shared
                .last_metrics
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.record_pool_metrics();
        }
    }
}

impl<'p, DB> Executor<'p> for &'_ MonitoredPool<DB>
where
    DB: MonitoredDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.clone();
        let mut ev = self
            .shared
            .start(query.sql(), rustmon_core::context::current());
        Box::pin(TryAsyncStream::new(move |yielder| async move {
            let started = Instant::now();
            let acquired = pool.pool.acquire().await;
            if ev.is_recording() {
                ev.event_mut().set(
                    "db.client.connection.wait_time",
                    started.elapsed().as_secs_f64(),
                );
            }
            pool.maybe_record_metrics();
            let mut conn = match acquired {
                Ok(c) => c,
                Err(e) => {
                    record_error::<DB>(&mut ev, &e);
                    return Err(e);
                }
            };
            let mut s = fetch_many_on::<DB, E>(&mut conn, ev, query);
            while let Some(v) = s.try_next().await? {
                yielder.r#yield(v).await;
            }
            Ok(())
        }))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.clone();
        let mut ev = self
            .shared
            .start(query.sql(), rustmon_core::context::current());
        Box::pin(async move {
            let started = Instant::now();
            let acquired = pool.pool.acquire().await;
            if ev.is_recording() {
                ev.event_mut().set(
                    "db.client.connection.wait_time",
                    started.elapsed().as_secs_f64(),
                );
            }
            pool.maybe_record_metrics();
            let mut conn = match acquired {
                Ok(c) => c,
                Err(e) => {
                    record_error::<DB>(&mut ev, &e);
                    return Err(e);
                }
            };
            fetch_optional_on::<DB, E>(&mut conn, ev, query).await
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement<'q>, Error>> {
        (&self.pool).prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<DB>, Error>> {
        (&self.pool).describe(sql)
    }
}

/// A connection whose statements are recorded: from [`MonitoredPool::acquire`], or a driver
/// connection wrapped with [`MonitoredConnection::wrap`]. Use `&mut conn` as the executor.
///
/// # Examples
/// ```no_run
/// # async fn demo(pool: rustmon_sqlx::MonitoredPool<sqlx::Postgres>) -> Result<(), sqlx::Error> {
/// let mut conn = pool.acquire().await?;
/// sqlx::query("SET search_path TO app").execute(&mut conn).await?;
/// # Ok(()) }
/// ```
pub struct MonitoredConnection<DB: MonitoredDatabase, C: AsConnection<DB> = PoolConnection<DB>> {
    inner: C,
    shared: Arc<Shared>,
    _db: std::marker::PhantomData<fn() -> DB>,
}

impl<DB: MonitoredDatabase, C: AsConnection<DB>> fmt::Debug for MonitoredConnection<DB, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredConnection")
            .field("connection", &self.shared.conn)
            .finish_non_exhaustive()
    }
}

impl<DB: MonitoredDatabase, C: AsConnection<DB>> Deref for MonitoredConnection<DB, C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.inner
    }
}

impl<DB: MonitoredDatabase, C: AsConnection<DB>> DerefMut for MonitoredConnection<DB, C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.inner
    }
}

impl<DB: MonitoredDatabase> MonitoredConnection<DB, DB::Connection>
where
    DB::Connection: AsConnection<DB>,
{
    /// Opens a standalone connection to `url` and monitors it (recording into `monitor`, or
    /// the global monitor when `None`).
    pub async fn connect(url: &str, monitor: Option<Monitor>) -> Result<Self, Error> {
        let options: <DB::Connection as Connection>::Options = url.parse()?;
        let conn = DB::Connection::connect_with(&options).await?;
        let info = DB::connection_info(&options);
        Ok(MonitoredConnection {
            inner: conn,
            shared: Shared::new(SqlInstrument::new(PLUGIN, monitor), info),
            _db: std::marker::PhantomData,
        })
    }
}

impl<DB: MonitoredDatabase, C: AsConnection<DB>> MonitoredConnection<DB, C> {
    /// Monitors `conn`, described by `info` (e.g. [`ConnectionInfo::from_url`]), recording into
    /// `monitor` (or the global monitor when `None`).
    pub fn wrap(conn: C, info: ConnectionInfo, monitor: Option<Monitor>) -> Self {
        MonitoredConnection {
            inner: conn,
            shared: Shared::new(SqlInstrument::new(PLUGIN, monitor), info),
            _db: std::marker::PhantomData,
        }
    }

    /// The wrapped connection, unmonitored.
    pub fn into_inner(self) -> C {
        self.inner
    }

    /// Begins a transaction on this connection (see [`MonitoredPool::begin`]).
    pub async fn begin(&mut self) -> Result<MonitoredTransaction<'_, DB>, Error> {
        let shared = self.shared.clone();
        let mut tx_ev = shared.sql.start_operation(
            &shared.conn,
            "TRANSACTION",
            rustmon_core::context::current(),
        );
        let mut begin_ev = shared
            .sql
            .start_operation(&shared.conn, "BEGIN", tx_ev.context());
        match Connection::begin(self.inner.as_connection()).await {
            Ok(tx) => {
                begin_ev.finish();
                Ok(MonitoredTransaction::new(tx, shared, tx_ev))
            }
            Err(e) => {
                record_error::<DB>(&mut begin_ev, &e);
                record_error::<DB>(&mut tx_ev, &e);
                Err(e)
            }
        }
    }
}

impl<'c, DB, C> Executor<'c> for &'c mut MonitoredConnection<DB, C>
where
    DB: MonitoredDatabase,
    C: AsConnection<DB>,
    for<'a> &'a mut DB::Connection: Executor<'a, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let ev = self
            .shared
            .start(query.sql(), rustmon_core::context::current());
        fetch_many_on::<DB, E>(self.inner.as_connection(), ev, query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let ev = self
            .shared
            .start(query.sql(), rustmon_core::context::current());
        fetch_optional_on::<DB, E>(self.inner.as_connection(), ev, query)
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement<'q>, Error>>
    where
        'c: 'e,
    {
        self.inner.as_connection().prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<DB>, Error>>
    where
        'c: 'e,
    {
        self.inner.as_connection().describe(sql)
    }
}

/// A transaction whose statements are recorded as children of its `TRANSACTION` event. Use
/// `&mut tx` as the executor; finish with [`commit`](Self::commit) or
/// [`rollback`](Self::rollback) (dropping it rolls back, as in sqlx, recorded as `dropped`).
///
/// # Examples
/// ```no_run
/// # async fn demo(pool: rustmon_sqlx::MonitoredPool<sqlx::Postgres>) -> Result<(), sqlx::Error> {
/// let mut tx = pool.begin().await?;
/// sqlx::query("INSERT INTO audit (msg) VALUES ($1)").bind("hi").execute(&mut tx).await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub struct MonitoredTransaction<'c, DB: MonitoredDatabase> {
    tx: Option<Transaction<'c, DB>>,
    shared: Arc<Shared>,
    ev: QueryEvent,
    parent: Option<SpanContext>,
}

impl<DB: MonitoredDatabase> fmt::Debug for MonitoredTransaction<'_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredTransaction")
            .field("connection", &self.shared.conn)
            .finish_non_exhaustive()
    }
}

impl<'c, DB: MonitoredDatabase> MonitoredTransaction<'c, DB> {
    fn new(tx: Transaction<'c, DB>, shared: Arc<Shared>, ev: QueryEvent) -> Self {
        let parent = ev.context();
        MonitoredTransaction {
            tx: Some(tx),
            shared,
            ev,
            parent,
        }
    }

    /// The transaction's event context: the parent of its statements.
    pub fn context(&self) -> Option<SpanContext> {
        self.parent
    }

    fn conn(&mut self) -> &mut DB::Connection {
        match &mut self.tx {
            Some(tx) => tx,
            // `tx` is only taken by `commit`/`rollback`, which consume `self`.
            None => unreachable!("transaction used after commit or rollback"),
        }
    }

    async fn end(mut self, commit: bool) -> Result<(), Error> {
        let name = if commit { "COMMIT" } else { "ROLLBACK" };
        let mut end_ev = self
            .shared
            .sql
            .start_operation(&self.shared.conn, name, self.parent);
        let Some(tx) = self.tx.take() else {
            return Ok(());
        };
        let r = if commit {
            tx.commit().await
        } else {
            tx.rollback().await
        };
        let mut ev = std::mem::replace(&mut self.ev, QueryEvent::inert());
        ev.event_mut().set(
            "db.transaction.outcome",
            if commit { "commit" } else { "rollback" },
        );
        if let Err(e) = &r {
            record_error::<DB>(&mut end_ev, e);
            record_error::<DB>(&mut ev, e);
        }
        end_ev.finish();
        ev.finish();
        r
    }

    /// Commits, recording a `COMMIT` event and finishing the transaction's event.
    pub async fn commit(self) -> Result<(), Error> {
        self.end(true).await
    }

    /// Rolls back, recording a `ROLLBACK` event and finishing the transaction's event.
    pub async fn rollback(self) -> Result<(), Error> {
        self.end(false).await
    }

    /// The wrapped sqlx transaction, unmonitored from now on (its event finishes now).
    pub fn into_inner(mut self) -> Transaction<'c, DB> {
        match self.tx.take() {
            Some(tx) => tx,
            None => unreachable!("transaction used after commit or rollback"),
        }
    }
}

impl<DB: MonitoredDatabase> Drop for MonitoredTransaction<'_, DB> {
    fn drop(&mut self) {
        if self.tx.is_some() {
            self.ev.event_mut().set("db.transaction.outcome", "dropped");
        }
    }
}

impl<'t, DB> Executor<'t> for &'t mut MonitoredTransaction<'_, DB>
where
    DB: MonitoredDatabase,
    for<'a> &'a mut DB::Connection: Executor<'a, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, Error>>
    where
        't: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let ev = self.shared.start(query.sql(), self.parent);
        fetch_many_on::<DB, E>(self.conn(), ev, query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, Error>>
    where
        't: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let ev = self.shared.start(query.sql(), self.parent);
        fetch_optional_on::<DB, E>(self.conn(), ev, query)
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement<'q>, Error>>
    where
        't: 'e,
    {
        self.conn().prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<DB>, Error>>
    where
        't: 'e,
    {
        self.conn().describe(sql)
    }
}
