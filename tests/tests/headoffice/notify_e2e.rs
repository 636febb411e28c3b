//! Notifications reach real local receivers: a loopback server that checks WeCom's and
//! DingTalk's request shapes and DingTalk's signature, a signed webhook, an SMS gateway
//! (tests/peers/notify_receiver.py), and aiosmtpd speaking real SMTP. Branch data arrives
//! through mosquitto into `hq serve --with-listener` on each database. A 12-camera outage is
//! one message per channel; an alarm not acknowledged in time is escalated; a receiver that is
//! down gets its message once it is back, once; `hq notify test` reports the receiver's
//! answer; a broken configuration is refused at start with the file, the field and the fix.

use crate::hq_common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use harness::{Mosquitto, Proc, python, workspace_root};
use hq_common::*;
use protocols::AlertState;
use serde_json::Value;

/// A child whose stdout lines are collected.
struct Peer {
    proc: Proc,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Peer {
    fn start(args: &[&str], ready: &str) -> Result<Peer> {
        let mut child = Command::new(python())
            .arg("-u")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::null())
            .spawn()
            .context("start a Python peer (run scripts/test --setup-only)")?;
        let out = child.stdout.take().context("stdout")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let p = Peer { proc: Proc { child, name: "peer".into() }, lines };
        if !ready.is_empty() {
            eventually(Duration::from_secs(20), "the peer is ready", || Ok(p.text().contains(ready).then_some(())))?;
        }
        Ok(p)
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
    }

    /// The receiver's JSON lines of `channel`.
    fn got(&self, channel: &str) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["channel"] == channel)
            .collect()
    }
}

fn receiver(port: u16) -> Result<Peer> {
    let script = workspace_root().join("tests/peers/notify_receiver.py");
    Peer::start(
        &[
            script.to_str().context("path")?,
            &port.to_string(),
            "wk-key",
            "dt-token",
            "SECdt-secret",
            "hook-secret",
            "sms-token",
        ],
        "\"ready\"",
    )
}

