//! Benchmarks of rustmon's database integrations against the bare drivers: see
//! `benches/overhead.rs` (run with `cargo bench -p rustmon-db-bench`). This library is empty.
