//! The reconnect policy rumqttc does not have: its event loop reconnects on the next `poll`
//! at once, so a caller that polls in a loop would spin on a broker that is down.

use std::time::Duration;

/// Exponential backoff with "equal jitter": of each delay half is fixed and half random, so
/// that many clients cut off at once do not come back at once.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// The first delay is at most `min`; each one doubles up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.min(max);
        Self { min, max, next: min }
    }

    /// After a success: the next delay starts small again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The longest the next [`Backoff::next_delay`] can be.
    pub fn ceiling(&self) -> Duration {
        self.next
    }

    pub fn next_delay(&mut self) -> Duration {
        let half = self.next / 2;
        let jitter = Duration::from_millis(rand::random_range(0..=u64::try_from(half.as_millis()).unwrap_or(u64::MAX)));
        self.next = (self.next * 2).min(self.max);
        half + jitter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        assert_eq!(b.ceiling(), Duration::from_millis(100));
        let d: Vec<Duration> = (0..5).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(50) && d[0] <= Duration::from_millis(100), "{d:?}");
        assert!(d[1] >= Duration::from_millis(100) && d[1] <= Duration::from_millis(200), "{d:?}");
        assert!(d[4] >= Duration::from_millis(200) && d[4] <= Duration::from_millis(400), "{d:?}");
        assert_eq!(b.ceiling(), Duration::from_millis(400));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
