//! Rectification orders against a real branch (simulated cameras and panel, the real gateway,
//! mosquitto, `hq serve --with-listener` checking every second), on each database, with the
//! thresholds shortened in the configuration file: the vault camera stops, and an order opens
//! for the camera and one for the required zone after their thresholds, assigned by region;
//! an operator takes one; the zone's goes overdue; the camera comes back and both are fixed;
//! it stops again during the re-check and the orders reopen; it comes back for good and they
//! are verified after the re-check period. An order opened by hand is closed by hand, and the
//! assessment ranks the branch with its overdue order.

use crate::hq_common;

use std::time::Duration;

use anyhow::{Context, Result};
use device_sim::camera::CameraFault;
use harness::Mosquitto;
use hq_common::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_follow_a_real_fault_to_its_verified_fix_sqlite() -> Result<()> {
    orders_follow_a_real_fault(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_follow_a_real_fault_to_its_verified_fix_postgres() -> Result<()> {
    orders_follow_a_real_fault(Backend::Postgres).await
}

const CONFIG: &str = r#"
[orders]
check_every = "1s"
camera_offline = "3s"
zone_uncovered = "2s"
verify_for = "8s"
default_assignee = "设备科"

[orders.deadline]
critical = "6s"
major = "10m"

[[orders.assign]]
region = "华北"
to = "华北安保部"

[score]
overdue = 10.0
"#;

/// The active orders of b1, by condition.
fn active(cwd: &std::path::Path, db: &str, cfg: &str) -> Result<Vec<Value>> {
    let v = hq_json(
        cwd,
        &["orders", "list", "--db", db, "--config", cfg, "--branch", "b1", "--state", "active", "--format", "json"],
    )?;
    Ok(v["orders"].as_array().cloned().unwrap_or_default())
}

fn find<'a>(orders: &'a [Value], condition: &str) -> Option<&'a Value> {
    orders.iter().find(|o| {
        o["condition"] == condition && ["open", "in-progress", "fixed"].contains(&o["state"].as_str().unwrap_or(""))
    })
}

fn state_of(cwd: &std::path::Path, db: &str, cfg: &str, id: i64) -> Result<Value> {
    hq_json(cwd, &["orders", "show", &id.to_string(), "--db", db, "--config", cfg, "--format", "json"])
}

