//! A bounded interner: strings that name events are leaked once and shared, so using them on the
//! hot path does not allocate. Past the bound, callers get owned copies instead.

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::fingerprint::FastHasher;

/// At most this many distinct strings are interned.
pub(crate) const MAX_INTERNED: usize = 16_384;
/// At most this many bytes are interned.
pub(crate) const MAX_INTERNED_BYTES: usize = 4 << 20;

struct Interner {
    set: HashSet<&'static str, BuildHasherDefault<FastHasher>>,
    bytes: usize,
}

fn interner() -> &'static Mutex<Interner> {
    static I: OnceLock<Mutex<Interner>> = OnceLock::new();
    I.get_or_init(|| {
        Mutex::new(Interner {
            set: HashSet::default(),
            bytes: 0,
        })
    })
}

/// `s` as a shared `'static` string when the interner has room, else an owned copy.
pub(crate) fn intern(s: &str) -> Cow<'static, str> {
    let mut i = interner().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&found) = i.set.get(s) {
        return Cow::Borrowed(found);
    }
    if i.set.len() >= MAX_INTERNED || i.bytes + s.len() > MAX_INTERNED_BYTES {
        return Cow::Owned(s.to_owned());
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    i.bytes += s.len();
    i.set.insert(leaked);
    Cow::Borrowed(leaked)
}
