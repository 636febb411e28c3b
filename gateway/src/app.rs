//! Wiring: builds the pipeline from a validated [`SiteConfig`] and runs it until shutdown.
//!
//! pollers ──Observation──▶ health engine ──Alert──▶ outbox (sled) ──▶ uplink (MQTT)
//!                            ▲         └──Retained (device state, coverage)──▶ uplink
//!                            └──GatewayEvent (connected, link down, refused, dropped)── uplink, outbox
//!
//! Hand-over is through channels and the outbox's notify: nothing polls the outbox, and an
//! alarm's path from register flip to PUBLISH is poller → engine → append+flush → publish.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use protocols::Topics;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use crate::config::SiteConfig;
use crate::events::{EventSink, GatewayEvent};
use crate::health::{Engine, Output};
use crate::metrics::Metrics;
use crate::outbox::{Outbox, OutboxBounds};
use crate::pollers::Observation;
use crate::pollers::camera::spawn_camera_poller;
use crate::pollers::panel::{load_profile, spawn_panel_poller};
use crate::uplink::{self, Retained, TlsFiles, UplinkSettings};

/// How often the engine's timers run (held-open doors, heartbeats, flap settle).
const TICK: Duration = Duration::from_millis(100);

/// Resolves what the uplink needs from the config: secrets read, paths resolved.
pub fn uplink_settings(cfg: &SiteConfig) -> Result<UplinkSettings> {
    let broker = mqtt_setup::BrokerUrl::parse(&cfg.uplink.broker)
        .map_err(|e| anyhow::anyhow!("uplink.broker: {}", e.text().get(i18n::Lang::current())))?;
    let password = cfg.uplink.password.resolve(&cfg.base_dir).map_err(|e| anyhow::anyhow!("uplink password: {e}"))?;
    let tls = cfg.uplink.tls.as_ref().map(|t| TlsFiles {
        ca_file: cfg.base_dir.join(&t.ca_file),
        client_cert_file: t.client_cert_file.as_ref().map(|p| cfg.base_dir.join(p)),
        client_key_file: t.client_key_file.as_ref().map(|p| cfg.base_dir.join(p)),
    });
    let topics = Topics::new(&cfg.uplink.topic_prefix, cfg.branch_id())
        .map_err(|e| anyhow::anyhow!("uplink.topic_prefix: {e}"))?;
    let mut s = UplinkSettings::new(broker.host, broker.port, cfg.client_id(), topics);
    s.username = cfg.uplink.username.clone();
    s.password = password;
    s.keep_alive = cfg.uplink.keep_alive;
    s.tls = tls;
    s.version = cfg.uplink.mqtt_version.into();
    Ok(s)
}

/// Runs the gateway until `shutdown` is cancelled, then shuts down cleanly: pollers stop,
/// pending alerts are stored, the uplink drains the outbox (bounded) and publishes `offline`.
pub async fn run(cfg: SiteConfig, shutdown: CancellationToken) -> Result<()> {
    let span = info_span!("gateway", branch = %cfg.branch.id);
    run_inner(cfg, shutdown).instrument(span).await
}

