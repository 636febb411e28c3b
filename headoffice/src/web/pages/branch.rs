//! One branch: zones and cameras, devices, gateway periods, its alerts.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::alerts::alert_table;
use super::*;

fn parse_branch(s: &str) -> Result<BranchId, Fail> {
    BranchId::new(s).map_err(|e| fail(StatusCode::NOT_FOUND, format!("no branch {s:?}: a branch id {e}")))
}

pub async fn branch(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, Fail> {
    let l = ctx.lang;
    let id = parse_branch(&id)?;
    let info = app.cfg.directory.get(&id);
    if info.is_none() && !app.store.branch_known(&id).await? {
        return Err(fail(
            StatusCode::NOT_FOUND,
            format!("no branch {id}: it is not in the branch directory and nothing has been received from it"),
        ));
    }
    let now = protocols::time::now();
    let c = &app.cfg.clock;
    let st = app.store.branch_state(&id).await?;
    let week = now - chrono::Duration::days(7);
    let gw_facts = app.store.subject_facts(&id, "gateway", "", week).await?;
    let alerts = app
        .store
        .alert_list(&AlertListQuery {
            state: ListState::All,
            branches: Some(vec![id.clone()]),
            limit: 100,
            ..Default::default()
        })
        .await?;
    let orders = app
        .store
        .orders(&crate::db::OrderQuery { branches: Some(vec![id.clone()]), limit: 50, ..Default::default() }, now)
        .await?;
    let o = app.hub.current();
    let tile = o.get(&id);
    let name = info.map(|i| i.name.as_str()).filter(|n| !n.is_empty()).unwrap_or(id.as_str());
    let periods = online_periods(&gw_facts, week, now);
    let device_names: HashMap<&str, &str> =
        st.devices.iter().map(|d| (d.value.device.id.as_str(), d.value.device.name.as_str())).collect();
    let body = html! {
        h1 { (name) " " small { (id) } }
        @if let Some(i) = info {
            dl.info {
                dt { (l.t("Region", "区域")) } dd { (i.region) }
                dt { (l.t("Address", "地址")) } dd { (i.address) }
                dt { (l.t("Contacts", "联系人")) } dd { (i.contacts) }
            }
        }
        div #live {
            @if let Some(t) = tile {
                p.state.(t.state.as_str()) { (state_name(l, t.state)) }
            }
            h2 { (l.t("Gateway", "网关")) }
            @match &st.gateway {
                Some(g) => p {
                    (gateway_name(l, tile.map_or(if g.value.status == protocols::status::GatewayState::Online { "online" } else { "offline" }, |t| t.gateway))) " · " (l.t("since", "自")) " "
                    (since(l, c, now, g.since)) @if let Some(r) = &g.value.reason { " · " (r) }
                    " · " (l.t("version", "版本")) " " (g.value.version)
                },
                None => p { (l.t("No status received from this branch's gateway.", "未收到该网点网关的状态。")) },
            }
            h2 { (l.t("Zones and their cameras", "防区与摄像机")) }
            @match &st.coverage {
                Some(cov) => table.zones {
                    thead { tr {
                        th { (l.t("Zone", "防区")) } th { (l.t("Required", "必防")) } th { (l.t("Cameras", "摄像机")) }
                        th { (l.t("Live / needed", "有画面/要求")) } th { (l.t("Covered", "看护")) } th { (l.t("Uncovered since", "无人看护起始")) }
                    } }
                    tbody { @for z in &cov.value.zones {
                        tr.uncovered[!z.covered && z.required] id={"z-" (z.id)} {
                            td { (z.name) br; small { (z.id) } }
                            td { @if z.required { (l.t("yes", "是")) } @else { (l.t("no", "否")) } }
                            td { (z.cameras.iter().map(|cam| device_names.get(cam.as_str()).copied().unwrap_or(cam.as_str())).collect::<Vec<_>>().join(", ")) }
                            td.num { (z.cameras_live_video) " / " (z.min_live_cameras) }
                            td.cov { @if z.covered { (l.t("covered", "有看护")) } @else { b { (l.t("UNCOVERED", "无人看护")) } } }
                            td { (since(l, c, now, z.uncovered_since)) }
                        }
                    } }
                },
                None => p { (l.t("No coverage report received yet.", "尚未收到覆盖报告。")) },
            }
            p.note { @if let Some(cov) = &st.coverage { (l.t("Coverage computed at", "覆盖计算时间")) " " (c.show(cov.value.at)) } }
            h2 { (l.t("Devices", "设备")) }
            table.devices {
                thead { tr {
                    th { (l.t("Device", "设备")) } th { (l.t("Type", "类型")) } th { (l.t("State", "状态")) }
                    th { (l.t("Since", "起始")) } th { (l.t("Last reason", "最近原因")) } th { (l.t("Clock skew", "时钟偏差")) } th { (l.t("Main stream", "主码流")) } th { (l.t("Updated", "更新")) }
                } }
                tbody { @for d in &st.devices {
                    tr.bad[d.value.state != "online"] id={"d-" (d.value.device.id)} {
                        td { (d.value.device.name) br; small { (d.value.device.id) } }
                        td { (d.value.device.device_type.as_str()) }
                        td.dstate { (device_state_name(l, d.value.detail())) }
                        td { (since(l, c, now, Some(d.value.since))) }
                        td { (d.value.reason.as_deref().unwrap_or("")) }
                        td.num { @if let Some(s) = d.value.clock_skew_ms { (format!("{:.1} s", s as f64 / 1000.0)) } }
                        td.stream { @if let Some(r) = &d.value.resolution { (r) " " (d.value.encoding.as_deref().unwrap_or("")) } }
                        td { (c.show(d.value.updated_at)) }
                    }
                } }
            }
        }
        h2 { (l.t("Gateway online periods (7 days)", "网关在线时段（近 7 天）")) }
        @if periods.is_empty() { p { (l.t("No gateway history in the last 7 days.", "近 7 天无网关记录。")) } }
        @else {
            (timeline_svg(l, c, week, now, &periods.iter().filter(|p| !p.2).map(|p| (p.0, p.1)).collect::<Vec<_>>(), "#c62828"))
            table.periods {
                thead { tr { th { (l.t("From", "起")) } th { (l.t("To", "止")) } th { (l.t("State", "状态")) } th { (l.t("Reason", "原因")) } } }
                tbody { @for (from, to, online, reason) in &periods {
                    tr.bad[!online] { td { (c.show(*from)) } td { (c.show(*to)) } td { @if *online { (l.t("online", "在线")) } @else { (l.t("offline", "离线")) } } td { (reason) } }
                } }
            }
        }
        h2 { (l.t("Rectification orders", "整改单")) }
        (super::orders::orders_table(&app, &ctx, &orders))
        @if ctx.role >= Role::Operator { (super::orders::open_form(&ctx, &id)) }
        h2 { (l.t("Alerts (latest 100)", "告警（最近 100 条）")) }
        (alert_table(&app, &ctx, &alerts, &branch_url(&id)))
    };
    let live = format!("branch:{id}");
    Ok(page(&app, &ctx, name, "overview", Some(&live), body))
}

