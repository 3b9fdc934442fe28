//! Declares the `tokio_unstable` cfg so builds with it and without it are both lint-clean.
fn main() {
    // `--cfg tokio_unstable` unlocks tokio's unstable runtime metrics.
    println!("cargo::rustc-check-cfg=cfg(tokio_unstable)");
}
