//! Test harness: real processes on loopback. A real mosquitto on a free port, the workspace's
//! own binaries, and independent Python peers (paho-mqtt, pymodbus) from the project's
//! virtualenv. Everything binds 127.0.0.1 and picks free ports so tests run in parallel.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// Waits until something accepts on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("nothing listening on 127.0.0.1:{port} after {timeout:?}")
}

/// A binary of this workspace, never a stale one: it is looked for next to the test
/// executable's target directory (where `cargo build --workspace --bins` puts it; the test
/// script does that first), and when it is missing or older than any source of the workspace,
/// `cargo build` makes it first (once per binary and test process; a no-op when cargo finds it
/// fresh). A plain `cargo test` thus never runs an `hq` or `device-sim` left from an older tree.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(Path::parent).map(Path::to_path_buf))
        .unwrap_or_else(|| workspace_root().join("target/debug"));
    let path = dir.join(name);
    ensure_fresh(name, &path, &dir);
    path
}

/// The package each workspace binary is built from.
const BIN_PACKAGES: [(&str, &str); 5] = [
    ("branch-gateway", "gateway"),
    ("device-sim", "device-sim"),
    ("hq", "headoffice"),
    ("branch-demo", "demo"),
    ("bsg-bench", "bench"),
];

fn ensure_fresh(name: &str, path: &Path, profile_dir: &Path) {
    static CHECKED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let Some(package) = BIN_PACKAGES.iter().find(|(b, _)| *b == name).map(|(_, p)| *p) else { return };
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if checked.iter().any(|n| n == name) {
        return;
    }
    let built = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let stale = match built {
        None => true,
        Some(t) => newest_source().is_some_and(|s| s > t),
    };
    if stale {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root()).args(["build", "--quiet", "-p", package, "--bin", name]);
        if let Some(target) = profile_dir.parent() {
            cmd.arg("--target-dir").arg(target);
        }
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo to build {name}: {e}"));
        assert!(status.success(), "building {name} (package {package}) for the tests failed: {status}");
    }
    checked.push(name.to_string());
}

/// The newest modification time among the workspace's sources: every crate's `src/` and
/// manifest (the tests' own crate aside), and `Cargo.lock`.
fn newest_source() -> Option<std::time::SystemTime> {
    fn walk(dir: &Path, newest: &mut Option<std::time::SystemTime>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, newest);
            } else if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                *newest = (*newest).max(Some(t));
            }
        }
    }
    let root = workspace_root();
    let mut newest = std::fs::metadata(root.join("Cargo.lock")).and_then(|m| m.modified()).ok();
    for krate in ["i18n", "protocols", "gateway", "device-sim", "headoffice", "demo", "bench"] {
        walk(&root.join(krate).join("src"), &mut newest);
        if let Ok(t) = std::fs::metadata(root.join(krate).join("Cargo.toml")).and_then(|m| m.modified()) {
            newest = newest.max(Some(t));
        }
    }
    newest
}

/// The Python that has the peers installed: `$BSG_PYTHON`, else the project's `.venv`,
/// else `python3`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("BSG_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    /// SIGKILL, so no shutdown path runs (simulates a crash or power loss).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status();
    }
    /// Waits for exit up to `timeout`; returns the exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real mosquitto broker on a free loopback port, no persistence, anonymous allowed unless
/// `extra_conf` says otherwise.
pub struct Mosquitto {
    pub port: u16,
    pub dir: tempfile::TempDir,
    proc: Option<Proc>,
    conf: PathBuf,
}

impl Mosquitto {
    pub fn start() -> Result<Mosquitto> {
        Self::start_with("listener {port} 127.0.0.1\nallow_anonymous true\n")
    }

