//! Head office's view of every branch, built from the MQTT data alone.
//!
//! The bank's periodic security assessment asks, for hundreds of branches at once: were the
//! required areas watched by a live camera, how available were the cameras, when an alarm fired
//! was its camera up, and when was a branch's gateway offline. Branch gateways publish exactly
//! the facts needed (see `docs/CONTRACT.md`); this crate turns them into answers.
//!
//! The shape is a small pipeline, one direction only:
//!
//! ```text
//! mqtt (connect, backoff) ─▶ listen ─▶ ingest (topic + payload → typed message, or why not)
//!                                   └▶ db::Store (SQLite or PostgreSQL; one transaction per batch,
//!                                      acknowledged to the broker only after it commits)
//! db::Store ─▶ bounded queries ─▶ report / coverage / gaps (pure) ─▶ render ─▶ `hq` prints
//! ```
//!
//! Only the binary (`main.rs`) prints; the library logs through `tracing` and returns values.

// Data here comes from devices, networks, files, databases and users: no unwrap or expect
// outside tests (a test's panic is its failure).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod coverage;
pub mod db;
pub mod directory;
pub mod gaps;
pub mod ingest;
pub mod listen;
pub mod mqtt;
pub mod notify;
pub mod orders;
pub mod records;
pub mod render;
pub mod report;
pub mod timespec;
pub mod web;
