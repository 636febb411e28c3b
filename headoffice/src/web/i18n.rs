//! The console's two languages. Every text is written at its place of use in both, as
//! `l.t("English", "中文")`, so a page cannot lack a translation; times are shown in the
//! console's configured UTC offset (China Standard Time by default).

use chrono::FixedOffset;
use protocols::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn t(self, en: &'static str, zh: &'static str) -> &'static str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }

    /// The BCP 47 tag (the page's `lang`, the stored preference).
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        let s = s.trim().to_ascii_lowercase();
        if s == "zh" || s.starts_with("zh-") || s.starts_with("zh_") {
            Some(Lang::Zh)
        } else if s == "en" || s.starts_with("en-") || s.starts_with("en_") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The first language of an `Accept-Language` header (by q-value) that the console has;
    /// Chinese when there is none: the console's users are Chinese bank staff.
    pub fn from_accept_language(header: Option<&str>) -> Lang {
        let Some(h) = header else { return Lang::Zh };
        let mut best: Option<(f32, usize, Lang)> = None;
        for (i, part) in h.split(',').enumerate() {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or_default();
            let q = it
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|v| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(l) = Lang::parse(tag)
                && q > 0.0
                && best.is_none_or(|(bq, bi, _)| q > bq || (q == bq && i < bi))
            {
                best = Some((q, i, l));
            }
        }
        best.map_or(Lang::Zh, |(_, _, l)| l)
    }

    /// "12 min", "3 h 5 min", "2 d 4 h" (`12 分钟`, …): how long something has lasted.
    pub fn duration(self, secs: i64) -> String {
        let secs = secs.max(0);
        let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
        let (ud, uh, um, us) = match self {
            Lang::Zh => ("天", "小时", "分钟", "秒"),
            Lang::En => (" d", " h", " min", " s"),
        };
        let sp = if self == Lang::Zh { "" } else { " " };
        if d > 0 {
            format!("{d}{ud}{sp}{h}{uh}")
        } else if h > 0 {
            format!("{h}{uh}{sp}{m}{um}")
        } else if m > 0 {
            format!("{m}{um}")
        } else {
            format!("{secs}{us}")
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_language_we_have() {
        assert_eq!(Lang::from_accept_language(None), Lang::Zh);
        assert_eq!(Lang::from_accept_language(Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("fr-FR,zh-CN;q=0.8,en;q=0.7")), Lang::Zh);
        assert_eq!(Lang::from_accept_language(Some("zh;q=0.5, en;q=0.9")), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("de")), Lang::Zh);
        assert_eq!(Lang::from_accept_language(Some("en;q=0")), Lang::Zh);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(Lang::En.duration(42), "42 s");
        assert_eq!(Lang::En.duration(3 * 3600 + 5 * 60), "3 h 5 min");
        assert_eq!(Lang::Zh.duration(2 * 86_400 + 4 * 3600), "2天4小时");
        assert_eq!(Lang::Zh.duration(12 * 60), "12分钟");
    }
}
