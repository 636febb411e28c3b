//! The "right now" view of every branch (`hq coverage`): gateway up or down and since when,
//! cameras online, live video, and which required zones nobody is watching.
//!
//! Pure: built from a [`Snapshot`] of the latest retained values (from the database, from a live
//! subscription, or both laid over each other).

use std::collections::BTreeMap;

use protocols::status::GatewayState;
use protocols::time::{Timestamp, rfc3339_ms, rfc3339_ms_opt};
use protocols::{BranchId, DeviceHealth, DeviceId, DeviceType, ZoneId};
use serde::Serialize;

use crate::records::Snapshot;

pub const COVERAGE_VIEW_SCHEMA: &str = "hq-coverage/1";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverageView {
    pub schema: &'static str,
    #[serde(with = "rfc3339_ms")]
    pub generated_at: Timestamp,
    pub branches: Vec<BranchCoverage>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BranchCoverage {
    pub branch: BranchId,
    /// `online`, `offline`, or `unknown` (no gateway status received).
    pub gateway: &'static str,
    /// When the gateway entered that status, when known.
    #[serde(skip_serializing_if = "Option::is_none", with = "rfc3339_ms_opt")]
    pub gateway_since: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_reason: Option<String>,
    /// The gateway is offline: the device and coverage values are the last known, not current.
    pub stale: bool,
    pub cameras_online: u32,
    pub cameras_total: u32,
    /// Cameras with live, unfrozen video (from the coverage report; absent without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cameras_live_video: Option<u32>,
    pub required_zones: u32,
    pub required_zones_uncovered: u32,
    pub uncovered_zones: Vec<UncoveredZone>,
    /// When the coverage report was computed.
    #[serde(skip_serializing_if = "Option::is_none", with = "rfc3339_ms_opt")]
    pub coverage_at: Option<Timestamp>,
    /// Devices (any type) whose health is not `online`.
    pub devices_not_online: Vec<DeviceNotOnline>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UncoveredZone {
    pub id: ZoneId,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", with = "rfc3339_ms_opt")]
    pub since: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceNotOnline {
    pub id: DeviceId,
    #[serde(rename = "type")]
    pub device_type: &'static str,
    pub name: String,
    pub state: String,
    /// The precise code behind the state (`unreachable`, `tcp-only`…), when the gateway sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(with = "rfc3339_ms")]
    pub since: Timestamp,
}

/// One line per branch that appears anywhere in `s`.
pub fn summarize(s: &Snapshot, now: Timestamp) -> CoverageView {
    let mut ids: Vec<&BranchId> = s
        .gateways
        .keys()
        .chain(s.coverage.keys())
        .chain(s.devices.keys().map(|(b, _)| b))
        .chain(s.device_counts.keys())
        .collect();
    ids.sort();
    ids.dedup();
    let mut by_branch: BTreeMap<&BranchId, Vec<&DeviceHealth>> = BTreeMap::new();
    for ((b, _), d) in &s.devices {
        by_branch.entry(b).or_default().push(&d.value);
    }
    let branches = ids
        .into_iter()
        .map(|b| {
            let gw = s.gateways.get(b);
            let gateway = match gw.map(|g| g.value.status) {
                Some(GatewayState::Online) => "online",
                Some(GatewayState::Offline) => "offline",
                None => "unknown",
            };
            let devices = by_branch.get(b).map(Vec::as_slice).unwrap_or_default();
            let cams = devices.iter().filter(|d| d.device.device_type == DeviceType::Camera);
            let (mut cameras_total, mut cameras_online) = (0u32, 0u32);
            match s.device_counts.get(b) {
                Some(n) => (cameras_total, cameras_online) = (n.cameras, n.cameras_online),
                None => {
                    for c in cams {
                        cameras_total += 1;
                        cameras_online += u32::from(c.state == "online");
                    }
                }
            }
            let cov = s.coverage.get(b).map(|c| &c.value);
            let mut uncovered_zones = Vec::new();
            let (mut required_zones, mut required_zones_uncovered, mut cameras_live_video) = (0, 0, None);
            if let Some(c) = cov {
                cameras_total = c.totals.cameras_configured;
                cameras_online = c.totals.cameras_online;
                cameras_live_video = Some(c.totals.cameras_live_video);
                required_zones = c.totals.required_zones;
                required_zones_uncovered = c.totals.required_zones_uncovered;
                uncovered_zones = c
                    .uncovered()
                    .map(|z| UncoveredZone { id: z.id.clone(), name: z.name.clone(), since: z.uncovered_since })
                    .collect();
            }
            let devices_not_online = devices
                .iter()
                .filter(|d| d.state != "online")
                .map(|d| DeviceNotOnline {
                    id: d.device.id.clone(),
                    device_type: d.device.device_type.as_str(),
                    name: d.device.name.clone(),
                    state: d.state.clone(),
                    status: d.status.clone(),
                    since: d.since,
                })
                .collect();
            BranchCoverage {
                branch: b.clone(),
                gateway,
                gateway_since: gw.and_then(|g| g.since.or(g.value.at)),
                gateway_reason: gw.and_then(|g| g.value.reason.clone()),
                stale: gateway == "offline",
                cameras_online,
                cameras_total,
                cameras_live_video,
                required_zones,
                required_zones_uncovered,
                uncovered_zones,
                coverage_at: cov.map(|c| c.at),
                devices_not_online,
            }
        })
        .collect();
    CoverageView { schema: COVERAGE_VIEW_SCHEMA, generated_at: now, branches }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Latest;
    use chrono::{TimeZone, Utc};
    use protocols::coverage::COVERAGE_SCHEMA;
    use protocols::status::{DEVICE_HEALTH_SCHEMA, GATEWAY_STATUS_SCHEMA};
    use protocols::{CoverageReport, CoverageTotals, DeviceRef, GatewayStatus, ZoneCoverage};

    #[test]
    fn one_line_per_branch_with_uncovered_zones_named() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap();
        let b1 = BranchId::new("b1").unwrap();
        let b2 = BranchId::new("b2").unwrap();
        let mut s = Snapshot::default();
        s.gateways.insert(
            b1.clone(),
            Latest {
                received_at: t,
                value: GatewayStatus {
                    schema: GATEWAY_STATUS_SCHEMA.into(),
                    branch: b1.clone(),
                    status: GatewayState::Offline,
                    reason: Some("connection-lost".into()),
                    at: None,
                    version: "1".into(),
                },
                since: Some(t),
            },
        );
        s.coverage.insert(
            b1.clone(),
            Latest {
                received_at: t,
                since: None,
                value: CoverageReport {
                    schema: COVERAGE_SCHEMA.into(),
                    branch: b1.clone(),
                    at: t,
                    totals: CoverageTotals {
                        cameras_configured: 2,
                        cameras_online: 1,
                        cameras_live_video: 1,
                        required_zones: 1,
                        required_zones_uncovered: 1,
                    },
                    zones: vec![ZoneCoverage {
                        id: ZoneId::new("vault").unwrap(),
                        name: "Vault".into(),
                        required: true,
                        min_live_cameras: 1,
                        cameras: vec![DeviceId::new("cam-2").unwrap()],
                        cameras_online: 0,
                        cameras_live_video: 0,
                        covered: false,
                        uncovered_since: Some(t),
                    }],
                },
            },
        );
        let dev = |b: &BranchId, id: &str, state: &str| DeviceHealth {
            schema: DEVICE_HEALTH_SCHEMA.into(),
            branch: b.clone(),
            device: DeviceRef {
                id: DeviceId::new(id).unwrap(),
                device_type: DeviceType::Camera,
                name: id.into(),
                zones: vec![],
            },
            state: state.into(),
            status: (state == "offline").then(|| "unreachable".into()),
            since: t,
            updated_at: t,
            reason: None,
            clock_skew_ms: None,
            resolution: None,
            encoding: None,
        };
        for (b, id, st) in [(&b2, "cam-1", "online"), (&b2, "cam-2", "frozen"), (&b1, "cam-2", "offline")] {
            s.devices.insert(
                (b.clone(), DeviceId::new(id).unwrap()),
                Latest { received_at: t, value: dev(b, id, st), since: Some(t) },
            );
        }
        let v = summarize(&s, t);
        assert_eq!(v.branches.len(), 2);
        let l1 = &v.branches[0];
        assert_eq!((l1.gateway, l1.stale, l1.cameras_online, l1.cameras_total), ("offline", true, 1, 2));
        assert_eq!(l1.uncovered_zones[0].name, "Vault");
        assert_eq!(l1.devices_not_online.len(), 1);
        let l2 = &v.branches[1];
        assert_eq!((l2.gateway, l2.cameras_online, l2.cameras_total, l2.cameras_live_video), ("unknown", 1, 2, None));
        assert_eq!(l2.devices_not_online[0].state, "frozen");
    }
}
