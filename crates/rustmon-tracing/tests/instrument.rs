//! Functions annotated with `tracing`'s `#[instrument]` are monitored through the bridge.

use std::time::Duration;

use rustmon_core::{Kind, Monitor, Status, Value};
use rustmon_test::Capture;
use rustmon_tracing::RustmonLayer;
use tracing::instrument::WithSubscriber as _;
use tracing_subscriber::layer::SubscriberExt as _;

#[tracing::instrument(fields(otel.kind = "database"))]
fn load(id: u64) -> String {
    format!("row {id}")
}

#[tracing::instrument(err, fields(otel.kind = "client", http.response.status_code = tracing::field::Empty))]
async fn fetch(id: u64) -> Result<String, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    let row = load(id);
    if id == 0 {
        tracing::Span::current().record("http.response.status_code", 404_i64);
        return Err(std::io::Error::other("not found"));
    }
    tracing::Span::current().record("http.response.status_code", 200_i64);
    Ok(row)
}

#[tracing::instrument]
async fn handler() -> usize {
    let a = fetch(1).await.map_or(0, |s| s.len());
    let b = fetch(0).await.map_or(0, |s| s.len());
    a + b
}

#[test]
fn instrumented_functions_become_events_with_their_arguments_and_errors() {
    let capture = Capture::new();
    let monitor = Monitor::builder("instrument-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry().with(RustmonLayer::with_monitor(monitor.clone())),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let n = rt.block_on(async {
        tokio::spawn(handler().with_subscriber(dispatch))
            .await
            .unwrap()
    });
    assert_eq!(n, "row 1".len());
    assert!(monitor.flush(Duration::from_secs(5)));

    let handler = capture.expect("handler").root().status(Status::Unset).one();
    let ok = capture
        .expect("fetch")
        .kind(Kind::Client)
        .child_of(&handler)
        .attr("id", 1_u64)
        .attr("http.response.status_code", 200_i64)
        .status(Status::Unset)
        .one();
    let failed = capture
        .expect("fetch")
        .child_of(&handler)
        .attr("id", 0_u64)
        .attr("http.response.status_code", 404_i64)
        .status(Status::Error)
        .one();
    assert_eq!(failed.errors.len(), 1);
    assert_eq!(failed.errors[0].message, "not found");
    for parent in [&ok, &failed] {
        let load = capture.expect("load").child_of(parent).one();
        assert_eq!(load.kind, Kind::Database);
        assert_eq!(load.attribute("id"), parent.attribute("id"));
    }
    assert_eq!(ok.attribute("id"), Some(&Value::U64(1)));
}
