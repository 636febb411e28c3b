//! Simulated Modbus TCP alarm and access panels, laid out by register-map profiles.
//!
//! Each panel listens on its own free port and serves its registers from memory, so that
//! the gateway, pymodbus, mbpoll or any other Modbus client can read them (and write coils
//! and holding registers, FC 5/6/15/16). Tests and installers drive the panel through
//! [`PanelFleet`]: [`PanelFleet::set_point`] writes whatever bits make the profile decode to
//! a state ("zone.3" → "alarm"), a heartbeat counts every second, and faults are switched on
//! and off at will: silence, slowness, exceptions, dropped connections and wrong
//! transaction ids — what real integration modules do and the gateway must survive.
//!
//! The Modbus TCP server is hand-written ([`frame`]); the module docs there say why.

pub mod frame;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use protocols::modbus::{DataType, EncodeError, Encoded, Point, Profile, Role, Table};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug};

use frame::{Memory, exception, handle_pdu, response_frame, take_frame};

/// The two kinds of panel the simulator ships profiles for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelKindSim {
    /// An intrusion-alarm panel (`generic-alarm`).
    Alarm,
    /// An access-control (door) controller (`generic-access`).
    Access,
}

impl PanelKindSim {
    /// The built-in profile the kind is served with.
    pub fn profile_name(self) -> &'static str {
        match self {
            PanelKindSim::Alarm => "generic-alarm",
            PanelKindSim::Access => "generic-access",
        }
    }

    pub fn profile(self) -> Profile {
        // The built-in profiles are checked by protocols' tests; an empty profile would
        // simply serve nothing.
        protocols::modbus::builtin(self.profile_name()).unwrap_or_else(|| Profile::new(self.profile_name(), Vec::new()))
    }
}

/// One panel to simulate.
#[derive(Debug, Clone)]
pub struct PanelSpec {
    pub id: String,
    pub name: String,
    pub profile: Profile,
    pub unit_id: u8,
}

impl PanelSpec {
    /// A panel of a built-in kind.
    pub fn new(id: impl Into<String>, kind: PanelKindSim, unit_id: u8) -> PanelSpec {
        let id = id.into();
        PanelSpec { name: id.clone(), id, profile: kind.profile(), unit_id }
    }
}

/// A fault to inject into a panel's Modbus answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanelFaultSim {
    /// Requests are read and never answered; the connection stays open.
    NoAnswer,
    /// Every answer is delayed by this long.
    Slow(Duration),
    /// Every request is answered with this exception code (e.g. 4, server device failure).
    Exception(u8),
    /// The connection is closed on the next request (and on every request after).
    DropConnection,
    /// Answers carry a transaction id one above the request's.
    WrongTransactionId,
}

/// Where a simulated panel listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanelInfo {
    pub id: String,
    pub addr: SocketAddr,
    pub unit_id: u8,
}

/// Why a simulator call failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr} for panel {panel:?}: {source}")]
    Bind { panel: String, addr: SocketAddr, source: std::io::Error },
    #[error("panel {0:?} is defined twice")]
    DuplicatePanel(String),
    #[error("panel {panel:?}: invalid profile {profile:?}: {}", problems.join("; "))]
    InvalidProfile { panel: String, profile: String, problems: Vec<String> },
    #[error("no panel {0:?}")]
    UnknownPanel(String),
    #[error("panel {panel:?} has no point {point:?}")]
    UnknownPoint { panel: String, point: String },
    #[error("panel {panel:?}: {source}")]
    Encode { panel: String, source: EncodeError },
}

#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    no_answer: bool,
    slow: Option<Duration>,
    exception: Option<u8>,
    drop: bool,
    wrong_tid: bool,
}

#[derive(Debug)]
struct Panel {
    id: String,
    unit_id: u8,
    profile: Profile,
    addr: SocketAddr,
    mem: Mutex<Memory>,
    faults: Mutex<Faults>,
    heartbeat: AtomicBool,
    connections: AtomicU64,
    requests: AtomicU64,
}

