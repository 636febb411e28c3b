//! `hq listen` as a long-running service: bad payloads are counted, never stored and never
//! fatal; a re-delivered alert is stored once; a skipped `seq` is reported as a gap and closed
//! by its late arrival; alerts published while it is down arrive after a restart (persistent
//! session); usage mistakes exit 2.

use crate::hq_common;

use std::time::Duration;

use anyhow::{Context, Result};
use harness::Mosquitto;
use hq_common::*;
use protocols::{AlertState, GatewayState};

#[test]
fn malformed_payloads_are_counted_duplicates_stored_once_and_gaps_reported_sqlite() -> Result<()> {
    malformed_duplicates_and_gaps(Backend::Sqlite)
}

#[test]
fn malformed_payloads_are_counted_duplicates_stored_once_and_gaps_reported_postgres() -> Result<()> {
    malformed_duplicates_and_gaps(Backend::Postgres)
}

fn malformed_duplicates_and_gaps(backend: Backend) -> Result<()> {
    let broker = Mosquitto::start()?;
    let work = tempfile::tempdir()?;
    let db = TestDb::new(backend, work.path())?;
    let db_url = db.url.clone();
    let cwd = work.path();
    let mut listener = start_listen(broker.port, &db_url, work.path(), &[])?;
    let mut p = Publisher::connect(broker.port, "test-b1")?;

    let first = camera_offline("b1", 1, "cam-1", AlertState::Raised, t(0));
    p.alert(&first)?;
    p.alert(&first)?;
    // Four kinds of bad input: not JSON, another schema version, another branch's payload on
    // b1's topic, binary junk on a retained topic.
    p.raw("branches/b1/alerts/camera-offline", b"{not json", false)?;
    let mut v2 = serde_json::to_value(gateway("b1", GatewayState::Online, None, Some(t(0))))?;
    v2["schema"] = "branch-gateway-status/2".into();
    p.json("branches/b1/gateway", &v2, false)?;
    p.json("branches/b1/coverage", &coverage("b2", t(0), &[], 0), false)?;
    p.raw("branches/b1/devices/cam-1", &[0xff, 0xfe, 0x00, 0x01], false)?;
    p.alert(&camera_offline("b1", 3, "cam-1", AlertState::Cleared, t(3)))?;
    p.flush()?;

    let stats = eventually(Duration::from_secs(20), "the listener counted everything", || {
        let s = hq_json(cwd, &["stats", "--db", &db_url, "--format", "json"])?;
        Ok((s["alerts"] == 2 && s["malformed"] == 4).then_some(s))
    })?;
    assert_eq!(stats["duplicates"], 1, "{stats:#}");
    assert_eq!(stats["gateway_changes"], 0, "nothing of the bad payloads is stored: {stats:#}");
    assert_eq!(stats["zone_changes"], 0, "{stats:#}");
    assert!(listener.child.try_wait()?.is_none(), "hq listen survived the bad payloads");
    let alerts = stored_alerts(cwd, &db_url)?;
    assert_eq!(alerts.len(), 2, "the re-delivered alert is stored once");

    let gaps = hq_json(cwd, &["gaps", "--db", &db_url, "--format", "json"])?;
    let list = gaps["gaps"].as_array().context("gaps")?;
    assert_eq!(list.len(), 1, "{gaps:#}");
    assert_eq!((&list[0]["from"], &list[0]["to"], &list[0]["missing"]), (&2.into(), &2.into(), &1.into()));
    assert_eq!(list[0]["state"], "pending", "the branch sent moments ago: it may still be catching up");
    let log = std::fs::read_to_string(work.path().join("hq.log"))?;
    assert!(log.contains("malformed message ignored") && log.contains("seq gap"), "{log}");

    // Stop; alerts published meanwhile wait in the broker's session for the same client id.
    assert_eq!(stop(&mut listener), Some(0));
    p.alert(&camera_offline("b1", 2, "cam-1", AlertState::Cleared, t(2)))?;
    p.alert(&camera_offline("b1", 4, "cam-1", AlertState::Raised, t(4)))?;
    p.flush()?;
    let mut listener = start_listen(broker.port, &db_url, work.path(), &[])?;
    eventually(Duration::from_secs(20), "alerts queued while hq was down arrive", || {
        Ok((stored_alerts(cwd, &db_url)?.len() == 4).then_some(()))
    })?;
    let gaps = hq_json(cwd, &["gaps", "--db", &db_url, "--format", "json"])?;
    assert!(gaps["gaps"].as_array().is_some_and(Vec::is_empty), "the late seq 2 closed the gap: {gaps:#}");

    // Filters of `hq alerts`.
    let raised = hq(cwd, &["alerts", "--db", &db_url, "--format", "json", "--severity-min", "major"])?;
    assert_eq!(raised.lines().count(), 2, "{raised}");
    let none = hq(cwd, &["alerts", "--db", &db_url, "--format", "json", "--kind", "alarm-link"])?;
    assert_eq!(none.trim(), "");
    assert_eq!(stop(&mut listener), Some(0));
    Ok(())
}

