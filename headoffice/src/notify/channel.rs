//! Sending one message on one channel to one recipient, and what the receiver answered.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::ChannelConfig;

/// What the receiver said, or why it could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later: the receiver is down, slow, or said so (5xx, rate limit).
    #[error("{0}")]
    Retry(String),
    /// The receiver refused the message as it is (a bad key, a bad signature): retrying the
    /// same request will not help until the configuration is fixed. Still retried, slowly,
    /// until the message expires: a fixed configuration then delivers it.
    #[error("{0}")]
    Refused(String),
}

/// The message as sent: subject (e-mail), text, and the JSON of the event (webhook).
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub subject: &'a str,
    pub text: &'a str,
    pub payload: &'a serde_json::Value,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => Vec::new(),
    }
}

/// DingTalk's signature of a request at `timestamp_ms`: base64(HMAC-SHA256(secret,
/// "{timestamp}\n{secret}")), to be URL-encoded into `&sign=`.
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let mac = hmac_sha256(secret.as_bytes(), format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac)
}

/// The webhook's signature: hex(HMAC-SHA256(secret, "{timestamp}.{body}")).
pub fn webhook_sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut data = Vec::with_capacity(timestamp.len() + 1 + body.len());
    data.extend_from_slice(timestamp.as_bytes());
    data.push(b'.');
    data.extend_from_slice(body);
    hmac_sha256(secret.as_bytes(), &data).iter().map(|b| format!("{b:02x}")).collect()
}

fn client() -> Result<reqwest::Client, SendError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| SendError::Retry(format!("cannot make an HTTP client: {e}")))
}

/// Reads a robot's JSON answer: `errcode` 0 is success.
async fn robot_answer(r: reqwest::Response) -> Result<String, SendError> {
    let status = r.status();
    let body = r.text().await.map_err(|e| SendError::Retry(format!("reading the answer: {e}")))?;
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(SendError::Retry(format!("HTTP {status}: {body}")));
    }
    if !status.is_success() {
        return Err(SendError::Refused(format!("HTTP {status}: {body}")));
    }
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|_| SendError::Retry(format!("HTTP {status}, not JSON: {body}")))?;
    match v["errcode"].as_i64() {
        Some(0) => Ok(body),
        // 45009: WeCom's rate limit; 130101: DingTalk's.
        Some(45009 | 130101) => Err(SendError::Retry(format!("rate-limited: {body}"))),
        _ => Err(SendError::Refused(format!("the robot refused the message: {body}"))),
    }
}

/// A plain HTTP receiver's answer (webhook, SMS gateway): 2xx is success; a timeout, rate
/// limit or server error is worth retrying; anything else is a refusal.
async fn http_answer(r: reqwest::Response) -> Result<String, SendError> {
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    match status.as_u16() {
        200..=299 => Ok(format!("HTTP {status} {text}")),
        408 | 429 | 500..=599 => Err(SendError::Retry(format!("HTTP {status}: {text}"))),
        _ => Err(SendError::Refused(format!("HTTP {status}: {text}"))),
    }
}

fn http_error(e: reqwest::Error) -> SendError {
    SendError::Retry(format!("cannot reach the receiver: {e}"))
}

