//! The camera poller: one task per camera, one [`CameraObservation`] per poll cycle.
//!
//! A cycle climbs the status ladder and stops at the first rung that fails, each step under
//! its own deadline (`cfg.timeout`) because client libraries' defaults are far too long:
//!
//! 1. `GetSystemDateAndTime` without credentials — reachability and the camera's clock skew;
//!    on the first probe, every [`CLOCK_EVERY_PROBES`]th and after a failed one (in between
//!    step 2 alone proves the camera is there, and a failure there starts again from step 1).
//!    Connection refused → [`Reach::Unreachable`]; a timeout is followed by a bare TCP
//!    connect to tell "nothing there" ([`Reach::Unreachable`]) from "listening but mute"
//!    ([`Reach::TcpOnly`]); HTTP 500, a non-auth SOAP fault or garbage → [`Reach::TcpOnly`].
//! 2. `GetDeviceInformation` with credentials (WS-UsernameToken stamped with the camera's
//!    clock, or HTTP Digest) — refusal → [`Reach::AuthFailed`]. Faults are classified by
//!    their body, never by HTTP status: real devices send auth faults with 200, 400 or 401.
//! 3. Media URIs (`GetCapabilities`, `GetProfiles`, `GetStreamUri`, `GetSnapshotUri`), cached
//!    after the first success and fetched again after any failure further down or when the
//!    camera's clock jumps back (a reboot or a reset).
//! 4. RTSP `DESCRIBE` on the stream URI → [`Video::StreamDown`] when it fails.
//! 5. Pull-point events (signal loss, tamper, storage failure), pulled once per cycle with a
//!    zero wait, so the pull loop is paced by the poll interval and can never spin however a
//!    device answers; a device that keeps failing subscriptions is retried with a growing
//!    back-off. Events ride on this cycle's observation.
//! 6. A snapshot, hashed as it streams in (never held whole) and capped in size
//!    (`snapshot_max_bytes`; a bigger picture is a reason, never a frozen picture). Fetched on
//!    the first probe and then every `frozen_check_every`th, and on every probe while the last
//!    two pictures were the same (a freeze being confirmed or a frozen picture watched for its
//!    recovery): [`FROZEN_AFTER`] unchanged pictures in a row among the checked probes →
//!    [`Video::Frozen`].
//!
//! Every byte read from a camera is bounded: SOAP replies by our own transport (oxvif's
//! default transport reads bodies without a cap), which also pre-parses each reply with the
//! depth- and size-limited parser of `protocols::onvif` before oxvif's own parser sees it;
//! snapshots and RTSP replies by explicit caps. A reply that never ends runs into the deadline.
//!
//! A probe's HTTP requests (SOAP, then the snapshot) go one after the other over one kept-alive
//! connection per camera (the shared client keeps one idle connection per host). A probe that
//! fetched a picture closes that connection after it (`Connection: close`): the picture grew
//! the connection's read buffer to ~400 KiB, which an idle pooled connection would keep.
//!
//! Schedule: the first probe comes at once (a cold start sees every camera within one probe);
//! after it each camera keeps a stable phase within the poll interval, from a hash of its id, so
//! a fleet's probes are spread evenly over the whole interval instead of coming in one burst.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use oxvif::soap::SoapError as OxSoapError;
use oxvif::transport::{Transport, TransportError};
use oxvif::{OnvifClient, OnvifError};
use protocols::DeviceId;
use protocols::onvif::{self, http_digest::Challenge, rtsp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{MissedTickBehavior, timeout};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::{CameraEvent, CameraObservation, Observation, Reach, StreamInfo, Video};
use crate::config::{CameraAuth, CameraConfig, DEFAULT_FROZEN_CHECK_EVERY, DEFAULT_SNAPSHOT_MAX_BYTES};
use crate::picture::{self, Judge, PictureSettings, Resolution, Verdict};

/// Consecutive probes that must see an unchanged snapshot before the picture is `Frozen`
/// (not configurable yet: `CameraConfig` has no field for it).
pub const FROZEN_AFTER: u32 = 3;
/// Largest SOAP reply read.
pub const SOAP_MAX_BYTES: usize = 1024 * 1024;
/// Largest RTSP reply (head + SDP) read.
pub const RTSP_MAX_BYTES: usize = 16 * 1024;
/// Longest reason text put in an observation.
const MAX_REASON: usize = 300;
/// A camera clock that ran this much slower than ours between two probes has jumped back.
const CLOCK_JUMP_SECS: i64 = 5;
/// The camera's clock (`GetSystemDateAndTime`, step 1) is read on the first probe, on every
/// this-many-th, and on every probe after one that did not reach the camera's authenticated
/// service; in between the last skew stands (a clock drifts by milliseconds a minute) and the
/// authenticated call alone proves the camera is there. When that call fails on a probe that
/// skipped the clock, the probe climbs the whole ladder again from step 1, so every failure is
/// classified exactly as before (and a camera whose clock jumped is answered with its new time).
const CLOCK_EVERY_PROBES: u64 = 6;
/// Media URIs and the encoder settings are read again after this many probes (10 min at the
/// default interval), so a camera reconfigured without a reboot (a lower resolution, a new
/// stream URI) is seen.
const MEDIA_REFRESH_PROBES: u64 = 60;

/// How a camera is probed (from its config; offline thresholds belong to health, not here).
#[derive(Debug, Clone)]
pub struct CameraProbeSettings {
    pub poll_interval: Duration,
    /// Deadline of each step of a probe.
    pub timeout: Duration,
    pub frozen_after: u32,
    /// Fetch the snapshot on every Nth probe (1: every probe).
    pub frozen_check_every: u32,
    pub soap_max_bytes: usize,
    pub snapshot_max_bytes: usize,
    pub rtsp_max_bytes: usize,
    /// Whether to keep a pull-point subscription for health events.
    pub events: bool,
    /// Picture checks on the snapshots fetched (dark, obstructed, defocused).
    pub picture: PictureSettings,
    /// The least main-stream resolution.
    pub min_resolution: Resolution,
}

impl CameraProbeSettings {
    pub fn from_config(cfg: &CameraConfig) -> Self {
        CameraProbeSettings {
            poll_interval: cfg.poll_interval,
            timeout: cfg.timeout,
            frozen_after: FROZEN_AFTER,
            frozen_check_every: cfg.frozen_check_every.unwrap_or(DEFAULT_FROZEN_CHECK_EVERY).max(1),
            soap_max_bytes: SOAP_MAX_BYTES,
            snapshot_max_bytes: snapshot_cap(cfg),
            rtsp_max_bytes: RTSP_MAX_BYTES,
            events: true,
            picture: cfg.picture_resolved.settings(),
            min_resolution: cfg.picture_resolved.min_resolution(),
        }
    }

    /// Seconds of subscription lease we ask for: a few poll intervals, at least a minute.
    fn lease_secs(&self) -> u64 {
        (self.poll_interval.as_secs() * 3).clamp(60, 3600)
    }
}

/// The camera's snapshot cap in bytes.
fn snapshot_cap(cfg: &CameraConfig) -> usize {
    usize::try_from(cfg.snapshot_max_bytes.unwrap_or(DEFAULT_SNAPSHOT_MAX_BYTES)).unwrap_or(usize::MAX)
}

/// Starts the poller of one camera with settings from its config.
pub fn spawn_camera_poller(
    cfg: CameraConfig,
    base_dir: PathBuf,
    tx: mpsc::Sender<Observation>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let settings = CameraProbeSettings::from_config(&cfg);
    spawn_camera_poller_with(cfg, settings, base_dir, tx, shutdown)
}

/// A camera's stable phase within the poll interval, from a hash of its id (FNV-1a and
/// MurmurHash3's finaliser, so that ids differing in one digit land far apart: the same on
/// every run and every build, unlike std's hasher).
pub fn probe_phase(id: &str, interval: Duration) -> Duration {
    let mut h = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    let span = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(h % span)
}

/// When the second probe comes, `start` being the first's: at the camera's phase, at least half
/// an interval after the first (so two probes never come back to back) — from then on every
/// interval.
pub fn second_probe_at(start: tokio::time::Instant, phase: Duration, interval: Duration) -> tokio::time::Instant {
    let at = start + phase;
    if phase < interval / 2 { at + interval } else { at }
}

/// How many cameras make their first probe at the same time: a typical branch's all at once,
/// a fleet of a thousand in turns (a probe takes a few milliseconds).
const FIRST_PROBES_AT_ONCE: usize = 64;

fn first_probe_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(FIRST_PROBES_AT_ONCE))
}

