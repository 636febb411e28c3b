//! Two `hq listen` instances on one shared subscription split the branches' alerts between
//! them and write into one database; it holds every alert exactly once, and `hq gaps` finds the
//! one `seq` that was never published — until it arrives late — although no listener saw all
//! of a branch's alerts.

use crate::hq_common;

use std::time::Duration;

use anyhow::{Context, Result};
use harness::Mosquitto;
use hq_common::*;
use protocols::AlertState;

#[test]
fn two_listeners_in_one_share_group_store_every_alert_once_and_see_the_gap_sqlite() -> Result<()> {
    two_listeners(Backend::Sqlite)
}

#[test]
fn two_listeners_in_one_share_group_store_every_alert_once_and_see_the_gap_postgres() -> Result<()> {
    two_listeners(Backend::Postgres)
}

fn two_listeners(backend: Backend) -> Result<()> {
    let broker = Mosquitto::start()?;
    let work = tempfile::tempdir()?;
    let db = TestDb::new(backend, work.path())?;
    let (dir_a, dir_b) = (work.path().join("a"), work.path().join("b"));
    std::fs::create_dir_all(&dir_a)?;
    std::fs::create_dir_all(&dir_b)?;
    let mut a = start_listen(broker.port, &db.url, &dir_a, &["--share-group", "g", "--client-id", "hq-a"])?;
    let mut b = start_listen(broker.port, &db.url, &dir_b, &["--share-group", "g", "--client-id", "hq-b"])?;

    let mut p = Publisher::connect(broker.port, "test-branches")?;
    let mut expected = Vec::new();
    for seq in (1..=41).filter(|&s| s != 17) {
        let state = if seq % 2 == 1 { AlertState::Raised } else { AlertState::Cleared };
        let al = camera_offline("b1", seq, "cam-1", state, t(seq as i64));
        p.alert(&al)?;
        expected.push(al.id.clone());
    }
    for seq in 1..=10 {
        let al = camera_offline("b2", seq, "cam-7", AlertState::Raised, t(seq as i64));
        p.alert(&al)?;
        expected.push(al.id.clone());
    }
    // At-least-once delivery: the same alert again.
    p.alert(&camera_offline("b1", 5, "cam-1", AlertState::Raised, t(5)))?;
    p.flush()?;
    expected.sort();

    let cwd = work.path();
    let all = eventually(Duration::from_secs(20), "the database holds every alert", || {
        let all = stored_alerts(cwd, &db.url)?;
        Ok((all.len() == expected.len()).then_some(all))
    })?;
    let mut ids: Vec<String> = all.iter().filter_map(|a| a["id"].as_str().map(str::to_string)).collect();
    ids.sort();
    assert_eq!(ids, expected, "every alert, each once");

    // Both listeners did part of the work.
    for dir in [&dir_a, &dir_b] {
        let log = std::fs::read_to_string(dir.join("hq.log"))?;
        let stopped_ok = log.contains("subscribed");
        assert!(stopped_ok, "{log}");
    }
    let stats = hq_json(cwd, &["stats", "--db", &db.url, "--format", "json"])?;
    assert_eq!(stats["alerts"], expected.len(), "{stats:#}");
    assert_eq!(stats["duplicates"], 1, "the redelivered alert is counted once as a duplicate: {stats:#}");

    let gaps_args = ["gaps", "--db", db.url.as_str(), "--format", "json", "--settle", "0s"];
    let gaps = hq_json(cwd, &gaps_args)?;
    let list = gaps["gaps"].as_array().context("gaps")?;
    assert_eq!(list.len(), 1, "{gaps:#}");
    assert_eq!(
        (&list[0]["branch"], &list[0]["from"], &list[0]["to"]),
        (&"b1".into(), &17.into(), &17.into()),
        "{gaps:#}"
    );
    assert_eq!(list[0]["state"], "missing");
    assert!(list[0]["detected_at"].is_string());

    // The late alert closes the gap.
    p.alert(&camera_offline("b1", 17, "cam-1", AlertState::Raised, t(17)))?;
    eventually(Duration::from_secs(20), "the late alert fills the gap", || {
        let g = hq_json(cwd, &gaps_args)?;
        Ok(g["gaps"].as_array().is_some_and(Vec::is_empty).then_some(()))
    })?;

    let (sa, sb) = (stop(&mut a), stop(&mut b));
    assert_eq!((sa, sb), (Some(0), Some(0)));
    let (la, lb) = (std::fs::read_to_string(dir_a.join("hq.log"))?, std::fs::read_to_string(dir_b.join("hq.log"))?);
    let received = |log: &str| -> u64 {
        log.lines()
            .find(|l| l.contains("stopped"))
            .and_then(|l| l.split("received=").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(received(&la) > 0 && received(&lb) > 0, "the group split the load:\n{la}\n{lb}");
    Ok(())
}
