//! The dashboard mounted on a real collector (in-process, real sockets) fed realistic OTLP over
//! HTTP: every page and asset is served with the right type and headers, path parameters are
//! escaped, the collector's own routes still work, and the API answers carry what each page
//! shows (the fields the script reads).

mod support;

use serde_json::Value;
use support::{Collector, TempDir, request};

fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

fn started() -> (TempDir, Collector) {
    let dir = TempDir::new("pages");
    let c = Collector::start(&dir.0);
    c.seed(20, 60);
    (dir, c)
}

fn a_checkout_trace(c: &Collector) -> String {
    let v = c.json("/api/v1/traces?service=checkout&name=POST%20/orders&from=-2h&limit=50");
    let list = v["traces"].as_array().unwrap();
    assert!(!list.is_empty(), "{v}");
    list[0]["trace_id"].as_str().unwrap().to_string()
}

#[test]
fn every_page_and_asset_is_served() {
    let (_d, c) = started();
    let trace = a_checkout_trace(&c);
    let pages = [
        ("/ui/", "services"),
        ("/ui/services/checkout", "service"),
        (
            "/ui/services/checkout/operation?kind=server&name=POST%20%2Forders",
            "operation",
        ),
        (&*format!("/ui/traces/{trace}"), "trace"),
        ("/ui/database", "database"),
        ("/ui/database/checkout", "database"),
        ("/ui/external", "external"),
        ("/ui/external/checkout", "external"),
        ("/ui/runtime", "runtime"),
        ("/ui/runtime/checkout", "runtime"),
        ("/ui/errors", "errors"),
        ("/ui/errors?service=checkout", "errors"),
        ("/ui/map", "map"),
        ("/ui/settings", "settings"),
        ("/ui/settings/checkout", "settings"),
        ("/ui/services/checkout?range=15m", "service"),
    ];
    for (path, id) in pages {
        let r = c.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.header("content-type"),
            "text/html; charset=utf-8",
            "{path}"
        );
        assert_eq!(r.header("cache-control"), "no-cache", "{path}");
        assert!(
            r.header("content-security-policy")
                .contains("script-src 'self'")
        );
        assert_eq!(r.header("x-content-type-options"), "nosniff");
        let body = r.text();
        assert!(body.starts_with("<!doctype html>"), "{path}");
        assert!(
            body.contains(&format!("data-page=\"{id}\"")),
            "{path}: {body}"
        );
        assert!(body.contains("<script defer src=\"/ui/assets/app.js?v="));
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "no external URLs: {path}"
        );
    }
    // service-scoped pages carry the service
    assert!(
        c.get("/ui/database/checkout")
            .text()
            .contains("data-service=\"checkout\"")
    );
    assert!(
        c.get(&format!("/ui/traces/{trace}"))
            .text()
            .contains(&format!("data-trace=\"{trace}\""))
    );

    for (file, ctype) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let r = c.get(&format!("/ui/assets/{file}"));
        assert_eq!(r.status, 200, "{file}");
        assert_eq!(r.header("content-type"), ctype, "{file}");
        assert_eq!(r.header("cache-control"), "no-cache");
        assert!(r.body.len() > 100, "{file}");
        // the versioned URL the pages use is cached for good
        let page = c.get("/ui/").text();
        let v = page
            .split("app.js?v=")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let r = c.get(&format!("/ui/assets/{file}?v={v}"));
        assert_eq!(
            r.header("cache-control"),
            "public, max-age=31536000, immutable"
        );
    }
    // the script only talks to our own API
    let js = c.get("/ui/assets/app.js").text();
    assert!(js.contains("/api/v1"));
    assert!(!js.contains("http://cdn") && !js.contains("https://cdn") && !js.contains("import "));

    let r = c.get("/ui");
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), "/ui/");
    for missing in [
        "/ui/nope",
        "/ui/services/checkout/nope/x",
        "/ui/assets/evil.js",
    ] {
        let r = c.get(missing);
        assert_eq!(r.status, 404, "{missing}");
        assert_eq!(r.header("content-type"), "text/html; charset=utf-8");
        assert!(r.text().contains("data-page=\"notfound\""));
    }
    // the collector's own routes are untouched by the merge
    assert_eq!(c.get("/api/v1/health").status, 200);
    assert_eq!(c.get("/api/v1/openapi.json").status, 200);
    assert_eq!(c.get("/metrics").status, 200);
    assert_eq!(c.get("/api/v1/nope").status, 404);
    assert!(
        c.get("/api/v1/nope")
            .header("content-type")
            .starts_with("application/json")
    );
}

