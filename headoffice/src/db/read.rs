//! The reading side: every query is bounded by what it is asked for. The report reads the
//! window's facts and, per camera, zone and gateway, the one fact before the window that says
//! how it started; aggregates (alarm counts, repairs) are computed by the database.

use std::collections::HashMap;
use std::sync::Arc;

use futures::TryStreamExt;
use protocols::time::Timestamp;
use protocols::{Alert, AlertKind, BranchId, CoverageReport, DeviceHealth, GatewayStatus, Severity};

use super::write::severity_rank;
use super::{Counters, DbError, Store, ms, ts};
use crate::records::{DeviceCounts, Latest, Snapshot};
use crate::report::{Fact, RepairAgg, ReportData, Subject, SubjectKind, Window};

/// `hq alerts`: which alerts, in which window, how many.
#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    pub branch: Option<BranchId>,
    pub kind: Option<AlertKind>,
    pub severity_min: Option<Severity>,
    /// `occurred_at >= from`.
    pub from: Option<Timestamp>,
    /// `occurred_at < to`.
    pub to: Option<Timestamp>,
    /// Only the last `limit` (by time).
    pub limit: Option<usize>,
}

/// One run of missing `seq` of one branch.
#[derive(Debug, Clone, PartialEq)]
pub struct GapRow {
    pub branch: BranchId,
    pub from: u64,
    pub to: u64,
    /// When the first alert beyond the hole was received.
    pub detected_at: Timestamp,
    /// When the branch's last alert was received.
    pub last_seen: Timestamp,
}

