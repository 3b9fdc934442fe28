//! SeaORM against a real PostgreSQL, MariaDB and an SQLite file: entity queries, statements, streams and
//! transactions, with attributes, rows, errors, parents, durations, N+1 flags and live config.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use rustmon_core::context::FutureExt;
use rustmon_core::{EventRecord, Kind, Monitor, Status};
use rustmon_sea_orm::MonitoredConnection;
use rustmon_test::Capture;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, Database, DbBackend, DbErr, EntityTrait, Set, Statement,
    StreamTrait, TransactionError,
};

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

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
        "rm_seaorm_{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn monitor() -> (Capture, Monitor) {
    let capture = Capture::new();
    let monitor = Monitor::builder("sea-orm-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    (capture, monitor)
}

async fn pg(monitor: &Monitor) -> MonitoredConnection {
    let db = Database::connect(PG_URL)
        .await
        .expect("connect to PostgreSQL");
    MonitoredConnection::new(db).monitor(monitor.clone())
}

fn flush(monitor: &Monitor) {
    assert!(monitor.flush(Duration::from_secs(5)));
}

fn server(capture: &Capture, name: &str) -> EventRecord {
    capture.expect(name).kind(Kind::Server).one()
}

/// An entity whose table is named per process (the one test using it creates and drops it).
#[allow(unreachable_pub)]
mod item {
    use sea_orm::entity::prelude::*;