/// Sends `m` to `recipient` over `c`. Returns the receiver's answer.
pub async fn send(c: &ChannelConfig, recipient: &str, m: &Outgoing<'_>) -> Result<String, SendError> {
    match c {
        ChannelConfig::Webhook { url, secret, .. } => {
            let body = serde_json::to_vec(m.payload).map_err(|e| SendError::Refused(e.to_string()))?;
            let ts = chrono::Utc::now().timestamp().to_string();
            let mut rb = client()?.post(url).header("content-type", "application/json").header("x-hq-timestamp", &ts);
            if !secret.is_empty() {
                rb = rb.header("x-hq-signature", format!("sha256={}", webhook_sign(secret, &ts, &body)));
            }
            let r = rb.body(body).send().await.map_err(http_error)?;
            http_answer(r).await
        }
        ChannelConfig::Wecom { url, .. } => {
            let body = serde_json::json!({"msgtype": "markdown", "markdown": {"content": m.text}});
            let r = client()?.post(url).json(&body).send().await.map_err(http_error)?;
            robot_answer(r).await
        }
        ChannelConfig::Dingtalk { url, secret, .. } => {
            let ts = chrono::Utc::now().timestamp_millis();
            let sign = crate::web::encode(&dingtalk_sign(secret, ts));
            let sep = if url.contains('?') { '&' } else { '?' };
            let signed = format!("{url}{sep}timestamp={ts}&sign={sign}");
            let body = serde_json::json!({"msgtype": "markdown", "markdown": {"title": m.subject, "text": m.text}});
            let r = client()?.post(signed).json(&body).send().await.map_err(http_error)?;
            robot_answer(r).await
        }
        ChannelConfig::Sms { url, token, .. } => {
            let body = serde_json::json!({"to": recipient, "text": m.text});
            let mut rb = client()?.post(url).json(&body);
            if !token.is_empty() {
                rb = rb.header("authorization", format!("Bearer {token}"));
            }
            let r = rb.send().await.map_err(http_error)?;
            http_answer(r).await
        }
        ChannelConfig::Email { smtp, security, username, password_file, from, ca_file, .. } => {
            let server = Smtp {
                addr: smtp,
                security,
                username,
                password_file: password_file.as_deref(),
                ca_file: ca_file.as_deref(),
            };
            send_mail(&server, from, recipient, m).await
        }
    }
}

/// How to reach the SMTP server.
struct Smtp<'a> {
    addr: &'a str,
    security: &'a str,
    username: &'a str,
    password_file: Option<&'a str>,
    ca_file: Option<&'a str>,
}

async fn send_mail(server: &Smtp<'_>, from: &str, to: &str, m: &Outgoing<'_>) -> Result<String, SendError> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let Smtp { addr: smtp, security, username, password_file, ca_file } = *server;
    let refused = |e: String| SendError::Refused(e);
    let msg = Message::builder()
        .from(from.parse().map_err(|e| refused(format!("from {from:?}: {e}")))?)
        .to(to.parse().map_err(|e| refused(format!("to {to:?}: {e}")))?)
        .subject(m.subject)
        .header(lettre::message::header::ContentType::TEXT_PLAIN)
        .body(m.text.to_string())
        .map_err(|e| refused(format!("cannot build the message: {e}")))?;
    let (host, port) = smtp.rsplit_once(':').ok_or_else(|| refused(format!("smtp {smtp:?}: host:port")))?;
    let port: u16 = port.parse().map_err(|_| refused(format!("smtp {smtp:?}: host:port")))?;
    let mut builder =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port).timeout(Some(Duration::from_secs(15)));
    if security != "none" {
        let mut params = TlsParameters::builder(host.to_string());
        if let Some(ca) = ca_file {
            let pem = std::fs::read(ca).map_err(|e| refused(format!("the CA file {ca}: {e}")))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| refused(format!("the CA file {ca}: {e}")))?;
            params = params.add_root_certificate(cert);
        }
        let params = params.build_rustls().map_err(|e| refused(format!("TLS for {smtp}: {e}")))?;
        // STARTTLS is required, never skipped: a server that does not offer it is refused.
        builder = builder.tls(if security == "tls" { Tls::Wrapper(params) } else { Tls::Required(params) });
    }
    if !username.is_empty() {
        let pw = match password_file {
            Some(f) => std::fs::read_to_string(f)
                .map_err(|e| refused(format!("the SMTP password file {f}: {e}")))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            None => String::new(),
        };
        builder = builder.credentials(Credentials::new(username.to_string(), pw));
    }
    let mailer = builder.build();
    match mailer.send(msg).await {
        Ok(r) => Ok(format!("SMTP {}", r.code())),
        Err(e) if e.is_permanent() => Err(SendError::Refused(format!("the SMTP server refused it: {e}"))),
        Err(e) => Err(SendError::Retry(format!("SMTP {smtp}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dingtalk_signs_as_its_documentation_says() {
        // HMAC-SHA256("SECx", "1700000000000\nSECx"), base64: computed independently with
        // Python's hmac module.
        assert_eq!(dingtalk_sign("SECx", 1_700_000_000_000), "rgcjbH+yFyES+S0llX+cAPCwVRpsr7sbiX5Lnyo/ocU=");
        assert_eq!(webhook_sign("k", "1", b"{}").len(), 64);
    }
}
