//! Turning views into text: aligned tables for a terminal, CSV for a spreadsheet, and a
//! self-contained HTML report (inline SVG, no script) for the assessment file. JSON is plain
//! serde of the view types and lives in the binary.
//!
//! Functions here return strings; printing is the binary's job.

use std::fmt::Write as _;

use i18n::{Lang, tr};
use protocols::Alert;
use protocols::time::{Timestamp, format as ts};
use unicode_width::UnicodeWidthStr;

use crate::coverage::CoverageView;
use crate::db::Counters;
use crate::gaps::GapsView;
use crate::report::{Period, Report};

/// A column's heading as a person reads it: the key itself in English (it is also the CSV and
/// JSON field name), a Chinese label in Chinese. `None` for a key without one (a test checks
/// every table's keys have one).
pub fn heading_zh(key: &str) -> Option<&'static str> {
    Some(match key {
        "branch" => "网点",
        "gateway" => "网关",
        "since" => "起始时间",
        "cameras_online" => "在线摄像机",
        "cameras_total" => "摄像机总数",
        "live_video" => "有效视频",
        "required_zones" => "必防区",
        "uncovered" => "无人看护",
        "uncovered_zones" => "无人看护的必防区",
        "stale" => "数据过时",
        "from" => "开始",
        "to" => "结束",
        "missing" => "缺失条数",
        "detected_at" => "发现时间",
        "last_alert_at" => "最近告警时间",
        "state" => "状态",
        "occurred_at" | "occurred at" => "发生时间",
        "seq" => "序号",
        "kind" => "类型",
        "severity" => "级别",
        "device" => "设备",
        "message" => "内容",
        "db" => "数据库",
        "alerts" => "告警",
        "duplicates" => "重复",
        "malformed" => "格式错误",
        "gateway_changes" => "网关状态变化",
        "device_changes" => "设备状态变化",
        "zone_changes" => "区域状态变化",
        "pruned" => "已清理",
        "camera" => "摄像机",
        "name" => "名称",
        "online_%" | "online %" => "在线率 %",
        "down_min" | "down min" => "离线分钟",
        "outages" => "离线次数",
        "zone" => "区域",
        "uncovered_min" | "uncovered min" => "无人看护(分钟)",
        "periods" => "时段",
        "cameras_down" | "cameras down" => "故障摄像机",
        "device_type" | "device type" => "设备类型",
        "repairs" => "修复次数",
        "mean_min" | "mean min" => "平均分钟",
        "max_min" | "max min" => "最长分钟",
        "minutes" => "分钟",
        "ongoing" => "仍在持续",
        "reason" => "原因",
        "camera_avail_%" => "摄像机可用率",
        "gateway_online_%" => "网关在线率",
        "alarms" => "报警",
        "alarms_cam_down" => "联动摄像机故障的报警",
        "gateway_offline_min" => "网关离线(分钟)",
        "dry_run" => "试运行",
        "access_alerts" => "门禁告警",
        "state_changes" => "状态变化",
        "id" => "编号",
        "created_at" => "创建时间",
        "channel" => "通道",
        "recipient" => "接收人",
        "attempts" => "尝试次数",
        "sent_at" => "发送时间",
        "last_error" => "最近错误",
        "subject" => "标题",
        "role" => "角色",
        "disabled" => "已停用",
        "lang" => "语言",
        "condition" => "问题",
        "assignee" => "责任人",
        "taken_by" => "接单人",
        "opened_at" => "开单时间",
        "deadline" => "整改期限",
        "overdue" => "已超期",
        "requirement" => "整改要求",
        "at" => "时间",
        "actor" => "操作人",
        "action" => "操作",
        "note" => "备注",
        _ => return None,
    })
}

/// [`heading_zh`] in `lang`, the key itself when there is no label.
pub fn heading(key: &str, lang: Lang) -> &str {
    match lang {
        Lang::En => key,
        Lang::Zh => heading_zh(key).unwrap_or(key),
    }
}

