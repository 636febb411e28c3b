//! Operator metrics: `/metrics` (Prometheus, in the OpenMetrics text format) and `/health` as
//! JSON, on a loopback address by default.
//!
//! Operators keep hundreds of gateways alive with the monitoring they already run; a
//! Prometheus endpoint is what that monitoring scrapes. The exposition (names, types, label
//! escaping, the text) is written by `prometheus-client`, the Prometheus project's Rust
//! client. How the gateway feeds it:
//! - every series the engine's loop moves is made when the gateway starts (devices and zones
//!   come from the site file, alert kinds and device types from the contract), and the loop
//!   holds its handles: an update is one atomic store or add, never a lock a scrape could hold
//!   (the crate's histogram is the one exception: its `observe` takes a mutex that a scrape
//!   holds only to copy the eleven bucket counts);
//! - the device states are one atomic per device, read at scrape time by a [`Collector`] that
//!   derives `bsg_devices` and `bsg_device_up` from them (and `/health` its counts), so the two
//!   never disagree;
//! - the outbox's and the uplink's figures are read from them when scraped;
//! - the process's memory and CPU time are read from `/proc/self` when scraped (the crate has
//!   no process collector).
//!
//! The HTTP side is hyper's HTTP/1 server: two GET routes do not justify a web framework.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use protocols::status::DEVICE_STATES;
use protocols::topics::{TopicKind, parse};
use protocols::{AlertKind, AlertState, CoverageReport, DeviceHealth, DeviceType};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::events::Retained;
use crate::outbox::Outbox;
use crate::site::Site;
use crate::uplink::UplinkStats;

/// Latency buckets (seconds) for probe and poll durations.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// What `/metrics` answers with: the OpenMetrics text format, which is what the crate writes
/// (counters' `# TYPE` lines name the family without `_total`, and the text ends in `# EOF`).
/// Prometheus picks its parser by this header.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AlertLabels {
    kind: &'static str,
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ZoneLabel {
    zone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// One configured device and the state it was last published in.
#[derive(Debug)]
struct DeviceSlot {
    id: String,
    device_type: &'static str,
    /// Index into [`DEVICE_STATES`].
    state: AtomicU8,
}

/// Every configured device, fixed at start: the engine's loop stores states, scrapes and
/// `/health` read them, and nobody locks.
#[derive(Debug)]
struct Devices {
    slots: Vec<DeviceSlot>,
    by_id: HashMap<String, usize>,
}

/// The index of `state` in [`DEVICE_STATES`]. A state outside the contract's list (the engine
/// publishes none) counts as `unknown`.
fn state_index(state: &str) -> u8 {
    let find = |s: &str| DEVICE_STATES.iter().position(|x| *x == s);
    find(state).or_else(|| find("unknown")).and_then(|i| u8::try_from(i).ok()).unwrap_or(u8::MAX)
}

impl Devices {
    fn state_of(&self, slot: &DeviceSlot) -> &'static str {
        DEVICE_STATES.get(usize::from(slot.state.load(Ordering::Relaxed))).copied().unwrap_or("unknown")
    }

    /// (type, state) → devices.
    fn by_type_and_state(&self) -> BTreeMap<(&'static str, &'static str), i64> {
        let mut m = BTreeMap::new();
        for s in &self.slots {
            *m.entry((s.device_type, self.state_of(s))).or_default() += 1;
        }
        m
    }
}

