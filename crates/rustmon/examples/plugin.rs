//! A small plugin with a live configuration and a listener that hears only its events.
//!
//! Run: `cargo run -p rustmon --example plugin`

use std::time::Duration;

use rustmon::config::{FieldError, PluginConfig};
use rustmon::{Batch, Kind, Listener, Monitor, Plugin, PluginContext, PluginError, PluginListener};

/// The configuration: serde with defaults; `validate` names the field that is wrong.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct QueueWatchConfig {
    queue: String,
    slow_ms: u64,
}

impl Default for QueueWatchConfig {
    fn default() -> Self {
        QueueWatchConfig {
            queue: "jobs".into(),
            slow_ms: 200,
        }
    }
}

impl PluginConfig for QueueWatchConfig {
    const NAME: &'static str = "queue_watch";
    fn validate(&self) -> Result<(), FieldError> {
        if self.slow_ms == 0 {
            return Err(FieldError::new("slow_ms", "must be at least 1"));
        }
        Ok(())
    }
}

struct QueueWatch;

impl Plugin for QueueWatch {
    type Config = QueueWatchConfig;
    fn start(&mut self, ctx: PluginContext<QueueWatchConfig>) -> Result<(), PluginError> {
        let config = ctx.config.clone(); // lock-free reads, sees live updates
        let monitor = ctx.monitor.clone();
        std::thread::spawn(move || {
            loop {
                let c = config.get();
                let mut e = monitor
                    .start_event(Kind::Messaging, "poll jobs")
                    .with_plugin("queue_watch");
                e.set("messaging.destination.name", c.queue.clone());
                std::thread::sleep(Duration::from_millis(c.slow_ms));
                e.finish();
            }
        });
        Ok(())
    }
}

/// Hears only the plugin's events.
struct SlowPolls;

impl Listener for SlowPolls {
    fn on_events(&mut self, batch: &Batch<'_>) {
        for e in batch
            .iter()
            .filter(|e| e.duration() > Duration::from_millis(50))
        {
            println!(
                "slow poll of {} took {:?}",
                e.attribute("messaging.destination.name")
                    .map_or(String::new(), |v| v.to_string()),
                e.duration()
            );
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let monitor = Monitor::builder("worker")
        .listener(PluginListener::new("queue_watch", SlowPolls))
        // Set before the plugin registers: applied when it does.
        .plugin_config("queue_watch", serde_json::json!({ "queue": "emails" }))
        .build()?;
    let config = monitor.register_plugin(QueueWatch)?;
    std::thread::sleep(Duration::from_millis(500));

    monitor.update_config("queue_watch", &serde_json::json!({ "slow_ms": 60 }))?; // live
    let rejected = monitor.update_config("queue_watch", &serde_json::json!({ "slow_ms": 0 }));
    println!("{}", rejected.unwrap_err()); // names the field; the old value stays
    assert_eq!(config.get().slow_ms, 60);

    std::thread::sleep(Duration::from_millis(500));
    monitor.shutdown(Duration::from_secs(5));
    Ok(())
}
