//! The scenarios, one module each. Every scenario returns its rows, or an error when the
//! harness itself broke (the gateway never came up, the simulator died…); a budget miss is
//! never an error — it is a FAIL row.

pub mod alarm;
pub mod camera_loss;
pub mod cold_start;
pub mod console;
pub mod hq;
pub mod outbox;
pub mod peers;
pub mod pictures;
pub mod scale;

use std::path::PathBuf;
use std::time::Duration;

use harness::Mosquitto;

/// What every scenario shares.
pub struct Ctx {
    pub quick: bool,
    /// `--stress`: the alarm scenario runs beside a CPU and disk load, the gateway at this nice.
    pub stress: Option<i32>,
    /// The release-built `branch-gateway`.
    pub gateway_bin: PathBuf,
    /// The release-built head-office `hq`.
    pub hq_bin: PathBuf,
    /// This binary (for `sim-serve` and `outbox-worker` children).
    pub self_bin: PathBuf,
    pub broker: Mosquitto,
    /// Scratch space (site files, outboxes, logs); removed at exit.
    pub work: PathBuf,
}

impl Ctx {
    /// A fresh directory for one run of one scenario.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    /// `full` in a full run, `quick` with `--quick`.
    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick { quick } else { full }
    }
}

/// A uniformly random pause in `[0, max)`: decorrelates a fault from the poll schedule.
pub async fn random_pause(max: Duration) {
    let ms = max.as_millis().max(1) as u64;
    tokio::time::sleep(Duration::from_millis(rand::random_range(0..ms))).await;
}

/// Milliseconds as f64.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
