//! The MQTT side of head office: the long-running listener that stores history, and the two
//! short-lived readers (a live snapshot of the retained state, a live feed of alerts).
//!
//! The listener acknowledges a message only after it is in sled and flushed (manual acks), so a
//! crash between receipt and storage makes the broker re-send it instead of losing it; dedupe on
//! (branch, id) makes the re-send harmless. Acks go out in groups: whenever no more messages
//! are waiting, one flush covers everything received so far.
//!
//! rumqttc's `EventLoop::poll` is driven by its own task (as in the gateway's uplink), which
//! sleeps with backoff after a failure and forwards what happens over a channel, so storing and
//! flushing never stall the connection's keep-alive.

use std::collections::HashSet;
use std::time::Duration;

use protocols::time::Timestamp;
use protocols::{Alert, BranchId};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, Outgoing, Packet, Publish, QoS, SubscribeReasonCode};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::gaps::SeqTracker;
use crate::ingest::{self, Message};
use crate::mqtt::{Backoff, BrokerSettings, MqttError, Topics, filters};
use crate::records::{Latest, Snapshot};
use crate::store::{Counter, Outcome, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(transparent)]
    Mqtt(#[from] MqttError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not connect to the broker at {host}:{port} within {waited:?}: {last_error}")]
    NeverConnected { host: String, port: u16, waited: Duration, last_error: String },
    #[error("the broker refused the subscription to {0:?} (ACL, or no shared-subscription support)")]
    SubscriptionRefused(Vec<String>),
}

/// The listener's settings.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    pub broker: BrokerSettings,
    pub prefix: String,
    pub share_group: Option<String>,
}

/// What one run of the listener did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ListenStats {
    pub received: u64,
    pub new_alerts: u64,
    pub duplicates: u64,
    pub malformed: u64,
    pub state_changes: u64,
}

enum LinkEvent {
    Connected { session_present: bool },
    Refused(ConnectReturnCode),
    SubAck(Vec<SubscribeReasonCode>),
    Publish(Publish),
    Disconnected,
    Down(String),
}

/// One client and the task that polls its event loop.
struct Link {
    client: AsyncClient,
    events: mpsc::Receiver<LinkEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl Link {
    fn start(broker: &BrokerSettings, manual_acks: bool) -> Result<Link, MqttError> {
        let mut opts = broker.options()?;
        opts.set_manual_acks(manual_acks);
        let (client, mut eventloop) = AsyncClient::new(opts, 1024);
        let (tx, events) = mpsc::channel(1024);
        let task = tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
            loop {
                let ev = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) if ack.code == ConnectReturnCode::Success => {
                        backoff.reset();
                        LinkEvent::Connected { session_present: ack.session_present }
                    }
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => LinkEvent::Refused(ack.code),
                    Ok(Event::Incoming(Packet::SubAck(s))) => LinkEvent::SubAck(s.return_codes),
                    Ok(Event::Incoming(Packet::Publish(p))) => LinkEvent::Publish(p),
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                        let _ = tx.send(LinkEvent::Disconnected).await;
                        return;
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        if tx.send(LinkEvent::Down(e.to_string())).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(backoff.next_delay()).await;
                        continue;
                    }
                };
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
        });
        Ok(Link { client, events, task })
    }

    async fn subscribe(&self, filters: &[String]) {
        let subs = filters.iter().map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
        if let Err(e) = self.client.subscribe_many(subs).await {
            tracing::warn!(error = %e, "cannot queue the subscription");
        }
    }

    /// Sends DISCONNECT and waits briefly for it to leave.
    async fn close(mut self) {
        let _ = self.client.disconnect().await;
        let wait = async {
            while let Some(ev) = self.events.recv().await {
                if matches!(ev, LinkEvent::Disconnected | LinkEvent::Down(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), wait).await;
        self.task.abort();
    }
}

fn refused(codes: &[SubscribeReasonCode], filters: &[String]) -> Option<Vec<String>> {
    let bad: Vec<String> = codes
        .iter()
        .zip(filters)
        .filter(|(c, _)| matches!(c, SubscribeReasonCode::Failure))
        .map(|(_, f)| f.clone())
        .collect();
    (!bad.is_empty()).then_some(bad)
}

/// Rebuilds the `seq` bookkeeping from the stored alerts, in arrival order.
pub fn replay_seqs<'a>(alerts: impl IntoIterator<Item = &'a crate::records::AlertRecord>) -> SeqTracker {
    let mut v: Vec<&crate::records::AlertRecord> = alerts.into_iter().collect();
    v.sort_by(|a, b| (a.received_at, &a.alert.branch, a.alert.seq).cmp(&(b.received_at, &b.alert.branch, b.alert.seq)));
    let mut t = SeqTracker::new();
    for r in v {
        t.observe(&r.alert.branch, r.alert.seq.0, r.received_at);
    }
    t
}

