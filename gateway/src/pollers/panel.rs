//! The panel poller: one task per alarm or access panel, reading its register map over
//! Modbus TCP and emitting one [`Observation::Panel`] per poll cycle.
//!
//! Why it looks the way it does (docs/DESIGN.md, "Protocol facts that bite"):
//! - tokio-modbus 0.17 has no timeout or reconnect, and after one timed-out request (or one
//!   wrong transaction id) every later answer on that connection is out of step. So every
//!   request runs under `cfg.timeout`, and a timeout, a header mismatch or any I/O or
//!   framing error drops the connection; the next attempt reconnects after an exponential
//!   backoff with jitter (capped at [`MAX_BACKOFF`], so recovery is seen within seconds).
//! - An exception response is a well-formed answer: it is reported
//!   ([`PanelFault::Exception`]) and the connection is kept.
//! - One request in flight per connection: many servers (pymodbus among them) answer only
//!   the first of several pipelined requests.
//! - The alarm latency is the poll interval, so a cycle must be cheap: the read plan, the
//!   point ids and their sort order are computed once; a cycle is the reads, a decode walk
//!   with no lookups, and one map built from sorted input. Slow-tier points are read every
//!   `slow_every`-th cycle and their last value carried in between.
//! - tokio-modbus's typed readers `debug_assert` the register count a device returns; a
//!   device that answers with the wrong count must not crash the gateway, so the poller
//!   uses `Client::call` and checks counts itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use i18n::text;
use protocols::DeviceId;
use protocols::modbus::{self, Profile, RawData, ReadPlan, ReadRequest, Table, Tier};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_modbus::client::{Client, Context};
use tokio_modbus::{Request, Response, Slave};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

use super::{Observation, PanelFault, PanelObservation, PanelOutcome, PanelRead, PointValue};
use crate::config::{Diagnostic, PanelConfig, ProfileResolver, split_host_port};

/// The longest wait between reconnect attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The first wait after a connection is dropped.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// Finds profiles by built-in name or by file path (relative to the site config's
/// directory). Used by config validation (through [`ProfileResolver`]) and by the app to
/// load the profile each poller gets.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProfileStore;

impl ProfileStore {
    /// A built-in profile (`generic-alarm`, `generic-access`, `zone-status-word`) or a
    /// profile file; `Err` lists every problem.
    pub fn load(&self, name_or_path: &str, base_dir: &Path) -> Result<Profile, Vec<String>> {
        if let Some(p) = modbus::builtin(name_or_path) {
            return Ok(p);
        }
        let path: PathBuf = base_dir.join(name_or_path);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !looks_like_path(name_or_path) => {
                return Err(vec![format!(
                    "is neither a built-in profile ({}) nor a file ({} does not exist)",
                    modbus::BUILTIN_NAMES.join(", "),
                    path.display()
                )]);
            }
            Err(e) => return Err(vec![format!("cannot read {}: {e}", path.display())]),
        };
        modbus::parse(&text).map_err(|errs| errs.into_iter().map(|e| format!("{}: {e}", path.display())).collect())
    }
}

fn looks_like_path(s: &str) -> bool {
    s.contains('/') || s.ends_with(".toml")
}

impl ProfileResolver for ProfileStore {
    fn points(&self, profile: &str, base_dir: &Path) -> Result<Vec<(String, String)>, Vec<Diagnostic>> {
        self.load(profile, base_dir).map(|p| p.point_roles()).map_err(|errs| {
            errs.into_iter()
                .map(|e| {
                    let fix = text!(
                        "fix the profile file (see docs/PROFILES.md)",
                        "修改配置模板文件（见 docs/PROFILES.zh-CN.md）"
                    );
                    Diagnostic::new("", i18n::Text::verbatim(e), fix)
                })
                .collect()
        })
    }
}

/// [`ProfileStore::load`] with the problems joined into one message.
pub fn load_profile(name_or_path: &str, base_dir: &Path) -> Result<Profile, String> {
    ProfileStore.load(name_or_path, base_dir).map_err(|errs| errs.join("; "))
}

/// Starts the poller of one panel. It polls every `cfg.poll_interval` (the first poll at
/// once) until `shutdown` is cancelled or the receiver of `tx` is gone.
pub fn spawn_panel_poller(
    cfg: PanelConfig,
    profile: Profile,
    tx: mpsc::Sender<Observation>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let span = tracing::info_span!("panel", id = %cfg.id);
    tokio::spawn(run(cfg, profile, tx, shutdown).instrument(span))
}

