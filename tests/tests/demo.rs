//! The README's first command: the demo plays its scenario over real sockets (embedded
//! broker, simulated branch, the gateway, a head-office view) and the head-office view
//! prints the camera loss, the alarm with its camera down, the forced door, the recovery and
//! the coverage table, then stops cleanly.

use std::process::Command;

use harness::bin;

#[test]
fn the_demo_shows_every_alert_kind_at_head_office() {
    let out = Command::new(bin("branch-demo")).args(["--exit-after", "38s"]).output().expect("run branch-demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {}\n{text}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "gateway demo-0101 is online",
        "RAISED  CRITICAL camera-offline  cam-04",
        "NO — unwatched",
        "alarm-link",
        "a linked camera is DOWN",
        "door-status",
        "forced open",
        "cleared info     camera-offline  cam-04",
        "gateway demo-0101 is offline",
        // Head office stored it all in SQLite and assessed it.
        "Head office's database (sqlite://",
        "alarms 1, with a camera down: 1",
        "mean time to repair (camera)",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in the demo output:\n{text}");
    }
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
