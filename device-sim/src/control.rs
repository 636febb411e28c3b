//! The control API: HTTP/JSON on loopback, so an installer (curl), a test or a script can
//! switch faults and set panel points on a running simulator, and see what it serves.
//!
//! Why HTTP/JSON: every installer's laptop has curl, and every test language has a client.
//! Why loopback only: the API has no authentication — it can make any simulated device fail —
//! so it refuses to listen anywhere a network neighbour could reach it (use an SSH tunnel).
//!
//! Every change goes through [`LiveBranch::apply`], exactly like a timeline step, so it is
//! logged and journaled the same way (`--events-json` prints it with `"source":"control"`).
//! Requests are bounded: bodies to [`MAX_BODY`] bytes (HTTP 413 beyond), headers must arrive
//! within 10 s, and at most [`MAX_CONNECTIONS`] connections are served at once.
//!
//! Error messages (`{"error": …}`) are in English, or in Chinese for a request whose
//! `Accept-Language` prefers `zh` (as `device-sim ctl` sends in a Chinese locale); field names
//! and the JSON of answers never change.
//!
//! Endpoints (docs/SIMULATOR.md has the details and curl examples):
//!
//! | method and path | body |
//! |---|---|
//! | `GET /devices` | — |
//! | `POST /cameras/{id}/faults` | `{"fault":"down","on":true}`, `slow` + `"ms"`, `clock-skew` + `"seconds"` |
//! | `POST /cameras/{id}/events` | `{"kind":"tamper","active":true}` |
//! | `POST /panels/{id}/points/{point}` | `{"state":"alarm"}` or `{"raw":3}` |
//! | `POST /panels/{id}/faults` | `{"fault":"no-answer","on":true}`, `slow` + `"ms"`, `exception` + `"code"` |
//! | `POST /panels/{id}/heartbeat` | `{"running":false}` |
//! | `POST /link` | `{"up":false}` |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use i18n::{Lang, Text, text};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::scenario::{self, Action, LiveBranch, Origin, PointSet};

/// Largest request body read.
pub const MAX_BODY: usize = 16 * 1024;
/// Most bytes of an oversized body read and dropped before answering 413.
pub const MAX_DRAIN: usize = 1024 * 1024;
/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(
        "the control API has no authentication and listens on loopback only; {0} is not a loopback address \
         (fix: use 127.0.0.1:PORT, and an SSH tunnel to reach it from elsewhere)"
    )]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr} for the control API: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running control server; stops on [`ControlServer::shutdown`].
#[derive(Debug)]
pub struct ControlServer {
    addr: SocketAddr,
    cancel: CancellationToken,
}

impl ControlServer {
    /// Where it listens (the real port when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

/// Starts serving the control API for `branch` on `addr` (loopback only; port 0: a free port).
pub async fn serve(addr: SocketAddr, branch: Arc<LiveBranch>) -> Result<ControlServer, ControlError> {
    if !addr.ip().is_loopback() {
        return Err(ControlError::NotLoopback(addr));
    }
    let listener = TcpListener::bind(addr).await.map_err(|source| ControlError::Bind { addr, source })?;
    let addr = listener.local_addr().map_err(|source| ControlError::Bind { addr, source })?;
    let cancel = CancellationToken::new();
    tokio::spawn(accept_loop(listener, branch, cancel.clone()));
    Ok(ControlServer { addr, cancel })
}

async fn accept_loop(listener: TcpListener, branch: Arc<LiveBranch>, cancel: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                debug!(error = %e, "control: accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            debug!("control: too many connections; closing one");
            continue;
        };
        let branch = branch.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req| {
                let branch = branch.clone();
                async move { Ok::<_, Infallible>(handle(&branch, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = cancel.cancelled() => {}
            }
        });
    }
}

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, message: &Text, lang: Lang) -> Resp {
    reply(status, &json!({"error": message.get(lang)}))
}

/// A request the API cannot serve: status and message.
struct Refusal(StatusCode, Text);

impl Refusal {
    fn bad(message: Text) -> Refusal {
        Refusal(StatusCode::BAD_REQUEST, message)
    }
    fn not_found(message: Text) -> Refusal {
        Refusal(StatusCode::NOT_FOUND, message)
    }
}

/// The language of the request's error messages: English unless `Accept-Language` prefers
/// Chinese (curl sends none, and installers' scripts match English texts).
fn request_lang(req: &Request<Incoming>) -> Lang {
    match req.headers().get(http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()) {
        Some(h) => Lang::from_accept_language(Some(h)),
        None => Lang::En,
    }
}

