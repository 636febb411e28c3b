//! Connecting to the head-office broker: URL, credentials, TLS, the subscriptions, and the
//! reconnect backoff rumqttc does not have.
//!
//! The long-running listener uses a persistent session under a stable client id, so the broker
//! queues alerts while `hq` restarts; the short-lived readers (`--live`, `--follow`) use a clean
//! session under a random id, so they leave nothing behind on the broker.

use std::path::PathBuf;
use std::time::Duration;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("broker URL {0:?} is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")]
    BadUrl(String),
    #[error("cannot read {what} {path}: {source}")]
    ReadFile { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("a client certificate needs both --cert-file and --key-file")]
    HalfClientAuth,
    #[error("share group {0:?} must be one topic level without + # / or whitespace")]
    BadShareGroup(String),
}

/// TLS material from files.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// How to reach the broker.
#[derive(Clone)]
pub struct BrokerSettings {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub tls_files: TlsFiles,
    pub username: Option<String>,
    pub password: Option<String>,
    pub client_id: String,
    /// `false` for the listener: a persistent session.
    pub clean_session: bool,
    pub keep_alive: Duration,
}

impl std::fmt::Debug for BrokerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("tls_files", &self.tls_files)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("client_id", &self.client_id)
            .field("clean_session", &self.clean_session)
            .finish()
    }
}

/// `mqtt://host:port` / `tcp://…` (plain, default port 1883) or `mqtts://…` / `ssl://…` (TLS,
/// default port 8883). Returns (host, port, tls).
pub fn parse_url(url: &str) -> Result<(String, u16, bool), MqttError> {
    let bad = || MqttError::BadUrl(url.to_string());
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let tls = match scheme {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        _ => return Err(bad()),
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') {
        return Err(bad());
    }
    let default_port = if tls { 8883 } else { 1883 };
    // [v6]:port, host:port, host
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => default_port,
            None => return Err(bad()),
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
            None => (rest.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host, port, tls))
}

impl BrokerSettings {
    /// The rumqttc options. Reads the TLS files.
    pub fn options(&self) -> Result<MqttOptions, MqttError> {
        let mut o = MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
        o.set_keep_alive(self.keep_alive.max(Duration::from_secs(1)));
        o.set_clean_session(self.clean_session);
        // Coverage reports of big branches are a few KiB; leave ample room.
        o.set_max_packet_size(1 << 20, 1 << 20);
        if let Some(user) = &self.username {
            o.set_credentials(user.clone(), self.password.clone().unwrap_or_default());
        }
        if self.tls || self.tls_files.ca_file.is_some() {
            o.set_transport(self.transport()?);
        }
        Ok(o)
    }

    fn transport(&self) -> Result<Transport, MqttError> {
        let read = |what: &'static str, p: &PathBuf| {
            std::fs::read(p).map_err(|source| MqttError::ReadFile { what, path: p.clone(), source })
        };
        let client_auth = match (&self.tls_files.cert_file, &self.tls_files.key_file) {
            (Some(c), Some(k)) => Some((read("the client certificate", c)?, read("the client key", k)?)),
            (None, None) => None,
            _ => return Err(MqttError::HalfClientAuth),
        };
        match &self.tls_files.ca_file {
            Some(ca) => {
                let ca = read("the CA file", ca)?;
                Ok(Transport::tls_with_config(TlsConfiguration::Simple { ca, alpn: None, client_auth }))
            }
            None if client_auth.is_none() => Ok(Transport::tls_with_default_config()),
            None => Err(MqttError::HalfClientAuth),
        }
    }
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

/// Exponential backoff with "equal jitter": half of the delay fixed, half random.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { min, max, next: min }
    }
    pub fn reset(&mut self) {
        self.next = self.min;
    }
    pub fn next_delay(&mut self) -> Duration {
        let half = self.next / 2;
        let jitter = Duration::from_millis(rand::random_range(0..=half.as_millis() as u64));
        self.next = (self.next * 2).min(self.max);
        half + jitter
    }
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
    fn urls() {
        assert_eq!(parse_url("mqtt://127.0.0.1:1884").unwrap(), ("127.0.0.1".into(), 1884, false));
        assert_eq!(parse_url("mqtts://hq.example").unwrap(), ("hq.example".into(), 8883, true));
        assert_eq!(parse_url("mqtt://[::1]:1883").unwrap(), ("::1".into(), 1883, false));
        assert!(parse_url("http://x:1").is_err());
        assert!(parse_url("mqtt://x:notaport").is_err());
        assert!(parse_url("mqtt://").is_err());
    }

    #[test]
    fn shared_filters() {
        let f = filters("branches", Some("g"), Topics { alerts: true, state: false }).unwrap();
        assert_eq!(f, vec!["$share/g/branches/+/alerts/+"]);
        assert!(filters("branches", Some("a/b"), Topics { alerts: true, state: true }).is_err());
        assert_eq!(filters("branches", None, Topics { alerts: true, state: true }).unwrap().len(), 4);
    }

    #[test]
    fn backoff_grows_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let d: Vec<Duration> = (0..5).map(|_| b.next_delay()).collect();
        assert!(d[0] >= Duration::from_millis(50) && d[0] <= Duration::from_millis(100));
        assert!(d[4] >= Duration::from_millis(200) && d[4] <= Duration::from_millis(400));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn client_ids_are_stable_and_distinct() {
        assert_eq!(stable_client_id("/a"), stable_client_id("/a"));
        assert_ne!(stable_client_id("/a"), stable_client_id("/b"));
    }
}
