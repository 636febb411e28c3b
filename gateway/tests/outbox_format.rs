//! The outbox's storage form: what is handed out for publishing is byte for byte the JSON of the
//! alert appended — for every kind of alert, on every redelivery, after a reopen and after a
//! crash — and a backlog written by an earlier release (JSON records) is delivered unchanged.

use std::collections::BTreeMap;
use std::path::Path;

use gateway::outbox::{Cursor, Outbox, OutboxBounds};
use protocols::{
    AlarmLinkDetails, Alert, AlertBody, AlertKind, AlertState, CameraOfflineDetails, DeviceFaultDetails, DeviceRef,
    DeviceType, DoorState, DoorStatusDetails, LinkedCamera, Severity, Snapshot, ZoneId,
};

fn bounds() -> OutboxBounds {
    OutboxBounds { max_events: 10_000, max_bytes: 1 << 24 }
}

fn zone(z: &str) -> ZoneId {
    z.parse().expect("zone id")
}

fn device(id: &str, t: DeviceType, zones: &[&str]) -> DeviceRef {
    DeviceRef {
        id: id.parse().expect("device id"),
        device_type: t,
        name: format!("{id} · 营业厅"),
        zones: zones.iter().map(|z| zone(z)).collect(),
    }
}

fn linked(id: &str, down: bool) -> LinkedCamera {
    LinkedCamera {
        id: id.parse().expect("camera id"),
        name: format!("Camera {id}"),
        online: !down,
        stream_alive: !down,
        frozen: false,
        picture: down.then(|| "obstructed".to_string()),
        stream_uri: Some(format!("rtsp://192.0.2.7:554/{id}/main")),
        snapshot_uri: (!down).then(|| format!("http://192.0.2.7/{id}/snapshot.jpg")),
    }
}

fn snapshots() -> Vec<Snapshot> {
    vec![
        Snapshot {
            camera: "cam-01".parse().expect("id"),
            file: Some("20261207T080000.123Z-cam-01.jpg".into()),
            taken_at: protocols::time::now(),
            bytes: 61_204,
            error: None,
        },
        Snapshot {
            camera: "cam-02".parse().expect("id"),
            file: None,
            taken_at: protocols::time::now(),
            bytes: 0,
            error: Some("GET /snapshot: 401 Unauthorized".into()),
        },
    ]
}

