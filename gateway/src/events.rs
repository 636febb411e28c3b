//! What the gateway's own plumbing (the uplink, the outbox) reports about itself.
//!
//! These are facts, not alerts: only the health engine turns them into alerts (see
//! [`crate::health::GatewayFaults`]), with the branch's language and the usual severities, so
//! that an `uplink-down` reads like every other fault. (The shape follows Vector's internal
//! events: components emit typed events; one place decides what they mean.)
//! This module (with [`Retained`], the engine's state messages for the uplink) depends on
//! nothing else in the gateway, so the engine does not depend on the uplink.

use std::time::Duration;

use tokio::sync::mpsc;

/// A retained state message (device health, coverage) from the engine to the uplink: latest
/// value wins, re-sent after every reconnect, not stored in the outbox.
#[derive(Debug, Clone)]
pub struct Retained {
    pub topic: String,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    /// Connected to the broker (a ConnAck that accepted us). `outage` is how long the link was
    /// down before (none on the first connection); `waiting` the events in the outbox.
    Connected { outage: Option<Duration>, waiting: u64 },
    /// The link has now been down for `down_for`, the alert threshold (sent once per outage).
    LinkDown { down_for: Duration, broker: String },
    /// The broker refused a publish (MQTT 5 PUBACK reason code ≥ 0x80). The event stays in the
    /// outbox and is retried.
    PublishRefused { topic: String, reason: String },
    /// The broker accepted a publish again (sent once per connection and after each refusal).
    PublishAccepted,
    /// The outbox's bound dropped `count` events.
    EventsDropped { count: u64 },
}

/// Where the uplink sends its events; cheap to clone. A closed or absent receiver is fine:
/// events are then only logged by their sender.
#[derive(Debug, Clone, Default)]
pub struct EventSink(Option<mpsc::UnboundedSender<GatewayEvent>>);

impl EventSink {
    pub fn new(tx: mpsc::UnboundedSender<GatewayEvent>) -> EventSink {
        EventSink(Some(tx))
    }

    /// A sink and the receiver to read it from.
    pub fn channel() -> (EventSink, mpsc::UnboundedReceiver<GatewayEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EventSink::new(tx), rx)
    }

    pub fn emit(&self, ev: GatewayEvent) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(ev);
        }
    }
}
