//! The uplink: delivers the outbox to head office over MQTT (rumqttc), at least once.
//!
//! Why it looks like this:
//!
//! * rumqttc keeps in-flight QoS 1 publishes only in memory and forgets them when the broker
//!   reports no session, so the outbox (sled) is the durable layer. An event leaves sled only
//!   on its PUBACK; after every (re)connect everything still in sled is sent again from the
//!   start (priority events first). Duplicates are possible, loss is not.
//! * PUBACKs carry packet ids, not seqs. rumqttc emits `Outgoing::Publish(pkid)` in the order
//!   publish requests were queued (a pkid collision delays the event but keeps the order), so
//!   one task queues every publish and keeps a FIFO of tags to pair each pkid with its seq.
//! * Each connection gets a fresh `EventLoop`: its requests and in-flight state never leak into
//!   the next connection, where they would break the pairing. The event loop is polled in its
//!   own task (its `poll` is not cancel-safe inside a `select!`); events come back on a channel.
//! * At most `window` events are in flight; the outbox is read in windows through a cursor, and
//!   the sender sleeps on the outbox's `Notify` when it has caught up (no polling of the outbox).
//! * rumqttc has no reconnect backoff: we sleep between attempts, exponentially with jitter.
//!   A broker that is down at start-up is just a long outage: appends keep going to sled.
//! * MQTT 5 by default ([`crate::mqtt`]): a PUBACK with a reason code ≥ 0x80 (0x87: not
//!   authorized by the broker's ACL) is a refusal, not a delivery. The event stays in the
//!   outbox; the session ends with a clean DISCONNECT and the uplink retries with the same
//!   backoff as after a lost link, so that once head office fixes the ACL every waiting event
//!   is delivered, in order. (MQTT 3.1.1 cannot tell: its PUBACK has no reason code.)
//! * The uplink makes no alerts: it reports what happens to it ([`GatewayEvent`]: connected,
//!   down past `link_down_alert_after` (GB 50394: 30 s), publish refused, accepted again) and
//!   the health engine turns those into the gateway's `uplink-down` / `uplink-denied` faults.
//! * Gateway status (`{p}/{b}/gateway`, retained): the MQTT Will says `offline`
//!   (`connection-lost`); every ConnAck publishes `online`; a clean shutdown drains the outbox
//!   (bounded), publishes `offline` (`shutdown`), waits for its PUBACK and disconnects.
//! * Retained state (device health, coverage) is not queued in sled: the latest value per topic
//!   is kept in memory and re-published after every reconnect.
//! * Secrets: the password is never logged (`UplinkSettings`' `Debug` redacts it).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use protocols::{AlertKind, GatewayState, GatewayStatus, Topics};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use crate::events::Retained;
use crate::events::{EventSink, GatewayEvent};
use crate::mqtt::{Link, LinkEvent, LinkOptions, MqttVersion, TryPublish};
use crate::outbox::{Cursor, EventRef, Outbox};

/// Everything the uplink needs, resolved from the config (secrets already read).
#[derive(Clone)]
pub struct UplinkSettings {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive: Duration,
    pub tls: Option<TlsFiles>,
    pub topics: Topics,
    pub version: MqttVersion,
    /// Where the uplink reports what happens to it (the engine makes the alerts).
    pub events: EventSink,
    /// Counters for metrics; share the `Arc` with whoever reports them.
    pub stats: Arc<UplinkStats>,
    pub tuning: UplinkTuning,
}

impl UplinkSettings {
    /// Settings with MQTT 5, no event sink and the default tuning.
    pub fn new(host: impl Into<String>, port: u16, client_id: impl Into<String>, topics: Topics) -> Self {
        UplinkSettings {
            host: host.into(),
            port,
            client_id: client_id.into(),
            username: None,
            password: None,
            keep_alive: Duration::from_secs(30),
            tls: None,
            topics,
            version: MqttVersion::default(),
            events: EventSink::default(),
            stats: Arc::new(UplinkStats::default()),
            tuning: UplinkTuning::default(),
        }
    }
}

