//! Event names (`GET /orders/{id}`) interned so that a request does not allocate its name.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

/// How many distinct names one layer interns; past that, names are allocated per request. Names
/// are low-cardinality (methods are normalised, routes are templates), so the cap only guards
/// against a route callback that returns raw paths.
pub(crate) const MAX_INTERNED: usize = 2048;

/// The marker naming requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Interned `"{method} {route}"` names. Reads are lock-free; an insert copies the map.
#[derive(Default)]
pub(crate) struct Names {
    map: ArcSwap<HashMap<u64, Vec<&'static str>>>,
    len: Mutex<usize>,
}

fn hash(method: &str, route: &str) -> u64 {
    // FNV-1a: short keys, no DoS concern (routes come from the application's router).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in method.as_bytes().iter().chain(b" ").chain(route.as_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn is(name: &str, method: &str, route: &str) -> bool {
    name.len() == method.len() + 1 + route.len()
        && name.starts_with(method)
        && name.as_bytes()[method.len()] == b' '
        && name.ends_with(route)
}

impl Names {
    /// The name for `method` and `route`, interned when possible.
    pub(crate) fn get(&self, method: &str, route: &str) -> Cow<'static, str> {
        let h = hash(method, route);
        if let Some(found) = self
            .map
            .load()
            .get(&h)
            .and_then(|v| v.iter().find(|n| is(n, method, route)))
        {
            return Cow::Borrowed(found);
        }
        self.insert(h, method, route)
    }

    #[cold]
    fn insert(&self, h: u64, method: &str, route: &str) -> Cow<'static, str> {
        let mut len = self.len.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        if let Some(found) = current
            .get(&h)
            .and_then(|v| v.iter().find(|n| is(n, method, route)))
        {
            return Cow::Borrowed(found);
        }
        let name = format!("{method} {route}");
        if *len >= MAX_INTERNED {
            return Cow::Owned(name);
        }
        // Leaked on purpose: bounded by MAX_INTERNED per layer, and names live as long as the
        // program's routes.
        let name: &'static str = Box::leak(name.into_boxed_str());
        let mut next = HashMap::clone(&current);
        next.entry(h).or_default().push(name);
        self.map.store(Arc::new(next));
        *len += 1;
        Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_and_distinguishes() {
        let names = Names::default();
        let a = names.get("GET", "/orders/{id}");
        assert!(matches!(a, Cow::Borrowed(_)));
        assert_eq!(a, "GET /orders/{id}");
        let b = names.get("GET", "/orders/{id}");
        assert!(std::ptr::eq(a.as_ptr(), b.as_ptr()));
        assert_eq!(names.get("POST", "/orders/{id}"), "POST /orders/{id}");
        assert_eq!(names.get("GET /orders/{id}", ""), "GET /orders/{id} ");
    }
}

/// A bounded set of short strings kept for the life of the program (host names, user agents),
/// so that recording them does not allocate per request. Strings longer than `max_len`, or
/// arriving once `cap` are kept, are allocated per request instead.
pub(crate) struct Strings {
    map: ArcSwap<HashMap<u64, Vec<&'static str>>>,
    len: Mutex<usize>,
    cap: usize,
    max_len: usize,
}

impl Strings {
    pub(crate) fn new(cap: usize, max_len: usize) -> Strings {
        Strings {
            map: ArcSwap::default(),
            len: Mutex::new(0),
            cap,
            max_len,
        }
    }

    /// `s`, shared when possible.
    pub(crate) fn get(&self, s: &str) -> Cow<'static, str> {
        if s.len() > self.max_len {
            return Cow::Owned(s.to_owned());
        }
        let h = hash("", s);
        if let Some(found) = self
            .map
            .load()
            .get(&h)
            .and_then(|v| v.iter().find(|n| **n == s))
        {
            return Cow::Borrowed(found);
        }
        self.insert(h, s)
    }

    #[cold]
    fn insert(&self, h: u64, s: &str) -> Cow<'static, str> {
        let mut len = self.len.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        if let Some(found) = current.get(&h).and_then(|v| v.iter().find(|n| **n == s)) {
            return Cow::Borrowed(found);
        }
        if *len >= self.cap {
            return Cow::Owned(s.to_owned());
        }
        // Leaked on purpose: at most `cap` strings of at most `max_len` bytes.
        let kept: &'static str = Box::leak(s.to_owned().into_boxed_str());
        let mut next = HashMap::clone(&current);
        next.entry(h).or_default().push(kept);
        self.map.store(Arc::new(next));
        *len += 1;
        Cow::Borrowed(kept)
    }
}

#[cfg(test)]
mod strings_tests {
    use super::*;

    #[test]
    fn bounded_by_count_and_length() {
        let s = Strings::new(2, 8);
        assert!(matches!(s.get("a"), Cow::Borrowed("a")));
        assert!(matches!(s.get("a"), Cow::Borrowed("a")));
        assert!(matches!(s.get("b"), Cow::Borrowed("b")));
        assert!(matches!(s.get("c"), Cow::Owned(_)));
        assert!(matches!(s.get("much too long"), Cow::Owned(_)));
    }
}