/// Starts the poller of one camera with explicit settings.
pub fn spawn_camera_poller_with(
    cfg: CameraConfig,
    settings: CameraProbeSettings,
    base_dir: PathBuf,
    tx: mpsc::Sender<Observation>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let span = tracing::info_span!("camera", id = %cfg.id);
    tokio::spawn(
        async move {
            let device = match DeviceId::new(cfg.id.clone()) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "{}", i18n::Lang::current().t("invalid camera id; not polling", "摄像机 id 无效，不轮询"));
                    return;
                }
            };
            // The first probe at once; then a stable per-camera phase spread over the whole
            // interval: started together, 1,000 cameras would otherwise all probe in the same
            // instant every interval (peak memory, CPU and network all at once).
            let interval = settings.poll_interval;
            let start = tokio::time::Instant::now();
            let phase = probe_phase(&cfg.id, interval);
            let mut prober = Prober::new(cfg, settings, &base_dir, device);
            let mut tick = tokio::time::interval_at(second_probe_at(start, phase, interval), interval);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut first = true;
            loop {
                if !std::mem::take(&mut first) {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                }
                // Boxed: the probe's state machine (oxvif + reqwest futures) is tens of KiB; inline
                // it would stay allocated in every idle camera task between probes. The first
                // probes of a large fleet take turns in FIRST_PROBES_AT_ONCE slots: all at once,
                // their buffers would raise the memory the process keeps for good.
                let first_slot = if prober.cycle == 0 { first_probe_slots().acquire().await.ok() } else { None };
                let obs = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    obs = Box::pin(prober.probe()) => obs,
                };
                drop(first_slot);
                tracing::debug!(reach = ?obs.reach, video = ?obs.video, reason = ?obs.reason, "probe");
                if tx.send(Observation::Camera(obs)).await.is_err() {
                    break;
                }
            }
        }
        .instrument(span),
    )
}

// ── HTTP ──────────────────────────────────────────────────────────────────────

/// One HTTP client (one connection pool, one TLS configuration) for every camera.
fn http_client() -> Result<reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                // One idle connection per camera, kept a little longer than the default interval:
                // reconnecting every probe cost ~15 % more CPU (measured with bsg-bench).
                .pool_max_idle_per_host(1)
                .pool_idle_timeout(Duration::from_secs(15))
                .tcp_nodelay(true)
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        })
        .clone()
}

