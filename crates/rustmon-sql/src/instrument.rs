//! The shared helper that starts database events with the common attributes.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use rustmon_core::config::ConfigHandle;
use rustmon_core::{Event, Kind, Monitor, SpanContext, SpanId, Status};

use crate::intern::intern;
use crate::{DbConfig, Dialect, FingerprintCache, NPlusOne};

/// Values of `db.system.name` for the databases rustmon knows.
pub mod system {
    /// PostgreSQL.
    pub const POSTGRESQL: &str = "postgresql";
    /// MySQL.
    pub const MYSQL: &str = "mysql";
    /// MariaDB.
    pub const MARIADB: &str = "mariadb";
    /// SQLite.
    pub const SQLITE: &str = "sqlite";
    /// Redis.
    pub const REDIS: &str = "redis";
}

/// What is known about a connection: the database system, the dialect its SQL is read in, the
/// database name and the server. Strings are interned, so events carry them without allocating.
///
/// # Examples
/// ```
/// use rustmon_sql::{ConnectionInfo, Dialect};
/// let info = ConnectionInfo::from_url("postgres://app:secret@db.internal:6432/shop?sslmode=disable");
/// assert_eq!(info.system(), "postgresql");
/// assert_eq!(info.dialect(), Dialect::Postgres);
/// assert_eq!(info.namespace(), Some("shop"));
/// assert_eq!(info.server_address(), Some("db.internal"));
/// assert_eq!(info.server_port(), Some(6432));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    system: &'static str,
    dialect: Dialect,
    namespace: Option<Cow<'static, str>>,
    address: Option<Cow<'static, str>>,
    port: Option<u16>,
}

impl ConnectionInfo {
    /// A connection to `system` (see [`system`]) whose statements are read as `dialect`.
    pub fn new(system: &'static str, dialect: Dialect) -> Self {
        ConnectionInfo {
            system,
            dialect,
            namespace: None,
            address: None,
            port: None,
        }
    }

    /// Reads system, server, port and database from a connection URL
    /// (`postgres://`, `postgresql://`, `mysql://`, `mariadb://`, `sqlite:`); credentials and
    /// options are ignored, never recorded. An unknown scheme gives system `other_sql`.
    pub fn from_url(url: &str) -> Self {
        let (scheme, rest) = url.split_once(':').unwrap_or(("", url));
        let scheme = scheme.to_ascii_lowercase();
        let (system, dialect) = match scheme.as_str() {
            "postgres" | "postgresql" => (system::POSTGRESQL, Dialect::Postgres),
            "mysql" => (system::MYSQL, Dialect::MySql),
            "mariadb" => (system::MARIADB, Dialect::MySql),
            "sqlite" => (system::SQLITE, Dialect::Sqlite),
            _ => ("other_sql", Dialect::Generic),
        };
        let mut info = ConnectionInfo::new(system, dialect);
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        if dialect == Dialect::Sqlite {
            let path = rest.trim_start_matches("//");
            if !path.is_empty() && path != ":memory:" {
                info = info.with_namespace(path);
            } else if path == ":memory:" {
                info = info.with_namespace(":memory:");
            }
            return info;
        }
        let Some(rest) = rest.strip_prefix("//") else {
            return info;
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
            match v6.split_once(']') {
                Some((h, p)) => (h, p.strip_prefix(':')),
                None => (v6, None),
            }
        } else {
            match host_port.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (host_port, None),
            }
        };
        let port = port.and_then(|p| p.parse().ok()).or(match dialect {
            Dialect::Postgres => Some(5432),
            Dialect::MySql => Some(3306),
            _ => None,
        });
        if !host.is_empty() {
            info = info.with_server(host, port);
        }
        if !path.is_empty() {
            info = info.with_namespace(path);
        }
        info
    }

    /// Sets the database name (`db.namespace`).
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(intern(namespace));
        self
    }

    /// Sets the server (`server.address`, `server.port`).
    pub fn with_server(mut self, address: &str, port: Option<u16>) -> Self {
        self.address = Some(intern(address));
        self.port = port;
        self
    }

    /// Replaces the system name, e.g. `mariadb` for a server reached through a MySQL driver.
    pub fn with_system(mut self, system: &'static str) -> Self {
        self.system = system;
        self
    }

    /// `db.system.name`.
    pub fn system(&self) -> &'static str {
        self.system
    }

    /// The dialect statements are read in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// `db.namespace`, when known.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// `server.address`, when known.
    pub fn server_address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// `server.port`, when known.
    pub fn server_port(&self) -> Option<u16> {
        self.port
    }

    fn annotate(&self, event: &mut Event) {
        event.set("db.system.name", self.system);
        if let Some(ns) = &self.namespace {
            event.set("db.namespace", ns.clone());
        }
        if let Some(a) = &self.address {
            event.set("server.address", a.clone());
        }
        if let Some(p) = self.port {
            event.set("server.port", i64::from(p));
        }
    }
}

