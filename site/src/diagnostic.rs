//! One problem in a file a person wrote (a site file, a scenario, a Modbus profile): the file,
//! the line, the field, what is wrong and the fix, the last two in both languages.
//!
//! Lines come from the TOML parser's spans ([`Locator`]), never from searching the text for a
//! header: a file written with inline tables, dotted keys or odd spacing gets the same lines.

use std::fmt;
use std::path::{Path, PathBuf};

use i18n::{Lang, Text, tr};
use toml::de::{DeTable, DeValue};

/// One thing wrong with a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, when known (a text checked on its own has none).
    pub file: Option<PathBuf>,
    /// 1-based line of the field (or of the nearest enclosing entry that the file has).
    pub line: Option<usize>,
    /// Which entry, in words, where the field path alone would not say it to a person:
    /// `camera #2 (cam-02)`, `[gateway]`. Empty for a site file (the path says it).
    pub entry: String,
    /// The field as the file spells it: `camera[2].id`, `uplink.topic_prefix`, `fault` (never
    /// translated). Empty when an entry or the file as a whole is wrong.
    pub field: String,
    /// What is wrong.
    pub message: Text,
    /// How to put it right.
    pub fix: Text,
}

impl Diagnostic {
    /// A diagnostic on `field`, without file or line yet.
    pub fn new(field: impl Into<String>, message: Text, fix: Text) -> Diagnostic {
        Diagnostic { file: None, line: None, entry: String::new(), field: field.into(), message, fix }
    }

    pub fn with_file(mut self, file: impl Into<PathBuf>) -> Diagnostic {
        self.file = Some(file.into());
        self
    }

    pub fn with_line(mut self, line: Option<usize>) -> Diagnostic {
        self.line = line;
        self
    }

    pub fn with_entry(mut self, entry: impl Into<String>) -> Diagnostic {
        self.entry = entry.into();
        self
    }

    /// `FILE:LINE: ENTRY: FIELD: message (fix: fix)`, each location part only when known; in
    /// Chinese the location, entry and field stay as they are (the file says them so).
    pub fn render(&self, lang: Lang) -> String {
        let fix = self.fix.get(lang);
        tr!(lang, "{} (fix: {fix})", "{}（修正：{fix}）", self.render_brief(lang))
    }

    /// [`Diagnostic::render`] without the fix: where, and what is wrong (for a diagnostic
    /// quoted inside another one that gives its own fix).
    pub fn render_brief(&self, lang: Lang) -> String {
        let mut s = String::new();
        if let Some(f) = &self.file {
            s.push_str(&f.display().to_string());
            if let Some(l) = self.line {
                s.push_str(&format!(":{l}"));
            }
            s.push_str(": ");
        }
        for part in [&self.entry, &self.field] {
            if !part.is_empty() {
                s.push_str(part);
                s.push_str(": ");
            }
        }
        let s = s.trim_end_matches(": ").to_string();
        let message = self.message.get(lang);
        if s.is_empty() { message.to_string() } else { tr!(lang, "{s}: {message}", "{s}：{message}") }
    }

    /// One item of a list under a header that names the file: `FIELD: line N: message (fix:
    /// fix)`, the field and the line when known (`check-config` prints these, one per problem).
    pub fn render_item(&self, lang: Lang) -> String {
        let (message, fix) = (self.message.get(lang), self.fix.get(lang));
        let mut s = match self.line {
            Some(line) => tr!(lang, "line {line}: {message} (fix: {fix})", "第 {line} 行：{message}（修正：{fix}）"),
            None => tr!(lang, "{message} (fix: {fix})", "{message}（修正：{fix}）"),
        };
        if !self.field.is_empty() {
            s = tr!(lang, "{}: {s}", "{}：{s}", self.field);
        }
        s
    }
}

/// English, as [`Diagnostic::render`].
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(Lang::En))
    }
}

