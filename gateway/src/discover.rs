//! `branch-gateway discover`: finds the ONVIF devices on the branch LAN with WS-Discovery and
//! compares them with the site config, so that an installer commissioning a branch sees at
//! once which configured cameras answer, which do not, and which devices are on the network
//! but missing from the config.
//!
//! Why not `oxvif::discovery::probe_result_on` (our rule is "oxvif for the ONVIF client"): it
//! has the timeout and the interface choice, but it returns only the devices it could read —
//! malformed and unrelated replies vanish without a count (and a lenient string scanner, not
//! a bounded parser, reads the malformed ones), it does not say which address a reply came
//! from, and its unicast probe only goes to port 3702, which parallel tests on loopback cannot
//! share. An installer needs "3 devices answered something unreadable" as much as the list,
//! so the probe/collect loop is ours; oxvif still supplies the interface list
//! ([`oxvif::discovery_interfaces`]), and our probe is the same message oxvif and ONVIF
//! Device Manager send (WS-Addressing 2004/08, one probe per type because WS-Discovery
//! matches Types with AND), which is what old camera firmware answers.
//!
//! Everything received is bounded: at most [`MAX_REPLY_BYTES`] per datagram (larger ones are
//! counted as oversized, unread), at most [`MAX_DATAGRAMS`] per run, and every reply goes
//! through the bounded XML reader of `protocols::onvif::xml`. Nothing here prints: the CLI
//! renders a [`Report`] with [`render_text`] or as JSON.

use i18n::{Lang, tr};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use protocols::onvif::ns;
use protocols::onvif::soap;
use protocols::onvif::xml::{self, Element};
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::CameraConfig;

/// The WS-Discovery port.
pub const WSD_PORT: u16 = 3702;
/// The WS-Discovery IPv4 multicast group.
pub const WSD_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
/// Largest reply read. A ProbeMatches is 1–2 KiB; this leaves room for chatty firmware.
pub const MAX_REPLY_BYTES: usize = 32 * 1024;
/// Most datagrams looked at in one run; later ones are counted as dropped.
pub const MAX_DATAGRAMS: usize = 10_000;
/// Most addresses of malformed replies kept for the report.
const MAX_MALFORMED_SOURCES: usize = 64;
/// The probes are sent a second time after this (UDP is lossy; responders drop the repeat by
/// its MessageID, and we merge replies by endpoint anyway).
const RESEND_AFTER: Duration = Duration::from_millis(250);
/// Multicast TTL, as oxvif: enough for a camera VLAN one or two IGMP-routed hops away.
const MULTICAST_TTL: u32 = 32;

const NS_WSA: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
const NS_WSD: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery";
const NS_DN: &str = "http://www.onvif.org/ver10/network/wsdl";
const SCOPE_NAME: &str = "onvif://www.onvif.org/name/";
const SCOPE_HARDWARE: &str = "onvif://www.onvif.org/hardware/";

/// What to probe and for how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long to collect replies.
    pub timeout: Duration,
    /// Local addresses to probe from. Empty: every non-loopback IPv4 interface (multicast), or
    /// the wildcard address (unicast).
    pub interfaces: Vec<IpAddr>,
    /// Unicast destinations. Empty: the multicast group on every chosen interface.
    pub targets: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("cannot probe from {addr}: {source}")]
    Socket {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("multicast discovery needs IPv4 interface addresses; {0} is IPv6 (use --target for IPv6 devices)")]
    Ipv6Multicast(IpAddr),
    #[error("cannot list the network interfaces: {0}")]
    Interfaces(#[source] std::io::Error),
}

/// One device that answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// Endpoint reference (usually `urn:uuid:…`): the device's identity.
    pub endpoint: String,
    /// Device service URLs.
    pub xaddrs: Vec<String>,
    pub types: Vec<String>,
    pub scopes: Vec<String>,
    /// From the `onvif://www.onvif.org/name/…` scope, percent-decoded.
    pub name: Option<String>,
    /// From the `onvif://www.onvif.org/hardware/…` scope, percent-decoded.
    pub hardware: Option<String>,
    pub metadata_version: Option<String>,
    /// Where the (first) reply came from.
    pub from: SocketAddr,
}

