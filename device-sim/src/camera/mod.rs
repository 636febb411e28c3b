//! Simulated ONVIF cameras: a fleet of cameras in one process, each with its own HTTP port
//! (SOAP Device/Media/Events services and a JPEG snapshot) and its own RTSP port, with faults
//! that can be switched on and off while it runs.
//!
//! Why one port pair per camera: a real branch has one IP per camera, and the gateway must see
//! "camera down" as *connection refused* — so [`CameraFault::Down`] really closes the
//! listeners and turning it off binds the same ports again. A camera costs two listening
//! sockets, two idle accept tasks and a few hundred bytes of state, so a thousand fit in one
//! process easily.
//!
//! Behaviour a client can rely on (and that the gateway's tests use):
//! - SOAP is dispatched on the Body's first element, never on the SOAPAction.
//! - `GetSystemDateAndTime`, `GetCapabilities` and `GetServices` need no authentication; every
//!   other operation does. In [`AuthMode::UsernameToken`] mode a missing or wrong token gets a
//!   SOAP fault `env:Sender / ter:NotAuthorized` with **HTTP 400** (what the ONVIF Core spec
//!   asks; some real firmware sends 200, which the gateway's own tests cover with a stub). The
//!   token's `Created` must be within ±[`MAX_CLOCK_SKEW_SECS`] of the *camera's* clock, which
//!   includes any [`CameraFault::ClockSkew`]. In [`AuthMode::Digest`] mode an unauthenticated
//!   call gets **HTTP 401** with a `WWW-Authenticate: Digest` challenge (MD5, `qop=auth`) and
//!   the same fault in the body.
//! - The snapshot URL always wants HTTP Digest (as real cameras' snapshot endpoints do); RTSP
//!   `DESCRIBE` wants Digest only in Digest mode.
//! - The snapshot is a baseline JPEG (YCbCr 4:2:0) of a synthetic branch interior, 640×360 or
//!   [`CameraFleet::set_picture_size`], with sensor noise and a counter that make every frame
//!   differ; [`CameraFault::Covered`], [`CameraFault::Dark`] and [`CameraFault::Blurred`]
//!   change what the lens sees (covered wins over dark, dark over blurred). Frames are encoded
//!   once per (picture, size) and shared by the fleet (`jpeg`, `picture`).
//! - The main profile's video encoder is 1920×1080 H264 (`vec_1`), 640×480 with
//!   [`CameraFault::LowResolution`]: in `GetProfiles`, `GetProfile`,
//!   `GetVideoEncoderConfigurations` and `GetVideoEncoderConfiguration`.
//! - Pull-point subscriptions start with one `Initialized` message per health condition
//!   (signal loss, tamper, storage failure) carrying its current state, then get a `Changed`
//!   message per [`CameraFleet::emit_event`]. Subscription filters are accepted and ignored.
//! - What Home Assistant's onvif setup asks is answered: `GetNetworkInterfaces` (a MAC per
//!   camera, locally administered, from its id: distinct and the same on every run) and
//!   `GetServiceCapabilities` of each service (media: `SnapshotUri="true"`; events:
//!   `WSPullPointSupport="true"`), told apart by the operation's namespace, else the path.
//! - Request bodies are capped at 64 KiB (HTTP 413 beyond).
//! - WS-Discovery (`discovery`) is off until asked for: [`CameraFleet::start_discovery`] on UDP
//!   3702 with the multicast group, or [`CameraFleet::start_discovery_unicast`] on a port of its
//!   own. Every camera that is not `Down` answers a matching Probe with its own ProbeMatch.

mod discovery;
mod http;
mod jpeg;
pub mod picture;
mod rtsp;
mod soap;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use discovery::{DiscoveryHandle, DiscoveryStats, WSD_GROUP, WSD_PORT};
pub use jpeg::{DEFAULT_SIZE as DEFAULT_PICTURE_SIZE, MAX_SIDE as MAX_PICTURE_SIDE, MIN_SIDE as MIN_PICTURE_SIDE};

/// How far a WS-Security `Created` may be from the camera clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 60;
/// Largest request body the HTTP server reads.
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

