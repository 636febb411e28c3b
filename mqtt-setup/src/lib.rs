//! One way to set up an MQTT connection, for every MQTT client of the workspace: the gateway's
//! uplink and `commission` (MQTT 5 or 3.1.1), head office's listener and readers, the bench and
//! the demo.
//!
//! Why a crate: the gateway and `hq` each had their own URL parser, TLS loader and client
//! options, and they disagreed (one took `mqtt://[::1]`, the other did not). Here there is one
//! URL parser ([`BrokerUrl`]), one TLS loader ([`TlsFiles::load`]), one place that turns the
//! settings into rumqttc's options for either protocol version ([`ClientOptions::v311`],
//! [`ClientOptions::v5`]) and one reconnect policy ([`Backoff`]). What a connection is used
//! for (sessions, subscriptions, the outbox) stays with its program.
//!
//! Errors are [`SetupError`]s that name the URL or file and say what to write instead; their
//! [`SetupError::text`] is the same in English and Chinese for messages shown to operators.

// Data here comes from files, the environment and users: no unwrap or expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

// The client side (rumqttc, TLS, backoff) is the default feature `client`; without it the crate
// is the URL parser and the errors alone, which the site file's validation uses (`site`, and so
// the simulator, need no MQTT client for that).
#[cfg(feature = "client")]
mod backoff;
#[cfg(feature = "client")]
mod tls;
mod url;

use std::path::{Path, PathBuf};
#[cfg(feature = "client")]
use std::time::Duration;

use i18n::{Text, text};
#[cfg(feature = "client")]
pub use rumqttc::TlsConfiguration;
#[cfg(feature = "client")]
use rumqttc::Transport;

#[cfg(feature = "client")]
pub use backoff::Backoff;
#[cfg(feature = "client")]
pub use tls::TlsFiles;
pub use url::{BrokerUrl, DEFAULT_PORT, DEFAULT_TLS_PORT};

/// Which file of a connection's setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    Ca,
    ClientCert,
    ClientKey,
    Password,
}

impl FileRole {
    pub fn text(self) -> Text {
        match self {
            FileRole::Ca => text!("the CA file", "CA 文件"),
            FileRole::ClientCert => text!("the client certificate", "客户端证书"),
            FileRole::ClientKey => text!("the client key", "客户端私钥"),
            FileRole::Password => text!("the password file", "密码文件"),
        }
    }
}

impl std::fmt::Display for FileRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text().en)
    }
}

/// What is wrong with a broker URL, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    #[error("has no scheme: write mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")]
    NoScheme,
    #[error(
        "has the scheme {0:?}, which is not MQTT: write mqtt://HOST[:PORT] (port 1883) or mqtts://HOST[:PORT] (TLS, port 8883)"
    )]
    UnknownScheme(String),
    #[error("names no host: write mqtt://HOST[:PORT]")]
    NoHost,
    #[error(
        "has more than a host and a port: write only mqtt://HOST[:PORT] (the user name and password have settings of their own)"
    )]
    NotJustHostAndPort,
    #[error("has {0:?} as its port: a port is a number from 1 to 65535, after a colon")]
    BadPort(String),
    #[error("opens a bracket it does not close: write an IPv6 address as mqtt://[ADDRESS]:PORT")]
    UnclosedBracket,
    #[error("has [{0}], which is not an IPv6 address: write one like mqtt://[fd00::5]:1883")]
    BadIpv6(String),
    #[error("has an IPv6 address without brackets: write it in brackets, like mqtt://[::1]:1883")]
    Ipv6WithoutBrackets,
    #[error("has {0:?} in its host name: write a host name, an IPv4 address or an IPv6 address in brackets")]
    BadHostChar(char),
}

