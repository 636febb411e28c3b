//! The head-office contract (docs/CONTRACT.md) against its JSON Schemas (docs/schemas/).
//!
//! Every payload type and every alert kind is built here from the `protocols` types, serialised
//! by serde exactly as the gateway does, and validated by an *independent* implementation:
//! python-jsonschema, Draft 2020-12, with `date-time` and `uri` format checking
//! (tests/peers/validate_schema.py, from the venv that scripts/test installs).
//!
//! * Samples with every optional field set pass the schemas read strictly (no property the
//!   schema does not document), and samples with every optional field left out pass with the
//!   optional properties removed from the schemas: so a field added to or made optional in
//!   the Rust types without the schema fails here.
//! * Mutated samples (missing `seq`, unknown `kind`, details of the wrong kind, timestamps
//!   without milliseconds…) are rejected, each for the expected reason: the schemas are not
//!   vacuous.
//! * The published schemas accept unknown extra fields (the versioning rule: adding an optional
//!   field keeps `/1`).
//! * The schemas' enums and `schema` constants equal the Rust ones, and the examples in
//!   docs/CONTRACT.md are valid.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};
use protocols::alert::ALERT_SCHEMA;
use protocols::coverage::COVERAGE_SCHEMA;
use protocols::status::{DEVICE_HEALTH_SCHEMA, GATEWAY_STATUS_SCHEMA};
use protocols::time::Timestamp;
use protocols::{
    AlarmLinkDetails, Alert, AlertBody, AlertKind, AlertState, BranchId, CameraOfflineDetails, CoverageReport,
    CoverageTotals, DeviceFaultDetails, DeviceHealth, DeviceId, DeviceRef, DeviceType, DoorState, DoorStatusDetails,
    GatewayState, GatewayStatus, LinkedCamera, Seq, Severity, Topics, ZoneCoverage, ZoneId,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const ALERT: &str = "branch-alert-1.json";
const GATEWAY: &str = "branch-gateway-status-1.json";
const DEVICE: &str = "branch-device-1.json";
const COVERAGE: &str = "branch-coverage-1.json";

/// Each schema file and the Rust constant its payloads carry in `schema`.
const SCHEMAS: [(&str, &str); 4] = [
    (ALERT, ALERT_SCHEMA),
    (GATEWAY, GATEWAY_STATUS_SCHEMA),
    (DEVICE, DEVICE_HEALTH_SCHEMA),
    (COVERAGE, COVERAGE_SCHEMA),
];

// ---------------------------------------------------------------------------------------------
// Samples, built from the Rust types.

fn ts(s: &str) -> Timestamp {
    DateTime::parse_from_rfc3339(s).expect("test timestamp").with_timezone(&Utc)
}
fn branch() -> BranchId {
    BranchId::new("b0101").expect("branch id")
}
fn dev(s: &str) -> DeviceId {
    DeviceId::new(s).expect("device id")
}
fn zone(s: &str) -> ZoneId {
    ZoneId::new(s).expect("zone id")
}

fn camera_ref(full: bool) -> DeviceRef {
    DeviceRef {
        id: dev("cam-03"),
        device_type: DeviceType::Camera,
        name: "Vault corridor".into(),
        zones: if full { vec![zone("vault"), zone("金库")] } else { vec![] },
    }
}

fn linked_camera(id: &str, full: bool) -> LinkedCamera {
    LinkedCamera {
        id: dev(id),
        name: format!("{id} (linked)"),
        online: true,
        stream_alive: full,
        frozen: false,
        picture: full.then(|| "obstructed".into()),
        stream_uri: full.then(|| format!("rtsp://192.0.2.10:554/{id}/main")),
        snapshot_uri: full.then(|| format!("http://192.0.2.10/onvif/snapshot?token={id}")),
    }
}

/// The device, severity, message and details of one alert of `kind`; the match is exhaustive,
/// so a new kind does not compile until it has a sample here (and a schema branch).
fn alert_body(kind: AlertKind, full: bool) -> (DeviceRef, Severity, String, AlertBody) {
    match kind {
        AlertKind::CameraOffline => (
            camera_ref(full),
            Severity::Critical,
            "Camera Vault corridor offline while armed".into(),
            AlertBody::CameraOffline(CameraOfflineDetails {
                status: "stream-down".into(),
                reason: "RTSP DESCRIBE: connection refused".into(),
                consecutive_failures: 3,
                armed: true,
                uncovered_zones: if full { vec![zone("vault")] } else { vec![] },
                clock_skew_ms: full.then_some(-1_250),
            }),
        ),
        AlertKind::AlarmLink => (
            DeviceRef {
                id: dev("alarm-1"),
                device_type: DeviceType::AlarmPanel,
                name: "Intrusion panel".into(),
                zones: if full { vec![zone("z1"), zone("z2")] } else { vec![] },
            },
            Severity::Critical,
            "Alarm in zone Vault door".into(),
            AlertBody::AlarmLink(AlarmLinkDetails {
                follow_up_of: None,
                snapshots: Vec::new(),
                zone: zone("z1"),
                zone_name: "Vault door".into(),
                zone_state: "alarm".into(),
                partition: full.then(|| "1".into()),
                armed: true,
                twenty_four_hour: false,
                area: full.then(|| zone("vault")),
                cameras: if full {
                    vec![linked_camera("cam-03", true), linked_camera("cam-04", false)]
                } else {
                    vec![]
                },
            }),
        ),
        AlertKind::DoorStatus => (
            DeviceRef {
                id: dev("acs-1"),
                device_type: DeviceType::AccessController,
                name: "Door controller".into(),
                zones: vec![],
            },
            Severity::Major,
            "Door Staff entrance forced open".into(),
            AlertBody::DoorStatus(DoorStatusDetails {
                follow_up_of: None,
                snapshots: Vec::new(),
                door: zone("door-staff"),
                door_name: "Staff entrance".into(),
                door_state: DoorState::ForcedOpen,
                locked: full.then_some(true),
                cameras: if full { vec![linked_camera("cam-01", true)] } else { vec![] },
            }),
        ),
        AlertKind::DeviceFault => (
            DeviceRef { id: dev("gw"), device_type: DeviceType::Gateway, name: "Branch gateway".into(), zones: vec![] },
            Severity::Warning,
            "Uplink to head office restored".into(),
            AlertBody::DeviceFault(DeviceFaultDetails {
                fault: "uplink-down".into(),
                reason: "broker unreachable: connection timed out".into(),
                dropped_events: full.then_some(0),
                outage_ms: full.then_some(93_500),
                waiting_events: full.then_some(17),
            }),
        ),
    }
}

fn alert(kind: AlertKind, full: bool) -> Alert {
    let (device, severity, message, body) = alert_body(kind, full);
    assert_eq!(body.kind(), kind);
    Alert {
        schema: ALERT_SCHEMA.into(),
        id: "01937c4e-8a2b-7c3d-9e4f-0a1b2c3d4e5f".into(),
        seq: Seq(42),
        branch: branch(),
        state: if full { AlertState::Raised } else { AlertState::Cleared },
        severity,
        device,
        // Sub-millisecond precision and a non-UTC offset on the way in: the wire form is
        // still UTC with exactly three fractional digits.
        occurred_at: ts("2026-11-24T16:00:00.123456789+08:00"),
        detected_at: ts("2026-11-24T08:00:01Z"),
        message,
        body,
    }
}

fn gateway_status(state: GatewayState, reason: Option<&str>, at: bool) -> GatewayStatus {
    GatewayStatus {
        schema: GATEWAY_STATUS_SCHEMA.into(),
        branch: branch(),
        status: state,
        reason: reason.map(Into::into),
        at: at.then(|| ts("2026-11-24T08:00:00.500Z")),
        version: "0.1.0".into(),
    }
}

fn device_health(full: bool) -> DeviceHealth {
    DeviceHealth {
        schema: DEVICE_HEALTH_SCHEMA.into(),
        branch: branch(),
        device: camera_ref(full),
        state: if full { "frozen".into() } else { "unknown".into() },
        status: full.then(|| "frozen".into()),
        since: ts("2026-11-24T07:59:30.000Z"),
        updated_at: ts("2026-11-24T08:00:00.250Z"),
        reason: full.then(|| "snapshot unchanged across 3 probes".into()),
        clock_skew_ms: full.then_some(12_000),
        resolution: full.then(|| "1920x1080".into()),
        encoding: full.then(|| "H264".into()),
    }
}

fn coverage(full: bool) -> CoverageReport {
    let zones = if full {
        vec![
            ZoneCoverage {
                id: zone("vault"),
                name: "Vault".into(),
                required: true,
                min_live_cameras: 2,
                cameras: vec![dev("cam-03"), dev("cam-04")],
                cameras_online: 2,
                cameras_live_video: 1,
                covered: false,
                uncovered_since: Some(ts("2026-11-24T07:59:58.000Z")),
            },
            ZoneCoverage {
                id: zone("lobby"),
                name: "Lobby".into(),
                required: false,
                min_live_cameras: 1,
                cameras: vec![dev("cam-01")],
                cameras_online: 1,
                cameras_live_video: 1,
                covered: true,
                uncovered_since: None,
            },
        ]
    } else {
        vec![]
    };
    CoverageReport {
        schema: COVERAGE_SCHEMA.into(),
        branch: branch(),
        at: ts("2026-11-24T08:00:00.000Z"),
        totals: CoverageTotals {
            cameras_configured: if full { 3 } else { 0 },
            cameras_online: if full { 3 } else { 0 },
            cameras_live_video: if full { 2 } else { 0 },
            required_zones: u32::from(full),
            required_zones_uncovered: u32::from(full),
        },
        zones,
    }
}

#[derive(Clone)]
struct Sample {
    name: String,
    schema_file: &'static str,
    /// Every optional field is left out (`None`, and so not on the wire).
    minimal: bool,
    payload: Value,
}

/// Whether a sample leaves out every optional field.
const MINIMAL: bool = true;
const SOME_OPTIONAL: bool = false;

fn to_json<T: Serialize + DeserializeOwned>(v: &T) -> Value {
    let json = serde_json::to_value(v).expect("serialise");
    // The wire form reads back and serialises to itself (timestamps lose their sub-millisecond
    // part once, on the first trip): what the schema describes is what the types accept.
    let back: T = serde_json::from_value(json.clone()).expect("deserialise what we serialised");
    let again = serde_json::to_value(&back).expect("serialise again");
    assert_eq!(again, json, "serde round trip");
    json
}

fn sample_of<T: Serialize + DeserializeOwned>(name: &str, file: &'static str, minimal: bool, v: &T) -> Sample {
    Sample { name: name.into(), schema_file: file, minimal, payload: to_json(v) }
}

fn samples() -> Vec<Sample> {
    let mut out = Vec::new();
    for kind in AlertKind::ALL {
        for full in [true, false] {
            let name = format!("alert/{}/{}", kind.as_str(), if full { "full" } else { "minimal" });
            let s = sample_of(&name, ALERT, !full, &alert(kind, full));
            // The contract: the topic's last level is the payload's kind.
            let topic = Topics::new("branches", branch()).expect("topics").alert(kind);
            assert_eq!(topic.rsplit('/').next(), s.payload["kind"].as_str(), "{topic}");
            out.push(s);
        }
    }
    // What the constructor makes (a UUID v7 id, detected_at = now with its nanoseconds), once
    // the outbox has assigned the seq.
    let (device, severity, message, body) = alert_body(AlertKind::DoorStatus, false);
    let now = protocols::time::now();
    let mut fresh = Alert::new(branch(), device, AlertState::Raised, severity, now, message, body);
    fresh.seq = Seq(1);
    let mut last = alert(AlertKind::DeviceFault, true);
    last.seq = Seq(u64::MAX);

    use GatewayState::{Offline, Online};
    out.extend([
        sample_of("alert/Alert::new", ALERT, MINIMAL, &fresh),
        sample_of("alert/seq-u64-max", ALERT, SOME_OPTIONAL, &last),
        sample_of("gateway/online", GATEWAY, SOME_OPTIONAL, &gateway_status(Online, None, true)),
        sample_of("gateway/will", GATEWAY, SOME_OPTIONAL, &gateway_status(Offline, Some("connection-lost"), false)),
        sample_of("gateway/shutdown", GATEWAY, SOME_OPTIONAL, &gateway_status(Offline, Some("shutdown"), true)),
        sample_of("gateway/minimal", GATEWAY, MINIMAL, &gateway_status(Online, None, false)),
        sample_of("device/full", DEVICE, SOME_OPTIONAL, &device_health(true)),
        sample_of("device/minimal", DEVICE, MINIMAL, &device_health(false)),
        sample_of("coverage/full", COVERAGE, SOME_OPTIONAL, &coverage(true)),
        sample_of("coverage/minimal", COVERAGE, MINIMAL, &coverage(false)),
    ]);
    out
}

fn sample(name: &str) -> Value {
    samples().into_iter().find(|s| s.name == name).map(|s| s.payload).unwrap_or_else(|| panic!("no sample {name}"))
}

// ---------------------------------------------------------------------------------------------
// The independent validator.

#[derive(Debug, serde::Deserialize)]
struct Verdict {
    case: String,
    valid: bool,
    errors: Vec<String>,
}

fn schema_dir() -> PathBuf {
    harness::workspace_root().join("docs/schemas")
}

/// Runs tests/peers/validate_schema.py over `cases` (name, schema file, payload) in `mode`
/// (`open`, `strict` or `required-only`); returns the verdicts by case name.
fn validate(mode: &str, cases: &[(String, &str, Value)]) -> BTreeMap<String, Verdict> {
    let python = harness::python();
    let script = harness::workspace_root().join("tests/peers/validate_schema.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .arg("--schema-dir")
        .arg(schema_dir())
        .arg("--mode")
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the schema validator with {} ({e}). The Python peers live in .venv: \
                 run scripts/test (it installs tests/requirements.txt), or set BSG_PYTHON",
                python.display()
            )
        });
    let mut input = String::new();
    for (name, file, payload) in cases {
        input.push_str(&json!({ "case": name, "schema_file": file, "payload": payload }).to_string());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("wait for the validator");
    writer.join().expect("writer thread").expect("write cases to the validator");
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(3) => panic!(
            "the schema validator is missing its dependencies (python: {}):\n{stderr}\n\
             run scripts/test: it installs tests/requirements.txt into .venv",
            python.display()
        ),
        _ => panic!("the schema validator failed ({}):\n{stderr}", out.status),
    }
    let verdicts: BTreeMap<String, Verdict> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Verdict>(l).unwrap_or_else(|e| panic!("validator said {l:?}: {e}")))
        .map(|v| (v.case.clone(), v))
        .collect();
    assert_eq!(verdicts.len(), cases.len(), "one verdict per case; stderr:\n{stderr}");
    verdicts
}

