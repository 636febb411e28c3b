//! What head office keeps: deduplicated alerts and the *changes* of each piece of retained state
//! (gateway status, device health, zone coverage), each with the time it happened.
//!
//! Retained topics carry only the latest value and are re-sent on every reconnect, so storing
//! every message would store mostly repeats; storing changes keeps the history small and is
//! exactly what the report integrates over. Times come from the payloads (`at`, `since`,
//! `occurred_at`, `uncovered_since`), falling back to the receipt time when a payload has none
//! (the gateway's MQTT Will carries no `at`).
//!
//! [`History`] is the read side: the records of one or more stores (several `hq listen`
//! instances splitting a shared subscription each see part of the stream), merged so the
//! report does not care where a record came from.

use std::collections::{BTreeMap, HashSet};

use protocols::status::GatewayState;
use protocols::time::{Timestamp, rfc3339_ms, rfc3339_ms_opt};
use protocols::{Alert, BranchId, CoverageReport, DeviceHealth, DeviceId, DeviceType, GatewayStatus, ZoneId};
use serde::{Deserialize, Serialize};

/// An alert as stored: the payload exactly as received, and when it was received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    #[serde(with = "rfc3339_ms")]
    pub received_at: Timestamp,
    pub alert: Alert,
}

/// The gateway of a branch went online or offline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayChange {
    pub branch: BranchId,
    pub status: GatewayState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The payload's `at`, or the receipt time (the MQTT Will has no `at`).
    #[serde(with = "rfc3339_ms")]
    pub at: Timestamp,
    #[serde(with = "rfc3339_ms")]
    pub received_at: Timestamp,
}

/// A device's health state changed (`online`, `offline`, `frozen`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceChange {
    pub branch: BranchId,
    pub device: DeviceId,
    pub device_type: DeviceType,
    pub name: String,
    pub state: String,
    /// The payload's `since`.
    #[serde(with = "rfc3339_ms")]
    pub at: Timestamp,
    #[serde(with = "rfc3339_ms")]
    pub received_at: Timestamp,
}

/// A zone became covered or uncovered (from two successive coverage reports).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneChange {
    pub branch: BranchId,
    pub zone: ZoneId,
    pub name: String,
    pub required: bool,
    pub covered: bool,
    /// `uncovered_since` when the zone became uncovered, else the report's `at`.
    #[serde(with = "rfc3339_ms")]
    pub at: Timestamp,
    #[serde(with = "rfc3339_ms")]
    pub received_at: Timestamp,
}

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

/// The latest retained state of every branch: what `hq coverage` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub gateways: BTreeMap<BranchId, Latest<GatewayStatus>>,
    pub devices: BTreeMap<(BranchId, DeviceId), Latest<DeviceHealth>>,
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

/// Everything the report needs, from one or more stores.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub alerts: Vec<AlertRecord>,
    pub gateway: Vec<GatewayChange>,
    pub devices: Vec<DeviceChange>,
    pub zones: Vec<ZoneChange>,
    pub latest: Snapshot,
}

impl History {
    /// Adds another store's records. Call [`History::normalize`] after the last one.
    pub fn extend(&mut self, other: History) {
        self.alerts.extend(other.alerts);
        self.gateway.extend(other.gateway);
        self.devices.extend(other.devices);
        self.zones.extend(other.zones);
        self.latest.merge(other.latest);
    }

    /// Dedupes alerts on (branch, id) (the earliest receipt wins), orders every list by time,
    /// and drops state records that repeat the previous state of the same thing (two stores
    /// that each saw part of a stream each record their own "changes").
    pub fn normalize(&mut self) {
        self.alerts.sort_by_key(|a| a.received_at);
        let mut seen = HashSet::new();
        self.alerts.retain(|r| seen.insert((r.alert.branch.clone(), r.alert.id.clone())));
        self.alerts.sort_by(|a, b| {
            (&a.alert.branch, a.alert.occurred_at, a.alert.seq).cmp(&(
                &b.alert.branch,
                b.alert.occurred_at,
                b.alert.seq,
            ))
        });

        self.gateway.sort_by(|a, b| (&a.branch, a.at).cmp(&(&b.branch, b.at)));
        self.gateway.dedup_by(|later, earlier| later.branch == earlier.branch && later.status == earlier.status);

        self.devices.sort_by(|a, b| (&a.branch, &a.device, a.at).cmp(&(&b.branch, &b.device, b.at)));
        self.devices.dedup_by(|later, earlier| {
            later.branch == earlier.branch && later.device == earlier.device && later.state == earlier.state
        });

        self.zones.sort_by(|a, b| (&a.branch, &a.zone, a.at).cmp(&(&b.branch, &b.zone, b.at)));
        self.zones.dedup_by(|later, earlier| {
            later.branch == earlier.branch && later.zone == earlier.zone && later.covered == earlier.covered
        });
    }
}
