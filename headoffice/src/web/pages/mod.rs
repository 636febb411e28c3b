//! The console's pages and endpoints: the frame, sign-in and the small requests here, each page
//! in its own module. Markup is maud's: every value is escaped unless it is
//! explicitly `PreEscaped`, which only the console's own markup is.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::extract::{ConnectInfo, Form, Query, State};
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

mod admin;
mod alerts;
mod assessment;
mod branch;
mod orders;
mod overview;

pub use admin::{audit, check_user_name, user_add, user_update, users};
pub use alerts::{ack, alerts};
pub use assessment::{assessment, assessment_csv, scores_csv};
pub use branch::branch;
pub use orders::{order_close, order_note, order_open, order_page, order_take, orders_list};
#[cfg(test)]
use overview::tile_markup;
pub use overview::{events, overview, overview_json};

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

/// A device's state in words, with its code: `s` is the most precise code the gateway sent
/// (`DeviceHealth::detail`: `unreachable` rather than `offline`).
fn device_state_name(l: Lang, s: &str) -> String {
    let t = match s {
        "online" => l.t("online", "在线"),
        "offline" | "unreachable" => l.t("offline", "离线"),
        "hung" | "heartbeat-stopped" => l.t("heartbeat stopped", "心跳停止"),
        "modbus-exception" => l.t("Modbus exception", "Modbus 异常应答"),
        "protocol-error" => l.t("protocol error", "协议错误"),
        "maintenance" => l.t("maintenance", "维护中"),
        "frozen" => l.t("frozen picture", "画面冻结"),
        "stream-down" => l.t("no video stream", "无视频流"),
        "auth-failed" => l.t("login refused", "认证失败"),
        "tcp-only" => l.t("no ONVIF answer", "ONVIF 无响应"),
        "signal-lost" => l.t("signal lost", "信号丢失"),
        "obstructed" => l.t("picture blocked", "画面遮挡"),
        "dark" => l.t("picture too dark", "画面过暗"),
        "defocused" => l.t("out of focus", "画面失焦"),
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
        ("/orders", "orders", l.t("Rectification", "整改")),
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
    static_asset("text/css; charset=utf-8", include_str!("../assets/console.css"))
}

pub async fn js() -> Response {
    static_asset("text/javascript; charset=utf-8", include_str!("../assets/console.js"))
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

/// The `branch` and `region` filters of a list, as typed, and the branches they leave.
pub(super) struct Scope {
    region: String,
    branch: String,
    /// `None`: every branch.
    branches: Option<Vec<BranchId>>,
}

pub(super) fn scope(app: &App, q: &HashMap<String, String>) -> Result<Scope, Fail> {
    let get = |k: &str| q.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    let (region, branch) = (get("region"), get("branch"));
    let mut branches = match branch.as_str() {
        "" => None,
        b => Some(vec![
            BranchId::new(b).map_err(|e| fail(StatusCode::BAD_REQUEST, format!("branch={b:?}: a branch id {e}")))?,
        ]),
    };
    if !region.is_empty() {
        let in_region = app.cfg.directory.in_region(&region);
        branches = Some(match branches {
            Some(b) => b.into_iter().filter(|x| in_region.contains(x)).collect(),
            None => in_region,
        });
    }
    Ok(Scope { region, branch, branches })
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
            orders: 0,
            last_heard: None,
        };
        let h = tile_markup(Lang::En, &Clock::china(), &t).into_string();
        assert!(!h.contains("<script>") && !h.contains("<b>vault"), "{h}");
        assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{h}");
        assert!(h.contains("href=\"/branch/%3Cscript%3Ex\""), "{h}");
    }
}
