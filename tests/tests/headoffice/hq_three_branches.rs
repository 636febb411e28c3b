//! Three real gateways for three simulated branches, one real mosquitto, and `hq`:
//! `hq coverage` shows the right picture for each branch as cameras are stopped and restarted,
//! and `hq report`'s availability matches the scripted outage durations within one poll
//! interval; an alarm while its linked camera is down is reported as such.

use crate::hq_common;

use std::process::Command;
use std::time::{Duration, Instant};

use device_sim::camera::CameraFault;
use harness::{Mosquitto, PahoSubscriber, bin, spawn_bin};
use hq_common::start_branch;

const POLL: Duration = Duration::from_secs(1);

fn hq(args: &[&str]) -> serde_json::Value {
    let out = Command::new(bin("hq")).args(args).output().expect("run hq");
    assert!(out.status.success(), "hq {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("hq {args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn branch_of<'a>(v: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    v["branches"]
        .as_array()
        .and_then(|a| a.iter().find(|b| b["branch"] == id))
        .unwrap_or_else(|| panic!("{id} missing in {v}"))
}

fn camera_of<'a>(b: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    b["cameras"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("{id} missing in {b}"))
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hq_sees_each_branchs_coverage_and_availability() {
    let broker = Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hq.db").display());
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let _listen = spawn_bin("hq", &["listen", "--broker", &url, "--db", &db], dir.path(), &[]).unwrap();
    let mut sub = PahoSubscriber::start(broker.port, &["branches/+/coverage", "branches/+/alerts/#"]).unwrap();
    let mut branches = Vec::new();
    for id in ["b1", "b2", "b3"] {
        branches.push(start_branch(id, broker.port, dir.path()).await.unwrap());
    }
    // Every branch covered before the script starts.
    for id in ["b1", "b2", "b3"] {
        let topic = format!("branches/{id}/coverage");
        assert!(
            sub.wait_for(Duration::from_secs(30), |m| m.topic == topic
                && m.json()["totals"]["required_zones_uncovered"] == 0
                && m.json()["totals"]["cameras_live_video"] == 2)
                .is_some(),
            "{id} never fully covered"
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let from = chrono::Utc::now();

    // b1 loses its vault camera for 8 s; b3 loses it for good; b2 keeps everything.
    let b1 = &branches[0];
    let b3 = &branches[2];
    b1.cams.set_fault("cam-1", CameraFault::Down, true).unwrap();
    b3.cams.set_fault("cam-1", CameraFault::Down, true).unwrap();
    let b1_down = Instant::now();
    let b3_down_at = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    b1.cams.set_fault("cam-1", CameraFault::Down, false).unwrap();
    let b1_outage = b1_down.elapsed();

    // An alarm in b3 while its vault camera is down.
    assert!(
        sub.wait_for(Duration::from_secs(10), |m| m.topic == "branches/b3/alerts/camera-offline").is_some(),
        "b3 camera-offline not raised"
    );
    b3.panels.set_point("alarm-1", "zone.1", "alarm").unwrap();
    let alarm = sub
        .wait_for(Duration::from_secs(10), |m| m.topic == "branches/b3/alerts/alarm-link")
        .expect("b3 alarm-link")
        .json();
    assert_eq!(alarm["details"]["cameras"][0]["online"], false, "{alarm}");
    assert!(
        sub.wait_for(Duration::from_secs(10), |m| m.topic == "branches/b1/alerts/camera-offline"
            && m.json()["state"] == "cleared")
            .is_some()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Coverage right now.
    let cov = hq(&["coverage", "--broker", &url, "--db", &db, "--live", "2s", "--format", "json"]);
    let (c1, c2, c3) = (branch_of(&cov, "b1"), branch_of(&cov, "b2"), branch_of(&cov, "b3"));
    for c in [c1, c2, c3] {
        assert_eq!(c["gateway"], "online", "{c}");
    }
    assert_eq!(c1["required_zones_uncovered"], 0, "{c1}");
    assert_eq!(c2["required_zones_uncovered"], 0, "{c2}");
    assert_eq!(c3["required_zones_uncovered"], 1, "{c3}");
    assert_eq!(c3["uncovered_zones"][0]["id"], "vault", "{c3}");
    assert_eq!(c3["uncovered_zones"][0]["name"], "Vault", "{c3}");
    assert_eq!(c3["cameras_online"], 1, "{c3}");
    assert_eq!(c1["cameras_online"], 2, "{c1}");

    // The report over the scripted window.
    let to = chrono::Utc::now();
    let window = (to - from).to_std().unwrap();
    let rep = hq(&["report", "--db", &db, "--from", &rfc3339(from), "--to", &rfc3339(to), "--format", "json"]);
    let (r1, r2, r3) = (branch_of(&rep, "b1"), branch_of(&rep, "b2"), branch_of(&rep, "b3"));
    // The outage is known from the first failed probe: up to one poll interval after the fault,
    // plus that probe's own time (a refused connection, a few ms; more on a loaded machine).
    let tol_pct = 100.0 * (POLL.as_secs_f64() + 0.25) / window.as_secs_f64() + 0.01;
    let pct = |outage: f64| 100.0 * (window.as_secs_f64() - outage) / window.as_secs_f64();

    let got = camera_of(r1, "cam-1")["online_pct"].as_f64().unwrap();
    let want = pct(b1_outage.as_secs_f64());
    assert!((got - want).abs() <= tol_pct, "b1 cam-1 online {got:.2}% vs scripted {want:.2}% (±{tol_pct:.2})\n{r1}");
    assert!((camera_of(r1, "cam-2")["online_pct"].as_f64().unwrap() - 100.0).abs() < 1e-6);
    for cam in ["cam-1", "cam-2"] {
        assert!((camera_of(r2, cam)["online_pct"].as_f64().unwrap() - 100.0).abs() < 1e-6, "{r2}");
    }
    let b3_outage = (to - b3_down_at).to_std().unwrap().as_secs_f64();
    let got = camera_of(r3, "cam-1")["online_pct"].as_f64().unwrap();
    let want = pct(b3_outage);
    assert!((got - want).abs() <= tol_pct, "b3 cam-1 online {got:.2}% vs scripted {want:.2}% (±{tol_pct:.2})\n{r3}");

    // Uncovered minutes of the required zone follow the same outages.
    let zone = |r: &serde_json::Value| {
        r["zones"]
            .as_array()
            .and_then(|a| a.iter().find(|z| z["id"] == "vault"))
            .map(|z| z["uncovered_minutes"].as_f64().unwrap_or(0.0) * 60.0)
            .unwrap_or(0.0)
    };
    assert!(
        (zone(r1) - b1_outage.as_secs_f64()).abs() <= 2.0 * POLL.as_secs_f64(),
        "b1 vault uncovered {} s\n{r1}",
        zone(r1)
    );
    assert!(zone(r2) < 1e-6, "{r2}");

    // The b3 alarm is listed with its camera down.
    let down = r3["alarms_with_camera_down"].as_array().unwrap();
    assert_eq!(down.len(), 1, "{r3}");
    assert_eq!(down[0]["zone"], "vault-door");
    assert_eq!(down[0]["cameras_down"][0]["id"], "cam-1");
    assert!(r1["alarms_with_camera_down"].as_array().unwrap().is_empty());

    for b in &branches {
        let _ = &b.id;
        b.cams.shutdown().await;
        b.panels.shutdown().await;
    }
}