enum Target {
    Global,
    Monitor(Monitor),
}

struct Inner {
    plugin: &'static str,
    target: Target,
    config: OnceLock<ConfigHandle<DbConfig>>,
}

/// Starts database events for one integration: the shared part of every SQL integration.
///
/// Records into the given [`Monitor`], or the global one (looked up at each statement, so it
/// may be installed later). Reads [`DbConfig`] live from that monitor. Fingerprints go through
/// the shared [`FingerprintCache`]; N+1 counts through the shared [`NPlusOne`]. Cloning is cheap.
///
/// # Examples
/// ```
/// use rustmon_core::{Kind, Monitor};
/// use rustmon_sql::{ConnectionInfo, SqlInstrument};
/// let monitor = Monitor::builder("svc").build().unwrap();
/// let sql = SqlInstrument::new("my-driver", Some(monitor.clone()));
/// let conn = ConnectionInfo::from_url("postgres://localhost/shop");
/// let mut q = sql.start(&conn, "SELECT * FROM orders WHERE id = 42");
/// // … run the statement …
/// q.set_returned_rows(1);
/// q.finish();
/// ```
#[derive(Clone)]
pub struct SqlInstrument {
    inner: Arc<Inner>,
}

impl fmt::Debug for SqlInstrument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlInstrument")
            .field("plugin", &self.inner.plugin)
            .field(
                "monitor",
                &match &self.inner.target {
                    Target::Global => "global",
                    Target::Monitor(_) => "own",
                },
            )
            .finish()
    }
}

impl SqlInstrument {
    /// An instrument tagging events with `plugin`, recording into `monitor` (or the global
    /// monitor when `None`).
    pub fn new(plugin: &'static str, monitor: Option<Monitor>) -> Self {
        SqlInstrument {
            inner: Arc::new(Inner {
                plugin,
                target: monitor.map_or(Target::Global, Target::Monitor),
                config: OnceLock::new(),
            }),
        }
    }

