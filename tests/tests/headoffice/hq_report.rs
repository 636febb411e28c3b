//! Head office answers the assessment questions from the MQTT data alone.
//!
//! Three simulated branches publish real protocol payloads to a real mosquitto, with scripted
//! timestamps inside the window 10:00–11:00 so that every expected number is exact:
//!
//! - b1: cam-2 offline 10:15–10:30 (75 %), so the required zone `vault` is uncovered 15 min;
//!   an alarm at 10:20 whose linked camera cam-2 is down; another at 10:40 with it up.
//! - b2: cam-1 lost at 09:30 (before the window) and back at 10:06 (90 %); cam-3 lost at 10:50
//!   and never back (83.333 %), leaving the required zone `atm` uncovered 10 min; the gateway
//!   offline 10:40–10:52 (80 % online).
//! - b3: cam-9 frozen 10:30–10:45, known only from its device health (75 %); the alarm panel's
//!   `ac-loss` fault 10:10–10:20 (MTTR 10 min).

use crate::hq_common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use harness::Mosquitto;
use hq_common::*;
use protocols::{AlertState, DeviceType, GatewayState};
use serde_json::Value;

fn script(p: &mut Publisher) -> Result<()> {
    // b1
    p.gateway(&gateway("b1", GatewayState::Online, None, Some(t(-60))))?;
    p.device(&health("b1", camera("cam-1"), "online", t(-60)))?;
    p.device(&health("b1", camera("cam-2"), "online", t(-60)))?;
    let b1_zones =
        |vault_ok| [Z("lobby", "Lobby", true, &["cam-1"], true), Z("vault", "Vault", true, &["cam-2"], vault_ok)];
    p.coverage(&coverage("b1", t(0), &b1_zones(true), 2))?;
    p.alert(&camera_offline("b1", 1, "cam-2", AlertState::Raised, t(15)))?;
    p.device(&health("b1", camera("cam-2"), "offline", t(15)))?;
    p.coverage(&coverage("b1", t(15), &b1_zones(false), 1))?;
    p.alert(&alarm("b1", 2, t(20), vec![linked("cam-2", false), linked("cam-1", true)]))?;
    p.alert(&camera_offline("b1", 3, "cam-2", AlertState::Cleared, t(30)))?;
    p.device(&health("b1", camera("cam-2"), "online", t(30)))?;
    p.coverage(&coverage("b1", t(30), &b1_zones(true), 2))?;
    p.alert(&alarm("b1", 4, t(40), vec![linked("cam-2", true)]))?;

    // b2
    p.gateway(&gateway("b2", GatewayState::Online, None, Some(t(-60))))?;
    let b2_zones =
        |atm_ok| [Z("hall", "Hall", false, &["cam-1"], true), Z("atm", "ATM lobby", true, &["cam-3"], atm_ok)];
    p.coverage(&coverage("b2", t(-60), &b2_zones(true), 2))?;
    p.alert(&camera_offline("b2", 1, "cam-1", AlertState::Raised, t(-30)))?;
    p.alert(&camera_offline("b2", 2, "cam-1", AlertState::Cleared, t(6)))?;
    p.gateway(&gateway("b2", GatewayState::Offline, Some("shutdown"), Some(t(40))))?;
    p.gateway(&gateway("b2", GatewayState::Online, None, Some(t(52))))?;
    p.alert(&camera_offline("b2", 3, "cam-3", AlertState::Raised, t(50)))?;
    p.device(&health("b2", camera("cam-3"), "offline", t(50)))?;
    p.coverage(&coverage("b2", t(50), &b2_zones(false), 1))?;

    // b3
    p.gateway(&gateway("b3", GatewayState::Online, None, Some(t(-60))))?;
    p.coverage(&coverage("b3", t(-60), &[Z("counter", "Counter", true, &["cam-9"], true)], 1))?;
    p.device(&health("b3", camera("cam-9"), "online", t(-60)))?;
    let panel = || device("panel-1", DeviceType::AlarmPanel, "Intrusion panel");
    p.alert(&fault("b3", 1, panel(), "ac-loss", AlertState::Raised, t(10)))?;
    p.device(&health("b3", camera("cam-9"), "frozen", t(30)))?;
    p.device(&health("b3", camera("cam-9"), "online", t(45)))?;
    p.alert(&fault("b3", 2, panel(), "ac-loss", AlertState::Cleared, t(20)))?;
    p.flush()
}