/// Runs until `shutdown`: subscribes to every branch's data and stores it.
pub async fn listen(
    cfg: &ListenConfig,
    store: &Store,
    shutdown: CancellationToken,
) -> Result<ListenStats, ListenError> {
    let filters = filters(&cfg.prefix, cfg.share_group.as_deref(), Topics { alerts: true, state: true })?;
    let shared = cfg.share_group.is_some();
    let mut tracker = replay_seqs(&store.alerts()?);
    let mut link = Link::start(&cfg.broker, true)?;
    let mut stats = ListenStats::default();
    let mut pending: Vec<Publish> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_connected = false;
    let mut last_error: Option<String> = None;
    tracing::info!(broker = %format!("{}:{}", cfg.broker.host, cfg.broker.port), client_id = %cfg.broker.client_id,
        store = %store.path().display(), share_group = cfg.share_group.as_deref().unwrap_or("-"), "listening");

    let result = loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break Ok(()),
            ev = link.events.recv() => match ev {
                None => break Ok(()),
                Some(LinkEvent::Connected { session_present }) => {
                    was_connected = true;
                    last_error = None;
                    tracing::info!(session_present, "connected to the broker");
                    link.subscribe(&filters).await;
                }
                Some(LinkEvent::Refused(code)) => tracing::error!(?code, "the broker refused the connection; retrying"),
                Some(LinkEvent::SubAck(codes)) => match refused(&codes, &filters) {
                    Some(bad) => break Err(ListenError::SubscriptionRefused(bad)),
                    None => tracing::info!(filters = ?filters, "subscribed"),
                },
                Some(LinkEvent::Publish(p)) => {
                    if let Err(e) = handle(&cfg.prefix, &p, store, &mut tracker, &mut stats, shared) {
                        break Err(e.into());
                    }
                    pending.push(p);
                    if link.events.is_empty()
                        && let Err(e) = commit(store, &link.client, &mut pending).await
                    {
                        break Err(e.into());
                    }
                }
                Some(LinkEvent::Disconnected) => {}
                Some(LinkEvent::Down(e)) => {
                    if std::mem::take(&mut was_connected) {
                        tracing::warn!(error = %e, "lost the broker; reconnecting with backoff");
                    } else if last_error.as_deref() != Some(e.as_str()) {
                        // Say it once per distinct reason (wrong password, refused, no route),
                        // not on every retry.
                        tracing::warn!(error = %e, "cannot connect to the broker; retrying with backoff");
                    } else {
                        tracing::debug!(error = %e, "cannot connect to the broker");
                    }
                    last_error = Some(e);
                }
            },
            _ = tick.tick(), if !pending.is_empty() => {
                if let Err(e) = commit(store, &link.client, &mut pending).await {
                    break Err(e.into());
                }
            }
        }
    };
    if result.is_ok() {
        commit(store, &link.client, &mut pending).await?;
    }
    link.close().await;
    store.flush().await?;
    result.map(|()| stats)
}

/// Makes everything received durable, then acknowledges it.
async fn commit(store: &Store, client: &AsyncClient, pending: &mut Vec<Publish>) -> Result<(), StoreError> {
    if pending.is_empty() {
        return Ok(());
    }
    store.flush().await?;
    for p in pending.drain(..) {
        if let Err(e) = client.ack(&p).await {
            // The connection is gone; the broker re-sends after the reconnect.
            tracing::debug!(error = %e, "cannot queue an ack");
        }
    }
    Ok(())
}

