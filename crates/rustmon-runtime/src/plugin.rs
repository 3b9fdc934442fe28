//! [`RuntimePlugin`]: samples runtime metrics on its own thread and exports heap profiles.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustmon_core::{ConfigHandle, Event, Kind, Monitor, Plugin, PluginContext, PluginError};

use crate::config::RuntimeConfig;
use crate::heap::{self, HeapMode};
use crate::profile::{Symbols, heap_profile};
use crate::sampler::RuntimeSampler;

/// Runtime monitoring: process CPU and memory, threads, heap counters and profiles, tokio
/// runtimes. Samples on its own thread (`rustmon-runtime`) every `interval_ms` and hands metrics
/// to the monitor; exports the heap profile every `profile_interval_ms` as events.
///
/// # Examples
/// ```
/// use rustmon_core::Monitor;
/// use rustmon_runtime::RuntimePlugin;
///
/// let monitor = Monitor::builder("svc").build().unwrap();
/// monitor.register_plugin(RuntimePlugin::new()).unwrap();
/// # monitor.shutdown(std::time::Duration::from_secs(5));
/// ```
#[derive(Debug)]
pub struct RuntimePlugin {
    sampler: Option<RuntimeSampler>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl RuntimePlugin {
    /// A plugin; when created inside a tokio runtime, that runtime is monitored too (as `main`).
    pub fn new() -> Self {
        #[allow(unused_mut)]
        let mut sampler = RuntimeSampler::new();
        #[cfg(feature = "tokio")]
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            sampler.add_tokio_runtime("main", handle);
        }
        RuntimePlugin {
            sampler: Some(sampler),
            stop: Arc::default(),
            thread: None,
        }
    }

    /// Also monitors the tokio runtime of `handle`, labelled `tokio.runtime = name`.
    ///
    /// # Examples
    /// ```
    /// let background = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    /// let plugin = rustmon_runtime::RuntimePlugin::new().tokio_runtime("background", background.handle().clone());
    /// # drop(plugin);
    /// ```
    #[cfg(feature = "tokio")]
    pub fn tokio_runtime(
        mut self,
        name: impl Into<String>,
        handle: tokio::runtime::Handle,
    ) -> Self {
        if let Some(s) = &mut self.sampler {
            s.add_tokio_runtime(name, handle);
        }
        self
    }
}

impl Default for RuntimePlugin {
    /// The same as [`RuntimePlugin::new`].
    fn default() -> Self {
        RuntimePlugin::new()
    }
}

fn apply_heap_mode(c: &RuntimeConfig) {
    heap::set_sample_bytes(c.profile_sample_bytes);
    heap::set_mode(match (c.heap, c.profile) {
        (false, _) => HeapMode::Off,
        (true, false) => HeapMode::Counting,
        (true, true) => HeapMode::Sampling,
    });
}

impl Plugin for RuntimePlugin {
    type Config = RuntimeConfig;

    fn start(&mut self, ctx: PluginContext<RuntimeConfig>) -> Result<(), PluginError> {
        let mut sampler = self.sampler.take().unwrap_or_default();
        ctx.config.on_change(apply_heap_mode);
        let missing = sampler.unavailable();
        if !missing.is_empty() {
            // One line, so nothing is silently absent.
            let mut by_reason: Vec<(&str, Vec<&str>)> = Vec::new();
            for (what, why) in missing {
                match by_reason.iter_mut().find(|(r, _)| *r == why) {
                    Some((_, names)) => names.push(what),
                    None => by_reason.push((why, vec![what])),
                }
            }
            let parts: Vec<String> = by_reason
                .iter()
                .map(|(why, names)| format!("{} ({why})", names.join(", ")))
                .collect();
            eprintln!("rustmon-runtime: unavailable: {}", parts.join("; "));
        }
        let stop = self.stop.clone();
        let monitor = ctx.monitor;
        let config = ctx.config;
        let thread = std::thread::Builder::new()
            .name("rustmon-runtime".into())
            .spawn(move || run(&monitor, &config, &mut sampler, &stop))
            .map_err(|e| PluginError::Start {
                plugin: "runtime",
                message: format!("cannot spawn the sampler thread: {e}"),
            })?;
        self.thread = Some(thread);
        Ok(())
    }

