//! The console's pages and endpoints. Markup is maud's: every value is escaped unless it is
//! explicitly `PreEscaped`, which only the console's own markup is.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use protocols::time::Timestamp;
use protocols::{Alert, AlertBody, AlertKind, AlertState, BranchId, Severity};
use serde::Deserialize;

use super::auth;
use super::i18n::{Clock, Lang};
use super::live::{Change, Overview, Tile, TileState};
use super::{App, Ctx};
use crate::db::{AckOutcome, AlarmRow, AlertListQuery, DbError, ListState, Role, UserChange};
use crate::report::{self, Period, Report, Window};
use crate::{render, timespec};

type Params = Query<HashMap<String, String>>;

/// A request the console cannot answer: a status and a sentence saying why (and what to do).
#[derive(Debug)]
pub struct Fail {
    status: StatusCode,
    detail: String,
}

pub fn fail(status: StatusCode, detail: impl Into<String>) -> Fail {
    Fail { status, detail: detail.into() }
}

pub fn db_fail(e: DbError) -> Fail {
    tracing::error!(error = %e, "console: database");
    let status = if e.is_transient() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::INTERNAL_SERVER_ERROR };
    Fail { status, detail: e.to_string() }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let (en, zh) = match self.status {
            StatusCode::BAD_REQUEST => ("Bad request", "请求有误"),
            StatusCode::FORBIDDEN => ("Not allowed", "无权操作"),
            StatusCode::NOT_FOUND => ("Not found", "未找到"),
            StatusCode::CONFLICT => ("Already done", "已被处理"),
            StatusCode::TOO_MANY_REQUESTS => ("Too many attempts", "尝试次数过多"),
            StatusCode::SERVICE_UNAVAILABLE => ("Database unavailable", "数据库暂不可用"),
            _ => ("Error", "出错了"),
        };
        let body = html! {
            (DOCTYPE)
            html lang="zh-CN" {
                head { meta charset="utf-8"; title { (zh) " / " (en) } link rel="stylesheet" href="/static/console.css"; }
                body.error {
                    main {
                        h1 { (zh) " / " (en) " (" (self.status.as_u16()) ")" }
                        p.detail { (self.detail) }
                        p { a href="/" { "返回总览 / Back to the overview" } }
                    }
                }
            }
        };
        (self.status, Html(body.into_string())).into_response()
    }
}

/// Percent-encodes everything but unreserved characters: a path segment or a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn branch_url(id: &BranchId) -> String {
    format!("/branch/{}", encode(id.as_str()))
}

fn role_name(l: Lang, r: Role) -> &'static str {
    match r {
        Role::Viewer => l.t("viewer", "查看员"),
        Role::Operator => l.t("operator", "值班员"),
        Role::Admin => l.t("admin", "管理员"),
    }
}

fn severity_name(l: Lang, s: Severity) -> &'static str {
    match s {
        Severity::Info => l.t("info", "提示"),
        Severity::Warning => l.t("warning", "警告"),
        Severity::Major => l.t("major", "重要"),
        Severity::Critical => l.t("critical", "紧急"),
    }
}

fn kind_name(l: Lang, k: AlertKind) -> &'static str {
    match k {
        AlertKind::CameraOffline => l.t("camera offline", "摄像机离线"),
        AlertKind::AlarmLink => l.t("alarm", "报警联动"),
        AlertKind::DoorStatus => l.t("door", "门禁状态"),
        AlertKind::DeviceFault => l.t("device fault", "设备故障"),
    }
}

fn gateway_name(l: Lang, g: &str) -> &'static str {
    match g {
        "online" => l.t("online", "在线"),
        "offline" => l.t("offline", "离线"),
        "stale" => l.t("quiet (stale)", "无数据(过期)"),
        _ => l.t("no data", "无数据"),
    }
}

fn state_name(l: Lang, s: TileState) -> &'static str {
    match s {
        TileState::Red => l.t("needs attention", "需处置"),
        TileState::Amber => l.t("degraded", "部分异常"),
        TileState::Grey => l.t("no data", "无数据"),
        TileState::Green => l.t("normal", "正常"),
    }
}