fn handle(
    prefix: &str,
    p: &Publish,
    store: &Store,
    tracker: &mut SeqTracker,
    stats: &mut ListenStats,
    shared: bool,
) -> Result<(), StoreError> {
    stats.received += 1;
    let received_at = protocols::time::now();
    let msg = match ingest::decode(prefix, &p.topic, &p.payload) {
        Ok(m) => m,
        Err(e) => {
            stats.malformed += 1;
            let total = store.bump(Counter::Malformed)?;
            tracing::warn!(error = %e, malformed_total = total, "malformed message ignored");
            return Ok(());
        }
    };
    let outcome = store.ingest(&msg, received_at)?;
    match (&msg, outcome) {
        (Message::Alert(a), Outcome::NewAlert) => {
            stats.new_alerts += 1;
            tracing::debug!(branch = %a.branch, seq = a.seq.0, id = %a.id, kind = a.kind().as_str(), "alert stored");
            note_seq(tracker, a, received_at, shared);
        }
        (Message::Alert(a), _) => {
            stats.duplicates += 1;
            tracing::debug!(branch = %a.branch, id = %a.id, "duplicate alert ignored");
        }
        (Message::Gateway(g), Outcome::Changed) => {
            stats.state_changes += 1;
            let status = if g.status == protocols::GatewayState::Online { "online" } else { "offline" };
            tracing::info!(branch = %g.branch, status, reason = g.reason.as_deref().unwrap_or("-"), "gateway status changed");
        }
        (Message::Device(d), Outcome::Changed) => {
            stats.state_changes += 1;
            tracing::debug!(branch = %d.branch, device = %d.device.id, state = %d.state, "device state changed");
        }
        (Message::Coverage(c), Outcome::Changed) => {
            stats.state_changes += 1;
            let uncovered: Vec<&str> = c.uncovered().map(|z| z.id.as_str()).collect();
            tracing::info!(branch = %c.branch, uncovered = ?uncovered, "coverage changed");
        }
        _ => {}
    }
    Ok(())
}

fn note_seq(tracker: &mut SeqTracker, a: &Alert, at: Timestamp, shared: bool) {
    let o = tracker.observe(&a.branch, a.seq.0, at);
    for g in &o.opened {
        // One instance of a shared subscription sees only part of each branch's stream, so its
        // own holes mean nothing; `hq gaps` over all the group's stores tells.
        if shared {
            tracing::debug!(branch = %g.branch, from = g.from, to = g.to, "seq hole in this instance's share");
        } else {
            tracing::warn!(branch = %g.branch, from = g.from, to = g.to, "seq gap: alerts missing");
        }
    }
    if o.filled && !shared {
        tracing::info!(branch = %a.branch, seq = a.seq.0, "late alert filled a seq gap");
    }
    if o.restarted {
        tracing::warn!(branch = %a.branch, seq = a.seq.0, "seq reused by a new alert: the gateway's data was reset; new sequence");
    }
}

/// Subscribes to the retained state for `dur` (retained values arrive at once) and returns it.
/// Returns the snapshot and the number of malformed messages.
pub async fn live_snapshot(
    broker: &BrokerSettings,
    prefix: &str,
    dur: Duration,
) -> Result<(Snapshot, u64), ListenError> {
    let filters = filters(prefix, None, Topics { alerts: false, state: true })?;
    let mut link = Link::start(broker, false)?;
    let mut snap = Snapshot::default();
    let mut malformed = 0u64;
    let mut last_error = String::from("no answer");
    let connect_deadline = tokio::time::Instant::now() + dur.max(Duration::from_secs(5));
    let mut until: Option<tokio::time::Instant> = None;
    loop {
        let deadline = until.unwrap_or(connect_deadline);
        let ev = match tokio::time::timeout_at(deadline, link.events.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(_) => break,
        };
        match ev {
            LinkEvent::Connected { .. } => {
                link.subscribe(&filters).await;
                until.get_or_insert(tokio::time::Instant::now() + dur);
            }
            LinkEvent::Refused(code) => last_error = format!("connection refused: {code:?}"),
            LinkEvent::SubAck(codes) => {
                if let Some(bad) = refused(&codes, &filters) {
                    link.close().await;
                    return Err(ListenError::SubscriptionRefused(bad));
                }
            }
            LinkEvent::Publish(p) => {
                let received_at = protocols::time::now();
                match ingest::decode(prefix, &p.topic, &p.payload) {
                    Ok(m) => add_to_snapshot(&mut snap, m, received_at),
                    Err(e) => {
                        malformed += 1;
                        tracing::warn!(error = %e, "malformed message ignored");
                    }
                }
            }
            LinkEvent::Down(e) => last_error = e,
            LinkEvent::Disconnected => {}
        }
    }
    let connected = until.is_some();
    link.close().await;
    if !connected {
        return Err(ListenError::NeverConnected {
            host: broker.host.clone(),
            port: broker.port,
            waited: dur.max(Duration::from_secs(5)),
            last_error,
        });
    }
    Ok((snap, malformed))
}

