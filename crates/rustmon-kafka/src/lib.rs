//! Kafka monitoring on [rdkafka](https://docs.rs/rdkafka): producer and consumer messaging
//! events with the W3C trace context carried in message headers, and librdkafka statistics as
//! metrics.
//!
//! - [`MonitoredProducer`] wraps a `FutureProducer`: one [`Kind::Messaging`] event per message,
//!   `send {topic}`, from `send` to the delivery report, with partition, offset and delivery
//!   errors; `traceparent` (and `tracestate`) go into the message headers.
//! - [`MonitoredBaseProducer`] does the same for a `BaseProducer` or `ThreadedProducer` created
//!   with a [`MonitoredContext`], whose delivery callback ends the events.
//! - [`MonitoredConsumer`] wraps a `StreamConsumer` or `BaseConsumer`: one event per message
//!   processed, `process {topic}`, continuing the producer's trace from the headers and current
//!   while the processing code runs ([`MonitoredConsumer::process`],
//!   [`MonitoredConsumer::process_sync`], [`MonitoredConsumer::start`]).
//! - [`StatsContext`] (or [`record_statistics`] from your own context): librdkafka statistics
//!   (`statistics.interval.ms`) as gauges — broker round-trip time, producer queue sizes,
//!   consumer lag per partition.
//!
//! Attribute names follow the OpenTelemetry messaging conventions (`messaging.system = kafka`,
//! `messaging.destination.name`, `messaging.operation.type`, `messaging.kafka.offset`, …).
//! Configuration: [`KafkaConfig`] (plugin `kafka`), live.
//!
//! [`Kind::Messaging`]: rustmon_core::Kind::Messaging
//!
//! # Examples
//! ```no_run
//! use std::time::Duration;
//! use rdkafka::ClientConfig;
//! use rdkafka::consumer::{Consumer, StreamConsumer};
//! use rdkafka::producer::{FutureProducer, FutureRecord};
//! use rustmon_kafka::{MonitoredConsumer, MonitoredProducer, StatsContext};
//! # async fn demo() -> Result<(), rdkafka::error::KafkaError> {
//! let mut config = ClientConfig::new();
//! config.set("bootstrap.servers", "127.0.0.1:9092").set("statistics.interval.ms", "10000");
//!
//! let producer: FutureProducer<StatsContext> = config.create_with_context(StatsContext::new())?;
//! let producer = MonitoredProducer::new(producer);
//! producer
//!     .send(FutureRecord::to("orders").key("42").payload("{}"), Duration::from_secs(5))
//!     .await
//!     .map_err(|(e, _)| e)?;
//!
//! let consumer: StreamConsumer<StatsContext> =
//!     config.set("group.id", "billing").create_with_context(StatsContext::new())?;
//! let consumer = MonitoredConsumer::new(consumer);
//! consumer.subscribe(&["orders"])?;
//! let msg = consumer.recv().await?;
//! consumer.process(&msg, async { /* handle the message */ }).await;
//! # Ok(()) }
//! ```

mod base_producer;
mod config;
mod consumer;
mod producer;
mod shared;
mod stats;

pub use base_producer::{MonitoredBaseProducer, MonitoredContext, Tracked, TrackingProducer};
pub use config::KafkaConfig;
pub use consumer::{KafkaConsumer, MonitoredConsumer, Outcome, Process};
pub use producer::{MonitoredDeliveryFuture, MonitoredProducer};
pub use stats::{StatsContext, record_statistics};

/// The plugin name events are tagged with, and the configuration section.
pub const PLUGIN: &str = "kafka";
