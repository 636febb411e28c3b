//! The gateway's own faults: the link to head office down, publishes refused by the broker,
//! events dropped by the outbox's bound. The uplink and the outbox report facts
//! ([`GatewayEvent`]); this turns them into alerts about the device `gateway`, raised once and
//! cleared once like every other fault, in the branch's language.

use std::time::{Duration, Instant};

use protocols::alert::DeviceFaultDetails;
use protocols::{Alert, AlertBody, AlertState, BranchId, DeviceId, DeviceRef, DeviceType, Severity};

use crate::events::GatewayEvent;
use crate::messages::{Lang, Msg};

/// How often a coalesced `outbox-overflow` alert may be made (the first one is immediate).
pub const OVERFLOW_REPORT_EVERY: Duration = Duration::from_secs(60);

pub const FAULT_UPLINK_DOWN: &str = "uplink-down";
pub const FAULT_UPLINK_DENIED: &str = "uplink-denied";
pub const FAULT_OUTBOX_OVERFLOW: &str = "outbox-overflow";

/// The gateway as a device: id `gateway`, type `gateway`.
pub fn gateway_device(name: &str) -> DeviceRef {
    DeviceRef {
        // A constant that satisfies the id rules (checked by a unit test).
        #[allow(clippy::expect_used)]
        id: DeviceId::new("gateway").expect("`gateway` is a valid device id"),
        device_type: DeviceType::Gateway,
        name: name.to_string(),
        zones: Vec::new(),
    }
}

/// Turns [`GatewayEvent`]s into the gateway's fault alerts.
#[derive(Debug)]
pub struct GatewayFaults {
    branch: BranchId,
    device: DeviceRef,
    lang: Lang,
    /// `uplink-down` is raised (and not yet cleared).
    link_down: bool,
    /// `uplink-denied` is raised, with the topic first refused.
    denied: Option<String>,
    dropped_unreported: u64,
    last_drop_report: Option<Instant>,
    /// The outbox's bound, for the overflow alert's reason.
    bound: (u64, u64),
}

impl GatewayFaults {
    pub fn new(branch: BranchId, device: DeviceRef, lang: Lang) -> GatewayFaults {
        GatewayFaults {
            branch,
            device,
            lang,
            link_down: false,
            denied: None,
            dropped_unreported: 0,
            last_drop_report: None,
            bound: (0, 0),
        }
    }

    /// The outbox bound (events, bytes) named in the overflow alert.
    pub fn set_bound(&mut self, max_events: u64, max_bytes: u64) {
        self.bound = (max_events, max_bytes);
    }

    pub fn device(&self) -> &DeviceRef {
        &self.device
    }

    /// A fault of the gateway left raised by the previous run (see the engine's restore): it is
    /// cleared by the first event that shows it is over.
    pub fn restore(&mut self, fault: &str) -> bool {
        match fault {
            FAULT_UPLINK_DOWN => self.link_down = true,
            FAULT_UPLINK_DENIED => self.denied = Some(String::new()),
            _ => return false,
        }
        true
    }

