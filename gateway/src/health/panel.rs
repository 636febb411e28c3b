//! Panels: readability, heartbeats, fault points, alarm zones and doors.

use protocols::modbus::Role;

use super::*;

/// A partition point's state that arms its zones (role `partition`).
pub(super) fn partition_armed(state: Option<&str>) -> bool {
    state == Some("armed")
}

#[derive(Debug)]
pub(super) struct PanelState {
    pub(super) device: DeviceRef,
    pub(super) kind: PanelKind,
    pub(super) maintenance: bool,
    pub(super) debounce: Debounce,
    pub(super) last_fault: Option<(PanelFault, String)>,
    pub(super) points: BTreeMap<String, crate::pollers::PointValue>,
    pub(super) heartbeat: Option<(f64, Instant)>,
    pub(super) heartbeat_raised: bool,
    /// Raised fault points (panel-fault / reader-fault roles), by point id.
    pub(super) fault_points: BTreeMap<String, String>,
    /// Point id → role, from the panel's profile.
    pub(super) roles: BTreeMap<String, Role>,
    /// The ids of its partition points (from `roles`), so that whether it is armed is found
    /// without walking every point on every poll.
    pub(super) partitions: Vec<String>,
    /// A partition of this panel is armed (updated on each of its observations).
    pub(super) armed: bool,
    /// The state and status last published (compared on every poll, so no text is built).
    pub(super) published_state: Option<(&'static str, Option<&'static str>)>,
    /// Had at least one successful read (until then the panel is `unknown`).
    pub(super) proven: bool,
    /// Its unreadable fault was left raised by the previous run: the first poll decides.
    pub(super) restored: bool,
    /// Fault-point codes left raised by the previous run: the first read decides.
    pub(super) restored_faults: std::collections::BTreeSet<String>,
}

impl Engine {
    /// Whether `panel` reports an armed partition right now.
    pub(super) fn panel_armed(p: &PanelState) -> bool {
        p.kind == PanelKind::Alarm
            && !p.debounce.raised
            && p.partitions.iter().any(|k| p.points.get(k).is_some_and(|v| partition_armed(v.state.as_deref())))
    }

    pub(super) fn panel_ref(&self, panel: &DeviceId) -> DeviceRef {
        self.panels.get(panel).map(|p| p.device.clone()).unwrap_or_else(|| self.faults.device().clone())
    }

    pub(super) fn observe_panel(&mut self, obs: PanelObservation, now: Instant, out: &mut Output) {
        let (offline_after, online_after) = (self.site.offline_after, self.site.online_after);
        let id = obs.device.clone();
        let Some(p) = self.panels.get_mut(&id) else { return };
        let ok = matches!(obs.outcome, PanelOutcome::Read(_));
        if let PanelOutcome::Failed { fault, reason } = &obs.outcome {
            p.last_fault = Some((*fault, reason.clone()));
        }
        p.proven |= ok;
        let restored = std::mem::take(&mut p.restored);
        let edge = if restored && ok {
            // Unreadable before the restart and read now: cleared at once.
            p.debounce = Debounce { oks: 1, first_ok_at: Some(obs.at), ..Debounce::default() };
            Edge::Clear
        } else {
            p.debounce.observe(ok, obs.at, offline_after, online_after)
        };
        let before = out.alerts.len();
        let maintenance = p.maintenance;
        let dev = p.device.clone();
        match edge {
            Edge::Raise if !maintenance => {
                let (fault, reason) = p.last_fault.clone().unwrap_or((PanelFault::Unreachable, "no answer".into()));
                let code = match fault {
                    PanelFault::Unreachable => "unreachable",
                    PanelFault::Exception => "modbus-exception",
                    PanelFault::Protocol => "protocol-error",
                };
                let occurred = p.debounce.first_fail_at.unwrap_or(obs.at);
                let msg = Msg::PanelUnreadable { name: &dev.name, reason: &reason };
                out.alerts.push(self.fault_alert(
                    dev.clone(),
                    AlertState::Raised,
                    Severity::Critical,
                    occurred,
                    code,
                    reason.clone(),
                    Some(msg),
                ));
            }
            Edge::Clear if !maintenance => {
                let code = match self.panels.get(&id).and_then(|p| p.last_fault.as_ref()).map(|f| f.0) {
                    Some(PanelFault::Exception) => "modbus-exception",
                    Some(PanelFault::Protocol) => "protocol-error",
                    _ => "unreachable",
                };
                let at = self.panels.get(&id).and_then(|p| p.debounce.first_ok_at).unwrap_or(obs.at);
                out.alerts.push(self.fault_alert(
                    dev.clone(),
                    AlertState::Cleared,
                    Severity::Info,
                    at,
                    code,
                    "readable again".into(),
                    Some(Msg::PanelReadable { name: &dev.name }),
                ));
                if restored {
                    self.note(out, before, Msg::ObservedAfterRestart);
                }
            }
            _ => {}
        }
        if let PanelOutcome::Read(read) = obs.outcome {
            self.apply_points(&id, read, obs.at, now, out);
        }
        if let Some(p) = self.panels.get_mut(&id) {
            p.armed = Self::panel_armed(p);
        }
        self.armed = self.panels.values().any(|p| p.armed);
        self.publish_panel_state(&id, obs.at, out);
    }

