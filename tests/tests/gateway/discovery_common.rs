//! Helpers shared by the discovery tests: a site config for a set of cameras, and
//! `branch-gateway discover` run as a user would run it (bounded in time).

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A minimal valid site config listing `cameras` as (id, onvif URL).
pub fn site_config(cameras: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "[branch]\nid = \"disc\"\nname = \"Discovery test\"\n[uplink]\nbroker = \"mqtt://127.0.0.1:1883\"\n",
    );
    for (id, url) in cameras {
        s.push_str(&format!("\n[[camera]]\nid = \"{id}\"\nname = \"{id}\"\nonvif = \"{url}\"\n"));
    }
    s
}

/// What one run of a command printed.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout as the JSON object `discover --json` prints.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!("discover printed no JSON ({e}); stdout: {}; stderr: {}", self.stdout, self.stderr)
        })
    }
}

/// Runs `program args…`, killing it after `limit`. Blocking: call from a blocking thread.
pub fn run(program: &Path, args: &[String], limit: Duration) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {} ({e}); built? run scripts/test", program.display()));
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                break;
            }
        }
    }
    let out = child.wait_with_output().expect("collect output");
    let o = Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!o.stderr.contains("panicked"), "{} panicked: {}", program.display(), o.stderr);
    o
}

/// `branch-gateway discover ARGS…` off the async runtime.
pub async fn discover(args: Vec<String>) -> Output {
    let mut full = vec!["discover".to_string()];
    full.extend(args);
    tokio::task::spawn_blocking(move || run(&harness::bin("branch-gateway"), &full, Duration::from_secs(30)))
        .await
        .expect("join")
}

/// The test-only responder example (device-sim/examples/discovery_responder.rs).
pub fn responder_example() -> PathBuf {
    let p = harness::bin("device-sim").parent().map(|d| d.join("examples/discovery_responder")).unwrap_or_default();
    assert!(
        p.is_file(),
        "{} is missing: build the examples (cargo build --workspace --examples; scripts/test does)",
        p.display()
    );
    p
}