    /// `conf` is a mosquitto.conf template; `{port}` and `{dir}` are substituted.
    pub fn start_with(conf: &str) -> Result<Mosquitto> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let text = conf.replace("{port}", &port.to_string()).replace("{dir}", &dir.path().display().to_string());
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, format!("persistence false\nlog_dest stderr\n{text}"))?;
        let mut m = Mosquitto { port, dir, proc: None, conf: conf_path };
        m.restart()?;
        Ok(m)
    }

    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// (Re)starts on the same port. Without persistence, sessions and retained messages are gone.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let exe = which("mosquitto").context("mosquitto is not installed; run scripts/test (it installs it)")?;
        let log = std::fs::File::create(self.dir.path().join("mosquitto.log"))?;
        let child = Command::new(exe)
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawn mosquitto")?;
        self.proc = Some(Proc { child, name: "mosquitto".into() });
        // On 127.0.0.1, or on ::1 when the configuration says so.
        if std::fs::read_to_string(&self.conf).is_ok_and(|c| c.contains(" ::1")) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("::1", self.port)).is_err() {
                if Instant::now() > deadline {
                    bail!("nothing listening on [::1]:{} after 10 s (is IPv6 loopback off?)", self.port);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            return Ok(());
        }
        wait_for_port(self.port, Duration::from_secs(10))
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// SIGHUP: mosquitto re-reads its password and ACL files (connections stay).
    pub fn reload(&self) {
        if let Some(p) = &self.proc {
            p.signal("HUP");
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

/// Finds an executable on PATH (and /usr/sbin, where Debian puts mosquitto).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(PathBuf::from)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// One message as the independent subscriber saw it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Received {
    pub topic: String,
    pub payload: String,
    pub retain: bool,
    pub qos: u8,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

/// paho-mqtt in a Python process, subscribed to `topics`; messages arrive on a channel.
pub struct PahoSubscriber {
    _proc: Proc,
    rx: mpsc::Receiver<Received>,
    pub seen: Vec<Received>,
}

impl PahoSubscriber {
    pub fn start(port: u16, topics: &[&str]) -> Result<PahoSubscriber> {
        Self::start_args(port, topics, &[])
    }

    pub fn start_args(port: u16, topics: &[&str], extra: &[&str]) -> Result<PahoSubscriber> {
        let script = workspace_root().join("tests/peers/mqtt_sub.py");
        let mut child = Command::new(python())
            .arg(&script)
            .arg("127.0.0.1")
            .arg(port.to_string())
            .args(topics)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::null())
            .spawn()
            .context("spawn the paho-mqtt subscriber (is the venv set up? run scripts/test)")?;
        let stdout = child.stdout.take().context("subscriber stdout")?;
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("\"ready\"") {
                    let _ = ready_tx.send(Ok(()));
                    continue;
                }
                if line.contains("\"error\"") {
                    let _ = ready_tx.send(Err(line));
                    continue;
                }
                if let Ok(m) = serde_json::from_str::<Received>(&line)
                    && tx.send(m).is_err()
                {
                    break;
                }
            }
        });
        match ready_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("subscriber: {e}"),
            Err(_) => bail!("the paho subscriber did not become ready within 20 s"),
        }
        Ok(PahoSubscriber { _proc: Proc { child, name: "paho".into() }, rx, seen: Vec::new() })
    }

    /// Waits up to `timeout` for a message matching `pred` (earlier messages are kept in `seen`).
    pub fn wait_for(&mut self, timeout: Duration, mut pred: impl FnMut(&Received) -> bool) -> Option<Received> {
        if let Some(m) = self.seen.iter().find(|m| pred(m)) {
            return Some(m.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(m) => {
                    let hit = pred(&m);
                    self.seen.push(m.clone());
                    if hit {
                        return Some(m);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Collects everything that arrives within `d`.
    pub fn drain_for(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(m) => self.seen.push(m),
                Err(_) => break,
            }
        }
    }

    /// Alerts (JSON) seen so far on `…/alerts/…`.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.seen.iter().filter(|m| m.topic.contains("/alerts/")).map(Received::json).collect()
    }
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p)?;
    f.write_all(text.as_bytes())?;
    Ok(p)
}

/// Spawns a workspace binary with `args`, logging to `dir/name.log`.
pub fn spawn_bin(name: &str, args: &[&str], log_dir: &Path, envs: &[(&str, &str)]) -> Result<Proc> {
    let log = std::fs::File::create(log_dir.join(format!("{name}.log")))?;
    let log2 = log.try_clone()?;
    let mut cmd = Command::new(bin(name));
    cmd.args(args).stdin(Stdio::null()).stdout(log).stderr(log2);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd.spawn().with_context(|| format!("spawn {name} (built? run cargo build --workspace)"))?;
    Ok(Proc { child, name: name.into() })
}

/// A TCP proxy on loopback whose link can be cut and restored: stands in for a branch's WAN
/// link. `set_up(false)` drops every open connection and refuses new ones.
pub struct TcpProxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl TcpProxy {
    /// Listens on a free port and forwards to 127.0.0.1:`target`; starts `up`.
    pub fn start(target: u16) -> Result<TcpProxy> {
        Self::start_on(free_port(), target, true)
    }