fn add_to_snapshot(snap: &mut Snapshot, m: Message, received_at: Timestamp) {
    match m {
        Message::Gateway(g) => {
            let since = g.at;
            snap.gateways.insert(g.branch.clone(), Latest { received_at, value: g, since });
        }
        Message::Device(d) => {
            let since = Some(d.since);
            snap.devices.insert((d.branch.clone(), d.device.id.clone()), Latest { received_at, value: d, since });
        }
        Message::Coverage(c) => {
            snap.coverage.insert(c.branch.clone(), Latest { received_at, value: c, since: None });
        }
        Message::DeviceRemoved { branch, device } => {
            snap.devices.remove(&(branch, device));
        }
        Message::CoverageRemoved { branch } => {
            snap.coverage.remove(&branch);
        }
        Message::GatewayRemoved { branch } => {
            snap.gateways.remove(&branch);
        }
        Message::Alert(_) => {}
    }
}

/// Filters for `hq alerts`.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub branch: Option<BranchId>,
    pub kind: Option<protocols::AlertKind>,
    pub severity_min: Option<protocols::Severity>,
}

impl AlertFilter {
    pub fn matches(&self, a: &Alert) -> bool {
        self.branch.as_ref().is_none_or(|b| *b == a.branch)
            && self.kind.is_none_or(|k| k == a.kind())
            && self.severity_min.is_none_or(|s| a.severity >= s)
    }
}

/// Follows alerts live until `shutdown`, calling `on_alert` once per (branch, id).
pub async fn follow_alerts(
    broker: &BrokerSettings,
    prefix: &str,
    filter: &AlertFilter,
    shutdown: CancellationToken,
    mut on_alert: impl FnMut(&Alert),
) -> Result<(), ListenError> {
    let filters = filters(prefix, None, Topics { alerts: true, state: false })?;
    let mut link = Link::start(broker, false)?;
    let mut seen: HashSet<(BranchId, String)> = HashSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            ev = link.events.recv() => match ev {
                None => break,
                Some(LinkEvent::Connected { .. }) => {
                    tracing::info!("connected to the broker");
                    link.subscribe(&filters).await;
                }
                Some(LinkEvent::Refused(code)) => tracing::error!(?code, "the broker refused the connection; retrying"),
                Some(LinkEvent::SubAck(codes)) => {
                    if let Some(bad) = refused(&codes, &filters) {
                        link.close().await;
                        return Err(ListenError::SubscriptionRefused(bad));
                    }
                    tracing::info!(filters = ?filters, "subscribed; following alerts");
                }
                Some(LinkEvent::Publish(p)) => match ingest::decode(prefix, &p.topic, &p.payload) {
                    Ok(Message::Alert(a)) => {
                        if seen.insert((a.branch.clone(), a.id.clone())) && filter.matches(&a) {
                            on_alert(&a);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "malformed message ignored"),
                },
                Some(LinkEvent::Down(e)) => tracing::warn!(error = %e, "cannot reach the broker; retrying"),
                Some(LinkEvent::Disconnected) => {}
            }
        }
    }
    link.close().await;
    Ok(())
}
