//! The shared event helper, through a real monitor and the capture listener.

use std::time::Duration;

use rustmon_core::{Kind, Monitor, Status};
use rustmon_sql::{ConnectionInfo, SqlInstrument};
use rustmon_test::Capture;

fn setup() -> (Capture, Monitor, SqlInstrument) {
    let capture = Capture::new();
    let monitor = Monitor::builder("svc")
        .listener(capture.listener())
        .build()
        .unwrap();
    let sql = SqlInstrument::new("test-sql", Some(monitor.clone()));
    (capture, monitor, sql)
}

#[test]
fn statement_event_has_common_attributes() {
    let (capture, monitor, sql) = setup();
    let conn = ConnectionInfo::from_url("postgres://u:pw@127.0.0.1:5432/test");
    let parent = monitor.start_event(Kind::Server, "GET /orders");
    {
        let _in = parent.enter();
        let mut q = sql.start(&conn, "SELECT * FROM orders WHERE id = 42");
        q.set_returned_rows(1);
        q.finish();
        let mut q = sql.start(&conn, "DELETE FROM nope");
        q.record_db_error(
            Some("42P01"),
            "database",
            "relation \"nope\" does not exist",
        );
    }
    parent.finish();
    monitor.flush(Duration::from_secs(5));
    let parent = capture.expect("GET /orders").one();
    let q = capture
        .expect("SELECT * FROM orders WHERE id = ?")
        .kind(Kind::Database)
        .child_of(&parent)
        .attr("db.system.name", "postgresql")
        .attr("db.namespace", "test")
        .attr("db.operation.name", "SELECT")
        .attr("db.collection.name", "orders")
        .attr("db.query.text", "SELECT * FROM orders WHERE id = ?")
        .attr("server.address", "127.0.0.1")
        .attr("server.port", 5432_i64)
        .attr("db.response.returned_rows", 1_i64)
        .no_attr("db.n_plus_one")
        .one();
    assert_eq!(q.plugin, "test-sql");
    let e = capture
        .expect("DELETE FROM nope")
        .status(Status::Error)
        .attr("db.response.status_code", "42P01")
        .attr("error.type", "42P01")
        .one();
    assert!(e.errors[0].message.contains("does not exist"));
}

