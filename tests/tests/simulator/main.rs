//! The device simulator's end-to-end tests: `device-sim` on real sockets, its scenarios, control API and emitted site files.
//!
//! One test binary per part of the product (the shape of ripgrep's `tests/`): each file here is a
//! module, so the binaries the tests drive (`harness::bin`) are linked once, not once per file.

mod sim_common;
mod sim_control;
mod sim_emit_config;
mod sim_i18n;
mod sim_ports;
mod sim_scenarios;
mod sim_timeline_e2e;
mod site_model;
