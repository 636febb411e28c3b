//! Head office loses nothing when its own parts fail: a listener killed with SIGKILL in the
//! middle of a burst, and the PostgreSQL server stopped for 20 s during one. The broker keeps
//! what the listener has not acknowledged, and the listener acknowledges only what the
//! database has committed.

use crate::hq_common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use harness::Mosquitto;
use hq_common::*;
use protocols::AlertState;

/// A broker that queues without limit for a persistent session (mosquitto drops QoS 1 beyond
/// 1,000 queued messages by default; the deploy/ configuration raises it the same way).
fn broker() -> Result<Mosquitto> {
    Mosquitto::start_with("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n")
}

/// 10 branches × `per_branch` alerts, seq 1.. each, published as fast as the broker takes them.
fn burst(port: u16, per_branch: u64) -> std::thread::JoinHandle<Result<()>> {
    std::thread::spawn(move || {
        let mut p = Publisher::connect(port, "test-burst")?;
        for seq in 1..=per_branch {
            for b in 0..10 {
                let state = if seq % 2 == 1 { AlertState::Raised } else { AlertState::Cleared };
                p.alert_burst(&camera_offline(&format!("b{b:02}"), seq, "cam-1", state, t(seq as i64)))?;
            }
        }
        p.flush()
    })
}

fn stored(cwd: &std::path::Path, db: &str) -> Result<u64> {
    let s = hq_json(cwd, &["stats", "--db", db, "--format", "json"])?;
    s["alerts"].as_u64().context("stats.alerts")
}

fn killed_mid_burst(backend: Backend) -> Result<()> {
    let broker = broker()?;
    let work = tempfile::tempdir()?;
    let db = TestDb::new(backend, work.path())?;
    let cwd = work.path();
    let args = ["--client-id", "hq-kill-test"];
    let mut listener = start_listen(broker.port, &db.url, cwd, &args)?;
    let publisher = burst(broker.port, 1000);
    // Kill it once some, not all, of the burst is stored.
    let at_kill = eventually(Duration::from_secs(60), "part of the burst stored", || {
        let n = stored(cwd, &db.url)?;
        Ok((n >= 1500).then_some(n))
    })?;
    listener.signal("KILL");
    ensure!(listener.wait_exit(Duration::from_secs(10)).is_some(), "hq listen did not die");
    ensure!(at_kill < 10_000, "the kill came too late to test anything ({at_kill} stored)");
    publisher.join().map_err(|_| anyhow::anyhow!("publisher panicked"))??;

    // Same client id: the broker's session holds what was not acknowledged.
    let mut listener = start_listen(broker.port, &db.url, cwd, &args)?;
    let restarted = Instant::now();
    eventually(Duration::from_secs(120), "all 10,000 alerts stored after the restart", || {
        Ok((stored(cwd, &db.url)? == 10_000).then_some(()))
    })
    .with_context(|| {
        let log = std::fs::read_to_string(cwd.join("hq.log")).unwrap_or_default();
        let stats = hq(cwd, &["stats", "--db", &db.url]).unwrap_or_default();
        format!("{stats}\n{log}\n{}", broker.log())
    })?;
    eprintln!("{at_kill} stored at the kill; the rest {:?} after the restart", restarted.elapsed());
    let gaps = hq_json(cwd, &["gaps", "--db", &db.url, "--format", "json", "--settle", "0s"])?;
    ensure!(gaps["gaps"].as_array().is_some_and(Vec::is_empty), "no seq is missing: {gaps:#}");
    let all = stored_alerts(cwd, &db.url)?;
    ensure!(all.len() == 10_000, "each alert once: {}", all.len());
    assert_eq!(stop(&mut listener), Some(0));
    Ok(())
}

#[test]
fn a_listener_killed_mid_burst_loses_nothing_sqlite() -> Result<()> {
    killed_mid_burst(Backend::Sqlite)
}

#[test]
fn a_listener_killed_mid_burst_loses_nothing_postgres() -> Result<()> {
    killed_mid_burst(Backend::Postgres)
}

