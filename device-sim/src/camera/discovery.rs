//! WS-Discovery responder for the simulated cameras, so that an installer's discovery tool
//! (our `branch-gateway discover`, ONVIF Device Manager, python WSDiscovery…) finds the
//! simulated branch the way it would find the real one.
//!
//! Wire format: SOAP-over-UDP, WS-Discovery 2005/04 with WS-Addressing 2004/08 — the flavour
//! ONVIF (Core spec §7) and every camera speak. A `Probe` is answered when each of its Types
//! is one a camera has (`dn:NetworkVideoTransmitter`, `tds:Device`; no Types matches
//! everything) and each of its Scopes matches; every camera that is not `Down` then sends its
//! own `ProbeMatches` datagram (its own endpoint, as a real camera on its own IP would), with
//! `RelatesTo` = the probe's `MessageID`, unicast to the probe's source address. Repeats of a
//! probe (SOAP-over-UDP sends multicast messages several times with one `MessageID`) are
//! answered once.
//!
//! Why off by default: UDP 3702 is one port per host. Parallel tests each start their own
//! responder, either on a port of their own ([`CameraFleet::start_discovery_unicast`], for
//! loopback, where multicast is unreliable) or on 3702 with `SO_REUSEADDR`/`SO_REUSEPORT`
//! ([`CameraFleet::start_discovery`]), where every responder gets its copy of a multicast probe.
//!
//! Everything arriving is bounded: datagrams over [`MAX_PROBE_BYTES`] are dropped unread, and
//! the rest goes through the bounded XML reader of `protocols::onvif::xml`. What cannot be
//! parsed is counted ([`DiscoveryStats`]) and ignored.
//!
//! [`CameraFleet::start_discovery`]: super::CameraFleet::start_discovery
//! [`CameraFleet::start_discovery_unicast`]: super::CameraFleet::start_discovery_unicast

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocols::onvif::ns;
use protocols::onvif::soap::{self, SoapVersion};
use protocols::onvif::xml::{self, escape};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::{Camera, FleetInner, SimError, lock};

/// The WS-Discovery port.
pub const WSD_PORT: u16 = 3702;
/// The WS-Discovery IPv4 multicast group.
pub const WSD_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
/// WS-Addressing as WS-Discovery 2005/04 uses it.
pub const NS_WSA: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
/// WS-Discovery 2005/04.
pub const NS_WSD: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery";
/// ONVIF network namespace (`dn:NetworkVideoTransmitter`).
pub const NS_DN: &str = "http://www.onvif.org/ver10/network/wsdl";
/// Largest probe read; a probe is well under 1 KiB, anything bigger is not one.
pub const MAX_PROBE_BYTES: usize = 16 * 1024;

const ACTION_PROBE_MATCHES: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches";
const ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";
/// Probe ids remembered to drop repeats.
const RECENT_PROBES: usize = 128;
/// Replies sent back to back before yielding, so that a large fleet does not overrun the
/// prober's receive buffer in one burst.
const BURST: usize = 32;
/// Matches the simulator's `GetDeviceInformation` model.
const HARDWARE: &str = "SimCam-1";
/// The types every simulated camera has: (namespace, local name).
const TYPES: [(&str, &str); 2] = [(NS_DN, "NetworkVideoTransmitter"), (ns::TDS, "Device")];
const MATCH_BY_RFC3986: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/rfc3986";
const MATCH_BY_RFC2396: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/rfc2396";
const MATCH_BY_STRCMP: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery/strcmp0";

/// What a responder has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscoveryStats {
    /// Probes answered (each with one datagram per camera that is up).
    pub probes_answered: u64,
    /// `ProbeMatches` datagrams sent.
    pub matches_sent: u64,
    /// Well-formed messages not answered: other WS-Discovery messages (Hello, Bye…), probes
    /// for other types or scopes, repeats of a probe already answered.
    pub not_answered: u64,
    /// Datagrams that were not a readable SOAP message or were over [`MAX_PROBE_BYTES`].
    pub malformed: u64,
}