/// Online (true) and offline periods from a gateway's facts, clipped to the window.
fn online_periods(facts: &[report::Fact], from: Timestamp, to: Timestamp) -> Vec<(Timestamp, Timestamp, bool, String)> {
    let mut out: Vec<(Timestamp, Timestamp, bool, String)> = Vec::new();
    for (i, f) in facts.iter().enumerate() {
        let start = f.at.max(from);
        let end = facts.get(i + 1).map_or(to, |n| n.at).min(to);
        if end <= start {
            continue;
        }
        let reason = f.reason.as_deref().unwrap_or("").to_string();
        match out.last_mut() {
            Some(last) if last.2 != f.bad => last.1 = end,
            _ => out.push((start, end, !f.bad, reason)),
        }
    }
    out
}

/// A bar over the window with `bad` stretches drawn in `color`.
pub(super) fn timeline_svg(
    l: Lang,
    c: &Clock,
    from: Timestamp,
    to: Timestamp,
    bad: &[(Timestamp, Timestamp)],
    color: &str,
) -> Markup {
    let width = 600.0;
    let span = (to - from).num_milliseconds().max(1) as f64;
    let x = |t: Timestamp| ((t - from).num_milliseconds() as f64 / span * width).clamp(0.0, width);
    html! {
        svg.timeline xmlns="http://www.w3.org/2000/svg" width="620" height="34" role="img"
            aria-label=(l.t("timeline", "时间轴")) {
            rect x="0" y="4" width=(width) height="14" fill="#2e7d32" {}
            @for (a, b) in bad {
                rect x=(format!("{:.1}", x(*a))) y="4" width=(format!("{:.1}", (x(*b) - x(*a)).max(1.0))) height="14" fill=(color) {
                    title { (c.show(*a)) " – " (c.show(*b)) }
                }
            }
            text x="0" y="31" font-size="10" { (c.short(from)) }
            text x=(width) y="31" font-size="10" text-anchor="end" { (c.short(to)) }
        }
    }
}
