//! The storage interface itself, the same recorded traffic on both backends: SQLite in a file
//! and a real PostgreSQL server. Every answer (report, coverage, gaps, alerts, counters) must be
//! the same on both, and right: duplicates stored once, a late alert filling a gap, a gateway
//! that starts its sequence again, repairs paired, retention keeping the state each timeline
//! started in.

use crate::hq_common;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use headoffice::db::{AlertQuery, DbUrl, Incoming, OpenMode, Retention, Store};
use headoffice::ingest::Message;
use headoffice::report::{self, Window};
use headoffice::{coverage, gaps};
use hq_common::*;
use protocols::{Alert, AlertState, DeviceType, GatewayState};

fn incoming(msg: Message, payload: String, at: DateTime<Utc>) -> Incoming {
    Incoming { msg, payload, received_at: at }
}

fn a(al: Alert) -> Incoming {
    let at = al.detected_at;
    let payload = serde_json::to_string(&al).unwrap_or_default();
    incoming(Message::Alert(Box::new(al)), payload, at)
}

/// Recorded traffic of two branches, in arrival order, in batches as a listener would commit them.
fn traffic() -> Vec<Vec<Incoming>> {
    let panel = || device("panel-1", DeviceType::AlarmPanel, "Intrusion panel");
    let gw = |b: &str, st, m| {
        let g = gateway(b, st, None, Some(t(m)));
        let p = serde_json::to_string(&g).unwrap_or_default();
        incoming(Message::Gateway(g), p, t(m))
    };
    let dev = |b: &str, cam: &str, st: &str, m| {
        let d = health(b, camera(cam), st, t(m));
        let p = serde_json::to_string(&d).unwrap_or_default();
        incoming(Message::Device(d), p, t(m))
    };
    let cov = |b: &str, m, covered: bool| {
        let c = coverage(b, t(m), &[Z("vault", "Vault", true, &["cam-1"], covered)], u32::from(covered));
        let p = serde_json::to_string(&c).unwrap_or_default();
        incoming(Message::Coverage(c), p, t(m))
    };
    vec![
        vec![
            gw("b1", GatewayState::Online, -60),
            gw("b2", GatewayState::Online, -60),
            dev("b1", "cam-1", "online", -60),
        ],
        vec![cov("b1", -60, true), cov("b2", -60, true), dev("b2", "cam-1", "online", -60)],
        vec![
            a(camera_offline("b1", 1, "cam-1", AlertState::Raised, t(10))),
            a(camera_offline("b1", 1, "cam-1", AlertState::Raised, t(10))), // redelivered in the same batch
            dev("b1", "cam-1", "offline", 11),
            cov("b1", 11, false),
            a(alarm("b1", 2, t(12), vec![linked("cam-1", false)])),
        ],
        // seq 3 of b1 is lost for a while; 4 and 5 arrive.
        vec![
            a(camera_offline("b1", 4, "cam-1", AlertState::Cleared, t(25))),
            dev("b1", "cam-1", "online", 25),
            cov("b1", 25, true),
            a(fault("b1", 5, panel(), "ac-loss", AlertState::Raised, t(30))),
            a(camera_offline("b1", 1, "cam-1", AlertState::Raised, t(10))), // redelivered later
        ],
        // b2 goes offline, comes back; its gateway's data was wiped: seq starts at 1 again.
        vec![
            a(alarm("b2", 1, t(5), vec![linked("cam-1", true)])),
            a(alarm("b2", 2, t(6), vec![linked("cam-1", true)])),
            gw("b2", GatewayState::Offline, 40),
            gw("b2", GatewayState::Online, 45),
        ],
        vec![{
            let mut al = alarm("b2", 1, t(46), vec![linked("cam-1", true)]);
            al.id = "b2-after-reset-1".into();
            a(al)
        }],
        // The lost seq 3 of b1 arrives late; the fault clears.
        vec![
            a(fault("b1", 3, panel(), "tamper", AlertState::Raised, t(20))),
            a(fault("b1", 6, panel(), "ac-loss", AlertState::Cleared, t(50))),
        ],
        // b2 skips seq 2 of its new sequence.
        vec![{
            let mut al = alarm("b2", 3, t(55), vec![linked("cam-1", true)]);
            al.id = "b2-after-reset-3".into();
            a(al)
        }],
    ]
}

struct Answers {
    report: serde_json::Value,
    coverage: serde_json::Value,
    gaps: serde_json::Value,
    alerts: Vec<String>,
    counters: serde_json::Value,
}