fn device_state_name(l: Lang, s: &str) -> String {
    let t = match s {
        "online" => l.t("online", "在线"),
        "offline" | "unreachable" => l.t("offline", "离线"),
        "frozen" => l.t("frozen picture", "画面冻结"),
        "stream-down" => l.t("no video stream", "无视频流"),
        "auth-failed" => l.t("login refused", "认证失败"),
        "tcp-only" => l.t("no ONVIF answer", "ONVIF 无响应"),
        "signal-lost" => l.t("signal lost", "信号丢失"),
        "flapping" => l.t("flapping", "频繁掉线"),
        "unknown" => l.t("unknown", "未知"),
        _ => return s.to_string(),
    };
    format!("{t} ({s})")
}

/// `since` as "12 min (12-07 19:56)".
fn since(l: Lang, c: &Clock, now: Timestamp, t: Option<Timestamp>) -> String {
    match t {
        Some(t) => format!("{} ({})", l.duration(now.signed_duration_since(t).num_seconds()), c.short(t)),
        None => String::new(),
    }
}

/// The frame of every signed-in page.
fn page(app: &App, ctx: &Ctx, title: &str, active: &str, live: Option<&str>, body: Markup) -> Response {
    let l = ctx.lang;
    let nav = [
        ("/", "overview", l.t("Overview", "总览")),
        ("/alerts", "alerts", l.t("Alarms & alerts", "报警与告警")),
        ("/assessment", "assessment", l.t("Assessment", "考核")),
    ];
    let db_error = app.hub.current().db_error.clone();
    let markup = html! {
        (DOCTYPE)
        html lang=(l.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (l.t("Branch security", "网点安防")) }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/console.js" defer {}
            }
            body data-live=[live] {
                header.top {
                    a.brand href="/" { (l.t("Branch security · head office", "网点安防 · 总行监控中心")) }
                    nav {
                        @for (href, key, name) in nav {
                            a href=(href) class=[(key == active).then_some("active")] { (name) }
                        }
                        @if ctx.role >= Role::Admin {
                            a href="/admin/users" class=[("users" == active).then_some("active")] { (l.t("Users", "用户")) }
                            a href="/admin/audit" class=[("audit" == active).then_some("active")] { (l.t("Audit log", "审计日志")) }
                        }
                    }
                    div.me {
                        span.user { (ctx.user) " · " (role_name(l, ctx.role)) }
                        form.inline method="post" action="/settings/lang" {
                            input type="hidden" name="csrf" value=(ctx.csrf);
                            button.link name="lang" value="zh-CN" disabled[l == Lang::Zh] { "中文" }
                            button.link name="lang" value="en" disabled[l == Lang::En] { "English" }
                        }
                        form.inline method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(ctx.csrf);
                            button.link type="submit" { (l.t("Sign out", "退出")) }
                        }
                    }
                }
                div #dbwarn .banner hidden[db_error.is_none()] {
                    (l.t("The database cannot be read; what you see may be out of date.", "数据库暂时无法读取，页面内容可能不是最新的。"))
                }
                main { (body) }
                footer { (l.t("Times are", "时间为")) " " (app.cfg.clock.zone()) }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

// ---------------------------------------------------------------------------------------------
// Public endpoints

pub async fn health(State(app): State<Arc<App>>) -> Response {
    match app.store.change_marker().await {
        Ok(_) => (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok", "db": "ok"}))).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "degraded", "db": e.to_string()})),
        )
            .into_response(),
    }
}

pub async fn css() -> Response {
    static_asset("text/css; charset=utf-8", include_str!("assets/console.css"))
}

pub async fn js() -> Response {
    static_asset("text/javascript; charset=utf-8", include_str!("assets/console.js"))
}

fn static_asset(ty: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ty)),
            (header::CACHE_CONTROL, HeaderValue::from_static("max-age=300")),
        ],
        body,
    )
        .into_response()
}

fn login_markup(l: Lang, next: &str, error: Option<&str>, user: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(l.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (l.t("Sign in", "登录")) " · " (l.t("Branch security", "网点安防")) }
                link rel="stylesheet" href="/static/console.css";
            }
            body.login {
                main {
                    h1 { (l.t("Branch security · head office", "网点安防 · 总行监控中心")) }
                    form #login method="post" action="/login" {
                        @if let Some(e) = error { p.error role="alert" { (e) } }
                        input type="hidden" name="next" value=(next);
                        label { (l.t("User name", "用户名")) input name="user" autocomplete="username" required value=(user); }
                        label { (l.t("Password", "密码")) input type="password" name="password" autocomplete="current-password" required; }
                        button type="submit" { (l.t("Sign in", "登录")) }
                    }
                    p.langs { a href={"/login?lang=zh-CN&next=" (encode(next))} { "中文" } " · " a href={"/login?lang=en&next=" (encode(next))} { "English" } }
                }
            }
        }
    }
}

