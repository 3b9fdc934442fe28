//! rustmon integration for [SeaORM](https://www.sea-ql.org/SeaORM) 1.1: every statement run
//! through a [`MonitoredConnection`] or a [`MonitoredTransaction`] becomes a database event.
//!
//! Wrap the `DatabaseConnection` where it is made; both wrappers implement SeaORM's
//! [`ConnectionTrait`] and [`StreamTrait`], so entity queries (`Entity::find().all(&db)`,
//! `ActiveModel::insert(&db)`, …), `Statement`s and streams run on them unchanged.
//! [`MonitoredConnection::begin`] and [`MonitoredConnection::transaction`] give a
//! [`MonitoredTransaction`].
//!
//! Each statement event is started before the statement is sent and finished when its result is
//! back (so its start, duration and parent — the current context, or the transaction — are
//! those of the statement), is named by the statement's fingerprint (see [`rustmon_sql`]) and
//! carries `db.system.name`, `db.namespace`, `server.address`, `server.port`,
//! `db.operation.name`, `db.collection.name`, `db.query.text`, `db.response.returned_rows` or
//! `db.response.affected_rows`, errors with the database's code (`db.response.status_code`:
//! SQLSTATE, MySQL error number, SQLite extended result code), bound values
//! (`db.query.parameter.<n>`) with `record_params`, the first rows (`db.response.summary`) with
//! `max_rows`, and N+1 flags. A transaction is a `TRANSACTION` event (`db.transaction.outcome`
//! `commit`, `rollback` or `dropped`) whose children are `BEGIN`, its statements and
//! `COMMIT`/`ROLLBACK`; a transaction begun inside one (a savepoint) nests under it.
//!
//! The configuration is [`DbConfig`] (plugin `db`), read live from the monitor.
//!
//! Why a wrapper and not SeaORM's metric callback (`set_metric_callback`): the callback runs
//! after the statement with its elapsed time but no start, only a `failed` flag (no error, no
//! code) and no rows; the wrapper sees all of them.
//!
//! # Examples
//! ```no_run
//! # async fn demo() -> Result<(), sea_orm::DbErr> {
//! use rustmon_sea_orm::MonitoredConnection;
//! use sea_orm::{ConnectionTrait, Statement};
//! let db = MonitoredConnection::new(sea_orm::Database::connect("postgres://localhost/shop").await?);
//! db.execute_unprepared("UPDATE orders SET paid = true WHERE id = 7").await?;
//! let tx = db.begin().await?;
//! tx.execute(Statement::from_string(tx.get_database_backend(), "DELETE FROM carts")).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
//!
//! Features: `postgres`, `mysql` (MySQL and MariaDB) and `sqlite`, all on by default; they
//! enable the matching `sqlx-*` feature of sea-orm. At least one is needed.

#[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
compile_error!("rustmon-sea-orm needs at least one of the features postgres, mysql, sqlite");

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use rustmon_core::{Monitor, SpanContext};
pub use rustmon_sql::DbConfig;
use rustmon_sql::{ConnectionInfo, Dialect, QueryEvent, SqlInstrument, Summary};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    ExecResult, IsolationLevel, QueryResult, RuntimeErr, Statement, StreamTrait, TransactionError,
    TransactionTrait,
};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The plugin name events are tagged with.
pub const PLUGIN: &str = "sea-orm";

/// What a connection and its transactions share: the instrument and the connection description.
#[derive(Debug)]
struct Shared {
    sql: SqlInstrument,
    conn: ConnectionInfo,
}

impl Shared {
    fn start(
        &self,
        sql: &str,
        stmt: Option<&Statement>,
        parent: Option<SpanContext>,
    ) -> QueryEvent {
        let mut ev = self.sql.start_with_parent(&self.conn, sql, parent);
        if let Some(values) = stmt.and_then(|s| s.values.as_ref()) {
            if ev.records_params() {
                for (i, v) in values.0.iter().enumerate() {
                    ev.set_param(i, v);
                }
            }
        }
        ev
    }

    async fn execute<C: ConnectionTrait>(
        &self,
        conn: &C,
        parent: Option<SpanContext>,
        stmt: Statement,
    ) -> Result<ExecResult, DbErr> {
        let mut ev = self.start(&stmt.sql, Some(&stmt), parent);
        let r = conn.execute(stmt).await;
        match &r {
            Ok(res) => {
                ev.set_affected_rows(res.rows_affected());
            }
            Err(e) => record_error(&mut ev, e),
        }
        r
    }

