//! A real headless Chromium, driven over WebDriver: chromedriver on a free loopback port, one
//! fresh profile per browser, screenshots into `target/test-artefacts/<test>/`.
//!
//! ```ignore
//! let mut b = Browser::start(&artefacts_dir("console_login")).await?;
//! b.goto(&format!("http://127.0.0.1:{port}/login")).await?;
//! b.fill("#user", "admin").await?;
//! b.click("button[type=submit]").await?;
//! b.wait_for("#alerts", Duration::from_secs(10)).await?;
//! b.shot("alerts").await?; // target/test-artefacts/console_login/01-alerts.png
//! b.close().await?;
//! ```
//!
//! Chromium and chromedriver are test prerequisites (Debian packages `chromium` and
//! `chromium-driver`, installed by `scripts/test --setup-only`): when either is missing,
//! [`Browser::start`] fails, it does not skip.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Where chromedriver is unless `$BSG_CHROMEDRIVER` says otherwise (Debian's `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Where Chromium is unless `$BSG_CHROMIUM` says otherwise (Debian's `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How long [`Browser::text`], [`Browser::attr`], [`Browser::fill`] and [`Browser::click`]
/// wait for their element to appear.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);
/// How long chromedriver gets to answer `/status` after it starts.
const DRIVER_START: Duration = Duration::from_secs(20);
/// How long creating the WebDriver session (starting Chromium) may take.
const SESSION_START: Duration = Duration::from_secs(90);
/// How often the waits poll.
const POLL: Duration = Duration::from_millis(100);
/// Attempts at starting chromedriver: another process may take the free port first.
const DRIVER_ATTEMPTS: u32 = 3;
/// Chromium's command line, apart from the profile and the language.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
];

