//! The browser harness itself (tests/src/browser.rs) against a tiny HTTP server of the test's
//! own: a real headless Chromium fills and submits a form, the server sees the value; the
//! language option reaches the server as Accept-Language; screenshots are PNG files. Every
//! server and every chromedriver is on a free loopback port, so these run in parallel.

use std::time::Duration;

use anyhow::{Context, Result};
use harness::browser::{Browser, artefacts_dir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const FORM_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>harness form</title></head>
<body>
  <h1 id="title">Branch check-in</h1>
  <form method="post" action="/submit">
    <label>Name <input id="name" name="name" type="text" value="placeholder"></label>
    <button id="send" type="submit" data-role="send">Send</button>
  </form>
  <p id="later"></p>
  <script>setTimeout(() => { document.getElementById('later').textContent = 'ready'; }, 300);</script>
</body></html>
"#;

/// One request the test server received.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A minimal HTTP/1.1 server on 127.0.0.1:0: `/` is the form, `POST /submit` echoes the name.
/// Returns its base URL and every request it gets.
async fn serve() -> Result<(String, mpsc::UnboundedReceiver<Request>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            // One task a connection: Chromium opens speculative connections that send nothing.
            tokio::spawn(handle(conn, tx.clone()));
        }
    });
    Ok((base, rx))
}

async fn handle(mut conn: TcpStream, tx: mpsc::UnboundedSender<Request>) -> Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        anyhow::ensure!(n > 0 && buf.len() < 64 * 1024, "no complete request head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next().context("request line")?.split(' ');
    let method = start.next().context("method")?.to_string();
    let path = start.next().context("path")?.to_string();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "body cut short");
        body.extend_from_slice(&chunk[..n]);
    }
    let req = Request { method, path, headers, body: String::from_utf8_lossy(&body).into_owned() };
    let (status, page) = match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/") => ("200 OK", FORM_PAGE.to_string()),
        ("POST", "/submit") => {
            let name = form_value(&req.body, "name").unwrap_or_default();
            let name = name.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            ("200 OK", format!("<!doctype html><meta charset=\"utf-8\"><p id=\"result\">received {name}</p>"))
        }
        _ => ("404 Not Found", "not found".to_string()),
    };
    let _ = tx.send(req);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{page}",
        page.len()
    );
    conn.write_all(response.as_bytes()).await?;
    conn.shutdown().await?;
    Ok(())
}

/// The decoded value of `key` in an `application/x-www-form-urlencoded` body.
fn form_value(body: &str, key: &str) -> Option<String> {
    let raw = body.split('&').find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))?;
    let mut bytes = Vec::new();
    let mut it = raw.bytes();
    while let Some(b) = it.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [it.next()?, it.next()?];
                bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            _ => bytes.push(b),
        }
    }
    String::from_utf8(bytes).ok()
}

/// The next request for `path`, skipping others (favicon…).
async fn next_request(rx: &mut mpsc::UnboundedReceiver<Request>, method: &str, path: &str) -> Result<Request> {
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(req) = rx.recv().await {
            if req.method == method && req.path == path {
                return Ok(req);
            }
        }
        anyhow::bail!("the test server stopped")
    })
    .await
    .with_context(|| format!("no {method} {path} within 20 s"))?
}

fn is_png(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

#[tokio::test]
async fn fills_and_submits_a_form_waits_and_takes_screenshots() -> Result<()> {
    let (base, mut requests) = serve().await?;
    let dir = artefacts_dir("browser_harness_form");
    let b = Browser::start(&dir).await?;

    b.goto(&format!("{base}/")).await?;
    let get = next_request(&mut requests, "GET", "/").await?;
    let lang = get.header("accept-language").unwrap_or_default().to_string();
    let env_lang = ["LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"].map(|v| std::env::var(v).unwrap_or_default());
    if !env_lang.iter().any(|l| l.starts_with("zh")) {
        assert!(!lang.starts_with("zh"), "no --lang by default, yet Accept-Language is {lang:?}");
    }

    assert_eq!(b.text("#title").await?, "Branch check-in");
    assert_eq!(b.attr("#send", "data-role").await?.as_deref(), Some("send"));
    assert_eq!(b.attr("#send", "no-such-attribute").await?, None);
    assert!(b.source().await?.contains("<form method=\"post\" action=\"/submit\">"));
    b.wait_until(Duration::from_secs(5), "the script wrote `ready`", async |b: &Browser| {
        Ok(b.text("#later").await? == "ready")
    })
    .await?;

    // fill replaces the field's value; non-ASCII text survives the round trip.
    b.fill("#name", "branch 042 张伟 & co").await?;
    let filled = b.shot("form-filled").await?;
    assert_eq!(filled, dir.join("01-form-filled.png"));
    b.click("#send").await?;
    let post = next_request(&mut requests, "POST", "/submit").await?;
    assert_eq!(form_value(&post.body, "name").as_deref(), Some("branch 042 张伟 & co"), "{post:?}");
    let result = b.wait_for("#result", Duration::from_secs(10)).await?;
    assert_eq!(result.text().await?, "received branch 042 张伟 & co");
    assert!(b.client().current_url().await?.as_str().ends_with("/submit"));

    let submitted = b.shot("submitted").await?;
    assert_eq!(submitted, dir.join("02-submitted.png"));
    for shot in [&filled, &submitted] {
        let bytes = std::fs::read(shot).with_context(|| format!("reading {}", shot.display()))?;
        assert!(is_png(&bytes), "{} is not a PNG", shot.display());
        assert!(bytes.len() > 1000, "{} is suspiciously small", shot.display());
    }

    // A wait that times out names the selector and where the browser is.
    let err = b.wait_for("#never-there", Duration::from_millis(300)).await.err().context("found #never-there")?;
    let msg = format!("{err:#}");
    assert!(msg.contains("#never-there") && msg.contains(&format!("{base}/submit")), "{msg}");
    let err = b
        .wait_until(Duration::from_millis(300), "the moon turns blue", async |b: &Browser| {
            Ok(b.text("#result").await?.contains("blue"))
        })
        .await
        .err()
        .context("the moon turned blue")?;
    let msg = format!("{err:#}");
    assert!(msg.contains("the moon turns blue") && msg.contains("/submit"), "{msg}");

    b.close().await
}

#[tokio::test]
async fn a_language_is_sent_as_accept_language() -> Result<()> {
    let (base, mut requests) = serve().await?;
    let b = Browser::start_with(&artefacts_dir("browser_harness_lang"), Some("zh-CN")).await?;
    b.goto(&format!("{base}/")).await?;
    let get = next_request(&mut requests, "GET", "/").await?;
    let lang = get.header("accept-language").context("no Accept-Language header")?;
    assert!(lang.starts_with("zh-CN"), "Accept-Language: {lang}");
    let nav = b.client().execute("return navigator.language", vec![]).await?;
    assert_eq!(nav, "zh-CN");
    let shot = b.shot("zh-CN").await?;
    assert!(is_png(&std::fs::read(&shot)?));
    b.close().await
}
