//! The overview: every branch as a tile or a table row, and the event stream that keeps open
//! pages current.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::*;

/// How the overview is filtered and sorted.
struct OverviewQuery {
    region: String,
    q: String,
    /// `problems`, a tile state, or "" for all.
    state: String,
    sort: String,
    desc: bool,
    table: bool,
}

impl OverviewQuery {
    fn parse(q: &HashMap<String, String>) -> Result<OverviewQuery, Fail> {
        let get = |k: &str| q.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
        let state = get("state");
        if !matches!(state.as_str(), "" | "problems" | "red" | "amber" | "grey" | "green") {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!("state={state:?}: expected problems, red, amber, grey or green"),
            ));
        }
        let sort = get("sort");
        if !matches!(sort.as_str(), "" | "state" | "id" | "name" | "region" | "cameras" | "zones" | "alarms" | "since")
        {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!("sort={sort:?}: expected state, id, name, region, cameras, zones, alarms or since"),
            ));
        }
        let view = get("view");
        if !matches!(view.as_str(), "" | "tiles" | "table") {
            return Err(fail(StatusCode::BAD_REQUEST, format!("view={view:?}: expected tiles or table")));
        }
        Ok(OverviewQuery {
            region: get("region"),
            q: get("q"),
            state,
            sort: if sort.is_empty() { "state".into() } else { sort },
            desc: get("order") == "desc",
            table: view == "table",
        })
    }

    fn filtered(&self) -> bool {
        !self.region.is_empty() || !self.q.is_empty() || !self.state.is_empty()
    }

    fn keep(&self, t: &Tile) -> bool {
        (self.region.is_empty() || t.region == self.region)
            && (self.q.is_empty() || {
                let q = self.q.to_lowercase();
                t.id.as_str().to_lowercase().contains(&q) || t.name.to_lowercase().contains(&q)
            })
            && match self.state.as_str() {
                "" => true,
                "problems" => matches!(t.state, TileState::Red | TileState::Amber),
                s => t.state.as_str() == s,
            }
    }

    fn sort(&self, v: &mut [&Tile]) {
        v.sort_by(|a, b| {
            let o = match self.sort.as_str() {
                "id" => a.id.cmp(&b.id),
                "name" => a.name.cmp(&b.name),
                "region" => a.region.cmp(&b.region),
                "cameras" => (a.cameras_total - a.cameras_online.min(a.cameras_total))
                    .cmp(&(b.cameras_total - b.cameras_online.min(b.cameras_total)))
                    .reverse(),
                "zones" => a.uncovered.len().cmp(&b.uncovered.len()).reverse(),
                "alarms" => a.open_alarms.cmp(&b.open_alarms).reverse(),
                // Longest uncovered first; branches with nothing uncovered after them.
                "since" => match (a.uncovered_since(), b.uncovered_since()) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                },
                _ => a.state.cmp(&b.state),
            };
            let o = if self.desc { o.reverse() } else { o };
            o.then_with(|| a.id.cmp(&b.id))
        });
    }

    /// The overview URL with one parameter changed.
    fn url_with(&self, key: &str, value: &str) -> String {
        let mut p: Vec<(&str, String)> = vec![
            ("region", self.region.clone()),
            ("q", self.q.clone()),
            ("state", self.state.clone()),
            ("sort", self.sort.clone()),
            ("order", if self.desc { "desc".into() } else { String::new() }),
            ("view", if self.table { "table".into() } else { String::new() }),
        ];
        for (k, v) in &mut p {
            if *k == key {
                *v = value.to_string();
            }
        }
        let qs: Vec<String> =
            p.into_iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}", encode(&v))).collect();
        if qs.is_empty() { "/".into() } else { format!("/?{}", qs.join("&")) }
    }
}