async fn answers(store: &Store) -> Result<Answers> {
    let w = Window::new(t(0), t(60))?;
    let report = serde_json::to_value(report::build(store.report_data(w).await?, w))?;
    let coverage = serde_json::to_value(coverage::summarize(&store.snapshot().await?, t(60)))?;
    let gaps = serde_json::to_value(gaps::view(store.gaps().await?, t(60), std::time::Duration::from_secs(0)))?;
    let mut alerts = Vec::new();
    store
        .for_each_alert(&AlertQuery::default(), |p| -> Result<()> {
            alerts.push(p.to_string());
            Ok(())
        })
        .await??;
    let counters = serde_json::to_value(store.counters().await?)?;
    Ok(Answers { report, coverage, gaps, alerts, counters })
}

async fn open(url: &str) -> Result<Store> {
    Ok(Store::open(&DbUrl::parse(url)?, OpenMode::Create).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_traffic_gives_the_same_answers_on_sqlite_and_postgres() -> Result<()> {
    let work = tempfile::tempdir()?;
    let lite = TestDb::new(Backend::Sqlite, work.path())?;
    let pg = TestDb::new(Backend::Postgres, work.path())?;
    let mut results = Vec::new();
    for db in [&lite, &pg] {
        let store = open(&db.url).await?;
        for batch in traffic() {
            store.ingest(&batch, 0).await.with_context(|| db.url.clone())?;
        }
        // A batch retried after a lost commit changes nothing.
        store.ingest(&traffic()[2], 0).await?;
        results.push(answers(&store).await.with_context(|| db.url.clone())?);
        store.close().await;
    }
    let (l, p) = (&results[0], &results[1]);
    assert_eq!(l.report, p.report, "report");
    // Coverage is stamped with the time it was asked; both were asked at t(60).
    assert_eq!(l.coverage, p.coverage, "coverage");
    assert_eq!(l.gaps, p.gaps, "gaps");
    assert_eq!(l.alerts, p.alerts, "alerts");
    assert_eq!(l.counters, p.counters, "counters");

    // And the answers are right.
    assert_eq!(l.alerts.len(), 10, "each alert once");
    assert_eq!(l.counters["alerts"], 10, "{:#}", l.counters);
    assert_eq!(l.counters["duplicates"], 2 + 3, "two redeliveries and the retried batch: {:#}", l.counters);
    let g = l.gaps["gaps"].as_array().context("gaps")?;
    assert_eq!(g.len(), 1, "b1's late seq 3 filled its gap; b2's new sequence misses seq 2: {:#}", l.gaps);
    assert_eq!((&g[0]["branch"], &g[0]["from"], &g[0]["to"]), (&"b2".into(), &2.into(), &2.into()));
    let b1 = l.report["branches"].as_array().and_then(|v| v.iter().find(|b| b["branch"] == "b1")).context("b1")?;
    let cam = &b1["cameras"][0];
    assert_eq!((&cam["id"], &cam["down_minutes"]), (&"cam-1".into(), &15.0.into()), "{b1:#}");
    assert_eq!(b1["zones"][0]["uncovered_minutes"], 14.0, "{b1:#}");
    assert_eq!(b1["alarms"], 1);
    assert_eq!(b1["alarms_with_camera_down"][0]["alert_id"], "b1-alert-2");
    let mttr = b1["mttr"].as_array().context("mttr")?;
    let panel = mttr.iter().find(|m| m["device_type"] == "alarm-panel").context("panel mttr")?;
    assert_eq!((&panel["repairs"], &panel["mean_minutes"]), (&1.into(), &20.0.into()), "ac-loss 30→50: {b1:#}");
    let b2 = l.report["branches"].as_array().and_then(|v| v.iter().find(|b| b["branch"] == "b2")).context("b2")?;
    assert_eq!(b2["gateway_offline"][0]["minutes"], 5.0, "{b2:#}");
    assert_eq!(b2["alarms"], 4, "{b2:#}");
    Ok(())
}

async fn retention_keeps_the_starting_state(url: &str) -> Result<()> {
    let store = open(url).await?;
    let now = Utc::now();
    let days = |d: i64| now - chrono::Duration::days(d);
    let door = {
        let mut al = fault(
            "b1",
            3,
            device("door-1", DeviceType::AccessController, "Vault door"),
            "x",
            AlertState::Raised,
            days(100),
        );
        al.body = protocols::AlertBody::DoorStatus(protocols::DoorStatusDetails {
            door: "door-1".parse()?,
            door_name: "Vault door".into(),
            door_state: protocols::DoorState::ForcedOpen,
            locked: None,
            cameras: vec![],
            follow_up_of: None,
            snapshots: vec![],
        });
        al
    };
    store
        .ingest(
            &[
                a(camera_offline("b1", 1, "cam-1", AlertState::Raised, days(60))),
                a(alarm("b1", 2, days(40), vec![])),
                a(door),
                a(camera_offline("b1", 4, "cam-2", AlertState::Raised, days(50))),
                a(camera_offline("b1", 5, "cam-2", AlertState::Cleared, days(49))),
            ],
            0,
        )
        .await?;
    let r = Retention::new(std::time::Duration::from_secs(30 * 86_400), std::time::Duration::from_secs(180 * 86_400))?;
    let dry = store.prune(r, now, true).await?;
    assert_eq!((dry.alerts, dry.access_alerts), (4, 0), "{dry:?}");
    let out = store.prune(r, now, false).await?;
    assert_eq!(out, dry, "a dry run counts exactly what a prune removes");
    let mut left = Vec::new();
    store
        .for_each_alert(&AlertQuery::default(), |p| -> Result<()> {
            left.push(serde_json::from_str::<serde_json::Value>(p)?["kind"].as_str().unwrap_or_default().to_string());
            Ok(())
        })
        .await??;
    assert_eq!(left, vec!["door-status"], "access-control records are kept 180 days");
    // cam-1 went down 60 days ago and never came back: still down over the last week.
    let w = Window::new(days(7), now)?;
    let rep = report::build(store.report_data(w).await?, w);
    let cams = &rep.branches[0].cameras;
    let c1 = cams.iter().find(|c| c.id.as_str() == "cam-1").context("cam-1")?;
    let c2 = cams.iter().find(|c| c.id.as_str() == "cam-2").context("cam-2")?;
    assert_eq!((c1.online_pct, c2.online_pct), (0.0, 100.0), "{cams:?}");
    assert_eq!(store.counters().await?.pruned, 4);
    store.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_old_records_but_keeps_the_state_each_timeline_started_in_sqlite() -> Result<()> {
    let work = tempfile::tempdir()?;
    let db = TestDb::new(Backend::Sqlite, work.path())?;
    retention_keeps_the_starting_state(&db.url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_old_records_but_keeps_the_state_each_timeline_started_in_postgres() -> Result<()> {
    let work = tempfile::tempdir()?;
    let db = TestDb::new(Backend::Postgres, work.path())?;
    retention_keeps_the_starting_state(&db.url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_retained_payload_removes_the_value_on_both_backends() -> Result<()> {
    let work = tempfile::tempdir()?;
    for db in [TestDb::new(Backend::Sqlite, work.path())?, TestDb::new(Backend::Postgres, work.path())?] {
        let store = open(&db.url).await?;
        let d = health("b1", camera("cam-1"), "offline", t(0));
        let g = gateway("b1", GatewayState::Online, None, Some(t(0)));
        let c = coverage("b1", t(0), &[Z("vault", "Vault", true, &["cam-1"], false)], 0);
        let p = |v: &dyn erased::Json| v.json();
        store
            .ingest(
                &[
                    incoming(Message::Device(d.clone()), p(&d), t(0)),
                    incoming(Message::Gateway(g.clone()), p(&g), t(0)),
                    incoming(Message::Coverage(c.clone()), p(&c), t(0)),
                ],
                0,
            )
            .await?;
        let s = store.snapshot().await?;
        assert_eq!((s.devices.len(), s.gateways.len(), s.coverage.len()), (1, 1, 1), "{}", db.url);
        let b = branch("b1");
        store
            .ingest(
                &[
                    incoming(
                        Message::DeviceRemoved { branch: b.clone(), device: "cam-1".parse()? },
                        String::new(),
                        t(1),
                    ),
                    incoming(Message::GatewayRemoved { branch: b.clone() }, String::new(), t(1)),
                    incoming(Message::CoverageRemoved { branch: b }, String::new(), t(1)),
                ],
                0,
            )
            .await?;
        let s = store.snapshot().await?;
        assert!(s.devices.is_empty() && s.gateways.is_empty() && s.coverage.is_empty(), "{}: {s:?}", db.url);
        assert!(s.device_counts.is_empty(), "{}", db.url);
        store.close().await;
    }
    Ok(())
}

/// Serialising the test payloads without naming each type.
mod erased {
    pub trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}
