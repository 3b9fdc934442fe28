//! The custom monitoring API: events, children, errors, segments.
//!
//! Run: `RUSTMON_LOG=stdout RUSTMON_OTLP=false cargo run -p rustmon --example custom_api`
//! (or start `rustmon serve` first and drop the two variables to send OTLP to it).

use rustmon::{Event, Kind, Status};

fn main() -> Result<(), rustmon::InitError> {
    // The global monitor with an OTLP exporter (OTEL_EXPORTER_OTLP_ENDPOINT, default
    // http://127.0.0.1:4318). The guard flushes on drop.
    let _guard = rustmon::init("checkout-api")?;

    let mut order = Event::start(Kind::Custom, "place-order"); // a root: a new trace
    order.set("order.items", 3_i64);
    {
        let _current = order.enter(); // events started now are its children
        let mut pay = Event::start(Kind::Client, "POST payments");
        pay.set("server.address", "payments.internal");
        if let Err(e) = charge() {
            pay.record_std_error(&e, false); // status = error
        }
    } // `pay` finishes when dropped
    order.set_status(Status::Ok);
    order.finish();

    let _s = rustmon::segment!("render"); // a timed code section, aggregated per call site
    Ok(())
}

fn charge() -> std::io::Result<()> {
    Err(std::io::Error::other("card declined"))
}
