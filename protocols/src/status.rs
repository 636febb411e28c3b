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

/// Retained on `{p}/{b}/devices/{id}`: the latest health of one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceHealth {
    pub schema: String,
    pub branch: BranchId,
    pub device: DeviceRef,
    /// `online`, `offline`, `auth-failed`, `stream-down`, `frozen`, `flapping`, `maintenance`,
    /// `unknown` (not yet probed).
    pub state: String,
    #[serde(with = "rfc3339_ms")]
    pub since: Timestamp,
    #[serde(with = "rfc3339_ms")]
    pub updated_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_ms: Option<i64>,
}
