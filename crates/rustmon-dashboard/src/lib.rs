//! The rustmon web dashboard: server-rendered HTML shells plus one small script and stylesheet,
//! all embedded in the binary, that read the collector's JSON API (`/api/v1/...`, same origin)
//! and draw tables and SVG charts. No CDN, no build step, works offline.
//!
//! [`router`] serves every page under [`BASE`] (`/ui/`); the collector merges it into the router
//! on `--listen`. Pages take their time range from the query string (`?range=15m|1h|6h|24h` or
//! `?from=…&to=…`), so every link can be shared.
//!
//! | path | page |
//! |---|---|
//! | `/ui/` | services, sorted by impact (share of time) |
//! | `/ui/services/{service}` | one service: charts, time by kind, operations |
//! | `/ui/services/{service}/operation?kind=…&name=…` | one operation: histogram, percentiles, slowest and failed traces |
//! | `/ui/traces/{trace_id}` | a trace as a waterfall |
//! | `/ui/database[/{service}]` | statements by fingerprint, slow statements |
//! | `/ui/external[/{service}]` | outgoing calls by destination |
//! | `/ui/runtime[/{service}]` | runtime metrics (CPU, memory, heap, tasks, threads) |
//! | `/ui/errors[?service=…]` | errors grouped by type and message |
//! | `/ui/map` | service map |
//! | `/ui/settings[/{service}]` | central configuration and agents' applied versions |
//!
//! # Examples
//! ```
//! // the collector's API router, with the dashboard mounted beside it
//! let app: axum::Router = axum::Router::new().merge(rustmon_dashboard::router());
//! # let _ = app;
//! ```

use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The path prefix of every dashboard page and asset.
pub const BASE: &str = "/ui";

const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");
const FAVICON: &str = include_str!("../assets/favicon.svg");

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// A short hash of the embedded assets, used in their URLs so a new build is never served
/// from a stale cache.
fn asset_version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        // FNV-1a, 64 bits
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in APP_JS.bytes().chain(APP_CSS.bytes()).chain(FAVICON.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{:012x}", h >> 16)
    })
}

/// The dashboard's routes, all under [`BASE`]; merge them into the collector's router.
///
/// The router holds no state and defines no fallback, so it merges with any router that does
/// not itself use paths under `/ui`. Pages are HTML shells; the script fills them from the JSON
/// API on the same origin. Unknown paths under `/ui/` answer an HTML 404 page.
///
/// # Examples
/// ```
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let app = axum::Router::new().merge(rustmon_dashboard::router());
/// # drop((listener, app));
/// // axum::serve(listener, app).await
/// # Ok(()) }
/// ```
pub fn router() -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| page(Page::Services)))
        .route(
            "/ui/services/{service}",
            get(|Path(s): Path<String>| page(Page::Service(s))),
        )
        .route(
            "/ui/services/{service}/operation",
            get(|Path(s): Path<String>| page(Page::Operation(s))),
        )
        .route(
            "/ui/traces/{trace_id}",
            get(|Path(t): Path<String>| page(Page::Trace(t))),
        )
        .route("/ui/database", get(|| page(Page::Database(None))))
        .route(
            "/ui/database/{service}",
            get(|Path(s): Path<String>| page(Page::Database(Some(s)))),
        )
        .route("/ui/external", get(|| page(Page::External(None))))
        .route(
            "/ui/external/{service}",
            get(|Path(s): Path<String>| page(Page::External(Some(s)))),
        )
        .route("/ui/runtime", get(|| page(Page::Runtime(None))))
        .route(
            "/ui/runtime/{service}",
            get(|Path(s): Path<String>| page(Page::Runtime(Some(s)))),
        )
        .route("/ui/errors", get(|| page(Page::Errors)))
        .route("/ui/map", get(|| page(Page::Map)))
        .route("/ui/settings", get(|| page(Page::Settings(None))))
        .route(
            "/ui/settings/{service}",
            get(|Path(s): Path<String>| page(Page::Settings(Some(s)))),
        )
        .route("/ui/assets/{file}", get(asset))
        .route("/ui/{*rest}", get(|| page(Page::NotFound)))
}

/// A page: which script view to run and the path parameters it needs.
enum Page {
    Services,
    Service(String),
    Operation(String),
    Trace(String),
    Database(Option<String>),
    External(Option<String>),
    Runtime(Option<String>),
    Errors,
    Map,
    Settings(Option<String>),
    NotFound,
}

