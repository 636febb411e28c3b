//! A minimal RTSP responder: `OPTIONS` and `DESCRIBE` (an H.264 SDP), `CSeq` echoed, anything
//! else 501. No media is ever sent — the gateway only probes with DESCRIBE. In Digest mode
//! DESCRIBE wants HTTP-style Digest authentication, as real cameras do.

use std::sync::Arc;
use std::time::Duration;

use protocols::onvif::rtsp::{self, RtspError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{AuthMode, Camera};

const MAX_REQUEST: usize = 16 * 1024;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn spawn(cam: Arc<Camera>, listener: TcpListener, token: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                r = listener.accept() => match r {
                    Ok((stream, _)) => {
                        let cam = cam.clone();
                        let token = token.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                _ = serve(cam, stream) => {}
                                _ = token.cancelled() => {}
                            }
                        });
                    }
                    Err(e) => {
                        tracing::debug!(camera = %cam.spec.id, error = %e, "rtsp accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
            }
        }
    });
}

async fn serve(cam: Arc<Camera>, mut stream: TcpStream) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        // Answer every complete request in the buffer.
        loop {
            match rtsp::parse_request(&buf, 4096) {
                Ok(req) => {
                    let reply = answer(&cam, &req);
                    buf.drain(..req.len);
                    if stream.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
                Err(RtspError::Incomplete) => break,
                Err(_) => {
                    let _ = stream.write_all(b"RTSP/1.0 400 Bad Request\r\nCSeq: 0\r\n\r\n").await;
                    return;
                }
            }
        }
        if buf.len() >= MAX_REQUEST {
            return;
        }
        match tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn answer(cam: &Camera, req: &rtsp::Message) -> String {
    let cseq = req.header("CSeq").unwrap_or("0").chars().filter(char::is_ascii_digit).take(10).collect::<String>();
    let (method, uri) = (&req.start.0, &req.start.1);
    match method.as_str() {
        "OPTIONS" => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n"),
        "DESCRIBE" => {
            if cam.spec.auth == AuthMode::Digest {
                let checked = match req.header("Authorization") {
                    Some(v) => super::http::verify_digest_value(cam, "DESCRIBE", "/stream1", v),
                    None => Err(super::http::challenge(cam, false)),
                };
                if let Err(ch) = checked {
                    return format!(
                        "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: {}\r\n\r\n",
                        ch.header()
                    );
                }
            }
            let sdp = sdp(cam);
            format!(
                "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: {uri}/\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            )
        }
        _ => format!("RTSP/1.0 501 Not Implemented\r\nCSeq: {cseq}\r\n\r\n"),
    }
}

fn sdp(cam: &Camera) -> String {
    let ip = match cam.ip {
        std::net::IpAddr::V4(v4) => format!("IN IP4 {v4}"),
        std::net::IpAddr::V6(v6) => format!("IN IP6 {v6}"),
    };
    format!(
        "v=0\r\no=- {port} 1 {ip}\r\ns=BSG simulated camera\r\nc={ip}\r\nt=0 0\r\na=control:*\r\na=range:npt=0-\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=4D0028;sprop-parameter-sets=Z00AKJWoHgCJ+WEAAAMAAQAAAwAyhA==,aO48gA==\r\na=control:track1\r\n",
        port = cam.rtsp_port
    )
}