/// What one run found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// One entry per endpoint, in order of first reply.
    pub devices: Vec<Device>,
    /// Where the probes were sent (multicast group per interface, or the targets).
    pub probed: Vec<String>,
    /// Datagrams received.
    pub replies: u64,
    /// Replies that were not a readable ProbeMatches (bad UTF-8, bad XML, over limits, no
    /// endpoint…).
    pub malformed: u64,
    /// Replies over [`MAX_REPLY_BYTES`].
    pub oversized: u64,
    /// Well-formed replies that were not ProbeMatches for our probes.
    pub unrelated: u64,
    /// Datagrams beyond [`MAX_DATAGRAMS`].
    pub dropped: u64,
    /// Who sent malformed or oversized replies (at most 64, first seen first).
    pub malformed_from: Vec<SocketAddr>,
}

/// Why a datagram was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Not a readable ProbeMatches.
    Malformed(String),
    /// A readable SOAP message, but not a reply to our probes.
    Unrelated,
}

/// A WS-Discovery Probe for one type (`dn:NetworkVideoTransmitter` or `tds:Device`), in the
/// format ONVIF Device Manager and oxvif send.
pub fn probe_message(message_id: &str, device_type: ProbeType) -> String {
    let (types, decl) = match device_type {
        ProbeType::NetworkVideoTransmitter => ("dn:NetworkVideoTransmitter", format!(" xmlns:dn=\"{NS_DN}\"")),
        ProbeType::Device => ("tds:Device", format!(" xmlns:tds=\"{}\"", ns::TDS)),
    };
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>",
            "<s:Envelope xmlns:s=\"{soap}\" xmlns:wsa=\"{wsa}\" xmlns:wsd=\"{wsd}\"{decl}>",
            "<s:Header>",
            "<wsa:Action s:mustUnderstand=\"1\">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</wsa:Action>",
            "<wsa:MessageID>{id}</wsa:MessageID>",
            "<wsa:ReplyTo><wsa:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:Address></wsa:ReplyTo>",
            "<wsa:To s:mustUnderstand=\"1\">urn:schemas-xmlsoap-org:ws:2005:04:discovery</wsa:To>",
            "</s:Header>",
            "<s:Body><wsd:Probe><wsd:Types>{types}</wsd:Types></wsd:Probe></s:Body>",
            "</s:Envelope>"
        ),
        soap = ns::SOAP12,
        wsa = NS_WSA,
        wsd = NS_WSD,
        decl = decl,
        id = xml::escape(message_id),
        types = types,
    )
}

/// The two device types we probe for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeType {
    NetworkVideoTransmitter,
    Device,
}

/// Reads one reply datagram. `probe_ids` are the MessageIDs we sent: a reply whose
/// `RelatesTo` names another message is [`Rejected::Unrelated`]; one without `RelatesTo` is
/// accepted (some firmware omits it).
pub fn parse_reply(datagram: &[u8], from: SocketAddr, probe_ids: &[String]) -> Result<Vec<Device>, Rejected> {
    let malformed = |why: &str| Rejected::Malformed(why.to_string());
    if datagram.len() > MAX_REPLY_BYTES {
        return Err(malformed("over the size limit"));
    }
    let text = std::str::from_utf8(datagram).map_err(|_| malformed("not UTF-8"))?;
    let root = xml::parse(text, soap::limits(MAX_REPLY_BYTES)).map_err(|e| Rejected::Malformed(e.to_string()))?;
    let env_ns = if root.is(ns::SOAP12, "Envelope") {
        ns::SOAP12
    } else if root.is(ns::SOAP11, "Envelope") {
        ns::SOAP11
    } else {
        return Err(malformed("not a SOAP envelope"));
    };
    let body = root.child_ns(env_ns, "Body").ok_or_else(|| malformed("no SOAP Body"))?;
    // Local names only below the envelope: firmware varies the discovery namespace.
    let Some(matches) = body.children.first().filter(|e| e.name == "ProbeMatches") else {
        return Err(Rejected::Unrelated);
    };
    let relates_to = root.child_ns(env_ns, "Header").and_then(|h| h.child("RelatesTo")).map(|r| r.text.trim());
    if let Some(r) = relates_to
        && !probe_ids.iter().any(|id| id == r)
    {
        return Err(Rejected::Unrelated);
    }
    let devices: Vec<Device> =
        matches.children.iter().filter(|e| e.name == "ProbeMatch").filter_map(|pm| device(pm, from)).collect();
    if devices.is_empty() {
        return Err(malformed("ProbeMatches without a usable ProbeMatch (no endpoint address)"));
    }
    Ok(devices)
}

