//! `hq serve`: the head-office web console.
//!
//! Server-rendered pages (maud, escaped by construction) over the same database the listeners
//! write, with one small script for live updates through Server-Sent Events; the stylesheet
//! and the script are embedded in the binary and nothing is fetched from elsewhere.
//!
//! ```text
//! browser ──▶ security headers ─▶ same-origin check (POST) ─▶ session (else 401 / sign-in)
//!         ──▶ pages (overview, branch, alerts, assessment, users, audit) ─▶ db::Store
//! Hub (one poller per server) ─▶ broadcast ─▶ /events (one SSE stream per open page)
//! ```

mod auth;
mod i18n;
mod live;
mod pages;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

pub use auth::{MIN_PASSWORD, PasswordError, hash_password, verify_password};

/// Eight random hex digits (to keep keys made in the same millisecond apart).
pub fn random_suffix() -> String {
    auth::random_token()[..8].to_string()
}
pub use i18n::{Clock, Lang};
pub use live::{Hub, Overview, Tile, TileState};
pub use pages::{check_user_name, encode};

use crate::db::{DbError, Role, Store};
use crate::directory::Directory;

/// How `hq serve` runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The branch directory (names, regions); may be empty.
    pub directory: Arc<Directory>,
    /// Mark the session cookie `Secure` (the console is reached over HTTPS).
    pub secure_cookies: bool,
    /// Behind a reverse proxy: take the client address from `X-Forwarded-For` and HTTPS from
    /// `X-Forwarded-Proto`.
    pub behind_proxy: bool,
    /// How long a sign-in lasts.
    pub session_ttl: Duration,
    /// How often the live view looks for changes.
    pub poll: Duration,
    /// A gateway that says it is online but has sent nothing for this long is shown as stale.
    pub stale_after: Duration,
    pub clock: Clock,
    /// Told when a listener in this process has committed a batch: look at once.
    pub changed: Option<Arc<tokio::sync::Notify>>,
    /// Orders' deadlines and the assessment's score.
    pub hq: Arc<crate::orders::HqConfig>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            directory: Arc::new(Directory::default()),
            secure_cookies: false,
            behind_proxy: false,
            session_ttl: Duration::from_secs(12 * 3600),
            poll: Duration::from_millis(500),
            stale_after: Duration::from_secs(180),
            clock: Clock::china(),
            changed: None,
            hq: Arc::new(crate::orders::HqConfig::default()),
        }
    }
}

/// Everything a request handler needs.
pub(crate) struct App {
    store: Store,
    cfg: ServeConfig,
    hub: Arc<Hub>,
    limiter: auth::Limiter,
    /// Ends the event streams too, so that open pages do not hold a stopping server.
    shutdown: CancellationToken,
}

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    user: String,
    role: Role,
    lang: Lang,
    csrf: String,
    token_hash: String,
}

/// Serves the console on `listener` until `shutdown`. The live view's poller runs beside it.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    cfg: ServeConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let hub = Hub::new();
    // The first overview is built before the first page is served.
    match live::build(&store, &cfg.directory, protocols::time::now(), cfg.stale_after).await {
        Ok(o) => hub.set(o),
        Err(e) => tracing::error!(error = %e, "cannot read the database yet; the console will show it when it can"),
    }
    let poller = tokio::spawn(hub.clone().run(
        store.clone(),
        cfg.directory.clone(),
        cfg.poll,
        cfg.stale_after,
        cfg.changed.clone(),
        shutdown.clone(),
    ));
    let app = Arc::new(App { store, cfg, hub, limiter: auth::Limiter::default(), shutdown: shutdown.clone() });
    let router = router(app);
    let stop = shutdown.clone();
    let r = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    shutdown.cancel();
    let _ = poller.await;
    r
}