/// Every kind of alert the gateway makes, optional fields present and absent: camera-offline,
/// alarm-link (with linked cameras, and its follow-up with snapshots), door-status (forced
/// open: priority; held open with snapshots), device-fault (a plain fault, the uplink's with
/// its counts, the outbox overflow report).
fn every_kind() -> Vec<Alert> {
    let b = || "b0101".parse().expect("branch");
    let now = protocols::time::now;
    let mut out = vec![
        Alert::new(
            b(),
            device("cam-01", DeviceType::Camera, &["hall"]),
            AlertState::Raised,
            Severity::Major,
            now(),
            "Camera cam-01 offline: no answer to ONVIF GetDeviceInformation".into(),
            AlertBody::CameraOffline(CameraOfflineDetails {
                status: "unreachable".into(),
                reason: "connect: connection timed out".into(),
                consecutive_failures: 3,
                armed: true,
                uncovered_zones: vec![zone("hall")],
                clock_skew_ms: Some(-2_150),
            }),
        ),
        Alert::new(
            b(),
            device("cam-01", DeviceType::Camera, &["hall"]),
            AlertState::Cleared,
            Severity::Info,
            now(),
            "摄像机 cam-01 已恢复".into(),
            AlertBody::CameraOffline(CameraOfflineDetails {
                status: "online".into(),
                reason: String::new(),
                consecutive_failures: 0,
                armed: false,
                uncovered_zones: vec![],
                clock_skew_ms: None,
            }),
        ),
    ];
    let alarm = Alert::new(
        b(),
        device("panel-1", DeviceType::AlarmPanel, &[]),
        AlertState::Raised,
        Severity::Critical,
        now(),
        "Zone vault fired (armed)".into(),
        AlertBody::AlarmLink(AlarmLinkDetails {
            zone: zone("vault"),
            zone_name: "金库".into(),
            zone_state: "alarm".into(),
            partition: Some("1".into()),
            armed: true,
            twenty_four_hour: false,
            area: Some(zone("back-office")),
            cameras: vec![linked("cam-01", false), linked("cam-02", true)],
            follow_up_of: None,
            snapshots: vec![],
        }),
    );
    let mut follow_up = alarm.clone();
    follow_up.id = uuid::Uuid::now_v7().to_string();
    if let AlertBody::AlarmLink(d) = &mut follow_up.body {
        d.follow_up_of = Some(alarm.id.clone());
        d.snapshots = snapshots();
        d.partition = None;
        d.area = None;
    }
    out.push(alarm);
    out.push(follow_up);
    out.push(Alert::new(
        b(),
        device("door-ctl", DeviceType::AccessController, &["lobby"]),
        AlertState::Raised,
        Severity::Critical,
        now(),
        "Door d1 forced open".into(),
        AlertBody::DoorStatus(DoorStatusDetails {
            door: zone("d1"),
            door_name: "Main door".into(),
            door_state: DoorState::ForcedOpen,
            locked: Some(true),
            cameras: vec![linked("cam-03", false)],
            follow_up_of: None,
            snapshots: vec![],
        }),
    ));
    out.push(Alert::new(
        b(),
        device("door-ctl", DeviceType::AccessController, &[]),
        AlertState::Raised,
        Severity::Warning,
        now(),
        "Door d2 held open".into(),
        AlertBody::DoorStatus(DoorStatusDetails {
            door: zone("d2"),
            door_name: "Cash room".into(),
            door_state: DoorState::HeldOpen,
            locked: None,
            cameras: vec![],
            follow_up_of: Some("not-a-uuid-follow-up".into()),
            snapshots: snapshots(),
        }),
    ));
    for (fault, sev, dropped, outage, waiting) in [
        ("heartbeat-stopped", Severity::Major, None, None, None),
        ("uplink-down", Severity::Warning, None, Some(3_600_123), Some(42)),
        ("outbox-overflow", Severity::Major, Some(17), None, None),
    ] {
        out.push(Alert::new(
            b(),
            device("gateway", DeviceType::Gateway, &[]),
            AlertState::Raised,
            sev,
            now(),
            format!("{fault}: see the reason"),
            AlertBody::DeviceFault(DeviceFaultDetails {
                fault: fault.into(),
                reason: "no heartbeat for 30 s".into(),
                dropped_events: dropped,
                outage_ms: outage,
                waiting_events: waiting,
            }),
        ));
    }
    out
}

