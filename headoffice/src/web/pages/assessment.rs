//! The assessment (考核) of a period: page, chart, CSV.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::branch::timeline_svg;
use super::*;

/// The longest period the console assesses at once.
const MAX_PERIOD_DAYS: i64 = 400;

fn period(app: &App, q: &HashMap<String, String>) -> Result<Window, Fail> {
    let now = protocols::time::now();
    let from_s = q.get("from").map(|s| s.trim()).filter(|s| !s.is_empty()).unwrap_or("-30d");
    let to_s = q.get("to").map(|s| s.trim()).filter(|s| !s.is_empty()).unwrap_or("now");
    // A date alone is midnight where the console's users are, not in UTC.
    let at = |s: &str, what: &str| -> Result<Timestamp, Fail> {
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            && let Some(t) = d.and_hms_opt(0, 0, 0).and_then(|t| t.and_local_timezone(app.cfg.clock.offset).single())
        {
            return Ok(t.with_timezone(&chrono::Utc));
        }
        timespec::parse(s, now).map_err(|e| fail(StatusCode::BAD_REQUEST, format!("{what}: {e}")))
    };
    let from = at(from_s, "from")?;
    let to = at(to_s, "to")?;
    let w =
        Window::new(from, to).map_err(|e| fail(StatusCode::BAD_REQUEST, format!("{e} (from {from_s}, to {to_s})")))?;
    if (w.to - w.from).num_days() > MAX_PERIOD_DAYS {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            format!("the period is longer than {MAX_PERIOD_DAYS} days; choose a shorter one"),
        ));
    }
    Ok(w)
}

pub async fn assessment_csv(State(app): State<Arc<App>>, Query(q): Params) -> Result<Response, Fail> {
    let w = period(&app, &q)?;
    let data = app.store.report_data(w).await?;
    let r = report::build(data, w);
    let off = app.cfg.clock.offset;
    let name = format!(
        "assessment-{}-{}.csv",
        w.from.with_timezone(&off).format("%Y%m%d"),
        w.to.with_timezone(&off).format("%Y%m%d")
    );
    Ok(csv_file(&name, &render::report_csv(&r)))
}