fn words(e: Option<&Element>) -> Vec<String> {
    e.map(|e| e.text.split_whitespace().map(str::to_string).collect()).unwrap_or_default()
}

fn device(pm: &Element, from: SocketAddr) -> Option<Device> {
    let endpoint = pm.text_at(&["EndpointReference", "Address"]).filter(|a| !a.is_empty())?.to_string();
    let scopes = words(pm.child("Scopes"));
    let scope = |prefix: &str| scopes.iter().find_map(|s| s.strip_prefix(prefix)).map(percent_decode);
    Some(Device {
        name: scope(SCOPE_NAME),
        hardware: scope(SCOPE_HARDWARE),
        endpoint,
        xaddrs: words(pm.child("XAddrs")),
        types: words(pm.child("Types")),
        metadata_version: pm.text_at(&["MetadataVersion"]).map(str::to_string),
        scopes,
        from,
    })
}

/// `%20`-style escapes, as ONVIF scope values use them; bad escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One datagram as a receiver task saw it.
enum Datagram {
    Data(SocketAddr, Vec<u8>),
    Oversized(SocketAddr),
}

fn socket_for(local: SocketAddr, multicast: bool) -> Result<UdpSocket, DiscoverError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |source| DiscoverError::Socket { addr: local, source };
    let s = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    s.bind(&local.into()).map_err(err)?;
    if let (true, IpAddr::V4(ip)) = (multicast, local.ip()) {
        s.set_multicast_ttl_v4(MULTICAST_TTL).map_err(err)?;
        if !ip.is_unspecified() {
            // Without this the kernel picks the interface by route, whatever we bound to.
            s.set_multicast_if_v4(&ip).map_err(err)?;
        }
    }
    s.set_nonblocking(true).map_err(err)?;
    UdpSocket::from_std(s.into()).map_err(err)
}

