//! Head office's end-to-end tests: `hq` and its web console against real branches, mosquitto, PostgreSQL and headless Chromium.
//!
//! One test binary per part of the product (the shape of ripgrep's `tests/`): each file here is a
//! module, so the binaries the tests drive (`harness::bin`) are linked once, not once per file.

mod browser_harness;
mod console_browser;
mod console_config;
mod console_security;
mod hq_common;
mod hq_faults;
mod hq_listen;
mod hq_report;
mod hq_shared;
mod hq_store;
mod hq_three_branches;
mod notify_e2e;
mod orders_e2e;
