//! The console's two languages (the workspace's `i18n::Lang`: every text is written at its place
//! of use in both, as `l.t("English", "中文")`, so a page cannot lack a translation); times are shown in the
//! console's configured UTC offset (China Standard Time by default).

use chrono::FixedOffset;
use protocols::time::Timestamp;

pub use i18n::Lang;

/// Shows times in one offset, with the offset named once on each page.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub offset: FixedOffset,
}

impl Clock {
    /// China Standard Time (UTC+08:00), the default.
    pub fn china() -> Clock {
        use chrono::Offset;
        Clock { offset: FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| chrono::Utc.fix()) }
    }

    /// `2026-12-07 19:56:16`.
    pub fn show(&self, t: Timestamp) -> String {
        t.with_timezone(&self.offset).format("%Y-%m-%d %H:%M:%S").to_string()
    }

    /// `12-07 19:56`, for tight places (tiles).
    pub fn short(&self, t: Timestamp) -> String {
        t.with_timezone(&self.offset).format("%m-%d %H:%M").to_string()
    }

    /// `UTC+08:00`.
    pub fn zone(&self) -> String {
        format!("UTC{}", self.offset)
    }
}
