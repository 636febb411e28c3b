//! Cameras: the probe verdict, debounce and flapping, the published state and the view
//! coverage and linkage take of each camera.

use super::*;

#[derive(Debug)]
pub(super) struct CameraState {
    pub(super) device: DeviceRef,
    pub(super) maintenance: bool,
    pub(super) debounce: Debounce,
    /// Observed at least once.
    pub(super) known: bool,
    /// Had at least one fully good probe: until then the camera is `unknown` and never counts
    /// as live video, whatever the debounce says.
    pub(super) proven: bool,
    /// Its `camera-offline` was left raised by the previous run: the first probe decides.
    pub(super) restored: bool,
    pub(super) last: Option<CameraObservation>,
    /// The status the raised alert carries (`unreachable`, `frozen`…).
    pub(super) raised_status: Option<String>,
    /// Completed raise/clear cycles, for flap detection.
    pub(super) cycles: VecDeque<Instant>,
    pub(super) flapping: bool,
    pub(super) settle: Duration,
    /// When it last settled after flapping: flapping again within the flap window doubles
    /// the settle time (up to an hour); later, it starts over.
    pub(super) settled_at: Option<Instant>,
    pub(super) good_since: Option<Instant>,
    /// Active camera-pushed faults (signal-loss, tamper, storage-failure).
    pub(super) active_events: BTreeMap<String, bool>,
    pub(super) published_state: Option<String>,
}

/// The statuses of a picture that shows nothing usable.
pub const PICTURE_FAULTS: [&str; 3] = ["obstructed", "dark", "defocused"];

/// The fault code of a main stream below the camera's `min_resolution`.
pub const LOW_RESOLUTION: &str = "low-resolution";

/// Whether one probe counts as good, and if not, the status it shows.
pub(super) fn camera_verdict(obs: &CameraObservation) -> (bool, String) {
    let status = match obs.reach {
        Reach::Unreachable => "unreachable",
        Reach::TcpOnly => "tcp-only",
        Reach::AuthFailed => "auth-failed",
        Reach::Online => match obs.video {
            Video::StreamDown => "stream-down",
            Video::Frozen => "frozen",
            Video::SignalLost => "signal-lost",
            Video::Obstructed => "obstructed",
            Video::Dark => "dark",
            Video::Defocused => "defocused",
            Video::Live | Video::Unknown => return (true, "online".into()),
        },
    };
    (false, status.to_string())
}

/// The device health `state` of a lost camera's status: not reachable at all (`unreachable`,
/// `tcp-only`) is `offline`, the precise code going in `status`; the rest name themselves.
pub(super) fn camera_state(status: &str) -> &str {
    match status {
        "unreachable" | "tcp-only" => "offline",
        other => other,
    }
}

pub(super) fn camera_view(c: &CameraState) -> CameraView {
    if !c.known {
        return CameraView::default();
    }
    if !c.debounce.raised {
        // Not lost, but not proven either: an unverified camera watches nothing.
        return CameraView { known: true, online: c.proven, live_video: c.proven };
    }
    // Lost video, but the camera answers.
    let online = c
        .raised_status
        .as_deref()
        .is_some_and(|s| matches!(s, "stream-down" | "frozen" | "signal-lost") || PICTURE_FAULTS.contains(&s));
    CameraView { known: true, online, live_video: false }
}

