//! Picture checks: is a camera that answers and streams actually watching?
//!
//! On the frozen-check cadence the snapshot is read once more by [`jpeg::luma_stats`] (luma
//! block statistics at 1/8 scale, never a pixel buffer) and judged:
//!
//! - **dark**: mean brightness below `dark_below` — except, for a camera without IR
//!   illumination (`ir = false`), within its `night_hours`, when darkness is expected;
//! - **obstructed**: the picture is nearly uniform (the 8×8 block means vary by less than
//!   `uniform_below`): a covered or sprayed lens, a camera turned to a wall;
//! - **defocused**: sharpness (fine detail relative to coarse structure, see
//!   [`jpeg::LumaStats::sharpness`]) below `defocus_ratio` × the camera's own baseline, learned
//!   as the median of its first [`BASELINE_PICTURES`] healthy pictures (or set in the site
//!   file), so each scene is judged against itself.
//!
//! How the default thresholds were chosen is in docs/CONFIG.md (measured on real photographs
//! and the simulator's scenes: tests/fixtures/pictures).

pub mod jpeg;

use std::time::Duration;

pub use jpeg::{JpegError, LumaStats, luma_stats};
// The values the site file gives (thresholds, night hours, resolutions) live with the site
// model; the judge below runs on them.
pub use ::site::picture::{
    DEFAULT_DARK_BELOW, DEFAULT_DEFOCUS_RATIO, DEFAULT_UNIFORM_BELOW, NightHours, PictureSettings, Resolution,
};

/// Healthy pictures whose median sharpness becomes a camera's baseline.
pub const BASELINE_PICTURES: usize = 5;
/// Weight of each new healthy picture in the baseline once learned: the baseline follows slow
/// changes of the scene (seasons, furniture) but not a sudden loss of focus, which is judged
/// before it could be averaged in.
const BASELINE_WEIGHT: f32 = 1.0 / 32.0;

/// The minute of the local day now (the gateway's time zone: the branch's).
pub fn local_minute_now() -> u16 {
    use chrono::Timelike as _;
    let now = chrono::Local::now();
    u16::try_from(now.hour() * 60 + now.minute()).unwrap_or(0)
}

/// What a picture shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Good,
    /// Dark, and darkness is expected now (night, no IR): not a fault, not learned from.
    ExpectedDark,
    Dark,
    Obstructed,
    Defocused,
}

impl Verdict {
    pub fn is_fault(self) -> bool {
        matches!(self, Verdict::Dark | Verdict::Obstructed | Verdict::Defocused)
    }

    /// The status code published for it.
    pub fn status(self) -> Option<&'static str> {
        match self {
            Verdict::Dark => Some("dark"),
            Verdict::Obstructed => Some("obstructed"),
            Verdict::Defocused => Some("defocused"),
            Verdict::Good | Verdict::ExpectedDark => None,
        }
    }
}

/// A camera's picture judge: its settings and what it learned of its scene.
#[derive(Debug, Clone)]
pub struct Judge {
    settings: PictureSettings,
    baseline: Option<f32>,
    learning: Vec<f32>,
}

impl Judge {
    pub fn new(settings: PictureSettings) -> Judge {
        Judge { baseline: settings.sharpness_baseline, settings, learning: Vec::new() }
    }

    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// The sharpness baseline, once known.
    pub fn baseline(&self) -> Option<f32> {
        self.baseline
    }

    /// Judges one picture; `local_minute` is the minute of the local day it was taken.
    pub fn judge(&mut self, s: &LumaStats, local_minute: u16) -> (Verdict, String) {
        let st = &self.settings;
        if s.mean < st.dark_below {
            let night = !st.ir && st.night_hours.is_some_and(|n| n.contains(local_minute));
            if night {
                return (Verdict::ExpectedDark, String::new());
            }
            let why = format!("picture dark: mean brightness {:.0} below {:.0} (of 255)", s.mean, st.dark_below);
            return (Verdict::Dark, why);
        }
        if s.block_stdev < st.uniform_below {
            let why = format!(
                "picture nearly uniform (lens covered or obstructed?): variation {:.1} below {:.1}",
                s.block_stdev, st.uniform_below
            );
            return (Verdict::Obstructed, why);
        }
        let sharpness = s.sharpness();
        let Some(base) = self.baseline else {
            self.learning.push(sharpness);
            if self.learning.len() >= BASELINE_PICTURES {
                self.learning.sort_by(f32::total_cmp);
                self.baseline = self.learning.get(self.learning.len() / 2).copied();
                self.learning = Vec::new();
            }
            return (Verdict::Good, String::new());
        };
        if sharpness < base * st.defocus_ratio {
            let why = format!(
                "picture out of focus: sharpness {sharpness:.3} below {:.0} % of this camera's {base:.3}",
                st.defocus_ratio * 100.0
            );
            return (Verdict::Defocused, why);
        }
        if st.sharpness_baseline.is_none() {
            self.baseline = Some(base + (sharpness - base) * BASELINE_WEIGHT);
        }
        (Verdict::Good, String::new())
    }
}

/// How many picture checks may run at once in the whole process: each holds one compressed
/// picture (up to `snapshot_max_bytes`) while it is read, so a fleet's checks must not pile up.
pub const CHECKS_AT_ONCE: usize = 2;

/// The process-wide check slots.
pub fn check_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(CHECKS_AT_ONCE))
}

/// Longest a probe waits for a check slot before it checks its picture's hash only.
pub const SLOT_WAIT: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests;
