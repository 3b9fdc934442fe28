//! The rule for secrets in captured headers, shared by every HTTP integration.

/// Whether `name` is a sensitive header, redacted by default: `Authorization`, `Cookie`,
/// `Set-Cookie`, `Proxy-Authorization`, or a name containing `token`, `secret` or `key`
/// (case-insensitive).
///
/// # Examples
/// ```
/// use rustmon_core::secrets::is_sensitive_header;
/// assert!(is_sensitive_header("Authorization"));
/// assert!(is_sensitive_header("x-api-key"));
/// assert!(!is_sensitive_header("accept"));
/// ```
pub fn is_sensitive_header(name: &str) -> bool {
    const EXACT: [&str; 4] = [
        "authorization",
        "cookie",
        "set-cookie",
        "proxy-authorization",
    ];
    const CONTAINS: [&[u8]; 3] = [b"token", b"secret", b"key"];
    if EXACT.iter().any(|e| e.eq_ignore_ascii_case(name)) {
        return true;
    }
    let n = name.as_bytes();
    CONTAINS.iter().any(|needle| {
        n.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    })
}