const ALERTS_IN_SCRIPT: u64 = 9;

fn branch_of<'a>(v: &'a Value, b: &str) -> Result<&'a Value> {
    v["branches"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["branch"] == b))
        .with_context(|| format!("no {b} in {v:#}"))
}

fn camera_of<'a>(br: &'a Value, cam: &str) -> Result<&'a Value> {
    br["cameras"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == cam))
        .with_context(|| format!("no {cam} in {br:#}"))
}

fn check_report(r: &Value) -> Result<()> {
    ensure!(r["schema"] == "hq-report/1", "{r:#}");
    let b1 = branch_of(r, "b1")?;
    ensure!(approx(&camera_of(b1, "cam-2")?["online_pct"], 75.0), "b1 cam-2: {b1:#}");
    ensure!(approx(&camera_of(b1, "cam-1")?["online_pct"], 100.0), "b1 cam-1: {b1:#}");
    ensure!(approx(&b1["camera_availability_pct"], 87.5), "b1 availability: {b1:#}");
    let vault = b1["zones"].as_array().and_then(|z| z.iter().find(|z| z["id"] == "vault")).context("b1 vault")?;
    ensure!(approx(&vault["uncovered_minutes"], 15.0), "b1 vault: {vault:#}");
    let lobby = b1["zones"].as_array().and_then(|z| z.iter().find(|z| z["id"] == "lobby")).context("b1 lobby")?;
    ensure!(approx(&lobby["uncovered_minutes"], 0.0), "b1 lobby: {lobby:#}");
    ensure!(b1["alarms"] == 2, "b1 alarms: {b1:#}");
    let down = b1["alarms_with_camera_down"].as_array().context("alarms_with_camera_down")?;
    ensure!(down.len() == 1 && down[0]["seq"] == 2, "b1 alarms with camera down: {down:#?}");
    ensure!(down[0]["cameras_down"][0]["id"] == "cam-2" && down[0]["cameras_down"][0]["online"] == false, "{down:#?}");
    ensure!(b1["gateway_offline"].as_array().is_some_and(Vec::is_empty), "b1 gateway: {b1:#}");

    let b2 = branch_of(r, "b2")?;
    let cam1 = camera_of(b2, "cam-1")?;
    ensure!(approx(&cam1["online_pct"], 90.0), "b2 cam-1 (outage from before the window): {cam1:#}");
    ensure!(cam1["outages"][0]["from"] == "2026-01-01T10:00:00.000Z", "{cam1:#}");
    let cam3 = camera_of(b2, "cam-3")?;
    ensure!(approx(&cam3["online_pct"], 83.333) && cam3["outages"][0]["ongoing"] == true, "b2 cam-3: {cam3:#}");
    let atm = b2["zones"].as_array().and_then(|z| z.iter().find(|z| z["id"] == "atm")).context("b2 atm")?;
    ensure!(approx(&atm["uncovered_minutes"], 10.0), "b2 atm: {atm:#}");
    ensure!(b2["zones"].as_array().is_some_and(|z| z.len() == 1), "only required zones: {b2:#}");
    let off = b2["gateway_offline"].as_array().context("gateway_offline")?;
    ensure!(off.len() == 1, "b2 gateway offline periods: {off:#?}");
    ensure!(approx(&off[0]["minutes"], 12.0) && off[0]["reason"] == "shutdown", "{off:#?}");
    ensure!(off[0]["from"] == "2026-01-01T10:40:00.000Z" && off[0]["to"] == "2026-01-01T10:52:00.000Z", "{off:#?}");
    ensure!(approx(&b2["gateway_online_pct"], 80.0), "{b2:#}");

    let b3 = branch_of(r, "b3")?;
    let cam9 = camera_of(b3, "cam-9")?;
    ensure!(approx(&cam9["online_pct"], 75.0) && cam9["outages"][0]["reason"] == "frozen", "b3 cam-9: {cam9:#}");

    let mttr = r["mttr"].as_array().context("mttr")?;
    let of = |ty: &str| mttr.iter().find(|m| m["device_type"] == ty).with_context(|| format!("mttr {ty}: {mttr:#?}"));
    ensure!(of("camera")?["repairs"] == 2 && approx(&of("camera")?["mean_minutes"], 25.5), "{mttr:#?}");
    ensure!(of("alarm-panel")?["repairs"] == 1 && approx(&of("alarm-panel")?["mean_minutes"], 10.0), "{mttr:#?}");

    let totals = &r["totals"];
    ensure!(totals["branches"] == 3 && totals["alarms_with_camera_down"] == 1, "{totals:#}");
    ensure!(approx(&totals["gateway_offline_minutes"], 12.0), "{totals:#}");
    ensure!(approx(&totals["required_zone_uncovered_minutes"], 25.0), "{totals:#}");
    Ok(())
}