/// Counters of one panel, for tests that check connection reuse and request counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PanelStats {
    /// TCP connections accepted since start.
    pub connections: u64,
    /// Request frames received since start (answered or not).
    pub requests: u64,
}

/// Locks a mutex; a panic elsewhere while holding it leaves plain data, still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Panel {
    fn read_raw(&self, p: &Point) -> f64 {
        let mem = lock(&self.mem);
        read_point(&mem, p).unwrap_or(0.0)
    }

    fn write(&self, p: &Point, enc: Encoded) {
        let mut mem = lock(&self.mem);
        write_point(&mut mem, p, enc);
    }
}

fn read_point(mem: &Memory, p: &Point) -> Option<f64> {
    let a = usize::from(p.address);
    match p.table {
        Table::Coil => mem.coils.get(a).map(|b| f64::from(u8::from(*b))),
        Table::DiscreteInput => mem.discrete.get(a).map(|b| f64::from(u8::from(*b))),
        Table::Holding => p.value_from_registers(mem.holding.get(a..)?).map(|v| v.0),
        Table::Input => p.value_from_registers(mem.input.get(a..)?).map(|v| v.0),
    }
}

fn write_point(mem: &mut Memory, p: &Point, enc: Encoded) {
    let a = usize::from(p.address);
    let regs = match p.table {
        Table::Coil | Table::DiscreteInput => {
            let bits = if p.table == Table::Coil { &mut mem.coils } else { &mut mem.discrete };
            if let (Some(slot), Encoded::Bit(on)) = (bits.get_mut(a), enc) {
                *slot = on;
            }
            return;
        }
        Table::Holding => &mut mem.holding,
        Table::Input => &mut mem.input,
    };
    match enc {
        Encoded::Bit(on) => {
            if let Some(w) = regs.get_mut(a) {
                let mask = 1u16 << p.bit.unwrap_or(0).min(15);
                *w = if on { *w | mask } else { *w & !mask };
            }
        }
        Encoded::One(v) => {
            if let Some(w) = regs.get_mut(a) {
                *w = v;
            }
        }
        Encoded::Two([v0, v1]) => {
            if let Some(w) = regs.get_mut(a..a + 2) {
                w.copy_from_slice(&[v0, v1]);
            }
        }
    }
}

/// Table sizes: every address up to the profile's highest, plus a little slack, so that
/// planned reads (which may span small gaps) succeed and reads far beyond get exception 2.
fn memory_for(profile: &Profile) -> Memory {
    let mut ends = [0usize; 4];
    for p in profile.points() {
        let e = (p.span().1 as usize).min(65536);
        let slot = &mut ends[p.table.index()];
        *slot = (*slot).max(e);
    }
    let size = |t: Table| {
        if ends[t.index()] == 0 { 0 } else { (ends[t.index()] + 16).min(65536) }
    };
    Memory {
        coils: vec![false; size(Table::Coil)],
        discrete: vec![false; size(Table::DiscreteInput)],
        holding: vec![0; size(Table::Holding)],
        input: vec![0; size(Table::Input)],
    }
}

struct Inner {
    panels: Vec<Arc<Panel>>,
    by_id: HashMap<String, usize>,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A running set of simulated panels. Cheap to clone; all clones drive the same panels.
#[derive(Clone)]
pub struct PanelFleet {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PanelFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PanelFleet").field("panels", &self.panels()).finish()
    }
}

impl PanelFleet {
    /// Binds one listener per panel on a free port of `bind` and starts serving. Every
    /// panel starts at rest (zones normal, doors closed and locked, no faults) with its
    /// heartbeat running.
    pub async fn start(bind: IpAddr, specs: Vec<PanelSpec>) -> Result<PanelFleet, SimError> {
        Self::start_on(bind, specs, &[]).await
    }

