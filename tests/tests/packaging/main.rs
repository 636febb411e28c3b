//! The packages' tests: the .debs that `scripts/package` builds, installed and run.
//!
//! One test binary per part of the product (the shape of ripgrep's `tests/`): each file here is a
//! module, so the binaries the tests drive (`harness::bin`) are linked once, not once per file.

mod packaging;
mod packaging_arm64;
mod packaging_common;
mod packaging_hq;
mod packaging_sim;
#[path = "../simulator/sim_common.rs"]
mod sim_common;
