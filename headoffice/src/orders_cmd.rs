//! `hq orders`: rectification orders at the command line.

use i18n::{Lang, tr};
use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::Subcommand;
use headoffice::db::{OrderQuery, OrderRow, Store};
use headoffice::directory::Directory;
use headoffice::orders::{HqConfig, OrderSeverity, OrderState};
use protocols::BranchId;
use protocols::time::format as t;

use super::{Format, db_error, emit, print_json, render, usage};

#[derive(Subcommand)]
pub enum OrdersCmd {
    /// Orders, overdue first, then the active ones by deadline, then the rest newest first.
    List {
        /// open, in-progress, fixed, verified, closed or active (the first three); repeatable.
        #[arg(long, value_delimiter = ',')]
        state: Vec<String>,
        #[arg(long, value_parser = parse_branch)]
        branch: Option<BranchId>,
        /// Only orders past their deadline.
        #[arg(long)]
        overdue: bool,
        #[arg(long, default_value_t = 200)]
        limit: usize,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// One order and its history.
    Show {
        id: i64,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Take an open order: it goes in progress under your name.
    Take {
        id: i64,
        /// Who takes it (default cli:$USER).
        #[arg(long)]
        by: Option<String>,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Add a note to an order's history.
    Note {
        id: i64,
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        note: String,
    },
    /// Close an active order by hand, with the reason.
    Close {
        id: i64,
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        reason: String,
    },
    /// Open an order by hand (e.g. a cash-counting machine moved out of a camera's view).
    Open {
        #[arg(long, value_parser = parse_branch)]
        branch: BranchId,
        /// What is wrong, in a line.
        #[arg(long)]
        title: String,
        /// What must be done (default: the title).
        #[arg(long)]
        requirement: Option<String>,
        /// critical, major or minor: sets the deadline ([orders.deadline] in --config).
        #[arg(long, default_value = "major", value_parser = parse_severity)]
        severity: OrderSeverity,
        /// Who must do it (default: from [orders.assign] and default_assignee).
        #[arg(long)]
        assignee: Option<String>,
        #[arg(long)]
        by: Option<String>,
        /// The branch directory (for assignees by region).
        #[arg(long, env = "HQ_DIRECTORY", value_name = "FILE")]
        directory: Option<PathBuf>,
    },
    /// Check the conditions once now and apply what is due (as `hq serve` does every
    /// [orders] check_every); prints what changed.
    Check {
        /// The branch directory (for assignees by region).
        #[arg(long, env = "HQ_DIRECTORY", value_name = "FILE")]
        directory: Option<PathBuf>,
    },
}

fn parse_branch(s: &str) -> Result<BranchId, String> {
    BranchId::new(s).map_err(|e| format!("branch id {e}"))
}

fn parse_severity(s: &str) -> Result<OrderSeverity, String> {
    OrderSeverity::parse(s).ok_or_else(|| "expected critical, major or minor".into())
}

fn actor(by: &Option<String>) -> String {
    by.clone().unwrap_or_else(super::console_cmd::cli_actor)
}

const HEADERS: [&str; 12] = [
    "id",
    "branch",
    "condition",
    "subject",
    "severity",
    "state",
    "assignee",
    "taken_by",
    "opened_at",
    "deadline",
    "overdue",
    "requirement",
];

fn row(o: &OrderRow, now: protocols::time::Timestamp) -> Vec<String> {
    vec![
        o.id.to_string(),
        o.branch.to_string(),
        o.condition.as_str().into(),
        if o.subject_name.is_empty() { o.subject.clone() } else { o.subject_name.clone() },
        o.severity.as_str().into(),
        o.state.as_str().into(),
        o.assignee.clone(),
        o.taken_by.clone().unwrap_or_default(),
        t(&o.opened_at),
        t(&o.deadline),
        o.overdue(now).to_string(),
        o.requirement.clone(),
    ]
}

fn json(o: &OrderRow, now: protocols::time::Timestamp) -> serde_json::Value {
    let opt = |v: Option<protocols::time::Timestamp>| v.as_ref().map(t);
    serde_json::json!({
        "id": o.id, "branch": o.branch, "condition": o.condition.as_str(), "subject": o.subject,
        "subject_name": o.subject_name, "severity": o.severity.as_str(), "state": o.state.as_str(),
        "requirement": o.requirement, "requirement_zh": o.requirement_zh, "assignee": o.assignee,
        "taken_by": o.taken_by, "since": t(&o.since), "opened_at": t(&o.opened_at), "deadline": t(&o.deadline),
        "fixed_at": opt(o.fixed_at), "verified_at": opt(o.verified_at), "closed_at": opt(o.closed_at),
        "overdue_at": opt(o.overdue_at), "overdue": o.overdue(now), "reopened": o.reopened,
    })
}

pub async fn orders(cmd: &OrdersCmd, store: &Store, cfg: &HqConfig) -> Result<()> {
    let now = protocols::time::now();
    let refused = |e: headoffice::db::OrderRefusal| anyhow!("{e}");
    match cmd {
        OrdersCmd::List { state, branch, overdue, limit, format } => {
            let mut states = Vec::new();
            for s in state {
                match s.as_str() {
                    "active" => states.extend([OrderState::Open, OrderState::InProgress, OrderState::Fixed]),
                    s => states.push(OrderState::parse(s).ok_or_else(|| {
                        usage(format!("--state {s:?}: expected open, in-progress, fixed, verified, closed or active"))
                    })?),
                }
            }
            let q = OrderQuery {
                states: (!states.is_empty()).then_some(states),
                branches: branch.clone().map(|b| vec![b]),
                overdue_only: *overdue,
                limit: *limit,
            };
            let list = store.orders(&q, now).await.map_err(db_error)?;
            match format {
                Format::Json => print_json(&serde_json::json!({
                    "schema": "hq-orders/1", "orders": list.iter().map(|o| json(o, now)).collect::<Vec<_>>(),
                })),
                Format::Table => emit(&render::table(
                    Lang::current(),
                    &HEADERS,
                    &list.iter().map(|o| row(o, now)).collect::<Vec<_>>(),
                )),
                Format::Csv => emit(&render::csv(&HEADERS, &list.iter().map(|o| row(o, now)).collect::<Vec<_>>())),
            }
        }
        OrdersCmd::Show { id, format } => {
            let (o, events) =
                store.order(*id).await.map_err(db_error)?.ok_or_else(|| anyhow!("no rectification order {id}"))?;
            match format {
                Format::Json => {
                    let mut v = json(&o, now);
                    v["history"] = events
                        .iter()
                        .map(|e| serde_json::json!({"at": t(&e.at), "actor": e.actor, "action": e.action, "note": e.note}))
                        .collect();
                    v["schema"] = "hq-order/1".into();
                    print_json(&v)
                }
                Format::Table | Format::Csv => {
                    let h = ["at", "actor", "action", "note"];
                    let rows: Vec<Vec<String>> = events
                        .iter()
                        .map(|e| vec![t(&e.at), e.actor.clone(), e.action.clone(), e.note.clone()])
                        .collect();
                    if *format == Format::Csv {
                        return emit(&render::csv(&h, &rows));
                    }
                    emit(&render::table(Lang::current(), &HEADERS, &[row(&o, now)]))?;
                    emit("\n")?;
                    emit(&render::table(Lang::current(), &h, &rows))
                }
            }
        }
        OrdersCmd::Take { id, by, note } => {
            store.take_order(*id, &actor(by), note, now).await.map_err(db_error)?.map_err(refused)?;
            let by = actor(by);
            emit(&tr!(Lang::current(), "order {id}: in progress ({by})\n", "整改单 {id}：整改中（{by}）\n"))
        }
        OrdersCmd::Note { id, by, note } => {
            if note.trim().is_empty() {
                return Err(usage("--note is empty"));
            }
            store.note_order(*id, &actor(by), note, now).await.map_err(db_error)?.map_err(refused)?;
            emit(&tr!(Lang::current(), "order {id}: note added\n", "整改单 {id}：已添加备注\n"))
        }
        OrdersCmd::Close { id, by, reason } => {
            if reason.trim().is_empty() {
                return Err(usage("--reason is empty: say why the order is closed by hand"));
            }
            store.close_order(*id, &actor(by), reason, now).await.map_err(db_error)?.map_err(refused)?;
            store.audit(&actor(by), "order-close", &id.to_string(), reason, now).await.map_err(db_error)?;
            emit(&tr!(Lang::current(), "order {id}: closed\n", "整改单 {id}：已关闭\n"))
        }
        OrdersCmd::Open { branch, title, requirement, severity, assignee, by, directory } => {
            if title.trim().is_empty() {
                return Err(usage("--title is empty"));
            }
            let dir = match directory {
                Some(p) => Directory::load(p).map_err(|e| usage(e.to_string()))?,
                None => Directory::default(),
            };
            if dir.get(branch).is_none() && !store.branch_known(branch).await.map_err(db_error)? {
                return Err(anyhow!("no branch {branch}: not in the directory and nothing received from it"));
            }
            let assignee = assignee.clone().unwrap_or_else(|| cfg.orders.assignee(branch, &dir));
            let d = chrono::Duration::from_std(cfg.orders.deadline.of(*severity)).unwrap_or(chrono::Duration::MAX);
            let deadline = now.checked_add_signed(d).unwrap_or(now);
            let req = requirement.clone().unwrap_or_else(|| title.clone());
            let id = store
                .open_manual_order(branch, title, &req, *severity, &assignee, deadline, &actor(by), now)
                .await
                .map_err(db_error)?;
            store.audit(&actor(by), "order-open", &id.to_string(), title, now).await.map_err(db_error)?;
            let due = t(&deadline);
            emit(&tr!(
                Lang::current(),
                "order {id} opened for {branch}, due {due}\n",
                "已为 {branch} 开整改单 {id}，期限 {due}\n"
            ))
        }
        OrdersCmd::Check { directory } => {
            let dir = match directory {
                Some(p) => Directory::load(p).map_err(|e| usage(e.to_string()))?,
                None => Directory::default(),
            };
            let done = store.check_orders(&cfg.orders, &dir, now).await.map_err(db_error)?;
            for (id, action) in &done {
                emit(&tr!(Lang::current(), "order {id}: {action}\n", "整改单 {id}：{action}\n"))?;
            }
            if done.is_empty() {
                emit(Lang::current().t("nothing due\n", "没有到期的事项\n"))?;
            }
            Ok(())
        }
    }
}