    pub fn on_event(&mut self, ev: GatewayEvent, now: Instant) -> Vec<Alert> {
        let mut out = Vec::new();
        match ev {
            GatewayEvent::LinkDown { down_for, broker } => {
                if !self.link_down {
                    self.link_down = true;
                    let secs = down_for.as_secs();
                    let at = protocols::time::now() - chrono::Duration::from_std(down_for).unwrap_or_default();
                    let msg = Msg::LinkDown { secs }.render(self.lang);
                    out.push(self.alert(
                        AlertState::Raised,
                        at,
                        msg,
                        FAULT_UPLINK_DOWN,
                        format!("cannot reach the broker at {broker}"),
                        |_| {},
                    ));
                }
            }
            GatewayEvent::Connected { outage, waiting } => {
                if self.link_down {
                    self.link_down = false;
                    let msg = match outage {
                        Some(o) => Msg::LinkRestored { secs: o.as_secs() }.render(self.lang),
                        None => Msg::LinkRestoredAfterRestart.render(self.lang),
                    };
                    let reason = match outage {
                        Some(_) => "the broker is reachable again".to_string(),
                        None => "the broker is reachable again (observed after a gateway restart)".to_string(),
                    };
                    out.push(self.alert(
                        AlertState::Cleared,
                        protocols::time::now(),
                        msg,
                        FAULT_UPLINK_DOWN,
                        reason,
                        |d| {
                            d.outage_ms = outage.map(|o| o.as_millis() as u64);
                            d.waiting_events = Some(waiting);
                        },
                    ));
                }
            }
            GatewayEvent::PublishRefused { topic, reason } => {
                if self.denied.is_none() {
                    let msg = Msg::PublishRefused { topic: &topic, reason: &reason }.render(self.lang);
                    let why = format!("the broker refused a publish to {topic}: {reason}");
                    out.push(self.alert(
                        AlertState::Raised,
                        protocols::time::now(),
                        msg,
                        FAULT_UPLINK_DENIED,
                        why,
                        |_| {},
                    ));
                    self.denied = Some(topic);
                }
            }
            GatewayEvent::PublishAccepted => {
                if self.denied.take().is_some() {
                    let msg = Msg::PublishAccepted.render(self.lang);
                    out.push(self.alert(
                        AlertState::Cleared,
                        protocols::time::now(),
                        msg,
                        FAULT_UPLINK_DENIED,
                        "the broker accepts the gateway's publishes again".into(),
                        |_| {},
                    ));
                }
            }
            GatewayEvent::EventsDropped { count } => {
                self.dropped_unreported += count;
                out.extend(self.tick(now));
            }
        }
        out
    }

    /// The coalesced overflow report, when one is due.
    pub fn tick(&mut self, now: Instant) -> Option<Alert> {
        let due = self.last_drop_report.is_none_or(|t| now.duration_since(t) >= OVERFLOW_REPORT_EVERY);
        if self.dropped_unreported == 0 || !due {
            return None;
        }
        let n = std::mem::take(&mut self.dropped_unreported);
        self.last_drop_report = Some(now);
        let msg = Msg::EventsDropped { count: n }.render(self.lang);
        let reason = format!(
            "the outbox bound ({} events, {} bytes) was reached while head office was unreachable",
            self.bound.0, self.bound.1
        );
        // A one-off report, not a condition: it has no cleared counterpart.
        Some(self.alert(AlertState::Raised, protocols::time::now(), msg, FAULT_OUTBOX_OVERFLOW, reason, |d| {
            d.dropped_events = Some(n);
        }))
    }

