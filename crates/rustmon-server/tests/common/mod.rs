//! Helpers: run `rustmon serve` as a child process on free ports and talk to its API.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "rustmon-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running collector.
pub struct Collector {
    pub child: Child,
    pub api: String,
    pub otlp_http: String,
    pub otlp_grpc: String,
}

impl Collector {
    /// Starts `rustmon serve` on port 0 everywhere with `data` as its directory.
    pub fn start(data: &Path, extra: &[&str]) -> Collector {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rustmon"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--otlp-http",
                "127.0.0.1:0",
            ])
            .args(["--otlp-grpc", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rustmon");
        let out = child.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        let mut found = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("listening ") {
                let mut m = std::collections::HashMap::new();
                for kv in rest.split_whitespace() {
                    let (k, v) = kv.split_once('=').unwrap();
                    m.insert(k.to_string(), v.to_string());
                }
                found = Some(m);
                break;
            }
        }
        let m = found.expect("collector printed its addresses");
        // keep draining stdout so the child never blocks on a full pipe
        std::thread::spawn(move || for _ in lines {});
        Collector {
            child,
            api: format!("http://{}", m["api"]),
            otlp_http: format!("http://{}", m["otlp_http"]),
            otlp_grpc: format!("http://{}", m["otlp_grpc"]),
        }
    }

    /// GET an API path; returns status and JSON body.
    pub fn get(&self, path: &str) -> (u16, Value) {
        let r = reqwest::blocking::get(format!("{}{}", self.api, path)).unwrap();
        let st = r.status().as_u16();
        let text = r.text().unwrap();
        (
            st,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// GET that must answer 200.
    pub fn ok(&self, path: &str) -> Value {
        let (st, v) = self.get(path);
        assert_eq!(st, 200, "GET {path}: {v}");
        v
    }

    /// Stops with SIGTERM and waits.
    pub fn stop(mut self) {
        let pid = self.child.id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let st = self.child.wait().unwrap();
        assert!(st.success(), "collector exited with {st}");
        std::mem::forget(self);
    }

    /// Kills with SIGKILL.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::forget(self);
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts `got` is within `tol` (relative) of `want`.
pub fn approx(got: &Value, want: f64, tol: f64, what: &str) {
    let g = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {got}"));
    assert!(
        (g - want).abs() <= want.abs() * tol,
        "{what}: got {g}, want {want} ± {}%",
        tol * 100.0
    );
}
