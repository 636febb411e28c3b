//! The picture-check values of the site file: thresholds ([`PictureSettings`]), night hours
//! and resolutions, parsed from what `[health.picture]` and a camera's `picture` say. The
//! gateway's picture judge (gateway/src/picture/) runs on them.

/// Default `dark_below`: mean luma (0–255).
pub const DEFAULT_DARK_BELOW: f32 = 25.0;
/// Default `uniform_below`: standard deviation of the block means (0–255).
pub const DEFAULT_UNIFORM_BELOW: f32 = 8.0;
/// Default `defocus_ratio`.
pub const DEFAULT_DEFOCUS_RATIO: f32 = 0.6;

/// A camera's thresholds, resolved from its own settings, `[health.picture]` and the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct PictureSettings {
    pub enabled: bool,
    pub dark_below: f32,
    pub uniform_below: f32,
    pub defocus_ratio: f32,
    /// A fixed sharpness baseline; none: learned.
    pub sharpness_baseline: Option<f32>,
    /// Whether the camera lights its scene itself at night (IR); without IR, darkness within
    /// `night_hours` is expected.
    pub ir: bool,
    pub night_hours: Option<NightHours>,
}

impl Default for PictureSettings {
    fn default() -> Self {
        PictureSettings {
            enabled: true,
            dark_below: DEFAULT_DARK_BELOW,
            uniform_below: DEFAULT_UNIFORM_BELOW,
            defocus_ratio: DEFAULT_DEFOCUS_RATIO,
            sharpness_baseline: None,
            ir: true,
            night_hours: None,
        }
    }
}

/// Local hours `from`–`to` (minutes after midnight), possibly across midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NightHours {
    pub from: u16,
    pub to: u16,
}

impl NightHours {
    /// Parses `HH:MM-HH:MM`.
    pub fn parse(s: &str) -> Option<NightHours> {
        let (a, b) = s.split_once('-')?;
        Some(NightHours { from: minutes(a)?, to: minutes(b)? })
    }

    /// Whether `minute` (after local midnight) falls within.
    pub fn contains(&self, minute: u16) -> bool {
        if self.from <= self.to {
            (self.from..self.to).contains(&minute)
        } else {
            minute >= self.from || minute < self.to
        }
    }
}

impl std::fmt::Display for NightHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}-{:02}:{:02}", self.from / 60, self.from % 60, self.to / 60, self.to % 60)
    }
}

fn minutes(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// A main-stream resolution, e.g. 1920×1080.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Resolution {
    pub width: u32,
    pub height: u32,
}

impl Resolution {
    /// The default minimum: 720p, the least a bank's "HD camera" means.
    pub const HD: Resolution = Resolution { width: 1280, height: 720 };

    /// Parses `1280x720` (or `1280×720`).
    pub fn parse(s: &str) -> Option<Resolution> {
        let (w, h) = s.trim().split_once(['x', 'X', '×'])?;
        let r = Resolution { width: w.trim().parse().ok()?, height: h.trim().parse().ok()? };
        (r.width > 0 && r.height > 0).then_some(r)
    }

    /// Whether it meets `min`: both sides at least as large, either orientation (a corridor
    /// camera may stream 1080×1920).
    pub fn meets(&self, min: Resolution) -> bool {
        let (a, b) = (self.width.max(self.height), self.width.min(self.height));
        let (ma, mb) = (min.width.max(min.height), min.width.min(min.height));
        a >= ma && b >= mb
    }
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}
