//! Doors (门禁): forced and held-open doors to `door-status` alerts.

use protocols::modbus::Role;

use super::*;

/// What a door point's state means (role `door`); anything unknown counts as closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DoorPoint {
    Closed,
    Open,
    Forced,
    HeldOpen,
}

impl DoorPoint {
    pub(super) fn of(state: &str) -> DoorPoint {
        match state {
            "forced" | "forced-open" => DoorPoint::Forced,
            "held-open" => DoorPoint::HeldOpen,
            "open" => DoorPoint::Open,
            _ => DoorPoint::Closed,
        }
    }
}

/// A lock point's state for a locked door (role `lock`).
const LOCKED: &str = "locked";

#[derive(Debug, Default)]
pub(super) struct DoorRuntime {
    pub(super) state: Option<String>,
    pub(super) open_since: Option<Instant>,
    pub(super) raised: Option<DoorState>,
    /// Raised by the previous run: the first read decides.
    pub(super) restored: bool,
}

impl Engine {
    /// The doors of panel `id`, from its points just read: forced and held-open raised at once,
    /// cleared when closed.
    pub(super) fn apply_doors(
        &mut self,
        id: &DeviceId,
        at: Timestamp,
        now: Instant,
        maintenance: bool,
        dev: &DeviceRef,
        out: &mut Output,
    ) {
        let site = std::sync::Arc::clone(&self.site);
        for d in site.doors.iter().filter(|d| &d.panel == id) {
            let Some(p) = self.panels.get(id) else { return };
            // Borrowed: most polls change nothing, and then nothing is copied.
            let state: &str = p.points.get(&d.point).and_then(|v| v.state.as_deref()).unwrap_or("closed");
            let Some(rt) = self.doors.get_mut(&d.id) else { continue };
            let restored = std::mem::take(&mut rt.restored);
            if rt.state.as_deref() == Some(state) {
                continue;
            }
            let state = state.to_owned();
            rt.state = Some(state.clone());
            let (raise, clear) = match DoorPoint::of(&state) {
                DoorPoint::Forced => {
                    rt.open_since.get_or_insert(now);
                    (rt.raised != Some(DoorState::ForcedOpen))
                        .then_some(DoorState::ForcedOpen)
                        .map_or((None, false), |s| (Some(s), false))
                }
                DoorPoint::HeldOpen => {
                    rt.open_since.get_or_insert(now);
                    (if rt.raised.is_none() { Some(DoorState::HeldOpen) } else { None }, false)
                }
                DoorPoint::Open => {
                    rt.open_since.get_or_insert(now);
                    (None, false)
                }
                DoorPoint::Closed => {
                    rt.open_since = None;
                    (None, rt.raised.is_some())
                }
            };
            if let Some(s) = raise {
                rt.raised = Some(s);
                if !maintenance {
                    let alert = self.door_alert(d, dev.clone(), s, AlertState::Raised, at, None);
                    if d.snapshot {
                        out.snapshots.push(self.snapshot_request(&alert, &d.linked_cameras));
                    }
                    out.alerts.push(alert);
                }
            } else if clear {
                rt.raised = None;
                if !maintenance {
                    let before = out.alerts.len();
                    out.alerts.push(self.door_alert(d, dev.clone(), DoorState::Closed, AlertState::Cleared, at, None));
                    if restored {
                        self.note(out, before, Msg::ObservedAfterRestart);
                    }
                }
            }
        }
    }

    pub(super) fn door_alert(
        &self,
        d: &crate::site::Door,
        mut device: DeviceRef,
        door_state: DoorState,
        state: AlertState,
        at: Timestamp,
        held: Option<Duration>,
    ) -> Alert {
        let cameras = linked_cameras(&d.linked_cameras, &self.camera_lives());
        let down = any_down(&cameras);
        let mut message = match door_state {
            DoorState::ForcedOpen => Msg::DoorForced { door: &d.name },
            DoorState::HeldOpen => Msg::DoorHeld { door: &d.name, secs: held.unwrap_or(d.held_open_limit).as_secs() },
            DoorState::Closed | DoorState::Open => Msg::DoorClosed { door: &d.name },
        }
        .render(self.lang);
        if state == AlertState::Raised && down {
            message.push_str(&Msg::LinkedCameraDown.render(self.lang));
        }
        let severity = match (state, door_state) {
            (AlertState::Cleared, _) => Severity::Info,
            (_, DoorState::ForcedOpen) => Severity::Critical,
            _ => Severity::Major,
        };
        let door = d.id.clone();
        device.zones = vec![door.clone()];
        // The door's lock state, when the profile has a `lock` point with the door's number.
        let locked = self.panels.get(&device.id).and_then(|p| {
            let suffix = d.point.rsplit('.').next()?;
            p.points
                .iter()
                .find(|(k, _)| p.roles.get(*k) == Some(&Role::Lock) && k.rsplit('.').next() == Some(suffix))
                .and_then(|(_, v)| v.state.as_deref().map(|s| s == LOCKED))
        });
        Alert::new(
            self.branch.clone(),
            device,
            state,
            severity,
            at,
            message,
            AlertBody::DoorStatus(DoorStatusDetails {
                follow_up_of: None,
                snapshots: Vec::new(),
                door,
                door_name: d.name.clone(),
                door_state,
                locked,
                cameras,
            }),
        )
    }
}

impl Engine {
    /// Doors open past their limit: `held-open`, once.
    pub(super) fn tick_doors(&mut self, now: Instant, wall: Timestamp, out: &mut Output) {
        let site = std::sync::Arc::clone(&self.site);
        for d in &site.doors {
            let Some(rt) = self.doors.get_mut(&d.id) else { continue };
            if let Some(since) = rt.open_since
                && rt.raised.is_none()
                && now.duration_since(since) >= d.held_open_limit
            {
                rt.raised = Some(DoorState::HeldOpen);
                // Watched but silent in maintenance, like every other rule.
                if self.panels.get(&d.panel).is_some_and(|p| p.maintenance) {
                    continue;
                }
                let panel = self.panel_ref(&d.panel);
                let held = now.duration_since(since);
                let alert = self.door_alert(d, panel, DoorState::HeldOpen, AlertState::Raised, wall, Some(held));
                if d.snapshot {
                    out.snapshots.push(self.snapshot_request(&alert, &d.linked_cameras));
                }
                out.alerts.push(alert);
            }
        }
    }
}