#[derive(Default)]
struct Counters {
    probes_answered: AtomicU64,
    matches_sent: AtomicU64,
    not_answered: AtomicU64,
    malformed: AtomicU64,
}

/// A running responder; stops when dropped (or when the fleet shuts down).
#[derive(Debug)]
pub struct DiscoveryHandle {
    addr: SocketAddr,
    token: CancellationToken,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counters")
    }
}

impl DiscoveryHandle {
    /// Where unicast probes reach this responder (the multicast group is on port 3702).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> DiscoveryStats {
        let c = &self.counters;
        DiscoveryStats {
            probes_answered: c.probes_answered.load(Ordering::Relaxed),
            matches_sent: c.matches_sent.load(Ordering::Relaxed),
            not_answered: c.not_answered.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
        }
    }

    /// Stops answering and closes the sockets.
    pub fn stop(&self) {
        self.token.cancel();
    }
}

impl Drop for DiscoveryHandle {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Where to listen.
pub(super) enum Mode {
    /// Port 3702 on `ip`, member of the multicast group on `ip`'s interface.
    Multicast(IpAddr),
    /// Unicast probes only, at this address (port 0: any free port).
    Unicast(SocketAddr),
}

fn bind_err(addr: SocketAddr) -> impl FnOnce(std::io::Error) -> SimError {
    move |source| SimError::Bind { addr, source }
}

/// A non-blocking UDP socket on `addr`; shared (`SO_REUSEADDR` + `SO_REUSEPORT`) when the port
/// is fixed, so that several responders can sit on 3702. Never for port 0: an ephemeral port
/// must be ours alone, or unicast probes would be spread over strangers' sockets.
fn udp_socket(addr: SocketAddr) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.port() != 0 {
        s.set_reuse_address(true)?;
        #[cfg(unix)]
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

fn to_tokio(s: socket2::Socket, addr: SocketAddr) -> Result<UdpSocket, SimError> {
    UdpSocket::from_std(s.into()).map_err(bind_err(addr))
}

/// Starts a responder for `inner`'s cameras.
pub(super) fn start(inner: &Arc<FleetInner>, mode: Mode) -> Result<DiscoveryHandle, SimError> {
    let _enter = inner.handle.enter();
    // Sockets that receive probes, and the one that sends replies (bound to the cameras' own
    // address where there is one, so the replies come from where the cameras are).
    let (receivers, reply, addr) = match mode {
        Mode::Unicast(addr) => {
            let s = udp_socket(addr).map_err(bind_err(addr))?;
            let local = s.local_addr().ok().and_then(|a| a.as_socket()).unwrap_or(addr);
            let s = Arc::new(to_tokio(s, addr)?);
            (vec![s.clone()], s, local)
        }
        Mode::Multicast(IpAddr::V6(v6)) => {
            let addr = SocketAddr::new(IpAddr::V6(v6), WSD_PORT);
            return Err(SimError::Bind {
                addr,
                source: std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "WS-Discovery multicast is IPv4 only here; use start_discovery_unicast for IPv6",
                ),
            });
        }
        Mode::Multicast(IpAddr::V4(ip)) if ip.is_unspecified() => {
            let addr = SocketAddr::from((ip, WSD_PORT));
            let s = udp_socket(addr).map_err(bind_err(addr))?;
            s.join_multicast_v4(&WSD_GROUP, &Ipv4Addr::UNSPECIFIED).map_err(bind_err(addr))?;
            let s = Arc::new(to_tokio(s, addr)?);
            (vec![s.clone()], s, addr)
        }
        Mode::Multicast(IpAddr::V4(ip)) => {
            let addr = SocketAddr::from((ip, WSD_PORT));
            let group_addr = SocketAddr::from((WSD_GROUP, WSD_PORT));
            // Bound to the group address, the socket gets only this group's datagrams (Linux);
            // elsewhere that bind fails and the wildcard address does the job.
            let mc = udp_socket(group_addr)
                .or_else(|_| udp_socket(SocketAddr::from((Ipv4Addr::UNSPECIFIED, WSD_PORT))))
                .map_err(bind_err(group_addr))?;
            mc.join_multicast_v4(&WSD_GROUP, &ip).map_err(bind_err(addr))?;
            let uc = udp_socket(addr).map_err(bind_err(addr))?;
            let uc = Arc::new(to_tokio(uc, addr)?);
            (vec![Arc::new(to_tokio(mc, group_addr)?), uc.clone()], uc, addr)
        }
    };
    let token = inner.shutdown.child_token();
    let counters = Arc::new(Counters::default());
    let responder = Arc::new(Responder {
        inner: inner.clone(),
        reply,
        counters: counters.clone(),
        recent: Mutex::new(VecDeque::with_capacity(RECENT_PROBES)),
        instance_id: chrono::Utc::now().timestamp().max(1) as u64,
        message_number: AtomicU64::new(0),
    });
    for sock in receivers {
        let responder = responder.clone();
        let token = token.clone();
        inner.handle.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = responder.serve(sock) => {}
            }
        });
    }
    tracing::info!(%addr, "WS-Discovery responder started");
    Ok(DiscoveryHandle { addr, token, counters })
}

