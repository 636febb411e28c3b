//! End-to-end tests of the outbox + uplink against a real mosquitto and an independent
//! paho-mqtt subscriber (head office). Loopback only, free ports, parallel-safe.
//!
//! The in-process tests drive `gateway::outbox` and `gateway::uplink` directly; the crash tests
//! run `target/debug/examples/outbox_burst` (built by `cargo test --workspace` or
//! `cargo build --workspace --examples`) so that it can be SIGKILLed.

use crate::uplink_common;

use std::time::{Duration, Instant};

use gateway::outbox::{Outbox, OutboxBounds};
use gateway::uplink::TlsFiles;
use harness::{Mosquitto, PahoSubscriber, Proc};
use uplink_common::*;

const B: &str = "b01";

/// A broker that queues without limit for a slow subscriber: mosquitto's default
/// (`max_queued_messages 1000`) silently drops QoS 1 messages for a subscriber that falls
/// more than 1,000 behind — a broker setting, not a gateway loss (head office's config in
/// deploy/mosquitto raises it too).
fn broker() -> Mosquitto {
    Mosquitto::start_with("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n")
        .expect("mosquitto")
}

fn burst_bin() -> std::path::PathBuf {
    let p = harness::bin("examples/outbox_burst");
    assert!(p.exists(), "{} is missing: build the examples first (cargo build --workspace --examples)", p.display());
    p
}

fn spawn_burst(dir: &std::path::Path, port: u16, total: u64, rate: u64, extra: &[&str], log: &str) -> Proc {
    let logf = std::fs::File::create(dir.join(log)).expect("log file");
    let logf2 = logf.try_clone().expect("log file");
    let mut cmd = std::process::Command::new(burst_bin());
    cmd.arg("--dir")
        .arg(dir.join("outbox"))
        .args(["--port", &port.to_string(), "--total", &total.to_string(), "--rate", &rate.to_string()])
        .args(["--keep-alive-secs", "5"])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stdout(logf)
        .stderr(logf2);
    let child = cmd.spawn().expect("spawn outbox_burst");
    Proc { child, name: "outbox_burst".into() }
}