#[test]
fn n_plus_one_is_flagged_from_the_threshold_on() {
    let (capture, monitor, sql) = setup();
    let conn = ConnectionInfo::from_url("sqlite://app.db");
    let parent = monitor.start_event(Kind::Server, "GET /users");
    for i in 0..7 {
        let q = sql.start_with_parent(
            &conn,
            &format!("SELECT * FROM posts WHERE user_id = {i}"),
            parent.context(),
        );
        q.finish();
    }
    // A different parent counts on its own.
    let other = monitor.start_event(Kind::Server, "GET /other");
    sql.start_with_parent(
        &conn,
        "SELECT * FROM posts WHERE user_id = 1",
        other.context(),
    )
    .finish();
    parent.finish();
    other.finish();
    monitor.flush(Duration::from_secs(5));
    // The parent names the repeated statement and how often it ran.
    let parent = capture
        .expect("GET /users")
        .attr(
            "db.n_plus_one.statement",
            "SELECT * FROM posts WHERE user_id = ?",
        )
        .attr("db.n_plus_one.count", 7_i64)
        .one();
    capture
        .expect("GET /other")
        .no_attr("db.n_plus_one.count")
        .one();
    let flagged = capture
        .expect("SELECT * FROM posts WHERE user_id = ?")
        .child_of(&parent)
        .attr("db.n_plus_one", true)
        .count(3);
    let counts: Vec<i64> = flagged
        .iter()
        .map(|e| {
            e.attribute("db.n_plus_one.count")
                .unwrap()
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(counts, [5, 6, 7]);
    capture
        .expect("SELECT * FROM posts WHERE user_id = ?")
        .no_attr("db.n_plus_one")
        .count(5);
}

#[test]
fn config_changes_apply_live() {
    let (capture, monitor, sql) = setup();
    let conn = ConnectionInfo::from_url("mysql://root@127.0.0.1/test");
    sql.start(&conn, "SELECT name FROM customers WHERE id = 1")
        .finish();
    monitor
        .update_config(
            "db",
            &serde_json::json!({ "query_len": 11, "slow_threshold_ms": 0 }),
        )
        .unwrap();
    sql.start(&conn, "SELECT name FROM customers WHERE id = 2")
        .finish();
    monitor
        .update_config(
            "db",
            &serde_json::json!({ "query_len": 0, "record_raw_statement": true, "n_plus_one_threshold": 0 }),
        )
        .unwrap();
    sql.start(&conn, "SELECT name FROM customers WHERE id = 3")
        .finish();
    monitor
        .update_config("db", &serde_json::json!({ "query_len": 100 }))
        .unwrap();
    sql.start(&conn, "SELECT name FROM customers WHERE id = 4")
        .finish();
    monitor.flush(Duration::from_secs(5));
    let name = "SELECT name FROM customers WHERE id = ?";
    capture
        .expect(name)
        .attr("db.query.text", name)
        .no_attr("db.slow")
        .one();
    capture
        .expect(name)
        .attr("db.query.text", "SELECT name")
        .attr("db.slow", true)
        .one();
    capture
        .expect(name)
        .no_attr("db.query.text")
        .attr("server.port", 3306_i64)
        .one();
    capture
        .expect(name)
        .attr("db.query.text", "SELECT name FROM customers WHERE id = 4")
        .one();
    // An invalid update is rejected and names the field.
    let err = monitor
        .update_config("db", &serde_json::json!({ "max_rows": 5000 }))
        .unwrap_err();
    assert!(err.to_string().contains("max_rows"), "{err}");
}

#[test]
fn disabled_monitor_records_nothing() {
    let (capture, monitor, sql) = setup();
    monitor.disable();
    let conn = ConnectionInfo::from_url("postgres://h/db");
    let q = sql.start(&conn, "SELECT 1");
    assert!(!q.is_recording());
    q.finish();
    monitor.enable();
    monitor.flush(Duration::from_secs(5));
    assert!(capture.events().is_empty());
}

#[test]
fn urls_are_read_without_credentials() {
    let i = ConnectionInfo::from_url("mariadb://root:hunter2@[::1]:3307/shop");
    assert_eq!(i.system(), "mariadb");
    assert_eq!(i.server_address(), Some("::1"));
    assert_eq!(i.server_port(), Some(3307));
    assert_eq!(i.namespace(), Some("shop"));
    let i = ConnectionInfo::from_url("sqlite:///tmp/x.db?mode=rwc");
    assert_eq!(i.namespace(), Some("/tmp/x.db"));
    assert_eq!(i.server_address(), None);
    let i = ConnectionInfo::from_url("nonsense");
    assert_eq!(i.system(), "other_sql");
}

#[test]
fn slow_statements_and_n_plus_one_parents_survive_sampling() {
    let capture = Capture::new();
    let monitor = Monitor::builder("svc")
        .core_config(rustmon_core::CoreConfig {
            sample_rate: 0.0,
            ..Default::default()
        })
        .listener(capture.listener())
        .build()
        .unwrap();
    monitor
        // Far above what a preempted fast statement takes on a loaded machine.
        .update_config("db", &serde_json::json!({ "slow_threshold_ms": 200 }))
        .unwrap();
    let sql = SqlInstrument::new("test-sql", Some(monitor.clone()));
    let conn = ConnectionInfo::from_url("sqlite://app.db");
    let request = monitor.start_event(Kind::Server, "GET /feed");
    for i in 0..5 {
        sql.start_with_parent(
            &conn,
            &format!("SELECT * FROM t WHERE id = {i}"),
            request.context(),
        )
        .finish();
    }
    let slow = sql.start_with_parent(&conn, "SELECT pg_sleep(1)", request.context());
    std::thread::sleep(Duration::from_millis(210));
    slow.finish();
    request.finish();
    monitor.flush(Duration::from_secs(5));
    capture.expect("SELECT * FROM t WHERE id = ?").none();
    capture
        .expect("SELECT pg_sleep(?)")
        .attr("db.slow", true)
        .one();
    capture
        .expect("GET /feed")
        .attr("db.n_plus_one.count", 5_i64)
        .one();
}
