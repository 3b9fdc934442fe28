//! The monitor a layer records into, its configuration and its interned names.

use std::sync::OnceLock;

use rustmon_core::{ConfigHandle, Monitor};

use crate::config::GrpcConfig;
use crate::names::Names;

pub(crate) struct Shared {
    monitor: Option<Monitor>,
    config: OnceLock<ConfigHandle<GrpcConfig>>,
    pub(crate) names: Names,
}

impl Shared {
    pub(crate) fn new(monitor: Option<Monitor>) -> Shared {
        let config = OnceLock::new();
        if let Some(m) = &monitor {
            let _ = config.set(m.config::<GrpcConfig>());
        }
        Shared {
            monitor,
            config,
            names: Names::default(),
        }
    }

    pub(crate) fn has_monitor(&self) -> bool {
        self.monitor.is_some()
    }

    /// The monitor to record into and its configuration, if monitoring is on.
    #[inline]
    pub(crate) fn active(&self) -> Option<(&Monitor, &ConfigHandle<GrpcConfig>)> {
        let m = match &self.monitor {
            Some(m) => m,
            None => rustmon_core::global()?,
        };
        if !m.is_enabled() {
            return None;
        }
        Some((m, self.config.get_or_init(|| m.config::<GrpcConfig>())))
    }
}