impl Engine {
    pub(super) fn observe_camera(&mut self, obs: CameraObservation, now: Instant, out: &mut Output) {
        let (offline_after, online_after) = (self.site.offline_after, self.site.online_after);
        let id = obs.device.clone();
        let armed = self.armed;
        let Some(cam) = self.cameras.get_mut(&id) else { return };
        cam.known = true;

        // Camera-pushed events are edge-triggered faults of their own.
        for ev in &obs.events {
            let was = cam.active_events.get(&ev.fault).copied().unwrap_or(false);
            if was != ev.active {
                cam.active_events.insert(ev.fault.clone(), ev.active);
                if !cam.maintenance {
                    let state = if ev.active { AlertState::Raised } else { AlertState::Cleared };
                    let sev = if ev.active { Severity::Major } else { Severity::Info };
                    let reason = format!("camera reported {} ({})", ev.fault, ev.topic);
                    let dev = cam.device.clone();
                    let a = Self::make_fault_alert(
                        &self.branch,
                        self.lang,
                        dev,
                        state,
                        sev,
                        obs.at,
                        &ev.fault,
                        reason,
                        None,
                    );
                    out.alerts.push(a);
                }
            }
        }
        // The HD check: an edge-triggered fault of its own (a work order, not a lost camera: the
        // camera still watches its zone).
        if let Some(stream) = &obs.stream {
            let Some(cam) = self.cameras.get_mut(&id) else { return };
            let low = !stream.meets_minimum();
            let was = cam.active_events.get(LOW_RESOLUTION).copied().unwrap_or(false);
            if low != was {
                cam.active_events.insert(LOW_RESOLUTION.to_string(), low);
                if !cam.maintenance {
                    let (state, sev) = if low {
                        (AlertState::Raised, Severity::Warning)
                    } else {
                        (AlertState::Cleared, Severity::Info)
                    };
                    let (actual, minimum) = (stream.resolution.to_string(), stream.minimum.to_string());
                    let reason = format!("main stream {actual} {}, the minimum is {minimum}", stream.encoding);
                    let name = cam.device.name.clone();
                    let message = if low {
                        Msg::LowResolution { name: &name, actual: &actual, minimum: &minimum }
                    } else {
                        Msg::ResolutionMet { name: &name, actual: &actual, minimum: &minimum }
                    };
                    let a = Self::make_fault_alert(
                        &self.branch,
                        self.lang,
                        cam.device.clone(),
                        state,
                        sev,
                        obs.at,
                        LOW_RESOLUTION,
                        reason,
                        Some(message),
                    );
                    out.alerts.push(a);
                }
            }
        }
        let Some(cam) = self.cameras.get_mut(&id) else { return };

        let (ok, status) = camera_verdict(&obs);
        cam.proven |= ok;
        if std::mem::take(&mut cam.restored) && ok {
            // Raised before the restart and fine now: cleared at once, saying why.
            cam.last = Some(obs.clone());
            cam.good_since = Some(now);
            cam.debounce = Debounce { oks: 1, first_ok_at: Some(obs.at), raised: true, ..Debounce::default() };
            let before = out.alerts.len();
            self.clear_camera(&id, now, obs.at, out);
            self.note(out, before, Msg::ObservedAfterRestart);
            return;
        }
        let edge = cam.debounce.observe(ok, obs.at, offline_after, online_after);
        cam.good_since = if ok { cam.good_since.or(Some(now)) } else { None };
        cam.last = Some(obs.clone());
        match edge {
            Edge::Raise => {
                cam.raised_status = Some(status.clone());
                let flapping = {
                    while cam.cycles.front().is_some_and(|t| now.duration_since(*t) > FLAP_WINDOW) {
                        cam.cycles.pop_front();
                    }
                    cam.cycles.len() >= FLAP_CYCLES
                };
                if flapping && !cam.flapping {
                    cam.flapping = true;
                    cam.settle = match cam.settled_at {
                        Some(t) if now.duration_since(t) <= FLAP_WINDOW => (cam.settle * 2).min(FLAP_SETTLE_MAX),
                        _ => FLAP_SETTLE_START,
                    };
                }
                if !cam.maintenance {
                    let views = self.camera_views();
                    let uncovered = self.coverage.zones_uncovered_without(&id, &views);
                    let Some(cam) = self.cameras.get(&id) else { return };
                    let status = if cam.flapping { "flapping".to_string() } else { status };
                    let severity = if armed || !uncovered.is_empty() {
                        Severity::Critical
                    } else if status == "auth-failed" {
                        Severity::Warning
                    } else {
                        Severity::Major
                    };
                    let lang = self.lang;
                    let name = cam.device.name.as_str();
                    let mut message = match status.as_str() {
                        "flapping" => Msg::CameraFlapping {
                            name,
                            losses: cam.cycles.len() + 1,
                            settle_secs: cam.settle.as_secs(),
                        }
                        .render(lang),
                        s => Msg::CameraLost { name, status: s }.render(lang),
                    };
                    if !uncovered.is_empty() {
                        let names: Vec<String> = uncovered.iter().map(|z| self.zone_name(z)).collect();
                        message.push_str(&Msg::ZonesUnwatched { zones: &names }.render(lang));
                    }
                    if armed {
                        message.push_str(&Msg::Armed.render(lang));
                    }
                    let details = CameraOfflineDetails {
                        status: status.clone(),
                        reason: obs.reason.clone().unwrap_or_else(|| status.clone()),
                        consecutive_failures: cam.debounce.fails,
                        armed,
                        uncovered_zones: uncovered,
                        clock_skew_ms: obs.clock_skew_ms,
                    };
                    let occurred = cam.debounce.first_fail_at.unwrap_or(obs.at);
                    out.alerts.push(Alert::new(
                        self.branch.clone(),
                        cam.device.clone(),
                        AlertState::Raised,
                        severity,
                        occurred,
                        message,
                        AlertBody::CameraOffline(details),
                    ));
                }
            }
            Edge::Clear => {
                let flapping = cam.flapping;
                if flapping {
                    // Held raised until settled (see `tick`).
                    cam.debounce.raised = true;
                } else {
                    let at = cam.debounce.first_ok_at.unwrap_or(obs.at);
                    self.clear_camera(&id, now, at, out);
                }
            }
            Edge::None => {}
        }
        self.publish_camera_state(&id, out);
    }

