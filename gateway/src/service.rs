//! The service manager (systemd, `Type=notify`): `READY=1` once the pipeline runs,
//! `WATCHDOG=1` from the engine loop at half the interval systemd asks for (`WatchdogSec=`), so
//! that a gateway whose engine hangs is killed and restarted, and `STOPPING=1` on shutdown.
//! Outside systemd (no `NOTIFY_SOCKET`) every call does nothing.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

#[derive(Debug)]
pub struct Service {
    /// How often to send `WATCHDOG=1` (half of `WATCHDOG_USEC`), if systemd wants it.
    every: Option<Duration>,
    last: Option<Instant>,
}

impl Service {
    /// Reads `NOTIFY_SOCKET` / `WATCHDOG_USEC` / `WATCHDOG_PID` as systemd sets them.
    pub fn from_env() -> Service {
        let mut usec = 0u64;
        let every = sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec) / 2);
        if let Some(e) = every {
            tracing::info!(every_ms = e.as_millis() as u64, "systemd watchdog enabled");
        }
        Service { every, last: None }
    }

    pub fn ready(&self) {
        send(&[NotifyState::Ready]);
    }

    pub fn stopping(&self) {
        send(&[NotifyState::Stopping]);
    }

    /// Called from the engine loop: pets the watchdog when due.
    pub fn alive(&mut self, now: Instant) {
        let Some(every) = self.every else { return };
        if self.last.is_some_and(|t| now.duration_since(t) < every) {
            return;
        }
        self.last = Some(now);
        send(&[NotifyState::Watchdog]);
    }
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}