    /// [`PanelFleet::start`] with fixed ports: panel i listens on `ports[i]`; a panel without
    /// an entry, or with port 0, takes a free port.
    pub async fn start_on(bind: IpAddr, specs: Vec<PanelSpec>, ports: &[u16]) -> Result<PanelFleet, SimError> {
        let cancel = CancellationToken::new();
        let mut panels = Vec::new();
        let mut by_id = HashMap::new();
        let mut listeners = Vec::new();
        for (i, spec) in specs.into_iter().enumerate() {
            if by_id.contains_key(&spec.id) {
                return Err(SimError::DuplicatePanel(spec.id));
            }
            let problems = spec.profile.validate();
            if !problems.is_empty() {
                return Err(SimError::InvalidProfile { panel: spec.id, profile: spec.profile.name.clone(), problems });
            }
            let want = SocketAddr::new(bind, ports.get(i).copied().unwrap_or_default());
            let listener = TcpListener::bind(want).await.map_err(|source| SimError::Bind {
                panel: spec.id.clone(),
                addr: want,
                source,
            })?;
            let addr = listener.local_addr().map_err(|source| SimError::Bind {
                panel: spec.id.clone(),
                addr: want,
                source,
            })?;
            let panel = Arc::new(Panel {
                mem: Mutex::new(memory_for(&spec.profile)),
                id: spec.id.clone(),
                unit_id: spec.unit_id,
                profile: spec.profile,
                addr,
                faults: Mutex::new(Faults::default()),
                heartbeat: AtomicBool::new(true),
                connections: AtomicU64::new(0),
                requests: AtomicU64::new(0),
            });
            for p in panel.profile.points() {
                if let Some(state) = p.role.resting_state()
                    && let Ok(raw) = p.raw_for_state(state, 0.0)
                    && let Ok(enc) = p.encode(raw)
                {
                    panel.write(p, enc);
                }
            }
            by_id.insert(spec.id, panels.len());
            listeners.push((listener, Arc::clone(&panel)));
            panels.push(panel);
        }
        let mut tasks = Vec::new();
        for (listener, panel) in listeners {
            let span = tracing::debug_span!("sim-panel", id = %panel.id, addr = %panel.addr);
            tasks.push(tokio::spawn(serve(listener, panel, cancel.clone()).instrument(span)));
        }
        tasks.push(tokio::spawn(heartbeats(panels.clone(), cancel.clone())));
        Ok(PanelFleet { inner: Arc::new(Inner { panels, by_id, cancel, tasks: Mutex::new(tasks) }) })
    }

    pub fn panels(&self) -> Vec<PanelInfo> {
        self.inner.panels.iter().map(|p| PanelInfo { id: p.id.clone(), addr: p.addr, unit_id: p.unit_id }).collect()
    }

    /// Where panel `id` listens.
    pub fn addr(&self, id: &str) -> Option<SocketAddr> {
        self.panel(id).ok().map(|p| p.addr)
    }

    fn panel(&self, id: &str) -> Result<&Arc<Panel>, SimError> {
        self.inner
            .by_id
            .get(id)
            .and_then(|i| self.inner.panels.get(*i))
            .ok_or_else(|| SimError::UnknownPanel(id.into()))
    }

