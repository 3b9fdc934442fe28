//! Running the collector: bind, serve, shut down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;

use std::future::IntoFuture;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{Api, router};
use crate::config::Settings;
use crate::ingest::{Ingest, grpc_services, http_router};
use crate::metrics::SelfMetrics;
use crate::store::{EmbeddedStore, Store, StoreOptions};

/// Addresses actually bound (useful with port 0).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// Query API.
    pub api: SocketAddr,
    /// OTLP/HTTP.
    pub otlp_http: SocketAddr,
    /// OTLP/gRPC.
    pub otlp_grpc: SocketAddr,
}

async fn bind(what: &str, a: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(a)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {a} for {what}: {e}"))
}

/// Opens the store, binds the three listeners, calls `on_bound`, and serves until `shutdown`
/// resolves; then stops accepting, finishes requests in flight and seals the store.
pub async fn run(
    s: Settings,
    on_bound: impl FnOnce(Bound),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = Arc::new(SelfMetrics::default());
    let mut opts = StoreOptions::new(&s.data_dir);
    opts.retention = s.retention;
    opts.max_queue_bytes = s.max_queue_size;
    opts.seal_spans = s.seal_spans;
    opts.seal_interval = s.seal_interval;
    let store: Arc<dyn Store> = {
        let m = metrics.clone();
        Arc::new(
            tokio::task::spawn_blocking(move || EmbeddedStore::open(opts, m))
                .await?
                .map_err(|e| {
                    anyhow::anyhow!("cannot open the store in {}: {e}", s.data_dir.display())
                })?,
        )
    };
    let api_l = bind("the API", s.listen).await?;
    let http_l = bind("OTLP/HTTP", s.otlp_http).await?;
    let grpc_l = bind("OTLP/gRPC", s.otlp_grpc).await?;
    let bound = Bound {
        api: api_l.local_addr()?,
        otlp_http: http_l.local_addr()?,
        otlp_grpc: grpc_l.local_addr()?,
    };
    let ingest = Ingest {
        store: store.clone(),
        metrics: metrics.clone(),
        max_body: s.max_request_size,
        inflight: Arc::new(tokio::sync::Semaphore::new(64)),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let api = axum::serve(
        api_l,
        router(Api {
            store: store.clone(),
            metrics,
        })
        .merge(rustmon_dashboard::router()),
    )
    .with_graceful_shutdown(wait(stop_rx.clone()));
    let http = axum::serve(http_l, http_router(ingest.clone()))
        .with_graceful_shutdown(wait(stop_rx.clone()));
    let (ts, ms) = grpc_services(ingest);
    // bounded like the HTTP receiver: requests in flight per connection are limited, and every
    // admitted batch still has to fit in the ingest queue or gets RESOURCE_EXHAUSTED
    let grpc = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(32)
        .add_service(ts)
        .add_service(ms)
        .serve_with_incoming_shutdown(tokio_stream_listener(grpc_l), wait(stop_rx.clone()));
    on_bound(bound);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let (a, h, g) = tokio::join!(api.into_future(), http.into_future(), grpc);
    a?;
    h?;
    g?;
    tokio::task::spawn_blocking(move || store.shutdown()).await?;
    Ok(())
}

fn tokio_stream_listener(
    l: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    tokio_stream::wrappers::TcpListenerStream::new(l)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