async fn orders_follow_a_real_fault(backend: Backend) -> Result<()> {
    let broker = Mosquitto::start()?;
    let work = tempfile::tempdir()?;
    let cwd = work.path();
    let db = TestDb::new(backend, cwd)?;
    let url = db.url.clone();
    hq(cwd, &["migrate", "--db", &url])?;
    add_user(cwd, &url, "op", "operator", "op-password-long")?;
    let cfg_path = cwd.join("hq.toml");
    std::fs::write(&cfg_path, CONFIG)?;
    let cfg = cfg_path.to_str().context("path")?.to_string();
    let dir = cwd.join("branches.csv");
    std::fs::write(&dir, "id,name,region\nb1,朝阳支行,华北\n")?;
    let (_console, base) =
        start_console(broker.port, &url, cwd, &["--directory", dir.to_str().context("path")?, "--config", &cfg])?;
    let branch = start_branch("b1", broker.port, cwd).await?;
    eventually(Duration::from_secs(30), "b1 reports itself covered", || {
        let v = hq_json(cwd, &["coverage", "--db", &url, "--format", "json"])?;
        let b = v["branches"].as_array().and_then(|a| a.iter().find(|b| b["branch"] == "b1")).cloned();
        Ok(b.filter(|b| b["required_zones_uncovered"] == 0 && b["cameras_online"] == 2).map(|_| ()))
    })?;
    assert!(active(cwd, &url, &cfg)?.is_empty(), "no order while everything works");

    // The vault camera stops: an order for the zone (critical) and for the camera (major).
    branch.cams.set_fault("cam-1", CameraFault::Down, true)?;
    let (zone, cam) = eventually(Duration::from_secs(30), "orders open for the zone and the camera", || {
        let list = active(cwd, &url, &cfg)?;
        Ok(match (find(&list, "zone-uncovered"), find(&list, "camera-offline")) {
            (Some(z), Some(c)) => Some((z.clone(), c.clone())),
            _ => None,
        })
    })?;
    assert_eq!(zone["severity"], "critical", "{zone}");
    assert_eq!(zone["subject"], "vault", "{zone}");
    assert_eq!(zone["assignee"], "华北安保部", "assigned by region: {zone}");
    assert_eq!(cam["severity"], "major", "{cam}");
    assert_eq!(cam["subject"], "cam-1", "{cam}");
    assert!(zone["requirement_zh"].as_str().unwrap_or("").contains("必防区"), "{zone}");
    let zone_id = zone["id"].as_i64().context("id")?;
    let cam_id = cam["id"].as_i64().context("id")?;

    // An operator takes the camera's order in the console.
    let mut op = Web::new(&base)?;
    assert_eq!(op.login("op", "op-password-long").await?.status, 303);
    let page = op.get(&format!("/orders/{cam_id}")).await?;
    assert_eq!(page.status, 200);
    let csrf = page.csrf()?;
    let r = op.post(&format!("/orders/{cam_id}/take"), &[("csrf", &csrf), ("note", "维修人员已出发")]).await?;
    assert_eq!(r.status, 303, "{r:?}");
    let r = op.post(&format!("/orders/{cam_id}/take"), &[("csrf", &csrf), ("note", "twice")]).await?;
    assert_eq!(r.status, 409, "taking an order twice: {r:?}");
    assert_eq!(state_of(cwd, &url, &cfg, cam_id)?["state"], "in-progress");

    // The zone's deadline (6 s) passes: overdue, once.
    let z = eventually(Duration::from_secs(30), "the zone's order goes overdue", || {
        let v = state_of(cwd, &url, &cfg, zone_id)?;
        Ok((v["overdue"] == true && !v["overdue_at"].is_null()).then_some(v))
    })?;
    let overdue_events = z["history"].as_array().map_or(0, |h| h.iter().filter(|e| e["action"] == "overdue").count());
    assert_eq!(overdue_events, 1, "{z}");
    let list = op.get("/orders?overdue=1").await?;
    assert!(list.body.contains(&format!("id=\"order-{zone_id}\"")), "the overdue list has it");

    // The camera comes back: both fixed.
    branch.cams.set_fault("cam-1", CameraFault::Down, false)?;
    eventually(Duration::from_secs(30), "both orders are fixed", || {
        Ok((state_of(cwd, &url, &cfg, zone_id)?["state"] == "fixed"
            && state_of(cwd, &url, &cfg, cam_id)?["state"] == "fixed")
            .then_some(()))
    })?;

    // It fails again during the re-check (8 s): reopened; the taken one goes back in progress.
    branch.cams.set_fault("cam-1", CameraFault::Down, true)?;
    eventually(Duration::from_secs(30), "the orders reopen", || {
        let (z, c) = (state_of(cwd, &url, &cfg, zone_id)?, state_of(cwd, &url, &cfg, cam_id)?);
        Ok((z["state"] == "open" && z["reopened"] == 1 && c["state"] == "in-progress" && c["reopened"] == 1)
            .then_some(()))
    })?;
    assert_eq!(active(cwd, &url, &cfg)?.len(), 2, "reopened, not opened again");

    // Back for good: fixed, then verified after the re-check period.
    branch.cams.set_fault("cam-1", CameraFault::Down, false)?;
    let v = eventually(Duration::from_secs(45), "the orders are verified", || {
        let (z, c) = (state_of(cwd, &url, &cfg, zone_id)?, state_of(cwd, &url, &cfg, cam_id)?);
        Ok((z["state"] == "verified" && c["state"] == "verified").then_some(c))
    })?;
    let actions: Vec<&str> =
        v["history"].as_array().context("history")?.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["opened", "taken", "fixed", "reopened", "fixed", "verified"], "{v}");
    let fixed = v["history"].as_array().context("history")?;
    assert_eq!(fixed[1]["actor"], "op", "who took it: {v}");
    assert_eq!(fixed[2]["actor"], "hq", "the check fixed it: {v}");
    let page = op.get(&format!("/orders/{cam_id}")).await?;
    assert!(page.body.contains("维修人员已出发"), "the history shows the note");
    assert!(active(cwd, &url, &cfg)?.is_empty());

    // By hand: opened in the console, closed at the command line with a reason.
    let csrf = op.csrf().await?;
    let r = op
        .post(
            "/orders/open",
            &[("csrf", &csrf), ("branch", "b1"), ("title", "点钞机移出摄像机视野"), ("severity", "minor")],
        )
        .await?;
    assert_eq!(r.status, 303, "{r:?}");
    let manual: i64 = r.location().trim_start_matches("/orders/").parse().context("order id in the redirect")?;
    let m = state_of(cwd, &url, &cfg, manual)?;
    assert_eq!(
        (m["condition"].as_str(), m["state"].as_str(), m["assignee"].as_str()),
        (Some("manual"), Some("open"), Some("华北安保部"))
    );
    let (code, _, err) = hq_raw(cwd, &["orders", "close", &manual.to_string(), "--db", &url, "--reason", " "])?;
    assert_eq!(code, 2, "an empty reason: {err}");
    hq(cwd, &["orders", "close", &manual.to_string(), "--db", &url, "--by", "张主任", "--reason", "已移回原位"])?;
    let m = state_of(cwd, &url, &cfg, manual)?;
    assert_eq!(m["state"], "closed", "{m}");
    let (code, _, err) = hq_raw(cwd, &["orders", "close", &manual.to_string(), "--db", &url, "--reason", "again"])?;
    assert_eq!(code, 1, "closing a closed order: {err}");
    assert!(err.contains("closed already"), "{err}");

    // The assessment ranks the branch with its orders: two opened, one overdue.
    let a = op.get("/assessment?from=-1h").await?;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("id=\"scores\""), "the ranking is on the page");
    let csv = op.get("/assessment/scores.csv?from=-1h").await?;
    let line = csv.body.lines().find(|l| l.contains(",b1,")).context("b1 in the scores")?.to_string();
    let cols: Vec<&str> = line.split(',').collect();
    assert_eq!((cols[7], cols[9]), ("3", "1"), "orders opened (2 automatic + 1 by hand) and overdue: {line}");
    Ok(())
}
