//! The workspace's one translation mechanism.
//!
//! Our users are Chinese bank staff, so every text a person reads is written in English and in
//! Simplified Chinese at its place of use: [`tr!`] formats one of the two, [`text!`] keeps both
//! (for messages made before the reader's language is known, such as a configuration problem),
//! and [`Lang::t`] picks between two static strings. A message cannot lack its translation: the
//! macros take both or do not compile, and `tests/tests/tidy.rs` checks that every Chinese text
//! is Chinese and names the same placeholders as its English one.
//!
//! Field names, codes, identifiers and exit statuses are never translated: programs and head
//! office's software read them.
//!
//! Why not fluent or gettext: two languages, fixed at build time, checked by the compiler where
//! the text is used; a catalogue in separate files would let the two drift apart unseen.

// Data here comes from devices, networks, files, databases and users: no unwrap or expect
// outside tests (a test's panic is its failure).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

/// The language of this process's log lines meant for operators: set once by a binary's `main`
/// (from `--lang` or the locale), read where a log line carries advice.
static CURRENT: AtomicU8 = AtomicU8::new(0);

/// A language a person reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    #[default]
    En,
    /// Simplified Chinese (zh-CN).
    Zh,
}

impl Lang {
    /// `en` or `zh` as the caller's language.
    pub fn t(self, en: &'static str, zh: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Zh => zh,
        }
    }

    /// The BCP 47 tag: `en`, `zh-CN`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// `en`, `en-US`, `zh`, `zh-CN`, `zh_CN.UTF-8`… (case-insensitive); `None` for others.
    pub fn parse(s: &str) -> Option<Lang> {
        let s = s.trim().to_ascii_lowercase();
        let base = s.split(['-', '_', '.', '@']).next().unwrap_or_default();
        match base {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language of the environment's messages locale, as POSIX orders it: the first set of
    /// `LC_ALL`, `LC_MESSAGES`, `LANG`. Chinese when it is `zh_*`, English otherwise (also for
    /// `C` and `POSIX`).
    pub fn from_env() -> Lang {
        Self::from_locale_vars(|k| std::env::var(k).ok())
    }

    /// [`Lang::from_env`] over any source of variables (tests).
    pub fn from_locale_vars(get: impl Fn(&str) -> Option<String>) -> Lang {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|k| get(k))
            .find(|v| !v.trim().is_empty())
            .and_then(|v| Lang::parse(&v))
            .unwrap_or(Lang::En)
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

    /// Makes `self` the process's language for operators' log lines ([`Lang::current`]).
    pub fn set_current(self) {
        CURRENT.store(self as u8, Ordering::Relaxed);
    }

    /// The process's language for operators' log lines: English unless a binary set another.
    pub fn current() -> Lang {
        if CURRENT.load(Ordering::Relaxed) == Lang::Zh as u8 { Lang::Zh } else { Lang::En }
    }

    /// A `--lang` flag if given, else the locale.
    pub fn choose(flag: Option<Lang>) -> Lang {
        flag.unwrap_or_else(Lang::from_env)
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The value parser of a `--lang` flag (`en` or `zh-CN`).
pub fn parse_flag(s: &str) -> Result<Lang, String> {
    Lang::parse(s).ok_or_else(|| format!("{s:?} is not a language we have: use en or zh-CN (只支持 en 与 zh-CN)"))
}

impl serde::Serialize for Lang {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for Lang {
    /// Exactly `en` or `zh-CN`, as the configuration files write them.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "en" => Ok(Lang::En),
            "zh-CN" => Ok(Lang::Zh),
            other => Err(serde::de::Error::unknown_variant(other, &["en", "zh-CN"])),
        }
    }
}

/// A text in both languages, for messages made before anyone knows who reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub en: Cow<'static, str>,
    pub zh: Cow<'static, str>,
}

impl Text {
    pub fn new(en: impl Into<Cow<'static, str>>, zh: impl Into<Cow<'static, str>>) -> Text {
        Text { en: en.into(), zh: zh.into() }
    }

    /// The same text in both languages: a name, a path, an error from a library we cannot
    /// translate.
    pub fn verbatim(s: impl Into<Cow<'static, str>>) -> Text {
        let s = s.into();
        Text { en: s.clone(), zh: s }
    }

    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.en,
            Lang::Zh => &self.zh,
        }
    }
}

/// English, for logs and `Display`.
impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.en)
    }
}

/// Formats the text of `lang`: `tr!(lang, "{n} camera(s)", "{n} 台摄像机")`. Arguments as for
/// `format!` (captured names or trailing arguments, used by both texts).
#[macro_export]
macro_rules! tr {
    ($lang:expr, $en:literal, $zh:literal $(, $($arg:tt)*)?) => {
        match $lang {
            $crate::Lang::En => ::std::format!($en $(, $($arg)*)?),
            $crate::Lang::Zh => ::std::format!($zh $(, $($arg)*)?),
        }
    };
}

/// Formats both texts into a [`Text`]: `text!("unknown zone {z:?}", "未知防区 {z:?}")`.
#[macro_export]
macro_rules! text {
    ($en:literal, $zh:literal $(, $($arg:tt)*)?) => {
        $crate::Text::new(::std::format!($en $(, $($arg)*)?), ::std::format!($zh $(, $($arg)*)?))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_variables_in_posix_order() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(Lang::from_locale_vars(env(&[("LANG", "zh_CN.UTF-8")])), Lang::Zh);
        assert_eq!(Lang::from_locale_vars(env(&[("LANG", "zh_CN.UTF-8"), ("LC_ALL", "C")])), Lang::En);
        assert_eq!(Lang::from_locale_vars(env(&[("LANG", "C"), ("LC_MESSAGES", "zh_TW")])), Lang::Zh);
        assert_eq!(Lang::from_locale_vars(env(&[("LC_ALL", ""), ("LANG", "zh_CN")])), Lang::Zh);
        assert_eq!(Lang::from_locale_vars(env(&[])), Lang::En);
        assert_eq!(Lang::from_locale_vars(env(&[("LANG", "de_DE.UTF-8")])), Lang::En);
    }

    #[test]
    fn flags_and_config_values() {
        assert_eq!(parse_flag("zh-CN"), Ok(Lang::Zh));
        assert_eq!(parse_flag("EN"), Ok(Lang::En));
        assert!(parse_flag("fr").is_err());
        assert_eq!(serde_json::from_str::<Lang>("\"zh-CN\"").ok(), Some(Lang::Zh));
        assert!(serde_json::from_str::<Lang>("\"zh\"").is_err(), "config files write zh-CN exactly");
        assert_eq!(serde_json::to_string(&Lang::Zh).ok().as_deref(), Some("\"zh-CN\""));
    }

    #[test]
    fn macros_format_with_captured_and_trailing_arguments() {
        let n = 3;
        assert_eq!(tr!(Lang::Zh, "{n} camera(s)", "{n} 台摄像机"), "3 台摄像机");
        assert_eq!(tr!(Lang::En, "{} of {}", "{}/{}", 1, 2), "1 of 2");
        let t = text!("unknown zone {z:?}", "未知防区 {z:?}", z = "vault");
        assert_eq!(t.get(Lang::Zh), "未知防区 \"vault\"");
        assert_eq!(t.to_string(), "unknown zone \"vault\"");
    }

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
