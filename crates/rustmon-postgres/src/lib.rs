//! rustmon integration for [tokio-postgres](https://docs.rs/tokio-postgres): a
//! [`MonitoredClient`] with the client's own methods (`query`, `query_one`, `query_opt`,
//! `execute`, `prepare`, `batch_execute`, `transaction`) that records each statement as a
//! database event.
//!
//! Events are named by the statement's fingerprint and carry the attributes of
//! [`rustmon_sql`]'s `db` config (`db.system.name = postgresql`, `db.namespace`,
//! `db.operation.name`, `db.collection.name`, `db.query.text`, `server.address`, `server.port`),
//! rows returned (`db.response.returned_rows`) or changed (`db.response.affected_rows`), errors
//! with their SQLSTATE (`db.response.status_code`), and bound parameters as
//! `db.query.parameter.<n>` when `record_params` is on, and with `max_rows` > 0 the first rows
//! of `query`/`query_one`/`query_opt` in `db.response.summary`. A [`MonitoredTransaction`] is a
//! `TRANSACTION` event whose children are `BEGIN`, its statements and `COMMIT`/`ROLLBACK`.
//! Statements prepared through [`MonitoredClient::prepare`] keep their text, so executions of a
//! [`MonitoredStatement`] are named like the text; a bare `Statement` (prepared elsewhere) is
//! recorded as `EXECUTE`. `prepare` itself is not recorded.
//!
//! # Examples
//! ```no_run
//! # async fn demo() -> Result<(), tokio_postgres::Error> {
//! use rustmon_postgres::MonitoredClient;
//! let url = "postgres://postgres@127.0.0.1/test";
//! let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
//! tokio::spawn(connection);
//! let mut client = MonitoredClient::new(client).url(url);
//! let rows = client.query("SELECT * FROM orders WHERE id = $1", &[&7_i32]).await?;
//! let tx = client.transaction().await?;
//! tx.execute("UPDATE orders SET paid = true WHERE id = $1", &[&7_i32]).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use rustmon_core::{Monitor, SpanContext};
pub use rustmon_sql::DbConfig;
use rustmon_sql::{ConnectionInfo, Dialect, QueryEvent, SqlInstrument, Summary, system};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, Error, Row, Statement, ToStatement, Transaction};

/// The plugin name events are tagged with.
pub const PLUGIN: &str = "postgres";

/// Something a statement can be run from: SQL text, a [`MonitoredStatement`], or a bare
/// `Statement` (recorded as `EXECUTE`, its text being unknown).
pub trait Query: Sync {
    /// What tokio-postgres runs.
    type Statement: ?Sized + ToStatement + Sync + Send;
    /// The statement for tokio-postgres.
    fn statement(&self) -> &Self::Statement;
    /// The SQL text, when known.
    fn sql(&self) -> Option<&str>;
}

impl Query for str {
    type Statement = str;
    fn statement(&self) -> &str {
        self
    }
    fn sql(&self) -> Option<&str> {
        Some(self)
    }
}

impl Query for String {
    type Statement = String;
    fn statement(&self) -> &String {
        self
    }
    fn sql(&self) -> Option<&str> {
        Some(self)
    }
}

impl Query for Statement {
    type Statement = Statement;
    fn statement(&self) -> &Statement {
        self
    }
    fn sql(&self) -> Option<&str> {
        None
    }
}

/// A prepared statement that remembers its text (from [`MonitoredClient::prepare`]).
///
/// # Examples
/// ```no_run
/// # async fn demo(client: rustmon_postgres::MonitoredClient) -> Result<(), tokio_postgres::Error> {
/// let stmt = client.prepare("SELECT name FROM users WHERE id = $1").await?;
/// let row = client.query_one(&stmt, &[&1_i32]).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MonitoredStatement {
    statement: Statement,
    sql: Arc<str>,
}

impl fmt::Debug for MonitoredStatement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredStatement")
            .field("sql", &self.sql)
            .finish()
    }
}

impl MonitoredStatement {
    /// The tokio-postgres statement.
    pub fn statement(&self) -> &Statement {
        &self.statement
    }

