//! The hello-world axum server driven by `bench/wrk.sh`, in one of three modes:
//!
//! - `bare`: no monitoring;
//! - `rustmon`: the rustmon layer, events exported by rustmon's OTLP exporter listener
//!   (`SAMPLE_RATE` sets the head-sampling rate, default 1);
//! - `rustmon-noexport`: the rustmon layer with a listener that drops every batch (the cost of
//!   recording alone);
//! - `otel`: tower-http `TraceLayer` + `tracing-opentelemetry` + the `opentelemetry-otlp` batch
//!   exporter (HTTP protobuf).
//!
//! Both exporters send to `OTLP_ENDPOINT` (default `http://127.0.0.1:4318`; see the
//! `otlp_sink` example).
//!
//! ```text
//! cargo run --release -p rustmon-tower --features axum --example wrk_axum -- rustmon 127.0.0.1:8080
//! ```

use std::time::Duration;

use axum::Router;
use axum::routing::get;

fn app() -> Router {
    Router::new().route("/", get(|| async { "Hello, World!" }))
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "bare".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let endpoint =
        std::env::var("OTLP_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:4318".into());

    let mut monitor = None;
    let mut provider = None;
    let app = match mode.as_str() {
        "bare" => app(),
        "rustmon" | "rustmon-noexport" => {
            let mut core = rustmon_core::CoreConfig::default();
            if let Ok(rate) = std::env::var("SAMPLE_RATE") {
                core.sample_rate = rate.parse().expect("SAMPLE_RATE");
            }
            let builder = rustmon_core::Monitor::builder("wrk-axum").core_config(core);
            let builder = if mode == "rustmon" {
                builder.listener(
                    rustmon_otlp::OtlpExporter::builder()
                        .with_env(false)
                        .endpoint(endpoint)
                        .build()
                        .expect("exporter"),
                )
            } else {
                builder.listener(rustmon_core::listener_fn(|_batch| {}))
            };
            let m = builder.build().expect("monitor");
            m.install_global();
            monitor = Some(m);
            app().layer(rustmon_tower::axum::layer())
        }
        "otel" => {
            use opentelemetry::trace::TracerProvider as _;
            use opentelemetry_otlp::{Protocol, WithExportConfig};
            use tracing_subscriber::layer::SubscriberExt;

            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{endpoint}/v1/traces"))
                .build()
                .expect("exporter");
            let p = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .build();
            let subscriber = tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(p.tracer("wrk-axum")));
            tracing::subscriber::set_global_default(subscriber).expect("subscriber");
            provider = Some(p);
            app().layer(tower_http::trace::TraceLayer::new_for_http())
        }
        other => {
            eprintln!("unknown mode {other:?}: bare, rustmon or otel");
            std::process::exit(2);
        }
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!("{mode} on http://{}", listener.local_addr()?);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
    })?;
    if let Some(m) = monitor {
        m.shutdown(Duration::from_secs(5));
        eprintln!("{:?}", m.stats());
    }
    if let Some(p) = provider {
        let _ = p.shutdown();
    }
    Ok(())
}
