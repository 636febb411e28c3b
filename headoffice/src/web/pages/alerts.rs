//! The alarm and alert list, and acknowledging an alarm.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::*;

fn alert_detail(l: Lang, a: &Alert) -> String {
    match &a.body {
        AlertBody::AlarmLink(d) => format!("{} {}", l.t("zone", "防区"), d.zone_name),
        AlertBody::DoorStatus(d) => format!("{} {} ({})", l.t("door", "门"), d.door_name, d.door_state.as_str()),
        AlertBody::CameraOffline(d) => d.status.clone(),
        AlertBody::DeviceFault(d) => format!("{}: {}", d.fault, d.reason),
    }
}

/// The alert table of the alert list and the branch page; with acknowledgement forms for
/// operators. `back` is where an acknowledgement returns to.
pub(super) fn alert_table(app: &App, ctx: &Ctx, rows: &[AlarmRow], back: &str) -> Markup {
    let l = ctx.lang;
    let c = &app.cfg.clock;
    let dir = &app.cfg.directory;
    let can_ack = ctx.role >= Role::Operator;
    html! {
        div #list {
            @if rows.is_empty() { p.empty { (l.t("No alerts match.", "没有符合条件的告警。")) } }
            @else {
                table.alerts {
                    thead { tr {
                        th { (l.t("Occurred", "发生时间")) } th { (l.t("Branch", "网点")) } th { (l.t("Kind", "类型")) }
                        th { (l.t("Severity", "级别")) } th { (l.t("Device", "设备")) } th { (l.t("What", "内容")) }
                        th { (l.t("State", "状态")) } th { (l.t("Acknowledgement", "确认")) }
                    } }
                    tbody { @for r in rows {
                        @let a = &r.alert;
                        @let bname = dir.get(&a.branch).map(|i| i.name.as_str()).filter(|n| !n.is_empty()).unwrap_or(a.branch.as_str());
                        tr.open[r.open] .(format!("sev-{}", a.severity.as_str())) data-alert=(a.id) {
                            td { (c.show(a.occurred_at)) }
                            td { a href=(branch_url(&a.branch)) { (bname) } }
                            td { (kind_name(l, a.kind())) }
                            td.sev { (severity_name(l, a.severity)) }
                            td { (a.device.name) }
                            td {
                                (alert_detail(l, a)) br; small { (a.message) }
                                @if r.camera_down { br; b.camdown { (l.t("Linked camera was down", "联动摄像机当时故障")) } }
                            }
                            td { @if a.state == AlertState::Raised { (l.t("raised", "发生")) } @else { (l.t("cleared", "恢复")) } }
                            td.ack {
                                @if let Some(k) = &r.ack {
                                    span.acked { (l.t("Acknowledged by", "确认人")) " " b { (k.by) } " · " (c.show(k.at)) } br;
                                    q { (k.comment) }
                                } @else if r.open && can_ack {
                                    form.ack method="post" action="/alerts/ack" {
                                        input type="hidden" name="csrf" value=(ctx.csrf);
                                        input type="hidden" name="branch" value=(a.branch);
                                        input type="hidden" name="id" value=(a.id);
                                        input type="hidden" name="back" value=(back);
                                        input type="text" name="comment" required maxlength="500"
                                            placeholder=(l.t("what was done", "处置情况"));
                                        button type="submit" { (l.t("Acknowledge", "确认")) }
                                    }
                                } @else if r.open {
                                    span.waiting { (l.t("waiting for an operator", "待值班员确认")) }
                                }
                            }
                        }
                    } }
                }
            }
        }
    }
}

