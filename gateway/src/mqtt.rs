//! One MQTT connection, MQTT 5 or 3.1.1, behind one small interface: what the uplink and
//! `commission` need (connect, publish at QoS 1, the broker's answers, disconnect).
//!
//! Why both, and why MQTT 5 by default: under MQTT 3.1.1 a broker that denies a publish by
//! its ACL still acknowledges it (mosquitto logs `Denied PUBLISH` and sends a plain PUBACK), so
//! a gateway with the wrong username would delete every event it "delivered". An MQTT 5 PUBACK
//! carries a reason code: 0x87 (not authorized) and the other codes ≥ 0x80 are refusals, and
//! the event stays in the outbox. rumqttc has a client for each protocol with different types;
//! this module maps both onto [`LinkEvent`] so the uplink is written once.

use i18n::{Text, text};
use rumqttc::{Outgoing, QoS};
use serde::Deserialize;
use tokio::sync::mpsc;

/// The MQTT protocol version the gateway speaks (`[uplink] mqtt_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum MqttVersion {
    /// MQTT 5: refused publishes are seen (PUBACK reason codes) and kept for a retry.
    #[default]
    #[serde(rename = "5")]
    V5,
    /// MQTT 3.1.1, for brokers without MQTT 5: a publish denied by the broker's ACL is
    /// acknowledged like a delivered one and so cannot be kept (see docs/CONFIG.md).
    #[serde(rename = "3.1.1")]
    V311,
}

impl MqttVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            MqttVersion::V5 => "5",
            MqttVersion::V311 => "3.1.1",
        }
    }
}

/// How to connect: the connection itself is set up by `mqtt_setup` (one URL parser, one TLS
/// loader for the whole workspace); what is added here is what the uplink's sessions need.
#[derive(Clone)]
pub struct LinkOptions {
    pub version: MqttVersion,
    /// Broker, client id, credentials, keep-alive, clean session, TLS, packet size, deadline.
    pub client: mqtt_setup::ClientOptions,
    /// The Will: topic and payload, published retained at QoS 1 by the broker if we vanish.
    pub will: Option<(String, Vec<u8>)>,
    /// Publishes the client may queue before `try_publish` reports [`TryPublish::Full`].
    pub capacity: usize,
    /// Most unacknowledged publishes on the wire.
    pub inflight: u16,
}

/// What the connection reports, the same for both protocol versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The broker's answer to CONNECT: accepted (`Ok(session_present)`) or refused, in words.
    ConnAck(Result<bool, String>),
    /// A queued publish went out under this packet id (in the order publishes were queued).
    Published(u16),
    /// The broker's PUBACK: `None` when accepted, `Some(reason)` when refused (MQTT 5 only).
    PubAck { pkid: u16, refused: Option<String> },
    /// Anything else (pings, our own DISCONNECT going out…).
    Other,
    /// Our DISCONNECT went out.
    DisconnectSent,
}

/// The result of [`Link::try_publish`].
pub enum TryPublish {
    Queued,
    /// The client's queue is full: the payload comes back, try again after events were read.
    Full(Vec<u8>),
    Closed(String),
}

