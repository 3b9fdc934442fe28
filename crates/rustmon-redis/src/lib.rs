//! rustmon integration for the [redis](https://docs.rs/redis) crate: one `cache` event per
//! command, and one per pipeline with its command count.
//!
//! Wrap any connection — sync (`redis::Connection`) or async
//! (`redis::aio::MultiplexedConnection`, `redis::aio::ConnectionManager`, anything implementing
//! `ConnectionLike`) — in [`Monitored`]; it implements the same `ConnectionLike` trait, so
//! `redis::cmd(…).query(&mut conn)`, `Commands`, `AsyncCommands` and pipelines work unchanged.
//!
//! Each event is named by the command (`GET`, `HSET`; `PIPELINE` for pipelines) and carries
//! `db.system.name = redis`, `db.operation.name`, `db.namespace` (the db index),
//! `server.address`, `server.port`, `db.redis.argument_count` (arguments after the command
//! name), for pipelines `db.operation.batch.size` and `db.redis.transaction`, and errors with
//! the server's code (`WRONGTYPE`, `NOSCRIPT`, …) as `error.type`. Keys and values are not
//! recorded unless [`RedisConfig`] says so. The parent is the current context when the command
//! is issued.
//!
//! # Examples
//! ```no_run
//! # async fn demo() -> redis::RedisResult<()> {
//! use redis::AsyncCommands;
//! use rustmon_redis::Monitored;
//! let client = redis::Client::open("redis://127.0.0.1/")?;
//! let conn = client.get_multiplexed_async_connection().await?;
//! let mut conn = Monitored::new(conn).connection_info(client.get_connection_info());
//! let _: () = conn.set("greeting", "hello").await?;
//! let v: String = conn.get("greeting").await?;
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use redis::{Cmd, ConnectionAddr, ConnectionInfo, Pipeline, RedisError, RedisFuture, Value};
use rustmon_core::config::{ConfigHandle, FieldError, PluginConfig};
use rustmon_core::{Event, Kind, Monitor};
use serde::{Deserialize, Serialize};

/// The plugin name events are tagged with, and the config section.
pub const PLUGIN: &str = "redis";

/// What Redis events record: plugin config `redis`, live-updatable.
///
/// | field | default | meaning |
/// |---|---|---|
/// | `record_keys` | false | `db.query.text` = the command and its first argument (usually the key), other arguments as `?` |
/// | `record_values` | false | `db.query.text` = the whole command with all arguments |
/// | `query_len` | 256 | `db.query.text` is cut to this many bytes |
///
/// # Examples
/// ```
/// let monitor = rustmon_core::Monitor::builder("svc").build().unwrap();
/// let config = monitor.config::<rustmon_redis::RedisConfig>();
/// assert!(!config.get().record_keys);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Record the command's first argument (usually the key); other arguments become `?`.
    pub record_keys: bool,
    /// Record every argument.
    pub record_values: bool,
    /// `db.query.text` is cut to this many bytes.
    pub query_len: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            record_keys: false,
            record_values: false,
            query_len: 256,
        }
    }
}

impl PluginConfig for RedisConfig {
    const NAME: &'static str = PLUGIN;

    fn validate(&self) -> Result<(), FieldError> {
        if self.query_len == 0 && (self.record_keys || self.record_values) {
            return Err(FieldError::new(
                "query_len",
                "must be at least 1 when keys or values are recorded, got 0",
            ));
        }
        Ok(())
    }
}

struct Shared {
    monitor: Option<Monitor>,
    config: OnceLock<ConfigHandle<RedisConfig>>,
    address: Option<Cow<'static, str>>,
    port: Option<u16>,
}

impl Shared {
    fn monitor(&self) -> Option<&Monitor> {
        match &self.monitor {
            Some(m) => Some(m),
            None => rustmon_core::global(),
        }
    }
}

/// A Redis connection whose commands are recorded. Cloning clones the inner connection (for
/// multiplexed connections and managers, which are cheap to clone).
///
/// # Examples
/// ```no_run
/// # fn demo() -> redis::RedisResult<()> {
/// use redis::Commands;
/// let client = redis::Client::open("redis://127.0.0.1/")?;
/// let mut conn = rustmon_redis::Monitored::new(client.get_connection()?)
///     .connection_info(client.get_connection_info());
/// let _: () = conn.set("k", 1)?;
/// let (a, b): (i64, i64) = redis::pipe().incr("k", 1).incr("k", 1).query(&mut conn)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Monitored<C> {
    inner: C,
    shared: Arc<Shared>,
}

impl<C> fmt::Debug for Monitored<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitored")
            .field("server.address", &self.shared.address)
            .field("server.port", &self.shared.port)
            .finish_non_exhaustive()
    }
}

