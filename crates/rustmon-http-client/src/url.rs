//! URL handling: redaction of credentials and query values, host and port.

use std::borrow::Cow;

/// The placeholder for redacted values.
pub(crate) const REDACTED: &str = "REDACTED";

/// `url` as recorded in `url.full`: user credentials and every query value replaced by
/// `REDACTED`, the fragment dropped. Returns the input unchanged (borrowed) when there is
/// nothing to redact.
///
/// # Examples
/// ```
/// use rustmon_http_client::redact_url;
/// assert_eq!(redact_url("http://h/p?token=abc&x=1&flag"), "http://h/p?token=REDACTED&x=REDACTED&flag");
/// assert_eq!(redact_url("https://u:pw@h:8443/a#frag"), "https://REDACTED:REDACTED@h:8443/a");
/// assert_eq!(redact_url("http://h/p"), "http://h/p");
/// ```
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let url = url.split_once('#').map_or(url, |(u, _)| u);
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let userinfo_end = base[after_scheme..authority_end].rfind('@');
    let query_has_values = query.is_some_and(|q| q.contains('='));
    if userinfo_end.is_none() && !query_has_values {
        return Cow::Borrowed(url);
    }
    let mut out = String::with_capacity(url.len() + 16);
    match userinfo_end {
        Some(at) => {
            out.push_str(&base[..after_scheme]);
            out.push_str(if base[after_scheme..after_scheme + at].contains(':') {
                "REDACTED:REDACTED"
            } else {
                REDACTED
            });
            out.push_str(&base[after_scheme + at..]);
        }
        None => out.push_str(base),
    }
    if let Some(q) = query {
        out.push('?');
        for (i, pair) in q.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((k, _)) => {
                    out.push_str(k);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                None => out.push_str(pair),
            }
        }
    }
    Cow::Owned(out)
}

/// The conventional port of a scheme.
pub(crate) fn default_port(scheme: Option<&str>) -> Option<u16> {
    match scheme {
        Some(s) if s.eq_ignore_ascii_case("https") || s.eq_ignore_ascii_case("wss") => Some(443),
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("ws") => Some(80),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction() {
        assert!(matches!(redact_url("http://h:1/p?flag"), Cow::Borrowed(_)));
        assert_eq!(redact_url("http://u@h/"), "http://REDACTED@h/");
        assert_eq!(
            redact_url("http://h/p?a=&b=2"),
            "http://h/p?a=REDACTED&b=REDACTED"
        );
        assert_eq!(redact_url("http://h/@x?q=1"), "http://h/@x?q=REDACTED");
        assert_eq!(redact_url("/relative?q=1"), "/relative?q=REDACTED");
    }
}
