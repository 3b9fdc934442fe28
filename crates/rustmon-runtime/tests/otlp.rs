//! Runtime metrics through the OTLP exporter to a real HTTP server on 127.0.0.1, decoded with the
//! `opentelemetry-proto` types.

use rustmon_test::otlp_receiver as common;

use common::{TestServer, WAIT};
use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric as OtlpMetric, metric::Data, number_data_point,
};
use rustmon_core::{CoreConfig, Monitor};
use rustmon_otlp::OtlpExporter;
use rustmon_runtime::RuntimePlugin;
use rustmon_test::Capture;

fn attr(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue], key: &str) -> Option<V> {
    kvs.iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value)
}

#[test]
fn runtime_metrics_arrive_decoded_on_an_otlp_receiver() {
    let server = TestServer::start();
    let capture = Capture::new();
    let exporter = OtlpExporter::builder()
        .endpoint(format!("{}/", server.endpoint()))
        .with_env(false)
        .build()
        .unwrap();
    let handle = exporter.handle();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let monitor = Monitor::builder("runtime-svc")
        .core_config(CoreConfig {
            metrics_interval_ms: 3_600_000,
            ..CoreConfig::default()
        })
        .listener(capture.listener())
        .listener(exporter)
        .plugin_config("runtime", serde_json::json!({ "interval_ms": 50 }))
        .build()
        .unwrap();
    monitor
        .register_plugin(RuntimePlugin::new().tokio_runtime("app", rt.handle().clone()))
        .unwrap();
    capture.wait_for_metric("process.cpu.utilization");
    capture.wait_for_metric("tokio.worker.busy_ratio");
    assert!(monitor.shutdown(WAIT));
    assert!(handle.flush(WAIT));

    let mut otlp: Vec<OtlpMetric> = Vec::new();
    for r in server.requests().iter().filter(|r| r.path == "/v1/metrics") {
        let req = r.metrics();
        for rm in &req.resource_metrics {
            let res = &rm.resource.as_ref().unwrap().attributes;
            assert_eq!(
                attr(res, "service.name"),
                Some(V::StringValue("runtime-svc".into()))
            );
            for sm in &rm.scope_metrics {
                otlp.extend(sm.metrics.iter().cloned());
            }
        }
    }
    let named =
        |name: &str| -> Vec<&OtlpMetric> { otlp.iter().filter(|m| m.name == name).collect() };

    let cpu = named("process.cpu.time");
    assert!(
        !cpu.is_empty(),
        "no process.cpu.time among {:?}",
        otlp.iter().map(|m| &m.name).collect::<Vec<_>>()
    );
    let Some(Data::Sum(sum)) = &cpu[0].data else {
        panic!("process.cpu.time is a sum: {:?}", cpu[0])
    };
    assert!(sum.is_monotonic);
    assert_eq!(
        sum.aggregation_temporality,
        AggregationTemporality::Cumulative as i32
    );
    assert_eq!(cpu[0].unit, "s");
    let modes: Vec<_> = sum
        .data_points
        .iter()
        .filter_map(|p| attr(&p.attributes, "cpu.mode"))
        .collect();
    assert!(modes.contains(&V::StringValue("user".into())), "{modes:?}");
    assert!(
        sum.data_points
            .iter()
            .all(|p| p.start_time_unix_nano < p.time_unix_nano)
    );

    let rss = named("process.memory.usage");
    let Some(Data::Gauge(g)) = &rss[0].data else {
        panic!("process.memory.usage is a gauge")
    };
    assert_eq!(rss[0].unit, "By");
    assert!(
        matches!(g.data_points[0].value, Some(number_data_point::Value::AsInt(v)) if v > 1_000_000)
    );

    let alive = named("tokio.tasks.alive");
    let Some(Data::Gauge(g)) = &alive[0].data else {
        panic!("tokio.tasks.alive is a gauge")
    };
    assert_eq!(
        attr(&g.data_points[0].attributes, "tokio.runtime"),
        Some(V::StringValue("app".into()))
    );
    let ratio = named("tokio.worker.busy_ratio");
    let Some(Data::Gauge(g)) = &ratio[0].data else {
        panic!("busy ratio is a gauge")
    };
    assert!(g.data_points.iter().all(|p| matches!(p.value, Some(number_data_point::Value::AsDouble(r)) if (0.0..=1.0).contains(&r))));
    for name in [
        "process.memory.virtual",
        "process.thread.count",
        "process.open_file_descriptor.count",
        "process.context_switches",
        "process.uptime",
        "rustmon.thread.count",
        "tokio.workers",
        "tokio.worker.park_count",
    ] {
        assert!(!named(name).is_empty(), "{name} missing");
    }
    rt.shutdown_background();
}
