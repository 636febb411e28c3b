//! `/metrics` parses with independent parsers (python prometheus_client's OpenMetrics parser,
//! which its content type asks for, and its Prometheus text-format parser), has every
//! documented metric with its type, and moves when a camera fails and comes back: the device
//! counts, the camera's `bsg_device_up`, its zone's coverage; `/health` reports the uplink.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use device_sim::camera::{AuthMode, CameraFault};
use harness::{Mosquitto, free_port, python, spawn_bin, workspace_root, write_file};

/// A plain HTTP/1.0 GET (status, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    get_with_type(port, path).map(|(status, _, body)| (status, body))
}

/// A plain HTTP/1.0 GET (status, content type, body).
fn get_with_type(port: u16, path: &str) -> Option<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    let ctype = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    Some((status, ctype, body.to_string()))
}

#[derive(Debug, serde::Deserialize)]
struct Sample {
    name: String,
    labels: std::collections::BTreeMap<String, String>,
    value: f64,
    /// The family's type as the parser read it.
    r#type: String,
}

/// Parsed with the OpenMetrics parser, as Prometheus reads an `application/openmetrics-text`
/// answer.
fn parse(text: &str) -> Vec<Sample> {
    parse_with(text, true)
}

/// `openmetrics`: the strict OpenMetrics parser; else the Prometheus text-format (0.0.4) one.
fn parse_with(text: &str, openmetrics: bool) -> Vec<Sample> {
    let mut child = Command::new(python())
        .arg(workspace_root().join("tests/peers/prom_parse.py"))
        .args(openmetrics.then_some("--openmetrics"))
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

/// Every metric docs/CONFIG.md lists (`[metrics]`), as a sample name and its family's type.
const DOCUMENTED: [(&str, &str); 23] = [
    ("bsg_build_info", "gauge"),
    ("bsg_devices", "gauge"),
    ("bsg_device_up", "gauge"),
    ("bsg_zone_covered", "gauge"),
    ("bsg_zone_live_cameras", "gauge"),
    ("bsg_poll_duration_seconds_bucket", "histogram"),
    ("bsg_poll_duration_seconds_count", "histogram"),
    ("bsg_observations_total", "counter"),
    ("bsg_alerts_total", "counter"),
    ("bsg_outbox_depth", "gauge"),
    ("bsg_outbox_bytes", "gauge"),
    ("bsg_outbox_oldest_age_seconds", "gauge"),
    ("bsg_outbox_last_seq", "gauge"),
    ("bsg_events_dropped_total", "counter"),
    ("bsg_store_errors_total", "counter"),
    ("bsg_uplink_connected", "gauge"),
    ("bsg_uplink_reconnects_total", "counter"),
    ("bsg_uplink_connection_errors_total", "counter"),
    ("bsg_uplink_refused_total", "counter"),
    ("bsg_uplink_published_total", "counter"),
    ("bsg_uplink_acked_total", "counter"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_cpu_seconds_total", "counter"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_when_a_camera_fails() {
    let broker = Mosquitto::start().unwrap();
    let cams = harness::sim::cameras(&[("cam-1", "Cam")], AuthMode::UsernameToken).await;
    let dir = tempfile::tempdir().unwrap();
    let mport = free_port();
    let text = format!(
        "[branch]\nid = \"m1\"\nname = \"Metrics\"\n[uplink]\nbroker = \"mqtt://127.0.0.1:{}\"\n[storage]\npath = \"outbox\"\n\
         [metrics]\nlisten = \"127.0.0.1:{mport}\"\n[health]\noffline_after = 2\nonline_after = 1\n\
         [[zone]]\nid = \"vault\"\nname = \"Vault\"\ncoverage_required = true\n\
         [[camera]]\nid = \"cam-1\"\nname = \"Cam\"\nonvif = \"{}\"\nusername = \"admin\"\npassword = \"pw\"\npoll_interval = \"1s\"\ntimeout = \"400ms\"\nzones = [\"vault\"]\n",
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
    let cam = [("device", "cam-1"), ("type", "camera")];
    let vault = [("zone", "vault")];
    let s = scrape_until(&|s| {
        value(s, "bsg_devices", &[("type", "camera"), ("state", "online")]) == Some(1.0)
            && value(s, "bsg_uplink_connected", &[]) == Some(1.0)
            && value(s, "bsg_zone_covered", &vault) == Some(1.0)
    });
    for (name, ty) in DOCUMENTED {
        let found: Vec<&Sample> = s.iter().filter(|x| x.name == name).collect();
        assert!(!found.is_empty(), "{name} is missing");
        assert!(found.iter().all(|x| x.r#type == ty), "{name} is not a {ty}: {found:?}");
    }
    assert!(value(&s, "bsg_poll_duration_seconds_count", &[("type", "camera")]).unwrap_or(0.0) >= 1.0);
    assert_eq!(value(&s, "bsg_outbox_depth", &[]), Some(0.0));
    assert_eq!(value(&s, "bsg_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), Some(1.0));
    assert_eq!(value(&s, "bsg_device_up", &cam), Some(1.0));
    assert_eq!(value(&s, "bsg_zone_live_cameras", &vault), Some(1.0));
    // Each alert kind is there from the start, at 0 (so that its first increase is seen).
    assert_eq!(value(&s, "bsg_alerts_total", &[("kind", "alarm-link"), ("state", "raised")]), Some(0.0));
    assert!(value(&s, "process_resident_memory_bytes", &[]).unwrap_or(0.0) > 1e6);
    assert!(value(&s, "process_cpu_seconds_total", &[]).is_some());
    // Served as OpenMetrics, which Prometheus picks its parser by; a scraper that reads it as
    // the older text format (0.0.4) must still get every sample.
    let (code, ctype, body) = get_with_type(mport, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert_eq!(ctype, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let text_format = parse_with(&body, false);
    for (name, _) in DOCUMENTED {
        assert!(text_format.iter().any(|x| x.name == name), "the text-format parser lost {name}");
    }
    let (code, health) = get(mport, "/health").unwrap();
    assert_eq!(code, 200, "{health}");
    assert!(health.contains("\"status\":\"ok\""), "{health}");

    // The camera goes down: its up gauge and its required zone's coverage follow the device
    // health and the coverage report the engine publishes.
    cams.set_fault("cam-1", CameraFault::Down, true).unwrap();
    let s = scrape_until(&|s| {
        value(s, "bsg_devices", &[("type", "camera"), ("state", "offline")]) == Some(1.0)
            && value(s, "bsg_device_up", &cam) == Some(0.0)
            && value(s, "bsg_zone_covered", &vault) == Some(0.0)
    });
    assert_eq!(value(&s, "bsg_alerts_total", &[("kind", "camera-offline"), ("state", "raised")]), Some(1.0));
    assert_eq!(value(&s, "bsg_zone_live_cameras", &vault), Some(0.0));
    assert_eq!(value(&s, "bsg_devices", &[("type", "camera"), ("state", "online")]), None);
    let (_, health) = get(mport, "/health").unwrap();
    assert!(health.contains("\"devices\":{\"offline\":1}"), "{health}");

    // And back.
    cams.set_fault("cam-1", CameraFault::Down, false).unwrap();
    let s = scrape_until(&|s| {
        value(s, "bsg_device_up", &cam) == Some(1.0) && value(s, "bsg_zone_covered", &vault) == Some(1.0)
    });
    assert_eq!(value(&s, "bsg_devices", &[("type", "camera"), ("state", "online")]), Some(1.0));
    assert_eq!(value(&s, "bsg_zone_live_cameras", &vault), Some(1.0));
    assert_eq!(value(&s, "bsg_alerts_total", &[("kind", "camera-offline"), ("state", "cleared")]), Some(1.0));

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