impl Store {
    /// The named counters.
    pub async fn counters(&self) -> Result<Counters, DbError> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT name, value FROM counters")
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("read the counters"))?;
        let mut c = Counters::default();
        for (name, v) in rows {
            let v = u64::try_from(v).unwrap_or(0);
            match name.as_str() {
                "alerts" => c.alerts = v,
                "duplicates" => c.duplicates = v,
                "malformed" => c.malformed = v,
                "gateway_changes" => c.gateway_changes = v,
                "device_changes" => c.device_changes = v,
                "zone_changes" => c.zone_changes = v,
                "pruned" => c.pruned = v,
                _ => {}
            }
        }
        Ok(c)
    }

    /// The latest retained values of every branch.
    pub async fn snapshot(&self) -> Result<Snapshot, DbError> {
        let mut s = Snapshot::default();
        let rows: Vec<(i64, i64, String)> = sqlx::query_as("SELECT since, received_at, payload FROM latest_gateways")
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("read the gateways' status"))?;
        for (since, received_at, payload) in rows {
            let value: GatewayStatus =
                serde_json::from_str(&payload).map_err(|e| self.corrupt("a gateway status", e))?;
            s.gateways
                .insert(value.branch.clone(), Latest { received_at: ts(received_at), since: Some(ts(since)), value });
        }
        // Devices that are online are only counted; the others are shown one by one.
        let counts: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT branch, SUM(CASE WHEN device_type = 'camera' THEN 1 ELSE 0 END), \
                    SUM(CASE WHEN device_type = 'camera' AND state = 'online' THEN 1 ELSE 0 END) \
             FROM latest_devices GROUP BY branch",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("count the devices"))?;
        for (branch, cameras, online) in counts {
            let b = BranchId::new(branch).map_err(|e| self.corrupt("a branch id", e))?;
            let n = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
            s.device_counts.insert(b, DeviceCounts { cameras: n(cameras), cameras_online: n(online) });
        }
        let mut rows = sqlx::query_as::<_, (i64, String)>(
            "SELECT received_at, payload FROM latest_devices WHERE state <> 'online'",
        )
        .fetch(&self.pool);
        while let Some((received_at, payload)) = rows.try_next().await.map_err(self.err("read the devices' health"))? {
            let value: DeviceHealth =
                serde_json::from_str(&payload).map_err(|e| self.corrupt("a device's health", e))?;
            let since = Some(value.since);
            s.devices.insert(
                (value.branch.clone(), value.device.id.clone()),
                Latest { received_at: ts(received_at), since, value },
            );
        }
        drop(rows);
        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT received_at, payload FROM latest_coverage")
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("read the coverage reports"))?;
        for (received_at, payload) in rows {
            let value: CoverageReport =
                serde_json::from_str(&payload).map_err(|e| self.corrupt("a coverage report", e))?;
            s.coverage.insert(value.branch.clone(), Latest { received_at: ts(received_at), since: None, value });
        }
        Ok(s)
    }

    /// Calls `each` with every matching alert's payload (as published), oldest first. Rows are
    /// streamed: memory does not grow with the number of alerts.
    pub async fn for_each_alert<E>(
        &self,
        q: &AlertQuery,
        mut each: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<Result<(), E>, DbError> {
        let mut sql = String::from("SELECT payload FROM alerts WHERE 1 = 1");
        let mut n = 0;
        let mut next = |sql: &mut String, cond: &str| {
            n += 1;
            sql.push_str(&format!(" AND {cond} ${n}"));
        };
        if q.branch.is_some() {
            next(&mut sql, "branch =");
        }
        if q.kind.is_some() {
            next(&mut sql, "kind =");
        }
        if q.severity_min.is_some() {
            next(&mut sql, "severity >=");
        }
        if q.from.is_some() {
            next(&mut sql, "occurred_at >=");
        }
        if q.to.is_some() {
            next(&mut sql, "occurred_at <");
        }
        let limited = q.limit.is_some();
        if limited {
            sql.push_str(" ORDER BY occurred_at DESC, branch DESC, seq DESC");
            n += 1;
            sql.push_str(&format!(" LIMIT ${n}"));
        } else {
            sql.push_str(" ORDER BY occurred_at, branch, seq");
        }
        let mut query = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql));
        if let Some(b) = &q.branch {
            query = query.bind(b.as_str().to_string());
        }
        if let Some(k) = q.kind {
            query = query.bind(k.as_str());
        }
        if let Some(s) = q.severity_min {
            query = query.bind(severity_rank(s));
        }
        if let Some(f) = q.from {
            query = query.bind(ms(f));
        }
        if let Some(t) = q.to {
            query = query.bind(ms(t));
        }
        if let Some(l) = q.limit {
            query = query.bind(i64::try_from(l).unwrap_or(i64::MAX));
        }
        if limited {
            // At most `limit` rows: read them, then hand them over oldest first.
            let rows = query.fetch_all(&self.pool).await.map_err(self.err("read alerts"))?;
            for (p,) in rows.iter().rev() {
                if let Err(e) = each(p) {
                    return Ok(Err(e));
                }
            }
            return Ok(Ok(()));
        }
        let mut rows = query.fetch(&self.pool);
        while let Some((p,)) = rows.try_next().await.map_err(self.err("read alerts"))? {
            if let Err(e) = each(&p) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// Every open hole in every branch's current sequence.
    pub async fn gaps(&self) -> Result<Vec<GapRow>, DbError> {
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT g.branch, g.seq, g.nxt, g.nxt_received, s.last_seen FROM ( \
                 SELECT a.branch, a.seq, \
                        LEAD(a.seq) OVER (PARTITION BY a.branch ORDER BY a.seq) AS nxt, \
                        LEAD(a.received_at) OVER (PARTITION BY a.branch ORDER BY a.seq) AS nxt_received \
                 FROM alerts a JOIN branch_seq b ON b.branch = a.branch AND a.epoch = b.epoch \
             ) g JOIN branch_seq s ON s.branch = g.branch \
             WHERE g.nxt > g.seq + 1 ORDER BY g.branch, g.seq",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("look for seq gaps"))?;
        rows.into_iter()
            .map(|(branch, seq, nxt, received, last)| {
                Ok(GapRow {
                    branch: BranchId::new(branch).map_err(|e| self.corrupt("a branch id", e))?,
                    from: u64::try_from(seq + 1).unwrap_or(0),
                    to: u64::try_from(nxt - 1).unwrap_or(0),
                    detected_at: ts(received),
                    last_seen: ts(last),
                })
            })
            .collect()
    }

    /// Everything the assessment report needs for window `w`, and nothing outside it but the
    /// state each timeline started the window in.
    pub async fn report_data(&self, w: Window) -> Result<ReportData, DbError> {
        let (from, to) = (ms(w.from), ms(w.to));
        let mut data = ReportData::default();

        let rows: Vec<(String, String, String, String, i64)> =
            sqlx::query_as("SELECT branch, subject_kind, subject, name, required FROM subjects")
                .fetch_all(&self.pool)
                .await
                .map_err(self.err("read cameras, zones and gateways"))?;
        for (branch, kind, id, name, required) in rows {
            let Some(kind) = SubjectKind::parse(&kind) else { continue };
            data.subjects.push(Subject {
                branch: BranchId::new(branch).map_err(|e| self.corrupt("a branch id", e))?,
                kind,
                id,
                name,
                required: required != 0,
            });
        }

        // The window's facts, and per subject the last fact before it (one index probe each).
        let mut rows = sqlx::query_as::<_, (String, String, String, i64, i64, Option<String>)>(
            "SELECT branch, subject_kind, subject, at, bad, reason FROM timeline WHERE at >= $1 AND at < $2 \
             UNION ALL \
             SELECT t.branch, t.subject_kind, t.subject, t.at, t.bad, t.reason \
             FROM subjects s JOIN timeline t ON t.pk = ( \
                 SELECT t2.pk FROM timeline t2 \
                 WHERE t2.branch = s.branch AND t2.subject_kind = s.subject_kind AND t2.subject = s.subject \
                   AND t2.at < $1 ORDER BY t2.at DESC, t2.pk DESC LIMIT 1)",
        )
        .bind(from)
        .bind(to)
        .fetch(&self.pool);
        // Reasons are a handful of words: one copy each.
        let mut reasons: HashMap<String, Arc<str>> = HashMap::new();
        while let Some((branch, kind, subject, at, bad, reason)) =
            rows.try_next().await.map_err(self.err("read the timelines"))?
        {
            let Some(kind) = SubjectKind::parse(&kind) else { continue };
            let branch = BranchId::new(branch).map_err(|e| self.corrupt("a branch id", e))?;
            let reason = reason.map(|r| match reasons.get(&r) {
                Some(a) => a.clone(),
                None => {
                    let a: Arc<str> = Arc::from(r.as_str());
                    reasons.insert(r, a.clone());
                    a
                }
            });
            let fact = Fact { at: ts(at), bad: bad != 0, reason };
            data.timelines.entry((branch, kind, subject)).or_default().push(fact);
        }
        drop(rows);

        // Grouped by an expression, not the column: with a (branch, time) index at hand SQLite
        // otherwise walks every branch of it (2 s at 2,000 branches) instead of the covering
        // (kind, time, …) index (60 ms). The result is the same on both backends.
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT branch || '', COUNT(*) FROM alerts WHERE kind = 'alarm-link' AND state = 'raised' \
             AND follow_up = 0 AND occurred_at >= $1 AND occurred_at < $2 GROUP BY branch || ''",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("count alarms"))?;
        for (branch, n) in rows {
            let b = BranchId::new(branch).map_err(|e| self.corrupt("a branch id", e))?;
            data.alarms.insert(b, usize::try_from(n).unwrap_or(0));
        }

        let mut rows = sqlx::query_as::<_, (String,)>(
            "SELECT payload FROM alerts WHERE kind = 'alarm-link' AND camera_down = 1 \
             AND occurred_at >= $1 AND occurred_at < $2",
        )
        .bind(from)
        .bind(to)
        .fetch(&self.pool);
        while let Some((payload,)) = rows.try_next().await.map_err(self.err("read alarms"))? {
            let a: Alert = serde_json::from_str(&payload).map_err(|e| self.corrupt("an alarm", e))?;
            data.alarms_camera_down.push(a);
        }
        drop(rows);
        // Ordered here, not by the database: an ORDER BY that a (branch, time) index could
        // deliver tempts SQLite to walk that index and look up every alert of the window (2 s at
        // 2,000 branches) instead of the handful the (kind, time, …) index finds.
        data.alarms_camera_down
            .sort_by(|a, b| (&a.branch, a.occurred_at, a.seq).cmp(&(&b.branch, b.occurred_at, b.seq)));

        let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT branch, device_type, COUNT(*), CAST(SUM(cleared_at - raised_at) AS BIGINT), \
                    MAX(cleared_at - raised_at) \
             FROM repairs WHERE cleared_at >= $1 AND cleared_at < $2 GROUP BY branch, device_type",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("aggregate repairs"))?;
        for (branch, device_type, n, sum_ms, max_ms) in rows {
            data.repairs.push(RepairAgg {
                branch: BranchId::new(branch).map_err(|e| self.corrupt("a branch id", e))?,
                device_type,
                repairs: usize::try_from(n).unwrap_or(0),
                sum_ms,
                max_ms,
            });
        }
        Ok(data)
    }
}
