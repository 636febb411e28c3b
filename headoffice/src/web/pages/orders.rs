//! Rectification orders (整改): the list (overdue first), one order with its history, and
//! what operators do to them: take, note, close, open by hand.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::*;
use crate::db::{OrderQuery, OrderRefusal, OrderRow};
use crate::orders::{Condition, OrderSeverity, OrderState};

pub(super) fn state_label(l: Lang, s: OrderState) -> &'static str {
    match s {
        OrderState::Open => l.t("open", "待整改"),
        OrderState::InProgress => l.t("in progress", "整改中"),
        OrderState::Fixed => l.t("fixed, being re-checked", "已修复，复查中"),
        OrderState::Verified => l.t("verified", "已复查通过"),
        OrderState::Closed => l.t("closed by hand", "已人工关闭"),
    }
}

pub(super) fn condition_label(l: Lang, c: Condition) -> &'static str {
    match c {
        Condition::CameraOffline => l.t("camera offline", "摄像机离线"),
        Condition::ZoneUncovered => l.t("required zone uncovered", "必防区无人看护"),
        Condition::DeviceFault => l.t("device fault", "设备故障"),
        Condition::GatewayOffline => l.t("gateway offline", "网关离线"),
        Condition::Manual => l.t("opened by hand", "人工录入"),
    }
}

pub(super) fn order_severity_label(l: Lang, s: OrderSeverity) -> &'static str {
    match s {
        OrderSeverity::Critical => l.t("critical", "紧急"),
        OrderSeverity::Major => l.t("major", "重要"),
        OrderSeverity::Minor => l.t("minor", "一般"),
    }
}

/// The orders table of the list and the branch page.
pub(super) fn orders_table(app: &App, ctx: &Ctx, rows: &[OrderRow]) -> Markup {
    let l = ctx.lang;
    let c = &app.cfg.clock;
    let now = protocols::time::now();
    let dir = &app.cfg.directory;
    html! {
        @if rows.is_empty() { p.empty { (l.t("No rectification orders match.", "没有符合条件的整改单。")) } }
        @else {
            table.orders {
                thead { tr {
                    th { "#" } th { (l.t("Branch", "网点")) } th { (l.t("Problem", "问题")) } th { (l.t("Severity", "级别")) }
                    th { (l.t("State", "状态")) } th { (l.t("Assignee", "责任人")) } th { (l.t("Opened", "下发时间")) }
                    th { (l.t("Deadline", "整改期限")) }
                } }
                tbody { @for o in rows {
                    @let overdue = o.overdue(now) && o.state.is_active();
                    @let bname = dir.get(&o.branch).map(|i| i.name.as_str()).filter(|n| !n.is_empty()).unwrap_or(o.branch.as_str());
                    tr.overdue[overdue] .(format!("o-{}", o.state.as_str())) id={"order-" (o.id)} {
                        td { a href={"/orders/" (o.id)} { (o.id) } }
                        td { a href=(branch_url(&o.branch)) { (bname) } }
                        td { (condition_label(l, o.condition)) ": " (if o.subject_name.is_empty() { &o.subject } else { &o.subject_name }) }
                        td { (order_severity_label(l, o.severity)) }
                        td.ostate { (state_label(l, o.state)) @if o.reopened > 0 { " · " (l.t("reopened", "曾复发")) " " (o.reopened) } }
                        td { (o.assignee) @if let Some(t) = &o.taken_by { br; small { (l.t("taken by", "承办人")) " " (t) } } }
                        td { (c.show(o.opened_at)) }
                        td { (c.show(o.deadline)) @if overdue { br; b.overdue { (l.t("OVERDUE", "已超期")) } } }
                    }
                } }
            }
        }
    }
}

