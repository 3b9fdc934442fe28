//! With no global monitor, or monitoring disabled, `#[monitor]` functions work and record nothing,
//! and their `fields` expressions are not evaluated.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustmon_core::{Monitor, context};
use rustmon_macros::monitor;
use rustmon_test::Capture;

static EVALUATED: AtomicUsize = AtomicUsize::new(0);

fn costly() -> u64 {
    EVALUATED.fetch_add(1, Ordering::Relaxed);
    1
}

#[monitor(err, fields(cost = costly()))]
fn work(fail: bool) -> Result<u8, String> {
    assert_eq!(context::current(), None);
    if fail { Err("no".into()) } else { Ok(1) }
}

#[monitor(fields(cost = costly()))]
async fn async_work() -> u8 {
    2
}

#[test]
fn disabled_monitoring_records_nothing_and_skips_fields() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // No global monitor yet.
    assert_eq!(work(false), Ok(1));
    assert_eq!(rt.block_on(async_work()), 2);

    let capture = Capture::new();
    let monitor = Monitor::builder("disabled-test")
        .listener(capture.listener())
        .enabled(false)
        .build()
        .unwrap();
    monitor.install_global();
    assert!(work(true).is_err());
    assert_eq!(rt.block_on(async_work()), 2);
    assert_eq!(EVALUATED.load(Ordering::Relaxed), 0);

    monitor.enable();
    assert_eq!(rt.block_on(async_work()), 2);
    assert!(monitor.flush(Duration::from_secs(5)));
    assert_eq!(EVALUATED.load(Ordering::Relaxed), 1);
    assert_eq!(capture.events().len(), 1, "{}", capture.summary());
    capture.expect("async_work").one();
}
