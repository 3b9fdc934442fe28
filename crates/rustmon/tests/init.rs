//! `rustmon::builder().init()`: the global monitor, config files, the guard's flush.

use rustmon::{Event, Kind};
use rustmon_test::Capture;

fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("rustmon-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn init_installs_the_global_monitor_and_the_guard_flushes() {
    let capture = Capture::new();
    let config = temp_file(
        "ok.toml",
        "[core]\nbatch_size = 64\n\n[web]\nrecord_headers = true\n",
    );
    let guard = rustmon::builder("checkout")
        .version("1.2.3")
        .without_env()
        .without_otlp()
        .config_file(&config)
        .listener(capture.listener())
        .init()
        .unwrap();
    assert_eq!(guard.monitor().core_config().get().batch_size, 64);
    let mut e = Event::start(Kind::Custom, "place-order");
    e.set("order.items", 3_i64);
    e.finish();
    drop(guard); // flushes
    let e = capture
        .expect("place-order")
        .attr("order.items", 3_i64)
        .one();
    assert_eq!(e.kind, Kind::Custom);
    let resource = capture.resource().unwrap();
    assert_eq!(resource.service_name, "checkout");
    assert_eq!(resource.service_version.as_deref(), Some("1.2.3"));
    std::fs::remove_file(config).unwrap();
}

#[test]
fn config_file_errors_name_the_file_and_field() {
    let bad_toml = temp_file("bad.toml", "[core\nsample_rate = 0.5\n");
    let err = rustmon::builder("svc")
        .without_env()
        .without_otlp()
        .config_file(&bad_toml)
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("config file {}", bad_toml.display())),
        "{err}"
    );

    let bad_value = temp_file("bad-value.toml", "[core]\nsample_rate = 7\n");
    let err = rustmon::builder("svc")
        .without_env()
        .without_otlp()
        .config_file(&bad_value)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid config for `core`: field `sample_rate`: must be between 0 and 1, got 7"
    );

    let missing = rustmon::builder("svc")
        .without_env()
        .without_otlp()
        .config_file("/nonexistent/rustmon.toml")
        .build()
        .unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/rustmon.toml"),
        "{missing}"
    );
    for f in [bad_toml, bad_value] {
        std::fs::remove_file(f).unwrap();
    }
}

#[test]
fn a_bad_otlp_endpoint_is_reported() {
    let err = rustmon::builder("svc")
        .without_env()
        .otlp(rustmon::otlp::OtlpExporter::builder().endpoint("not a url"))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("not a url"), "{err}");
}