struct Responder {
    inner: Arc<FleetInner>,
    reply: Arc<UdpSocket>,
    counters: Arc<Counters>,
    recent: Mutex<VecDeque<String>>,
    instance_id: u64,
    message_number: AtomicU64,
}

impl Responder {
    async fn serve(&self, sock: Arc<UdpSocket>) {
        // One byte more than the limit: a full buffer means the datagram was too big.
        let mut buf = vec![0u8; MAX_PROBE_BYTES + 1];
        loop {
            match sock.recv_from(&mut buf).await {
                Ok((n, from)) if n > MAX_PROBE_BYTES => {
                    tracing::debug!(%from, bytes = n, "WS-Discovery: oversized datagram ignored");
                    self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                }
                Ok((n, from)) => self.handle(&buf[..n], from).await,
                // ICMP errors from earlier replies surface here on some systems; keep serving.
                Err(e) => {
                    tracing::debug!(error = %e, "WS-Discovery: receive error");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    async fn handle(&self, datagram: &[u8], from: SocketAddr) {
        let probe = match parse_probe(datagram) {
            Ok(Some(p)) => p,
            Ok(None) => {
                self.counters.not_answered.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(why) => {
                tracing::debug!(%from, why, "WS-Discovery: unreadable datagram ignored");
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        if !self.first_time(&probe.message_id) {
            self.counters.not_answered.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let cameras: Vec<&Arc<Camera>> =
            self.inner.cameras.iter().filter(|c| !c.faults().down && probe.matches(&scopes(c))).collect();
        if cameras.is_empty() {
            self.counters.not_answered.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.counters.probes_answered.fetch_add(1, Ordering::Relaxed);
        for (i, cam) in cameras.into_iter().enumerate() {
            if i > 0 && i % BURST == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let n = self.message_number.fetch_add(1, Ordering::Relaxed) + 1;
            let msg = probe_match(cam, &probe, self.instance_id, n);
            match self.reply.send_to(msg.as_bytes(), from).await {
                Ok(_) => {
                    self.counters.matches_sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(%from, error = %e, "WS-Discovery: reply not sent"),
            }
        }
    }

    /// True the first time a probe id is seen (among the last [`RECENT_PROBES`]).
    fn first_time(&self, id: &str) -> bool {
        let mut recent = lock(&self.recent);
        if recent.iter().any(|r| r == id) {
            return false;
        }
        if recent.len() >= RECENT_PROBES {
            recent.pop_front();
        }
        recent.push_back(id.to_string());
        true
    }
}

/// A Probe as far as answering it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe {
    pub version: SoapVersion,
    pub message_id: String,
    /// (namespace if the prefix resolved, local name) of each requested type.
    pub types: Vec<(Option<String>, String)>,
    pub scopes: Vec<String>,
    pub match_by: Option<String>,
}

impl Probe {
    /// WS-Discovery matching: every requested type and every requested scope must be the
    /// target's. A type whose prefix did not resolve matches on its local name (leniency
    /// towards sloppy clients costs nothing on the answering side).
    fn matches(&self, target_scopes: &[String]) -> bool {
        let types_ok = self.types.iter().all(|(ns, local)| {
            TYPES.iter().any(|(tns, tlocal)| tlocal == local && ns.as_deref().is_none_or(|n| n == *tns))
        });
        types_ok
            && self.scopes.iter().all(|s| target_scopes.iter().any(|t| scope_matches(s, t, self.match_by.as_deref())))
    }
}

/// `probe` matches `target` by the rule `match_by` names (RFC 3986 segment prefix by default).
fn scope_matches(probe: &str, target: &str, match_by: Option<&str>) -> bool {
    match match_by {
        None | Some("") | Some(MATCH_BY_RFC3986) | Some(MATCH_BY_RFC2396) => {
            let p = probe.trim_end_matches('/');
            let t = target.trim_end_matches('/');
            t.eq_ignore_ascii_case(p)
                || (t.len() > p.len()
                    && t.get(..p.len()).is_some_and(|head| head.eq_ignore_ascii_case(p))
                    && t.as_bytes().get(p.len()) == Some(&b'/'))
        }
        Some(MATCH_BY_STRCMP) => probe == target,
        Some(_) => false,
    }
}

/// Reads a datagram: `Ok(Some)` for a WS-Discovery Probe, `Ok(None)` for any other SOAP
/// message, `Err` for what is not a readable SOAP envelope or a probe without a MessageID.
pub(crate) fn parse_probe(datagram: &[u8]) -> Result<Option<Probe>, &'static str> {
    let text = std::str::from_utf8(datagram).map_err(|_| "not UTF-8")?;
    let root = xml::parse(text, soap::limits(MAX_PROBE_BYTES)).map_err(|_| "not well-formed XML within limits")?;
    let version = if root.is(ns::SOAP12, "Envelope") {
        SoapVersion::V12
    } else if root.is(ns::SOAP11, "Envelope") {
        SoapVersion::V11
    } else {
        return Err("not a SOAP envelope");
    };
    let env_ns = version.namespace();
    let body = root.child_ns(env_ns, "Body").ok_or("no SOAP Body")?;
    let Some(op) = body.children.first().filter(|op| op.is(NS_WSD, "Probe")) else {
        return Ok(None);
    };
    let message_id = root
        .child_ns(env_ns, "Header")
        .and_then(|h| h.child_ns(NS_WSA, "MessageID"))
        .map(|m| m.text.trim().to_string())
        .filter(|m| !m.is_empty())
        .ok_or("probe without a MessageID")?;
    let mut types = Vec::new();
    if let Some(t) = op.child_ns(NS_WSD, "Types") {
        // Namespace declarations reach the tree as attributes named by their prefix; look them
        // up from the Types element outwards.
        let scope_chain = [t, op, body, &root];
        for qname in t.text.split_whitespace() {
            let (ns, local) = match qname.split_once(':') {
                Some((prefix, local)) => {
                    (scope_chain.iter().find_map(|e| e.attr(prefix)).map(str::to_string), local.to_string())
                }
                None => (None, qname.to_string()),
            };
            types.push((ns, local));
        }
    }
    let (scopes, match_by) = match op.child_ns(NS_WSD, "Scopes") {
        Some(s) => (s.text.split_whitespace().map(str::to_string).collect(), s.attr("MatchBy").map(str::to_string)),
        None => (Vec::new(), None),
    };
    Ok(Some(Probe { version, message_id, types, scopes, match_by }))
}

/// The camera's stable endpoint reference: a name-based UUID of its address and id, so it
/// survives restarts of the simulator at the same address.
pub(crate) fn endpoint(cam: &Camera) -> String {
    let name = format!("bsg-device-sim:{}:{}", cam.host, cam.spec.id);
    format!("urn:uuid:{}", uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()))
}

/// The scopes a camera announces. The name scope is spelled as `GetScopes` spells it
/// (camera/soap.rs: letters, digits and `-_.` kept, the rest `_`).
fn scopes(cam: &Camera) -> Vec<String> {
    let name: String =
        cam.spec.name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    vec![
        "onvif://www.onvif.org/type/video_encoder".to_string(),
        "onvif://www.onvif.org/Profile/Streaming".to_string(),
        format!("onvif://www.onvif.org/name/{name}"),
        format!("onvif://www.onvif.org/hardware/{HARDWARE}"),
    ]
}

fn probe_match(cam: &Camera, probe: &Probe, instance_id: u64, message_number: u64) -> String {
    let scopes = scopes(cam).join(" ");
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "<s:Envelope xmlns:s=\"{env}\" xmlns:a=\"{wsa}\" xmlns:d=\"{wsd}\" xmlns:dn=\"{dn}\" xmlns:tds=\"{tds}\">",
            "<s:Header>",
            "<a:MessageID>urn:uuid:{mid}</a:MessageID>",
            "<a:RelatesTo>{relates}</a:RelatesTo>",
            "<a:To>{anon}</a:To>",
            "<a:Action>{action}</a:Action>",
            "<d:AppSequence InstanceId=\"{iid}\" MessageNumber=\"{n}\"/>",
            "</s:Header>",
            "<s:Body><d:ProbeMatches><d:ProbeMatch>",
            "<a:EndpointReference><a:Address>{epr}</a:Address></a:EndpointReference>",
            "<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>",
            "<d:Scopes>{scopes}</d:Scopes>",
            "<d:XAddrs>{xaddrs}</d:XAddrs>",
            "<d:MetadataVersion>1</d:MetadataVersion>",
            "</d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"
        ),
        env = probe.version.namespace(),
        wsa = NS_WSA,
        wsd = NS_WSD,
        dn = NS_DN,
        tds = ns::TDS,
        mid = uuid::Uuid::new_v4(),
        relates = escape(&probe.message_id),
        anon = ANONYMOUS,
        action = ACTION_PROBE_MATCHES,
        iid = instance_id,
        n = message_number,
        epr = escape(&endpoint(cam)),
        scopes = escape(&scopes),
        xaddrs = escape(&cam.info().device_url),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocols::onvif::xml::Element;

    fn parse_reply(text: &str) -> Element {
        xml::parse(text, xml::Limits::default()).unwrap()
    }

    fn probe_xml(types: &str, decls: &str, id: &str) -> String {
        format!(
            "<s:Envelope xmlns:s=\"{}\" xmlns:a=\"{NS_WSA}\" xmlns:d=\"{NS_WSD}\" {decls}><s:Header><a:MessageID>{id}</a:MessageID><a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action></s:Header><s:Body><d:Probe>{types}</d:Probe></s:Body></s:Envelope>",
            ns::SOAP12
        )
    }

    #[test]
    fn probe_types_resolve_through_declarations() {
        let x = probe_xml(
            "<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>",
            &format!("xmlns:dn=\"{NS_DN}\" xmlns:tds=\"{}\"", ns::TDS),
            "uuid:1",
        );
        let p = parse_probe(x.as_bytes()).unwrap().unwrap();
        assert_eq!(p.message_id, "uuid:1");
        assert_eq!(p.types[0], (Some(NS_DN.to_string()), "NetworkVideoTransmitter".to_string()));
        assert!(p.matches(&[]));
    }

    #[test]
    fn foreign_types_and_scopes_do_not_match() {
        let x = probe_xml(
            "<d:Types>p:Device</d:Types>",
            "xmlns:p=\"http://schemas.xmlsoap.org/ws/2006/02/devprof\"",
            "uuid:2",
        );
        assert!(!parse_probe(x.as_bytes()).unwrap().unwrap().matches(&[]));
        let x = probe_xml("", "", "uuid:3");
        let p = parse_probe(x.as_bytes()).unwrap().unwrap();
        assert!(p.types.is_empty() && p.matches(&[]), "no Types matches everything");
        let x = probe_xml("<d:Scopes>onvif://www.onvif.org/name</d:Scopes>", "", "uuid:4");
        let p = parse_probe(x.as_bytes()).unwrap().unwrap();
        assert!(p.matches(&["onvif://www.onvif.org/name/Cam_1".into()]));
        assert!(!p.matches(&["onvif://www.onvif.org/names".into()]));
    }

    #[test]
    fn bad_datagrams_are_errors_not_panics() {
        for bad in [&b"\xff\xfe"[..], b"", b"<a>", b"<!DOCTYPE x [<!ENTITY a \"b\">]><x/>", b"<x/>"] {
            assert!(parse_probe(bad).is_err(), "{bad:?}");
        }
        let no_id = probe_xml("", "", "");
        assert!(parse_probe(no_id.as_bytes()).is_err());
        let deep = "<a>".repeat(1000);
        assert!(parse_probe(deep.as_bytes()).is_err());
        let hello = format!(
            "<s:Envelope xmlns:s=\"{}\" xmlns:d=\"{NS_WSD}\"><s:Body><d:Hello/></s:Body></s:Envelope>",
            ns::SOAP12
        );
        assert_eq!(parse_probe(hello.as_bytes()), Ok(None));
    }

    #[tokio::test]
    async fn answers_unicast_probes_once_per_camera_and_message_id() {
        use super::super::{AuthMode, CameraFault, CameraFleet, CameraSpec};
        let spec = |id: &str| CameraSpec {
            id: id.into(),
            name: format!("Cam {id}"),
            username: "u".into(),
            password: "p".into(),
            auth: AuthMode::UsernameToken,
        };
        let lo = IpAddr::from([127, 0, 0, 1]);
        let fleet = CameraFleet::start(lo, vec![spec("a"), spec("b")]).await.unwrap();
        fleet.set_fault("b", CameraFault::Down, true).unwrap();
        let h = fleet.start_discovery_unicast(SocketAddr::new(lo, 0)).unwrap();
        let client = UdpSocket::bind((lo, 0)).await.unwrap();
        let probe = probe_xml("", "", "uuid:probe-1");
        for _ in 0..3 {
            client.send_to(probe.as_bytes(), h.local_addr()).await.unwrap();
        }
        let mut buf = vec![0u8; 65536];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf)).await.unwrap().unwrap();
        let reply = parse_reply(std::str::from_utf8(&buf[..n]).unwrap());
        assert_eq!(reply.text_at(&["Header", "RelatesTo"]), Some("uuid:probe-1"));
        let pm = reply.path(&["Body", "ProbeMatches", "ProbeMatch"]).unwrap();
        assert_eq!(pm.text_at(&["XAddrs"]), Some(fleet.cameras()[0].device_url.as_str()));
        assert!(pm.text_at(&["Scopes"]).unwrap().contains("onvif://www.onvif.org/name/Cam_a"));
        // Repeats and the Down camera: nothing more arrives.
        let more = tokio::time::timeout(Duration::from_millis(300), client.recv_from(&mut buf)).await;
        assert!(more.is_err(), "one reply only");
        let s = h.stats();
        assert_eq!((s.probes_answered, s.matches_sent, s.not_answered), (1, 1, 2));
        fleet.shutdown().await;
    }
}