impl UrlProblem {
    pub fn text(&self) -> Text {
        let en = self.to_string();
        let zh = match self {
            UrlProblem::NoScheme => "没有协议名：写成 mqtt://主机[:端口] 或 mqtts://主机[:端口]".to_string(),
            UrlProblem::UnknownScheme(s) => format!(
                "的协议 {s:?} 不是 MQTT：写成 mqtt://主机[:端口]（端口 1883）或 mqtts://主机[:端口]（TLS，端口 8883）"
            ),
            UrlProblem::NoHost => "中没有主机：写成 mqtt://主机[:端口]".to_string(),
            UrlProblem::NotJustHostAndPort => {
                "不只有主机和端口：只写 mqtt://主机[:端口]（用户名和密码另有设置项）".to_string()
            }
            UrlProblem::BadPort(p) => format!("的端口是 {p:?}：端口是冒号后 1 到 65535 的数字"),
            UrlProblem::UnclosedBracket => "的方括号没有闭合：IPv6 地址写成 mqtt://[地址]:端口".to_string(),
            UrlProblem::BadIpv6(a) => format!("中的 [{a}] 不是 IPv6 地址：写成 mqtt://[fd00::5]:1883 这样"),
            UrlProblem::Ipv6WithoutBrackets => "中的 IPv6 地址没有加方括号：写成 mqtt://[::1]:1883 这样".to_string(),
            UrlProblem::BadHostChar(c) => {
                format!("的主机名中有 {c:?}：写主机名、IPv4 地址或加方括号的 IPv6 地址")
            }
        };
        Text::new(en, zh)
    }
}

/// Why a connection cannot be set up. The English is the `Display`; [`SetupError::text`] has
/// both languages.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("broker URL {url:?} {problem}")]
    BadUrl { url: String, problem: UrlProblem },
    #[error("cannot read {role} {}: {source}", path.display())]
    ReadFile { role: FileRole, path: PathBuf, source: std::io::Error },
    #[error("{role} {} is not a PEM file as expected ({detail}): give the PEM file (text with -----BEGIN …----- lines)", path.display())]
    NotPem { role: FileRole, path: PathBuf, detail: String },
    #[error("a client certificate needs its certificate file and its key file: {missing} is missing")]
    HalfClientAuth { missing: FileRole },
    #[error("a client certificate needs the CA file of the broker's certificate too")]
    ClientAuthWithoutCa,
    #[error("the environment variable {0} is not set")]
    MissingEnv(String),
}

impl SetupError {
    pub fn text(&self) -> Text {
        let en = self.to_string();
        let zh = match self {
            SetupError::BadUrl { url, problem } => format!("消息服务器地址 {url:?} {}", problem.text().zh),
            SetupError::ReadFile { role, path, source } => {
                format!("无法读取{} {}：{source}", role.text().zh, path.display())
            }
            SetupError::NotPem { role, path, detail } => format!(
                "{} {} 不是所需的 PEM 文件（{detail}）：请提供 PEM 文件（含 -----BEGIN …----- 行的文本）",
                role.text().zh,
                path.display()
            ),
            SetupError::HalfClientAuth { missing } => {
                format!("客户端证书需要证书文件和私钥文件两者：缺少{}", missing.text().zh)
            }
            SetupError::ClientAuthWithoutCa => "使用客户端证书时还需要签发消息服务器证书的 CA 文件".to_string(),
            SetupError::MissingEnv(var) => format!("环境变量 {var} 未设置"),
        };
        Text::new(en, zh)
    }
}

