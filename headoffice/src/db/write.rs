//! Storing what the listeners receive: one transaction per batch, idempotent throughout.
//!
//! A batch is everything a listener received since its last commit. It is acknowledged to the
//! broker only after [`Store::ingest`] returns, so a listener killed mid-batch loses nothing
//! (the broker redelivers) and a batch retried after a lost connection stores nothing twice:
//! alerts are unique on (branch, id), timeline facts on (subject, time, source, state), repairs
//! on the clearing alert's id.

use std::collections::{BTreeMap, HashMap, HashSet};

use protocols::time::Timestamp;
use protocols::{Alert, AlertBody, AlertState, BranchId, CoverageReport, DeviceHealth, DeviceType};
use sqlx::{Any, AssertSqlSafe, Transaction};

use super::{DbError, Outcome, Store, ms};
use crate::ingest::Message;

/// One message as received: decoded, the payload text exactly as published, and when.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub msg: Message,
    pub payload: String,
    pub received_at: Timestamp,
}

/// What the listener may want to log about a branch's `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeqNote {
    /// `from..=to` were skipped: missing, or still on their way.
    Gap { branch: BranchId, from: u64, to: u64 },
    /// A new alert reused a `seq` already stored: the gateway's data was reset.
    Restarted { branch: BranchId, seq: u64 },
}

/// What one batch did.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// One per message of the batch, in order.
    pub outcomes: Vec<Outcome>,
    pub seq_notes: Vec<SeqNote>,
}

/// Rows per multi-row INSERT: well below both backends' bind-parameter limits.
const ROWS_PER_INSERT: usize = 200;

fn severity_rank(s: protocols::Severity) -> i64 {
    match s {
        protocols::Severity::Info => 0,
        protocols::Severity::Warning => 1,
        protocols::Severity::Major => 2,
        protocols::Severity::Critical => 3,
    }
}

pub(crate) fn severity_rank_of(s: protocols::Severity) -> i64 {
    severity_rank(s)
}

fn state_str(s: AlertState) -> &'static str {
    match s {
        AlertState::Raised => "raised",
        AlertState::Cleared => "cleared",
    }
}

#[derive(Debug, Clone, Copy)]
struct SeqState {
    epoch: i64,
    max: i64,
}

#[derive(Default)]
struct Counts {
    alerts: i64,
    duplicates: i64,
    malformed: i64,
    gateway_changes: i64,
    device_changes: i64,
    zone_changes: i64,
}

