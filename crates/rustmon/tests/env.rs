//! `rustmon::init` honours the OpenTelemetry and `RUSTMON_*` environment variables.

use rustmon_test::Capture;

#[test]
fn environment_variables_configure_the_monitor() {
    // SAFETY: this test binary has a single test, so no other thread reads the environment.
    unsafe {
        std::env::set_var("OTEL_SERVICE_NAME", "from-env");
        std::env::set_var(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.version=9.9,deployment.environment.name=staging,team=pay%20ments",
        );
        std::env::set_var("RUSTMON_CORE__BATCH_SIZE", "7");
        std::env::set_var("RUSTMON_WEB__IGNORE", r#"["/health"]"#);
        std::env::set_var("RUSTMON_OTLP", "false");
        std::env::set_var("RUSTMON_ENABLED", "no");
    }
    let capture = Capture::new();
    let guard = rustmon::builder("from-code")
        .listener(capture.listener())
        .init()
        .unwrap();
    let m = guard.monitor();
    let r = m.resource();
    assert_eq!(r.service_name, "from-env");
    assert_eq!(r.service_version.as_deref(), Some("9.9"));
    assert_eq!(r.environment.as_deref(), Some("staging"));
    assert!(
        r.attributes
            .iter()
            .any(|kv| kv.key == "team" && kv.value.as_str() == Some("pay ments"))
    );
    assert_eq!(m.core_config().get().batch_size, 7);
    assert!(!m.is_enabled());
    assert!(m.config_snapshot().iter().all(|(name, _, _)| name != "web"));

    // SAFETY: as above.
    unsafe { std::env::set_var("RUSTMON_ENABLED", "maybe") };
    let err = rustmon::builder("x").build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable RUSTMON_ENABLED: expected true or false, got \"maybe\""
    );
}
