//! Retained state topics: the gateway's own status and each device's latest health.

use serde::{Deserialize, Serialize};

use crate::alert::DeviceRef;
use crate::ids::BranchId;
use crate::time::{Timestamp, rfc3339_ms, rfc3339_ms_opt};

pub const GATEWAY_STATUS_SCHEMA: &str = "branch-gateway-status/1";
pub const DEVICE_HEALTH_SCHEMA: &str = "branch-device/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayState {
    Online,
    Offline,
}

/// Retained on `{p}/{b}/gateway`. `online` on connect; `offline` as the MQTT Will
/// (`reason: connection-lost`, no `at`: the broker sends it when it notices) and on a clean
/// shutdown (`reason: shutdown`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayStatus {
    pub schema: String,
    pub branch: BranchId,
    pub status: GatewayState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339_ms_opt")]
    pub at: Option<Timestamp>,
    pub version: String,
}

/// The device health `state`s a gateway publishes (an open vocabulary: head office treats any
/// other value as not healthy). `docs/schemas/branch-device-1.json` lists the same.
pub const DEVICE_STATES: [&str; 13] = [
    "online",
    "offline",
    "auth-failed",
    "stream-down",
    "frozen",
    "signal-lost",
    "obstructed",
    "dark",
    "defocused",
    "flapping",
    "hung",
    "maintenance",
    "unknown",
];

/// Retained on `{p}/{b}/devices/{id}`: the latest health of one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceHealth {
    pub schema: String,
    pub branch: BranchId,
    pub device: DeviceRef,
    /// One of [`DEVICE_STATES`]: `online`, `offline` (not reachable: see `status`),
    /// `auth-failed`, `stream-down`, `frozen`, `signal-lost`, `obstructed` (a nearly uniform
    /// picture: lens covered), `dark`, `defocused`, `flapping`, `hung` (a panel whose heartbeat
    /// stopped), `maintenance`, `unknown` (not yet proven).
    pub state: String,
    /// The precise code behind a state that is not healthy, as in the alert that reported it: a
    /// camera's `unreachable`, `tcp-only`, `auth-failed`, `stream-down`, `frozen`, `signal-lost`,
    /// `obstructed`, `dark`, `defocused` (for `flapping`: its last loss), a panel's `unreachable`, `modbus-exception`,
    /// `protocol-error`, `heartbeat-stopped`. Absent when `online`, `unknown` or `maintenance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(with = "rfc3339_ms")]
    pub since: Timestamp,
    #[serde(with = "rfc3339_ms")]
    pub updated_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_ms: Option<i64>,
    /// A camera's main-stream resolution as its encoder configuration says, `WIDTHxHEIGHT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// A camera's main-stream encoding: `H264`, `H265`, `JPEG`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

impl DeviceHealth {
    /// The most precise code for what is wrong: `status` for an `offline` device (e.g.
    /// `unreachable`), else the `state` itself.
    pub fn detail(&self) -> &str {
        match (&*self.state, &self.status) {
            ("offline", Some(s)) => s,
            (state, _) => state,
        }
    }
}