#[test]
fn postgres_stopped_for_20s_during_a_burst_loses_nothing_and_the_listener_recovers_alone() -> Result<()> {
    let broker = broker()?;
    let work = tempfile::tempdir()?;
    let mut db = TestDb::new(Backend::Postgres, work.path())?;
    let cwd = work.path();
    let mut listener = start_listen(broker.port, &db.url, cwd, &[])?;
    let publisher = burst(broker.port, 500);
    eventually(Duration::from_secs(60), "part of the burst stored", || {
        Ok((stored(cwd, &db.url)? >= 500).then_some(()))
    })?;

    let pg = db.pg.as_mut().context("a PostgreSQL test database")?;
    pg.stop()?;
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    ensure!(listener.child.try_wait()?.is_none(), "hq listen kept running while the database was away");
    pg.start_again()?;
    publisher.join().map_err(|_| anyhow::anyhow!("publisher panicked"))??;

    eventually(Duration::from_secs(120), "all 5,000 alerts stored once the database is back", || {
        Ok((stored(cwd, &db.url)? == 5_000).then_some(()))
    })?;
    let recovered_after = stopped.elapsed();
    let gaps = hq_json(cwd, &["gaps", "--db", &db.url, "--format", "json", "--settle", "0s"])?;
    ensure!(gaps["gaps"].as_array().is_some_and(Vec::is_empty), "no seq is missing: {gaps:#}");
    ensure!(listener.child.try_wait()?.is_none(), "the same listener recovered without a restart");
    let log = std::fs::read_to_string(cwd.join("hq.log"))?;
    ensure!(
        log.contains("cannot store into the database") && log.contains("the database is back"),
        "the outage and the recovery are logged:\n{log}"
    );
    assert_eq!(stop(&mut listener), Some(0));
    eprintln!("recovered {recovered_after:?} after the database was stopped");
    Ok(())
}

#[test]
fn a_wrong_database_url_or_password_is_one_clear_line() -> Result<()> {
    let work = tempfile::tempdir()?;
    let cwd = work.path();
    let db = TestDb::new(Backend::Postgres, cwd)?;
    let pg = db.pg.as_ref().context("postgres")?;
    // A database that does not exist: exit 1, named, with the fix.
    let missing = pg.url("nosuchdb");
    let (code, _, err) = hq_raw(cwd, &["stats", "--db", &missing])?;
    ensure!(code == 1 && err.contains("nosuchdb") && err.contains("createdb"), "{code} {err}");
    ensure!(err.trim().lines().count() == 1, "one line: {err}");
    // Nothing listening: exit 1, unreachable, the password hidden.
    let port = harness::free_port();
    let url = format!("postgres://hq:secret@127.0.0.1:{port}/hq");
    let (code, _, err) = hq_raw(cwd, &["report", "--from", "-1d", "--db", &url])?;
    ensure!(code == 1 && err.contains("cannot reach the database") && !err.contains("secret"), "{code} {err}");
    // A wrong password: exit 1, one line saying so, the password not shown.
    pg.require_password("right-pw")?;
    let wrong = format!("postgres://hq:wrong-pw@127.0.0.1:{}/hq", pg.port);
    let (code, _, err) = hq_raw(cwd, &["stats", "--db", &wrong])?;
    ensure!(code == 1 && err.contains("refused the credentials") && !err.contains("wrong-pw"), "{code} {err}");
    ensure!(err.trim().lines().count() == 1, "one line: {err}");
    let right = format!("postgres://hq:right-pw@127.0.0.1:{}/hq", pg.port);
    let (code, out, err) = hq_raw(cwd, &["migrate", "--db", &right])?;
    ensure!(code == 0 && out.contains("schema") && !out.contains("right-pw"), "{code} {out} {err}");
    // Not a database URL at all: usage, exit 2.
    let (code, _, err) = hq_raw(cwd, &["gaps", "--db", "mongodb://x/y"])?;
    ensure!(code == 2, "{code} {err}");
    Ok(())
}

#[test]
fn a_listener_started_before_its_database_waits_for_it_then_stores_everything() -> Result<()> {
    let broker = broker()?;
    let work = tempfile::tempdir()?;
    let mut db = TestDb::new(Backend::Postgres, work.path())?;
    let cwd = work.path();
    db.pg.as_mut().context("postgres")?.stop()?;
    let broker_url = broker.url();
    let mut listener = harness::spawn_bin(
        "hq",
        &["listen", "--broker", &broker_url, "--db", &db.url, "--client-id", "hq-early"],
        cwd,
        &[("RUST_LOG", "info")],
    )?;
    let log_path = cwd.join("hq.log");
    eventually(Duration::from_secs(20), "the listener says it cannot reach the database", || {
        Ok(std::fs::read_to_string(&log_path)?.contains("cannot reach the database").then_some(()))
    })?;
    ensure!(listener.child.try_wait()?.is_none(), "it waits rather than exiting");
    db.pg.as_mut().context("postgres")?.start_again()?;
    eventually(Duration::from_secs(30), "subscribed once the database is up", || {
        Ok(std::fs::read_to_string(&log_path)?.contains("subscribed").then_some(()))
    })?;
    let mut p = Publisher::connect(broker.port, "test-b1")?;
    for seq in 1..=10 {
        p.alert(&camera_offline("b1", seq, "cam-1", AlertState::Raised, t(seq as i64)))?;
    }
    eventually(Duration::from_secs(20), "all ten stored", || Ok((stored(cwd, &db.url)? == 10).then_some(())))?;
    assert_eq!(stop(&mut listener), Some(0));
    Ok(())
}
