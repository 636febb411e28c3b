//! The camera's HTTP side (hyper 1): SOAP services on POST, the snapshot on GET, and the
//! HTTP-level faults (hung, slow, HTTP 500). HTTP Digest checking lives here too because both
//! the SOAP services (in Digest mode) and the snapshot use it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use protocols::onvif::http_digest::{self, Authorization, Challenge};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Camera, MAX_REQUEST_BODY, jpeg, soap};

pub(crate) type Resp = Response<Full<Bytes>>;

/// The realm of every camera's digest challenges.
pub(crate) const REALM: &str = "bsg-sim";
/// How long a digest nonce stays valid.
const NONCE_TTL_SECS: i64 = 300;

pub(crate) fn spawn(cam: Arc<Camera>, listener: TcpListener, token: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                r = listener.accept() => match r {
                    Ok((stream, _)) => {
                        cam.http_connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tokio::spawn(serve_conn(cam.clone(), stream, token.clone()));
                    }
                    Err(e) => {
                        tracing::debug!(camera = %cam.spec.id, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
            }
        }
    });
}

async fn serve_conn(cam: Arc<Camera>, stream: tokio::net::TcpStream, token: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let t = token.clone();
    let svc = service_fn(move |req| {
        let cam = cam.clone();
        let token = t.clone();
        async move { Ok::<_, Infallible>(handle(cam, req, token).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(20))
        .serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        _ = conn => {}
        _ = token.cancelled() => {}
    }
}

pub(crate) fn response(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

async fn handle(cam: Arc<Camera>, req: http::Request<Incoming>, token: CancellationToken) -> Resp {
    let faults = cam.faults();
    if faults.hung {
        // Accepted, read, not answered while the fault lasts (then a late 503, so that hung
        // requests do not pile up for ever).
        while cam.faults().hung {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        return response(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "");
    }
    if let Some(d) = faults.slow {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = token.cancelled() => return response(StatusCode::SERVICE_UNAVAILABLE, "text/plain", ""),
        }
    }
    if faults.http500 {
        return response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/html",
            "<html><body><h1>500 Internal Server Error</h1></body></html>",
        );
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    match method {
        Method::GET if path == "/onvif/snapshot.jpg" => snapshot(&cam, &headers).await,
        Method::POST => {
            let body = match Limited::new(req.into_body(), MAX_REQUEST_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return response(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", "request body too large\n"),
            };
            let Ok(text) = std::str::from_utf8(&body) else {
                return response(StatusCode::BAD_REQUEST, "text/plain", "request body is not UTF-8\n");
            };
            soap::handle(&cam, &path, &headers, text).await
        }
        _ => response(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

async fn snapshot(cam: &Camera, headers: &HeaderMap) -> Resp {
    if let Err(challenge) = check_digest(cam, "GET", "/onvif/snapshot.jpg", headers) {
        return unauthorized(challenge, "text/plain", "authentication required\n");
    }
    let (frame, bytes, scene, (width, height)) = {
        let mut st = cam.state();
        if !st.faults.frozen {
            st.frame += 1;
        }
        (st.frame, st.picture_bytes, st.faults.scene(), st.picture_size.unwrap_or(jpeg::DEFAULT_SIZE))
    };
    let frames = match jpeg::frames(scene, width, height).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(camera = %cam.spec.id, ?scene, width, height, error = %e, "could not encode the snapshot");
            return response(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "no picture\n");
        }
    };
    cam.snapshots.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut r = response(StatusCode::OK, "image/jpeg", frames.serve(frame, bytes));
    r.headers_mut().insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
    r
}

/// A 401 with the challenge.
pub(crate) fn unauthorized(challenge: Challenge, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = response(StatusCode::UNAUTHORIZED, content_type, body);
    if let Ok(v) = challenge.header().parse() {
        r.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    r
}

fn nonce_mac(cam: &Camera, ts: i64) -> String {
    let full = http_digest::md5_hex(format!("{}:{ts}:{}", cam.nonce_secret, cam.spec.id).as_bytes());
    full[..16].to_string()
}

/// A fresh challenge. Nonces are stateless: `timestamp.mac`, valid for [`NONCE_TTL_SECS`].
pub(crate) fn challenge(cam: &Camera, stale: bool) -> Challenge {
    let ts = chrono::Utc::now().timestamp();
    Challenge {
        realm: REALM.to_string(),
        nonce: format!("{ts:x}.{}", nonce_mac(cam, ts)),
        opaque: None,
        qop_auth: true,
        stale,
    }
}

enum NonceCheck {
    Good,
    Stale,
    Bad,
}

fn check_nonce(cam: &Camera, nonce: &str) -> NonceCheck {
    let Some((ts, mac)) = nonce.split_once('.') else { return NonceCheck::Bad };
    let Ok(ts) = i64::from_str_radix(ts, 16) else { return NonceCheck::Bad };
    if nonce_mac(cam, ts) != mac {
        return NonceCheck::Bad;
    }
    let age = chrono::Utc::now().timestamp() - ts;
    if (0..=NONCE_TTL_SECS).contains(&age) { NonceCheck::Good } else { NonceCheck::Stale }
}

/// Checks an `Authorization: Digest` header for `method` on `path`; the error is the
/// challenge to send back.
pub(crate) fn check_digest(cam: &Camera, method: &str, path: &str, headers: &HeaderMap) -> Result<(), Challenge> {
    let Some(value) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Err(challenge(cam, false));
    };
    verify_digest_value(cam, method, path, value)
}

/// Like [`check_digest`] on a raw header value (shared with RTSP).
pub(crate) fn verify_digest_value(cam: &Camera, method: &str, path: &str, value: &str) -> Result<(), Challenge> {
    let Some(auth) = Authorization::parse(value) else { return Err(challenge(cam, false)) };
    // The uri may be the path (HTTP) or the full URL (RTSP); it must name this resource.
    let uri_path =
        auth.uri.split_once("://").map(|(_, r)| r.find('/').map(|i| &r[i..]).unwrap_or("/")).unwrap_or(&auth.uri);
    let uri_path = uri_path.split('?').next().unwrap_or(uri_path);
    if uri_path != path || auth.realm != REALM {
        return Err(challenge(cam, false));
    }
    match check_nonce(cam, &auth.nonce) {
        NonceCheck::Good => {}
        NonceCheck::Stale => return Err(challenge(cam, true)),
        NonceCheck::Bad => return Err(challenge(cam, false)),
    }
    if cam.faults().auth_failure || auth.username != cam.spec.username || !auth.verify(method, &cam.spec.password) {
        return Err(challenge(cam, false));
    }
    Ok(())
}
