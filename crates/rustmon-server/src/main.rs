//! `rustmon`: the collector binary.

use clap::Parser;

// the collector allocates and frees many small strings per span; mimalloc measured faster here
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use rustmon_server::config::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        #[cfg(feature = "demo")]
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => {
            let settings = match args.resolve() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return std::process::ExitCode::from(2);
                }
            };
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            };
            let data = settings.data_dir.clone();
            let res = rt.block_on(rustmon_server::server::run(
                settings,
                |b| {
                    println!("rustmon collector {}", env!("CARGO_PKG_VERSION"));
                    println!("  API and dashboard  http://{}/", b.api);
                    println!(
                        "  OTLP/HTTP          http://{}  (POST /v1/traces, /v1/metrics)",
                        b.otlp_http
                    );
                    println!("  OTLP/gRPC          http://{}", b.otlp_grpc);
                    println!("  data               {}", data.display());
                    println!(
                        "listening api={} otlp_http={} otlp_grpc={}",
                        b.api, b.otlp_http, b.otlp_grpc
                    );
                },
                rustmon_server::server::signal(),
            ));
            match res {
                Ok(()) => {
                    println!("rustmon: stopped");
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

#[cfg(feature = "demo")]
mod demo {
    //! `rustmon demo`: the collector plus the sample system of `rustmon-demo`.

    use std::process::ExitCode;

    use rustmon_server::config::ServeArgs;
    use tokio::sync::watch;

    pub(crate) fn run(mut args: ServeArgs) -> ExitCode {
        let temporary = args
            .data_dir
            .is_none()
            .then(|| std::env::temp_dir().join(format!("rustmon-demo-{}", std::process::id())));
        if let Some(dir) = &temporary {
            args.data_dir = Some(dir.clone());
        }
        let code = match serve(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
        if let Some(dir) = temporary {
            let _ = std::fs::remove_dir_all(dir);
        }
        code
    }

    fn serve(args: ServeArgs) -> anyhow::Result<()> {
        let settings = args.resolve()?;
        let data = settings.data_dir.clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
            let (stop_tx, mut stop_rx) = watch::channel(false);
            let collector = tokio::spawn(rustmon_server::server::run(
                settings,
                move |b| {
                    let _ = bound_tx.send(b);
                },
                async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                },
            ));
            let Ok(bound) = bound_rx.await else {
                // The collector failed before binding: report its error.
                return collector.await?;
            };
            let mut options = rustmon_demo::Options::new(format!("http://{}", bound.otlp_http));
            options.api_url = Some(format!("http://{}", bound.api));
            options.data_dir = Some(data.join("demo"));
            let demo = rustmon_demo::start(options).await?;
            println!("rustmon demo {}", env!("CARGO_PKG_VERSION"));
            println!("  dashboard          http://{}/", bound.api);
            println!("  OTLP/HTTP          http://{}", bound.otlp_http);
            println!("  demo shop          http://{}/products", demo.shop);
            println!("  demo inventory     http://{}/stock/1", demo.inventory);
            println!("  data               {}", data.display());
            println!("Traffic is flowing; the dashboard fills within seconds. Ctrl-C stops.");
            println!(
                "listening api={} otlp_http={} otlp_grpc={}",
                bound.api, bound.otlp_http, bound.otlp_grpc
            );
            rustmon_server::server::signal().await;
            demo.shutdown().await;
            let _ = stop_tx.send(true);
            collector.await??;
            println!("rustmon: stopped");
            Ok(())
        })
    }
}
