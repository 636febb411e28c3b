//! Operator metrics: `/metrics` in the Prometheus text format and `/health` as JSON, on a
//! loopback address by default.
//!
//! Operators keep hundreds of gateways alive with the monitoring they already run; a
//! Prometheus endpoint is what that monitoring scrapes. The numbers are kept in atomics and
//! small maps updated by the pipeline; rendering happens only when scraped.
//!
//! The HTTP side is hyper's HTTP/1 server: two GET routes do not justify a web framework.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::outbox::Outbox;
use crate::uplink::UplinkStats;

/// Latency buckets (seconds) for probe and poll durations.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// A Prometheus histogram with fixed buckets.
#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }
}

/// Everything `/metrics` reports. Shared (`Arc`) between the pipeline and the HTTP server.
#[derive(Debug, Default)]
pub struct Metrics {
    /// device id → (device type, state).
    devices: Mutex<BTreeMap<String, (String, String)>>,
    /// device type → latency histogram of probes (cameras) and poll cycles (panels).
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// (kind, state) → alerts stored.
    alerts: Mutex<BTreeMap<(String, String), u64>>,
    observations: AtomicU64,
    dropped: AtomicU64,
    store_errors: AtomicU64,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    pub fn set_device_state(&self, id: &str, device_type: &str, state: &str) {
        let mut d = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        d.insert(id.to_string(), (device_type.to_string(), state.to_string()));
    }

    pub fn observe_latency(&self, device_type: &str, d: Duration) {
        self.observations.fetch_add(1, Ordering::Relaxed);
        let mut l = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        l.entry(device_type.to_string()).or_default().observe(d.as_secs_f64());
    }

    pub fn count_alert(&self, kind: &str, state: &str) {
        let mut a = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
        *a.entry((kind.to_string(), state.to_string())).or_default() += 1;
    }

