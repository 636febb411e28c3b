//! The gateway's camera poller against simulated cameras (in-process `CameraFleet`), one
//! fault at a time, and against oxvif's mock server as an independent device.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use device_sim::camera::{AuthMode, CameraEventKind, CameraFault, CameraFleet, CameraInfo, CameraSpec};
use gateway::config::CameraConfig;
use gateway::pollers::camera::{CameraProbeSettings, spawn_camera_poller_with};
use gateway::pollers::{CameraObservation, Observation, Reach, Video};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const INTERVAL: Duration = Duration::from_millis(250);
const TIMEOUT: Duration = Duration::from_millis(600);

fn spec(id: &str, auth: AuthMode) -> CameraSpec {
    CameraSpec { id: id.into(), name: id.into(), username: "admin".into(), password: "s3cret".into(), auth }
}

pub fn camera_config(id: &str, url: &str, auth: &str, password: &str) -> CameraConfig {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "name": id,
        "onvif": url,
        "username": "admin",
        "password": password,
        "auth": auth,
        "poll_interval": format!("{}ms", INTERVAL.as_millis()),
        "timeout": format!("{}ms", TIMEOUT.as_millis()),
    }))
    .expect("camera config")
}

/// A running poller and its observations.
struct Poller {
    rx: mpsc::Receiver<Observation>,
    stop: CancellationToken,
    seen: Vec<CameraObservation>,
}

impl Poller {
    /// A poller that checks the picture on every probe (the tests of the other faults count
    /// probes and want no sparse checks in their way).
    fn start(cfg: CameraConfig) -> Poller {
        Poller::start_with(cfg, |s| s.frozen_check_every = 1)
    }

    fn start_with(cfg: CameraConfig, tune: impl FnOnce(&mut CameraProbeSettings)) -> Poller {
        let (tx, rx) = mpsc::channel(64);
        let stop = CancellationToken::new();
        let mut settings = CameraProbeSettings::from_config(&cfg);
        settings.frozen_after = 3;
        tune(&mut settings);
        spawn_camera_poller_with(cfg, settings, PathBuf::from("."), tx, stop.clone());
        Poller { rx, stop, seen: Vec::new() }
    }

    fn for_sim(cam: &CameraInfo, auth: AuthMode, password: &str) -> Poller {
        let auth = match auth {
            AuthMode::UsernameToken => "username-token",
            AuthMode::Digest => "digest",
        };
        Poller::start(camera_config(&cam.id, &cam.device_url, auth, password))
    }

    async fn next(&mut self, within: Duration) -> CameraObservation {
        match tokio::time::timeout(within, self.rx.recv()).await {
            Ok(Some(Observation::Camera(c))) => {
                self.seen.push(c.clone());
                c
            }
            Ok(Some(other)) => panic!("unexpected observation {other:?}"),
            Ok(None) => panic!("poller stopped"),
            Err(_) => panic!("no observation within {within:?}; seen so far: {:#?}", self.seen),
        }
    }

