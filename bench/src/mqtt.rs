//! The independent subscriber: a rumqttc client in the bench process, subscribed to the
//! branch's subtree on the mosquitto the gateway publishes to. It stamps every message with
//! [`Instant::now`] the moment its event loop hands the PUBLISH over, before any parsing, so a
//! latency is "flip in the simulator → message at head office" on one clock.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mqtt_setup::ClientOptions;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// One message as head office saw it.
#[derive(Debug, Clone)]
pub struct Msg {
    pub at: Instant,
    pub topic: String,
    pub payload: Vec<u8>,
}

impl Msg {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

pub struct Subscriber {
    rx: mpsc::UnboundedReceiver<Msg>,
    task: JoinHandle<()>,
    _client: AsyncClient,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    /// Connects to 127.0.0.1:`port`, subscribes to `filter` at QoS 1 and returns once the
    /// broker has acknowledged the subscription.
    pub async fn start(port: u16, filter: &str) -> Result<Subscriber> {
        let mut opts = ClientOptions::loopback(port, format!("bsg-bench-{}", rand::random::<u32>()));
        // Retained coverage reports of a thousand cameras are far above rumqttc's 10 KiB default.
        opts.max_packet_bytes = 64 * 1024 * 1024;
        let (client, mut eventloop) = opts.v311_client(1024, |_| {});
        client.subscribe(filter, QoS::AtLeastOnce).await.context("queue the SUBSCRIBE")?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let m = Msg { at: Instant::now(), topic: p.topic, payload: p.payload.to_vec() };
                        if tx.send(m).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(Ok(()));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(Err(e.to_string()));
                            return;
                        }
                        // A dropped connection mid-run: rumqttc reconnects on the next poll;
                        // pause so a dead broker is not spun on. The subscription is gone
                        // then (clean session) and the scenario notices by its own timeout.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        match tokio::time::timeout(Duration::from_secs(10), ready_rx).await {
            Ok(Ok(Ok(()))) => Ok(Subscriber { rx, task, _client: client }),
            Ok(Ok(Err(e))) => bail!("the bench's MQTT subscriber could not connect to 127.0.0.1:{port}: {e}"),
            _ => bail!("the bench's MQTT subscriber got no SUBACK from 127.0.0.1:{port} within 10 s"),
        }
    }

    /// The next message, waiting until `deadline`.
    pub async fn next_until(&mut self, deadline: Instant) -> Option<Msg> {
        let left = deadline.checked_duration_since(Instant::now())?;
        tokio::time::timeout(left, self.rx.recv()).await.ok().flatten()
    }

    /// The first message matching `pred` before `deadline`; others are dropped.
    pub async fn wait_for(&mut self, deadline: Instant, mut pred: impl FnMut(&Msg) -> bool) -> Option<Msg> {
        while let Some(m) = self.next_until(deadline).await {
            if pred(&m) {
                return Some(m);
            }
        }
        None
    }

    /// A message already received, without waiting.
    pub fn try_next(&mut self) -> Option<Msg> {
        self.rx.try_recv().ok()
    }

    /// Discards everything already received.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        while self.rx.try_recv().is_ok() {
            n += 1;
        }
        n
    }
}
