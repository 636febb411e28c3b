//! WS-Security UsernameToken with PasswordDigest, the ONVIF default authentication:
//! `PasswordDigest = Base64(SHA1(nonce ‖ created ‖ password))`, where `nonce` is the raw
//! (base64-decoded) nonce and `created` the exact text of `wsu:Created`.
//!
//! `created` is stamped with the *client's idea of the camera clock*; a camera checks it
//! against its own clock, so clock skew between gateway and camera breaks authentication
//! unless the client first reads the camera's time (GetSystemDateAndTime, which needs no
//! authentication) and offsets its timestamps.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use sha1::{Digest, Sha1};

use super::ns;
use super::xml::Element;

/// `Base64(SHA1(nonce ‖ created ‖ password))`.
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(password.as_bytes());
    STANDARD.encode(h.finalize())
}

/// Checks a received digest in constant time with respect to its content.
pub fn verify_digest(nonce: &[u8], created: &str, password: &str, digest_b64: &str) -> bool {
    let want = password_digest(nonce, created, password);
    let got = digest_b64.trim().as_bytes();
    if want.len() != got.len() {
        return false;
    }
    want.as_bytes().iter().zip(got).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// The `wsu:Created` text for a time (`2024-01-01T00:00:00.000Z`).
pub fn created_string(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads a `wsu:Created` value. Accepts RFC 3339 (`Z` or an offset, any fraction) and, as some
/// clients send, a zone-less time taken as UTC.
pub fn parse_created(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

/// The password kind of a UsernameToken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordType {
    Digest,
    Text,
}

/// A UsernameToken as found in a SOAP header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsernameToken {
    pub username: String,
    pub password: String,
    pub password_type: PasswordType,
    /// Raw (decoded) nonce; empty when absent.
    pub nonce: Vec<u8>,
    pub created: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no WS-Security UsernameToken in the header")]
    Missing,
    #[error("UsernameToken without {0}")]
    MissingField(&'static str),
    #[error("nonce is not valid base64")]
    BadNonce,
    #[error("Created is not a valid time")]
    BadCreated,
    #[error("Created is {0} s away from the device clock")]
    Stale(i64),
    #[error("unknown user")]
    UnknownUser,
    #[error("wrong password")]
    WrongPassword,
    #[error("plain-text passwords are not accepted")]
    PlainText,
}

impl UsernameToken {
    /// Finds `wsse:Security/wsse:UsernameToken` in a SOAP header.
    pub fn from_header(header: Option<&Element>) -> Result<UsernameToken, TokenError> {
        let token = header
            .and_then(|h| h.child_ns(ns::WSSE, "Security"))
            .and_then(|s| s.child_ns(ns::WSSE, "UsernameToken"))
            .ok_or(TokenError::Missing)?;
        let username = token.child_ns(ns::WSSE, "Username").ok_or(TokenError::MissingField("Username"))?;
        let password = token.child_ns(ns::WSSE, "Password").ok_or(TokenError::MissingField("Password"))?;
        let password_type = match password.attr("Type") {
            Some(t) if t.ends_with("#PasswordText") => PasswordType::Text,
            _ => PasswordType::Digest,
        };
        let nonce = match token.child_ns(ns::WSSE, "Nonce") {
            Some(n) => STANDARD.decode(n.text.trim()).map_err(|_| TokenError::BadNonce)?,
            None => Vec::new(),
        };
        let created = token.child_ns(ns::WSU, "Created").map(|c| c.text.trim().to_string());
        Ok(UsernameToken {
            username: username.text.trim().to_string(),
            password: password.text.trim().to_string(),
            password_type,
            nonce,
            created,
        })
    }

    /// Verifies a digest token for `username`/`password` against the device clock `now`,
    /// accepting a `Created` at most `max_skew_secs` away.
    pub fn verify(
        &self,
        username: &str,
        password: &str,
        now: DateTime<Utc>,
        max_skew_secs: i64,
    ) -> Result<(), TokenError> {
        if self.password_type == PasswordType::Text {
            return Err(TokenError::PlainText);
        }
        let created = self.created.as_deref().ok_or(TokenError::MissingField("Created"))?;
        if self.nonce.is_empty() {
            return Err(TokenError::MissingField("Nonce"));
        }
        let t = parse_created(created).ok_or(TokenError::BadCreated)?;
        let skew = (t - now).num_seconds();
        if skew.abs() > max_skew_secs {
            return Err(TokenError::Stale(skew));
        }
        if self.username != username {
            return Err(TokenError::UnknownUser);
        }
        if !verify_digest(&self.nonce, created, password, &self.password) {
            return Err(TokenError::WrongPassword);
        }
        Ok(())
    }
}

/// Serialises a UsernameToken security header (content of `s:Header`) for a client.
pub fn security_header(username: &str, password: &str, nonce: &[u8], created: &str) -> String {
    let digest = password_digest(nonce, created, password);
    format!(
        "<wsse:Security xmlns:wsse=\"{wsse}\" xmlns:wsu=\"{wsu}\"><wsse:UsernameToken><wsse:Username>{user}</wsse:Username><wsse:Password Type=\"{ptype}\">{digest}</wsse:Password><wsse:Nonce EncodingType=\"{enc}\">{nonce}</wsse:Nonce><wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>",
        wsse = ns::WSSE,
        wsu = ns::WSU,
        user = super::xml::escape(username),
        ptype = ns::PASSWORD_DIGEST,
        enc = ns::BASE64_BINARY,
        nonce = STANDARD.encode(nonce),
        created = super::xml::escape(created),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onvif::soap::Envelope;

    /// The worked example of the ONVIF Application Programmer's Guide.
    #[test]
    fn known_vector() {
        let nonce = STANDARD.decode("LKqI6G/AikKCQrN0zqZFlg==").unwrap();
        let d = password_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword");
        assert_eq!(d, "tuOSpGlFlIXsozq4HFNeeGeFLEI=");
        assert!(verify_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword", &d));
        assert!(!verify_digest(&nonce, "2010-09-16T07:50:45Z", "userpassword2", &d));
        assert!(!verify_digest(&nonce, "2010-09-16T07:50:46Z", "userpassword", &d));
    }

    #[test]
    fn header_round_trip_and_clock() {
        let now = Utc::now();
        let created = created_string(now);
        let h = security_header("admin", "pw", b"0123456789abcdef", &created);
        let xml =
            crate::onvif::soap::envelope(crate::onvif::soap::SoapVersion::V12, Some(&h), "<tds:GetDeviceInformation/>");
        let env = Envelope::parse(&xml, 65536).unwrap();
        let tok = UsernameToken::from_header(env.header.as_ref()).unwrap();
        assert_eq!(tok.verify("admin", "pw", now, 5), Ok(()));
        assert_eq!(tok.verify("admin", "nope", now, 5), Err(TokenError::WrongPassword));
        assert_eq!(tok.verify("root", "pw", now, 5), Err(TokenError::UnknownUser));
        let later = now + chrono::Duration::seconds(120);
        assert!(matches!(tok.verify("admin", "pw", later, 60), Err(TokenError::Stale(_))));
        assert_eq!(UsernameToken::from_header(None), Err(TokenError::Missing));
    }

    #[test]
    fn created_formats() {
        assert!(parse_created("2024-01-01T00:00:00Z").is_some());
        assert!(parse_created("2024-01-01T00:00:00.123+00:00").is_some());
        assert!(parse_created("2024-01-01T00:00:00").is_some());
        assert!(parse_created("yesterday").is_none());
    }
}
