//! The branch site file, defined once: the gateway reads it with these types, the simulator
//! writes it with the same types, so a field added here is in both (a serialising mirror in
//! the simulator had already drifted from what the gateway read).
//!
//! - [`model`]: the serde types of the file ([`SiteConfig`] and its sections), read and
//!   written; [`SiteConfig::load`] reads and checks a file.
//! - [`validate`]: every check types cannot express, each problem a [`Diagnostic`].
//! - [`typed`]: the checked file as the gateway's engine runs on it ([`Site`]: typed ids,
//!   resolved references) — parse, don't validate.
//! - [`diagnostic`]: the one problem type for files people write (site files, scenarios,
//!   Modbus profiles): file, line (from the TOML parser's spans), field, message and fix, in
//!   English and Chinese.
//! - [`picture`]: the picture-check values of the file (thresholds, night hours, resolutions).
//!
//! A library: it never prints; the binaries render diagnostics in their reader's language.

// Data here comes from files people write: no unwrap or expect outside tests (a test's panic is
// its failure).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod diagnostic;
pub mod model;
pub mod picture;
pub mod typed;
pub mod validate;

pub use diagnostic::{Diagnostic, Locator};
pub use model::*;
pub use typed::{AlarmZone, Camera, Door, Panel, Site, Zone};
pub use validate::{ProfileResolver, split_host_port};
