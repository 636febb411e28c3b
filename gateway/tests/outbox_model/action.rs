//! The actions the model test generates, and the alerts they append.

use proptest::prelude::*;
use protocols::{
    AlarmLinkDetails, Alert, AlertBody, AlertState, BranchId, CameraOfflineDetails, DeviceFaultDetails, DeviceId,
    DeviceRef, DeviceType, DoorState, DoorStatusDetails, Severity, ZoneId,
};

/// What kind of event to append.
#[derive(Debug, Clone, Copy)]
pub enum Class {
    /// alarm-link: priority.
    Alarm,
    /// door-status forced-open: priority.
    ForcedDoor,
    /// door-status closed: not priority.
    DoorClosed,
    /// camera-offline with severity index 0..4.
    Camera(u8),
    /// device-fault with severity index 0..4.
    Fault(u8),
}

#[derive(Debug, Clone, Copy)]
pub struct AppendSpec {
    pub class: Class,
    /// Extra message length (×16 bytes), to vary sizes against the byte bound.
    pub pad: u8,
}

fn severity(i: u8) -> Severity {
    [Severity::Info, Severity::Warning, Severity::Major, Severity::Critical][(i % 4) as usize]
}

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().expect("valid id")
}

impl AppendSpec {
    /// The lane index the outbox must put this in: 0 priority, 1..=4 by severity.
    pub fn lane(&self) -> u8 {
        match self.class {
            Class::Alarm | Class::ForcedDoor => 0,
            Class::DoorClosed => 1 + 1, // warning
            Class::Camera(s) | Class::Fault(s) => 1 + (s % 4),
        }
    }

    pub fn alert(&self) -> Alert {
        let branch: BranchId = id("b01");
        let msg = format!("model event{}", "-".repeat(16 * self.pad as usize));
        let dev = |t: DeviceType, name: &str| DeviceRef {
            id: id::<DeviceId>(name),
            device_type: t,
            name: name.to_string(),
            zones: vec![],
        };
        let (device, sev, body) = match self.class {
            Class::Alarm => (
                dev(DeviceType::AlarmPanel, "panel-1"),
                Severity::Critical,
                AlertBody::AlarmLink(AlarmLinkDetails {
                    follow_up_of: None,
                    snapshots: Vec::new(),
                    zone: id::<ZoneId>("vault"),
                    zone_name: "Vault".into(),
                    zone_state: "alarm".into(),
                    partition: None,
                    armed: true,
                    twenty_four_hour: false,
                    area: None,
                    cameras: vec![],
                }),
            ),
            Class::ForcedDoor | Class::DoorClosed => (
                dev(DeviceType::AccessController, "door-ctl"),
                if matches!(self.class, Class::ForcedDoor) { Severity::Critical } else { Severity::Warning },
                AlertBody::DoorStatus(DoorStatusDetails {
                    follow_up_of: None,
                    snapshots: Vec::new(),
                    door: id::<ZoneId>("d1"),
                    door_name: "Main door".into(),
                    door_state: if matches!(self.class, Class::ForcedDoor) {
                        DoorState::ForcedOpen
                    } else {
                        DoorState::Closed
                    },
                    locked: None,
                    cameras: vec![],
                }),
            ),
            Class::Camera(s) => (
                dev(DeviceType::Camera, "cam-1"),
                severity(s),
                AlertBody::CameraOffline(CameraOfflineDetails {
                    status: "unreachable".into(),
                    reason: "timeout".into(),
                    consecutive_failures: 3,
                    armed: false,
                    uncovered_zones: vec![],
                    clock_skew_ms: None,
                }),
            ),
            Class::Fault(s) => (
                dev(DeviceType::AlarmPanel, "panel-1"),
                severity(s),
                AlertBody::DeviceFault(DeviceFaultDetails {
                    fault: "heartbeat-stopped".into(),
                    reason: "no heartbeat".into(),
                    dropped_events: None,
                    outage_ms: None,
                    waiting_events: None,
                }),
            ),
        };
        Alert::new(branch, device, AlertState::Raised, sev, protocols::time::now(), msg, body)
    }
}

#[derive(Debug, Clone)]
pub enum Action {
    Append(AppendSpec),
    /// Ack the stored event at this index (modulo the number stored) in delivery order.
    Ack(usize),
    /// Read a window from the start and ack it (the uplink's path).
    DeliverWindow(usize),
    Flush,
    /// Drop and reopen the same directory.
    Reopen,
    /// Open a copy of the directory taken while open (process crash).
    Crash,
    /// Rotate to a fresh sled database (only happens when empty).
    Compact,
}

fn arb_class() -> impl Strategy<Value = Class> {
    prop_oneof![
        2 => Just(Class::Alarm),
        1 => Just(Class::ForcedDoor),
        1 => Just(Class::DoorClosed),
        4 => (0u8..4).prop_map(Class::Camera),
        2 => (0u8..4).prop_map(Class::Fault),
    ]
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        12 => (arb_class(), 0u8..20).prop_map(|(class, pad)| Action::Append(AppendSpec { class, pad })),
        3 => any::<usize>().prop_map(Action::Ack),
        2 => (1usize..6).prop_map(Action::DeliverWindow),
        1 => Just(Action::Flush),
        1 => Just(Action::Reopen),
        2 => Just(Action::Crash),
        1 => Just(Action::Compact),
    ]
}

pub fn arb_actions(max: usize) -> impl Strategy<Value = Vec<Action>> {
    prop::collection::vec(arb_action(), 1..max)
}
