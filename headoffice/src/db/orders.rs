//! Rectification orders in the database: the check's transitions, applied so that several
//! processes checking at once change nothing twice, and what people do to orders.

use std::collections::HashMap;

use protocols::BranchId;
use protocols::time::Timestamp;
use sqlx::AssertSqlSafe;

use super::{DbError, Store, ms, ts};
use crate::directory::Directory;
use crate::orders::{
    self, ActiveOrder, Condition, OpenFault, OrderSeverity, OrderState, OrderStats, OrdersConfig, Transition,
};
use crate::report::Window;

/// One order as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRow {
    pub id: i64,
    pub branch: BranchId,
    pub condition: Condition,
    pub subject: String,
    pub subject_name: String,
    pub severity: OrderSeverity,
    pub state: OrderState,
    pub requirement: String,
    pub requirement_zh: String,
    pub assignee: String,
    pub taken_by: Option<String>,
    pub since: Timestamp,
    pub opened_at: Timestamp,
    pub deadline: Timestamp,
    pub fixed_at: Option<Timestamp>,
    pub verified_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    pub overdue_at: Option<Timestamp>,
    pub reopened: u32,
}

impl OrderRow {
    /// Past its deadline without being fixed (now, or when it was fixed late).
    pub fn overdue(&self, now: Timestamp) -> bool {
        self.overdue_at.is_some()
            || self.fixed_at.is_some_and(|f| f > self.deadline)
            || (matches!(self.state, OrderState::Open | OrderState::InProgress) && now > self.deadline)
    }
}

/// One entry of an order's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEvent {
    pub at: Timestamp,
    /// A user, `hq` for the automatic check, or `cli:USER`.
    pub actor: String,
    pub action: String,
    pub note: String,
}

/// Which orders to list.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    /// `None`: every state.
    pub states: Option<Vec<OrderState>>,
    pub branches: Option<Vec<BranchId>>,
    pub overdue_only: bool,
    pub limit: usize,
}

/// Why a person's change to an order was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderRefusal {
    #[error("no rectification order {0}")]
    NoSuchOrder(i64),
    #[error("order {id} is {state}: only an open order can be taken")]
    NotOpen { id: i64, state: &'static str },
    #[error("order {id} is {state} already: only an open, in-progress or fixed order can be closed")]
    NotActive { id: i64, state: &'static str },
}

const COLUMNS: &str = "id, branch, condition, subject, subject_name, severity, state, requirement, requirement_zh, \
                       assignee, taken_by, since, opened_at, deadline, fixed_at, verified_at, closed_at, overdue_at, reopened";

/// An order's columns as read (19 of them: more than sqlx's tuples take).
struct Raw {
    id: i64,
    branch: String,
    condition: String,
    subject: String,
    subject_name: String,
    severity: String,
    state: String,
    requirement: String,
    requirement_zh: String,
    assignee: String,
    taken_by: Option<String>,
    since: i64,
    opened_at: i64,
    deadline: i64,
    fixed_at: Option<i64>,
    verified_at: Option<i64>,
    closed_at: Option<i64>,
    overdue_at: Option<i64>,
    reopened: i64,
}

impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for Raw {
    fn from_row(r: &'r sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Raw {
            id: r.try_get("id")?,
            branch: r.try_get("branch")?,
            condition: r.try_get("condition")?,
            subject: r.try_get("subject")?,
            subject_name: r.try_get("subject_name")?,
            severity: r.try_get("severity")?,
            state: r.try_get("state")?,
            requirement: r.try_get("requirement")?,
            requirement_zh: r.try_get("requirement_zh")?,
            assignee: r.try_get("assignee")?,
            taken_by: r.try_get("taken_by")?,
            since: r.try_get("since")?,
            opened_at: r.try_get("opened_at")?,
            deadline: r.try_get("deadline")?,
            fixed_at: r.try_get("fixed_at")?,
            verified_at: r.try_get("verified_at")?,
            closed_at: r.try_get("closed_at")?,
            overdue_at: r.try_get("overdue_at")?,
            reopened: r.try_get("reopened")?,
        })
    }
}

