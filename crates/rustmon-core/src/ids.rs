//! Trace and span identifiers, and the fast random source that makes them.

use std::cell::Cell;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// A 128-bit W3C trace id. Never zero when generated.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub u128);

/// A 64-bit W3C span id. Never zero when generated.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub u64);

impl TraceId {
    /// A new random, non-zero trace id.
    #[inline]
    pub fn random() -> Self {
        loop {
            let id = (u128::from(next_u64()) << 64) | u128::from(next_u64());
            if id != 0 {
                return TraceId(id);
            }
        }
    }

    /// The id as 16 big-endian bytes, the layout of OTLP and W3C trace context.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Parses 32 lowercase or uppercase hex digits; `None` for anything else or the all-zero id.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(hex, 16)
            .ok()
            .filter(|&v| v != 0)
            .map(TraceId)
    }
}

impl SpanId {
    /// A new random, non-zero span id.
    #[inline]
    pub fn random() -> Self {
        loop {
            let id = next_u64();
            if id != 0 {
                return SpanId(id);
            }
        }
    }

    /// The id as 8 big-endian bytes, the layout of OTLP and W3C trace context.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Parses 16 hex digits; `None` for anything else or the all-zero id.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(hex, 16)
            .ok()
            .filter(|&v| v != 0)
            .map(SpanId)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// wyrand: a small, fast generator with a per-thread state seeded from the OS-randomised hasher.
/// Ids need uniqueness, not secrecy.
#[inline]
fn next_u64() -> u64 {
    RNG.with(|state| {
        let mut s = state.get();
        if s == 0 {
            s = seed();
        }
        s = s.wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

#[cold]
fn seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    std::hash::Hash::hash(&std::thread::current().id(), &mut h);
    h.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_non_zero_and_distinct() {
        let a = TraceId::random();
        let b = TraceId::random();
        assert_ne!(a, b);
        assert_ne!(a.0, 0);
        assert_ne!(SpanId::random(), SpanId::random());
    }

    #[test]
    fn hex_round_trip() {
        let t = TraceId::random();
        assert_eq!(TraceId::from_hex(&t.to_string()), Some(t));
        let s = SpanId::random();
        assert_eq!(SpanId::from_hex(&s.to_string()), Some(s));
        assert_eq!(TraceId::from_hex(&"0".repeat(32)), None);
        assert_eq!(SpanId::from_hex("xyz"), None);
        assert_eq!(SpanId::from_hex("+123456789abcdef"), None);
    }
}
