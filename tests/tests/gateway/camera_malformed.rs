//! The camera poller against a hand-rolled, misbehaving "camera": malformed XML, wrong
//! namespaces, a 50 MiB reply, a reply that never ends, garbage, and an auth fault sent with
//! HTTP 200. Each must become a failure observation promptly — no panic, no unbounded read.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gateway::config::CameraConfig;
use gateway::pollers::camera::{CameraProbeSettings, spawn_camera_poller_with};
use gateway::pollers::{CameraObservation, Observation, Reach};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug)]
enum Mode {
    MalformedXml,
    WrongNamespace,
    Huge,
    HugeNoLength,
    Endless,
    Garbage,
    AuthFault200,
    DeepNesting,
}

const GSDT_OK: &str = r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"><s:Body><tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings><tt:UTCDateTime><tt:Time><tt:Hour>1</tt:Hour><tt:Minute>2</tt:Minute><tt:Second>3</tt:Second></tt:Time><tt:Date><tt:Year>2030</tt:Year><tt:Month>1</tt:Month><tt:Day>1</tt:Day></tt:Date></tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse></s:Body></s:Envelope>"#;

const AUTH_FAULT: &str = r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error"><s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>ter:NotAuthorized</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">Sender not Authorized</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>"#;

/// Reads one HTTP request (head + Content-Length body), at most 1 MiB.
async fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(text);
            }
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn reply(s: &mut TcpStream, status: &str, body: &str) {
    let r = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/soap+xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(r.as_bytes()).await;
}

async fn serve(mut s: TcpStream, mode: Mode) {
    let Some(req) = read_request(&mut s).await else { return };
    let is_clock = req.contains("GetSystemDateAndTime");
    match mode {
        Mode::AuthFault200 if is_clock => reply(&mut s, "200 OK", GSDT_OK).await,
        Mode::AuthFault200 => reply(&mut s, "200 OK", AUTH_FAULT).await,
        Mode::MalformedXml => {
            reply(
                &mut s,
                "200 OK",
                "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body><broken</s:Body>",
            )
            .await
        }
        Mode::WrongNamespace => {
            reply(
                &mut s,
                "200 OK",
                &GSDT_OK.replace("http://www.w3.org/2003/05/soap-envelope", "http://example.com/not-soap"),
            )
            .await
        }
        Mode::DeepNesting => {
            let deep = format!(
                "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body>{}{}</s:Body></s:Envelope>",
                "<a>".repeat(100_000),
                "</a>".repeat(100_000)
            );
            reply(&mut s, "200 OK", &deep).await
        }
        Mode::Garbage => {
            let _ = s.write_all(b"\x00\x01\x02 this is not HTTP at all\r\n\r\n").await;
        }
        Mode::Huge | Mode::HugeNoLength => {
            let head = match mode {
                Mode::Huge => format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: {}\r\n\r\n",
                    50 << 20
                ),
                _ => "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nConnection: close\r\n\r\n".to_string(),
            };
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let block = vec![b'x'; 64 * 1024];
            for _ in 0..(50 * 16) {
                if s.write_all(&block).await.is_err() {
                    return;
                }
            }
        }
        Mode::Endless => {
            let _ = s
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nTransfer-Encoding: chunked\r\n\r\n",
                )
                .await;
            // A trickle that never ends: one small chunk every 50 ms.
            loop {
                if s.write_all(b"10\r\n<a>xxxxxxxxx</a>\r\n").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn bad_camera(mode: Mode) -> (String, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stop = CancellationToken::new();
    let st = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = st.cancelled() => break,
                Ok((s, _)) = listener.accept() => {
                    let st = st.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = serve(s, mode) => {}
                            _ = st.cancelled() => {}
                        }
                    });
                }
            }
        }
    });
    (format!("http://127.0.0.1:{port}/onvif/device_service"), stop)
}

async fn first_observation(url: &str) -> (CameraObservation, Duration) {
    let cfg: CameraConfig = serde_json::from_value(serde_json::json!({
        "id": "bad-cam", "name": "bad", "onvif": url, "username": "admin", "password": "pw",
        "poll_interval": "5s", "timeout": "800ms",
    }))
    .expect("config");
    let (tx, mut rx) = mpsc::channel(4);
    let stop = CancellationToken::new();
    let settings = CameraProbeSettings::from_config(&cfg);
    let started = Instant::now();
    let handle = spawn_camera_poller_with(cfg, settings, PathBuf::from("."), tx, stop.clone());
    let obs = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
    // How long the probe itself took (the poller starts each camera at a stable phase of up to
    // 2 s, which is not part of the probe).
    let took = match &obs {
        Ok(Some(Observation::Camera(c))) => c.duration,
        _ => started.elapsed(),
    };
    stop.cancel();
    let _ = handle.await;
    match obs {
        Ok(Some(Observation::Camera(c))) => (c, took),
        other => panic!("no camera observation: {other:?}"),
    }
}

#[tokio::test]
async fn camera_malformed_replies_become_failure_observations() {
    for (mode, want) in [
        (Mode::MalformedXml, Reach::TcpOnly),
        (Mode::WrongNamespace, Reach::TcpOnly),
        (Mode::DeepNesting, Reach::TcpOnly),
        (Mode::Huge, Reach::TcpOnly),
        (Mode::HugeNoLength, Reach::TcpOnly),
        (Mode::Endless, Reach::TcpOnly),
        (Mode::Garbage, Reach::TcpOnly),
        (Mode::AuthFault200, Reach::AuthFailed),
    ] {
        let (url, stop) = bad_camera(mode).await;
        let (o, took) = first_observation(&url).await;
        stop.cancel();
        assert_eq!(o.reach, want, "{mode:?}: {o:#?}");
        assert!(o.reason.is_some(), "{mode:?}: a reason is given");
        assert!(o.reason.as_deref().unwrap_or("").len() <= 700, "{mode:?}: reason is bounded");
        // Bounded in time: one deadline for the call, one for the TCP check.
        assert!(took < Duration::from_secs(3), "{mode:?}: took {took:?}");
        eprintln!("{mode:?}: {:?} in {took:?}: {}", o.reach, o.reason.unwrap_or_default());
    }
}

#[tokio::test]
async fn camera_malformed_nothing_listening_is_unreachable() {
    let port = harness::free_port();
    let (o, took) = first_observation(&format!("http://127.0.0.1:{port}/onvif/device_service")).await;
    assert_eq!(o.reach, Reach::Unreachable, "{o:#?}");
    assert!(took < Duration::from_secs(2));
}
