//! Per-statement overhead of rustmon's database integrations against the bare driver, in one
//! run: `SELECT 1` on PostgreSQL (tokio-postgres, sqlx) and SQLite (rusqlite, sqlx), `GET` on
//! Redis. Every monitored statement is recorded by a real monitor (pipeline thread, listener
//! that drops the batches). Services that are not reachable are skipped with a line.
//!
//! Target: at most 1 µs or 3% added per statement, whichever is larger.
//!
//! RESULTS on a quiet machine — 2026-11-28 20:50 UTC, same 2 vCPU machine, load average 0.3
//! before (no builds running), criterion medians [95% CI]:
//!
//! | statement | bare | monitored | added | ratio |
//! |---|---|---|---|---|
//! | SQLite `SELECT 1`, rusqlite `prepare_cached` + `query_row` | 0.293 µs [0.275, 0.309] | 0.908 µs [0.842, 0.975] | **+0.62 µs** | 3.1 |
//! | SQLite `SELECT 1`, diesel `sql_query` | 1.475 µs [1.388, 1.564] | 2.473 µs [2.369, 2.587] | **+1.00 µs** | 1.68 |
//! | SQLite `SELECT 1`, sqlx pool | 343.8 µs | 307.4 µs | (noise) | 0.89 |
//! | PostgreSQL `SELECT 1`, tokio-postgres | 306.4 µs | 369.0 µs | (noise, see below) | 1.20 |
//! | PostgreSQL `SELECT 1`, sqlx pool | 552.1 µs | 519.0 µs | (noise) | 0.94 |
//! | PostgreSQL `SELECT 1`, diesel | 221.2 µs | 221.2 µs | 0 | 1.00 |
//! | Redis `GET`, multiplexed async | 273.9 µs | 349.8 µs | (noise, see below) | 1.28 |
//!
//! Target (≤ 1 µs or ≤ 3 % per statement): met for rusqlite (+0.62 µs) and, just, for diesel on
//! SQLite (+1.00 µs). The network rows cannot show a microsecond: a rerun of the tokio-postgres
//! and Redis pairs a minute later gave 1104 / 1029 µs and 317 / 202 µs (bare / monitored), the
//! loopback round trip itself moving 3× between runs, in both directions.
//!
//! Earlier, 2026-11-28, 2 vCPU AMD EPYC shared with other engineers' builds (load average 13
//! before and 14 after the run: every figure is inflated and the network ones are noise-bound),
//! `cargo bench -p rustmon-db-bench --bench overhead`, criterion medians [95% CI]:
//!
//! | statement | bare | monitored | added | ratio |
//! |---|---|---|---|---|
//! | PostgreSQL `SELECT 1`, tokio-postgres | 122.1 µs [116.1, 139.2] | 122.4 µs [114.9, 128.8] | +0.3 µs | 1.00 |
//! | PostgreSQL `SELECT 1`, sqlx pool | 170.7 µs [133.8, 209.7] | 222.9 µs [194.3, 246.5] | (noise: CIs overlap) | 1.31 |
//! | PostgreSQL `SELECT 1`, diesel | 84.8 µs [77.5, 91.1] | 89.2 µs [80.5, 97.8] | +4.4 µs (CIs overlap) | 1.05 |
//! | SQLite `SELECT 1`, rusqlite `prepare_cached` + `query_row` | 0.370 µs [0.343, 0.408] | 1.956 µs [1.755, 2.081] | **+1.59 µs** | 5.3 |
//! | SQLite `SELECT 1`, diesel `sql_query` | 2.839 µs [2.748, 3.068] | 4.503 µs [4.064, 4.749] | **+1.66 µs** | 1.59 |
//! | SQLite `SELECT 1`, sqlx pool | 62.7 µs [56.2, 69.2] | 51.8 µs [34.1, 73.7] | (noise) | 0.83 |
//! | Redis `GET`, multiplexed async | 123.9 µs [114.9, 131.2] | 53.5 µs [50.2, 58.9] | (noise) | 0.43 |
//!
//! Reading: the in-process SQLite rows are the only ones precise enough to show the added cost:
//! about 1.6 µs per statement on this loaded machine, above the 1 µs target (the bare statement
//! is too cheap for 3% to help). The hot path alone (`instrument_statement_event` in
//! `rustmon-sql`'s bench: cached fingerprint, 8 attributes, enqueue) measured 0.60 µs in the same
//! minutes; the rest is the monitor's pipeline thread processing each event on the same 2
//! loaded cores, plus the wrapper's statement-text copy. The network rows need a quiet machine:
//! their differences are inside the noise, both ways.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use diesel::{Connection, RunQueryDsl};
use rustmon_core::{Monitor, listener_fn};

fn up(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let ok = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok();
    if !ok {
        println!("skipped: nothing listens on 127.0.0.1:{port}");
    }
    ok
}

