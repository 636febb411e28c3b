//! Tidy: the repository checks its own documentation hygiene, as rust-analyzer's tidy test does.
//!
//! Every Markdown and Rust file of the repository is read, and the test fails listing every
//! problem as `file:line: what is wrong`:
//!
//! - a Markdown link `[text](target)` whose target is not a file or directory of the repository,
//!   relative to the linking file (web and mail links and bare `#anchor`s are skipped; anchors
//!   themselves are not checked);
//! - a citation of a `.md` file — anywhere in Markdown, in comments in Rust — that the repository
//!   does not have: a bare file name must be the name of one of its files, a path must resolve
//!   from the citing file or from the repository root, and nothing may point outside it;
//! - a cited section, written like `docs/DESIGN.md, "Health semantics"`, whose file has no
//!   heading with exactly that text (the quoted name must stay on one line).
//!
//! It also checks that every crate root of the workspace (each member but this test crate) denies
//! `unwrap`/`expect` outside its tests, and the translations (see `program_sources` below).
//!
//! The files are those `git ls-files --cached --others --exclude-standard` lists: what is
//! committed plus what is about to be, so a new document counts before `git add`. Without git
//! the test fails: a check that cannot look must not pass.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Never checked: build output, fuzzing corpora and artifacts, vendored code.
const EXCLUDED: [&str; 4] = ["target/", "fuzz/corpus/", "fuzz/artifacts/", "vendor/"];

#[test]
fn every_link_cited_file_and_cited_section_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let repo = Repo::new(list_files(&root));
    assert!(
        repo.files.contains("README.md") && repo.files.contains("ARCHITECTURE.md"),
        "`git ls-files` in {} did not list README.md and ARCHITECTURE.md: is it the workspace's checkout?",
        root.display()
    );
    let read = |path: &str| std::fs::read_to_string(root.join(path)).ok();
    let mut problems = Vec::new();
    let mut checked = 0;
    for path in repo.files.iter().filter(|p| p.ends_with(".md") || p.ends_with(".rs")) {
        match read(path.as_str()) {
            Some(text) => problems.extend(check_file(&repo, path, &text, &read)),
            None => problems.push(format!("{path}: cannot be read as UTF-8 text")),
        }
        checked += 1;
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) in {checked} files' links and citations:\n{}\n",
        problems.len(),
        problems.join("\n")
    );
}

/// The repository's files (relative, `/`-separated), from git. Panics when git cannot tell.
fn list_files(root: &Path) -> Vec<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run git ({e}): the tidy test lists the repository's files with `git ls-files`. \
                 Install git (Debian: apt-get install git) and run the tests from a git checkout."
            )
        });
    assert!(
        out.status.success(),
        "`git ls-files` failed in {} ({}): {}\nThe tidy test needs a git checkout of the repository.",
        root.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|p| !p.is_empty() && !EXCLUDED.iter().any(|x| p.starts_with(*x)))
        // A file deleted in the work tree but still in the index is not there to cite.
        .filter(|p| root.join(p).is_file())
        .map(str::to_owned)
        .collect()
}

/// What the repository holds.
struct Repo {
    files: BTreeSet<String>,
    /// Every directory holding one of the files; `""` is the root.
    dirs: BTreeSet<String>,
    /// File name → the files with that name.
    by_name: BTreeMap<String, Vec<String>>,
}

/// Where a cited file is.
#[derive(Debug, PartialEq)]
enum Located {
    Found(String),
    /// A bare name that several files have, none beside the citing file or at the root.
    Ambiguous(Vec<String>),
    Missing(String),
}

impl Repo {
    fn new(files: impl IntoIterator<Item = String>) -> Repo {
        let files: BTreeSet<String> = files.into_iter().collect();
        let mut dirs = BTreeSet::from([String::new()]);
        let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in &files {
            let mut dir = parent(f);
            while !dir.is_empty() {
                dirs.insert(dir.to_owned());
                dir = parent(dir);
            }
            by_name.entry(file_name(f).to_owned()).or_default().push(f.clone());
        }
        Repo { files, dirs, by_name }
    }