/// Link cut by a proxy in the middle of a 10,000-event burst: every seq arrives.
#[test]
fn proxy_cut_mid_burst_loses_nothing() {
    let rt = runtime();
    let broker = broker();
    let mut sub = PahoSubscriber::start(broker.port, &["branches/b01/alerts/#"]).expect("subscriber");
    let proxy = rt.block_on(Proxy::start(broker.port)).expect("proxy");
    let gw = InProc::start(&rt, settings(proxy.port, B), big_bounds()).expect("gateway");

    let n = 10_000;
    let producer = rt.spawn(burst(gw.outbox.clone(), B, n, 64, 0));
    assert!(wait_until(Duration::from_secs(20), || gw.acked() >= 2_000), "no progress before the cut");
    proxy.cut_and_disable();
    let acked_at_cut = gw.acked();
    std::thread::sleep(Duration::from_millis(700));
    assert!(!gw.stats.is_connected(), "the uplink did not notice the cut");
    proxy.enable();
    rt.block_on(producer).expect("join").expect("burst");

    let missing = wait_all(&mut sub, B, n, Duration::from_secs(40));
    assert!(
        missing.is_empty(),
        "{} seqs missing, first {:?}; outbox depth {}, stats {:?}",
        missing.len(),
        &missing[..missing.len().min(10)],
        gw.outbox.depth(),
        gw.stats
    );
    assert_no_reuse(&sub, B);
    assert!(acked_at_cut < n, "the cut happened after the burst");
    assert!(wait_until(Duration::from_secs(10), || gw.outbox.depth() == 0), "outbox not drained");
    assert!(gw.stats.reconnects.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}

/// The broker restarts without persistence during a burst (so it has no session and forgets
/// everything in flight): the uplink re-sends from sled, every seq arrives.
///
/// The subscriber uses QoS 0 and the burst is paced: a broker killed with SIGKILL loses what it
/// had queued for a slow subscriber after acknowledging it to the publisher — that loss is the
/// broker's (head office runs it with persistence), not the gateway's, and is kept out of the
/// measurement. A proxy holds the uplink back until the subscriber has resubscribed.
#[test]
fn broker_restart_without_persistence_mid_burst_loses_nothing() {
    let rt = runtime();
    let mut broker = broker();
    let mut sub = PahoSubscriber::start_args(broker.port, &["branches/b01/#"], &["--qos", "0"]).expect("subscriber");
    let proxy = rt.block_on(Proxy::start(broker.port)).expect("proxy");
    let gw = InProc::start(&rt, settings(proxy.port, B), big_bounds()).expect("gateway");

    let n = 6_000;
    let producer = rt.spawn(burst(gw.outbox.clone(), B, n, 64, 2_000));
    assert!(wait_until(Duration::from_secs(20), || gw.acked() >= 1_500), "no progress before the restart");
    proxy.cut_and_disable();
    std::thread::sleep(Duration::from_millis(300));
    broker.restart().expect("restart mosquitto");
    // Wait until the subscriber is back (it reconnects on its own), probing with mosquitto_pub.
    let mut back = false;
    for i in 0..100 {
        let payload = format!("probe-{i}");
        let _ = std::process::Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-t", "branches/b01/probe", "-m", &payload])
            .status();
        if sub.wait_for(Duration::from_millis(300), |m| m.payload == payload).is_some() {
            back = true;
            break;
        }
    }
    assert!(back, "the subscriber did not come back after the broker restart");
    proxy.enable();
    rt.block_on(producer).expect("join").expect("burst");

    let missing = wait_all(&mut sub, B, n, Duration::from_secs(40));
    assert!(missing.is_empty(), "{} seqs missing, first {:?}", missing.len(), &missing[..missing.len().min(10)]);
    assert_no_reuse(&sub, B);
    // The broker lost the retained `online`; the reconnect published it again.
    let online_after = sub.seen.iter().rev().find(|m| m.topic == "branches/b01/gateway").map(|m| m.json());
    assert_eq!(online_after.map(|j| j["status"].clone()), Some(serde_json::json!("online")));
}

/// The gateway process is SIGKILLed three times at random moments during a burst and
/// restarted on the same outbox: no gap, and no seq is reused for a different alert.
#[test]
fn sigkill_mid_burst_three_times_no_gap_no_reused_seq() {
    let broker = broker();
    let mut sub = PahoSubscriber::start(broker.port, &["branches/b01/alerts/#"]).expect("subscriber");
    let dir = tempfile::tempdir().expect("tempdir");
    let total = 10_000u64;
    for round in 0..3 {
        let mut p =
            spawn_burst(dir.path(), broker.port, total, 2_500, &["--priority-every", "50"], &format!("run{round}.log"));
        std::thread::sleep(Duration::from_millis(random(400, 1_400)));
        p.signal("KILL");
        let _ = p.wait_exit(Duration::from_secs(5));
    }
    let mut p = spawn_burst(dir.path(), broker.port, total, 0, &["--exit-when-delivered"], "final.log");
    let code = p.wait_exit(Duration::from_secs(45));
    assert_eq!(
        code,
        Some(0),
        "final run did not finish: {}",
        std::fs::read_to_string(dir.path().join("final.log")).unwrap_or_default()
    );

    let missing = wait_all(&mut sub, B, total, Duration::from_secs(20));
    assert!(missing.is_empty(), "{} seqs missing, first {:?}", missing.len(), &missing[..missing.len().min(10)]);
    assert_no_reuse(&sub, B);
    let max = seqs(&sub, B).keys().next_back().copied().unwrap_or(0);
    assert_eq!(max, total, "seqs beyond the burst: the counter did not continue where it was");
    let ob = Outbox::open(&dir.path().join("outbox"), big_bounds()).expect("reopen");
    assert_eq!(ob.last_seq().0, total);
    assert_eq!(ob.depth(), 0);
}

/// Mutual TLS with the shipped broker config: a client without a certificate, or with one from
/// another CA, is refused; the uplink with the right certificate delivers.
#[test]
fn tls_requires_a_valid_client_certificate() {
    let rt = runtime();
    let etc = tempfile::tempdir().expect("tempdir");
    let certs = make_certs(etc.path()).expect("certificates");
    write_passwd(etc.path(), &[("b01", "pw-b01"), ("headoffice", "pw-ho")]);
    std::fs::copy(harness::workspace_root().join("deploy/mosquitto/acl"), etc.path().join("acl")).expect("acl");
    let broker = Mosquitto::start_with(&deploy_conf(etc.path(), true).expect("conf")).expect("mosquitto");

    // No client certificate: refused (mosquitto_pub as an independent client).
    let st = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "--cafile"])
        .arg(&certs.ca)
        .args(["-u", "b01", "-P", "pw-b01", "-t", "branches/b01/x", "-m", "x", "-q", "1"])
        .output()
        .expect("mosquitto_pub");
    assert!(!st.status.success(), "a client without a certificate was accepted");

    let ca = certs.ca.display().to_string();
    let (cc, ck) = (certs.client_cert.display().to_string(), certs.client_key.display().to_string());
    let mut sub = PahoSubscriber::start_args(
        broker.port,
        &["branches/#"],
        &["--user", "headoffice", "--password", "pw-ho", "--cafile", &ca, "--cert", &cc, "--key", &ck],
    )
    .expect("subscriber with a client certificate");

    // A certificate from another CA: never connects.
    let mut s = settings(broker.port, B);
    s.username = Some("b01".into());
    s.password = Some("pw-b01".into());
    s.tls = Some(TlsFiles {
        ca_file: certs.ca.clone(),
        client_cert_file: Some(certs.rogue_cert.clone()),
        client_key_file: Some(certs.rogue_key.clone()),
    });
    let rogue = InProc::start(&rt, s.clone(), big_bounds()).expect("rogue gateway");
    rt.block_on(rogue.outbox.append(alert(B, 1, true))).expect("append");
    std::thread::sleep(Duration::from_secs(2));
    assert!(!rogue.stats.is_connected(), "a client certificate from another CA was accepted");
    assert!(rogue.stats.connection_errors.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    rogue.shutdown.cancel();

    // The right certificate: delivers.
    s.client_id = format!("gw-tls-ok-{}", std::process::id());
    s.stats = Default::default();
    s.tls = Some(TlsFiles {
        ca_file: certs.ca.clone(),
        client_cert_file: Some(certs.client_cert.clone()),
        client_key_file: Some(certs.client_key.clone()),
    });
    let gw = InProc::start(&rt, s, big_bounds()).expect("gateway");
    rt.block_on(burst(gw.outbox.clone(), B, 200, 32, 0)).expect("burst");
    let missing = wait_all(&mut sub, B, 200, Duration::from_secs(20));
    assert!(missing.is_empty(), "missing over TLS: {:?}", &missing[..missing.len().min(10)]);
    assert!(sub.seen.iter().any(|m| m.topic == "branches/b01/gateway" && m.json()["status"] == "online"));
}

