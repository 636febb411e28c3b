//! The web console in a real browser (headless Chromium over WebDriver) in front of a real
//! branch: simulated cameras and alarm panel, the real gateway, mosquitto, and
//! `hq serve --with-listener` on SQLite. A duty officer signs in (in Chinese, from the
//! browser's language); a camera stops and the branch's tile turns red and names the
//! unwatched zone without a reload; the branch page shows the zone uncovered; an alarm
//! appears on the open list by itself and is acknowledged with a comment; the assessment
//! page covers the period. Screenshots of every step go to
//! `target/test-artefacts/console_browser/`, with the measured MQTT-to-tile latency.

use crate::hq_common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use device_sim::camera::CameraFault;
use harness::browser::{Browser, artefacts_dir};
use harness::{Mosquitto, PahoSubscriber};
use hq_common::*;

const TIMEOUT: Duration = Duration::from_secs(60);

/// `document.getElementById(id)?.dataset.state` in the page.
async fn tile_state(c: &fantoccini::Client, id: &str) -> Result<String> {
    let v = c
        .execute(
            "var e = document.getElementById(arguments[0]); return e ? e.getAttribute('data-state') : '';",
            vec![serde_json::json!(id)],
        )
        .await?;
    Ok(v.as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duty_officer_sees_a_branch_turn_red_and_acknowledges_its_alarm() -> Result<()> {
    let broker = Mosquitto::start()?;
    let work = tempfile::tempdir()?;
    let cwd = work.path();
    let db = format!("sqlite://{}", cwd.join("hq.db").display());
    hq(cwd, &["migrate", "--db", &db])?;
    add_user(cwd, &db, "duty", "operator", "duty-officer-pw")?;
    let dir = cwd.join("branches.csv");
    std::fs::write(&dir, "id,name,region,address,contacts\nb1,朝阳支行,华北,北京市朝阳区,张三 010-1234\n")?;
    let (_console, base) = start_console(broker.port, &db, cwd, &["--directory", dir.to_str().context("path")?])?;
    let branch = start_branch("b1", broker.port, cwd).await?;
    let mut sub = PahoSubscriber::start(broker.port, &["branches/b1/coverage", "branches/b1/alerts/#"])?;

    let art = artefacts_dir("console_browser");
    let b = Browser::start_with(&art, Some("zh-CN")).await?;
    let r = run(&b, &base, &branch, &mut sub, &art).await;
    if r.is_err() {
        let _ = b.shot("failure").await;
    }
    b.close().await?;
    r
}

async fn run(b: &Browser, base: &str, branch: &Branch, sub: &mut PahoSubscriber, art: &std::path::Path) -> Result<()> {
    // Sign in: the console asks first, in the browser's language.
    b.goto(&format!("{base}/")).await?;
    b.wait_for("#login", TIMEOUT).await?;
    if !b.source().await?.contains("登录") {
        bail!("the sign-in page is not in Chinese for a zh-CN browser");
    }
    b.fill("input[name=user]", "duty").await?;
    b.fill("input[name=password]", "duty-officer-pw").await?;
    b.shot("sign-in").await?;
    b.click("#login button[type=submit]").await?;
    b.wait_for("#tiles", TIMEOUT).await?;

    // The branch comes up green once its gateway has polled the cameras.
    b.wait_until(TIMEOUT, "b1's tile is green", async |b: &Browser| {
        Ok(tile_state(b.client(), "t-b1").await? == "green")
    })
    .await?;
    let tile = b.text("#t-b1").await?;
    if !tile.contains("朝阳支行") {
        bail!("the tile shows the directory's name: {tile:?}");
    }
    b.shot("overview-green").await?;

    // A reload would reset this: the tile must change in place.
    b.client().execute("window.__sameDocument = 42; return 1;", vec![]).await?;
    let watcher = {
        let c = b.client().clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + TIMEOUT;
            while Instant::now() < deadline {
                if tile_state(&c, "t-b1").await.unwrap_or_default() == "red" {
                    return Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            None
        })
    };
    branch.cams.set_fault("cam-1", CameraFault::Down, true)?;
    let msg_at = tokio::task::block_in_place(|| {
        sub.wait_for(TIMEOUT, |m| {
            m.topic == "branches/b1/coverage" && m.json()["totals"]["required_zones_uncovered"] == 1
        })
        .map(|_| Instant::now())
    })
    .context("the gateway never reported the vault uncovered")?;
    let red_at = watcher.await?.context("b1's tile did not turn red")?;
    let latency = red_at.saturating_duration_since(msg_at);
    let same = b.client().execute("return window.__sameDocument || 0;", vec![]).await?;
    if same != serde_json::json!(42) {
        bail!("the page was reloaded; the tile should have changed in place");
    }
    let tile = b.text("#t-b1").await?;
    if !tile.contains("Vault") || !tile.contains("无人看护") {
        bail!("the red tile names the unwatched zone: {tile:?}");
    }
    b.shot("overview-red").await?;
    std::fs::write(
        art.join("latency.json"),
        serde_json::json!({"mqtt_message_to_tile_ms": latency.as_millis() as u64}).to_string(),
    )?;
    println!("MQTT coverage message → tile red in the browser: {} ms", latency.as_millis());

    // The branch page shows the zone uncovered and the camera's state.
    b.goto(&format!("{base}/branch/b1")).await?;
    b.wait_for("#z-vault", TIMEOUT).await?;
    let zone = b.text("#z-vault").await?;
    if !zone.contains("无人看护") {
        bail!("the vault row says uncovered: {zone:?}");
    }
    let class = b.attr("#z-vault", "class").await?.unwrap_or_default();
    if !class.contains("uncovered") {
        bail!("the vault row is marked: {class:?}");
    }
    b.shot("branch-uncovered").await?;

    // An alarm while the vault camera is down: it appears on the open list by itself.
    b.goto(&format!("{base}/alerts")).await?;
    b.wait_for("#list", TIMEOUT).await?;
    b.client().execute("window.__sameDocument = 43; return 1;", vec![]).await?;
    branch.panels.set_point("alarm-1", "zone.1", "alarm")?;
    let alarm = tokio::task::block_in_place(|| {
        sub.wait_for(TIMEOUT, |m| m.topic == "branches/b1/alerts/alarm-link" && m.json()["state"] == "raised")
    })
    .context("no alarm-link from the gateway")?
    .json();
    let id = alarm["id"].as_str().context("alarm id")?.to_string();
    let row = format!("tr[data-alert='{id}']");
    b.wait_for(&row, TIMEOUT).await?;
    let same = b.client().execute("return window.__sameDocument || 0;", vec![]).await?;
    if same != serde_json::json!(43) {
        bail!("the alert list was reloaded; the alarm should have appeared in place");
    }
    let text = b.text(&row).await?;
    if !text.contains("联动摄像机当时故障") {
        bail!("the alarm is marked as raised with its camera down: {text:?}");
    }
    b.shot("alarm-open").await?;
    b.fill(&format!("{row} input[name=comment]"), "已电话联系网点，保安到场核实").await?;
    b.click(&format!("{row} button[type=submit]")).await?;
    b.goto(&format!("{base}/alerts?state=acked")).await?;
    b.wait_for(&row, TIMEOUT).await?;
    let text = b.text(&row).await?;
    if !text.contains("duty") || !text.contains("保安到场核实") {
        bail!("the acknowledgement shows who and what: {text:?}");
    }
    b.shot("alarm-acknowledged").await?;

    // The assessment of the last hour: the branch, its camera down time, the alarm.
    b.goto(&format!("{base}/assessment?from=-1h")).await?;
    b.wait_for("#branches", TIMEOUT).await?;
    let page = b.source().await?;
    for want in ["朝阳支行", "报警时联动摄像机故障", "assessment.csv?"] {
        if !page.contains(want) {
            bail!("the assessment page lacks {want:?}");
        }
    }
    b.shot("assessment").await?;
    Ok(())
}
