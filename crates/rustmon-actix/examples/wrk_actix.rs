//! The hello-world actix-web server driven by `crates/rustmon-tower/bench/wrk.sh` (`SUITE=actix`):
//! `bare`, or `rustmon` (the middleware, events exported by rustmon's OTLP exporter to
//! `OTLP_ENDPOINT`, default `http://127.0.0.1:4318`).
//!
//! ```text
//! cargo run --release -p rustmon-actix --example wrk_actix -- rustmon 127.0.0.1:8080
//! ```

use std::time::Duration;

use actix_web::{App, HttpServer, web};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "bare".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let endpoint =
        std::env::var("OTLP_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:4318".into());
    let monitored = match mode.as_str() {
        "bare" => false,
        "rustmon" => true,
        other => {
            eprintln!("unknown mode {other:?}: bare or rustmon");
            std::process::exit(2);
        }
    };
    let monitor = monitored.then(|| {
        let exporter = rustmon_otlp::OtlpExporter::builder()
            .with_env(false)
            .endpoint(endpoint)
            .build()
            .expect("exporter");
        let m = rustmon_core::Monitor::builder("wrk-actix")
            .listener(exporter)
            .build()
            .expect("monitor");
        m.install_global();
        m
    });
    eprintln!("{mode} on http://{addr}");
    actix_web::rt::System::new().block_on(async move {
        if monitored {
            HttpServer::new(|| {
                App::new()
                    .wrap(rustmon_actix::Monitor::new())
                    .route("/", web::get().to(|| async { "Hello, World!" }))
            })
            .bind(&addr)?
            .run()
            .await
        } else {
            HttpServer::new(|| App::new().route("/", web::get().to(|| async { "Hello, World!" })))
                .bind(&addr)?
                .run()
                .await
        }
    })?;
    if let Some(m) = monitor {
        m.shutdown(Duration::from_secs(5));
        eprintln!("{:?}", m.stats());
    }
    Ok(())
}