/// One tile. Also sent, rendered, to open pages when it changes.
pub fn tile_markup(l: Lang, c: &Clock, t: &Tile) -> Markup {
    html! {
        a.tile.(t.state.as_str()) id={"t-" (t.id)} href=(branch_url(&t.id)) data-state=(t.state.as_str()) {
            span.name { (t.name) }
            @if t.name != t.id.as_str() { span.id { (t.id) } }
            span.line {
                (l.t("Cameras", "摄像机")) " " (t.cameras_online) "/" (t.cameras_total)
                @if let Some(v) = t.cameras_live_video { " · " (l.t("video", "有画面")) " " (v) }
            }
            @if !t.uncovered.is_empty() {
                span.line.bad.zones {
                    (l.t("Uncovered", "无人看护")) ": "
                    (t.uncovered.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "))
                    @if let Some(s) = t.uncovered_since() { " · " (l.t("since", "自")) " " (c.short(s)) }
                }
            }
            @if t.open_alarms > 0 { span.line.bad.alarms { (l.t("Open alarms", "未确认报警")) " " (t.open_alarms) } }
            @if t.orders > 0 { span.line.orders { (l.t("Orders", "整改单")) " " (t.orders) } }
            span.line.gw.(t.gateway) {
                (l.t("Gateway", "网关")) " " (gateway_name(l, t.gateway))
                @if let Some(s) = t.gateway_since { " · " (c.short(s)) }
            }
        }
    }
}

/// One row of the overview's table.
pub fn row_markup(l: Lang, c: &Clock, t: &Tile) -> Markup {
    html! {
        tr.(t.state.as_str()) id={"r-" (t.id)} data-state=(t.state.as_str()) {
            td { a href=(branch_url(&t.id)) { (t.name) } @if t.name != t.id.as_str() { br; small { (t.id) } } }
            td { (t.region) }
            td.state { (state_name(l, t.state)) }
            td { (gateway_name(l, t.gateway)) br; small { @if let Some(s) = t.gateway_since { (c.short(s)) } } }
            td.num { (t.cameras_online) "/" (t.cameras_total) }
            td.num { @if let Some(v) = t.cameras_live_video { (v) } @else { "–" } }
            td { (t.uncovered.len()) "/" (t.required_zones)
                 @if !t.uncovered.is_empty() { br; small { (t.uncovered.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")) } } }
            td { @if let Some(s) = t.uncovered_since() { (c.short(s)) } }
            td.num { (t.devices_down) }
            td.num { (t.open_alarms) }
        }
    }
}

pub async fn overview(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Params,
) -> Result<Response, Fail> {
    let q = OverviewQuery::parse(&q)?;
    let l = ctx.lang;
    let o = app.hub.current();
    let c = &app.cfg.clock;
    let mut shown: Vec<&Tile> = o.tiles.iter().filter(|t| q.keep(t)).collect();
    q.sort(&mut shown);
    let regions = app.cfg.directory.regions();
    let heads: [(&str, &str); 10] = [
        ("name", l.t("Branch", "网点")),
        ("region", l.t("Region", "区域")),
        ("state", l.t("State", "状态")),
        ("", l.t("Gateway", "网关")),
        ("cameras", l.t("Cameras online", "摄像机在线")),
        ("", l.t("Live video", "有画面")),
        ("zones", l.t("Required zones uncovered", "必防区无人看护")),
        ("since", l.t("Uncovered since", "无人看护起始")),
        ("", l.t("Devices down", "异常设备")),
        ("alarms", l.t("Open alarms", "未确认报警")),
    ];
    let body = html! {
        h1 { (l.t("Every branch", "全部网点")) }
        form.filters method="get" action="/" {
            label { (l.t("Region", "区域")) " "
                select name="region" {
                    option value="" { (l.t("all", "全部")) }
                    @for r in &regions { option value=(r) selected[*r == q.region] { (r) } }
                }
            }
            label { (l.t("Branch", "网点")) " " input type="search" name="q" value=(q.q) placeholder=(l.t("id or name", "编号或名称")); }
            label { (l.t("State", "状态")) " "
                select name="state" {
                    option value="" { (l.t("all", "全部")) }
                    option value="problems" selected[q.state == "problems"] { (l.t("problems only", "仅异常")) }
                    @for s in [TileState::Red, TileState::Amber, TileState::Grey, TileState::Green] {
                        option value=(s.as_str()) selected[q.state == s.as_str()] { (state_name(l, s)) }
                    }
                }
            }
            input type="hidden" name="sort" value=(q.sort);
            @if q.table { input type="hidden" name="view" value="table"; }
            button type="submit" { (l.t("Show", "筛选")) }
            span.views {
                a href=(q.url_with("view", "")) class=[(!q.table).then_some("active")] { (l.t("Tiles", "卡片")) }
                " · "
                a href=(q.url_with("view", "table")) class=[q.table.then_some("active")] { (l.t("Table", "表格")) }
            }
        }
        p #counts .counts {
            span.red { (state_name(l, TileState::Red)) " " b #n-red { (o.count(TileState::Red)) } }
            span.amber { (state_name(l, TileState::Amber)) " " b #n-amber { (o.count(TileState::Amber)) } }
            span.grey { (state_name(l, TileState::Grey)) " " b #n-grey { (o.count(TileState::Grey)) } }
            span.green { (state_name(l, TileState::Green)) " " b #n-green { (o.count(TileState::Green)) } }
            span { (l.t("of", "共")) " " (o.tiles.len()) " " (l.t("branches", "个网点")) }
            @if q.filtered() { span { " · " (l.t("shown", "显示")) " " (shown.len()) } }
        }
        @if o.tiles.is_empty() {
            p.empty { (l.t("Nothing received from any branch yet, and no branch directory given (hq serve --directory FILE).",
                           "尚未收到任何网点的数据，也未提供网点名录（hq serve --directory 文件）。")) }
        }
        @if q.table {
            table #table .overview data-filtered=(if q.filtered() { "1" } else { "" }) {
                thead { tr {
                    @for (key, name) in heads {
                        th { @if key.is_empty() { (name) } @else {
                            a href=(q.url_with("sort", key)) { (name) @if q.sort == key { " ▾" } }
                        } }
                    }
                } }
                tbody { @for t in &shown { (row_markup(l, c, t)) } }
            }
        } @else {
            div #tiles .tiles data-filtered=(if q.filtered() { "1" } else { "" }) {
                @for t in &shown { (tile_markup(l, c, t)) }
            }
        }
    };
    Ok(page(&app, &ctx, l.t("Overview", "总览"), "overview", Some("overview"), body))
}

pub async fn overview_json(State(app): State<Arc<App>>) -> Response {
    let fmt = protocols::time::format;
    let o = app.hub.current();
    let tiles: Vec<serde_json::Value> = o
        .tiles
        .iter()
        .map(|t| {
            serde_json::json!({
                "id": t.id, "name": t.name, "region": t.region, "state": t.state.as_str(),
                "gateway": t.gateway, "gateway_since": t.gateway_since.as_ref().map(fmt),
                "cameras_online": t.cameras_online, "cameras_total": t.cameras_total,
                "cameras_live_video": t.cameras_live_video, "required_zones": t.required_zones,
                "uncovered_zones": t.uncovered.iter().map(|(n, s)| serde_json::json!({"name": n, "since": s.as_ref().map(fmt)})).collect::<Vec<_>>(),
                "devices_down": t.devices_down, "open_alarms": t.open_alarms, "last_heard": t.last_heard.as_ref().map(fmt),
            })
        })
        .collect();
    axum::Json(serde_json::json!({
        "schema": "hq-overview/1", "at": fmt(&o.at), "db_error": o.db_error, "branches": tiles,
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// Live updates

fn counts_json(o: &Overview) -> serde_json::Value {
    serde_json::json!({
        "red": o.count(TileState::Red), "amber": o.count(TileState::Amber),
        "grey": o.count(TileState::Grey), "green": o.count(TileState::Green),
    })
}

/// How often an open event stream checks that its session is still good (not signed out,
/// expired or disabled).
const RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

pub async fn events(State(app): State<Arc<App>>, Extension(ctx): Extension<Ctx>) -> impl IntoResponse {
    let rx = app.hub.subscribe();
    let checked = Instant::now();
    let stream = futures::stream::unfold((rx, app, ctx, checked), |(mut rx, app, ctx, mut checked)| async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let change = tokio::select! {
                _ = app.shutdown.cancelled() => return None,
                _ = tokio::time::sleep(RECHECK.saturating_sub(checked.elapsed())) => None,
                c = rx.recv() => Some(c),
            };
            if checked.elapsed() >= RECHECK {
                // A session that ended closes its stream; the page then finds out on reconnecting.
                match app.store.session(&ctx.token_hash, protocols::time::now()).await {
                    Ok(Some(_)) | Err(_) => checked = Instant::now(),
                    Ok(None) => return None,
                }
            }
            let ev = match change {
                None => continue,
                Some(Ok(Change::Tiles(ids))) => {
                    let o = app.hub.current();
                    let (l, c) = (ctx.lang, &app.cfg.clock);
                    let tiles: Vec<serde_json::Value> = ids
                        .iter()
                        .filter_map(|id| o.get(id))
                        .map(|t| {
                            serde_json::json!({
                                "id": t.id, "state": t.state.as_str(),
                                "tile": tile_markup(l, c, t).into_string(),
                                "row": row_markup(l, c, t).into_string(),
                            })
                        })
                        .collect();
                    let data = serde_json::json!({"ids": ids.as_slice(), "tiles": tiles, "counts": counts_json(&o)});
                    Event::default().event("tiles").data(data.to_string())
                }
                Some(Ok(Change::Alerts)) => Event::default().event("alerts").data("{}"),
                Some(Ok(Change::Db(e))) => {
                    Event::default().event("db").data(serde_json::json!({"error": e}).to_string())
                }
                Some(Err(RecvError::Lagged(_))) => Event::default().event("reload").data("{}"),
                Some(Err(RecvError::Closed)) => return None,
            };
            return Some((Ok::<Event, Infallible>(ev), (rx, app, ctx, checked)));
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
