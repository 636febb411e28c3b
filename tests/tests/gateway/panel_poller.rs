//! The gateway's panel poller against the in-process simulator (`device_sim::panel`): reads
//! decode to the states the simulator was told to show, slow-tier points are read every Nth
//! cycle, and every injected fault gives the documented outcome and recovery —
//! no answer → `Unreachable` within the timeout, then recovery once cleared; an exception →
//! `Exception` on the *same* connection; a wrong transaction id or a dropped connection →
//! reconnect and recover. A poll hands over only the points that changed (every point on the
//! first read and on the first after a failure); the tests follow the panel as the engine does,
//! by merging the hand-overs. Loopback only, free ports, each test well under 30 s.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use device_sim::panel::{PanelFaultSim, PanelFleet, PanelKindSim, PanelSpec};
use gateway::config::{PanelConfig, PanelKind};
use gateway::pollers::panel::spawn_panel_poller;
use gateway::pollers::{Observation, PanelFault, PanelObservation, PanelOutcome, PanelRead, PointValue};
use protocols::modbus::Profile;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn cfg(id: &str, kind: PanelKind, addr: SocketAddr, unit_id: u8, interval_ms: u64, timeout_ms: u64) -> PanelConfig {
    PanelConfig {
        pace: std::time::Duration::ZERO,
        id: id.into(),
        name: id.into(),
        kind,
        address: addr.to_string(),
        unit_id,
        profile: match kind {
            PanelKind::Alarm => "generic-alarm".into(),
            PanelKind::Access => "generic-access".into(),
        },
        poll_interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_millis(timeout_ms),
        maintenance: false,
    }
}

struct Poller {
    rx: mpsc::Receiver<Observation>,
    stop: CancellationToken,
    handle: JoinHandle<()>,
    /// Every point as last handed over: the panel as the engine sees it.
    known: BTreeMap<String, PointValue>,
}

/// A hand-over's points as a map.
fn map_of(read: &PanelRead) -> BTreeMap<String, PointValue> {
    let mut m = BTreeMap::new();
    read.merge_into(&mut m);
    m
}

impl Poller {
    fn start(cfg: PanelConfig, profile: Profile) -> Poller {
        let (tx, rx) = mpsc::channel(64);
        let stop = CancellationToken::new();
        let handle = spawn_panel_poller(cfg, profile, tx, stop.clone());
        Poller { rx, stop, handle, known: BTreeMap::new() }
    }

    /// The next observation as the poller handed it over (merged into `known` as well).
    async fn next(&mut self, within: Duration) -> PanelObservation {
        match tokio::time::timeout(within, self.rx.recv()).await {
            Ok(Some(Observation::Panel(p))) => {
                if let PanelOutcome::Read(read) = &p.outcome {
                    read.merge_into(&mut self.known);
                }
                p
            }
            Ok(Some(other)) => panic!("not a panel observation: {other:?}"),
            Ok(None) => panic!("the poller stopped"),
            Err(_) => panic!("no observation within {within:?}"),
        }
    }

    /// Waits for an observation matching `pred`; panics with what was seen instead. A read is
    /// judged, and returned, as the whole panel known after it (every hand-over merged).
    async fn wait_for(
        &mut self,
        within: Duration,
        what: &str,
        pred: impl Fn(&PanelOutcome) -> bool,
    ) -> PanelObservation {
        let deadline = Instant::now() + within;
        let mut last = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let obs = match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(Observation::Panel(mut p))) => {
                    if let PanelOutcome::Read(read) = &mut p.outcome {
                        read.merge_into(&mut self.known);
                        let changed = self.known.iter().map(|(k, v)| (Arc::from(k.as_str()), v.clone())).collect();
                        *read = PanelRead { complete: true, changed };
                    }
                    p
                }
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the poller stopped while waiting for {what}"),
                Err(_) => panic!("no {what} within {within:?}; last outcome: {last:?}"),
            };
            if pred(&obs.outcome) {
                return obs;
            }
            last = Some(obs.outcome);
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        let r = tokio::time::timeout(Duration::from_secs(5), self.handle).await;
        assert!(matches!(r, Ok(Ok(()))), "the poller did not stop cleanly: {r:?}");
    }
}

fn state_of<'a>(o: &'a PanelOutcome, point: &str) -> Option<&'a str> {
    match o {
        PanelOutcome::Read(m) => m.get(point).and_then(|v| v.state.as_deref()),
        PanelOutcome::Failed { .. } => None,
    }
}