    pub fn count_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub fn count_store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Devices per state, e.g. `{"online": 7, "unreachable": 1}`.
    pub fn devices_by_state(&self) -> BTreeMap<(String, String), u64> {
        let d = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        let mut m = BTreeMap::new();
        for (ty, st) in d.values() {
            *m.entry((ty.clone(), st.clone())).or_default() += 1;
        }
        m
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, outbox: &Outbox, uplink: &UplinkStats) -> String {
        let mut s = String::with_capacity(4096);
        let _ = writeln!(s, "# HELP bsg_devices Devices by type and health state.");
        let _ = writeln!(s, "# TYPE bsg_devices gauge");
        for ((ty, st), n) in self.devices_by_state() {
            let _ = writeln!(s, "bsg_devices{{type=\"{}\",state=\"{}\"}} {n}", esc(&ty), esc(&st));
        }
        let _ = writeln!(s, "# HELP bsg_poll_duration_seconds Duration of camera probes and panel poll cycles.");
        let _ = writeln!(s, "# TYPE bsg_poll_duration_seconds histogram");
        {
            let l = self.latency.lock().unwrap_or_else(|p| p.into_inner());
            for (ty, h) in l.iter() {
                let ty = esc(ty);
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(s, "bsg_poll_duration_seconds_bucket{{type=\"{ty}\",le=\"{b}\"}} {}", h.counts[i]);
                }
                let _ = writeln!(s, "bsg_poll_duration_seconds_bucket{{type=\"{ty}\",le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(s, "bsg_poll_duration_seconds_sum{{type=\"{ty}\"}} {}", h.sum);
                let _ = writeln!(s, "bsg_poll_duration_seconds_count{{type=\"{ty}\"}} {}", h.count);
            }
        }
        let _ = writeln!(s, "# HELP bsg_observations_total Observations received from pollers.");
        let _ = writeln!(s, "# TYPE bsg_observations_total counter");
        let _ = writeln!(s, "bsg_observations_total {}", self.observations.load(Ordering::Relaxed));
        let _ = writeln!(s, "# HELP bsg_alerts_total Alerts stored in the outbox, by kind and state.");
        let _ = writeln!(s, "# TYPE bsg_alerts_total counter");
        {
            let a = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
            for ((k, st), n) in a.iter() {
                let _ = writeln!(s, "bsg_alerts_total{{kind=\"{}\",state=\"{}\"}} {n}", esc(k), esc(st));
            }
        }
        gauge(&mut s, "bsg_outbox_depth", "Events waiting for delivery.", outbox.depth() as f64);
        gauge(&mut s, "bsg_outbox_bytes", "Bytes of events waiting for delivery.", outbox.bytes() as f64);
        gauge(
            &mut s,
            "bsg_outbox_oldest_age_seconds",
            "Age of the oldest undelivered event (0 when empty).",
            outbox.oldest_pending_age().map(|d| d.as_secs_f64()).unwrap_or(0.0),
        );
        gauge(&mut s, "bsg_outbox_last_seq", "The last seq assigned.", outbox.last_seq().0 as f64);
        counter(
            &mut s,
            "bsg_events_dropped_total",
            "Events dropped by the outbox bound.",
            self.dropped.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "bsg_store_errors_total",
            "Alerts that could not be stored.",
            self.store_errors.load(Ordering::Relaxed),
        );
        gauge(
            &mut s,
            "bsg_uplink_connected",
            "1 when connected to the broker.",
            if uplink.is_connected() { 1.0 } else { 0.0 },
        );
        counter(
            &mut s,
            "bsg_uplink_reconnects_total",
            "Reconnections after the first.",
            uplink.reconnects.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "bsg_uplink_connection_errors_total",
            "Failed connection attempts and lost connections.",
            uplink.connection_errors.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "bsg_uplink_refused_total",
            "Publishes the broker refused (MQTT 5 PUBACK reason code >= 0x80); the events were kept.",
            uplink.refused.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "bsg_uplink_published_total",
            "Alerts handed to the network.",
            uplink.published.load(Ordering::Relaxed),
        );
        counter(
            &mut s,
            "bsg_uplink_acked_total",
            "Alerts acknowledged by the broker.",
            uplink.acked.load(Ordering::Relaxed),
        );
        s
    }

    /// `/health`: a JSON summary and whether the gateway is healthy (uplink connected).
    pub fn health(&self, outbox: &Outbox, uplink: &UplinkStats) -> (bool, String) {
        let connected = uplink.is_connected();
        let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
        for ((_, st), n) in self.devices_by_state() {
            *by_state.entry(st).or_default() += n;
        }
        let v = serde_json::json!({
            "status": if connected { "ok" } else { "degraded" },
            "uplink_connected": connected,
            "outbox_depth": outbox.depth(),
            "oldest_undelivered_seconds": outbox.oldest_pending_age().map(|d| d.as_secs_f64()),
            "devices": by_state,
        });
        (connected, v.to_string())
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn gauge(s: &mut String, name: &str, help: &str, v: f64) {
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

fn counter(s: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
}

/// Serves `/metrics` and `/health` on `addr` until `shutdown`. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    outbox: Arc<Outbox>,
    uplink: Arc<UplinkStats>,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    info!(addr = %local, "metrics on http://{local}/metrics and /health");
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, "metrics accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let (m, o, u) = (metrics.clone(), outbox.clone(), uplink.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (m, o, u) = (m.clone(), o.clone(), u.clone());
                    async move { Ok::<_, Infallible>(route(&req, &m, &o, &u)) }
                });
                let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                // A slow or idle scraper must not hold a task forever.
                if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(30), conn).await {
                    debug!(error = %e, "metrics connection ended");
                }
            });
        }
    });
    Ok(local)
}

fn route(req: &Request<Incoming>, m: &Metrics, o: &Outbox, u: &UplinkStats) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method().as_str(), req.uri().path()) {
        ("GET", "/metrics") => (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", m.render(o, u)),
        ("GET", "/health") => {
            let (ok, body) = m.health(o, u);
            (if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, "application/json", body)
        }
        ("GET", _) => (StatusCode::NOT_FOUND, "text/plain", "not found: try /metrics or /health\n".to_string()),
        _ => (StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n".to_string()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}
