//! The OpenAPI 3.1 description of the query API, served at `/api/v1/openapi.json`.

use serde_json::{Value as Json, json};

fn param(name: &str, loc: &str, desc: &str, schema: Json) -> Json {
    json!({ "name": name, "in": loc, "required": loc == "path", "description": desc, "schema": schema })
}

fn range() -> Vec<Json> {
    vec![
        param(
            "from",
            "query",
            "Start: RFC 3339, `now`, or relative like `-15m` (default: `to` minus one hour).",
            json!({"type": "string"}),
        ),
        param(
            "to",
            "query",
            "End: RFC 3339, `now`, or relative (default: now).",
            json!({"type": "string"}),
        ),
    ]
}

fn svc() -> Json {
    param(
        "service",
        "path",
        "Service name (`service.name`).",
        json!({"type": "string"}),
    )
}

fn ok(desc: &str, schema: Json) -> Json {
    json!({
        "200": { "description": desc, "content": { "application/json": { "schema": schema } } },
        "400": { "$ref": "#/components/responses/BadRequest" },
    })
}

fn op(summary: &str, params: Vec<Json>, responses: Json) -> Json {
    json!({ "summary": summary, "parameters": params, "responses": responses })
}

/// The OpenAPI document.
pub fn document() -> Json {
    let stats = json!({"type": "object", "properties": {
        "count": {"type": "integer"}, "throughput_per_s": {"type": "number"}, "errors": {"type": "integer"},
        "error_rate": {"type": "number"}, "p50_ms": {"type": ["number", "null"]},
        "p95_ms": {"type": ["number", "null"]}, "p99_ms": {"type": ["number", "null"]}}});
    let kind = param(
        "kind",
        "query",
        "Span kind.",
        json!({"type": "string", "enum": ["server", "client", "internal", "producer", "consumer"]}),
    );
    let mut ts_params = range();
    ts_params.extend([
        svc(),
        kind.clone(),
        param(
            "step",
            "query",
            "Bucket width, whole minutes (`1m`, `5m`); default: range/60.",
            json!({"type": "string"}),
        ),
        param(
            "name",
            "query",
            "Only this operation.",
            json!({"type": "string"}),
        ),
    ]);
    let mut ops_params = range();
    ops_params.extend([svc(), kind.clone()]);
    let mut tr_params = range();
    tr_params.extend([
        param("service", "query", "Service.", json!({"type": "string"})),
        param("name", "query", "Span name.", json!({"type": "string"})),
        kind.clone(),
        param(
            "min_duration_ms",
            "query",
            "Minimum duration in milliseconds.",
            json!({"type": "number", "minimum": 0}),
        ),
        param(
            "status",
            "query",
            "Span status.",
            json!({"type": "string", "enum": ["ok", "error", "unset"]}),
        ),
        param(
            "limit",
            "query",
            "Maximum traces (1–1000, default 20).",
            json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
        param(
            "sort",
            "query",
            "`newest` (default) or `slowest`.",
            json!({"type": "string", "enum": ["newest", "slowest"]}),
        ),
        json!({"name": "attr", "in": "query", "style": "deepObject", "explode": true,
               "description": "Attribute filters: `attr.KEY=VALUE` (span or resource attributes).",
               "schema": {"type": "object", "additionalProperties": {"type": "string"}}}),
    ]);
    let mut q_params = range();
    q_params.push(svc());
    let mut h_params = range();
    h_params.extend([
        svc(),
        kind.clone(),
        param(
            "name",
            "query",
            "Only this operation; without it the service's requests (server/consumer spans).",
            json!({"type": "string"}),
        ),
    ]);
    let err_limit = param(
        "limit",
        "query",
        "Maximum groups, most frequent first (1–1000, default 100).",
        json!({"type": "integer", "minimum": 1, "maximum": 1000}),
    );
    let mut errs_params = range();
    errs_params.extend([
        param(
            "service",
            "query",
            "Only this service.",
            json!({"type": "string"}),
        ),
        err_limit.clone(),
    ]);
    let mut svc_errs_params = range();
    svc_errs_params.extend([svc(), err_limit]);
    let errors = json!({"type": "object", "properties": {
        "total": {"type": "integer", "description": "Failed spans in the range."},
        "truncated": {"type": "boolean", "description": "More groups than `limit`."},
        "groups": {"type": "array", "items": {"$ref": "#/components/schemas/ErrorGroup"}}}});
    let mut m_params = range();
    m_params.extend([
        svc(),
        param(
            "name",
            "query",
            "Metric name; without it the names are listed.",
            json!({"type": "string"}),
        ),
    ]);
    let cfg = json!({"type": "object", "properties": {
        "service": {"type": "string"}, "version": {"type": "integer"},
        "config": {"type": "object", "description": "Plugin name to settings."},
        "updated": {"type": ["string", "null"], "format": "date-time"}}});
    json!({
        "openapi": "3.1.0",
        "info": { "title": "rustmon query API", "version": env!("CARGO_PKG_VERSION"),
                  "description": "JSON API of the rustmon collector. Errors are `{\"error\": \"…\"}` with a 4xx/5xx status. Unknown query parameters are rejected with 400." },
        "paths": {
            "/api/v1/health": { "get": op("Collector health and store size.", vec![], ok("Health", json!({"type": "object"}))) },
            "/api/v1/services": { "get": op("Services with throughput, error rate and latency percentiles (entry spans: server/consumer).", range(),
                ok("Services", json!({"type": "object", "properties": {"services": {"type": "array", "items": stats}}}))) },
            "/api/v1/services/{service}/operations": { "get": op("Operations of a service by kind and name, with share of total time.", ops_params,
                ok("Operations", json!({"type": "object", "properties": {"operations": {"type": "array", "items": {"type": "object"}}}}))) },
            "/api/v1/services/{service}/timeseries": { "get": op("Bucketed throughput, error rate and percentiles.", ts_params,
                ok("Series", json!({"type": "object", "properties": {"points": {"type": "array", "items": stats}}}))) },
            "/api/v1/services/{service}/histogram": { "get": op("Latency histogram of an operation merged from the per-minute rollups (every span, not a sample): exponential buckets, 8 per power of two.", h_params,
                ok("Histogram", json!({"type": "object", "properties": {
                    "count": {"type": "integer"}, "p50_ms": {"type": ["number", "null"]}, "p95_ms": {"type": ["number", "null"]}, "p99_ms": {"type": ["number", "null"]},
                    "buckets": {"type": "array", "description": "From the first to the last non-empty bucket; a bucket holds durations in (lower_ms, upper_ms]; zero durations are a bucket of 0–0.",
                        "items": {"type": "object", "properties": {"lower_ms": {"type": "number"}, "upper_ms": {"type": "number"}, "count": {"type": "integer"}}}}}}))) },
            "/api/v1/services/{service}/errors": { "get": op("Failed spans of a service grouped by error type and message fingerprint (see /api/v1/errors).", svc_errs_params, ok("Error groups", errors.clone())) },
            "/api/v1/errors": { "get": op("Failed spans (status error) grouped by service, error type and message fingerprint, counted at ingest per minute: exact over every span. At most 100 groups per service and minute; the errors of further groups are counted in the group of type `_OTHER`.", errs_params, ok("Error groups", errors)) },
            "/api/v1/services/{service}/queries": { "get": op("Database statements by fingerprint.", q_params,
                ok("Statements", json!({"type": "object", "properties": {"queries": {"type": "array", "items": {"type": "object", "properties": {
                    "fingerprint": {"type": "string"}, "calls": {"type": "integer"}, "errors": {"type": "integer"},
                    "total_ms": {"type": "number"}, "p95_ms": {"type": ["number", "null"]}, "rows": {"type": "integer"}}}}}}))) },
            "/api/v1/services/{service}/metrics": { "get": op("Metric names of a service, or the series of one metric.", m_params, ok("Metrics", json!({"type": "object"}))) },
            "/api/v1/traces": { "get": op("Search traces; one matching span per trace.", tr_params,
                ok("Matches", json!({"type": "object", "properties": {"traces": {"type": "array", "items": {"$ref": "#/components/schemas/Span"}}}}))) },
            "/api/v1/traces/{trace_id}": { "get": {
                "summary": "All spans of a trace across services, ordered by start, with depth.",
                "parameters": [param("trace_id", "path", "32 hex digits.", json!({"type": "string", "pattern": "^[0-9a-fA-F]{32}$"}))],
                "responses": {
                    "200": {"description": "Trace", "content": {"application/json": {"schema": {"type": "object", "properties": {
                        "trace_id": {"type": "string"}, "duration_ms": {"type": "number"}, "services": {"type": "array", "items": {"type": "string"}},
                        "spans": {"type": "array", "items": {"$ref": "#/components/schemas/Span"}}}}}}},
                    "400": {"$ref": "#/components/responses/BadRequest"},
                    "404": {"$ref": "#/components/responses/NotFound"}}}},
            "/api/v1/dependencies": { "get": op("Service map edges from cross-service parent/child links and client spans' server.address.", range(),
                ok("Edges", json!({"type": "object", "properties": {"edges": {"type": "array", "items": {"type": "object", "properties": {
                    "caller": {"type": "string"}, "callee": {"type": "string"}, "calls": {"type": "integer"}, "errors": {"type": "integer"},
                    "p95_ms": {"type": ["number", "null"]}}}}}}))) },
            "/api/v1/config/{service}": {
                "get": { "summary": "Central configuration of a service. Poll with If-None-Match: the ETag is the quoted version; 304 when unchanged. Version 0 is the empty default.",
                    "parameters": [svc(), param("If-None-Match", "header", "ETag from the last response.", json!({"type": "string"}))],
                    "responses": {"200": {"description": "Configuration", "headers": {"ETag": {"schema": {"type": "string"}}},
                        "content": {"application/json": {"schema": cfg}}}, "304": {"description": "Unchanged"}}},
                "put": { "summary": "Replace the configuration (a JSON object of plugin name to settings); the version increases when it changes.",
                    "parameters": [svc(), param("If-Match", "header", "Only if this ETag is current (else 412).", json!({"type": "string"}))],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"200": {"description": "Stored", "content": {"application/json": {"schema": cfg}}},
                        "400": {"$ref": "#/components/responses/BadRequest"}, "412": {"description": "Version mismatch"},
                        "415": {"description": "Not JSON"}}}},
            "/api/v1/config/{service}/status": {
                "post": { "summary": "An agent reports the version it applied, or why it rejected one.", "parameters": [svc()],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["instance", "version"],
                        "properties": {"instance": {"type": "string"}, "version": {"type": "integer"}, "error": {"type": ["string", "null"]}}}}}},
                    "responses": {"204": {"description": "Recorded"}, "400": {"$ref": "#/components/responses/BadRequest"}}},
                "get": { "summary": "Agents' reports.", "parameters": [svc()], "responses": {"200": {"description": "Reports"}}}},
            "/metrics": { "get": { "summary": "Collector self-metrics, Prometheus text format.", "responses": {"200": {"description": "Metrics", "content": {"text/plain": {}}}}}},
        },
        "components": {
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "ErrorGroup": {"type": "object", "properties": {
                    "service": {"type": "string"},
                    "type": {"type": "string", "description": "`exception.type` of the span's exception event, else its `error.type` or `exception.type` attribute, else `HTTP <status>` (400 and more), `database error` or `error`; `_OTHER` for the overflow group."},
                    "fingerprint": {"type": "string", "description": "The message with numbers (`<n>`), hex ids (`<hex>`), UUIDs (`<uuid>`) and quoted strings (`<str>`) masked."},
                    "message": {"type": "string", "description": "The first message seen: `exception.message`, else the status message."},
                    "count": {"type": "integer"},
                    "first_seen": {"type": "string", "format": "date-time"}, "last_seen": {"type": "string", "format": "date-time"},
                    "first_seen_unix_nano": {"type": "integer"}, "last_seen_unix_nano": {"type": "integer"},
                    "operations": {"type": "array", "description": "Up to five operations, most failures first.", "items": {"type": "object", "properties": {
                        "kind": {"type": "string"}, "name": {"type": "string"}, "count": {"type": "integer"}}}},
                    "examples": {"type": "array", "description": "The three latest failed spans.", "items": {"type": "object", "properties": {
                        "trace_id": {"type": "string"}, "span_id": {"type": "string"}, "start": {"type": "string", "format": "date-time"}}}}}},
                "Span": {"type": "object", "properties": {
                    "trace_id": {"type": "string"}, "span_id": {"type": "string"}, "parent_span_id": {"type": ["string", "null"]},
                    "service": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"},
                    "start": {"type": "string", "format": "date-time"}, "duration_ms": {"type": "number"},
                    "status": {"type": "string"}, "attributes": {"type": "object"}, "events": {"type": "array"}}},
            },
            "responses": {
                "BadRequest": {"description": "Invalid parameter", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "NotFound": {"description": "Not found", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        },
    })
}
