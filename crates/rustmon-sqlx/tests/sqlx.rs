//! sqlx against real PostgreSQL, MariaDB and an SQLite file: statements on a pool, a connection
//! and in transactions, with attributes, rows, errors, parents, N+1 flags and live config.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustmon_core::context::FutureExt;
use rustmon_core::{EventRecord, Kind, Monitor, Status};
use rustmon_sqlx::{MonitoredConnection, MonitoredPool};
use rustmon_test::Capture;
use sqlx::{MySql, Postgres, Sqlite};

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const MY_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// Whether a service is reachable; with `RUSTMON_REQUIRE_SERVICES=1` an unreachable one fails.
fn up(port: u16, what: &str) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
        return true;
    }
    if std::env::var("RUSTMON_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{what} is not reachable on 127.0.0.1:{port}");
    }
    println!("skipped: {what} is not reachable on 127.0.0.1:{port}");
    false
}

/// A table name no other test (or run) uses.
fn table(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "rm_sqlx_{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn monitor() -> (Capture, Monitor) {
    let capture = Capture::new();
    let monitor = Monitor::builder("sqlx-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    (capture, monitor)
}

async fn pg_pool(monitor: &Monitor) -> MonitoredPool<Postgres> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(3)
        .connect(PG_URL)
        .await
        .expect("connect to PostgreSQL");
    MonitoredPool::new(pool).monitor(monitor.clone())
}

async fn my_pool(monitor: &Monitor) -> MonitoredPool<MySql> {
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(3)
        .connect(MY_URL)
        .await
        .expect("connect to MariaDB");
    MonitoredPool::new(pool)
        .monitor(monitor.clone())
        .system_name("mariadb")
}

fn flush(monitor: &Monitor) {
    assert!(monitor.flush(Duration::from_secs(5)));
}

fn parent_of(capture: &Capture, name: &str) -> EventRecord {
    capture.expect(name).kind(Kind::Server).one()
}

#[tokio::test]
async fn postgres_pool_statements_rows_and_parent() {
    if !up(5432, "PostgreSQL") {
        return;
    }
    let (capture, monitor) = monitor();
    let pool = pg_pool(&monitor).await;
    let t = table("pg_rows");
    sqlx::query(&format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, name text NOT NULL)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let parent = monitor.start_event(Kind::Server, "GET /pg");
    async {
        let done = sqlx::query(&format!(
            "INSERT INTO {t} (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')"
        ))
        .execute(&pool)
        .await
        .unwrap();
        assert_eq!(done.rows_affected(), 3);
        let rows: Vec<(i32, String)> = sqlx::query_as(&format!(
            "SELECT id, name FROM {t} WHERE id > $1 ORDER BY id"
        ))
        .bind(0_i32)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), 3);
        let one: (String,) = sqlx::query_as(&format!("SELECT name FROM {t} WHERE id = $1"))
            .bind(2_i32)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(one.0, "b");
    }
    .with_context(parent.context())
    .await;
    parent.finish();
    sqlx::query(&format!("DROP TABLE {t}"))
        .execute(&pool)
        .await
        .unwrap();
    flush(&monitor);

    let parent = parent_of(&capture, "GET /pg");
    capture
        .expect(&format!("INSERT INTO {t} (id, name) VALUES (?)"))
        .kind(Kind::Database)
        .child_of(&parent)
        .attr("db.system.name", "postgresql")
        .attr("db.namespace", "test")
        .attr("server.address", "127.0.0.1")
        .attr("server.port", 5432_i64)
        .attr("db.operation.name", "INSERT")
        .attr("db.collection.name", t.clone())
        .attr("db.response.affected_rows", 3_i64)
        .has_attr("db.client.connection.wait_time")
        .one();
    let select = capture
        .expect(&format!(
            "SELECT id, name FROM {t} WHERE id > ? ORDER BY id"
        ))
        .child_of(&parent)
        .attr("db.operation.name", "SELECT")
        .attr("db.response.returned_rows", 3_i64)
        .attr(
            "db.query.text",
            format!("SELECT id, name FROM {t} WHERE id > ? ORDER BY id"),
        )
        .one();
    assert_eq!(select.plugin, "sqlx");
    assert_eq!(select.status, Status::Unset);
    capture
        .expect(&format!("SELECT name FROM {t} WHERE id = ?"))
        .child_of(&parent)
        .attr("db.response.returned_rows", 1_i64)
        .one();
    // Statements outside the parent are roots.
    capture
        .expect(&format!("DROP TABLE {t}"))
        .root()
        .attr("db.operation.name", "DROP")
        .one();
}

