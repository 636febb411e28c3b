//! Interop: the simulator's cameras driven by the npm `onvif` package (node), an ONVIF client
//! written independently of ours and of onvif-zeep. It connects with WS-UsernameToken to a
//! camera whose clock is 90 s off (the library must measure the offset), reads device
//! information, profiles, stream and snapshot URIs, receives a tamper event through a
//! pull-point subscription, and is refused with a wrong password.
//!
//! (Named `discovery_*` only because this work package owns that file prefix; it is camera
//! interop, beside camera_interop.rs.) The peer is installed by scripts/test (`npm ci` in
//! tests/peers); if it is missing the test fails and says so.

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use device_sim::camera::{AuthMode, CameraEventKind, CameraFault, CameraFleet, CameraSpec};

fn require_node_peer() {
    let peers = harness::workspace_root().join("tests/peers");
    assert!(
        peers.join("node_modules/onvif/package.json").is_file(),
        "the npm `onvif` peer is not installed in {}/node_modules — run scripts/test (it runs npm ci there)",
        peers.display()
    );
    assert!(harness::which("node").is_some(), "node is not installed — run scripts/test (it says what to install)");
}

/// The node peer, its stdout lines on a channel; killed on drop.
struct NodePeer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl NodePeer {
    fn start(port: u16, user: &str, password: &str, events: bool) -> NodePeer {
        let peers = harness::workspace_root().join("tests/peers");
        let mut cmd = Command::new("node");
        cmd.current_dir(&peers).arg("onvif_node_client.js").args(["127.0.0.1", &port.to_string(), user, password]);
        if events {
            cmd.arg("--events");
        }
        let mut child =
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn node");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        NodePeer { child, lines }
    }

    /// The next JSON line, waiting off the runtime.
    async fn next(&mut self, limit: Duration) -> serde_json::Value {
        let line = tokio::task::block_in_place(|| self.lines.recv_timeout(limit))
            .unwrap_or_else(|_| panic!("the node peer printed nothing within {limit:?}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON from the node peer ({e}): {line}"))
    }

    async fn exit_code(&mut self) -> i32 {
        tokio::task::block_in_place(|| {
            for _ in 0..500 {
                if let Ok(Some(st)) = self.child.try_wait() {
                    return st.code().unwrap_or(-1);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            -1
        })
    }
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_onvif_reads_the_camera_and_receives_a_tamper_event() {
    require_node_peer();
    let spec = CameraSpec {
        id: "node-cam".into(),
        name: "Node Cam".into(),
        username: "admin".into(),
        password: "s3cret".into(),
        auth: AuthMode::UsernameToken,
    };
    let fleet = CameraFleet::start(IpAddr::from([127, 0, 0, 1]), vec![spec]).await.expect("fleet");
    let cam = fleet.cameras().remove(0);
    // Beyond the ±60 s the camera accepts: passes only if the client uses the camera's clock.
    fleet.set_fault("node-cam", CameraFault::ClockSkew(90), true).expect("skew");

    let mut peer = NodePeer::start(cam.http_port, "admin", "s3cret", true);
    let first = peer.next(Duration::from_secs(30)).await;
    assert_eq!(first["stage"], "subscribed", "{first}");
    fleet.emit_event("node-cam", CameraEventKind::Tamper, true).expect("emit");
    let result = peer.next(Duration::from_secs(30)).await;
    assert_eq!(peer.exit_code().await, 0, "{result}");
    assert_eq!(result["serial"], "SIM-node-cam", "{result}");
    assert_eq!(result["model"], "SimCam-1", "{result}");
    assert_eq!(result["profiles"][0], "profile_1", "{result}");
    assert_eq!(result["stream_uri"], cam.rtsp_uri.as_str(), "{result}");
    assert_eq!(result["snapshot_uri"], cam.snapshot_uri.as_str(), "{result}");
    let shift = result["time_shift_ms"].as_f64().unwrap_or(0.0);
    assert!((80_000.0..100_000.0).contains(&shift), "the library measured the camera's +90 s: {result}");
    assert_eq!(result["tamper"]["item"], "IsTamper", "{result}");
    // Before the change: one Initialized message per health condition, tamper inactive.
    let events = result["events"].as_array().expect("events");
    assert!(
        events.iter().any(|e| e["operation"] == "Initialized"
            && e["topic"].as_str().is_some_and(|t| t.ends_with("Tamper"))
            && e["value"] == "false"),
        "{result}"
    );
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_onvif_with_a_wrong_password_is_refused() {
    require_node_peer();
    let spec = CameraSpec {
        id: "node-cam".into(),
        name: "Node Cam".into(),
        username: "admin".into(),
        password: "s3cret".into(),
        auth: AuthMode::UsernameToken,
    };
    let fleet = CameraFleet::start(IpAddr::from([127, 0, 0, 1]), vec![spec]).await.expect("fleet");
    let cam = fleet.cameras().remove(0);
    let mut peer = NodePeer::start(cam.http_port, "admin", "wrong", false);
    let result = peer.next(Duration::from_secs(30)).await;
    assert_eq!(peer.exit_code().await, 2, "a wrong password must be an auth failure: {result}");
    assert_eq!(result["auth"], true, "{result}");
    assert!(result.get("serial").is_none(), "nothing read with a wrong password: {result}");
    fleet.shutdown().await;
}