    fn stop(&mut self) {
        // Nobody exports profiles any more: stop sampling, keep counting.
        if heap::mode() == HeapMode::Sampling {
            heap::set_mode(HeapMode::Counting);
        }
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    monitor: &Monitor,
    config: &ConfigHandle<RuntimeConfig>,
    sampler: &mut RuntimeSampler,
    stop: &(Mutex<bool>, Condvar),
) {
    let mut symbols = Symbols::new();
    let mut next_sample = Instant::now();
    let mut next_profile = Instant::now() + Duration::from_millis(config.get().profile_interval_ms);
    loop {
        let now = Instant::now();
        let cfg = config.get();
        if now >= next_sample {
            let metrics = sampler.sample(&cfg);
            monitor.record_metrics(metrics);
            next_sample = now + Duration::from_millis(cfg.interval_ms);
        }
        if now >= next_profile {
            if cfg.heap && cfg.profile && heap::is_installed() {
                export_profile(monitor, &cfg, &mut symbols);
            }
            next_profile = now + Duration::from_millis(cfg.profile_interval_ms);
        }
        // Wake at the next deadline, but at least every 250 ms so interval changes apply soon.
        let wait = next_sample
            .min(next_profile)
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(250));
        drop(cfg);
        let (lock, cv) = stop;
        let stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
        if *stopped {
            return;
        }
        let (stopped, _) = cv
            .wait_timeout(stopped, wait)
            .unwrap_or_else(PoisonError::into_inner);
        if *stopped {
            return;
        }
    }
}

/// Exports the heap profile now: one `heap.profile` event (kind `runtime`) with the profile's
/// summary, and one child `heap.profile.site` per site, in rank order. The plugin calls it every
/// `profile_interval_ms`; call it yourself to export a profile at a moment of your choosing.
///
/// # Examples
/// ```
/// use rustmon_core::Monitor;
/// use rustmon_runtime::{export_profile, profile::Symbols, RuntimeConfig};
/// let monitor = Monitor::builder("svc").build().unwrap();
/// export_profile(&monitor, &RuntimeConfig::default(), &mut Symbols::new());
/// # monitor.shutdown(std::time::Duration::from_secs(5));
/// ```
pub fn export_profile(monitor: &Monitor, config: &RuntimeConfig, symbols: &mut Symbols) {
    let sites = heap_profile(
        symbols,
        config.profile_order,
        config.profile_ascending,
        config.profile_limit,
    );
    let stats = heap::sampler_stats();
    let mut parent = monitor
        .start_event_with_parent(Kind::Runtime, "heap.profile", None)
        .with_plugin("runtime");
    parent.set("heap.profile.order", config.profile_order.as_str());
    parent.set("heap.profile.ascending", config.profile_ascending);
    parent.set("heap.profile.sample_bytes", heap::sample_bytes() as i64);
    parent.set("heap.profile.samples", stats.samples as i64);
    parent.set("heap.profile.sites", sites.len() as i64);
    parent.set("heap.profile.untracked", stats.untracked as i64);
    for (rank, site) in sites.iter().enumerate() {
        let mut e: Event = parent
            .new_child(Kind::Runtime, "heap.profile.site")
            .with_plugin("runtime");
        let s = &site.stats;
        e.set("heap.site.rank", rank as i64 + 1);
        e.set("heap.site.allocated_bytes", s.allocated_bytes as i64);
        e.set("heap.site.allocated_objects", s.allocated_objects as i64);
        e.set("heap.site.freed_bytes", s.freed_bytes as i64);
        e.set("heap.site.freed_objects", s.freed_objects as i64);
        e.set("heap.site.live_bytes", s.live_bytes() as i64);
        e.set("heap.site.live_objects", s.live_objects() as i64);
        let top = site
            .frames
            .first()
            .map_or_else(|| "(other)".to_owned(), |f| f.function.clone());
        e.set("code.function.name", top);
        if let Some(f) = site.frames.first() {
            if let Some(file) = &f.file {
                e.set("code.file.path", file.clone());
            }
            if let Some(line) = f.line {
                e.set("code.line.number", i64::from(line));
            }
        }
        let stack: Vec<String> = site.frames.iter().map(ToString::to_string).collect();
        e.set("code.stacktrace", stack.join("\n"));
        e.finish();
    }
    parent.finish();
}
