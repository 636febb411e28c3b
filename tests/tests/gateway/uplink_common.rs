//! Shared pieces of the uplink end-to-end tests: a cuttable TCP proxy, an in-process gateway
//! (outbox + uplink), certificate generation with the `openssl` CLI, and seq bookkeeping.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gateway::outbox::{Outbox, OutboxBounds};
use gateway::uplink::{self, UplinkSettings};
use harness::PahoSubscriber;
use protocols::{
    AlarmLinkDetails, Alert, AlertBody, AlertState, BranchId, CameraOfflineDetails, DeviceRef, DeviceType, Severity,
    Topics,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// A loopback TCP proxy that can cut every connection through it and refuse new ones.
pub struct Proxy {
    pub port: u16,
    enabled: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
}

impl Proxy {
    pub async fn start(upstream: u16) -> Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let enabled = Arc::new(AtomicBool::new(true));
        let (generation, gen_rx) = watch::channel(0u64);
        let en = enabled.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !en.load(Ordering::SeqCst) {
                    let _ = inbound.shutdown().await;
                    continue;
                }
                let mut cut = gen_rx.clone();
                cut.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                    // Dropping both sockets closes them: the link is cut mid-stream.
                });
            }
        });
        Ok(Proxy { port, enabled, generation })
    }

    /// Cuts every open connection; new ones are refused until `enable`.
    pub fn cut_and_disable(&self) {
        self.enabled.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::SeqCst);
    }
}

/// An outbox and an uplink running in `rt`.
pub struct InProc {
    pub dir: tempfile::TempDir,
    pub outbox: Arc<Outbox>,
    pub stats: Arc<uplink::UplinkStats>,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Where to report evictions (`GatewayEvent::EventsDropped`) of appends made by the test.
    pub sink: gateway::events::EventSink,
}

pub fn settings(port: u16, branch: &str) -> UplinkSettings {
    let b: BranchId = branch.parse().expect("branch id");
    let topics = Topics::new("branches", b).expect("topics");
    let mut s = UplinkSettings::new("127.0.0.1", port, format!("gw-{branch}-{}", std::process::id()), topics);
    s.keep_alive = Duration::from_secs(5);
    s.tuning.backoff_min = Duration::from_millis(100);
    s.tuning.backoff_max = Duration::from_millis(800);
    s
}

impl InProc {
    pub fn start(rt: &tokio::runtime::Runtime, s: UplinkSettings, bounds: OutboxBounds) -> Result<InProc> {
        let dir = tempfile::tempdir()?;
        let outbox = Outbox::open(&dir.path().join("outbox"), bounds)?;
        Ok(Self::start_with(rt, s, dir, outbox))
    }

    pub fn start_with(
        rt: &tokio::runtime::Runtime,
        s: UplinkSettings,
        dir: tempfile::TempDir,
        outbox: Arc<Outbox>,
    ) -> InProc {
        let mut s = s;
        let stats = s.stats.clone();
        let shutdown = CancellationToken::new();
        let (_tx, rx) = tokio::sync::mpsc::channel(16);
        // The gateway's own faults, made as the engine makes them.
        let (sink, events) = gateway::events::EventSink::channel();
        s.events = sink.clone();
        let faults = gateway::health::GatewayFaults::new(
            s.topics.branch().clone(),
            gateway::health::gateway_device("GW"),
            gateway::messages::Lang::En,
        );
        rt.spawn(gateway::app::run_gateway_faults(faults, events, outbox.clone()));
        let task = rt.spawn(uplink::run(s, outbox.clone(), rx, shutdown.clone()));
        InProc { dir, outbox, stats, shutdown, task, sink }
    }

    pub fn acked(&self) -> u64 {
        self.stats.acked.load(Ordering::Relaxed)
    }
}

pub fn big_bounds() -> OutboxBounds {
    OutboxBounds { max_events: 1_000_000, max_bytes: 1 << 30 }
}

/// A camera-offline alert (not priority) or, with `alarm`, an alarm-link (priority).
pub fn alert(branch: &str, n: u64, alarm: bool) -> Alert {
    let b: BranchId = branch.parse().expect("branch");
    let (device, sev, body) = if alarm {
        (
            DeviceRef {
                id: "panel-1".parse().expect("id"),
                device_type: DeviceType::AlarmPanel,
                name: "Panel".into(),
                zones: vec![],
            },
            Severity::Critical,
            AlertBody::AlarmLink(AlarmLinkDetails {
                follow_up_of: None,
                snapshots: Vec::new(),
                zone: "vault".parse().expect("zone"),
                zone_name: "Vault".into(),
                zone_state: "alarm".into(),
                partition: None,
                armed: true,
                twenty_four_hour: true,
                area: None,
                cameras: vec![],
            }),
        )
    } else {
        (
            DeviceRef {
                id: "cam-01".parse().expect("id"),
                device_type: DeviceType::Camera,
                name: "Cam".into(),
                zones: vec![],
            },
            Severity::Info,
            AlertBody::CameraOffline(CameraOfflineDetails {
                status: "unreachable".into(),
                reason: "timeout".into(),
                consecutive_failures: 3,
                armed: false,
                uncovered_zones: vec![],
                clock_skew_ms: None,
            }),
        )
    };
    Alert::new(b, device, AlertState::Raised, sev, protocols::time::now(), format!("e2e event {n}"), body)
}

