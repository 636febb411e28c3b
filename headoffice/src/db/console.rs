//! What the web console (`hq serve`) keeps besides the branches' data: users and their
//! sessions, alarm acknowledgements, the audit log; and the reads its pages make.

use std::collections::HashMap;
use std::sync::Arc;

use protocols::time::Timestamp;
use protocols::{Alert, AlertKind, BranchId, CoverageReport, DeviceHealth, GatewayStatus, Severity};
use sqlx::AssertSqlSafe;

use super::write::{needs_ack, severity_rank};
use super::{DbError, Store, ms, ts};
use crate::records::Latest;
use crate::report::Fact;

/// What a console user may do. Ordered: each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Sees every page.
    Viewer,
    /// Also acknowledges alarms.
    Operator,
    /// Also manages users and reads the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One console user, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub name: String,
    pub role: Role,
    /// `zh-CN` or `en`; `None`: the browser's choice.
    pub lang: Option<String>,
    pub disabled: bool,
    pub created_at: Timestamp,
}

/// A change to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password_hash: Option<String>,
    /// `Some(None)` goes back to the browser's language.
    pub lang: Option<Option<String>>,
}

/// A signed-in browser, as a request sees it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub user: String,
    pub role: Role,
    pub lang: Option<String>,
    pub csrf: String,
}

/// What acknowledging an alarm did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    Acked,
    /// Someone was first: who and when.
    AlreadyAcked {
        by: String,
        at: Timestamp,
    },
    /// The alert exists but is not an alarm that needs acknowledging.
    NotAnAlarm,
    NoSuchAlert,
}

/// An acknowledgement as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub by: String,
    pub at: Timestamp,
    pub comment: String,
}

/// One line of the console's alert list.
#[derive(Debug, Clone)]
pub struct AlarmRow {
    pub alert: Alert,
    /// An alarm that must be acknowledged (acknowledged or not).
    pub needs_ack: bool,
    /// Still waiting for an acknowledgement.
    pub open: bool,
    pub ack: Option<Ack>,
    /// For a raised alarm-link: its linked cameras were not all live.
    pub camera_down: bool,
}

/// Which alerts the list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListState {
    /// Alarms nobody has acknowledged yet.
    #[default]
    Open,
    /// Alarms, acknowledged or not.
    Alarms,
    /// Acknowledged alarms.
    Acked,
    Raised,
    Cleared,
    All,
}

impl ListState {
    pub const ALL: [ListState; 6] =
        [ListState::Open, ListState::Alarms, ListState::Acked, ListState::Raised, ListState::Cleared, ListState::All];