impl Page {
    /// `(data-page, title, service, nav entry)`.
    fn parts(&self) -> (&'static str, &'static str, Option<&str>, &'static str) {
        match self {
            Page::Services => ("services", "Services", None, "services"),
            Page::Service(s) => ("service", "Service", Some(s), "services"),
            Page::Operation(s) => ("operation", "Operation", Some(s), "services"),
            Page::Trace(_) => ("trace", "Trace", None, "services"),
            Page::Database(s) => ("database", "Database", s.as_deref(), "database"),
            Page::External(s) => ("external", "External calls", s.as_deref(), "external"),
            Page::Runtime(s) => ("runtime", "Runtime", s.as_deref(), "runtime"),
            Page::Errors => ("errors", "Errors", None, "errors"),
            Page::Map => ("map", "Service map", None, "map"),
            Page::Settings(s) => ("settings", "Settings", s.as_deref(), "settings"),
            Page::NotFound => ("notfound", "Not found", None, ""),
        }
    }
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a path segment (everything but unreserved characters).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const NAV: [(&str, &str, bool); 7] = [
    ("services", "Services", false),
    ("map", "Service map", false),
    ("errors", "Errors", false),
    ("database", "Database", true),
    ("external", "External calls", true),
    ("runtime", "Runtime", true),
    ("settings", "Settings", true),
];

/// Renders the HTML shell of a page.
fn render(p: &Page) -> String {
    let (id, title, service, active) = p.parts();
    let v = asset_version();
    let mut nav = String::new();
    for (key, label, scoped) in NAV {
        let href = match (key, scoped, service) {
            ("services", _, _) => "/ui/".to_string(),
            (_, true, Some(s)) => format!("/ui/{key}/{}", encode_segment(s)),
            _ => format!("/ui/{key}"),
        };
        let cur = if key == active {
            " class=\"active\" aria-current=\"page\""
        } else {
            ""
        };
        nav.push_str(&format!(
            "<a href=\"{}\" data-nav=\"{key}\"{cur}>{label}</a>",
            escape(&href)
        ));
    }
    let trace = match p {
        Page::Trace(t) => t.as_str(),
        _ => "",
    };
    let heading = match service {
        Some(s) => format!("{title} · {}", escape(s)),
        None => title.to_string(),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{heading} · rustmon</title>\
<link rel=\"icon\" type=\"image/svg+xml\" href=\"/ui/assets/favicon.svg?v={v}\">\
<link rel=\"stylesheet\" href=\"/ui/assets/app.css?v={v}\">\
<script defer src=\"/ui/assets/app.js?v={v}\"></script></head>\
<body data-page=\"{id}\" data-service=\"{svc}\" data-trace=\"{trace}\">\
<header class=\"top\"><a class=\"brand\" href=\"/ui/\"><img src=\"/ui/assets/favicon.svg?v={v}\" alt=\"\" width=\"20\" height=\"20\">rustmon</a>\
<nav class=\"nav\">{nav}</nav><div id=\"controls\" class=\"controls\"></div></header>\
<main><div class=\"head\"><h1 id=\"title\">{heading}</h1><div id=\"subnav\" class=\"subnav\"></div></div>\
<noscript><p class=\"empty\">The dashboard needs JavaScript: it reads the JSON API under \
<a href=\"/api/v1/openapi.json\">/api/v1/</a>.</p></noscript>\
<div id=\"content\"><p class=\"loading\">Loading…</p></div></main>\
<footer class=\"foot\">rustmon · <a href=\"/api/v1/openapi.json\">API</a> · \
<a href=\"/metrics\">collector metrics</a></footer></body></html>\n",
        svc = escape(service.unwrap_or("")),
        trace = escape(trace),
    )
}

fn security_headers(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

async fn page(p: Page) -> Response {
    let status = if matches!(p, Page::NotFound) {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    let mut r = (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        render(&p),
    )
        .into_response();
    security_headers(&mut r);
    r
}

async fn asset(Path(file): Path<String>, RawQuery(q): RawQuery) -> Response {
    let (body, ctype) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "favicon.svg" => (FAVICON, "image/svg+xml"),
        _ => return page(Page::NotFound).await,
    };
    // versioned URLs never change; others are revalidated
    let versioned = q.as_deref() == Some(&format!("v={}", asset_version()));
    let cache = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut r = (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response();
    security_headers(&mut r);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_escapes_path_parameters() {
        let html = render(&Page::Service("<script>alert(1)</script>\"x".into()));
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;x"));
        let html = render(&Page::Trace("\"><img src=x onerror=alert(1)>".into()));
        assert!(!html.contains("<img src=x"), "{html}");
    }

    #[test]
    fn scoped_nav_links_keep_the_service() {
        let html = render(&Page::Database(Some("check out/1".into())));
        assert!(
            html.contains("href=\"/ui/runtime/check%20out%2F1\""),
            "{html}"
        );
        assert!(html.contains("data-page=\"database\""));
        assert!(html.contains("data-nav=\"database\" class=\"active\""));
    }
}