#[test]
fn follow_prints_each_alert_once_as_it_arrives() -> Result<()> {
    let broker = Mosquitto::start()?;
    let work = tempfile::tempdir()?;
    let url = broker.url();
    let log = std::fs::File::create(work.path().join("follow.err"))?;
    let child = std::process::Command::new(harness::bin("hq"))
        .args(["alerts", "--follow", "--for", "6s", "--broker", &url, "--format", "json", "--branch", "b1"])
        .env("RUST_LOG", "info")
        .current_dir(work.path())
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()?;
    let err_path = work.path().join("follow.err");
    eventually(Duration::from_secs(10), "hq alerts --follow connected", || {
        Ok(std::fs::read_to_string(&err_path)?.contains("following alerts").then_some(()))
    })?;
    let mut p = Publisher::connect(broker.port, "test-b1")?;
    let a = camera_offline("b1", 1, "cam-1", AlertState::Raised, t(0));
    p.alert(&a)?;
    p.alert(&a)?;
    p.alert(&camera_offline("b2", 1, "cam-1", AlertState::Raised, t(0)))?;
    p.alert(&camera_offline("b1", 2, "cam-1", AlertState::Cleared, t(1)))?;
    let out = child.wait_with_output()?;
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert_eq!(seqs, vec![1, 2], "b1 only, deduped: {lines:#?}");
    Ok(())
}

#[test]
fn usage_mistakes_exit_2_with_the_fix_named() -> Result<()> {
    let work = tempfile::tempdir()?;
    let cwd = work.path();
    let (code, _, err) = hq_raw(cwd, &["report", "--from", "yesterday-ish"])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("RFC 3339") && err.contains("-1h"), "{err}");
    let (code, _, err) = hq_raw(cwd, &["report", "--from", "-1h", "--to", "-2h"])?;
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = hq_raw(cwd, &["coverage", "--format", "yaml"])?;
    assert_eq!(code, 2);
    let (code, _, err) = hq_raw(cwd, &["listen", "--retain-alarms", "60d"])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--retain-access"), "{err}");
    let (code, _, err) = hq_raw(cwd, &["prune", "--alarms", "7d", "--access", "365d"])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("30 days") && err.contains("GA 38"), "{err}");
    let (code, _, err) = hq_raw(cwd, &["prune", "--alarms", "30d", "--access", "90d"])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("180 days"), "{err}");
    let (code, _, err) = hq_raw(cwd, &["stats", "--db", "mysql://db/hq"])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sqlite://") && err.contains("postgres://"), "{err}");
    let (code, _, err) = hq_raw(cwd, &["coverage", "--live", "1s", "--broker", "http://x"])?;
    assert_eq!(code, 2, "{err}");
    // Not a usage mistake: no database here. Exit 1, naming the file and the fix.
    let (code, _, err) = hq_raw(cwd, &["report", "--from", "-1h"])?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("hq.db") && err.contains("hq migrate"), "{err}");
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    Ok(())
}

/// IPv6 literals in broker URLs: the gateway publishes to `mqtt://[::1]:PORT` and `hq listen`
/// stores what it published, through a mosquitto listening on ::1 only.
#[test]
fn the_gateway_and_hq_reach_a_broker_by_its_ipv6_address() -> Result<()> {
    let broker = Mosquitto::start_with("listener {port} ::1\nallow_anonymous true\n")?;
    let url = format!("mqtt://[::1]:{}", broker.port);
    let work = tempfile::tempdir()?;
    let cwd = work.path();
    let db = format!("sqlite://{}", cwd.join("hq.db").display());
    let site = format!(
        "[branch]\nid = \"b-v6\"\nname = \"IPv6\"\n[uplink]\nbroker = \"{url}\"\n[storage]\npath = {:?}\n\
         [metrics]\nenabled = false\n",
        cwd.join("outbox").display().to_string()
    );
    let site_path = harness::write_file(cwd, "site.toml", &site)?;
    let mut hq_listen =
        harness::spawn_bin("hq", &["listen", "--broker", &url, "--db", &db], cwd, &[("RUST_LOG", "info")])?;
    let gw_dir = cwd.join("gw");
    std::fs::create_dir_all(&gw_dir)?;
    let site_s = site_path.display().to_string();
    let mut gateway = harness::spawn_bin("branch-gateway", &["run", &site_s], &gw_dir, &[])?;
    eventually(Duration::from_secs(20), "the branch's gateway online at head office", || {
        let c = match hq_json(cwd, &["coverage", "--db", &db, "--format", "json"]) {
            Ok(c) => c,
            Err(_) => return Ok(None), // the database is created by the listener
        };
        let online = c["branches"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["branch"] == "b-v6" && b["gateway"] == "online"));
        Ok(online.then_some(()))
    })
    .with_context(|| format!("broker log:\n{}", broker.log()))?;
    // `hq coverage --live` reads the retained topics over ::1 too.
    let live = hq_json(cwd, &["coverage", "--live", "2s", "--broker", &url, "--format", "json"])?;
    assert!(live.to_string().contains("b-v6"), "{live}");
    assert_eq!(stop(&mut gateway), Some(0));
    assert_eq!(stop(&mut hq_listen), Some(0));
    Ok(())
}