/// Columns padded to the widest cell (by display width: a Chinese character takes two
/// columns), with headings in `lang`.
pub fn table(lang: Lang, headers: &[&str], rows: &[Vec<String>]) -> String {
    let headers: Vec<&str> = headers.iter().map(|h| heading(h, lang)).collect();
    let mut w: Vec<usize> = headers.iter().map(|h| h.width()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.width());
            }
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, c) in cells.enumerate() {
            let width = w.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(c.width());
            s.push_str(c);
            s.push_str(&" ".repeat(pad + 2));
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut out, &mut headers.iter().copied());
    for r in rows {
        line(&mut out, &mut r.iter().map(String::as_str));
    }
    out
}

/// RFC 4180 CSV (the csv crate: quotes what needs quoting, CRLF line ends), headers first when
/// there are any (`hq alerts --follow --format csv` streams rows alone after its header line).
pub fn csv(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    // Writing into a Vec cannot fail; a record that could not be written would be left out.
    if !headers.is_empty() {
        let _ = w.write_record(headers);
    }
    for r in rows {
        let _ = w.write_record(r);
    }
    w.into_inner().map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default()
}

fn opt_ts(t: Option<Timestamp>) -> String {
    t.as_ref().map(ts).unwrap_or_default()
}

fn pct(p: Option<f64>) -> String {
    p.map(|p| format!("{p:.3}")).unwrap_or_else(|| "-".into())
}

pub const COVERAGE_HEADERS: [&str; 10] = [
    "branch",
    "gateway",
    "since",
    "cameras_online",
    "cameras_total",
    "live_video",
    "required_zones",
    "uncovered",
    "uncovered_zones",
    "stale",
];

pub fn coverage_rows(v: &CoverageView) -> Vec<Vec<String>> {
    v.branches
        .iter()
        .map(|b| {
            vec![
                b.branch.to_string(),
                b.gateway.to_string(),
                opt_ts(b.gateway_since),
                b.cameras_online.to_string(),
                b.cameras_total.to_string(),
                b.cameras_live_video.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
                b.required_zones.to_string(),
                b.required_zones_uncovered.to_string(),
                b.uncovered_zones.iter().map(|z| z.name.as_str()).collect::<Vec<_>>().join("; "),
                if b.stale { "stale".into() } else { String::new() },
            ]
        })
        .collect()
}

pub const GAP_HEADERS: [&str; 7] = ["branch", "from", "to", "missing", "detected_at", "last_alert_at", "state"];

pub fn gap_rows(v: &GapsView) -> Vec<Vec<String>> {
    v.gaps
        .iter()
        .map(|g| {
            vec![
                g.gap.branch.to_string(),
                g.gap.from.to_string(),
                g.gap.to.to_string(),
                g.missing.to_string(),
                ts(&g.gap.detected_at),
                ts(&g.last_alert_at),
                g.state.to_string(),
            ]
        })
        .collect()
}

pub const ALERT_HEADERS: [&str; 8] = ["occurred_at", "branch", "seq", "kind", "state", "severity", "device", "message"];

pub fn alert_row(a: &Alert) -> Vec<String> {
    vec![
        ts(&a.occurred_at),
        a.branch.to_string(),
        a.seq.0.to_string(),
        a.kind().as_str().to_string(),
        format!("{:?}", a.state).to_lowercase(),
        a.severity.as_str().to_string(),
        a.device.id.to_string(),
        a.message.clone(),
    ]
}

pub const STATS_HEADERS: [&str; 8] =
    ["db", "alerts", "duplicates", "malformed", "gateway_changes", "device_changes", "zone_changes", "pruned"];

pub fn stats_row(db: &str, c: &Counters) -> Vec<String> {
    vec![
        db.to_string(),
        c.alerts.to_string(),
        c.duplicates.to_string(),
        c.malformed.to_string(),
        c.gateway_changes.to_string(),
        c.device_changes.to_string(),
        c.zone_changes.to_string(),
        c.pruned.to_string(),
    ]
}

/// A titled table: title, headers, rows.
type Section = (&'static str, Vec<&'static str>, Vec<Vec<String>>);

