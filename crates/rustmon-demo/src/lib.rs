//! The sample system that `rustmon demo` runs beside the collector, so that a newcomer sees
//! rustmon at work within seconds: an axum shop API backed by SQLite (through sqlx), calling an
//! inventory service over HTTP, both monitored by rustmon (web layer, database statements,
//! outgoing calls, runtime plugin, central configuration), and a load generator producing
//! realistic, varying traffic.
//!
//! The shop has an N+1 route (`GET /orders/{id}` loads each line's product one by one), a slow
//! route (`POST /checkout`), a route that fails sometimes (`GET /recommendations`), and a health
//! check that is not recorded.
//!
//! # Examples
//! ```no_run
//! # async fn run() -> Result<(), rustmon_demo::DemoError> {
//! let demo = rustmon_demo::start(rustmon_demo::Options::new("http://127.0.0.1:4318")).await?;
//! println!("shop on http://{}", demo.shop);
//! demo.shutdown().await;
//! # Ok(()) }
//! ```

mod db;
mod load;
mod services;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rustmon_core::{CoreConfig, Monitor};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the demo runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The collector's OTLP/HTTP endpoint, e.g. `http://127.0.0.1:4318`.
    pub otlp_endpoint: String,
    /// The collector's API, for the central configuration (e.g. `http://127.0.0.1:7070`).
    pub api_url: Option<String>,
    /// Where the SQLite databases live (default: a new temporary directory).
    pub data_dir: Option<PathBuf>,
    /// Mean requests per second of the load generator (it varies around this).
    pub requests_per_second: f64,
}

impl Options {
    /// Defaults: 20 requests per second, databases in a temporary directory, no central config.
    pub fn new(otlp_endpoint: impl Into<String>) -> Self {
        Options {
            otlp_endpoint: otlp_endpoint.into(),
            api_url: None,
            data_dir: None,
            requests_per_second: 20.0,
        }
    }
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The OTLP exporter's settings were invalid.
    #[error(transparent)]
    Otlp(#[from] rustmon_otlp::Error),
    /// A monitor could not start.
    #[error(transparent)]
    Monitor(#[from] rustmon_core::MonitorError),
    /// A plugin could not start.
    #[error(transparent)]
    Plugin(#[from] rustmon_core::PluginError),
    /// A database could not be prepared.
    #[error("demo database: {0}")]
    Database(#[from] sqlx::Error),
    /// A server could not bind or the data directory could not be created.
    #[error("demo: {0}")]
    Io(#[from] std::io::Error),
}

/// The running demo.
#[derive(Debug)]
pub struct Demo {
    /// The shop API.
    pub shop: SocketAddr,
    /// The inventory service.
    pub inventory: SocketAddr,
    monitors: Vec<Monitor>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts both services and the load generator on the current tokio runtime.
pub async fn start(options: Options) -> Result<Demo, DemoError> {
    let dir = match &options.data_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("rustmon-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let shop_monitor = monitor("demo-shop", &options)?;
    let inventory_monitor = monitor("demo-inventory", &options)?;
    let (stop, stopped) = watch::channel(false);

    let inventory_db = db::inventory(&dir.join("inventory.db"), inventory_monitor.clone()).await?;
    let (inventory, inventory_task) = services::serve(
        services::inventory(inventory_db, inventory_monitor.clone()),
        stopped.clone(),
    )
    .await?;
    let shop_db = db::shop(&dir.join("shop.db"), shop_monitor.clone()).await?;
    let (shop, shop_task) = services::serve(
        services::shop(shop_db, shop_monitor.clone(), inventory),
        stopped.clone(),
    )
    .await?;
    let load_task = tokio::spawn(load::generate(shop, options.requests_per_second, stopped));
    Ok(Demo {
        shop,
        inventory,
        monitors: vec![shop_monitor, inventory_monitor],
        stop,
        tasks: vec![load_task, shop_task, inventory_task],
    })
}

impl Demo {
    /// Stops the load, the servers and the monitors (flushing what they recorded).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let monitors = self.monitors;
        let _ = tokio::task::spawn_blocking(move || {
            for m in monitors {
                m.shutdown(Duration::from_secs(5));
            }
        })
        .await;
    }
}

fn monitor(service: &str, options: &Options) -> Result<Monitor, DemoError> {
    let exporter = rustmon_otlp::OtlpExporter::builder()
        .endpoint(options.otlp_endpoint.clone())
        .with_env(false)
        .build()?;
    let monitor = Monitor::builder(service)
        .version(env!("CARGO_PKG_VERSION"))
        .environment("demo")
        .core_config(CoreConfig {
            batch_interval_ms: 500,
            metrics_interval_ms: 5_000,
            ..CoreConfig::default()
        })
        .plugin_config("runtime", serde_json::json!({ "interval_ms": 2000 }))
        .plugin_config("remote_config", serde_json::json!({ "interval_ms": 2000 }))
        .plugin_config(
            "http_server",
            serde_json::json!({ "ignore_routes": ["/health"] }),
        )
        .listener(exporter)
        .build()?;
    monitor.register_plugin(rustmon_runtime::RuntimePlugin::new())?;
    if let Some(api) = &options.api_url {
        monitor.register_plugin(rustmon_otlp::RemoteConfig::new(api.clone()))?;
    }
    Ok(monitor)
}