/// The 1-based line of byte `offset` in `src`.
pub fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes()[..offset.min(src.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// Finds the line of a field path (`camera[2].zones[0]`, `health.picture.dark_below`) in a
/// TOML text, from the parser's spans.
pub struct Locator<'s> {
    src: &'s str,
    doc: Option<DeTable<'s>>,
}

impl<'s> Locator<'s> {
    /// A text that does not parse locates nothing.
    pub fn new(src: &'s str) -> Locator<'s> {
        Locator { src, doc: DeTable::parse(src).ok().map(toml::Spanned::into_inner) }
    }

    /// The line of `path`'s value; when the file does not have it (a default, a missing
    /// section), the line of the nearest enclosing entry it does have; `None` if not even the
    /// first step is in the file.
    pub fn line(&self, path: &str) -> Option<usize> {
        self.offset(path).map(|o| line_of(self.src, o))
    }

    fn offset(&self, path: &str) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut found: Option<usize> = None;
        let mut table: Option<&DeTable<'_>> = Some(doc);
        let mut value: Option<&DeValue<'_>> = None;
        for step in path.split('.') {
            let (key, indices) = split_indices(step);
            let t = match (table, value) {
                (Some(t), _) => t,
                (None, Some(DeValue::Table(t))) => t,
                _ => break,
            };
            let Some(entry) = t.get(key) else { break };
            found = Some(entry.span().start);
            let mut v = entry.get_ref();
            let mut complete = true;
            for i in indices {
                match v {
                    DeValue::Array(items) => match items.get(i) {
                        Some(item) => {
                            found = Some(item.span().start);
                            v = item.get_ref();
                        }
                        None => {
                            complete = false;
                            break;
                        }
                    },
                    _ => {
                        complete = false;
                        break;
                    }
                }
            }
            if !complete {
                break;
            }
            table = None;
            value = Some(v);
        }
        found
    }
}

/// `camera[2]` → (`camera`, [2]); `linked_cameras` → (`linked_cameras`, []).
fn split_indices(step: &str) -> (&str, Vec<usize>) {
    let Some(open) = step.find('[') else { return (step, Vec::new()) };
    let indices = step[open..].split(['[', ']']).filter(|s| !s.is_empty()).map_while(|s| s.parse().ok()).collect();
    (&step[..open], indices)
}

/// Fills in the file, and the line of each diagnostic's field located in `src`.
pub fn locate(diagnostics: &mut [Diagnostic], file: Option<&Path>, src: &str) {
    let locator = Locator::new(src);
    for d in diagnostics {
        if d.line.is_none() {
            d.line = locator.line(&d.field);
        }
        if d.file.is_none() {
            d.file = file.map(Path::to_path_buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use i18n::text;

    const SRC: &str = "\
[branch]
id = \"b01\"
name = \"Test\"

[uplink]
broker = \"mqtt://x\"

[[camera]]
id = \"cam-1\"
zones = [\"a\", \"b\"]

[[camera]]
id = \"cam-2\"
picture = { night_hours = \"7pm\" }
";

    #[test]
    fn a_field_is_found_on_its_own_line() {
        let l = Locator::new(SRC);
        assert_eq!(l.line("branch.name"), Some(3));
        assert_eq!(l.line("uplink.broker"), Some(6));
        assert_eq!(l.line("camera[1].id"), Some(13));
        assert_eq!(l.line("camera[0].zones[1]"), Some(10));
        assert_eq!(l.line("camera[1].picture.night_hours"), Some(14));
    }

    #[test]
    fn a_field_the_file_lacks_is_placed_at_its_entry() {
        let l = Locator::new(SRC);
        // Defaults and missing sections: the nearest enclosing thing the file has.
        let cam1 = l.line("camera[1].timeout").unwrap();
        assert!((12..=13).contains(&cam1), "camera[1] at {cam1}");
        let up = l.line("uplink.tls").unwrap();
        assert!((5..=6).contains(&up), "uplink at {up}");
        assert_eq!(l.line("camera[0].zones[7]"), Some(10), "past the end of a list: the list");
        assert_eq!(l.line("storage.path"), None);
        assert_eq!(Locator::new("[branch\n").line("branch.id"), None, "a text that does not parse");
    }

    #[test]
    fn rendered_with_file_line_entry_and_field_in_both_languages() {
        let d = Diagnostic::new("fault", text!("unknown fault", "未知故障"), text!("use down", "改用 down"))
            .with_file("s.toml")
            .with_line(Some(19))
            .with_entry("camera #2 (cam-02)");
        assert_eq!(d.render(Lang::En), "s.toml:19: camera #2 (cam-02): fault: unknown fault (fix: use down)");
        assert_eq!(d.render(Lang::Zh), "s.toml:19: camera #2 (cam-02): fault：未知故障（修正：改用 down）");
        assert_eq!(d.to_string(), d.render(Lang::En));
        let item = Diagnostic::new("zone[0].id", text!("bad", "错"), text!("fix it", "改正")).with_line(Some(4));
        assert_eq!(item.render_item(Lang::En), "zone[0].id: line 4: bad (fix: fix it)");
        assert_eq!(item.render_item(Lang::Zh), "zone[0].id：第 4 行：错（修正：改正）");
        assert_eq!(item.clone().with_line(None).render_item(Lang::En), "zone[0].id: bad (fix: fix it)");
        assert_eq!(item.render(Lang::En), "zone[0].id: bad (fix: fix it)", "no file: no location prefix");
    }
}
