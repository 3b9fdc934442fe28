//! The central-configuration poller against an HTTP server speaking the collector's protocol.

use rustmon_test::otlp_receiver as common;

use std::time::{Duration, Instant};

use common::{Reply, TestServer};
use rustmon_core::Monitor;
use rustmon_otlp::RemoteConfig;
use serde_json::json;

fn json_reply(status: u16, etag: &str, body: serde_json::Value) -> Reply {
    Reply::status(status)
        .header("ETag", etag)
        .header("Content-Type", "application/json")
        .body(body.to_string().into_bytes())
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn applies_new_versions_reports_them_and_keeps_the_old_one_on_rejection() {
    let server = TestServer::start();
    server.script([
        json_reply(
            200,
            "\"1\"",
            json!({"version": 1, "config": {"core": {"sample_rate": 0.5}}}),
        ),
        Reply::status(204),
        Reply::status(304),
        json_reply(
            200,
            "\"2\"",
            json!({"version": 2, "config": {"core": {"batch_size": 9, "sample_rate": 7}}}),
        ),
        Reply::status(204),
    ]);
    server.set_default(Reply::status(304));

    let monitor = Monitor::builder("checkout api")
        .plugin_config("remote_config", json!({"interval_ms": 100}))
        .build()
        .unwrap();
    let remote = RemoteConfig::new(server.endpoint());
    let status = remote.status_handle();
    monitor.register_plugin(remote).unwrap();

    wait_for("version 1", || status.get().applied_version == 1);
    assert_eq!(monitor.core_config().get().sample_rate, 0.5);
    wait_for("version 2 rejected", || status.get().rejected.is_some());
    let s = status.get();
    assert_eq!(s.applied_version, 1);
    assert!(s.rejected.unwrap().contains("field `sample_rate`"));
    // All or nothing: the valid part of version 2 was not applied either.
    assert_ne!(monitor.core_config().get().batch_size, 9);
    assert_eq!(monitor.core_config().get().sample_rate, 0.5);

    let requests = server.wait_until("two status reports", |r| {
        r.iter().filter(|r| r.method == "POST").count() >= 2
    });
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/api/v1/config/checkout%20api");
    assert_eq!(requests[0].header("if-none-match"), None);
    assert_eq!(requests[2].header("if-none-match"), Some("\"1\""));
    let reports: Vec<serde_json::Value> = requests
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            assert_eq!(r.path, "/api/v1/config/checkout%20api/status");
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect();
    let instance = monitor.resource().instance_id.clone();
    assert_eq!(
        reports[0],
        json!({"instance": instance, "version": 1, "error": null})
    );
    assert_eq!(reports[1]["version"], 1);
    assert!(
        reports[1]["error"]
            .as_str()
            .unwrap()
            .contains("sample_rate")
    );

    // Shutdown stops the poller.
    assert!(monitor.shutdown(Duration::from_secs(5)));
    let n = server.requests().len();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.requests().len(), n);
}

#[test]
fn an_unreachable_collector_is_reported_not_fatal() {
    let monitor = Monitor::builder("svc")
        .plugin_config("remote_config", json!({"interval_ms": 100}))
        .build()
        .unwrap();
    let remote = RemoteConfig::new(common::refused());
    let status = remote.status_handle();
    monitor.register_plugin(remote).unwrap();
    wait_for("an error", || status.get().last_error.is_some());
    assert!(status.get().last_error.unwrap().contains("cannot reach"));
    assert!(monitor.shutdown(Duration::from_secs(5)));

    let err = Monitor::builder("svc")
        .build()
        .unwrap()
        .register_plugin(RemoteConfig::new("ftp://x"))
        .unwrap_err();
    assert!(err.to_string().contains("`ftp://x`"), "{err}");
}