    pub(super) fn apply_points(
        &mut self,
        id: &DeviceId,
        read: crate::pollers::PanelRead,
        at: Timestamp,
        now: Instant,
        out: &mut Output,
    ) {
        let Some(p) = self.panels.get_mut(id) else { return };
        let maintenance = p.maintenance;
        // Only what changed since the last hand-over is here (everything after a start or a
        // failure); the rest stands as last read, in `p.points`.
        // Heartbeat: the point of role `heartbeat`, if the profile has one (here when it changed).
        let roles = &p.roles;
        if let Some((_, hb)) = read.changed.iter().find(|(k, _)| roles.get(&**k) == Some(&Role::Heartbeat)) {
            match p.heartbeat {
                Some((v, _)) if v == hb.raw => {}
                // Hung before a restart: it has to change (not merely be read) to clear.
                None if p.heartbeat_raised => p.heartbeat = Some((hb.raw, now)),
                _ => {
                    p.heartbeat = Some((hb.raw, now));
                    if p.heartbeat_raised {
                        p.heartbeat_raised = false;
                        let dev = p.device.clone();
                        if !maintenance {
                            out.alerts.push(self.fault_alert(
                                dev.clone(),
                                AlertState::Cleared,
                                Severity::Info,
                                at,
                                "heartbeat-stopped",
                                "heartbeat is changing again".into(),
                                Some(Msg::PanelHeartbeatBack { name: &dev.name }),
                            ));
                        }
                    }
                }
            }
        }
        let Some(p) = self.panels.get_mut(id) else { return };
        // Fault points (roles panel-fault, reader-fault): any state but "ok" is a fault.
        let mut fault_edges = Vec::new();
        for (pid, v) in &read.changed {
            if !matches!(p.roles.get(&**pid), Some(Role::PanelFault | Role::ReaderFault)) {
                continue;
            }
            let state = v.state.clone().unwrap_or_else(|| "ok".into());
            let active = state != "ok";
            let was = p.fault_points.get(&**pid).cloned();
            match (was, active) {
                (None, true) if p.restored_faults.remove(&state) => {
                    // Still true after a restart: already raised.
                    p.fault_points.insert(pid.to_string(), state.clone());
                }
                (None, true) => {
                    p.fault_points.insert(pid.to_string(), state.clone());
                    fault_edges.push((AlertState::Raised, state, pid.to_string()));
                }
                (Some(code), false) => {
                    p.fault_points.remove(&**pid);
                    fault_edges.push((AlertState::Cleared, code, pid.to_string()));
                }
                _ => {}
            }
        }
        read.merge_into(&mut p.points);
        let dev = p.device.clone();
        let gone = std::mem::take(&mut p.restored_faults);
        if !maintenance {
            for (st, code, pid) in fault_edges {
                let sev = if st == AlertState::Raised { Severity::Major } else { Severity::Info };
                let reason = match st {
                    AlertState::Raised => format!("point {pid} reports {code}"),
                    AlertState::Cleared => format!("point {pid} no longer reports {code}"),
                };
                out.alerts.push(self.fault_alert(dev.clone(), st, sev, at, &code, reason, None));
            }
            // Raised before a restart and reported by no point now.
            for code in gone {
                let before = out.alerts.len();
                let reason = format!("no point reports {code}");
                out.alerts.push(self.fault_alert(
                    dev.clone(),
                    AlertState::Cleared,
                    Severity::Info,
                    at,
                    &code,
                    reason,
                    None,
                ));
                self.note(out, before, Msg::ObservedAfterRestart);
            }
        }

        self.apply_alarm_zones(id, at, maintenance, &dev, out);
        self.apply_doors(id, at, now, maintenance, &dev, out);
    }

    pub(super) fn publish_panel_state(&mut self, id: &DeviceId, at: Timestamp, out: &mut Output) {
        let Some(p) = self.panels.get_mut(id) else { return };
        let (state, status) = if p.maintenance {
            ("maintenance", None)
        } else if p.debounce.raised {
            let code = match p.last_fault.as_ref().map(|f| f.0) {
                Some(PanelFault::Exception) => "modbus-exception",
                Some(PanelFault::Protocol) => "protocol-error",
                _ => "unreachable",
            };
            ("offline", Some(code))
        } else if !p.proven {
            ("unknown", None)
        } else if p.heartbeat_raised {
            ("hung", Some("heartbeat-stopped"))
        } else {
            ("online", None)
        };
        if p.published_state == Some((state, status)) {
            return;
        }
        p.published_state = Some((state, status));
        let health = DeviceHealth {
            schema: DEVICE_HEALTH_SCHEMA.into(),
            branch: self.branch.clone(),
            device: p.device.clone(),
            state: state.to_string(),
            status: status.map(str::to_string),
            since: at,
            updated_at: at,
            reason: if p.debounce.raised { p.last_fault.as_ref().map(|f| f.1.clone()) } else { None },
            clock_skew_ms: None,
            resolution: None,
            encoding: None,
        };
        out.retained.push(retained(self.topics.device(id), &health));
    }
}

impl Engine {
    /// Panels whose heartbeat stopped changing: `heartbeat-stopped`, once.
    pub(super) fn tick_heartbeats(&mut self, now: Instant, wall: Timestamp, out: &mut Output) {
        let ids: Vec<DeviceId> = self.panels.keys().cloned().collect();
        for id in ids {
            let Some(p) = self.panels.get_mut(&id) else { continue };
            if let Some((_, changed_at)) = p.heartbeat
                && !p.heartbeat_raised
                && !p.debounce.raised
                && now.duration_since(changed_at) >= HEARTBEAT_STALE
            {
                p.heartbeat_raised = true;
                if !p.maintenance {
                    let dev = p.device.clone();
                    let secs = HEARTBEAT_STALE.as_secs();
                    let msg = Msg::PanelHung { name: &dev.name, secs };
                    out.alerts.push(self.fault_alert(
                        dev.clone(),
                        AlertState::Raised,
                        Severity::Major,
                        wall,
                        "heartbeat-stopped",
                        format!("heartbeat unchanged for {secs} s"),
                        Some(msg),
                    ));
                }
            }
        }
    }
}
