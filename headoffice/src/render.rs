//! Turning views into text: aligned tables for a terminal, CSV for a spreadsheet, and a
//! self-contained HTML report (inline SVG, no script) for the assessment file. JSON is plain
//! serde of the view types and lives in the binary.
//!
//! Functions here return strings; printing is the binary's job.

use std::fmt::Write as _;

use protocols::Alert;
use protocols::time::{Timestamp, format as ts};

use crate::coverage::CoverageView;
use crate::db::Counters;
use crate::gaps::GapsView;
use crate::report::{Period, Report};

/// Columns padded to the widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, c) in cells.enumerate() {
            let width = w.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(c.chars().count());
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

/// RFC 4180 CSV.
pub fn csv(headers: &[&str], rows: &[Vec<String>]) -> String {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
    }
    let mut out = String::new();
    out.push_str(&headers.iter().map(|h| field(h)).collect::<Vec<_>>().join(","));
    out.push_str("\r\n");
    for r in rows {
        out.push_str(&r.iter().map(|c| field(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
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

/// The report as sections of aligned tables.
pub fn report_table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Report {} – {}\n", ts(&r.from), ts(&r.to));
    let (h, rows) = report_branch_rows(r);
    out.push_str(&table(&h, &rows));
    let sections: [Section; 5] = [
        (
            "Cameras",
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
            "Required zones",
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
            "Alarms with a linked camera down",
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
            "Mean time to repair",
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
            "Gateway offline periods",
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
            out.push_str("(none)\n");
        } else {
            out.push_str(&table(&h, &rows));
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

fn report_branch_rows(r: &Report) -> ([&'static str; 7], Vec<Vec<String>>) {
    let h = [
        "branch",
        "camera_avail_%",
        "gateway_online_%",
        "uncovered_min",
        "alarms",
        "alarms_cam_down",
        "gateway_offline_min",
    ];
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

fn html_table(out: &mut String, headers: &[&str], rows: &[Vec<String>]) {
    if rows.is_empty() {
        out.push_str("<p class=none>None.</p>\n");
        return;
    }
    out.push_str("<table><thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
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
fn availability_svg(r: &Report) -> String {
    let row_h = 22;
    let label_w = 140;
    let bar_w = 400;
    let height = 30 + row_h * r.branches.len() as i32;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"Camera availability per branch\">\n",
        label_w + bar_w + 80
    );
    let _ = writeln!(
        s,
        "<text x=\"{label_w}\" y=\"14\" font-size=\"12\">camera availability (bar) · gateway online (tick), 0–100 %</text>"
    );
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

/// A self-contained HTML page: summary chart, then every section as a table.
pub fn report_html(r: &Report) -> String {
    let mut out = String::new();
    let title = format!("Branch security report {} – {}", ts(&r.from), ts(&r.to));
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>{}</title>\n<style>\
         body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
         th,td{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}th{{background:#f4f4f4}}.none{{color:#777}}\
         </style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    let t = &r.totals;
    let _ = writeln!(
        out,
        "<p>{} branches, {} cameras, camera availability {} %, {} alarms ({} with a linked camera down), \
         {:.1} min of required zones uncovered, {:.1} min of gateways offline.</p>",
        t.branches,
        t.cameras,
        pct(t.camera_availability_pct),
        t.alarms,
        t.alarms_with_camera_down,
        t.required_zone_uncovered_minutes,
        t.gateway_offline_minutes
    );
    out.push_str("<h2>Availability per branch</h2>\n");
    out.push_str(&availability_svg(r));
    let (h, rows) = report_branch_rows(r);
    html_table(&mut out, &h, &rows);

    out.push_str("<h2>Cameras</h2>\n");
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
    html_table(&mut out, &["branch", "camera", "name", "online %", "down min", "outages"], &rows);

    out.push_str("<h2>Required zones uncovered</h2>\n");
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
    html_table(&mut out, &["branch", "zone", "uncovered min", "periods"], &rows);

    out.push_str("<h2>Alarms with a linked camera down</h2>\n");
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
                                "offline"
                            } else if !c.stream_alive {
                                "no stream"
                            } else {
                                "frozen"
                            };
                            format!("{} ({why})", c.name)
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                ]
            })
        })
        .collect();
    html_table(&mut out, &["branch", "occurred at", "zone", "cameras down"], &rows);

    out.push_str("<h2>Mean time to repair</h2>\n");
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
    html_table(&mut out, &["device type", "repairs", "mean min", "max min"], &rows);

    out.push_str("<h2>Gateway offline periods</h2>\n");
    let rows: Vec<Vec<String>> =
        r.branches.iter().flat_map(|b| b.gateway_offline.iter().map(|p| period_row(b.branch.as_str(), p))).collect();
    html_table(&mut out, &["branch", "from", "to", "minutes", "ongoing", "reason"], &rows);
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_csv_quotes() {
        let t = table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "a    bb\nxxx  y\n");
        let c = csv(&["a", "b"], &[vec!["x,y".into(), "say \"hi\"".into()]]);
        assert_eq!(c, "a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n");
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(esc("<b>&\""), "&lt;b&gt;&amp;&quot;");
    }
}
