//! The notification queue: events taken once, messages stored until sent or given up.

use protocols::time::Timestamp;

use super::{DbError, Store, ms, ts};

/// An alert not yet taken by the notifier.
#[derive(Debug, Clone)]
pub struct UnnotifiedAlert {
    pub branch: String,
    pub id: String,
    pub payload: String,
    pub received_at: Timestamp,
}

/// An order event not yet taken by the notifier, with its order's facts.
#[derive(Debug, Clone)]
pub struct UnnotifiedOrderEvent {
    pub pk: i64,
    pub order_id: i64,
    pub at: Timestamp,
    pub action: String,
    pub note: String,
    pub branch: String,
    pub condition: String,
    pub subject: String,
    pub subject_name: String,
    pub severity: String,
}

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub dedup: String,
    pub channel: String,
    pub recipient: String,
    pub branch: String,
    pub kind: String,
    pub lang: String,
    pub subject: String,
    pub body: String,
    pub payload: String,
    pub expires_at: Timestamp,
}

/// A queued message.
#[derive(Debug, Clone)]
pub struct NotificationRow {
    pub id: i64,
    pub channel: String,
    pub recipient: String,
    pub branch: String,
    pub kind: String,
    pub subject: String,
    pub body: String,
    pub payload: String,
    pub state: String,
    pub attempts: i64,
    pub created_at: Timestamp,
    pub next_at: Timestamp,
    pub expires_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    pub answer: Option<String>,
    pub last_error: Option<String>,
}

/// A transaction of the notifier.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