    pub(super) fn clear_camera(&mut self, id: &DeviceId, now: Instant, at: Timestamp, out: &mut Output) {
        let armed = self.armed();
        let Some(cam) = self.cameras.get_mut(id) else { return };
        cam.debounce.raised = false;
        cam.cycles.push_back(now);
        let was_flapping = cam.flapping;
        cam.flapping = false;
        if was_flapping {
            cam.settled_at = Some(now);
        }
        let status = cam.raised_status.take().unwrap_or_else(|| "offline".into());
        if !cam.maintenance {
            let last = cam.last.as_ref();
            let details = CameraOfflineDetails {
                status: "online".into(),
                reason: if was_flapping {
                    format!("settled after flapping ({status})")
                } else {
                    format!("recovered from {status}")
                },
                consecutive_failures: 0,
                armed,
                uncovered_zones: vec![],
                clock_skew_ms: last.and_then(|l| l.clock_skew_ms),
            };
            out.alerts.push(Alert::new(
                self.branch.clone(),
                cam.device.clone(),
                AlertState::Cleared,
                Severity::Info,
                at,
                Msg::CameraBack { name: &cam.device.name }.render(self.lang),
                AlertBody::CameraOffline(details),
            ));
        }
        self.publish_camera_state(id, out);
    }

    pub(super) fn camera_views(&self) -> BTreeMap<DeviceId, CameraView> {
        self.cameras.iter().map(|(id, c)| (id.clone(), camera_view(c))).collect()
    }

    pub(super) fn camera_lives(&self) -> BTreeMap<DeviceId, CameraLive> {
        self.cameras
            .iter()
            .map(|(id, c)| {
                let v = camera_view(c);
                let last = c.last.as_ref();
                (
                    id.clone(),
                    CameraLive {
                        name: c.device.name.clone(),
                        online: v.online,
                        stream_alive: v.online && last.is_some_and(|l| l.video != Video::StreamDown),
                        frozen: last.is_some_and(|l| l.video == Video::Frozen),
                        picture: c
                            .raised_status
                            .as_deref()
                            .filter(|s| c.debounce.raised && PICTURE_FAULTS.contains(s))
                            .map(str::to_string),
                        stream_uri: last.and_then(|l| l.stream_uri.clone()),
                        snapshot_uri: last.and_then(|l| l.snapshot_uri.clone()),
                    },
                )
            })
            .collect()
    }

    pub(super) fn publish_camera_state(&mut self, id: &DeviceId, out: &mut Output) {
        let Some(cam) = self.cameras.get_mut(id) else { return };
        let (state, status) = if cam.maintenance {
            ("maintenance".to_string(), None)
        } else if !cam.known || (!cam.proven && !cam.debounce.raised) {
            ("unknown".to_string(), None)
        } else if cam.debounce.raised {
            let status = cam.raised_status.clone().unwrap_or_else(|| "unreachable".into());
            let state = if cam.flapping { "flapping".to_string() } else { camera_state(&status).to_string() };
            (state, Some(status))
        } else {
            ("online".to_string(), None)
        };
        let stream = cam.last.as_ref().and_then(|l| l.stream.as_ref());
        let key = format!(
            "{state}/{}/{}",
            status.as_deref().unwrap_or(""),
            stream.map(|s| format!("{} {}", s.resolution, s.encoding)).unwrap_or_default()
        );
        if cam.published_state.as_deref() == Some(key.as_str()) {
            return;
        }
        cam.published_state = Some(key);
        self.coverage_dirty = true;
        let last = cam.last.as_ref();
        let at = last.map(|l| l.at).unwrap_or_else(protocols::time::now);
        let health = DeviceHealth {
            schema: DEVICE_HEALTH_SCHEMA.into(),
            branch: self.branch.clone(),
            device: cam.device.clone(),
            state,
            status,
            since: at,
            updated_at: at,
            reason: last.and_then(|l| l.reason.clone()),
            clock_skew_ms: last.and_then(|l| l.clock_skew_ms),
            resolution: stream.map(|s| s.resolution.to_string()),
            encoding: stream.map(|s| s.encoding.clone()),
        };
        out.retained.push(retained(self.topics.device(id), &health));
    }
}

impl Engine {
    /// Flapping cameras that stayed good for their settle time: cleared.
    pub(super) fn tick_flapping(&mut self, now: Instant, wall: Timestamp, out: &mut Output) {
        let cam_ids: Vec<DeviceId> = self.cameras.keys().cloned().collect();
        for id in cam_ids {
            let settled = self.cameras.get(&id).is_some_and(|c| {
                c.flapping && c.debounce.raised && c.good_since.is_some_and(|g| now.duration_since(g) >= c.settle)
            });
            if settled {
                self.clear_camera(&id, now, wall, out);
            }
        }
    }
}