#[tokio::test]
async fn postgres_error_has_sqlstate() {
    if !up(5432, "PostgreSQL") {
        return;
    }
    let (capture, monitor) = monitor();
    let pool = pg_pool(&monitor).await;
    let missing = table("pg_missing");
    let err = sqlx::query(&format!("SELECT * FROM {missing}"))
        .fetch_all(&pool)
        .await
        .unwrap_err();
    assert!(err.as_database_error().is_some());
    let err = sqlx::query(&format!("SELECT * FROM {missing} WHERE id = 1"))
        .fetch_optional(&pool)
        .await
        .unwrap_err();
    assert!(err.as_database_error().is_some());
    flush(&monitor);
    let e = capture
        .expect(&format!("SELECT * FROM {missing}"))
        .status(Status::Error)
        .attr("db.response.status_code", "42P01")
        .attr("error.type", "42P01")
        .one();
    assert!(
        e.errors[0].message.contains("does not exist"),
        "{:?}",
        e.errors
    );
    capture
        .expect(&format!("SELECT * FROM {missing} WHERE id = ?"))
        .status(Status::Error)
        .attr("db.response.status_code", "42P01")
        .one();
}

#[tokio::test]
async fn postgres_transactions_have_children() {
    if !up(5432, "PostgreSQL") {
        return;
    }
    let (capture, monitor) = monitor();
    let pool = pg_pool(&monitor).await;
    let t = table("pg_tx");
    sqlx::query(&format!("CREATE TABLE {t} (id int)"))
        .execute(&pool)
        .await
        .unwrap();
    let parent = monitor.start_event(Kind::Server, "POST /tx");
    async {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(&format!("INSERT INTO {t} VALUES ($1)"))
            .bind(1_i32)
            .execute(&mut tx)
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {t}"))
            .fetch_one(&mut tx)
            .await
            .unwrap();
        assert_eq!(n, 1);
        tx.commit().await.unwrap();

        let mut tx = pool.begin().await.unwrap();
        sqlx::query(&format!("DELETE FROM {t}"))
            .execute(&mut tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
    }
    .with_context(parent.context())
    .await;
    parent.finish();
    let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {t}"))
        .fetch_one(pool.pool())
        .await
        .unwrap();
    assert_eq!(n, 1, "the rollback kept the row");
    sqlx::query(&format!("DROP TABLE {t}"))
        .execute(pool.pool())
        .await
        .unwrap();
    flush(&monitor);

    let parent = parent_of(&capture, "POST /tx");
    let txs = capture
        .expect("TRANSACTION")
        .kind(Kind::Database)
        .child_of(&parent)
        .count(2);
    let commit_tx = txs
        .iter()
        .find(|e| {
            e.attribute("db.transaction.outcome")
                .and_then(|v| v.as_str())
                == Some("commit")
        })
        .expect("a committed transaction");
    let rollback_tx = txs
        .iter()
        .find(|e| {
            e.attribute("db.transaction.outcome")
                .and_then(|v| v.as_str())
                == Some("rollback")
        })
        .expect("a rolled-back transaction");
    capture.expect("BEGIN").child_of(commit_tx).one();
    capture
        .expect(&format!("INSERT INTO {t} VALUES (?)"))
        .child_of(commit_tx)
        .attr("db.response.affected_rows", 1_i64)
        .one();
    capture
        .expect(&format!("SELECT count(*) FROM {t}"))
        .child_of(commit_tx)
        .one();
    capture.expect("COMMIT").child_of(commit_tx).one();
    capture.expect("BEGIN").child_of(rollback_tx).one();
    capture
        .expect(&format!("DELETE FROM {t}"))
        .child_of(rollback_tx)
        .one();
    capture.expect("ROLLBACK").child_of(rollback_tx).one();
}

#[tokio::test]
async fn postgres_connections_standalone_and_pooled() {
    if !up(5432, "PostgreSQL") {
        return;
    }
    let (capture, monitor) = monitor();
    let pool = pg_pool(&monitor).await;
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SELECT 1 AS pooled")
        .execute(&mut conn)
        .await
        .unwrap();
    {
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("SELECT 2 AS in_conn_tx")
            .fetch_all(&mut tx)
            .await
            .unwrap();
        // Dropped: sqlx rolls back.
    }
    drop(conn);
    let mut solo = MonitoredConnection::<Postgres, _>::connect(PG_URL, Some(monitor.clone()))
        .await
        .unwrap();
    let v: i32 = sqlx::query_scalar("SELECT 3 AS solo")
        .fetch_one(&mut solo)
        .await
        .unwrap();
    assert_eq!(v, 3);
    flush(&monitor);
    capture
        .expect("SELECT ? AS pooled")
        .attr("db.system.name", "postgresql")
        .one();
    let tx = capture
        .expect("TRANSACTION")
        .attr("db.transaction.outcome", "dropped")
        .one();
    capture.expect("SELECT ? AS in_conn_tx").child_of(&tx).one();
    capture
        .expect("SELECT ? AS solo")
        .attr("db.namespace", "test")
        .attr("server.port", 5432_i64)
        .attr("db.response.returned_rows", 1_i64)
        .one();
}

#[tokio::test]
async fn postgres_n_plus_one_and_live_config() {
    if !up(5432, "PostgreSQL") {
        return;
    }
    let (capture, monitor) = monitor();
    let pool = pg_pool(&monitor).await;
    let parent = monitor.start_event(Kind::Server, "GET /n1");
    async {
        for i in 0..6_i32 {
            sqlx::query("SELECT $1::int AS n_plus_one_probe")
                .bind(i)
                .fetch_all(&pool)
                .await
                .unwrap();
        }
    }
    .with_context(parent.context())
    .await;
    parent.finish();
    monitor
        .update_config("db", &serde_json::json!({ "query_len": 9 }))
        .unwrap();
    sqlx::query("SELECT 42 AS after_config")
        .execute(&pool)
        .await
        .unwrap();
    flush(&monitor);
    let parent = parent_of(&capture, "GET /n1");
    let flagged = capture
        .expect("SELECT ?::int AS n_plus_one_probe")
        .child_of(&parent)
        .attr("db.n_plus_one", true)
        .count(2);
    assert_eq!(
        flagged[1]
            .attribute("db.n_plus_one.count")
            .and_then(|v| v.as_i64()),
        Some(6)
    );
    capture
        .expect("SELECT ?::int AS n_plus_one_probe")
        .no_attr("db.n_plus_one")
        .count(4);
    capture
        .expect("SELECT ? AS after_config")
        .attr("db.query.text", "SELECT ? ")
        .one();
}

#[tokio::test]
async fn postgres_pool_gauges() {
    if !up(5432, "PostgreSQL") {
        return;
    }
    let (capture, monitor) = monitor();
    let pool = pg_pool(&monitor).await;
    sqlx::query("SELECT 1").execute(&pool).await.unwrap();
    pool.record_pool_metrics();
    flush(&monitor);
    let counts = capture.wait_for_metric("db.client.connection.count");
    assert!(counts.iter().any(|m| {
        m.attributes
            .iter()
            .any(|kv| kv.key == "db.client.connection.state" && kv.value.as_str() == Some("idle"))
    }));
    let max = capture.wait_for_metric("db.client.connection.max");
    assert!(max.iter().any(|m| matches!(
        m.data,
        rustmon_core::metrics::MetricData::Gauge(rustmon_core::metrics::Number::I64(3))
    )));
}

#[tokio::test]
async fn mariadb_statements_errors_and_transactions() {
    if !up(3306, "MariaDB") {
        return;
    }
    let (capture, monitor) = monitor();
    let pool = my_pool(&monitor).await;
    let t = table("my");
    sqlx::query(&format!(
        "CREATE TABLE `{t}` (id int PRIMARY KEY, name varchar(20))"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let parent = monitor.start_event(Kind::Server, "GET /my");
    async {
        sqlx::query(&format!(
            "INSERT INTO `{t}` (id, name) VALUES (?, ?), (?, \"two\")"
        ))
        .bind(1)
        .bind("one")
        .bind(2)
        .execute(&pool)
        .await
        .unwrap();
        let rows = sqlx::query(&format!("SELECT * FROM `{t}` WHERE name <> 'x'"))
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        let mut tx = pool.begin().await.unwrap();
        sqlx::query(&format!("UPDATE `{t}` SET name = 'z' WHERE id = 1"))
            .execute(&mut tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        sqlx::query(&format!("SELECT * FROM `{t}_missing`"))
            .fetch_all(&pool)
            .await
            .unwrap_err();
    }
    .with_context(parent.context())
    .await;
    parent.finish();
    sqlx::query(&format!("DROP TABLE `{t}`"))
        .execute(&pool)
        .await
        .unwrap();
    flush(&monitor);
    let parent = parent_of(&capture, "GET /my");
    capture
        .expect(&format!("INSERT INTO `{t}` (id, name) VALUES (?)"))
        .child_of(&parent)
        .attr("db.system.name", "mariadb")
        .attr("db.namespace", "test")
        .attr("server.port", 3306_i64)
        .attr("db.collection.name", t.clone())
        .attr("db.response.affected_rows", 2_i64)
        .one();
    capture
        .expect(&format!("SELECT * FROM `{t}` WHERE name <> ?"))
        .child_of(&parent)
        .attr("db.response.returned_rows", 2_i64)
        .one();
    let tx = capture.expect("TRANSACTION").child_of(&parent).one();
    capture
        .expect(&format!("UPDATE `{t}` SET name = ? WHERE id = ?"))
        .child_of(&tx)
        .attr("db.response.affected_rows", 1_i64)
        .one();
    capture.expect("COMMIT").child_of(&tx).one();
    capture
        .expect(&format!("SELECT * FROM `{t}_missing`"))
        .status(Status::Error)
        .attr("db.response.status_code", "1146")
        .one();
}

#[tokio::test]
async fn sqlite_file_statements_errors_and_transactions() {
    let (capture, monitor) = monitor();
    let dir = std::env::temp_dir().join(table("sqlite_dir"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("app.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let pool = MonitoredPool::<Sqlite>::new(pool).monitor(monitor.clone());
    let parent = monitor.start_event(Kind::Server, "GET /lite");
    async {
        sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO items (name) VALUES (?1), (?2)")
            .bind("a")
            .bind("b")
            .execute(&mut tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let rows = sqlx::query("SELECT * FROM [items] WHERE name = 'a'")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert!(
            sqlx::query("SELECT * FROM nothing_here")
                .fetch_all(&pool)
                .await
                .is_err()
        );
        sqlx::query("INSERT INTO items (id) VALUES (1)")
            .execute(&pool)
            .await
            .unwrap_err();
    }
    .with_context(parent.context())
    .await;
    parent.finish();
    pool.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
    flush(&monitor);
    let parent = parent_of(&capture, "GET /lite");
    let tx = capture.expect("TRANSACTION").child_of(&parent).one();
    capture
        .expect("INSERT INTO items (name) VALUES (?)")
        .child_of(&tx)
        .attr("db.system.name", "sqlite")
        .attr("db.collection.name", "items")
        .attr("db.response.affected_rows", 2_i64)
        .one();
    let sel = capture
        .expect("SELECT * FROM [items] WHERE name = ?")
        .child_of(&parent)
        .attr("db.response.returned_rows", 1_i64)
        .attr("db.collection.name", "items")
        .one();
    let ns = sel
        .attribute("db.namespace")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    assert!(ns.ends_with("app.db"), "{ns}");
    capture
        .expect("SELECT * FROM nothing_here")
        .status(Status::Error)
        .attr("db.response.status_code", "1")
        .one();
    // SQLITE_CONSTRAINT_PRIMARYKEY
    capture
        .expect("INSERT INTO items (id) VALUES (?)")
        .status(Status::Error)
        .attr("db.response.status_code", "1555")
        .one();
}

#[tokio::test]
async fn sqlite_in_memory_pool() {
    let (capture, monitor) = monitor();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let pool = MonitoredPool::<Sqlite>::new(pool).monitor(monitor.clone());
    let v: i64 = sqlx::query_scalar("SELECT 40 + 2 AS in_memory")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(v, 42);
    flush(&monitor);
    capture
        .expect("SELECT ? + ? AS in_memory")
        .attr("db.system.name", "sqlite")
        .has_attr("db.namespace")
        .attr("db.response.returned_rows", 1_i64)
        .one();
}

#[tokio::test]
async fn postgres_max_rows_summary() {
    if !up(5432, "PostgreSQL") {
        return;
    }
    let (capture, monitor) = monitor();
    let pool = pg_pool(&monitor).await;
    let t = table("pg_summary");
    sqlx::raw_sql(&format!(
        "CREATE TABLE {t} (id int8 PRIMARY KEY, name text, score float4, ok bool, data bytea, \
         amount numeric);
         INSERT INTO {t} VALUES (1, 'a', 1.5, true, '\\x0102', 1.25), (2, NULL, 2, false, NULL, NULL),
           (3, 'c', 3, true, NULL, NULL)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let all = format!("SELECT id, name, score, ok, data, amount FROM {t} ORDER BY id");
    // Off by default.
    assert_eq!(sqlx::query(&all).fetch_all(&pool).await.unwrap().len(), 3);
    monitor
        .update_config("db", &serde_json::json!({ "max_rows": 2 }))
        .unwrap();
    assert_eq!(sqlx::query(&all).fetch_all(&pool).await.unwrap().len(), 3);
    let one = format!("SELECT name FROM {t} WHERE id = $1");
    sqlx::query(&one)
        .bind(3_i64)
        .fetch_one(&pool)
        .await
        .unwrap();
    let opt = format!("SELECT id FROM {t} WHERE id = $1");
    assert!(
        sqlx::query(&opt)
            .bind(9_i64)
            .fetch_optional(&pool)
            .await
            .unwrap()
            .is_none()
    );
    let desc = format!("SELECT id FROM {t} ORDER BY id DESC");
    let mut conn = pool.acquire().await.unwrap();
    {
        // A stream read to its end, on a connection.
        use futures_util::TryStreamExt;
        let ids: Vec<i64> = sqlx::query_scalar::<_, i64>(&desc)
            .fetch(&mut conn)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(ids, [3, 2, 1]);
    }
    drop(conn);
    sqlx::query(&format!("DROP TABLE {t}"))
        .execute(&pool)
        .await
        .unwrap();
    flush(&monitor);

    let summaries: Vec<_> = capture
        .expect(&format!(
            "SELECT id, name, score, ok, data, amount FROM {t} ORDER BY id"
        ))
        .count(2)
        .iter()
        .map(|e| {
            e.attribute("db.response.summary")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .collect();
    assert!(summaries.contains(&None), "{summaries:?}");
    assert!(
        summaries.contains(&Some(
            "1, \"a\", 1.5, true, <2 bytes>, <NUMERIC>\n2, NULL, 2, false, NULL, NULL".into()
        )),
        "{summaries:?}"
    );
    capture
        .expect(&format!("SELECT name FROM {t} WHERE id = ?"))
        .attr("db.response.summary", "\"c\"")
        .one();
    capture
        .expect(&format!("SELECT id FROM {t} WHERE id = ?"))
        .attr("db.response.returned_rows", 0_i64)
        .no_attr("db.response.summary")
        .one();
    capture
        .expect(&format!("SELECT id FROM {t} ORDER BY id DESC"))
        .attr("db.response.returned_rows", 3_i64)
        .attr("db.response.summary", "3\n2")
        .one();
    capture
        .expect(&format!("DROP TABLE {t}"))
        .no_attr("db.response.summary")
        .one();
}

#[tokio::test]
async fn mariadb_max_rows_summary() {
    if !up(3306, "MariaDB") {
        return;
    }
    let (capture, monitor) = monitor();
    let pool = my_pool(&monitor).await;
    let t = table("my_summary");
    sqlx::query(&format!(
        "CREATE TABLE {t} (id BIGINT PRIMARY KEY, n INT UNSIGNED, name VARCHAR(20), \
         score DOUBLE, amount DECIMAL(5, 2), data BLOB)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(&format!(
        "INSERT INTO {t} VALUES (1, 7, 'a', 1.5, 1.25, x'0102'), (2, NULL, NULL, 2, NULL, NULL)"
    ))
    .execute(&pool)
    .await
    .unwrap();
    monitor
        .update_config("db", &serde_json::json!({ "max_rows": 5 }))
        .unwrap();
    let all = format!("SELECT id, n, name, score, amount, data FROM {t} WHERE id > ? ORDER BY id");
    let rows = sqlx::query(&all)
        .bind(0_i64)
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    sqlx::query(&format!("DROP TABLE {t}"))
        .execute(&pool)
        .await
        .unwrap();
    flush(&monitor);
    capture
        .expect(&format!(
            "SELECT id, n, name, score, amount, data FROM {t} WHERE id > ? ORDER BY id"
        ))
        .attr("db.system.name", "mariadb")
        .attr(
            "db.response.summary",
            "1, 7, \"a\", 1.5, 1.25, <2 bytes>\n2, NULL, NULL, 2, NULL, NULL",
        )
        .one();
}

#[tokio::test]
async fn sqlite_max_rows_summary() {
    let (capture, monitor) = monitor();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let pool = MonitoredPool::<Sqlite>::new(pool).monitor(monitor.clone());
    monitor
        .update_config("db", &serde_json::json!({ "max_rows": 1 }))
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE s (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB);
         INSERT INTO s VALUES (1, 'x', 0.5, x'00'), (2, 'y', NULL, NULL);",
    )
    .execute(&pool)
    .await
    .unwrap();
    let rows = sqlx::query("SELECT id, name, score, data FROM s ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    flush(&monitor);
    capture
        .expect("SELECT id, name, score, data FROM s ORDER BY id")
        .attr("db.response.returned_rows", 2_i64)
        .attr("db.response.summary", "1, \"x\", 0.5, <1 bytes>")
        .one();
}