pub async fn alerts(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Params,
) -> Result<Response, Fail> {
    let l = ctx.lang;
    let get = |k: &str| q.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let state = match get("state") {
        None => ListState::Open,
        Some(s) => ListState::parse(s).ok_or_else(|| {
            fail(StatusCode::BAD_REQUEST, format!("state={s:?}: expected open, alarms, acked, raised, cleared or all"))
        })?,
    };
    let kind = get("kind")
        .map(|s| {
            AlertKind::parse(s).ok_or_else(|| {
                fail(
                    StatusCode::BAD_REQUEST,
                    format!("kind={s:?}: expected camera-offline, alarm-link, door-status or device-fault"),
                )
            })
        })
        .transpose()?;
    let severity_min = get("severity")
        .map(|s| {
            Severity::parse(s).ok_or_else(|| {
                fail(StatusCode::BAD_REQUEST, format!("severity={s:?}: expected info, warning, major or critical"))
            })
        })
        .transpose()?;
    let limit =
        match get("limit") {
            None => 200,
            Some(s) => s.parse::<usize>().ok().filter(|n| (1..=5000).contains(n)).ok_or_else(|| {
                fail(StatusCode::BAD_REQUEST, format!("limit={s:?}: expected a number from 1 to 5000"))
            })?,
        };
    let Scope { region, branch: branch_q, branches } = scope(&app, &q)?;
    let rows = app.store.alert_list(&AlertListQuery { state, branches, kind, severity_min, limit }).await?;
    let regions = app.cfg.directory.regions();
    let states = [
        (ListState::Open, l.t("open alarms", "未确认报警")),
        (ListState::Alarms, l.t("all alarms", "全部报警")),
        (ListState::Acked, l.t("acknowledged", "已确认")),
        (ListState::Raised, l.t("raised", "发生")),
        (ListState::Cleared, l.t("cleared", "恢复")),
        (ListState::All, l.t("everything", "全部")),
    ];
    let back = format!(
        "/alerts?{}",
        q.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
    );
    let body = html! {
        h1 { (l.t("Alarms and alerts", "报警与告警")) }
        form.filters method="get" action="/alerts" {
            label { (l.t("Show", "显示")) " " select name="state" {
                @for (s, n) in states { option value=(s.as_str()) selected[s == state] { (n) } }
            } }
            label { (l.t("Severity at least", "级别不低于")) " " select name="severity" {
                option value="" { (l.t("any", "任意")) }
                @for s in [Severity::Info, Severity::Warning, Severity::Major, Severity::Critical] {
                    option value=(s.as_str()) selected[Some(s) == severity_min] { (severity_name(l, s)) }
                }
            } }
            label { (l.t("Kind", "类型")) " " select name="kind" {
                option value="" { (l.t("any", "任意")) }
                @for k in [AlertKind::AlarmLink, AlertKind::DoorStatus, AlertKind::CameraOffline, AlertKind::DeviceFault] {
                    option value=(k.as_str()) selected[Some(k) == kind] { (kind_name(l, k)) }
                }
            } }
            label { (l.t("Region", "区域")) " " select name="region" {
                option value="" { (l.t("all", "全部")) }
                @for r in &regions { option value=(r) selected[*r == region] { (r) } }
            } }
            label { (l.t("Branch id", "网点编号")) " " input type="search" name="branch" value=(branch_q); }
            button type="submit" { (l.t("Show", "筛选")) }
        }
        @if state == ListState::Open {
            p.note { (l.t("An alarm stays here until an operator acknowledges it with a comment.", "报警在值班员填写处置情况并确认之前一直保留在此列表中。")) }
        }
        (alert_table(&app, &ctx, &rows, &back))
    };
    Ok(page(&app, &ctx, l.t("Alarms & alerts", "报警与告警"), "alerts", Some("alerts"), body))
}

#[derive(Deserialize)]
pub struct AckForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    branch: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    back: String,
}

pub async fn ack(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<AckForm>,
) -> Result<Response, Fail> {
    check_csrf(&ctx, &f.csrf)?;
    if ctx.role < Role::Operator {
        return Err(fail(StatusCode::FORBIDDEN, "only an operator or an admin may acknowledge alarms"));
    }
    let comment = f.comment.trim();
    if comment.is_empty() {
        return Err(fail(StatusCode::BAD_REQUEST, "write what was done (the comment) before acknowledging"));
    }
    if comment.chars().count() > 500 {
        return Err(fail(StatusCode::BAD_REQUEST, "the comment is longer than 500 characters"));
    }
    let branch = BranchId::new(f.branch.clone())
        .map_err(|e| fail(StatusCode::BAD_REQUEST, format!("branch {:?} {e}", f.branch)))?;
    match app.store.ack_alarm(branch.as_str(), &f.id, &ctx.user, comment, protocols::time::now()).await? {
        AckOutcome::Acked => {
            tracing::info!(user = %ctx.user, branch = %branch, alert = %f.id, "console: alarm acknowledged");
            Ok(Redirect::to(&safe_next(Some(&f.back))).into_response())
        }
        AckOutcome::AlreadyAcked { by, at } => Err(fail(
            StatusCode::CONFLICT,
            format!("this alarm was acknowledged already by {by} at {}", app.cfg.clock.show(at)),
        )),
        AckOutcome::NotAnAlarm => {
            Err(fail(StatusCode::BAD_REQUEST, "this alert is not an alarm that needs acknowledging"))
        }
        AckOutcome::NoSuchAlert => {
            Err(fail(StatusCode::NOT_FOUND, format!("no alert {:?} from branch {branch}", f.id)))
        }
    }
}