    pub(crate) fn table() -> &'static str {
        super::ITEM_TABLE.get_or_init(|| super::table("items"))
    }

    #[derive(Copy, Clone, Default, Debug, DeriveEntity)]
    pub struct Entity;

    impl EntityName for Entity {
        fn table_name(&self) -> &str {
            table()
        }
    }

    #[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
    pub struct Model {
        pub id: i32,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveColumn)]
    pub enum Column {
        Id,
        Name,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DerivePrimaryKey)]
    pub enum PrimaryKey {
        Id,
    }

    impl PrimaryKeyTrait for PrimaryKey {
        type ValueType = i32;
        fn auto_increment() -> bool {
            false
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter)]
    pub enum Relation {}

    impl ColumnTrait for Column {
        type EntityName = Entity;
        fn def(&self) -> ColumnDef {
            match self {
                Self::Id => ColumnType::Integer.def(),
                Self::Name => ColumnType::Text.def(),
            }
        }
    }

    impl RelationTrait for Relation {
        fn def(&self) -> RelationDef {
            unreachable!("no relations")
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

static ITEM_TABLE: OnceLock<String> = OnceLock::new();

#[tokio::test]
async fn postgres_entity_queries_statements_and_parent() {
    if !up(5432, "PostgreSQL") {
        return;
    }
    let (capture, monitor) = monitor();
    let db = pg(&monitor).await;
    let t = item::table();
    db.execute_unprepared(&format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, name text NOT NULL)"
    ))
    .await
    .unwrap();
    let parent = monitor.start_event(Kind::Server, "GET /orm");
    async {
        for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
            item::ActiveModel {
                id: Set(id),
                name: Set(name.to_owned()),
            }
            .insert(&db)
            .await
            .unwrap();
        }
        let all = item::Entity::find().all(&db).await.unwrap();
        assert_eq!(all.len(), 3);
        let b = item::Entity::find_by_id(2).one(&db).await.unwrap();
        assert_eq!(b.map(|m| m.name).as_deref(), Some("b"));
        let done = db
            .execute(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!("UPDATE {t} SET name = $1 WHERE id > $2"),
                ["z".into(), 1.into()],
            ))
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 2);
        db.execute_unprepared("SELECT pg_sleep(0.05)")
            .await
            .unwrap();
    }
    .with_context(parent.context())
    .await;
    parent.finish();
    db.execute_unprepared(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
    flush(&monitor);

    let parent = server(&capture, "GET /orm");
    let inserts = capture
        .expect(&format!(
            r#"INSERT INTO "{t}" ("id", "name") VALUES (?) RETURNING "id", "name""#
        ))
        .kind(Kind::Database)
        .child_of(&parent)
        .attr("db.system.name", "postgresql")
        .attr("db.namespace", "test")
        .attr("server.address", "127.0.0.1")
        .attr("server.port", 5432_i64)
        .attr("db.operation.name", "INSERT")
        .attr("db.collection.name", t)
        .attr("db.response.returned_rows", 1_i64)
        .count(3);
    assert_eq!(inserts[0].plugin, "sea-orm");
    assert_eq!(inserts[0].status, Status::Unset);
    let select = format!(r#"SELECT "{t}"."id", "{t}"."name" FROM "{t}""#);
    capture
        .expect(&select)
        .child_of(&parent)
        .attr("db.operation.name", "SELECT")
        .attr("db.collection.name", t)
        .attr("db.response.returned_rows", 3_i64)
        .attr("db.query.text", select.clone())
        .no_attr("db.response.summary")
        .one();
    // A long fingerprint names the event cut short; db.query.text has it whole.
    let by_id = format!(r#"{select} WHERE "{t}"."id" = ? LIMIT ?"#);
    let found: Vec<_> = capture
        .events()
        .into_iter()
        .filter(|e| e.attribute("db.query.text").and_then(|v| v.as_str()) == Some(&by_id))
        .collect();
    assert_eq!(found.len(), 1, "{by_id}");
    assert_eq!(found[0].parent_span_id, Some(parent.span_id));
    assert_eq!(
        found[0]
            .attribute("db.response.returned_rows")
            .and_then(|v| v.as_i64()),
        Some(1)
    );
    capture
        .expect(&format!("UPDATE {t} SET name = ? WHERE id > ?"))
        .child_of(&parent)
        .attr("db.operation.name", "UPDATE")
        .attr("db.response.affected_rows", 2_i64)
        .no_attr("db.query.parameter.0")
        .one();
    // Timed around the statement: inside the parent, at least as long as the sleep.
    let sleep = capture.expect("SELECT pg_sleep(?)").child_of(&parent).one();
    assert!(sleep.duration() >= Duration::from_millis(50), "{sleep:?}");
    assert!(sleep.start_unix_nanos >= parent.start_unix_nanos);
    assert!(
        sleep.start_unix_nanos + sleep.duration_nanos
            <= parent.start_unix_nanos + parent.duration_nanos
    );
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
    let db = pg(&monitor).await;
    let missing = table("missing");
    let parent = monitor.start_event(Kind::Server, "GET /broken");
    let err = db
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT * FROM {missing} WHERE id = 1"),
        ))
        .with_context(parent.context())
        .await
        .unwrap_err();
    assert!(matches!(err, DbErr::Query(_)), "{err:?}");
    parent.finish();
    flush(&monitor);
    let parent = server(&capture, "GET /broken");
    let e = capture
        .expect(&format!("SELECT * FROM {missing} WHERE id = ?"))
        .child_of(&parent)
        .status(Status::Error)
        .attr("db.response.status_code", "42P01")
        .attr("error.type", "42P01")
        .one();
    assert!(
        e.errors[0].message.contains("does not exist"),
        "{:?}",
        e.errors
    );
}

