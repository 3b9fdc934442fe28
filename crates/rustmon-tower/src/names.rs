//! Event names (`GET /orders/{id}`) and per-request strings are interned with
//! [`rustmon_core::intern::Interner`] so that a request does not allocate them.

/// How many distinct names one layer interns; past that, names are allocated per request. Names
/// are low-cardinality (methods are normalised, routes are templates), so the cap only guards
/// against a route callback that returns raw paths.
pub(crate) const MAX_INTERNED: usize = 2048;

/// The marker naming requests that matched no route.
pub const UNMATCHED: &str = "unmatched";