    /// The plugin name events are tagged with.
    pub fn plugin(&self) -> &'static str {
        self.inner.plugin
    }

    /// The monitor events go to now: the given one, else the global one if installed.
    pub fn monitor(&self) -> Option<&Monitor> {
        match &self.inner.target {
            Target::Monitor(m) => Some(m),
            Target::Global => rustmon_core::global(),
        }
    }

    /// Whether statements are recorded now (a monitor is there and enabled).
    #[inline]
    pub fn is_enabled(&self) -> bool {
        self.monitor().is_some_and(Monitor::is_enabled)
    }

    /// The live configuration, once a monitor is there and enabled.
    pub fn config(&self) -> Option<ConfigHandle<DbConfig>> {
        self.config_ref().cloned()
    }

    fn config_ref(&self) -> Option<&ConfigHandle<DbConfig>> {
        let m = self.monitor()?;
        if !m.is_enabled() {
            return None;
        }
        Some(self.inner.config.get_or_init(|| m.config::<DbConfig>()))
    }

    /// Marks the parent that issued the same statement `n` times (kept whatever the sampling).
    fn mark_parent(&self, parent: SpanId, statement: Cow<'static, str>, n: u32) {
        if let Some(m) = self.monitor() {
            m.annotate(parent, "db.n_plus_one.statement", statement);
            m.annotate(parent, "db.n_plus_one.count", i64::from(n));
        }
    }

    fn begin(&self, name: Cow<'static, str>, parent: Option<SpanContext>) -> Event {
        let event = match &self.inner.target {
            Target::Global => Event::start_with_parent(Kind::Database, name, parent),
            Target::Monitor(m) => m.start_event_with_parent(Kind::Database, name, parent),
        };
        event.with_plugin(self.inner.plugin)
    }

    /// Starts the event of statement `sql` on `conn`, as a child of the current context.
    pub fn start(&self, conn: &ConnectionInfo, sql: &str) -> QueryEvent {
        self.start_with_parent(conn, sql, rustmon_core::context::current())
    }

    /// Starts the event of statement `sql` on `conn` under `parent` (`None`: a new trace).
    ///
    /// The event is named by the statement's fingerprint and carries `db.system.name`,
    /// `db.namespace`, `db.operation.name`, `db.collection.name`, `db.query.text`,
    /// `server.address` and `server.port` where known; with a parent, it is counted for N+1
    /// detection and flagged `db.n_plus_one = true` with `db.n_plus_one.count` from the
    /// threshold on, and the (local) parent is annotated with `db.n_plus_one.statement` and
    /// `db.n_plus_one.count` (see [`Monitor::annotate`]). When monitoring is off this costs one atomic load and returns an inert event.
    pub fn start_with_parent(
        &self,
        conn: &ConnectionInfo,
        sql: &str,
        parent: Option<SpanContext>,
    ) -> QueryEvent {
        let Some(config) = self.config_ref() else {
            return QueryEvent::inert();
        };
        let cfg = config.get();
        let fp = FingerprintCache::shared().get(sql, conn.dialect);
        let mut event = self.begin(fp.name(), parent);
        if !event.is_recording() {
            return QueryEvent::inert();
        }
        conn.annotate(&mut event);
        if let Some(op) = fp.operation() {
            event.set("db.operation.name", op);
        }
        if let Some(c) = fp.collection_value() {
            event.set("db.collection.name", c);
        }
        if cfg.query_len > 0 {
            if cfg.record_raw_statement {
                let mut end = sql.len().min(cfg.query_len);
                while !sql.is_char_boundary(end) {
                    end -= 1;
                }
                event.set("db.query.text", sql[..end].to_owned());
            } else {
                event.set("db.query.text", fp.text_truncated(cfg.query_len));
            }
        }
        if let Some(p) = parent {
            if cfg.n_plus_one_threshold > 0 {
                let n = NPlusOne::shared().hit(p.span_id, fp.hash());
                if n >= cfg.n_plus_one_threshold {
                    event.set("db.n_plus_one", true);
                    event.set("db.n_plus_one.count", i64::from(n));
                    if !p.remote {
                        self.mark_parent(p.span_id, fp.name(), n);
                    }
                }
            }
        }
        QueryEvent {
            event,
            slow_ns: cfg.slow_threshold_ms.saturating_mul(1_000_000),
            record_params: cfg.record_params,
            max_rows: cfg.max_rows,
        }
    }

    /// Starts an event that is not a statement: `BEGIN`, `COMMIT`, `ROLLBACK`, a whole
    /// transaction (`TRANSACTION`) or a pool acquire; `name` is also `db.operation.name`.
    pub fn start_operation(
        &self,
        conn: &ConnectionInfo,
        name: &'static str,
        parent: Option<SpanContext>,
    ) -> QueryEvent {
        let Some(config) = self.config_ref() else {
            return QueryEvent::inert();
        };
        let cfg = config.get();
        let mut event = self.begin(Cow::Borrowed(name), parent);
        conn.annotate(&mut event);
        event.set("db.operation.name", name);
        QueryEvent {
            event,
            slow_ns: cfg.slow_threshold_ms.saturating_mul(1_000_000),
            record_params: false,
            max_rows: 0,
        }
    }
}

