//! Taking over the conditions the previous run left raised.

use super::*;

/// What became of a condition raised before a restart.
pub(super) enum Restored {
    /// Held raised until its device is observed.
    Held,
    /// Cannot be observed any more: cleared now, with this note.
    Gone(Msg<'static>),
}

impl Engine {
    /// Takes over the conditions the previous run left raised (the outbox keeps them with the
    /// alerts that raised them): each is held raised without a new alert, and the first
    /// observation of its device clears it if it is no longer true (the cleared alert says it
    /// was observed after a restart). What belongs to a device, zone or door no longer in the
    /// configuration, or to a device now in maintenance, is cleared at once.
    pub fn restore(&mut self, open: Vec<Alert>) -> Output {
        let mut out = Output::default();
        for raised in open {
            if raised.branch != self.branch {
                tracing::warn!(branch = %raised.branch, "an open condition of another branch id is dropped");
                continue;
            }
            let key = raised.condition_key().unwrap_or_default();
            match self.restore_one(&raised) {
                Restored::Held => tracing::info!(condition = %key, "held raised until observed"),
                Restored::Gone(note) => {
                    tracing::info!(condition = %key, "cleared: cannot be observed any more");
                    out.alerts.push(self.ended(&raised, note));
                }
            }
        }
        out
    }

    pub(super) fn restore_one(&mut self, raised: &Alert) -> Restored {
        let id = &raised.device.id;
        if raised.device.device_type == DeviceType::Gateway {
            return match &raised.body {
                AlertBody::DeviceFault(d) if self.faults.restore(&d.fault) => Restored::Held,
                _ => Restored::Gone(Msg::ObservedAfterRestart),
            };
        }
        if let Some(cam) = self.cameras.get_mut(id) {
            if cam.maintenance {
                return Restored::Gone(Msg::InMaintenance);
            }
            match &raised.body {
                AlertBody::CameraOffline(d) => {
                    cam.debounce.raised = true;
                    cam.raised_status = Some(d.status.clone());
                    cam.restored = true;
                }
                AlertBody::DeviceFault(d) => {
                    cam.active_events.insert(d.fault.clone(), true);
                }
                _ => return Restored::Gone(Msg::ObservedAfterRestart),
            }
            return Restored::Held;
        }
        let Some(p) = self.panels.get_mut(id) else { return Restored::Gone(Msg::RemovedFromConfig) };
        if p.maintenance {
            return Restored::Gone(Msg::InMaintenance);
        }
        match &raised.body {
            AlertBody::DeviceFault(d) => {
                let fault = match d.fault.as_str() {
                    "unreachable" => Some(PanelFault::Unreachable),
                    "modbus-exception" => Some(PanelFault::Exception),
                    "protocol-error" => Some(PanelFault::Protocol),
                    _ => None,
                };
                if let Some(f) = fault {
                    p.debounce.raised = true;
                    p.restored = true;
                    p.last_fault = Some((f, d.reason.clone()));
                } else if d.fault == "heartbeat-stopped" {
                    p.heartbeat_raised = true;
                } else {
                    p.restored_faults.insert(d.fault.clone());
                }
            }
            AlertBody::AlarmLink(d) => {
                let Some(rt) = self.alarm_zones.get_mut(&d.zone) else {
                    return Restored::Gone(Msg::RemovedFromConfig);
                };
                rt.raised = true;
                rt.restored = true;
                rt.state = Some(d.zone_state.clone());
            }
            AlertBody::DoorStatus(d) => {
                let Some(rt) = self.doors.get_mut(&d.door) else {
                    return Restored::Gone(Msg::RemovedFromConfig);
                };
                rt.raised = Some(d.door_state);
                rt.restored = true;
            }
            AlertBody::CameraOffline(_) => return Restored::Gone(Msg::RemovedFromConfig),
        }
        Restored::Held
    }

    /// The `cleared` alert for a condition raised before a restart that cannot be observed any
    /// more: the raise's device and details, its message prefixed with "ended" and `note`.
    pub(super) fn ended(&self, raised: &Alert, note: Msg<'_>) -> Alert {
        let mut body = raised.body.clone();
        if let AlertBody::CameraOffline(d) = &mut body {
            d.status = "online".into();
            d.consecutive_failures = 0;
            d.uncovered_zones.clear();
        }
        let message = format!("{}{}", Msg::Ended { raised: &raised.message }.render(self.lang), note.render(self.lang));
        Alert::new(
            self.branch.clone(),
            raised.device.clone(),
            AlertState::Cleared,
            Severity::Info,
            protocols::time::now(),
            message,
            body,
        )
    }

    /// Appends `note` to the messages of the alerts pushed since `from`.
    pub(super) fn note(&self, out: &mut Output, from: usize, note: Msg<'_>) {
        let text = note.render(self.lang);
        for a in out.alerts.iter_mut().skip(from) {
            a.message.push_str(&text);
        }
    }
}
