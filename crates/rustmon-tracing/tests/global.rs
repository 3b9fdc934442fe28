//! `RustmonLayer::new()` records into the global monitor, looked up when spans start.

use std::time::Duration;

use rustmon_core::{Event, Kind, Monitor};
use rustmon_test::Capture;
use rustmon_tracing::RustmonLayer;
use tracing_subscriber::layer::SubscriberExt as _;

#[test]
fn the_default_layer_records_into_the_global_monitor() {
    let subscriber = tracing_subscriber::registry().with(RustmonLayer::new());
    let _default = tracing::subscriber::set_default(subscriber);

    // Before a global monitor exists: nothing is recorded and nothing breaks.
    tracing::info_span!("before").in_scope(|| tracing::info!("ignored"));

    let capture = Capture::new();
    let monitor = Monitor::builder("global-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    monitor.install_global();

    tracing::info_span!("after").in_scope(|| {
        Event::start(Kind::Custom, "inside").finish();
    });
    assert!(monitor.flush(Duration::from_secs(5)));
    let after = capture.expect("after").root().one();
    capture.expect("inside").child_of(&after).one();
    capture.expect("before").none();
}
