//! The gateway's end-to-end and interop tests: the real `branch-gateway` against simulated devices over real sockets, mosquitto and independent peers.
//!
//! One test binary per part of the product (the shape of ripgrep's `tests/`): each file here is a
//! module, so the binaries the tests drive (`harness::bin`) are linked once, not once per file.

mod alarm_snapshots;
mod bench_stress;
mod camera_interop;
mod camera_malformed;
mod camera_poller;
mod camera_sim;
mod check_config;
mod commission;
mod demo;
mod device_states;
mod discovery_bad_input;
mod discovery_common;
mod discovery_loopback;
mod discovery_netns;
mod discovery_npm_onvif;
mod fault_matrix;
mod messages_zh;
mod metrics;
mod mqtt_ipv6;
mod panel_bad_input;
mod panel_budget;
mod panel_interop;
mod panel_poller;
mod schema_contract;
mod spine;
mod uplink_common;
mod uplink_e2e;