/// The report as sections of aligned tables, in `lang`.
pub fn report_table(r: &Report, lang: Lang) -> String {
    let mut out = String::new();
    let (from, to) = (ts(&r.from), ts(&r.to));
    let _ = writeln!(out, "{}", tr!(lang, "Report {from} – {to}\n", "考核报告 {from} – {to}\n"));
    let (h, rows) = report_branch_rows(r);
    out.push_str(&table(lang, &h, &rows));
    let sections: [Section; 5] = [
        (
            lang.t("Cameras", "摄像机"),
            vec!["branch", "camera", "name", "online_%", "down_min", "outages"],
            r.branches
                .iter()
                .flat_map(|b| {
                    b.cameras.iter().map(|c| {
                        vec![
                            b.branch.to_string(),
                            c.id.to_string(),
                            c.name.clone(),
                            format!("{:.3}", c.online_pct),
                            format!("{:.3}", c.down_minutes),
                            c.outages.len().to_string(),
                        ]
                    })
                })
                .collect(),
        ),
        (
            lang.t("Required zones", "必防区"),
            vec!["branch", "zone", "name", "uncovered_min", "periods"],
            r.branches
                .iter()
                .flat_map(|b| {
                    b.zones.iter().map(|z| {
                        vec![
                            b.branch.to_string(),
                            z.id.to_string(),
                            z.name.clone(),
                            format!("{:.3}", z.uncovered_minutes),
                            z.periods.len().to_string(),
                        ]
                    })
                })
                .collect(),
        ),
        (
            lang.t("Alarms with a linked camera down", "报警时联动摄像机故障"),
            vec!["branch", "occurred_at", "seq", "zone", "cameras_down"],
            r.branches
                .iter()
                .flat_map(|b| {
                    b.alarms_with_camera_down.iter().map(|a| {
                        vec![
                            b.branch.to_string(),
                            ts(&a.occurred_at),
                            a.seq.to_string(),
                            a.zone_name.clone(),
                            a.cameras_down.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join("; "),
                        ]
                    })
                })
                .collect(),
        ),
        (
            lang.t("Mean time to repair", "平均修复时间"),
            vec!["device_type", "repairs", "mean_min", "max_min"],
            r.mttr
                .iter()
                .map(|m| {
                    vec![
                        m.device_type.to_string(),
                        m.repairs.to_string(),
                        format!("{:.3}", m.mean_minutes),
                        format!("{:.3}", m.max_minutes),
                    ]
                })
                .collect(),
        ),
        (
            lang.t("Gateway offline periods", "网关离线时段"),
            vec!["branch", "from", "to", "minutes", "ongoing", "reason"],
            r.branches
                .iter()
                .flat_map(|b| b.gateway_offline.iter().map(|p| period_row(b.branch.as_str(), p)))
                .collect(),
        ),
    ];
    for (title, h, rows) in sections {
        let _ = writeln!(out, "\n{title}");
        if rows.is_empty() {
            out.push_str(lang.t("(none)\n", "（无）\n"));
        } else {
            out.push_str(&table(lang, &h, &rows));
        }
    }
    out
}

fn period_row(branch: &str, p: &Period) -> Vec<String> {
    vec![
        branch.to_string(),
        ts(&p.from),
        ts(&p.to),
        format!("{:.3}", p.minutes),
        p.ongoing.to_string(),
        p.reason.clone().unwrap_or_default(),
    ]
}

fn report_branch_headers() -> [&'static str; 7] {
    [
        "branch",
        "camera_avail_%",
        "gateway_online_%",
        "uncovered_min",
        "alarms",
        "alarms_cam_down",
        "gateway_offline_min",
    ]
}

