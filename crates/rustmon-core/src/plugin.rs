//! Plugins: named parts of monitoring with a typed, live configuration and a lifecycle.

use crate::config::{ConfigHandle, PluginConfig};
use crate::monitor::Monitor;

/// A part of monitoring with a name, a typed live configuration, and start/stop.
///
/// The plugin's name is its config's [`PluginConfig::NAME`]; events it records should be tagged
/// with it ([`Event::with_plugin`](crate::Event::with_plugin)) so that a
/// [`PluginListener`](crate::PluginListener) hears them.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use rustmon_core::{Event, Kind, Monitor, Plugin, PluginContext, PluginError};
/// use rustmon_core::config::PluginConfig;
///
/// #[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
/// #[serde(default)]
/// struct HeartbeatConfig { label: String }
/// impl PluginConfig for HeartbeatConfig { const NAME: &'static str = "heartbeat"; }
///
/// struct Heartbeat;
/// impl Plugin for Heartbeat {
///     type Config = HeartbeatConfig;
///     fn start(&mut self, ctx: PluginContext<HeartbeatConfig>) -> Result<(), PluginError> {
///         let label = ctx.config.get().label.clone();
///         ctx.monitor.start_event(Kind::Runtime, "heartbeat").with_plugin("heartbeat").with("label", label).finish();
///         Ok(())
///     }
/// }
///
/// let monitor = Monitor::builder("svc").build().unwrap();
/// monitor.register_plugin(Heartbeat).unwrap();
/// monitor.shutdown(Duration::from_secs(1));
/// ```
pub trait Plugin: Send + 'static {
    /// The plugin's configuration.
    type Config: PluginConfig;

    /// Starts the plugin (spawn its sampler thread, install hooks). Called once, on registration.
    fn start(&mut self, ctx: PluginContext<Self::Config>) -> Result<(), PluginError>;

    /// Stops the plugin; called once when the monitor shuts down.
    fn stop(&mut self) {}
}

/// What a plugin gets when it starts.
#[derive(Debug)]
pub struct PluginContext<C> {
    /// The monitor the plugin records into.
    pub monitor: Monitor,
    /// The plugin's live configuration.
    pub config: ConfigHandle<C>,
}

/// Why a plugin could not start.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin's start failed.
    #[error("plugin `{plugin}` failed to start: {message}")]
    Start {
        /// The plugin.
        plugin: &'static str,
        /// Why.
        message: String,
    },
    /// A plugin with this name is already registered.
    #[error("plugin `{0}` is already registered")]
    AlreadyRegistered(&'static str),
    /// The monitor has shut down.
    #[error("the monitor has shut down")]
    ShutDown,
}

pub(crate) trait RunningPlugin: Send {
    fn name(&self) -> &'static str;
    fn stop(&mut self);
}

pub(crate) struct Running<P>(pub(crate) P);

impl<P: Plugin> RunningPlugin for Running<P> {
    fn name(&self) -> &'static str {
        P::Config::NAME
    }
    fn stop(&mut self) {
        self.0.stop()
    }
}
