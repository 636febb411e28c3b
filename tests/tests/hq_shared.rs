//! Two `hq listen` instances on one shared subscription split the branches' alerts between
//! them; read together, their stores hold every alert exactly once, and `hq gaps` over both
//! finds the one `seq` that was never published — until it arrives late.

mod hq_common;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use harness::Mosquitto;
use hq_common::*;
use protocols::AlertState;

#[test]
fn two_listeners_in_one_share_group_together_store_every_alert_once_and_see_the_gap() -> Result<()> {
    let broker = Mosquitto::start()?;
    let work = tempfile::tempdir()?;
    let (dir_a, dir_b) = (work.path().join("a"), work.path().join("b"));
    std::fs::create_dir_all(&dir_a)?;
    std::fs::create_dir_all(&dir_b)?;
    let (store_a, store_b) = (dir_a.join("store"), dir_b.join("store"));
    let share = ["--share-group", "g"];
    let mut a = start_listen(broker.port, &store_a, &dir_a, &share)?;
    let mut b = start_listen(broker.port, &store_b, &dir_b, &share)?;

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
    let union = eventually(Duration::from_secs(20), "both stores together hold every alert", || {
        let all = stored_alerts(cwd, &[&store_a, &store_b])?;
        Ok((all.len() == expected.len()).then_some(all))
    })?;
    let mut ids: Vec<String> = union.iter().filter_map(|a| a["id"].as_str().map(str::to_string)).collect();
    ids.sort();
    assert_eq!(ids, expected, "the union of both stores is every alert, each once");

    let in_a = stored_alerts(cwd, &[&store_a])?;
    let in_b = stored_alerts(cwd, &[&store_b])?;
    assert!(!in_a.is_empty() && !in_b.is_empty(), "the group split the load: a {} b {}", in_a.len(), in_b.len());
    let mut per_store: HashMap<&str, usize> = HashMap::new();
    for al in in_a.iter().chain(&in_b) {
        *per_store.entry(al["id"].as_str().unwrap_or_default()).or_default() += 1;
    }
    let dup_ids: Vec<_> = per_store.iter().filter(|(id, n)| **n > 1 && **id != "b1-alert-5").collect();
    assert!(dup_ids.is_empty(), "only the re-delivered alert may sit in both stores: {dup_ids:?}");

    let (sa, sb) = (store_a.display().to_string(), store_b.display().to_string());
    let gaps_args = ["gaps", "--store", sa.as_str(), "--store", sb.as_str(), "--format", "json", "--settle", "0s"];
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

    assert_eq!(stop(&mut a), Some(0));
    assert_eq!(stop(&mut b), Some(0));
    Ok(())
}