    fn point<'a>(&self, panel: &'a Panel, point: &str) -> Result<&'a Point, SimError> {
        panel
            .profile
            .point(point)
            .ok_or_else(|| SimError::UnknownPoint { panel: panel.id.clone(), point: point.into() })
    }

    /// Writes the registers or bits of `point` so that the profile decodes it to `state`,
    /// keeping other status bits of the same word where the rules allow.
    pub fn set_point(&self, panel: &str, point: &str, state: &str) -> Result<(), SimError> {
        let pn = self.panel(panel)?;
        let p = self.point(pn, point)?;
        let enc_err = |source| SimError::Encode { panel: panel.into(), source };
        let raw = p.raw_for_state(state, pn.read_raw(p)).map_err(enc_err)?;
        let enc = p.encode(raw).map_err(enc_err)?;
        pn.write(p, enc);
        Ok(())
    }

    /// Writes a raw value (0/1 for bits) to `point`.
    pub fn set_raw(&self, panel: &str, point: &str, raw: f64) -> Result<(), SimError> {
        let pn = self.panel(panel)?;
        let p = self.point(pn, point)?;
        let enc = p.encode(raw).map_err(|source| SimError::Encode { panel: panel.into(), source })?;
        pn.write(p, enc);
        Ok(())
    }

    /// The raw value `point` holds now.
    pub fn raw(&self, panel: &str, point: &str) -> Result<f64, SimError> {
        let pn = self.panel(panel)?;
        let p = self.point(pn, point)?;
        Ok(pn.read_raw(p))
    }

    /// The state `point` decodes to now.
    pub fn state(&self, panel: &str, point: &str) -> Result<Option<String>, SimError> {
        let pn = self.panel(panel)?;
        let p = self.point(pn, point)?;
        let mem = lock(&pn.mem);
        let regs = match p.table {
            Table::Holding => mem.holding.get(usize::from(p.address)..),
            Table::Input => mem.input.get(usize::from(p.address)..),
            _ => None,
        };
        let state = match (p.table, regs) {
            (Table::Coil, _) => mem.coils.get(usize::from(p.address)).and_then(|b| p.decode_bit(*b).state),
            (Table::DiscreteInput, _) => mem.discrete.get(usize::from(p.address)).and_then(|b| p.decode_bit(*b).state),
            (_, Some(r)) => p.decode_registers(r).and_then(|r| r.state),
            _ => None,
        };
        Ok(state.map(str::to_owned))
    }

    /// Starts or stops the heartbeat (every `heartbeat` point counts up once a second).
    pub fn set_heartbeat_running(&self, panel: &str, running: bool) -> Result<(), SimError> {
        self.panel(panel)?.heartbeat.store(running, Ordering::Relaxed);
        Ok(())
    }

    /// Switches a fault on or off. Faults combine; `Slow` and `Exception` replace an earlier
    /// value of their kind, and switching them off ignores the value given.
    pub fn set_fault(&self, panel: &str, fault: PanelFaultSim, on: bool) -> Result<(), SimError> {
        let pn = self.panel(panel)?;
        let mut f = lock(&pn.faults);
        match fault {
            PanelFaultSim::NoAnswer => f.no_answer = on,
            PanelFaultSim::Slow(d) => f.slow = on.then_some(d),
            PanelFaultSim::Exception(code) => f.exception = on.then_some(code),
            PanelFaultSim::DropConnection => f.drop = on,
            PanelFaultSim::WrongTransactionId => f.wrong_tid = on,
        }
        Ok(())
    }

    pub fn stats(&self, panel: &str) -> Result<PanelStats, SimError> {
        let pn = self.panel(panel)?;
        Ok(PanelStats {
            connections: pn.connections.load(Ordering::Relaxed),
            requests: pn.requests.load(Ordering::Relaxed),
        })
    }

    /// Clears every fault of a panel.
    pub fn clear_faults(&self, panel: &str) -> Result<(), SimError> {
        *lock(&self.panel(panel)?.faults) = Faults::default();
        Ok(())
    }

    /// Stops every listener and connection and waits for them.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.inner.tasks));
        for t in tasks {
            let _ = t.await;
        }
    }
}

async fn heartbeats(panels: Vec<Arc<Panel>>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        for pn in &panels {
            if !pn.heartbeat.load(Ordering::Relaxed) {
                continue;
            }
            for p in pn.profile.points().iter().filter(|p| p.role == Role::Heartbeat) {
                let next = match p.data_type {
                    DataType::Bool => 1.0 - pn.read_raw(p),
                    DataType::U16 => (pn.read_raw(p) + 1.0) % 65536.0,
                    DataType::I16 => {
                        let v = pn.read_raw(p) + 1.0;
                        if v > 32767.0 { -32768.0 } else { v }
                    }
                    DataType::U32 => (pn.read_raw(p) + 1.0) % 4_294_967_296.0,
                    DataType::I32 => {
                        let v = pn.read_raw(p) + 1.0;
                        if v > 2_147_483_647.0 { -2_147_483_648.0 } else { v }
                    }
                    DataType::F32 => pn.read_raw(p) + 1.0,
                };
                if let Ok(enc) = p.encode(next) {
                    pn.write(p, enc);
                }
            }
        }
    }
}