/// The first line of a password file (a trailing newline is not part of the password).
pub fn password_from_file(path: &Path) -> Result<String, SetupError> {
    let text = std::fs::read_to_string(path).map_err(|source| SetupError::ReadFile {
        role: FileRole::Password,
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// A password from the environment variable `var`.
pub fn password_from_env(var: &str) -> Result<String, SetupError> {
    std::env::var(var).map_err(|_| SetupError::MissingEnv(var.to_string()))
}

/// Everything a connection needs, for either protocol version. Files are read before this is
/// made ([`TlsFiles::load`], [`password_from_file`]), so building rumqttc's options cannot fail.
#[cfg(feature = "client")]
#[derive(Clone)]
pub struct ClientOptions {
    pub broker: BrokerUrl,
    pub client_id: String,
    /// Sent only with a user name (MQTT 3.1.1 has no password without one).
    pub username: Option<String>,
    pub password: Option<String>,
    /// Zero switches keep-alive off under MQTT 3.1.1; rumqttc's MQTT 5 client needs at least
    /// 5 s and gets that.
    pub keep_alive: Duration,
    /// Start without session state on the broker (`false`: the broker keeps the session).
    pub clean_session: bool,
    /// From [`TlsFiles::load`]. Its presence means TLS whatever the URL's scheme; without it an
    /// `mqtts://` URL trusts the system's roots.
    pub tls: Option<TlsConfiguration>,
    /// Largest packet in either direction.
    pub max_packet_bytes: usize,
    /// TCP + TLS + CONNECT deadline (rumqttc counts whole seconds; at least 1).
    pub connect_timeout: Duration,
}

#[cfg(feature = "client")]
impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("broker", &self.broker)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("keep_alive", &self.keep_alive)
            .field("clean_session", &self.clean_session)
            .field("tls", &self.tls.is_some())
            .field("max_packet_bytes", &self.max_packet_bytes)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

#[cfg(feature = "client")]
impl ClientOptions {
    /// A clean session, keep-alive 30 s, packets up to 1 MiB, connect deadline 5 s, no
    /// credentials, TLS only if the URL says `mqtts://` (system roots).
    pub fn new(broker: BrokerUrl, client_id: impl Into<String>) -> ClientOptions {
        ClientOptions {
            broker,
            client_id: client_id.into(),
            username: None,
            password: None,
            keep_alive: Duration::from_secs(30),
            clean_session: true,
            tls: None,
            max_packet_bytes: 1 << 20,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// Plain TCP to a broker on loopback (`127.0.0.1:port`): the bench's and the demo's.
    pub fn loopback(port: u16, client_id: impl Into<String>) -> ClientOptions {
        Self::new(BrokerUrl { host: "127.0.0.1".into(), port, tls: false }, client_id)
    }

    fn transport(&self) -> Transport {
        match &self.tls {
            Some(tls) => Transport::tls_with_config(tls.clone()),
            None if self.broker.tls => Transport::tls_with_default_config(),
            None => Transport::Tcp,
        }
    }

    fn credentials(&self) -> Option<(String, String)> {
        self.username.as_ref().map(|u| (u.clone(), self.password.clone().unwrap_or_default()))
    }

    fn connect_timeout_secs(&self) -> u64 {
        self.connect_timeout.as_secs().max(1)
    }

    /// MQTT 3.1.1 options (`rumqttc::MqttOptions`). The connect deadline is a property of
    /// rumqttc's event loop there: apply [`ClientOptions::v311_network`] to it.
    pub fn v311(&self) -> rumqttc::MqttOptions {
        let mut o = rumqttc::MqttOptions::new(self.client_id.clone(), self.broker.host.clone(), self.broker.port);
        o.set_keep_alive(if self.keep_alive.is_zero() {
            Duration::ZERO
        } else {
            self.keep_alive.max(Duration::from_secs(1))
        });
        o.set_clean_session(self.clean_session);
        o.set_max_packet_size(self.max_packet_bytes, self.max_packet_bytes);
        if let Some((user, password)) = self.credentials() {
            o.set_credentials(user, password);
        }
        o.set_transport(self.transport());
        o
    }

    /// The MQTT 3.1.1 event loop's network options (the connect deadline).
    pub fn v311_network(&self) -> rumqttc::NetworkOptions {
        let mut n = rumqttc::NetworkOptions::new();
        n.set_connection_timeout(self.connect_timeout_secs());
        n
    }

    /// A connected-to-be MQTT 3.1.1 client with the options after `adjust` (Will, inflight,
    /// manual acks…) and the connect deadline set on its event loop.
    pub fn v311_client(
        &self,
        capacity: usize,
        adjust: impl FnOnce(&mut rumqttc::MqttOptions),
    ) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
        let mut o = self.v311();
        adjust(&mut o);
        let (client, mut el) = rumqttc::AsyncClient::new(o, capacity);
        el.set_network_options(self.v311_network());
        (client, el)
    }

    /// MQTT 5 options (`rumqttc::v5::MqttOptions`).
    pub fn v5(&self) -> rumqttc::v5::MqttOptions {
        let mut o = rumqttc::v5::MqttOptions::new(self.client_id.clone(), self.broker.host.clone(), self.broker.port);
        o.set_keep_alive(self.keep_alive.max(Duration::from_secs(5)));
        o.set_clean_start(self.clean_session);
        o.set_max_packet_size(u32::try_from(self.max_packet_bytes).ok());
        o.set_connection_timeout(self.connect_timeout_secs());
        if let Some((user, password)) = self.credentials() {
            o.set_credentials(user, password);
        }
        o.set_transport(self.transport());
        o
    }
}

#[cfg(all(test, feature = "client"))]
mod tests {
    use super::*;

    fn options(url: &str) -> ClientOptions {
        let mut o = ClientOptions::new(BrokerUrl::parse(url).unwrap(), "c1");
        o.username = Some("b01".into());
        o.password = Some("pw".into());
        o
    }

    #[test]
    fn both_protocol_versions_get_the_same_settings() {
        let mut o = options("mqtt://[::1]:1884");
        o.keep_alive = Duration::from_secs(20);
        o.clean_session = false;
        let v3 = o.v311();
        assert_eq!(v3.broker_address(), ("::1".to_string(), 1884));
        assert_eq!(v3.client_id(), "c1");
        assert_eq!(v3.keep_alive(), Duration::from_secs(20));
        assert!(!v3.clean_session());
        assert_eq!(v3.credentials().map(|l| (l.username, l.password)), Some(("b01".into(), "pw".into())));
        assert!(matches!(v3.transport(), Transport::Tcp));
        let v5 = o.v5();
        assert_eq!(v5.broker_address(), ("::1".to_string(), 1884));
        assert_eq!(v5.client_id(), "c1");
        assert_eq!(v5.keep_alive(), Duration::from_secs(20));
        assert!(!v5.clean_start());
        assert_eq!(v5.credentials().map(|l| (l.username, l.password)), Some(("b01".into(), "pw".into())));
        assert_eq!(v5.connection_timeout(), 5);
    }

    #[test]
    fn keep_alive_is_what_each_client_accepts_not_a_panic() {
        let mut o = options("mqtt://h");
        o.keep_alive = Duration::ZERO;
        assert_eq!(o.v311().keep_alive(), Duration::ZERO);
        assert_eq!(o.v5().keep_alive(), Duration::from_secs(5));
        o.keep_alive = Duration::from_millis(300);
        assert_eq!(o.v311().keep_alive(), Duration::from_secs(1));
        assert_eq!(o.v5().keep_alive(), Duration::from_secs(5));
    }

    #[test]
    fn tls_follows_the_scheme_or_the_files() {
        assert!(matches!(options("mqtts://h").v311().transport(), Transport::Tls(_)));
        assert!(matches!(options("mqtts://h").v5().transport(), Transport::Tls(_)));
        let mut o = options("mqtt://h");
        o.tls = Some(TlsConfiguration::Simple { ca: Vec::new(), alpn: None, client_auth: None });
        assert!(matches!(o.v311().transport(), Transport::Tls(_)));
    }

    #[test]
    fn no_password_without_a_user_name_and_none_in_debug() {
        let mut o = options("mqtt://h");
        assert!(!format!("{o:?}").contains("pw"));
        o.username = None;
        assert!(o.v311().credentials().is_none());
        assert!(o.v5().credentials().is_none());
    }

    #[test]
    fn passwords_from_a_file_or_the_environment() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pw");
        std::fs::write(&p, "s3cret\nignored\n").unwrap();
        assert_eq!(password_from_file(&p).unwrap(), "s3cret");
        let e = password_from_file(&d.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("password file") && e.text().zh.contains("密码文件"), "{e}");
        let e = password_from_env("MQTT_SETUP_TEST_SURELY_UNSET").unwrap_err();
        assert!(e.to_string().contains("MQTT_SETUP_TEST_SURELY_UNSET"), "{e}");
    }
}
