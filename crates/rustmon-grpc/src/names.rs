//! Method names (`package.Service/Method`) from request paths, interned.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

/// How many distinct method names are interned; past that, calls are named [`OTHER`].
pub(crate) const MAX_INTERNED: usize = 1024;

/// The name of calls past the interning cap or with a malformed path.
pub const OTHER: &str = "_OTHER";

/// Interned `package.Service/Method` names, keyed by path. Reads are lock-free.
#[derive(Default)]
pub(crate) struct Names {
    map: ArcSwap<HashMap<Box<str>, &'static str>>,
    len: Mutex<usize>,
}

/// `(service, method)` of a gRPC path `/package.Service/Method`.
pub(crate) fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

impl Names {
    /// The event name for `path`; [`OTHER`] for malformed paths or past the cap.
    pub(crate) fn get(&self, path: &str) -> Cow<'static, str> {
        if let Some(found) = self.map.load().get(path) {
            return Cow::Borrowed(found);
        }
        if split_path(path).is_none() {
            return Cow::Borrowed(OTHER);
        }
        self.insert(path)
    }

    #[cold]
    fn insert(&self, path: &str) -> Cow<'static, str> {
        let mut len = self.len.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        if let Some(found) = current.get(path) {
            return Cow::Borrowed(found);
        }
        if *len >= MAX_INTERNED {
            return Cow::Borrowed(OTHER);
        }
        // Leaked on purpose, bounded by MAX_INTERNED: a program's methods live as long as it.
        let name: &'static str = Box::leak(path[1..].to_owned().into_boxed_str());
        let mut next = HashMap::clone(&current);
        next.insert(path.into(), name);
        self.map.store(Arc::new(next));
        *len += 1;
        Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(split_path("/pkg.Svc/Do"), Some(("pkg.Svc", "Do")));
        assert_eq!(split_path("/pkg.Svc/"), None);
        assert_eq!(split_path("pkg.Svc/Do"), None);
        assert_eq!(split_path("/a/b/c"), None);
        let names = Names::default();
        assert_eq!(names.get("/pkg.Svc/Do"), "pkg.Svc/Do");
        assert!(std::ptr::eq(
            names.get("/pkg.Svc/Do").as_ptr(),
            names.get("/pkg.Svc/Do").as_ptr()
        ));
        assert_eq!(names.get("/nope"), OTHER);
    }
}