async fn handle(branch: &LiveBranch, req: Request<Incoming>) -> Resp {
    let lang = request_lang(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    // (allowed method, route) — the method is checked after the route so a wrong method on
    // a real route gets 405, not 404.
    let route: Option<Method> = match segments.as_slice() {
        [] | ["devices"] => Some(Method::GET),
        ["cameras", _, "faults" | "events"]
        | ["panels", _, "points", _]
        | ["panels", _, "faults" | "heartbeat"]
        | ["link"] => Some(Method::POST),
        _ => None,
    };
    let Some(allowed) = route else {
        return error(
            StatusCode::NOT_FOUND,
            &text!(
                "no endpoint {path}; see GET / for the list (docs/SIMULATOR.md has the details)",
                "没有接口 {path}；GET / 列出全部接口（详见 docs/SIMULATOR.zh-CN.md）"
            ),
            lang,
        );
    };
    if method != allowed {
        let mut r = error(
            StatusCode::METHOD_NOT_ALLOWED,
            &text!("{path} takes {allowed}, not {method}", "{path} 只接受 {allowed}，不接受 {method}"),
            lang,
        );
        if let Ok(v) = allowed.as_str().parse() {
            r.headers_mut().insert(ALLOW, v);
        }
        return r;
    }
    if allowed == Method::GET {
        return match segments.as_slice() {
            [] => reply(StatusCode::OK, &index(lang)),
            _ => reply(StatusCode::OK, &branch.devices()),
        };
    }
    let body = match read_body(req.into_body(), lang).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let action = match action_for(branch, &segments, &body) {
        Ok(a) => a,
        Err(Refusal(status, message)) => return error(status, &message, lang),
    };
    match branch.apply(Origin::Control, &action) {
        Ok(()) => reply(StatusCode::OK, &json!({"ok": true, "applied": action.to_json()})),
        Err(e) if e.is_not_found() => error(StatusCode::NOT_FOUND, &e.text(), lang),
        Err(e) if e.is_bad_value() => error(StatusCode::BAD_REQUEST, &e.text(), lang),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.text(), lang),
    }
}

/// Reads at most [`MAX_BODY`] bytes. A longer body is read on (and dropped) up to
/// [`MAX_DRAIN`] before the 413 goes out: closing a socket with unread data makes the kernel
/// send a reset, which can destroy the answer before the client reads it.
async fn read_body(mut body: Incoming, lang: Lang) -> Result<Bytes, Resp> {
    let mut buf = Vec::new();
    let mut total = 0usize;
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                error(StatusCode::BAD_REQUEST, &text!("cannot read the body: {e}", "无法读取请求体：{e}"), lang)
            })?;
            if let Ok(data) = frame.into_data() {
                total += data.len();
                if total <= MAX_BODY {
                    buf.extend_from_slice(&data);
                } else if total > MAX_DRAIN {
                    break;
                }
            }
        }
        Ok(())
    };
    match tokio::time::timeout(Duration::from_secs(10), read).await {
        Ok(Ok(())) => {}
        Ok(Err(r)) => return Err(r),
        Err(_) => {
            let msg = text!("the body did not arrive within 10 s", "请求体在 10 秒内没有到达");
            return Err(error(StatusCode::REQUEST_TIMEOUT, &msg, lang));
        }
    }
    if total > MAX_BODY {
        let msg = text!("the body is larger than {MAX_BODY} bytes", "请求体超过了 {MAX_BODY} 字节");
        return Err(error(StatusCode::PAYLOAD_TOO_LARGE, &msg, lang));
    }
    Ok(Bytes::from(buf))
}