    async fn execute_unprepared<C: ConnectionTrait>(
        &self,
        conn: &C,
        parent: Option<SpanContext>,
        sql: &str,
    ) -> Result<ExecResult, DbErr> {
        let mut ev = self.start(sql, None, parent);
        let r = conn.execute_unprepared(sql).await;
        match &r {
            Ok(res) => {
                ev.set_affected_rows(res.rows_affected());
            }
            Err(e) => record_error(&mut ev, e),
        }
        r
    }

    async fn query_one<C: ConnectionTrait>(
        &self,
        conn: &C,
        parent: Option<SpanContext>,
        stmt: Statement,
    ) -> Result<Option<QueryResult>, DbErr> {
        let mut ev = self.start(&stmt.sql, Some(&stmt), parent);
        let r = conn.query_one(stmt).await;
        match &r {
            Ok(row) => {
                ev.set_returned_rows(u64::from(row.is_some()));
                summarize(&mut ev, row.iter());
            }
            Err(e) => record_error(&mut ev, e),
        }
        r
    }

    async fn query_all<C: ConnectionTrait>(
        &self,
        conn: &C,
        parent: Option<SpanContext>,
        stmt: Statement,
    ) -> Result<Vec<QueryResult>, DbErr> {
        let mut ev = self.start(&stmt.sql, Some(&stmt), parent);
        let r = conn.query_all(stmt).await;
        match &r {
            Ok(rows) => {
                ev.set_returned_rows(rows.len() as u64);
                summarize(&mut ev, rows.iter());
            }
            Err(e) => record_error(&mut ev, e),
        }
        r
    }

    fn stream<'a, C: StreamTrait>(
        &'a self,
        conn: &'a C,
        parent: Option<SpanContext>,
        stmt: Statement,
    ) -> BoxFuture<'a, Result<MonitoredStream<C::Stream<'a>>, DbErr>> {
        let mut ev = self.start(&stmt.sql, Some(&stmt), parent);
        Box::pin(async move {
            match conn.stream(stmt).await {
                Ok(inner) => Ok(MonitoredStream::new(inner, ev)),
                Err(e) => {
                    record_error(&mut ev, &e);
                    Err(e)
                }
            }
        })
    }

    /// Begins a transaction on `conn`: a `TRANSACTION` event under `parent`, with `BEGIN`.
    async fn begin<C: TransactionTrait>(
        self: &Arc<Self>,
        conn: &C,
        parent: Option<SpanContext>,
        config: Option<(Option<IsolationLevel>, Option<AccessMode>)>,
    ) -> Result<MonitoredTransaction, DbErr> {
        let mut tx_ev = self.sql.start_operation(&self.conn, "TRANSACTION", parent);
        let mut begin_ev = self
            .sql
            .start_operation(&self.conn, "BEGIN", tx_ev.context());
        let r = match config {
            None => conn.begin().await,
            Some((isolation, access)) => conn.begin_with_config(isolation, access).await,
        };
        match r {
            Ok(tx) => {
                begin_ev.finish();
                let parent = tx_ev.context();
                Ok(MonitoredTransaction {
                    inner: Some(tx),
                    shared: self.clone(),
                    ev: Some(tx_ev),
                    parent,
                })
            }
            Err(e) => {
                record_error(&mut begin_ev, &e);
                record_error(&mut tx_ev, &e);
                Err(e)
            }
        }
    }
}

/// Renders the first rows of a result into `db.response.summary` when `max_rows` > 0.
fn summarize<'r>(ev: &mut QueryEvent, rows: impl Iterator<Item = &'r QueryResult>) {
    let max = ev.max_rows();
    if max == 0 {
        return;
    }
    let mut s = Summary::new(max);
    for row in rows {
        if s.is_full() {
            break;
        }
        render(row, &mut s);
    }
    if s.rows() > 0 {
        ev.set_summary(s.finish());
    }
}

