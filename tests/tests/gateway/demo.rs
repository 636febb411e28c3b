//! The README's first command: the demo plays its scenario over real sockets (embedded
//! broker, simulated branch, the gateway, a head-office view) and the head-office view
//! prints the camera loss, the alarm with its camera down, the forced door, the recovery and
//! the coverage table, then stops cleanly. Meanwhile its web console, at the URL and with the
//! login it prints, shows the demo branch turn red.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harness::bin;

/// `console     http://127.0.0.1:PORT/  (sign in as demo / PASSWORD; …)` → (URL, user, password).
fn console_line(line: &str) -> Option<(String, String, String)> {
    let rest = line.trim().strip_prefix("console")?.trim();
    let (url, rest) = rest.split_once(' ')?;
    let creds = rest.split("sign in as ").nth(1)?.split(';').next()?;
    let (user, password) = creds.split_once(" / ")?;
    Some((url.trim_end_matches('/').to_string(), user.to_string(), password.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_every_alert_kind_at_head_office() {
    let mut child = Command::new(bin("branch-demo"))
        .args(["--exit-after", "38s"])
        // The demo speaks the locale's language; these needles are the English (a zh_CN
        // machine would get Chinese, as README says).
        .env("LANG", "C.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run branch-demo");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (base, user, password) = loop {
        let line = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("no console line");
        text.push_str(&line);
        text.push('\n');
        if let Some(c) = console_line(&line) {
            break c;
        }
    };

    // The console, as a newcomer would open it: sign in with the printed login, see the tile.
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = client
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("user={user}&password={password}&next=%2F"))
        .send()
        .await
        .expect("sign in");
    assert_eq!(login.status().as_u16(), 303, "the printed login works");
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let mut states = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let body = client
            .get(format!("{base}/api/overview"))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("overview")
            .text()
            .await
            .expect("body");
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let b = v["branches"].as_array().and_then(|a| a.iter().find(|b| b["id"] == "demo-0101")).cloned();
        if let Some(b) = b {
            states.push(b["state"].as_str().unwrap_or_default().to_string());
            if b["state"] == "red" {
                assert_eq!(b["name"], "示范支行 Demo branch", "{b}");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(states.last().map(String::as_str), Some("red"), "the demo branch turns red on the console: {states:?}");

    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().expect("demo output");
    for line in rx.iter() {
        text.push_str(&line);
        text.push('\n');
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed: {err}\n{text}");
    for needle in [
        "gateway demo-0101 is online",
        "RAISED  CRITICAL camera-offline  cam-04",
        "NO — unwatched",
        "alarm-link",
        "a linked camera is DOWN",
        "door-status",
        "forced open",
        "cleared info     camera-offline  cam-04",
        "gateway demo-0101 is offline",
        // Head office stored it all in SQLite and assessed it.
        "Head office's database (sqlite://",
        "alarms 1, with a camera down: 1",
        "mean time to repair (camera)",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in the demo output:\n{text}");
    }
    assert!(!err.contains("panicked"));
}

/// `--lang zh-CN` (or a Chinese locale): the demo's own lines are Chinese too, not only the
/// alerts — what a branch's installer sees first.
#[test]
fn the_demo_speaks_chinese_when_asked() {
    let out = Command::new(bin("branch-demo"))
        .args(["--exit-after", "9s", "--lang", "zh-CN"])
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .output()
        .expect("run the demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{text}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "网点安防网关 — 演示",
        "网页控制台",
        "[总行] 网关 demo-0101",
        "的看护情况",
        "[场景] 布防入侵报警",
        "[演示] 正在停止",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in the Chinese demo output:\n{text}");
    }
    for english in ["Branch security gateway", "head office subscribed", "[scenario]", "coverage of"] {
        assert!(!text.contains(english), "English {english:?} in the Chinese demo output:\n{text}");
    }
}