/// How a camera authenticates ONVIF calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// WS-Security UsernameToken with PasswordDigest in the SOAP header.
    #[default]
    UsernameToken,
    /// HTTP Digest (RFC 2617/7616, MD5, qop=auth).
    Digest,
}

/// One camera to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraSpec {
    pub id: String,
    pub name: String,
    pub username: String,
    pub password: String,
    pub auth: AuthMode,
}

/// Faults that can be switched on a running camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraFault {
    /// Both listeners closed: connection refused.
    Down,
    /// HTTP connections are accepted and requests read, but never answered.
    Hung,
    /// Every HTTP answer is delayed by this much.
    Slow(Duration),
    /// Every credential is refused.
    AuthFailure,
    /// Every SOAP call returns a SOAP fault (HTTP 500, `env:Receiver`).
    SoapFault,
    /// Every HTTP request gets HTTP 500 with an HTML body.
    Http500,
    /// The camera clock runs this many seconds ahead (negative: behind).
    ClockSkew(i64),
    /// The RTSP listener is closed.
    RtspDown,
    /// The snapshot stops changing.
    Frozen,
    /// The lens is covered (tape): the snapshot is a nearly uniform dark grey.
    Covered,
    /// The lights are out: the snapshot is the scene at about 5 % of its brightness, noisy.
    Dark,
    /// The lens is out of focus: the snapshot is the scene strongly blurred, noise on top.
    Blurred,
    /// The main profile's video encoder is set to 640×480 instead of 1920×1080 (GetProfiles,
    /// GetVideoEncoderConfiguration(s)); the snapshot is unchanged.
    LowResolution,
}

/// Health conditions a camera reports through its event service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CameraEventKind {
    SignalLoss,
    Tamper,
    StorageFailure,
}

impl CameraEventKind {
    const ALL: [CameraEventKind; 3] =
        [CameraEventKind::SignalLoss, CameraEventKind::Tamper, CameraEventKind::StorageFailure];

    fn index(self) -> usize {
        match self {
            CameraEventKind::SignalLoss => 0,
            CameraEventKind::Tamper => 1,
            CameraEventKind::StorageFailure => 2,
        }
    }
}

/// Where a running camera can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraInfo {
    pub id: String,
    pub device_url: String,
    pub rtsp_uri: String,
    pub snapshot_uri: String,
    pub http_port: u16,
    pub rtsp_port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("camera id {0:?} is used more than once")]
    DuplicateId(String),
    #[error("no camera with id {0:?}")]
    UnknownCamera(String),
    #[error("a picture of {width}×{height} is outside {MIN_PICTURE_SIDE}–{MAX_PICTURE_SIDE} pixels a side")]
    PictureSize { width: u16, height: u16 },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Faults {
    pub down: bool,
    pub hung: bool,
    pub slow: Option<Duration>,
    pub auth_failure: bool,
    pub soap_fault: bool,
    pub http500: bool,
    pub skew_secs: i64,
    pub rtsp_down: bool,
    pub frozen: bool,
    pub covered: bool,
    pub dark: bool,
    pub blurred: bool,
    pub low_resolution: bool,
}

