//! The assessment report over a time window: camera availability, uncovered minutes of required
//! zones, alarms whose linked camera was down, mean time to repair, gateway offline periods.
//!
//! Pure: [`ReportData`] and a [`Window`] in, a [`Report`] out, so every number can be checked
//! against a hand-built sequence of events (the tests below). The rules, which `docs/HQ.md`
//! repeats for the reader of a report:
//!
//! - A timeline is a sequence of "bad from t" / "good from t" facts ordered by the time in the
//!   payloads; the latest fact at or before an instant decides that instant. Before the first
//!   fact a thing is assumed good (a camera online, a zone covered, a gateway online).
//! - A condition that began before the window counts from the window's start; one still open at
//!   the end counts to the window's end (and is marked `ongoing`).
//! - A camera's facts are its `camera-offline` alerts (raised = down, cleared = up) and its
//!   device-health changes (`online` = up, `unknown` = no information, anything else — offline,
//!   frozen, stream-down, maintenance… — down: the camera was not watching).
//! - A repair is a raised `camera-offline` or `device-fault` alert and the cleared alert that
//!   ends it (same branch, kind, device, and fault); it counts when the clear falls in the window.

use std::collections::BTreeMap;
use std::sync::Arc;

use protocols::time::{Timestamp, rfc3339_ms};
use protocols::{AlertBody, BranchId, DeviceId, ZoneId};
use serde::Serialize;

pub const REPORT_SCHEMA: &str = "hq-report/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the report window is empty: --from must be before --to")]
pub struct EmptyWindow;

/// The report's time window, `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: Timestamp,
    pub to: Timestamp,
}

