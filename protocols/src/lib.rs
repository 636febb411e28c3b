//! Wire formats and protocol helpers shared by every binary of the branch security gateway.
//!
//! This crate is the contract between the edge (`gateway`), the simulator (`device-sim`) and
//! head office. It holds types and pure functions only: no I/O, no global state, no logging.
//! Anything that changes a payload or a topic here changes what head office sees — keep the
//! JSON Schemas in `docs/schemas/` in step (a test checks them).

// Data here comes from devices, networks, files, databases and users: no unwrap or expect
// outside tests (a test's panic is its failure).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod alert;
pub mod coverage;
pub mod ids;
pub mod modbus;
pub mod onvif;
pub mod packed;
pub mod status;
pub mod time;
pub mod topics;

pub use alert::{
    AlarmLinkDetails, Alert, AlertBody, AlertKind, AlertState, CameraOfflineDetails, DeviceFaultDetails, DeviceRef,
    DeviceType, DoorState, DoorStatusDetails, LinkedCamera, Severity, Snapshot,
};
pub use coverage::{CoverageReport, CoverageTotals, ZoneCoverage};
pub use ids::{BranchId, DeviceId, IdError, Seq, ZoneId};
pub use status::{DeviceHealth, GatewayState, GatewayStatus};
pub use topics::Topics;
