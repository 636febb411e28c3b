//! Plays a timeline: each step at its offset from one start instant, in the scenario's order.
//!
//! Deadlines are absolute (start + offset ÷ speed), never "sleep the gap since the previous
//! step", so a slow step does not push every later step back and two runs of the same file
//! line up with each other and with the gateway's alerts.

use std::time::{Duration, Instant};

use super::Step;
use super::live::{LiveBranch, Origin};

/// Applies `steps` (sorted, as [`super::Scenario::timeline`] is) against `branch`, step `k`
/// at `start + steps[k].at / speed`. Returns how many steps were refused (each is logged
/// and journaled with its error; play goes on).
pub async fn play(branch: &LiveBranch, steps: &[Step], speed: f64, start: Instant) -> usize {
    let speed = if speed.is_finite() && speed > 0.0 { speed } else { 1.0 };
    let mut refused = 0;
    for step in steps {
        let offset = Duration::try_from_secs_f64(step.at.as_secs_f64() / speed).unwrap_or(Duration::MAX);
        if let Some(deadline) = start.checked_add(offset) {
            tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
        }
        if branch.apply(Origin::of(step), &step.action).is_err() {
            refused += 1;
        }
    }
    refused
}
