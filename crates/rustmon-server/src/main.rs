//! `rustmon`: the collector binary.

use clap::Parser;
use rustmon_server::config::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
