//! The simulated cameras as an independent ONVIF client (oxvif) sees them: both auth modes,
//! media URIs, refused credentials, clock skew, pull-point events.

use std::net::IpAddr;

use device_sim::camera::{AuthMode, CameraEventKind, CameraFault, CameraFleet, CameraSpec};
use oxvif::{OnvifClient, OnvifError};

fn spec(id: &str, auth: AuthMode) -> CameraSpec {
    CameraSpec {
        id: id.into(),
        name: format!("Camera {id}"),
        username: "admin".into(),
        password: "s3cret".into(),
        auth,
    }
}

async fn fleet(specs: Vec<CameraSpec>) -> CameraFleet {
    CameraFleet::start(IpAddr::from([127, 0, 0, 1]), specs).await.expect("start fleet")
}

/// An authenticated client with the camera's clock offset applied, as a careful client does.
async fn client(url: &str, password: &str) -> OnvifClient {
    let dt = OnvifClient::new(url).get_system_date_and_time().await.expect("GetSystemDateAndTime needs no auth");
    OnvifClient::new(url).with_credentials("admin", password).with_utc_offset(dt.utc_offset_secs())
}

fn is_auth_error(e: &OnvifError) -> bool {
    match e {
        OnvifError::Soap(oxvif::soap::SoapError::Fault { subcode, reason, .. }) => {
            subcode.as_deref().is_some_and(|s| s.ends_with("NotAuthorized")) || reason.contains("Authorized")
        }
        OnvifError::Transport(oxvif::transport::TransportError::HttpStatus { status: 401, .. }) => true,
        _ => false,
    }
}

#[tokio::test]
async fn camera_sim_serves_oxvif_in_both_auth_modes() {
    let fleet = fleet(vec![spec("cam-wsse", AuthMode::UsernameToken), spec("cam-digest", AuthMode::Digest)]).await;
    for cam in fleet.cameras() {
        let c = client(&cam.device_url, "s3cret").await;
        let info = c.get_device_info().await.unwrap_or_else(|e| panic!("{}: device info: {e}", cam.id));
        assert_eq!(info.serial_number, format!("SIM-{}", cam.id));
        let caps = c.get_capabilities().await.expect("capabilities");
        let media = caps.media.url.clone().expect("media xaddr");
        assert!(caps.events.url.is_some(), "events xaddr");
        let profiles = c.get_profiles(&media).await.expect("profiles");
        assert_eq!(profiles.len(), 1);
        let stream = c.get_stream_uri(&media, &profiles[0].token).await.expect("stream uri");
        assert_eq!(stream.uri, cam.rtsp_uri);
        let snap = c.get_snapshot_uri(&media, &profiles[0].token).await.expect("snapshot uri");
        assert_eq!(snap.uri, cam.snapshot_uri);
        let services = c.get_services().await.expect("services");
        assert!(services.iter().any(|s| s.namespace == "http://www.onvif.org/ver10/events/wsdl"));

        // No credentials, wrong password: refused as an auth failure, not some other error.
        let anon = OnvifClient::new(&cam.device_url).get_device_info().await.expect_err("anonymous refused");
        assert!(is_auth_error(&anon), "{}: {anon:?}", cam.id);
        let wrong = client(&cam.device_url, "guess").await.get_device_info().await.expect_err("wrong password refused");
        assert!(is_auth_error(&wrong), "{}: {wrong:?}", cam.id);
    }
    fleet.shutdown().await;
}

#[tokio::test]
async fn camera_sim_checks_tokens_against_its_own_skewed_clock() {
    let fleet = fleet(vec![spec("cam-skew", AuthMode::UsernameToken)]).await;
    let cam = &fleet.cameras()[0];
    fleet.set_fault("cam-skew", CameraFault::ClockSkew(600), true).unwrap();
    let dt = OnvifClient::new(&cam.device_url).get_system_date_and_time().await.unwrap();
    let offset = dt.utc_offset_secs();
    assert!((598..=602).contains(&offset), "offset {offset}");
    // Without the offset the token is stale by ten minutes.
    let naive = OnvifClient::new(&cam.device_url).with_credentials("admin", "s3cret");
    assert!(is_auth_error(&naive.get_device_info().await.expect_err("stale token refused")));
    let careful = naive.with_utc_offset(offset);
    careful.get_device_info().await.expect("offset token accepted");
    // AuthFailure refuses even good credentials.
    fleet.set_fault("cam-skew", CameraFault::AuthFailure, true).unwrap();
    assert!(is_auth_error(&careful.get_device_info().await.expect_err("auth failure")));
    fleet.shutdown().await;
}