/// Renders one SeaORM row through its sqlx row (one of these matches; rows of mock or proxy
/// connections are not rendered).
fn render(row: &QueryResult, out: &mut Summary) {
    #[cfg(feature = "postgres")]
    if let Some(r) = row.try_as_pg_row() {
        rustmon_sqlx::render_row::<sea_orm::sqlx::Postgres>(r, out);
    }
    #[cfg(feature = "mysql")]
    if let Some(r) = row.try_as_mysql_row() {
        rustmon_sqlx::render_row::<sea_orm::sqlx::MySql>(r, out);
    }
    #[cfg(feature = "sqlite")]
    if let Some(r) = row.try_as_sqlite_row() {
        rustmon_sqlx::render_row::<sea_orm::sqlx::Sqlite>(r, out);
    }
}

/// Records `e` on `ev`: the database's code and message for a database error, else SeaORM's
/// error kind (`error.type`, e.g. `RecordNotFound`) and its message.
fn record_error(ev: &mut QueryEvent, e: &DbErr) {
    if !ev.is_recording() {
        return;
    }
    let runtime = match e {
        DbErr::Conn(r) | DbErr::Exec(r) | DbErr::Query(r) => Some(r),
        _ => None,
    };
    #[allow(irrefutable_let_patterns)] // RuntimeErr has one variant without a driver feature
    if let Some(RuntimeErr::SqlxError(sqlx_err)) = runtime {
        if let Some(db) = sqlx_err.as_database_error() {
            let code = error_code(db);
            ev.record_db_error(code.as_deref(), "database", db.message());
            return;
        }
    }
    let kind = match e {
        DbErr::ConnectionAcquire(_) => "ConnectionAcquire",
        DbErr::TryIntoErr { .. } => "TryIntoErr",
        DbErr::Conn(_) => "Conn",
        DbErr::Exec(_) => "Exec",
        DbErr::Query(_) => "Query",
        DbErr::ConvertFromU64(_) => "ConvertFromU64",
        DbErr::UnpackInsertId => "UnpackInsertId",
        DbErr::UpdateGetPrimaryKey => "UpdateGetPrimaryKey",
        DbErr::RecordNotFound(_) => "RecordNotFound",
        DbErr::AttrNotSet(_) => "AttrNotSet",
        DbErr::Custom(_) => "Custom",
        DbErr::Type(_) => "Type",
        DbErr::Json(_) => "Json",
        DbErr::Migration(_) => "Migration",
        DbErr::RecordNotInserted => "RecordNotInserted",
        DbErr::RecordNotUpdated => "RecordNotUpdated",
    };
    ev.record_db_error(None, kind, e);
}

/// The database's own code for an error, as rustmon-sqlx reads it.
fn error_code(db: &dyn sea_orm::sqlx::error::DatabaseError) -> Option<std::borrow::Cow<'_, str>> {
    #[cfg(feature = "mysql")]
    if db
        .try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>()
        .is_some()
    {
        return <sea_orm::sqlx::MySql as rustmon_sqlx::MonitoredDatabase>::error_code(db);
    }
    db.code()
}

/// Describes the server behind `db` from its pool's connect options (never its credentials).
fn describe(db: &DatabaseConnection) -> ConnectionInfo {
    use rustmon_sqlx::MonitoredDatabase;
    match db {
        #[cfg(feature = "postgres")]
        DatabaseConnection::SqlxPostgresPoolConnection(_) => {
            sea_orm::sqlx::Postgres::connection_info(
                &db.get_postgres_connection_pool().connect_options(),
            )
        }
        #[cfg(feature = "mysql")]
        DatabaseConnection::SqlxMySqlPoolConnection(_) => {
            sea_orm::sqlx::MySql::connection_info(&db.get_mysql_connection_pool().connect_options())
        }
        #[cfg(feature = "sqlite")]
        DatabaseConnection::SqlxSqlitePoolConnection(_) => sea_orm::sqlx::Sqlite::connection_info(
            &db.get_sqlite_connection_pool().connect_options(),
        ),
        #[allow(unreachable_patterns)] // mock and proxy connections, when sea-orm has them
        _ => match db.get_database_backend() {
            DbBackend::Postgres => {
                ConnectionInfo::new(rustmon_sql::system::POSTGRESQL, Dialect::Postgres)
            }
            DbBackend::MySql => ConnectionInfo::new(rustmon_sql::system::MYSQL, Dialect::MySql),
            DbBackend::Sqlite => ConnectionInfo::new(rustmon_sql::system::SQLITE, Dialect::Sqlite),
        },
    }
}