enum Client {
    V311(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// A connection being made or made: the client handle and the events of its event loop, which
/// runs in its own task (its `poll` is not cancel-safe inside a `select!`). Dropping the link
/// stops that task.
pub struct Link {
    client: Client,
    pub events: mpsc::Receiver<Result<LinkEvent, String>>,
    poller: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

impl Link {
    /// Starts connecting (the first event is the ConnAck or the error).
    pub fn connect(o: &LinkOptions) -> Link {
        let (tx, events) = mpsc::channel(1024);
        match o.version {
            MqttVersion::V311 => {
                let (client, mut el) = o.client.v311_client(o.capacity, |m| {
                    m.set_inflight(o.inflight.max(2));
                    m.set_request_channel_capacity(o.capacity);
                    if let Some((topic, payload)) = &o.will {
                        m.set_last_will(rumqttc::LastWill::new(topic, payload.clone(), QoS::AtLeastOnce, true));
                    }
                });
                let poller = tokio::spawn(async move {
                    loop {
                        let r = el.poll().await.map(map_v311).map_err(|e| describe_v311(&e));
                        let stop = r.is_err();
                        if tx.send(r).await.is_err() || stop {
                            break;
                        }
                    }
                });
                Link { client: Client::V311(client), events, poller }
            }
            MqttVersion::V5 => {
                let mut m = o.client.v5();
                m.set_outgoing_inflight_upper_limit(o.inflight.max(2));
                m.set_request_channel_capacity(o.capacity);
                if let Some((topic, payload)) = &o.will {
                    m.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
                        topic.clone(),
                        payload.clone(),
                        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                        true,
                        None,
                    ));
                }
                let (client, mut el) = rumqttc::v5::AsyncClient::new(m, o.capacity);
                let poller = tokio::spawn(async move {
                    loop {
                        let r = el.poll().await.map(map_v5).map_err(|e| describe_v5(&e));
                        let stop = r.is_err();
                        if tx.send(r).await.is_err() || stop {
                            break;
                        }
                    }
                });
                Link { client: Client::V5(client), events, poller }
            }
        }
    }

    /// Queues a QoS 1 publish without waiting.
    pub fn try_publish(&self, topic: String, retain: bool, payload: Vec<u8>) -> TryPublish {
        match &self.client {
            Client::V311(c) => match c.try_publish(topic, QoS::AtLeastOnce, retain, payload) {
                Ok(()) => TryPublish::Queued,
                Err(rumqttc::ClientError::TryRequest(rumqttc::Request::Publish(p))) => {
                    TryPublish::Full(p.payload.to_vec())
                }
                Err(e) => TryPublish::Closed(e.to_string()),
            },
            Client::V5(c) => match c.try_publish(topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce, retain, payload) {
                Ok(()) => TryPublish::Queued,
                Err(rumqttc::v5::ClientError::TryRequest(rumqttc::v5::Request::Publish(p))) => {
                    TryPublish::Full(p.payload.to_vec())
                }
                Err(e) => TryPublish::Closed(e.to_string()),
            },
        }
    }

    /// Queues a DISCONNECT; false if the client is gone or its queue is full.
    pub fn try_disconnect(&self) -> bool {
        match &self.client {
            Client::V311(c) => c.try_disconnect().is_ok(),
            Client::V5(c) => c.try_disconnect().is_ok(),
        }
    }
}

fn map_v311(ev: rumqttc::Event) -> LinkEvent {
    use rumqttc::{ConnectReturnCode, Event, Incoming};
    match ev {
        Event::Incoming(Incoming::ConnAck(ack)) => LinkEvent::ConnAck(match ack.code {
            ConnectReturnCode::Success => Ok(ack.session_present),
            ConnectReturnCode::BadUserNamePassword => Err("bad user name or password".into()),
            ConnectReturnCode::NotAuthorized => Err("not authorized".into()),
            code => Err(format!("refused: {code:?}")),
        }),
        // MQTT 3.1.1 has no refusal in a PUBACK.
        Event::Incoming(Incoming::PubAck(ack)) => LinkEvent::PubAck { pkid: ack.pkid, refused: None },
        Event::Outgoing(Outgoing::Publish(pkid)) => LinkEvent::Published(pkid),
        Event::Outgoing(Outgoing::Disconnect) => LinkEvent::DisconnectSent,
        _ => LinkEvent::Other,
    }
}

fn map_v5(ev: rumqttc::v5::Event) -> LinkEvent {
    use rumqttc::v5::Event;
    use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, PubAckReason};
    match ev {
        Event::Incoming(Packet::ConnAck(ack)) => LinkEvent::ConnAck(match ack.code {
            ConnectReturnCode::Success => Ok(ack.session_present),
            ConnectReturnCode::BadUserNamePassword => Err("bad user name or password".into()),
            ConnectReturnCode::NotAuthorized => Err("not authorized".into()),
            code => Err(format!("refused: {code:?}")),
        }),
        Event::Incoming(Packet::PubAck(ack)) => {
            let refused = match ack.reason {
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => None,
                r => Some(puback_reason(r).to_string()),
            };
            LinkEvent::PubAck { pkid: ack.pkid, refused }
        }
        Event::Outgoing(Outgoing::Publish(pkid)) => LinkEvent::Published(pkid),
        Event::Outgoing(Outgoing::Disconnect) => LinkEvent::DisconnectSent,
        _ => LinkEvent::Other,
    }
}

/// A refusing PUBACK's reason code (MQTT 5, section 3.4.2.1), with its number.
fn puback_reason(r: rumqttc::v5::mqttbytes::v5::PubAckReason) -> &'static str {
    use rumqttc::v5::mqttbytes::v5::PubAckReason as R;
    match r {
        R::Success => "0x00 success",
        R::NoMatchingSubscribers => "0x10 no matching subscribers",
        R::UnspecifiedError => "0x80 unspecified error",
        R::ImplementationSpecificError => "0x83 implementation specific error",
        R::NotAuthorized => "0x87 not authorized",
        R::TopicNameInvalid => "0x90 topic name invalid",
        R::PacketIdentifierInUse => "0x91 packet identifier in use",
        R::QuotaExceeded => "0x97 quota exceeded",
        R::PayloadFormatInvalid => "0x99 payload format invalid",
    }
}