impl Faults {
    /// What the lens sees: covered beats dark, dark beats blurred.
    pub(crate) fn scene(&self) -> picture::Scene {
        use picture::Scene;
        if self.covered {
            Scene::Covered
        } else if self.dark {
            Scene::Dark
        } else if self.blurred {
            Scene::Blurred
        } else {
            Scene::Normal
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct QueuedEvent {
    pub kind: CameraEventKind,
    pub active: bool,
    pub at: DateTime<Utc>,
    pub initialized: bool,
}

pub(crate) struct Subscription {
    pub queue: VecDeque<QueuedEvent>,
    pub expires: DateTime<Utc>,
    pub notify: Arc<Notify>,
}

/// Most queued messages per subscription; older ones are dropped first.
const MAX_QUEUE: usize = 256;
/// Most live subscriptions per camera.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 32;

#[derive(Default)]
pub(crate) struct CamState {
    pub faults: Faults,
    pub frame: u64,
    pub conditions: [bool; 3],
    pub subs: HashMap<u64, Subscription>,
    pub next_sub: u64,
    /// The snapshot's size in bytes (0: the picture as encoded, no padding).
    pub picture_bytes: usize,
    /// The snapshot's width and height (`None`: [`DEFAULT_PICTURE_SIZE`]).
    pub picture_size: Option<(u16, u16)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http,
    Rtsp,
}

pub(crate) struct Camera {
    pub spec: CameraSpec,
    pub ip: IpAddr,
    /// Host part of the URLs the camera hands out.
    pub host: String,
    pub http_port: u16,
    pub rtsp_port: u16,
    /// Secret for stateless digest nonces.
    pub nonce_secret: u64,
    state: Mutex<CamState>,
    /// HTTP connections accepted so far.
    pub http_connections: AtomicU64,
    /// Snapshot requests answered with a picture so far.
    pub snapshots: AtomicU64,
    http_slot: Mutex<Option<CancellationToken>>,
    rtsp_slot: Mutex<Option<CancellationToken>>,
    fleet_token: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short locks leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Camera {
    pub fn state(&self) -> MutexGuard<'_, CamState> {
        lock(&self.state)
    }

    pub fn faults(&self) -> Faults {
        self.state().faults
    }

    /// The camera's clock (with any skew).
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(self.faults().skew_secs)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}:{}", self.host, self.http_port)
    }

    pub fn rtsp_uri(&self) -> String {
        format!("rtsp://{}:{}/stream1", self.host, self.rtsp_port)
    }

    pub fn snapshot_uri(&self) -> String {
        format!("{}/onvif/snapshot.jpg", self.base_url())
    }

    fn info(&self) -> CameraInfo {
        CameraInfo {
            id: self.spec.id.clone(),
            device_url: format!("{}/onvif/device_service", self.base_url()),
            rtsp_uri: self.rtsp_uri(),
            snapshot_uri: self.snapshot_uri(),
            http_port: self.http_port,
            rtsp_port: self.rtsp_port,
        }
    }

    fn slot(&self, kind: Kind) -> &Mutex<Option<CancellationToken>> {
        match kind {
            Kind::Http => &self.http_slot,
            Kind::Rtsp => &self.rtsp_slot,
        }
    }

    fn should_listen(&self, kind: Kind) -> bool {
        let f = self.faults();
        !self.fleet_token.is_cancelled()
            && match kind {
                Kind::Http => !f.down,
                Kind::Rtsp => !f.down && !f.rtsp_down,
            }
    }

    fn port(&self, kind: Kind) -> u16 {
        match kind {
            Kind::Http => self.http_port,
            Kind::Rtsp => self.rtsp_port,
        }
    }
}

/// Binds a listener (non-blocking std socket, so this works from sync code inside a runtime).
fn bind(ip: IpAddr, port: u16) -> Result<tokio::net::TcpListener, SimError> {
    let addr = SocketAddr::new(ip, port);
    let l = std::net::TcpListener::bind(addr).map_err(|source| SimError::Bind { addr, source })?;
    l.set_nonblocking(true).map_err(|source| SimError::Bind { addr, source })?;
    tokio::net::TcpListener::from_std(l).map_err(|source| SimError::Bind { addr, source })
}

/// Opens or closes `kind`'s listener to match the camera's faults.
fn sync_listener(cam: &Arc<Camera>, kind: Kind, handle: &tokio::runtime::Handle) -> Result<(), SimError> {
    let _enter = handle.enter();
    let mut slot = lock(cam.slot(kind));
    let want = cam.should_listen(kind);
    match (want, slot.is_some()) {
        (false, true) => {
            if let Some(t) = slot.take() {
                t.cancel();
            }
            Ok(())
        }
        (true, false) => match bind(cam.ip, cam.port(kind)) {
            Ok(l) => {
                *slot = Some(spawn_listener(cam, kind, l));
                Ok(())
            }
            Err(SimError::Bind { source, .. }) if source.kind() == std::io::ErrorKind::AddrInUse => {
                // The old accept task has not dropped its socket yet: retry shortly.
                let cam = cam.clone();
                let h = handle.clone();
                handle.spawn(async move {
                    for _ in 0..250 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let mut slot = lock(cam.slot(kind));
                        if !cam.should_listen(kind) || slot.is_some() {
                            return;
                        }
                        let _enter = h.enter();
                        if let Ok(l) = bind(cam.ip, cam.port(kind)) {
                            *slot = Some(spawn_listener(&cam, kind, l));
                            return;
                        }
                    }
                    tracing::warn!(camera = %cam.spec.id, ?kind, "could not re-bind the listener");
                });
                Ok(())
            }
            Err(e) => Err(e),
        },
        _ => Ok(()),
    }
}