async fn run_inner(cfg: SiteConfig, shutdown: CancellationToken) -> Result<()> {
    let mut settings = uplink_settings(&cfg)?;
    let (sink, mut gateway_events) = EventSink::channel();
    settings.events = sink;
    let topics = settings.topics.clone();
    let storage = cfg.storage_path();
    std::fs::create_dir_all(&storage).with_context(|| format!("create storage directory {}", storage.display()))?;
    let outbox =
        Outbox::open(&storage, OutboxBounds { max_events: cfg.storage.max_events, max_bytes: cfg.storage.max_bytes })
            .with_context(|| format!("open the outbox in {}", storage.display()))?;
    info!(
        storage = %storage.display(),
        waiting = outbox.depth(),
        last_seq = %outbox.last_seq(),
        cameras = cfg.cameras.len(),
        panels = cfg.panels.len(),
        "{}", i18n::Lang::current().t("gateway starting", "网关正在启动")
    );

    let stats = settings.stats.clone();
    let (retained_tx, retained_rx) = mpsc::channel::<Retained>(4096);
    let uplink_stop = CancellationToken::new();
    let uplink_task = tokio::spawn(uplink::run(settings, outbox.clone(), retained_rx, uplink_stop.clone()));

    let pollers_stop = shutdown.child_token();
    let (obs_tx, mut obs_rx) = mpsc::channel::<Observation>(4096);
    let mut tasks = Vec::new();
    let mut roles: BTreeMap<String, Vec<(String, protocols::modbus::Role)>> = BTreeMap::new();
    for p in &cfg.panels {
        let profile = load_profile(&p.profile, &cfg.base_dir)
            .map_err(|e| anyhow::anyhow!("panel {}: profile {:?}: {e}", p.id, p.profile))?;
        roles.insert(p.id.clone(), profile.points().iter().map(|pt| (pt.id.clone(), pt.role)).collect());
        tasks.push(spawn_panel_poller(p.clone(), profile, obs_tx.clone(), pollers_stop.clone()));
    }
    for c in &cfg.cameras {
        tasks.push(spawn_camera_poller(c.clone(), cfg.base_dir.clone(), obs_tx.clone(), pollers_stop.clone()));
    }
    drop(obs_tx);

    let site = crate::site::Site::new(&cfg, &roles).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("the site file cannot be used: {}", list.join("; "))
    })?;
    let metrics = Metrics::new(&site, topics.prefix(), outbox.clone(), stats);
    if cfg.metrics.enabled {
        // Monitoring must never stand between an alarm and head office: a metrics port that
        // cannot be bound is logged, and the gateway runs on without it.
        match cfg.metrics.listen.parse() {
            Ok(addr) => {
                if let Err(e) = crate::metrics::serve(addr, metrics.clone(), shutdown.child_token()).await {
                    error!(addr = %addr, error = %e, "{}", i18n::Lang::current().t("cannot serve metrics; running without them (set [metrics] listen or enabled = false)", "无法提供监控指标，继续在无指标状态下运行（请设置 [metrics] listen 或 enabled = false）"));
                }
            }
            Err(e) => {
                error!(listen = %cfg.metrics.listen, error = %e, "{}", i18n::Lang::current().t("bad [metrics] listen; running without metrics", "[metrics] listen 有误，继续在无指标状态下运行"))
            }
        }
    }
    let mut engine = Engine::new(&site, topics, Instant::now());
    // What the previous run left raised: held, not raised again; cleared when observed over.
    match outbox.open_conditions() {
        Ok(open) => {
            if !open.is_empty() {
                info!(
                    open = open.len(),
                    "{}",
                    i18n::Lang::current()
                        .t("conditions raised before the restart taken over", "已接管重启前未恢复的告警")
                );
            }
            let out = engine.restore(open);
            deliver(&outbox, &retained_tx, &metrics, out).await;
        }
        Err(e) => {
            error!(error = %e, "{}", i18n::Lang::current().t("cannot read the open conditions; raise/clear pairs may break", "无法读取未恢复的告警，告警与恢复可能无法一一对应"))
        }
    }
    let mut service = crate::service::Service::from_env();
    service.ready();
    // Follow-ups (alarm snapshots) come back from their own tasks through this channel.
    let (follow_tx, mut follow_rx) = mpsc::channel::<protocols::Alert>(64);
    let snapshot_dir = storage.join("snapshots");
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Open while a poller may still send; a site without devices has none, and the gateway still
    // runs (its status, its own faults) until it is told to stop.
    let mut observing = true;
    loop {
        // The watchdog is petted from here: a hung engine stops petting it.
        service.alive(Instant::now());
        let mut out = tokio::select! {
            _ = shutdown.cancelled() => break,
            obs = obs_rx.recv(), if observing => match obs {
                Some(obs) => {
                    metrics.observe_latency(obs.source(), obs.duration());
                    engine.observe(obs, Instant::now())
                }
                None => {
                    observing = false;
                    Output::default()
                }
            },
            _ = tick.tick() => engine.tick(Instant::now(), protocols::time::now()),
            Some(alert) = follow_rx.recv() => Output { alerts: vec![alert], ..Output::default() },
            Some(ev) = gateway_events.recv() => engine.gateway_event(ev, Instant::now()),
        };
        for req in std::mem::take(&mut out.snapshots) {
            let (tx, cams, base, dir) =
                (follow_tx.clone(), cfg.cameras.clone(), cfg.base_dir.clone(), snapshot_dir.clone());
            let (keep, lang) = (cfg.storage.snapshots_keep, engine.lang());
            tokio::spawn(async move {
                let alert = crate::snapshots::capture(req, &cams, &base, &dir, keep, lang).await;
                let _ = tx.send(alert).await;
            });
        }
        if !out.is_empty() {
            let dropped = deliver(&outbox, &retained_tx, &metrics, out).await;
            if dropped > 0 {
                let out = engine.gateway_event(GatewayEvent::EventsDropped { count: dropped }, Instant::now());
                deliver(&outbox, &retained_tx, &metrics, out).await;
            }
        }
    }

    service.stopping();
    info!("{}", i18n::Lang::current().t("shutting down: stopping pollers", "正在停止：停止轮询"));
    pollers_stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    // Observations already queued are still facts worth keeping.
    while let Ok(obs) = obs_rx.try_recv() {
        let out = engine.observe(obs, Instant::now());
        deliver(&outbox, &retained_tx, &metrics, out).await;
    }
    drop(retained_tx);
    uplink_stop.cancel();
    match uplink_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            warn!(error = %e, "{}", i18n::Lang::current().t("uplink ended with an error", "上行链路因错误结束"))
        }
        Err(e) => error!(error = %e, "{}", i18n::Lang::current().t("uplink task failed", "上行链路任务失败")),
    }
    info!(waiting = outbox.depth(), "{}", i18n::Lang::current().t("gateway stopped", "网关已停止"));
    Ok(())
}