impl Store {
    fn order_row(&self, r: Raw) -> Result<OrderRow, DbError> {
        Ok(OrderRow {
            id: r.id,
            branch: BranchId::new(r.branch).map_err(|e| self.corrupt("an order's branch", e))?,
            condition: Condition::parse(&r.condition)
                .ok_or_else(|| self.corrupt("an order's condition", &r.condition))?,
            subject: r.subject,
            subject_name: r.subject_name,
            severity: OrderSeverity::parse(&r.severity)
                .ok_or_else(|| self.corrupt("an order's severity", &r.severity))?,
            state: OrderState::parse(&r.state).ok_or_else(|| self.corrupt("an order's state", &r.state))?,
            requirement: r.requirement,
            requirement_zh: r.requirement_zh,
            assignee: r.assignee,
            taken_by: r.taken_by,
            since: ts(r.since),
            opened_at: ts(r.opened_at),
            deadline: ts(r.deadline),
            fixed_at: r.fixed_at.map(ts),
            verified_at: r.verified_at.map(ts),
            closed_at: r.closed_at.map(ts),
            overdue_at: r.overdue_at.map(ts),
            reopened: u32::try_from(r.reopened).unwrap_or(0),
        })
    }

    /// Device faults still raised.
    pub async fn open_faults(&self) -> Result<Vec<OpenFault>, DbError> {
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT branch, device, device_type, fault, raised_at FROM open_faults WHERE kind = 'device-fault'",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("read the open faults"))?;
        rows.into_iter()
            .map(|(b, device, device_type, fault, at)| {
                Ok(OpenFault {
                    branch: BranchId::new(b).map_err(|e| self.corrupt("a branch id", e))?,
                    device,
                    device_type,
                    fault,
                    raised_at: ts(at),
                })
            })
            .collect()
    }