    /// The SQL text it was prepared from.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

impl Query for MonitoredStatement {
    type Statement = Statement;
    fn statement(&self) -> &Statement {
        &self.statement
    }
    fn sql(&self) -> Option<&str> {
        Some(&self.sql)
    }
}

#[derive(Clone)]
struct Shared {
    sql: SqlInstrument,
    conn: ConnectionInfo,
}

impl Shared {
    fn start(
        &self,
        query: &(impl Query + ?Sized),
        params: &[&(dyn ToSql + Sync)],
        parent: Option<SpanContext>,
    ) -> QueryEvent {
        let mut ev = match query.sql() {
            Some(sql) => self.sql.start_with_parent(&self.conn, sql, parent),
            None => self.sql.start_operation(&self.conn, "EXECUTE", parent),
        };
        if ev.records_params() {
            for (i, p) in params.iter().enumerate() {
                ev.set_param(i, p);
            }
        }
        ev
    }
}

fn record_error(ev: &mut QueryEvent, e: &Error) {
    if !ev.is_recording() {
        return;
    }
    match e.as_db_error() {
        Some(db) => {
            ev.record_db_error(Some(db.code().code()), "database", db.message());
        }
        None => {
            let kind = if e.is_closed() { "closed" } else { "postgres" };
            ev.record_db_error(None, kind, e);
        }
    }
}

/// Renders `row` as the next line of `out` (`db.response.summary`): booleans, integers,
/// floats, text and `bytea` by value, other types (dates, numerics, JSON, …) by their type name.
fn render_row(row: &Row, out: &mut Summary) {
    if !out.begin_row() {
        return;
    }
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let shown = match *ty {
            Type::BOOL => row.try_get::<_, Option<bool>>(i).map(|v| {
                v.map(|v| {
                    out.bool(v);
                })
            }),
            Type::INT2 => row.try_get::<_, Option<i16>>(i).map(|v| {
                v.map(|v| {
                    out.int(v.into());
                })
            }),
            Type::INT4 => row.try_get::<_, Option<i32>>(i).map(|v| {
                v.map(|v| {
                    out.int(v.into());
                })
            }),
            Type::INT8 => row.try_get::<_, Option<i64>>(i).map(|v| {
                v.map(|v| {
                    out.int(v);
                })
            }),
            Type::OID => row.try_get::<_, Option<u32>>(i).map(|v| {
                v.map(|v| {
                    out.uint(v.into());
                })
            }),
            Type::FLOAT4 => row.try_get::<_, Option<f32>>(i).map(|v| {
                v.map(|v| {
                    out.float(v.into());
                })
            }),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(i).map(|v| {
                v.map(|v| {
                    out.float(v);
                })
            }),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                row.try_get::<_, Option<&str>>(i).map(|v| {
                    v.map(|v| {
                        out.text(v);
                    })
                })
            }
            Type::BYTEA => row.try_get::<_, Option<&[u8]>>(i).map(|v| {
                v.map(|v| {
                    out.bytes(v.len());
                })
            }),
            _ => {
                // Not decoded; NULL is still told apart.
                match row.try_get::<_, Option<RawValue>>(i) {
                    Ok(Some(_)) => {
                        out.unreadable(ty.name());
                        Ok(Some(()))
                    }
                    other => other.map(|_| None),
                }
            }
        };
        match shown {
            Ok(Some(())) => {}
            Ok(None) => {
                out.null();
            }
            Err(_) => {
                out.unreadable(ty.name());
            }
        }
    }
}

/// Any value, undecoded: only whether it is NULL.
struct RawValue;

