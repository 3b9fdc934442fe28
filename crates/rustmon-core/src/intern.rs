//! Bounded interning of short, low-cardinality strings (event names, host names), so that
//! integrations can record them per request without allocating.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

/// A bounded set of strings kept for the life of the program. Reads are lock-free; an insert
/// copies the map. Strings longer than `max_len`, or arriving once `cap` are kept, are returned
/// owned instead, so a caller feeding it high-cardinality input costs memory only up to the cap.
///
/// # Examples
/// ```
/// use std::borrow::Cow;
/// use rustmon_core::intern::Interner;
/// let names = Interner::new(1024, usize::MAX);
/// let a = names.get_joined("GET", "/orders/{id}");
/// assert_eq!(a, "GET /orders/{id}");
/// assert!(matches!(names.get_joined("GET", "/orders/{id}"), Cow::Borrowed(_)));
/// ```
#[derive(Debug)]
pub struct Interner {
    map: ArcSwap<HashMap<u64, Vec<&'static str>>>,
    len: Mutex<usize>,
    cap: usize,
    max_len: usize,
}

impl Interner {
    /// Keeps at most `cap` strings of at most `max_len` bytes.
    pub fn new(cap: usize, max_len: usize) -> Interner {
        Interner {
            map: ArcSwap::default(),
            len: Mutex::new(0),
            cap,
            max_len,
        }
    }

    /// `s`, shared when possible.
    pub fn get(&self, s: &str) -> Cow<'static, str> {
        self.lookup(s, None)
    }

    /// `"{first} {second}"` (e.g. a method and a route), shared when possible; nothing is
    /// allocated when it already is.
    pub fn get_joined(&self, first: &str, second: &str) -> Cow<'static, str> {
        self.lookup(first, Some(second))
    }

    /// `s` if it is already kept; never inserts.
    pub fn known(&self, s: &str) -> Option<&'static str> {
        self.map
            .load()
            .get(&hash(s, None))
            .and_then(|v| v.iter().find(|n| **n == s).copied())
    }

    fn lookup(&self, first: &str, second: Option<&str>) -> Cow<'static, str> {
        if first.len() + second.map_or(0, |s| s.len() + 1) > self.max_len {
            return Cow::Owned(join(first, second));
        }
        let h = hash(first, second);
        if let Some(found) = self
            .map
            .load()
            .get(&h)
            .and_then(|v| v.iter().find(|n| is(n, first, second)))
        {
            return Cow::Borrowed(found);
        }
        self.insert(h, first, second)
    }

    #[cold]
    fn insert(&self, h: u64, first: &str, second: Option<&str>) -> Cow<'static, str> {
        let mut len = self.len.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        if let Some(found) = current
            .get(&h)
            .and_then(|v| v.iter().find(|n| is(n, first, second)))
        {
            return Cow::Borrowed(found);
        }
        let s = join(first, second);
        if *len >= self.cap {
            return Cow::Owned(s);
        }
        // Leaked on purpose: at most `cap` strings of at most `max_len` bytes.
        let kept: &'static str = Box::leak(s.into_boxed_str());
        let mut next = HashMap::clone(&current);
        next.entry(h).or_default().push(kept);
        self.map.store(Arc::new(next));
        *len += 1;
        Cow::Borrowed(kept)
    }
}

fn join(first: &str, second: Option<&str>) -> String {
    match second {
        Some(s) => format!("{first} {s}"),
        None => first.to_owned(),
    }
}

/// FNV-1a: short keys chosen by the application (routes, hosts), no DoS concern.
fn hash(first: &str, second: Option<&str>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let tail: &[u8] = second.map_or(&[], str::as_bytes);
    let sep: &[u8] = if second.is_some() { b" " } else { &[] };
    for &b in first.as_bytes().iter().chain(sep).chain(tail) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn is(kept: &str, first: &str, second: Option<&str>) -> bool {
    match second {
        None => kept == first,
        Some(second) => {
            kept.len() == first.len() + 1 + second.len()
                && kept.starts_with(first)
                && kept.as_bytes()[first.len()] == b' '
                && kept.ends_with(second)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_and_distinguishes() {
        let names = Interner::new(16, usize::MAX);
        let a = names.get_joined("GET", "/orders/{id}");
        assert!(matches!(a, Cow::Borrowed(_)));
        let b = names.get_joined("GET", "/orders/{id}");
        assert!(std::ptr::eq(a.as_ptr(), b.as_ptr()));
        assert_eq!(
            names.get_joined("POST", "/orders/{id}"),
            "POST /orders/{id}"
        );
        assert_eq!(
            names.get_joined("GET /orders/{id}", ""),
            "GET /orders/{id} "
        );
        assert_eq!(names.get("GET /orders/{id}"), "GET /orders/{id}");
    }

    #[test]
    fn bounded_by_count_and_length() {
        let s = Interner::new(2, 8);
        assert!(matches!(s.get("a"), Cow::Borrowed("a")));
        assert!(matches!(s.get("a"), Cow::Borrowed("a")));
        assert!(matches!(s.get("b"), Cow::Borrowed("b")));
        assert!(matches!(s.get("c"), Cow::Owned(_)));
        assert!(matches!(s.get("much too long"), Cow::Owned(_)));
    }
}