impl Window {
    pub fn new(from: Timestamp, to: Timestamp) -> Result<Window, EmptyWindow> {
        if from < to { Ok(Window { from, to }) } else { Err(EmptyWindow) }
    }
    fn minutes(&self) -> f64 {
        minutes(self.from, self.to)
    }
    fn contains(&self, t: Timestamp) -> bool {
        self.from <= t && t < self.to
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub schema: &'static str,
    #[serde(with = "rfc3339_ms")]
    pub from: Timestamp,
    #[serde(with = "rfc3339_ms")]
    pub to: Timestamp,
    pub totals: Totals,
    /// Mean time to repair per device type, all branches.
    pub mttr: Vec<Mttr>,
    pub branches: Vec<BranchReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    pub branches: usize,
    pub cameras: usize,
    /// Mean of every camera's `online_pct`; absent without cameras.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera_availability_pct: Option<f64>,
    pub required_zone_uncovered_minutes: f64,
    pub alarms: usize,
    pub alarms_with_camera_down: usize,
    pub gateway_offline_minutes: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BranchReport {
    pub branch: BranchId,
    /// Mean of the branch's cameras' `online_pct`; absent without cameras.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera_availability_pct: Option<f64>,
    pub gateway_online_pct: f64,
    pub cameras: Vec<CameraAvailability>,
    /// Required zones only.
    pub zones: Vec<ZoneUncovered>,
    /// Alarm-link alerts raised in the window.
    pub alarms: usize,
    pub alarms_with_camera_down: Vec<AlarmCameraDown>,
    pub mttr: Vec<Mttr>,
    pub gateway_offline: Vec<Period>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraAvailability {
    pub id: DeviceId,
    pub name: String,
    pub online_pct: f64,
    pub down_minutes: f64,
    pub outages: Vec<Period>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneUncovered {
    pub id: ZoneId,
    pub name: String,
    pub uncovered_minutes: f64,
    pub periods: Vec<Period>,
}

/// A stretch of time inside the window when something was wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    #[serde(with = "rfc3339_ms")]
    pub from: Timestamp,
    #[serde(with = "rfc3339_ms")]
    pub to: Timestamp,
    pub minutes: f64,
    /// Still wrong at the window's end.
    pub ongoing: bool,
    /// Why (camera status, device state, gateway `reason`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmCameraDown {
    pub alert_id: String,
    pub seq: u64,
    pub zone: ZoneId,
    pub zone_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area: Option<ZoneId>,
    #[serde(with = "rfc3339_ms")]
    pub occurred_at: Timestamp,
    /// The linked cameras that were not delivering live video when the alarm was detected.
    pub cameras_down: Vec<CameraState>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraState {
    pub id: DeviceId,
    pub name: String,
    pub online: bool,
    pub stream_alive: bool,
    pub frozen: bool,
    /// The picture check's fault (`obstructed`, `dark`, `defocused`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mttr {
    pub device_type: String,
    pub repairs: usize,
    pub mean_minutes: f64,
    pub max_minutes: f64,
}

/// One fact on a timeline: from `at`, bad (with a reason) or good. Reasons are few distinct
/// words (`unreachable`, `connection-lost`…) shared between facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub at: Timestamp,
    pub bad: bool,
    pub reason: Option<Arc<str>>,
}

fn minutes(from: Timestamp, to: Timestamp) -> f64 {
    (to - from).num_milliseconds() as f64 / 60_000.0
}

/// Three decimals, and never `-0` (an empty `f64` sum is `-0.0`).
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0 + 0.0
}

/// The bad stretches of a timeline, clipped to the window. `facts` in any order.
fn bad_periods(mut facts: Vec<Fact>, w: Window) -> Vec<Period> {
    facts.sort_by_key(|f| f.at);
    let mut out = Vec::new();
    let mut bad_since: Option<(Timestamp, Option<Arc<str>>)> = None;
    let mut push = |start: Timestamp, end: Timestamp, reason: Option<Arc<str>>, ongoing: bool| {
        let (s, e) = (start.max(w.from), end.min(w.to));
        if s < e {
            let reason = reason.map(|r| r.to_string());
            out.push(Period { from: s, to: e, minutes: round3(minutes(s, e)), ongoing, reason });
        }
    };
    for f in facts {
        if f.at > w.to {
            break;
        }
        match (&bad_since, f.bad) {
            (None, true) => bad_since = Some((f.at, f.reason)),
            (Some(_), false) => {
                if let Some((start, reason)) = bad_since.take() {
                    push(start, f.at, reason, false);
                }
            }
            _ => {}
        }
    }
    if let Some((start, reason)) = bad_since {
        push(start, w.to, reason, true);
    }
    out
}

fn total_minutes(p: &[Period]) -> f64 {
    round3(p.iter().map(|p| p.minutes).sum())
}

fn pct_good(bad_minutes: f64, w: Window) -> f64 {
    round3(100.0 * (w.minutes() - bad_minutes).max(0.0) / w.minutes())
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (n, sum) = xs.fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
    (n > 0).then(|| round3(sum / n as f64))
}

/// A camera, zone or gateway known to head office (gateways have the empty id).
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub branch: BranchId,
    pub kind: SubjectKind,
    pub id: String,
    pub name: String,
    /// Zones: whether the zone is required (only required zones are reported).
    pub required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SubjectKind {
    Camera,
    Zone,
    Gateway,
}

impl SubjectKind {
    pub fn parse(s: &str) -> Option<SubjectKind> {
        match s {
            "camera" => Some(SubjectKind::Camera),
            "zone" => Some(SubjectKind::Zone),
            "gateway" => Some(SubjectKind::Gateway),
            _ => None,
        }
    }
}

/// A timeline: a camera (by id), a zone (by id) or a gateway (empty id) of a branch.
pub type TimelineKey = (BranchId, SubjectKind, String);

/// Repairs of one device type in one branch, aggregated by the database.
#[derive(Debug, Clone, PartialEq)]
pub struct RepairAgg {
    pub branch: BranchId,
    pub device_type: String,
    pub repairs: usize,
    pub sum_ms: i64,
    pub max_ms: i64,
}

/// What the report is built from: the window's facts plus each timeline's state at the
/// window's start, the alarms of the window, and the repairs that ended in it. The database
/// gathers it ([`crate::db::Store::report_data`]); tests build it by hand.
#[derive(Debug, Clone, Default)]
pub struct ReportData {
    pub subjects: Vec<Subject>,
    /// Each timeline's facts, in any order.
    pub timelines: BTreeMap<TimelineKey, Vec<Fact>>,
    /// Raised alarm-link alerts in the window (follow-ups not counted), per branch.
    pub alarms: BTreeMap<BranchId, usize>,
    /// Those of them with a linked camera down.
    pub alarms_camera_down: Vec<protocols::Alert>,
    pub repairs: Vec<RepairAgg>,
}

/// Everything known about one branch.
#[derive(Default)]
struct BranchFacts {
    cameras: BTreeMap<String, (String, Vec<Fact>)>,
    zones: BTreeMap<String, (String, bool, Vec<Fact>)>,
    gateway: Vec<Fact>,
}

/// Builds the report for window `w`, taking the data apart as it goes.
pub fn build(mut d: ReportData, w: Window) -> Report {
    let mut branches: BTreeMap<BranchId, BranchFacts> = BTreeMap::new();
    // Every known camera and required zone is listed, so that a camera that never failed shows
    // at 100 % rather than not at all.
    for s in &d.subjects {
        let bf = branches.entry(s.branch.clone()).or_default();
        match s.kind {
            SubjectKind::Camera => {
                let name = if s.name.is_empty() { s.id.clone() } else { s.name.clone() };
                bf.cameras.entry(s.id.clone()).or_insert_with(|| (name, Vec::new()));
            }
            SubjectKind::Zone => {
                bf.zones.entry(s.id.clone()).or_insert_with(|| (s.name.clone(), s.required, Vec::new()));
            }
            SubjectKind::Gateway => {}
        }
    }
    for ((branch, kind, subject), facts) in std::mem::take(&mut d.timelines) {
        let bf = branches.entry(branch).or_default();
        match kind {
            SubjectKind::Camera => {
                bf.cameras.entry(subject.clone()).or_insert_with(|| (subject, Vec::new())).1.extend(facts)
            }
            SubjectKind::Zone => {
                bf.zones.entry(subject.clone()).or_insert_with(|| (subject, false, Vec::new())).2.extend(facts)
            }
            SubjectKind::Gateway => bf.gateway.extend(facts),
        }
    }
    for b in d.alarms.keys().chain(d.repairs.iter().map(|r| &r.branch)) {
        branches.entry(b.clone()).or_default();
    }

    let mut alarms_down: BTreeMap<BranchId, Vec<AlarmCameraDown>> = BTreeMap::new();
    for a in &d.alarms_camera_down {
        let AlertBody::AlarmLink(l) = &a.body else { continue };
        let down: Vec<CameraState> = l
            .cameras
            .iter()
            .filter(|c| c.is_down())
            .map(|c| CameraState {
                id: c.id.clone(),
                name: c.name.clone(),
                online: c.online,
                stream_alive: c.stream_alive,
                frozen: c.frozen,
                picture: c.picture.clone(),
            })
            .collect();
        if down.is_empty() || !w.contains(a.occurred_at) {
            continue;
        }
        alarms_down.entry(a.branch.clone()).or_default().push(AlarmCameraDown {
            alert_id: a.id.clone(),
            seq: a.seq.0,
            zone: l.zone.clone(),
            zone_name: l.zone_name.clone(),
            area: l.area.clone(),
            occurred_at: a.occurred_at,
            cameras_down: down,
        });
    }

    let mut out = Vec::new();
    for (branch, bf) in branches {
        let cameras: Vec<CameraAvailability> = bf
            .cameras
            .into_iter()
            .filter_map(|(id, (name, facts))| {
                let id = DeviceId::new(id).ok()?;
                let outages = bad_periods(facts, w);
                let down = total_minutes(&outages);
                Some(CameraAvailability { id, name, online_pct: pct_good(down, w), down_minutes: down, outages })
            })
            .collect();
        let zones: Vec<ZoneUncovered> = bf
            .zones
            .into_iter()
            .filter(|(_, (_, required, _))| *required)
            .filter_map(|(id, (name, _, facts))| {
                let id = ZoneId::new(id).ok()?;
                let periods = bad_periods(facts, w);
                Some(ZoneUncovered { id, name, uncovered_minutes: total_minutes(&periods), periods })
            })
            .collect();
        let gateway_offline = bad_periods(bf.gateway, w);
        let repairs: Vec<&RepairAgg> = d.repairs.iter().filter(|r| r.branch == branch).collect();
        out.push(BranchReport {
            camera_availability_pct: mean(cameras.iter().map(|c| c.online_pct)),
            gateway_online_pct: pct_good(total_minutes(&gateway_offline), w),
            mttr: mttr(repairs.into_iter()),
            alarms: d.alarms.get(&branch).copied().unwrap_or(0),
            alarms_with_camera_down: alarms_down.remove(&branch).unwrap_or_default(),
            branch,
            cameras,
            zones,
            gateway_offline,
        });
    }

    let totals = Totals {
        branches: out.len(),
        cameras: out.iter().map(|b| b.cameras.len()).sum(),
        camera_availability_pct: mean(out.iter().flat_map(|b| b.cameras.iter().map(|c| c.online_pct))),
        required_zone_uncovered_minutes: round3(out.iter().flat_map(|b| &b.zones).map(|z| z.uncovered_minutes).sum()),
        alarms: out.iter().map(|b| b.alarms).sum(),
        alarms_with_camera_down: out.iter().map(|b| b.alarms_with_camera_down.len()).sum(),
        gateway_offline_minutes: round3(out.iter().flat_map(|b| &b.gateway_offline).map(|p| p.minutes).sum()),
    };
    Report { schema: REPORT_SCHEMA, from: w.from, to: w.to, totals, mttr: mttr(d.repairs.iter()), branches: out }
}

fn mttr<'a>(repairs: impl Iterator<Item = &'a RepairAgg>) -> Vec<Mttr> {
    // (repairs, sum, max) per device type.
    let mut by: BTreeMap<&str, (usize, i64, i64)> = BTreeMap::new();
    for r in repairs {
        let e = by.entry(r.device_type.as_str()).or_default();
        e.0 += r.repairs;
        e.1 += r.sum_ms;
        e.2 = e.2.max(r.max_ms);
    }
    by.into_iter()
        .filter(|(_, (n, _, _))| *n > 0)
        .map(|(device_type, (n, sum, max))| Mttr {
            device_type: device_type.to_string(),
            repairs: n,
            mean_minutes: round3(sum as f64 / 60_000.0 / n as f64),
            max_minutes: round3(max as f64 / 60_000.0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};
    use protocols::alert::ALERT_SCHEMA;
    use protocols::{AlarmLinkDetails, Alert, AlertState, DeviceRef, DeviceType, LinkedCamera, Seq, Severity};

    /// Minutes after 10:00; the window is 10:00–11:00 (60 min) unless said otherwise.
    fn t(m: i64) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap() + Duration::minutes(m)
    }
    fn w() -> Window {
        Window::new(t(0), t(60)).unwrap()
    }
    fn b(s: &str) -> BranchId {
        BranchId::new(s).unwrap()
    }
    type Row = (TimelineKey, Fact);
    fn fact(branch: &str, kind: SubjectKind, id: &str, m: i64, bad: bool, reason: Option<&str>) -> Row {
        ((b(branch), kind, id.into()), Fact { at: t(m), bad, reason: reason.map(Arc::from) })
    }
    fn cam(branch: &str, id: &str, m: i64, bad: bool) -> Row {
        fact(branch, SubjectKind::Camera, id, m, bad, bad.then_some("unreachable"))
    }
    fn timelines(rows: Vec<Row>) -> BTreeMap<TimelineKey, Vec<Fact>> {
        let mut m: BTreeMap<TimelineKey, Vec<Fact>> = BTreeMap::new();
        for (k, f) in rows {
            m.entry(k).or_default().push(f);
        }
        m
    }
    fn subject(branch: &str, kind: SubjectKind, id: &str, name: &str, required: bool) -> Subject {
        Subject { branch: b(branch), kind, id: id.into(), name: name.into(), required }
    }
    fn linked(id: &str, online: bool, stream_alive: bool, frozen: bool) -> LinkedCamera {
        LinkedCamera {
            id: DeviceId::new(id).unwrap(),
            name: format!("{id} name"),
            online,
            stream_alive,
            frozen,
            picture: None,
            stream_uri: None,
            snapshot_uri: None,
        }
    }
    fn alarm(branch: &str, seq: u64, at: Timestamp, cams: Vec<LinkedCamera>) -> Alert {
        Alert {
            schema: ALERT_SCHEMA.into(),
            id: format!("{branch}-{seq}"),
            seq: Seq(seq),
            branch: b(branch),
            state: AlertState::Raised,
            severity: Severity::Major,
            device: DeviceRef {
                id: DeviceId::new("panel-1").unwrap(),
                device_type: DeviceType::AlarmPanel,
                name: "Panel".into(),
                zones: vec![],
            },
            occurred_at: at,
            detected_at: at,
            message: "m".into(),
            body: AlertBody::AlarmLink(AlarmLinkDetails {
                follow_up_of: None,
                snapshots: Vec::new(),
                zone: ZoneId::new("z-vault").unwrap(),
                zone_name: "Vault door".into(),
                zone_state: "alarm".into(),
                partition: None,
                armed: true,
                twenty_four_hour: false,
                area: Some(ZoneId::new("vault").unwrap()),
                cameras: cams,
            }),
        }
    }
    fn branch<'a>(r: &'a Report, id: &str) -> &'a BranchReport {
        r.branches.iter().find(|x| x.branch.as_str() == id).unwrap()
    }
    fn camera<'a>(r: &'a Report, br: &str, id: &str) -> &'a CameraAvailability {
        branch(r, br).cameras.iter().find(|c| c.id.as_str() == id).unwrap()
    }

    #[test]
    fn a_fifteen_minute_outage_in_an_hour_is_75_percent() {
        let d = ReportData {
            subjects: vec![subject("b1", SubjectKind::Camera, "cam-1", "Lobby", false)],
            timelines: timelines(vec![cam("b1", "cam-2", 15, true), cam("b1", "cam-2", 30, false)]),
            ..Default::default()
        };
        let r = build(d, w());
        let c2 = camera(&r, "b1", "cam-2");
        assert_eq!((c2.online_pct, c2.down_minutes, c2.outages.len()), (75.0, 15.0, 1));
        assert_eq!(c2.outages[0].reason.as_deref(), Some("unreachable"));
        let c1 = camera(&r, "b1", "cam-1");
        assert_eq!((c1.online_pct, c1.name.as_str()), (100.0, "Lobby"), "a camera that never failed is listed");
        assert_eq!(branch(&r, "b1").camera_availability_pct, Some(87.5));
    }

    #[test]
    fn an_outage_begun_before_the_window_counts_from_its_start_and_an_open_one_to_its_end() {
        let d = ReportData {
            timelines: timelines(vec![
                cam("b2", "cam-1", -30, true),
                cam("b2", "cam-1", 6, false),
                cam("b2", "cam-3", 50, true),
            ]),
            ..Default::default()
        };
        let r = build(d, w());
        let c1 = camera(&r, "b2", "cam-1");
        assert_eq!((c1.online_pct, c1.down_minutes, c1.outages[0].from), (90.0, 6.0, t(0)));
        let c3 = camera(&r, "b2", "cam-3");
        assert_eq!((c3.down_minutes, c3.online_pct, c3.outages[0].ongoing), (10.0, 83.333, true));
    }

    #[test]
    fn repeated_bad_facts_from_two_sources_are_one_outage() {
        // The alert (occurred_at) starts the outage, the device health (since) repeats it a
        // little later with another reason; the good fact ends it.
        let d = ReportData {
            timelines: timelines(vec![
                cam("b1", "cam-1", 10, true),
                fact("b1", SubjectKind::Camera, "cam-1", 11, true, Some("offline")),
                cam("b1", "cam-1", 20, false),
            ]),
            ..Default::default()
        };
        let r = build(d, w());
        assert_eq!(camera(&r, "b1", "cam-1").down_minutes, 10.0);
        assert_eq!(camera(&r, "b1", "cam-1").outages.len(), 1);
    }

    #[test]
    fn uncovered_minutes_of_required_zones_only() {
        let z = |zone: &str, m: i64, covered: bool| fact("b1", SubjectKind::Zone, zone, m, !covered, None);
        let d = ReportData {
            subjects: vec![
                subject("b1", SubjectKind::Zone, "vault", "VAULT", true),
                subject("b1", SubjectKind::Zone, "hall", "HALL", false),
            ],
            timelines: timelines(vec![
                z("vault", -10, true),
                z("vault", 15, false),
                z("vault", 30, true),
                z("vault", 55, false),
                z("hall", 0, false),
            ]),
            ..Default::default()
        };
        let r = build(d, w());
        let zones = &branch(&r, "b1").zones;
        assert_eq!(zones.len(), 1, "only required zones are reported");
        assert_eq!((zones[0].name.as_str(), zones[0].uncovered_minutes, zones[0].periods.len()), ("VAULT", 20.0, 2));
        assert!(zones[0].periods[1].ongoing);
        assert_eq!(r.totals.required_zone_uncovered_minutes, 20.0);
    }

    #[test]
    fn alarms_with_a_linked_camera_down_name_the_cameras() {
        let mut alarms = BTreeMap::new();
        alarms.insert(b("b1"), 3);
        let d = ReportData {
            alarms,
            alarms_camera_down: vec![
                alarm("b1", 1, t(20), vec![linked("cam-2", false, false, false), linked("cam-1", true, true, false)]),
                alarm("b1", 3, t(26), vec![linked("cam-1", true, true, true)]),
            ],
            ..Default::default()
        };
        let r = build(d, w());
        let br = branch(&r, "b1");
        assert_eq!(br.alarms, 3);
        let ids: Vec<&str> = br.alarms_with_camera_down.iter().map(|a| a.alert_id.as_str()).collect();
        assert_eq!(ids, vec!["b1-1", "b1-3"], "a frozen camera is down too");
        assert_eq!(br.alarms_with_camera_down[0].cameras_down.len(), 1);
        assert_eq!(br.alarms_with_camera_down[0].cameras_down[0].id.as_str(), "cam-2");
        assert_eq!(r.totals.alarms_with_camera_down, 2);
    }

    #[test]
    fn mttr_per_device_type_from_the_aggregates() {
        let agg = |br: &str, ty: &str, n: usize, sum_min: i64, max_min: i64| RepairAgg {
            branch: b(br),
            device_type: ty.into(),
            repairs: n,
            sum_ms: sum_min * 60_000,
            max_ms: max_min * 60_000,
        };
        let d = ReportData {
            repairs: vec![
                agg("b1", "camera", 1, 15, 15),
                agg("b2", "camera", 1, 36, 36),
                agg("b3", "alarm-panel", 1, 10, 10),
            ],
            ..Default::default()
        };
        let r = build(d, w());
        let cam = r.mttr.iter().find(|m| m.device_type == "camera").unwrap();
        assert_eq!((cam.repairs, cam.mean_minutes, cam.max_minutes), (2, 25.5, 36.0));
        let pan = r.mttr.iter().find(|m| m.device_type == "alarm-panel").unwrap();
        assert_eq!((pan.repairs, pan.mean_minutes), (1, 10.0));
        assert_eq!(branch(&r, "b2").mttr[0].mean_minutes, 36.0);
    }

    #[test]
    fn gateway_offline_periods_with_their_reasons() {
        let g = |m: i64, bad: bool, reason: Option<&str>| fact("b2", SubjectKind::Gateway, "", m, bad, reason);
        let d = ReportData {
            timelines: timelines(vec![
                g(-60, false, None),
                g(40, true, Some("shutdown")),
                g(52, false, None),
                g(58, true, Some("connection-lost")),
            ]),
            ..Default::default()
        };
        let r = build(d, w());
        let br = branch(&r, "b2");
        let p: Vec<(f64, bool, Option<&str>)> =
            br.gateway_offline.iter().map(|p| (p.minutes, p.ongoing, p.reason.as_deref())).collect();
        assert_eq!(p, vec![(12.0, false, Some("shutdown")), (2.0, true, Some("connection-lost"))]);
        assert_eq!(br.gateway_online_pct, 76.667);
        assert_eq!(r.totals.gateway_offline_minutes, 14.0);
    }

    #[test]
    fn an_empty_window_is_refused() {
        assert!(Window::new(t(1), t(1)).is_err());
    }
}