/// Reads a body up to `max` bytes; more is an error, not a truncation.
async fn read_bounded(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, BodyError> {
    if let Some(len) = resp.content_length()
        && len > max as u64
    {
        return Err(BodyError::TooLarge(max));
    }
    // Sized from the announced length (capped): a picture read whole is not copied on every
    // doubling of the buffer.
    let announced = resp.content_length().and_then(|l| usize::try_from(l).ok()).unwrap_or(0);
    let mut out = Vec::with_capacity(announced.min(max));
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Http)? {
        if out.len() + chunk.len() > max {
            return Err(BodyError::TooLarge(max));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A hash of a picture fed as it streams in. Data is handed to the hasher in fixed blocks, so
/// the hash depends on the bytes only, never on how the network cut them into chunks.
struct StreamHash {
    hasher: DefaultHasher,
    block: [u8; 512],
    filled: usize,
    len: u64,
}

impl StreamHash {
    fn new() -> Self {
        StreamHash { hasher: DefaultHasher::new(), block: [0; 512], filled: 0, len: 0 }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.filled > 0 {
            let n = data.len().min(self.block.len() - self.filled);
            self.block[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled < self.block.len() {
                return;
            }
            self.hasher.write(&self.block);
            self.filled = 0;
        }
        let whole = data.len() - data.len() % self.block.len();
        for b in data[..whole].chunks_exact(self.block.len()) {
            self.hasher.write(b);
        }
        let rest = &data[whole..];
        self.block[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    fn finish(mut self) -> (u64, u64) {
        self.hasher.write(&self.block[..self.filled]);
        self.hasher.write_u64(self.len);
        (self.hasher.finish(), self.len)
    }
}

/// Reads a body up to `max` bytes into a hash, holding one network chunk at a time; more is an
/// error, not a truncation. Returns the hash and the length.
async fn hash_bounded(mut resp: reqwest::Response, max: usize) -> Result<(u64, u64), BodyError> {
    if let Some(len) = resp.content_length()
        && len > max as u64
    {
        return Err(BodyError::TooLarge(max));
    }
    let mut h = StreamHash::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Http)? {
        if h.len + chunk.len() as u64 > max as u64 {
            return Err(BodyError::TooLarge(max));
        }
        h.update(&chunk);
    }
    Ok(h.finish())
}

#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    #[error("reading the response: {0}")]
    Http(reqwest::Error),
}

/// HTTP Digest for a camera's HTTP requests (SOAP, snapshots) with the workspace's one Digest
/// implementation, `protocols::onvif::http_digest`, which also answers RTSP challenges here and
/// checks them in the simulator's cameras.
///
/// Why not a crate: diqwest, used here before, is built on `digest_auth` 0.3, whose header
/// parser slices the header at character counts as if they were byte offsets, so a challenge
/// with a non-ASCII character before an `=` (a camera's realm in Chinese, or a hostile device)
/// panics the poller; `digest_auth` is written for clients (a server re-runs the client's
/// computation to check a response) and neither it nor the other Digest crates (`http-auth`:
/// client only; `digest-access`) covers the RTSP client, the reqwest client and the server side
/// together. Ours is small, pure, never panics on input and is fuzzed (fuzz/onvif_http_digest).
struct DigestSession {
    username: String,
    password: String,
    /// The camera's last challenge and the nonce count last used with it: later requests answer
    /// it at once (one round trip instead of two) until the camera refuses it (a stale nonce).
    last: std::sync::Mutex<Option<(Challenge, u32)>>,
}

impl DigestSession {
    fn new(username: String, password: String) -> DigestSession {
        DigestSession { username, password, last: std::sync::Mutex::new(None) }
    }

    /// The `Authorization` value for `method uri` under the remembered challenge, if any.
    fn answer_remembered(&self, method: &str, uri: &str) -> Option<String> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let (challenge, nc) = last.as_mut()?;
        *nc = nc.wrapping_add(1);
        Some(self.answer(challenge, *nc, method, uri))
    }

    /// Remembers `challenge` and answers it (nonce count 1).
    fn answer_new(&self, challenge: Challenge, method: &str, uri: &str) -> String {
        let auth = self.answer(&challenge, 1, method, uri);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((challenge, 1));
        auth
    }

    fn forget(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn answer(&self, challenge: &Challenge, nc: u32, method: &str, uri: &str) -> String {
        let cnonce = format!("{:016x}", rand::random::<u64>());
        challenge.authorize(method, uri, &self.username, &self.password, &cnonce, nc)
    }
}

/// Sends `rb`, answering a Digest challenge (a 401 with `WWW-Authenticate: Digest …`) once when
/// there are credentials. A 401 without a Digest challenge comes back as it is.
async fn send(
    rb: reqwest::RequestBuilder,
    digest: Option<&DigestSession>,
) -> Result<reqwest::Response, TransportError> {
    let Some(digest) = digest else { return rb.send().await.map_err(TransportError::Http) };
    let (client, request) = rb.build_split();
    let request = request.map_err(TransportError::Http)?;
    let method = request.method().as_str().to_string();
    let uri = match request.url().query() {
        Some(q) => format!("{}?{q}", request.url().path()),
        None => request.url().path().to_string(),
    };
    let with = |auth: &str, r: &reqwest::Request| -> Result<reqwest::Request, TransportError> {
        let mut r = r.try_clone().ok_or_else(|| TransportError::HttpStatus {
            status: 401,
            body: "digest authentication: the request cannot be sent twice".into(),
        })?;
        let value = reqwest::header::HeaderValue::from_str(auth)
            .map_err(|e| TransportError::HttpStatus { status: 401, body: format!("digest authentication: {e}") })?;
        r.headers_mut().insert(reqwest::header::AUTHORIZATION, value);
        Ok(r)
    };
    let first = match digest.answer_remembered(&method, &uri) {
        Some(auth) => with(&auth, &request)?,
        None => request.try_clone().ok_or_else(|| TransportError::HttpStatus {
            status: 401,
            body: "digest authentication: the request cannot be sent twice".into(),
        })?,
    };
    let resp = client.execute(first).await.map_err(TransportError::Http)?;
    if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Ok(resp);
    }
    // A camera may offer Basic and Digest, one `WWW-Authenticate` header each.
    let challenge = resp
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .find_map(Challenge::parse);
    let Some(challenge) = challenge else {
        digest.forget();
        return Ok(resp);
    };
    let auth = digest.answer_new(challenge, &method, &uri);
    client.execute(with(&auth, &request)?).await.map_err(TransportError::Http)
}

/// Fetches one picture from `uri` with the camera's credentials (HTTP Digest when the camera
/// asks for it), bounded in size and time: used right after an alarm to keep what the linked
/// cameras saw.
pub async fn fetch_snapshot(
    cfg: &CameraConfig,
    base_dir: &std::path::Path,
    uri: &str,
    deadline: Duration,
) -> Result<Vec<u8>, String> {
    let http = http_client()?;
    let password = cfg.password.resolve(base_dir)?;
    let digest = match (&cfg.username, &password) {
        (Some(u), Some(p)) => Some(DigestSession::new(u.clone(), p.clone())),
        _ => None,
    };
    let work = async {
        let resp = send(http.get(uri), digest.as_ref()).await.map_err(|e| truncate(&e.to_string(), MAX_REASON))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status().as_u16()));
        }
        let bytes = read_bounded(resp, snapshot_cap(cfg)).await.map_err(|e| e.to_string())?;
        if bytes.is_empty() { Err("empty picture".to_string()) } else { Ok(bytes) }
    };
    timeout(deadline, work).await.unwrap_or_else(|_| Err(format!("no picture within {deadline:?}")))
}

/// The encoding's name as ONVIF writes it.
fn encoding_name(e: &oxvif::types::VideoEncoding) -> String {
    use oxvif::types::VideoEncoding as E;
    match e {
        E::Jpeg => "JPEG".into(),
        E::H264 => "H264".into(),
        E::H265 => "H265".into(),
        E::Other(s) => truncate(s, 20),
    }
}

/// oxvif's transport with bounded reads and a SOAP sanity check in front of oxvif's parser.
struct BoundedTransport {
    client: reqwest::Client,
    digest: Option<Arc<DigestSession>>,
    max: usize,
}