impl Store {
    /// The untaken alerts of every branch that has one received at or before `settled` (so
    /// that a branch's storm is taken whole), at most `limit`.
    pub async fn unnotified_alerts(&self, settled: Timestamp, limit: usize) -> Result<Vec<UnnotifiedAlert>, DbError> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT branch, id, payload, received_at FROM alerts WHERE notified = 0 AND branch IN \
             (SELECT DISTINCT branch FROM alerts WHERE notified = 0 AND received_at <= $1) \
             ORDER BY received_at, branch, id LIMIT $2",
        )
        .bind(ms(settled))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("read the alerts to notify"))?;
        Ok(rows
            .into_iter()
            .map(|(branch, id, payload, r)| UnnotifiedAlert { branch, id, payload, received_at: ts(r) })
            .collect())
    }

    /// Untaken order events at or before `settled`.
    pub async fn unnotified_order_events(
        &self,
        settled: Timestamp,
        limit: usize,
    ) -> Result<Vec<UnnotifiedOrderEvent>, DbError> {
        type Row = (i64, i64, i64, String, String, String, String, String, String, String);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT e.pk, e.order_id, e.at, e.action, e.note, o.branch, o.condition, o.subject, o.subject_name, o.severity \
             FROM order_events e JOIN orders o ON o.id = e.order_id \
             WHERE e.notified = 0 AND e.at <= $1 ORDER BY e.pk LIMIT $2",
        )
        .bind(ms(settled))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("read the order events to notify"))?;
        Ok(rows
            .into_iter()
            .map(|r| UnnotifiedOrderEvent {
                pk: r.0,
                order_id: r.1,
                at: ts(r.2),
                action: r.3,
                note: r.4,
                branch: r.5,
                condition: r.6,
                subject: r.7,
                subject_name: r.8,
                severity: r.9,
            })
            .collect())
    }

    /// Open alarms that occurred between `oldest` and `cutoff` and were not escalated under
    /// `rule`.
    pub async fn unescalated_alarms(
        &self,
        cutoff: Timestamp,
        oldest: Timestamp,
        rule: &str,
    ) -> Result<Vec<(String, String, String)>, DbError> {
        sqlx::query_as(
            "SELECT a.branch, a.id, a.payload FROM open_alarms o JOIN alerts a ON a.branch = o.branch AND a.id = o.alert_id \
             WHERE o.occurred_at <= $1 AND o.occurred_at >= $3 AND NOT EXISTS \
             (SELECT 1 FROM escalated e WHERE e.branch = o.branch AND e.alert_id = o.alert_id AND e.rule = $2) \
             ORDER BY o.occurred_at LIMIT 1000",
        )
        .bind(ms(cutoff))
        .bind(rule)
        .bind(ms(oldest))
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("read the alarms to escalate"))
    }

    pub async fn begin_notify(&self) -> Result<Tx, DbError> {
        self.pool.begin().await.map_err(self.err("begin"))
    }

    /// Takes an alert: `false` when another notifier took it first.
    pub async fn take_alert(&self, tx: &mut Tx, branch: &str, id: &str) -> Result<bool, DbError> {
        let r = sqlx::query("UPDATE alerts SET notified = 1 WHERE branch = $1 AND id = $2 AND notified = 0")
            .bind(branch)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(self.err("take an alert"))?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn take_order_event(&self, tx: &mut Tx, pk: i64) -> Result<bool, DbError> {
        let r = sqlx::query("UPDATE order_events SET notified = 1 WHERE pk = $1 AND notified = 0")
            .bind(pk)
            .execute(&mut **tx)
            .await
            .map_err(self.err("take an order event"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Takes an escalation: `false` when it was made before.
    pub async fn take_escalation(
        &self,
        tx: &mut Tx,
        branch: &str,
        id: &str,
        rule: &str,
        now: Timestamp,
    ) -> Result<bool, DbError> {
        let r = sqlx::query(
            "INSERT INTO escalated (branch, alert_id, rule, at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(branch)
        .bind(id)
        .bind(rule)
        .bind(ms(now))
        .execute(&mut **tx)
        .await
        .map_err(self.err("record an escalation"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Queues a message; `false` when the same one is queued already.
    pub async fn queue_notification(&self, tx: &mut Tx, n: &NewNotification, now: Timestamp) -> Result<bool, DbError> {
        let r = sqlx::query(
            "INSERT INTO notifications (dedup, channel, recipient, branch, kind, lang, subject, body, payload, state, \
             attempts, created_at, next_at, claimed_until, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', 0, $10, $10, 0, $11) ON CONFLICT DO NOTHING",
        )
        .bind(&n.dedup)
        .bind(&n.channel)
        .bind(&n.recipient)
        .bind(&n.branch)
        .bind(&n.kind)
        .bind(&n.lang)
        .bind(&n.subject)
        .bind(&n.body)
        .bind(&n.payload)
        .bind(ms(now))
        .bind(ms(n.expires_at))
        .execute(&mut **tx)
        .await
        .map_err(self.err("queue a notification"))?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn commit_notify(&self, tx: Tx) -> Result<(), DbError> {
        tx.commit().await.map_err(self.err("commit"))
    }

    /// Pending messages due now, oldest first.
    pub async fn due_notifications(&self, now: Timestamp, limit: usize) -> Result<Vec<NotificationRow>, DbError> {
        self.notification_rows(
            "WHERE state = 'pending' AND next_at <= $1 AND claimed_until <= $1 ORDER BY next_at, id LIMIT $2",
            ms(now),
            limit,
        )
        .await
    }

    /// The newest messages, for `hq notify list`.
    pub async fn recent_notifications(&self, limit: usize) -> Result<Vec<NotificationRow>, DbError> {
        self.notification_rows("WHERE $1 = $1 ORDER BY id DESC LIMIT $2", 0, limit).await
    }

    async fn notification_rows(&self, tail: &str, a: i64, limit: usize) -> Result<Vec<NotificationRow>, DbError> {
        type Row = (
            i64,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
            String,
            i64,
            i64,
            i64,
            i64,
            Option<i64>,
            Option<String>,
            Option<String>,
        );
        let sql = format!(
            "SELECT id, channel, recipient, branch, kind, subject, body, payload, state, attempts, created_at, next_at, \
             expires_at, sent_at, answer, last_error FROM notifications {tail}"
        );
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(a)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("read the notifications"))?;
        Ok(rows
            .into_iter()
            .map(|r| NotificationRow {
                id: r.0,
                channel: r.1,
                recipient: r.2,
                branch: r.3,
                kind: r.4,
                subject: r.5,
                body: r.6,
                payload: r.7,
                state: r.8,
                attempts: r.9,
                created_at: ts(r.10),
                next_at: ts(r.11),
                expires_at: ts(r.12),
                sent_at: r.13.map(ts),
                answer: r.14,
                last_error: r.15,
            })
            .collect())
    }

    /// Holds a message for this sender until `until`: `false` when another holds it.
    pub async fn claim_notification(&self, id: i64, now: Timestamp, until: Timestamp) -> Result<bool, DbError> {
        let r = sqlx::query(
            "UPDATE notifications SET claimed_until = $1 WHERE id = $2 AND state = 'pending' AND claimed_until <= $3",
        )
        .bind(ms(until))
        .bind(id)
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(self.err("claim a notification"))?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn notification_sent(&self, id: i64, now: Timestamp, answer: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE notifications SET state = 'sent', sent_at = $1, answer = $2, attempts = attempts + 1, claimed_until = 0 \
             WHERE id = $3",
        )
        .bind(ms(now))
        .bind(answer)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(self.err("mark a notification sent"))?;
        Ok(())
    }

    /// A failed attempt: try again at `next`, or give up (expired) when past `expires_at`.
    pub async fn notification_failed(
        &self,
        id: i64,
        next: Timestamp,
        error: &str,
        expired: bool,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE notifications SET state = CASE WHEN $1 = 1 THEN 'expired' ELSE 'pending' END, next_at = $2, \
             last_error = $3, attempts = attempts + 1, claimed_until = 0 WHERE id = $4",
        )
        .bind(i64::from(expired))
        .bind(ms(next))
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(self.err("record a failed notification"))?;
        Ok(())
    }
}
