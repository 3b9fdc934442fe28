//! The bounded fingerprint cache, keyed by statement text.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::Dialect;
use crate::fingerprint::{FastHasher, Fingerprint};

const SHARDS: usize = 16;

/// Keyed by the text's hash (computed once per lookup); the text is kept to confirm a hit.
type Map = HashMap<u64, (Box<str>, Fingerprint), BuildHasherDefault<IdHasher>>;

/// The key is already a good hash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Fingerprints by statement text, bounded: each of 16 shards holds at most `capacity / 16`
/// statements and is emptied when full (a statement set larger than the cache keeps working,
/// at the uncached cost). Lookups take one uncontended lock per shard.
///
/// # Examples
/// ```
/// use rustmon_sql::{Dialect, FingerprintCache};
/// let cache = FingerprintCache::new(1024);
/// let a = cache.get("SELECT 1", Dialect::Postgres);
/// let b = cache.get("SELECT 1", Dialect::Postgres); // from the cache
/// assert_eq!(a, b);
/// assert_eq!(a.text(), "SELECT ?");
/// ```
pub struct FingerprintCache {
    shards: [Mutex<Map>; SHARDS],
    per_shard: usize,
}

impl std::fmt::Debug for FingerprintCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FingerprintCache")
            .field("capacity", &(self.per_shard * SHARDS))
            .field("len", &self.len())
            .finish()
    }
}

impl FingerprintCache {
    /// The capacity of the shared cache ([`FingerprintCache::shared`]).
    pub const DEFAULT_CAPACITY: usize = 4096;

    /// A cache holding at most `capacity` statements (at least 16).
    pub fn new(capacity: usize) -> Self {
        FingerprintCache {
            shards: std::array::from_fn(|_| Mutex::new(Map::default())),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// The process-wide cache all integrations use.
    pub fn shared() -> &'static FingerprintCache {
        static C: OnceLock<FingerprintCache> = OnceLock::new();
        C.get_or_init(|| FingerprintCache::new(Self::DEFAULT_CAPACITY))
    }

    /// The fingerprint of `sql`, computed on the first sight of this text (and dialect).
    pub fn get(&self, sql: &str, dialect: Dialect) -> Fingerprint {
        let mut h = FastHasher::default();
        h.write(sql.as_bytes());
        h.write_u8(dialect as u8);
        let key = h.finish();
        let shard = &self.shards[(key >> 60) as usize % SHARDS];
        let key_ok = |map: &Map| {
            map.get(&key)
                .filter(|(text, fp)| &**text == sql && fp.dialect() == dialect)
                .map(|(_, fp)| fp.clone())
        };
        {
            let map = shard.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(fp) = key_ok(&map) {
                return fp;
            }
        }
        // Computed outside the lock.
        let fp = Fingerprint::new(sql, dialect);
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.per_shard && !map.contains_key(&key) {
            map.clear();
        }
        map.insert(key, (sql.into(), fp.clone()));
        fp
    }

    /// How many statements are cached.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
