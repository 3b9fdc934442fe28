//! Placeholder; the benchmark comes with the bench commit.
fn main() {}