/// A database event in progress, started by [`SqlInstrument`].
///
/// Dropping it finishes it (like [`Event`]); a statement that took at least `slow_threshold_ms`
/// is marked `db.slow = true` when it finishes.
#[derive(Debug)]
#[must_use = "a query event is recorded when finished or dropped"]
pub struct QueryEvent {
    event: Event,
    slow_ns: u64,
    record_params: bool,
    max_rows: usize,
}

impl QueryEvent {
    /// An event that records nothing.
    pub const fn inert() -> Self {
        QueryEvent {
            event: Event::inert(),
            slow_ns: u64::MAX,
            record_params: false,
            max_rows: 0,
        }
    }

    /// Whether this event records anything.
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.event.is_recording()
    }

    /// The event's context, to parent other events (statements in a transaction).
    pub fn context(&self) -> Option<SpanContext> {
        self.event.context()
    }

    /// The underlying event, for attributes of the integration's own.
    pub fn event_mut(&mut self) -> &mut Event {
        &mut self.event
    }

    /// Sets `db.response.returned_rows`.
    pub fn set_returned_rows(&mut self, rows: u64) -> &mut Self {
        self.event.set("db.response.returned_rows", rows);
        self
    }

    /// Sets `db.response.affected_rows` (rows an `INSERT`/`UPDATE`/`DELETE` changed).
    pub fn set_affected_rows(&mut self, rows: u64) -> &mut Self {
        self.event.set("db.response.affected_rows", rows);
        self
    }

    /// Whether bound parameters should be recorded ([`DbConfig::record_params`]).
    pub fn records_params(&self) -> bool {
        self.record_params && self.is_recording()
    }

    /// Records bound parameter `index` (0-based) as `db.query.parameter.<index>` when
    /// [`DbConfig::record_params`] is on; its `Debug` form, cut to 256 bytes.
    pub fn set_param(&mut self, index: usize, value: &dyn fmt::Debug) -> &mut Self {
        if self.records_params() {
            let mut v = format!("{value:?}");
            if v.len() > 256 {
                let mut end = 256;
                while !v.is_char_boundary(end) {
                    end -= 1;
                }
                v.truncate(end);
            }
            self.event.set(format!("db.query.parameter.{index}"), v);
        }
        self
    }

    /// How many rows to render into a result summary ([`DbConfig::max_rows`]); 0: none.
    pub fn max_rows(&self) -> usize {
        if self.is_recording() {
            self.max_rows
        } else {
            0
        }
    }

    /// Sets `db.response.summary`: the first rows of the result, rendered by the integration.
    pub fn set_summary(&mut self, summary: String) -> &mut Self {
        self.event.set("db.response.summary", summary);
        self
    }

    /// Records a database error: `db.response.status_code` (the database's code, e.g. SQLSTATE
    /// `42P01` or MySQL `1146`), `error.type` (the code, else `error_type`) and the message.
    pub fn record_db_error(
        &mut self,
        code: Option<&str>,
        error_type: &'static str,
        message: impl fmt::Display,
    ) -> &mut Self {
        if !self.is_recording() {
            return self;
        }
        let kind = match code {
            Some(c) => {
                let c = intern(c);
                self.event.set("db.response.status_code", c.clone());
                c
            }
            None => Cow::Borrowed(error_type),
        };
        self.event.set("error.type", kind.clone());
        self.event.record_error(kind, message);
        self
    }

    /// Sets the status (e.g. [`Status::Ok`]).
    pub fn set_status(&mut self, status: Status) -> &mut Self {
        self.event.set_status(status);
        self
    }

    /// Finishes the event now.
    pub fn finish(self) {}
}

impl Drop for QueryEvent {
    fn drop(&mut self) {
        if self.event.is_recording() && self.event.lapsed().as_nanos() as u64 >= self.slow_ns {
            self.event.set("db.slow", true).keep();
        }
    }
}