#[async_trait::async_trait]
impl Transport for BoundedTransport {
    async fn soap_post(&self, url: &str, action: &str, body: String) -> Result<String, TransportError> {
        let content_type = format!("application/soap+xml; charset=utf-8; action=\"{action}\"");
        let rb = self.client.post(url).header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        let resp = send(rb, self.digest.as_deref()).await?;
        let status = resp.status().as_u16();
        let bytes = match read_bounded(resp, self.max).await {
            Ok(b) => b,
            Err(BodyError::Http(e)) => return Err(TransportError::Http(e)),
            Err(e @ BodyError::TooLarge(_)) => return Err(TransportError::HttpStatus { status, body: e.to_string() }),
        };
        let Ok(text) = String::from_utf8(bytes) else {
            return Err(TransportError::HttpStatus { status, body: "response is not UTF-8".into() });
        };
        if !matches!(status, 200 | 400 | 500) {
            return Err(TransportError::HttpStatus { status, body: truncate(&text, 200) });
        }
        // oxvif parses leniently (local names only, no depth cap): check the envelope first.
        if let Err(e) = onvif::soap::Envelope::parse(&text, self.max) {
            return Err(TransportError::HttpStatus { status, body: format!("not a SOAP reply: {e}") });
        }
        Ok(text)
    }
}

// ── Classification ────────────────────────────────────────────────────────────

#[derive(Debug)]
enum Failure {
    /// TCP connect refused or failed.
    Connect(String),
    /// No answer within the deadline.
    Timeout(String),
    /// Credentials refused.
    Auth(String),
    /// Anything else: HTTP error, non-auth SOAP fault, garbage.
    Other(String),
}

fn truncate(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// An error with its sources, e.g. "error sending request: … Connection refused".
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    truncate(&s, MAX_REASON)
}

fn classify(step: &str, e: OnvifError) -> Failure {
    match e {
        OnvifError::Transport(TransportError::Http(re)) if re.is_connect() => {
            Failure::Connect(format!("{step}: {}", chain(&re)))
        }
        OnvifError::Transport(TransportError::Http(re)) if re.is_timeout() => {
            Failure::Timeout(format!("{step}: {}", chain(&re)))
        }
        OnvifError::Transport(TransportError::Http(re)) => Failure::Other(format!("{step}: {}", chain(&re))),
        OnvifError::Transport(TransportError::HttpStatus { status: 401, body }) => {
            Failure::Auth(format!("{step}: HTTP 401 {}", truncate(&body, 120)))
        }
        OnvifError::Transport(TransportError::HttpStatus { status, body }) => {
            Failure::Other(format!("{step}: HTTP {status}: {}", truncate(&body, 200)))
        }
        OnvifError::Soap(OxSoapError::Fault { code, reason, subcode, .. }) => {
            let subs: Vec<String> = subcode.iter().cloned().collect();
            let text = format!(
                "{step}: SOAP fault {code}{} {}",
                subcode.map(|s| format!("/{s}")).unwrap_or_default(),
                truncate(&reason, 150)
            );
            if onvif::soap::is_auth_fault_text(&code, &subs, &reason) {
                Failure::Auth(text)
            } else {
                Failure::Other(text)
            }
        }
        OnvifError::Soap(other) => Failure::Other(format!("{step}: bad reply: {}", truncate(&other.to_string(), 200))),
        OnvifError::InvalidArgument(s) => Failure::Other(format!("{step}: {}", truncate(&s, 200))),
    }
}

/// Runs one oxvif call under the deadline.
async fn call<T>(step: &str, deadline: Duration, f: impl Future<Output = Result<T, OnvifError>>) -> Result<T, Failure> {
    match timeout(deadline, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(step, e)),
        Err(_) => Err(Failure::Timeout(format!("{step}: no answer within {}", humantime::format_duration(deadline)))),
    }
}

// ── The prober ────────────────────────────────────────────────────────────────

#[derive(Debug, Clone)]
struct MediaCache {
    events_url: Option<String>,
    stream_uri: String,
    snapshot_uri: Option<String>,
    /// The main profile's encoder resolution and encoding, if the camera told them.
    stream: Option<(Resolution, String)>,
    /// The probe that read these.
    read_at_cycle: u64,
}

struct Subscription {
    url: String,
    /// When (our clock) the lease runs out, as far as the device told us.
    expires: Instant,
}

#[derive(Default)]
struct EventState {
    sub: Option<Subscription>,
    failures: u32,
    /// No subscription attempts before this cycle.
    skip_until: u64,
    signal_lost: bool,
}

struct Prober {
    device: DeviceId,
    url: String,
    auth: CameraAuth,
    settings: CameraProbeSettings,
    username: Option<String>,
    password: Option<String>,
    setup_error: Option<String>,
    http: Option<reqwest::Client>,
    digest: Option<Arc<DigestSession>>,
    /// The RTSP server's own Digest session (its realm and nonce are not the HTTP server's).
    rtsp_digest: Option<DigestSession>,
    media: Option<MediaCache>,
    /// (camera clock in s, our instant) at the last probe that read it.
    last_clock: Option<(i64, Instant)>,
    last_snapshot: Option<u64>,
    unchanged: u32,
    /// The picture judge and its last verdict (with why), held between checked probes.
    judge: Judge,
    picture: (Verdict, String),
    events: EventState,
    cycle: u64,
    /// The skew last measured (step 1), reported until the next reading.
    last_skew: Option<i64>,
    /// The last probe reached the authenticated service: the next may skip the clock.
    authenticated_last: bool,
}

enum SnapshotError {
    /// Over the size cap.
    TooLarge(String),
    /// No picture (HTTP error, timeout, empty).
    Failed(String),
}

/// A snapshot as the probe read it.
struct Picture {
    hash: u64,
    /// The picture check's verdict, when the picture was checked.
    checked: Option<(Verdict, String)>,
    /// Why it could not be checked.
    unchecked: Option<String>,
}

/// A probe result before it becomes an observation.
struct Outcome {
    reach: Reach,
    video: Video,
    reasons: Vec<String>,
    skew_ms: Option<i64>,
    events: Vec<CameraEvent>,
    /// The URIs this probe used (the cache may be dropped after it).
    stream_uri: Option<String>,
    snapshot_uri: Option<String>,
    stream: Option<StreamInfo>,
}