impl<C> Monitored<C> {
    /// Monitors `conn`, recording into the global monitor.
    pub fn new(conn: C) -> Self {
        Monitored {
            inner: conn,
            shared: Arc::new(Shared {
                monitor: None,
                config: OnceLock::new(),
                address: None,
                port: None,
            }),
        }
    }

    /// Records into `monitor` instead of the global monitor.
    pub fn monitor(self, monitor: Monitor) -> Self {
        self.rebuild(Some(monitor), None)
    }

    /// Takes `server.address` and `server.port` from the client's connection info (for a Unix
    /// socket, its path as the address). Credentials are not read.
    pub fn connection_info(self, info: &ConnectionInfo) -> Self {
        let (address, port) = match &info.addr {
            ConnectionAddr::Tcp(host, port) => (host.clone(), Some(*port)),
            ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), Some(*port)),
            ConnectionAddr::Unix(path) => (path.display().to_string(), None),
        };
        self.rebuild(None, Some((address, port)))
    }

    fn rebuild(self, monitor: Option<Monitor>, server: Option<(String, Option<u16>)>) -> Self {
        let old = &self.shared;
        let (address, port) = match server {
            Some((a, p)) => (Some(Cow::Owned(a)), p),
            None => (old.address.clone(), old.port),
        };
        let monitor = monitor.or_else(|| old.monitor.clone());
        Monitored {
            inner: self.inner,
            shared: Arc::new(Shared {
                monitor,
                config: OnceLock::new(),
                address,
                port,
            }),
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// The wrapped connection, mutably (commands sent through it are not recorded).
    pub fn get_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// The wrapped connection, unmonitored.
    pub fn into_inner(self) -> C {
        self.inner
    }

    fn start<'a>(
        &self,
        db: i64,
        name: Cow<'static, str>,
        args: impl Iterator<Item = &'a [u8]> + Clone,
        argc: usize,
        batch: Option<(usize, bool)>,
    ) -> Event {
        let Some(m) = self.shared.monitor().filter(|m| m.is_enabled()) else {
            return Event::inert();
        };
        let parent = rustmon_core::context::current();
        let mut ev = match &self.shared.monitor {
            Some(m) => m.start_event_with_parent(Kind::Cache, name.clone(), parent),
            None => Event::start_with_parent(Kind::Cache, name.clone(), parent),
        }
        .with_plugin(PLUGIN);
        if !ev.is_recording() {
            return ev;
        }
        let cfg = self
            .shared
            .config
            .get_or_init(|| m.config::<RedisConfig>())
            .get();
        ev.set("db.system.name", "redis");
        ev.set("db.operation.name", name.clone());
        ev.set("db.namespace", db_name(db));
        if let Some(a) = &self.shared.address {
            ev.set("server.address", a.clone());
        }
        if let Some(p) = self.shared.port {
            ev.set("server.port", i64::from(p));
        }
        match batch {
            Some((size, atomic)) => {
                ev.set("db.operation.batch.size", size as u64);
                if atomic {
                    ev.set("db.redis.transaction", true);
                }
            }
            None => {
                ev.set("db.redis.argument_count", argc as u64);
                if cfg.record_keys || cfg.record_values {
                    ev.set(
                        "db.query.text",
                        query_text(&name, args, cfg.record_values, cfg.query_len),
                    );
                }
            }
        }
        ev
    }

    fn start_cmd(&self, db: i64, cmd: &Cmd) -> Event {
        let mut args = cmd.args_iter().filter_map(|a| match a {
            redis::Arg::Simple(b) => Some(b),
            redis::Arg::Cursor => None,
        });
        let name = args.next().map_or(Cow::Borrowed("UNKNOWN"), command_name);
        let argc = cmd.args_iter().len().saturating_sub(1);
        self.start(db, name, args, argc, None)
    }

    fn start_pipeline(&self, db: i64, size: usize, atomic: bool) -> Event {
        self.start(
            db,
            Cow::Borrowed("PIPELINE"),
            std::iter::empty(),
            0,
            Some((size, atomic)),
        )
    }
}

fn db_name(db: i64) -> Cow<'static, str> {
    const NAMES: [&str; 16] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
    ];
    match usize::try_from(db).ok().and_then(|i| NAMES.get(i)) {
        Some(n) => Cow::Borrowed(n),
        None => Cow::Owned(db.to_string()),
    }
}