impl Collector for Devices {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        if self.slots.is_empty() {
            return Ok(());
        }
        let mut family =
            encoder.encode_descriptor("bsg_devices", "Devices by type and health state.", None, MetricType::Gauge)?;
        for ((ty, st), n) in self.by_type_and_state() {
            ConstGauge::new(n).encode(family.encode_family(&[("type", ty), ("state", st)])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "bsg_device_up",
            "1 when the device's published health state is online, else 0 (offline, frozen, unknown...).",
            None,
            MetricType::Gauge,
        )?;
        for s in &self.slots {
            let up = i64::from(self.state_of(s) == "online");
            let labels = [("device", s.id.as_str()), ("type", s.device_type)];
            ConstGauge::new(up).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The outbox's and the uplink's figures, read when scraped from the atomics they keep.
struct Pipeline {
    outbox: Arc<Outbox>,
    uplink: Arc<UplinkStats>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, v: impl EncodeGaugeValue) -> std::fmt::Result {
    ConstGauge::new(v).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    ConstCounter::new(v).encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

impl Collector for Pipeline {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let (o, u) = (&self.outbox, &self.uplink);
        gauge(&mut e, "bsg_outbox_depth", "Events waiting for delivery.", o.depth())?;
        gauge(&mut e, "bsg_outbox_bytes", "Bytes of events waiting for delivery.", o.bytes())?;
        let age = o.oldest_pending_age().map(|d| d.as_secs_f64()).unwrap_or(0.0);
        gauge(&mut e, "bsg_outbox_oldest_age_seconds", "Age of the oldest undelivered event (0 when empty).", age)?;
        gauge(&mut e, "bsg_outbox_last_seq", "The last seq assigned.", o.last_seq().0)?;
        gauge(&mut e, "bsg_uplink_connected", "1 when connected to the broker.", i64::from(u.is_connected()))?;
        let c = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        counter(&mut e, "bsg_uplink_reconnects", "Reconnections after the first.", c(&u.reconnects))?;
        counter(
            &mut e,
            "bsg_uplink_connection_errors",
            "Failed connection attempts and lost connections.",
            c(&u.connection_errors),
        )?;
        counter(
            &mut e,
            "bsg_uplink_refused",
            "Publishes the broker refused (MQTT 5 PUBACK reason code >= 0x80); the events were kept.",
            c(&u.refused),
        )?;
        counter(&mut e, "bsg_uplink_published", "Alerts handed to the network.", c(&u.published))?;
        counter(&mut e, "bsg_uplink_acked", "Alerts acknowledged by the broker.", c(&u.acked))?;
        Ok(())
    }
}

/// The process's resident memory and CPU time.
///
/// Still hand-written: prometheus-client has no process collector, and these are two reads
/// of `/proc/self` per scrape. Elsewhere than Linux nothing is reported.
#[derive(Debug)]
struct Process;

/// The unit of CPU times in `/proc/<pid>/stat`: USER_HZ, 100 on every architecture the gateway
/// ships for (amd64, arm64); the Prometheus project's procfs library assumes the same.
const USER_HZ: f64 = 100.0;

/// User plus system CPU time, in seconds, from `/proc/self/stat`.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: count after it.
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace();
    // Fields 14 (utime) and 15 (stime); `after` starts at field 3.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// Resident memory, in bytes, from `/proc/self/status` (`VmRSS`, in kB: no page size needed).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kb: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kb * 1024)
}

impl Collector for Process {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        if let Some(s) = cpu_seconds() {
            ConstCounter::new(s).encode(e.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                MetricType::Counter,
            )?)?;
        }
        if let Some(b) = resident_bytes() {
            gauge(&mut e, "process_resident_memory_bytes", "Resident memory size in bytes.", b)?;
        }
        Ok(())
    }
}

/// One zone's coverage gauges.
#[derive(Debug)]
struct ZoneGauges {
    covered: Gauge,
    live_cameras: Gauge,
}

