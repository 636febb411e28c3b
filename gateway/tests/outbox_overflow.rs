//! Focused outbox tests next to the model test: the coalesced overflow report, and the seq
//! counter surviving "everything delivered, database rotated, restarted".

use gateway::outbox::{Cursor, Outbox, OutboxBounds};
use protocols::{Alert, AlertBody, AlertState, CameraOfflineDetails, DeviceRef, DeviceType, Severity};

fn camera(sev: Severity) -> Alert {
    Alert::new(
        "b01".parse().expect("branch"),
        DeviceRef {
            id: "cam-1".parse().expect("id"),
            device_type: DeviceType::Camera,
            name: "Cam".into(),
            zones: vec![],
        },
        AlertState::Raised,
        sev,
        protocols::time::now(),
        "offline".into(),
        AlertBody::CameraOffline(CameraOfflineDetails {
            status: "unreachable".into(),
            reason: "timeout".into(),
            consecutive_failures: 3,
            armed: false,
            uncovered_zones: vec![],
            clock_skew_ms: None,
        }),
    )
}

#[tokio::test]
async fn overflow_is_reported_once_with_the_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ob = Outbox::open(dir.path(), OutboxBounds { max_events: 10, max_bytes: 1 << 20 }).expect("open");
    // As the gateway does: evictions go to the engine's gateway faults, whose (coalesced)
    // report is appended like any alert.
    let mut faults = gateway::health::GatewayFaults::new(
        "b01".parse().expect("branch"),
        gateway::health::gateway_device("GW"),
        gateway::messages::Lang::En,
    );
    let mut evicted = 0;
    let now = std::time::Instant::now();
    for _ in 0..30 {
        let n = ob.append(camera(Severity::Info)).await.expect("append").evicted;
        evicted += n;
        if n > 0 {
            for report in faults.on_event(gateway::events::GatewayEvent::EventsDropped { count: n }, now) {
                ob.append(report).await.expect("append the report");
            }
        }
    }
    let mut c = Cursor::START;
    let all = ob.pending_from(&mut c, usize::MAX).expect("read");
    let reports: Vec<serde_json::Value> = all
        .iter()
        .map(|p| serde_json::from_slice::<serde_json::Value>(&p.payload).expect("json"))
        .filter(|j| j["details"]["fault"] == "outbox-overflow")
        .collect();
    // One report (coalesced: at most one a minute), severity major, counting what was dropped
    // up to that moment; more drops follow and wait for the next report.
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["severity"], "major");
    assert_eq!(reports[0]["device"]["id"], "gateway");
    let n = reports[0]["details"]["dropped_events"].as_u64().expect("count");
    assert!(n >= 1 && n <= evicted, "reported {n}, evicted {evicted}");
    assert!(ob.depth() <= 10);
}

#[tokio::test]
async fn seq_survives_delivery_rotation_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bounds = OutboxBounds { max_events: 100, max_bytes: 1 << 20 };
    {
        let ob = Outbox::open(dir.path(), bounds).expect("open");
        for _ in 0..5 {
            ob.append(camera(Severity::Warning)).await.expect("append");
        }
        let mut c = Cursor::START;
        for p in ob.pending_from(&mut c, 100).expect("read") {
            assert!(ob.ack(p.id).expect("ack"));
        }
        assert_eq!(ob.depth(), 0);
        assert!(ob.compact_now().expect("compact"), "an empty outbox rotates");
        assert_eq!(ob.generation(), 2);
    }
    let ob = Outbox::open(dir.path(), bounds).expect("reopen");
    assert_eq!(ob.last_seq().0, 5);
    assert_eq!(ob.generation(), 2);
    let a = ob.append(camera(Severity::Warning)).await.expect("append");
    assert_eq!(a.alert.seq.0, 6, "seq reused after everything was delivered");
    let gens: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("gen-"))
        .collect();
    assert_eq!(gens.len(), 1, "old generation not removed");
}

/// The open conditions live beside the queue: a raise opens one, its clear closes it, a
/// follow-up or a one-off report opens none, and they survive delivery, rotation and reopening.
#[tokio::test]
async fn open_conditions_follow_raises_and_clears_and_survive_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bounds = OutboxBounds { max_events: 100, max_bytes: 1 << 20 };
    {
        let ob = Outbox::open(dir.path(), bounds).expect("open");
        ob.append(camera(Severity::Major)).await.expect("raise");
        assert_eq!(ob.open_conditions().expect("read").len(), 1);
        let mut clear = camera(Severity::Info);
        clear.state = AlertState::Cleared;
        ob.append(clear).await.expect("clear");
        assert!(ob.open_conditions().expect("read").is_empty(), "the clear did not close it");
        let raised = ob.append(camera(Severity::Major)).await.expect("raise again").alert;
        let mut c = Cursor::START;
        for p in ob.pending_from(&mut c, 100).expect("read") {
            ob.ack(p.id).expect("ack");
        }
        assert!(ob.compact_now().expect("compact"), "an empty outbox rotates");
        let open = ob.open_conditions().expect("read");
        assert_eq!(open.len(), 1, "lost in the rotation");
        assert_eq!(open[0].id, raised.id);
        assert_eq!(open[0].seq, raised.seq, "the stored raise carries its seq");
    }
    let ob = Outbox::open(dir.path(), bounds).expect("reopen");
    let open = ob.open_conditions().expect("read");
    assert_eq!(open.len(), 1, "lost on reopen");
    assert_eq!(open[0].condition_key().as_deref(), Some("camera-offline/cam-1/"));
}
