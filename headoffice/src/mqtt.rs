//! Connecting to the head-office broker: the subscriptions and the listener's client id. The
//! connection itself (URL, credentials, TLS, reconnect backoff) is `mqtt_setup`'s.
//!
//! The long-running listener uses a persistent session under a stable client id, so the broker
//! queues alerts while `hq` restarts; the short-lived readers (`--live`, `--follow`) use a clean
//! session under a random id, so they leave nothing behind on the broker.

/// How `hq` connects: `mqtt_setup`'s options (URL, credentials, TLS, keep-alive, client id),
/// the same crate the gateway builds its connection with.
pub use mqtt_setup::{Backoff, ClientOptions as BrokerSettings};

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("share group {0:?} must be one topic level without + # / or whitespace")]
    BadShareGroup(String),
}

/// What to subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topics {
    pub alerts: bool,
    pub state: bool,
}

/// The topic filters under `prefix`, optionally as a shared subscription of `share_group`.
pub fn filters(prefix: &str, share_group: Option<&str>, what: Topics) -> Result<Vec<String>, MqttError> {
    let mut v = Vec::new();
    if what.state {
        v.push(format!("{prefix}/+/gateway"));
        v.push(format!("{prefix}/+/devices/+"));
        v.push(format!("{prefix}/+/coverage"));
    }
    if what.alerts {
        v.push(format!("{prefix}/+/alerts/+"));
    }
    if let Some(g) = share_group {
        if g.is_empty() || g.contains(['+', '#', '/']) || g.chars().any(char::is_whitespace) {
            return Err(MqttError::BadShareGroup(g.to_string()));
        }
        v = v.into_iter().map(|f| format!("$share/{g}/{f}")).collect();
    }
    Ok(v)
}

/// A stable client id for a store: the same store reconnects to the same broker session, two
/// stores never share one. FNV-1a of the path (std's hasher may change between releases).
pub fn stable_client_id(seed: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("hq-{:012x}", h & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_filters() {
        let f = filters("branches", Some("g"), Topics { alerts: true, state: false }).unwrap();
        assert_eq!(f, vec!["$share/g/branches/+/alerts/+"]);
        assert!(filters("branches", Some("a/b"), Topics { alerts: true, state: true }).is_err());
        assert_eq!(filters("branches", None, Topics { alerts: true, state: true }).unwrap().len(), 4);
    }

    #[test]
    fn client_ids_are_stable_and_distinct() {
        assert_eq!(stable_client_id("/a"), stable_client_id("/a"));
        assert_ne!(stable_client_id("/a"), stable_client_id("/b"));
    }
}