/// Stores the engine's alerts durably (one group commit for the batch) and hands retained
/// state to the uplink; the metrics follow the device health and coverage it carries.
/// Returns how many events the outbox's bound dropped.
async fn deliver(outbox: &Arc<Outbox>, retained_tx: &mpsc::Sender<Retained>, metrics: &Metrics, out: Output) -> u64 {
    let mut dropped = 0;
    let appends = out.alerts.into_iter().map(|a| outbox.append(a));
    for r in futures::future::join_all(appends).await {
        match r {
            Ok(appended) => {
                let a = &appended.alert;
                dropped += appended.evicted;
                metrics.count_dropped(appended.evicted);
                metrics.count_alert(a.kind(), a.state);
                info!(seq = %a.seq, kind = a.kind().as_str(), state = ?a.state, device = %a.device.id, "{}", a.message);
            }
            Err(e) => {
                metrics.count_store_error();
                error!(error = %e, "{}", i18n::Lang::current().t("could not store an alert; it is lost", "无法保存告警，该告警已丢失"));
            }
        }
    }
    for r in out.retained {
        metrics.retained(&r);
        if retained_tx.send(r).await.is_err() {
            break;
        }
    }
    dropped
}

/// The gateway's own faults for an uplink run without the health engine (the outbox burst
/// tool, uplink tests): turns `events` into alerts with [`GatewayFaults`] (the engine's
/// component for them, so the alerts are the same) and appends them, until the channel closes.
/// Report evictions by emitting [`GatewayEvent::EventsDropped`] into the same channel.
pub async fn run_gateway_faults(
    mut faults: crate::health::GatewayFaults,
    mut events: tokio::sync::mpsc::UnboundedReceiver<GatewayEvent>,
    outbox: Arc<Outbox>,
) {
    let bounds = outbox.bounds();
    faults.set_bound(bounds.max_events, bounds.max_bytes);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let alerts = tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => faults.on_event(ev, Instant::now()),
                None => return,
            },
            _ = tick.tick() => faults.tick(Instant::now()).into_iter().collect(),
        };
        let mut queue = std::collections::VecDeque::from(alerts);
        while let Some(a) = queue.pop_front() {
            match outbox.append(a).await {
                Ok(appended) if appended.evicted > 0 => {
                    queue.extend(
                        faults.on_event(GatewayEvent::EventsDropped { count: appended.evicted }, Instant::now()),
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    error!(error = %e, "{}", i18n::Lang::current().t("could not store a gateway fault alert", "无法保存网关故障告警"))
                }
            }
        }
    }
}
