//! The branch security gateway as a library: the binary (`branch-gateway`) is a thin CLI
//! over this, and the demo and end-to-end tests embed it.
//!
//! The pipeline, one direction, no back-edges (see ARCHITECTURE.md):
//! [`pollers`] (sources) → [`health`] (state machines, linkage, coverage) → [`outbox`]
//! (durable sled FIFO) → [`uplink`] (MQTT to head office).

// Data here comes from devices, networks, files, databases and users: no unwrap or expect
// outside tests (a test's panic is its failure).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod commission;
pub mod config;
pub mod coverage;
pub mod discover;
pub mod events;
pub mod health;
pub mod linkage;
pub mod messages;
pub mod metrics;
pub mod mqtt;
pub mod outbox;
pub mod picture;
pub mod pollers;
pub mod service;
pub mod site;
pub mod snapshots;
pub mod uplink;