fn query_text<'a>(
    name: &str,
    args: impl Iterator<Item = &'a [u8]>,
    values: bool,
    max: usize,
) -> String {
    let mut s = String::with_capacity(64.min(max + 8));
    s.push_str(name);
    for (i, a) in args.enumerate() {
        if s.len() >= max {
            break;
        }
        s.push(' ');
        if values || i == 0 {
            s.push_str(&String::from_utf8_lossy(a));
        } else {
            s.push('?');
        }
    }
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Common commands, so that the name needs no allocation whatever its case.
const COMMANDS: &[&str] = &[
    "GET",
    "SET",
    "DEL",
    "UNLINK",
    "EXISTS",
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "TTL",
    "PTTL",
    "PERSIST",
    "INCR",
    "INCRBY",
    "INCRBYFLOAT",
    "DECR",
    "DECRBY",
    "MGET",
    "MSET",
    "MSETNX",
    "SETNX",
    "SETEX",
    "PSETEX",
    "GETSET",
    "GETDEL",
    "GETEX",
    "APPEND",
    "STRLEN",
    "GETRANGE",
    "SETRANGE",
    "HGET",
    "HSET",
    "HSETNX",
    "HMGET",
    "HMSET",
    "HDEL",
    "HGETALL",
    "HKEYS",
    "HVALS",
    "HLEN",
    "HEXISTS",
    "HINCRBY",
    "HINCRBYFLOAT",
    "HSCAN",
    "LPUSH",
    "RPUSH",
    "LPOP",
    "RPOP",
    "LLEN",
    "LRANGE",
    "LINDEX",
    "LSET",
    "LREM",
    "LTRIM",
    "BLPOP",
    "BRPOP",
    "LMOVE",
    "BLMOVE",
    "SADD",
    "SREM",
    "SMEMBERS",
    "SISMEMBER",
    "SMISMEMBER",
    "SCARD",
    "SPOP",
    "SRANDMEMBER",
    "SINTER",
    "SUNION",
    "SDIFF",
    "SSCAN",
    "ZADD",
    "ZREM",
    "ZRANGE",
    "ZRANGEBYSCORE",
    "ZREVRANGE",
    "ZREVRANGEBYSCORE",
    "ZSCORE",
    "ZINCRBY",
    "ZCARD",
    "ZCOUNT",
    "ZRANK",
    "ZREVRANK",
    "ZSCAN",
    "ZPOPMIN",
    "ZPOPMAX",
    "XADD",
    "XREAD",
    "XREADGROUP",
    "XACK",
    "XLEN",
    "XRANGE",
    "XDEL",
    "XTRIM",
    "XGROUP",
    "PUBLISH",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "UNSUBSCRIBE",
    "SCAN",
    "KEYS",
    "TYPE",
    "RENAME",
    "PING",
    "ECHO",
    "SELECT",
    "AUTH",
    "HELLO",
    "INFO",
    "CLIENT",
    "CONFIG",
    "FLUSHDB",
    "FLUSHALL",
    "DBSIZE",
    "EVAL",
    "EVALSHA",
    "SCRIPT",
    "FUNCTION",
    "FCALL",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "PFADD",
    "PFCOUNT",
    "GEOADD",
    "GEOSEARCH",
    "BITCOUNT",
    "SETBIT",
    "GETBIT",
    "OBJECT",
    "MEMORY",
    "WAIT",
    "TIME",
    "COPY",
    "DUMP",
    "RESTORE",
    "SORT",
    "TOUCH",
];

fn command_name(raw: &[u8]) -> Cow<'static, str> {
    if let Some(c) = COMMANDS
        .iter()
        .find(|c| c.as_bytes().eq_ignore_ascii_case(raw))
    {
        return Cow::Borrowed(c);
    }
    let s = String::from_utf8_lossy(raw).to_ascii_uppercase();
    Cow::Owned(s.chars().take(32).collect())
}

fn record(ev: &mut Event, code: Option<&str>, category: &str, message: &dyn fmt::Display) {
    let kind: Cow<'static, str> = match code {
        Some(code) => Cow::Owned(code.to_owned()),
        None => Cow::Owned(category.to_owned()),
    };
    ev.set("error.type", kind.clone());
    if code.is_some() {
        ev.set("db.response.status_code", kind.clone());
    }
    ev.record_error(kind, message);
}

/// Finishes a command's event: a transport error, or a server error in the reply (the redis
/// crate hands those over as values and turns them into errors later).
fn finish(mut ev: Event, result: &redis::RedisResult<Value>) {
    if ev.is_recording() {
        match result {
            Err(e) => record(&mut ev, e.code(), e.category(), e),
            Ok(Value::ServerError(e)) => {
                let e = RedisError::from(e.clone());
                record(&mut ev, e.code(), e.category(), &e);
            }
            Ok(_) => {}
        }
    }
    ev.finish();
}

/// Finishes a pipeline's event: its first failing command decides the error.
fn finish_many(mut ev: Event, result: &redis::RedisResult<Vec<Value>>) {
    if ev.is_recording() {
        match result {
            Err(e) => record(&mut ev, e.code(), e.category(), e),
            Ok(values) => {
                if let Some(Value::ServerError(e)) =
                    values.iter().find(|v| matches!(v, Value::ServerError(_)))
                {
                    let e = RedisError::from(e.clone());
                    record(&mut ev, e.code(), e.category(), &e);
                }
            }
        }
    }
    ev.finish();
}