fn describe_v311(e: &rumqttc::ConnectionError) -> String {
    use rumqttc::{ConnectReturnCode, ConnectionError};
    match e {
        ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword) => {
            "connection refused: bad user name or password".into()
        }
        ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized) => {
            "connection refused: not authorized".into()
        }
        other => other.to_string(),
    }
}

fn describe_v5(e: &rumqttc::v5::ConnectionError) -> String {
    use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
    use rumqttc::v5::{ConnectionError, StateError};
    match e {
        ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword) => {
            "connection refused: bad user name or password".into()
        }
        ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized) => {
            "connection refused: not authorized".into()
        }
        ConnectionError::MqttState(StateError::ServerDisconnect { reason_code, reason_string }) => {
            let why = reason_string.as_deref().map(|s| format!(": {s}")).unwrap_or_default();
            format!("the broker closed the connection ({reason_code:?}{why})")
        }
        other => other.to_string(),
    }
}

/// A TLS failure said in an installer's words: what is wrong and how to fix it. `error` is the
/// connection error as [`Link`] reports it, `host` the broker's address from `[uplink] broker`.
/// `None` when the error is not one of the certificate problems recognised here.
pub fn explain_tls(error: &str, host: &str) -> Option<(Text, Text)> {
    // rustls's words, as rumqttc passes them on: "TLS error: …" comes from building the client
    // configuration (our own files), "I/O: …" and "received fatal alert" from the handshake.
    let local = error.contains("TLS error:");
    let (what, fix) = if error.contains("UnsupportedCertVersion") && local {
        (
            text!(
                "the gateway's client certificate (client_cert_file) is an X.509 version 1 certificate, which TLS \
                 refuses; a plain `openssl x509 -req` makes version 1",
                "网关的客户端证书（client_cert_file）是 X.509 第 1 版证书，TLS 不接受；直接用 `openssl x509 -req` \
                 签发的就是第 1 版"
            ),
            text!(
                "re-issue it as version 3: add `-extfile client.ext` to the `openssl x509 -req` command, with \
                 basicConstraints=CA:FALSE, keyUsage=digitalSignature and extendedKeyUsage=clientAuth in client.ext",
                "按第 3 版重新签发：在 `openssl x509 -req` 命令后加 `-extfile client.ext`，client.ext 中写 \
                 basicConstraints=CA:FALSE、keyUsage=digitalSignature 和 extendedKeyUsage=clientAuth"
            ),
        )
    } else if error.contains("UnsupportedCertVersion") {
        (
            text!(
                "the broker's certificate is an X.509 version 1 certificate, which TLS refuses",
                "消息服务器的证书是 X.509 第 1 版证书，TLS 不接受"
            ),
            text!(
                "ask head office to re-issue the broker's certificate as version 3 (with subjectAltName)",
                "请总行按第 3 版（带 subjectAltName）重新签发消息服务器的证书"
            ),
        )
    } else if error.contains("KeyMismatch") || error.contains("keys may not be consistent") {
        (
            text!(
                "the client key (client_key_file) does not belong to the client certificate (client_cert_file)",
                "客户端私钥（client_key_file）与客户端证书（client_cert_file）不配套"
            ),
            text!(
                "use the key the certificate was issued for: `openssl x509 -noout -pubkey -in CERT` and `openssl \
                 pkey -pubout -in KEY` must print the same key",
                "使用签发该证书时所用的私钥：`openssl x509 -noout -pubkey -in CERT` 与 `openssl pkey -pubout -in \
                 KEY` 打印的公钥必须相同"
            ),
        )
    } else if error.contains("UnknownIssuer") {
        (
            text!(
                "the broker's certificate is not signed by the CA in [uplink.tls] ca_file",
                "消息服务器的证书不是由 [uplink.tls] ca_file 中的 CA 签发的"
            ),
            text!(
                "set ca_file to head office's CA certificate, the one that signed the broker's certificate",
                "把 ca_file 设为总行的 CA 证书，即签发消息服务器证书的那一张"
            ),
        )
    } else if error.contains("not valid for name") || error.contains("NotValidForName") {
        let valid = error.split("only valid for").nth(1).map(|v| v.trim_end().to_string());
        let (valid_en, valid_zh) = match &valid {
            Some(v) => (format!(" (it is valid for{v})"), format!("（它只适用于{v}）")),
            None => (String::new(), String::new()),
        };
        (
            Text::new(
                format!("the broker's certificate is not issued for {host}, the address in [uplink] broker{valid_en}"),
                format!("消息服务器的证书不是为 {host}（[uplink] broker 中的地址）签发的{valid_zh}"),
            ),
            text!(
                "write the broker's address in [uplink] broker as its certificate names it (a DNS name the branch \
                 can resolve), or ask head office for a certificate that includes this address",
                "在 [uplink] broker 中按证书上的名称填写消息服务器地址（网点能解析的域名），或请总行签发包含此地址\
                 的证书"
            ),
        )
    } else if error.contains("Expired") && !error.contains("fatal alert") {
        (
            text!(
                "the broker's certificate has expired, or this gateway's clock is wrong",
                "消息服务器的证书已过期，或本网关的时钟不对"
            ),
            text!(
                "check the gateway's clock (`timedatectl`; it needs NTP); if the clock is right, head office must \
                 renew the broker's certificate",
                "检查网关时钟（`timedatectl`，需要 NTP 校时）；时钟正确时，须由总行更新消息服务器的证书"
            ),
        )
    } else if error.contains("NotValidYet") {
        (
            text!(
                "the broker's certificate is not valid yet: this gateway's clock is probably behind",
                "消息服务器的证书尚未生效：本网关的时钟多半慢了"
            ),
            text!(
                "set the gateway's clock right (`timedatectl`; it needs NTP)",
                "校准网关时钟（`timedatectl`，需要 NTP 校时）"
            ),
        )
    } else if error.contains("fatal alert: UnknownCA") || error.contains("fatal alert: BadCertificate") {
        (
            text!(
                "the broker does not accept the gateway's client certificate: it is not signed by a CA the broker trusts",
                "消息服务器不接受网关的客户端证书：它不是由消息服务器信任的 CA 签发的"
            ),
            text!(
                "use a client certificate issued by head office's CA (the broker's cafile), with the key it was \
                 issued for",
                "使用总行 CA（消息服务器的 cafile）签发的客户端证书及其配套私钥"
            ),
        )
    } else if error.contains("fatal alert: CertificateExpired") {
        (
            text!(
                "the broker refuses the gateway's client certificate as expired (or this gateway's clock is wrong)",
                "消息服务器认为网关的客户端证书已过期而拒绝（或本网关的时钟不对）"
            ),
            text!(
                "check the gateway's clock; if it is right, ask head office for a new client certificate",
                "检查网关时钟；时钟正确时，请总行签发新的客户端证书"
            ),
        )
    } else if error.contains("fatal alert: CertificateRequired") || error.contains("fatal alert: HandshakeFailure") {
        (
            text!(
                "the broker wants a client certificate and the gateway sent none it accepts",
                "消息服务器要求客户端证书，而网关没有发送它接受的证书"
            ),
            text!(
                "set client_cert_file and client_key_file in [uplink.tls] to the certificate head office issued for \
                 this branch",
                "在 [uplink.tls] 中把 client_cert_file 和 client_key_file 设为总行为本网点签发的证书和私钥"
            ),
        )
    } else {
        return None;
    };
    Some((what, fix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct V {
        v: MqttVersion,
    }

    #[test]
    fn versions_parse_from_the_config_spelling() {
        let v5: V = toml::from_str("v = \"5\"").expect("5");
        assert_eq!(v5.v, MqttVersion::V5);
        let v3: V = toml::from_str("v = \"3.1.1\"").expect("3.1.1");
        assert_eq!(v3.v, MqttVersion::V311);
        assert!(toml::from_str::<V>("v = \"4\"").is_err());
        assert_eq!(MqttVersion::default(), MqttVersion::V5);
    }

    #[test]
    fn tls_failures_are_explained_with_a_fix() {
        let (what, fix) =
            explain_tls("TLS: TLS error: invalid peer certificate: Other(OtherError(UnsupportedCertVersion))", "h")
                .expect("v1");
        assert!(
            what.en.contains("version 1") && fix.en.contains("-extfile") && fix.zh.contains("-extfile"),
            "{what} / {fix}"
        );
        let (what, _) = explain_tls(
            "TLS: I/O: invalid peer certificate: certificate not valid for name \"127.0.0.1\"; certificate is only valid for DnsName(\"other.example\")",
            "127.0.0.1",
        )
        .expect("name");
        assert!(what.en.contains("127.0.0.1") && what.zh.contains("other.example"), "{what}");
        assert!(explain_tls("I/O: Connection refused (os error 111)", "h").is_none());
    }

    #[test]
    fn refusals_carry_their_reason_code() {
        use rumqttc::v5::mqttbytes::v5::{PubAck, PubAckReason};
        let mut ack = PubAck::new(7, None);
        ack.reason = PubAckReason::NotAuthorized;
        let ev = map_v5(rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::PubAck(ack)));
        assert_eq!(ev, LinkEvent::PubAck { pkid: 7, refused: Some("0x87 not authorized".into()) });
        let ok = map_v5(rumqttc::v5::Event::Incoming(rumqttc::v5::mqttbytes::v5::Packet::PubAck(PubAck::new(8, None))));
        assert_eq!(ok, LinkEvent::PubAck { pkid: 8, refused: None });
    }
}
