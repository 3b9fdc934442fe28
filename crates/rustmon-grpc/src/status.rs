//! gRPC status codes: names, and which ones are errors on each side.

/// The canonical name of a gRPC status code (`OK`, `INVALID_ARGUMENT`, …).
///
/// # Examples
/// ```
/// assert_eq!(rustmon_grpc::status_name(5), "NOT_FOUND");
/// assert_eq!(rustmon_grpc::status_name(99), "_OTHER");
/// ```
pub fn status_name(code: i64) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "_OTHER",
    }
}

/// Whether `code` marks the call as failed: any non-OK code for a client; for a server, only
/// codes that point at the server (`UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`,
/// `UNAVAILABLE`, `DATA_LOSS`), as OpenTelemetry's conventions say.
pub(crate) fn is_error(code: i64, server: bool) -> bool {
    if server {
        matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
    } else {
        code != 0
    }
}

/// `grpc-status` from a header map.
pub(crate) fn from_headers(headers: &http::HeaderMap) -> Option<i64> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