/// The commands in a RESP-packed buffer, as the sync API hands them over.
struct Packed<'a> {
    rest: &'a [u8],
}

/// One packed command: its argument count and the buffer from its first argument on.
#[derive(Clone)]
struct PackedArgs<'a> {
    rest: &'a [u8],
    left: usize,
}

fn read_line(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    Some((&buf[..end], &buf[end + 2..]))
}

fn parse_num(b: &[u8]) -> Option<usize> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

impl<'a> Iterator for PackedArgs<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        let (head, rest) = read_line(self.rest)?;
        let len = parse_num(head.strip_prefix(b"$")?)?;
        let arg = rest.get(..len)?;
        self.rest = rest.get(len + 2..)?;
        self.left -= 1;
        Some(arg)
    }
}

impl<'a> Iterator for Packed<'a> {
    type Item = PackedArgs<'a>;
    fn next(&mut self) -> Option<PackedArgs<'a>> {
        let (head, rest) = read_line(self.rest)?;
        let n = parse_num(head.strip_prefix(b"*")?)?;
        let args = PackedArgs { rest, left: n };
        let mut skip = args.clone();
        for _ in 0..n {
            skip.next()?;
        }
        self.rest = skip.rest;
        Some(args)
    }
}

impl<C: redis::ConnectionLike> redis::ConnectionLike for Monitored<C> {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<Value> {
        let ev = match (Packed { rest: cmd }).next() {
            Some(mut args) => {
                let argc = args.left.saturating_sub(1);
                let name = args.next().map_or(Cow::Borrowed("UNKNOWN"), command_name);
                self.start(self.inner.get_db(), name, args, argc, None)
            }
            None => self.start(
                self.inner.get_db(),
                Cow::Borrowed("UNKNOWN"),
                std::iter::empty(),
                0,
                None,
            ),
        };
        let r = self.inner.req_packed_command(cmd);
        finish(ev, &r);
        r
    }

    fn req_command(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        let ev = self.start_cmd(self.inner.get_db(), cmd);
        let r = self.inner.req_command(cmd);
        finish(ev, &r);
        r
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<Value>> {
        let mut cmds = Packed { rest: cmd };
        let first_multi = cmds
            .next()
            .and_then(|mut a| a.next())
            .is_some_and(|n| n.eq_ignore_ascii_case(b"MULTI"));
        let total = 1 + cmds.count();
        let (size, atomic) = if first_multi && total >= 2 {
            (total - 2, true)
        } else {
            (total, false)
        };
        let _ = (offset, count);
        let ev = self.start_pipeline(self.inner.get_db(), size, atomic);
        let r = self.inner.req_packed_commands(cmd, offset, count);
        finish_many(ev, &r);
        r
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }

    fn supports_pipelining(&self) -> bool {
        self.inner.supports_pipelining()
    }

    fn check_connection(&mut self) -> bool {
        self.inner.check_connection()
    }

    fn is_open(&self) -> bool {
        self.inner.is_open()
    }
}

impl<C: redis::aio::ConnectionLike + Send> redis::aio::ConnectionLike for Monitored<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let ev = self.start_cmd(self.inner.get_db(), cmd);
        let fut = self.inner.req_packed_command(cmd);
        Box::pin(async move {
            let r = fut.await;
            finish(ev, &r);
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let ev = self.start_pipeline(self.inner.get_db(), cmd.len(), cmd.is_transaction());
        let fut = self.inner.req_packed_commands(cmd, offset, count);
        Box::pin(async move {
            let r = fut.await;
            finish_many(ev, &r);
            r
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_commands_are_parsed() {
        let buf = b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n";
        let cmds: Vec<Vec<&[u8]>> = Packed { rest: buf }.map(|a| a.collect()).collect();
        assert_eq!(
            cmds,
            vec![
                vec![&b"GET"[..], &b"hello"[..]],
                vec![&b"SET"[..], &b"k"[..], &b"v1"[..]]
            ]
        );
        assert_eq!(Packed { rest: b"garbage" }.count(), 0);
    }

    #[test]
    fn query_text_hides_values_unless_asked() {
        let args = [&b"user:1"[..], &b"secret"[..]];
        assert_eq!(
            query_text("SET", args.iter().copied(), false, 100),
            "SET user:1 ?"
        );
        assert_eq!(
            query_text("SET", args.iter().copied(), true, 100),
            "SET user:1 secret"
        );
        assert_eq!(query_text("SET", args.iter().copied(), true, 5), "SET u");
    }

    #[test]
    fn names_are_upper_case() {
        assert_eq!(command_name(b"get"), "GET");
        assert_eq!(command_name(b"json.get"), "JSON.GET");
        assert!(matches!(command_name(b"hset"), Cow::Borrowed(_)));
    }
}