fn check_coverage(c: &Value, from_db: bool) -> Result<()> {
    ensure!(c["schema"] == "hq-coverage/1", "{c:#}");
    ensure!(c["branches"].as_array().is_some_and(|b| b.len() == 3), "{c:#}");
    let b1 = branch_of(c, "b1")?;
    ensure!(b1["gateway"] == "online" && b1["stale"] == false, "{b1:#}");
    ensure!(b1["cameras_online"] == 2 && b1["cameras_total"] == 2 && b1["cameras_live_video"] == 2, "{b1:#}");
    ensure!(b1["required_zones"] == 2 && b1["required_zones_uncovered"] == 0, "{b1:#}");
    let b2 = branch_of(c, "b2")?;
    ensure!(b2["gateway"] == "online" && b2["gateway_since"] == "2026-01-01T10:52:00.000Z", "{b2:#}");
    ensure!(b2["cameras_online"] == 1 && b2["cameras_total"] == 2, "{b2:#}");
    let unc = b2["uncovered_zones"].as_array().context("uncovered_zones")?;
    ensure!(unc.len() == 1 && unc[0]["id"] == "atm" && unc[0]["name"] == "ATM lobby", "{b2:#}");
    ensure!(unc[0]["since"] == "2026-01-01T10:50:00.000Z", "{b2:#}");
    let not_online = b2["devices_not_online"].as_array().context("devices_not_online")?;
    ensure!(not_online.len() == 1 && not_online[0]["id"] == "cam-3" && not_online[0]["state"] == "offline", "{b2:#}");
    let b3 = branch_of(c, "b3")?;
    ensure!(
        b3["required_zones_uncovered"] == 0 && b3["uncovered_zones"].as_array().is_some_and(Vec::is_empty),
        "{b3:#}"
    );
    if from_db {
        // The database knows when b1's gateway last changed status (09:00), not just its last `at`.
        ensure!(b1["gateway_since"] == "2026-01-01T09:00:00.000Z", "{b1:#}");
    }
    Ok(())
}

#[test]
fn hq_answers_coverage_availability_alarms_mttr_and_gateway_outages_for_three_branches_sqlite() -> Result<()> {
    answers(Backend::Sqlite)
}

#[test]
fn hq_answers_coverage_availability_alarms_mttr_and_gateway_outages_for_three_branches_postgres() -> Result<()> {
    answers(Backend::Postgres)
}