    pub async fn active_orders(&self) -> Result<Vec<ActiveOrder>, DbError> {
        type Row = (i64, String, String, String, String, i64, Option<i64>, Option<i64>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, branch, condition, subject, state, deadline, fixed_at, overdue_at FROM orders WHERE active = 1",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("read the active orders"))?;
        rows.into_iter()
            .map(|(id, b, c, subject, st, deadline, fixed_at, overdue_at)| {
                Ok(ActiveOrder {
                    id,
                    branch: BranchId::new(b).map_err(|e| self.corrupt("a branch id", e))?,
                    condition: Condition::parse(&c).ok_or_else(|| self.corrupt("an order's condition", &c))?,
                    subject,
                    state: OrderState::parse(&st).ok_or_else(|| self.corrupt("an order's state", &st))?,
                    deadline: ts(deadline),
                    fixed_at: fixed_at.map(ts),
                    overdue: overdue_at.is_some(),
                })
            })
            .collect()
    }

    /// One check: what holds now, the active orders, the transitions due, applied. Returns the
    /// transitions that took effect, as (order id, action).
    pub async fn check_orders(
        &self,
        cfg: &OrdersConfig,
        dir: &Directory,
        now: Timestamp,
    ) -> Result<Vec<(i64, &'static str)>, DbError> {
        let snap = self.snapshot().await?;
        let faults = self.open_faults().await?;
        let observed = orders::observe(&snap, &faults);
        let active = self.active_orders().await?;
        let plan = orders::plan(now, &observed, &active, cfg, dir);
        if plan.is_empty() {
            return Ok(Vec::new());
        }
        self.apply_transitions(&plan, now).await
    }

    /// Applies transitions in one transaction; each only from the state it expects, so a
    /// transition another process made first is skipped.
    pub async fn apply_transitions(
        &self,
        plan: &[Transition],
        now: Timestamp,
    ) -> Result<Vec<(i64, &'static str)>, DbError> {
        let mut tx = self.pool.begin().await.map_err(self.err("begin"))?;
        let mut done = Vec::new();
        let n = ms(now);
        for t in plan {
            let (id, action, note): (Option<i64>, &'static str, String) = match t {
                Transition::Open { obs, severity, deadline, assignee } => {
                    let (en, zh) = orders::requirement(
                        obs.condition,
                        if obs.subject_name.is_empty() { &obs.subject } else { &obs.subject_name },
                    );
                    let row: Option<(i64,)> = sqlx::query_as(
                        "INSERT INTO orders (branch, condition, subject, subject_name, severity, state, requirement, \
                         requirement_zh, assignee, since, opened_at, deadline, reopened, active) \
                         VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $8, $9, $10, $11, 0, 1) \
                         ON CONFLICT DO NOTHING RETURNING id",
                    )
                    .bind(obs.branch.as_str())
                    .bind(obs.condition.as_str())
                    .bind(obs.subject.as_str())
                    .bind(obs.subject_name.as_str())
                    .bind(severity.as_str())
                    .bind(en)
                    .bind(zh)
                    .bind(assignee.as_str())
                    .bind(ms(obs.since))
                    .bind(n)
                    .bind(ms(*deadline))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(self.err("open an order"))?;
                    (row.map(|r| r.0), "opened", obs.detail.clone())
                }
                Transition::Fix { id, from } => {
                    let r =
                        sqlx::query("UPDATE orders SET state = 'fixed', fixed_at = $1 WHERE id = $2 AND state = $3")
                            .bind(n)
                            .bind(id)
                            .bind(from.as_str())
                            .execute(&mut *tx)
                            .await
                            .map_err(self.err("mark an order fixed"))?;
                    ((r.rows_affected() == 1).then_some(*id), "fixed", String::new())
                }
                Transition::Verify { id } => {
                    let r = sqlx::query(
                        "UPDATE orders SET state = 'verified', verified_at = $1, active = 0 WHERE id = $2 AND state = 'fixed'",
                    )
                    .bind(n)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err("mark an order verified"))?;
                    ((r.rows_affected() == 1).then_some(*id), "verified", String::new())
                }
                Transition::Reopen { id, detail } => {
                    let r = sqlx::query(
                        "UPDATE orders SET state = CASE WHEN taken_by IS NULL THEN 'open' ELSE 'in-progress' END, \
                         fixed_at = NULL, reopened = reopened + 1 WHERE id = $1 AND state = 'fixed'",
                    )
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err("reopen an order"))?;
                    ((r.rows_affected() == 1).then_some(*id), "reopened", detail.clone())
                }
                Transition::Overdue { id } => {
                    let r = sqlx::query(
                        "UPDATE orders SET overdue_at = $1 WHERE id = $2 AND overdue_at IS NULL \
                         AND state IN ('open', 'in-progress')",
                    )
                    .bind(n)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err("mark an order overdue"))?;
                    ((r.rows_affected() == 1).then_some(*id), "overdue", String::new())
                }
            };
            if let Some(id) = id {
                insert_event(self, &mut tx, id, n, "hq", action, &note).await?;
                done.push((id, action));
            }
        }
        tx.commit().await.map_err(self.err("commit"))?;
        Ok(done)
    }

    /// An order opened by hand. Returns its id.
    #[allow(clippy::too_many_arguments)]
    pub async fn open_manual_order(
        &self,
        branch: &BranchId,
        title: &str,
        requirement: &str,
        severity: OrderSeverity,
        assignee: &str,
        deadline: Timestamp,
        user: &str,
        now: Timestamp,
    ) -> Result<i64, DbError> {
        let mut tx = self.pool.begin().await.map_err(self.err("begin"))?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO orders (branch, condition, subject, subject_name, severity, state, requirement, requirement_zh, \
             assignee, since, opened_at, deadline, reopened, active) \
             VALUES ($1, 'manual', $2, $3, $4, 'open', $5, $5, $6, $7, $7, $8, 0, 1) RETURNING id",
        )
        .bind(branch.as_str())
        // Each manual order is its own condition.
        .bind(format!("m{}-{}", ms(now), crate::web::random_suffix()))
        .bind(title)
        .bind(severity.as_str())
        .bind(requirement)
        .bind(assignee)
        .bind(ms(now))
        .bind(ms(deadline))
        .fetch_one(&mut *tx)
        .await
        .map_err(self.err("open an order"))?;
        insert_event(self, &mut tx, id, ms(now), user, "opened", title).await?;
        tx.commit().await.map_err(self.err("commit"))?;
        Ok(id)
    }

    /// Someone takes an open order (it goes in progress), with a note.
    pub async fn take_order(
        &self,
        id: i64,
        user: &str,
        note: &str,
        now: Timestamp,
    ) -> Result<Result<(), OrderRefusal>, DbError> {
        let mut tx = self.pool.begin().await.map_err(self.err("begin"))?;
        let r = sqlx::query("UPDATE orders SET state = 'in-progress', taken_by = $1 WHERE id = $2 AND state = 'open'")
            .bind(user)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(self.err("take an order"))?;
        if r.rows_affected() == 0 {
            return Ok(Err(self.refusal(&mut tx, id, true).await?));
        }
        insert_event(self, &mut tx, id, ms(now), user, "taken", note).await?;
        tx.commit().await.map_err(self.err("commit"))?;
        Ok(Ok(()))
    }

    /// A note on an order's history (progress, a visit, a part ordered).
    pub async fn note_order(
        &self,
        id: i64,
        user: &str,
        note: &str,
        now: Timestamp,
    ) -> Result<Result<(), OrderRefusal>, DbError> {
        let mut tx = self.pool.begin().await.map_err(self.err("begin"))?;
        let found: Option<(i64,)> = sqlx::query_as("SELECT id FROM orders WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(self.err("find the order"))?;
        if found.is_none() {
            return Ok(Err(OrderRefusal::NoSuchOrder(id)));
        }
        insert_event(self, &mut tx, id, ms(now), user, "note", note).await?;
        tx.commit().await.map_err(self.err("commit"))?;
        Ok(Ok(()))
    }

    /// Closes an active order by hand, with the reason.
    pub async fn close_order(
        &self,
        id: i64,
        user: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Result<(), OrderRefusal>, DbError> {
        let mut tx = self.pool.begin().await.map_err(self.err("begin"))?;
        let r =
            sqlx::query("UPDATE orders SET state = 'closed', closed_at = $1, active = 0 WHERE id = $2 AND active = 1")
                .bind(ms(now))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(self.err("close an order"))?;
        if r.rows_affected() == 0 {
            return Ok(Err(self.refusal(&mut tx, id, false).await?));
        }
        insert_event(self, &mut tx, id, ms(now), user, "closed", reason).await?;
        tx.commit().await.map_err(self.err("commit"))?;
        Ok(Ok(()))
    }

    async fn refusal(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        id: i64,
        taking: bool,
    ) -> Result<OrderRefusal, DbError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT state FROM orders WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(self.err("find the order"))?;
        let Some((st,)) = row else { return Ok(OrderRefusal::NoSuchOrder(id)) };
        let state = OrderState::parse(&st).map_or("unknown", OrderState::as_str);
        Ok(if taking { OrderRefusal::NotOpen { id, state } } else { OrderRefusal::NotActive { id, state } })
    }

    /// One order and its history.
    pub async fn order(&self, id: i64) -> Result<Option<(OrderRow, Vec<OrderEvent>)>, DbError> {
        let row: Option<Raw> = sqlx::query_as(AssertSqlSafe(format!("SELECT {COLUMNS} FROM orders WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err("read the order"))?;
        let Some(row) = row else { return Ok(None) };
        let order = self.order_row(row)?;
        let events: Vec<(i64, String, String, String)> =
            sqlx::query_as("SELECT at, actor, action, note FROM order_events WHERE order_id = $1 ORDER BY pk")
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(self.err("read the order's history"))?;
        let events = events
            .into_iter()
            .map(|(at, actor, action, note)| OrderEvent { at: ts(at), actor, action, note })
            .collect();
        Ok(Some((order, events)))
    }

    /// Orders, overdue first, then active ones by deadline, then the rest newest first.
    pub async fn orders(&self, q: &OrderQuery, now: Timestamp) -> Result<Vec<OrderRow>, DbError> {
        let mut sql = format!("SELECT {COLUMNS} FROM orders WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if let Some(states) = &q.states {
            if states.is_empty() {
                return Ok(Vec::new());
            }
            let ps: Vec<String> = states.iter().map(|_| next()).collect();
            sql.push_str(&format!(" AND state IN ({})", ps.join(", ")));
        }
        if let Some(bs) = &q.branches {
            if bs.is_empty() {
                return Ok(Vec::new());
            }
            let ps: Vec<String> = bs.iter().map(|_| next()).collect();
            sql.push_str(&format!(" AND branch IN ({})", ps.join(", ")));
        }
        let now_p = next();
        if q.overdue_only {
            sql.push_str(&format!(
                " AND (overdue_at IS NOT NULL OR (state IN ('open', 'in-progress') AND deadline < {now_p}) \
                 OR (fixed_at IS NOT NULL AND fixed_at > deadline))"
            ));
        } else {
            sql.push_str(&format!(" AND {now_p} = {now_p}"));
        }
        sql.push_str(&format!(
            " ORDER BY CASE WHEN active = 1 AND (overdue_at IS NOT NULL OR deadline < {now_p}) THEN 0 \
                            WHEN active = 1 THEN 1 ELSE 2 END, \
                       CASE WHEN active = 1 THEN deadline ELSE -opened_at END, id DESC LIMIT {}",
            next()
        ));
        let mut query = sqlx::query_as::<_, Raw>(AssertSqlSafe(sql));
        if let Some(states) = &q.states {
            for s in states {
                query = query.bind(s.as_str());
            }
        }
        if let Some(bs) = &q.branches {
            for b in bs {
                query = query.bind(b.as_str());
            }
        }
        query = query.bind(ms(now)).bind(i64::try_from(q.limit).unwrap_or(i64::MAX));
        let rows = query.fetch_all(&self.pool).await.map_err(self.err("list orders"))?;
        rows.into_iter().map(|r| self.order_row(r)).collect()
    }

    /// Per branch: the orders opened in the window, fixed on time, overdue, mean time to
    /// rectify.
    pub async fn order_stats(&self, w: Window, now: Timestamp) -> Result<HashMap<BranchId, OrderStats>, DbError> {
        let rows: Vec<Raw> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM orders WHERE opened_at >= $1 AND opened_at < $2"
        )))
        .bind(ms(w.from))
        .bind(ms(w.to))
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("read the period's orders"))?;
        let mut out: HashMap<BranchId, (OrderStats, f64, usize)> = HashMap::new();
        for r in rows {
            let o = self.order_row(r)?;
            let e = out.entry(o.branch.clone()).or_default();
            e.0.opened += 1;
            if let Some(f) = o.fixed_at {
                if f <= o.deadline {
                    e.0.fixed_on_time += 1;
                }
                e.1 += (f - o.opened_at).num_milliseconds() as f64 / 60_000.0;
                e.2 += 1;
            }
            if o.overdue(now.min(w.to)) {
                e.0.overdue += 1;
            }
        }
        Ok(out
            .into_iter()
            .map(|(b, (mut s, sum, n))| {
                s.mean_rectify_minutes = (n > 0).then(|| sum / n as f64);
                (b, s)
            })
            .collect())
    }

    /// Orders per branch that are active now (for the overview's tiles).
    pub async fn active_order_counts(&self) -> Result<HashMap<String, u32>, DbError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT branch, COUNT(*) FROM orders WHERE active = 1 GROUP BY branch")
                .fetch_all(&self.pool)
                .await
                .map_err(self.err("count the active orders"))?;
        Ok(rows.into_iter().map(|(b, n)| (b, u32::try_from(n).unwrap_or(u32::MAX))).collect())
    }
}

async fn insert_event(
    store: &Store,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: i64,
    at: i64,
    actor: &str,
    action: &str,
    note: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO order_events (order_id, at, actor, action, note, notified) VALUES ($1, $2, $3, $4, $5, 0)",
    )
    .bind(id)
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(note)
    .execute(&mut **tx)
    .await
    .map_err(store.err("record the order's history"))?;
    Ok(())
}
