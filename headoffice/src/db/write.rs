//! Storing what the listeners receive: one transaction per batch, idempotent throughout.
//!
//! A batch is everything a listener received since its last commit. It is acknowledged to the
//! broker only after [`Store::ingest`] returns, so a listener killed mid-batch loses nothing
//! (the broker redelivers) and a batch retried after a lost connection stores nothing twice:
//! alerts are unique on (branch, id), timeline facts on (subject, time, source, state), repairs
//! on the clearing alert's id.

use std::collections::{BTreeMap, HashMap, HashSet};

use protocols::time::Timestamp;
use protocols::{Alert, AlertBody, AlertState, BranchId, CoverageReport, DeviceHealth, DeviceType, LinkedCamera};
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

/// The `severity` column: ranks, so that "at least major" is a comparison.
pub(crate) fn severity_rank(s: protocols::Severity) -> i64 {
    match s {
        protocols::Severity::Info => 0,
        protocols::Severity::Warning => 1,
        protocols::Severity::Major => 2,
        protocols::Severity::Critical => 3,
    }
}

/// An alarm an operator must acknowledge: a raised alarm-link or forced door, not a follow-up
/// (the snapshots sent after it).
pub(crate) fn needs_ack(a: &Alert) -> bool {
    a.state == AlertState::Raised && a.body.is_priority() && a.body.follow_up_of().is_none()
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
                    let sql = "DELETE FROM latest_devices WHERE branch = $1 AND device = $2";
                    self.remove(&mut tx, sql, branch, Some(device.as_str()), "remove a device").await?
                }
                Message::CoverageRemoved { branch } => {
                    let sql = "DELETE FROM latest_coverage WHERE branch = $1";
                    self.remove(&mut tx, sql, branch, None, "remove a coverage report").await?
                }
                Message::GatewayRemoved { branch } => {
                    let sql = "DELETE FROM latest_gateways WHERE branch = $1";
                    self.remove(&mut tx, sql, branch, None, "remove a gateway status").await?
                }
            };
            out.outcomes[i] = o;
        }

        let changed: Vec<(&str, i64)> = [
            ("alerts", counts.alerts),
            ("duplicates", counts.duplicates),
            ("malformed", counts.malformed),
            ("gateway_changes", counts.gateway_changes),
            ("device_changes", counts.device_changes),
            ("zone_changes", counts.zone_changes),
        ]
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .collect();
        if !changed.is_empty() {
            // One statement, rows in a fixed order: concurrent listeners lock them alike.
            let mut sql = String::from("UPDATE counters SET value = value + CASE name");
            for (i, _) in changed.iter().enumerate() {
                sql.push_str(&format!(" WHEN ${} THEN ${}", 2 * i + 1, 2 * i + 2));
            }
            sql.push_str(" ELSE 0 END WHERE name IN (");
            sql.push_str(&(0..changed.len()).map(|i| format!("${}", 2 * i + 1)).collect::<Vec<_>>().join(", "));
            sql.push(')');
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (name, n) in &changed {
                q = q.bind(*name).bind(*n);
            }
            q.execute(&mut *tx).await.map_err(self.err("count"))?;
        }
        tx.commit().await.map_err(self.err("commit"))?;
        Ok(out)
    }

    /// A retained value deleted by its publisher (an empty payload).
    async fn remove(
        &self,
        tx: &mut Transaction<'static, Any>,
        sql: &'static str,
        branch: &BranchId,
        device: Option<&str>,
        what: &'static str,
    ) -> Result<Outcome, DbError> {
        let mut q = sqlx::query(sql).bind(branch.as_str());
        if let Some(d) = device {
            q = q.bind(d);
        }
        q.execute(&mut **tx).await.map_err(self.err(what))?;
        Ok(Outcome::Removed)
    }

    /// The alerts of a batch in a fixed number of statements, whatever its size: the
    /// branches' seq state, one check of late arrivals, the alerts themselves, and their
    /// consequences (camera timelines, open faults, repairs) each as one multi-row statement.
    async fn ingest_alerts(
        &self,
        tx: &mut Transaction<'static, Any>,
        alerts: &[(usize, &Alert, &Incoming)],
        out: &mut BatchOutcome,
        counts: &mut Counts,
    ) -> Result<(), DbError> {
        let seq_of = |a: &Alert| i64::try_from(a.seq.0).unwrap_or(i64::MAX);
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
        // Which (branch, epoch, seq) at or below a branch's highest are already stored, and
        // under which id: the same id is a redelivery, another id a gateway that started again.
        let late: Vec<(&str, i64, i64)> = alerts
            .iter()
            .filter_map(|(_, a, _)| {
                let st = seqs.get(a.branch.as_str())?;
                (seq_of(a) <= st.max).then_some((a.branch.as_str(), st.epoch, seq_of(a)))
            })
            .collect();
        let mut stored_ids: HashMap<(String, i64, i64), String> = HashMap::new();
        for chunk in late.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "SELECT branch, epoch, seq, id FROM alerts WHERE (branch, epoch, seq) IN (VALUES {})",
                rows(chunk.len(), 3)
            );
            let mut q = sqlx::query_as::<_, (String, i64, i64, String)>(AssertSqlSafe(sql));
            for (b, e, s) in chunk {
                q = q.bind(*b).bind(*e).bind(*s);
            }
            for (b, e, s, id) in q.fetch_all(&mut **tx).await.map_err(self.err("check late alerts"))? {
                stored_ids.insert((b, e, s), id);
            }
        }

        let mut in_batch: HashMap<(&str, i64, i64), &str> = HashMap::new();
        let mut epochs = Vec::with_capacity(alerts.len());
        let mut last_seen: BTreeMap<&str, i64> = BTreeMap::new();
        for (_, a, m) in alerts {
            let branch = a.branch.as_str();
            let seq = seq_of(a);
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
                    let key = (branch.to_string(), st.epoch, seq);
                    let other_stored = stored_ids.get(&key).is_some_and(|id| *id != a.id);
                    let other_in_batch = in_batch.get(&(branch, st.epoch, seq)).is_some_and(|id| *id != a.id);
                    if other_stored || other_in_batch {
                        st.epoch += 1;
                        st.max = seq;
                        out.seq_notes.push(SeqNote::Restarted { branch: a.branch.clone(), seq: a.seq.0 });
                    }
                    st.epoch
                }
            };
            in_batch.entry((branch, epoch, seq)).or_insert(a.id.as_str());
            epochs.push(epoch);
            let e = last_seen.entry(branch).or_insert(i64::MIN);
            *e = (*e).max(ms(m.received_at));
        }

        let mut inserted: HashSet<(String, String)> = HashSet::new();
        for (chunk_no, chunk) in alerts.chunks(ROWS_PER_INSERT).enumerate() {
            let sql = format!(
                "INSERT INTO alerts (branch, id, seq, epoch, kind, state, severity, device, device_type, \
                 occurred_at, received_at, camera_down, follow_up, payload, notified) VALUES {} \
                 ON CONFLICT DO NOTHING RETURNING branch, id",
                rows(chunk.len(), 15)
            );
            let mut q = sqlx::query_as::<_, (String, String)>(AssertSqlSafe(sql));
            for (j, (_, a, m)) in chunk.iter().enumerate() {
                let (camera_down, follow_up) = match &a.body {
                    AlertBody::AlarmLink(d) => {
                        let follow = d.follow_up_of.is_some();
                        let down =
                            a.state == AlertState::Raised && !follow && d.cameras.iter().any(LinkedCamera::is_down);
                        (i64::from(down), i64::from(follow))
                    }
                    _ => (0, 0),
                };
                q = q
                    .bind(a.branch.as_str())
                    .bind(a.id.as_str())
                    .bind(seq_of(a))
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
                    .bind(m.payload.as_str())
                    // Not yet taken by the notifier.
                    .bind(0i64);
            }
            for row in q.fetch_all(&mut **tx).await.map_err(self.err("store alerts"))? {
                inserted.insert(row);
            }
        }

        let seq_rows: Vec<(&str, SeqState, i64)> =
            last_seen.iter().filter_map(|(b, last)| seqs.get(*b).map(|st| (*b, *st, *last))).collect();
        for chunk in seq_rows.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO branch_seq (branch, epoch, max_seq, last_seen) VALUES {} \
                 ON CONFLICT (branch) DO UPDATE SET \
                 max_seq = CASE WHEN excluded.epoch > branch_seq.epoch THEN excluded.max_seq \
                                WHEN excluded.epoch = branch_seq.epoch AND excluded.max_seq > branch_seq.max_seq \
                                THEN excluded.max_seq ELSE branch_seq.max_seq END, \
                 epoch = CASE WHEN excluded.epoch > branch_seq.epoch THEN excluded.epoch ELSE branch_seq.epoch END, \
                 last_seen = CASE WHEN excluded.last_seen > branch_seq.last_seen THEN excluded.last_seen \
                                  ELSE branch_seq.last_seen END",
                rows(chunk.len(), 4)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (b, st, last) in chunk {
                q = q.bind(*b).bind(st.epoch).bind(st.max).bind(*last);
            }
            q.execute(&mut **tx).await.map_err(self.err("store the branches' seq"))?;
        }

        // Each new alert's consequences. A duplicate has had them already.
        let mut cameras: BTreeMap<(&str, &str), &str> = BTreeMap::new();
        let mut facts: Vec<FactIn<'_>> = Vec::new();
        let mut edges: Vec<(&Alert, &str)> = Vec::new();
        let mut seen_now: HashSet<(&str, &str)> = HashSet::new();
        let mut alarms: Vec<(&str, &str, i64)> = Vec::new();
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
            if needs_ack(a) {
                alarms.push((a.branch.as_str(), a.id.as_str(), ms(a.occurred_at)));
            }
            match &a.body {
                AlertBody::CameraOffline(d) => {
                    let raised = a.state == AlertState::Raised;
                    cameras.insert((a.branch.as_str(), a.device.id.as_str()), a.device.name.as_str());
                    facts.push(FactIn {
                        branch: a.branch.as_str(),
                        kind: "camera",
                        subject: a.device.id.as_str(),
                        at: ms(a.occurred_at),
                        bad: raised,
                        reason: raised.then_some(d.status.as_str()),
                        source: "alert",
                        received_at: ms(m.received_at),
                    });
                    edges.push((a, ""));
                }
                AlertBody::DeviceFault(d) => edges.push((a, d.fault.as_str())),
                AlertBody::AlarmLink(_) | AlertBody::DoorStatus(_) => {}
            }
        }
        let subjects: Vec<(&str, &str, &str, &str, bool)> =
            cameras.iter().map(|((b, id), name)| (*b, "camera", *id, *name, false)).collect();
        self.subjects(tx, &subjects).await?;
        self.facts(tx, &facts).await?;
        for chunk in alarms.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO open_alarms (branch, alert_id, occurred_at) VALUES {} ON CONFLICT DO NOTHING",
                rows(chunk.len(), 3)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (b, id, at) in chunk {
                q = q.bind(*b).bind(*id).bind(*at);
            }
            q.execute(&mut **tx).await.map_err(self.err("store open alarms"))?;
        }
        self.fault_edges(tx, &edges).await
    }

    /// Raised camera-offline and device-fault alerts open conditions; their clears close them
    /// and record the repairs. Pairs within the batch are matched here, in arrival order; the
    /// rest against the database, in two statements.
    async fn fault_edges(&self, tx: &mut Transaction<'static, Any>, edges: &[(&Alert, &str)]) -> Result<(), DbError> {
        type Key<'a> = (&'a str, &'static str, &'a str, &'a str);
        // Raised in this batch and not (yet) cleared in it: key → (raised_at, device type).
        let mut open: HashMap<Key<'_>, (i64, &str)> = HashMap::new();
        let mut open_order: Vec<Key<'_>> = Vec::new();
        let mut repairs: Vec<(&str, &str, String, i64, i64)> = Vec::new();
        let mut db_clears: Vec<(Key<'_>, &Alert)> = Vec::new();
        for (a, fault) in edges {
            let key: Key<'_> = (a.branch.as_str(), a.kind().as_str(), a.device.id.as_str(), fault);
            match a.state {
                AlertState::Raised => {
                    if let std::collections::hash_map::Entry::Vacant(e) = open.entry(key) {
                        e.insert((ms(a.occurred_at), a.device.device_type.as_str()));
                        open_order.push(key);
                    }
                }
                AlertState::Cleared => match open.remove(&key) {
                    Some((raised_at, ty)) => {
                        repairs.push((a.branch.as_str(), a.id.as_str(), ty.to_string(), raised_at, ms(a.occurred_at)))
                    }
                    None => db_clears.push((key, a)),
                },
            }
        }
        for chunk in db_clears.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "DELETE FROM open_faults WHERE (branch, kind, device, fault) IN (VALUES {}) \
                 RETURNING branch, kind, device, fault, raised_at, device_type",
                rows(chunk.len(), 4)
            );
            let mut q = sqlx::query_as::<_, (String, String, String, String, i64, String)>(AssertSqlSafe(sql));
            for ((b, k, d, f), _) in chunk {
                q = q.bind(*b).bind(*k).bind(*d).bind(*f);
            }
            let closed = q.fetch_all(&mut **tx).await.map_err(self.err("close faults"))?;
            for (b, k, d, f, raised_at, ty) in closed {
                if let Some((_, a)) =
                    chunk.iter().find(|((cb, ck, cd, cf), _)| *cb == b && *ck == k && *cd == d && *cf == f)
                {
                    repairs.push((a.branch.as_str(), a.id.as_str(), ty, raised_at, ms(a.occurred_at)));
                }
            }
        }
        for chunk in repairs.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO repairs (branch, alert_id, device_type, raised_at, cleared_at) VALUES {} \
                 ON CONFLICT DO NOTHING",
                rows(chunk.len(), 5)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (b, id, ty, raised, cleared) in chunk {
                q = q.bind(*b).bind(*id).bind(ty.as_str()).bind(*raised).bind(*cleared);
            }
            q.execute(&mut **tx).await.map_err(self.err("record repairs"))?;
        }
        let still_open: Vec<(Key<'_>, (i64, &str))> =
            open_order.into_iter().filter_map(|k| open.get(&k).map(|v| (k, *v))).collect();
        for chunk in still_open.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO open_faults (branch, kind, device, fault, raised_at, device_type) VALUES {} \
                 ON CONFLICT DO NOTHING",
                rows(chunk.len(), 6)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for ((b, k, d, f), (raised_at, ty)) in chunk {
                q = q.bind(*b).bind(*k).bind(*d).bind(*f).bind(*raised_at).bind(*ty);
            }
            q.execute(&mut **tx).await.map_err(self.err("open faults"))?;
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
                // The precise code (`unreachable` rather than `offline`) is the outage's reason.
                let reason = bad.then(|| d.detail().to_string());
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

    /// Registers cameras, zones or gateways: (branch, kind, id, name, required). A real name
    /// replaces a placeholder (the id, or nothing), never the other way round.
    async fn subjects(
        &self,
        tx: &mut Transaction<'static, Any>,
        list: &[(&str, &str, &str, &str, bool)],
    ) -> Result<(), DbError> {
        for chunk in list.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO subjects (branch, subject_kind, subject, name, required) VALUES {} \
                 ON CONFLICT (branch, subject_kind, subject) DO UPDATE SET \
                 name = CASE WHEN excluded.name = '' OR excluded.name = excluded.subject THEN subjects.name \
                             ELSE excluded.name END, \
                 required = CASE WHEN excluded.subject_kind = 'zone' THEN excluded.required ELSE subjects.required END",
                rows(chunk.len(), 5)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (b, k, id, name, required) in chunk {
                q = q.bind(*b).bind(*k).bind(*id).bind(*name).bind(i64::from(*required));
            }
            q.execute(&mut **tx).await.map_err(self.err("register cameras, zones or gateways"))?;
        }
        Ok(())
    }

    async fn subject(
        &self,
        tx: &mut Transaction<'static, Any>,
        branch: &BranchId,
        kind: &str,
        id: &str,
        name: &str,
        required: bool,
    ) -> Result<(), DbError> {
        self.subjects(tx, &[(branch.as_str(), kind, id, name, required)]).await
    }

    /// Records facts on timelines; the same fact twice is stored once.
    async fn facts(&self, tx: &mut Transaction<'static, Any>, list: &[FactIn<'_>]) -> Result<(), DbError> {
        for chunk in list.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO timeline (branch, subject_kind, subject, at, bad, reason, source, received_at) \
                 VALUES {} ON CONFLICT DO NOTHING",
                rows(chunk.len(), 8)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for f in chunk {
                q = q
                    .bind(f.branch)
                    .bind(f.kind)
                    .bind(f.subject)
                    .bind(f.at)
                    .bind(i64::from(f.bad))
                    .bind(f.reason)
                    .bind(f.source)
                    .bind(f.received_at);
            }
            q.execute(&mut **tx).await.map_err(self.err("record state changes"))?;
        }
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
        let f = FactIn {
            branch: branch.as_str(),
            kind,
            subject: id,
            at: ms(at),
            bad,
            reason: reason.as_deref(),
            source,
            received_at: ms(received_at),
        };
        self.facts(tx, &[f]).await
    }
}

/// A timeline fact on its way in.
struct FactIn<'a> {
    branch: &'a str,
    kind: &'a str,
    subject: &'a str,
    at: i64,
    bad: bool,
    reason: Option<&'a str>,
    source: &'a str,
    received_at: i64,
}

/// `($1, …, $cols), ($cols+1, …)`: `n` rows of `cols` parameters.
pub(crate) fn rows(n: usize, cols: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('(');
        s.push_str(&placeholders(i * cols + 1, cols));
        s.push(')');
    }
    s
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
