//! Error grouping: what kind of error a failed span reports, and a fingerprint of its message
//! (numbers, ids and quoted values masked) so that errors differing only in those group together.

use crate::model::{AttrValue, SpanRecord};

/// Longest error type kept, in bytes.
const MAX_TYPE: usize = 200;
/// Longest message or fingerprint kept, in bytes.
const MAX_MESSAGE: usize = 300;

/// The type and message of a failed span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanError {
    /// `exception.type`, `error.type`, `HTTP <status>`, `database error` or `error`.
    pub error_type: String,
    /// `exception.message`, else the status message (may be empty).
    pub message: String,
}

fn event_attr<'a>(s: &'a SpanRecord, key: &str) -> Option<&'a str> {
    s.events
        .iter()
        .filter(|e| e.name == "exception")
        .flat_map(|e| &e.attributes)
        .find_map(|(k, v)| match v {
            AttrValue::Str(v) if k == key && !v.is_empty() => Some(v.as_str()),
            _ => None,
        })
}

fn nonempty_attr<'a>(s: &'a SpanRecord, key: &str) -> Option<&'a str> {
    s.attr_str(key).filter(|v| !v.is_empty())
}

fn db_system(s: &SpanRecord) -> Option<&str> {
    nonempty_attr(s, "db.system.name").or_else(|| nonempty_attr(s, "db.system"))
}

/// The error type of a failed span: the `exception` event's `exception.type` (what rustmon's
/// agents and OpenTelemetry SDKs record), else the span's `error.type` or `exception.type`
/// attribute, else `HTTP <code>` for a status of 400 or more, else `database error` for a
/// database span, else `error`. A type that is the database's error code
/// (`db.response.status_code`, e.g. SQLSTATE `42P01`) is prefixed with the database system.
pub fn error_type(s: &SpanRecord) -> String {
    let named = event_attr(s, "exception.type")
        .or_else(|| nonempty_attr(s, "error.type"))
        .or_else(|| nonempty_attr(s, "exception.type"));
    let t = match (named, db_system(s)) {
        (Some(t), Some(db)) if s.attr_str("db.response.status_code") == Some(t) => {
            format!("{db} {t}")
        }
        (Some(t), _) => t.to_string(),
        (None, db) => match s.attr_int("http.response.status_code") {
            Some(code) if code >= 400 => format!("HTTP {code}"),
            _ if db.is_some() => "database error".to_string(),
            _ => "error".to_string(),
        },
    };
    truncate(t, MAX_TYPE)
}

/// The type and message of a failed span (see [`error_type`]).
pub fn span_error(s: &SpanRecord) -> SpanError {
    let message = event_attr(s, "exception.message")
        .or_else(|| Some(s.status_message.as_str()).filter(|m| !m.is_empty()))
        .or_else(|| nonempty_attr(s, "exception.message"))
        .unwrap_or("");
    SpanError {
        error_type: error_type(s),
        message: truncate(message.to_string(), MAX_MESSAGE),
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The fingerprint of an error message: UUIDs become `<uuid>`, quoted strings `<str>`,
/// hexadecimal ids (`0x…`, or 8+ hex digits with a digit among them) `<hex>`, and every other
/// run of digits (with its decimals) `<n>`. At most 300 bytes.
///
/// # Examples
/// ```
/// use rustmon_server::errors::message_fingerprint;
/// assert_eq!(
///     message_fingerprint("order 1042 of 'alice' failed after 2.5 s (trace 4bf92f3577b34da6)"),
///     "order <n> of <str> failed after <n> s (trace <hex>)"
/// );
/// ```
pub fn message_fingerprint(msg: &str) -> String {
    let b = msg.as_bytes();
    let mut out = String::with_capacity(msg.len().min(MAX_MESSAGE));
    let mut i = 0;
    while i < b.len() && out.len() < MAX_MESSAGE {
        let c = b[i];
        if c == b'\'' || c == b'"' {
            if let Some(len) = b[i + 1..].iter().position(|&x| x == c) {
                out.push_str("<str>");
                i += len + 2;
                continue;
            }
        }
        if c.is_ascii_alphanumeric() && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
            let (mask, len) = mask_word(&b[i..]);
            if let Some(mask) = mask {
                out.push_str(mask);
                i += len;
                continue;
            }
        }
        if c.is_ascii_digit() {
            out.push_str("<n>");
            i += number_len(&b[i..]);
            continue;
        }
        let ch = msg[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    truncate(out, MAX_MESSAGE)
}

/// A UUID or hexadecimal id at the start of `b`: its mask and length.
fn mask_word(b: &[u8]) -> (Option<&'static str>, usize) {
    if is_uuid(b) {
        return (Some("<uuid>"), 36);
    }
    let word = b.iter().take_while(|c| c.is_ascii_alphanumeric()).count();
    let w = &b[..word];
    let prefixed = w.len() > 2
        && (w.starts_with(b"0x") || w.starts_with(b"0X"))
        && w[2..].iter().all(u8::is_ascii_hexdigit);
    let bare = w.len() >= 8
        && w.iter().all(u8::is_ascii_hexdigit)
        && w.iter().any(u8::is_ascii_digit)
        && !w.iter().all(u8::is_ascii_digit);
    if prefixed || bare {
        (Some("<hex>"), word)
    } else {
        (None, 0)
    }
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() >= 36
        && (b.len() == 36 || !b[36].is_ascii_alphanumeric())
        && b[..36].iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Length of the number at the start of `b`: digits, then `.digits` if present.
fn number_len(b: &[u8]) -> usize {
    let int = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let frac = match b.get(int) {
        Some(b'.') => b[int + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count(),
        _ => 0,
    };
    if frac > 0 { int + 1 + frac } else { int }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_variable_parts() {
        let cases = [
            (
                "payment declined for order 1042: card_declined",
                "payment declined for order <n>: card_declined",
            ),
            (
                "user 550e8400-e29b-41d4-a716-446655440000 not found",
                "user <uuid> not found",
            ),
            ("bad key \"abc\" and 'it'", "bad key <str> and <str>"),
            (
                "at 0x7ffd1234 and deadbeef01 but not decade",
                "at <hex> and <hex> but not decade",
            ),
            ("took 12.75 ms on shard7", "took <n> ms on shard<n>"),
            ("unterminated 'quote 5", "unterminated 'quote <n>"),
            ("", ""),
            ("naïve 3 €", "naïve <n> €"),
        ];
        for (msg, want) in cases {
            assert_eq!(message_fingerprint(msg), want, "{msg}");
        }
    }

    #[test]
    fn same_shape_same_fingerprint_and_bounded_length() {
        assert_eq!(
            message_fingerprint("deadlock detected while inserting payment for order 1001"),
            message_fingerprint("deadlock detected while inserting payment for order 98765"),
        );
        let long = "é".repeat(1000);
        let fp = message_fingerprint(&long);
        assert!(fp.len() <= MAX_MESSAGE && fp.starts_with('é'));
    }
}
