//! The device simulator: a bank branch's cameras and panels on real sockets, with faults on
//! demand, so that installers can commission a gateway and tests can exercise it.
//!
//! [`camera`] serves ONVIF cameras (Device, Media, Events over SOAP; RTSP; snapshots;
//! WS-Discovery); [`panel`] serves Modbus TCP alarm and access panels laid out by
//! register-map profiles. Both are libraries so the demo and tests can embed them; the
//! `device-sim` binary is a CLI over them. [`scenario`] reads and plays scenario files (a
//! branch plus a timeline of faults and events) and emits matching gateway configs;
//! [`control`] is the loopback HTTP/JSON API that drives a running branch.

// Data here comes from devices, networks, files, databases and users: no unwrap or expect
// outside tests (a test's panic is its failure).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod camera;
pub mod control;
pub mod panel;
pub mod scenario;
