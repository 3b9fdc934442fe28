//! rustmon's runtime monitoring: process CPU and memory, threads, heap counters and sampled
//! allocation profiles, and tokio runtime metrics, exported through the monitor as OTLP-friendly
//! metrics (semantic-convention names where they exist) and profile events.
//!
//! - [`RuntimePlugin`]: started with one line, samples on its own thread (config [`RuntimeConfig`],
//!   section `runtime`, every field live).
//! - [`TrackingAllocator`]: opt-in global allocator with exact per-thread counters and sampled
//!   allocation profiling ([`heap`], [`profile`]).
//! - `jemalloc` (feature `jemalloc`): jemalloc's own statistics when jemalloc is the global
//!   allocator, exported by the plugin as `rustmon.heap.jemalloc.*`.
//! - [`MeasureExt`]: per-request measurements from a future's own polls (bytes allocated, time
//!   polled, time waiting to be scheduled), set as attributes of its event ([`measure`]).
//!
//! # Examples
//! ```
//! use rustmon_core::Monitor;
//! use rustmon_runtime::RuntimePlugin;
//!
//! // In the application (optional, for heap metrics and profiles):
//! // #[global_allocator]
//! // static GLOBAL: rustmon_runtime::TrackingAllocator = rustmon_runtime::TrackingAllocator::system();
//!
//! let monitor = Monitor::builder("checkout").build().unwrap();
//! monitor.register_plugin(RuntimePlugin::new()).unwrap();
//! # monitor.shutdown(std::time::Duration::from_secs(5));
//! ```

mod config;
pub mod heap;
#[cfg(feature = "jemalloc")]
pub mod jemalloc;
pub mod measure;
mod plugin;
mod process;
pub mod profile;
mod sampler;
#[cfg(feature = "tokio")]
mod tokio_rt;

pub use config::{ProfileOrder, RuntimeConfig};
pub use heap::{
    HeapMode, HeapStats, TrackingAllocator, allocated_bytes_on_this_thread,
    allocations_on_this_thread,
};
pub use measure::{InEvent, MeasureExt, Measured, TaskStats};
pub use plugin::{RuntimePlugin, export_profile};
pub use process::{ProcessSample, ProcessSampler, thread_names};
pub use sampler::{MAX_THREAD_NAMES, RuntimeSampler};
#[cfg(feature = "tokio")]
pub use tokio_rt::UNAVAILABLE as TOKIO_UNAVAILABLE_METRICS;

/// Why a runtime reading failed.
///
/// # Examples
/// ```
/// let e = rustmon_runtime::RuntimeError::Unavailable("process metrics");
/// assert_eq!(e.to_string(), "process metrics are not available on this platform");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The platform does not offer this reading.
    #[error("{0} are not available on this platform")]
    Unavailable(&'static str),
    /// A file under `/proc` could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A file under `/proc` had an unexpected shape.
    #[error("cannot parse {file}: {message}")]
    Parse {
        /// The file.
        file: &'static str,
        /// What was wrong.
        message: &'static str,
    },
}
