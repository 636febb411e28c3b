//! The assessment report over a time window: camera availability, uncovered minutes of required
//! zones, alarms whose linked camera was down, mean time to repair, gateway offline periods.
//!
//! Pure: a [`History`] and a [`Window`] in, a [`Report`] out, so every number can be checked
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

use std::collections::{BTreeMap, HashMap};

use protocols::status::GatewayState;
use protocols::time::{Timestamp, rfc3339_ms};
use protocols::{AlertBody, AlertKind, AlertState, BranchId, DeviceId, DeviceType, ZoneId};
use serde::Serialize;

use crate::records::History;

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
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mttr {
    pub device_type: &'static str,
    pub repairs: usize,
    pub mean_minutes: f64,
    pub max_minutes: f64,
}

/// One fact on a timeline: from `at`, bad (with a reason) or good.
#[derive(Debug, Clone)]
struct Fact {
    at: Timestamp,
    bad: bool,
    reason: Option<String>,
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
    let mut bad_since: Option<(Timestamp, Option<String>)> = None;
    let mut push = |start: Timestamp, end: Timestamp, reason: Option<String>, ongoing: bool| {
        let (s, e) = (start.max(w.from), end.min(w.to));
        if s < e {
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

/// Everything known about one branch, gathered from all sources.
#[derive(Default)]
struct BranchFacts {
    cameras: BTreeMap<DeviceId, (String, Vec<Fact>)>,
    zones: BTreeMap<ZoneId, (String, bool, Vec<Fact>)>,
    gateway: Vec<Fact>,
}

impl BranchFacts {
    fn camera(&mut self, id: &DeviceId, name: &str) -> &mut Vec<Fact> {
        let e = self.cameras.entry(id.clone()).or_insert_with(|| (name.to_string(), Vec::new()));
        if e.0.is_empty() || e.0 == id.as_str() {
            e.0 = name.to_string();
        }
        &mut e.1
    }
}

/// Builds the report. `h` should be normalized ([`History::normalize`]).
pub fn build(h: &History, w: Window) -> Report {
    let mut branches: BTreeMap<BranchId, BranchFacts> = BTreeMap::new();

    // Cameras and zones known from the latest state, so that a camera that never failed shows
    // at 100 % rather than not at all.
    for ((b, id), d) in &h.latest.devices {
        if d.value.device.device_type == DeviceType::Camera {
            branches.entry(b.clone()).or_default().camera(id, &d.value.device.name);
        }
    }
    for (b, c) in &h.latest.coverage {
        let bf = branches.entry(b.clone()).or_default();
        for z in &c.value.zones {
            for cam in &z.cameras {
                bf.camera(cam, cam.as_str());
            }
            if z.required {
                bf.zones.entry(z.id.clone()).or_insert_with(|| (z.name.clone(), true, Vec::new()));
            }
        }
    }
    for b in h.latest.gateways.keys() {
        branches.entry(b.clone()).or_default();
    }

    for d in &h.devices {
        if d.device_type != DeviceType::Camera || d.state == "unknown" {
            continue;
        }
        let bad = d.state != "online";
        branches.entry(d.branch.clone()).or_default().camera(&d.device, &d.name).push(Fact {
            at: d.at,
            bad,
            reason: bad.then(|| d.state.clone()),
        });
    }
    for z in &h.zones {
        let e = branches
            .entry(z.branch.clone())
            .or_default()
            .zones
            .entry(z.zone.clone())
            .or_insert_with(|| (z.name.clone(), z.required, Vec::new()));
        e.0 = z.name.clone();
        e.1 = z.required;
        e.2.push(Fact { at: z.at, bad: !z.covered, reason: None });
    }
    for g in &h.gateway {
        let bad = g.status == GatewayState::Offline;
        branches.entry(g.branch.clone()).or_default().gateway.push(Fact {
            at: g.at,
            bad,
            reason: if bad { g.reason.clone() } else { None },
        });
    }

    let mut alarms: BTreeMap<BranchId, (usize, Vec<AlarmCameraDown>)> = BTreeMap::new();
    for r in &h.alerts {
        let a = &r.alert;
        let bf = branches.entry(a.branch.clone()).or_default();
        match &a.body {
            AlertBody::CameraOffline(d) => {
                let bad = a.state == AlertState::Raised;
                bf.camera(&a.device.id, &a.device.name).push(Fact {
                    at: a.occurred_at,
                    bad,
                    reason: bad.then(|| d.status.clone()),
                });
            }
            AlertBody::AlarmLink(d) => {
                for c in &d.cameras {
                    bf.camera(&c.id, &c.name);
                }
                // A follow-up (snapshots after the alarm) is not a new alarm.
                if a.state != AlertState::Raised || !w.contains(a.occurred_at) || d.follow_up_of.is_some() {
                    continue;
                }
                let e = alarms.entry(a.branch.clone()).or_default();
                e.0 += 1;
                let down: Vec<CameraState> = d
                    .cameras
                    .iter()
                    .filter(|c| !c.online || !c.stream_alive || c.frozen)
                    .map(|c| CameraState {
                        id: c.id.clone(),
                        name: c.name.clone(),
                        online: c.online,
                        stream_alive: c.stream_alive,
                        frozen: c.frozen,
                    })
                    .collect();
                if !down.is_empty() {
                    e.1.push(AlarmCameraDown {
                        alert_id: a.id.clone(),
                        seq: a.seq.0,
                        zone: d.zone.clone(),
                        zone_name: d.zone_name.clone(),
                        area: d.area.clone(),
                        occurred_at: a.occurred_at,
                        cameras_down: down,
                    });
                }
            }
            AlertBody::DoorStatus(_) | AlertBody::DeviceFault(_) => {}
        }
    }

    let repairs = repairs(h, w);

    let mut out = Vec::new();
    for (branch, bf) in branches {
        let cameras: Vec<CameraAvailability> = bf
            .cameras
            .into_iter()
            .map(|(id, (name, facts))| {
                let outages = bad_periods(facts, w);
                let down = total_minutes(&outages);
                CameraAvailability { id, name, online_pct: pct_good(down, w), down_minutes: down, outages }
            })
            .collect();
        let zones: Vec<ZoneUncovered> = bf
            .zones
            .into_iter()
            .filter(|(_, (_, required, _))| *required)
            .map(|(id, (name, _, facts))| {
                let periods = bad_periods(facts, w);
                ZoneUncovered { id, name, uncovered_minutes: total_minutes(&periods), periods }
            })
            .collect();
        let gateway_offline = bad_periods(bf.gateway, w);
        let (n_alarms, down) = alarms.remove(&branch).unwrap_or_default();
        out.push(BranchReport {
            camera_availability_pct: mean(cameras.iter().map(|c| c.online_pct)),
            gateway_online_pct: pct_good(total_minutes(&gateway_offline), w),
            mttr: mttr(repairs.iter().filter(|r| r.0 == branch).map(|r| (r.1, r.2))),
            branch,
            cameras,
            zones,
            alarms: n_alarms,
            alarms_with_camera_down: down,
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
    Report {
        schema: REPORT_SCHEMA,
        from: w.from,
        to: w.to,
        totals,
        mttr: mttr(repairs.iter().map(|r| (r.1, r.2))),
        branches: out,
    }
}

/// (branch, device type, minutes) for every raised→cleared pair whose clear is in the window.
fn repairs(h: &History, w: Window) -> Vec<(BranchId, DeviceType, f64)> {
    let mut alerts: Vec<&protocols::Alert> = h
        .alerts
        .iter()
        .map(|r| &r.alert)
        .filter(|a| matches!(a.kind(), AlertKind::CameraOffline | AlertKind::DeviceFault))
        .collect();
    alerts.sort_by_key(|a| (a.occurred_at, a.seq));
    let mut open: HashMap<(BranchId, AlertKind, DeviceId, String), (Timestamp, DeviceType)> = HashMap::new();
    let mut out = Vec::new();
    for a in alerts {
        let sub = match &a.body {
            AlertBody::DeviceFault(d) => d.fault.clone(),
            _ => String::new(),
        };
        let key = (a.branch.clone(), a.kind(), a.device.id.clone(), sub);
        match a.state {
            AlertState::Raised => {
                open.entry(key).or_insert((a.occurred_at, a.device.device_type));
            }
            AlertState::Cleared => {
                if let Some((start, ty)) = open.remove(&key)
                    && w.contains(a.occurred_at)
                {
                    out.push((a.branch.clone(), ty, minutes(start, a.occurred_at)));
                }
            }
        }
    }
    out
}

fn mttr(repairs: impl Iterator<Item = (DeviceType, f64)>) -> Vec<Mttr> {
    let mut by: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for (ty, m) in repairs {
        by.entry(ty.as_str()).or_default().push(m);
    }
    by.into_iter()
        .map(|(device_type, ms)| Mttr {
            device_type,
            repairs: ms.len(),
            mean_minutes: round3(ms.iter().sum::<f64>() / ms.len() as f64),
            max_minutes: round3(ms.iter().copied().fold(0.0, f64::max)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{AlertRecord, DeviceChange, GatewayChange, ZoneChange};
    use chrono::{Duration, TimeZone, Utc};
    use protocols::alert::ALERT_SCHEMA;
    use protocols::{
        AlarmLinkDetails, Alert, CameraOfflineDetails, DeviceFaultDetails, DeviceRef, LinkedCamera, Seq, Severity,
    };

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
    fn dev(id: &str, ty: DeviceType) -> DeviceRef {
        DeviceRef { id: DeviceId::new(id).unwrap(), device_type: ty, name: format!("{id} name"), zones: vec![] }
    }
    fn alert(
        branch: &str,
        seq: u64,
        device: DeviceRef,
        state: AlertState,
        at: Timestamp,
        body: AlertBody,
    ) -> AlertRecord {
        AlertRecord {
            received_at: at,
            alert: Alert {
                schema: ALERT_SCHEMA.into(),
                id: format!("{branch}-{seq}"),
                seq: Seq(seq),
                branch: b(branch),
                state,
                severity: Severity::Major,
                device,
                occurred_at: at,
                detected_at: at,
                message: "m".into(),
                body,
            },
        }
    }
    fn cam_off(branch: &str, seq: u64, cam: &str, state: AlertState, at: Timestamp) -> AlertRecord {
        alert(
            branch,
            seq,
            dev(cam, DeviceType::Camera),
            state,
            at,
            AlertBody::CameraOffline(CameraOfflineDetails {
                status: if state == AlertState::Raised { "unreachable".into() } else { "online".into() },
                reason: "r".into(),
                consecutive_failures: 3,
                armed: false,
                uncovered_zones: vec![],
                clock_skew_ms: None,
            }),
        )
    }
    fn fault(branch: &str, seq: u64, d: DeviceRef, fault: &str, state: AlertState, at: Timestamp) -> AlertRecord {
        alert(
            branch,
            seq,
            d,
            state,
            at,
            AlertBody::DeviceFault(DeviceFaultDetails {
                fault: fault.into(),
                reason: "r".into(),
                dropped_events: None,
                outage_ms: None,
                waiting_events: None,
            }),
        )
    }
    fn linked(id: &str, online: bool, stream_alive: bool, frozen: bool) -> LinkedCamera {
        LinkedCamera {
            id: DeviceId::new(id).unwrap(),
            name: format!("{id} name"),
            online,
            stream_alive,
            frozen,
            stream_uri: None,
            snapshot_uri: None,
        }
    }
    fn alarm(branch: &str, seq: u64, at: Timestamp, cams: Vec<LinkedCamera>) -> AlertRecord {
        alert(
            branch,
            seq,
            dev("panel-1", DeviceType::AlarmPanel),
            AlertState::Raised,
            at,
            AlertBody::AlarmLink(AlarmLinkDetails {
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
        )
    }
    fn report(mut h: History, w: Window) -> Report {
        h.normalize();
        build(&h, w)
    }
    fn branch<'a>(r: &'a Report, id: &str) -> &'a BranchReport {
        r.branches.iter().find(|x| x.branch.as_str() == id).unwrap()
    }
    fn camera<'a>(r: &'a Report, br: &str, id: &str) -> &'a CameraAvailability {
        branch(r, br).cameras.iter().find(|c| c.id.as_str() == id).unwrap()
    }

    #[test]
    fn a_fifteen_minute_outage_in_an_hour_is_75_percent() {
        let h = History {
            alerts: vec![
                cam_off("b1", 1, "cam-2", AlertState::Raised, t(15)),
                cam_off("b1", 2, "cam-2", AlertState::Cleared, t(30)),
                cam_off("b1", 3, "cam-1", AlertState::Cleared, t(40)),
            ],
            ..Default::default()
        };
        let r = report(h, w());
        let c2 = camera(&r, "b1", "cam-2");
        assert_eq!(c2.online_pct, 75.0);
        assert_eq!(c2.down_minutes, 15.0);
        assert_eq!(c2.outages.len(), 1);
        assert_eq!(c2.outages[0].reason.as_deref(), Some("unreachable"));
        assert_eq!(camera(&r, "b1", "cam-1").online_pct, 100.0);
        assert_eq!(branch(&r, "b1").camera_availability_pct, Some(87.5));
    }

    #[test]
    fn an_outage_raised_before_the_window_counts_from_its_start_and_an_open_one_to_its_end() {
        let h = History {
            alerts: vec![
                cam_off("b2", 1, "cam-1", AlertState::Raised, t(-30)),
                cam_off("b2", 2, "cam-1", AlertState::Cleared, t(6)),
                cam_off("b2", 3, "cam-3", AlertState::Raised, t(50)),
            ],
            ..Default::default()
        };
        let r = report(h, w());
        let c1 = camera(&r, "b2", "cam-1");
        assert_eq!((c1.online_pct, c1.down_minutes), (90.0, 6.0));
        assert_eq!(c1.outages[0].from, t(0));
        let c3 = camera(&r, "b2", "cam-3");
        assert_eq!(c3.down_minutes, 10.0);
        assert_eq!(c3.online_pct, 83.333);
        assert!(c3.outages[0].ongoing);
        // Outages entirely outside the window do not count.
        let later = report(
            History { alerts: vec![cam_off("b2", 1, "cam-1", AlertState::Raised, t(70))], ..Default::default() },
            w(),
        );
        assert_eq!(camera(&later, "b2", "cam-1").online_pct, 100.0);
    }

    #[test]
    fn device_health_changes_alone_give_availability() {
        let ch = |state: &str, m| DeviceChange {
            branch: b("b3"),
            device: DeviceId::new("cam-9").unwrap(),
            device_type: DeviceType::Camera,
            name: "Counter".into(),
            state: state.into(),
            at: t(m),
            received_at: t(m),
        };
        let h = History {
            devices: vec![ch("online", -60), ch("frozen", 30), ch("online", 45), ch("unknown", 50)],
            ..Default::default()
        };
        let r = report(h, w());
        let c = camera(&r, "b3", "cam-9");
        assert_eq!((c.online_pct, c.down_minutes), (75.0, 15.0));
        assert_eq!(c.outages[0].reason.as_deref(), Some("frozen"));
        assert_eq!(c.name, "Counter");
    }

    #[test]
    fn alert_and_device_facts_combine_on_one_timeline() {
        // The alert (occurred_at) starts the outage, the device health (since) repeats it a
        // little later; the cleared alert ends it.
        let h = History {
            alerts: vec![
                cam_off("b1", 1, "cam-1", AlertState::Raised, t(10)),
                cam_off("b1", 2, "cam-1", AlertState::Cleared, t(20)),
            ],
            devices: vec![DeviceChange {
                branch: b("b1"),
                device: DeviceId::new("cam-1").unwrap(),
                device_type: DeviceType::Camera,
                name: "cam-1 name".into(),
                state: "offline".into(),
                at: t(11),
                received_at: t(11),
            }],
            ..Default::default()
        };
        let r = report(h, w());
        assert_eq!(camera(&r, "b1", "cam-1").down_minutes, 10.0);
    }

    #[test]
    fn uncovered_minutes_of_required_zones() {
        let z = |zone: &str, required: bool, covered: bool, m: i64| ZoneChange {
            branch: b("b1"),
            zone: ZoneId::new(zone).unwrap(),
            name: zone.to_uppercase(),
            required,
            covered,
            at: t(m),
            received_at: t(m),
        };
        let h = History {
            zones: vec![
                z("vault", true, true, -10),
                z("vault", true, false, 15),
                z("vault", true, true, 30),
                z("vault", true, false, 55),
                z("hall", false, false, 0),
            ],
            ..Default::default()
        };
        let r = report(h, w());
        let zones = &branch(&r, "b1").zones;
        assert_eq!(zones.len(), 1, "only required zones are reported");
        assert_eq!(zones[0].uncovered_minutes, 20.0);
        assert_eq!(zones[0].periods.len(), 2);
        assert!(zones[0].periods[1].ongoing);
        assert_eq!(r.totals.required_zone_uncovered_minutes, 20.0);
    }

    #[test]
    fn alarms_with_a_linked_camera_down() {
        let h = History {
            alerts: vec![
                alarm("b1", 1, t(20), vec![linked("cam-2", false, false, false), linked("cam-1", true, true, false)]),
                alarm("b1", 2, t(25), vec![linked("cam-1", true, true, false)]),
                alarm("b1", 3, t(26), vec![linked("cam-1", true, true, true)]),
                alarm("b1", 4, t(90), vec![linked("cam-2", false, false, false)]),
            ],
            ..Default::default()
        };
        let r = report(h, w());
        let br = branch(&r, "b1");
        assert_eq!(br.alarms, 3, "the alarm after the window is not counted");
        let ids: Vec<&str> = br.alarms_with_camera_down.iter().map(|a| a.alert_id.as_str()).collect();
        assert_eq!(ids, vec!["b1-1", "b1-3"], "a frozen camera is down too");
        assert_eq!(br.alarms_with_camera_down[0].cameras_down.len(), 1);
        assert_eq!(br.alarms_with_camera_down[0].cameras_down[0].id.as_str(), "cam-2");
        assert_eq!(r.totals.alarms_with_camera_down, 2);
    }

    #[test]
    fn mttr_per_device_type_pairs_raised_and_cleared() {
        let panel = || dev("panel-1", DeviceType::AlarmPanel);
        let h = History {
            alerts: vec![
                cam_off("b1", 1, "cam-2", AlertState::Raised, t(15)),
                cam_off("b1", 2, "cam-2", AlertState::Cleared, t(30)),
                cam_off("b2", 1, "cam-1", AlertState::Raised, t(-30)),
                cam_off("b2", 2, "cam-1", AlertState::Cleared, t(6)),
                // Still open: not a repair.
                cam_off("b2", 3, "cam-3", AlertState::Raised, t(50)),
                fault("b3", 1, panel(), "ac-loss", AlertState::Raised, t(10)),
                // A different fault of the same device does not clear it.
                fault("b3", 2, panel(), "tamper", AlertState::Cleared, t(12)),
                fault("b3", 3, panel(), "ac-loss", AlertState::Cleared, t(20)),
            ],
            ..Default::default()
        };
        let r = report(h, w());
        let cam = r.mttr.iter().find(|m| m.device_type == "camera").unwrap();
        assert_eq!((cam.repairs, cam.mean_minutes, cam.max_minutes), (2, 25.5, 36.0));
        let pan = r.mttr.iter().find(|m| m.device_type == "alarm-panel").unwrap();
        assert_eq!((pan.repairs, pan.mean_minutes), (1, 10.0));
        assert_eq!(branch(&r, "b2").mttr[0].mean_minutes, 36.0);
    }

    #[test]
    fn gateway_offline_periods() {
        let g = |status, m: i64, reason: Option<&str>| GatewayChange {
            branch: b("b2"),
            status,
            reason: reason.map(str::to_string),
            at: t(m),
            received_at: t(m),
        };
        let h = History {
            gateway: vec![
                g(GatewayState::Online, -60, None),
                g(GatewayState::Offline, 40, Some("shutdown")),
                g(GatewayState::Online, 52, None),
                g(GatewayState::Offline, 58, Some("connection-lost")),
            ],
            ..Default::default()
        };
        let r = report(h, w());
        let br = branch(&r, "b2");
        let p: Vec<(f64, bool, Option<&str>)> =
            br.gateway_offline.iter().map(|p| (p.minutes, p.ongoing, p.reason.as_deref())).collect();
        assert_eq!(p, vec![(12.0, false, Some("shutdown")), (2.0, true, Some("connection-lost"))]);
        assert_eq!(br.gateway_online_pct, 76.667);
        assert_eq!(r.totals.gateway_offline_minutes, 14.0);
    }

    #[test]
    fn records_from_two_stores_merge_into_one_timeline() {
        // Two listeners on a shared subscription each recorded "changes" of what they saw.
        let g = |status, m: i64| GatewayChange { branch: b("b1"), status, reason: None, at: t(m), received_at: t(m) };
        let mut a =
            History { gateway: vec![g(GatewayState::Online, 0), g(GatewayState::Offline, 10)], ..Default::default() };
        let b_ =
            History { gateway: vec![g(GatewayState::Offline, 12), g(GatewayState::Online, 20)], ..Default::default() };
        a.extend(b_);
        let r = report(a, w());
        assert_eq!(branch(&r, "b1").gateway_offline[0].minutes, 10.0);
    }

    #[test]
    fn an_empty_window_is_refused() {
        assert!(Window::new(t(1), t(1)).is_err());
    }
}
