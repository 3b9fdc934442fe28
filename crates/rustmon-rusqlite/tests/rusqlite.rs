//! rusqlite on SQLite files: statements, rows, errors, transactions, parents, N+1, live config.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustmon_core::{Kind, Monitor, Status};
use rustmon_rusqlite::MonitoredConnection;
use rustmon_test::Capture;

struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> TempDb {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rm_rusqlite_{name}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDb(dir)
    }
    fn file(&self) -> PathBuf {
        self.0.join("app.db")
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn monitor() -> (Capture, Monitor) {
    let capture = Capture::new();
    let monitor = Monitor::builder("rusqlite-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    (capture, monitor)
}

#[test]
fn statements_rows_errors_and_parent() {
    let (capture, monitor) = monitor();
    let db = TempDb::new("rows");
    let conn = MonitoredConnection::open(db.file())
        .unwrap()
        .monitor(monitor.clone());
    conn.execute_batch("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .unwrap();
    let parent = monitor.start_event(Kind::Server, "GET /items");
    {
        let _in = parent.enter();
        let n = conn
            .execute(
                "INSERT INTO items (name) VALUES (?1), ('b'), (:c)",
                ["a", "c"],
            )
            .unwrap();
        assert_eq!(n, 3);
        let name: String = conn
            .query_row("SELECT name FROM items WHERE id = ?1", [2], |r| r.get(0))
            .unwrap();
        assert_eq!(name, "b");
        let mut stmt = conn
            .prepare("SELECT id, name FROM [items] WHERE id > ?")
            .unwrap();
        let rows: Vec<(i64, String)> = stmt
            .query_map([1], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), 2);
        drop(stmt);
        let err = conn.execute("INSERT INTO items (id, name) VALUES (1, 'dup')", []);
        assert!(err.is_err());
        let err = conn.query_row("SELECT * FROM nowhere", [], |_| Ok(()));
        assert!(err.is_err());
    }
    parent.finish();
    monitor.flush(Duration::from_secs(5));

    let parent = capture.expect("GET /items").one();
    let file = db.file().display().to_string();
    let insert = capture
        .expect("INSERT INTO items (name) VALUES (?)")
        .kind(Kind::Database)
        .child_of(&parent)
        .attr("db.system.name", "sqlite")
        .attr("db.namespace", file)
        .attr("db.operation.name", "INSERT")
        .attr("db.collection.name", "items")
        .attr("db.response.affected_rows", 3_i64)
        .one();
    assert_eq!(insert.plugin, "rusqlite");
    capture
        .expect("SELECT name FROM items WHERE id = ?")
        .child_of(&parent)
        .attr("db.response.returned_rows", 1_i64)
        .no_attr("db.response.summary")
        .one();
    capture
        .expect("SELECT id, name FROM [items] WHERE id > ?")
        .child_of(&parent)
        .attr("db.response.returned_rows", 2_i64)
        .one();
    capture
        .expect("INSERT INTO items (id, name) VALUES (?)")
        .status(Status::Error)
        .attr("db.response.status_code", "1555")
        .one();
    let e = capture
        .expect("SELECT * FROM nowhere")
        .status(Status::Error)
        .attr("db.response.status_code", "1")
        .one();
    assert!(
        e.errors[0].message.contains("no such table"),
        "{:?}",
        e.errors
    );
}

#[test]
fn transactions_have_children() {
    let (capture, monitor) = monitor();
    let db = TempDb::new("tx");
    let mut conn = MonitoredConnection::open(db.file())
        .unwrap()
        .monitor(monitor.clone());
    conn.execute_batch("CREATE TABLE acc (id INTEGER PRIMARY KEY, n INTEGER)")
        .unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute("INSERT INTO acc (n) VALUES (?1)", [5]).unwrap();
    tx.commit().unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute("DELETE FROM acc", []).unwrap();
    tx.rollback().unwrap();
    {
        let tx = conn.transaction().unwrap();
        let mut st = tx.prepare_cached("UPDATE acc SET n = n + 1").unwrap();
        st.execute([]).unwrap();
    }
    let n: i64 = conn
        .query_row("SELECT n FROM acc", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 5);
    monitor.flush(Duration::from_secs(5));
    let commit = capture
        .expect("TRANSACTION")
        .attr("db.transaction.outcome", "commit")
        .one();
    capture.expect("BEGIN").child_of(&commit).one();
    capture
        .expect("INSERT INTO acc (n) VALUES (?)")
        .child_of(&commit)
        .attr("db.response.affected_rows", 1_i64)
        .one();
    capture.expect("COMMIT").child_of(&commit).one();
    let rollback = capture
        .expect("TRANSACTION")
        .attr("db.transaction.outcome", "rollback")
        .one();
    capture.expect("DELETE FROM acc").child_of(&rollback).one();
    capture.expect("ROLLBACK").child_of(&rollback).one();
    let dropped = capture
        .expect("TRANSACTION")
        .attr("db.transaction.outcome", "dropped")
        .one();
    capture
        .expect("UPDATE acc SET n = n + ?")
        .child_of(&dropped)
        .one();
}

#[test]
fn n_plus_one_and_live_config() {
    let (capture, monitor) = monitor();
    let conn = MonitoredConnection::open_in_memory()
        .unwrap()
        .monitor(monitor.clone());
    conn.execute_batch("CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO u (name) VALUES ('x'), ('y');")
        .unwrap();
    let parent = monitor.start_event(Kind::Server, "GET /u");
    {
        let _in = parent.enter();
        for i in 0..5 {
            let _ = conn.query_row("SELECT name FROM u WHERE id = ?1", [i], |r| {
                r.get::<_, String>(0)
            });
        }
    }
    parent.finish();
    monitor
        .update_config("db", &serde_json::json!({ "max_rows": 1, "query_len": 6 }))
        .unwrap();
    let mut st = conn.prepare("SELECT id, name FROM u ORDER BY id").unwrap();
    let n = st.query_map([], |r| r.get::<_, i64>(0)).unwrap().count();
    assert_eq!(n, 2);
    monitor.flush(Duration::from_secs(5));
    let parent = capture.expect("GET /u").one();
    capture
        .expect("SELECT name FROM u WHERE id = ?")
        .child_of(&parent)
        .attr("db.n_plus_one", true)
        .attr("db.n_plus_one.count", 5_i64)
        .attr("db.namespace", ":memory:")
        .one();
    capture
        .expect("SELECT id, name FROM u ORDER BY id")
        .attr("db.query.text", "SELECT")
        .attr("db.response.summary", "1, \"x\"")
        .attr("db.response.returned_rows", 2_i64)
        .one();
}