fn router(app: Arc<App>) -> Router {
    let private = Router::new()
        .route("/", get(pages::overview))
        .route("/api/overview", get(pages::overview_json))
        .route("/events", get(pages::events))
        .route("/branch/{id}", get(pages::branch))
        .route("/alerts", get(pages::alerts))
        .route("/alerts/ack", post(pages::ack))
        .route("/orders", get(pages::orders_list))
        .route("/orders/open", post(pages::order_open))
        .route("/orders/{id}", get(pages::order_page))
        .route("/orders/{id}/take", post(pages::order_take))
        .route("/orders/{id}/note", post(pages::order_note))
        .route("/orders/{id}/close", post(pages::order_close))
        .route("/assessment", get(pages::assessment))
        .route("/assessment.csv", get(pages::assessment_csv))
        .route("/assessment/scores.csv", get(pages::scores_csv))
        .route("/admin/users", get(pages::users).post(pages::user_add))
        .route("/admin/users/update", post(pages::user_update))
        .route("/admin/audit", get(pages::audit))
        .route("/settings/lang", post(pages::set_lang))
        .route("/logout", post(pages::logout))
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(app.clone(), require_session));
    Router::new()
        .route("/health", get(pages::health))
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/static/console.css", get(pages::css))
        .route("/static/console.js", get(pages::js))
        .merge(private)
        .layer(middleware::from_fn(same_origin))
        .layer(middleware::from_fn(security_headers))
        .with_state(app)
}

/// Every page: no framing, no sniffing, scripts and styles only from the console itself.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// A state-changing request from another site's page is refused, whatever cookies it carries
/// (on top of the CSRF token and the SameSite cookie).
async fn same_origin(req: Request, next: Next) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let h = req.headers();
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok())
            && origin != "null"
        {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            let forwarded = h.get("x-forwarded-host").and_then(|v| v.to_str().ok());
            if origin_host != host && Some(origin_host) != forwarded {
                return pages::fail(StatusCode::FORBIDDEN, "request from another site refused").into_response();
            }
        }
    }
    next.run(req).await
}

/// No page, API or event stream without a live session: pages redirect to the sign-in page,
/// the API and the event stream answer 401.
async fn require_session(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| auth::cookie(c, auth::COOKIE))
        .map(str::to_string);
    let found = match token {
        Some(t) => {
            let token_hash = auth::token_hash(&t);
            match app.store.session(&token_hash, protocols::time::now()).await {
                Ok(s) => s.map(|s| (s, token_hash)),
                Err(e) => return pages::db_fail(e).into_response(),
            }
        }
        None => None,
    };
    let Some((s, token_hash)) = found else {
        let path = req.uri().path();
        if path.starts_with("/api/") || path == "/events" || req.method() != Method::GET {
            return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Cookie")], "sign in first\n")
                .into_response();
        }
        let next_url = req.uri().path_and_query().map_or("/", |p| p.as_str());
        return Redirect::to(&format!("/login?next={}", pages::encode(next_url))).into_response();
    };
    let lang = s.lang.as_deref().and_then(Lang::parse).unwrap_or_else(|| accept_language(req.headers()));
    req.extensions_mut().insert(Ctx { user: s.user, role: s.role, lang, csrf: s.csrf, token_hash });
    next.run(req).await
}

fn accept_language(h: &HeaderMap) -> Lang {
    Lang::from_accept_language(h.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()))
}

/// The client's address: the peer, or behind a proxy the address the proxy saw.
fn client_addr(app: &App, h: &HeaderMap, peer: SocketAddr) -> Option<IpAddr> {
    if app.cfg.behind_proxy
        && let Some(a) = h
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return Some(a);
    }
    Some(peer.ip())
}

fn is_https(app: &App, h: &HeaderMap) -> bool {
    app.cfg.secure_cookies
        || (app.cfg.behind_proxy
            && h.get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|p| p.eq_ignore_ascii_case("https")))
}

impl From<DbError> for pages::Fail {
    fn from(e: DbError) -> Self {
        pages::db_fail(e)
    }
}