#[test]
fn path_parameters_are_escaped_in_the_shell() {
    let dir = TempDir::new("escape");
    let c = Collector::start(&dir.0);
    for p in [
        format!("/ui/services/{}", enc("<script>alert(1)</script>")),
        format!("/ui/traces/{}", enc("\"><img src=x onerror=alert(1)>")),
        format!("/ui/settings/{}", enc("a'b\"c<d>&e")),
    ] {
        let r = c.get(&p);
        assert_eq!(r.status, 200, "{p}");
        let t = r.text();
        assert!(
            !t.contains("<script>alert") && !t.contains("<img src=x"),
            "{p}: {t}"
        );
    }
    let t = c
        .get(&format!("/ui/settings/{}", enc("a'b\"c<d>&e")))
        .text();
    assert!(t.contains("a&#39;b&quot;c&lt;d&gt;&amp;e"), "{t}");
}

fn find<'a>(list: &'a Value, key: &str, val: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x[key] == val)
        .unwrap_or_else(|| panic!("no {key}={val} in {list}"))
}

/// What each page reads from the API, checked against the seeded shop.
#[test]
fn the_api_answers_what_the_pages_show() {
    let (_d, c) = started();
    let r = "from=-2h&to=now";
    // Services: the three services, with rates, errors and percentiles
    let v = c.json(&format!("/api/v1/services?{r}"));
    for s in ["frontend", "checkout", "catalog"] {
        let x = find(&v["services"], "service", s);
        assert!(x["count"].as_u64().unwrap() > 0, "{x}");
        for k in [
            "throughput_per_s",
            "error_rate",
            "p50_ms",
            "p95_ms",
            "p99_ms",
        ] {
            assert!(x[k].is_number(), "{s}.{k}: {x}");
        }
    }
    assert!(
        find(&v["services"], "service", "checkout")["errors"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Service: operations with time share per kind, a time series for the charts
    let ops = c.json(&format!("/api/v1/services/checkout/operations?{r}"));
    let o = find(&ops["operations"], "name", "POST /orders");
    assert_eq!(o["kind"], "server");
    for k in [
        "throughput_per_s",
        "error_rate",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "time_share",
        "total_ms",
    ] {
        assert!(o[k].is_number(), "{k}: {o}");
    }
    assert!(
        find(&ops["operations"], "name", "SELECT order_items")["count"]
            .as_u64()
            .unwrap()
            > 0
    );
    let ts = c.json(&format!("/api/v1/services/checkout/timeseries?{r}"));
    let pts = ts["points"].as_array().unwrap();
    assert!(pts.len() >= 60 && pts.iter().any(|p| p["count"].as_u64() > Some(0)));
    assert!(pts[0]["time"].is_string() && pts[0].get("p95_ms").is_some());
    // Operation: named series, spans for the histogram, slowest and failed traces
    let ts = c.json(&format!(
        "/api/v1/services/checkout/timeseries?{r}&kind=server&name=POST%20/orders"
    ));
    assert!(
        ts["points"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["count"].as_u64() > Some(0))
    );
    let slow = c.json(&format!(
        "/api/v1/traces?service=checkout&name=POST%20/orders&kind=server&sort=slowest&limit=10&{r}"
    ));
    let d: Vec<f64> = slow["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["duration_ms"].as_f64().unwrap())
        .collect();
    assert!(d.windows(2).all(|w| w[0] >= w[1]), "{d:?}");
    let hist = c.json(&format!(
        "/api/v1/services/checkout/histogram?{r}&kind=server&name=POST%20/orders"
    ));
    let counts: u64 = hist["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        counts,
        o["count"].as_u64().unwrap(),
        "every call in the histogram"
    );
    let failed = c.json(&format!(
        "/api/v1/traces?service=checkout&name=POST%20/orders&kind=server&status=error&limit=1000&{r}"
    ));
    let failed = failed["traces"].as_array().unwrap();
    assert!(!failed.is_empty());
    // Errors: groups by type and message fingerprint, exact against the failed spans
    let declined = failed
        .iter()
        .filter(|t| {
            t["events"].as_array().unwrap().iter().any(|e| {
                e["name"] == "exception"
                    && e["attributes"]["exception.type"] == "checkout::PaymentError"
            })
        })
        .count();
    let errors = c.json(&format!("/api/v1/services/checkout/errors?{r}"));
    let pay = find(&errors["groups"], "type", "checkout::PaymentError");
    assert_eq!(pay["count"], declined as u64, "{pay}");
    assert_eq!(
        pay["fingerprint"],
        "payment declined for order <n>: card_declined"
    );
    assert_eq!(pay["operations"][0]["name"], "POST /orders");
    for e in pay["examples"].as_array().unwrap() {
        let t = c.json(&format!(
            "/api/v1/traces/{}",
            e["trace_id"].as_str().unwrap()
        ));
        assert!(
            t["spans"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["span_id"] == e["span_id"] && s["status"] == "error")
        );
    }
    for k in ["first_seen", "last_seen", "message"] {
        assert!(pay[k].is_string(), "{k}: {pay}");
    }
    let all = c.json(&format!("/api/v1/errors?{r}"));
    assert!(
        all["total"].as_u64() > errors["total"].as_u64(),
        "frontend fails too"
    );
    // Trace: spans across two services with depth, offsets, database children and N+1 marks
    let id = a_checkout_trace(&c);
    let t = c.json(&format!("/api/v1/traces/{id}"));
    let spans = t["spans"].as_array().unwrap();
    let services: Vec<&str> = t["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(services, ["checkout", "frontend"]);
    assert!(
        spans.iter().all(|s| s["offset_ms"].is_number()
            && s["depth"].is_number()
            && s["span_id"].is_string())
    );
    let srv = spans.iter().find(|s| s["name"] == "POST /orders").unwrap();
    let kids: Vec<&Value> = spans
        .iter()
        .filter(|s| s["parent_span_id"] == srv["span_id"])
        .collect();
    assert!(
        kids.iter()
            .filter(|s| s["attributes"]["db.system.name"] == "postgresql")
            .count()
            >= 4
    );
    assert!(kids.iter().all(|s| s["depth"].as_u64() == Some(3)));
    let items = kids
        .iter()
        .filter(|s| s["name"] == "SELECT order_items")
        .count();
    let marked = kids
        .iter()
        .filter(|s| s["attributes"]["db.n_plus_one"] == true)
        .count();
    assert_eq!(
        marked,
        items.saturating_sub(4),
        "db.n_plus_one on the 5th and later"
    );
    assert!(
        kids.iter()
            .all(|s| s["attributes"]["db.query.summary"].is_string()
                || s["attributes"]["db.system.name"].is_null())
    );
    // Database: statements by fingerprint, and the spans behind one (the row's drill-down)
    let q = c.json(&format!("/api/v1/services/checkout/queries?{r}"));
    let items = q["queries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["fingerprint"].as_str().unwrap().contains("order_items"))
        .unwrap();
    for k in ["calls", "total_ms", "avg_ms", "p95_ms", "rows", "errors"] {
        assert!(items[k].is_number(), "{k}: {items}");
    }
    let fp = items["fingerprint"].as_str().unwrap();
    let spans = c.json(&format!("/api/v1/traces?service=checkout&kind=client&attr.db.query.summary={}&sort=slowest&limit=10&{r}", enc(fp)));
    assert!(
        !spans["traces"].as_array().unwrap().is_empty(),
        "drill-down by fingerprint {fp}"
    );
    // External calls and service map: edges by destination
    let deps = c.json(&format!("/api/v1/dependencies?{r}"));
    let e = &deps["edges"];
    let has = |a: &str, b: &str| {
        e.as_array()
            .unwrap()
            .iter()
            .any(|x| x["caller"] == a && x["callee"] == b)
    };
    assert!(
        has("frontend", "checkout") && has("frontend", "catalog"),
        "{e}"
    );
    assert!(
        has("checkout", "api.payments.example:443") && has("catalog", "images.cdn.example:443"),
        "{e:#}"
    );
    // Runtime: metric names and series
    let m = c.json("/api/v1/services/checkout/metrics");
    let names: Vec<&str> = m["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    for n in [
        "process.cpu.utilization",
        "process.memory.usage",
        "rustmon.heap.live",
        "tokio.tasks.alive",
        "process.thread.count",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    let cpu = c.json(&format!(
        "/api/v1/services/checkout/metrics?name=process.cpu.utilization&{r}"
    ));
    assert!(
        cpu["series"][0]["points"].as_array().unwrap().len() > 10,
        "{cpu}"
    );
    assert_eq!(cpu["unit"], "1");
    // Settings: read, conditional write, stale write refused, agents' reports
    let cfg = c.json("/api/v1/config/checkout");
    assert_eq!(cfg["version"], 0);
    let put = |body: &str, version: &str| {
        request(
            c.api_addr,
            "PUT",
            "/api/v1/config/checkout",
            &[("content-type", "application/json"), ("if-match", version)],
            body.as_bytes(),
        )
    };
    let ok = put(r#"{"db": {"slow_threshold_ms": 250}}"#, "\"0\"");
    assert_eq!(ok.status, 200, "{}", ok.text());
    let stale = put(r#"{"db": {"slow_threshold_ms": 300}}"#, "\"0\"");
    assert_eq!(stale.status, 412);
    let bad = put("[1, 2]", "\"1\"");
    assert_eq!(bad.status, 400);
    assert!(serde_json::from_slice::<Value>(&bad.body).unwrap()["error"].is_string());
    assert_eq!(
        c.json("/api/v1/config/checkout")["config"]["db"]["slow_threshold_ms"],
        250
    );
    let st = request(
        c.api_addr,
        "POST",
        "/api/v1/config/checkout/status",
        &[("content-type", "application/json")],
        br#"{"instance": "checkout-1", "version": 1, "error": null}"#,
    );
    assert_eq!(st.status, 204);
    let st = c.json("/api/v1/config/checkout/status");
    assert_eq!(st["agents"][0]["instance"], "checkout-1");
    assert_eq!(st["agents"][0]["version"], 1);
}