    /// Waits for an observation matching `pred`.
    async fn wait_for(
        &mut self,
        within: Duration,
        what: &str,
        pred: impl Fn(&CameraObservation) -> bool,
    ) -> CameraObservation {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("no observation with {what} within {within:?}; last: {:#?}", self.seen.last());
            }
            let o = self.next(left).await;
            if pred(&o) {
                return o;
            }
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn fleet(specs: Vec<CameraSpec>) -> CameraFleet {
    CameraFleet::start(IpAddr::from([127, 0, 0, 1]), specs).await.expect("start fleet")
}

fn online_live(o: &CameraObservation) -> bool {
    o.reach == Reach::Online && o.video == Video::Live
}

#[tokio::test]
async fn camera_poller_online_and_live_in_both_auth_modes() {
    let fleet = fleet(vec![spec("c-wsse", AuthMode::UsernameToken), spec("c-digest", AuthMode::Digest)]).await;
    for (cam, auth) in fleet.cameras().iter().zip([AuthMode::UsernameToken, AuthMode::Digest]) {
        let mut p = Poller::for_sim(cam, auth, "s3cret");
        let first = p.next(Duration::from_secs(5)).await;
        assert!(online_live(&first), "{}: first probe {first:#?}", cam.id);
        assert_eq!(first.stream_uri.as_deref(), Some(cam.rtsp_uri.as_str()));
        assert_eq!(first.snapshot_uri.as_deref(), Some(cam.snapshot_uri.as_str()));
        assert_eq!(first.device.as_str(), cam.id);
        let skew = first.clock_skew_ms.expect("skew measured");
        assert!(skew.abs() < 1500, "skew {skew}");
        // A steady camera stays online and live (the snapshot changes every time).
        for _ in 0..4 {
            let o = p.next(Duration::from_secs(3)).await;
            assert!(online_live(&o), "{o:#?}");
        }
    }
    fleet.shutdown().await;
}

#[tokio::test]
async fn camera_poller_down_is_unreachable_and_recovers() {
    let fleet = fleet(vec![spec("c-down", AuthMode::UsernameToken)]).await;
    let cam = fleet.cameras().remove(0);
    let mut p = Poller::for_sim(&cam, AuthMode::UsernameToken, "s3cret");
    p.wait_for(Duration::from_secs(5), "online", online_live).await;
    fleet.set_fault("c-down", CameraFault::Down, true).unwrap();
    let o = p.wait_for(Duration::from_secs(5), "unreachable", |o| o.reach == Reach::Unreachable).await;
    assert_eq!(o.video, Video::Unknown);
    assert!(o.reason.is_some());
    fleet.set_fault("c-down", CameraFault::Down, false).unwrap();
    p.wait_for(Duration::from_secs(5), "back online", online_live).await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn camera_poller_hung_camera_is_tcp_only_within_the_timeout() {
    let fleet = fleet(vec![spec("c-hung", AuthMode::UsernameToken)]).await;
    let cam = fleet.cameras().remove(0);
    let mut p = Poller::for_sim(&cam, AuthMode::UsernameToken, "s3cret");
    p.wait_for(Duration::from_secs(5), "online", online_live).await;
    fleet.set_fault("c-hung", CameraFault::Hung, true).unwrap();
    let started = Instant::now();
    let o = p.wait_for(Duration::from_secs(6), "tcp-only", |o| o.reach == Reach::TcpOnly).await;
    // At most one probe already in flight plus one timed-out probe (and the TCP check).
    assert!(started.elapsed() < INTERVAL + TIMEOUT * 8, "took {:?}", started.elapsed());
    assert!(o.reason.as_deref().unwrap_or("").contains("no answer"), "{o:#?}");
    fleet.set_fault("c-hung", CameraFault::Hung, false).unwrap();
    p.wait_for(Duration::from_secs(5), "back online", online_live).await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn camera_poller_refused_credentials_are_auth_failed_not_offline() {
    let fleet = fleet(vec![spec("c-auth", AuthMode::UsernameToken), spec("c-auth-d", AuthMode::Digest)]).await;
    let cams = fleet.cameras();
    // Wrong password, both modes.
    for (cam, auth) in cams.iter().zip([AuthMode::UsernameToken, AuthMode::Digest]) {
        let mut p = Poller::for_sim(cam, auth, "wrong");
        let o = p.next(Duration::from_secs(5)).await;
        assert_eq!(o.reach, Reach::AuthFailed, "{}: {o:#?}", cam.id);
        assert!(o.clock_skew_ms.is_some(), "the clock is read before auth");
    }
    // The camera refusing everything (fault), right password.
    let mut p = Poller::for_sim(&cams[0], AuthMode::UsernameToken, "s3cret");
    p.wait_for(Duration::from_secs(5), "online", online_live).await;
    fleet.set_fault("c-auth", CameraFault::AuthFailure, true).unwrap();
    p.wait_for(Duration::from_secs(5), "auth failed", |o| o.reach == Reach::AuthFailed).await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn camera_poller_rtsp_down_is_stream_down() {
    let fleet = fleet(vec![spec("c-rtsp", AuthMode::Digest)]).await;
    let cam = fleet.cameras().remove(0);
    let mut p = Poller::for_sim(&cam, AuthMode::Digest, "s3cret");
    p.wait_for(Duration::from_secs(5), "online", online_live).await;
    fleet.set_fault("c-rtsp", CameraFault::RtspDown, true).unwrap();
    let o = p.wait_for(Duration::from_secs(5), "stream down", |o| o.video == Video::StreamDown).await;
    assert_eq!(o.reach, Reach::Online);
    assert!(o.reason.as_deref().unwrap_or("").contains("RTSP"), "{o:#?}");
    fleet.set_fault("c-rtsp", CameraFault::RtspDown, false).unwrap();
    p.wait_for(Duration::from_secs(5), "live again", online_live).await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn camera_poller_frozen_picture_after_k_probes() {
    let fleet = fleet(vec![spec("c-frozen", AuthMode::UsernameToken)]).await;
    let cam = fleet.cameras().remove(0);
    let mut p = Poller::for_sim(&cam, AuthMode::UsernameToken, "s3cret");
    p.wait_for(Duration::from_secs(5), "online", online_live).await;
    fleet.set_fault("c-frozen", CameraFault::Frozen, true).unwrap();
    // The next probe may already be in flight; after that, K = 3 unchanged probes.
    let mut live_after_freeze = 0;
    loop {
        let o = p.next(Duration::from_secs(3)).await;
        match o.video {
            Video::Live => live_after_freeze += 1,
            Video::Frozen => break,
            other => panic!("unexpected {other:?}: {o:#?}"),
        }
        assert!(live_after_freeze <= 4, "frozen not detected: {:#?}", p.seen);
    }
    // The last picture before the freeze is the first of the unchanged run, so at least
    // K - 1 probes after the freeze still say Live.
    assert!(live_after_freeze >= 2, "frozen too early ({live_after_freeze} live probes)");
    fleet.set_fault("c-frozen", CameraFault::Frozen, false).unwrap();
    p.wait_for(Duration::from_secs(5), "live again", online_live).await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn camera_poller_reports_clock_skew_and_still_authenticates() {
    let fleet = fleet(vec![spec("c-skew", AuthMode::UsernameToken)]).await;
    let cam = fleet.cameras().remove(0);
    fleet.set_fault("c-skew", CameraFault::ClockSkew(-300), true).unwrap();
    let mut p = Poller::for_sim(&cam, AuthMode::UsernameToken, "s3cret");
    let o = p.next(Duration::from_secs(5)).await;
    assert!(online_live(&o), "{o:#?}");
    let skew = o.clock_skew_ms.expect("skew");
    assert!((skew + 300_000).abs() < 1500, "skew {skew}");
    fleet.shutdown().await;
}

#[tokio::test]
async fn camera_poller_soap_fault_and_http_500_are_tcp_only() {
    let fleet = fleet(vec![spec("c-500", AuthMode::UsernameToken)]).await;
    let cam = fleet.cameras().remove(0);
    let mut p = Poller::for_sim(&cam, AuthMode::UsernameToken, "s3cret");
    p.wait_for(Duration::from_secs(5), "online", online_live).await;
    for fault in [CameraFault::SoapFault, CameraFault::Http500] {
        fleet.set_fault("c-500", fault, true).unwrap();
        let o = p.wait_for(Duration::from_secs(5), "tcp-only", |o| o.reach == Reach::TcpOnly).await;
        assert!(o.reason.is_some(), "{fault:?}: {o:#?}");
        fleet.set_fault("c-500", fault, false).unwrap();
        p.wait_for(Duration::from_secs(5), "online again", online_live).await;
    }
    fleet.shutdown().await;
}

#[tokio::test]
async fn camera_poller_slow_camera_within_deadline_is_fine() {
    let fleet = fleet(vec![spec("c-slow", AuthMode::UsernameToken)]).await;
    let cam = fleet.cameras().remove(0);
    fleet.set_fault("c-slow", CameraFault::Slow(Duration::from_millis(100)), true).unwrap();
    let mut p = Poller::for_sim(&cam, AuthMode::UsernameToken, "s3cret");
    p.wait_for(Duration::from_secs(8), "online", online_live).await;
    fleet.set_fault("c-slow", CameraFault::Slow(TIMEOUT * 2), true).unwrap();
    p.wait_for(Duration::from_secs(10), "tcp-only", |o| o.reach == Reach::TcpOnly).await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn camera_poller_carries_pull_point_events() {
    let fleet = fleet(vec![spec("c-ev", AuthMode::UsernameToken)]).await;
    let cam = fleet.cameras().remove(0);
    let mut p = Poller::for_sim(&cam, AuthMode::UsernameToken, "s3cret");
    // The first subscription brings the initial (inactive) states.
    let init = p.wait_for(Duration::from_secs(5), "initial event states", |o| !o.events.is_empty()).await;
    assert!(init.events.iter().all(|e| !e.active), "{init:#?}");
    assert_eq!(init.events.len(), 3);
    fleet.emit_event("c-ev", CameraEventKind::SignalLoss, true).unwrap();
    fleet.emit_event("c-ev", CameraEventKind::Tamper, true).unwrap();
    let o =
        p.wait_for(Duration::from_secs(5), "signal loss", |o| o.events.iter().any(|e| e.fault == "signal-loss")).await;
    assert!(o.events.iter().any(|e| e.fault == "signal-loss" && e.active && e.topic == "tns1:VideoSource/SignalLoss"));
    assert!(o.events.iter().any(|e| e.fault == "tamper" && e.active));
    assert_eq!(o.video, Video::SignalLost);
    fleet.emit_event("c-ev", CameraEventKind::SignalLoss, false).unwrap();
    fleet.emit_event("c-ev", CameraEventKind::StorageFailure, true).unwrap();
    let o = p
        .wait_for(Duration::from_secs(5), "signal back", |o| {
            o.events.iter().any(|e| e.fault == "signal-loss" && !e.active)
        })
        .await;
    assert!(o.events.iter().any(|e| e.fault == "storage-failure" && e.active), "{o:#?}");
    p.wait_for(Duration::from_secs(5), "live", online_live).await;
    fleet.shutdown().await;
}

/// oxvif's mock server is an ONVIF device we did not write: the probe must reach Online. Its
/// stream URI points at port 554 where nothing listens, so the video is StreamDown.
#[tokio::test]
async fn camera_poller_reaches_online_against_oxvif_mock_server() {
    let server = oxvif::mock::MockServer::builder().enforce_auth(true).start().await.expect("mock server");
    let mut p = Poller::start(camera_config("mock-cam", server.device_url(), "username-token", "admin"));
    let o = p.next(Duration::from_secs(5)).await;
    assert_eq!(o.reach, Reach::Online, "{o:#?}");
    assert!(o.stream_uri.is_some(), "{o:#?}");
    assert!(o.clock_skew_ms.is_some());
    let mut bad = Poller::start(camera_config("mock-cam-2", server.device_url(), "username-token", "not-admin"));
    let o = bad.next(Duration::from_secs(5)).await;
    assert_eq!(o.reach, Reach::AuthFailed, "{o:#?}");
    drop(p);
    drop(bad);
    let _ = server.shutdown().await;
}

/// The picture is fetched on the first probe and then every Nth only, streamed (a 600 KB
/// picture, as real cameras send), over the connection the probe's SOAP calls used; a freeze is
/// still found (N unchanged pictures in a row among the checked probes), confirmed on every
/// probe once seen, and watched on every probe until the picture moves again.
#[tokio::test]
async fn camera_poller_checks_the_picture_every_nth_probe_over_one_connection() {
    const EVERY: u32 = 3;
    let fleet = fleet(vec![spec("c-nth", AuthMode::Digest)]).await;
    let cam = fleet.cameras().remove(0);
    fleet.set_picture_bytes("c-nth", 600_000).unwrap();
    let cfg = camera_config(&cam.id, &cam.device_url, "digest", "s3cret");
    let mut p = Poller::start_with(cfg, |s| s.frozen_check_every = EVERY);
    let first = p.next(Duration::from_secs(5)).await;
    assert!(online_live(&first), "{first:#?}");
    assert_eq!(fleet.snapshot_requests("c-nth").unwrap(), 1, "the first probe checks the picture");
    for _ in 0..8 {
        let o = p.next(Duration::from_secs(3)).await;
        assert!(online_live(&o), "{o:#?}");
    }
    // Probes 1, 4 and 7 of 9.
    assert_eq!(fleet.snapshot_requests("c-nth").unwrap(), 3, "one picture every {EVERY} probes");
    // One kept-alive connection carries the probes' SOAP calls, and a probe's picture after
    // them; a connection that carried a picture is closed after it (its grown read buffer is not
    // kept idle). So one connection per picture, plus one for the probes since the last picture,
    // plus one for the first picture's Digest challenge.
    let conns = fleet.http_connections("c-nth").unwrap();
    assert!(conns <= 3 + 2, "{conns} HTTP connections for 9 probes and 3 pictures");

    fleet.set_fault("c-nth", CameraFault::Frozen, true).unwrap();
    let frozen_from = p.seen.len();
    p.wait_for(Duration::from_secs(8), "frozen", |o| o.video == Video::Frozen).await;
    // At most one probe in flight, up to N to the next check, then 3 unchanged pictures.
    let probes = p.seen.len() - frozen_from;
    assert!(probes <= 1 + EVERY as usize + 3, "frozen after {probes} probes: {:#?}", &p.seen[frozen_from..]);
    let before = fleet.snapshot_requests("c-nth").unwrap();
    for _ in 0..3 {
        let o = p.next(Duration::from_secs(3)).await;
        assert_eq!(o.video, Video::Frozen, "{o:#?}");
    }
    assert_eq!(fleet.snapshot_requests("c-nth").unwrap(), before + 3, "a frozen picture is watched every probe");
    fleet.set_fault("c-nth", CameraFault::Frozen, false).unwrap();
    p.next(Duration::from_secs(3)).await;
    let o = p.next(Duration::from_secs(3)).await;
    assert!(online_live(&o), "live again at the first probe after the fault: {o:#?}");
    fleet.shutdown().await;
}

/// A picture over the cap is a reason, never a frozen picture (its hash is never taken), and
/// the camera stays online with live video (the stream answers).
#[tokio::test]
async fn camera_poller_picture_over_the_cap_is_a_reason_not_a_frozen_picture() {
    let fleet = fleet(vec![spec("c-big", AuthMode::UsernameToken)]).await;
    let cam = fleet.cameras().remove(0);
    fleet.set_picture_bytes("c-big", 300_000).unwrap();
    fleet.set_fault("c-big", CameraFault::Frozen, true).unwrap();
    let cfg = camera_config(&cam.id, &cam.device_url, "username-token", "s3cret");
    let mut p = Poller::start_with(cfg, |s| {
        s.frozen_check_every = 1;
        s.snapshot_max_bytes = 200_000;
    });
    for _ in 0..6 {
        let o = p.next(Duration::from_secs(3)).await;
        assert!(online_live(&o), "{o:#?}");
        let reason = o.reason.as_deref().unwrap_or("");
        assert!(reason.contains("snapshot_max_bytes") && reason.contains("200000"), "{o:#?}");
    }
    // Under the cap, the same frozen picture is found.
    fleet.set_picture_bytes("c-big", 150_000).unwrap();
    p.wait_for(Duration::from_secs(5), "frozen", |o| o.video == Video::Frozen).await;
    fleet.shutdown().await;
}

/// Cameras started together probe at once, then at a stable phase each, spread over the whole
/// interval — not bunched in its first seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_probes_start_at_once_then_spread_over_the_interval() {
    const N: usize = 40;
    let interval = Duration::from_secs(4);
    let specs: Vec<CameraSpec> = (0..N).map(|i| spec(&format!("c-spread-{i:02}"), AuthMode::UsernameToken)).collect();
    let fleet = fleet(specs).await;
    let (tx, mut rx) = mpsc::channel(4 * N);
    let stop = CancellationToken::new();
    let t0 = Instant::now();
    for cam in fleet.cameras() {
        let mut cfg = camera_config(&cam.id, &cam.device_url, "username-token", "s3cret");
        cfg.poll_interval = interval;
        let settings = CameraProbeSettings::from_config(&cfg);
        spawn_camera_poller_with(cfg, settings, PathBuf::from("."), tx.clone(), stop.clone());
    }
    // (camera, probe start relative to t0) of every probe in the first two intervals and a half.
    let mut starts: Vec<(String, Duration)> = Vec::new();
    let until = t0 + interval * 5 / 2;
    while let Ok(Some(Observation::Camera(o))) =
        tokio::time::timeout(until.saturating_duration_since(Instant::now()), rx.recv()).await
    {
        assert!(online_live(&o), "{o:#?}");
        let start = (Instant::now() - t0).saturating_sub(o.duration);
        starts.push((o.device.to_string(), start));
    }
    stop.cancel();
    for cam in fleet.cameras() {
        let mine: Vec<Duration> = starts.iter().filter(|(c, _)| *c == cam.id).map(|(_, s)| *s).collect();
        assert!(mine.len() >= 2, "{}: {mine:?}", cam.id);
        assert!(mine[0] < Duration::from_secs(1), "{}: first probe at {:?}", cam.id, mine[0]);
        let gap = mine[1] - mine[0];
        assert!(gap >= interval / 2 - Duration::from_millis(100), "{}: second probe {gap:?} after the first", cam.id);
    }
    // The second probes: their phases fill the interval (ten slices, none empty, none with
    // more than a quarter of the fleet).
    let mut slices = [0usize; 10];
    for cam in fleet.cameras() {
        let mut mine = starts.iter().filter(|(c, _)| *c == cam.id).map(|(_, s)| *s);
        let second = mine.nth(1).expect("second probe");
        let phase = second.as_millis() % interval.as_millis();
        slices[(phase * 10 / interval.as_millis()) as usize] += 1;
    }
    assert!(slices.iter().all(|n| *n >= 1 && *n <= N / 4), "probe phases per tenth of the interval: {slices:?}");
    let seconds_with_probes = slices.chunks(2).filter(|s| s.iter().sum::<usize>() > 0).count();
    println!("second-probe phases per 0.4 s of a 4 s interval: {slices:?} ({seconds_with_probes} of 5 pairs used)");
    fleet.shutdown().await;
}