fn cases_of(samples: &[Sample]) -> Vec<(String, &'static str, Value)> {
    samples.iter().map(|s| (s.name.clone(), s.schema_file, s.payload.clone())).collect()
}

fn assert_all_valid(mode: &str, samples: &[Sample]) {
    let verdicts = validate(mode, &cases_of(samples));
    let bad: Vec<String> = verdicts
        .values()
        .filter(|v| !v.valid)
        .map(|v| {
            let s = samples.iter().find(|s| s.name == v.case).expect("sample");
            format!("{} ({mode}): {}\n    payload: {}", v.case, v.errors.join("; "), s.payload)
        })
        .collect();
    assert!(
        bad.is_empty(),
        "payloads built from the protocols types do not match docs/schemas (update the schema and \
         docs/CONTRACT.md with the type):\n{}",
        bad.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn every_payload_and_alert_kind_matches_its_schema() {
    let all = samples();
    assert_all_valid("open", &all);
    // Nothing undocumented: every field the types send is in the schema.
    assert_all_valid("strict", &all);
    // Strict about required fields: with every optional field left out, what remains is
    // exactly what the schema requires.
    let minimal: Vec<Sample> = all.iter().filter(|s| s.minimal).cloned().collect();
    assert_all_valid("required-only", &minimal);
}

#[test]
fn wire_timestamps_are_utc_with_milliseconds() {
    let a = sample("alert/camera-offline/full");
    assert_eq!(a["occurred_at"], "2026-11-24T08:00:00.123Z", "converted to UTC, truncated to ms");
    assert_eq!(a["detected_at"], "2026-11-24T08:00:01.000Z", "whole seconds still carry .000");
    let fresh = sample("alert/Alert::new");
    let t = fresh["detected_at"].as_str().expect("detected_at");
    assert!(t.len() == "2026-11-24T08:00:00.123Z".len() && t.ends_with('Z'), "{t}");
}

fn insert(v: &mut Value, object: &str, key: &str, value: Value) {
    let obj = v.pointer_mut(object).and_then(Value::as_object_mut).unwrap_or_else(|| panic!("no object {object}"));
    obj.insert(key.into(), value);
}

/// Applies `edit` to `v`: `-/json/pointer` removes a field, `/json/pointer=JSON` replaces one.
fn apply(v: &mut Value, edit: &str) {
    if let Some(pointer) = edit.strip_prefix('-') {
        let (parent, key) = pointer.rsplit_once('/').expect("pointer");
        let removed = v.pointer_mut(parent).and_then(Value::as_object_mut).and_then(|o| o.remove(key));
        assert!(removed.is_some(), "no {pointer} to remove");
    } else {
        let (pointer, value) = edit.split_once('=').expect("/pointer=JSON");
        let value: Value = serde_json::from_str(value).unwrap_or_else(|e| panic!("{edit}: {e}"));
        *v.pointer_mut(pointer).unwrap_or_else(|| panic!("no {pointer} in the sample")) = value;
    }
}

/// (what is wrong, the valid sample it starts from, the edit, a fragment of the expected error)
#[rustfmt::skip]
const BAD: &[(&str, &str, &str, &str)] = &[
    ("no seq", "alert/door-status/full", "-/seq", "'seq' is a required property"),
    ("seq 0 (not assigned)", "alert/door-status/full", "/seq=0", "less than the minimum of 1"),
    ("negative seq", "alert/door-status/full", "/seq=-1", "less than the minimum"),
    ("seq as a string", "alert/door-status/full", r#"/seq="42""#, "is not of type 'integer'"),
    ("seq past u64", "alert/door-status/full", "/seq=1e20", "greater than the maximum"),
    ("unknown kind", "alert/door-status/full", r#"/kind="camera-exploded""#, "is not one of"),
    ("no kind", "alert/door-status/full", "-/kind", "'kind' is a required property"),
    ("details of another kind", "alert/camera-offline/full", r#"/kind="alarm-link""#, "'zone' is a required"),
    ("no details", "alert/alarm-link/full", "-/details", "'details' is a required property"),
    ("details not an object", "alert/alarm-link/full", "/details=[]", "is not of type 'object'"),
    ("no id", "alert/alarm-link/full", "-/id", "'id' is a required property"),
    ("empty id", "alert/alarm-link/full", r#"/id="""#, "should be non-empty"),
    ("next major version", "alert/alarm-link/full", r#"/schema="branch-alert/2""#, "was expected"),
    ("unknown state", "alert/alarm-link/full", r#"/state="open""#, "is not one of"),
    ("unknown severity", "alert/alarm-link/full", r#"/severity="urgent""#, "is not one of"),
    ("empty message", "alert/alarm-link/full", r#"/message="""#, "should be non-empty"),
    ("branch with a topic separator", "alert/alarm-link/full", r#"/branch="b01/x""#, "does not match"),
    ("branch with a wildcard", "alert/alarm-link/full", r#"/branch="b01+""#, "does not match"),
    ("branch with a space", "alert/alarm-link/full", r#"/branch="b 01""#, "does not match"),
    ("65-character branch", "alert/alarm-link/full", r#"/branch="bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb""#, "is too long"),
    ("unknown device type", "alert/alarm-link/full", r#"/device/type="toaster""#, "is not one of"),
    ("device without zones", "alert/alarm-link/full", "-/device/zones", "'zones' is a required"),
    ("time without ms", "alert/alarm-link/full", r#"/occurred_at="2026-11-24T08:00:00Z""#, "does not match"),
    ("time not in UTC", "alert/alarm-link/full", r#"/occurred_at="2026-11-24T16:00:00.000+08:00""#, "does not match"),
    ("impossible date: formats are checked", "alert/alarm-link/full", r#"/detected_at="2026-02-30T08:00:00.000Z""#, "is not a 'date-time'"),
    ("linked camera online as text", "alert/alarm-link/full", r#"/details/cameras/0/online="yes""#, "'boolean'"),
    ("stream URI not a URI", "alert/alarm-link/full", r#"/details/cameras/0/stream_uri="not a uri""#, "is not a 'uri'"),
    ("alarm without cameras", "alert/alarm-link/full", "-/details/cameras", "'cameras' is a required"),
    ("alarm without 24 h flag", "alert/alarm-link/minimal", "-/details/twenty_four_hour", "'twenty_four_hour'"),
    ("camera status not a code", "alert/camera-offline/full", r#"/details/status="Stream Down""#, "does not match"),
    ("negative failure count", "alert/camera-offline/full", "/details/consecutive_failures=-1", "minimum"),
    ("no uncovered_zones", "alert/camera-offline/minimal", "-/details/uncovered_zones", "'uncovered_zones'"),
    ("door ajar", "alert/door-status/full", r#"/details/door_state="ajar""#, "is not one of"),
    ("fault without reason", "alert/device-fault/full", "-/details/reason", "'reason' is a required"),
    ("negative outage", "alert/device-fault/full", "/details/outage_ms=-5", "minimum"),
    ("gateway asleep", "gateway/online", r#"/status="sleeping""#, "is not one of"),
    ("gateway without version", "gateway/online", "-/version", "'version' is a required"),
    ("gateway at yesterday", "gateway/shutdown", r#"/at="yesterday""#, "does not match"),
    ("gateway at null", "gateway/shutdown", "/at=null", "is not of type 'string'"),
    ("device without since", "device/full", "-/since", "'since' is a required"),
    ("device state empty", "device/minimal", r#"/state="""#, "does not match"),
    ("health without device", "device/minimal", "-/device", "'device' is a required"),
    ("totals incomplete", "coverage/full", "-/totals/required_zones_uncovered", "'required_zones_uncovered'"),
    ("zone without covered", "coverage/full", "-/zones/0/covered", "'covered' is a required"),
    ("negative camera count", "coverage/full", "/zones/1/cameras_online=-1", "minimum"),
    ("coverage without zones", "coverage/minimal", "-/zones", "'zones' is a required"),
];

#[test]
fn bad_payloads_are_rejected_for_the_right_reason() {
    let samples = samples();
    let mut cases = Vec::new();
    for (name, base, edit, _) in BAD {
        let base = samples.iter().find(|s| s.name == *base).unwrap_or_else(|| panic!("no sample {base}"));
        let mut v = base.payload.clone();
        apply(&mut v, edit);
        cases.push((format!("{name} [{edit}]"), base.schema_file, v));
    }
    // Each bad payload against the schema it claims to follow, as published (open).
    let verdicts = validate("open", &cases);
    let mut wrong = Vec::new();
    for ((case, _, _), (_, _, _, expected)) in cases.iter().zip(BAD) {
        let v = &verdicts[case];
        if v.valid {
            wrong.push(format!("{case}: accepted, should have been rejected"));
        } else if !v.errors.iter().any(|e| e.contains(expected)) {
            wrong.push(format!("{case}: rejected, but not for {expected:?}: {:?}", v.errors));
        }
    }
    assert!(wrong.is_empty(), "the schemas let bad payloads through:\n{}", wrong.join("\n"));
}

#[test]
fn the_examples_in_contract_md_are_valid() {
    let path = harness::workspace_root().join("docs/CONTRACT.md");
    let text = std::fs::read_to_string(&path).expect("docs/CONTRACT.md");
    let mut cases = Vec::new();
    for (i, block) in text.split("```json\n").skip(1).enumerate() {
        let json = block.split("```").next().expect("a closed code block");
        let payload: Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("docs/CONTRACT.md, JSON example {}: {e}", i + 1));
        let file = SCHEMAS
            .iter()
            .find(|(_, constant)| payload["schema"] == *constant)
            .map(|(file, _)| *file)
            .unwrap_or_else(|| panic!("JSON example {}: unknown schema {}", i + 1, payload["schema"]));
        cases.push((format!("CONTRACT.md example {}", i + 1), file, payload));
    }
    assert!(!cases.is_empty(), "docs/CONTRACT.md has no JSON example");
    for v in validate("strict", &cases).values() {
        assert!(v.valid, "{}: {:?}", v.case, v.errors);
    }
}

#[test]
fn added_optional_fields_stay_compatible() {
    // The versioning rule (docs/CONTRACT.md): a new optional field keeps branch-alert/1, so a
    // consumer validating with today's schema must accept tomorrow's payload...
    let mut alert = sample("alert/alarm-link/full");
    insert(&mut alert, "/details", "camera_count", json!(2));
    insert(&mut alert, "", "trace_id", json!("abc"));
    let mut coverage = sample("coverage/full");
    insert(&mut coverage, "/zones/0", "priority", json!("high"));
    let cases = vec![("alert+extra".to_string(), ALERT, alert), ("coverage+extra".to_string(), COVERAGE, coverage)];
    for v in validate("open", &cases).values() {
        assert!(v.valid, "{}: an added field broke the published schema: {:?}", v.case, v.errors);
    }
    // ...while the strict reading used above does see the undocumented field (it is not vacuous).
    for v in validate("strict", &cases).values() {
        assert!(
            !v.valid && v.errors.iter().any(|e| e.contains("Unevaluated properties")),
            "{}: {:?}",
            v.case,
            v.errors
        );
    }
}

fn load_schema(file: &str) -> Value {
    let path = schema_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn enum_at(schema: &Value, pointer: &str) -> BTreeSet<String> {
    schema
        .pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no enum at {pointer}"))
        .iter()
        .map(|v| v.as_str().expect("string enum").to_string())
        .collect()
}

fn wire<T: Serialize>(values: &[T]) -> BTreeSet<String> {
    values.iter().map(|v| serde_json::to_value(v).expect("serialise").as_str().expect("string").to_string()).collect()
}

#[test]
fn schemas_and_rust_types_agree_on_names_and_enums() {
    // Every schema file is tested, and every payload type has a schema file.
    let on_disk: BTreeSet<String> = std::fs::read_dir(schema_dir())
        .expect("docs/schemas")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let tested: BTreeSet<String> = SCHEMAS.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(on_disk, tested, "docs/schemas/*.json and the payload types tested here");
    for (file, constant) in SCHEMAS {
        let s = load_schema(file);
        assert_eq!(s["properties"]["schema"]["const"], constant, "{file}: schema const");
        assert_eq!(s["title"], constant, "{file}: title");
        let expected_file = format!("{}.json", constant.replace('/', "-"));
        assert_eq!(file, expected_file, "the file is named after the payload's schema field");
    }

    // Exhaustive matches: a new variant does not compile until it is listed here, and then
    // the schema must list it too.
    let kinds: Vec<AlertKind> = AlertKind::ALL.to_vec();
    for k in &kinds {
        match k {
            AlertKind::CameraOffline | AlertKind::AlarmLink | AlertKind::DoorStatus | AlertKind::DeviceFault => {}
        }
    }
    let severities = [Severity::Info, Severity::Warning, Severity::Major, Severity::Critical];
    for s in severities {
        match s {
            Severity::Info | Severity::Warning | Severity::Major | Severity::Critical => {}
        }
    }
    let states = [AlertState::Raised, AlertState::Cleared];
    for s in states {
        match s {
            AlertState::Raised | AlertState::Cleared => {}
        }
    }
    let device_types = [DeviceType::Camera, DeviceType::AlarmPanel, DeviceType::AccessController, DeviceType::Gateway];
    for t in device_types {
        match t {
            DeviceType::Camera | DeviceType::AlarmPanel | DeviceType::AccessController | DeviceType::Gateway => {}
        }
    }
    let doors = [DoorState::Closed, DoorState::Open, DoorState::ForcedOpen, DoorState::HeldOpen];
    for d in doors {
        match d {
            DoorState::Closed | DoorState::Open | DoorState::ForcedOpen | DoorState::HeldOpen => {}
        }
    }
    let gateway_states = [GatewayState::Online, GatewayState::Offline];
    for g in gateway_states {
        match g {
            GatewayState::Online | GatewayState::Offline => {}
        }
    }

    let alert = load_schema(ALERT);
    assert_eq!(enum_at(&alert, "/properties/kind/enum"), wire(&kinds));
    assert_eq!(enum_at(&alert, "/properties/severity/enum"), wire(&severities));
    assert_eq!(enum_at(&alert, "/properties/state/enum"), wire(&states));
    assert_eq!(enum_at(&alert, "/$defs/deviceRef/properties/type/enum"), wire(&device_types));
    assert_eq!(enum_at(&alert, "/$defs/doorStatusDetails/properties/door_state/enum"), wire(&doors));
    // One if/then branch per kind.
    let branches: BTreeSet<String> = alert["allOf"]
        .as_array()
        .expect("allOf")
        .iter()
        .map(|b| b["if"]["properties"]["kind"]["const"].as_str().expect("if kind const").to_string())
        .collect();
    assert_eq!(branches, wire(&kinds), "an if/then in branch-alert-1.json for every kind");
    for k in &kinds {
        assert_eq!(AlertKind::parse(k.as_str()), Some(*k));
    }

    let gateway = load_schema(GATEWAY);
    assert_eq!(enum_at(&gateway, "/properties/status/enum"), wire(&gateway_states));
    let device = load_schema(DEVICE);
    assert_eq!(enum_at(&device, "/$defs/deviceRef/properties/type/enum"), wire(&device_types));
    // The device states the gateway publishes (an open vocabulary: listed as examples).
    let published: BTreeSet<String> = protocols::status::DEVICE_STATES.iter().map(|s| s.to_string()).collect();
    assert_eq!(enum_at(&device, "/properties/state/examples"), published, "device states: schema and protocols");
    // The device reference is the same object in both schemas.
    assert_eq!(device["$defs"]["deviceRef"]["required"], alert["$defs"]["deviceRef"]["required"]);
    // Shared definitions are copied into each schema (self-contained files): keep them equal.
    for def in ["segmentId", "timestamp"] {
        for file in [GATEWAY, DEVICE, COVERAGE] {
            let other = load_schema(file);
            assert_eq!(other["$defs"][def]["pattern"], alert["$defs"][def]["pattern"], "{file}: $defs/{def}");
        }
    }
}