/// Exponential backoff with "equal jitter" (half fixed, half random).
#[derive(Debug)]
struct Backoff {
    next: Duration,
    not_before: Option<Instant>,
}

impl Backoff {
    fn new() -> Self {
        Backoff { next: MIN_BACKOFF, not_before: None }
    }

    fn failed(&mut self) {
        let half = self.next / 2;
        let jitter = Duration::from_millis(rand::random_range(0..=half.as_millis() as u64));
        self.not_before = Some(Instant::now() + half + jitter);
        self.next = (self.next * 2).min(MAX_BACKOFF);
    }

    fn succeeded(&mut self) {
        self.next = MIN_BACKOFF;
        self.not_before = None;
    }

    /// Time left before the next attempt is allowed.
    fn wait_left(&self) -> Option<Duration> {
        self.not_before.and_then(|t| t.checked_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }
}

/// Why one cycle failed.
#[derive(Debug)]
struct Failure {
    fault: PanelFault,
    reason: String,
    /// Whether the connection must be dropped.
    drop: bool,
}

impl Failure {
    fn new(fault: PanelFault, drop: bool, reason: impl Into<String>) -> Self {
        Failure { fault, reason: reason.into(), drop }
    }
}

/// One Modbus connection, or none.
struct Link {
    cfg: PanelConfig,
    ctx: Option<Context>,
    backoff: Backoff,
    /// The last failure that dropped the connection, reported while waiting to reconnect.
    last: Option<(PanelFault, String)>,
}

impl Link {
    async fn ensure_connected(&mut self) -> Result<&mut Context, Failure> {
        if self.ctx.is_none() {
            if let Some(left) = self.backoff.wait_left() {
                let (fault, why) = self.last.clone().unwrap_or((PanelFault::Unreachable, "not connected".into()));
                return Err(Failure::new(fault, false, format!("{why}; reconnecting in {} ms", left.as_millis())));
            }
            let t = self.cfg.timeout;
            let connected = tokio::time::timeout(t, connect(&self.cfg)).await;
            match connected {
                Ok(Ok(ctx)) => {
                    debug!("connected");
                    self.ctx = Some(ctx);
                }
                Ok(Err(e)) => return Err(Failure::new(PanelFault::Unreachable, true, e)),
                Err(_) => {
                    return Err(Failure::new(
                        PanelFault::Unreachable,
                        true,
                        format!("connect: no answer within {} ms", t.as_millis()),
                    ));
                }
            }
        }
        self.ctx.as_mut().ok_or_else(|| Failure::new(PanelFault::Unreachable, true, "not connected"))
    }