/// The configuration; `ca`: the SMTP server's certificate (STARTTLS), or none (plain SMTP).
fn config(http: u16, smtp: u16, ca: Option<&str>) -> String {
    let security = match ca {
        Some(ca) => format!("security = \"starttls\"\nca_file = \"{ca}\""),
        None => "security = \"none\"".to_string(),
    };
    format!(
        r#"
[notify]
console_url = "http://console.example/"
group_window = "2s"
retry_for = "10m"

[notify.channel.duty]
type = "wecom"
url = "http://127.0.0.1:{http}/wecom/send?key=wk-key"

[notify.channel.boss]
type = "dingtalk"
url = "http://127.0.0.1:{http}/dingtalk/send?access_token=dt-token"
secret = "SECdt-secret"
lang = "en"

[notify.channel.hook]
type = "webhook"
url = "http://127.0.0.1:{http}/hook"
secret = "hook-secret"

[notify.channel.sms]
type = "sms"
url = "http://127.0.0.1:{http}/sms"
token = "sms-token"
to = ["13800000000"]

[notify.channel.mail]
type = "email"
smtp = "127.0.0.1:{smtp}"
{security}
from = "hq@bank.example"
to = ["duty@bank.example", "manager@bank.example"]

[[notify.rule]]
name = "cameras"
events = ["camera-offline"]
severity_min = "major"
channels = ["duty", "hook"]

[[notify.rule]]
name = "alarms"
events = ["alarm-link"]
channels = ["boss", "mail", "sms"]
escalate_after = "4s"
escalate_to = "managers"

[[notify.rule]]
name = "managers"
events = []
channels = ["duty"]

[[notify.rule]]
name = "orders"
events = ["order-overdue"]
channels = ["hook"]

[orders]
check_every = "1s"

[orders.deadline]
critical = "3s"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_real_receivers_sqlite() -> Result<()> {
    notifications(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_real_receivers_postgres() -> Result<()> {
    notifications(Backend::Postgres).await
}

async fn notifications(backend: Backend) -> Result<()> {
    let broker = Mosquitto::start()?;
    let work = tempfile::tempdir()?;
    let cwd = work.path();
    let db = TestDb::new(backend, cwd)?;
    let url = db.url.clone();
    hq(cwd, &["migrate", "--db", &url])?;
    let http = harness::free_port();
    let smtp = harness::free_port();
    let mut rx = receiver(http)?;
    // aiosmtpd with a certificate requires STARTTLS before it takes a message.
    let (cert, key) = (cwd.join("smtp-cert.pem"), cwd.join("smtp-key.pem"));
    let st = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("openssl")?;
    assert!(st.success(), "openssl made the SMTP server's certificate");
    let (cert_s, key_s) = (cert.to_str().context("path")?, key.to_str().context("path")?);
    let listen = format!("127.0.0.1:{smtp}");
    let mail = Peer::start(&["-m", "aiosmtpd", "-n", "-l", &listen, "--tlscert", cert_s, "--tlskey", key_s], "")?;
    harness::wait_for_port(smtp, Duration::from_secs(20))?;
    let cfg_path = cwd.join("hq.toml");
    std::fs::write(&cfg_path, config(http, smtp, Some(cert_s)))?;
    let cfg = cfg_path.to_str().context("path")?.to_string();
    let dir = cwd.join("branches.csv");
    std::fs::write(&dir, "id,name,region\nb1,朝阳支行,华北\nb2,海淀支行,华北\n")?;

    // `hq notify test` reports what the receiver answered; a signature the receiver checks.
    let out = hq(cwd, &["notify", "test", "boss", "--config", &cfg, "--db", &url])?;
    assert!(out.contains("delivered") && out.contains("\"errcode\": 0"), "{out}");
    assert_eq!(rx.got("dingtalk").iter().filter(|v| v["ok"] == true).count(), 1, "{}", rx.text());
    let (code, _, err) = hq_raw(cwd, &["notify", "test", "pager", "--config", &cfg, "--db", &url])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no channel \"pager\"") && err.contains("boss"), "{err}");

    let (_console, _base) =
        start_console(broker.port, &url, cwd, &["--directory", dir.to_str().context("path")?, "--config", &cfg])?;
    let mut p = Publisher::connect(broker.port, "test-branches")?;

    // A power cut: 12 cameras of b1 at once → one WeCom message, one webhook call.
    let now = chrono::Utc::now();
    for i in 1..=12 {
        let mut a = camera_offline("b1", i, &format!("cam-{i:02}"), AlertState::Raised, now);
        a.severity = protocols::Severity::Critical;
        p.alert(&a)?;
    }
    p.flush()?;
    eventually(Duration::from_secs(30), "the storm reaches WeCom and the webhook", || {
        Ok((rx
            .got("wecom")
            .iter()
            .any(|v| v["ok"] == true && v["body"]["markdown"]["content"].as_str().unwrap_or("").contains("12"))
            && rx.got("webhook").iter().any(|v| v["ok"] == true))
        .then_some(()))
    })?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let wecom: Vec<Value> = rx.got("wecom").into_iter().filter(|v| v["ok"] == true).collect();
    assert_eq!(wecom.len(), 1, "one grouped message, not 12: {wecom:#?}");
    let content = wecom[0]["body"]["markdown"]["content"].as_str().unwrap_or("");
    assert!(
        content.contains("朝阳支行")
            && content.contains("12 条")
            && content.contains("http://console.example/branch/b1"),
        "{content}"
    );
    let hooks: Vec<Value> = rx.got("webhook").into_iter().filter(|v| v["ok"] == true).collect();
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    assert_eq!(hooks[0]["body"]["events"].as_array().map(Vec::len), Some(12), "{}", hooks[0]);
    assert!(rx.got("webhook").iter().all(|v| v["ok"] == true), "every webhook call carried a good signature");

    // An alarm: DingTalk (signed, in English), e-mail to both addresses, SMS; not acknowledged
    // within 4 s → escalated to the managers' WeCom.
    p.alert(&alarm("b1", 13, chrono::Utc::now(), vec![linked("cam-01", false)]))?;
    p.flush()?;
    eventually(Duration::from_secs(30), "the alarm reaches DingTalk, SMS and e-mail", || {
        let mails = mail.text().matches("END MESSAGE").count();
        Ok((rx.got("dingtalk").iter().filter(|v| v["ok"] == true).count() == 2
            && rx.got("sms").iter().any(|v| v["ok"] == true)
            && mails >= 2)
            .then_some(()))
    })?;
    let dt = rx.got("dingtalk").into_iter().rfind(|v| v["ok"] == true).context("dingtalk")?;
    let text = dt["body"]["markdown"]["text"].as_str().unwrap_or("");
    assert!(text.contains("ALARM in zone Vault door") && text.contains("linked camera is DOWN"), "{text}");
    let smtp_log = mail.text();
    assert!(smtp_log.contains("duty@bank.example") && smtp_log.contains("manager@bank.example"), "{smtp_log}");
    assert_eq!(smtp_log.matches("END MESSAGE").count(), 2, "one e-mail per address: {smtp_log}");
    assert!(
        rx.got("dingtalk").iter().all(|v| v["ok"] == true),
        "every DingTalk request was signed right: {}",
        rx.text()
    );
    eventually(Duration::from_secs(30), "the unacknowledged alarm is escalated", || {
        Ok(rx
            .got("wecom")
            .iter()
            .any(|v| v["body"]["markdown"]["content"].as_str().unwrap_or("").contains("【升级】"))
            .then_some(()))
    })?;

    // The receiver goes down; an alarm of b2 waits and arrives once it is back, once.
    rx.proc.kill();
    let _ = rx.proc.child.wait();
    p.alert(&alarm("b2", 1, chrono::Utc::now(), vec![linked("cam-01", true)]))?;
    p.flush()?;
    eventually(Duration::from_secs(30), "the failed attempt is recorded", || {
        let v = hq_json(cwd, &["notify", "list", "--db", &url, "--format", "json"])?;
        let waiting = v["notifications"].as_array().is_some_and(|a| {
            a.iter().any(|n| {
                n["channel"] == "boss" && n["branch"] == "b2" && n["state"] == "pending" && !n["last_error"].is_null()
            })
        });
        Ok(waiting.then_some(()))
    })?;
    rx = receiver(http)?;
    eventually(Duration::from_secs(60), "the waiting message is delivered", || {
        Ok(rx
            .got("dingtalk")
            .iter()
            .any(|v| v["ok"] == true && v["body"]["markdown"]["text"].as_str().unwrap_or("").contains("海淀支行"))
            .then_some(()))
    })?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let b2 = rx
        .got("dingtalk")
        .into_iter()
        .filter(|v| v["body"]["markdown"]["text"].as_str().unwrap_or("").contains("海淀支行"))
        .count();
    assert_eq!(b2, 1, "delivered once: {}", rx.text());
    // An order past its deadline is escalated on the rule for overdue orders.
    let out = hq(
        cwd,
        &[
            "orders",
            "open",
            "--db",
            &url,
            "--config",
            &cfg,
            "--branch",
            "b2",
            "--title",
            "金库门禁读卡器损坏",
            "--severity",
            "critical",
        ],
    )?;
    assert!(out.contains("opened"), "{out}");
    eventually(Duration::from_secs(30), "the overdue order reaches the webhook", || {
        Ok(rx
            .got("webhook")
            .iter()
            .any(|v| v["ok"] == true && v["body"]["events"][0]["kind"] == "order-overdue")
            .then_some(()))
    })?;
    let v = hq_json(cwd, &["notify", "list", "--db", &url, "--format", "json"])?;
    let sent = v["notifications"].as_array().context("list")?.iter().filter(|n| n["state"] == "sent").count();
    assert!(sent >= 7, "{v:#}");
    drop(mail);
    Ok(())
}

#[test]
fn a_broken_notification_configuration_is_refused_at_start() -> Result<()> {
    let work = tempfile::tempdir()?;
    let cwd = work.path();
    let db = format!("sqlite://{}", cwd.join("hq.db").display());
    hq(cwd, &["migrate", "--db", &db])?;
    let ca = cwd.join("ca.pem");
    std::fs::write(&ca, "not a certificate\n")?;
    let not_pem = format!("security = \"starttls\"\nca_file = \"{}\"", ca.display());
    let good = config(1, 2, None);
    for (from, to, says) in [
        (
            "channels = [\"boss\", \"mail\", \"sms\"]",
            "channels = [\"boss\", \"pager\"]",
            "notify.rule[1] (\"alarms\").channels: no channel named \"pager\"",
        ),
        ("secret = \"SECdt-secret\"", "secret = \"\"", "notify.channel.boss.secret is empty"),
        ("url = \"http://127.0.0.1:1/hook\"", "url = \"hook\"", "notify.channel.hook.url"),
        ("type = \"sms\"", "type = \"pager\"", "pager"),
        (
            "security = \"none\"",
            "security = \"starttls\"\nca_file = \"/nonexistent/ca.pem\"",
            "notify.channel.mail.ca_file \"/nonexistent/ca.pem\": cannot read it",
        ),
        ("security = \"none\"", not_pem.as_str(), "not a PEM certificate"),
    ] {
        if !good.contains(from) {
            bail!("the test's configuration lacks {from:?}");
        }
        let path = cwd.join("bad.toml");
        std::fs::write(&path, good.replacen(from, to, 1))?;
        let port = harness::free_port().to_string();
        let (code, _, err) = hq_raw(
            cwd,
            &["serve", "--db", &db, "--bind", &format!("127.0.0.1:{port}"), "--config", path.to_str().context("path")?],
        )?;
        assert_eq!(code, 2, "{to}: {err}");
        assert!(err.contains("bad.toml") && err.contains(says), "{to}: {err}");
    }
    Ok(())
}
