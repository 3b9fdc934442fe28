//! Against a real Redis on 127.0.0.1:6379: sync and async connections, pipelines, errors,
//! parents, and live config. Keys carry a unique prefix and are deleted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::{AsyncCommands, Commands};
use rustmon_core::context::FutureExt;
use rustmon_core::{Kind, Monitor, Status};
use rustmon_redis::Monitored;
use rustmon_test::Capture;

const URL: &str = "redis://127.0.0.1:6379/";

fn up() -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 6379));
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
        return true;
    }
    if std::env::var("RUSTMON_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("Redis is not reachable on 127.0.0.1:6379");
    }
    println!("skipped: Redis is not reachable on 127.0.0.1:6379");
    false
}

fn prefix(test: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "rm_redis:{test}:{}:{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn monitor() -> (Capture, Monitor) {
    let capture = Capture::new();
    let monitor = Monitor::builder("redis-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    (capture, monitor)
}

#[test]
fn sync_commands_pipelines_and_errors() {
    if !up() {
        return;
    }
    let (capture, monitor) = monitor();
    let client = redis::Client::open(URL).unwrap();
    let mut conn = Monitored::new(client.get_connection().unwrap())
        .monitor(monitor.clone())
        .connection_info(client.get_connection_info());
    let p = prefix("sync");
    let key = format!("{p}counter");
    let parent = monitor.start_event(Kind::Server, "GET /sync");
    {
        let _in = parent.enter();
        let _: () = conn.set(&key, 41).unwrap();
        let v: i64 = conn.incr(&key, 1).unwrap();
        assert_eq!(v, 42);
        let (a, b): (i64, i64) = redis::pipe()
            .incr(&key, 1)
            .incr(&key, 1)
            .query(&mut conn)
            .unwrap();
        assert_eq!((a, b), (43, 44));
        let (c,): (i64,) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .query(&mut conn)
            .unwrap();
        assert_eq!(c, 45);
        // A wrong-type operation fails with the server's code.
        let err = conn.lpush::<_, _, i64>(&key, "x").unwrap_err();
        assert_eq!(err.code(), Some("WRONGTYPE"));
    }
    parent.finish();
    let _: () = conn.del(&key).unwrap();
    monitor.flush(Duration::from_secs(5));

    let parent = capture.expect("GET /sync").one();
    let set = capture
        .expect("SET")
        .kind(Kind::Cache)
        .child_of(&parent)
        .attr("db.system.name", "redis")
        .attr("db.operation.name", "SET")
        .attr("db.namespace", "0")
        .attr("server.address", "127.0.0.1")
        .attr("server.port", 6379_i64)
        .attr("db.redis.argument_count", 2_i64)
        .no_attr("db.query.text")
        .one();
    assert_eq!(set.plugin, "redis");
    capture.expect("INCRBY").child_of(&parent).one();
    capture
        .expect("PIPELINE")
        .child_of(&parent)
        .attr("db.operation.batch.size", 2_i64)
        .no_attr("db.redis.transaction")
        .one();
    capture
        .expect("PIPELINE")
        .child_of(&parent)
        .attr("db.operation.batch.size", 1_i64)
        .attr("db.redis.transaction", true)
        .one();
    let e = capture
        .expect("LPUSH")
        .status(Status::Error)
        .attr("error.type", "WRONGTYPE")
        .attr("db.response.status_code", "WRONGTYPE")
        .one();
    assert!(e.errors[0].message.contains("WRONGTYPE"));
    capture.expect("DEL").root().one();
}

#[tokio::test]
async fn async_multiplexed_and_manager_with_parent_and_live_config() {
    if !up() {
        return;
    }
    let (capture, monitor) = monitor();
    let client = redis::Client::open(URL).unwrap();
    let mux = client.get_multiplexed_async_connection().await.unwrap();
    let mut conn = Monitored::new(mux)
        .monitor(monitor.clone())
        .connection_info(client.get_connection_info());
    let mut manager = Monitored::new(
        redis::aio::ConnectionManager::new(client.clone())
            .await
            .unwrap(),
    )
    .monitor(monitor.clone());
    let p = prefix("async");
    let key = format!("{p}greeting");
    let parent = monitor.start_event(Kind::Server, "GET /async");
    async {
        let _: () = conn.set(&key, "hello").await.unwrap();
        let v: String = conn.get(&key).await.unwrap();
        assert_eq!(v, "hello");
        let (l, v2): (i64, String) = redis::pipe()
            .strlen(&key)
            .get(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!((l, v2.as_str()), (5, "hello"));
        let exists: bool = manager.exists(&key).await.unwrap();
        assert!(exists);
        // A command the server does not know.
        let err = redis::cmd("NOSUCHCOMMAND")
            .query_async::<()>(&mut conn)
            .await
            .unwrap_err();
        assert!(err.code().is_some());
    }
    .with_context(parent.context())
    .await;
    parent.finish();

    monitor
        .update_config("redis", &serde_json::json!({ "record_keys": true }))
        .unwrap();
    let _: Option<String> = conn.get(&key).await.unwrap();
    monitor
        .update_config(
            "redis",
            &serde_json::json!({ "record_values": true, "query_len": 1000 }),
        )
        .unwrap();
    let _: () = conn.set(&key, "bye").await.unwrap();
    let _: () = conn.del(&key).await.unwrap();
    monitor.flush(Duration::from_secs(5));

    let parent = capture.expect("GET /async").one();
    capture
        .expect("SET")
        .child_of(&parent)
        .attr("server.port", 6379_i64)
        .attr("db.redis.argument_count", 2_i64)
        .one();
    capture
        .expect("GET")
        .child_of(&parent)
        .no_attr("db.query.text")
        .one();
    capture
        .expect("PIPELINE")
        .child_of(&parent)
        .attr("db.operation.batch.size", 2_i64)
        .one();
    capture
        .expect("EXISTS")
        .child_of(&parent)
        .attr("db.system.name", "redis")
        .one();
    capture
        .expect("NOSUCHCOMMAND")
        .child_of(&parent)
        .status(Status::Error)
        .has_attr("error.type")
        .one();
    capture
        .expect("GET")
        .root()
        .attr("db.query.text", format!("GET {key}"))
        .one();
    capture
        .expect("SET")
        .root()
        .attr("db.query.text", format!("SET {key} bye"))
        .one();
}
