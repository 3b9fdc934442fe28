//! Command line, environment and TOML configuration of `rustmon serve`.
//!
//! Precedence: flag, then `RUSTMON_*` environment variable, then the `--config` file, then the default.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

/// rustmon: application performance monitoring for Rust services.
#[derive(Debug, Parser)]
#[command(name = "rustmon", version, about, long_about = None, arg_required_else_help = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector: OTLP receivers, embedded store and query API.
    Serve(ServeArgs),
    /// Run the collector together with a small monitored sample system under load, to see
    /// rustmon at work (a temporary data directory unless --data-dir is given).
    #[cfg(feature = "demo")]
    Demo(ServeArgs),
}

/// Flags of `rustmon serve`; each also reads a `RUSTMON_*` variable.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Directory of the embedded store [default: ./rustmon-data].
    #[arg(long, env = "RUSTMON_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the query API and dashboard [default: 127.0.0.1:7070].
    #[arg(long, env = "RUSTMON_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Address of the OTLP/HTTP receiver [default: 127.0.0.1:4318].
    #[arg(long, env = "RUSTMON_OTLP_HTTP", value_name = "HOST:PORT")]
    pub otlp_http: Option<String>,
    /// Address of the OTLP/gRPC receiver [default: 127.0.0.1:4317].
    #[arg(long, env = "RUSTMON_OTLP_GRPC", value_name = "HOST:PORT")]
    pub otlp_grpc: Option<String>,
    /// TOML file with any of these settings (keys named like the flags, with `_`).
    #[arg(long, env = "RUSTMON_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Delete data older than this, e.g. 12h, 7d [default: 7d].
    #[arg(long, env = "RUSTMON_RETENTION", value_name = "DURATION")]
    pub retention: Option<String>,
    /// Largest OTLP request body, before and after decompression [default: 16MiB].
    #[arg(long, env = "RUSTMON_MAX_REQUEST_SIZE", value_name = "SIZE")]
    pub max_request_size: Option<String>,
    /// Memory the ingest queue may hold before answering 429 [default: 256MiB].
    #[arg(long, env = "RUSTMON_MAX_QUEUE_SIZE", value_name = "SIZE")]
    pub max_queue_size: Option<String>,
    /// Seal the in-memory spans into a segment at this many spans [default: 200000].
    #[arg(long, env = "RUSTMON_SEAL_SPANS", value_name = "N")]
    pub seal_spans: Option<String>,
    /// Seal the in-memory spans at least this often [default: 10s].
    #[arg(long, env = "RUSTMON_SEAL_INTERVAL", value_name = "DURATION")]
    pub seal_interval: Option<String>,
}

/// The `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    otlp_http: Option<String>,
    otlp_grpc: Option<String>,
    retention: Option<String>,
    max_request_size: Option<String>,
    max_queue_size: Option<String>,
    seal_spans: Option<toml::Value>,
    seal_interval: Option<String>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Store directory.
    pub data_dir: PathBuf,
    /// API address.
    pub listen: SocketAddr,
    /// OTLP/HTTP address.
    pub otlp_http: SocketAddr,
    /// OTLP/gRPC address.
    pub otlp_grpc: SocketAddr,
    /// Retention.
    pub retention: Duration,
    /// Request body limit.
    pub max_request_size: usize,
    /// Ingest queue limit.
    pub max_queue_size: u64,
    /// Seal threshold in spans.
    pub seal_spans: usize,
    /// Seal interval.
    pub seal_interval: Duration,
}

fn addr(what: &str, s: &str) -> anyhow::Result<SocketAddr> {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            anyhow::anyhow!("invalid {what} {s:?}: expected HOST:PORT, e.g. 127.0.0.1:7070")
        })
}

fn duration(what: &str, s: &str) -> anyhow::Result<Duration> {
    let d = humantime::parse_duration(s).map_err(|e| {
        anyhow::anyhow!("invalid {what} {s:?}: expected a duration like 30s, 12h or 7d ({e})")
    })?;
    if d.is_zero() {
        anyhow::bail!("invalid {what} {s:?}: must be greater than zero");
    }
    Ok(d)
}

/// Parses a size: `1048576`, `512KiB`, `16MiB`, `1GiB` (also `KB`/`MB`/`GB` = powers of 1000).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mul: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mul)
}

fn size(what: &str, s: &str) -> anyhow::Result<u64> {
    match parse_size(s) {
        Some(n) if n > 0 => Ok(n),
        _ => anyhow::bail!("invalid {what} {s:?}: expected a size like 16MiB, 512KiB or 1048576"),
    }
}

impl ServeArgs {
    /// Merges flags/env with the config file and defaults, checking every value.
    pub fn resolve(&self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", p.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let pick = |flag: &Option<String>, f: &Option<String>, d: &str| -> String {
            flag.clone()
                .or_else(|| f.clone())
                .unwrap_or_else(|| d.to_string())
        };
        let seal_spans = match (&self.seal_spans, &file.seal_spans) {
            (Some(s), _) => s.clone(),
            (None, Some(toml::Value::Integer(i))) => i.to_string(),
            (None, Some(toml::Value::String(s))) => s.clone(),
            (None, Some(v)) => anyhow::bail!(
                "invalid seal_spans {v:?} in the config file: expected a positive integer"
            ),
            (None, None) => "200000".into(),
        };
        let seal_spans: usize = match seal_spans.trim().parse() {
            Ok(n) if n > 0 => n,
            _ => anyhow::bail!("invalid --seal-spans {seal_spans:?}: expected a positive integer"),
        };
        Ok(Settings {
            data_dir: self
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./rustmon-data")),
            listen: addr(
                "--listen",
                &pick(&self.listen, &file.listen, "127.0.0.1:7070"),
            )?,
            otlp_http: addr(
                "--otlp-http",
                &pick(&self.otlp_http, &file.otlp_http, "127.0.0.1:4318"),
            )?,
            otlp_grpc: addr(
                "--otlp-grpc",
                &pick(&self.otlp_grpc, &file.otlp_grpc, "127.0.0.1:4317"),
            )?,
            retention: duration("--retention", &pick(&self.retention, &file.retention, "7d"))?,
            max_request_size: size(
                "--max-request-size",
                &pick(&self.max_request_size, &file.max_request_size, "16MiB"),
            )? as usize,
            max_queue_size: size(
                "--max-queue-size",
                &pick(&self.max_queue_size, &file.max_queue_size, "256MiB"),
            )?,
            seal_spans,
            seal_interval: duration(
                "--seal-interval",
                &pick(&self.seal_interval, &file.seal_interval, "10s"),
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Some(16 << 20));
        assert_eq!(parse_size("10"), Some(10));
        assert_eq!(parse_size("2kb"), Some(2000));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn errors_name_the_value() {
        let a = ServeArgs {
            retention: Some("soon".into()),
            ..Default::default()
        };
        let e = a.resolve().unwrap_err().to_string();
        assert!(e.contains("--retention") && e.contains("soon"), "{e}");
        let a = ServeArgs {
            listen: Some("nohost".into()),
            ..Default::default()
        };
        assert!(a.resolve().unwrap_err().to_string().contains("--listen"));
    }
}
