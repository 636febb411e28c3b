//! Just enough RTSP (RFC 2326) for a health probe and a simulator: one request or response
//! head plus a Content-Length body, and a check that a DESCRIBE's SDP offers video.
//!
//! The parsers work on a byte buffer the caller has read with a size cap; they report
//! `Incomplete` until the whole message is in, so a reader can loop until done or the cap.

/// The largest message head we accept.
pub const MAX_HEAD: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtspError {
    #[error("message incomplete")]
    Incomplete,
    #[error("message head over {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("body of {0} bytes over the limit")]
    BodyTooLarge(usize),
    #[error("malformed RTSP: {0}")]
    Malformed(&'static str),
}

/// A parsed message head + body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Request: (method, uri); response: (status code as text, reason).
    pub start: (String, String),
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Bytes of `buf` the message used.
    pub len: usize,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        self.start.0.parse().ok()
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn parse(buf: &[u8], max_body: usize, response: bool) -> Result<Message, RtspError> {
    let Some(head_end) = find_head_end(buf) else {
        return Err(if buf.len() > MAX_HEAD { RtspError::HeadTooLarge } else { RtspError::Incomplete });
    };
    if head_end > MAX_HEAD {
        return Err(RtspError::HeadTooLarge);
    }
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| RtspError::Malformed("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let first = lines.next().ok_or(RtspError::Malformed("empty"))?;
    let mut parts = first.splitn(3, ' ');
    let (a, b, c) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (start, version) = if response {
        if !a.starts_with("RTSP/") || b.len() != 3 || !b.bytes().all(|d| d.is_ascii_digit()) {
            return Err(RtspError::Malformed("bad status line"));
        }
        ((b.to_string(), c.to_string()), a.to_string())
    } else {
        if a.is_empty() || b.is_empty() || !c.starts_with("RTSP/") {
            return Err(RtspError::Malformed("bad request line"));
        }
        ((a.to_string(), b.to_string()), c.to_string())
    };
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once(':').ok_or(RtspError::Malformed("header without colon"))?;
        if headers.len() >= 64 {
            return Err(RtspError::Malformed("too many headers"));
        }
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut msg = Message { start, version, headers, body: Vec::new(), len: head_end };
    let clen = match msg.header("Content-Length") {
        Some(v) => v.parse::<usize>().map_err(|_| RtspError::Malformed("bad Content-Length"))?,
        None => 0,
    };
    if clen > max_body {
        return Err(RtspError::BodyTooLarge(clen));
    }
    let end = head_end.checked_add(clen).ok_or(RtspError::BodyTooLarge(clen))?;
    if buf.len() < end {
        return Err(RtspError::Incomplete);
    }
    msg.body = buf[head_end..end].to_vec();
    msg.len = end;
    Ok(msg)
}

/// Parses a request (simulator side).
pub fn parse_request(buf: &[u8], max_body: usize) -> Result<Message, RtspError> {
    parse(buf, max_body, false)
}

/// Parses a response (probe side).
pub fn parse_response(buf: &[u8], max_body: usize) -> Result<Message, RtspError> {
    parse(buf, max_body, true)
}

/// `rtsp://[user[:pass]@]host[:port]/path` → (host, port). Port defaults to 554.
pub fn host_port(uri: &str) -> Option<(String, u16)> {
    let rest = uri.strip_prefix("rtsp://").or_else(|| uri.strip_prefix("RTSP://"))?;
    let authority = rest.split(['/', '?']).next()?;
    let hostport = authority.rsplit_once('@').map(|(_, h)| h).unwrap_or(authority);
    if hostport.is_empty() {
        return None;
    }
    if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => 554,
        };
        return Some((h.to_string(), port));
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => Some((h.to_string(), p.parse().ok()?)),
        Some(_) => None,
        None => Some((hostport.to_string(), 554)),
    }
}

/// A DESCRIBE request. `authorization` is a full header value, if any.
pub fn describe_request(uri: &str, cseq: u32, authorization: Option<&str>) -> String {
    let mut r =
        format!("DESCRIBE {uri} RTSP/1.0\r\nCSeq: {cseq}\r\nAccept: application/sdp\r\nUser-Agent: branch-gateway\r\n");
    if let Some(a) = authorization {
        r.push_str(&format!("Authorization: {a}\r\n"));
    }
    r.push_str("\r\n");
    r
}

/// What an SDP says about video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpVideo {
    /// The encoding name of the first video payload (`H264`, `H265`, `JPEG`…), if given.
    pub codec: Option<String>,
}

/// Checks an SDP session description: version line first, and at least one `m=video`.
pub fn sdp_video(sdp: &[u8]) -> Option<SdpVideo> {
    let text = std::str::from_utf8(sdp).ok()?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next()? != "v=0" {
        return None;
    }
    let mut in_video = false;
    let mut found = None;
    let mut payloads: Vec<String> = Vec::new();
    for l in lines {
        if let Some(m) = l.strip_prefix("m=") {
            in_video = m.starts_with("video ");
            if in_video && found.is_none() {
                payloads = m.split_whitespace().skip(3).map(str::to_string).collect();
                found = Some(SdpVideo { codec: None });
            }
        } else if in_video && let Some(rtpmap) = l.strip_prefix("a=rtpmap:") {
            let (pt, enc) = rtpmap.split_once(' ').unwrap_or((rtpmap, ""));
            if let Some(v) = found.as_mut()
                && v.codec.is_none()
                && payloads.iter().any(|p| p == pt)
            {
                v.codec = enc.split('/').next().map(str::to_string);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_describe_reply() {
        let sdp =
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
        let raw = format!(
            "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        );
        let m = parse_response(raw.as_bytes(), 16 * 1024).unwrap();
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.header("cseq"), Some("2"));
        assert_eq!(sdp_video(&m.body), Some(SdpVideo { codec: Some("H264".into()) }));
        assert_eq!(parse_response(&raw.as_bytes()[..raw.len() - 3], 16 * 1024), Err(RtspError::Incomplete));
        assert!(matches!(parse_response(raw.as_bytes(), 10), Err(RtspError::BodyTooLarge(_))));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(parse_response(b"HTTP/1.1 200 OK\r\n\r\n", 100), Err(RtspError::Malformed(_))));
        assert!(matches!(parse_response(&[b'a'; MAX_HEAD + 10], 100), Err(RtspError::HeadTooLarge)));
        assert_eq!(sdp_video(b"v=0\r\nm=audio 0 RTP/AVP 0\r\n"), None);
        assert_eq!(sdp_video(b"garbage"), None);
    }

    #[test]
    fn request_and_uri() {
        let r = describe_request("rtsp://127.0.0.1:8554/s", 3, None);
        let m = parse_request(r.as_bytes(), 0).unwrap();
        assert_eq!(m.start, ("DESCRIBE".into(), "rtsp://127.0.0.1:8554/s".into()));
        assert_eq!(host_port("rtsp://u:p@10.0.0.1/x"), Some(("10.0.0.1".into(), 554)));
        assert_eq!(host_port("rtsp://[::1]:9/x"), Some(("::1".into(), 9)));
        assert_eq!(host_port("http://x"), None);
    }
}