/// A SeaORM [`DatabaseConnection`] whose statements are recorded.
///
/// Use `&MonitoredConnection` wherever `&DatabaseConnection` was used as a connection (anything
/// taking `impl ConnectionTrait` or `impl StreamTrait`). Transactions: [`begin`](Self::begin),
/// [`begin_with_config`](Self::begin_with_config), [`transaction`](Self::transaction) and
/// [`transaction_with_config`](Self::transaction_with_config), which hand out a
/// [`MonitoredTransaction`]. Everything else of `DatabaseConnection` (`ping`, `close`, the sqlx
/// pools) is reachable through `Deref`; statements run on `&*db` directly, and transactions
/// begun through `TransactionTrait` on it, are **not** recorded. Clones share the connection
/// (whatever SeaORM's `mock` feature says about `DatabaseConnection: Clone`).
///
/// # Examples
/// ```no_run
/// # async fn demo(monitor: rustmon_core::Monitor) -> Result<(), sea_orm::DbErr> {
/// use rustmon_sea_orm::MonitoredConnection;
/// let db = sea_orm::Database::connect("sqlite://app.db?mode=rwc").await?;
/// let db = MonitoredConnection::new(db).monitor(monitor);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MonitoredConnection {
    inner: Arc<DatabaseConnection>,
    shared: Arc<Shared>,
}

impl fmt::Debug for MonitoredConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredConnection")
            .field("connection", &self.shared.conn)
            .finish_non_exhaustive()
    }
}

impl Deref for MonitoredConnection {
    type Target = DatabaseConnection;
    fn deref(&self) -> &DatabaseConnection {
        &self.inner
    }
}

impl MonitoredConnection {
    /// Monitors `db`, recording into the global monitor; server, port and database name come
    /// from the pool's connect options (never its credentials).
    pub fn new(db: DatabaseConnection) -> Self {
        let conn = describe(&db);
        MonitoredConnection {
            inner: Arc::new(db),
            shared: Arc::new(Shared {
                sql: SqlInstrument::new(PLUGIN, None),
                conn,
            }),
        }
    }

    /// Records into `monitor` instead of the global monitor.
    pub fn monitor(self, monitor: Monitor) -> Self {
        let conn = self.shared.conn.clone();
        MonitoredConnection {
            inner: self.inner,
            shared: Arc::new(Shared {
                sql: SqlInstrument::new(PLUGIN, Some(monitor)),
                conn,
            }),
        }
    }

    /// Overrides `db.system.name`, e.g. `mariadb` for a MariaDB server behind the MySQL driver.
    pub fn system_name(self, system: &'static str) -> Self {
        let shared = Arc::new(Shared {
            sql: self.shared.sql.clone(),
            conn: self.shared.conn.clone().with_system(system),
        });
        MonitoredConnection {
            inner: self.inner,
            shared,
        }
    }

    /// What events say about the connection (`db.system.name`, server, database).
    pub fn connection_info(&self) -> &ConnectionInfo {
        &self.shared.conn
    }

    /// The wrapped connection (statements run on it directly are not recorded).
    pub fn inner(&self) -> &DatabaseConnection {
        &self.inner
    }

    /// The wrapped connection, unmonitored (shared with this connection's clones).
    pub fn into_inner(self) -> Arc<DatabaseConnection> {
        self.inner
    }

    /// Begins a transaction: a `TRANSACTION` event (parent: the current context) with `BEGIN`,
    /// its statements and `COMMIT`/`ROLLBACK` as children.
    pub async fn begin(&self) -> Result<MonitoredTransaction, DbErr> {
        self.shared
            .begin(&*self.inner, rustmon_core::context::current(), None)
            .await
    }

    /// Like [`begin`](Self::begin), with an isolation level and/or access mode.
    pub async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<MonitoredTransaction, DbErr> {
        self.shared
            .begin(
                &*self.inner,
                rustmon_core::context::current(),
                Some((isolation_level, access_mode)),
            )
            .await
    }

