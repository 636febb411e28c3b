//! The latest retained state of every branch, as `hq coverage` reads it: from the database,
//! from a live subscription to the retained topics, or one laid over the other.

use std::collections::BTreeMap;

use protocols::time::{Timestamp, rfc3339_ms, rfc3339_ms_opt};
use protocols::{BranchId, CoverageReport, DeviceHealth, DeviceId, GatewayStatus};
use serde::{Deserialize, Serialize};

/// The latest retained value of a topic and when it arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latest<T> {
    #[serde(with = "rfc3339_ms")]
    pub received_at: Timestamp,
    pub value: T,
    /// For gateway status: when the current status began (the last change), if known.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339_ms_opt")]
    pub since: Option<Timestamp>,
}

/// Cameras of a branch, counted where they are stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceCounts {
    pub cameras: u32,
    pub cameras_online: u32,
}

/// The latest retained state of every branch: what `hq coverage` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub gateways: BTreeMap<BranchId, Latest<GatewayStatus>>,
    /// Every device's health (from a live subscription), or only the devices that are not
    /// online (from the database, which counts the rest: see `device_counts`).
    pub devices: BTreeMap<(BranchId, DeviceId), Latest<DeviceHealth>>,
    /// Per branch, when `devices` holds only the devices that are not online: how many cameras
    /// the branch has and how many are online.
    pub device_counts: BTreeMap<BranchId, DeviceCounts>,
    pub coverage: BTreeMap<BranchId, Latest<CoverageReport>>,
}

impl Snapshot {
    /// Lays `newer` over `self`: for each key the value received last wins. A gateway status
    /// keeps `since` from whichever side knows when the current status began.
    pub fn merge(&mut self, newer: Snapshot) {
        for (k, v) in newer.gateways {
            match self.gateways.get(&k) {
                Some(old) if old.received_at > v.received_at => {}
                Some(old) => {
                    let since = if old.value.status == v.value.status { old.since.or(v.since) } else { v.since };
                    self.gateways.insert(k, Latest { since, ..v });
                }
                None => {
                    self.gateways.insert(k, v);
                }
            }
        }
        // A branch whose devices arrive in full (live) is counted from them again.
        for (b, _) in newer.devices.keys() {
            self.device_counts.remove(b);
        }
        self.device_counts.extend(newer.device_counts);
        for (k, v) in newer.devices {
            if self.devices.get(&k).is_none_or(|old| old.received_at <= v.received_at) {
                self.devices.insert(k, v);
            }
        }
        for (k, v) in newer.coverage {
            if self.coverage.get(&k).is_none_or(|old| old.received_at <= v.received_at) {
                self.coverage.insert(k, v);
            }
        }
    }
}
