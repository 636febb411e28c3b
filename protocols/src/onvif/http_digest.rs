//! HTTP Digest authentication (RFC 2617 / RFC 7616, MD5, `qop=auth`), the other way cameras
//! authenticate (ONVIF Profile T, many vendors' snapshot and RTSP endpoints).
//!
//! Pure parts only: parsing `WWW-Authenticate` / `Authorization` headers, computing and
//! checking responses. Nonce generation and freshness are the server's business.

use md5::{Digest as _, Md5};

/// `MD5(data)` as lowercase hex.
pub fn md5_hex(data: &[u8]) -> String {
    let d = Md5::digest(data);
    let mut s = String::with_capacity(32);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The parameters of a digest header (`Digest k=v, k="v", …`), keys lower-cased.
pub fn parse_params(header: &str) -> Option<Vec<(String, String)>> {
    let rest = header.trim();
    let (scheme, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut out = Vec::new();
    let mut chars = rest.trim().char_indices().peekable();
    let s = rest.trim();
    loop {
        // Skip separators.
        while let Some(&(_, c)) = chars.peek() {
            if c == ',' || c.is_whitespace() {
                chars.next();
            } else {
                break;
            }
        }
        let Some(&(start, _)) = chars.peek() else { break };
        let mut eq = None;
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' {
                eq = Some(i);
                chars.next();
                break;
            }
            if c == ',' {
                break;
            }
            chars.next();
        }
        let eq = eq?;
        let key = s[start..eq].trim().to_ascii_lowercase();
        let mut value = String::new();
        if let Some(&(_, '"')) = chars.peek() {
            chars.next();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return None;
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        if out.len() >= 32 {
            return None;
        }
        out.push((key, value));
    }
    Some(out)
}

fn get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A server's challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// Whether the server offers `qop=auth` (else the RFC 2069 form is used).
    pub qop_auth: bool,
    pub stale: bool,
}

impl Challenge {
    pub fn parse(header: &str) -> Option<Challenge> {
        let p = parse_params(header)?;
        let algorithm = get(&p, "algorithm").unwrap_or("MD5");
        if !algorithm.eq_ignore_ascii_case("MD5") {
            return None;
        }
        Some(Challenge {
            realm: get(&p, "realm")?.to_string(),
            nonce: get(&p, "nonce")?.to_string(),
            opaque: get(&p, "opaque").map(str::to_string),
            qop_auth: get(&p, "qop").is_some_and(|q| q.split(',').any(|x| x.trim() == "auth")),
            stale: get(&p, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The `WWW-Authenticate` value.
    pub fn header(&self) -> String {
        let mut h = format!("Digest realm=\"{}\", nonce=\"{}\", algorithm=MD5", self.realm, self.nonce);
        if self.qop_auth {
            h.push_str(", qop=\"auth\"");
        }
        if let Some(o) = &self.opaque {
            h.push_str(&format!(", opaque=\"{o}\""));
        }
        if self.stale {
            h.push_str(", stale=true");
        }
        h
    }

    /// The `Authorization` value answering this challenge.
    pub fn authorize(&self, method: &str, uri: &str, username: &str, password: &str, cnonce: &str, nc: u32) -> String {
        let nc = format!("{nc:08x}");
        let qop = self.qop_auth.then_some("auth");
        let response =
            response(username, &self.realm, password, method, uri, &self.nonce, qop.map(|q| (nc.as_str(), cnonce, q)));
        let mut h = format!(
            "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", algorithm=MD5, response=\"{response}\"",
            self.realm, self.nonce
        );
        if qop.is_some() {
            h.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        }
        if let Some(o) = &self.opaque {
            h.push_str(&format!(", opaque=\"{o}\""));
        }
        h
    }
}

/// The digest `response`: `MD5(HA1:nonce[:nc:cnonce:qop]:HA2)`.
pub fn response(
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str, &str)>,
) -> String {
    let ha1 = md5_hex(format!("{username}:{realm}:{password}").as_bytes());
    let ha2 = md5_hex(format!("{method}:{uri}").as_bytes());
    match qop {
        Some((nc, cnonce, qop)) => md5_hex(format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}").as_bytes()),
        None => md5_hex(format!("{ha1}:{nonce}:{ha2}").as_bytes()),
    }
}

/// A client's `Authorization: Digest …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
}

impl Authorization {
    pub fn parse(header: &str) -> Option<Authorization> {
        let p = parse_params(header)?;
        if let Some(a) = get(&p, "algorithm")
            && !a.eq_ignore_ascii_case("MD5")
        {
            return None;
        }
        Some(Authorization {
            username: get(&p, "username")?.to_string(),
            realm: get(&p, "realm")?.to_string(),
            nonce: get(&p, "nonce")?.to_string(),
            uri: get(&p, "uri")?.to_string(),
            response: get(&p, "response")?.to_ascii_lowercase(),
            qop: get(&p, "qop").map(str::to_string),
            nc: get(&p, "nc").map(str::to_string),
            cnonce: get(&p, "cnonce").map(str::to_string),
        })
    }

    /// Whether the response is right for `password` and `method`. The caller checks realm,
    /// nonce freshness and that `uri` names the requested resource.
    pub fn verify(&self, method: &str, password: &str) -> bool {
        let qop = match (&self.qop, &self.nc, &self.cnonce) {
            (Some(q), Some(nc), Some(cn)) if q == "auth" => Some((nc.as_str(), cn.as_str(), q.as_str())),
            (None, _, _) => None,
            _ => return false,
        };
        let want = response(&self.username, &self.realm, password, method, &self.uri, &self.nonce, qop);
        want.len() == self.response.len()
            && want.as_bytes().iter().zip(self.response.as_bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5.
    #[test]
    fn rfc2617_vector() {
        let r = response(
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("00000001", "0a4f113b", "auth")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
        let h = r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let a = Authorization::parse(h).unwrap();
        assert!(a.verify("GET", "Circle Of Life"));
        assert!(!a.verify("GET", "Circle of Life"));
        assert!(!a.verify("POST", "Circle Of Life"));
    }

    #[test]
    fn challenge_round_trip() {
        let c = Challenge {
            realm: "cam".into(),
            nonce: "abc".into(),
            opaque: Some("o".into()),
            qop_auth: true,
            stale: false,
        };
        let parsed = Challenge::parse(&c.header()).unwrap();
        assert_eq!(parsed, c);
        let auth = c.authorize("POST", "/onvif/device_service", "admin", "pw", "cn", 1);
        let a = Authorization::parse(&auth).unwrap();
        assert!(a.verify("POST", "pw"));
        assert!(Challenge::parse("Basic realm=\"x\"").is_none());
        assert!(parse_params("Digest realm=\"unterminated").is_none());
    }
}
