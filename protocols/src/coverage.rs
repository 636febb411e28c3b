//! The coverage report (`branch-coverage/1`), retained on `{p}/{b}/coverage`: which required
//! zones are watched by enough live cameras right now.

use serde::{Deserialize, Serialize};

use crate::ids::{BranchId, DeviceId, ZoneId};
use crate::time::{Timestamp, rfc3339_ms, rfc3339_ms_opt};

pub const COVERAGE_SCHEMA: &str = "branch-coverage/1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageReport {
    pub schema: String,
    pub branch: BranchId,
    #[serde(with = "rfc3339_ms")]
    pub at: Timestamp,
    pub totals: CoverageTotals,
    pub zones: Vec<ZoneCoverage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageTotals {
    pub cameras_configured: u32,
    pub cameras_online: u32,
    pub cameras_live_video: u32,
    pub required_zones: u32,
    pub required_zones_uncovered: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneCoverage {
    pub id: ZoneId,
    pub name: String,
    pub required: bool,
    pub min_live_cameras: u32,
    pub cameras: Vec<DeviceId>,
    pub cameras_online: u32,
    pub cameras_live_video: u32,
    pub covered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339_ms_opt")]
    pub uncovered_since: Option<Timestamp>,
}

impl CoverageReport {
    /// Names of required zones that are not covered right now.
    pub fn uncovered(&self) -> impl Iterator<Item = &ZoneCoverage> {
        self.zones.iter().filter(|z| z.required && !z.covered)
    }
}