    /// Runs `callback` in a transaction, committed when it returns `Ok` and rolled back when it
    /// returns `Err` (SeaORM's `TransactionTrait::transaction`, with a [`MonitoredTransaction`]).
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(db: rustmon_sea_orm::MonitoredConnection) -> Result<(), sea_orm::TransactionError<sea_orm::DbErr>> {
    /// use sea_orm::ConnectionTrait;
    /// db.transaction::<_, (), sea_orm::DbErr>(|tx| {
    ///     Box::pin(async move {
    ///         tx.execute_unprepared("UPDATE stock SET n = n - 1 WHERE sku = 'a'").await?;
    ///         Ok(())
    ///     })
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c MonitoredTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: fmt::Display + fmt::Debug + Send,
    {
        let tx = self.begin().await.map_err(TransactionError::Connection)?;
        tx.run(callback).await
    }

    /// Like [`transaction`](Self::transaction), with an isolation level and/or access mode.
    pub async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c MonitoredTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: fmt::Display + fmt::Debug + Send,
    {
        let tx = self
            .begin_with_config(isolation_level, access_mode)
            .await
            .map_err(TransactionError::Connection)?;
        tx.run(callback).await
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for MonitoredConnection {
    fn get_database_backend(&self) -> DbBackend {
        self.inner.get_database_backend()
    }

    async fn execute(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let parent = rustmon_core::context::current();
        self.shared.execute(&*self.inner, parent, stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let parent = rustmon_core::context::current();
        self.shared
            .execute_unprepared(&*self.inner, parent, sql)
            .await
    }

    async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let parent = rustmon_core::context::current();
        self.shared.query_one(&*self.inner, parent, stmt).await
    }

    async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let parent = rustmon_core::context::current();
        self.shared.query_all(&*self.inner, parent, stmt).await
    }

    fn support_returning(&self) -> bool {
        self.inner.support_returning()
    }

    fn is_mock_connection(&self) -> bool {
        self.inner.is_mock_connection()
    }
}

impl StreamTrait for MonitoredConnection {
    type Stream<'a> = MonitoredStream<<DatabaseConnection as StreamTrait>::Stream<'a>>;

    fn stream<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<Self::Stream<'a>, DbErr>> + 'a + Send>> {
        self.shared
            .stream(&*self.inner, rustmon_core::context::current(), stmt)
    }
}

/// A transaction whose statements are recorded as children of its `TRANSACTION` event: from
/// [`MonitoredConnection::begin`] or [`MonitoredConnection::transaction`]. Use `&tx` as the
/// connection; finish with [`commit`](Self::commit) or [`rollback`](Self::rollback) (dropping
/// it rolls back, as in SeaORM, recorded as `db.transaction.outcome = dropped`).
///
/// # Examples
/// ```no_run
/// # async fn demo(db: rustmon_sea_orm::MonitoredConnection) -> Result<(), sea_orm::DbErr> {
/// use sea_orm::ConnectionTrait;
/// let tx = db.begin().await?;
/// tx.execute_unprepared("INSERT INTO audit (msg) VALUES ('hi')").await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub struct MonitoredTransaction {
    inner: Option<DatabaseTransaction>,
    shared: Arc<Shared>,
    ev: Option<QueryEvent>,
    parent: Option<SpanContext>,
}

impl fmt::Debug for MonitoredTransaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredTransaction")
            .field("connection", &self.shared.conn)
            .finish_non_exhaustive()
    }
}

impl MonitoredTransaction {
    /// The transaction's event context: the parent of its statements.
    pub fn context(&self) -> Option<SpanContext> {
        self.parent
    }

    fn tx(&self) -> &DatabaseTransaction {
        match &self.inner {
            Some(tx) => tx,
            // Only `commit`/`rollback`/`into_inner` take it, and they consume `self`.
            None => unreachable!("transaction used after commit or rollback"),
        }
    }

    /// The wrapped SeaORM transaction (statements run on it directly are not recorded).
    pub fn inner(&self) -> &DatabaseTransaction {
        self.tx()
    }

    /// Begins a nested transaction (a savepoint), recorded under this one.
    pub async fn begin(&self) -> Result<MonitoredTransaction, DbErr> {
        self.shared.begin(self.tx(), self.parent, None).await
    }

    /// Runs `callback` in a nested transaction (a savepoint), committed when it returns `Ok`
    /// and rolled back when it returns `Err`.
    pub async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c MonitoredTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: fmt::Display + fmt::Debug + Send,
    {
        let tx = self.begin().await.map_err(TransactionError::Connection)?;
        tx.run(callback).await
    }

