//! The notifier's two loops: take new events and queue their messages; send what is due.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::FixedOffset;
use protocols::time::Timestamp;
use protocols::{Alert, AlertBody, AlertState, BranchId, LinkedCamera, Severity};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::channel::{self, Outgoing, SendError};
use super::{Event, NotifyConfig, compose};
use crate::db::{DbError, NewNotification, Store};
use crate::directory::Directory;

/// Events older than this when first seen are taken without a message: a console started
/// after a week without one does not page anybody about last week.
const MAX_AGE: Duration = Duration::from_secs(3600);
/// How long a sender holds a message it is sending.
const HOLD: Duration = Duration::from_secs(60);

pub struct Notifier {
    pub store: Store,
    pub cfg: NotifyConfig,
    pub dir: Arc<Directory>,
    pub offset: FixedOffset,
}

fn dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The event of an alert, in both languages.
pub fn alert_event(a: &Alert) -> Event {
    let raised = a.state == AlertState::Raised;
    let dev = format!("{} ({})", a.device.name, a.device.id);
    let dev_zh = format!("{}（{}）", a.device.name, a.device.id);
    let (en, zh, page) = match &a.body {
        AlertBody::CameraOffline(d) if raised => {
            (format!("camera {dev} lost: {}", d.status), format!("摄像机 {dev_zh} 故障：{}", d.status), "branch")
        }
        AlertBody::CameraOffline(_) => {
            (format!("camera {dev} back online"), format!("摄像机 {dev_zh} 恢复在线"), "branch")
        }
        AlertBody::AlarmLink(d) if raised => {
            let down = d.cameras.iter().any(LinkedCamera::is_down);
            (
                format!("ALARM in zone {}{}", d.zone_name, if down { "; a linked camera is DOWN" } else { "" }),
                format!("防区 {} 报警{}", d.zone_name, if down { "，联动摄像机故障" } else { "" }),
                "alerts",
            )
        }
        AlertBody::AlarmLink(d) => {
            (format!("zone {} back to normal", d.zone_name), format!("防区 {} 恢复正常", d.zone_name), "branch")
        }
        AlertBody::DoorStatus(d) => {
            let zh = match d.door_state {
                protocols::DoorState::ForcedOpen => "被强行打开",
                protocols::DoorState::HeldOpen => "开门超时",
                protocols::DoorState::Open => "打开",
                protocols::DoorState::Closed => "已关闭",
            };
            (
                format!("door {} {}", d.door_name, d.door_state.as_str()),
                format!("门 {} {zh}", d.door_name),
                if raised && d.door_state == protocols::DoorState::ForcedOpen { "alerts" } else { "branch" },
            )
        }
        AlertBody::DeviceFault(d) if raised => (
            format!("{dev}: fault {} ({})", d.fault, d.reason),
            format!("{dev_zh} 故障：{}（{}）", d.fault, d.reason),
            "branch",
        ),
        AlertBody::DeviceFault(d) => {
            (format!("{dev}: {} cleared", d.fault), format!("{dev_zh} 故障 {} 已恢复", d.fault), "branch")
        }
    };
    let page = if page == "alerts" {
        "/alerts".to_string()
    } else {
        format!("/branch/{}", crate::web::encode(a.branch.as_str()))
    };
    Event {
        key: format!("alert:{}/{}", a.branch, a.id),
        branch: a.branch.clone(),
        kind: a.kind().as_str().to_string(),
        severity: a.severity,
        at: a.occurred_at,
        what_en: en,
        what_zh: zh,
        page,
    }
}

/// The event of an order's transition.
pub fn order_event(e: &crate::db::UnnotifiedOrderEvent) -> Option<Event> {
    let branch = BranchId::new(e.branch.clone()).ok()?;
    let (en, zh) = match e.action.as_str() {
        "opened" => ("opened", "已下发"),
        "overdue" => ("OVERDUE", "已超期"),
        "reopened" => ("reopened: the problem came back", "问题复发，重新整改"),
        "fixed" => ("fixed, being re-checked", "已修复，复查中"),
        "verified" => ("verified", "复查通过"),
        "closed" => ("closed by hand", "已人工关闭"),
        _ => return None,
    };
    let what = if e.subject_name.is_empty() { &e.subject } else { &e.subject_name };
    let cond_zh = match e.condition.as_str() {
        "camera-offline" => "摄像机离线",
        "zone-uncovered" => "必防区无人看护",
        "device-fault" => "设备故障",
        "gateway-offline" => "网关离线",
        _ => "人工录入",
    };
    let severity = match e.severity.as_str() {
        "critical" => Severity::Critical,
        "major" => Severity::Major,
        _ => Severity::Warning,
    };
    Some(Event {
        key: format!("order-event:{}", e.pk),
        branch,
        kind: format!("order-{}", e.action),
        severity,
        at: e.at,
        what_en: format!("rectification order #{} {en}: {} {what}", e.order_id, e.condition),
        what_zh: format!("整改单 #{} {zh}：{cond_zh} {what}", e.order_id),
        page: format!("/orders/{}", e.order_id),
    })
}