/// A CSV download: UTF-8 with a byte-order mark, so that a spreadsheet opens the Chinese names
/// right.
fn csv_file(name: &str, text: &str) -> Response {
    let mut res =
        ([(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"))], format!("\u{feff}{text}"))
            .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// The ranking as CSV (UTF-8 with a byte-order mark, for spreadsheets).
pub async fn scores_csv(State(app): State<Arc<App>>, Query(q): Params) -> Result<Response, Fail> {
    let w = period(&app, &q)?;
    let data = app.store.report_data(w).await?;
    let r = report::build(data, w);
    let stats = app.store.order_stats(w, protocols::time::now()).await?;
    let ranking = crate::orders::rank(&r, &stats, &app.cfg.hq.score);
    let dir = &app.cfg.directory;
    let headers = [
        "rank",
        "branch",
        "name",
        "score",
        "camera_availability_pct",
        "uncovered_minutes",
        "alarms_with_camera_down",
        "orders_opened",
        "orders_fixed_on_time",
        "orders_overdue",
        "mean_rectify_minutes",
    ];
    let rows: Vec<Vec<String>> = ranking
        .iter()
        .enumerate()
        .map(|(i, s)| {
            vec![
                (i + 1).to_string(),
                s.branch.to_string(),
                dir.get(&s.branch).map(|b| b.name.clone()).unwrap_or_default(),
                format!("{:.1}", s.score),
                s.camera_availability_pct.map(|p| format!("{p:.3}")).unwrap_or_default(),
                format!("{:.1}", s.uncovered_minutes),
                s.alarms_with_camera_down.to_string(),
                s.orders.opened.to_string(),
                s.orders.fixed_on_time.to_string(),
                s.orders.overdue.to_string(),
                s.orders.mean_rectify_minutes.map(|m| format!("{m:.1}")).unwrap_or_default(),
            ]
        })
        .collect();
    let off = app.cfg.clock.offset;
    let name = format!(
        "scores-{}-{}.csv",
        w.from.with_timezone(&off).format("%Y%m%d"),
        w.to.with_timezone(&off).format("%Y%m%d")
    );
    Ok(csv_file(&name, &render::csv(&headers, &rows)))
}

fn pct(p: Option<f64>) -> String {
    p.map_or_else(|| "–".into(), |p| format!("{p:.2} %"))
}

fn minutes(m: f64) -> String {
    format!("{m:.1}")
}

pub async fn assessment(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Params,
) -> Result<Response, Fail> {
    let l = ctx.lang;
    let w = period(&app, &q)?;
    let c = &app.cfg.clock;
    let data = app.store.report_data(w).await?;
    let r = report::build(data, w);
    let stats = app.store.order_stats(w, protocols::time::now()).await?;
    let ranking = crate::orders::rank(&r, &stats, &app.cfg.hq.score);
    let sc = &app.cfg.hq.score;
    let dir = &app.cfg.directory;
    let name_of =
        |b: &BranchId| dir.get(b).map(|i| i.name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| b.to_string());
    let qs = format!("from={}&to={}", encode(&w.from.to_rfc3339()), encode(&w.to.to_rfc3339()));
    let local_now = protocols::time::now().with_timezone(&c.offset);
    let presets = presets(l, local_now);
    let body = html! {
        h1 { (l.t("Security assessment", "安防考核")) }
        form.filters.noprint method="get" action="/assessment" {
            label { (l.t("From", "起")) " " input name="from" value=(q.get("from").map_or("-30d", String::as_str)); }
            label { (l.t("To", "止")) " " input name="to" value=(q.get("to").map_or("now", String::as_str)); }
            button type="submit" { (l.t("Assess", "生成")) }
            span.presets { @for (i, (name, from, to)) in presets.iter().enumerate() {
                @if i > 0 { " · " }
                a href={"/assessment?from=" (encode(from)) "&to=" (encode(to))} { (name) }
            } }
            span.exports {
                a #csv href={"/assessment.csv?" (qs)} { (l.t("Export CSV", "导出 CSV")) } " · "
                a #scorescsv href={"/assessment/scores.csv?" (qs)} { (l.t("Export scores", "导出得分")) } " · "
                button.link type="button" data-print="1" { (l.t("Print", "打印")) }
            }
        }
        p.period { (l.t("Period", "考核期间")) ": " b { (c.show(r.from)) " – " (c.show(r.to)) } " (" (c.zone()) ")" }
        p.totals {
            (r.totals.branches) " " (l.t("branches", "个网点")) " · "
            (r.totals.cameras) " " (l.t("cameras", "台摄像机")) " · "
            (l.t("camera availability", "摄像机可用率")) " " b { (pct(r.totals.camera_availability_pct)) } " · "
            (l.t("required zones uncovered", "必防区无人看护")) " " b { (minutes(r.totals.required_zone_uncovered_minutes)) } " " (l.t("min", "分钟")) " · "
            (l.t("alarms", "报警")) " " (r.totals.alarms) " (" (l.t("with a camera down", "联动摄像机故障")) " " b { (r.totals.alarms_with_camera_down) } ") · "
            (l.t("gateways offline", "网关离线")) " " (minutes(r.totals.gateway_offline_minutes)) " " (l.t("min", "分钟"))
        }
        h2 { (l.t("Camera availability per branch", "各网点摄像机可用率")) }
        (availability_chart(l, &r, &name_of))
        table #branches .report {
            thead { tr {
                th { (l.t("Branch", "网点")) } th { (l.t("Camera availability", "摄像机可用率")) } th { (l.t("Gateway online", "网关在线率")) }
                th { (l.t("Uncovered min (required zones)", "必防区无人看护(分钟)")) } th { (l.t("Alarms", "报警")) }
                th { (l.t("Alarms with camera down", "联动摄像机故障的报警")) } th { (l.t("Mean time to repair (min)", "平均修复时间(分钟)")) }
                th { (l.t("Gateway offline periods", "网关离线次数")) }
            } }
            tbody { @for b in &r.branches {
                @let unc: f64 = b.zones.iter().map(|z| z.uncovered_minutes).sum();
                @let reps: usize = b.mttr.iter().map(|m| m.repairs).sum();
                @let mttr = if reps == 0 { None } else { Some(b.mttr.iter().map(|m| m.mean_minutes * m.repairs as f64).sum::<f64>() / reps as f64) };
                tr {
                    td { a href=(branch_url(&b.branch)) { (name_of(&b.branch)) } }
                    td.num { (pct(b.camera_availability_pct)) }
                    td.num { (format!("{:.2} %", b.gateway_online_pct)) }
                    td.num { (minutes(unc)) }
                    td.num { (b.alarms) }
                    td.num { (b.alarms_with_camera_down.len()) }
                    td.num { @if let Some(m) = mttr { (minutes(m)) } @else { "–" } }
                    td.num { (b.gateway_offline.len()) }
                }
            } }
        }
        h2 { (l.t("Branch scores, ranked", "网点考核得分排名")) }
        p.note {
            (l.t("Score", "得分")) " = 100 − " (sc.availability) " × " (l.t("points below", "低于目标可用率")) " " (sc.availability_target) " % − "
            (sc.uncovered) " × " (l.t("hours of required zones uncovered", "必防区无人看护小时数")) " − "
            (sc.camera_down) " × " (l.t("alarms with a camera down", "联动摄像机故障的报警数")) " − "
            (sc.overdue) " × " (l.t("overdue orders", "超期整改单数")) " (" (l.t("at least 0; [score] in the configuration", "最低 0 分；见配置文件 [score]")) ")"
        }
        table #scores .report {
            thead { tr {
                th { (l.t("Rank", "名次")) } th { (l.t("Branch", "网点")) } th { (l.t("Score", "得分")) }
                th { (l.t("Camera availability", "摄像机可用率")) } th { (l.t("Uncovered min", "无人看护(分钟)")) }
                th { (l.t("Alarms with camera down", "联动摄像机故障的报警")) }
                th { (l.t("Orders opened", "下发整改单")) } th { (l.t("Fixed on time", "按期整改")) }
                th { (l.t("Overdue", "超期")) } th { (l.t("Mean time to rectify (min)", "平均整改时长(分钟)")) }
            } }
            tbody { @for (i, s) in ranking.iter().enumerate() {
                tr {
                    td.num { (i + 1) } td { a href=(branch_url(&s.branch)) { (name_of(&s.branch)) } }
                    td.num { b { (format!("{:.1}", s.score)) } }
                    td.num { (pct(s.camera_availability_pct)) } td.num { (minutes(s.uncovered_minutes)) }
                    td.num { (s.alarms_with_camera_down) }
                    td.num { (s.orders.opened) } td.num { (s.orders.fixed_on_time) } td.num { (s.orders.overdue) }
                    td.num { @if let Some(m) = s.orders.mean_rectify_minutes { (minutes(m)) } @else { "–" } }
                }
            } }
        }
        h2 { (l.t("Required zones uncovered", "必防区无人看护")) }
        @let zones: Vec<_> = r.branches.iter().flat_map(|b| b.zones.iter().filter(|z| z.uncovered_minutes > 0.0).map(move |z| (b, z))).collect();
        @if zones.is_empty() { p { (l.t("Every required zone was watched throughout the period.", "考核期间所有必防区均有看护。")) } }
        @else {
            table.report.zones {
                thead { tr { th { (l.t("Branch", "网点")) } th { (l.t("Zone", "防区")) } th { (l.t("Uncovered min", "无人看护(分钟)")) } th { (l.t("Timeline", "时间轴")) } } }
                tbody { @for (b, z) in &zones {
                    tr {
                        td { (name_of(&b.branch)) } td { (z.name) } td.num { (minutes(z.uncovered_minutes)) }
                        td { (timeline_svg(l, c, r.from, r.to, &z.periods.iter().map(|p| (p.from, p.to)).collect::<Vec<_>>(), "#c62828")) }
                    }
                } }
            }
        }
        h2 { (l.t("Alarms while a linked camera was down", "报警时联动摄像机故障")) }
        @let down: Vec<_> = r.branches.iter().flat_map(|b| b.alarms_with_camera_down.iter().map(move |a| (b, a))).collect();
        @if down.is_empty() { p { (l.t("None.", "无。")) } }
        @else {
            table.report {
                thead { tr { th { (l.t("Branch", "网点")) } th { (l.t("Occurred", "发生时间")) } th { (l.t("Zone", "防区")) } th { (l.t("Cameras down", "故障摄像机")) } } }
                tbody { @for (b, a) in &down {
                    tr { td { (name_of(&b.branch)) } td { (c.show(a.occurred_at)) } td { (a.zone_name) }
                         td { (a.cameras_down.iter().map(|x| x.name.as_str()).collect::<Vec<_>>().join(", ")) } }
                } }
            }
        }
        h2 { (l.t("Mean time to repair", "平均修复时间")) }
        @if r.mttr.is_empty() { p { (l.t("No repair in the period.", "考核期间无修复记录。")) } }
        @else { table.report {
            thead { tr { th { (l.t("Device type", "设备类型")) } th { (l.t("Repairs", "修复次数")) } th { (l.t("Mean min", "平均(分钟)")) } th { (l.t("Longest min", "最长(分钟)")) } } }
            tbody { @for m in &r.mttr { tr { td { (m.device_type) } td.num { (m.repairs) } td.num { (minutes(m.mean_minutes)) } td.num { (minutes(m.max_minutes)) } } } }
        } }
        h2 { (l.t("Gateway offline periods", "网关离线时段")) }
        @let offline: Vec<(&BranchId, &Period)> = r.branches.iter().flat_map(|b| b.gateway_offline.iter().map(move |p| (&b.branch, p))).collect();
        @if offline.is_empty() { p { (l.t("None.", "无。")) } }
        @else {
            table.report {
                thead { tr { th { (l.t("Branch", "网点")) } th { (l.t("From", "起")) } th { (l.t("To", "止")) } th { (l.t("Minutes", "分钟")) } th { (l.t("Reason", "原因")) } } }
                tbody { @for (b, p) in &offline {
                    tr { td { (name_of(b)) } td { (c.show(p.from)) } td { (c.show(p.to)) @if p.ongoing { " …" } } td.num { (minutes(p.minutes)) } td { (p.reason.as_deref().unwrap_or("")) } }
                } }
            }
        }
    };
    Ok(page(&app, &ctx, l.t("Assessment", "考核"), "assessment", None, body))
}

/// Quick periods: last 7 and 30 days, this and last month (in the console's offset).
fn presets(l: Lang, now: chrono::DateTime<chrono::FixedOffset>) -> Vec<(&'static str, String, String)> {
    use chrono::{Datelike, TimeZone};
    let tz = now.timezone();
    let month_start = |y: i32, m: u32| tz.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().map(|t| t.to_rfc3339());
    let (y, m) = (now.year(), now.month());
    let (py, pm) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    let mut v = vec![
        (l.t("Last 7 days", "近 7 天"), "-7d".to_string(), "now".to_string()),
        (l.t("Last 30 days", "近 30 天"), "-30d".to_string(), "now".to_string()),
    ];
    if let Some(this) = month_start(y, m) {
        v.push((l.t("This month", "本月"), this.clone(), "now".to_string()));
        if let Some(prev) = month_start(py, pm) {
            v.push((l.t("Last month", "上月"), prev, this));
        }
    }
    v
}

/// A bar per branch: camera availability, worst first (the first 200 when there are more).
fn availability_chart(l: Lang, r: &Report, name_of: &dyn Fn(&BranchId) -> String) -> Markup {
    let mut rows: Vec<(&BranchId, f64)> =
        r.branches.iter().filter_map(|b| b.camera_availability_pct.map(|p| (&b.branch, p))).collect();
    rows.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(b.0)));
    let more = rows.len().saturating_sub(200);
    rows.truncate(200);
    let (row_h, label_w, bar_w) = (20.0, 180.0, 420.0);
    let height = 10.0 + row_h * rows.len() as f64;
    html! {
        @if rows.is_empty() { p { (l.t("No camera in the period.", "考核期间没有摄像机数据。")) } }
        @else {
            svg.chart xmlns="http://www.w3.org/2000/svg" width=(label_w + bar_w + 80.0) height=(height) role="img"
                aria-label=(l.t("Camera availability per branch", "各网点摄像机可用率")) {
                @for (i, (b, p)) in rows.iter().enumerate() {
                    @let y = 4.0 + row_h * i as f64;
                    @let color = if *p >= 99.0 { "#2e7d32" } else if *p >= 95.0 { "#f9a825" } else { "#c62828" };
                    text x="0" y=(y + 12.0) font-size="12" { (name_of(b)) }
                    rect x=(label_w) y=(y) width=(bar_w) height="14" fill="#eee" {}
                    rect x=(label_w) y=(y) width=(format!("{:.1}", p / 100.0 * bar_w)) height="14" fill=(color) {}
                    text x=(label_w + bar_w + 6.0) y=(y + 12.0) font-size="12" { (format!("{p:.2} %")) }
                }
            }
            @if more > 0 { p.note { (more) " " (l.t("more branches in the table below", "个网点见下表")) } }
        }
    }
}