#[tokio::test]
async fn camera_sim_queues_events_for_pull_point_subscribers() {
    let fleet = fleet(vec![spec("cam-ev", AuthMode::UsernameToken)]).await;
    let cam = &fleet.cameras()[0];
    let c = client(&cam.device_url, "s3cret").await;
    let events = c.get_capabilities().await.unwrap().events.url.expect("events xaddr");
    let props = c.get_event_properties(&events).await.expect("event properties");
    assert!(props.topics.iter().any(|t| t.contains("SignalLoss")), "{:?}", props.topics);
    let sub = c.create_pull_point_subscription(&events, None, Some("PT60S")).await.expect("subscribe");
    // First pull: the three Initialized states.
    let init = c.pull_messages(&sub.reference_url, "PT0S", 10).await.expect("pull");
    assert_eq!(init.len(), 3, "{init:?}");
    fleet.emit_event("cam-ev", CameraEventKind::SignalLoss, true).unwrap();
    fleet.emit_event("cam-ev", CameraEventKind::Tamper, true).unwrap();
    fleet.emit_event("cam-ev", CameraEventKind::StorageFailure, true).unwrap();
    let msgs = c.pull_messages(&sub.reference_url, "PT1S", 10).await.expect("pull");
    let topics: Vec<(&str, Option<&String>)> = msgs
        .iter()
        .map(|m| (m.topic.as_str(), m.data.get("State").or(m.data.get("IsTamper")).or(m.data.get("Failed"))))
        .collect();
    assert_eq!(
        topics,
        vec![
            ("tns1:VideoSource/SignalLoss", Some(&"true".to_string())),
            ("tns1:RuleEngine/TamperDetector/Tamper", Some(&"true".to_string())),
            ("tns1:Device/HardwareFailure/StorageFailure", Some(&"true".to_string())),
        ]
    );
    let renewed = c.renew_subscription(&sub.reference_url, "PT120S").await.expect("renew");
    assert!(!renewed.is_empty());
    c.unsubscribe(&sub.reference_url).await.expect("unsubscribe");
    assert!(c.pull_messages(&sub.reference_url, "PT0S", 10).await.is_err(), "gone after unsubscribe");
    fleet.shutdown().await;
}

#[tokio::test]
async fn camera_sim_soap_fault_and_http_500() {
    let fleet = fleet(vec![spec("cam-f", AuthMode::UsernameToken)]).await;
    let cam = &fleet.cameras()[0];
    fleet.set_fault("cam-f", CameraFault::SoapFault, true).unwrap();
    let e = OnvifClient::new(&cam.device_url).get_system_date_and_time().await.expect_err("fault");
    assert!(matches!(e, OnvifError::Soap(oxvif::soap::SoapError::Fault { .. })), "{e:?}");
    fleet.set_fault("cam-f", CameraFault::SoapFault, false).unwrap();
    fleet.set_fault("cam-f", CameraFault::Http500, true).unwrap();
    assert!(OnvifClient::new(&cam.device_url).get_system_date_and_time().await.is_err());
    fleet.set_fault("cam-f", CameraFault::Http500, false).unwrap();
    OnvifClient::new(&cam.device_url).get_system_date_and_time().await.expect("healthy again");
    fleet.shutdown().await;
}

#[tokio::test]
async fn camera_sim_scales_to_many_cameras() {
    // 200 by default (400 sockets fit any fd limit); BSG_SIM_CAMERAS=1000 for the full branch-scale check.
    let n: usize = std::env::var("BSG_SIM_CAMERAS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let specs = (0..n).map(|i| spec(&format!("cam-{i:04}"), AuthMode::UsernameToken)).collect();
    let fleet = fleet(specs).await;
    let cams = fleet.cameras();
    assert_eq!(cams.len(), n);
    let mut ports: Vec<u16> = cams.iter().flat_map(|c| [c.http_port, c.rtsp_port]).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 2 * n, "every camera has its own ports");
    let c = client(&cams[n - 1].device_url, "s3cret").await;
    c.get_device_info().await.expect("last camera answers");
    fleet.shutdown().await;
}