    pub fn as_str(self) -> &'static str {
        match self {
            ListState::Open => "open",
            ListState::Alarms => "alarms",
            ListState::Acked => "acked",
            ListState::Raised => "raised",
            ListState::Cleared => "cleared",
            ListState::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<ListState> {
        ListState::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The console's alert list: which, newest first, how many.
#[derive(Debug, Clone, Default)]
pub struct AlertListQuery {
    pub state: ListState,
    /// Only these branches (a branch, or a region's branches); `None`: all.
    pub branches: Option<Vec<BranchId>>,
    pub kind: Option<AlertKind>,
    pub severity_min: Option<Severity>,
    pub limit: usize,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// Changes whenever anything the overview shows may have changed (see [`Store::change_marker`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeMarker(Vec<i64>);

impl ChangeMarker {
    /// The part that changes with alerts, acknowledgements and orders only.
    pub fn alerts(&self) -> ChangeMarker {
        ChangeMarker(self.0.iter().take(3).chain(self.0.last()).copied().collect())
    }
}

/// The latest retained values of one branch.
#[derive(Debug, Clone, Default)]
pub struct BranchState {
    pub gateway: Option<Latest<GatewayStatus>>,
    pub devices: Vec<Latest<DeviceHealth>>,
    pub coverage: Option<Latest<CoverageReport>>,
}

impl Store {
    /// `Ok(false)` when a user of that name exists already.
    pub async fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        role: Role,
        now: Timestamp,
    ) -> Result<bool, DbError> {
        let r = sqlx::query(
            "INSERT INTO users (name, password_hash, role, lang, disabled, created_at, updated_at) \
             VALUES ($1, $2, $3, NULL, 0, $4, $4) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .map_err(self.err("create a user"))?;
        Ok(r.rows_affected() == 1)
    }

    /// `Ok(false)` when there is no such user. Disabling a user or changing the password ends
    /// the user's sessions.
    pub async fn update_user(&self, name: &str, c: &UserChange, now: Timestamp) -> Result<bool, DbError> {
        let mut tx = self.pool.begin().await.map_err(self.err("begin"))?;
        let found: Option<(String,)> = sqlx::query_as("SELECT name FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(self.err("find the user"))?;
        if found.is_none() {
            return Ok(false);
        }
        if let Some(role) = c.role {
            sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE name = $3")
                .bind(role.as_str())
                .bind(ms(now))
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(self.err("change the role"))?;
        }
        if let Some(d) = c.disabled {
            sqlx::query("UPDATE users SET disabled = $1, updated_at = $2 WHERE name = $3")
                .bind(i64::from(d))
                .bind(ms(now))
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(self.err("disable the user"))?;
        }
        if let Some(h) = &c.password_hash {
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE name = $3")
                .bind(h.as_str())
                .bind(ms(now))
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(self.err("change the password"))?;
        }
        if let Some(lang) = &c.lang {
            sqlx::query("UPDATE users SET lang = $1, updated_at = $2 WHERE name = $3")
                .bind(lang.as_deref())
                .bind(ms(now))
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(self.err("change the language"))?;
        }
        if c.disabled == Some(true) || c.password_hash.is_some() {
            sqlx::query("DELETE FROM sessions WHERE user_name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(self.err("end the user's sessions"))?;
        }
        tx.commit().await.map_err(self.err("commit"))?;
        Ok(true)
    }

    pub async fn users(&self) -> Result<Vec<UserRow>, DbError> {
        let rows: Vec<(String, String, Option<String>, i64, i64)> =
            sqlx::query_as("SELECT name, role, lang, disabled, created_at FROM users ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(self.err("list the users"))?;
        rows.into_iter()
            .map(|(name, role, lang, disabled, created_at)| {
                let role = Role::parse(&role).ok_or_else(|| self.corrupt("a user's role", &role))?;
                Ok(UserRow { name, role, lang, disabled: disabled != 0, created_at: ts(created_at) })
            })
            .collect()
    }

    /// The password hash of an enabled user.
    pub async fn password_hash(&self, name: &str) -> Result<Option<String>, DbError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT password_hash FROM users WHERE name = $1 AND disabled = 0")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err("read the user"))?;
        Ok(row.map(|r| r.0))
    }

    pub async fn create_session(
        &self,
        token_hash: &str,
        user: &str,
        csrf: &str,
        now: Timestamp,
        expires: Timestamp,
    ) -> Result<(), DbError> {
        // Expired sessions go when new ones come: the table stays as small as the users.
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(ms(now))
            .execute(&self.pool)
            .await
            .map_err(self.err("remove expired sessions"))?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_name, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user)
        .bind(csrf)
        .bind(ms(now))
        .bind(ms(expires))
        .execute(&self.pool)
        .await
        .map_err(self.err("store the session"))?;
        Ok(())
    }

    /// The live session of an enabled user.
    pub async fn session(&self, token_hash: &str, now: Timestamp) -> Result<Option<SessionInfo>, DbError> {
        let row: Option<(String, String, Option<String>, String)> = sqlx::query_as(
            "SELECT u.name, u.role, u.lang, s.csrf FROM sessions s JOIN users u ON u.name = s.user_name \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled = 0",
        )
        .bind(token_hash)
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err("read the session"))?;
        let Some((user, role, lang, csrf)) = row else { return Ok(None) };
        let role = Role::parse(&role).ok_or_else(|| self.corrupt("a user's role", &role))?;
        Ok(Some(SessionInfo { user, role, lang, csrf }))
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(self.err("end the session"))?;
        Ok(())
    }

    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
        now: Timestamp,
    ) -> Result<(), DbError> {
        sqlx::query("INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind(ms(now))
            .bind(actor)
            .bind(action)
            .bind(target)
            .bind(detail)
            .execute(&self.pool)
            .await
            .map_err(self.err("write the audit log"))?;
        Ok(())
    }

    /// The newest `limit` entries, newest first.
    pub async fn audit_log(&self, limit: usize) -> Result<Vec<AuditRow>, DbError> {
        let rows: Vec<(i64, String, String, String, String)> =
            sqlx::query_as("SELECT at, actor, action, target, detail FROM audit_log ORDER BY pk DESC LIMIT $1")
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(self.err("read the audit log"))?;
        Ok(rows
            .into_iter()
            .map(|(at, actor, action, target, detail)| AuditRow { at: ts(at), actor, action, target, detail })
            .collect())
    }

    /// Unacknowledged alarms per branch.
    pub async fn open_alarm_counts(&self) -> Result<HashMap<String, u32>, DbError> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT branch, COUNT(*) FROM open_alarms GROUP BY branch")
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("count open alarms"))?;
        Ok(rows.into_iter().map(|(b, n)| (b, u32::try_from(n).unwrap_or(u32::MAX))).collect())
    }

    /// Acknowledges an alarm with a comment, and writes the audit log, in one transaction.
    pub async fn ack_alarm(
        &self,
        branch: &str,
        alert_id: &str,
        user: &str,
        comment: &str,
        now: Timestamp,
    ) -> Result<AckOutcome, DbError> {
        let mut tx = self.pool.begin().await.map_err(self.err("begin"))?;
        let row: Option<(String,)> = sqlx::query_as("SELECT payload FROM alerts WHERE branch = $1 AND id = $2")
            .bind(branch)
            .bind(alert_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(self.err("find the alarm"))?;
        let Some((payload,)) = row else { return Ok(AckOutcome::NoSuchAlert) };
        let alert: Alert = serde_json::from_str(&payload).map_err(|e| self.corrupt("an alert", e))?;
        if !needs_ack(&alert) {
            return Ok(AckOutcome::NotAnAlarm);
        }
        let stored = sqlx::query(
            "INSERT INTO alarm_acks (branch, alert_id, acked_by, acked_at, comment) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT DO NOTHING",
        )
        .bind(branch)
        .bind(alert_id)
        .bind(user)
        .bind(ms(now))
        .bind(comment)
        .execute(&mut *tx)
        .await
        .map_err(self.err("store the acknowledgement"))?;
        if stored.rows_affected() == 0 {
            let (by, at): (String, i64) =
                sqlx::query_as("SELECT acked_by, acked_at FROM alarm_acks WHERE branch = $1 AND alert_id = $2")
                    .bind(branch)
                    .bind(alert_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(self.err("read the acknowledgement"))?;
            return Ok(AckOutcome::AlreadyAcked { by, at: ts(at) });
        }
        sqlx::query("DELETE FROM open_alarms WHERE branch = $1 AND alert_id = $2")
            .bind(branch)
            .bind(alert_id)
            .execute(&mut *tx)
            .await
            .map_err(self.err("close the alarm"))?;
        sqlx::query("INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, 'ack', $3, $4)")
            .bind(ms(now))
            .bind(user)
            .bind(format!("{branch}/{alert_id}"))
            .bind(comment)
            .execute(&mut *tx)
            .await
            .map_err(self.err("write the audit log"))?;
        tx.commit().await.map_err(self.err("commit"))?;
        Ok(AckOutcome::Acked)
    }

    /// The console's alert list, newest first.
    pub async fn alert_list(&self, q: &AlertListQuery) -> Result<Vec<AlarmRow>, DbError> {
        let mut sql = String::from(
            "SELECT a.payload, a.camera_down, o.alert_id, k.acked_by, k.acked_at, k.comment FROM alerts a \
             LEFT JOIN open_alarms o ON o.branch = a.branch AND o.alert_id = a.id \
             LEFT JOIN alarm_acks k ON k.branch = a.branch AND k.alert_id = a.id WHERE 1 = 1",
        );
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        match q.state {
            ListState::Open => sql.push_str(" AND o.alert_id IS NOT NULL"),
            ListState::Acked => sql.push_str(" AND k.alert_id IS NOT NULL"),
            ListState::Alarms => sql.push_str(" AND (o.alert_id IS NOT NULL OR k.alert_id IS NOT NULL)"),
            ListState::Raised => sql.push_str(" AND a.state = 'raised'"),
            ListState::Cleared => sql.push_str(" AND a.state = 'cleared'"),
            ListState::All => {}
        }
        if let Some(bs) = &q.branches {
            if bs.is_empty() {
                return Ok(Vec::new());
            }
            let ps: Vec<String> = bs.iter().map(|_| next()).collect();
            sql.push_str(&format!(" AND a.branch IN ({})", ps.join(", ")));
        }
        if q.kind.is_some() {
            sql.push_str(&format!(" AND a.kind = {}", next()));
        }
        if q.severity_min.is_some() {
            sql.push_str(&format!(" AND a.severity >= {}", next()));
        }
        sql.push_str(&format!(" ORDER BY a.occurred_at DESC, a.branch, a.id LIMIT {}", next()));
        type Row = (String, i64, Option<String>, Option<String>, Option<i64>, Option<String>);
        let mut query = sqlx::query_as::<_, Row>(AssertSqlSafe(sql));
        if let Some(bs) = &q.branches {
            for b in bs {
                query = query.bind(b.as_str());
            }
        }
        if let Some(k) = q.kind {
            query = query.bind(k.as_str());
        }
        if let Some(s) = q.severity_min {
            query = query.bind(severity_rank(s));
        }
        query = query.bind(i64::try_from(q.limit).unwrap_or(i64::MAX));
        let rows = query.fetch_all(&self.pool).await.map_err(self.err("list alerts"))?;
        rows.into_iter()
            .map(|(payload, camera_down, open, by, at, comment)| {
                let alert: Alert = serde_json::from_str(&payload).map_err(|e| self.corrupt("an alert", e))?;
                let ack = match (by, at) {
                    (Some(by), Some(at)) => Some(Ack { by, at: ts(at), comment: comment.unwrap_or_default() }),
                    _ => None,
                };
                Ok(AlarmRow {
                    needs_ack: needs_ack(&alert),
                    open: open.is_some(),
                    ack,
                    camera_down: camera_down != 0,
                    alert,
                })
            })
            .collect()
    }

    /// A value that changes whenever a gateway status, a device's health, a coverage report,
    /// an alert or an acknowledgement is stored or removed. Cheap: a handful of aggregates.
    pub async fn change_marker(&self) -> Result<ChangeMarker, DbError> {
        let row: (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT CAST(COALESCE(SUM(value), 0) AS BIGINT) FROM counters WHERE name = 'alerts'), \
                    (SELECT COUNT(*) FROM open_alarms), \
                    (SELECT COUNT(*) FROM alarm_acks), \
                    (SELECT CAST(COALESCE(SUM(value), 0) AS BIGINT) FROM counters), \
                    (SELECT COALESCE(MAX(received_at), 0) FROM latest_gateways), \
                    (SELECT COALESCE(MAX(received_at), 0) FROM latest_devices), \
                    (SELECT COALESCE(MAX(received_at), 0) FROM latest_coverage), \
                    (SELECT COUNT(*) FROM latest_gateways), \
                    (SELECT COUNT(*) FROM latest_coverage), \
                    (SELECT COUNT(*) FROM order_events)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(self.err("look for changes"))?;
        Ok(ChangeMarker(vec![row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9]))
    }

    /// The latest retained values of one branch; every device, online or not.
    pub async fn branch_state(&self, branch: &BranchId) -> Result<BranchState, DbError> {
        let mut s = BranchState::default();
        let row: Option<(i64, i64, String)> =
            sqlx::query_as("SELECT since, received_at, payload FROM latest_gateways WHERE branch = $1")
                .bind(branch.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(self.err("read the gateway's status"))?;
        if let Some((since, received_at, payload)) = row {
            let value: GatewayStatus =
                serde_json::from_str(&payload).map_err(|e| self.corrupt("a gateway status", e))?;
            s.gateway = Some(Latest { received_at: ts(received_at), since: Some(ts(since)), value });
        }
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT received_at, payload FROM latest_devices WHERE branch = $1 ORDER BY device")
                .bind(branch.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(self.err("read the devices' health"))?;
        for (received_at, payload) in rows {
            let value: DeviceHealth =
                serde_json::from_str(&payload).map_err(|e| self.corrupt("a device's health", e))?;
            s.devices.push(Latest { received_at: ts(received_at), since: Some(value.since), value });
        }
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT received_at, payload FROM latest_coverage WHERE branch = $1")
                .bind(branch.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(self.err("read the coverage report"))?;
        if let Some((received_at, payload)) = row {
            let value: CoverageReport =
                serde_json::from_str(&payload).map_err(|e| self.corrupt("a coverage report", e))?;
            s.coverage = Some(Latest { received_at: ts(received_at), since: None, value });
        }
        Ok(s)
    }

    /// Whether anything at all is stored for a branch.
    pub async fn branch_known(&self, branch: &BranchId) -> Result<bool, DbError> {
        let row: (i64,) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM latest_gateways WHERE branch = $1) + \
                    (SELECT COUNT(*) FROM latest_coverage WHERE branch = $1) + \
                    (SELECT COUNT(*) FROM branch_seq WHERE branch = $1) + \
                    (SELECT COUNT(*) FROM subjects WHERE branch = $1)",
        )
        .bind(branch.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(self.err("look for the branch"))?;
        Ok(row.0 > 0)
    }

    /// One timeline (a gateway: `subject` ""; a camera; a zone) from `from` on, with the last
    /// fact before `from` (which says how the window started).
    pub async fn subject_facts(
        &self,
        branch: &BranchId,
        kind: &str,
        subject: &str,
        from: Timestamp,
    ) -> Result<Vec<Fact>, DbError> {
        let rows: Vec<(i64, i64, Option<String>)> = sqlx::query_as(
            "SELECT at, bad, reason FROM timeline WHERE branch = $1 AND subject_kind = $2 AND subject = $3 \
             AND at >= (SELECT COALESCE(MAX(at), $4) FROM timeline \
                        WHERE branch = $1 AND subject_kind = $2 AND subject = $3 AND at <= $4) \
             ORDER BY at, bad",
        )
        .bind(branch.as_str())
        .bind(kind)
        .bind(subject)
        .bind(ms(from))
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("read a timeline"))?;
        Ok(rows
            .into_iter()
            .map(|(at, bad, reason)| Fact { at: ts(at), bad: bad != 0, reason: reason.map(Arc::from) })
            .collect())
    }
}