impl Store {
    /// Stores one batch (and counts `malformed` rejected messages) in one transaction.
    pub async fn ingest(&self, batch: &[Incoming], malformed: u64) -> Result<BatchOutcome, DbError> {
        let mut tx = self.pool.begin().await.map_err(self.err("begin a transaction"))?;
        let mut counts = Counts { malformed: i64::try_from(malformed).unwrap_or(i64::MAX), ..Counts::default() };
        let mut out = BatchOutcome { outcomes: vec![Outcome::Unchanged; batch.len()], seq_notes: Vec::new() };

        let alerts: Vec<(usize, &Alert, &Incoming)> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match &m.msg {
                Message::Alert(a) => Some((i, a.as_ref(), m)),
                _ => None,
            })
            .collect();
        if !alerts.is_empty() {
            self.ingest_alerts(&mut tx, &alerts, &mut out, &mut counts).await?;
        }
        for (i, m) in batch.iter().enumerate() {
            let o = match &m.msg {
                Message::Alert(_) => continue,
                Message::Gateway(g) => {
                    let at = g.at.unwrap_or(m.received_at);
                    let status = if g.status == protocols::GatewayState::Online { "online" } else { "offline" };
                    let prev: Option<(String, i64, i64)> =
                        sqlx::query_as("SELECT status, since, at FROM latest_gateways WHERE branch = $1")
                            .bind(g.branch.as_str())
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(self.err("read a gateway's status"))?;
                    if prev.as_ref().is_some_and(|p| p.2 > ms(at)) {
                        Outcome::Unchanged // an older status arriving late
                    } else {
                        let changed = prev.as_ref().is_none_or(|p| p.0 != status);
                        let since = match &prev {
                            Some(p) if !changed => p.1,
                            _ => ms(at),
                        };
                        sqlx::query(
                            "INSERT INTO latest_gateways (branch, status, since, at, received_at, payload) \
                             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (branch) DO UPDATE SET \
                             status = excluded.status, since = excluded.since, at = excluded.at, \
                             received_at = excluded.received_at, payload = excluded.payload",
                        )
                        .bind(g.branch.as_str())
                        .bind(status)
                        .bind(since)
                        .bind(ms(at))
                        .bind(ms(m.received_at))
                        .bind(m.payload.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(self.err("store a gateway's status"))?;
                        if changed {
                            let bad = g.status == protocols::GatewayState::Offline;
                            let reason = if bad { g.reason.clone() } else { None };
                            self.subject(&mut tx, &g.branch, "gateway", "", "", false).await?;
                            self.fact(&mut tx, &g.branch, "gateway", "", at, bad, reason, "status", m.received_at)
                                .await?;
                            counts.gateway_changes += 1;
                            Outcome::Changed
                        } else {
                            Outcome::Unchanged
                        }
                    }
                }
                Message::Device(d) => self.ingest_device(&mut tx, d, m, &mut counts).await?,
                Message::Coverage(c) => self.ingest_coverage(&mut tx, c, m, &mut counts).await?,
                Message::DeviceRemoved { branch, device } => {
                    sqlx::query("DELETE FROM latest_devices WHERE branch = $1 AND device = $2")
                        .bind(branch.as_str())
                        .bind(device.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(self.err("remove a device"))?;
                    Outcome::Removed
                }
                Message::CoverageRemoved { branch } => {
                    sqlx::query("DELETE FROM latest_coverage WHERE branch = $1")
                        .bind(branch.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(self.err("remove a coverage report"))?;
                    Outcome::Removed
                }
                Message::GatewayRemoved { branch } => {
                    sqlx::query("DELETE FROM latest_gateways WHERE branch = $1")
                        .bind(branch.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(self.err("remove a gateway status"))?;
                    Outcome::Removed
                }
            };
            out.outcomes[i] = o;
        }

        for (name, n) in [
            ("alerts", counts.alerts),
            ("duplicates", counts.duplicates),
            ("malformed", counts.malformed),
            ("gateway_changes", counts.gateway_changes),
            ("device_changes", counts.device_changes),
            ("zone_changes", counts.zone_changes),
        ] {
            if n != 0 {
                sqlx::query("UPDATE counters SET value = value + $1 WHERE name = $2")
                    .bind(n)
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err("count"))?;
            }
        }
        tx.commit().await.map_err(self.err("commit"))?;
        Ok(out)
    }

    async fn ingest_alerts(
        &self,
        tx: &mut Transaction<'static, Any>,
        alerts: &[(usize, &Alert, &Incoming)],
        out: &mut BatchOutcome,
        counts: &mut Counts,
    ) -> Result<(), DbError> {
        // The branches' sequence state, to number epochs and notice gaps as they open.
        let branches: Vec<&str> = {
            let mut v: Vec<&str> = alerts.iter().map(|(_, a, _)| a.branch.as_str()).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut seqs: HashMap<String, SeqState> = HashMap::new();
        for chunk in branches.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "SELECT branch, epoch, max_seq FROM branch_seq WHERE branch IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (String, i64, i64)>(AssertSqlSafe(sql));
            for b in chunk {
                q = q.bind(*b);
            }
            for (b, epoch, max) in q.fetch_all(&mut **tx).await.map_err(self.err("read the branches' seq"))? {
                seqs.insert(b, SeqState { epoch, max });
            }
        }
        let mut in_batch: HashMap<(&str, i64, i64), &str> = HashMap::new();
        let mut epochs = Vec::with_capacity(alerts.len());
        let mut last_seen: BTreeMap<&str, i64> = BTreeMap::new();
        for (_, a, m) in alerts {
            let branch = a.branch.as_str();
            let seq = i64::try_from(a.seq.0).unwrap_or(i64::MAX);
            let epoch = match seqs.get_mut(branch) {
                None => {
                    seqs.insert(branch.to_string(), SeqState { epoch: 0, max: seq });
                    0
                }
                Some(st) if seq > st.max => {
                    if seq > st.max + 1 {
                        out.seq_notes.push(SeqNote::Gap {
                            branch: a.branch.clone(),
                            from: u64::try_from(st.max + 1).unwrap_or(0),
                            to: a.seq.0 - 1,
                        });
                    }
                    st.max = seq;
                    st.epoch
                }
                Some(st) => {
                    // A late arrival, a redelivery, or a gateway that starts again from 1.
                    let taken: Option<(String,)> = sqlx::query_as(
                        "SELECT id FROM alerts WHERE branch = $1 AND epoch = $2 AND seq = $3 AND id <> $4 LIMIT 1",
                    )
                    .bind(branch)
                    .bind(st.epoch)
                    .bind(seq)
                    .bind(a.id.as_str())
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(self.err("check a seq"))?;
                    let dup_of_stored: Option<(i64,)> =
                        sqlx::query_as("SELECT epoch FROM alerts WHERE branch = $1 AND id = $2")
                            .bind(branch)
                            .bind(a.id.as_str())
                            .fetch_optional(&mut **tx)
                            .await
                            .map_err(self.err("check an alert id"))?;
                    if let Some((e,)) = dup_of_stored {
                        e
                    } else if taken.is_some() || in_batch.get(&(branch, st.epoch, seq)).is_some_and(|id| *id != a.id) {
                        st.epoch += 1;
                        st.max = seq;
                        out.seq_notes.push(SeqNote::Restarted { branch: a.branch.clone(), seq: a.seq.0 });
                        st.epoch
                    } else {
                        st.epoch
                    }
                }
            };
            in_batch.entry((branch, epoch, seq)).or_insert(a.id.as_str());
            epochs.push(epoch);
            let e = last_seen.entry(branch).or_insert(i64::MIN);
            *e = (*e).max(ms(m.received_at));
        }

        let mut inserted: HashSet<(String, String)> = HashSet::new();
        for (chunk_no, chunk) in alerts.chunks(ROWS_PER_INSERT).enumerate() {
            const COLS: usize = 14;
            let mut sql = String::from(
                "INSERT INTO alerts (branch, id, seq, epoch, kind, state, severity, device, device_type, \
                 occurred_at, received_at, camera_down, follow_up, payload) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                sql.push_str(&placeholders(i * COLS + 1, COLS));
                sql.push(')');
            }
            sql.push_str(" ON CONFLICT DO NOTHING RETURNING branch, id");
            let mut q = sqlx::query_as::<_, (String, String)>(AssertSqlSafe(sql));
            for (j, (_, a, m)) in chunk.iter().enumerate() {
                let (camera_down, follow_up) = match &a.body {
                    AlertBody::AlarmLink(d) => {
                        let follow = d.follow_up_of.is_some();
                        let down = a.state == AlertState::Raised
                            && !follow
                            && d.cameras.iter().any(|c| !c.online || !c.stream_alive || c.frozen);
                        (i64::from(down), i64::from(follow))
                    }
                    _ => (0, 0),
                };
                q = q
                    .bind(a.branch.as_str())
                    .bind(a.id.as_str())
                    .bind(i64::try_from(a.seq.0).unwrap_or(i64::MAX))
                    .bind(epochs[chunk_no * ROWS_PER_INSERT + j])
                    .bind(a.kind().as_str())
                    .bind(state_str(a.state))
                    .bind(severity_rank(a.severity))
                    .bind(a.device.id.as_str())
                    .bind(a.device.device_type.as_str())
                    .bind(ms(a.occurred_at))
                    .bind(ms(m.received_at))
                    .bind(camera_down)
                    .bind(follow_up)
                    .bind(m.payload.as_str());
            }
            for row in q.fetch_all(&mut **tx).await.map_err(self.err("store alerts"))? {
                inserted.insert(row);
            }
        }

        for (branch, last) in &last_seen {
            let Some(st) = seqs.get(*branch) else { continue };
            sqlx::query(
                "INSERT INTO branch_seq (branch, epoch, max_seq, last_seen) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (branch) DO UPDATE SET \
                 max_seq = CASE WHEN excluded.epoch > branch_seq.epoch THEN excluded.max_seq \
                                WHEN excluded.epoch = branch_seq.epoch AND excluded.max_seq > branch_seq.max_seq \
                                THEN excluded.max_seq ELSE branch_seq.max_seq END, \
                 epoch = CASE WHEN excluded.epoch > branch_seq.epoch THEN excluded.epoch ELSE branch_seq.epoch END, \
                 last_seen = CASE WHEN excluded.last_seen > branch_seq.last_seen THEN excluded.last_seen \
                                  ELSE branch_seq.last_seen END",
            )
            .bind(*branch)
            .bind(st.epoch)
            .bind(st.max)
            .bind(*last)
            .execute(&mut **tx)
            .await
            .map_err(self.err("store a branch's seq"))?;
        }

        // Each new alert's consequences: a camera's timeline, open faults and repairs. A
        // duplicate has had them already.
        let mut seen_now: HashSet<(&str, &str)> = HashSet::new();
        for (i, a, m) in alerts {
            let new = inserted.contains(&(a.branch.as_str().to_string(), a.id.clone()))
                && seen_now.insert((a.branch.as_str(), a.id.as_str()));
            if !new {
                counts.duplicates += 1;
                out.outcomes[*i] = Outcome::DuplicateAlert;
                continue;
            }
            counts.alerts += 1;
            out.outcomes[*i] = Outcome::NewAlert;
            match &a.body {
                AlertBody::CameraOffline(d) => {
                    let raised = a.state == AlertState::Raised;
                    self.subject(tx, &a.branch, "camera", a.device.id.as_str(), &a.device.name, false).await?;
                    let reason = raised.then(|| d.status.clone());
                    let (b, dev) = (&a.branch, a.device.id.as_str());
                    self.fact(tx, b, "camera", dev, a.occurred_at, raised, reason, "alert", m.received_at).await?;
                    self.fault_edge(tx, a, "").await?;
                }
                AlertBody::DeviceFault(d) => self.fault_edge(tx, a, &d.fault).await?,
                AlertBody::AlarmLink(_) | AlertBody::DoorStatus(_) => {}
            }
        }
        Ok(())
    }

    /// A raised camera-offline or device-fault opens a condition; its clear closes it and
    /// records the repair.
    async fn fault_edge(&self, tx: &mut Transaction<'static, Any>, a: &Alert, fault: &str) -> Result<(), DbError> {
        let kind = a.kind().as_str();
        match a.state {
            AlertState::Raised => {
                sqlx::query(
                    "INSERT INTO open_faults (branch, kind, device, fault, device_type, raised_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(a.branch.as_str())
                .bind(kind)
                .bind(a.device.id.as_str())
                .bind(fault)
                .bind(a.device.device_type.as_str())
                .bind(ms(a.occurred_at))
                .execute(&mut **tx)
                .await
                .map_err(self.err("open a fault"))?;
            }
            AlertState::Cleared => {
                let open: Option<(i64, String)> = sqlx::query_as(
                    "DELETE FROM open_faults WHERE branch = $1 AND kind = $2 AND device = $3 AND fault = $4 \
                     RETURNING raised_at, device_type",
                )
                .bind(a.branch.as_str())
                .bind(kind)
                .bind(a.device.id.as_str())
                .bind(fault)
                .fetch_optional(&mut **tx)
                .await
                .map_err(self.err("close a fault"))?;
                if let Some((raised_at, device_type)) = open {
                    sqlx::query(
                        "INSERT INTO repairs (branch, alert_id, device_type, raised_at, cleared_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    )
                    .bind(a.branch.as_str())
                    .bind(a.id.as_str())
                    .bind(device_type)
                    .bind(raised_at)
                    .bind(ms(a.occurred_at))
                    .execute(&mut **tx)
                    .await
                    .map_err(self.err("record a repair"))?;
                }
            }
        }
        Ok(())
    }

    async fn ingest_device(
        &self,
        tx: &mut Transaction<'static, Any>,
        d: &DeviceHealth,
        m: &Incoming,
        counts: &mut Counts,
    ) -> Result<Outcome, DbError> {
        let prev: Option<(String, i64)> =
            sqlx::query_as("SELECT state, updated_at FROM latest_devices WHERE branch = $1 AND device = $2")
                .bind(d.branch.as_str())
                .bind(d.device.id.as_str())
                .fetch_optional(&mut **tx)
                .await
                .map_err(self.err("read a device's health"))?;
        if prev.as_ref().is_some_and(|p| p.1 > ms(d.updated_at)) {
            return Ok(Outcome::Unchanged);
        }
        sqlx::query(
            "INSERT INTO latest_devices (branch, device, device_type, state, updated_at, received_at, payload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (branch, device) DO UPDATE SET \
             device_type = excluded.device_type, state = excluded.state, updated_at = excluded.updated_at, \
             received_at = excluded.received_at, payload = excluded.payload",
        )
        .bind(d.branch.as_str())
        .bind(d.device.id.as_str())
        .bind(d.device.device_type.as_str())
        .bind(d.state.as_str())
        .bind(ms(d.updated_at))
        .bind(ms(m.received_at))
        .bind(m.payload.as_str())
        .execute(&mut **tx)
        .await
        .map_err(self.err("store a device's health"))?;
        let changed = prev.as_ref().is_none_or(|p| p.0 != d.state);
        if !changed {
            return Ok(Outcome::Unchanged);
        }
        counts.device_changes += 1;
        if d.device.device_type == DeviceType::Camera {
            self.subject(tx, &d.branch, "camera", d.device.id.as_str(), &d.device.name, false).await?;
            // `unknown` says nothing about whether the camera was watching.
            if d.state != "unknown" {
                let bad = d.state != "online";
                let reason = bad.then(|| d.state.clone());
                let dev = d.device.id.as_str();
                self.fact(tx, &d.branch, "camera", dev, d.since, bad, reason, "health", m.received_at).await?;
            }
        }
        Ok(Outcome::Changed)
    }

    async fn ingest_coverage(
        &self,
        tx: &mut Transaction<'static, Any>,
        c: &CoverageReport,
        m: &Incoming,
        counts: &mut Counts,
    ) -> Result<Outcome, DbError> {
        let prev: Option<(i64, String)> = sqlx::query_as("SELECT at, payload FROM latest_coverage WHERE branch = $1")
            .bind(c.branch.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(self.err("read a coverage report"))?;
        if prev.as_ref().is_some_and(|p| p.0 > ms(c.at)) {
            return Ok(Outcome::Unchanged); // an older report re-sent: the newer one stands
        }
        let prev: Option<CoverageReport> = prev.and_then(|(_, p)| serde_json::from_str(&p).ok());
        let mut changed = false;
        for z in &c.zones {
            let before = prev.as_ref().and_then(|p| p.zones.iter().find(|o| o.id == z.id));
            if before.is_some_and(|b| b.covered == z.covered && b.name == z.name && b.required == z.required) {
                continue;
            }
            self.subject(tx, &c.branch, "zone", z.id.as_str(), &z.name, z.required).await?;
            for cam in &z.cameras {
                self.subject(tx, &c.branch, "camera", cam.as_str(), "", false).await?;
            }
            if before.is_some_and(|b| b.covered == z.covered) {
                continue;
            }
            let at = if z.covered { c.at } else { z.uncovered_since.unwrap_or(c.at) };
            self.fact(tx, &c.branch, "zone", z.id.as_str(), at, !z.covered, None, "coverage", m.received_at).await?;
            counts.zone_changes += 1;
            changed = true;
        }
        sqlx::query(
            "INSERT INTO latest_coverage (branch, at, received_at, payload) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (branch) DO UPDATE SET at = excluded.at, received_at = excluded.received_at, \
             payload = excluded.payload",
        )
        .bind(c.branch.as_str())
        .bind(ms(c.at))
        .bind(ms(m.received_at))
        .bind(m.payload.as_str())
        .execute(&mut **tx)
        .await
        .map_err(self.err("store a coverage report"))?;
        Ok(if changed { Outcome::Changed } else { Outcome::Unchanged })
    }

    /// Registers a camera, zone or gateway. A real name replaces a placeholder (the id, or
    /// nothing), never the other way round.
    async fn subject(
        &self,
        tx: &mut Transaction<'static, Any>,
        branch: &BranchId,
        kind: &str,
        id: &str,
        name: &str,
        required: bool,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO subjects (branch, subject_kind, subject, name, required) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (branch, subject_kind, subject) DO UPDATE SET \
             name = CASE WHEN excluded.name = '' OR excluded.name = excluded.subject THEN subjects.name \
                         ELSE excluded.name END, \
             required = CASE WHEN excluded.subject_kind = 'zone' THEN excluded.required ELSE subjects.required END",
        )
        .bind(branch.as_str())
        .bind(kind)
        .bind(id)
        .bind(name)
        .bind(i64::from(required))
        .execute(&mut **tx)
        .await
        .map_err(self.err("register a camera, zone or gateway"))?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn fact(
        &self,
        tx: &mut Transaction<'static, Any>,
        branch: &BranchId,
        kind: &str,
        id: &str,
        at: Timestamp,
        bad: bool,
        reason: Option<String>,
        source: &str,
        received_at: Timestamp,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO timeline (branch, subject_kind, subject, at, bad, reason, source, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(branch.as_str())
        .bind(kind)
        .bind(id)
        .bind(ms(at))
        .bind(i64::from(bad))
        .bind(reason)
        .bind(source)
        .bind(ms(received_at))
        .execute(&mut **tx)
        .await
        .map_err(self.err("record a state change"))?;
        Ok(())
    }
}

/// `$from, $from+1, …` (n of them).
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('$');
        s.push_str(&(from + i).to_string());
    }
    s
}
