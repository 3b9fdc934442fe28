//! tokio-postgres against a real PostgreSQL (127.0.0.1:5432, database `test`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustmon_core::context::FutureExt;
use rustmon_core::{Kind, Monitor, Status};
use rustmon_postgres::MonitoredClient;
use rustmon_test::Capture;

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn up() -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 5432));
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
        return true;
    }
    if std::env::var("RUSTMON_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("PostgreSQL is not reachable on 127.0.0.1:5432");
    }
    println!("skipped: PostgreSQL is not reachable on 127.0.0.1:5432");
    false
}

fn table(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "rm_pg_{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn client(monitor: &Monitor) -> MonitoredClient {
    let (client, connection) = tokio_postgres::connect(URL, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    MonitoredClient::new(client)
        .monitor(monitor.clone())
        .url(URL)
}

fn monitor() -> (Capture, Monitor) {
    let capture = Capture::new();
    let monitor = Monitor::builder("pg-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    (capture, monitor)
}

#[tokio::test]
async fn statements_rows_errors_and_params() {
    if !up() {
        return;
    }
    let (capture, monitor) = monitor();
    let mut client = client(&monitor).await;
    let t = table("rows");
    client
        .batch_execute(&format!("CREATE TABLE {t} (id int PRIMARY KEY, name text)"))
        .await
        .unwrap();
    let parent = monitor.start_event(Kind::Server, "GET /pg");
    async {
        let n = client
            .execute(
                &format!("INSERT INTO {t} VALUES ($1, $2), ($3, 'x')"),
                &[&1_i32, &"one", &2_i32],
            )
            .await
            .unwrap();
        assert_eq!(n, 2);
        let rows = client
            .query(&format!("SELECT * FROM {t} ORDER BY id"), &[])
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        let stmt = client
            .prepare(&format!("SELECT name FROM {t} WHERE id = $1"))
            .await
            .unwrap();
        let row = client.query_one(&stmt, &[&1_i32]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "one");
        let none = client.query_opt(&stmt, &[&9_i32]).await.unwrap();
        assert!(none.is_none());
        let err = client
            .query(&format!("SELECT * FROM {t}_missing"), &[])
            .await
            .unwrap_err();
        assert!(err.as_db_error().is_some());
    }
    .with_context(parent.context())
    .await;
    parent.finish();
    monitor
        .update_config("db", &serde_json::json!({ "record_params": true }))
        .unwrap();
    client
        .query_opt(&format!("SELECT * FROM {t} WHERE id = $1"), &[&2_i32])
        .await
        .unwrap();
    // A transaction, rolled back and committed.
    let tx = client.transaction().await.unwrap();
    tx.execute(&format!("DELETE FROM {t}"), &[]).await.unwrap();
    tx.rollback().await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.execute(&format!("UPDATE {t} SET name = 'z'"), &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    client
        .batch_execute(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
    monitor.flush(Duration::from_secs(5));

    let parent = capture.expect("GET /pg").one();
    capture
        .expect(&format!("INSERT INTO {t} VALUES (?)"))
        .kind(Kind::Database)
        .child_of(&parent)
        .attr("db.system.name", "postgresql")
        .attr("db.namespace", "test")
        .attr("server.address", "127.0.0.1")
        .attr("server.port", 5432_i64)
        .attr("db.operation.name", "INSERT")
        .attr("db.collection.name", t.clone())
        .attr("db.response.affected_rows", 2_i64)
        .no_attr("db.query.parameter.0")
        .one();
    capture
        .expect(&format!("SELECT * FROM {t} ORDER BY id"))
        .child_of(&parent)
        .attr("db.response.returned_rows", 2_i64)
        .one();
    let name = format!("SELECT name FROM {t} WHERE id = ?");
    capture
        .expect(&name)
        .child_of(&parent)
        .attr("db.response.returned_rows", 1_i64)
        .one();
    capture
        .expect(&name)
        .child_of(&parent)
        .attr("db.response.returned_rows", 0_i64)
        .one();
    let e = capture
        .expect(&format!("SELECT * FROM {t}_missing"))
        .status(Status::Error)
        .attr("db.response.status_code", "42P01")
        .one();
    assert!(e.errors[0].message.contains("does not exist"));
    capture
        .expect(&format!("SELECT * FROM {t} WHERE id = ?"))
        .root()
        .attr("db.query.parameter.0", "2")
        .one();
    let rolled = capture
        .expect("TRANSACTION")
        .attr("db.transaction.outcome", "rollback")
        .one();
    capture.expect("BEGIN").child_of(&rolled).one();
    capture
        .expect(&format!("DELETE FROM {t}"))
        .child_of(&rolled)
        .one();
    capture.expect("ROLLBACK").child_of(&rolled).one();
    let committed = capture
        .expect("TRANSACTION")
        .attr("db.transaction.outcome", "commit")
        .one();
    capture
        .expect(&format!("UPDATE {t} SET name = ?"))
        .child_of(&committed)
        .attr("db.response.affected_rows", 2_i64)
        .one();
    capture.expect("COMMIT").child_of(&committed).one();
}

#[tokio::test]
async fn n_plus_one_under_one_parent() {
    if !up() {
        return;
    }
    let (capture, monitor) = monitor();
    let client = client(&monitor).await;
    let parent = monitor.start_event(Kind::Server, "GET /n1");
    async {
        for i in 0..5_i32 {
            client
                .query_one("SELECT $1::int + 0 AS pg_n1_probe", &[&i])
                .await
                .unwrap();
        }
    }
    .with_context(parent.context())
    .await;
    parent.finish();
    monitor.flush(Duration::from_secs(5));
    let parent = capture.expect("GET /n1").one();
    capture
        .expect("SELECT ?::int + ? AS pg_n1_probe")
        .child_of(&parent)
        .attr("db.n_plus_one", true)
        .attr("db.n_plus_one.count", 5_i64)
        .one();
}

#[tokio::test]
async fn max_rows_renders_the_first_rows() {
    if !up() {
        return;
    }
    let (capture, monitor) = monitor();
    let client = client(&monitor).await;
    let t = table("summary");
    client
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int8 PRIMARY KEY, name text, score float8, ok bool, \
             data bytea, at timestamptz);
             INSERT INTO {t} VALUES
               (1, 'a\"b', 1.5, true, '\\x0102', now()),
               (2, NULL, 2, false, NULL, NULL),
               (3, 'c', 3, true, NULL, NULL)"
        ))
        .await
        .unwrap();
    // Off by default: no summary.
    let all = format!("SELECT id, name, score, ok, data, at FROM {t} ORDER BY id");
    assert_eq!(client.query(&all, &[]).await.unwrap().len(), 3);
    monitor
        .update_config("db", &serde_json::json!({ "max_rows": 2 }))
        .unwrap();
    assert_eq!(client.query(&all, &[]).await.unwrap().len(), 3);
    let one = format!("SELECT name FROM {t} WHERE id = $1");
    client.query_one(&one, &[&3_i64]).await.unwrap();
    let opt = format!("SELECT id, name FROM {t} WHERE id = $1");
    assert!(client.query_opt(&opt, &[&9_i64]).await.unwrap().is_none());
    client
        .execute(&format!("UPDATE {t} SET ok = true"), &[])
        .await
        .unwrap();
    client
        .batch_execute(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
    monitor.flush(Duration::from_secs(5));

    let name = format!("SELECT id, name, score, ok, data, at FROM {t} ORDER BY id");
    let rendered = capture.expect(&name).has_attr("db.response.summary").one();
    assert_eq!(
        rendered
            .attribute("db.response.summary")
            .and_then(|v| v.as_str()),
        Some("1, \"a\\\"b\", 1.5, true, <2 bytes>, <timestamptz>\n2, NULL, 2, false, NULL, NULL")
    );
    capture
        .expect(&name)
        .no_attr("db.response.summary")
        .attr("db.response.returned_rows", 3_i64)
        .one();
    capture
        .expect(&format!("SELECT name FROM {t} WHERE id = ?"))
        .attr("db.response.summary", "\"c\"")
        .one();
    capture
        .expect(&format!("SELECT id, name FROM {t} WHERE id = ?"))
        .attr("db.response.returned_rows", 0_i64)
        .no_attr("db.response.summary")
        .one();
    capture
        .expect(&format!("UPDATE {t} SET ok = ?"))
        .no_attr("db.response.summary")
        .one();
}