    /// The file `token` (a `.md` path or name) cited from the file `from` names.
    fn locate(&self, from: &str, token: &str) -> Located {
        let here = parent(from);
        if token.contains('/') {
            return match resolve(here, token) {
                None => Located::Missing(format!("cites {token}, which is outside the repository")),
                Some(p) if self.files.contains(&p) => Located::Found(p),
                _ => match resolve("", token) {
                    Some(p) if self.files.contains(&p) => Located::Found(p),
                    _ => Located::Missing(format!("cites {token}, which does not exist")),
                },
            };
        }
        for base in [here, ""] {
            if let Some(p) = resolve(base, token).filter(|p| self.files.contains(p)) {
                return Located::Found(p);
            }
        }
        match self.by_name.get(token).map(Vec::as_slice) {
            Some([one]) => Located::Found(one.clone()),
            Some(many) if !many.is_empty() => Located::Ambiguous(many.to_vec()),
            _ => Located::Missing(format!("cites {token}, but no file in the repository has that name")),
        }
    }
}

/// The problems of one file, each as `path:line: what`. `read` gives a cited file's text.
fn check_file(repo: &Repo, path: &str, text: &str, read: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let markdown = path.ends_with(".md");
    let mut problems = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        let mut problem = |what: String| problems.push(format!("{path}:{}: {what}", i + 1));
        let mut linked = Vec::new();
        let scanned = if markdown {
            if is_fence(line) {
                fenced = !fenced;
            } else if !fenced {
                linked = link_targets(line);
                for target in &linked {
                    if let Some(what) = check_link(repo, path, target) {
                        problem(what);
                    }
                }
            }
            Some(line)
        } else {
            rust_comment(line)
        };
        let Some(scanned) = scanned else { continue };
        // A link's target is checked as a link (relative to this file) and not again as a citation.
        let is_linked = |token: &str| linked.iter().any(|t| t.split('#').next() == Some(token));
        for token in cited_md_files(scanned).into_iter().filter(|t| !is_linked(t)) {
            if let Located::Missing(what) = repo.locate(path, token) {
                problem(what);
            }
        }
        for (token, section) in section_citations(scanned) {
            match (repo.locate(path, token), section) {
                (Located::Missing(_), _) => {} // reported above
                (Located::Ambiguous(all), _) => problem(format!(
                    "cites a section of {token}, which several files are called ({}): give its path",
                    all.join(", ")
                )),
                (Located::Found(_), None) => {
                    problem(format!("cites a section of {token} whose quoted name does not end on this line"))
                }
                (Located::Found(file), Some(section)) => {
                    if !read(&file).is_some_and(|t| headings(&t).iter().any(|h| h == section)) {
                        problem(format!("cites {token}, \"{section}\", but {file} has no heading \"{section}\""));
                    }
                }
            }
        }
    }
    problems.dedup();
    problems
}

/// A problem with one Markdown link target, if any.
fn check_link(repo: &Repo, from: &str, target: &str) -> Option<String> {
    if target.is_empty() || target.starts_with('#') || target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let path = target.split('#').next().unwrap_or_default();
    match resolve(parent(from), path) {
        None => Some(format!("links to {target}, which is outside the repository")),
        Some(p) if repo.files.contains(&p) || repo.dirs.contains(&p) => None,
        Some(_) => Some(format!("links to {target}, which does not exist")),
    }
}