fn write_passwd(dir: &std::path::Path, users: &[(&str, &str)]) {
    let f = dir.join("passwd");
    std::fs::write(&f, "").expect("passwd");
    for (u, p) in users {
        let st = std::process::Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(&f)
            .args([u, p])
            .status()
            .expect("mosquitto_passwd");
        assert!(st.success(), "mosquitto_passwd failed");
    }
}

/// The shipped broker configuration (deploy/mosquitto: TLS, passwords, the ACL) on a free port,
/// with `users` in its password file.
struct Deployed {
    etc: tempfile::TempDir,
    certs: Certs,
    broker: Mosquitto,
}

fn deployed(users: &[(&str, &str)]) -> Deployed {
    let etc = tempfile::tempdir().expect("tempdir");
    let certs = make_certs(etc.path()).expect("certificates");
    write_passwd(etc.path(), users);
    std::fs::copy(harness::workspace_root().join("deploy/mosquitto/acl"), etc.path().join("acl")).expect("acl");
    let conf = deploy_conf(etc.path(), false).expect("conf");
    assert!(conf.contains("use_username_as_clientid true"), "the shipped mosquitto.conf must bind client ids to users");
    let broker = Mosquitto::start_with(&conf).expect("mosquitto");
    Deployed { etc, certs, broker }
}

impl Deployed {
    /// Head office's read-only subscriber to every branch (user `headoffice`, `pw-ho`).
    fn head_office(&self) -> PahoSubscriber {
        let ca = self.certs.ca.display().to_string();
        PahoSubscriber::start_args(
            self.broker.port,
            &["branches/#"],
            &["--user", "headoffice", "--password", "pw-ho", "--cafile", &ca],
        )
        .expect("head-office subscriber")
    }

    /// Uplink settings for `branch` with these credentials, over TLS with the test CA.
    fn gateway(&self, branch: &str, user: &str, password: &str) -> gateway::uplink::UplinkSettings {
        let mut s = settings(self.broker.port, branch);
        s.username = Some(user.into());
        s.password = Some(password.into());
        s.tls = Some(TlsFiles { ca_file: self.certs.ca.clone(), client_cert_file: None, client_key_file: None });
        s
    }
}

