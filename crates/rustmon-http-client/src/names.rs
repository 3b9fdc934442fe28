//! Event names (`GET api.example.com`) interned so that a request does not allocate its name.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

/// How many distinct names are interned; past that, names are allocated per request.
pub(crate) const MAX_INTERNED: usize = 1024;

/// Interned `"{method} {target}"` names. Reads are lock-free; an insert copies the map.
#[derive(Default)]
pub(crate) struct Names {
    map: ArcSwap<HashMap<u64, Vec<&'static str>>>,
    len: Mutex<usize>,
}

fn hash(method: &str, target: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in method
        .as_bytes()
        .iter()
        .chain(b" ")
        .chain(target.as_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn is(name: &str, method: &str, target: &str) -> bool {
    name.len() == method.len() + 1 + target.len()
        && name.starts_with(method)
        && name.as_bytes()[method.len()] == b' '
        && name.ends_with(target)
}

impl Names {
    /// The name for `method` and `target`, interned when possible.
    pub(crate) fn get(&self, method: &str, target: &str) -> Cow<'static, str> {
        let h = hash(method, target);
        if let Some(found) = self
            .map
            .load()
            .get(&h)
            .and_then(|v| v.iter().find(|n| is(n, method, target)))
        {
            return Cow::Borrowed(found);
        }
        self.insert(h, method, target)
    }

    #[cold]
    fn insert(&self, h: u64, method: &str, target: &str) -> Cow<'static, str> {
        let mut len = self.len.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        if let Some(found) = current
            .get(&h)
            .and_then(|v| v.iter().find(|n| is(n, method, target)))
        {
            return Cow::Borrowed(found);
        }
        let name = format!("{method} {target}");
        if *len >= MAX_INTERNED {
            return Cow::Owned(name);
        }
        // Leaked on purpose: bounded by MAX_INTERNED per client, and hosts a program talks to
        // live as long as the program.
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
    fn interns() {
        let names = Names::default();
        let a = names.get("GET", "api.example.com");
        let b = names.get("GET", "api.example.com");
        assert_eq!(a, "GET api.example.com");
        assert!(std::ptr::eq(a.as_ptr(), b.as_ptr()));
        assert_eq!(names.get("POST", "api.example.com"), "POST api.example.com");
    }
}
