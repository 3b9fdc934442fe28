//! [`RuntimeConfig`]: the runtime plugin's live configuration.

use rustmon_core::config::{FieldError, PluginConfig};
use serde::{Deserialize, Serialize};

/// How heap profile sites are ordered (the seed's orders). In configuration it is written in
/// snake case, e.g. `"live_bytes"`.
///
/// # Examples
/// ```
/// use rustmon_runtime::ProfileOrder;
/// let order: ProfileOrder = serde_json::from_str("\"live_objects\"").unwrap();
/// assert_eq!(order, ProfileOrder::LiveObjects);
/// assert_eq!(order.as_str(), "live_objects");
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProfileOrder {
    /// Estimated bytes allocated at the site since the program started.
    #[default]
    AllocatedBytes,
    /// Estimated bytes freed that were allocated at the site.
    FreedBytes,
    /// Estimated allocations made at the site.
    AllocatedObjects,
    /// Estimated frees of allocations made at the site.
    FreedObjects,
    /// Estimated bytes allocated at the site and still live.
    LiveBytes,
    /// Estimated allocations made at the site and still live.
    LiveObjects,
}

impl ProfileOrder {
    /// The lowercase name, as in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileOrder::AllocatedBytes => "allocated_bytes",
            ProfileOrder::FreedBytes => "freed_bytes",
            ProfileOrder::AllocatedObjects => "allocated_objects",
            ProfileOrder::FreedObjects => "freed_objects",
            ProfileOrder::LiveBytes => "live_bytes",
            ProfileOrder::LiveObjects => "live_objects",
        }
    }
}

/// The runtime plugin's configuration, section `runtime`. Every field is live: the sampler thread
/// reads it on each tick.
///
/// # Examples
/// ```
/// use rustmon_core::Monitor;
/// use rustmon_runtime::RuntimeConfig;
///
/// let monitor = Monitor::builder("svc").build().unwrap();
/// // Profile the heap every 30 s, by live bytes, top 10 sites.
/// monitor
///     .update_config(
///         "runtime",
///         &serde_json::json!({ "profile_interval_ms": 30000, "profile_order": "live_bytes", "profile_limit": 10 }),
///     )
///     .unwrap();
/// assert_eq!(RuntimeConfig::default().interval_ms, 5000);
/// # monitor.shutdown(std::time::Duration::from_secs(1));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// How often process, heap-counter, thread and tokio metrics are sampled (ms, at least 10).
    pub interval_ms: u64,
    /// Process metrics (CPU, memory, file descriptors, context switches, uptime) on or off.
    pub process: bool,
    /// Thread count by name on or off (`process.thread.count` itself is part of `process`).
    pub threads: bool,
    /// Heap counters from the [`TrackingAllocator`](crate::TrackingAllocator) on or off (only
    /// reported when the application installed it).
    pub heap: bool,
    /// Tokio runtime metrics on or off (for runtimes the plugin was given or found).
    pub tokio: bool,
    /// Sampled allocation profiling on or off (needs the tracking allocator).
    pub profile: bool,
    /// On average one sample per this many allocated bytes (at least 1024).
    pub profile_sample_bytes: u64,
    /// How often the heap profile is exported as events (ms, at least 100).
    pub profile_interval_ms: u64,
    /// Which quantity orders the profile's sites.
    pub profile_order: ProfileOrder,
    /// Ascending instead of descending order.
    pub profile_ascending: bool,
    /// How many sites each profile exports (1..=1000).
    pub profile_limit: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            interval_ms: 5000,
            process: true,
            threads: true,
            heap: true,
            tokio: true,
            profile: true,
            profile_sample_bytes: crate::heap::DEFAULT_SAMPLE_BYTES,
            profile_interval_ms: 60_000,
            profile_order: ProfileOrder::AllocatedBytes,
            profile_ascending: false,
            profile_limit: 20,
        }
    }
}

impl PluginConfig for RuntimeConfig {
    const NAME: &'static str = "runtime";

    fn validate(&self) -> Result<(), FieldError> {
        let at_least = |field: &str, value: u64, min: u64| {
            if value < min {
                Err(FieldError::new(
                    field,
                    format!("must be at least {min}, got {value}"),
                ))
            } else {
                Ok(())
            }
        };
        at_least("interval_ms", self.interval_ms, 10)?;
        at_least("profile_interval_ms", self.profile_interval_ms, 100)?;
        at_least("profile_sample_bytes", self.profile_sample_bytes, 1024)?;
        if !(1..=1000).contains(&self.profile_limit) {
            return Err(FieldError::new(
                "profile_limit",
                format!("must be between 1 and 1000, got {}", self.profile_limit),
            ));
        }
        Ok(())
    }
}