/// Everything `/metrics` and `/health` report. Shared (`Arc`) between the engine's loop, which
/// only touches handles made here at start, and the HTTP server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The topic prefix, to tell a device's health from the coverage report.
    prefix: String,
    devices: Arc<Devices>,
    zones: HashMap<String, ZoneGauges>,
    /// By observation source (`camera`, `panel`); the family for a source not made at start.
    latency: Vec<(&'static str, Histogram)>,
    latency_family: Family<TypeLabel, Histogram, fn() -> Histogram>,
    observations: Counter,
    /// `[kind][state]`, in the order of [`AlertKind::ALL`] and raised, cleared.
    alerts: Vec<[Counter; 2]>,
    dropped: Counter,
    store_errors: Counter,
    pipeline: Arc<Pipeline>,
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

impl Metrics {
    /// The series of `site` (its devices and zones), the outbox's and the uplink's figures.
    pub fn new(site: &Site, prefix: &str, outbox: Arc<Outbox>, uplink: Arc<UplinkStats>) -> Arc<Metrics> {
        let mut registry = Registry::default();

        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("bsg_build_info", "The gateway's version; the value is always 1", build);

        let cameras = site.cameras.iter().map(|c| (c.id.to_string(), DeviceType::Camera));
        let panels = site.panels.iter().map(|p| (p.id.to_string(), p.kind.device_type()));
        let slots: Vec<DeviceSlot> = cameras
            .chain(panels)
            .map(|(id, ty)| DeviceSlot { id, device_type: ty.as_str(), state: AtomicU8::new(state_index("unknown")) })
            .collect();
        let by_id = slots.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
        let devices = Arc::new(Devices { slots, by_id });
        registry.register_collector(Box::new(devices.clone()));

        let latency_family: Family<TypeLabel, Histogram, fn() -> Histogram> = Family::new_with_constructor(histogram);
        let mut latency = Vec::new();
        for (source, present) in [("camera", !site.cameras.is_empty()), ("panel", !site.panels.is_empty())] {
            if present {
                latency.push((source, latency_family.get_or_create_owned(&TypeLabel { r#type: source })));
            }
        }
        registry.register(
            "bsg_poll_duration_seconds",
            "Duration of camera probes and panel poll cycles",
            latency_family.clone(),
        );

        let observations = Counter::default();
        registry.register("bsg_observations", "Observations received from pollers", observations.clone());

        // Every (kind, state) from the start at 0: the first alert of a kind is then an
        // increase that rate() and increase() see.
        let alert_family = Family::<AlertLabels, Counter>::default();
        let alerts = AlertKind::ALL
            .iter()
            .map(|k| {
                ["raised", "cleared"]
                    .map(|state| alert_family.get_or_create_owned(&AlertLabels { kind: k.as_str(), state }))
            })
            .collect();
        registry.register("bsg_alerts", "Alerts stored in the outbox, by kind and state", alert_family);

        let dropped = Counter::default();
        registry.register("bsg_events_dropped", "Events dropped by the outbox bound", dropped.clone());
        let store_errors = Counter::default();
        registry.register("bsg_store_errors", "Alerts that could not be stored", store_errors.clone());

        let pipeline = Arc::new(Pipeline { outbox, uplink });
        registry.register_collector(Box::new(pipeline.clone()));

        // Not covered until a coverage report says so, as a camera is not live until proven.
        let covered = Family::<ZoneLabel, Gauge>::default();
        let live = Family::<ZoneLabel, Gauge>::default();
        let zones = site
            .zones
            .iter()
            .map(|z| {
                let label = ZoneLabel { zone: z.id.to_string() };
                let g = ZoneGauges {
                    covered: covered.get_or_create_owned(&label),
                    live_cameras: live.get_or_create_owned(&label),
                };
                (z.id.to_string(), g)
            })
            .collect();
        registry.register(
            "bsg_zone_covered",
            "1 when the zone has at least its min_live_cameras live cameras, as the last coverage report said",
            covered,
        );
        registry.register(
            "bsg_zone_live_cameras",
            "Cameras with live video watching the zone, as the last coverage report said",
            live,
        );

        registry.register_collector(Box::new(Process));

        Arc::new(Metrics {
            registry,
            prefix: prefix.to_string(),
            devices,
            zones,
            latency,
            latency_family,
            observations,
            alerts,
            dropped,
            store_errors,
            pipeline,
        })
    }

    /// One observation from a poller of `source` (`camera` or `panel`) that took `d`.
    pub fn observe_latency(&self, source: &'static str, d: Duration) {
        self.observations.inc();
        match self.latency.iter().find(|(s, _)| *s == source) {
            Some((_, h)) => h.observe(d.as_secs_f64()),
            // Made at start for every kind of device the site has: not reached.
            None => self.latency_family.get_or_create(&TypeLabel { r#type: source }).observe(d.as_secs_f64()),
        }
    }

    pub fn count_alert(&self, kind: AlertKind, state: AlertState) {
        let k = AlertKind::ALL.iter().position(|x| *x == kind);
        let s = usize::from(state == AlertState::Cleared);
        if let Some(c) = k.and_then(|k| self.alerts.get(k)) {
            c[s].inc();
        }
    }

    pub fn count_dropped(&self, n: u64) {
        self.dropped.inc_by(n);
    }

    pub fn count_store_error(&self) {
        self.store_errors.inc();
    }

    /// A retained message on its way to the uplink: a device's health moves its state, the
    /// coverage report its zones' gauges. Anything else is not for metrics.
    pub fn retained(&self, r: &Retained) {
        match parse(&self.prefix, &r.topic) {
            Some(TopicKind::Device { device, .. }) => {
                let (Some(slot), Ok(health)) = (
                    self.devices.by_id.get(&device).and_then(|i| self.devices.slots.get(*i)),
                    serde_json::from_slice::<DeviceHealth>(&r.payload),
                ) else {
                    return;
                };
                slot.state.store(state_index(&health.state), Ordering::Relaxed);
            }
            Some(TopicKind::Coverage { .. }) => {
                let Ok(report) = serde_json::from_slice::<CoverageReport>(&r.payload) else { return };
                for z in &report.zones {
                    if let Some(g) = self.zones.get(z.id.as_str()) {
                        g.covered.set(i64::from(z.covered));
                        g.live_cameras.set(i64::from(z.cameras_live_video));
                    }
                }
            }
            _ => {}
        }
    }

    /// The exposition.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut s = String::with_capacity(8192);
        prometheus_client::encoding::text::encode(&mut s, &self.registry)?;
        Ok(s)
    }

    /// `/health`: a JSON summary and whether the gateway is healthy (uplink connected).
    pub fn health(&self) -> (bool, String) {
        let (outbox, uplink) = (&self.pipeline.outbox, &self.pipeline.uplink);
        let connected = uplink.is_connected();
        let mut by_state: BTreeMap<&str, u64> = BTreeMap::new();
        for s in &self.devices.slots {
            *by_state.entry(self.devices.state_of(s)).or_default() += 1;
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

/// Serves `/metrics` and `/health` on `addr` until `shutdown`. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
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
            let m = metrics.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let m = m.clone();
                    async move { Ok::<_, Infallible>(route(&req, &m)) }
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

fn route(req: &Request<Incoming>, m: &Metrics) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match (req.method().as_str(), req.uri().path()) {
        ("GET", "/metrics") => match m.render() {
            Ok(body) => (StatusCode::OK, CONTENT_TYPE, body),
            Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "cannot encode the metrics\n".to_string()),
        },
        ("GET", "/health") => {
            let (ok, body) = m.health();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn devices(list: &[(&str, DeviceType)]) -> Arc<Devices> {
        let slots: Vec<DeviceSlot> = list
            .iter()
            .map(|(id, ty)| DeviceSlot {
                id: id.to_string(),
                device_type: ty.as_str(),
                state: AtomicU8::new(state_index("unknown")),
            })
            .collect();
        let by_id = slots.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
        Arc::new(Devices { slots, by_id })
    }

    fn encode(registry: &Registry) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, registry).unwrap();
        s
    }

    #[test]
    fn every_contract_state_has_an_index_and_others_count_as_unknown() {
        for s in DEVICE_STATES {
            assert_eq!(DEVICE_STATES[usize::from(state_index(s))], s);
        }
        assert_eq!(DEVICE_STATES[usize::from(state_index("no-such-state"))], "unknown");
    }

    #[test]
    fn device_up_and_the_counts_follow_the_published_state() {
        let d = devices(&[("cam-1", DeviceType::Camera), ("cam-2", DeviceType::Camera), ("p", DeviceType::AlarmPanel)]);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(d.clone()));
        let text = encode(&registry);
        assert!(text.contains("bsg_devices{type=\"camera\",state=\"unknown\"} 2\n"), "{text}");
        assert!(text.contains("bsg_device_up{device=\"cam-1\",type=\"camera\"} 0\n"), "{text}");

        d.slots[0].state.store(state_index("online"), Ordering::Relaxed);
        d.slots[1].state.store(state_index("frozen"), Ordering::Relaxed);
        d.slots[2].state.store(state_index("online"), Ordering::Relaxed);
        let text = encode(&registry);
        assert!(text.contains("bsg_device_up{device=\"cam-1\",type=\"camera\"} 1\n"), "{text}");
        assert!(text.contains("bsg_device_up{device=\"cam-2\",type=\"camera\"} 0\n"), "{text}");
        assert!(text.contains("bsg_device_up{device=\"p\",type=\"alarm-panel\"} 1\n"), "{text}");
        assert!(text.contains("bsg_devices{type=\"camera\",state=\"frozen\"} 1\n"), "{text}");
        assert!(!text.contains("state=\"unknown\""), "a count of 0 is not shown: {text}");
    }

    /// The site file's ids cannot hold these, but a label value is escaped by the crate
    /// (since 0.25.2) all the same.
    #[test]
    fn label_values_are_escaped() {
        let f = Family::<ZoneLabel, Gauge>::default();
        f.get_or_create(&ZoneLabel { zone: "a\"b\\c\nd".into() }).set(1);
        let mut registry = Registry::default();
        registry.register("z", "z", f);
        let text = encode(&registry);
        assert!(text.contains("z{zone=\"a\\\"b\\\\c\\nd\"} 1\n"), "{text}");
    }

    #[test]
    fn process_figures_are_read_on_linux() {
        assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
        assert!(resident_bytes().is_some_and(|b| b > 0));
    }
}