/// Every event handed out, seq → (kind, payload), read in windows of 3 as the uplink does.
fn handed_out(ob: &Outbox) -> BTreeMap<u64, (AlertKind, Vec<u8>)> {
    let mut c = Cursor::START;
    let mut out = BTreeMap::new();
    loop {
        let got = ob.pending_from(&mut c, 3).expect("read");
        if got.is_empty() {
            return out;
        }
        for p in got {
            let seq = p.seq().0;
            assert!(out.insert(seq, (p.kind, p.payload)).is_none(), "seq {seq} handed out twice");
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

#[tokio::test]
async fn every_kind_is_handed_out_as_the_json_of_the_alert_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("outbox");
    let ob = Outbox::open(&path, bounds()).expect("open");
    // Twice over: the second time every repeated string is in the table already.
    let mut want = BTreeMap::new();
    for _ in 0..2 {
        for original in every_kind() {
            let appended = ob.append(original.clone()).await.expect("append");
            let mut expected = original;
            expected.seq = appended.alert.seq;
            let json = serde_json::to_vec(&expected).expect("json");
            assert!(appended.size < json.len() as u64, "{} stored for {} of JSON", appended.size, json.len());
            want.insert(expected.seq.0, (expected.kind(), json));
        }
    }
    let json_total: usize = want.values().map(|(_, j)| j.len()).sum();
    assert!(ob.bytes() * 2 < json_total as u64, "{} bytes stored for {json_total} of JSON", ob.bytes());

    let check = |ob: &Outbox, when: &str| {
        let got = handed_out(ob);
        assert_eq!(got.len(), want.len(), "{when}");
        for (seq, (kind, json)) in &want {
            let (k, payload) = &got[seq];
            assert_eq!(k, kind, "{when}: seq {seq}");
            assert_eq!(
                String::from_utf8_lossy(payload),
                String::from_utf8_lossy(json),
                "{when}: seq {seq} is not the JSON of the alert appended"
            );
        }
    };
    check(&ob, "first delivery");
    check(&ob, "redelivery");
    // A crash image (what kill -9 leaves), then a clean restart.
    let crash = dir.path().join("crash");
    copy_dir(&path, &crash);
    drop(ob);
    let ob = Outbox::open(&crash, bounds()).expect("open the crash image");
    check(&ob, "after a crash");
    drop(ob);
    let ob = Outbox::open(&path, bounds()).expect("reopen");
    check(&ob, "after a restart");
    assert_eq!(ob.last_seq().0, want.len() as u64);
}

#[tokio::test]
async fn an_alert_the_packed_form_cannot_hold_is_kept_as_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ob = Outbox::open(dir.path(), bounds()).expect("open");
    let mut leap = every_kind().remove(0);
    leap.occurred_at = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
        .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 1_500))
        .expect("a leap second")
        .and_utc();
    let appended = ob.append(leap.clone()).await.expect("append");
    leap.seq = appended.alert.seq;
    let json = serde_json::to_vec(&leap).expect("json");
    assert!(String::from_utf8_lossy(&json).contains("23:59:60.500Z"));
    assert_eq!(appended.size, 8 + 10 + json.len() as u64, "stored as JSON with its 10-byte header");
    assert_eq!(handed_out(&ob)[&leap.seq.0].1, json);
}

#[tokio::test]
async fn a_rotation_starts_an_empty_string_table_and_events_still_read_right() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ob = Outbox::open(dir.path(), bounds()).expect("open");
    let mut c = Cursor::START;
    for round in 0..3 {
        let before = ob.generation();
        let mut want = BTreeMap::new();
        // Other strings in every round: an index of one generation must not leak into the next.
        for mut a in every_kind() {
            a.message = format!("round {round}: {}", a.message);
            let appended = ob.append(a).await.expect("append");
            want.insert(appended.alert.seq.0, serde_json::to_vec(&appended.alert).expect("json"));
        }
        let got: BTreeMap<u64, Vec<u8>> = handed_out(&ob).into_iter().map(|(s, (_, p))| (s, p)).collect();
        assert_eq!(got, want, "round {round}");
        for p in ob.pending_from(&mut c, usize::MAX).expect("read") {
            assert!(ob.ack(p.id).expect("ack"));
        }
        assert!(ob.compact_now().expect("rotate"), "round {round}: no rotation");
        assert_eq!(ob.generation(), before + 1);
        c = Cursor::START;
    }
}

// ---- a store written by an earlier release ----

/// The lane trees and the record form of the releases before the packed form: JSON records,
/// `[1, kind, enqueued_at_ms (u64 BE)] ++ JSON`, keyed by the big-endian seq.
const OLD_LANES: [&str; 5] = ["priority", "normal-info", "normal-warning", "normal-major", "normal-critical"];

fn old_lane(a: &Alert) -> usize {
    if a.is_priority() {
        0
    } else {
        1 + match a.severity {
            Severity::Info => 0,
            Severity::Warning => 1,
            Severity::Major => 2,
            Severity::Critical => 3,
        }
    }
}

fn old_kind(k: AlertKind) -> u8 {
    match k {
        AlertKind::CameraOffline => 0,
        AlertKind::AlarmLink => 1,
        AlertKind::DoorStatus => 2,
        AlertKind::DeviceFault => 3,
    }
}

/// The store opened directly, as the old release wrote it. Without sled's background flusher
/// (`flush_every_ms(None)`; the test flushes itself): with it, the flusher thread holds the
/// database, and its file lock, for a moment after the test drops it, and the outbox opening it
/// next could find it locked.
fn open_raw(path: &Path) -> sled::Db {
    let config = sled::Config::new().path(path).flush_every_ms(None);
    retry_locked(|| config.open()).expect("sled")
}