impl Prober {
    fn new(cfg: CameraConfig, settings: CameraProbeSettings, base_dir: &std::path::Path, device: DeviceId) -> Prober {
        let mut setup_error = None;
        let password = match cfg.password.resolve(base_dir) {
            Ok(p) => p,
            Err(e) => {
                setup_error = Some(format!("credentials: {e}"));
                None
            }
        };
        let http = match http_client() {
            Ok(c) => Some(c),
            Err(e) => {
                setup_error = Some(e);
                None
            }
        };
        let digest = match (&cfg.username, &password) {
            (Some(u), Some(p)) => Some(Arc::new(DigestSession::new(u.clone(), p.clone()))),
            _ => None,
        };
        let rtsp_digest = cfg.username.clone().zip(password.clone()).map(|(u, p)| DigestSession::new(u, p));
        let judge = Judge::new(settings.picture.clone());
        Prober {
            device,
            url: cfg.onvif,
            auth: cfg.auth,
            settings,
            username: cfg.username,
            password,
            setup_error,
            http,
            digest,
            rtsp_digest,
            media: None,
            last_clock: None,
            last_snapshot: None,
            unchanged: 0,
            judge,
            picture: (Verdict::Good, String::new()),
            events: EventState::default(),
            cycle: 0,
            last_skew: None,
            authenticated_last: false,
        }
    }

    async fn probe(&mut self) -> CameraObservation {
        self.cycle += 1;
        let started = Instant::now();
        let out = self.run().await;
        let reason = (!out.reasons.is_empty()).then(|| truncate(&out.reasons.join("; "), 2 * MAX_REASON));
        CameraObservation {
            device: self.device.clone(),
            at: protocols::time::now(),
            reach: out.reach,
            video: out.video,
            reason,
            clock_skew_ms: out.skew_ms,
            stream_uri: out.stream_uri,
            snapshot_uri: out.snapshot_uri,
            events: out.events,
            stream: out.stream,
            duration: started.elapsed(),
        }
    }

    fn fail(reach: Reach, reason: String, skew_ms: Option<i64>) -> Outcome {
        Outcome {
            reach,
            video: Video::Unknown,
            reasons: vec![reason],
            skew_ms,
            events: Vec::new(),
            stream_uri: None,
            snapshot_uri: None,
            stream: None,
        }
    }

