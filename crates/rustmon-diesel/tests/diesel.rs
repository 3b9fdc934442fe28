//! diesel on an SQLite file and a real PostgreSQL: statements, errors, transactions, parents.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use diesel::connection::Connection;
use diesel::sql_types::{Integer, Text};
use diesel::{PgConnection, RunQueryDsl, SqliteConnection};
use rustmon_core::{Kind, Monitor, Status};
use rustmon_diesel::DieselInstrumentation;
use rustmon_test::Capture;

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "rm_diesel_{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn monitor() -> (Capture, Monitor) {
    let capture = Capture::new();
    let monitor = Monitor::builder("diesel-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    (capture, monitor)
}

#[test]
fn sqlite_statements_errors_and_transactions() {
    let (capture, monitor) = monitor();
    let dir = std::env::temp_dir().join(unique("dir"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("app.db").display().to_string();
    let mut conn = SqliteConnection::establish(&file).unwrap();
    conn.set_instrumentation(DieselInstrumentation::with_monitor(monitor.clone()).url(&file));
    let parent = monitor.start_event(Kind::Server, "POST /diesel");
    {
        let _in = parent.enter();
        diesel::sql_query("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
            .execute(&mut conn)
            .unwrap();
        diesel::sql_query("INSERT INTO items (id, name) VALUES (?, ?)")
            .bind::<Integer, _>(1)
            .bind::<Text, _>("secret-name")
            .execute(&mut conn)
            .unwrap();
        let err = diesel::sql_query("INSERT INTO items (id, name) VALUES (?, 'x')")
            .bind::<Integer, _>(1)
            .execute(&mut conn);
        assert!(err.is_err());
        conn.transaction(|c| {
            diesel::sql_query("UPDATE items SET name = 'y' WHERE id = 1").execute(c)?;
            Ok::<_, diesel::result::Error>(())
        })
        .unwrap();
        let _ = conn.transaction(|c| {
            diesel::sql_query("DELETE FROM items").execute(c)?;
            Err::<(), _>(diesel::result::Error::RollbackTransaction)
        });
    }
    parent.finish();
    drop(conn);
    std::fs::remove_dir_all(&dir).unwrap();
    monitor.flush(Duration::from_secs(5));

    let parent = capture.expect("POST /diesel").one();
    let insert = capture
        .expect("INSERT INTO items (id, name) VALUES (?)")
        .kind(Kind::Database)
        .child_of(&parent)
        .status(rustmon_core::Status::Unset)
        .attr("db.system.name", "sqlite")
        .attr("db.namespace", file)
        .attr("db.operation.name", "INSERT")
        .attr("db.collection.name", "items")
        .one();
    assert_eq!(insert.plugin, "diesel");
    let text = insert.attribute("db.query.text").unwrap().to_string();
    assert!(!text.contains("secret"), "{text}");
    capture
        .expect("INSERT INTO items (id, name) VALUES (?)")
        .status(Status::Error)
        .attr("error.type", "UniqueViolation")
        .one();
    let commit = capture
        .expect("TRANSACTION")
        .child_of(&parent)
        .attr("db.transaction.outcome", "commit")
        .one();
    capture
        .expect("UPDATE items SET name = ? WHERE id = ?")
        .child_of(&commit)
        .one();
    let rollback = capture
        .expect("TRANSACTION")
        .child_of(&parent)
        .attr("db.transaction.outcome", "rollback")
        .one();
    capture
        .expect("DELETE FROM items")
        .child_of(&rollback)
        .one();
}

#[test]
fn postgres_statements() {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 5432));
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
        if std::env::var("RUSTMON_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("PostgreSQL is not reachable on 127.0.0.1:5432");
        }
        println!("skipped: PostgreSQL is not reachable on 127.0.0.1:5432");
        return;
    }
    let (capture, monitor) = monitor();
    let url = "postgres://postgres@127.0.0.1:5432/test";
    let mut conn = PgConnection::establish(url).unwrap();
    conn.set_instrumentation(DieselInstrumentation::with_monitor(monitor.clone()).url(url));
    let t = unique("pg");
    diesel::sql_query(format!("CREATE TABLE {t} (id int PRIMARY KEY)"))
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query(format!("INSERT INTO {t} VALUES ($1)"))
        .bind::<Integer, _>(7)
        .execute(&mut conn)
        .unwrap();
    diesel::sql_query(format!("DROP TABLE {t}"))
        .execute(&mut conn)
        .unwrap();
    monitor.flush(Duration::from_secs(5));
    capture
        .expect(&format!("INSERT INTO {t} VALUES (?)"))
        .attr("db.system.name", "postgresql")
        .attr("db.namespace", "test")
        .attr("server.port", 5432_i64)
        .attr("db.collection.name", t.clone())
        .one();
}
