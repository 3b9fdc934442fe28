//! `facade_monitor` (re-exported by the facade as `rustmon::monitor`) names the core crate
//! `::rustmon::core`. This test crate stands in for the facade: it calls itself `rustmon` and has
//! a `core` module re-exporting `rustmon_core`.

extern crate self as rustmon;

use std::time::Duration;

use rustmon_core::{Kind, Monitor, Status};
use rustmon_test::Capture;

/// The facade's `rustmon::core`.
pub mod core {
    pub use rustmon_core::*;
}

#[rustmon_macros::facade_monitor(kind = "database")]
fn through_the_facade() -> u8 {
    7
}

#[rustmon_macros::facade_monitor(err)]
async fn async_through_the_facade(fail: bool) -> Result<(), String> {
    if fail { Err("no".into()) } else { Ok(()) }
}

#[test]
fn the_facade_attribute_resolves_the_core_through_rustmon_core() {
    let capture = Capture::new();
    let monitor = Monitor::builder("facade-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    monitor.install_global();
    assert_eq!(through_the_facade(), 7);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert!(rt.block_on(async_through_the_facade(true)).is_err());
    assert!(monitor.flush(Duration::from_secs(5)));
    capture
        .expect("through_the_facade")
        .kind(Kind::Database)
        .one();
    capture
        .expect("async_through_the_facade")
        .status(Status::Error)
        .one();
}