fn spawn_listener(cam: &Arc<Camera>, kind: Kind, l: tokio::net::TcpListener) -> CancellationToken {
    let token = cam.fleet_token.child_token();
    match kind {
        Kind::Http => http::spawn(cam.clone(), l, token.clone()),
        Kind::Rtsp => rtsp::spawn(cam.clone(), l, token.clone()),
    }
    token
}

struct FleetInner {
    cameras: Vec<Arc<Camera>>,
    index: HashMap<String, usize>,
    shutdown: CancellationToken,
    handle: tokio::runtime::Handle,
}

/// A running set of simulated cameras. Cheap to clone; all clones control the same cameras.
#[derive(Clone)]
pub struct CameraFleet {
    inner: Arc<FleetInner>,
}

impl std::fmt::Debug for CameraFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraFleet").field("cameras", &self.inner.cameras.len()).finish()
    }
}

impl CameraFleet {
    /// Starts every camera on `bind` with fresh ports. URLs handed out use `bind`'s address
    /// (127.0.0.1 when `bind` is unspecified).
    pub async fn start(bind_ip: IpAddr, specs: Vec<CameraSpec>) -> Result<CameraFleet, SimError> {
        Self::start_on(bind_ip, specs, &[]).await
    }

    /// [`CameraFleet::start`] with fixed ports: camera i listens on `ports[i]` (ONVIF/snapshot
    /// HTTP, RTSP); a camera without an entry, or with port 0, takes free ports.
    pub async fn start_on(
        bind_ip: IpAddr,
        specs: Vec<CameraSpec>,
        ports: &[(u16, u16)],
    ) -> Result<CameraFleet, SimError> {
        let handle = tokio::runtime::Handle::current();
        let shutdown = CancellationToken::new();
        let host = match bind_ip {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        let mut index = HashMap::new();
        let mut cameras = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            if index.insert(spec.id.clone(), cameras.len()).is_some() {
                shutdown.cancel();
                return Err(SimError::DuplicateId(spec.id));
            }
            let (want_http, want_rtsp) = ports.get(i).copied().unwrap_or_default();
            let started = (|| {
                let http = bind(bind_ip, want_http)?;
                let rtsp = bind(bind_ip, want_rtsp)?;
                let port = |l: &tokio::net::TcpListener| {
                    l.local_addr()
                        .map(|a| a.port())
                        .map_err(|source| SimError::Bind { addr: SocketAddr::new(bind_ip, 0), source })
                };
                Ok::<_, SimError>((port(&http)?, port(&rtsp)?, http, rtsp))
            })();
            let (http_port, rtsp_port, http, rtsp) = match started {
                Ok(v) => v,
                Err(e) => {
                    shutdown.cancel();
                    return Err(e);
                }
            };
            let cam = Arc::new(Camera {
                spec,
                ip: bind_ip,
                host: host.clone(),
                http_port,
                rtsp_port,
                nonce_secret: rand::random(),
                state: Mutex::new(CamState::default()),
                http_connections: AtomicU64::new(0),
                snapshots: AtomicU64::new(0),
                http_slot: Mutex::new(None),
                rtsp_slot: Mutex::new(None),
                fleet_token: shutdown.child_token(),
            });
            *lock(&cam.http_slot) = Some(spawn_listener(&cam, Kind::Http, http));
            *lock(&cam.rtsp_slot) = Some(spawn_listener(&cam, Kind::Rtsp, rtsp));
            cameras.push(cam);
        }
        Ok(CameraFleet { inner: Arc::new(FleetInner { cameras, index, shutdown, handle }) })
    }