fn monitor() -> Monitor {
    Monitor::builder("db-bench")
        .listener(listener_fn(|b| {
            black_box(b.len());
        }))
        .build()
        .expect("monitor")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn postgres(c: &mut Criterion, monitor: &Monitor) {
    if !up(5432) {
        return;
    }
    const URL: &str = "postgres://postgres@127.0.0.1:5432/test";
    let rt = rt();
    let mut g = c.benchmark_group("postgres_select_1");
    // tokio-postgres
    let (client, conn) = rt
        .block_on(tokio_postgres::connect(URL, tokio_postgres::NoTls))
        .expect("connect");
    rt.spawn(conn);
    g.bench_function("tokio_postgres_bare", |b| {
        b.iter(|| {
            rt.block_on(client.query_one("SELECT 1", &[]))
                .expect("query")
        })
    });
    let (client2, conn2) = rt
        .block_on(tokio_postgres::connect(URL, tokio_postgres::NoTls))
        .expect("connect");
    rt.spawn(conn2);
    let monitored = rustmon_postgres::MonitoredClient::new(client2)
        .monitor(monitor.clone())
        .url(URL);
    g.bench_function("tokio_postgres_monitored", |b| {
        b.iter(|| {
            rt.block_on(monitored.query_one("SELECT 1", &[]))
                .expect("query")
        })
    });
    // sqlx
    let pool = rt
        .block_on(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(URL),
        )
        .expect("pool");
    g.bench_function("sqlx_bare", |b| {
        b.iter(|| {
            rt.block_on(sqlx::query("SELECT 1").fetch_one(&pool))
                .expect("query")
        })
    });
    let mpool = rustmon_sqlx::MonitoredPool::new(pool.clone()).monitor(monitor.clone());
    g.bench_function("sqlx_monitored", |b| {
        b.iter(|| {
            rt.block_on(sqlx::query("SELECT 1").fetch_one(&mpool))
                .expect("query")
        })
    });
    // diesel
    let mut bare = diesel::PgConnection::establish(URL).expect("connect");
    g.bench_function("diesel_bare", |b| {
        b.iter(|| {
            diesel::sql_query("SELECT 1")
                .execute(&mut bare)
                .expect("query")
        })
    });
    let mut mon = diesel::PgConnection::establish(URL).expect("connect");
    mon.set_instrumentation(
        rustmon_diesel::DieselInstrumentation::with_monitor(monitor.clone()).url(URL),
    );
    g.bench_function("diesel_monitored", |b| {
        b.iter(|| {
            diesel::sql_query("SELECT 1")
                .execute(&mut mon)
                .expect("query")
        })
    });
    g.finish();
}

fn sqlite(c: &mut Criterion, monitor: &Monitor) {
    let mut g = c.benchmark_group("sqlite_select_1");
    let bare = rusqlite::Connection::open_in_memory().expect("open");
    g.bench_function("rusqlite_bare", |b| {
        b.iter(|| {
            let mut st = bare.prepare_cached("SELECT 1").expect("prepare");
            st.query_row([], |r| r.get::<_, i64>(0)).expect("row")
        })
    });
    let mon = rustmon_rusqlite::MonitoredConnection::open_in_memory()
        .expect("open")
        .monitor(monitor.clone());
    g.bench_function("rusqlite_monitored", |b| {
        b.iter(|| {
            let mut st = mon.prepare_cached("SELECT 1").expect("prepare");
            st.query_row([], |r| r.get::<_, i64>(0)).expect("row")
        })
    });
    let mut dbare = diesel::SqliteConnection::establish(":memory:").expect("open");
    g.bench_function("diesel_bare", |b| {
        b.iter(|| {
            diesel::sql_query("SELECT 1")
                .execute(&mut dbare)
                .expect("query")
        })
    });
    let mut dmon = diesel::SqliteConnection::establish(":memory:").expect("open");
    dmon.set_instrumentation(
        rustmon_diesel::DieselInstrumentation::with_monitor(monitor.clone()).url(":memory:"),
    );
    g.bench_function("diesel_monitored", |b| {
        b.iter(|| {
            diesel::sql_query("SELECT 1")
                .execute(&mut dmon)
                .expect("query")
        })
    });
    let rt = rt();
    let pool = rt
        .block_on(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect("sqlite::memory:"),
        )
        .expect("pool");
    g.bench_function("sqlx_bare", |b| {
        b.iter(|| {
            rt.block_on(sqlx::query("SELECT 1").fetch_one(&pool))
                .expect("query")
        })
    });
    let mpool = rustmon_sqlx::MonitoredPool::new(pool.clone()).monitor(monitor.clone());
    g.bench_function("sqlx_monitored", |b| {
        b.iter(|| {
            rt.block_on(sqlx::query("SELECT 1").fetch_one(&mpool))
                .expect("query")
        })
    });
    g.finish();
}

fn redis_get(c: &mut Criterion, monitor: &Monitor) {
    if !up(6379) {
        return;
    }
    let rt = rt();
    let client = redis::Client::open("redis://127.0.0.1:6379/").expect("client");
    let mut conn = rt
        .block_on(client.get_multiplexed_async_connection())
        .expect("connect");
    let key = format!("rm_bench:{}:k", std::process::id());
    let _: () = rt
        .block_on(redis::cmd("SET").arg(&key).arg("v").query_async(&mut conn))
        .expect("set");
    let mut g = c.benchmark_group("redis_get");
    g.bench_function("bare", |b| {
        b.iter(|| {
            let v: String = rt
                .block_on(redis::cmd("GET").arg(&key).query_async(&mut conn))
                .expect("get");
            v
        })
    });
    let mut mconn = rustmon_redis::Monitored::new(conn.clone())
        .monitor(monitor.clone())
        .connection_info(client.get_connection_info());
    g.bench_function("monitored", |b| {
        b.iter(|| {
            let v: String = rt
                .block_on(redis::cmd("GET").arg(&key).query_async(&mut mconn))
                .expect("get");
            v
        })
    });
    g.finish();
    let _: () = rt
        .block_on(redis::cmd("DEL").arg(&key).query_async(&mut conn))
        .expect("del");
}

fn bench(c: &mut Criterion) {
    let monitor = monitor();
    postgres(c, &monitor);
    sqlite(c, &monitor);
    redis_get(c, &monitor);
    monitor.shutdown(Duration::from_secs(5));
}

criterion_group!(benches, bench);
criterion_main!(benches);
