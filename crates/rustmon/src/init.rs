//! `rustmon::init`: the global monitor in one line.

use std::path::PathBuf;
use std::time::Duration;

use rustmon_core::{CoreConfig, JsonLines, KeyValue, Listener, Monitor, MonitorError, Resource};

use crate::env;

/// Why monitoring could not start.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// An environment variable had a value that cannot be used.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// What was wrong.
        message: String,
    },
    /// The configuration file could not be read or parsed.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A configuration value was invalid, or the pipeline could not start.
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    /// A configuration value was invalid.
    #[error(transparent)]
    Config(#[from] rustmon_core::ConfigError),
    /// The OTLP exporter's settings were invalid.
    #[cfg(feature = "otlp")]
    #[error(transparent)]
    Otlp(#[from] rustmon_otlp::Error),
    /// A plugin could not start (e.g. the central-configuration poller's URL is invalid).
    #[error(transparent)]
    Plugin(rustmon_core::PluginError),
    /// The JSON-lines log file could not be opened.
    #[error("cannot open RUSTMON_LOG file {path}: {source}")]
    Log {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Starts monitoring `service` with the defaults and the environment; see [`Builder`].
///
/// # Examples
/// ```no_run
/// let _guard = rustmon::init("checkout-api")?;
/// # Ok::<(), rustmon::InitError>(())
/// ```
pub fn init(service: impl Into<String>) -> Result<Guard, InitError> {
    builder(service).init()
}

/// A [`Builder`] for `service`.
pub fn builder(service: impl Into<String>) -> Builder {
    Builder {
        service: service.into(),
        version: None,
        environment: None,
        app_id: None,
        attributes: Vec::new(),
        core: None,
        configs: Vec::new(),
        config_file: None,
        listeners: Vec::new(),
        read_env: true,
        #[cfg(feature = "otlp")]
        otlp: Some(rustmon_otlp::OtlpExporter::builder()),
        #[cfg(feature = "otlp")]
        remote_config: None,
        shutdown_timeout: Duration::from_secs(5),
    }
}

/// Everything [`init`] does, adjustable.
///
/// Sources, later ones winning: defaults, the builder, the config file (`config_file` or
/// `RUSTMON_CONFIG`), then the environment:
///
/// | Variable | Meaning |
/// |---|---|
/// | `OTEL_SERVICE_NAME` | the service name (overrides the one given in code) |
/// | `OTEL_RESOURCE_ATTRIBUTES` | `k=v,…`: `service.version`, `deployment.environment.name`, `service.instance.id`, `rustmon.app.id`, others kept as resource attributes |
/// | `OTEL_SDK_DISABLED` | `true` starts with monitoring disabled |
/// | `OTEL_EXPORTER_OTLP_*` | the exporter: endpoint, headers, timeout, compression |
/// | `RUSTMON_ENABLED` | `false` starts with monitoring disabled |
/// | `RUSTMON_CONFIG` | path of a TOML (or `.json`) file with a table per plugin |
/// | `RUSTMON_LOG` | `stdout`, `stderr` or a file path: also write events as JSON lines |
/// | `RUSTMON_OTLP` | `false`: no OTLP exporter |
/// | `RUSTMON_API_URL` | the collector's API (e.g. `http://127.0.0.1:7070`): poll it for the central configuration |
/// | `RUSTMON_<PLUGIN>__<FIELD>` | one setting, e.g. `RUSTMON_CORE__SAMPLE_RATE=0.1` |
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// let _guard = rustmon::builder("checkout-api")
///     .version(env!("CARGO_PKG_VERSION"))
///     .environment("production")
///     .plugin_config("core", serde_json::json!({ "sample_rate": 0.2 }))
///     .shutdown_timeout(Duration::from_secs(2))
///     .init()?;
/// # Ok::<(), rustmon::InitError>(())
/// ```
#[must_use]
pub struct Builder {
    service: String,
    version: Option<String>,
    environment: Option<String>,
    app_id: Option<String>,
    attributes: Vec<KeyValue>,
    core: Option<CoreConfig>,
    configs: Vec<(String, serde_json::Value)>,
    config_file: Option<PathBuf>,
    listeners: Vec<Box<dyn FnOnce(rustmon_core::MonitorBuilder) -> rustmon_core::MonitorBuilder>>,
    read_env: bool,
    #[cfg(feature = "otlp")]
    otlp: Option<rustmon_otlp::OtlpExporterBuilder>,
    #[cfg(feature = "otlp")]
    remote_config: Option<String>,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("service", &self.service)
            .field("version", &self.version)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// `service.version`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// `deployment.environment.name`.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// An application id grouping several services.
    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = Some(app_id.into());
        self
    }

    /// A further resource attribute.
    pub fn resource_attribute(
        mut self,
        key: &'static str,
        value: impl Into<rustmon_core::Value>,
    ) -> Self {
        self.attributes.push(KeyValue::new(key, value));
        self
    }

    /// rustmon's own configuration (sampling, queue, batching, limits).
    pub fn core_config(mut self, config: CoreConfig) -> Self {
        self.core = Some(config);
        self
    }

    /// A configuration patch for plugin `name` (validated when the plugin registers).
    pub fn plugin_config(mut self, name: impl Into<String>, patch: serde_json::Value) -> Self {
        self.configs.push((name.into(), patch));
        self
    }

    /// A TOML (or `.json`) file with one table per plugin, e.g. `[core] sample_rate = 0.2`.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// Adds a listener.
    pub fn listener<L: Listener>(mut self, listener: L) -> Self {
        self.listeners.push(Box::new(move |b| b.listener(listener)));
        self
    }

    /// Ignore the environment variables (for tests and embedded uses).
    pub fn without_env(mut self) -> Self {
        self.read_env = false;
        self
    }

    /// Configures the OTLP exporter.
    #[cfg(feature = "otlp")]
    pub fn otlp(mut self, exporter: rustmon_otlp::OtlpExporterBuilder) -> Self {
        self.otlp = Some(exporter);
        self
    }

    /// No OTLP exporter (listeners only).
    #[cfg(feature = "otlp")]
    pub fn without_otlp(mut self) -> Self {
        self.otlp = None;
        self
    }

    /// Polls the collector whose API is at `api_url` (e.g. `http://127.0.0.1:7070`) for this
    /// service's central configuration and applies it live (also `RUSTMON_API_URL`).
    #[cfg(feature = "otlp")]
    pub fn remote_config(mut self, api_url: impl Into<String>) -> Self {
        self.remote_config = Some(api_url.into());
        self
    }

    /// How long dropping the [`Guard`] waits for the last events to be delivered (default 5 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Builds the monitor without installing it globally.
    pub fn build(self) -> Result<Monitor, InitError> {
        let var = |name: &str| {
            if self.read_env {
                std::env::var(name).ok().filter(|v| !v.trim().is_empty())
            } else {
                None
            }
        };
        let mut resource = Resource::new(var("OTEL_SERVICE_NAME").unwrap_or(self.service.clone()));
        resource.service_version = self.version.clone();
        resource.environment = self.environment.clone();
        resource.app_id = self.app_id.clone();
        resource.attributes = self.attributes.clone();
        if let Some(raw) = var("OTEL_RESOURCE_ATTRIBUTES") {
            for (k, v) in env::resource_attributes(&raw)? {
                match k.as_str() {
                    "service.name" if var("OTEL_SERVICE_NAME").is_none() => {
                        resource.service_name = v
                    }
                    "service.name" => {}
                    "service.version" => resource.service_version = Some(v),
                    "deployment.environment.name" | "deployment.environment" => {
                        resource.environment = Some(v)
                    }
                    "service.instance.id" => resource.instance_id = v,
                    "host.name" => resource.host = v,
                    "rustmon.app.id" => resource.app_id = Some(v),
                    _ => resource.attributes.push(KeyValue::new(k, v)),
                }
            }
        }

        let mut enabled = true;
        if let Some(v) = var("OTEL_SDK_DISABLED") {
            enabled &= !env::parse_bool("OTEL_SDK_DISABLED", &v)?;
        }
        if let Some(v) = var("RUSTMON_ENABLED") {
            enabled &= env::parse_bool("RUSTMON_ENABLED", &v)?;
        }

        let mut mb = Monitor::builder(resource.service_name.clone())
            .resource(resource)
            .enabled(enabled);
        if let Some(core) = self.core {
            mb = mb.core_config(core);
        }
        for (name, patch) in self.configs {
            mb = mb.plugin_config(name, patch);
        }
        let file = var("RUSTMON_CONFIG")
            .map(PathBuf::from)
            .or(self.config_file);
        if let Some(path) = file {
            for (name, patch) in env::config_file(&path)? {
                mb = mb.plugin_config(name, patch);
            }
        }
        if self.read_env {
            for (name, patch) in env::plugin_patches(std::env::vars()) {
                mb = mb.plugin_config(name, patch);
            }
        }
        for add in self.listeners {
            mb = add(mb);
        }
        if let Some(target) = var("RUSTMON_LOG") {
            mb = match target.as_str() {
                "stdout" => mb.listener(JsonLines::stdout()),
                "stderr" => mb.listener(JsonLines::new(std::io::stderr())),
                path => mb.listener(JsonLines::file(path).map_err(|source| InitError::Log {
                    path: path.to_owned(),
                    source,
                })?),
            };
        }
        #[cfg(feature = "otlp")]
        let remote_config = var("RUSTMON_API_URL").or(self.remote_config);
        #[cfg(feature = "otlp")]
        {
            let otlp_on = match var("RUSTMON_OTLP") {
                Some(v) => env::parse_bool("RUSTMON_OTLP", &v)?,
                None => true,
            };
            if let (Some(exporter), true) = (self.otlp, otlp_on) {
                mb = mb.listener(exporter.with_env(self.read_env).build()?);
            }
        }
        let monitor = mb.build()?;
        #[cfg(feature = "otlp")]
        if let Some(url) = remote_config {
            monitor
                .register_plugin(rustmon_otlp::RemoteConfig::new(url))
                .map_err(InitError::Plugin)?;
        }
        Ok(monitor)
    }

    /// Builds the monitor and installs it as the global one. Keep the guard alive for as long as
    /// the program should be monitored; dropping it flushes and shuts down.
    pub fn init(self) -> Result<Guard, InitError> {
        let timeout = self.shutdown_timeout;
        let monitor = self.build()?;
        monitor.install_global();
        Ok(Guard { monitor, timeout })
    }
}

/// Keeps monitoring running; flushes and shuts down the monitor when dropped.
#[must_use = "monitoring stops when the guard is dropped"]
#[derive(Debug)]
pub struct Guard {
    monitor: Monitor,
    timeout: Duration,
}

impl Guard {
    /// The monitor: for stats, live configuration, enabling and disabling.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.monitor.shutdown(self.timeout);
    }
}