    pub fn cameras(&self) -> Vec<CameraInfo> {
        self.inner.cameras.iter().map(|c| c.info()).collect()
    }

    fn camera(&self, id: &str) -> Result<&Arc<Camera>, SimError> {
        self.inner
            .index
            .get(id)
            .and_then(|&i| self.inner.cameras.get(i))
            .ok_or_else(|| SimError::UnknownCamera(id.to_string()))
    }

    /// Switches a fault on or off. `Down` and `RtspDown` close/re-open listeners (same ports).
    pub fn set_fault(&self, id: &str, fault: CameraFault, on: bool) -> Result<(), SimError> {
        let cam = self.camera(id)?;
        {
            let mut st = cam.state();
            let f = &mut st.faults;
            match fault {
                CameraFault::Down => f.down = on,
                CameraFault::Hung => f.hung = on,
                CameraFault::Slow(d) => f.slow = on.then_some(d),
                CameraFault::AuthFailure => f.auth_failure = on,
                CameraFault::SoapFault => f.soap_fault = on,
                CameraFault::Http500 => f.http500 = on,
                CameraFault::ClockSkew(s) => f.skew_secs = if on { s } else { 0 },
                CameraFault::RtspDown => f.rtsp_down = on,
                CameraFault::Frozen => f.frozen = on,
                CameraFault::Covered => f.covered = on,
                CameraFault::Dark => f.dark = on,
                CameraFault::Blurred => f.blurred = on,
                CameraFault::LowResolution => f.low_resolution = on,
            }
        }
        tracing::info!(camera = id, ?fault, on, "camera fault");
        sync_listener(cam, Kind::Http, &self.inner.handle)?;
        sync_listener(cam, Kind::Rtsp, &self.inner.handle)
    }

    /// Makes the camera's snapshot `bytes` long: its picture padded with APP15 segments of
    /// noise (which decoders skip), still different on every frame. 0, or a size the picture
    /// already exceeds, serves the picture as encoded (about 47 KB at 640×360).
    pub fn set_picture_bytes(&self, id: &str, bytes: usize) -> Result<(), SimError> {
        self.camera(id)?.state().picture_bytes = bytes;
        Ok(())
    }

    /// Makes the camera's snapshot `width × height` pixels (each side
    /// [`MIN_PICTURE_SIDE`]–[`MAX_PICTURE_SIDE`]); the default is [`DEFAULT_PICTURE_SIZE`],
    /// 640×360. 1920×1080 is a 1080p camera's picture. The frames of a size are encoded on the
    /// first snapshot request at that size (see [`CameraFleet::prepare_pictures`]).
    pub fn set_picture_size(&self, id: &str, width: u16, height: u16) -> Result<(), SimError> {
        let cam = self.camera(id)?;
        let side = MIN_PICTURE_SIDE..=MAX_PICTURE_SIDE;
        if !side.contains(&width) || !side.contains(&height) {
            return Err(SimError::PictureSize { width, height });
        }
        cam.state().picture_size = Some((width, height));
        Ok(())
    }

    /// Encodes now, on this thread, the frames every camera's current picture needs (by its
    /// size and picture faults), so that the first snapshot requests do not wait for them;
    /// returns how many (scene, size) sets were built or found. Optional: a snapshot request
    /// builds what it lacks.
    pub fn prepare_pictures(&self) -> usize {
        let mut keys: Vec<(picture::Scene, (u16, u16))> = self
            .inner
            .cameras
            .iter()
            .map(|c| {
                let st = c.state();
                (st.faults.scene(), st.picture_size.unwrap_or(DEFAULT_PICTURE_SIZE))
            })
            .collect();
        keys.sort_by_key(|(scene, size)| (*scene as u8, *size));
        keys.dedup();
        for (scene, (w, h)) in &keys {
            if let Err(e) = jpeg::frames_blocking(*scene, *w, *h) {
                tracing::warn!(?scene, width = w, height = h, error = %e, "could not encode the snapshot pictures");
            }
        }
        keys.len()
    }