/// Sends the probes and collects replies until `opts.timeout`. Fails only when no socket can
/// be opened; everything a device sends is counted, never an error.
pub async fn discover(opts: &Options) -> Result<Report, DiscoverError> {
    let multicast = opts.targets.is_empty();
    let locals: Vec<SocketAddr> = if multicast {
        let mut ips = Vec::new();
        for ip in &opts.interfaces {
            match ip {
                IpAddr::V4(v4) => ips.push(*v4),
                IpAddr::V6(_) => return Err(DiscoverError::Ipv6Multicast(*ip)),
            }
        }
        if ips.is_empty() {
            ips = oxvif::discovery_interfaces()
                .map_err(DiscoverError::Interfaces)?
                .into_iter()
                .map(|i| i.address)
                .collect();
        }
        if ips.is_empty() {
            // No non-loopback interface: let the routing table choose.
            ips.push(Ipv4Addr::UNSPECIFIED);
        }
        ips.into_iter().map(|ip| SocketAddr::new(IpAddr::V4(ip), 0)).collect()
    } else {
        let mut locals: Vec<SocketAddr> = opts.interfaces.iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
        for t in &opts.targets {
            if !locals.iter().any(|l| l.is_ipv4() == t.is_ipv4()) {
                let any: IpAddr =
                    if t.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { std::net::Ipv6Addr::UNSPECIFIED.into() };
                locals.push(SocketAddr::new(any, 0));
            }
        }
        locals
    };
    let mut sockets = Vec::with_capacity(locals.len());
    for local in &locals {
        sockets.push(Arc::new(socket_for(*local, multicast)?));
    }
    let group = SocketAddr::from((WSD_GROUP, WSD_PORT));
    // (socket index, destination) pairs: each destination from a socket of its family.
    let routes: Vec<(usize, SocketAddr)> = if multicast {
        (0..sockets.len()).map(|i| (i, group)).collect()
    } else {
        opts.targets
            .iter()
            .filter_map(|t| locals.iter().position(|l| l.is_ipv4() == t.is_ipv4()).map(|i| (i, *t)))
            .collect()
    };
    let ids = [format!("urn:uuid:{}", uuid::Uuid::new_v4()), format!("urn:uuid:{}", uuid::Uuid::new_v4())];
    let probes =
        [probe_message(&ids[0], ProbeType::NetworkVideoTransmitter), probe_message(&ids[1], ProbeType::Device)];

    let mut report = Report {
        probed: routes
            .iter()
            .map(|(i, dest)| match locals.get(*i) {
                Some(l) if multicast => format!("{dest} via {}", l.ip()),
                _ => dest.to_string(),
            })
            .collect(),
        ..Report::default()
    };
    let deadline = Instant::now() + opts.timeout;
    let (tx, mut rx) = mpsc::channel::<Datagram>(256);
    let mut receivers = tokio::task::JoinSet::new();
    for sock in &sockets {
        let (sock, tx) = (sock.clone(), tx.clone());
        receivers.spawn(async move {
            // One byte over the limit: a full buffer means the datagram was larger.
            let mut buf = vec![0u8; MAX_REPLY_BYTES + 1];
            loop {
                let msg = match tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
                    Err(_) => return,
                    Ok(Ok((n, from))) if n > MAX_REPLY_BYTES => Datagram::Oversized(from),
                    Ok(Ok((n, from))) => Datagram::Data(from, buf.get(..n).unwrap_or_default().to_vec()),
                    // ICMP port-unreachable from a unicast target and the like: keep listening.
                    Ok(Err(_)) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    send_probes(&sockets, &routes, &probes).await;
    let resend_at = Instant::now() + RESEND_AFTER;
    let mut resent = false;
    let mut index: HashMap<String, usize> = HashMap::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(resend_at), if !resent && resend_at < deadline => {
                resent = true;
                send_probes(&sockets, &routes, &probes).await;
            }
            msg = rx.recv() => match msg {
                Some(m) => take(&mut report, &mut index, m, &ids),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    receivers.abort_all();
    Ok(report)
}

async fn send_probes(sockets: &[Arc<UdpSocket>], routes: &[(usize, SocketAddr)], probes: &[String]) {
    for (i, dest) in routes {
        let Some(sock) = sockets.get(*i) else { continue };
        for p in probes {
            if let Err(e) = sock.send_to(p.as_bytes(), dest).await {
                tracing::debug!(%dest, error = %e, "probe not sent");
            }
        }
    }
}

fn take(report: &mut Report, index: &mut HashMap<String, usize>, msg: Datagram, ids: &[String]) {
    report.replies += 1;
    if report.replies > MAX_DATAGRAMS as u64 {
        report.dropped += 1;
        return;
    }
    let (from, data) = match msg {
        Datagram::Oversized(from) => {
            report.oversized += 1;
            note_bad(from, report);
            return;
        }
        Datagram::Data(from, data) => (from, data),
    };
    match parse_reply(&data, from, ids) {
        Ok(devices) => {
            for d in devices {
                match index.get(&d.endpoint).and_then(|&i| report.devices.get_mut(i)) {
                    Some(known) => {
                        merge(&mut known.xaddrs, d.xaddrs);
                        merge(&mut known.scopes, d.scopes);
                        merge(&mut known.types, d.types);
                    }
                    None => {
                        index.insert(d.endpoint.clone(), report.devices.len());
                        report.devices.push(d);
                    }
                }
            }
        }
        Err(Rejected::Unrelated) => report.unrelated += 1,
        Err(Rejected::Malformed(why)) => {
            tracing::debug!(%from, why, "malformed discovery reply");
            report.malformed += 1;
            note_bad(from, report);
        }
    }
}

fn note_bad(from: SocketAddr, report: &mut Report) {
    if report.malformed_from.len() < MAX_MALFORMED_SOURCES && !report.malformed_from.contains(&from) {
        report.malformed_from.push(from);
    }
}

fn merge(into: &mut Vec<String>, more: Vec<String>) {
    for m in more {
        if !into.contains(&m) {
            into.push(m);
        }
    }
}

/// `(host, port)` of an http(s) URL, host lower-cased, default ports filled in.
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let u = reqwest::Url::parse(url.trim()).ok()?;
    Some((u.host_str()?.to_ascii_lowercase(), u.port_or_known_default()?))
}

/// A configured camera that answered, and the device that did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answered {
    pub id: String,
    pub onvif: String,
    pub endpoint: String,
    pub xaddr: String,
}

/// A configured camera that did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    pub id: String,
    pub onvif: String,
}

/// The site config against what answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigMatch {
    pub answered: Vec<Answered>,
    pub missing: Vec<Missing>,
    /// Endpoints of found devices that no configured camera points at.
    pub unconfigured: Vec<String>,
}

/// Matches configured cameras to found devices by the host and port of the `onvif` URL
/// against each device's XAddrs (paths differ between firmware; the address does not).
pub fn match_config(cameras: &[CameraConfig], devices: &[Device]) -> ConfigMatch {
    let mut out = ConfigMatch::default();
    let mut used = vec![false; devices.len()];
    for cam in cameras {
        let want = host_port(&cam.onvif);
        let hit = want.as_ref().and_then(|w| {
            devices
                .iter()
                .enumerate()
                .find_map(|(i, d)| d.xaddrs.iter().find(|x| host_port(x).as_ref() == Some(w)).map(|x| (i, d, x)))
        });
        match hit {
            Some((i, d, x)) => {
                if let Some(u) = used.get_mut(i) {
                    *u = true;
                }
                out.answered.push(Answered {
                    id: cam.id.clone(),
                    onvif: cam.onvif.clone(),
                    endpoint: d.endpoint.clone(),
                    xaddr: x.clone(),
                });
            }
            None => out.missing.push(Missing { id: cam.id.clone(), onvif: cam.onvif.clone() }),
        }
    }
    out.unconfigured = devices.iter().zip(&used).filter(|(_, used)| !**used).map(|(d, _)| d.endpoint.clone()).collect();
    out
}

/// The report as an installer reads it, in `lang`.
pub fn render_text(report: &Report, config: Option<&ConfigMatch>, timeout: Duration, lang: Lang) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let (n, took, replies) = (report.devices.len(), humantime::format_duration(timeout), report.replies);
    let probed = if report.probed.is_empty() { lang.t("nothing", "无").to_string() } else { report.probed.join(", ") };
    let _ = writeln!(
        s,
        "{}",
        match (lang, replies) {
            (Lang::En, 1) => format!("found {n} ONVIF device(s) in {took} (1 reply from probing {probed})"),
            _ => tr!(
                lang,
                "found {n} ONVIF device(s) in {took} ({replies} replies from probing {probed})",
                "{took} 内发现 {n} 台 ONVIF 设备（探测 {probed}，收到 {replies} 个应答）"
            ),
        }
    );
    let no_xaddrs = lang.t("(no XAddrs)", "（无 XAddrs）");
    for d in &report.devices {
        let _ = writeln!(s, "  {}", d.xaddrs.first().map(String::as_str).unwrap_or(no_xaddrs));
        let (name, hardware) = (d.name.as_deref().unwrap_or("-"), d.hardware.as_deref().unwrap_or("-"));
        let _ = writeln!(
            s,
            "{}",
            tr!(lang, "      name: {name}  hardware: {hardware}", "      名称：{name}  硬件：{hardware}")
        );
        let (endpoint, from) = (&d.endpoint, d.from.ip());
        let _ = writeln!(
            s,
            "{}",
            tr!(lang, "      endpoint: {endpoint}  (reply from {from})", "      端点：{endpoint}（应答来自 {from}）")
        );
        for x in d.xaddrs.iter().skip(1) {
            let _ = writeln!(s, "{}", tr!(lang, "      also at: {x}", "      其他地址：{x}"));
        }
    }
    let bad = report.malformed + report.oversized;
    if bad > 0 || report.unrelated > 0 || report.dropped > 0 {
        let (m, o, u, d) = (report.malformed, report.oversized, report.unrelated, report.dropped);
        let _ = writeln!(
            s,
            "{}",
            tr!(
                lang,
                "ignored: {m} malformed, {o} oversized, {u} unrelated, {d} over the {MAX_DATAGRAMS}-reply limit",
                "已忽略：格式错误 {m} 个，过大 {o} 个，无关 {u} 个，超出 {MAX_DATAGRAMS} 个应答上限 {d} 个"
            )
        );
        if !report.malformed_from.is_empty() {
            let from: Vec<String> = report.malformed_from.iter().map(|a| a.to_string()).collect();
            let from = from.join(", ");
            let _ =
                writeln!(s, "{}", tr!(lang, "  unreadable replies came from: {from}", "  无法解读的应答来自：{from}"));
        }
    }
    if let Some(m) = config {
        let (yes, no) = (m.answered.len(), m.missing.len());
        let _ = writeln!(
            s,
            "{}",
            tr!(
                lang,
                "configured cameras: {yes} answered, {no} did not",
                "已配置的摄像机：{yes} 台应答，{no} 台未应答"
            )
        );
        for a in &m.answered {
            let _ = writeln!(s, "  {} {}  {}  ({})", lang.t("answered   ", "已应答     "), a.id, a.onvif, a.endpoint);
        }
        for x in &m.missing {
            let _ = writeln!(s, "  {} {}  {}", lang.t("NO ANSWER  ", "未应答     "), x.id, x.onvif);
        }
        let extra = m.unconfigured.len();
        let _ = writeln!(s, "{}", tr!(lang, "found but not in the config: {extra}", "发现但未配置：{extra}"));
        for e in &m.unconfigured {
            let at = report.devices.iter().find(|d| &d.endpoint == e).and_then(|d| d.xaddrs.first());
            let _ = writeln!(s, "  {}  {e}", at.map(String::as_str).unwrap_or(no_xaddrs));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 3702))
    }

    fn reply(relates: &str, body: &str) -> String {
        format!(
            "<s:Envelope xmlns:s=\"{}\" xmlns:a=\"{NS_WSA}\" xmlns:d=\"{NS_WSD}\"><s:Header><a:RelatesTo>{relates}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>",
            ns::SOAP12
        )
    }

    const MATCH: &str = "<d:ProbeMatches><d:ProbeMatch><a:EndpointReference><a:Address>urn:uuid:1</a:Address></a:EndpointReference><d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes>onvif://www.onvif.org/name/Front%20door onvif://www.onvif.org/hardware/X1</d:Scopes><d:XAddrs>http://10.0.0.5/onvif/device_service http://[fe80::1]/onvif/device_service</d:XAddrs><d:MetadataVersion>3</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches>";

    #[test]
    fn a_probe_match_is_read() {
        let ids = vec!["urn:uuid:p".to_string()];
        let d = parse_reply(reply("urn:uuid:p", MATCH).as_bytes(), from(), &ids).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].endpoint, "urn:uuid:1");
        assert_eq!(d[0].name.as_deref(), Some("Front door"));
        assert_eq!(d[0].hardware.as_deref(), Some("X1"));
        assert_eq!(d[0].xaddrs.len(), 2);
        assert_eq!(d[0].metadata_version.as_deref(), Some("3"));
        assert_eq!(parse_reply(reply("urn:uuid:other", MATCH).as_bytes(), from(), &ids), Err(Rejected::Unrelated));
    }

    #[test]
    fn bad_replies_are_rejected_not_panics() {
        let ids = vec!["x".to_string()];
        let cases: Vec<Vec<u8>> = vec![
            b"\xff\xfe\x00".to_vec(),
            b"".to_vec(),
            b"not xml".to_vec(),
            b"<a><b></a>".to_vec(),
            b"<!DOCTYPE x [<!ENTITY a \"aaaa\">]><x>&a;</x>".to_vec(),
            "<a>".repeat(10_000).into_bytes(),
            vec![b'x'; MAX_REPLY_BYTES + 1],
            reply("x", "<d:ProbeMatches><d:ProbeMatch/></d:ProbeMatches>").into_bytes(),
            reply("x", "<d:ProbeMatches/>").into_bytes(),
            reply("x", "<d:ProbeMatches><d:ProbeMatch><d:XAddrs>http://a/</d:XAddrs></d:ProbeMatch></d:ProbeMatches>")
                .into_bytes(),
        ];
        for c in cases {
            assert!(
                matches!(parse_reply(&c, from(), &ids), Err(Rejected::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(&c)
            );
        }
        let hello = reply("x", "<d:Hello/>");
        assert_eq!(parse_reply(hello.as_bytes(), from(), &ids), Err(Rejected::Unrelated));
    }

    #[test]
    fn probes_are_well_formed_and_carry_their_type() {
        for t in [ProbeType::NetworkVideoTransmitter, ProbeType::Device] {
            let p = probe_message("urn:uuid:abc", t);
            let root = xml::parse(&p, xml::Limits::default()).unwrap();
            assert_eq!(root.text_at(&["Header", "MessageID"]), Some("urn:uuid:abc"));
            assert!(root.path(&["Body", "Probe", "Types"]).is_some());
        }
    }

    #[test]
    fn host_and_port_default_by_scheme() {
        assert_eq!(host_port("http://10.1.2.3/onvif/device_service"), Some(("10.1.2.3".into(), 80)));
        assert_eq!(host_port("https://Cam.Local:8443/x"), Some(("cam.local".into(), 8443)));
        assert_eq!(host_port("http://[::1]:81/"), Some(("[::1]".into(), 81)));
        assert_eq!(host_port("not a url"), None);
        assert_eq!(percent_decode("a%20b%zz%"), "a b%zz%");
    }
}