async fn serve(listener: TcpListener, panel: Arc<Panel>, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((sock, peer)) => {
                debug!(%peer, "client connected");
                panel.connections.fetch_add(1, Ordering::Relaxed);
                let _ = sock.set_nodelay(true);
                let span = tracing::debug_span!("conn", %peer);
                tokio::spawn(connection(sock, Arc::clone(&panel), cancel.clone()).instrument(span));
            }
            Err(e) => {
                debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(mut sock: TcpStream, panel: Arc<Panel>, cancel: CancellationToken) {
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = tokio::select! {
            _ = cancel.cancelled() => return,
            r = sock.read(&mut chunk) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            let req = match take_frame(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    debug!(error = %e, "bad frame; closing");
                    return;
                }
            };
            panel.requests.fetch_add(1, Ordering::Relaxed);
            let faults = *lock(&panel.faults);
            if faults.drop {
                debug!("fault: dropping the connection");
                return;
            }
            if faults.no_answer {
                continue;
            }
            let function = req.pdu.first().copied().unwrap_or(0);
            let pdu = if let Some(code) = faults.exception {
                exception(function, code)
            } else if req.unit_id != panel.unit_id && req.unit_id != 0 && req.unit_id != 255 {
                // What a TCP gateway says about a unit behind it that does not exist.
                exception(function, 0x0B)
            } else {
                handle_pdu(&mut lock(&panel.mem), &req.pdu)
            };
            let tid = if faults.wrong_tid { req.transaction_id.wrapping_add(1) } else { req.transaction_id };
            let out = response_frame(tid, req.unit_id, &pdu);
            if let Some(d) = faults.slow {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(d) => {}
                }
            }
            if sock.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_covers_the_profile_with_slack() {
        let m = memory_for(&PanelKindSim::Access.profile());
        assert_eq!(m.holding.len(), 9 + 16);
        assert_eq!(m.coils.len(), 8 + 16);
        assert_eq!(m.discrete.len(), 3 + 16);
        assert_eq!(m.input.len(), 1 + 16);
    }

    #[tokio::test]
    async fn set_point_round_trips_and_rejects_unknowns() {
        let fleet = PanelFleet::start(
            IpAddr::from([127, 0, 0, 1]),
            vec![
                PanelSpec::new("alarm-1", PanelKindSim::Alarm, 1),
                PanelSpec::new("access-1", PanelKindSim::Access, 2),
            ],
        )
        .await
        .unwrap();
        assert_eq!(fleet.state("alarm-1", "zone.3").unwrap().as_deref(), Some("normal"));
        assert_eq!(fleet.state("access-1", "lock.1").unwrap().as_deref(), Some("locked"));
        fleet.set_point("alarm-1", "zone.3", "alarm").unwrap();
        assert_eq!(fleet.raw("alarm-1", "zone.3").unwrap(), 1.0);
        fleet.set_point("access-1", "door.1", "forced").unwrap();
        assert_eq!(fleet.state("access-1", "door.1").unwrap().as_deref(), Some("forced"));
        fleet.set_point("access-1", "reader.3", "reader-fault").unwrap();
        assert_eq!(fleet.state("access-1", "reader.3").unwrap().as_deref(), Some("reader-fault"));
        assert_eq!(fleet.state("access-1", "reader.2").unwrap().as_deref(), Some("ok"));
        fleet.set_raw("alarm-1", "heartbeat", 41.0).unwrap();
        assert_eq!(fleet.raw("alarm-1", "heartbeat").unwrap(), 41.0);
        assert!(matches!(fleet.set_point("nope", "zone.1", "alarm"), Err(SimError::UnknownPanel(_))));
        assert!(matches!(fleet.set_point("alarm-1", "zone.99", "alarm"), Err(SimError::UnknownPoint { .. })));
        assert!(matches!(fleet.set_point("alarm-1", "zone.1", "open"), Err(SimError::Encode { .. })));
        assert!(matches!(fleet.set_raw("alarm-1", "zone.1", 70000.0), Err(SimError::Encode { .. })));
        assert_eq!(fleet.panels().len(), 2);
        fleet.shutdown().await;
    }
}