#[tokio::test]
async fn postgres_transactions_have_children() {
    if !up(5432, "PostgreSQL") {
        return;
    }
    let (capture, monitor) = monitor();
    let db = pg(&monitor).await;
    let t = table("tx");
    db.execute_unprepared(&format!("CREATE TABLE {t} (id int PRIMARY KEY)"))
        .await
        .unwrap();
    let parent = monitor.start_event(Kind::Server, "POST /tx");
    async {
        let insert = format!("INSERT INTO {t} (id) VALUES (1)");
        let nested = format!("UPDATE {t} SET id = 1 WHERE id = 1");
        db.transaction::<_, (), DbErr>(|tx| {
            Box::pin(async move {
                tx.execute_unprepared(&insert).await?;
                // A savepoint, recorded under the outer transaction.
                tx.transaction::<_, (), DbErr>(|inner| {
                    Box::pin(async move {
                        inner.execute_unprepared(&nested).await?;
                        Ok(())
                    })
                })
                .await
                .map_err(|e| DbErr::Custom(e.to_string()))?;
                Ok(())
            })
        })
        .await
        .unwrap();
        let tx = db.begin().await.unwrap();
        tx.execute_unprepared(&format!("DELETE FROM {t}"))
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        // A failing callback rolls back and keeps its error.
        let dup = format!("INSERT INTO {t} (id) VALUES (1)");
        let r = db
            .transaction::<_, (), DbErr>(|tx| {
                Box::pin(async move {
                    tx.execute_unprepared(&dup).await?;
                    Ok(())
                })
            })
            .await;
        assert!(matches!(r, Err(TransactionError::Transaction(_))), "{r:?}");
    }
    .with_context(parent.context())
    .await;
    parent.finish();
    let rows = db
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT id FROM {t}"),
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    db.execute_unprepared(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
    flush(&monitor);

    let parent = server(&capture, "POST /tx");
    let txs = capture
        .expect("TRANSACTION")
        .child_of(&parent)
        .attr("db.operation.name", "TRANSACTION")
        .attr("db.system.name", "postgresql")
        .count(3);
    let outcome = |e: &EventRecord| {
        e.attribute("db.transaction.outcome")
            .and_then(|v| v.as_str())
            .unwrap()
            .to_owned()
    };
    let committed = txs.iter().find(|e| outcome(e) == "commit").unwrap();
    let rolled_back: Vec<_> = txs.iter().filter(|e| outcome(e) == "rollback").collect();
    assert_eq!(rolled_back.len(), 2);
    capture.expect("BEGIN").child_of(committed).one();
    let savepoint = capture
        .expect("TRANSACTION")
        .child_of(committed)
        .attr("db.transaction.outcome", "commit")
        .one();
    capture
        .expect(&format!("UPDATE {t} SET id = ? WHERE id = ?"))
        .child_of(&savepoint)
        .attr("db.response.affected_rows", 1_i64)
        .one();
    capture.expect("COMMIT").child_of(committed).one();
    capture
        .expect(&format!("INSERT INTO {t} (id) VALUES (?)"))
        .child_of(committed)
        .status(Status::Unset)
        .attr("db.response.affected_rows", 1_i64)
        .one();
    let deleted = capture
        .expect(&format!("DELETE FROM {t}"))
        .status(Status::Unset)
        .one();
    let deleting_tx = rolled_back
        .iter()
        .find(|e| Some(e.span_id) == deleted.parent_span_id)
        .expect("the DELETE is a child of a rolled-back transaction");
    capture.expect("ROLLBACK").child_of(deleting_tx).one();
    let failed = capture
        .expect(&format!("INSERT INTO {t} (id) VALUES (?)"))
        .status(Status::Error)
        .attr("db.response.status_code", "23505")
        .one();
    assert!(
        rolled_back
            .iter()
            .any(|e| Some(e.span_id) == failed.parent_span_id)
    );
}

#[tokio::test]
async fn postgres_n_plus_one_and_live_config() {
    if !up(5432, "PostgreSQL") {
        return;
    }
    let (capture, monitor) = monitor();
    let db = pg(&monitor).await;
    let parent = monitor.start_event(Kind::Server, "GET /n1");
    async {
        for i in 0..6_i32 {
            db.query_one(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT $1::int AS sea_n_plus_one_probe",
                [i.into()],
            ))
            .await
            .unwrap();
        }
    }
    .with_context(parent.context())
    .await;
    parent.finish();
    monitor
        .update_config(
            "db",
            &serde_json::json!({ "query_len": 9, "record_params": true }),
        )
        .unwrap();
    // A clone shares the connection and the monitor.
    let clone = db.clone();
    clone
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT $1::text AS sea_after_config",
            ["hello".into()],
        ))
        .await
        .unwrap();
    flush(&monitor);

    let parent = server(&capture, "GET /n1");
    let flagged = capture
        .expect("SELECT ?::int AS sea_n_plus_one_probe")
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
        .expect("SELECT ?::int AS sea_n_plus_one_probe")
        .no_attr("db.n_plus_one")
        .no_attr("db.query.parameter.0")
        .count(4);
    let after = capture
        .expect("SELECT ?::text AS sea_after_config")
        .attr("db.query.text", "SELECT ?:")
        .one();
    let param = after
        .attribute("db.query.parameter.0")
        .and_then(|v| v.as_str())
        .unwrap()
        .to_owned();
    assert!(param.contains("hello"), "{param}");
}