    fn alert(
        &self,
        state: AlertState,
        at: protocols::time::Timestamp,
        message: String,
        fault: &str,
        reason: String,
        fill: impl FnOnce(&mut DeviceFaultDetails),
    ) -> Alert {
        let mut d = DeviceFaultDetails {
            fault: fault.to_string(),
            reason,
            dropped_events: None,
            outage_ms: None,
            waiting_events: None,
        };
        fill(&mut d);
        let severity = if state == AlertState::Raised { Severity::Major } else { Severity::Info };
        Alert::new(self.branch.clone(), self.device.clone(), state, severity, at, message, AlertBody::DeviceFault(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(lang: Lang) -> GatewayFaults {
        GatewayFaults::new("b01".parse().expect("branch"), gateway_device("GW"), lang)
    }

    fn fault_of(a: &Alert) -> (&str, AlertState, Severity) {
        match &a.body {
            AlertBody::DeviceFault(d) => (d.fault.as_str(), a.state, a.severity),
            _ => ("?", a.state, a.severity),
        }
    }

    #[test]
    fn gateway_device_is_valid() {
        let d = gateway_device("GW");
        assert_eq!(d.id.as_str(), "gateway");
        assert_eq!(d.device_type, DeviceType::Gateway);
    }

    #[test]
    fn link_down_is_raised_once_and_cleared_once_with_info_severity() {
        let mut f = faults(Lang::En);
        let t = Instant::now();
        let down = || GatewayEvent::LinkDown { down_for: Duration::from_secs(30), broker: "h:1".into() };
        let a = f.on_event(down(), t);
        assert_eq!(a.iter().map(fault_of).collect::<Vec<_>>(), [("uplink-down", AlertState::Raised, Severity::Major)]);
        assert!(f.on_event(down(), t).is_empty(), "raised twice");
        let up = || GatewayEvent::Connected { outage: Some(Duration::from_secs(42)), waiting: 7 };
        let c = f.on_event(up(), t);
        assert_eq!(c.iter().map(fault_of).collect::<Vec<_>>(), [("uplink-down", AlertState::Cleared, Severity::Info)]);
        match &c[0].body {
            AlertBody::DeviceFault(d) => assert_eq!((d.outage_ms, d.waiting_events), (Some(42_000), Some(7))),
            other => panic!("{other:?}"),
        }
        assert!(f.on_event(up(), t).is_empty(), "cleared twice");
    }

    #[test]
    fn refused_publishes_raise_once_and_the_next_accepted_one_clears() {
        let mut f = faults(Lang::Zh);
        let t = Instant::now();
        let refused = || GatewayEvent::PublishRefused {
            topic: "branches/b01/alerts/x".into(),
            reason: "0x87 not authorized".into(),
        };
        let a = f.on_event(refused(), t);
        assert_eq!(a.len(), 1);
        assert!(a[0].message.contains("拒绝"), "{}", a[0].message);
        assert!(f.on_event(refused(), t).is_empty());
        let c = f.on_event(GatewayEvent::PublishAccepted, t);
        assert_eq!(
            c.iter().map(fault_of).collect::<Vec<_>>(),
            [("uplink-denied", AlertState::Cleared, Severity::Info)]
        );
        assert!(f.on_event(GatewayEvent::PublishAccepted, t).is_empty());
    }

    #[test]
    fn drops_are_reported_at_once_then_coalesced() {
        let mut f = faults(Lang::En);
        let t = Instant::now();
        let a = f.on_event(GatewayEvent::EventsDropped { count: 3 }, t);
        assert_eq!(a.len(), 1);
        assert!(f.on_event(GatewayEvent::EventsDropped { count: 4 }, t).is_empty());
        assert!(f.on_event(GatewayEvent::EventsDropped { count: 5 }, t + Duration::from_secs(10)).is_empty());
        let later = f.tick(t + OVERFLOW_REPORT_EVERY).expect("coalesced report");
        match &later.body {
            AlertBody::DeviceFault(d) => assert_eq!(d.dropped_events, Some(9)),
            other => panic!("{other:?}"),
        }
        assert!(f.tick(t + OVERFLOW_REPORT_EVERY * 3).is_none(), "nothing left to report");
    }

    #[test]
    fn a_zh_cn_branch_gets_its_gateway_faults_in_chinese() {
        let mut f = faults(Lang::Zh);
        let t = Instant::now();
        let mut all = f.on_event(GatewayEvent::LinkDown { down_for: Duration::from_secs(31), broker: "h:1".into() }, t);
        all.extend(f.on_event(GatewayEvent::Connected { outage: Some(Duration::from_secs(40)), waiting: 2 }, t));
        all.extend(
            f.on_event(GatewayEvent::PublishRefused { topic: "t".into(), reason: "0x87 not authorized".into() }, t),
        );
        all.extend(f.on_event(GatewayEvent::PublishAccepted, t));
        all.extend(f.on_event(GatewayEvent::EventsDropped { count: 3 }, t));
        assert_eq!(all.len(), 5);
        for a in &all {
            let chinese = a.message.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
            assert!(chinese && !a.message.contains("Link") && !a.message.contains("Outbox"), "{}", a.message);
        }
    }

    #[test]
    fn a_restored_fault_is_cleared_by_the_first_sign_it_is_over() {
        let mut f = faults(Lang::En);
        assert!(f.restore("uplink-down") && f.restore("uplink-denied") && !f.restore("tamper"));
        let t = Instant::now();
        let c = f.on_event(GatewayEvent::Connected { outage: None, waiting: 0 }, t);
        assert_eq!(c.len(), 1);
        assert!(c[0].message.contains("restart"), "{}", c[0].message);
        assert_eq!(f.on_event(GatewayEvent::PublishAccepted, t).len(), 1);
    }
}