/// The form that opens an order by hand, for a branch page.
pub(super) fn open_form(ctx: &Ctx, branch: &BranchId) -> Markup {
    let l = ctx.lang;
    html! {
        form.openorder method="post" action="/orders/open" {
            input type="hidden" name="csrf" value=(ctx.csrf);
            input type="hidden" name="branch" value=(branch);
            label { (l.t("Problem", "问题")) " " input name="title" required maxlength="200"
                placeholder=(l.t("e.g. cash counter moved out of camera view", "例如：点钞机移出摄像机视野")); }
            label { (l.t("Requirement", "整改要求")) " " input name="requirement" maxlength="500"; }
            label { (l.t("Severity", "级别")) " " select name="severity" {
                @for s in OrderSeverity::ALL { option value=(s.as_str()) selected[s == OrderSeverity::Major] { (order_severity_label(l, s)) } }
            } }
            button type="submit" { (l.t("Open an order", "下发整改单")) }
        }
    }
}

pub async fn orders_list(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Params,
) -> Result<Response, Fail> {
    let l = ctx.lang;
    let get = |k: &str| q.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let state = get("state").unwrap_or("active").to_string();
    let states = match state.as_str() {
        "active" => Some(vec![OrderState::Open, OrderState::InProgress, OrderState::Fixed]),
        "all" => None,
        s => Some(vec![OrderState::parse(s).ok_or_else(|| {
            fail(
                StatusCode::BAD_REQUEST,
                format!("state={s:?}: expected active, open, in-progress, fixed, verified, closed or all"),
            )
        })?]),
    };
    let overdue_only = match get("overdue") {
        None | Some("0") => false,
        Some("1") => true,
        Some(s) => return Err(fail(StatusCode::BAD_REQUEST, format!("overdue={s:?}: expected 1 or 0"))),
    };
    let Scope { region, branch: branch_q, branches } = scope(&app, &q)?;
    let rows =
        app.store.orders(&OrderQuery { states, branches, overdue_only, limit: 500 }, protocols::time::now()).await?;
    let regions = app.cfg.directory.regions();
    let choices = [
        ("active", l.t("active (open, in progress, being re-checked)", "未结（待整改、整改中、复查中）")),
        ("open", state_label(l, OrderState::Open)),
        ("in-progress", state_label(l, OrderState::InProgress)),
        ("fixed", state_label(l, OrderState::Fixed)),
        ("verified", state_label(l, OrderState::Verified)),
        ("closed", state_label(l, OrderState::Closed)),
        ("all", l.t("all", "全部")),
    ];
    let body = html! {
        h1 { (l.t("Rectification orders", "整改单")) }
        form.filters method="get" action="/orders" {
            label { (l.t("Show", "显示")) " " select name="state" {
                @for (v, n) in choices { option value=(v) selected[v == state] { (n) } }
            } }
            label { input type="checkbox" name="overdue" value="1" checked[overdue_only]; " " (l.t("overdue only", "仅超期")) }
            label { (l.t("Region", "区域")) " " select name="region" {
                option value="" { (l.t("all", "全部")) }
                @for r in &regions { option value=(r) selected[*r == region] { (r) } }
            } }
            label { (l.t("Branch id", "网点编号")) " " input type="search" name="branch" value=(branch_q); }
            button type="submit" { (l.t("Show", "筛选")) }
        }
        p.note { (l.t("Overdue orders first, then the others by deadline.", "超期的整改单排在最前，其余按整改期限排列。")) }
        div #list { (orders_table(&app, &ctx, &rows)) }
    };
    Ok(page(&app, &ctx, l.t("Rectification orders", "整改单"), "orders", Some("alerts"), body))
}