/// The outbox opened right after a raw sled handle (or another outbox) was dropped: sled's
/// threads may hold the file lock for a moment after the drop, so a lock refusal is retried
/// for up to 5 s; any other error is returned at once.
fn reopen(path: &Path) -> std::sync::Arc<Outbox> {
    retry_locked(|| Outbox::open(path, bounds())).expect("open the outbox")
}

fn retry_locked<T, E: std::fmt::Debug>(mut open: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match open() {
            Err(e) if format!("{e:?}").contains("could not acquire lock") && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Writes `alerts` (seq 1, 2, …) with sled directly, as an earlier release left its outbox
/// under `dir`: `CURRENT`, `gen-1`, the lanes, the seq counter and the open conditions of all
/// but the last alert (whose condition change a crash lost: replayed from its record at open).
/// Returns (seq, lane, stored value) per alert.
fn write_old_store(dir: &Path, alerts: &mut [Alert], enqueued_at: u64) -> Vec<(u64, usize, Vec<u8>)> {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("CURRENT"), "gen-1\n").expect("CURRENT");
    let db = open_raw(&dir.join("gen-1"));
    let lanes: Vec<sled::Tree> = OLD_LANES.iter().map(|n| db.open_tree(n).expect("tree")).collect();
    let conditions = db.open_tree("conditions").expect("conditions");
    let mut out = Vec::new();
    let last = alerts.len();
    for (i, a) in alerts.iter_mut().enumerate() {
        let seq = i as u64 + 1;
        a.seq = protocols::Seq(seq);
        let json = serde_json::to_vec(a).expect("json");
        let mut v = vec![1, old_kind(a.kind())];
        v.extend_from_slice(&enqueued_at.to_be_bytes());
        v.extend_from_slice(&json);
        lanes[old_lane(a)].insert(seq.to_be_bytes(), v.as_slice()).expect("insert");
        if let Some(key) = a.condition_key()
            && i + 1 < last
        {
            let raised = a.state == AlertState::Raised;
            let mut c = seq.to_be_bytes().to_vec();
            c.push(if raised { 1 } else { 2 });
            if raised {
                c.extend_from_slice(&json);
            }
            conditions.insert(key.as_bytes(), c).expect("condition");
        }
        out.push((seq, old_lane(a), v));
    }
    db.open_tree("meta").expect("meta").insert(b"last_seq", &(alerts.len() as u64).to_be_bytes()).expect("counter");
    db.flush().expect("flush");
    out
}

#[tokio::test]
async fn a_backlog_in_the_old_json_form_is_delivered_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("outbox");
    let mut old = every_kind();
    // The last one raises again a condition, and that change was lost: door d1 forced open.
    old.push(every_kind().remove(4));
    let an_hour_ago = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis()
        as u64
        - 3_600_000;
    let records = write_old_store(&path, &mut old, an_hour_ago);
    let n = records.len() as u64;

    let ob = reopen(&path);
    assert_eq!(ob.depth(), n);
    assert_eq!(ob.bytes(), records.iter().map(|(_, _, v)| 8 + v.len() as u64).sum::<u64>());
    assert_eq!(ob.last_seq().0, n);
    let age = ob.oldest_pending_age().expect("an age");
    assert!(age >= std::time::Duration::from_secs(3_590) && age < std::time::Duration::from_secs(3_700), "{age:?}");

    // New events go on from the old counter, packed; old and new are delivered in one order
    // (priority first, then by seq), each as its JSON.
    let mut new = Vec::new();
    for a in every_kind() {
        new.push(ob.append(a).await.expect("append").alert);
    }
    assert_eq!(new[0].seq.0, n + 1);
    let mut want: BTreeMap<u64, Vec<u8>> =
        old.iter().map(|a| (a.seq.0, serde_json::to_vec(a).expect("json"))).collect();
    for (seq, _, v) in &records {
        assert_eq!(&v[10..], want[seq].as_slice(), "the test's old records are the JSON");
    }
    want.extend(new.iter().map(|a| (a.seq.0, serde_json::to_vec(a).expect("json"))));
    let got: BTreeMap<u64, Vec<u8>> = handed_out(&ob).into_iter().map(|(s, (_, p))| (s, p)).collect();
    assert_eq!(got.len(), want.len());
    for (seq, json) in &want {
        assert_eq!(String::from_utf8_lossy(&got[seq]), String::from_utf8_lossy(json), "seq {seq}");
    }
    let mut c = Cursor::START;
    let order: Vec<(bool, u64)> =
        ob.pending_from(&mut c, usize::MAX).expect("read").iter().map(|p| (!p.is_priority(), p.seq().0)).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "priority first, then by seq");

    // The open conditions: those recorded by the old release, and the one replayed from its
    // old record, as the engine gets them.
    let open: BTreeMap<String, String> = ob
        .open_conditions()
        .expect("conditions")
        .into_iter()
        .map(|a| (a.condition_key().expect("a condition"), a.id))
        .collect();
    // d1 forced open: the old release's second raise, replayed from its record; the new raise
    // over it adds nothing.
    let door = old.last().expect("the door");
    assert_eq!(open.get(&door.condition_key().expect("key")), Some(&door.id), "{open:?}");
    let alarm = &old[2];
    assert!(open.contains_key(&alarm.condition_key().expect("key")), "{open:?}");
    assert!(!open.contains_key(&old[0].condition_key().expect("key")), "cam-01 was cleared: {open:?}");

    // Acks remove old and new records alike; a restart finds nothing left.
    let mut c = Cursor::START;
    for p in ob.pending_from(&mut c, usize::MAX).expect("read") {
        assert!(ob.ack(p.id).expect("ack"), "seq {}", p.seq());
    }
    assert_eq!((ob.depth(), ob.bytes()), (0, 0));
    ob.flush().await.expect("flush");
    drop(ob);
    let ob = Outbox::open(&path, bounds()).expect("reopen");
    assert_eq!((ob.depth(), ob.last_seq().0), (0, n + new.len() as u64));
}

