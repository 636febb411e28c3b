//! `/metrics` parses with an independent Prometheus text-format parser (python
//! prometheus_client) and moves when a device fails; `/health` reports the uplink.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use device_sim::camera::{AuthMode, CameraFault};
use harness::{Mosquitto, free_port, python, spawn_bin, workspace_root, write_file};

/// A plain HTTP/1.0 GET (status, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

#[derive(Debug, serde::Deserialize)]
struct Sample {
    name: String,
    labels: std::collections::BTreeMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    let mut child = Command::new(python())
        .arg(workspace_root().join("tests/peers/prom_parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python with prometheus_client (run scripts/test)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the exposition does not parse: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_when_a_camera_fails() {
    let broker = Mosquitto::start().unwrap();
    let cams = harness::sim::cameras(&[("cam-1", "Cam")], AuthMode::UsernameToken).await;
    let dir = tempfile::tempdir().unwrap();
    let mport = free_port();
    let text = format!(
        "[branch]\nid = \"m1\"\nname = \"Metrics\"\n[uplink]\nbroker = \"mqtt://127.0.0.1:{}\"\n[storage]\npath = \"outbox\"\n\
         [metrics]\nlisten = \"127.0.0.1:{mport}\"\n[health]\noffline_after = 2\nonline_after = 1\n\
         [[camera]]\nid = \"cam-1\"\nname = \"Cam\"\nonvif = \"{}\"\nusername = \"admin\"\npassword = \"pw\"\npoll_interval = \"1s\"\ntimeout = \"400ms\"\n",
        broker.port,
        cams.cameras()[0].device_url
    );
    let cfg = write_file(dir.path(), "site.toml", &text).unwrap();
    let _gw = spawn_bin("branch-gateway", &["run", cfg.to_str().unwrap()], dir.path(), &[]).unwrap();

    let scrape_until = |pred: &dyn Fn(&[Sample]) -> bool| -> Vec<Sample> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some((200, body)) = get(mport, "/metrics") {
                let s = parse(&body);
                if pred(&s) {
                    return s;
                }
            }
            assert!(Instant::now() < deadline, "metrics never reached the expected state");
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let s = scrape_until(&|s| {
        value(s, "bsg_devices", &[("type", "camera"), ("state", "online")]) == Some(1.0)
            && value(s, "bsg_uplink_connected", &[]) == Some(1.0)
    });
    assert!(value(&s, "bsg_poll_duration_seconds_count", &[("type", "camera")]).unwrap_or(0.0) >= 1.0);
    assert_eq!(value(&s, "bsg_outbox_depth", &[]), Some(0.0));
    let (code, health) = get(mport, "/health").unwrap();
    assert_eq!(code, 200, "{health}");
    assert!(health.contains("\"status\":\"ok\""), "{health}");

    cams.set_fault("cam-1", CameraFault::Down, true).unwrap();
    let s = scrape_until(&|s| value(s, "bsg_devices", &[("type", "camera"), ("state", "offline")]) == Some(1.0));
    assert_eq!(value(&s, "bsg_alerts_total", &[("kind", "camera-offline"), ("state", "raised")]), Some(1.0));

    // The uplink goes away: /health says so with 503.
    drop(broker);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((503, body)) = get(mport, "/health") {
            assert!(body.contains("degraded"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "/health never went 503 without a broker");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(get(mport, "/nope").map(|r| r.0), Some(404));
    cams.shutdown().await;
}