fn raw_of(o: &PanelOutcome, point: &str) -> Option<f64> {
    match o {
        PanelOutcome::Read(m) => m.get(point).map(|v| v.raw),
        PanelOutcome::Failed { .. } => None,
    }
}

fn is_read(o: &PanelOutcome) -> bool {
    matches!(o, PanelOutcome::Read(_))
}

fn failed_with(o: &PanelOutcome, fault: PanelFault) -> bool {
    matches!(o, PanelOutcome::Failed { fault: f, .. } if *f == fault)
}

async fn fleet(specs: Vec<PanelSpec>) -> PanelFleet {
    PanelFleet::start(LOCALHOST, specs).await.expect("start the simulator")
}

async fn one_panel(kind: PanelKindSim, interval_ms: u64, timeout_ms: u64) -> (PanelFleet, Poller) {
    let f = fleet(vec![PanelSpec::new("p1", kind, 1)]).await;
    let addr = f.addr("p1").expect("panel address");
    let (gk, profile) = match kind {
        PanelKindSim::Alarm => (PanelKind::Alarm, PanelKindSim::Alarm.profile()),
        PanelKindSim::Access => (PanelKind::Access, PanelKindSim::Access.profile()),
    };
    let p = Poller::start(cfg("p1", gk, addr, 1, interval_ms, timeout_ms), profile);
    (f, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_decode_alarm_and_access_panels() {
    let f = fleet(vec![
        PanelSpec::new("alarm-1", PanelKindSim::Alarm, 1),
        PanelSpec::new("access-1", PanelKindSim::Access, 7),
    ])
    .await;
    let alarm_profile = PanelKindSim::Alarm.profile();
    let access_profile = PanelKindSim::Access.profile();
    let n_alarm = alarm_profile.points().len();
    let n_access = access_profile.points().len();
    let mut alarm =
        Poller::start(cfg("alarm-1", PanelKind::Alarm, f.addr("alarm-1").unwrap(), 1, 50, 500), alarm_profile);
    let mut access =
        Poller::start(cfg("access-1", PanelKind::Access, f.addr("access-1").unwrap(), 7, 50, 500), access_profile);

    let first = alarm.next(Duration::from_secs(5)).await;
    assert_eq!(first.device.as_str(), "alarm-1");
    let PanelOutcome::Read(r) = &first.outcome else { panic!("first poll failed: {:?}", first.outcome) };
    assert!(r.complete, "the first read hands over every point");
    let m = map_of(r);
    assert_eq!(m.len(), n_alarm, "every point, slow tier included, on the first read");
    assert_eq!(m["zone.3"].state.as_deref(), Some("normal"));
    assert_eq!(m["partition.1"].state.as_deref(), Some("disarmed"));
    assert_eq!(m["panel.ac-loss"].state.as_deref(), Some("ok"));

    f.set_point("alarm-1", "zone.3", "alarm").unwrap();
    f.set_point("alarm-1", "zone.16", "tamper").unwrap();
    f.set_point("alarm-1", "partition.2", "armed").unwrap();
    f.set_point("alarm-1", "panel.ac-loss", "ac-loss").unwrap();
    let obs = alarm
        .wait_for(Duration::from_secs(3), "zone.3 in alarm with AC loss", |o| {
            state_of(o, "zone.3") == Some("alarm") && state_of(o, "panel.ac-loss") == Some("ac-loss")
        })
        .await;
    assert_eq!(state_of(&obs.outcome, "zone.16"), Some("tamper"));
    assert_eq!(state_of(&obs.outcome, "partition.2"), Some("armed"));
    assert_eq!(state_of(&obs.outcome, "panel.battery-low"), Some("ok"), "other bits of the fault word untouched");
    assert_eq!(raw_of(&obs.outcome, "zone.3"), Some(1.0));

    let first = access.next(Duration::from_secs(5)).await;
    let PanelOutcome::Read(r) = &first.outcome else { panic!("first poll failed: {:?}", first.outcome) };
    let m = map_of(r);
    assert_eq!(m.len(), n_access);
    assert_eq!(m["door.1"].state.as_deref(), Some("closed"));
    assert_eq!(m["lock.1"].state.as_deref(), Some("locked"));
    f.set_point("access-1", "door.1", "forced").unwrap();
    f.set_point("access-1", "door.8", "held-open").unwrap();
    f.set_point("access-1", "lock.2", "unlocked").unwrap();
    f.set_point("access-1", "reader.3", "reader-fault").unwrap();
    f.set_point("access-1", "panel.tamper", "tamper").unwrap();
    let obs = access
        .wait_for(Duration::from_secs(3), "door.1 forced, lock.2 unlocked, reader 3 faulty", |o| {
            // Coils, discrete inputs and registers are separate reads: wait for all.
            state_of(o, "door.1") == Some("forced")
                && state_of(o, "lock.2") == Some("unlocked")
                && state_of(o, "reader.3") == Some("reader-fault")
                && state_of(o, "panel.tamper") == Some("tamper")
        })
        .await;
    assert_eq!(state_of(&obs.outcome, "door.8"), Some("held-open"));
    assert_eq!(state_of(&obs.outcome, "lock.3"), Some("locked"));
    assert_eq!(state_of(&obs.outcome, "reader.2"), Some("ok"));

    // The heartbeat counts while running, and stops when told to.
    let hb0 = raw_of(&obs.outcome, "heartbeat").unwrap();
    let obs = access
        .wait_for(Duration::from_secs(4), "heartbeat to move", |o| raw_of(o, "heartbeat").is_some_and(|v| v != hb0))
        .await;
    assert!(raw_of(&obs.outcome, "heartbeat").is_some());
    alarm.stop().await;
    access.stop().await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_tier_is_read_every_nth_cycle_and_carried() {
    // generic-access: fast cycles read doors (holding) and locks (coils): 2 requests; every
    // 4th cycle also reads reader faults, panel faults and the heartbeat: 4 requests.
    let (f, mut p) = one_panel(PanelKindSim::Access, 100, 500).await;
    let n = PanelKindSim::Access.profile().points().len();
    p.wait_for(Duration::from_secs(5), "a read", is_read).await;
    let before = f.stats("p1").unwrap().requests;
    for _ in 0..8 {
        let obs = p.next(Duration::from_secs(2)).await;
        let PanelOutcome::Read(r) = &obs.outcome else { panic!("poll failed: {:?}", obs.outcome) };
        // Nothing is set on the panel: only its heartbeat (a slow point) can change, so a
        // cycle hands over at most that, and the slow points stay known between their reads.
        assert!(!r.complete, "{r:?}");
        assert!(r.changed.iter().all(|(k, _)| &**k == "heartbeat"), "only what changed is handed over: {r:?}");
        assert_eq!(p.known.len(), n, "slow points are carried between their reads");
    }
    let after = f.stats("p1").unwrap().requests;
    assert_eq!(after - before, 8 * 2 + 2 * 2, "8 cycles = 6 fast (2 requests) + 2 full (4 requests)");
    assert_eq!(f.stats("p1").unwrap().connections, 1);
    p.stop().await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_is_unreachable_within_the_timeout_then_recovers() {
    let (f, mut p) = one_panel(PanelKindSim::Alarm, 100, 300).await;
    p.wait_for(Duration::from_secs(5), "a read", is_read).await;
    f.set_fault("p1", PanelFaultSim::NoAnswer, true).unwrap();
    let t0 = Instant::now();
    let obs = p.wait_for(Duration::from_secs(3), "Unreachable", |o| failed_with(o, PanelFault::Unreachable)).await;
    // The failing cycle ends at the request timeout (300 ms), not later; scheduling on a
    // loaded machine is not part of it.
    assert!(obs.duration < Duration::from_millis(300 + 700), "the failing cycle took {:?}", obs.duration);
    let _ = t0;
    let PanelOutcome::Failed { reason, .. } = &obs.outcome else { unreachable!() };
    assert!(reason.contains("no answer within 300 ms"), "{reason}");
    // Stays failed (reconnects are tried, and fail the same way) while the fault lasts.
    for _ in 0..5 {
        let obs = p.next(Duration::from_secs(2)).await;
        assert!(failed_with(&obs.outcome, PanelFault::Unreachable), "{:?}", obs.outcome);
    }
    f.set_fault("p1", PanelFaultSim::NoAnswer, false).unwrap();
    let t1 = Instant::now();
    let recovered = loop {
        let obs = p.next(Duration::from_secs(8)).await;
        if let PanelOutcome::Read(r) = obs.outcome {
            break r;
        }
        assert!(t1.elapsed() < Duration::from_secs(8), "no recovery after {:?}", t1.elapsed());
    };
    assert!(t1.elapsed() < Duration::from_secs(7), "recovered after {:?}", t1.elapsed());
    // The first read after a failure hands every point over again, whether it changed or not.
    let n = PanelKindSim::Alarm.profile().points().len();
    assert!(recovered.complete && recovered.changed.len() == n, "{recovered:?}");
    assert!(f.stats("p1").unwrap().connections >= 2, "the timed-out connection was replaced");
    p.stop().await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exception_is_reported_and_the_same_connection_keeps_working() {
    let (f, mut p) = one_panel(PanelKindSim::Alarm, 50, 500).await;
    p.wait_for(Duration::from_secs(5), "a read", is_read).await;
    f.set_fault("p1", PanelFaultSim::Exception(4), true).unwrap();
    let obs = p.wait_for(Duration::from_secs(3), "Exception", |o| failed_with(o, PanelFault::Exception)).await;
    let PanelOutcome::Failed { reason, .. } = &obs.outcome else { unreachable!() };
    assert!(reason.contains("exception 4"), "{reason}");
    // Every cycle during the fault fails the same way, without reconnecting.
    for _ in 0..3 {
        let obs = p.next(Duration::from_secs(2)).await;
        assert!(failed_with(&obs.outcome, PanelFault::Exception), "{:?}", obs.outcome);
    }
    f.set_fault("p1", PanelFaultSim::Exception(4), false).unwrap();
    f.set_point("p1", "zone.1", "alarm").unwrap();
    p.wait_for(Duration::from_secs(3), "zone.1 alarm after the exception", |o| state_of(o, "zone.1") == Some("alarm"))
        .await;
    assert_eq!(f.stats("p1").unwrap().connections, 1, "the connection survived the exceptions");
    p.stop().await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_transaction_id_drops_the_connection_and_recovers() {
    let (f, mut p) = one_panel(PanelKindSim::Alarm, 50, 500).await;
    p.wait_for(Duration::from_secs(5), "a read", is_read).await;
    assert_eq!(f.stats("p1").unwrap().connections, 1);
    f.set_fault("p1", PanelFaultSim::WrongTransactionId, true).unwrap();
    let obs = p.wait_for(Duration::from_secs(3), "Protocol", |o| failed_with(o, PanelFault::Protocol)).await;
    let PanelOutcome::Failed { reason, .. } = &obs.outcome else { unreachable!() };
    assert!(reason.contains("mismatch"), "{reason}");
    f.set_fault("p1", PanelFaultSim::WrongTransactionId, false).unwrap();
    f.set_point("p1", "zone.2", "fault").unwrap();
    p.wait_for(Duration::from_secs(8), "recovery", |o| state_of(o, "zone.2") == Some("fault")).await;
    assert!(f.stats("p1").unwrap().connections >= 2, "a new connection replaced the confused one");
    p.stop().await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_reconnects() {
    let (f, mut p) = one_panel(PanelKindSim::Access, 50, 500).await;
    p.wait_for(Duration::from_secs(5), "a read", is_read).await;
    f.set_fault("p1", PanelFaultSim::DropConnection, true).unwrap();
    let obs = p.wait_for(Duration::from_secs(3), "a failure", |o| !is_read(o)).await;
    assert!(
        failed_with(&obs.outcome, PanelFault::Unreachable) || failed_with(&obs.outcome, PanelFault::Protocol),
        "{:?}",
        obs.outcome
    );
    // The poller reconnects (after its backoff) while the panel keeps dropping it.
    let deadline = Instant::now() + Duration::from_secs(3);
    while f.stats("p1").unwrap().connections < 2 {
        assert!(Instant::now() < deadline, "no reconnect within 3 s");
        let obs = p.next(Duration::from_secs(2)).await;
        assert!(!is_read(&obs.outcome), "read while the panel drops every request");
    }
    f.set_fault("p1", PanelFaultSim::DropConnection, false).unwrap();
    f.set_point("p1", "door.3", "open").unwrap();
    p.wait_for(Duration::from_secs(8), "recovery", |o| state_of(o, "door.3") == Some("open")).await;
    p.stop().await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_inside_the_timeout_are_fine_beyond_it_unreachable() {
    let (f, mut p) = one_panel(PanelKindSim::Alarm, 100, 400).await;
    p.wait_for(Duration::from_secs(5), "a read", is_read).await;
    f.set_fault("p1", PanelFaultSim::Slow(Duration::from_millis(60)), true).unwrap();
    for _ in 0..3 {
        let obs = p.next(Duration::from_secs(2)).await;
        assert!(is_read(&obs.outcome), "{:?}", obs.outcome);
    }
    f.set_fault("p1", PanelFaultSim::Slow(Duration::from_millis(900)), true).unwrap();
    p.wait_for(Duration::from_secs(3), "Unreachable", |o| failed_with(o, PanelFault::Unreachable)).await;
    f.set_fault("p1", PanelFaultSim::Slow(Duration::ZERO), false).unwrap();
    p.wait_for(Duration::from_secs(8), "recovery", is_read).await;
    p.stop().await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_panel_does_not_delay_another() {
    let f = fleet(vec![PanelSpec::new("bad", PanelKindSim::Alarm, 1), PanelSpec::new("good", PanelKindSim::Alarm, 1)])
        .await;
    f.set_fault("bad", PanelFaultSim::NoAnswer, true).unwrap();
    let mut bad = Poller::start(
        cfg("bad", PanelKind::Alarm, f.addr("bad").unwrap(), 1, 100, 1000),
        PanelKindSim::Alarm.profile(),
    );
    let mut good = Poller::start(
        cfg("good", PanelKind::Alarm, f.addr("good").unwrap(), 1, 100, 1000),
        PanelKindSim::Alarm.profile(),
    );
    good.wait_for(Duration::from_secs(5), "a read", is_read).await;
    let t0 = Instant::now();
    let mut reads = 0;
    while t0.elapsed() < Duration::from_millis(1500) {
        if is_read(&good.next(Duration::from_secs(2)).await.outcome) {
            reads += 1;
        }
    }
    assert!(reads >= 10, "the healthy panel kept its 100 ms schedule: {reads} reads in 1.5 s");
    let obs = bad.next(Duration::from_secs(3)).await;
    assert!(failed_with(&obs.outcome, PanelFault::Unreachable), "{:?}", obs.outcome);
    bad.stop().await;
    good.stop().await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_unreachable_and_the_poller_keeps_trying() {
    // A port that nothing listens on.
    let addr: SocketAddr = format!("127.0.0.1:{}", harness::free_port()).parse().unwrap();
    let mut p = Poller::start(cfg("p1", PanelKind::Alarm, addr, 1, 50, 300), PanelKindSim::Alarm.profile());
    for _ in 0..4 {
        let obs = p.next(Duration::from_secs(2)).await;
        assert!(failed_with(&obs.outcome, PanelFault::Unreachable), "{:?}", obs.outcome);
    }
    assert!(!p.handle.is_finished());
    p.stop().await;
}

/// `pace` spaces the requests of one cycle for strict devices: a cycle of N requests takes at
/// least (N − 1) × pace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pace_spaces_the_requests_of_a_cycle() {
    let profile = ["generic-alarm", "generic-access", "zone-status-word"]
        .iter()
        .filter_map(|n| protocols::modbus::builtin(n))
        .max_by_key(|p| p.plan(8).len())
        .unwrap();
    let requests = profile.plan(8).len() as u32;
    assert!(requests >= 2, "need a profile read in several requests");
    let fleet = harness::sim::panels(&[("p1", profile.name.as_str())]).await;
    let addr = fleet.panels()[0].addr;
    let kind = if profile.name.contains("access") { PanelKind::Access } else { PanelKind::Alarm };
    let mut c = cfg("p1", kind, addr, 1, 1000, 500);
    c.pace = Duration::from_millis(60);
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let stop = tokio_util::sync::CancellationToken::new();
    let task = gateway::pollers::panel::spawn_panel_poller(c, profile, tx, stop.clone());
    let obs = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
    stop.cancel();
    let _ = task.await;
    match obs {
        gateway::pollers::Observation::Panel(p) => {
            assert!(matches!(p.outcome, gateway::pollers::PanelOutcome::Read(_)), "{:?}", p.outcome);
            assert!(
                p.duration >= Duration::from_millis(60) * (requests - 1),
                "{:?} for {requests} requests",
                p.duration
            );
        }
        other => panic!("{other:?}"),
    }
}