#[test]
fn an_old_record_that_does_not_decode_is_skipped_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("outbox");
    let mut old = every_kind();
    old.truncate(2);
    write_old_store(&path, &mut old, 0);
    {
        let db = open_raw(&path.join("gen-1"));
        let lane = db.open_tree("normal-major").expect("tree");
        // seq 1 (camera-offline, major) damaged: an unknown format byte.
        lane.insert(1u64.to_be_bytes(), &[9u8, 0, 0][..]).expect("insert");
        db.flush().expect("flush");
    }
    let ob = reopen(&path);
    let got = handed_out(&ob);
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![2], "the damaged record is skipped");
    assert_eq!(ob.depth(), 2, "and kept, counted");
}

/// A packed event whose string is gone from the table (damage: sled recovers its log in order,
/// so a crash alone cannot do it) is skipped, and its index is never given to another string —
/// the event can never be published with someone else's words.
#[tokio::test]
async fn a_lost_string_is_never_replaced_by_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("outbox");
    let ob = Outbox::open(&path, bounds()).expect("open");
    let first = ob.append(every_kind().remove(0)).await.expect("append").alert;
    ob.flush().await.expect("flush");
    drop(ob);
    let last = {
        let db = open_raw(&path.join("gen-1"));
        let strings = db.open_tree("strings").expect("strings");
        let (k, _) = strings.last().expect("read").expect("a string");
        strings.remove(&k).expect("remove");
        db.flush().expect("flush");
        u32::from_be_bytes(k.as_ref().try_into().expect("a u32 key"))
    };
    assert!(last > 0);
    let ob = reopen(&path);
    assert!(handed_out(&ob).is_empty(), "the damaged event was handed out");
    assert_eq!(ob.depth(), 1);
    let mut other = every_kind().remove(6);
    other.message = "a string the table has not seen".into();
    let second = ob.append(other).await.expect("append").alert;
    let got = handed_out(&ob);
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![second.seq.0]);
    assert_eq!(got[&second.seq.0].1, serde_json::to_vec(&second).expect("json"));
    assert!(first.seq < second.seq);
}