impl std::fmt::Debug for UplinkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UplinkSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("keep_alive", &self.keep_alive)
            .field("tls", &self.tls)
            .field("topics", &self.topics)
            .field("version", &self.version)
            .field("tuning", &self.tuning)
            .finish()
    }
}

/// `[uplink.tls]` with its paths resolved: the gateway always names the CA (no system roots).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub ca_file: std::path::PathBuf,
    pub client_cert_file: Option<std::path::PathBuf>,
    pub client_key_file: Option<std::path::PathBuf>,
}

impl From<&TlsFiles> for mqtt_setup::TlsFiles {
    fn from(t: &TlsFiles) -> mqtt_setup::TlsFiles {
        mqtt_setup::TlsFiles {
            ca_file: Some(t.ca_file.clone()),
            client_cert_file: t.client_cert_file.clone(),
            client_key_file: t.client_key_file.clone(),
        }
    }
}

impl UplinkSettings {
    /// `host:port` for messages, an IPv6 address in brackets (`[fd00::5]:8883`).
    pub fn broker_authority(&self) -> String {
        mqtt_setup::BrokerUrl { host: self.host.clone(), port: self.port, tls: false }.authority()
    }

    /// The connection as `mqtt_setup` builds it: TLS files read and checked, the session kept
    /// under a stable client id (a clean one without). Fails on a missing or unreadable file.
    pub fn client_options(&self) -> Result<mqtt_setup::ClientOptions, mqtt_setup::SetupError> {
        let tls = match &self.tls {
            Some(files) => mqtt_setup::TlsFiles::from(files).load()?,
            None => None,
        };
        let broker = mqtt_setup::BrokerUrl { host: self.host.clone(), port: self.port, tls: tls.is_some() };
        let mut o = mqtt_setup::ClientOptions::new(broker, self.client_id.clone());
        o.username = self.username.clone();
        o.password = self.password.clone();
        o.keep_alive = self.keep_alive;
        o.clean_session = self.client_id.is_empty();
        o.tls = tls;
        o.max_packet_bytes = self.tuning.max_packet_bytes;
        o.connect_timeout = Duration::from_secs(self.tuning.connect_timeout_secs);
        Ok(o)
    }
}

/// Knobs with sensible defaults; tests shorten them.
#[derive(Clone, Debug)]
pub struct UplinkTuning {
    /// Most events in flight (published, not yet acknowledged).
    pub window: usize,
    /// First reconnect delay; doubles up to `backoff_max`, with jitter.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long the link may be down before [`GatewayEvent::LinkDown`] (the `uplink-down` fault).
    pub link_down_alert_after: Duration,
    /// How long a clean shutdown waits for pending events to be acknowledged.
    pub drain_timeout: Duration,
    /// TCP + TLS + CONNECT deadline, whole seconds (rumqttc's unit).
    pub connect_timeout_secs: u64,
    /// Largest alert (MQTT packet) we send.
    pub max_packet_bytes: usize,
}