/// The endpoints, the names of faults and events, and what each fault does (in the asker's
/// language).
fn index(lang: Lang) -> Value {
    let help = |names: &[&str], help: fn(&str) -> Option<Text>| -> serde_json::Map<String, Value> {
        names.iter().filter_map(|n| help(n).map(|t| (n.to_string(), json!(t.get(lang))))).collect()
    };
    json!({
        "endpoints": [
            "GET /devices",
            "POST /cameras/{id}/faults {\"fault\":\"down\",\"on\":true} (slow: \"ms\"; clock-skew: \"seconds\")",
            "POST /cameras/{id}/events {\"kind\":\"tamper\",\"active\":true}",
            "POST /panels/{id}/points/{point} {\"state\":\"alarm\"} or {\"raw\":3}",
            "POST /panels/{id}/faults {\"fault\":\"no-answer\",\"on\":true} (slow: \"ms\"; exception: \"code\")",
            "POST /panels/{id}/heartbeat {\"running\":false}",
            "POST /link {\"up\":false}",
        ],
        "camera_faults": scenario::CAMERA_FAULTS,
        "camera_events": scenario::CAMERA_EVENTS,
        "panel_faults": scenario::PANEL_FAULTS,
        "camera_fault_help": help(&scenario::CAMERA_FAULTS, scenario::camera_fault_help),
        "panel_fault_help": help(&scenario::PANEL_FAULTS, scenario::panel_fault_help),
    })
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraFaultReq {
    fault: String,
    #[serde(default = "yes")]
    on: bool,
    ms: Option<u64>,
    seconds: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraEventReq {
    kind: String,
    #[serde(default = "yes")]
    active: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PointReq {
    state: Option<String>,
    raw: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PanelFaultReq {
    fault: String,
    #[serde(default = "yes")]
    on: bool,
    ms: Option<u64>,
    code: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeartbeatReq {
    running: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkReq {
    up: bool,
}

fn parse<T: DeserializeOwned>(body: &[u8], example: &str) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| {
        Refusal::bad(text!(
            "bad JSON body: {e} (expected e.g. {example})",
            "请求体不是正确的 JSON：{e}（应为例如 {example}）"
        ))
    })
}

fn camera(branch: &LiveBranch, id: &str) -> Result<String, Refusal> {
    if branch.has_camera(id) {
        Ok(id.to_string())
    } else {
        Err(Refusal::not_found(text!("no camera {id:?}", "没有摄像机 {id:?}")))
    }
}

fn panel(branch: &LiveBranch, id: &str) -> Result<String, Refusal> {
    if branch.has_panel(id) {
        Ok(id.to_string())
    } else {
        Err(Refusal::not_found(text!("no panel {id:?}", "没有主机 {id:?}")))
    }
}

fn invalid(inv: scenario::Invalid) -> Refusal {
    Refusal::bad(inv.text())
}

fn action_for(branch: &LiveBranch, segments: &[&str], body: &[u8]) -> Result<Action, Refusal> {
    match segments {
        ["cameras", id, "faults"] => {
            let camera = camera(branch, id)?;
            let r: CameraFaultReq = parse(body, r#"{"fault":"down","on":true}"#)?;
            let fault =
                scenario::camera_fault(&r.fault, r.on, r.ms.map(Duration::from_millis), r.seconds, ("ms", "seconds"))
                    .map_err(invalid)?;
            Ok(Action::CameraFault { camera, fault, on: r.on })
        }
        ["cameras", id, "events"] => {
            let camera = camera(branch, id)?;
            let r: CameraEventReq = parse(body, r#"{"kind":"tamper","active":true}"#)?;
            let kind = scenario::camera_event(&r.kind).map_err(invalid)?;
            Ok(Action::CameraEvent { camera, kind, active: r.active })
        }
        ["panels", id, "points", point] => {
            let panel = panel(branch, id)?;
            let r: PointReq = parse(body, r#"{"state":"alarm"} or {"raw":3}"#)?;
            let value = match (r.state, r.raw) {
                (Some(s), None) => PointSet::State(s),
                (None, Some(v)) => PointSet::Raw(v),
                _ => {
                    return Err(Refusal::bad(text!(
                        r#"give exactly one of "state" or "raw", e.g. {{"state":"alarm"}}"#,
                        r#""state" 和 "raw" 须恰好给一个，例如 {{"state":"alarm"}}"#
                    )));
                }
            };
            Ok(Action::Point { panel, point: (*point).to_string(), value })
        }
        ["panels", id, "faults"] => {
            let panel = panel(branch, id)?;
            let r: PanelFaultReq = parse(body, r#"{"fault":"no-answer","on":true}"#)?;
            let fault = scenario::panel_fault(&r.fault, r.on, r.ms.map(Duration::from_millis), r.code, "ms")
                .map_err(invalid)?;
            Ok(Action::PanelFault { panel, fault, on: r.on })
        }
        ["panels", id, "heartbeat"] => {
            let panel = panel(branch, id)?;
            let r: HeartbeatReq = parse(body, r#"{"running":false}"#)?;
            Ok(Action::Heartbeat { panel, running: r.running })
        }
        ["link"] => {
            if branch.link().is_none() {
                return Err(Refusal::not_found(text!(
                    "this branch has no link proxy (add a [link] section to the scenario)",
                    "这个网点没有链路代理（在场景里加上 [link] 一节）"
                )));
            }
            let r: LinkReq = parse(body, r#"{"up":false}"#)?;
            Ok(Action::Link { up: r.up })
        }
        _ => Err(Refusal::not_found(text!("no such endpoint", "没有这个接口"))),
    }
}