    /// Tells "nothing listening" from "listening but mute" after a timeout.
    async fn tcp_check(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.url).map_err(|e| format!("bad ONVIF URL: {e}"))?;
        let host = url.host_str().ok_or("ONVIF URL has no host")?.trim_matches(['[', ']']).to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        match timeout(self.settings.timeout, TcpStream::connect((host.as_str(), port))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("TCP connect: {e}")),
            Err(_) => Err("TCP connect timed out".into()),
        }
    }

    fn client(&self, http: &reqwest::Client, credentials: bool, offset_secs: i64) -> OnvifClient {
        let digest = if credentials { self.digest.clone() } else { None };
        let transport = Arc::new(BoundedTransport { client: http.clone(), digest, max: self.settings.soap_max_bytes });
        let client = OnvifClient::new(self.url.clone()).with_transport(transport);
        match (credentials, self.auth, &self.username, &self.password) {
            (true, CameraAuth::UsernameToken, Some(u), Some(p)) => {
                client.with_credentials(u.clone(), p.clone()).with_utc_offset(offset_secs)
            }
            _ => client,
        }
    }

    async fn run(&mut self) -> Outcome {
        let t = self.settings.timeout;
        let Some(http) = self.http.clone() else {
            return Self::fail(Reach::Unreachable, self.setup_error.clone().unwrap_or_default(), None);
        };

        // 1. Reachability and clock, without credentials: on the first probe, every
        // CLOCK_EVERY_PROBES-th and after a probe that failed before the authenticated call;
        // between them the last skew stands. A probe that skipped it and then fails the
        // authenticated call starts again here (at most once).
        let mut read_clock =
            !self.authenticated_last || self.last_skew.is_none() || (self.cycle - 1).is_multiple_of(CLOCK_EVERY_PROBES);
        self.authenticated_last = false;
        let (skew_ms, reasons, client) = loop {
            let mut skew_ms = if read_clock { None } else { self.last_skew };
            let mut reasons = Vec::new();
            if read_clock {
                let anon = self.client(&http, false, 0);
                let before = chrono::Utc::now();
                match call("GetSystemDateAndTime", t, anon.get_system_date_and_time()).await {
                    Ok(dt) => {
                        if let Some(cam_secs) = dt.utc_unix {
                            let after = chrono::Utc::now();
                            let mid_ms = before.timestamp_millis() + (after - before).num_milliseconds() / 2;
                            // The camera reports whole seconds: centre the estimate (±0.5 s resolution).
                            skew_ms = Some(cam_secs.saturating_mul(1000).saturating_add(500).saturating_sub(mid_ms));
                            self.check_clock_jump(cam_secs);
                        }
                    }
                    Err(Failure::Connect(r)) => {
                        self.on_unreachable();
                        return Self::fail(Reach::Unreachable, r, None);
                    }
                    Err(Failure::Timeout(r)) => {
                        return match self.tcp_check().await {
                            Ok(()) => Self::fail(Reach::TcpOnly, r, None),
                            Err(e) => {
                                self.on_unreachable();
                                Self::fail(Reach::Unreachable, format!("{r}; {e}"), None)
                            }
                        };
                    }
                    // Some firmware wants credentials even for the clock: carry on without skew.
                    Err(Failure::Auth(r)) => reasons.push(r),
                    Err(Failure::Other(r)) => return Self::fail(Reach::TcpOnly, r, None),
                }
                self.last_skew = skew_ms;
            }
            if let Some(e) = &self.setup_error {
                return Self::fail(Reach::AuthFailed, e.clone(), skew_ms);
            }

            // 2. Authenticated call.
            let offset_secs = skew_ms.map(|ms| (ms as f64 / 1000.0).round() as i64).unwrap_or(0);
            let client = self.client(&http, true, offset_secs);
            match call("GetDeviceInformation", t, client.get_device_info()).await {
                Ok(_) => break (skew_ms, reasons, client),
                // Skipped the clock: climb the whole ladder, so the failure is classified (and a
                // jumped clock answered) exactly as on a probe that read it.
                Err(_) if !read_clock => read_clock = true,
                Err(Failure::Auth(r)) => return Self::fail(Reach::AuthFailed, r, skew_ms),
                Err(Failure::Connect(r)) => return Self::fail(Reach::Unreachable, r, skew_ms),
                Err(Failure::Timeout(r) | Failure::Other(r)) => return Self::fail(Reach::TcpOnly, r, skew_ms),
            }
        };
        self.authenticated_last = true;
        let mut out = Outcome {
            reach: Reach::Online,
            video: Video::Unknown,
            reasons: Vec::new(),
            skew_ms,
            events: Vec::new(),
            stream_uri: None,
            snapshot_uri: None,
            stream: None,
        };

        // 3. Media URIs (read again now and then: a camera may be reconfigured without a reboot).
        if self.media.as_ref().is_some_and(|m| self.cycle.saturating_sub(m.read_at_cycle) >= MEDIA_REFRESH_PROBES) {
            self.media = None;
        }
        if self.media.is_none() {
            match self.fetch_media(&client).await {
                Ok(m) => self.media = Some(m),
                Err(r) => {
                    out.reasons.push(r);
                    out.events = self.pull_events(&client, None).await;
                    return out;
                }
            }
        }
        let Some(media) = self.media.clone() else { return out };
        out.stream_uri = Some(media.stream_uri.clone());
        out.snapshot_uri = media.snapshot_uri.clone();
        out.stream = media.stream.as_ref().map(|(resolution, encoding)| StreamInfo {
            resolution: *resolution,
            encoding: encoding.clone(),
            minimum: self.settings.min_resolution,
        });

        // 4. RTSP.
        let stream_ok = match self.describe(&media.stream_uri).await {
            Ok(()) => true,
            Err(r) => {
                out.reasons.push(format!("RTSP DESCRIBE: {r}"));
                false
            }
        };

        // 5. Events.
        out.events = self.pull_events(&client, media.events_url.as_deref()).await;

        // 6. Snapshot, the probe's last request: on the first probe, every Nth, and every probe while
        // the last two pictures were the same (confirming a freeze, or watching a frozen picture
        // recover) or the last picture was bad (confirming it, or watching it recover).
        let mut snapshot_ok = true;
        let due = (self.cycle - 1).is_multiple_of(u64::from(self.settings.frozen_check_every))
            || self.unchanged > 0
            || self.picture.0.is_fault();
        if let Some(uri) = media.snapshot_uri.as_deref().filter(|_| due) {
            match self.snapshot(&http, uri).await {
                Ok(pic) => {
                    if self.last_snapshot == Some(pic.hash) {
                        self.unchanged = self.unchanged.saturating_add(1);
                    } else {
                        self.unchanged = 0;
                    }
                    self.last_snapshot = Some(pic.hash);
                    if let Some(checked) = pic.checked {
                        self.picture = checked;
                    }
                    if let Some(why) = pic.unchecked {
                        out.reasons.push(format!("snapshot: {why}"));
                    }
                }
                Err(SnapshotError::TooLarge(r)) => {
                    // Not a frozen picture and not a changed URI: the picture cannot be checked.
                    self.unchanged = 0;
                    self.last_snapshot = None;
                    self.picture = (Verdict::Good, String::new());
                    out.reasons.push(format!("snapshot: {r}"));
                }
                Err(SnapshotError::Failed(r)) => {
                    snapshot_ok = false;
                    out.reasons.push(format!("snapshot: {r}"));
                }
            }
        }

        out.video = if !stream_ok {
            Video::StreamDown
        } else if self.events.signal_lost {
            Video::SignalLost
        } else if self.settings.frozen_after > 0 && self.unchanged >= self.settings.frozen_after {
            out.reasons.push(format!("snapshot unchanged for {} probes", self.unchanged));
            Video::Frozen
        } else {
            match self.picture.0 {
                Verdict::Dark => Video::Dark,
                Verdict::Obstructed => Video::Obstructed,
                Verdict::Defocused => Video::Defocused,
                Verdict::Good | Verdict::ExpectedDark => Video::Live,
            }
        };
        if out.video != Video::Live && self.picture.0.is_fault() && !self.picture.1.is_empty() {
            out.reasons.push(self.picture.1.clone());
        }
        if !stream_ok || !snapshot_ok {
            // The URIs may have changed: ask again next time.
            self.media = None;
        }
        out.reasons.extend(reasons);
        out
    }

    fn on_unreachable(&mut self) {
        // Whatever comes back may be a rebooted camera: forget URIs (not the subscription —
        // a failed pull replaces it).
        self.media = None;
    }

    fn check_clock_jump(&mut self, cam_secs: i64) {
        let now = Instant::now();
        if let Some((prev, at)) = self.last_clock {
            let expected = prev + now.duration_since(at).as_secs() as i64;
            if cam_secs + CLOCK_JUMP_SECS < expected {
                tracing::info!(
                    jump_secs = expected - cam_secs,
                    "camera clock jumped back; refreshing media URIs and events"
                );
                self.media = None;
                self.events.sub = None;
            }
        }
        self.last_clock = Some((cam_secs, now));
    }

    async fn fetch_media(&self, client: &OnvifClient) -> Result<MediaCache, String> {
        let t = self.settings.timeout;
        let text = |f: Failure| match f {
            Failure::Connect(r) | Failure::Timeout(r) | Failure::Auth(r) | Failure::Other(r) => r,
        };
        let caps = call("GetCapabilities", t, client.get_capabilities()).await.map_err(text)?;
        let media_url = caps.media.url.clone().ok_or("GetCapabilities: no Media service")?;
        let mut events_url = caps.events.url.clone();
        if events_url.is_none() {
            // Some devices list a service only in GetServices (others only in GetCapabilities).
            if let Ok(services) = call("GetServices", t, client.get_services()).await {
                events_url = services.into_iter().find(|s| s.namespace == onvif::ns::TEV).map(|s| s.url);
            }
        }
        let profiles = call("GetProfiles", t, client.get_profiles(&media_url)).await.map_err(text)?;
        let profile = profiles.first().ok_or("GetProfiles: no media profile")?;
        let stream = call("GetStreamUri", t, client.get_stream_uri(&media_url, &profile.token)).await.map_err(text)?;
        // The main stream's resolution (the HD check); a camera that does not tell is not
        // judged on it.
        let encoder = match &profile.video_encoder_token {
            Some(token) => {
                match call("GetVideoEncoderConfiguration", t, client.get_video_encoder_configuration(&media_url, token))
                    .await
                {
                    Ok(vec) if vec.resolution.width > 0 && vec.resolution.height > 0 => Some((
                        Resolution { width: vec.resolution.width, height: vec.resolution.height },
                        encoding_name(&vec.encoding),
                    )),
                    Ok(_) => None,
                    Err(f) => {
                        tracing::debug!(reason = %text(f), "no video encoder configuration");
                        None
                    }
                }
            }
            None => None,
        };
        let snapshot = match call("GetSnapshotUri", t, client.get_snapshot_uri(&media_url, &profile.token)).await {
            Ok(s) => Some(s.uri),
            Err(f) => {
                tracing::debug!(reason = %text(f), "no snapshot URI");
                None
            }
        };
        Ok(MediaCache {
            events_url,
            stream_uri: stream.uri,
            snapshot_uri: snapshot.filter(|s| !s.is_empty()),
            stream: encoder,
            read_at_cycle: self.cycle,
        })
    }

    /// RTSP DESCRIBE, hand-written: no maintained small crate does a one-shot DESCRIBE (the
    /// RTSP crates are full streaming clients), and a probe needs only one request, a bounded
    /// read and a deadline. Answers a Digest challenge once if we have credentials, and answers
    /// the camera's last challenge at once on later probes (one exchange instead of two while
    /// its nonce lasts; a stale or refused one is answered anew on the same connection).
    async fn describe(&self, uri: &str) -> Result<(), String> {
        let (host, port) = rtsp::host_port(uri).ok_or_else(|| format!("not an RTSP URI: {}", truncate(uri, 100)))?;
        let max = self.settings.rtsp_max_bytes;
        let digest = self.rtsp_digest.as_ref();
        let work = async {
            let mut s = TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("connect: {e}"))?;
            let remembered = digest.and_then(|d| d.answer_remembered("DESCRIBE", uri));
            s.write_all(rtsp::describe_request(uri, 1, remembered.as_deref()).as_bytes())
                .await
                .map_err(|e| format!("send: {e}"))?;
            let mut reply = read_rtsp(&mut s, max).await?;
            if reply.status() == Some(401) {
                let digest = digest.ok_or("RTSP wants credentials and none are configured")?;
                let Some(challenge) = reply.header("WWW-Authenticate").and_then(Challenge::parse) else {
                    digest.forget();
                    return Err("RTSP 401 without a usable Digest challenge".into());
                };
                let auth = digest.answer_new(challenge, "DESCRIBE", uri);
                s.write_all(rtsp::describe_request(uri, 2, Some(&auth)).as_bytes())
                    .await
                    .map_err(|e| format!("send: {e}"))?;
                reply = read_rtsp(&mut s, max).await?;
            }
            match reply.status() {
                Some(200) => {
                    rtsp::sdp_video(&reply.body).map(|_| ()).ok_or_else(|| "reply has no video in its SDP".to_string())
                }
                Some(401) => Err("RTSP credentials refused".into()),
                Some(code) => Err(format!("RTSP {code} {}", truncate(&reply.start.1, 60))),
                None => Err("bad RTSP status".into()),
            }
        };
        match timeout(self.settings.timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {}", humantime::format_duration(self.settings.timeout))),
        }
    }

    /// The snapshot: hashed as it streams in, or, when the picture is to be checked and a check
    /// slot is free, read whole (bounded), hashed, checked and dropped.
    async fn snapshot(&mut self, http: &reqwest::Client, uri: &str) -> Result<Picture, SnapshotError> {
        let max = self.settings.snapshot_max_bytes;
        // A check slot, waited for outside the deadline: the fleet's checks take turns.
        let slot = if self.judge.enabled() {
            timeout(picture::SLOT_WAIT, picture::check_slots().acquire()).await.ok().and_then(Result::ok)
        } else {
            None
        };
        let check = slot.is_some();
        let work = async {
            // The picture is the probe's last request on its connection, and the connection is
            // closed after it: reading a picture grows the connection's read buffer to ~400 KiB,
            // which a pooled idle connection would keep (333 MiB at 1,000 cameras, measured).
            let rb = http.get(uri).header(reqwest::header::CONNECTION, "close");
            let resp = send(rb, self.digest.as_deref())
                .await
                .map_err(|e| SnapshotError::Failed(truncate(&e.to_string(), MAX_REASON)))?;
            let status = resp.status();
            if !status.is_success() {
                return Err(SnapshotError::Failed(format!("HTTP {}", status.as_u16())));
            }
            let too_large = |_| {
                SnapshotError::TooLarge(format!(
                    "picture larger than snapshot_max_bytes ({max} bytes): not checked for a frozen picture"
                ))
            };
            if !check {
                return match hash_bounded(resp, max).await {
                    Ok((_, 0)) => Err(SnapshotError::Failed("empty picture".to_string())),
                    Ok((hash, _)) => Ok((hash, None)),
                    Err(BodyError::TooLarge(n)) => Err(too_large(n)),
                    Err(e) => Err(SnapshotError::Failed(e.to_string())),
                };
            }
            match read_bounded(resp, max).await {
                Ok(b) if b.is_empty() => Err(SnapshotError::Failed("empty picture".to_string())),
                Ok(b) => {
                    let mut h = StreamHash::new();
                    h.update(&b);
                    Ok((h.finish().0, Some(b)))
                }
                Err(BodyError::TooLarge(n)) => Err(too_large(n)),
                Err(e) => Err(SnapshotError::Failed(e.to_string())),
            }
        };
        let (hash, body) = match timeout(self.settings.timeout, work).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(SnapshotError::Failed(format!(
                    "no picture within {}",
                    humantime::format_duration(self.settings.timeout)
                )));
            }
        };
        let Some(body) = body else { return Ok(Picture { hash, checked: None, unchecked: None }) };
        // A few milliseconds of CPU for a 1080p picture: off the async workers.
        let stats = tokio::task::spawn_blocking(move || picture::luma_stats(&body)).await;
        drop(slot);
        Ok(match stats {
            Ok(Ok(stats)) => {
                let verdict = self.judge.judge(&stats, picture::local_minute_now());
                tracing::debug!(
                    mean = stats.mean,
                    variation = stats.block_stdev,
                    sharpness = stats.sharpness(),
                    baseline = ?self.judge.baseline(),
                    verdict = ?verdict.0,
                    "picture checked"
                );
                Picture { hash, checked: Some(verdict), unchecked: None }
            }
            Ok(Err(e)) => Picture { hash, checked: None, unchecked: Some(format!("picture not checked: {e}")) },
            Err(e) => Picture { hash, checked: None, unchecked: Some(format!("picture not checked: {e}")) },
        })
    }

    /// One pull per cycle; (re)subscribes and renews as needed. Never more than three calls.
    async fn pull_events(&mut self, client: &OnvifClient, events_url: Option<&str>) -> Vec<CameraEvent> {
        let t = self.settings.timeout;
        let Some(events_url) = events_url.filter(|_| self.settings.events) else { return Vec::new() };
        if self.events.sub.is_none() {
            if self.cycle < self.events.skip_until {
                return Vec::new();
            }
            let lease = format!("PT{}S", self.settings.lease_secs());
            match call(
                "CreatePullPointSubscription",
                t,
                client.create_pull_point_subscription(events_url, None, Some(&lease)),
            )
            .await
            {
                Ok(sub) => {
                    let expires = self.expiry(&sub.termination_time);
                    self.events.sub = Some(Subscription { url: sub.reference_url, expires });
                }
                Err(f) => {
                    self.events_failed(f);
                    return Vec::new();
                }
            }
        }
        let Some(sub) = self.events.sub.as_ref() else { return Vec::new() };
        let url = sub.url.clone();
        // Renew when less than two cycles of lease are left. A device that always answers
        // "terminates now" is thus renewed once per cycle — paced, never a loop.
        if sub.expires.saturating_duration_since(Instant::now()) < self.settings.poll_interval * 2 {
            let lease = format!("PT{}S", self.settings.lease_secs());
            match call("Renew", t, client.renew_subscription(&url, &lease)).await {
                Ok(term) => {
                    let expires = self.expiry(&term);
                    if let Some(s) = self.events.sub.as_mut() {
                        s.expires = expires;
                    }
                }
                Err(f) => {
                    self.events.sub = None;
                    self.events_failed(f);
                    return Vec::new();
                }
            }
        }
        match call("PullMessages", t, client.pull_messages(&url, "PT0S", 64)).await {
            Ok(msgs) => {
                self.events.failures = 0;
                let mut out = Vec::new();
                for m in msgs {
                    let Some((fault, item)) = onvif::classify_topic(&m.topic) else { continue };
                    let Some(active) = m.data.get(item).and_then(|v| onvif::parse_bool(v)) else { continue };
                    if fault == "signal-loss" {
                        self.events.signal_lost = active;
                    }
                    out.push(CameraEvent { fault: fault.to_string(), active, topic: truncate(&m.topic, 200) });
                }
                out
            }
            Err(f) => {
                self.events.sub = None;
                self.events_failed(f);
                Vec::new()
            }
        }
    }

    fn events_failed(&mut self, f: Failure) {
        self.events.failures = self.events.failures.saturating_add(1);
        let backoff = 1u64 << self.events.failures.min(5);
        self.events.skip_until = self.cycle + backoff;
        tracing::debug!(failure = ?f, retry_in_cycles = backoff, "event subscription failed");
    }

    /// Our instant at which a device-reported termination time falls, judged against the
    /// camera's own clock; unreadable or past times count as "now".
    fn expiry(&self, termination: &str) -> Instant {
        let now = Instant::now();
        let Some(term) = onvif::wsse::parse_created(termination) else { return now };
        let cam_now = match self.last_clock {
            Some((secs, at)) => secs + now.duration_since(at).as_secs() as i64,
            None => chrono::Utc::now().timestamp(),
        };
        let left = term.timestamp() - cam_now;
        now + Duration::from_secs(left.clamp(0, 86_400) as u64)
    }
}