    async fn run<F, T, E>(self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c MonitoredTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: fmt::Display + fmt::Debug + Send,
    {
        let r = callback(&self).await;
        match r {
            Ok(v) => {
                self.commit().await.map_err(TransactionError::Connection)?;
                Ok(v)
            }
            Err(e) => {
                self.rollback()
                    .await
                    .map_err(TransactionError::Connection)?;
                Err(TransactionError::Transaction(e))
            }
        }
    }

    async fn end(mut self, commit: bool) -> Result<(), DbErr> {
        let name = if commit { "COMMIT" } else { "ROLLBACK" };
        let mut end_ev = self
            .shared
            .sql
            .start_operation(&self.shared.conn, name, self.parent);
        let mut ev = self.ev.take().unwrap_or(QueryEvent::inert());
        let r = match self.inner.take() {
            Some(tx) if commit => tx.commit().await,
            Some(tx) => tx.rollback().await,
            None => Ok(()),
        };
        ev.event_mut().set(
            "db.transaction.outcome",
            if commit { "commit" } else { "rollback" },
        );
        if let Err(e) = &r {
            record_error(&mut end_ev, e);
            record_error(&mut ev, e);
        }
        end_ev.finish();
        ev.finish();
        r
    }

    /// Commits, recording a `COMMIT` event and finishing the transaction's event.
    pub async fn commit(self) -> Result<(), DbErr> {
        self.end(true).await
    }

    /// Rolls back, recording a `ROLLBACK` event and finishing the transaction's event.
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.end(false).await
    }

    /// The wrapped SeaORM transaction, unmonitored from now on (its event finishes now).
    pub fn into_inner(mut self) -> DatabaseTransaction {
        match self.inner.take() {
            Some(tx) => tx,
            None => unreachable!("transaction used after commit or rollback"),
        }
    }
}

impl Drop for MonitoredTransaction {
    fn drop(&mut self) {
        if self.inner.is_some() {
            if let Some(ev) = &mut self.ev {
                ev.event_mut().set("db.transaction.outcome", "dropped");
            }
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for MonitoredTransaction {
    fn get_database_backend(&self) -> DbBackend {
        self.tx().get_database_backend()
    }

    async fn execute(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.shared.execute(self.tx(), self.parent, stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.shared
            .execute_unprepared(self.tx(), self.parent, sql)
            .await
    }

    async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.shared.query_one(self.tx(), self.parent, stmt).await
    }

    async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.shared.query_all(self.tx(), self.parent, stmt).await
    }

    fn support_returning(&self) -> bool {
        self.tx().support_returning()
    }

    fn is_mock_connection(&self) -> bool {
        self.tx().is_mock_connection()
    }
}

impl StreamTrait for MonitoredTransaction {
    type Stream<'a> = MonitoredStream<<DatabaseTransaction as StreamTrait>::Stream<'a>>;

    fn stream<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<Self::Stream<'a>, DbErr>> + 'a + Send>> {
        self.shared.stream(self.tx(), self.parent, stmt)
    }
}

/// The rows of a statement run with `stream`: the event finishes when the stream ends or is
/// dropped, with the rows read so far (`db.response.returned_rows`).
pub struct MonitoredStream<S> {
    inner: Pin<Box<S>>,
    ev: Option<QueryEvent>,
    rows: u64,
    summary: Option<Summary>,
}

impl<S> fmt::Debug for MonitoredStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredStream")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl<S> MonitoredStream<S> {
    fn new(inner: S, ev: QueryEvent) -> Self {
        let max = ev.max_rows();
        MonitoredStream {
            inner: Box::pin(inner),
            ev: ev.is_recording().then_some(ev),
            rows: 0,
            summary: (max > 0).then(|| Summary::new(max)),
        }
    }

    fn done(&mut self) {
        if let Some(mut ev) = self.ev.take() {
            ev.set_returned_rows(self.rows);
            if let Some(s) = self.summary.take() {
                if s.rows() > 0 {
                    ev.set_summary(s.finish());
                }
            }
        }
    }
}

impl<S: Stream<Item = Result<QueryResult, DbErr>>> Stream for MonitoredStream<S> {
    type Item = Result<QueryResult, DbErr>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = this.inner.as_mut().poll_next(cx);
        if this.ev.is_some() {
            match &item {
                Poll::Ready(Some(Ok(row))) => {
                    this.rows += 1;
                    if let Some(s) = &mut this.summary {
                        render(row, s);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    if let Some(ev) = &mut this.ev {
                        record_error(ev, e);
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

impl<S> Drop for MonitoredStream<S> {
    fn drop(&mut self) {
        self.done();
    }
}