fn answers(backend: Backend) -> Result<()> {
    let broker = Mosquitto::start()?;
    let work = tempfile::tempdir()?;
    let db = TestDb::new(backend, work.path())?;
    let db_url = db.url.clone();
    let mut listener = start_listen(broker.port, &db_url, work.path(), &[])?;

    let mut p = Publisher::connect(broker.port, "test-branches")?;
    script(&mut p)?;

    eventually(Duration::from_secs(20), "every scripted alert stored", || {
        let s = hq_json(work.path(), &["stats", "--db", &db_url, "--format", "json"])?;
        Ok((s["alerts"] == ALERTS_IN_SCRIPT).then_some(()))
    })?;

    // The report works next to a running listener...
    let window = ["--from", "2026-01-01T10:00:00Z", "--to", "2026-01-01T11:00:00Z"];
    let mut args = vec!["report", "--db", &db_url, "--format", "json"];
    args.extend(window);
    let live_report = hq_json(work.path(), &args)?;
    check_report(&live_report).context("report while the listener runs")?;

    // ...and after a clean stop.
    assert_eq!(stop(&mut listener), Some(0), "hq listen exits 0 on SIGTERM");
    let r = hq_json(work.path(), &args)?;
    check_report(&r).context("report after the listener stopped")?;
    assert_eq!(r, live_report);

    let c = hq_json(work.path(), &["coverage", "--db", &db_url, "--format", "json"])?;
    check_coverage(&c, true).context("coverage from the database")?;

    // A live snapshot of the retained topics alone (no database in this directory) tells the same.
    let url = broker.url();
    let live = hq_json(work.path(), &["coverage", "--live", "2s", "--broker", &url, "--format", "json"])?;
    check_coverage(&live, false).context("coverage --live")?;

    // The other formats render the same report.
    let html = work.path().join("report.html");
    let html_s = html.display().to_string();
    let mut args = vec!["report", "--db", &db_url, "--format", "html", "--out", &html_s];
    args.extend(window);
    hq(work.path(), &args)?;
    let page = std::fs::read_to_string(&html)?;
    assert!(page.contains("<svg") && page.contains("b2") && !page.contains("<script"), "{page}");
    let mut args = vec!["report", "--db", &db_url, "--format", "csv"];
    args.extend(window);
    let csv = hq(work.path(), &args)?;
    assert!(csv.lines().any(|l| l.starts_with("camera,b1,cam-2,") && l.contains(",75,")), "{csv}");
    let table = hq(work.path(), &["coverage", "--db", &db_url])?;
    assert!(table.lines().any(|l| l.starts_with("b2") && l.contains("ATM lobby")), "{table}");

    // In a Chinese locale the headings are Chinese (aligned by display width) and the rows the
    // same; --lang overrides the locale; CSV keeps its field names whatever the language.
    let zh = hq_in_locale(work.path(), "zh_CN.UTF-8", &["coverage", "--db", &db_url])?;
    let head = zh.lines().next().unwrap_or_default();
    for h in ["网点", "网关", "在线摄像机", "必防区", "无人看护的必防区"] {
        assert!(head.contains(h), "no heading {h:?} in:\n{zh}");
    }
    assert!(zh.lines().any(|l| l.starts_with("b2") && l.contains("ATM lobby")), "{zh}");
    assert_eq!(zh.lines().skip(1).count(), table.lines().skip(1).count(), "{zh}\n{table}");
    let en = hq_in_locale(work.path(), "zh_CN.UTF-8", &["coverage", "--db", &db_url, "--lang", "en"])?;
    assert_eq!(en, table, "--lang en overrides the locale");
    let csv_zh = hq_in_locale(work.path(), "zh_CN.UTF-8", &["coverage", "--db", &db_url, "--format", "csv"])?;
    assert!(csv_zh.starts_with("branch,gateway,"), "{csv_zh}");
    let mut args = vec!["report", "--db", &db_url, "--format", "html", "--lang", "zh-CN"];
    args.extend(window);
    let page_zh = hq(work.path(), &args)?;
    for s in ["<html lang=zh-CN>", "网点安防考核报告", "<th>网点</th>", "报警时联动摄像机故障", "b2"]
    {
        assert!(page_zh.contains(s), "no {s:?} in the Chinese report:\n{page_zh}");
    }
    Ok(())
}

#[test]
fn a_missing_database_is_said_in_the_readers_language() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = std::process::Command::new(harness::bin("hq"))
        .args(["coverage", "--db", "sqlite://nothing-here.db"])
        .current_dir(dir.path())
        .env("LANG", "zh_CN.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("错误：") && err.contains("处没有数据库") && err.contains("hq migrate"), "{err}");
    assert!(!dir.path().join("nothing-here.db").exists(), "a reader never creates the database");
    Ok(())
}