#[tokio::test]
async fn postgres_max_rows_summary_for_results_and_streams() {
    if !up(5432, "PostgreSQL") {
        return;
    }
    let (capture, monitor) = monitor();
    let db = pg(&monitor).await;
    let t = table("summary");
    db.execute_unprepared(&format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, name text, score float8, ok bool)"
    ))
    .await
    .unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO {t} VALUES (1, 'a', 1.5, true), (2, NULL, 2, false), (3, 'c', 3, true)"
    ))
    .await
    .unwrap();
    monitor
        .update_config("db", &serde_json::json!({ "max_rows": 2 }))
        .unwrap();
    let all = Statement::from_string(
        DbBackend::Postgres,
        format!("SELECT id, name, score, ok FROM {t} ORDER BY id"),
    );
    assert_eq!(db.query_all(all.clone()).await.unwrap().len(), 3);
    let one = db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT name FROM {t} WHERE id = 3"),
        ))
        .await
        .unwrap();
    assert!(one.is_some());
    let streamed: Vec<_> = db
        .stream(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT id FROM {t} ORDER BY id DESC"),
        ))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(streamed.len(), 3);
    db.execute_unprepared(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
    flush(&monitor);

    capture
        .expect(&format!("SELECT id, name, score, ok FROM {t} ORDER BY id"))
        .attr("db.response.returned_rows", 3_i64)
        .attr(
            "db.response.summary",
            "1, \"a\", 1.5, true\n2, NULL, 2, false",
        )
        .one();
    capture
        .expect(&format!("SELECT name FROM {t} WHERE id = ?"))
        .attr("db.response.summary", "\"c\"")
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
async fn sqlite_file_statements_errors_transactions_and_summary() {
    let (capture, monitor) = monitor();
    let dir = std::env::temp_dir().join(table("sqlite_dir"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("app.db");
    let url = format!("sqlite://{}?mode=rwc", file.display());
    let db =
        MonitoredConnection::new(Database::connect(&url).await.unwrap()).monitor(monitor.clone());
    let parent = monitor.start_event(Kind::Server, "GET /lite");
    async {
        db.execute_unprepared("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, data BLOB)")
            .await
            .unwrap();
        let tx = db.begin().await.unwrap();
        tx.execute(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO items (name, data) VALUES (?, x'0102'), (?, NULL)",
            ["a".into(), "b".into()],
        ))
        .await
        .unwrap();
        tx.commit().await.unwrap();
        monitor
            .update_config("db", &serde_json::json!({ "max_rows": 5 }))
            .unwrap();
        let rows = db
            .query_all(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT id, name, data FROM [items] ORDER BY id",
            ))
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        let err = db
            .execute_unprepared("INSERT INTO items (id, name) VALUES (1, 'dup')")
            .await
            .unwrap_err();
        assert!(matches!(err, DbErr::Exec(_)), "{err:?}");
    }
    .with_context(parent.context())
    .await;
    parent.finish();
    drop(db);
    std::fs::remove_dir_all(&dir).unwrap();
    flush(&monitor);

    let parent = server(&capture, "GET /lite");
    let namespace = file.display().to_string();
    capture
        .expect("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, data BLOB)")
        .child_of(&parent)
        .attr("db.system.name", "sqlite")
        .attr("db.namespace", namespace.clone())
        .one();
    let tx = capture
        .expect("TRANSACTION")
        .child_of(&parent)
        .attr("db.transaction.outcome", "commit")
        .one();
    capture
        .expect("INSERT INTO items (name, data) VALUES (?)")
        .child_of(&tx)
        .attr("db.collection.name", "items")
        .attr("db.response.affected_rows", 2_i64)
        .one();
    capture.expect("COMMIT").child_of(&tx).one();
    capture
        .expect("SELECT id, name, data FROM [items] ORDER BY id")
        .child_of(&parent)
        .attr("db.collection.name", "items")
        .attr("db.response.returned_rows", 2_i64)
        .attr("db.response.summary", "1, \"a\", <2 bytes>\n2, \"b\", NULL")
        .one();
    let dup = capture
        .expect("INSERT INTO items (id, name) VALUES (?)")
        .child_of(&parent)
        .status(Status::Error)
        .attr("db.response.status_code", "1555")
        .one();
    assert!(dup.errors[0].message.contains("UNIQUE"), "{:?}", dup.errors);
}

#[tokio::test]
async fn mariadb_statements_errors_and_summary() {
    if !up(3306, "MariaDB") {
        return;
    }
    let (capture, monitor) = monitor();
    let db = MonitoredConnection::new(
        Database::connect("mysql://root@127.0.0.1:3306/test")
            .await
            .expect("connect to MariaDB"),
    )
    .monitor(monitor.clone())
    .system_name("mariadb");
    let t = table("my");
    db.execute_unprepared(&format!(
        "CREATE TABLE {t} (id BIGINT PRIMARY KEY, n INT UNSIGNED, name VARCHAR(20))"
    ))
    .await
    .unwrap();
    monitor
        .update_config("db", &serde_json::json!({ "max_rows": 3 }))
        .unwrap();
    let missing = table("my_missing");
    let parent = monitor.start_event(Kind::Server, "GET /maria");
    async {
        db.execute(Statement::from_sql_and_values(
            DbBackend::MySql,
            format!("INSERT INTO {t} VALUES (?, ?, ?), (2, NULL, NULL)"),
            [1_i64.into(), 7_u32.into(), "a".into()],
        ))
        .await
        .unwrap();
        let rows = db
            .query_all(Statement::from_string(
                DbBackend::MySql,
                format!("SELECT id, n, name FROM {t} ORDER BY id"),
            ))
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        db.query_one(Statement::from_string(
            DbBackend::MySql,
            format!("SELECT * FROM {missing}"),
        ))
        .await
        .unwrap_err();
    }
    .with_context(parent.context())
    .await;
    parent.finish();
    db.execute_unprepared(&format!("DROP TABLE {t}"))
        .await
        .unwrap();
    flush(&monitor);

    let parent = server(&capture, "GET /maria");
    capture
        .expect(&format!("INSERT INTO {t} VALUES (?)"))
        .child_of(&parent)
        .attr("db.system.name", "mariadb")
        .attr("db.namespace", "test")
        .attr("server.port", 3306_i64)
        .attr("db.response.affected_rows", 2_i64)
        .one();
    capture
        .expect(&format!("SELECT id, n, name FROM {t} ORDER BY id"))
        .child_of(&parent)
        .attr("db.response.returned_rows", 2_i64)
        .attr("db.response.summary", "1, 7, \"a\"\n2, NULL, NULL")
        .one();
    let e = capture
        .expect(&format!("SELECT * FROM {missing}"))
        .child_of(&parent)
        .status(Status::Error)
        .attr("db.response.status_code", "1146")
        .one();
    assert!(
        e.errors[0].message.contains("doesn't exist"),
        "{:?}",
        e.errors
    );
}
