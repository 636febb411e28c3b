//! Alarm zones (防区): a zone point's state, armed or not, to `alarm-link` alerts.

use super::panel::partition_armed;
use super::*;

/// What an alarm zone's point state means to the engine (the profile's vocabulary for role
/// `zone`: docs/PROFILES.md). `bypassed`, `disabled`, `fault` and anything else are quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ZonePoint {
    Alarm,
    Tamper,
    Quiet,
}

impl ZonePoint {
    pub(super) fn of(state: &str) -> ZonePoint {
        match state {
            "alarm" => ZonePoint::Alarm,
            "tamper" => ZonePoint::Tamper,
            _ => ZonePoint::Quiet,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct AlarmZoneState {
    pub(super) state: Option<String>,
    pub(super) raised: bool,
    /// Raised by the previous run: the first read decides.
    pub(super) restored: bool,
}

impl Engine {
    /// The alarm zones of panel `id`, from its points just read: edge-triggered raises and
    /// clears, armed by their partition or always (24-hour zones).
    pub(super) fn apply_alarm_zones(
        &mut self,
        id: &DeviceId,
        at: Timestamp,
        maintenance: bool,
        dev: &DeviceRef,
        out: &mut Output,
    ) {
        let site = std::sync::Arc::clone(&self.site);
        for z in site.alarm_zones.iter().filter(|z| &z.panel == id) {
            let Some(p) = self.panels.get(id) else { return };
            // Borrowed: most polls change nothing, and then nothing is copied.
            let state: &str = p.points.get(&z.point).and_then(|v| v.state.as_deref()).unwrap_or("normal");
            let partition_armed = match &z.partition {
                Some(part) => partition_armed(p.points.get(part).and_then(|v| v.state.as_deref())),
                None => true,
            };
            let armed = z.twenty_four_hour || partition_armed;
            let firing = match ZonePoint::of(state) {
                ZonePoint::Alarm => armed,
                ZonePoint::Tamper => true,
                ZonePoint::Quiet => false,
            };
            let Some(rt) = self.alarm_zones.get_mut(&z.id) else { continue };
            let restored = std::mem::take(&mut rt.restored);
            let changed = rt.state.as_deref() != Some(state);
            if !changed && firing == rt.raised {
                continue;
            }
            let state = state.to_owned();
            rt.state = Some(state.clone());
            let edge = match (rt.raised, firing) {
                (false, true) => AlertState::Raised,
                (true, false) => AlertState::Cleared,
                _ => continue,
            };
            rt.raised = firing;
            if maintenance {
                continue;
            }
            let cameras = linked_cameras(&z.linked_cameras, &self.camera_lives());
            let down = any_down(&cameras);
            let zone_id = z.id.clone();
            let mut message = match edge {
                AlertState::Raised if state == "tamper" => Msg::ZoneTamper { zone: &z.name },
                AlertState::Raised => Msg::ZoneAlarm { zone: &z.name },
                AlertState::Cleared => Msg::ZoneRestored { zone: &z.name, state: &state },
            }
            .render(self.lang);
            if edge == AlertState::Raised && down {
                message.push_str(&Msg::LinkedCameraDown.render(self.lang));
            }
            if restored {
                message.push_str(&Msg::ObservedAfterRestart.render(self.lang));
            }
            let details = AlarmLinkDetails {
                follow_up_of: None,
                snapshots: Vec::new(),
                zone: zone_id.clone(),
                zone_name: z.name.clone(),
                zone_state: state.clone(),
                partition: z.partition.clone(),
                armed,
                twenty_four_hour: z.twenty_four_hour,
                area: z.area.clone(),
                cameras,
            };
            let severity = if edge == AlertState::Cleared { Severity::Info } else { Severity::Critical };
            let mut device = dev.clone();
            device.zones = vec![zone_id];
            let alert =
                Alert::new(self.branch.clone(), device, edge, severity, at, message, AlertBody::AlarmLink(details));
            if edge == AlertState::Raised && z.snapshot {
                out.snapshots.push(self.snapshot_request(&alert, &z.linked_cameras));
            }
            out.alerts.push(alert);
        }
    }
}
