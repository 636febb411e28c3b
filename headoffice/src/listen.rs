//! The MQTT side of head office: the long-running listener that stores history, and the two
//! short-lived readers (a live snapshot of the retained state, a live feed of alerts).
//!
//! The listener acknowledges a message only after the database transaction that stores it has
//! committed (manual acks), so a crash between receipt and storage makes the broker re-send it
//! instead of losing it; idempotent inserts make the re-send harmless. Acks go out in groups:
//! whenever no more messages are waiting (or a batch is full), one transaction stores everything
//! received so far. The listener keeps no state of its own: any number of them may share one
//! database (and one `$share` group), and any of them may be killed at any time. While the
//! database is away, the listener holds its batch unacknowledged and retries with backoff.
//!
//! rumqttc's `EventLoop::poll` is driven by its own task (as in the gateway's uplink), which
//! sleeps with backoff after a failure and forwards what happens over a channel, so storing and
//! flushing never stall the connection's keep-alive.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use protocols::time::Timestamp;
use protocols::{Alert, BranchId};
use rumqttc::{AsyncClient, ConnectReturnCode, Event, Outgoing, Packet, Publish, QoS, SubscribeReasonCode};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::db::{DbError, Incoming, Outcome, SeqNote, Store};
use crate::ingest::{self, Message};
use crate::mqtt::{Backoff, BrokerSettings, MqttError, Topics, filters};
use crate::records::{Latest, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(transparent)]
    Mqtt(#[from] MqttError),
    #[error(transparent)]
    Db(#[from] DbError),
    /// `broker` is `host:port`, an IPv6 address in brackets.
    #[error("could not connect to the broker at {broker} within {waited:?}: {last_error}")]
    NeverConnected { broker: String, waited: Duration, last_error: String },
    #[error("the broker refused the subscription to {0:?} (ACL, or no shared-subscription support)")]
    SubscriptionRefused(Vec<String>),
}

/// The listener's settings.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    pub broker: BrokerSettings,
    pub prefix: String,
    pub share_group: Option<String>,
    /// Told after every committed batch (the console in the same process looks at once).
    pub committed: Option<std::sync::Arc<tokio::sync::Notify>>,
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
    fn start(broker: &BrokerSettings, manual_acks: bool) -> Link {
        let (client, mut eventloop) = broker.v311_client(1024, |o| {
            o.set_manual_acks(manual_acks);
        });
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
        Link { client, events, task }
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

/// A batch is committed when nothing more is waiting, or at this size.
const MAX_BATCH: usize = 1000;

/// Runs until `shutdown`: subscribes to every branch's data and stores it.
pub async fn listen(
    cfg: &ListenConfig,
    store: &Store,
    shutdown: CancellationToken,
) -> Result<ListenStats, ListenError> {
    let filters = filters(&cfg.prefix, cfg.share_group.as_deref(), Topics { alerts: true, state: true })?;
    let shared = cfg.share_group.is_some();
    let mut link = Link::start(&cfg.broker, true);
    let mut stats = ListenStats::default();
    let mut batch = Batch::default();
    // Stored and not yet handed to the client. Acks are handed over without waiting
    // (`try_ack`): waiting for room in the client's request queue while its event loop waits
    // for room in ours would deadlock under a flood of redeliveries.
    let mut acks: VecDeque<Publish> = VecDeque::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_connected = false;
    let mut last_error: Option<String> = None;
    tracing::info!(broker = %cfg.broker.broker.authority(), client_id = %cfg.broker.client_id,
        db = %store.url(), share_group = cfg.share_group.as_deref().unwrap_or("-"), "listening");

    let result = loop {
        hand_over_acks(&link.client, &mut acks);
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
                    batch.add(&cfg.prefix, p, &mut stats);
                    if (link.events.is_empty() || batch.pending.len() >= MAX_BATCH)
                        && let Err(e) = commit(store, &mut acks, &mut batch, &mut stats, shared, cfg.committed.as_deref(), &shutdown).await
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
            _ = tick.tick(), if !batch.pending.is_empty() || !acks.is_empty() => {
                if let Err(e) = commit(store, &mut acks, &mut batch, &mut stats, shared, cfg.committed.as_deref(), &shutdown).await {
                    break Err(e.into());
                }
            }
        }
    };
    if result.is_ok() && !batch.pending.is_empty() {
        // One attempt on the way out; what is not stored stays unacknowledged on the broker.
        let stop_now = CancellationToken::new();
        stop_now.cancel();
        if let Err(e) =
            commit(store, &mut acks, &mut batch, &mut stats, shared, cfg.committed.as_deref(), &stop_now).await
        {
            tracing::warn!(error = %e, "the last batch was not stored; the broker will send it again");
        }
    }
    // Hand over what is stored before disconnecting; what does not fit is redelivered later.
    for _ in 0..50 {
        hand_over_acks(&link.client, &mut acks);
        if acks.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    link.close().await;
    result.map(|()| stats)
}

/// What was received since the last commit.
#[derive(Default)]
struct Batch {
    /// Every publish, to acknowledge once stored (malformed ones included: they are counted).
    pending: Vec<Publish>,
    messages: Vec<Incoming>,
    malformed: u64,
}

impl Batch {
    fn add(&mut self, prefix: &str, p: Publish, stats: &mut ListenStats) {
        stats.received += 1;
        let received_at = protocols::time::now();
        match ingest::decode(prefix, &p.topic, &p.payload) {
            Ok(msg) => {
                // The payload parsed as JSON (or is empty), so it is UTF-8.
                let payload = String::from_utf8_lossy(&p.payload).into_owned();
                self.messages.push(Incoming { msg, payload, received_at });
            }
            Err(e) => {
                stats.malformed += 1;
                self.malformed += 1;
                tracing::warn!(error = %e, "malformed message ignored");
            }
        }
        self.pending.push(p);
    }
}

/// Stores the batch in one transaction, then acknowledges every publish in it. While the
/// database is unreachable it retries with backoff and acknowledges nothing; on `shutdown` it
/// gives up (the broker keeps what was not acknowledged).
async fn commit(
    store: &Store,
    acks: &mut VecDeque<Publish>,
    batch: &mut Batch,
    stats: &mut ListenStats,
    shared: bool,
    committed: Option<&tokio::sync::Notify>,
    shutdown: &CancellationToken,
) -> Result<(), DbError> {
    if batch.pending.is_empty() {
        return Ok(());
    }
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut failing_since: Option<tokio::time::Instant> = None;
    let outcome = loop {
        match store.ingest(&batch.messages, batch.malformed).await {
            Ok(o) => break o,
            Err(e) if e.is_transient() => {
                if failing_since.is_none() {
                    failing_since = Some(tokio::time::Instant::now());
                    tracing::error!(error = %e, waiting = batch.pending.len(),
                        "cannot store into the database; holding messages unacknowledged and retrying");
                } else {
                    tracing::debug!(error = %e, "the database is still unreachable");
                }
                if shutdown.is_cancelled() {
                    tracing::warn!(
                        waiting = batch.pending.len(),
                        "stopping with messages not stored; the broker keeps them for the next start"
                    );
                    return Ok(());
                }
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        tracing::warn!(waiting = batch.pending.len(), "stopping with messages not stored; the broker keeps them for the next start");
                        return Ok(());
                    }
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
            Err(e) => return Err(e),
        }
    };
    if let Some(t) = failing_since {
        tracing::info!(down_for = ?t.elapsed(), stored = batch.messages.len(), "the database is back; stored what was waiting");
    }
    if let Some(n) = committed {
        n.notify_one();
    }
    for (m, o) in batch.messages.iter().zip(&outcome.outcomes) {
        note(m, *o, stats);
    }
    for n in &outcome.seq_notes {
        match n {
            // One listener of a shared group may see a hole that another is about to fill.
            SeqNote::Gap { branch, from, to } if shared => {
                tracing::debug!(branch = %branch, from, to, "seq hole (another listener of the group may hold it)")
            }
            SeqNote::Gap { branch, from, to } => tracing::warn!(branch = %branch, from, to, "seq gap: alerts missing"),
            SeqNote::Restarted { branch, seq } => tracing::warn!(branch = %branch, seq,
                "seq reused by a new alert: the gateway's data was reset; new sequence"),
        }
    }
    acks.extend(batch.pending.drain(..));
    batch.messages.clear();
    batch.malformed = 0;
    Ok(())
}

/// Hands stored messages' acks to the client while its request queue has room.
fn hand_over_acks(client: &AsyncClient, acks: &mut VecDeque<Publish>) {
    while let Some(p) = acks.front() {
        match client.try_ack(p) {
            Ok(()) => {
                acks.pop_front();
            }
            Err(rumqttc::ClientError::TryRequest(_)) => return, // full: the next turn
            Err(e) => {
                // The event loop is gone; the broker re-sends after the reconnect.
                tracing::debug!(error = %e, "cannot queue an ack");
                acks.pop_front();
            }
        }
    }
}

fn note(m: &Incoming, o: Outcome, stats: &mut ListenStats) {
    match (&m.msg, o) {
        (Message::Alert(a), Outcome::NewAlert) => {
            stats.new_alerts += 1;
            tracing::debug!(branch = %a.branch, seq = a.seq.0, id = %a.id, kind = a.kind().as_str(), "alert stored");
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
}

/// Subscribes to the retained state for `dur` (retained values arrive at once) and returns it.
/// Returns the snapshot and the number of malformed messages.
pub async fn live_snapshot(
    broker: &BrokerSettings,
    prefix: &str,
    dur: Duration,
) -> Result<(Snapshot, u64), ListenError> {
    let filters = filters(prefix, None, Topics { alerts: false, state: true })?;
    let mut link = Link::start(broker, false);
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
            broker: broker.broker.authority(),
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
    let mut link = Link::start(broker, false);
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
