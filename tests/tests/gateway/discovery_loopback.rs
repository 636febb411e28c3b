//! `branch-gateway discover` against the simulator's WS-Discovery responder on loopback, by
//! unicast (`--target`): multicast on `lo` is unreliable and UDP 3702 would be shared by
//! parallel tests, so each test's responder has a port of its own. The multicast path is
//! covered in network namespaces (discovery_netns.rs).

use crate::discovery_common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use device_sim::camera::{AuthMode, CameraFault, CameraFleet, CameraSpec};
use discovery_common::{discover, site_config};
use tokio::net::UdpSocket;

fn spec(id: &str, name: &str) -> CameraSpec {
    CameraSpec {
        id: id.into(),
        name: name.into(),
        username: "admin".into(),
        password: "pw".into(),
        auth: AuthMode::UsernameToken,
    }
}

const LO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_lists_the_cameras_and_compares_them_with_the_config() {
    let fleet = CameraFleet::start(
        LO,
        vec![spec("cam-01", "Lobby"), spec("cam-02", "Vault"), spec("cam-03", "ATM"), spec("cam-04", "Back-door")],
    )
    .await
    .expect("fleet");
    let cams = fleet.cameras();
    // cam-03 is configured but powered off; cam-04 is on the network but not configured.
    fleet.set_fault("cam-03", CameraFault::Down, true).expect("down");
    let responder = fleet.start_discovery_unicast(SocketAddr::new(LO, 0)).expect("responder");

    let dir = tempfile::tempdir().expect("tempdir");
    let ghost = format!("http://127.0.0.1:{}/onvif/device_service", harness::free_port());
    let config = harness::write_file(
        dir.path(),
        "site.toml",
        &site_config(&[
            ("cam-01", &cams[0].device_url),
            // Another path on the same host:port still is that camera.
            ("cam-02", &cams[1].device_url.replace("/onvif/device_service", "/onvif/other")),
            ("cam-03", &cams[2].device_url),
            ("cam-ghost", &ghost),
        ]),
    )
    .expect("config");
    let target = responder.local_addr().to_string();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> =
            ["--target", &target, "--timeout", "1s", "--config"].iter().map(|s| s.to_string()).collect();
        a.push(config.display().to_string());
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };

    let out = discover(args(&["--json"])).await;
    assert_eq!(out.code, 0, "{out:?}");
    let v = out.json();
    let devices = v["report"]["devices"].as_array().expect("devices");
    let mut xaddrs: Vec<&str> = devices.iter().filter_map(|d| d["xaddrs"][0].as_str()).collect();
    xaddrs.sort_unstable();
    let mut want = [cams[0].device_url.as_str(), cams[1].device_url.as_str(), cams[3].device_url.as_str()];
    want.sort_unstable();
    assert_eq!(xaddrs, want);
    let lobby = devices.iter().find(|d| d["xaddrs"][0] == cams[0].device_url.as_str()).expect("cam-01 found");
    assert_eq!(lobby["name"], "Lobby");
    assert_eq!(lobby["hardware"], "SimCam-1");
    assert!(lobby["endpoint"].as_str().is_some_and(|e| e.starts_with("urn:uuid:")), "{lobby}");
    assert!(lobby["types"].to_string().contains("NetworkVideoTransmitter"), "{lobby}");
    assert_eq!(v["report"]["malformed"], 0);

    let ids = |key: &str| -> Vec<String> {
        v["config"][key]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["id"].as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    assert_eq!(ids("answered"), ["cam-01", "cam-02"]);
    assert_eq!(ids("missing"), ["cam-03", "cam-ghost"]);
    let unconfigured = v["config"]["unconfigured"].as_array().expect("unconfigured");
    let back_door = devices.iter().find(|d| d["xaddrs"][0] == cams[3].device_url.as_str()).expect("cam-04");
    assert_eq!(unconfigured, &vec![back_door["endpoint"].clone()]);

    // The same, as an installer reads it.
    let out = discover(args(&[])).await;
    assert_eq!(out.code, 0, "{out:?}");
    let text = &out.stdout;
    assert!(text.contains("found 3 ONVIF device(s)"), "{text}");
    assert!(text.contains("name: Lobby  hardware: SimCam-1"), "{text}");
    assert!(text.contains("2 answered, 2 did not"), "{text}");
    assert!(text.contains("NO ANSWER   cam-03"), "{text}");
    assert!(text.contains("NO ANSWER   cam-ghost"), "{text}");
    assert!(text.contains(&format!("found but not in the config: 1\n  {}", cams[3].device_url)), "{text}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_without_a_config_lists_what_answered_and_exits_0_when_nothing_does() {
    let fleet = CameraFleet::start(LO, vec![spec("cam-01", "Lobby")]).await.expect("fleet");
    let responder = fleet.start_discovery_unicast(SocketAddr::new(LO, 0)).expect("responder");
    let out =
        discover(vec!["--target".into(), responder.local_addr().to_string(), "--timeout".into(), "500ms".into()]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("found 1 ONVIF device(s)"), "{}", out.stdout);
    assert!(out.stdout.contains(&fleet.cameras()[0].device_url), "{}", out.stdout);
    // Both probes (NVT and Device) reached the responder; each is answered once.
    assert_eq!(responder.stats().probes_answered, 2, "{:?}", responder.stats());

    // A silent address: nothing found is a result, not an error.
    let silent = UdpSocket::bind((LO, 0)).await.expect("bind");
    let out = discover(vec![
        "--target".into(),
        silent.local_addr().expect("addr").to_string(),
        "--timeout".into(),
        "300ms".into(),
    ])
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("found 0 ONVIF device(s)"), "{}", out.stdout);
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_responder_answers_onvif_probes_and_ignores_others() {
    let fleet = CameraFleet::start(LO, vec![spec("cam-01", "Lobby"), spec("cam-02", "Vault")]).await.expect("fleet");
    let responder = fleet.start_discovery_unicast(SocketAddr::new(LO, 0)).expect("responder");
    let client = UdpSocket::bind((LO, 0)).await.expect("bind");
    let probe = |id: &str, types: &str| {
        format!(
            "<e:Envelope xmlns:e=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:w=\"http://schemas.xmlsoap.org/ws/2004/08/addressing\" xmlns:d=\"http://schemas.xmlsoap.org/ws/2005/04/discovery\" xmlns:dn=\"http://www.onvif.org/ver10/network/wsdl\" xmlns:tds=\"http://www.onvif.org/ver10/device/wsdl\" xmlns:wsdp=\"http://schemas.xmlsoap.org/ws/2006/02/devprof\"><e:Header><w:MessageID>{id}</w:MessageID><w:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</w:Action></e:Header><e:Body><d:Probe>{types}</d:Probe></e:Body></e:Envelope>"
        )
    };
    let mut buf = vec![0u8; 65536];
    async fn replies(client: &UdpSocket, buf: &mut [u8]) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_millis(300), client.recv_from(buf)).await {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }
    for (id, types, answered) in [
        ("urn:uuid:nvt", "<d:Types>dn:NetworkVideoTransmitter</d:Types>", true),
        ("urn:uuid:dev", "<d:Types>tds:Device</d:Types>", true),
        ("urn:uuid:both", "<d:Types>tds:Device dn:NetworkVideoTransmitter</d:Types>", true),
        ("urn:uuid:any", "", true),
        ("urn:uuid:printer", "<d:Types>wsdp:Device</d:Types>", false),
        ("urn:uuid:scope-no", "<d:Scopes>onvif://www.onvif.org/name/Garage</d:Scopes>", false),
    ] {
        client.send_to(probe(id, types).as_bytes(), responder.local_addr()).await.expect("send");
        let got = replies(&client, &mut buf).await;
        if answered {
            assert_eq!(got.len(), 2, "{id}: one ProbeMatches per camera, got {got:?}");
            for r in &got {
                assert!(r.contains(&format!("RelatesTo>{id}<")), "{id}: {r}");
                assert!(r.contains("http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches"), "{r}");
            }
        } else {
            assert!(got.is_empty(), "{id} must not be answered: {got:?}");
        }
    }
    // A scope probe for one camera's name finds that camera only.
    client
        .send_to(
            probe("urn:uuid:scope-yes", "<d:Scopes>onvif://www.onvif.org/name/Vault</d:Scopes>").as_bytes(),
            responder.local_addr(),
        )
        .await
        .expect("send");
    let got = replies(&client, &mut buf).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains(&fleet.cameras()[1].device_url), "{}", got[0]);
    fleet.shutdown().await;
}