/// Appends `n` alerts, `concurrency` at a time, optionally paced to `rate` per second.
pub async fn burst(outbox: Arc<Outbox>, branch: &str, n: u64, concurrency: usize, rate: u64) -> Result<()> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let t0 = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        if rate > 0 {
            tokio::time::sleep_until(t0 + Duration::from_secs_f64(i as f64 / rate as f64)).await;
        }
        let permit = sem.clone().acquire_owned().await?;
        let ob = outbox.clone();
        let a = alert(branch, i + 1, false);
        tasks.spawn(async move {
            let r = ob.append(a).await;
            drop(permit);
            r
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// seq → the set of alert ids seen with it.
pub fn seqs(sub: &PahoSubscriber, branch: &str) -> BTreeMap<u64, Vec<String>> {
    let mut m: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for a in sub.alerts() {
        if a["branch"] != branch {
            continue;
        }
        if let (Some(seq), Some(id)) = (a["seq"].as_u64(), a["id"].as_str()) {
            let ids = m.entry(seq).or_default();
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        }
    }
    m
}

/// Waits until the subscriber has seen every seq in 1..=n; returns the missing ones otherwise.
pub fn wait_all(sub: &mut PahoSubscriber, branch: &str, n: u64, timeout: Duration) -> Vec<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        sub.drain_for(Duration::from_millis(300));
        let seen = seqs(sub, branch);
        let missing: Vec<u64> = (1..=n).filter(|s| !seen.contains_key(s)).collect();
        if missing.is_empty() || Instant::now() >= deadline {
            return missing;
        }
    }
}

/// No seq was used for two different alerts.
pub fn assert_no_reuse(sub: &PahoSubscriber, branch: &str) {
    let reused: Vec<(u64, Vec<String>)> = seqs(sub, branch).into_iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(reused.is_empty(), "seqs reused for different alerts: {:?}", &reused[..reused.len().min(5)]);
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// A pseudo-random number (no extra dependency): time-seeded xorshift.
pub fn random(lo: u64, hi: u64) -> u64 {
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(88172645463325252)
        | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    lo + x % (hi - lo).max(1)
}

/// Certificates made with the `openssl` CLI: a CA, a server certificate for 127.0.0.1 and
/// localhost, a client certificate from the CA, and a client certificate from another CA.
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub rogue_cert: PathBuf,
    pub rogue_key: PathBuf,
}

pub fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().context("run openssl (is it installed?)")?;
    if !out.status.success() {
        bail!("openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

pub fn make_certs(dir: &Path) -> Result<Certs> {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    for ca in ["ca", "rogue-ca"] {
        let mut a = vec!["req", "-x509"];
        a.extend_from_slice(&ec);
        let subj = format!("/CN=Test {ca}");
        let (key, crt) = (format!("{ca}.key"), format!("{ca}.crt"));
        a.extend_from_slice(&["-keyout", &key, "-out", &crt, "-days", "2", "-subj", &subj]);
        a.extend_from_slice(&[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(dir, &a)?;
    }
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )?;
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )?;
    for (name, ca, ext, cn) in [
        ("server", "ca", "server.ext", "localhost"),
        ("client", "ca", "client.ext", "b01"),
        ("rogue", "rogue-ca", "client.ext", "b01"),
    ] {
        let mut a = vec!["req"];
        a.extend_from_slice(&ec);
        let (key, csr, crt) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"));
        let subj = format!("/CN={cn}");
        a.extend_from_slice(&["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &a)?;
        let (cacrt, cakey) = (format!("{ca}.crt"), format!("{ca}.key"));
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &cacrt,
                "-CAkey",
                &cakey,
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                ext,
            ],
        )?;
    }
    Ok(Certs {
        ca: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
        rogue_cert: dir.join("rogue.crt"),
        rogue_key: dir.join("rogue.key"),
    })
}

/// The shipped `deploy/mosquitto/mosquitto.conf`, templated for a test: `{port}` on loopback,
/// certificates, password file and ACL under `dir`, no persistence, log to stderr (the
/// harness adds that).
pub fn deploy_conf(dir: &Path, require_certificate: bool) -> Result<String> {
    let d = format!("{}/", dir.display());
    let text = std::fs::read_to_string(harness::workspace_root().join("deploy/mosquitto/mosquitto.conf"))?;
    let mut out = String::new();
    for line in text.lines() {
        let l = line.trim();
        let repl = if l == "listener 8883" {
            "listener {port} 127.0.0.1".to_string()
        } else if l.starts_with("persistence ") || l.starts_with("persistence_location") || l.starts_with("log_dest") {
            continue;
        } else if l.starts_with("require_certificate") {
            format!("require_certificate {require_certificate}")
        } else {
            line.replace("/etc/mosquitto/certs/", &d).replace("/etc/mosquitto/", &d)
        };
        out.push_str(&repl);
        out.push('\n');
    }
    out.push_str(keep_root());
    if !out.contains("listener {port}") || !out.contains(&format!("{d}acl")) || !out.contains(&format!("{d}passwd")) {
        bail!("deploy/mosquitto/mosquitto.conf no longer has the expected listener/acl/password lines");
    }
    Ok(out)
}

/// Run as root (CI containers), mosquitto drops to the `mosquitto` user, which cannot read a
/// private temporary directory: the config line that keeps root for a test, or nothing.
pub fn keep_root() -> &'static str {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false) { "user root\n" } else { "" }
}