    /// Runs the plan's reads, one at a time. `out` is cleared and refilled.
    async fn read_all(&mut self, plan: &ReadPlan, out: &mut Vec<RawData>) -> Result<(), Failure> {
        out.clear();
        let timeout = self.cfg.timeout;
        let pace = self.cfg.pace;
        let ctx = self.ensure_connected().await?;
        for (i, req) in plan.requests().iter().enumerate() {
            // Strict devices (some PLC gateways) drop a request that follows the previous
            // answer too closely: wait `pace` between requests of one cycle.
            if i > 0 && !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
            let call = match req.table {
                Table::Coil => Request::ReadCoils(req.address, req.count),
                Table::DiscreteInput => Request::ReadDiscreteInputs(req.address, req.count),
                Table::Holding => Request::ReadHoldingRegisters(req.address, req.count),
                Table::Input => Request::ReadInputRegisters(req.address, req.count),
            };
            let answer = match tokio::time::timeout(timeout, ctx.call(call)).await {
                Err(_) => {
                    return Err(Failure::new(
                        PanelFault::Unreachable,
                        true,
                        format!("{} read at {}: no answer within {} ms", req.table, req.address, timeout.as_millis()),
                    ));
                }
                Ok(a) => a,
            };
            let response = match answer {
                Ok(Ok(r)) => r,
                Ok(Err(code)) => {
                    return Err(Failure::new(
                        PanelFault::Exception,
                        false,
                        format!(
                            "{} read of {} at {}: exception {} ({code:?})",
                            req.table,
                            req.count,
                            req.address,
                            u8::from(code)
                        ),
                    ));
                }
                Err(tokio_modbus::Error::Protocol(e)) => {
                    return Err(Failure::new(
                        PanelFault::Protocol,
                        true,
                        format!("{} read at {}: {e}", req.table, req.address),
                    ));
                }
                Err(tokio_modbus::Error::Transport(e)) => {
                    let fault = match e.kind() {
                        // Raised by tokio-modbus's frame decoder, not by the socket.
                        std::io::ErrorKind::InvalidData
                        | std::io::ErrorKind::InvalidInput
                        | std::io::ErrorKind::UnexpectedEof => PanelFault::Protocol,
                        _ => PanelFault::Unreachable,
                    };
                    return Err(Failure::new(fault, true, format!("{} read at {}: {e}", req.table, req.address)));
                }
            };
            out.push(to_raw(req, response)?);
        }
        Ok(())
    }
}

/// Checks that a response answers `req` (kind and count) and turns it into [`RawData`].
fn to_raw(req: &ReadRequest, response: Response) -> Result<RawData, Failure> {
    let want = usize::from(req.count);
    let bad = |got: String| {
        Failure::new(
            PanelFault::Protocol,
            true,
            format!("{} read of {} at {}: {got}", req.table, req.count, req.address),
        )
    };
    match (req.table, response) {
        (Table::Coil, Response::ReadCoils(bits)) | (Table::DiscreteInput, Response::ReadDiscreteInputs(bits)) => {
            // Bits come packed in bytes: up to 7 padding bits are normal, fewer bits are not.
            if bits.len() < want || bits.len() > want.div_ceil(8) * 8 {
                return Err(bad(format!("answer has {} bits", bits.len())));
            }
            Ok(RawData::Bits(bits))
        }
        (Table::Holding, Response::ReadHoldingRegisters(regs)) | (Table::Input, Response::ReadInputRegisters(regs)) => {
            if regs.len() != want {
                return Err(bad(format!("answer has {} registers", regs.len())));
            }
            Ok(RawData::Registers(regs))
        }
        (_, other) => Err(bad(format!("unexpected answer {other:?}"))),
    }
}

async fn connect(cfg: &PanelConfig) -> Result<Context, String> {
    let addr = resolve(&cfg.address).await?;
    tokio_modbus::client::tcp::connect_slave(addr, Slave(cfg.unit_id)).await.map_err(|e| format!("connect {addr}: {e}"))
}

async fn resolve(address: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = address.parse::<SocketAddr>() {
        return Ok(a);
    }
    let (host, port) = split_host_port(address, 502).ok_or_else(|| format!("{address:?} is not HOST:PORT"))?;
    tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {host}: no address"))
}

async fn run(cfg: PanelConfig, profile: Profile, tx: mpsc::Sender<Observation>, shutdown: CancellationToken) {
    let device = match DeviceId::new(cfg.id.clone()) {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "{}", i18n::Lang::current().t("panel id is not usable; not polling", "主机 id 不可用，不轮询"));
            return;
        }
    };
    let points = profile.points();
    let full = profile.read_plan(profile.max_gap, |_| true);
    let fast = profile.read_plan(profile.max_gap, |p| p.tier == Tier::Fast);
    let tiered = profile.has_slow_points() && !fast.requests().is_empty();
    let slow_every = u64::from(profile.slow_every.max(1));
    // Point ids in sorted order (each hand-over lists its points so), shared with every hand-over.
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|a, b| points[*a].id.cmp(&points[*b].id));
    let ids: Vec<Arc<str>> = points.iter().map(|p| Arc::from(p.id.as_str())).collect();
    // The value of each point as last decoded, and as last handed over (None: hand it over).
    let mut last: Vec<Option<(f64, Option<&str>)>> = vec![None; points.len()];
    let mut sent: Vec<Option<(u64, Option<&str>)>> = vec![None; points.len()];
    let mut data: Vec<RawData> = Vec::with_capacity(full.requests().len());
    let mut link = Link { cfg: cfg.clone(), ctx: None, backoff: Backoff::new(), last: None };
    let mut need_full = true;
    let mut cycle: u64 = 0;
    let mut failing = false;

    info!(address = %cfg.address, unit = cfg.unit_id, profile = %profile.name, requests = full.requests().len(), "polling");
    let mut tick = tokio::time::interval(cfg.poll_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let read_full = !tiered || need_full || cycle.is_multiple_of(slow_every);
        cycle = cycle.wrapping_add(1);
        let plan = if read_full { &full } else { &fast };

        let started = std::time::Instant::now();
        let result = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = link.read_all(plan, &mut data) => r,
        };
        let result = result.and_then(|()| {
            plan.decode_with(&profile, &data, |i, _, r| {
                if let Some(slot) = last.get_mut(i) {
                    *slot = Some((r.raw, r.state));
                }
            })
            .map_err(|e| Failure::new(PanelFault::Protocol, true, e.to_string()))
        });
        let outcome = match result {
            Ok(()) => {
                link.backoff.succeeded();
                link.last = None;
                if read_full {
                    need_full = false;
                }
                if failing {
                    info!("{}", i18n::Lang::current().t("panel answers again", "主机恢复应答"));
                    failing = false;
                }
                let complete = sent.iter().all(Option::is_none);
                let mut changed = Vec::new();
                for &i in &order {
                    let Some((raw, state)) = last[i] else { continue };
                    // Compared bit for bit: a NaN read twice is no change.
                    let now = Some((raw.to_bits(), state));
                    if sent[i] != now {
                        sent[i] = now;
                        changed.push((Arc::clone(&ids[i]), PointValue { raw, state: state.map(str::to_owned) }));
                    }
                }
                PanelOutcome::Read(PanelRead { complete, changed })
            }
            Err(f) => {
                if f.drop {
                    link.ctx = None;
                    link.backoff.failed();
                    link.last = Some((f.fault, f.reason.clone()));
                    debug!(reason = %f.reason, "connection dropped");
                }
                if !failing {
                    warn!(fault = ?f.fault, reason = %f.reason, "{}", i18n::Lang::current().t("poll failed", "轮询失败"));
                    failing = true;
                }
                need_full = true;
                // The first read after a failure hands every point over again.
                sent.iter_mut().for_each(|s| *s = None);
                PanelOutcome::Failed { fault: f.fault, reason: f.reason }
            }
        };
        let obs = Observation::Panel(PanelObservation {
            device: device.clone(),
            at: protocols::time::now(),
            outcome,
            duration: started.elapsed(),
        });
        tokio::select! {
            _ = shutdown.cancelled() => break,
            sent = tx.send(obs) => if sent.is_err() { break },
        }
    }
    debug!("poller stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_finds_builtins_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = ProfileStore;
        assert!(s.load("generic-alarm", dir.path()).is_ok());
        let pts = s.points("generic-access", dir.path()).unwrap();
        assert!(pts.contains(&("door.1".to_string(), "door".to_string())));
        let e = s.load("generic-alarn", dir.path()).unwrap_err();
        assert!(e[0].contains("neither a built-in profile"), "{e:?}");
        let e = s.load("site/missing.toml", dir.path()).unwrap_err();
        assert!(e[0].contains("cannot read"), "{e:?}");
        std::fs::write(
            dir.path().join("mine.toml"),
            "name = \"mine\"\n[[point]]\nid = \"z\"\nrole = \"zone\"\ntable = \"holding\"\naddress = 0\nrules = [{ value = 1, state = \"alarmed\" }]\n",
        )
        .unwrap();
        let e = load_profile("mine.toml", dir.path()).unwrap_err();
        assert!(e.contains("mine.toml") && e.contains("\"alarmed\" is not a zone state"), "{e}");
        std::fs::write(
            dir.path().join("ok.toml"),
            "name = \"ok\"\n[[point]]\nid = \"z\"\nrole = \"zone\"\ntable = \"holding\"\naddress = 0\nrules = [{ value = 1, state = \"alarm\" }]\ndefault = \"normal\"\n",
        )
        .unwrap();
        assert_eq!(s.points("ok.toml", dir.path()).unwrap(), vec![("z".to_string(), "zone".to_string())]);
    }

    #[test]
    fn responses_are_checked() {
        let req = ReadRequest { table: Table::Holding, address: 0, count: 3 };
        assert!(to_raw(&req, Response::ReadHoldingRegisters(vec![1, 2, 3])).is_ok());
        assert_eq!(to_raw(&req, Response::ReadHoldingRegisters(vec![1, 2])).unwrap_err().fault, PanelFault::Protocol);
        assert!(to_raw(&req, Response::ReadInputRegisters(vec![1, 2, 3])).is_err());
        let bits = ReadRequest { table: Table::Coil, address: 0, count: 3 };
        assert!(to_raw(&bits, Response::ReadCoils(vec![false; 8])).is_ok());
        assert!(to_raw(&bits, Response::ReadCoils(vec![false; 2])).is_err());
        assert!(to_raw(&bits, Response::ReadCoils(vec![false; 16])).is_err());
    }

    #[tokio::test]
    async fn backoff_grows_to_the_cap() {
        let mut b = Backoff::new();
        assert!(b.wait_left().is_none());
        for _ in 0..10 {
            b.failed();
        }
        assert_eq!(b.next, MAX_BACKOFF);
        assert!(b.wait_left().is_some_and(|d| d <= MAX_BACKOFF));
        b.succeeded();
        assert!(b.wait_left().is_none());
        assert_eq!(b.next, MIN_BACKOFF);
    }
}