impl Default for UplinkTuning {
    fn default() -> Self {
        UplinkTuning {
            window: 256,
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            link_down_alert_after: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(5),
            connect_timeout_secs: 5,
            max_packet_bytes: 256 * 1024,
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Default)]
pub struct UplinkStats {
    /// Connected to the broker right now (ConnAck received, no error since).
    pub connected: AtomicBool,
    /// Successful connections after the first.
    pub reconnects: AtomicU64,
    /// Alerts handed to the network (re-sends included).
    pub published: AtomicU64,
    /// Alerts acknowledged by the broker (and removed from the outbox).
    pub acked: AtomicU64,
    /// Failed connection attempts and lost connections.
    pub connection_errors: AtomicU64,
    /// Publishes the broker refused (MQTT 5 PUBACK reason code ≥ 0x80).
    pub refused: AtomicU64,
}

impl UplinkStats {
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

/// Runs until `shutdown`; then drains the outbox (bounded wait), publishes the retained
/// `offline` status and disconnects.
pub async fn run(
    settings: UplinkSettings,
    outbox: Arc<Outbox>,
    retained: mpsc::Receiver<Retained>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut up = Uplink::new(settings, outbox, retained, shutdown)?;
    up.run().await
}

/// What a queued publish is, to pair its pkid with what to do on its PUBACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Event(EventRef, AlertKind),
    Online,
    Offline,
    Retained,
}

struct Out {
    tag: Tag,
    topic: String,
    payload: Vec<u8>,
    retain: bool,
}

enum SessionEnd {
    Shutdown,
    Lost(String),
    /// The broker refused a publish; the session was ended cleanly to retry later.
    Refused,
}

struct Uplink {
    s: UplinkSettings,
    outbox: Arc<Outbox>,
    retained_rx: Option<mpsc::Receiver<Retained>>,
    retained: BTreeMap<String, Vec<u8>>,
    shutdown: CancellationToken,
    /// Built once: the TLS files are read at start, not at every reconnect.
    client: mqtt_setup::ClientOptions,
    // Link-down bookkeeping.
    down_since: Instant,
    down_reported: bool,
    ever_connected: bool,
    /// The broker refused a publish and has accepted none since: not a link problem (no
    /// `uplink-down`), and the backoff keeps growing across reconnects until one is accepted.
    refusing: bool,
    backoff: mqtt_setup::Backoff,
}

impl Uplink {
    fn new(
        s: UplinkSettings,
        outbox: Arc<Outbox>,
        retained_rx: mpsc::Receiver<Retained>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Uplink> {
        let client = s.client_options()?;
        let backoff = mqtt_setup::Backoff::new(s.tuning.backoff_min, s.tuning.backoff_max);
        Ok(Uplink {
            s,
            outbox,
            retained_rx: Some(retained_rx),
            retained: BTreeMap::new(),
            shutdown,
            client,
            down_since: Instant::now(),
            down_reported: false,
            ever_connected: false,
            refusing: false,
            backoff,
        })
    }

    async fn run(&mut self) -> anyhow::Result<()> {
        loop {
            if self.shutdown.is_cancelled() {
                tracing::info!(
                    "{}",
                    i18n::Lang::current().t("uplink stopped (not connected)", "上行链路已停止（未连接）")
                );
                return Ok(());
            }
            let link = Link::connect(&self.link_options());
            match self.session(link).await {
                SessionEnd::Shutdown => return Ok(()),
                SessionEnd::Lost(why) => {
                    // A link problem now, whatever the broker said before: `uplink-down` may be due.
                    self.refusing = false;
                    self.s.stats.connection_errors.fetch_add(1, Ordering::Relaxed);
                    if self.s.stats.connected.swap(false, Ordering::Relaxed) {
                        self.down_since = Instant::now();
                        tracing::warn!(host = %self.s.host, port = self.s.port, error = %why, "{}", i18n::Lang::current().t("uplink disconnected", "上行链路断开"));
                    } else if let Some((what, fix)) = crate::mqtt::explain_tls(&why, &self.s.host) {
                        // A certificate problem does not go away by retrying: say it each time.
                        let lang = i18n::Lang::current();
                        tracing::error!(
                            host = %self.s.host,
                            port = self.s.port,
                            error = %why,
                            fix = %fix.get(lang),
                            "{}: {}",
                            lang.t("uplink TLS", "上行 TLS"),
                            what.get(lang)
                        );
                    } else {
                        tracing::debug!(host = %self.s.host, port = self.s.port, error = %why, "uplink connect failed");
                    }
                }
                SessionEnd::Refused => {
                    self.s.stats.connected.store(false, Ordering::Relaxed);
                    self.down_since = Instant::now();
                }
            }
            let delay = self.backoff.next_delay();
            if !self.idle(delay).await {
                tracing::info!(
                    "{}",
                    i18n::Lang::current().t("uplink stopped (not connected)", "上行链路已停止（未连接）")
                );
                return Ok(());
            }
        }
    }

    /// Waits `d` while disconnected: keeps the latest retained state and reports the link down
    /// when due. False if shutdown was requested.
    async fn idle(&mut self, d: Duration) -> bool {
        let until = tokio::time::Instant::now() + d;
        loop {
            self.check_link_down();
            let tick = tokio::time::sleep_until(until.min(tokio::time::Instant::now() + Duration::from_millis(500)));
            tokio::select! {
                _ = self.shutdown.cancelled() => return false,
                r = recv_opt(&mut self.retained_rx) => { self.keep_retained(r); }
                _ = tick => {
                    if tokio::time::Instant::now() >= until {
                        return true;
                    }
                }
            }
        }
    }

    fn keep_retained(&mut self, r: Option<Retained>) -> Option<(String, Vec<u8>)> {
        match r {
            Some(m) => {
                self.retained.insert(m.topic.clone(), m.payload.clone());
                Some((m.topic, m.payload))
            }
            None => {
                self.retained_rx = None;
                None
            }
        }
    }

    fn check_link_down(&mut self) {
        if self.down_reported
            || self.refusing
            || self.s.stats.is_connected()
            || self.down_since.elapsed() < self.s.tuning.link_down_alert_after
        {
            return;
        }
        self.down_reported = true;
        let down_for = self.down_since.elapsed();
        tracing::warn!(down_s = down_for.as_secs(), host = %self.s.host, port = self.s.port, "{}", i18n::Lang::current().t("uplink down; reporting it", "上行链路中断，正在报告"));
        self.s.events.emit(GatewayEvent::LinkDown { down_for, broker: self.s.broker_authority() });
    }

    fn status_payload(&self, state: GatewayState, reason: Option<&str>) -> Vec<u8> {
        let st = GatewayStatus {
            schema: protocols::status::GATEWAY_STATUS_SCHEMA.to_string(),
            branch: self.s.topics.branch().clone(),
            status: state,
            reason: reason.map(str::to_string),
            at: if state == GatewayState::Online || reason == Some("shutdown") {
                Some(chrono::Utc::now())
            } else {
                None
            },
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        serde_json::to_vec(&st).unwrap_or_default()
    }

    fn link_options(&self) -> LinkOptions {
        let t = &self.s.tuning;
        LinkOptions {
            version: self.s.version,
            client: self.client.clone(),
            will: Some((self.s.topics.gateway(), self.status_payload(GatewayState::Offline, Some("connection-lost")))),
            capacity: t.window + 64,
            inflight: u16::try_from(t.window + 64).unwrap_or(u16::MAX),
        }
    }

    /// One connection, from CONNECT to its loss or to a clean shutdown.
    async fn session(&mut self, mut link: Link) -> SessionEnd {
        // Phase 1: wait for the ConnAck (or the error).
        loop {
            tokio::select! {
                ev = link.events.recv() => match ev {
                    Some(Ok(LinkEvent::ConnAck(Ok(session_present)))) => {
                        self.on_connected(session_present);
                        break;
                    }
                    Some(Ok(LinkEvent::ConnAck(Err(why)))) => return SessionEnd::Lost(format!("connection refused: {why}")),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return SessionEnd::Lost(e),
                    None => return SessionEnd::Lost("event loop ended".into()),
                },
                _ = self.shutdown.cancelled() => return SessionEnd::Shutdown,
                r = recv_opt(&mut self.retained_rx) => { self.keep_retained(r); }
                _ = tokio::time::sleep(Duration::from_millis(500)) => self.check_link_down(),
            }
        }

        // Phase 2: connected.
        let mut s = Session::new(self.s.tuning.window);
        s.queue(Out {
            tag: Tag::Online,
            topic: self.s.topics.gateway(),
            payload: self.status_payload(GatewayState::Online, None),
            retain: true,
        });
        for (topic, payload) in &self.retained {
            s.queue(Out { tag: Tag::Retained, topic: topic.clone(), payload: payload.clone(), retain: true });
        }
        let mut draining: Option<tokio::time::Instant> = None;
        loop {
            if let Err(e) = s.fill(&self.outbox, &self.s.topics) {
                tracing::error!(error = %e, "{}", i18n::Lang::current().t("cannot read the outbox", "无法读取待发队列"));
            }
            if let Err(why) = s.push(&link) {
                return SessionEnd::Lost(why);
            }
            if let Some(refused) = s.refused.take() {
                return self.end_refused(link, refused).await;
            }
            if let Some(deadline) = draining
                && (s.drained() || tokio::time::Instant::now() >= deadline)
            {
                return self.finish(link, s).await;
            }
            let drain_sleep = async {
                match draining {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                ev = link.events.recv() => match ev {
                    Some(Ok(ev)) => {
                        if s.on_event(ev, &self.outbox, &self.s.stats, &self.s.topics) {
                            self.on_accepted();
                        }
                    }
                    Some(Err(e)) => return SessionEnd::Lost(e),
                    None => return SessionEnd::Lost("event loop ended".into()),
                },
                _ = self.outbox.wait_new(), if s.has_room() => s.maybe_more = true,
                r = recv_opt(&mut self.retained_rx), if draining.is_none() => {
                    if let Some((topic, payload)) = self.keep_retained(r) {
                        s.queue(Out { tag: Tag::Retained, topic, payload, retain: true });
                    }
                }
                _ = self.shutdown.cancelled(), if draining.is_none() => {
                    tracing::info!(pending = self.outbox.depth(), "{}", i18n::Lang::current().t("uplink shutting down; draining the outbox", "上行链路正在停止，先发完待发队列"));
                    draining = Some(tokio::time::Instant::now() + self.s.tuning.drain_timeout);
                    s.maybe_more = true;
                }
                _ = drain_sleep => {}
            }
        }
    }

    fn on_connected(&mut self, session_present: bool) {
        let stats = &self.s.stats;
        stats.connected.store(true, Ordering::Relaxed);
        if self.ever_connected {
            stats.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        let outage = self.ever_connected.then(|| self.down_since.elapsed());
        self.ever_connected = true;
        if !self.refusing {
            self.backoff.reset();
        }
        self.down_reported = false;
        let waiting = self.outbox.depth();
        tracing::info!(
            host = %self.s.host,
            port = self.s.port,
            mqtt = self.s.version.as_str(),
            tls = self.client.tls.is_some(),
            session_present,
            pending = waiting,
            outage_ms = outage.map(|o| o.as_millis() as u64),
            "{}", i18n::Lang::current().t("uplink connected", "上行链路已连接")
        );
        self.s.events.emit(GatewayEvent::Connected { outage, waiting });
    }

    /// The broker accepted a publish (first in this connection, or first since a refusal).
    fn on_accepted(&mut self) {
        if self.refusing {
            self.refusing = false;
            self.backoff.reset();
            tracing::info!(host = %self.s.host, "{}", i18n::Lang::current().t("the broker accepts the gateway's publishes again", "消息服务器重新接受网关发布的消息"));
        }
        self.s.events.emit(GatewayEvent::PublishAccepted);
    }

    /// A publish was refused: report it, leave the event in the outbox and end the session
    /// with a DISCONNECT (so the Will does not fire), to retry after the backoff.
    async fn end_refused(&mut self, link: Link, (topic, reason): (String, String)) -> SessionEnd {
        tracing::error!(
            topic = %topic,
            reason = %reason,
            username = self.s.username.as_deref().unwrap_or(""),
            pending = self.outbox.depth(),
            retry_in_ms = self.backoff.ceiling().as_millis() as u64,
            "{}", i18n::Lang::current().t("the broker refused a publish; the event stays in the outbox and is retried (check the broker's user and ACL for this branch)", "消息服务器拒收了一条消息；该事件留在待发队列中并会重试（请检查消息服务器上本网点的用户和 ACL）")
        );
        self.refusing = true;
        self.s.events.emit(GatewayEvent::PublishRefused { topic, reason });
        disconnect(link).await;
        SessionEnd::Refused
    }

    /// Clean end of a connected session: `offline` (QoS 1, retained), wait for its PUBACK,
    /// DISCONNECT.
    async fn finish(&mut self, mut link: Link, mut s: Session) -> SessionEnd {
        tracing::info!(
            unacked = s.in_flight_events,
            pending = self.outbox.depth(),
            "{}",
            i18n::Lang::current().t("uplink drained; publishing offline", "待发队列已发完，正在发布离线状态")
        );
        s.queue(Out {
            tag: Tag::Offline,
            topic: self.s.topics.gateway(),
            payload: self.status_payload(GatewayState::Offline, Some("shutdown")),
            retain: true,
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while !s.offline_acked {
            if s.push(&link).is_err() {
                break;
            }
            match tokio::time::timeout_at(deadline, link.events.recv()).await {
                Ok(Some(Ok(ev))) => {
                    s.on_event(ev, &self.outbox, &self.s.stats, &self.s.topics);
                }
                _ => break,
            }
        }
        if !s.offline_acked {
            tracing::warn!(
                "{}",
                i18n::Lang::current()
                    .t("no PUBACK for the offline status before the deadline", "时限内未收到离线状态的 PUBACK")
            );
        }
        disconnect(link).await;
        self.s.stats.connected.store(false, Ordering::Relaxed);
        tracing::info!(host = %self.s.host, port = self.s.port, "{}", i18n::Lang::current().t("uplink disconnected (shutdown)", "上行链路已断开（停止）"));
        SessionEnd::Shutdown
    }
}

/// Sends DISCONNECT and waits (up to 1 s) until it is out.
async fn disconnect(mut link: Link) {
    if link.try_disconnect() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(Some(Ok(ev))) = tokio::time::timeout_at(deadline, link.events.recv()).await {
            if ev == LinkEvent::DisconnectSent {
                break;
            }
        }
    }
}

/// Per-connection delivery state.
struct Session {
    window: usize,
    cursor: Cursor,
    /// Publishes not yet accepted by the client channel.
    outq: VecDeque<Out>,
    /// Tags of publishes queued to rumqttc, waiting for their `Published(pkid)`.
    tags: VecDeque<Tag>,
    /// pkid → tag, waiting for the PUBACK.
    inflight: HashMap<u16, Tag>,
    /// Events read from the outbox and not yet acknowledged.
    in_flight_events: usize,
    /// The outbox may hold events beyond the cursor.
    maybe_more: bool,
    offline_acked: bool,
    /// The first refused publish of this session (topic, reason).
    refused: Option<(String, String)>,
    /// A publish was accepted in this session.
    accepted: bool,
}

impl Session {
    fn new(window: usize) -> Session {
        Session {
            window: window.max(1),
            cursor: Cursor::START,
            outq: VecDeque::new(),
            tags: VecDeque::new(),
            inflight: HashMap::new(),
            in_flight_events: 0,
            maybe_more: true,
            offline_acked: false,
            refused: None,
            accepted: false,
        }
    }

    fn queue(&mut self, o: Out) {
        self.outq.push_back(o);
    }

    fn has_room(&self) -> bool {
        self.in_flight_events < self.window && self.refused.is_none()
    }

    fn drained(&self) -> bool {
        self.in_flight_events == 0 && !self.maybe_more && self.outq.is_empty()
    }

    /// Reads the next window of events from the outbox.
    fn fill(&mut self, outbox: &Outbox, topics: &Topics) -> Result<(), crate::outbox::OutboxError> {
        if !self.maybe_more || !self.has_room() {
            return Ok(());
        }
        let want = self.window - self.in_flight_events;
        let got = outbox.pending_from(&mut self.cursor, want)?;
        if got.len() < want {
            self.maybe_more = false;
        }
        for p in got {
            self.in_flight_events += 1;
            self.outq.push_back(Out {
                tag: Tag::Event(p.id, p.kind),
                topic: topics.alert(p.kind),
                payload: p.payload,
                retain: false,
            });
        }
        Ok(())
    }

    /// Hands queued publishes to rumqttc until its channel is full.
    fn push(&mut self, link: &Link) -> Result<(), String> {
        while let Some(o) = self.outq.pop_front() {
            let Out { tag, topic, payload, retain } = o;
            match link.try_publish(topic.clone(), retain, payload) {
                TryPublish::Queued => self.tags.push_back(tag),
                TryPublish::Full(payload) => {
                    self.outq.push_front(Out { tag, topic, payload, retain });
                    return Ok(());
                }
                TryPublish::Closed(e) => return Err(format!("cannot queue a publish: {e}")),
            }
        }
        Ok(())
    }

    /// Pairs and applies one event of the link; true when it is the session's first accepted
    /// publish.
    fn on_event(&mut self, ev: LinkEvent, outbox: &Outbox, stats: &UplinkStats, topics: &Topics) -> bool {
        match ev {
            LinkEvent::Published(pkid) => {
                let Some(tag) = self.tags.pop_front() else {
                    tracing::error!(pkid, "publish without a tag; pairing lost");
                    return false;
                };
                if matches!(tag, Tag::Event(..)) {
                    stats.published.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(old) = self.inflight.insert(pkid, tag) {
                    tracing::error!(pkid, ?old, "pkid reused while in flight");
                }
            }
            LinkEvent::PubAck { pkid, refused } => {
                let Some(tag) = self.inflight.remove(&pkid) else {
                    tracing::warn!(pkid, "PUBACK for an unknown packet id");
                    return false;
                };
                if let Tag::Event(..) = tag {
                    self.in_flight_events = self.in_flight_events.saturating_sub(1);
                }
                if let Some(reason) = refused {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    if tag == Tag::Offline {
                        self.offline_acked = true;
                    }
                    if self.refused.is_none() {
                        let topic = match tag {
                            Tag::Event(_, kind) => topics.alert(kind),
                            Tag::Online | Tag::Offline => topics.gateway(),
                            Tag::Retained => format!("{} (retained state)", topics.subtree()),
                        };
                        self.refused = Some((topic, reason));
                    }
                    return false;
                }
                let first = !std::mem::replace(&mut self.accepted, true);
                match tag {
                    Tag::Event(id, _) => {
                        stats.acked.fetch_add(1, Ordering::Relaxed);
                        if let Err(e) = outbox.ack(id) {
                            tracing::error!(seq = id.seq.0, error = %e, "cannot remove an acknowledged event");
                        }
                    }
                    Tag::Offline => self.offline_acked = true,
                    Tag::Online | Tag::Retained => {}
                }
                return first;
            }
            LinkEvent::ConnAck(_) | LinkEvent::Other | LinkEvent::DisconnectSent => {}
        }
        false
    }
}

async fn recv_opt(rx: &mut Option<mpsc::Receiver<Retained>>) -> Option<Retained> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_redacted() {
        let topics = Topics::new("branches", "b01".parse().expect("branch")).expect("topics");
        let mut s = UplinkSettings::new("h", 1883, "c", topics);
        s.password = Some("hunter2".into());
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hunter2") && dbg.contains("redacted"), "{dbg}");
    }
}