pub async fn order_page(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, Fail> {
    let l = ctx.lang;
    let c = &app.cfg.clock;
    let id: i64 = id.parse().map_err(|_| fail(StatusCode::NOT_FOUND, format!("no rectification order {id:?}")))?;
    let (o, events) = app
        .store
        .order(id)
        .await?
        .ok_or_else(|| fail(StatusCode::NOT_FOUND, format!("no rectification order {id}")))?;
    let now = protocols::time::now();
    let can = ctx.role >= Role::Operator;
    let bname = app
        .cfg
        .directory
        .get(&o.branch)
        .map(|i| i.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| o.branch.to_string());
    let requirement = if l == Lang::Zh { &o.requirement_zh } else { &o.requirement };
    let body = html! {
        h1 { (l.t("Rectification order", "整改单")) " #" (o.id) }
        dl.info {
            dt { (l.t("Branch", "网点")) } dd { a href=(branch_url(&o.branch)) { (bname) } }
            dt { (l.t("Problem", "问题")) } dd { (condition_label(l, o.condition)) ": " (if o.subject_name.is_empty() { &o.subject } else { &o.subject_name }) }
            dt { (l.t("Requirement", "整改要求")) } dd { (requirement) }
            dt { (l.t("Severity", "级别")) } dd { (order_severity_label(l, o.severity)) }
            dt { (l.t("State", "状态")) } dd.ostate { (state_label(l, o.state)) @if o.overdue(now) && o.state.is_active() { " · " b.overdue { (l.t("OVERDUE", "已超期")) } } }
            dt { (l.t("Assignee", "责任人")) } dd { (o.assignee) @if let Some(t) = &o.taken_by { " · " (l.t("taken by", "承办人")) " " (t) } }
            dt { (l.t("Problem since", "问题起始")) } dd { (c.show(o.since)) }
            dt { (l.t("Opened", "下发时间")) } dd { (c.show(o.opened_at)) }
            dt { (l.t("Deadline", "整改期限")) } dd { (c.show(o.deadline)) }
            @if let Some(t) = o.fixed_at { dt { (l.t("Fixed", "修复时间")) } dd { (c.show(t)) } }
            @if let Some(t) = o.verified_at { dt { (l.t("Verified", "复查通过")) } dd { (c.show(t)) } }
            @if let Some(t) = o.closed_at { dt { (l.t("Closed", "关闭时间")) } dd { (c.show(t)) } }
        }
        @if can && o.state.is_active() {
            div.actions {
                @if o.state == OrderState::Open {
                    form.inline method="post" action={"/orders/" (o.id) "/take"} {
                        input type="hidden" name="csrf" value=(ctx.csrf);
                        input type="text" name="note" maxlength="500" placeholder=(l.t("plan, who goes", "处理计划、派谁前往"));
                        button type="submit" { (l.t("Take it", "承办")) }
                    }
                }
                form.inline method="post" action={"/orders/" (o.id) "/note"} {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    input type="text" name="note" required maxlength="500" placeholder=(l.t("progress", "整改进展"));
                    button type="submit" { (l.t("Add a note", "记录进展")) }
                }
                form.inline method="post" action={"/orders/" (o.id) "/close"} {
                    input type="hidden" name="csrf" value=(ctx.csrf);
                    input type="text" name="reason" required maxlength="500" placeholder=(l.t("why it is closed by hand", "人工关闭原因"));
                    button type="submit" { (l.t("Close", "关闭")) }
                }
            }
        }
        h2 { (l.t("History", "处理记录")) }
        table.history #history {
            thead { tr { th { (l.t("When", "时间")) } th { (l.t("Who", "操作人")) } th { (l.t("What", "操作")) } th { (l.t("Note", "说明")) } } }
            tbody { @for e in &events {
                tr { td { (c.show(e.at)) } td { (e.actor) } td { (event_label(l, &e.action)) } td { (e.note) } }
            } }
        }
    };
    Ok(page(&app, &ctx, l.t("Rectification order", "整改单"), "orders", None, body))
}

fn event_label(l: Lang, a: &str) -> String {
    let t = match a {
        "opened" => l.t("opened", "下发"),
        "taken" => l.t("taken", "承办"),
        "note" => l.t("note", "进展"),
        "fixed" => l.t("fixed (the condition cleared)", "已修复（问题消除）"),
        "verified" => l.t("verified (healthy through the re-check)", "复查通过"),
        "reopened" => l.t("reopened (the problem came back)", "复发，重新整改"),
        "overdue" => l.t("past its deadline", "已超期"),
        "closed" => l.t("closed by hand", "人工关闭"),
        _ => return a.to_string(),
    };
    t.to_string()
}

#[derive(Deserialize)]
pub struct OrderForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    reason: String,
}

fn require_operator(ctx: &Ctx) -> Result<(), Fail> {
    if ctx.role >= Role::Operator {
        Ok(())
    } else {
        Err(fail(StatusCode::FORBIDDEN, "only an operator or an admin may change rectification orders"))
    }
}

