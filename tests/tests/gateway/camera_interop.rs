//! Interop: the simulator's cameras driven by an independent Python client,
//! onvif-zeep-async (what Home Assistant uses), along Home Assistant's onvif setup path
//! (`tests/peers/onvif_zeep_client.py`: the MAC from GetNetworkInterfaces, media and events
//! GetServiceCapabilities, a snapshot, a pull point…). The peer comes from the project's
//! virtualenv (`BSG_PYTHON`, else `.venv`); if it is missing the test fails and says how to get it.

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use device_sim::camera::{AuthMode, CameraFault, CameraFleet, CameraSpec};

fn require_zeep() {
    let py = harness::python();
    let ok = Command::new(&py).args(["-c", "import onvif, zeep"]).output().map(|o| o.status.success()).unwrap_or(false);
    assert!(
        ok,
        "onvif-zeep-async is not installed for {} — run scripts/test (it installs the Python peers from tests/requirements.txt)",
        py.display()
    );
}

/// Runs the zeep peer off the async runtime; returns (exit code, stdout).
async fn run_zeep(host: &str, port: u16, user: &str, password: &str) -> (i32, serde_json::Value) {
    let script = harness::workspace_root().join("tests/peers/onvif_zeep_client.py");
    let args =
        vec![script.display().to_string(), host.to_string(), port.to_string(), user.to_string(), password.to_string()];
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || Command::new(harness::python()).args(&args).output()),
    )
    .await
    .expect("zeep peer finished within 60 s")
    .expect("join")
    .expect("spawn the zeep peer");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let json = serde_json::from_str(line).unwrap_or_else(|_| {
        panic!("zeep peer printed no JSON; stdout: {stdout}; stderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().unwrap_or(-1), json)
}

/// `aa:bb:cc:dd:ee:ff`, lower- or upper-case hex.
fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_interop_onvif_zeep_async_reads_the_simulator() {
    require_zeep();
    let spec = CameraSpec {
        id: "zeep-cam".into(),
        name: "Zeep Cam".into(),
        username: "admin".into(),
        password: "s3cret".into(),
        auth: AuthMode::UsernameToken,
    };
    let other = CameraSpec { id: "zeep-cam-2".into(), name: "Zeep Cam 2".into(), ..spec.clone() };
    let fleet = CameraFleet::start(IpAddr::from([127, 0, 0, 1]), vec![spec, other]).await.expect("fleet");
    let cam = fleet.cameras().remove(0);
    // A skewed camera clock: zeep's adjust_time must compensate, as against real cameras.
    fleet.set_fault("zeep-cam", CameraFault::ClockSkew(90), true).expect("skew");

    let (code, json) = run_zeep("127.0.0.1", cam.http_port, "admin", "s3cret").await;
    assert_eq!(code, 0, "zeep run failed: {json}");
    assert_eq!(json["serial"], "SIM-zeep-cam");
    assert_eq!(json["profiles"][0], "profile_1");
    assert_eq!(json["stream_uri"], cam.rtsp_uri.as_str());
    assert_eq!(json["snapshot_uri"], cam.snapshot_uri.as_str());
    let xaddrs = json["xaddrs"].to_string();
    assert!(xaddrs.contains("events/wsdl"), "events service listed: {xaddrs}");
    // Home Assistant's setup path: its unique id (the MAC), snapshot and pull-point support.
    let mac = json["macs"][0].as_str().unwrap_or_default().to_string();
    assert!(is_mac(&mac), "GetNetworkInterfaces gives a MAC: {json}");
    assert_eq!(json["media_snapshot_uri"], true, "media GetServiceCapabilities says SnapshotUri: {json}");
    assert_eq!(json["media_rtp_rtsp_tcp"], true, "{json}");
    assert_eq!(json["events_pull_point"], true, "events GetServiceCapabilities says WSPullPointSupport: {json}");
    assert_eq!(json["encodings"][0], "H264", "Home Assistant keeps H264 profiles only: {json}");
    let categories = json["capability_categories"].to_string();
    for c in ["Device", "Events", "Media"] {
        assert!(categories.contains(c), "GetCapabilities lists {c}: {categories}");
    }
    assert_eq!(json["snapshot_is_jpeg"], true, "a snapshot through onvif-zeep-async's Digest client: {json}");
    let topics = json["pulled_topics"].to_string();
    assert!(topics.contains("tns1:VideoSource/SignalLoss"), "the pull point's initial messages: {topics}");

    // Another camera has another MAC, and each camera keeps its own across runs.
    let other = fleet.cameras().remove(1);
    let (code, json2) = run_zeep("127.0.0.1", other.http_port, "admin", "s3cret").await;
    assert_eq!(code, 0, "zeep run failed: {json2}");
    let mac2 = json2["macs"][0].as_str().unwrap_or_default();
    assert!(is_mac(mac2) && mac2 != mac, "distinct MACs: {mac} and {mac2}");
    let (_, again) = run_zeep("127.0.0.1", cam.http_port, "admin", "s3cret").await;
    assert_eq!(again["macs"][0].as_str(), Some(mac.as_str()), "a stable MAC");

    let (code, json) = run_zeep("127.0.0.1", cam.http_port, "admin", "wrong").await;
    assert_eq!(code, 2, "wrong password must be an auth failure: {json}");
    fleet.shutdown().await;
}