/// Only a path on this site: never `//elsewhere` or `https://elsewhere`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => n.to_string(),
        _ => "/".to_string(),
    }
}

pub async fn login_page(headers: HeaderMap, Query(q): Params) -> Response {
    let l = q.get("lang").and_then(|s| Lang::parse(s)).unwrap_or_else(|| super::accept_language(&headers));
    Html(login_markup(l, &safe_next(q.get("next").map(String::as_str)), None, "").into_string()).into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

pub async fn login(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let l = super::accept_language(&headers);
    let addr = super::client_addr(&app, &headers, peer);
    let next = safe_next(Some(&f.next));
    let user: String = f.user.trim().chars().take(64).collect();
    if let Some(wait) = app.limiter.check(&user, addr, Instant::now()) {
        let secs = wait.as_secs().max(1);
        let mut res = fail(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "登录失败次数过多，请 {} 分钟后再试。Too many wrong passwords: try again in {} min.",
                secs.div_ceil(60),
                secs.div_ceil(60)
            ),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return res;
    }
    let stored = match app.store.password_hash(&user).await {
        Ok(h) => h,
        Err(e) => return db_fail(e).into_response(),
    };
    let password = f.password;
    let ok = tokio::task::spawn_blocking(move || match stored {
        Some(h) => auth::verify_password(&password, &h),
        None => {
            let _ = auth::verify_password(&password, auth::decoy_hash());
            false
        }
    })
    .await
    .unwrap_or(false);
    let now = protocols::time::now();
    if !ok {
        app.limiter.failed(&user, addr, Instant::now());
        let who = addr.map(|a| a.to_string()).unwrap_or_default();
        if let Err(e) = app.store.audit(&user, "login-failed", &user, &who, now).await {
            return db_fail(e).into_response();
        }
        tracing::warn!(user = %user, addr = %who, "console: wrong user name or password");
        let msg = l.t("Wrong user name or password.", "用户名或密码错误。");
        return (StatusCode::UNAUTHORIZED, Html(login_markup(l, &next, Some(msg), &user).into_string()))
            .into_response();
    }
    app.limiter.succeeded(&user);
    let token = auth::random_token();
    let csrf = auth::random_token();
    let ttl = chrono::Duration::from_std(app.cfg.session_ttl).unwrap_or(chrono::Duration::hours(12));
    if let Err(e) = app.store.create_session(&auth::token_hash(&token), &user, &csrf, now, now + ttl).await {
        return db_fail(e).into_response();
    }
    let who = addr.map(|a| a.to_string()).unwrap_or_default();
    if let Err(e) = app.store.audit(&user, "login", &user, &who, now).await {
        return db_fail(e).into_response();
    }
    tracing::info!(user = %user, addr = %who, "console: signed in");
    let secure = if super::is_https(&app, &headers) { "; Secure" } else { "" };
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        auth::COOKIE,
        app.cfg.session_ttl.as_secs()
    );
    let mut res = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

// ---------------------------------------------------------------------------------------------
// State-changing requests: the CSRF token first.

fn check_csrf(ctx: &Ctx, given: &str) -> Result<(), Fail> {
    if auth::same(&ctx.csrf, given) {
        Ok(())
    } else {
        Err(fail(StatusCode::FORBIDDEN, "the form's security token is missing or old: reload the page and try again"))
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<CsrfOnly>,
) -> Result<Response, Fail> {
    check_csrf(&ctx, &f.csrf)?;
    app.store.delete_session(&ctx.token_hash).await?;
    app.store.audit(&ctx.user, "logout", &ctx.user, "", protocols::time::now()).await?;
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_static("hq_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"));
    Ok(res)
}

#[derive(Deserialize)]
pub struct LangForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: String,
}

pub async fn set_lang(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Form(f): Form<LangForm>,
) -> Result<Response, Fail> {
    check_csrf(&ctx, &f.csrf)?;
    let lang = match f.lang.as_str() {
        "auto" => None,
        s => Some(
            Lang::parse(s)
                .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "lang must be zh-CN, en or auto"))?
                .code()
                .to_string(),
        ),
    };
    let change = UserChange { lang: Some(lang), ..UserChange::default() };
    app.store.update_user(&ctx.user, &change, protocols::time::now()).await?;
    // Back to the page the switch was pressed on (same site only).
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|i| rest[i..].to_string()));
    Ok(Redirect::to(&safe_next(back.as_deref())).into_response())
}