fn report_branch_rows(r: &Report) -> ([&'static str; 7], Vec<Vec<String>>) {
    let h = report_branch_headers();
    let rows = r
        .branches
        .iter()
        .map(|b| {
            vec![
                b.branch.to_string(),
                pct(b.camera_availability_pct),
                format!("{:.3}", b.gateway_online_pct),
                format!("{:.3}", b.zones.iter().map(|z| z.uncovered_minutes).sum::<f64>() + 0.0),
                b.alarms.to_string(),
                b.alarms_with_camera_down.len().to_string(),
                format!("{:.3}", b.gateway_offline.iter().map(|p| p.minutes).sum::<f64>() + 0.0),
            ]
        })
        .collect();
    (h, rows)
}

/// The report flattened to one CSV table: one row per camera, zone, alarm with a camera down,
/// MTTR line and gateway offline period, told apart by `section`.
pub fn report_csv(r: &Report) -> String {
    let h = ["section", "branch", "id", "name", "pct", "minutes", "count", "from", "to", "detail"];
    let mut rows = Vec::new();
    let row = |s: &str,
               b: &str,
               id: &str,
               name: &str,
               pct: String,
               min: String,
               n: String,
               from: String,
               to: String,
               d: String| { vec![s.into(), b.into(), id.into(), name.into(), pct, min, n, from, to, d] };
    for b in &r.branches {
        let br = b.branch.as_str();
        rows.push(row(
            "branch",
            br,
            "",
            "",
            b.camera_availability_pct.map(|p| p.to_string()).unwrap_or_default(),
            (b.gateway_offline.iter().map(|p| p.minutes).sum::<f64>() + 0.0).to_string(),
            b.alarms.to_string(),
            ts(&r.from),
            ts(&r.to),
            format!("gateway_online_pct={}", b.gateway_online_pct),
        ));
        for c in &b.cameras {
            rows.push(row(
                "camera",
                br,
                c.id.as_str(),
                &c.name,
                c.online_pct.to_string(),
                c.down_minutes.to_string(),
                c.outages.len().to_string(),
                String::new(),
                String::new(),
                String::new(),
            ));
        }
        for z in &b.zones {
            rows.push(row(
                "zone",
                br,
                z.id.as_str(),
                &z.name,
                String::new(),
                z.uncovered_minutes.to_string(),
                z.periods.len().to_string(),
                String::new(),
                String::new(),
                String::new(),
            ));
        }
        for a in &b.alarms_with_camera_down {
            rows.push(row(
                "alarm-camera-down",
                br,
                &a.alert_id,
                &a.zone_name,
                String::new(),
                String::new(),
                a.cameras_down.len().to_string(),
                ts(&a.occurred_at),
                String::new(),
                a.cameras_down.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(" "),
            ));
        }
        for m in &b.mttr {
            rows.push(row(
                "mttr",
                br,
                m.device_type.as_str(),
                "",
                String::new(),
                m.mean_minutes.to_string(),
                m.repairs.to_string(),
                String::new(),
                String::new(),
                format!("max_minutes={}", m.max_minutes),
            ));
        }
        for p in &b.gateway_offline {
            rows.push(row(
                "gateway-offline",
                br,
                "",
                "",
                String::new(),
                p.minutes.to_string(),
                String::new(),
                ts(&p.from),
                ts(&p.to),
                p.reason.clone().unwrap_or_default(),
            ));
        }
    }
    csv(&h, &rows)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn html_table(out: &mut String, lang: Lang, headers: &[&str], rows: &[Vec<String>]) {
    if rows.is_empty() {
        let _ = writeln!(out, "<p class=none>{}</p>", lang.t("None.", "无。"));
        return;
    }
    out.push_str("<table><thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(heading(h, lang)));
    }
    out.push_str("</tr></thead><tbody>\n");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", esc(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

/// Horizontal bars, one per branch: camera availability and gateway online time.
fn availability_svg(r: &Report, lang: Lang) -> String {
    let row_h = 22;
    let label_w = 140;
    let bar_w = 400;
    let height = 30 + row_h * r.branches.len() as i32;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"{}\">\n",
        label_w + bar_w + 80,
        lang.t("Camera availability per branch", "各网点摄像机可用率")
    );
    let legend = lang.t(
        "camera availability (bar) · gateway online (tick), 0–100 %",
        "摄像机可用率（条）· 网关在线率（刻线），0–100 %",
    );
    let _ = writeln!(s, "<text x=\"{label_w}\" y=\"14\" font-size=\"12\">{legend}</text>");
    for (i, b) in r.branches.iter().enumerate() {
        let y = 24 + row_h * i as i32;
        let p = b.camera_availability_pct.unwrap_or(100.0);
        let w = (p / 100.0 * f64::from(bar_w)).round() as i32;
        let color = if p >= 99.0 {
            "#2e7d32"
        } else if p >= 95.0 {
            "#f9a825"
        } else {
            "#c62828"
        };
        let gx = label_w as f64 + b.gateway_online_pct / 100.0 * f64::from(bar_w);
        let _ = writeln!(
            s,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text>\
             <rect x=\"{label_w}\" y=\"{y}\" width=\"{bar_w}\" height=\"14\" fill=\"#eee\"/>\
             <rect x=\"{label_w}\" y=\"{y}\" width=\"{w}\" height=\"14\" fill=\"{color}\"><title>{}: {}</title></rect>\
             <line x1=\"{gx:.1}\" x2=\"{gx:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#000\" stroke-width=\"2\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>",
            y + 11,
            esc(b.branch.as_str()),
            esc(b.branch.as_str()),
            pct(b.camera_availability_pct),
            y - 2,
            y + 16,
            label_w + bar_w + 6,
            y + 11,
            pct(b.camera_availability_pct)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A self-contained HTML page in `lang`: summary chart, then every section as a table.
pub fn report_html(r: &Report, lang: Lang) -> String {
    let mut out = String::new();
    let (from, to) = (ts(&r.from), ts(&r.to));
    let title = tr!(lang, "Branch security report {from} – {to}", "网点安防考核报告 {from} – {to}");
    let _ = write!(
        out,
        "<!doctype html>\n<html lang={}><head><meta charset=utf-8><title>{}</title>\n<style>\
         body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
         th,td{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}th{{background:#f4f4f4}}.none{{color:#777}}\
         </style></head><body>\n<h1>{}</h1>\n",
        lang.code(),
        esc(&title),
        esc(&title)
    );
    let t = &r.totals;
    let (branches, cameras, avail, alarms) = (t.branches, t.cameras, pct(t.camera_availability_pct), t.alarms);
    let (cam_down, uncovered, offline) =
        (t.alarms_with_camera_down, t.required_zone_uncovered_minutes, t.gateway_offline_minutes);
    let _ = writeln!(
        out,
        "<p>{}</p>",
        tr!(
            lang,
            "{branches} branches, {cameras} cameras, camera availability {avail} %, {alarms} alarms ({cam_down} with \
             a linked camera down), {uncovered:.1} min of required zones uncovered, {offline:.1} min of gateways \
             offline.",
            "网点 {branches} 个，摄像机 {cameras} 台，摄像机可用率 {avail} %，报警 {alarms} 次（其中 {cam_down} 次报警时\
             联动摄像机故障），必防区无人看护 {uncovered:.1} 分钟，网关离线 {offline:.1} 分钟。"
        )
    );
    let _ = writeln!(out, "<h2>{}</h2>", lang.t("Availability per branch", "各网点可用率"));
    out.push_str(&availability_svg(r, lang));
    let (h, rows) = report_branch_rows(r);
    html_table(&mut out, lang, &h, &rows);

    let _ = writeln!(out, "<h2>{}</h2>", lang.t("Cameras", "摄像机"));
    let rows: Vec<Vec<String>> = r
        .branches
        .iter()
        .flat_map(|b| {
            b.cameras.iter().map(|c| {
                vec![
                    b.branch.to_string(),
                    c.id.to_string(),
                    c.name.clone(),
                    format!("{:.3}", c.online_pct),
                    format!("{:.3}", c.down_minutes),
                    c.outages.iter().map(|p| format!("{}–{}", ts(&p.from), ts(&p.to))).collect::<Vec<_>>().join(", "),
                ]
            })
        })
        .collect();
    html_table(&mut out, lang, &["branch", "camera", "name", "online %", "down min", "outages"], &rows);

    let _ = writeln!(out, "<h2>{}</h2>", lang.t("Required zones uncovered", "必防区无人看护"));
    let rows: Vec<Vec<String>> = r
        .branches
        .iter()
        .flat_map(|b| {
            b.zones.iter().filter(|z| z.uncovered_minutes > 0.0).map(|z| {
                vec![
                    b.branch.to_string(),
                    z.name.clone(),
                    format!("{:.3}", z.uncovered_minutes),
                    z.periods.iter().map(|p| format!("{}–{}", ts(&p.from), ts(&p.to))).collect::<Vec<_>>().join(", "),
                ]
            })
        })
        .collect();
    html_table(&mut out, lang, &["branch", "zone", "uncovered min", "periods"], &rows);

    let _ = writeln!(out, "<h2>{}</h2>", lang.t("Alarms with a linked camera down", "报警时联动摄像机故障"));
    let rows: Vec<Vec<String>> = r
        .branches
        .iter()
        .flat_map(|b| {
            b.alarms_with_camera_down.iter().map(|a| {
                vec![
                    b.branch.to_string(),
                    ts(&a.occurred_at),
                    a.zone_name.clone(),
                    a.cameras_down
                        .iter()
                        .map(|c| {
                            let why = if !c.online {
                                lang.t("offline", "离线")
                            } else if !c.stream_alive {
                                lang.t("no stream", "无码流")
                            } else if c.frozen {
                                lang.t("frozen", "画面冻结")
                            } else {
                                match c.picture.as_deref() {
                                    Some("obstructed") => lang.t("picture blocked", "画面遮挡"),
                                    Some("dark") => lang.t("picture too dark", "画面过暗"),
                                    Some("defocused") => lang.t("out of focus", "画面失焦"),
                                    _ => lang.t("picture unusable", "画面不可用"),
                                }
                            };
                            format!("{} ({why})", c.name)
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                ]
            })
        })
        .collect();
    html_table(&mut out, lang, &["branch", "occurred at", "zone", "cameras down"], &rows);

    let _ = writeln!(out, "<h2>{}</h2>", lang.t("Mean time to repair", "平均修复时间"));
    let rows: Vec<Vec<String>> = r
        .mttr
        .iter()
        .map(|m| {
            vec![
                m.device_type.to_string(),
                m.repairs.to_string(),
                format!("{:.1}", m.mean_minutes),
                format!("{:.1}", m.max_minutes),
            ]
        })
        .collect();
    html_table(&mut out, lang, &["device type", "repairs", "mean min", "max min"], &rows);

    let _ = writeln!(out, "<h2>{}</h2>", lang.t("Gateway offline periods", "网关离线时段"));
    let rows: Vec<Vec<String>> =
        r.branches.iter().flat_map(|b| b.gateway_offline.iter().map(|p| period_row(b.branch.as_str(), p))).collect();
    html_table(&mut out, lang, &["branch", "from", "to", "minutes", "ongoing", "reason"], &rows);
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_csv_quotes() {
        let t = table(Lang::En, &["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "a    bb\nxxx  y\n");
        // A Chinese heading is two columns a character wide.
        let t = table(Lang::Zh, &["branch", "zone"], &[vec!["b0101".into(), "金库".into()]]);
        assert_eq!(t, "网点   区域\nb0101  金库\n");
        let c = csv(&["a", "b"], &[vec!["x,y".into(), "say \"hi\"".into()]]);
        assert_eq!(c, "a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n");
        // Rows alone (a stream after its header line); a line break inside a field is quoted.
        assert_eq!(csv(&[], &[vec!["x".into(), "two\nlines".into()]]), "x,\"two\nlines\"\r\n");
    }

    #[test]
    fn every_table_heading_has_a_chinese_label() {
        let branch_headers = report_branch_headers();
        let all = COVERAGE_HEADERS
            .iter()
            .chain(&GAP_HEADERS)
            .chain(&ALERT_HEADERS)
            .chain(&STATS_HEADERS)
            .chain(&branch_headers)
            .chain(&["camera", "online_%", "down_min", "outages", "zone", "uncovered_min", "periods"])
            .chain(&["occurred_at", "seq", "cameras_down", "device_type", "repairs", "mean_min", "max_min"])
            .chain(&["minutes", "ongoing", "reason", "online %", "down min", "uncovered min", "occurred at"])
            .chain(&["cameras down", "device type", "mean min", "max min"]);
        for key in all {
            assert!(heading_zh(key).is_some(), "the table heading {key:?} has no Chinese label");
        }
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(esc("<b>&\""), "&lt;b&gt;&amp;&quot;");
    }
}