fn refusal(e: OrderRefusal) -> Fail {
    match e {
        OrderRefusal::NoSuchOrder(_) => fail(StatusCode::NOT_FOUND, e.to_string()),
        _ => fail(StatusCode::CONFLICT, e.to_string()),
    }
}

fn text(s: &str, what: &str, required: bool) -> Result<String, Fail> {
    let t = s.trim();
    if required && t.is_empty() {
        return Err(fail(StatusCode::BAD_REQUEST, format!("write the {what} first")));
    }
    if t.chars().count() > 500 {
        return Err(fail(StatusCode::BAD_REQUEST, format!("the {what} is longer than 500 characters")));
    }
    Ok(t.to_string())
}

fn order_id(s: &str) -> Result<i64, Fail> {
    s.parse().map_err(|_| fail(StatusCode::NOT_FOUND, format!("no rectification order {s:?}")))
}

/// What a person does to an order from its page.
#[derive(Clone, Copy)]
enum Act {
    Take,
    Note,
    Close,
}

/// The three forms of the order page: the same checks, one store call each.
async fn act(app: &App, ctx: &Ctx, id: &str, f: &OrderForm, what: Act) -> Result<Response, Fail> {
    check_csrf(ctx, &f.csrf)?;
    require_operator(ctx)?;
    let id = order_id(id)?;
    let now = protocols::time::now();
    let s = &app.store;
    match what {
        Act::Take => s.take_order(id, &ctx.user, &text(&f.note, "note", false)?, now).await?,
        Act::Note => s.note_order(id, &ctx.user, &text(&f.note, "note", true)?, now).await?,
        Act::Close => {
            let reason = text(&f.reason, "reason", true)?;
            let r = s.close_order(id, &ctx.user, &reason, now).await?;
            if r.is_ok() {
                s.audit(&ctx.user, "order-close", &id.to_string(), &reason, now).await?;
            }
            r
        }
    }
    .map_err(refusal)?;
    Ok(Redirect::to(&format!("/orders/{id}")).into_response())
}

pub async fn order_take(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Form(f): Form<OrderForm>,
) -> Result<Response, Fail> {
    act(&app, &ctx, &id, &f, Act::Take).await
}

pub async fn order_note(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Form(f): Form<OrderForm>,
) -> Result<Response, Fail> {
    act(&app, &ctx, &id, &f, Act::Note).await
}

pub async fn order_close(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
    Form(f): Form<OrderForm>,
) -> Result<Response, Fail> {
    act(&app, &ctx, &id, &f, Act::Close).await
}

#[derive(Deserialize)]
pub struct OpenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    branch: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    requirement: String,
    #[serde(default)]
    severity: String,
}

pub async fn order_open(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<OpenForm>,
) -> Result<Response, Fail> {
    check_csrf(&ctx, &f.csrf)?;
    require_operator(&ctx)?;
    let branch = BranchId::new(f.branch.clone())
        .map_err(|e| fail(StatusCode::BAD_REQUEST, format!("branch {:?} {e}", f.branch)))?;
    if app.cfg.directory.get(&branch).is_none() && !app.store.branch_known(&branch).await? {
        return Err(fail(StatusCode::NOT_FOUND, format!("no branch {branch}")));
    }
    let title = text(&f.title, "problem", true)?;
    let requirement = text(&f.requirement, "requirement", false)?;
    let severity = OrderSeverity::parse(&f.severity)
        .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "severity must be critical, major or minor"))?;
    let now = protocols::time::now();
    let cfg = &app.cfg.hq.orders;
    let d = chrono::Duration::from_std(cfg.deadline.of(severity)).unwrap_or(chrono::Duration::MAX);
    let deadline = now.checked_add_signed(d).unwrap_or(now);
    let assignee = cfg.assignee(&branch, &app.cfg.directory);
    let req = if requirement.is_empty() { title.clone() } else { requirement };
    let id = app.store.open_manual_order(&branch, &title, &req, severity, &assignee, deadline, &ctx.user, now).await?;
    app.store.audit(&ctx.user, "order-open", &id.to_string(), &title, now).await?;
    Ok(Redirect::to(&format!("/orders/{id}")).into_response())
}
