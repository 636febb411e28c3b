//! The device simulator: a bank branch's cameras and panels on real sockets, with faults on
//! demand, so that installers can commission a gateway and tests can exercise it.
//!
//! [`camera`] serves ONVIF cameras (Device, Media, Events over SOAP; RTSP; snapshots;
//! WS-Discovery); [`panel`] serves Modbus TCP alarm and access panels laid out by
//! register-map profiles. Both are libraries so the demo and tests can embed them; the
//! `device-sim` binary is a CLI over them.

pub mod camera;
pub mod panel;