// ---------------------------------------------------------------------------------------------
// Overview

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
                "since" => a.uncovered_since().cmp(&b.uncovered_since()),
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
    let o = app.hub.current();
    let tiles: Vec<serde_json::Value> = o
        .tiles
        .iter()
        .map(|t| {
            serde_json::json!({
                "id": t.id, "name": t.name, "region": t.region, "state": t.state.as_str(),
                "gateway": t.gateway, "gateway_since": t.gateway_since,
                "cameras_online": t.cameras_online, "cameras_total": t.cameras_total,
                "cameras_live_video": t.cameras_live_video, "required_zones": t.required_zones,
                "uncovered_zones": t.uncovered.iter().map(|(n, s)| serde_json::json!({"name": n, "since": s})).collect::<Vec<_>>(),
                "devices_down": t.devices_down, "open_alarms": t.open_alarms, "last_heard": t.last_heard,
            })
        })
        .collect();
    axum::Json(serde_json::json!({
        "schema": "hq-overview/1", "at": o.at, "db_error": o.db_error, "branches": tiles,
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

pub async fn events(State(app): State<Arc<App>>, Extension(ctx): Extension<Ctx>) -> impl IntoResponse {
    let rx = app.hub.subscribe();
    let stream = futures::stream::unfold((rx, app, ctx), |(mut rx, app, ctx)| async move {
        use tokio::sync::broadcast::error::RecvError;
        let ev = match rx.recv().await {
            Ok(Change::Tiles(ids)) => {
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
            Ok(Change::Alerts) => Event::default().event("alerts").data("{}"),
            Ok(Change::Db(e)) => Event::default().event("db").data(serde_json::json!({"error": e}).to_string()),
            Err(RecvError::Lagged(_)) => Event::default().event("reload").data("{}"),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok::<Event, Infallible>(ev), (rx, app, ctx)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

// ---------------------------------------------------------------------------------------------
// Branch page

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
                    th { (l.t("Since", "起始")) } th { (l.t("Last reason", "最近原因")) } th { (l.t("Clock skew", "时钟偏差")) } th { (l.t("Updated", "更新")) }
                } }
                tbody { @for d in &st.devices {
                    tr.bad[d.value.state != "online"] id={"d-" (d.value.device.id)} {
                        td { (d.value.device.name) br; small { (d.value.device.id) } }
                        td { (d.value.device.device_type.as_str()) }
                        td.dstate { (device_state_name(l, &d.value.state)) }
                        td { (since(l, c, now, Some(d.value.since))) }
                        td { (d.value.reason.as_deref().unwrap_or("")) }
                        td.num { @if let Some(s) = d.value.clock_skew_ms { (format!("{:.1} s", s as f64 / 1000.0)) } }
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
fn timeline_svg(
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

// ---------------------------------------------------------------------------------------------
// Alerts and acknowledgements

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
fn alert_table(app: &App, ctx: &Ctx, rows: &[AlarmRow], back: &str) -> Markup {
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
    let region = get("region").unwrap_or_default().to_string();
    let branch_q = get("branch").unwrap_or_default().to_string();
    let mut branches: Option<Vec<BranchId>> = None;
    if !branch_q.is_empty() {
        branches = Some(vec![
            BranchId::new(branch_q.clone())
                .map_err(|e| fail(StatusCode::BAD_REQUEST, format!("branch={branch_q:?}: a branch id {e}")))?,
        ]);
    }
    if !region.is_empty() {
        let in_region = app.cfg.directory.in_region(&region);
        branches = Some(match branches {
            Some(b) => b.into_iter().filter(|x| in_region.contains(x)).collect(),
            None => in_region,
        });
    }
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

// ---------------------------------------------------------------------------------------------
// Assessment

/// The longest period the console assesses at once.
const MAX_PERIOD_DAYS: i64 = 400;

fn period(app: &App, q: &HashMap<String, String>) -> Result<Window, Fail> {
    let now = protocols::time::now();
    let from_s = q.get("from").map(|s| s.trim()).filter(|s| !s.is_empty()).unwrap_or("-30d");
    let to_s = q.get("to").map(|s| s.trim()).filter(|s| !s.is_empty()).unwrap_or("now");
    let from = timespec::parse(from_s, now).map_err(|e| fail(StatusCode::BAD_REQUEST, format!("from: {e}")))?;
    let to = timespec::parse(to_s, now).map_err(|e| fail(StatusCode::BAD_REQUEST, format!("to: {e}")))?;
    let w =
        Window::new(from, to).map_err(|e| fail(StatusCode::BAD_REQUEST, format!("{e} (from {from_s}, to {to_s})")))?;
    if (w.to - w.from).num_days() > MAX_PERIOD_DAYS {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            format!("the period is longer than {MAX_PERIOD_DAYS} days; choose a shorter one"),
        ));
    }
    let _ = app;
    Ok(w)
}

pub async fn assessment_csv(State(app): State<Arc<App>>, Query(q): Params) -> Result<Response, Fail> {
    let w = period(&app, &q)?;
    let data = app.store.report_data(w).await?;
    let r = report::build(data, w);
    let name = format!("assessment-{}-{}.csv", w.from.format("%Y%m%d"), w.to.format("%Y%m%d"));
    let mut res = (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"))],
        // A byte-order mark, so that a spreadsheet opens the Chinese names right.
        format!("\u{feff}{}", render::report_csv(&r)),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
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

// ---------------------------------------------------------------------------------------------
// Users and the audit log (admins)

fn require_admin(ctx: &Ctx) -> Result<(), Fail> {
    if ctx.role >= Role::Admin { Ok(()) } else { Err(fail(StatusCode::FORBIDDEN, "only an admin may manage users")) }
}

pub async fn users(State(app): State<Arc<App>>, Extension(ctx): Extension<Ctx>) -> Result<Response, Fail> {
    require_admin(&ctx)?;
    let l = ctx.lang;
    let c = &app.cfg.clock;
    let list = app.store.users().await?;
    let body = html! {
        h1 { (l.t("Users", "用户")) }
        table.users {
            thead { tr { th { (l.t("User", "用户")) } th { (l.t("Role", "角色")) } th { (l.t("State", "状态")) } th { (l.t("Created", "创建")) } th { (l.t("Change", "修改")) } } }
            tbody { @for u in &list {
                tr.disabled[u.disabled] {
                    td { (u.name) } td { (role_name(l, u.role)) }
                    td { @if u.disabled { (l.t("disabled", "已停用")) } @else { (l.t("active", "启用")) } }
                    td { (c.show(u.created_at)) }
                    td {
                        form.inline method="post" action="/admin/users/update" {
                            input type="hidden" name="csrf" value=(ctx.csrf);
                            input type="hidden" name="name" value=(u.name);
                            select name="role" { @for r in Role::ALL { option value=(r.as_str()) selected[r == u.role] { (role_name(l, r)) } } }
                            button name="action" value="role" { (l.t("Set role", "设置角色")) }
                            @if u.disabled { button name="action" value="enable" { (l.t("Enable", "启用")) } }
                            @else { button name="action" value="disable" { (l.t("Disable", "停用")) } }
                            input type="password" name="password" autocomplete="new-password" placeholder=(l.t("new password", "新密码"));
                            button name="action" value="password" { (l.t("Set password", "重设密码")) }
                        }
                    }
                }
            } }
        }
        h2 { (l.t("Add a user", "新增用户")) }
        form.adduser method="post" action="/admin/users" {
            input type="hidden" name="csrf" value=(ctx.csrf);
            label { (l.t("User name", "用户名")) " " input name="name" required maxlength="64"; }
            label { (l.t("Password", "密码")) " " input type="password" name="password" autocomplete="new-password" required minlength=(auth::MIN_PASSWORD); }
            label { (l.t("Role", "角色")) " " select name="role" { @for r in Role::ALL { option value=(r.as_str()) { (role_name(l, r)) } } } }
            button type="submit" { (l.t("Add", "新增")) }
        }
    };
    Ok(page(&app, &ctx, l.t("Users", "用户"), "users", None, body))
}

/// A user name: 1–64 characters, no whitespace or control characters.
pub fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err("a user name has 1 to 64 characters".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a user name has no spaces or control characters".into());
    }
    Ok(())
}

async fn hash_blocking(password: String) -> Result<String, Fail> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| fail(StatusCode::BAD_REQUEST, e.to_string()))
}

#[derive(Deserialize)]
pub struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    action: String,
}

pub async fn user_add(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<UserForm>,
) -> Result<Response, Fail> {
    check_csrf(&ctx, &f.csrf)?;
    require_admin(&ctx)?;
    let name = f.name.trim();
    check_user_name(name).map_err(|e| fail(StatusCode::BAD_REQUEST, e))?;
    let role =
        Role::parse(&f.role).ok_or_else(|| fail(StatusCode::BAD_REQUEST, "role must be viewer, operator or admin"))?;
    let hash = hash_blocking(f.password).await?;
    let now = protocols::time::now();
    if !app.store.create_user(name, &hash, role, now).await? {
        return Err(fail(StatusCode::CONFLICT, format!("a user named {name:?} exists already")));
    }
    app.store.audit(&ctx.user, "user-add", name, role.as_str(), now).await?;
    Ok(Redirect::to("/admin/users").into_response())
}

pub async fn user_update(
    State(app): State<Arc<App>>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<UserForm>,
) -> Result<Response, Fail> {
    check_csrf(&ctx, &f.csrf)?;
    require_admin(&ctx)?;
    let now = protocols::time::now();
    let mut change = UserChange::default();
    let detail = match f.action.as_str() {
        "role" => {
            let role = Role::parse(&f.role)
                .ok_or_else(|| fail(StatusCode::BAD_REQUEST, "role must be viewer, operator or admin"))?;
            if f.name == ctx.user && role < Role::Admin {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    "you cannot take the admin role from yourself; ask another admin",
                ));
            }
            change.role = Some(role);
            role.as_str().to_string()
        }
        "disable" => {
            if f.name == ctx.user {
                return Err(fail(StatusCode::BAD_REQUEST, "you cannot disable yourself; ask another admin"));
            }
            change.disabled = Some(true);
            String::new()
        }
        "enable" => {
            change.disabled = Some(false);
            String::new()
        }
        "password" => {
            change.password_hash = Some(hash_blocking(f.password).await?);
            String::new()
        }
        a => {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                format!("action={a:?}: expected role, disable, enable or password"),
            ));
        }
    };
    if !app.store.update_user(&f.name, &change, now).await? {
        return Err(fail(StatusCode::NOT_FOUND, format!("no user named {:?}", f.name)));
    }
    app.store.audit(&ctx.user, &format!("user-{}", f.action), &f.name, &detail, now).await?;
    Ok(Redirect::to("/admin/users").into_response())
}

pub async fn audit(State(app): State<Arc<App>>, Extension(ctx): Extension<Ctx>) -> Result<Response, Fail> {
    require_admin(&ctx)?;
    let l = ctx.lang;
    let c = &app.cfg.clock;
    let rows = app.store.audit_log(500).await?;
    let body = html! {
        h1 { (l.t("Audit log (latest 500)", "审计日志（最近 500 条）")) }
        table.audit {
            thead { tr { th { (l.t("When", "时间")) } th { (l.t("Who", "操作人")) } th { (l.t("What", "操作")) } th { (l.t("On", "对象")) } th { (l.t("Detail", "详情")) } } }
            tbody { @for a in &rows { tr { td { (c.show(a.at)) } td { (a.actor) } td { (a.action) } td { (a.target) } td { (a.detail) } } } }
        }
    };
    Ok(page(&app, &ctx, l.t("Audit log", "审计日志"), "audit", None, body))
}

pub async fn not_found(Extension(ctx): Extension<Ctx>) -> Fail {
    fail(StatusCode::NOT_FOUND, ctx.lang.t("There is no such page.", "没有这个页面。"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/alerts?state=open")), "/alerts?state=open");
        for bad in ["//evil.example/", "https://evil.example/", "/\\evil", "", "alerts"] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
    }

    #[test]
    fn encoding_keeps_ids_in_one_segment() {
        assert_eq!(encode("b-1_x.y~"), "b-1_x.y~");
        assert_eq!(encode("<script>&a=1"), "%3Cscript%3E%26a%3D1");
        assert_eq!(encode("北京"), "%E5%8C%97%E4%BA%AC");
    }

    #[test]
    fn names_are_escaped_in_tiles() {
        let t = Tile {
            id: BranchId::new("<script>x").unwrap(),
            name: "<script>alert(1)</script>".into(),
            region: String::new(),
            state: TileState::Red,
            gateway: "online",
            gateway_since: None,
            cameras_online: 1,
            cameras_total: 2,
            cameras_live_video: None,
            required_zones: 1,
            uncovered: vec![("<b>vault</b>".into(), None)],
            devices_down: 1,
            open_alarms: 0,
            last_heard: None,
        };
        let h = tile_markup(Lang::En, &Clock::china(), &t).into_string();
        assert!(!h.contains("<script>") && !h.contains("<b>vault"), "{h}");
        assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{h}");
        assert!(h.contains("href=\"/branch/%3Cscript%3Ex\""), "{h}");
    }
}
