//! Bad input on both sides of WS-Discovery: `branch-gateway discover` fed malformed,
//! oversized and unrelated replies counts them, lists only the real device and exits 0; the
//! simulator's responder fed garbage counts it and keeps answering. Neither panics.

use crate::discovery_common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use device_sim::camera::{AuthMode, CameraFleet, CameraSpec};
use discovery_common::discover;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn envelope(relates_to: &str, body: &str) -> String {
    format!(
        "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:a=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" xmlns:d=\"http://schemas.xmlsoap.org/ws/2005/04/discovery\"><s:Header><a:RelatesTo>{relates_to}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"
    )
}

fn probe_match(endpoint: &str, xaddr: &str) -> String {
    format!(
        "<d:ProbeMatches><d:ProbeMatch><a:EndpointReference><a:Address>{endpoint}</a:Address></a:EndpointReference><d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes>onvif://www.onvif.org/name/Real</d:Scopes><d:XAddrs>{xaddr}</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches>"
    )
}

/// The MessageID of a probe, found the crude way (this is the test's own fake device).
fn message_id(probe: &str) -> Option<String> {
    let start = probe.find("MessageID>")? + "MessageID>".len();
    let end = probe.get(start..)?.find('<')? + start;
    probe.get(start..end).map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_counts_bad_replies_and_lists_only_the_real_device() {
    let fake = UdpSocket::bind((LO, 0)).expect("bind");
    let target = fake.local_addr().expect("addr");
    // A hostile "device": answers the first probe with one good reply among many bad ones.
    let device = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let _ = fake.set_read_timeout(Some(Duration::from_secs(10)));
        let Ok((n, from)) = fake.recv_from(&mut buf) else { return };
        let Some(id) = message_id(&String::from_utf8_lossy(&buf[..n])) else { return };
        let good = envelope(&id, &probe_match("urn:uuid:real-1", "http://192.0.2.10/onvif/device_service"));
        let replies: Vec<Vec<u8>> = vec![
            // malformed (6)
            b"this is not XML".to_vec(),
            b"\xff\xfe\xfd\x00 binary".to_vec(),
            format!("<!DOCTYPE x [<!ENTITY a \"{}\">]>{good}", "a".repeat(100)).into_bytes(),
            format!("{}{}", "<x>".repeat(200), "</x>".repeat(200)).into_bytes(),
            envelope(
                &id,
                "<d:ProbeMatches><d:ProbeMatch><d:XAddrs>http://192.0.2.11/</d:XAddrs></d:ProbeMatch></d:ProbeMatches>",
            )
            .into_bytes(),
            good.as_bytes()[..good.len() / 2].to_vec(),
            // oversized (1): a well-formed reply padded past the 32 KiB read limit
            envelope(
                &id,
                &format!("{}<!--{}-->", probe_match("urn:uuid:big", "http://192.0.2.12/"), "p".repeat(40_000)),
            )
            .into_bytes(),
            // unrelated (2): a reply to someone else's probe, and a Hello
            envelope("urn:uuid:someone-else", &probe_match("urn:uuid:other", "http://192.0.2.13/")).into_bytes(),
            envelope(&id, "<d:Hello/>").into_bytes(),
            // the real one, twice (merged by endpoint)
            good.clone().into_bytes(),
            good.into_bytes(),
        ];
        for r in replies {
            let _ = fake.send_to(&r, from);
        }
    });

    let out =
        discover(vec!["--target".into(), target.to_string(), "--timeout".into(), "1s".into(), "--json".into()]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    let r = &v["report"];
    let devices = r["devices"].as_array().expect("devices");
    assert_eq!(devices.len(), 1, "{r}");
    assert_eq!(devices[0]["endpoint"], "urn:uuid:real-1");
    assert_eq!(devices[0]["name"], "Real");
    assert_eq!(r["replies"], 11, "{r}");
    assert_eq!(r["malformed"], 6, "{r}");
    assert_eq!(r["oversized"], 1, "{r}");
    assert_eq!(r["unrelated"], 2, "{r}");
    assert_eq!(r["malformed_from"][0], target.to_string());
    assert!(device.join().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_text_report_names_who_sent_unreadable_replies() {
    let fake = UdpSocket::bind((LO, 0)).expect("bind");
    let target = fake.local_addr().expect("addr");
    let device = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let _ = fake.set_read_timeout(Some(Duration::from_secs(10)));
        if let Ok((_, from)) = fake.recv_from(&mut buf) {
            let _ = fake.send_to(b"<garbage", from);
            let _ = fake.send_to(&vec![b'<'; 50_000], from);
        }
    });
    let out = discover(vec!["--target".into(), target.to_string(), "--timeout".into(), "700ms".into()]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("found 0 ONVIF device(s)"), "{}", out.stdout);
    assert!(out.stdout.contains("ignored: 1 malformed, 1 oversized"), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("unreadable replies came from: {target}")), "{}", out.stdout);
    assert!(device.join().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_responder_survives_garbage_and_keeps_answering() {
    let spec = CameraSpec {
        id: "cam-01".into(),
        name: "Lobby".into(),
        username: "admin".into(),
        password: "pw".into(),
        auth: AuthMode::UsernameToken,
    };
    let fleet = CameraFleet::start(LO, vec![spec]).await.expect("fleet");
    let responder = fleet.start_discovery_unicast(SocketAddr::new(LO, 0)).expect("responder");
    let sock = tokio::net::UdpSocket::bind((LO, 0)).await.expect("bind");
    let garbage: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\x00\x01\x02".to_vec(),
        b"<s:Envelope".to_vec(),
        "<a>".repeat(5_000).into_bytes(),
        vec![b'x'; 20_000], // over the responder's 16 KiB read limit
        b"<!DOCTYPE lol [<!ENTITY lol \"lol\">]><lol>&lol;</lol>".to_vec(),
        // a Probe without a MessageID cannot be answered (RelatesTo would be empty)
        b"<e:Envelope xmlns:e=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:d=\"http://schemas.xmlsoap.org/ws/2005/04/discovery\"><e:Body><d:Probe/></e:Body></e:Envelope>".to_vec(),
    ];
    for g in &garbage {
        sock.send_to(g, responder.local_addr()).await.expect("send");
    }
    let mut buf = vec![0u8; 4096];
    let nothing = tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await;
    assert!(nothing.is_err(), "garbage must not be answered");
    let stats = responder.stats();
    assert_eq!(stats.malformed, garbage.len() as u64, "{stats:?}");
    assert_eq!(stats.probes_answered, 0, "{stats:?}");

    // Still answering.
    let out =
        discover(vec!["--target".into(), responder.local_addr().to_string(), "--timeout".into(), "500ms".into()]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("found 1 ONVIF device(s)"), "{}", out.stdout);
    fleet.shutdown().await;
}