async fn read_rtsp(s: &mut TcpStream, max: usize) -> Result<rtsp::Message, String> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        match rtsp::parse_response(&buf, max) {
            Ok(m) => return Ok(m),
            Err(rtsp::RtspError::Incomplete) if buf.len() < max => {}
            Err(rtsp::RtspError::Incomplete) => return Err(format!("reply larger than {max} bytes")),
            Err(e) => return Err(e.to_string()),
        }
        let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before a complete reply".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_hash_ignores_chunking() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let whole = {
            let mut h = StreamHash::new();
            h.update(&data);
            h.finish()
        };
        for cut in [1, 7, 511, 512, 513, 1000, 4999] {
            let mut h = StreamHash::new();
            for c in data.chunks(cut) {
                h.update(c);
            }
            assert_eq!(h.finish(), whole, "chunks of {cut}");
        }
        let mut other = data.clone();
        other[4321] ^= 1;
        let mut h = StreamHash::new();
        h.update(&other);
        assert_ne!(h.finish().0, whole.0);
        let mut shorter = StreamHash::new();
        shorter.update(&data[..4999]);
        assert_ne!(shorter.finish(), whole);
    }

    #[test]
    fn phases_are_stable_and_spread_over_the_interval() {
        let interval = Duration::from_secs(10);
        assert_eq!(probe_phase("cam-01", interval), probe_phase("cam-01", interval));
        let phases: Vec<Duration> = (0..1000).map(|i| probe_phase(&format!("cam-{i:04}"), interval)).collect();
        assert!(phases.iter().all(|p| *p < interval));
        // Ten buckets of one second each: every one gets its share (100 ± 40).
        let mut buckets = [0u32; 10];
        for p in &phases {
            buckets[p.as_secs() as usize] += 1;
        }
        assert!(buckets.iter().all(|n| (60..=140).contains(n)), "{buckets:?}");
        let start = tokio::time::Instant::now();
        for p in phases {
            let gap = second_probe_at(start, p, interval) - start;
            assert!(gap >= interval / 2 && gap < interval * 3 / 2, "{gap:?}");
        }
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate(" ok ", 10), "ok");
    }

    #[test]
    fn faults_classify_by_body() {
        let auth = OnvifError::Soap(OxSoapError::Fault {
            code: "s:Sender".into(),
            reason: "Sender not Authorized".into(),
            subcode: Some("ter:NotAuthorized".into()),
            detail: None,
        });
        assert!(matches!(classify("x", auth), Failure::Auth(_)));
        let other = OnvifError::Soap(OxSoapError::Fault {
            code: "s:Receiver".into(),
            reason: "busy".into(),
            subcode: Some("ter:Action".into()),
            detail: None,
        });
        assert!(matches!(classify("x", other), Failure::Other(_)));
        let s500 = OnvifError::Transport(TransportError::HttpStatus { status: 500, body: "<html>".into() });
        assert!(matches!(classify("x", s500), Failure::Other(_)));
        let s401 = OnvifError::Transport(TransportError::HttpStatus { status: 401, body: String::new() });
        assert!(matches!(classify("x", s401), Failure::Auth(_)));
    }
}