impl<'a> tokio_postgres::types::FromSql<'a> for RawValue {
    fn from_sql(_: &Type, _: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Sets `db.response.summary` from the first `max_rows` of `rows` (nothing when `max_rows` is 0).
fn summarize<'r>(ev: &mut QueryEvent, rows: impl IntoIterator<Item = &'r Row>) {
    let max = ev.max_rows();
    if max == 0 {
        return;
    }
    let mut s = Summary::new(max);
    for row in rows.into_iter().take(max) {
        render_row(row, &mut s);
    }
    if s.rows() > 0 {
        ev.set_summary(s.finish());
    }
}

fn finish<T>(mut ev: QueryEvent, r: &Result<T, Error>, rows: impl FnOnce(&T, &mut QueryEvent)) {
    match r {
        Ok(v) => rows(v, &mut ev),
        Err(e) => record_error(&mut ev, e),
    }
}

/// The statement methods, shared by the client and transactions.
macro_rules! statement_methods {
    () => {
        /// Like tokio-postgres' `query`: all rows; recorded with `db.response.returned_rows`.
        pub async fn query<Q: Query + ?Sized>(
            &self,
            query: &Q,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<Vec<Row>, Error> {
            let ev = self.shared.start(query, params, self.parent());
            let r = self.target().query(query.statement(), params).await;
            finish(ev, &r, |rows, ev| {
                ev.set_returned_rows(rows.len() as u64);
                summarize(ev, rows);
            });
            r
        }

        /// Like tokio-postgres' `query_one`: exactly one row, else an error.
        pub async fn query_one<Q: Query + ?Sized>(
            &self,
            query: &Q,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<Row, Error> {
            let ev = self.shared.start(query, params, self.parent());
            let r = self.target().query_one(query.statement(), params).await;
            finish(ev, &r, |row, ev| {
                ev.set_returned_rows(1);
                summarize(ev, [row]);
            });
            r
        }

        /// Like tokio-postgres' `query_opt`: at most one row.
        pub async fn query_opt<Q: Query + ?Sized>(
            &self,
            query: &Q,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<Option<Row>, Error> {
            let ev = self.shared.start(query, params, self.parent());
            let r = self.target().query_opt(query.statement(), params).await;
            finish(ev, &r, |row, ev| {
                ev.set_returned_rows(u64::from(row.is_some()));
                summarize(ev, row);
            });
            r
        }

        /// Like tokio-postgres' `execute`: the rows changed; recorded with
        /// `db.response.affected_rows`.
        pub async fn execute<Q: Query + ?Sized>(
            &self,
            query: &Q,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<u64, Error> {
            let ev = self.shared.start(query, params, self.parent());
            let r = self.target().execute(query.statement(), params).await;
            finish(ev, &r, |n, ev| {
                ev.set_affected_rows(*n);
            });
            r
        }

        /// Like tokio-postgres' `batch_execute`: several statements in one string, recorded as
        /// one event.
        pub async fn batch_execute(&self, query: &str) -> Result<(), Error> {
            let ev = self.shared.start(query, &[], self.parent());
            let r = self.target().batch_execute(query).await;
            finish(ev, &r, |_, _| {});
            r
        }

        /// Like tokio-postgres' `prepare`, keeping the text so that executions are named by it.
        pub async fn prepare(&self, query: &str) -> Result<MonitoredStatement, Error> {
            let statement = self.target().prepare(query).await?;
            Ok(MonitoredStatement {
                statement,
                sql: Arc::from(query),
            })
        }
    };
}

/// A tokio-postgres [`Client`] whose statements are recorded.
///
/// Records into the global monitor unless given one with [`monitor`](Self::monitor); describe
/// the server with [`url`](Self::url) or [`config`](Self::config). The client's other methods
/// are reachable through [`inner`](Self::inner) (unrecorded).
pub struct MonitoredClient {
    inner: Client,
    shared: Shared,
}

impl fmt::Debug for MonitoredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredClient")
            .field("connection", &self.shared.conn)
            .finish_non_exhaustive()
    }
}

impl MonitoredClient {
    /// Monitors `client`, recording into the global monitor.
    pub fn new(client: Client) -> Self {
        MonitoredClient {
            inner: client,
            shared: Shared {
                sql: SqlInstrument::new(PLUGIN, None),
                conn: ConnectionInfo::new(system::POSTGRESQL, Dialect::Postgres),
            },
        }
    }

    /// Records into `monitor` instead of the global monitor.
    pub fn monitor(mut self, monitor: Monitor) -> Self {
        self.shared.sql = SqlInstrument::new(PLUGIN, Some(monitor));
        self
    }

    /// Describes the server from a connection URL (credentials are not read).
    pub fn url(mut self, url: &str) -> Self {
        self.shared.conn = ConnectionInfo::from_url(url).with_system(system::POSTGRESQL);
        self
    }

    /// Describes the server from a tokio-postgres [`Config`] (its first host and port).
    pub fn config(mut self, config: &Config) -> Self {
        let mut info = ConnectionInfo::new(system::POSTGRESQL, Dialect::Postgres);
        if let Some(db) = config.get_dbname() {
            info = info.with_namespace(db);
        }
        let port = config.get_ports().first().copied().or(Some(5432));
        match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => info = info.with_server(h, port),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => {
                info = info.with_server(&p.display().to_string(), port)
            }
            None => {}
        }
        self.shared.conn = info;
        self
    }

    /// The wrapped client (statements run on it directly are not recorded).
    pub fn inner(&self) -> &Client {
        &self.inner
    }

    /// The wrapped client, unmonitored.
    pub fn into_inner(self) -> Client {
        self.inner
    }

    fn parent(&self) -> Option<SpanContext> {
        rustmon_core::context::current()
    }

    fn target(&self) -> &Client {
        &self.inner
    }

    statement_methods!();

    /// Begins a transaction: a `TRANSACTION` event (parent: the current context) with `BEGIN`,
    /// its statements and `COMMIT`/`ROLLBACK` as children.
    pub async fn transaction(&mut self) -> Result<MonitoredTransaction<'_>, Error> {
        let shared = self.shared.clone();
        let mut tx_ev = shared.sql.start_operation(
            &shared.conn,
            "TRANSACTION",
            rustmon_core::context::current(),
        );
        let mut begin = shared
            .sql
            .start_operation(&shared.conn, "BEGIN", tx_ev.context());
        match self.inner.transaction().await {
            Ok(tx) => {
                begin.finish();
                let parent = tx_ev.context();
                Ok(MonitoredTransaction {
                    inner: Some(tx),
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
/// back (as in tokio-postgres), recorded as `db.transaction.outcome = dropped`.
pub struct MonitoredTransaction<'a> {
    inner: Option<Transaction<'a>>,
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

impl<'a> MonitoredTransaction<'a> {
    fn parent(&self) -> Option<SpanContext> {
        self.parent
    }

    fn target(&self) -> &Transaction<'a> {
        match &self.inner {
            Some(tx) => tx,
            // Only `commit`/`rollback` take it, and they consume the transaction.
            None => unreachable!("transaction used after commit or rollback"),
        }
    }

    statement_methods!();

    /// The wrapped transaction (statements run on it directly are not recorded).
    pub fn inner(&self) -> &Transaction<'a> {
        self.target()
    }

    /// Commits, recording `COMMIT` and finishing the transaction's event.
    pub async fn commit(mut self) -> Result<(), Error> {
        let mut end = self
            .shared
            .sql
            .start_operation(&self.shared.conn, "COMMIT", self.parent);
        let mut ev = self.ev.take().unwrap_or(QueryEvent::inert());
        let r = match self.inner.take() {
            Some(tx) => tx.commit().await,
            None => Ok(()),
        };
        ev.event_mut().set("db.transaction.outcome", "commit");
        if let Err(e) = &r {
            record_error(&mut end, e);
            record_error(&mut ev, e);
        }
        r
    }

    /// Rolls back, recording `ROLLBACK` and finishing the transaction's event.
    pub async fn rollback(mut self) -> Result<(), Error> {
        let mut end = self
            .shared
            .sql
            .start_operation(&self.shared.conn, "ROLLBACK", self.parent);
        let mut ev = self.ev.take().unwrap_or(QueryEvent::inert());
        let r = match self.inner.take() {
            Some(tx) => tx.rollback().await,
            None => Ok(()),
        };
        ev.event_mut().set("db.transaction.outcome", "rollback");
        if let Err(e) = &r {
            record_error(&mut end, e);
            record_error(&mut ev, e);
        }
        r
    }
}

impl Drop for MonitoredTransaction<'_> {
    fn drop(&mut self) {
        if let Some(ev) = &mut self.ev {
            ev.event_mut().set("db.transaction.outcome", "dropped");
        }
    }
}