fn dedup(keys: &[&str]) -> String {
    let mut h = Sha256::new();
    for k in keys {
        h.update(k.as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

impl Notifier {
    /// Takes what is new, routes it and queues the messages. Returns how many were queued.
    pub async fn enqueue(&self, now: Timestamp) -> Result<usize, DbError> {
        let settled = now - dur(self.cfg.group_window);
        let too_old = now - dur(MAX_AGE);
        let alerts = self.store.unnotified_alerts(settled, 5000).await?;
        let orders = self.store.unnotified_order_events(settled, 5000).await?;
        let mut tx = self.store.begin_notify().await?;
        // (event, escalation target rule) — `None`: routed by the rules' filters.
        let mut events: Vec<(Event, Option<&str>)> = Vec::new();
        for a in &alerts {
            if !self.store.take_alert(&mut tx, &a.branch, &a.id).await? || a.received_at < too_old {
                continue;
            }
            match serde_json::from_str::<Alert>(&a.payload) {
                // A follow-up (the snapshots sent after an alarm) is the same alarm: told once.
                Ok(alert) if alert.body.follow_up_of().is_some() => {}
                Ok(alert) => events.push((alert_event(&alert), None)),
                Err(e) => {
                    tracing::warn!(branch = %a.branch, alert = %a.id, error = %e, "notify: a stored alert cannot be read")
                }
            }
        }
        for e in &orders {
            if !self.store.take_order_event(&mut tx, e.pk).await? || e.at < too_old {
                continue;
            }
            if let Some(ev) = order_event(e) {
                events.push((ev, None));
            }
        }
        for r in &self.cfg.rule {
            let (Some(after), Some(to)) = (r.escalate_after, r.escalate_to.as_deref()) else { continue };
            // Alarms that waited longer than MAX_AGE beyond the escalation when first seen (a
            // rule added, a console that was down) are not escalated now.
            let oldest = now - dur(after) - dur(MAX_AGE);
            for (b, id, payload) in self.store.unescalated_alarms(now - dur(after), oldest, &r.name).await? {
                let Ok(alert) = serde_json::from_str::<Alert>(&payload) else { continue };
                // Only alarms this rule would have sent.
                let base = alert_event(&alert);
                if !r.matches(&base, &self.dir, self.offset) {
                    continue;
                }
                if !self.store.take_escalation(&mut tx, &b, &id, &r.name, now).await? {
                    continue;
                }
                let secs = i64::try_from(after.as_secs()).unwrap_or(i64::MAX);
                let (en, zh) = (crate::web::Lang::En.duration(secs), crate::web::Lang::Zh.duration(secs));
                let ev = Event {
                    key: format!("esc:{b}/{id}:{}", r.name),
                    kind: "escalation".into(),
                    severity: Severity::Critical,
                    what_en: format!("not acknowledged for {en}: {}", base.what_en),
                    what_zh: format!("{zh}未确认：{}", base.what_zh),
                    page: "/alerts".into(),
                    ..base
                };
                events.push((ev, Some(to)));
            }
        }
        // (channel, branch) → events: one message per branch and channel, whatever rules sent
        // it there.
        let mut routed: BTreeMap<(String, BranchId), (Vec<Event>, BTreeSet<String>)> = BTreeMap::new();
        for (ev, target) in &events {
            for r in &self.cfg.rule {
                let take = match target {
                    Some(t) => r.name == *t,
                    None => r.matches(ev, &self.dir, self.offset),
                };
                if !take {
                    continue;
                }
                for c in &r.channels {
                    let e = routed.entry((c.clone(), ev.branch.clone())).or_default();
                    if e.1.insert(ev.key.clone()) {
                        e.0.push(ev.clone());
                    }
                }
            }
        }
        let mut queued = 0;
        let expires = now + dur(self.cfg.retry_for);
        for ((channel, branch), (mut evs, _)) in routed {
            let Some(c) = self.cfg.channel.get(&channel) else { continue };
            evs.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.key.cmp(&b.key)));
            let lang = self.cfg.channel_lang(c);
            let m = compose(&evs, lang, &self.dir, &self.cfg.console_url, self.offset);
            let keys: Vec<&str> = evs.iter().map(|e| e.key.as_str()).collect();
            let payload = serde_json::json!({
                "schema": "hq-notification/1",
                "branch": branch,
                "branch_name": self.dir.get(&branch).map(|i| i.name.clone()).unwrap_or_default(),
                "subject": m.subject, "text": m.text, "link": m.link,
                "events": evs.iter().map(|e| serde_json::json!({
                    "key": e.key, "kind": e.kind, "severity": e.severity.as_str(),
                    "at": protocols::time::format(&e.at), "what_en": e.what_en, "what_zh": e.what_zh, "page": e.page,
                })).collect::<Vec<_>>(),
            });
            let kind = if evs.len() == 1 { evs[0].kind.clone() } else { "group".into() };
            for recipient in c.recipients() {
                let n = NewNotification {
                    dedup: dedup(&keys),
                    channel: channel.clone(),
                    recipient,
                    branch: branch.to_string(),
                    kind: kind.clone(),
                    lang: lang.code().to_string(),
                    subject: m.subject.clone(),
                    body: m.text.clone(),
                    payload: payload.to_string(),
                    expires_at: expires,
                };
                if self.store.queue_notification(&mut tx, &n, now).await? {
                    queued += 1;
                }
            }
        }
        self.store.commit_notify(tx).await?;
        Ok(queued)
    }

    /// Sends what is due. Returns (sent, failed).
    pub async fn send_due(&self, now: Timestamp) -> Result<(usize, usize), DbError> {
        let mut done = (0, 0);
        for n in self.store.due_notifications(now, 50).await? {
            if !self.store.claim_notification(n.id, now, now + dur(HOLD)).await? {
                continue;
            }
            let Some(c) = self.cfg.channel.get(&n.channel) else {
                self.store.notification_failed(n.id, now, "the channel is no longer configured", true).await?;
                continue;
            };
            if now > n.expires_at {
                // Past retry_for (the consoles were down): too late to be of use.
                self.store.notification_failed(n.id, now, "expired before it could be sent", true).await?;
                continue;
            }
            let payload: serde_json::Value = serde_json::from_str(&n.payload).unwrap_or(serde_json::Value::Null);
            let out = Outgoing { subject: &n.subject, text: &n.body, payload: &payload };
            match channel::send(c, &n.recipient, &out).await {
                Ok(answer) => {
                    tracing::info!(id = n.id, channel = %n.channel, recipient = %n.recipient, branch = %n.branch, "notification sent");
                    self.store.notification_sent(n.id, protocols::time::now(), &answer).await?;
                    done.0 += 1;
                }
                Err(e) => {
                    let attempts = u32::try_from(n.attempts).unwrap_or(u32::MAX).min(10);
                    let base = if matches!(e, SendError::Refused(_)) { 60 } else { 5 };
                    let delay = Duration::from_secs((base * 2u64.pow(attempts)).min(600));
                    let next = protocols::time::now() + dur(delay);
                    let expired = next > n.expires_at;
                    if expired {
                        tracing::error!(id = n.id, channel = %n.channel, error = %e, "notification given up (expired)");
                    } else {
                        tracing::warn!(id = n.id, channel = %n.channel, error = %e, retry_in = ?delay, "notification not delivered; will retry");
                    }
                    self.store.notification_failed(n.id, next, &e.to_string(), expired).await?;
                    done.1 += 1;
                }
            }
        }
        Ok(done)
    }

    /// Both loops until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = protocols::time::now();
            let r = async {
                let q = self.enqueue(now).await?;
                if q > 0 {
                    tracing::info!(queued = q, "notifications queued");
                }
                self.send_due(protocols::time::now()).await
            }
            .await;
            match r {
                Ok(_) if failing => {
                    tracing::info!("notify: the database is back");
                    failing = false;
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    tracing::error!(error = %e, "notify: cannot read or write the queue; trying again");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    }
}