/// `<workspace>/target/test-artefacts/<test_name>`, created (screenshots, chromedriver.log).
/// Files of earlier runs are not removed; a rerun overwrites the screenshots it takes again.
pub fn artefacts_dir(test_name: &str) -> PathBuf {
    let dir = crate::workspace_root().join("target").join("test-artefacts").join(test_name);
    // A failure shows up, with the path, when the first screenshot is written.
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// One headless Chromium with its own chromedriver and its own throw-away profile.
///
/// Dropping it kills chromedriver and the browser; [`Browser::close`] ends the session first.
pub struct Browser {
    client: Client,
    driver: Driver,
    profile: TempDir,
    shots: PathBuf,
    step: AtomicU32,
}

impl Browser {
    /// A browser with Chromium's default language (from the environment).
    pub async fn start(artefacts_dir: &Path) -> Result<Browser> {
        Browser::start_with(artefacts_dir, None).await
    }

    /// A browser whose UI language and `Accept-Language` are `lang` (e.g. `zh-CN`) when given.
    pub async fn start_with(artefacts_dir: &Path, lang: Option<&str>) -> Result<Browser> {
        let chromedriver = prerequisite("chromedriver", "BSG_CHROMEDRIVER", CHROMEDRIVER)?;
        let chromium = prerequisite("chromium", "BSG_CHROMIUM", CHROMIUM)?;
        std::fs::create_dir_all(artefacts_dir)
            .with_context(|| format!("creating the artefacts directory {}", artefacts_dir.display()))?;
        let profile = tempfile::Builder::new()
            .prefix("bsg-chromium-profile-")
            .tempdir()
            .context("creating a temporary Chromium profile")?;
        let driver = Driver::start(&chromedriver, &artefacts_dir.join("chromedriver.log")).await?;
        let caps = capabilities(&chromium, profile.path(), lang);
        let url = format!("http://127.0.0.1:{}", driver.port);
        let mut builder = ClientBuilder::new(HttpConnector::new());
        let connect = builder.capabilities(caps).connect(&url);
        // chromedriver gives up on a browser that does not come up after 60 s itself.
        let session = tokio::time::timeout(SESSION_START, connect).await;
        let client = match session {
            Ok(Ok(client)) => client,
            // `driver` is dropped on return: that kills chromedriver and whatever it started.
            Ok(Err(e)) => bail!(
                "chromedriver at {url} could not start {} ({e}); chromedriver's output:\n{}",
                chromium.display(),
                driver.log_tail()
            ),
            Err(_) => bail!(
                "chromedriver at {url} did not start {} within {SESSION_START:?}; chromedriver's output:\n{}",
                chromium.display(),
                driver.log_tail()
            ),
        };
        Ok(Browser { client, driver, profile, shots: artefacts_dir.to_path_buf(), step: AtomicU32::new(0) })
    }

    /// The WebDriver client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The directory screenshots go to.
    pub fn artefacts(&self) -> &Path {
        &self.shots
    }

    /// The profile directory Chromium runs with (removed when the browser is dropped).
    pub fn profile(&self) -> &Path {
        self.profile.path()
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> Result<()> {
        let r = self.client.goto(url).await;
        self.ctx(r, || format!("opening {url}")).await
    }

    /// The current URL, or why it is unknown (for error messages).
    pub async fn current_url(&self) -> String {
        match tokio::time::timeout(Duration::from_secs(5), self.client.current_url()).await {
            Ok(Ok(url)) => url.to_string(),
            Ok(Err(e)) => format!("<current URL unknown: {e}>"),
            Err(_) => "<current URL unknown: chromedriver did not answer within 5 s>".into(),
        }
    }

    /// Saves a PNG of the viewport to `<artefacts>/<NN>-<name>.png`, NN counting the shots of
    /// this browser from 01. Returns the file.
    pub async fn shot(&self, name: &str) -> Result<PathBuf> {
        let n = self.step.fetch_add(1, Ordering::Relaxed) + 1;
        let file = self.shots.join(format!("{n:02}-{}.png", file_safe(name)));
        let png = self.client.screenshot().await;
        let png = self.ctx(png, || format!("taking screenshot {}", file.display())).await?;
        tokio::fs::write(&file, png).await.with_context(|| format!("writing {}", file.display()))?;
        Ok(file)
    }

    /// Waits until an element matches the CSS selector `css`; polls every 100 ms.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => return Ok(element),
                Err(e) if e.is_no_such_element() => {}
                Err(e) => return self.ctx(Err(e), || format!("looking for `{css}`")).await,
            }
            if Instant::now() >= deadline {
                bail!("timed out after {timeout:?} waiting for `{css}` at {}", self.current_url().await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until `ready` returns `Ok(true)`; polls every 100 ms. `Ok(false)` and errors both
    /// mean "not yet"; on timeout the error names `what`, the current URL and the last error.
    ///
    /// ```ignore
    /// b.wait_until(Duration::from_secs(5), "the count shows 3", async |b: &Browser| {
    ///     Ok(b.text("#count").await? == "3")
    /// })
    /// .await?;
    /// ```
    pub async fn wait_until<F>(&self, timeout: Duration, what: &str, mut ready: F) -> Result<()>
    where
        F: AsyncFnMut(&Browser) -> Result<bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let error = match ready(self).await {
                Ok(true) => return Ok(()),
                Ok(false) => None,
                Err(e) => Some(e),
            };
            if Instant::now() >= deadline {
                let url = self.current_url().await;
                return Err(match error {
                    Some(e) => e.context(format!("timed out after {timeout:?} waiting until {what} at {url}")),
                    None => anyhow!("timed out after {timeout:?} waiting until {what} at {url}"),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The rendered text of the first element matching `css` (waits up to [`DEFAULT_WAIT`]).
    /// An element replaced between finding and reading it (a page that refreshes itself, as the
    /// console's live pages do) is found again, up to three times.
    pub async fn text(&self, css: &str) -> Result<String> {
        let mut tries = 0;
        loop {
            let element = self.wait_for(css, DEFAULT_WAIT).await?;
            match element.text().await {
                Err(e) if e.is_stale_element_reference() && tries < 3 => tries += 1,
                r => return self.ctx(r, || format!("reading the text of `{css}`")).await,
            }
        }
    }

    /// The attribute `name` of the first element matching `css`, `None` when it has none
    /// (waits up to [`DEFAULT_WAIT`] for the element; a replaced element is found again, as in
    /// [`Browser::text`]).
    pub async fn attr(&self, css: &str, name: &str) -> Result<Option<String>> {
        let mut tries = 0;
        loop {
            let element = self.wait_for(css, DEFAULT_WAIT).await?;
            match element.attr(name).await {
                Err(e) if e.is_stale_element_reference() && tries < 3 => tries += 1,
                r => return self.ctx(r, || format!("reading attribute {name} of `{css}`")).await,
            }
        }
    }

    /// Clears the field matching `css` and types `text` into it (waits up to [`DEFAULT_WAIT`]).
    pub async fn fill(&self, css: &str, text: &str) -> Result<()> {
        let element = self.wait_for(css, DEFAULT_WAIT).await?;
        let r = element.clear().await;
        self.ctx(r, || format!("clearing `{css}`")).await?;
        let r = element.send_keys(text).await;
        self.ctx(r, || format!("typing into `{css}`")).await
    }

    /// Clicks the element matching `css` (waits up to [`DEFAULT_WAIT`] for it).
    pub async fn click(&self, css: &str) -> Result<()> {
        let element = self.wait_for(css, DEFAULT_WAIT).await?;
        let r = element.click().await;
        self.ctx(r, || format!("clicking `{css}`")).await
    }

    /// The current page's HTML as the browser has it now.
    pub async fn source(&self) -> Result<String> {
        let r = self.client.source().await;
        self.ctx(r, || "reading the page source".to_string()).await
    }

    /// Ends the WebDriver session (Chromium quits), then stops chromedriver.
    pub async fn close(mut self) -> Result<()> {
        let ended = tokio::time::timeout(Duration::from_secs(10), self.client.clone().close()).await;
        self.driver.kill_all();
        let _ = self.driver.child.wait().await;
        match ended {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow!(e).context("ending the WebDriver session")),
            Err(_) => bail!("ending the WebDriver session: chromedriver did not answer within 10 s"),
        }
    }

    /// `r` with `what` and the current URL as context.
    async fn ctx<T>(&self, r: Result<T, CmdError>, what: impl FnOnce() -> String) -> Result<T> {
        match r {
            Ok(v) => Ok(v),
            Err(e) => {
                let url = self.current_url().await;
                Err(anyhow!(e).context(format!("{} at {url}", what())))
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.driver.kill_all();
    }
}

/// The path in `$var`, else `default`, when it is a file; otherwise an error that says how to
/// install it.
fn prerequisite(what: &str, var: &str, default: &str) -> Result<PathBuf> {
    let path = std::env::var_os(var).filter(|v| !v.is_empty()).map_or_else(|| PathBuf::from(default), PathBuf::from);
    if path.is_file() {
        return Ok(path);
    }
    bail!(
        "{what} not found at {} (${var} overrides that path); the browser tests need it: run \
         `scripts/test --setup-only` to install the test prerequisites (Debian packages chromium \
         and chromium-driver)",
        path.display()
    )
}

fn capabilities(chromium: &Path, profile: &Path, lang: Option<&str>) -> serde_json::Map<String, Value> {
    let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    if let Some(lang) = lang {
        args.push(format!("--lang={lang}"));
    }
    let mut options = json!({ "binary": chromium, "args": args });
    if let Some(lang) = lang {
        // What Chromium sends as Accept-Language; --lang alone sets only the UI language.
        options["prefs"] = json!({ "intl.accept_languages": lang });
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), "chrome".into());
    caps.insert("goog:chromeOptions".into(), options);
    // Bounds on a page load and a script, so that a hung page fails the test rather than hanging.
    caps.insert("timeouts".into(), json!({ "pageLoad": 30_000, "script": 30_000, "implicit": 0 }));
    caps
}

/// `name` with everything but letters, digits, `-`, `_` and `.` replaced by `_`.
fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect()
}

/// Whether `buf` holds an HTTP response's head and as much body as its Content-Length says.
fn response_complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    buf.len() >= end + 4 + length
}

/// chromedriver, in a process group of its own so that Chromium, which it starts, goes with it.
struct Driver {
    child: Child,
    pid: i32,
    port: u16,
    log: PathBuf,
    /// Where this chromedriver's output starts in the (shared, appended) log.
    log_start: u64,
    killed: bool,
}

impl Driver {
    async fn start(chromedriver: &Path, log: &Path) -> Result<Driver> {
        let mut failures = Vec::new();
        for _ in 0..DRIVER_ATTEMPTS {
            let mut driver = Driver::spawn(chromedriver, log)?;
            let deadline = Instant::now() + DRIVER_START;
            loop {
                if driver.ready().await {
                    return Ok(driver);
                }
                if let Ok(Some(status)) = driver.child.try_wait() {
                    // Most likely another process took the port: try another one.
                    failures.push(format!(
                        "chromedriver --port={} exited ({status}) before it answered /status:\n{}",
                        driver.port,
                        driver.log_tail()
                    ));
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "chromedriver ({}) did not answer http://127.0.0.1:{}/status within {DRIVER_START:?}; \
                         its output ({}):\n{}",
                        chromedriver.display(),
                        driver.port,
                        log.display(),
                        driver.log_tail()
                    );
                }
                tokio::time::sleep(POLL).await;
            }
        }
        bail!("chromedriver ({}) did not start: {}", chromedriver.display(), failures.join("\n"))
    }

    fn spawn(chromedriver: &Path, log: &Path) -> Result<Driver> {
        let port = crate::free_port();
        if port == 0 {
            bail!("no free port on 127.0.0.1 for chromedriver");
        }
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        writeln!(out, "=== {} --port={port}", chromedriver.display())
            .with_context(|| format!("writing {}", log.display()))?;
        let log_start = out.metadata().map(|m| m.len()).unwrap_or(0);
        let err = out.try_clone().with_context(|| format!("opening {}", log.display()))?;
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", chromedriver.display()))?;
        let pid = child.id().and_then(|id| i32::try_from(id).ok()).unwrap_or(0);
        Ok(Driver { child, pid, port, log: log.to_path_buf(), log_start, killed: false })
    }

    /// Whether `GET /status` answers 200 with `"ready": true`.
    async fn ready(&self) -> bool {
        let ask = async {
            let mut s = TcpStream::connect(("127.0.0.1", self.port)).await?;
            let req = format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", self.port);
            s.write_all(req.as_bytes()).await?;
            // chromedriver says `Connection: close` but keeps the connection open: read what
            // Content-Length says rather than to the end.
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !response_complete(&buf) {
                let n = s.read(&mut chunk).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            std::io::Result::Ok(buf)
        };
        let Ok(Ok(answer)) = tokio::time::timeout(Duration::from_secs(2), ask).await else {
            return false;
        };
        let answer = String::from_utf8_lossy(&answer);
        let compact: String = answer.chars().filter(|c| !c.is_whitespace()).collect();
        answer.starts_with("HTTP/1.1 200") && compact.contains("\"ready\":true")
    }

    /// The last lines this chromedriver (and the Chromium it started) wrote.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        let read = File::open(&self.log).and_then(|mut f| {
            f.seek(SeekFrom::Start(self.log_start))?;
            f.take(1 << 20).read_to_string(&mut text)
        });
        if let Err(e) = read {
            return format!("<cannot read {}: {e}>", self.log.display());
        }
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        if tail.trim().is_empty() { "<no output>".into() } else { tail }
    }

    /// SIGKILL to chromedriver's process group: chromedriver, Chromium and its helpers. A
    /// Chromium whose chromedriver was killed would otherwise live on.
    fn kill_all(&mut self) {
        if self.killed {
            return;
        }
        self.killed = true;
        if self.pid > 0 {
            // SAFETY: kill(2) has no memory-safety preconditions; -pid is the group chromedriver
            // leads (process_group(0)), which holds only it and the processes it started.
            unsafe {
                libc::kill(-self.pid, libc::SIGKILL);
            }
        }
        let _ = self.child.start_kill();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_prerequisite_is_an_error_that_says_how_to_install_it() {
        let err = prerequisite("chromedriver", "BSG_TEST_UNSET_VARIABLE", "/nonexistent/chromedriver")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("/nonexistent/chromedriver"), "{err}");
        assert!(err.contains("scripts/test --setup-only"), "{err}");
    }

    #[test]
    fn lang_adds_the_flag_and_the_accept_language_pref() {
        let plain = capabilities(Path::new("/c"), Path::new("/p"), None);
        let args = plain["goog:chromeOptions"]["args"].as_array().cloned().unwrap_or_default();
        assert!(args.iter().any(|a| a == "--user-data-dir=/p"), "{args:?}");
        assert!(!args.iter().any(|a| a.as_str().is_some_and(|a| a.starts_with("--lang"))), "{args:?}");
        assert!(plain["goog:chromeOptions"].get("prefs").is_none());
        let zh = capabilities(Path::new("/c"), Path::new("/p"), Some("zh-CN"));
        assert!(zh["goog:chromeOptions"]["args"].as_array().is_some_and(|a| a.iter().any(|a| a == "--lang=zh-CN")));
        assert_eq!(zh["goog:chromeOptions"]["prefs"]["intl.accept_languages"], "zh-CN");
    }

    #[test]
    fn a_response_is_complete_when_its_content_length_is_in() {
        assert!(!response_complete(b"HTTP/1.1 200 OK\r\nContent-Length:4\r\n"));
        assert!(!response_complete(b"HTTP/1.1 200 OK\r\nContent-Length:4\r\n\r\n{}"));
        assert!(response_complete(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n{  }"));
        assert!(response_complete(b"HTTP/1.1 200 OK\r\n\r\n"));
    }

    #[test]
    fn screenshot_names_are_file_safe() {
        assert_eq!(file_safe("login/ok 1.png"), "login_ok_1.png");
    }
}