    /// Listens on `port`; when `up` is false, connections are accepted and closed at once.
    pub fn start_on(port: u16, target: u16, up: bool) -> Result<TcpProxy> {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let up = Arc::new(AtomicBool::new(up));
        let generation = Arc::new(AtomicU64::new(0));
        let (up2, gen2) = (up.clone(), generation.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                let my_gen = gen2.load(Ordering::SeqCst);
                for (mut from, mut to) in
                    [(client.try_clone(), server.try_clone()), (server.try_clone(), client.try_clone())]
                        .into_iter()
                        .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    let (up3, gen3) = (up2.clone(), gen2.clone());
                    std::thread::spawn(move || {
                        let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            if !up3.load(Ordering::SeqCst) || gen3.load(Ordering::SeqCst) != my_gen {
                                break;
                            }
                            match std::io::Read::read(&mut from, &mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => break,
                            }
                        }
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Ok(TcpProxy { port, up, generation })
    }

    /// Cuts (`false`) or restores (`true`) the link. Cutting drops open connections.
    pub fn set_up(&self, up: bool) {
        use std::sync::atomic::Ordering;
        if !up {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        self.up.store(up, Ordering::SeqCst);
    }
}

/// Checks that the alerts' `seq` values, deduplicated, are exactly 1..=max with no gap.
/// Returns the max.
pub fn assert_contiguous_seq(alerts: &[serde_json::Value]) -> Result<u64> {
    let mut seqs: Vec<u64> = alerts.iter().filter_map(|a| a["seq"].as_u64()).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let Some(&max) = seqs.last() else { bail!("no alerts") };
    let first = seqs[0];
    if seqs.len() as u64 != max - first + 1 {
        let missing: Vec<u64> = (first..=max).filter(|s| seqs.binary_search(s).is_err()).take(20).collect();
        bail!("seq gap: got {} distinct seqs in {first}..={max}; missing e.g. {missing:?}", seqs.len());
    }
    Ok(max)
}

/// Validates payloads against the published JSON Schemas (docs/schemas) with the independent
/// Python validator (python-jsonschema). Returns, per payload, the list of errors (empty =
/// valid).
pub fn validate_with_schemas(payloads: &[serde_json::Value]) -> Result<Vec<Vec<String>>> {
    let script = workspace_root().join("tests/peers/validate_schema.py");
    let mut child = Command::new(python())
        .arg(&script)
        .arg("--schema-dir")
        .arg(workspace_root().join("docs/schemas"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn validate_schema.py (run scripts/test to set up the venv)")?;
    {
        let mut stdin = child.stdin.take().context("validator stdin")?;
        for (i, p) in payloads.iter().enumerate() {
            let line = serde_json::json!({ "case": format!("case-{i}"), "payload": p });
            writeln!(stdin, "{line}")?;
        }
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("validate_schema.py failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut verdicts = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let errs = v["errors"].as_array().map(|a| a.iter().map(|e| e.to_string()).collect()).unwrap_or_default();
        verdicts.push(if v["valid"] == true { Vec::new() } else { errs });
    }
    if verdicts.len() != payloads.len() {
        bail!("validator answered {} of {} cases", verdicts.len(), payloads.len());
    }
    Ok(verdicts)
}

/// Headless Chromium driven over WebDriver, for the web console's tests.
pub mod browser;

/// Simulated devices on loopback, as most end-to-end tests need them.
pub mod pg;

pub mod sim {
    use std::net::{IpAddr, Ipv4Addr};

    use device_sim::camera::{AuthMode, CameraFleet, CameraSpec};
    use device_sim::panel::{PanelFleet, PanelSpec};

    pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// Cameras `(id, name)` with user `admin`, password `pw`, all in `auth` mode.
    pub async fn cameras(cams: &[(&str, &str)], auth: AuthMode) -> CameraFleet {
        let specs = cams
            .iter()
            .map(|(id, name)| CameraSpec {
                id: id.to_string(),
                name: name.to_string(),
                username: "admin".into(),
                password: "pw".into(),
                auth,
            })
            .collect();
        match CameraFleet::start(LOOPBACK, specs).await {
            Ok(f) => f,
            Err(e) => panic!("simulated cameras: {e}"),
        }
    }

    /// Panels `(id, built-in profile)`, unit id 1, named after their id.
    pub async fn panels(panels: &[(&str, &str)]) -> PanelFleet {
        let specs = panels
            .iter()
            .map(|(id, profile)| PanelSpec {
                id: id.to_string(),
                name: id.to_string(),
                profile: protocols::modbus::builtin(profile).unwrap_or_else(|| panic!("no built-in profile {profile}")),
                unit_id: 1,
            })
            .collect();
        match PanelFleet::start(LOOPBACK, specs).await {
            Ok(f) => f,
            Err(e) => panic!("simulated panels: {e}"),
        }
    }
}