/// The shipped configuration against an impostor: a gateway started with branch b02's
/// credentials but branch b01's id and b01's client id. The ACL refuses its publishes into
/// b01's subtree (MQTT 5: PUBACK 0x87, so it keeps them), and since the broker takes the client
/// id from the username it cannot take over b01's session: the real b01 gateway is never
/// disconnected and head office gets exactly b01's own events.
#[test]
fn an_impostor_with_another_branchs_credentials_can_neither_publish_nor_disconnect() {
    let rt = runtime();
    let d = deployed(&[("b01", "pw-b01"), ("b02", "pw-b02"), ("headoffice", "pw-ho")]);
    let mut sub = d.head_office();

    // The real b01 gateway.
    let good = d.gateway(B, "b01", "pw-b01");
    let real_client_id = good.client_id.clone();
    let gw = InProc::start(&rt, good, big_bounds()).expect("gateway");
    assert!(wait_until(Duration::from_secs(15), || gw.stats.is_connected()), "b01 never connected");

    // b02's credentials, b01's id, b01's client id.
    let mut evil = d.gateway(B, "b02", "pw-b02");
    evil.client_id = real_client_id;
    let impostor = InProc::start(&rt, evil, big_bounds()).expect("impostor");
    rt.block_on(impostor.outbox.append(alert(B, 999, true))).expect("append");

    rt.block_on(burst(gw.outbox.clone(), B, 20, 8, 10)).expect("burst");
    let missing = wait_all(&mut sub, B, 20, Duration::from_secs(20));
    assert!(missing.is_empty(), "b01's own events missing: {missing:?}");
    assert!(
        wait_until(Duration::from_secs(10), || impostor.stats.refused.load(std::sync::atomic::Ordering::Relaxed) > 0),
        "the broker's refusal was not seen"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(impostor.outbox.depth() >= 1, "the refused event was deleted");
    assert_eq!(gw.stats.reconnects.load(std::sync::atomic::Ordering::Relaxed), 0, "the impostor threw b01 off");
    assert_eq!(gw.stats.connection_errors.load(std::sync::atomic::Ordering::Relaxed), 0, "b01's link broke");
    sub.drain_for(Duration::from_millis(500));
    let forged: Vec<_> = sub.alerts().into_iter().filter(|a| a["message"] == "e2e event 999").collect();
    assert!(forged.is_empty(), "the impostor's event reached head office: {forged:?}");
    let leaked: Vec<_> = sub.seen.iter().filter(|m| m.topic.starts_with("branches/b02/")).collect();
    assert!(leaked.is_empty(), "{leaked:?}");
}

/// An installer typed a username that is not the branch id: the shipped ACL refuses every
/// publish. Under MQTT 5 nothing is deleted and an `uplink-denied` fault waits with the alarms;
/// once head office adds the user to the ACL and reloads mosquitto (SIGHUP), every alarm raised
/// meanwhile arrives, in order, with no gap, followed by the fault's raise and clear.
#[test]
fn a_refusing_broker_loses_nothing_and_delivers_after_the_acl_is_fixed() {
    let rt = runtime();
    let d = deployed(&[("branch-01", "pw-typo"), ("headoffice", "pw-ho")]);
    let acl = d.etc.path().join("acl");
    let mut sub = d.head_office();
    let gw = InProc::start(&rt, d.gateway(B, "branch-01", "pw-typo"), big_bounds()).expect("gateway");
    rt.block_on(async {
        for n in 1..=6 {
            gw.outbox.append(alert(B, n, true)).await.expect("append");
        }
    });
    let refused = || gw.stats.refused.load(std::sync::atomic::Ordering::Relaxed);
    assert!(wait_until(Duration::from_secs(15), || refused() > 0), "no refusal seen");
    std::thread::sleep(Duration::from_secs(2));
    sub.drain_for(Duration::from_millis(200));
    assert!(sub.alerts().is_empty(), "a refused publish reached head office: {:?}", sub.alerts());
    assert!(gw.outbox.depth() >= 6, "refused events were deleted: depth {}", gw.outbox.depth());

    // Head office fixes its ACL and reloads.
    let mut text = std::fs::read_to_string(&acl).expect("read acl");
    text.push_str("\nuser branch-01\ntopic write branches/b01/#\n");
    std::fs::write(&acl, text).expect("write acl");
    d.broker.reload();

    let alarms = |sub: &PahoSubscriber| sub.alerts().into_iter().filter(|a| a["kind"] == "alarm-link").count();
    let deadline = Instant::now() + Duration::from_secs(30);
    while alarms(&sub) < 6 && Instant::now() < deadline {
        sub.drain_for(Duration::from_millis(200));
    }
    let fault = |a: &serde_json::Value, state: &str| {
        a["kind"] == "device-fault" && a["details"]["fault"] == "uplink-denied" && a["state"] == state
    };
    let cleared = sub.wait_for(Duration::from_secs(15), |m| fault(&m.json(), "cleared"));
    assert!(cleared.is_some(), "no cleared uplink-denied");
    sub.drain_for(Duration::from_millis(500));
    let all = sub.alerts();
    let seqs: Vec<u64> = all.iter().filter(|a| a["kind"] == "alarm-link").filter_map(|a| a["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>(), "the alarms raised meanwhile, in order, no gap");
    let raised: Vec<_> = all.iter().filter(|a| fault(a, "raised")).collect();
    assert_eq!(raised.len(), 1, "uplink-denied raised once: {raised:?}");
    assert!(raised[0]["details"]["reason"].as_str().unwrap_or("").contains("0x87"), "{}", raised[0]);
    assert_eq!(raised[0]["severity"], "major");
    assert_eq!(all.iter().filter(|a| fault(a, "cleared")).count(), 1);
    assert!(all.iter().all(|a| a["details"]["fault"] != "uplink-down"), "a refusal is not a link outage");
    assert!(wait_until(Duration::from_secs(10), || gw.outbox.depth() == 0), "outbox not drained");
}

/// The broker is unreachable at start-up and the outbox overflows: the alarms all survive,
/// low-severity events are dropped, and the overflow alert carries the count.
#[test]
fn overflow_keeps_alarms_and_reports_the_count() {
    let rt = runtime();
    let broker = broker();
    let mut sub = PahoSubscriber::start(broker.port, &["branches/b01/alerts/#"]).expect("subscriber");
    let proxy = rt.block_on(Proxy::start(broker.port)).expect("proxy");
    proxy.cut_and_disable(); // head office unreachable from the start
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox =
        Outbox::open(&dir.path().join("outbox"), OutboxBounds { max_events: 40, max_bytes: 1 << 20 }).expect("outbox");
    let gw = InProc::start_with(&rt, settings(proxy.port, B), dir, outbox);

    let mut evicted = 0;
    rt.block_on(async {
        for i in 0..100u64 {
            let alarm = i % 5 == 0; // 20 alarms, 80 camera events
            let a = gw.outbox.append(alert(B, i + 1, alarm)).await.expect("append");
            if a.evicted > 0 {
                gw.sink.emit(gateway::events::GatewayEvent::EventsDropped { count: a.evicted });
            }
            evicted += a.evicted;
        }
    });
    assert!(gw.outbox.depth() <= 41, "bound not held: {}", gw.outbox.depth());
    assert!(evicted >= 59, "evicted {evicted}");
    assert!(!gw.stats.is_connected());
    proxy.enable();

    let deadline = Instant::now() + Duration::from_secs(20);
    while gw.outbox.depth() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    sub.drain_for(Duration::from_millis(500));
    let alerts = sub.alerts();
    let alarms = alerts.iter().filter(|a| a["kind"] == "alarm-link").count();
    assert_eq!(alarms, 20, "alarms lost in the overflow");
    let reported: u64 = alerts
        .iter()
        .filter(|a| a["kind"] == "device-fault" && a["details"]["fault"] == "outbox-overflow")
        .filter_map(|a| a["details"]["dropped_events"].as_u64())
        .sum();
    assert!(reported >= 1, "no outbox-overflow alert");
    assert!(reported <= evicted, "reported {reported} > evicted {evicted}");
    // Alarms first after the outage.
    let first_kinds: Vec<_> = alerts.iter().take(20).map(|a| a["kind"].as_str().unwrap_or("").to_string()).collect();
    assert!(first_kinds.iter().all(|k| k == "alarm-link"), "priority events were not delivered first: {first_kinds:?}");
}

/// Retained `online` on connect; the Will `offline` (connection-lost) when the process is
/// killed; `offline` (shutdown) on SIGTERM.
#[test]
fn gateway_status_online_will_on_kill_offline_on_term() {
    let broker = broker();
    let mut sub = PahoSubscriber::start(broker.port, &["branches/b01/gateway"]).expect("subscriber");
    let dir = tempfile::tempdir().expect("tempdir");
    let status = |m: &harness::Received, s: &str, r: Option<&str>| {
        let j = m.json();
        m.topic == "branches/b01/gateway" && j["status"] == s && r.is_none_or(|r| j["reason"] == r)
    };

    let p = spawn_burst(dir.path(), broker.port, 10, 100, &[], "a.log");
    assert!(sub.wait_for(Duration::from_secs(15), |m| status(m, "online", None)).is_some(), "no online");
    p.signal("KILL");
    let will = sub.wait_for(Duration::from_secs(15), |m| status(m, "offline", Some("connection-lost")));
    assert!(will.is_some(), "no Will after SIGKILL");

    let mut p = spawn_burst(dir.path(), broker.port, 10, 100, &[], "b.log");
    sub.seen.clear();
    assert!(sub.wait_for(Duration::from_secs(15), |m| status(m, "online", None)).is_some(), "no online after restart");
    // A late subscriber gets the retained state.
    let mut late = PahoSubscriber::start(broker.port, &["branches/b01/gateway"]).expect("late subscriber");
    let r = late.wait_for(Duration::from_secs(5), |m| m.retain && status(m, "online", None));
    assert!(r.is_some(), "online is not retained");
    p.signal("TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(10)), Some(0), "no clean exit on SIGTERM");
    let off = sub.wait_for(Duration::from_secs(5), |m| status(m, "offline", Some("shutdown")));
    assert!(off.is_some(), "no offline(shutdown) on SIGTERM");
    sub.drain_for(Duration::from_millis(500));
    assert!(
        !sub.seen.iter().any(|m| status(m, "offline", Some("connection-lost"))),
        "the Will fired on a clean shutdown"
    );
}

/// The link is down longer than the threshold: an `uplink-down` fault is raised (queued in the
/// outbox) and cleared on reconnect with the outage length and the backlog.
#[test]
fn link_down_raises_and_clears_the_uplink_fault() {
    let rt = runtime();
    let broker = broker();
    let mut sub = PahoSubscriber::start(broker.port, &["branches/b01/alerts/#"]).expect("subscriber");
    let proxy = rt.block_on(Proxy::start(broker.port)).expect("proxy");
    let mut s = settings(proxy.port, B);
    s.tuning.link_down_alert_after = Duration::from_millis(800);
    let gw = InProc::start(&rt, s, big_bounds()).expect("gateway");
    assert!(wait_until(Duration::from_secs(10), || gw.stats.is_connected()));
    proxy.cut_and_disable();
    rt.block_on(burst(gw.outbox.clone(), B, 5, 5, 0)).expect("burst");
    std::thread::sleep(Duration::from_millis(1_800));
    proxy.enable();

    let fault = |a: &serde_json::Value, state: &str| {
        a["kind"] == "device-fault" && a["details"]["fault"] == "uplink-down" && a["state"] == state
    };
    let cleared = sub.wait_for(Duration::from_secs(15), |m| fault(&m.json(), "cleared"));
    let cleared = cleared.expect("no cleared uplink-down alert").json();
    assert!(sub.alerts().iter().any(|a| fault(a, "raised")), "no raised uplink-down alert");
    assert!(cleared["details"]["outage_ms"].as_u64().unwrap_or(0) >= 800, "{cleared}");
    assert!(cleared["details"]["waiting_events"].as_u64().unwrap_or(0) >= 5, "{cleared}");
    assert_eq!(cleared["device"]["id"], "gateway");
    assert_eq!(cleared["device"]["type"], "gateway");
}

/// `commission` publishes a probe into the branch's own subtree: with a username the shipped
/// ACL does not fit, the uplink check fails (exit 1) with the fix, and `check-config` warns.
/// With the right username it passes.
#[test]
fn commission_fails_with_the_fix_when_the_broker_refuses_publishes() {
    let d = deployed(&[("branch-01", "pw-typo"), ("b01", "pw-b01")]);
    let (broker, certs) = (&d.broker, &d.certs);
    let closed = harness::free_port();
    let site = |user: &str, pw: &str| {
        format!(
            r#"
[branch]
id = "b01"
name = "Commission test"
[uplink]
broker = "mqtts://127.0.0.1:{port}"
username = "{user}"
password = "{pw}"
[uplink.tls]
ca_file = "{ca}"
[storage]
path = "outbox"
[[camera]]
id = "cam-01"
name = "Entrance"
onvif = "http://127.0.0.1:{closed}/onvif/device_service"
username = "admin"
password = "pw"
timeout = "300ms"
"#,
            port = broker.port,
            ca = certs.ca.display()
        )
    };
    let uplink_checks = |file: &std::path::Path| -> (Option<i32>, serde_json::Value) {
        let out = std::process::Command::new(harness::bin("branch-gateway"))
            .args(["commission", "--json"])
            .arg(file)
            .output()
            .expect("run commission");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("commission --json");
        let uplink = report["devices"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["id"] == "uplink"))
            .cloned()
            .expect("an uplink report");
        (out.status.code(), uplink)
    };
    let check = |uplink: &serde_json::Value, name: &str| {
        uplink["checks"].as_array().and_then(|c| c.iter().find(|c| c["name"] == name)).cloned().expect(name)
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let typo = harness::write_file(dir.path(), "typo.toml", &site("branch-01", "pw-typo")).expect("site");
    let (code, uplink) = uplink_checks(&typo);
    assert_eq!(code, Some(1), "{uplink}");
    assert_eq!(check(&uplink, "broker")["verdict"], "pass", "{uplink}");
    let publish = check(&uplink, "publish");
    assert_eq!(publish["verdict"], "fail", "{uplink}");
    assert!(publish["detail"].as_str().unwrap_or("").contains("0x87"), "{publish}");
    let fix = publish["fix"].as_str().unwrap_or("");
    assert!(fix.contains("must equal the branch id") && fix.contains("\"b01\""), "{fix}");
    let out = std::process::Command::new(harness::bin("branch-gateway"))
        .arg("check-config")
        .arg(&typo)
        .output()
        .expect("check-config");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "a warning is not an error: {text}");
    assert!(text.contains("warning: uplink.username"), "{text}");

    let good = harness::write_file(dir.path(), "good.toml", &site("b01", "pw-b01")).expect("site");
    let (_, uplink) = uplink_checks(&good);
    assert_eq!(check(&uplink, "publish")["verdict"], "pass", "{uplink}");
    assert_eq!(uplink["ready"], true, "{uplink}");
}

/// `commission` explains certificate problems in an installer's words, each with its fix,
/// against a real mosquitto requiring client certificates, with certificates made here: a
/// client certificate of X.509 version 1, one from a CA the broker does not trust, a client key
/// that is not the certificate's, a broker certificate for another name, an expired broker
/// certificate, and a ca_file that is not the broker's CA.
#[test]
fn commission_explains_certificate_problems_with_the_fix() {
    let etc = tempfile::tempdir().expect("tempdir");
    let d = etc.path();
    let certs = make_certs(d).expect("certificates");
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    std::fs::write(
        d.join("wrong.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:other.example\n",
    )
    .expect("ext");
    // (name, extfile or none for version 1, days)
    for (name, ext, days) in
        [("v1", None, "2"), ("wrongname", Some("wrong.ext"), "2"), ("expired", Some("server.ext"), "-1")]
    {
        let (key, csr, crt) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"));
        let mut a = vec!["req"];
        a.extend_from_slice(&ec);
        a.extend_from_slice(&["-keyout", &key, "-out", &csr, "-subj", "/CN=b01"]);
        openssl(d, &a).expect("key");
        let mut a = vec!["x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"];
        a.extend_from_slice(&["-out", &crt, "-days", days]);
        if let Some(ext) = ext {
            a.extend_from_slice(&["-extfile", ext]);
        }
        openssl(d, &a).expect("certificate");
    }
    let p = |f: &str| d.join(f).display().to_string();
    // (broker's certificate, client certificate, client key, ca_file, what the detail must say, what the fix must say)
    let cases = [
        ("server", "client", "client", "ca", "", ""),
        ("server", "v1", "v1", "ca", "version 1", "-extfile"),
        ("server", "rogue", "rogue", "ca", "not signed by a CA the broker trusts", "head office's CA"),
        ("server", "client", "rogue", "ca", "does not belong to the client certificate", "openssl pkey -pubout"),
        ("wrongname", "client", "client", "ca", "not issued for 127.0.0.1", "[uplink] broker"),
        ("expired", "client", "client", "ca", "has expired", "clock"),
        ("server", "client", "client", "rogue-ca", "not signed by the CA in [uplink.tls] ca_file", "ca_file"),
    ];
    for (server, cert, key, ca, what, fix) in cases {
        let conf = format!(
            "listener {{port}} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\nallow_anonymous true\n{}",
            certs.ca.display(),
            p(&format!("{server}.crt")),
            p(&format!("{server}.key")),
            keep_root()
        );
        let broker = Mosquitto::start_with(&conf).expect("mosquitto");
        let site = format!(
            "[branch]\nid = \"b01\"\nname = \"TLS\"\n[uplink]\nbroker = \"mqtts://127.0.0.1:{}\"\n[uplink.tls]\nca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"\n[storage]\npath = \"outbox\"\n",
            broker.port,
            p(&format!("{ca}.crt")),
            p(&format!("{cert}.crt")),
            p(&format!("{key}.key")),
        );
        let file = harness::write_file(d, "site.toml", &site).expect("site");
        let out = std::process::Command::new(harness::bin("branch-gateway"))
            .args(["commission", "--json"])
            .arg(&file)
            .output()
            .expect("commission");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let uplink = report["devices"].as_array().and_then(|v| v.iter().find(|d| d["id"] == "uplink")).cloned();
        let uplink = uplink.expect("uplink report");
        let broker_check = uplink["checks"].as_array().and_then(|c| c.first()).cloned().expect("broker check");
        let case = format!("{server}/{cert}/{key}/{ca}");
        if what.is_empty() {
            assert_eq!(uplink["ready"], true, "{case}: {uplink}");
            continue;
        }
        assert_eq!(broker_check["verdict"], "fail", "{case}: {uplink}");
        let detail = broker_check["detail"].as_str().unwrap_or("");
        assert!(detail.contains(what), "{case}: detail {detail:?} lacks {what:?}");
        let got = broker_check["fix"].as_str().unwrap_or("");
        assert!(got.contains(fix), "{case}: fix {got:?} lacks {fix:?}");
    }
}

/// What head office receives is byte for byte the JSON of the alert appended, for every kind
/// of alert (the outbox stores them packed and makes the JSON when it publishes), and an alert
/// the packed form cannot hold (a leap-second timestamp: stored as JSON) too.
#[test]
fn every_kind_of_alert_arrives_as_the_json_of_the_alert_appended() {
    use protocols::{
        AlarmLinkDetails, Alert, AlertBody, AlertState, CameraOfflineDetails, DeviceFaultDetails, DeviceRef,
        DeviceType, DoorState, DoorStatusDetails, LinkedCamera, Severity, Snapshot,
    };
    let rt = runtime();
    let broker = broker();
    let mut sub = PahoSubscriber::start(broker.port, &["branches/b01/alerts/#"]).expect("subscriber");
    let gw = InProc::start(&rt, settings(broker.port, B), big_bounds()).expect("gateway");

    let dev = |id: &str, t: DeviceType| DeviceRef {
        id: id.parse().expect("id"),
        device_type: t,
        name: format!("{id} 柜台"),
        zones: vec!["hall".parse().expect("zone")],
    };
    let cams = || {
        vec![
            LinkedCamera {
                id: "cam-01".parse().expect("id"),
                name: "Vault".into(),
                online: true,
                stream_alive: true,
                frozen: false,
                picture: None,
                stream_uri: Some("rtsp://192.0.2.7/cam-01".into()),
                snapshot_uri: None,
            },
            LinkedCamera {
                id: "cam-02".parse().expect("id"),
                name: "Door".into(),
                online: false,
                stream_alive: false,
                frozen: true,
                picture: Some("dark".into()),
                stream_uri: None,
                snapshot_uri: Some("http://192.0.2.8/snap.jpg".into()),
            },
        ]
    };
    let shots = || {
        vec![Snapshot {
            camera: "cam-01".parse().expect("id"),
            file: Some("20261207T080000.000Z-cam-01.jpg".into()),
            taken_at: protocols::time::now(),
            bytes: 52_000,
            error: None,
        }]
    };
    let new = |d: DeviceRef, state, sev, msg: &str, body| {
        Alert::new(B.parse().expect("branch"), d, state, sev, protocols::time::now(), msg.into(), body)
    };
    let mut alerts = vec![
        new(
            dev("cam-01", DeviceType::Camera),
            AlertState::Raised,
            Severity::Major,
            "Camera cam-01 offline",
            AlertBody::CameraOffline(CameraOfflineDetails {
                status: "unreachable".into(),
                reason: "connect: connection timed out".into(),
                consecutive_failures: 3,
                armed: true,
                uncovered_zones: vec!["hall".parse().expect("zone")],
                clock_skew_ms: Some(1_500),
            }),
        ),
        new(
            dev("panel-1", DeviceType::AlarmPanel),
            AlertState::Raised,
            Severity::Critical,
            "Zone vault fired",
            AlertBody::AlarmLink(AlarmLinkDetails {
                zone: "vault".parse().expect("zone"),
                zone_name: "金库".into(),
                zone_state: "alarm".into(),
                partition: Some("1".into()),
                armed: true,
                twenty_four_hour: false,
                area: Some("back-office".parse().expect("zone")),
                cameras: cams(),
                follow_up_of: Some("0193a5f2-7c3e-7b11-8a2d-5f0e9c1b2a3d".into()),
                snapshots: shots(),
            }),
        ),
        new(
            dev("door-ctl", DeviceType::AccessController),
            AlertState::Raised,
            Severity::Critical,
            "Door d1 forced open",
            AlertBody::DoorStatus(DoorStatusDetails {
                door: "d1".parse().expect("zone"),
                door_name: "Main door".into(),
                door_state: DoorState::ForcedOpen,
                locked: Some(false),
                cameras: cams(),
                follow_up_of: None,
                snapshots: vec![],
            }),
        ),
        new(
            dev("gateway", DeviceType::Gateway),
            AlertState::Cleared,
            Severity::Warning,
            "Head office reachable again",
            AlertBody::DeviceFault(DeviceFaultDetails {
                fault: "uplink-down".into(),
                reason: "connected".into(),
                dropped_events: None,
                outage_ms: Some(61_000),
                waiting_events: Some(12),
            }),
        ),
    ];
    let mut leap = alerts[0].clone();
    leap.occurred_at = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
        .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 1_250))
        .expect("a leap second")
        .and_utc();
    alerts.push(leap);

    let mut want = std::collections::BTreeMap::new();
    for a in alerts {
        let appended = rt.block_on(gw.outbox.append(a.clone())).expect("append");
        let mut original = a;
        original.seq = appended.alert.seq;
        let topic = format!("branches/{B}/alerts/{}", original.kind().as_str());
        let json = String::from_utf8(serde_json::to_vec(&original).expect("json")).expect("utf-8");
        want.insert(original.seq.0, (topic, json));
    }
    let missing = wait_all(&mut sub, B, want.len() as u64, Duration::from_secs(20));
    assert!(missing.is_empty(), "not delivered: {missing:?}");
    for (seq, (topic, json)) in &want {
        let got: Vec<&harness::Received> = sub
            .seen
            .iter()
            .filter(|m| m.json()["seq"].as_u64() == Some(*seq) && m.topic.contains("/alerts/"))
            .collect();
        assert!(!got.is_empty(), "seq {seq} not received");
        for m in got {
            assert_eq!(&m.topic, topic, "seq {seq}");
            assert_eq!(&m.payload, json, "seq {seq}: the published bytes are not the JSON of the alert appended");
        }
    }
}
