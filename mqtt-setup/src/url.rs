//! The broker's address as an operator writes it: `mqtt://HOST[:PORT]`.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::{SetupError, UrlProblem};

/// Port of `mqtt://` (and `tcp://`) when the URL names none.
pub const DEFAULT_PORT: u16 = 1883;
/// Port of `mqtts://` (and `ssl://`) when the URL names none.
pub const DEFAULT_TLS_PORT: u16 = 8883;

/// A parsed broker URL.
///
/// Schemes: `mqtt://` and `tcp://` (plain, port 1883 by default), `mqtts://` and `ssl://`
/// (TLS, 8883). The host is a name, an IPv4 address or an IPv6 address in brackets
/// (`mqtt://[::1]:1883`, `mqtts://[fd00::5]`). Nothing else: no path, query or user
/// information (the user name and password have settings of their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// The host as a socket address wants it: an IPv6 address without its brackets.
    pub host: String,
    pub port: u16,
    /// `mqtts://` or `ssl://`.
    pub tls: bool,
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<BrokerUrl, SetupError> {
        parse(url).map_err(|problem| SetupError::BadUrl { url: url.to_string(), problem })
    }

    /// `host:port` for logs and messages, with brackets around an IPv6 address.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for BrokerUrl {
    type Err = SetupError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BrokerUrl::parse(s)
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", if self.tls { "mqtts" } else { "mqtt" }, self.authority())
    }
}

fn parse(url: &str) -> Result<BrokerUrl, UrlProblem> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").ok_or(UrlProblem::NoScheme)?;
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        _ => return Err(UrlProblem::UnknownScheme(scheme.to_string())),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err(UrlProblem::NotJustHostAndPort);
    }
    let default_port = if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or(UrlProblem::UnclosedBracket)?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| UrlProblem::BadIpv6(addr.to_string()))?;
        let port = match after {
            "" => default_port,
            p => port(p.strip_prefix(':').ok_or_else(|| UrlProblem::BadPort(p.to_string()))?)?,
        };
        (addr.to_string(), port)
    } else {
        let (host, port) = match rest.split_once(':') {
            // Two colons or more: an IPv6 address someone forgot to put in brackets.
            Some((_, p)) if p.contains(':') => return Err(UrlProblem::Ipv6WithoutBrackets),
            Some((h, p)) => (h, port(p)?),
            None => (rest, default_port),
        };
        if host.is_empty() {
            return Err(UrlProblem::NoHost);
        }
        if let Some(c) = host.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, '[' | ']')) {
            return Err(UrlProblem::BadHostChar(c));
        }
        (host.to_string(), port)
    };
    Ok(BrokerUrl { host, port, tls })
}

fn port(p: &str) -> Result<u16, UrlProblem> {
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(UrlProblem::BadPort(p.to_string())),
        Ok(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> (String, u16, bool) {
        let u = BrokerUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        (u.host, u.port, u.tls)
    }

    fn problem(url: &str) -> UrlProblem {
        match BrokerUrl::parse(url) {
            Err(SetupError::BadUrl { problem, .. }) => problem,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn host_names_and_ipv4_addresses_with_and_without_a_port() {
        assert_eq!(ok("mqtt://127.0.0.1:1884"), ("127.0.0.1".into(), 1884, false));
        assert_eq!(ok("mqtt://broker.example"), ("broker.example".into(), 1883, false));
        assert_eq!(ok("mqtts://hq.example"), ("hq.example".into(), 8883, true));
        assert_eq!(ok("mqtts://hq.example:9883/"), ("hq.example".into(), 9883, true));
        assert_eq!(ok("tcp://h:1"), ("h".into(), 1, false));
        assert_eq!(ok("ssl://h"), ("h".into(), 8883, true));
        assert_eq!(ok("MQTT://h"), ("h".into(), 1883, false));
    }

    #[test]
    fn ipv6_literals_in_brackets() {
        assert_eq!(ok("mqtt://[::1]:1883"), ("::1".into(), 1883, false));
        assert_eq!(ok("mqtt://[::1]"), ("::1".into(), 1883, false));
        assert_eq!(ok("mqtts://[fd00::5]"), ("fd00::5".into(), 8883, true));
        // The canonical form, which TLS and the socket both accept.
        assert_eq!(ok("mqtt://[FD00:0:0::0005]:2"), ("fd00::5".into(), 2, false));
        let u = BrokerUrl::parse("mqtt://[::1]:1883").unwrap();
        assert_eq!(u.authority(), "[::1]:1883");
        assert_eq!(u.to_string(), "mqtt://[::1]:1883");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert_eq!(problem("broker:1883"), UrlProblem::NoScheme);
        assert_eq!(problem("http://x:1"), UrlProblem::UnknownScheme("http".into()));
        assert_eq!(problem("mqtt://"), UrlProblem::NoHost);
        assert_eq!(problem("mqtt://:1883"), UrlProblem::NoHost);
        assert_eq!(problem("mqtt://x:notaport"), UrlProblem::BadPort("notaport".into()));
        assert_eq!(problem("mqtt://x:0"), UrlProblem::BadPort("0".into()));
        assert_eq!(problem("mqtt://x:65536"), UrlProblem::BadPort("65536".into()));
        assert_eq!(problem("mqtt://[::1"), UrlProblem::UnclosedBracket);
        assert_eq!(problem("mqtt://[nonsense]:1"), UrlProblem::BadIpv6("nonsense".into()));
        assert_eq!(problem("mqtt://[::1]1883"), UrlProblem::BadPort("1883".into()));
        assert_eq!(problem("mqtt://::1:1883"), UrlProblem::Ipv6WithoutBrackets);
        assert_eq!(problem("mqtt://h/branches"), UrlProblem::NotJustHostAndPort);
        assert_eq!(problem("mqtt://user:pw@h"), UrlProblem::NotJustHostAndPort);
        assert_eq!(problem("mqtt://a b:1"), UrlProblem::BadHostChar(' '));
        let e = BrokerUrl::parse("mqtt://::1:1883").unwrap_err();
        let t = e.text();
        assert!(e.to_string().contains("[::1]") && t.zh.contains("[::1]"), "{e} / {}", t.zh);
        let e = BrokerUrl::parse("http://x").unwrap_err();
        assert!(e.to_string().contains("\"http://x\"") && e.to_string().contains("mqtt://HOST"), "{e}");
    }
}
