//! A TCP proxy standing in for the branch's WAN link to head office, so that a scenario can
//! cut the gateway's MQTT connection (`link = "down"`) and restore it, on schedule, without
//! touching the broker or the host's firewall.
//!
//! The emitted site config points the gateway's `broker` at the proxy's listen address; the
//! proxy forwards to the real broker. Down means what a dead link looks like to the gateway's
//! TCP stack when the router in between resets: every open connection is dropped and every
//! new one is closed right after it is accepted. Bytes are never altered, so TLS (`mqtts://`)
//! passes through as well (the broker's certificate must then be valid for the proxy's address).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// How long the proxy waits for the broker when a gateway connects.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections forwarded at once (a gateway needs one).
const MAX_CONNECTIONS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot listen on {addr} for the link proxy: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("broker URL {0:?} has no host (fix: write mqtt://HOST:PORT)")]
    BadBroker(String),
}

/// `host:port` of an `mqtt://` or `mqtts://` URL (default ports 1883 and 8883).
pub fn broker_target(url: &str) -> Result<String, LinkError> {
    let (rest, default_port) = if let Some(r) = url.strip_prefix("mqtts://") {
        (r, 8883)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (r, 1883)
    } else {
        return Err(LinkError::BadBroker(url.into()));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let hostport = authority.rsplit('@').next().unwrap_or_default();
    if hostport.is_empty() || hostport.starts_with(':') {
        return Err(LinkError::BadBroker(url.into()));
    }
    let has_port = match hostport.rfind(']') {
        Some(end) => hostport[end..].contains(':'),
        None => hostport.contains(':'),
    };
    Ok(if has_port { hostport.to_string() } else { format!("{hostport}:{default_port}") })
}

/// A running link proxy. Dropping it does not stop it; call [`LinkProxy::shutdown`].
#[derive(Debug)]
pub struct LinkProxy {
    listen: SocketAddr,
    target: String,
    up: watch::Sender<bool>,
    cancel: CancellationToken,
}

impl LinkProxy {
    /// Listens on `listen` (port 0: a free port) and forwards to `target` (`host:port`); up.
    pub async fn start(listen: SocketAddr, target: String) -> Result<LinkProxy, LinkError> {
        let listener = TcpListener::bind(listen).await.map_err(|source| LinkError::Bind { addr: listen, source })?;
        let listen = listener.local_addr().map_err(|source| LinkError::Bind { addr: listen, source })?;
        let (up, _) = watch::channel(true);
        let cancel = CancellationToken::new();
        let proxy = LinkProxy { listen, target: target.clone(), up, cancel: cancel.clone() };
        let up_rx = proxy.up.subscribe();
        tokio::spawn(accept_loop(listener, Arc::from(target), up_rx, cancel));
        Ok(proxy)
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    /// Cuts (`false`) or restores (`true`) the link; cutting drops every open connection.
    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
        info!(listen = %self.listen, target = %self.target, up, "link");
    }

    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

async fn accept_loop(listener: TcpListener, target: Arc<str>, up: watch::Receiver<bool>, cancel: CancellationToken) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let (client, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                debug!(error = %e, "link proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if !*up.borrow() {
            debug!(%peer, "link is down: closing the new connection");
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            debug!(%peer, "link proxy: too many connections");
            continue;
        };
        let (target, up, cancel) = (target.clone(), up.clone(), cancel.clone());
        tokio::spawn(async move {
            let _permit = permit;
            forward(client, &target, up, cancel).await;
        });
    }
}

async fn forward(mut client: TcpStream, target: &str, mut up: watch::Receiver<bool>, cancel: CancellationToken) {
    let mut server = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            debug!(target, error = %e, "link proxy: broker refused");
            return;
        }
        Err(_) => {
            debug!(target, "link proxy: broker did not answer");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = up.wait_for(|u| !*u) => debug!("link cut: dropping a connection"),
        r = tokio::io::copy_bidirectional(&mut client, &mut server) => {
            debug!(result = ?r.map_err(|e| e.to_string()), "link proxy connection ended");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_targets() {
        assert_eq!(broker_target("mqtt://127.0.0.1:1884").unwrap(), "127.0.0.1:1884");
        assert_eq!(broker_target("mqtt://broker.example").unwrap(), "broker.example:1883");
        assert_eq!(broker_target("mqtts://[::1]").unwrap(), "[::1]:8883");
        assert_eq!(broker_target("mqtts://[::1]:9000/").unwrap(), "[::1]:9000");
        assert!(broker_target("http://x").is_err());
        assert!(broker_target("mqtt://").is_err());
    }
}