/// `target` relative to the directory `base`, normalised; `None` when it climbs above the root.
fn resolve(base: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

fn file_name(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

fn is_fence(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

/// The line without its `code spans`.
fn strip_code_spans(line: &str) -> String {
    line.split('`').step_by(2).collect()
}

/// The targets of the Markdown links (and images) on a line, outside code spans.
fn link_targets(line: &str) -> Vec<String> {
    let line = strip_code_spans(line);
    let mut out = Vec::new();
    let mut rest = line.as_str();
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let end = rest.find([')', ' ', '\t']).unwrap_or(rest.len());
        out.push(rest[..end].trim_start_matches('<').trim_end_matches('>').to_owned());
    }
    out
}

/// The text of a Rust line that is a comment: the whole line, or what follows ` // `.
fn rust_comment(line: &str) -> Option<&str> {
    let t = line.trim_start();
    if t.starts_with("//") { Some(t) } else { line.find(" // ").map(|i| &line[i + 1..]) }
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

/// Whether `token` names a Markdown file: a name ending in `.md`, maybe after a directory, that
/// starts with a letter, a digit or `_` (so `*.zh-CN.md` and `.md` alone are not citations).
fn is_md_citation(token: &str) -> bool {
    let name = file_name(token);
    name.len() > ".md".len()
        && name.ends_with(".md")
        && name.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
}

/// The `.md` files a piece of text cites (web addresses left out).
fn cited_md_files(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .filter(|word| !word.contains("://"))
        .flat_map(|word| word.split(|c: char| !is_path_char(c)))
        .map(|token| token.trim_end_matches('.'))
        .filter(|token| is_md_citation(token))
        .collect()
}

/// Cited sections on a line: (file, section) for each Markdown file name followed by `, "Section"`
/// (also after a link's `)` or a code span's closing backtick); the section is `None` when its
/// quote is not closed on the line.
fn section_citations(line: &str) -> Vec<(&str, Option<&str>)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = line[from..].find(", \"").map(|i| i + from) {
        let before = line[..at].trim_end_matches([')', '`']);
        let start = before.char_indices().rev().find(|&(_, c)| !is_path_char(c)).map_or(0, |(j, c)| j + c.len_utf8());
        let token = &before[start..];
        if is_md_citation(token) {
            let quoted = &line[at + 3..];
            out.push((token, quoted.find('"').map(|end| &quoted[..end])));
        }
        from = at + 3;
    }
    out
}

/// The headings of a Markdown text (ATX style), outside fenced code.
fn headings(markdown: &str) -> Vec<String> {
    heading_levels(markdown).into_iter().map(|(_, text)| text.trim_end_matches('#').trim_end().to_owned()).collect()
}

#[cfg(test)]
mod helpers {
    use super::*;

    fn repo() -> Repo {
        Repo::new(
            ["README.md", "docs/A.md", "docs/B.md", "deploy/x/README.md", "deploy/y/README.md", "deploy/y/NOTES.md"]
                .map(String::from),
        )
    }

    #[test]
    fn paths_resolve_inside_the_repository_only() {
        assert_eq!(resolve("docs", "../README.md").as_deref(), Some("README.md"));
        assert_eq!(resolve("a/b", "./c/../d.md").as_deref(), Some("a/b/d.md"));
        assert_eq!(resolve("", "docs/").as_deref(), Some("docs"));
        assert_eq!(resolve("docs", "../../x.md"), None);
        assert_eq!(resolve("", "../x.md"), None);
    }

    #[test]
    fn links_are_found_outside_code_spans() {
        let line = "see [a](docs/A.md#part \"title\") and ![b](<img.png>), not `[c](d.md)`; [e](https://x.org)";
        assert_eq!(link_targets(line), ["docs/A.md#part", "img.png", "https://x.org"]);
        assert!(link_targets("arr[i] (not a link)").is_empty());
    }

    #[test]
    fn links_must_reach_a_file_or_directory() {
        let r = repo();
        assert_eq!(check_link(&r, "docs/B.md", "A.md#x"), None);
        assert_eq!(check_link(&r, "docs/B.md", "../deploy/x/"), None);
        assert_eq!(check_link(&r, "docs/B.md", "#anchor"), None);
        assert_eq!(check_link(&r, "docs/B.md", "mailto:a@b.c"), None);
        assert_eq!(check_link(&r, "docs/B.md", "C.md"), Some("links to C.md, which does not exist".into()));
        assert_eq!(
            check_link(&r, "README.md", "../shared/A.md"),
            Some("links to ../shared/A.md, which is outside the repository".into())
        );
    }

    #[test]
    fn cited_files_are_md_tokens_but_not_web_addresses() {
        let text = "see docs/CONFIG.md, README.md. (`a/B_C.md`) https://x.org/D.md *.zh-CN.md .md";
        assert_eq!(cited_md_files(text), ["docs/CONFIG.md", "README.md", "a/B_C.md"]);
        assert_eq!(cited_md_files("见 [中文版](HQ.zh-CN.md)。"), ["HQ.zh-CN.md"]);
    }

    #[test]
    fn cited_files_are_located_by_path_or_by_name() {
        let r = repo();
        assert_eq!(r.locate("docs/B.md", "A.md"), Located::Found("docs/A.md".into()));
        assert_eq!(r.locate("gateway/src/x.rs", "docs/A.md"), Located::Found("docs/A.md".into()));
        assert_eq!(r.locate("deploy/x/README.md", "../../docs/A.md"), Located::Found("docs/A.md".into()));
        assert_eq!(r.locate("src/x.rs", "NOTES.md"), Located::Found("deploy/y/NOTES.md".into()));
        assert_eq!(r.locate("docs/B.md", "README.md"), Located::Found("README.md".into()));
        assert!(matches!(r.locate("docs/B.md", "C.md"), Located::Missing(_)));
        assert!(matches!(r.locate("docs/B.md", "docs/C.md"), Located::Missing(_)));
        assert!(matches!(r.locate("README.md", "../shared/A.md"), Located::Missing(m) if m.contains("outside")));
        let two = Repo::new(["a/N.md", "b/N.md"].map(String::from));
        assert_eq!(two.locate("c/x.rs", "N.md"), Located::Ambiguous(vec!["a/N.md".into(), "b/N.md".into()]));
    }

    #[test]
    fn sections_are_read_from_file_comma_quote() {
        assert_eq!(
            section_citations(r#"(see docs/DESIGN.md, "Health semantics"):"#),
            [("docs/DESIGN.md", Some("Health semantics"))]
        );
        assert_eq!(section_citations(r#"in [DESIGN.md](DESIGN.md), "Where": 12 ms"#), [("DESIGN.md", Some("Where"))]);
        assert_eq!(section_citations(r#"`CONFIG.md`, "Uplink" and x, "y""#), [("CONFIG.md", Some("Uplink"))]);
        assert_eq!(section_citations(r#"(see DESIGN.md, "Protocol"#), [("DESIGN.md", None)]);
    }

    #[test]
    fn headings_skip_fenced_code() {
        let md = "# Title\n\nText # not one\n```sh\n# a comment\n```\n## Health semantics ##\n###Not\n";
        assert_eq!(headings(md), ["Title", "Health semantics"]);
    }

    #[test]
    fn rust_is_checked_in_comments_only() {
        // Only names of real files here: this file is checked too, and the second line holds " // ".
        assert_eq!(rust_comment("    //! Rules (see README.md)"), Some("//! Rules (see README.md)"));
        assert_eq!(rust_comment("let a = 1; // README.md"), Some("// README.md"));
        assert_eq!(rust_comment("let p = \"usr/share/doc/x/GONE.md\";"), None);
    }

    #[test]
    fn a_file_is_checked_line_by_line() {
        let r = repo();
        let read = |p: &str| (p == "docs/A.md").then(|| "# A\n\n## Health semantics\n".to_owned());
        let md = "[ok](A.md) [bad](C.md)\n\n```\n[not a link](C.md)\n```\nA.md, \"Health semantics\"; A.md, \"Nope\"\nGONE.md";
        assert_eq!(
            check_file(&r, "docs/B.md", md, &read),
            [
                "docs/B.md:1: links to C.md, which does not exist",
                "docs/B.md:4: cites C.md, but no file in the repository has that name",
                "docs/B.md:6: cites A.md, \"Nope\", but docs/A.md has no heading \"Nope\"",
                "docs/B.md:7: cites GONE.md, but no file in the repository has that name",
            ]
        );
        let rs = "fn f() {}\n/// see docs/A.md, \"Health semantics\"\nlet s = \"GONE.md\";\n//! see ../../outside/X.md";
        assert_eq!(
            check_file(&r, "src/lib.rs", rs, &read),
            ["src/lib.rs:4: cites ../../outside/X.md, which is outside the repository"]
        );
    }
}

/// Documents an installer or an operator reads, each with its Chinese version beside it (the
/// same name with `.zh-CN` before the extension).
const BILINGUAL: [&str; 13] = [
    "README.md",
    "docs/INSTALL.md",
    "docs/CONFIG.md",
    "docs/PROFILES.md",
    "docs/SIMULATOR.md",
    "docs/HQ.md",
    "docs/HQ-TOPOLOGY.md",
    "docs/CONSOLE.md",
    "docs/ORDERS.md",
    "docs/NOTIFY.md",
    "docs/DESIGN.md",
    "deploy/nginx/README.md",
    "deploy/emqx/README.md",
];

/// The Chinese version's path for an English document's.
fn chinese_version(english: &str) -> String {
    format!("{}.zh-CN.md", english.trim_end_matches(".md"))
}

/// The level (number of `#`) and text of each heading, outside fenced code.
fn heading_levels(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if is_fence(line) {
            fenced = !fenced;
            continue;
        }
        let hashes = line.len() - line.trim_start_matches('#').len();
        if !fenced && (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            out.push((hashes, line[hashes..].trim().to_owned()));
        }
    }
    out
}

/// A Chinese document that lags its English one shows up here: every English document of
/// [`BILINGUAL`] has its Chinese version, each pair (those and any other Chinese version) has
/// the same sections in the same order (by heading level: the texts differ by language),
/// and each links to the other.
#[test]
fn every_document_and_its_chinese_version_have_the_same_sections() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = list_files(&root);
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap_or_default();
    let mut pairs: BTreeSet<String> = BILINGUAL.iter().map(|s| s.to_string()).collect();
    pairs.extend(files.iter().filter_map(|f| f.strip_suffix(".zh-CN.md")).map(|s| format!("{s}.md")));
    let mut problems = Vec::new();
    for en_path in &pairs {
        let zh_path = chinese_version(en_path);
        if !files.contains(en_path) || !files.contains(&zh_path) {
            problems.push(format!("{en_path}: needs both it and {zh_path}"));
            continue;
        }
        let (en, zh) = (read(en_path), read(&zh_path));
        let (he, hz) = (heading_levels(&en), heading_levels(&zh));
        let first_difference = (0..he.len().max(hz.len())).find(|&i| he.get(i).map(|h| h.0) != hz.get(i).map(|h| h.0));
        if let Some(i) = first_difference {
            let show = |h: Option<&(usize, String)>| {
                h.map_or("nothing".to_string(), |(level, text)| format!("`{} {text}`", "#".repeat(*level)))
            };
            problems.push(format!(
                "{zh_path}: its heading {} is {} where {en_path} has {} ({} headings against {}): translate the \
                 section the English gained",
                i + 1,
                show(hz.get(i)),
                show(he.get(i)),
                hz.len(),
                he.len()
            ));
        }
        if !en.contains(file_name(&zh_path)) {
            problems.push(format!("{en_path}: does not link to its Chinese version {}", file_name(&zh_path)));
        }
        if !zh.contains(&format!("({})", file_name(en_path))) && !zh.contains(&format!("({en_path})")) {
            problems.push(format!("{zh_path}: does not link back to {}", file_name(en_path)));
        }
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}\n", problems.len(), problems.join("\n"));
}

/// The code of the programs people run (`branch-gateway`, `device-sim`, `hq`, and the shared
/// crates whose texts they show: translation, the site file, the MQTT setup), without test
/// modules.
fn program_sources(files: &[String]) -> Vec<&String> {
    files
        .iter()
        .filter(|f| f.ends_with(".rs"))
        .filter(|f| {
            [
                "gateway/src/",
                "device-sim/src/",
                "headoffice/src/",
                "demo/src/",
                "i18n/src/",
                "site/src/",
                "mqtt-setup/src/",
            ]
            .iter()
            .any(|d| f.starts_with(d))
        })
        .collect()
}

/// The text before the file's `#[cfg(test)]` module.
fn without_tests(src: &str) -> &str {
    src.find("\n#[cfg(test)]").map_or(src, |i| &src[..i])
}

/// The Rust string literal starting at `s` (after optional whitespace and newlines), its
/// value and the rest of the text; `None` when `s` does not start with one.
fn string_literal(s: &str) -> Option<(String, &str)> {
    let s = s.trim_start();
    let (body, raw) = if let Some(r) = s.strip_prefix("r#\"") {
        (r, Some("\"#"))
    } else if let Some(r) = s.strip_prefix("r\"") {
        (r, Some("\""))
    } else {
        (s.strip_prefix('"')?, None)
    };
    if let Some(end) = raw {
        let i = body.find(end)?;
        return Some((body[..i].to_string(), &body[i + end.len()..]));
    }
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &body[i + 1..])),
            '\\' => match chars.next() {
                // A line continuation: the newline and the next line's indentation go.
                Some((_, '\n')) => {
                    let rest = &body[i + 2..];
                    let skip = rest.len() - rest.trim_start().len();
                    for _ in 0..rest[..skip].chars().count() {
                        chars.next();
                    }
                }
                Some((_, 'n')) => value.push('\n'),
                Some((_, e)) => value.push(e),
                None => return None,
            },
            c => value.push(c),
        }
    }
    None
}

/// The placeholders of a format string (`{}`, `{name}`, `{0:?}` → `""`, `"name"`, `"0"`),
/// sorted and deduplicated. A language's own variant of a value counts as the value:
/// `{kind_zh}` as `{kind}`, `{zh}` as `{en}`.
fn placeholders(fmt: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = fmt.replace("{{", "").replace("}}", "");
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else { break };
        let inner = &rest[i + 1..i + j];
        let name = inner.split(':').next().unwrap_or_default();
        let name = name.strip_suffix("_zh").or_else(|| name.strip_suffix("_en")).unwrap_or(name);
        out.push(if name == "zh" { "en".to_string() } else { name.to_string() });
        rest = rest[i + j + 1..].to_string();
    }
    out.sort();
    out.dedup();
    out
}

fn has_chinese(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{3000}'..='\u{303f}').contains(&c))
}

/// Words a person must read: prose, or a word of four letters or more outside placeholders.
fn has_words(s: &str) -> bool {
    let mut bare = String::new();
    let mut depth = 0;
    for c in s.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = (depth - 1).max(0),
            c if depth == 0 => bare.push(c),
            _ => {}
        }
    }
    is_prose(&bare) || bare.split(|c: char| !c.is_ascii_alphabetic()).any(|w| w.len() >= 4)
}