    /// HTTP connections the camera has accepted (to check that clients keep them alive).
    pub fn http_connections(&self, id: &str) -> Result<u64, SimError> {
        Ok(self.camera(id)?.http_connections.load(Ordering::Relaxed))
    }

    /// Snapshots the camera has served.
    pub fn snapshot_requests(&self, id: &str) -> Result<u64, SimError> {
        Ok(self.camera(id)?.snapshots.load(Ordering::Relaxed))
    }

    /// Sets a health condition and queues a `Changed` message for every live subscription.
    pub fn emit_event(&self, id: &str, kind: CameraEventKind, active: bool) -> Result<(), SimError> {
        let cam = self.camera(id)?;
        let at = cam.now();
        let mut st = cam.state();
        st.conditions[kind.index()] = active;
        st.subs.retain(|_, s| s.expires > at);
        for sub in st.subs.values_mut() {
            if sub.queue.len() >= MAX_QUEUE {
                sub.queue.pop_front();
            }
            sub.queue.push_back(QueuedEvent { kind, active, at, initialized: false });
            sub.notify.notify_waiters();
        }
        Ok(())
    }

    /// Starts answering WS-Discovery probes for these cameras on UDP 3702 at `bind`, joined to
    /// the multicast group 239.255.255.250 on `bind`'s interface (IPv4; the unspecified address
    /// joins on the default interface). The port is shared (`SO_REUSEPORT`), so several fleets
    /// can each answer. Stops when the handle is dropped or the fleet shuts down.
    pub fn start_discovery(&self, bind: IpAddr) -> Result<DiscoveryHandle, SimError> {
        discovery::start(&self.inner, discovery::Mode::Multicast(bind))
    }

    /// Starts answering unicast WS-Discovery probes at `addr` only (port 0: a free port, see
    /// [`DiscoveryHandle::local_addr`]) — for tests on loopback, where multicast is unreliable
    /// and 3702 would be shared between parallel tests.
    pub fn start_discovery_unicast(&self, addr: SocketAddr) -> Result<DiscoveryHandle, SimError> {
        discovery::start(&self.inner, discovery::Mode::Unicast(addr))
    }

    /// Closes every listener and connection.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        for cam in &self.inner.cameras {
            lock(&cam.http_slot).take();
            lock(&cam.rtsp_slot).take();
        }
        // Let the accept tasks observe the cancellation and drop their sockets.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> CameraSpec {
        CameraSpec {
            id: id.into(),
            name: id.into(),
            username: "admin".into(),
            password: "pw".into(),
            auth: AuthMode::UsernameToken,
        }
    }

    #[tokio::test]
    async fn down_refuses_and_comes_back_on_the_same_port() {
        let fleet = CameraFleet::start("127.0.0.1".parse().unwrap(), vec![spec("a"), spec("b")]).await.unwrap();
        let info = fleet.cameras();
        assert_eq!(info.len(), 2);
        let port = info[0].http_port;
        assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok());
        fleet.set_fault("a", CameraFault::Down, true).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err());
        assert!(tokio::net::TcpStream::connect(("127.0.0.1", info[0].rtsp_port)).await.is_err());
        assert!(tokio::net::TcpStream::connect(("127.0.0.1", info[1].http_port)).await.is_ok());
        fleet.set_fault("a", CameraFault::Down, false).unwrap();
        let mut ok = false;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ok, "listener came back");
        assert!(matches!(fleet.set_fault("zz", CameraFault::Down, true), Err(SimError::UnknownCamera(_))));
        fleet.shutdown().await;
    }

    #[tokio::test]
    async fn duplicate_ids_are_refused() {
        let r = CameraFleet::start("127.0.0.1".parse().unwrap(), vec![spec("a"), spec("a")]).await;
        assert!(matches!(r, Err(SimError::DuplicateId(_))));
    }
}