/// English prose: two words of two letters or more in a row.
fn is_prose(s: &str) -> bool {
    let words: Vec<&str> = s.split(' ').collect();
    let word = |w: &str| w.len() >= 2 && w.chars().all(|c| c.is_ascii_alphabetic());
    words.windows(2).any(|w| word(w[0].trim_end_matches([',', ':', ';', '.'])) && word(w[1]))
}

/// Every text a person reads has its Chinese translation. In the programs' code (tests
/// aside):
/// - each `tr!(lang, "en", "zh")`, `text!("en", "zh")` and `lang.t("en", "zh")` has a
///   Chinese text that is Chinese (unless the English has no words) and that names the same
///   placeholders as the English;
/// - no `println!`, `eprintln!`, `print!`, `eprint!`, `write!`, `writeln!` or `hq`'s `emit`
///   prints English prose straight from its format string: it goes through `tr!` or `t()`, or the line (or
///   the one before) says `i18n-exempt:` and why (a line a program reads, markup).
#[test]
fn every_text_a_person_reads_has_its_chinese_translation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let files = list_files(&root);
    let sources = program_sources(&files);
    assert!(sources.len() > 20, "found only {} program sources: {sources:?}", sources.len());
    let mut problems = Vec::new();
    let mut pairs = 0;
    for path in sources {
        let full = std::fs::read_to_string(root.join(path)).unwrap_or_default();
        let src = without_tests(&full);
        let line_of = |rest: &str| src[..src.len() - rest.len()].matches('\n').count() + 1;
        // Translated pairs.
        for (macro_start, skip_first_arg) in [("tr!(", true), ("text!(", false), (".t(", false)] {
            let mut rest = src;
            while let Some(i) = rest.find(macro_start) {
                rest = &rest[i + macro_start.len()..];
                if macro_start == "text!(" && src[..src.len() - rest.len() - macro_start.len()].ends_with("fn ") {
                    continue;
                }
                let mut args = rest;
                if skip_first_arg {
                    let Some(comma) = args.find(',') else { continue };
                    args = &args[comma + 1..];
                }
                let Some((en, after)) = string_literal(args) else { continue };
                let Some((zh, _)) = after.trim_start().strip_prefix(',').and_then(string_literal) else {
                    problems.push(format!("{path}:{}: {macro_start} with one text: {en:?}", line_of(rest)));
                    continue;
                };
                pairs += 1;
                let line = line_of(rest);
                if has_words(&en) && !has_chinese(&zh) {
                    problems.push(format!("{path}:{line}: the Chinese of {en:?} is not Chinese: {zh:?}"));
                }
                if placeholders(&en) != placeholders(&zh) {
                    problems.push(format!("{path}:{line}: {en:?} and {zh:?} name different placeholders"));
                }
            }
        }
        // Prose printed untranslated.
        let lines: Vec<&str> = src.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let exempt = line.contains("i18n-exempt:") || n > 0 && lines[n - 1].contains("i18n-exempt:");
            for m in
                ["println!(", "eprintln!(", "print!(", "eprint!(", "writeln!(", "write!(", "emit(&format!(", "emit("]
            {
                let Some(i) = line.find(m) else { continue };
                if i > 0 && line[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                // The format string: the first literal, here or on the following lines.
                let from = src.lines().take(n).map(|l| l.len() + 1).sum::<usize>() + i + m.len();
                let mut args = &src[from..];
                if m.starts_with("write") {
                    let Some(comma) = args.find(',') else { continue };
                    args = &args[comma + 1..];
                }
                // Prometheus's `# HELP` lines are metadata for dashboards, English by convention.
                if let Some((fmt, _)) = string_literal(args)
                    && is_prose(&fmt)
                    && !fmt.starts_with("# HELP ")
                    && !exempt
                {
                    problems.push(format!(
                        "{path}:{}: prints English prose without its Chinese: {fmt:?} (use tr!, or say \
                         `// i18n-exempt: why`)",
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(pairs > 300, "found only {pairs} translated texts: is the scan still finding them?");
    assert!(problems.is_empty(), "{} problem(s):\n{}\n", problems.len(), problems.join("\n"));
}

#[cfg(test)]
mod translation_scan {
    use super::*;

    #[test]
    fn literals_placeholders_and_prose() {
        assert_eq!(string_literal(r#" "a \"b\" {x}", rest"#), Some(("a \"b\" {x}".to_string(), ", rest")));
        assert_eq!(string_literal("\"one \\\n     two\"").map(|t| t.0), Some("one two".to_string()));
        assert_eq!(placeholders("{a} {} {{x}} {b:?} {0:.1}"), ["", "0", "a", "b"]);
        assert_eq!(placeholders("{kind_zh} {zh}"), placeholders("{kind} {en}"));
        assert!(has_words("unknown {x}") && !has_words(" for {w}") && !has_words("{id}: {detail}"));
        assert!(is_prose("cannot read the file: {e}") && !is_prose("{id} onvif={url}") && !is_prose("ok"));
        assert!(has_chinese("未知区域") && !has_chinese("zone"));
    }
}

/// Every crate root of the programs and libraries (each workspace member but this test crate)
/// denies `unwrap`/`expect` outside its tests, so that data from devices, the network, files,
/// databases or users can never panic a program: a new crate must say so too.
#[test]
fn every_crate_root_denies_unwrap_and_expect_outside_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("the workspace's Cargo.toml");
    let manifest: toml::Table = manifest.parse().expect("the workspace's Cargo.toml parses");
    let members: Vec<&str> = manifest["workspace"]["members"]
        .as_array()
        .expect("workspace.members")
        .iter()
        .filter_map(|m| m.as_str())
        .filter(|m| *m != "tests")
        .collect();
    assert!(members.len() >= 8, "found only {members:?}: is the manifest still read?");
    let lint = "#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]";
    let mut roots = 0;
    let mut problems = Vec::new();
    for member in members {
        let src = root.join(member).join("src");
        let mut candidates = vec![src.join("lib.rs"), src.join("main.rs")];
        if let Ok(rd) = std::fs::read_dir(src.join("bin")) {
            candidates.extend(rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "rs")));
        }
        for file in candidates.into_iter().filter(|p| p.is_file()) {
            roots += 1;
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if !text.lines().any(|l| l.trim() == lint) {
                problems.push(format!("{}: add `{lint}`", file.strip_prefix(&root).unwrap_or(&file).display()));
            }
        }
    }
    assert!(roots >= 10, "found only {roots} crate roots");
    assert!(problems.is_empty(), "{} crate root(s) allow unwrap/expect:\n{}\n", problems.len(), problems.join("\n"));
}
