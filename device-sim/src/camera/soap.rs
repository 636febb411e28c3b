//! The camera's SOAP services: Device, Media and Events (pull-point), dispatched on the Body's
//! first element.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use http::{HeaderMap, StatusCode};
use protocols::onvif::soap::{self, Envelope, FaultCode, SoapVersion};
use protocols::onvif::wsse::UsernameToken;
use protocols::onvif::xml::{Element, escape};
use tokio::sync::Notify;

use super::http::{Resp, check_digest, response, unauthorized};
use super::{
    AuthMode, Camera, CameraEventKind, MAX_CLOCK_SKEW_SECS, MAX_REQUEST_BODY, MAX_SUBSCRIPTIONS, QueuedEvent,
    Subscription,
};

/// Operations anyone may call (ONVIF Core: clients need them before they can authenticate).
const PUBLIC_OPS: [&str; 3] = ["GetSystemDateAndTime", "GetCapabilities", "GetServices"];
const PROFILE: &str = "profile_1";
/// The main profile's video encoder configuration.
const ENCODER: &str = "vec_1";
const SUB_PREFIX: &str = "/onvif/events/sub/";
const DEFAULT_TERMINATION_SECS: i64 = 60;
const MAX_TERMINATION_SECS: i64 = 3600;
const MAX_PULL_WAIT: Duration = Duration::from_secs(10);

struct Fault {
    status: StatusCode,
    code: FaultCode,
    subcode: &'static str,
    reason: String,
}

impl Fault {
    fn sender(subcode: &'static str, reason: impl Into<String>) -> Fault {
        Fault { status: StatusCode::BAD_REQUEST, code: FaultCode::Sender, subcode, reason: reason.into() }
    }
}

fn fault_resp(v: SoapVersion, f: Fault) -> Resp {
    response(f.status, v.content_type(), soap::fault_envelope(v, f.code, Some(f.subcode), &f.reason))
}

pub(crate) async fn handle(cam: &Arc<Camera>, path: &str, headers: &HeaderMap, body: &str) -> Resp {
    let env = match Envelope::parse(body, MAX_REQUEST_BODY) {
        Ok(e) => e,
        Err(e) => {
            return fault_resp(SoapVersion::V12, Fault::sender("ter:WellFormed", format!("not a SOAP envelope: {e}")));
        }
    };
    let v = env.version;
    let op = match env.operation() {
        Ok(op) => op,
        Err(e) => return fault_resp(v, Fault::sender("ter:WellFormed", e.to_string())),
    };
    let faults = cam.faults();
    if faults.soap_fault {
        return fault_resp(
            v,
            Fault {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: FaultCode::Receiver,
                subcode: "ter:Action",
                reason: "simulated device failure".into(),
            },
        );
    }
    if !PUBLIC_OPS.contains(&op.name.as_str()) {
        match cam.spec.auth {
            AuthMode::UsernameToken => {
                let verdict = UsernameToken::from_header(env.header.as_ref()).and_then(|t| {
                    if faults.auth_failure {
                        return Err(protocols::onvif::wsse::TokenError::WrongPassword);
                    }
                    t.verify(&cam.spec.username, &cam.spec.password, cam.now(), MAX_CLOCK_SKEW_SECS)
                });
                if let Err(e) = verdict {
                    tracing::debug!(camera = %cam.spec.id, op = %op.name, error = %e, "WS-Security refused");
                    return fault_resp(v, Fault::sender("ter:NotAuthorized", "Sender not Authorized"));
                }
            }
            AuthMode::Digest => {
                if let Err(ch) = check_digest(cam, "POST", path, headers) {
                    let body =
                        soap::fault_envelope(v, FaultCode::Sender, Some("ter:NotAuthorized"), "Sender not Authorized");
                    return unauthorized(ch, v.content_type(), body);
                }
            }
        }
    }
    match dispatch(cam, path, &env, op).await {
        Ok(xml) => response(StatusCode::OK, v.content_type(), soap::envelope(v, None, &xml)),
        Err(f) => fault_resp(v, f),
    }
}

async fn dispatch(cam: &Arc<Camera>, path: &str, env: &Envelope, op: &Element) -> Result<String, Fault> {
    Ok(match op.name.as_str() {
        // Device service.
        "GetSystemDateAndTime" => system_date_and_time(cam.now()),
        "GetDeviceInformation" => format!(
            "<tds:GetDeviceInformationResponse><tds:Manufacturer>BSG</tds:Manufacturer><tds:Model>SimCam-1</tds:Model><tds:FirmwareVersion>{}</tds:FirmwareVersion><tds:SerialNumber>SIM-{}</tds:SerialNumber><tds:HardwareId>sim</tds:HardwareId></tds:GetDeviceInformationResponse>",
            env!("CARGO_PKG_VERSION"),
            escape(&cam.spec.id)
        ),
        "GetCapabilities" => capabilities(cam, op),
        "GetServices" => services(cam),
        "GetScopes" => format!(
            "<tds:GetScopesResponse><tds:Scopes><tt:ScopeDef>Fixed</tt:ScopeDef><tt:ScopeItem>onvif://www.onvif.org/type/video_encoder</tt:ScopeItem></tds:Scopes><tds:Scopes><tt:ScopeDef>Fixed</tt:ScopeDef><tt:ScopeItem>onvif://www.onvif.org/Profile/Streaming</tt:ScopeItem></tds:Scopes><tds:Scopes><tt:ScopeDef>Configurable</tt:ScopeDef><tt:ScopeItem>onvif://www.onvif.org/name/{}</tt:ScopeItem></tds:Scopes></tds:GetScopesResponse>",
            escape(&scope_name(&cam.spec.name))
        ),
        "GetNetworkInterfaces" => network_interfaces(cam),
        "GetServiceCapabilities" => service_capabilities(path, op),
        "GetHostname" => format!(
            "<tds:GetHostnameResponse><tds:HostnameInformation><tt:FromDHCP>false</tt:FromDHCP><tt:Name>{}</tt:Name></tds:HostnameInformation></tds:GetHostnameResponse>",
            escape(&cam.spec.id)
        ),
        // Media service.
        "GetProfiles" => format!("<trt:GetProfilesResponse>{}</trt:GetProfilesResponse>", profile_xml(cam)),
        "GetProfile" => {
            check_profile(op)?;
            format!("<trt:GetProfileResponse>{}</trt:GetProfileResponse>", profile_xml(cam).replace("trt:Profiles", "trt:Profile"))
        }
        "GetVideoEncoderConfigurations" => format!(
            "<trt:GetVideoEncoderConfigurationsResponse>{}</trt:GetVideoEncoderConfigurationsResponse>",
            encoder_xml(cam, "trt:Configurations")
        ),
        "GetVideoEncoderConfiguration" => {
            check_encoder(op)?;
            format!(
                "<trt:GetVideoEncoderConfigurationResponse>{}</trt:GetVideoEncoderConfigurationResponse>",
                encoder_xml(cam, "trt:Configuration")
            )
        }
        "GetVideoSources" => "<trt:GetVideoSourcesResponse><trt:VideoSources token=\"vs_1\"><tt:Framerate>25</tt:Framerate><tt:Resolution><tt:Width>1920</tt:Width><tt:Height>1080</tt:Height></tt:Resolution></trt:VideoSources></trt:GetVideoSourcesResponse>".to_string(),
        "GetStreamUri" => {
            check_profile(op)?;
            media_uri("GetStreamUriResponse", &cam.rtsp_uri())
        }
        "GetSnapshotUri" => {
            check_profile(op)?;
            media_uri("GetSnapshotUriResponse", &cam.snapshot_uri())
        }
        // Events service.
        "GetEventProperties" => EVENT_PROPERTIES.to_string(),
        "CreatePullPointSubscription" => create_subscription(cam, op)?,
        "PullMessages" => pull_messages(cam, sub_id(path, env)?, op).await?,
        "Renew" => renew(cam, sub_id(path, env)?, op)?,
        "Unsubscribe" => {
            let id = sub_id(path, env)?;
            cam.state().subs.remove(&id).ok_or_else(unknown_sub)?;
            "<wsnt:UnsubscribeResponse/>".to_string()
        }
        "SetSynchronizationPoint" => {
            let id = sub_id(path, env)?;
            let now = cam.now();
            let mut st = cam.state();
            let conditions = st.conditions;
            let sub = st.subs.get_mut(&id).ok_or_else(unknown_sub)?;
            push_initial(&mut sub.queue, conditions, now);
            sub.notify.notify_waiters();
            "<tev:SetSynchronizationPointResponse/>".to_string()
        }
        other => {
            return Err(Fault::sender("ter:ActionNotSupported", format!("{other} is not supported by this device")));
        }
    })
}

/// The camera's MAC address: locally administered, unicast, from a hash of its id — distinct
/// per camera and the same on every run (clients such as Home Assistant take their unique id
/// from it).
pub(crate) fn mac_address(id: &str) -> String {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let b = h.to_be_bytes();
    format!("02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[3] ^ b[0], b[4] ^ b[1], b[5] ^ b[2], b[6], b[7])
}

fn network_interfaces(cam: &Camera) -> String {
    let ip = match cam.ip {
        std::net::IpAddr::V4(v4) if !v4.is_unspecified() => v4.to_string(),
        _ => "127.0.0.1".to_string(),
    };
    // i18n-exempt: ONVIF XML, read by programs
    format!(
        "<tds:GetNetworkInterfacesResponse><tds:NetworkInterfaces token=\"eth0\"><tt:Enabled>true</tt:Enabled><tt:Info><tt:Name>eth0</tt:Name><tt:HwAddress>{}</tt:HwAddress><tt:MTU>1500</tt:MTU></tt:Info><tt:IPv4><tt:Enabled>true</tt:Enabled><tt:Config><tt:Manual><tt:Address>{ip}</tt:Address><tt:PrefixLength>24</tt:PrefixLength></tt:Manual><tt:DHCP>false</tt:DHCP></tt:Config></tt:IPv4></tds:NetworkInterfaces></tds:GetNetworkInterfacesResponse>",
        mac_address(&cam.spec.id)
    )
}

/// `GetServiceCapabilities` of the service the request names (by the operation's namespace,
/// else by the service path): each service has its own.
fn service_capabilities(path: &str, op: &Element) -> String {
    let ns = op.ns.as_deref().unwrap_or("");
    if ns == protocols::onvif::ns::TRT || (ns.is_empty() && path.ends_with("/media_service")) {
        "<trt:GetServiceCapabilitiesResponse><trt:Capabilities SnapshotUri=\"true\" Rotation=\"false\" VideoSourceMode=\"false\" OSD=\"false\" EXICompression=\"false\"><trt:ProfileCapabilities MaximumNumberOfProfiles=\"1\"/><trt:StreamingCapabilities RTPMulticast=\"false\" RTP_TCP=\"true\" RTP_RTSP_TCP=\"true\" NonAggregateControl=\"false\" NoRTSPStreaming=\"false\"/></trt:Capabilities></trt:GetServiceCapabilitiesResponse>".to_string()
    } else if ns == protocols::onvif::ns::TEV || (ns.is_empty() && path.ends_with("/events_service")) {
        format!(
            "<tev:GetServiceCapabilitiesResponse><tev:Capabilities WSSubscriptionPolicySupport=\"false\" WSPullPointSupport=\"true\" WSPausableSubscriptionManagerInterfaceSupport=\"false\" MaxNotificationProducers=\"0\" MaxPullPoints=\"{MAX_SUBSCRIPTIONS}\" PersistentNotificationStorage=\"false\"/></tev:GetServiceCapabilitiesResponse>"
        )
    } else {
        "<tds:GetServiceCapabilitiesResponse><tds:Capabilities><tds:Network IPFilter=\"false\" ZeroConfiguration=\"false\" IPVersion6=\"false\" DynDNS=\"false\" Dot11Configuration=\"false\" HostnameFromDHCP=\"false\" NTP=\"0\"/><tds:Security TLS1.0=\"false\" TLS1.1=\"false\" TLS1.2=\"false\" OnboardKeyGeneration=\"false\" AccessPolicyConfig=\"false\" DefaultAccessPolicy=\"false\" Dot1X=\"false\" RemoteUserHandling=\"false\" X.509Token=\"false\" SAMLToken=\"false\" KerberosToken=\"false\" UsernameToken=\"true\" HttpDigest=\"true\" RELToken=\"false\"/><tds:System DiscoveryResolve=\"false\" DiscoveryBye=\"false\" RemoteDiscovery=\"false\" SystemBackup=\"false\" SystemLogging=\"false\" FirmwareUpgrade=\"false\" HttpFirmwareUpgrade=\"false\" HttpSystemBackup=\"false\" HttpSystemLogging=\"false\" HttpSupportInformation=\"false\"/></tds:Capabilities></tds:GetServiceCapabilitiesResponse>".to_string()
    }
}

fn scope_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn system_date_and_time(now: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let dt = format!(
        "<tt:Time><tt:Hour>{}</tt:Hour><tt:Minute>{}</tt:Minute><tt:Second>{}</tt:Second></tt:Time><tt:Date><tt:Year>{}</tt:Year><tt:Month>{}</tt:Month><tt:Day>{}</tt:Day></tt:Date>",
        now.hour(),
        now.minute(),
        now.second(),
        now.year(),
        now.month(),
        now.day()
    );
    format!(
        "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>Manual</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone><tt:UTCDateTime>{dt}</tt:UTCDateTime><tt:LocalDateTime>{dt}</tt:LocalDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
    )
}

fn capabilities(cam: &Camera, op: &Element) -> String {
    let base = cam.base_url();
    let cats: Vec<&str> = op.children.iter().filter(|c| c.name == "Category").map(|c| c.text.trim()).collect();
    let want = |c: &str| cats.is_empty() || cats.contains(&"All") || cats.contains(&c);
    let mut out = String::from("<tds:GetCapabilitiesResponse><tds:Capabilities>");
    if want("Device") {
        // i18n-exempt: ONVIF XML, read by programs
        let _ = write!(
            out,
            "<tt:Device><tt:XAddr>{base}/onvif/device_service</tt:XAddr><tt:System><tt:DiscoveryResolve>false</tt:DiscoveryResolve><tt:DiscoveryBye>false</tt:DiscoveryBye><tt:RemoteDiscovery>false</tt:RemoteDiscovery><tt:SystemBackup>false</tt:SystemBackup><tt:SystemLogging>false</tt:SystemLogging><tt:FirmwareUpgrade>false</tt:FirmwareUpgrade><tt:SupportedVersions><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tt:SupportedVersions></tt:System></tt:Device>"
        );
    }
    if want("Events") {
        // i18n-exempt: ONVIF XML, read by programs
        let _ = write!(
            out,
            "<tt:Events><tt:XAddr>{base}/onvif/events_service</tt:XAddr><tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport><tt:WSPullPointSupport>true</tt:WSPullPointSupport><tt:WSPausableSubscriptionManagerInterfaceSupport>false</tt:WSPausableSubscriptionManagerInterfaceSupport></tt:Events>"
        );
    }
    if want("Media") {
        // i18n-exempt: ONVIF XML, read by programs
        let _ = write!(
            out,
            "<tt:Media><tt:XAddr>{base}/onvif/media_service</tt:XAddr><tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>"
        );
    }
    out.push_str("</tds:Capabilities></tds:GetCapabilitiesResponse>");
    out
}

fn services(cam: &Camera) -> String {
    let base = cam.base_url();
    let mut out = String::from("<tds:GetServicesResponse>");
    for (ns, path) in [
        (protocols::onvif::ns::TDS, "device_service"),
        (protocols::onvif::ns::TRT, "media_service"),
        (protocols::onvif::ns::TEV, "events_service"),
    ] {
        // i18n-exempt: ONVIF XML, read by programs
        let _ = write!(
            out,
            "<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{base}/onvif/{path}</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>"
        );
    }
    out.push_str("</tds:GetServicesResponse>");
    out
}

/// The main profile: its video source and its video encoder configuration.
fn profile_xml(cam: &Camera) -> String {
    format!(
        "<trt:Profiles token=\"{PROFILE}\" fixed=\"true\"><tt:Name>MainStream</tt:Name>\
<tt:VideoSourceConfiguration token=\"vsc_1\"><tt:Name>VideoSource</tt:Name><tt:UseCount>1</tt:UseCount><tt:SourceToken>vs_1</tt:SourceToken><tt:Bounds x=\"0\" y=\"0\" width=\"1920\" height=\"1080\"/></tt:VideoSourceConfiguration>\
{}</trt:Profiles>",
        encoder_xml(cam, "tt:VideoEncoderConfiguration")
    )
}

/// The main profile's video encoder configuration as `element` (its name in a profile, in
/// `GetVideoEncoderConfigurations` and in `GetVideoEncoderConfiguration`): 1920×1080, or
/// 640×480 while the camera has the `low-resolution` fault.
fn encoder_xml(cam: &Camera, element: &str) -> String {
    let (width, height, kbps) = if cam.faults().low_resolution { (640, 480, 1024) } else { (1920, 1080, 4096) };
    format!(
        "<{element} token=\"{ENCODER}\"><tt:Name>MainEncoder</tt:Name><tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding><tt:Resolution><tt:Width>{width}</tt:Width><tt:Height>{height}</tt:Height></tt:Resolution><tt:Quality>5</tt:Quality><tt:RateControl><tt:FrameRateLimit>25</tt:FrameRateLimit><tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>{kbps}</tt:BitrateLimit></tt:RateControl><tt:H264><tt:GovLength>50</tt:GovLength><tt:H264Profile>Main</tt:H264Profile></tt:H264><tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address><tt:Port>0</tt:Port><tt:TTL>1</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast><tt:SessionTimeout>PT60S</tt:SessionTimeout></{element}>"
    )
}

fn check_encoder(op: &Element) -> Result<(), Fault> {
    match op.text_at(&["ConfigurationToken"]) {
        Some(ENCODER) => Ok(()),
        Some(other) => Err(Fault::sender("ter:NoConfig", format!("no video encoder configuration {other:?}"))),
        None => Err(Fault::sender("ter:InvalidArgVal", "ConfigurationToken is required")),
    }
}

fn check_profile(op: &Element) -> Result<(), Fault> {
    match op.text_at(&["ProfileToken"]) {
        Some(PROFILE) => Ok(()),
        Some(other) => Err(Fault::sender("ter:InvalidArgVal", format!("no profile {other:?}"))),
        None => Err(Fault::sender("ter:InvalidArgVal", "ProfileToken is required")),
    }
}

fn media_uri(element: &str, uri: &str) -> String {
    format!(
        "<trt:{element}><trt:MediaUri><tt:Uri>{}</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:{element}>",
        escape(uri)
    )
}

const EVENT_PROPERTIES: &str = "<tev:GetEventPropertiesResponse>\
<tev:TopicNamespaceLocation>http://www.onvif.org/onvif/ver10/topics/topicns.xml</tev:TopicNamespaceLocation>\
<wsnt:FixedTopicSet>true</wsnt:FixedTopicSet>\
<wstop:TopicSet>\
<tns1:VideoSource><tns1:SignalLoss wstop:topic=\"true\"><tt:MessageDescription IsProperty=\"true\"><tt:Source><tt:SimpleItemDescription Name=\"Source\" Type=\"tt:ReferenceToken\"/></tt:Source><tt:Data><tt:SimpleItemDescription Name=\"State\" Type=\"xs:boolean\"/></tt:Data></tt:MessageDescription></tns1:SignalLoss></tns1:VideoSource>\
<tns1:RuleEngine><tns1:TamperDetector><tns1:Tamper wstop:topic=\"true\"><tt:MessageDescription IsProperty=\"true\"><tt:Source><tt:SimpleItemDescription Name=\"VideoSourceConfigurationToken\" Type=\"tt:ReferenceToken\"/></tt:Source><tt:Data><tt:SimpleItemDescription Name=\"IsTamper\" Type=\"xs:boolean\"/></tt:Data></tt:MessageDescription></tns1:Tamper></tns1:TamperDetector></tns1:RuleEngine>\
<tns1:Device><tns1:HardwareFailure><tns1:StorageFailure wstop:topic=\"true\"><tt:MessageDescription IsProperty=\"true\"><tt:Source><tt:SimpleItemDescription Name=\"Token\" Type=\"tt:ReferenceToken\"/></tt:Source><tt:Data><tt:SimpleItemDescription Name=\"Failed\" Type=\"xs:boolean\"/></tt:Data></tt:MessageDescription></tns1:StorageFailure></tns1:HardwareFailure></tns1:Device>\
</wstop:TopicSet>\
<wsnt:TopicExpressionDialect>http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet</wsnt:TopicExpressionDialect>\
<wsnt:TopicExpressionDialect>http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete</wsnt:TopicExpressionDialect>\
<tev:MessageContentFilterDialect>http://www.onvif.org/ver10/tev/messageContentFilter/ItemFilter</tev:MessageContentFilterDialect>\
<tev:MessageContentSchemaLocation>http://www.onvif.org/onvif/ver10/schema/onvif.xsd</tev:MessageContentSchemaLocation>\
</tev:GetEventPropertiesResponse>";

/// Parses an `xs:duration` such as `PT60S`, `PT1M30S`, `P1D`, `PT0.5S` into seconds.
pub(crate) fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let s = s.strip_prefix('P')?;
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut total = 0.0f64;
    let mut any = false;
    let mut eat = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
            } else {
                let mult = units.iter().find(|(u, _)| *u == c)?.1;
                total += num.parse::<f64>().ok()? * mult;
                num.clear();
                any = true;
            }
        }
        num.is_empty().then_some(())
    };
    eat(date, &[('Y', 365.0 * 86400.0), ('M', 30.0 * 86400.0), ('W', 7.0 * 86400.0), ('D', 86400.0)])?;
    if let Some(t) = time {
        eat(t, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    if !any || !total.is_finite() {
        return None;
    }
    Some(if neg { -total } else { total })
}

/// A termination time, given as a duration or an absolute time, as seconds from `now`.
fn termination_secs(text: Option<&str>, now: DateTime<Utc>) -> Result<i64, Fault> {
    let Some(t) = text.filter(|t| !t.is_empty()) else { return Ok(DEFAULT_TERMINATION_SECS) };
    let secs = if t.starts_with('P') || t.starts_with("-P") {
        parse_duration(t).map(|d| d as i64)
    } else {
        protocols::onvif::wsse::parse_created(t).map(|abs| (abs - now).num_seconds())
    };
    match secs {
        Some(s) => Ok(s.clamp(0, MAX_TERMINATION_SECS)),
        None => Err(Fault::sender("ter:InvalidArgVal", format!("cannot read termination time {t:?}"))),
    }
}

fn push_initial(queue: &mut VecDeque<QueuedEvent>, conditions: [bool; 3], at: DateTime<Utc>) {
    for kind in CameraEventKind::ALL {
        queue.push_back(QueuedEvent { kind, active: conditions[kind.index()], at, initialized: true });
    }
}

fn create_subscription(cam: &Camera, op: &Element) -> Result<String, Fault> {
    let now = cam.now();
    let secs = termination_secs(op.text_at(&["InitialTerminationTime"]), now)?;
    let expires = now + chrono::Duration::seconds(secs);
    let mut st = cam.state();
    st.subs.retain(|_, s| s.expires > now);
    if st.subs.len() >= MAX_SUBSCRIPTIONS {
        return Err(Fault {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: FaultCode::Receiver,
            subcode: "ter:MaxPullPointsReached",
            reason: "too many subscriptions".into(),
        });
    }
    st.next_sub += 1;
    let id = st.next_sub;
    let mut queue = VecDeque::new();
    push_initial(&mut queue, st.conditions, now);
    st.subs.insert(id, Subscription { queue, expires, notify: Arc::new(Notify::new()) });
    Ok(format!(
        "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference><wsa:Address>{}{SUB_PREFIX}{id}</wsa:Address></tev:SubscriptionReference><wsnt:CurrentTime>{}</wsnt:CurrentTime><wsnt:TerminationTime>{}</wsnt:TerminationTime></tev:CreatePullPointSubscriptionResponse>",
        cam.base_url(),
        ts(now),
        ts(expires)
    ))
}

fn unknown_sub() -> Fault {
    Fault::sender("ter:InvalidArgVal", "unknown or expired subscription")
}

/// The subscription a request addresses: by URL path, else by the WS-Addressing `To` header.
fn sub_id(path: &str, env: &Envelope) -> Result<u64, Fault> {
    let from = |p: &str| p.strip_prefix(SUB_PREFIX).and_then(|id| id.parse::<u64>().ok());
    if let Some(id) = from(path) {
        return Ok(id);
    }
    env.header
        .as_ref()
        .and_then(|h| h.child("To"))
        .map(|to| to.text.trim())
        .and_then(|to| to.find(SUB_PREFIX).map(|i| &to[i..]))
        .and_then(from)
        .ok_or_else(unknown_sub)
}

fn message_xml(out: &mut String, e: &QueuedEvent) {
    let (topic, source, item) = match e.kind {
        CameraEventKind::SignalLoss => ("tns1:VideoSource/SignalLoss", "Source", "State"),
        CameraEventKind::Tamper => {
            ("tns1:RuleEngine/TamperDetector/Tamper", "VideoSourceConfigurationToken", "IsTamper")
        }
        CameraEventKind::StorageFailure => ("tns1:Device/HardwareFailure/StorageFailure", "Token", "Failed"),
    };
    let source_value = if e.kind == CameraEventKind::StorageFailure { "storage_1" } else { "vs_1" };
    // i18n-exempt: ONVIF XML, read by programs
    let _ = write!(
        out,
        "<wsnt:NotificationMessage><wsnt:Topic Dialect=\"http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet\">{topic}</wsnt:Topic><wsnt:Message><tt:Message UtcTime=\"{}\" PropertyOperation=\"{}\"><tt:Source><tt:SimpleItem Name=\"{source}\" Value=\"{source_value}\"/></tt:Source><tt:Data><tt:SimpleItem Name=\"{item}\" Value=\"{}\"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>",
        ts(e.at),
        if e.initialized { "Initialized" } else { "Changed" },
        e.active
    );
}

async fn pull_messages(cam: &Camera, id: u64, op: &Element) -> Result<String, Fault> {
    let wait = op
        .text_at(&["Timeout"])
        .and_then(parse_duration)
        .map(|s| Duration::from_secs_f64(s.clamp(0.0, MAX_PULL_WAIT.as_secs_f64())))
        .unwrap_or(Duration::ZERO);
    let limit = op.text_at(&["MessageLimit"]).and_then(|m| m.parse::<usize>().ok()).unwrap_or(100).clamp(1, 1000);
    let notify = {
        let now = cam.now();
        let mut st = cam.state();
        st.subs.retain(|_, s| s.expires > now);
        let sub = st.subs.get(&id).ok_or_else(unknown_sub)?;
        sub.queue.is_empty().then(|| sub.notify.clone())
    };
    if let Some(notify) = notify
        && !wait.is_zero()
    {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let empty = cam.state().subs.get(&id).is_some_and(|s| s.queue.is_empty());
        if empty {
            let _ = tokio::time::timeout(wait, notified).await;
        }
    }
    let now = cam.now();
    let mut st = cam.state();
    let sub = st.subs.get_mut(&id).ok_or_else(unknown_sub)?;
    let mut msgs = String::new();
    for _ in 0..limit {
        let Some(e) = sub.queue.pop_front() else { break };
        message_xml(&mut msgs, &e);
    }
    Ok(format!(
        "<tev:PullMessagesResponse><tev:CurrentTime>{}</tev:CurrentTime><tev:TerminationTime>{}</tev:TerminationTime>{msgs}</tev:PullMessagesResponse>",
        ts(now),
        ts(sub.expires)
    ))
}

fn renew(cam: &Camera, id: u64, op: &Element) -> Result<String, Fault> {
    let now = cam.now();
    let secs = termination_secs(op.text_at(&["TerminationTime"]), now)?;
    let mut st = cam.state();
    st.subs.retain(|_, s| s.expires > now);
    let sub = st.subs.get_mut(&id).ok_or_else(unknown_sub)?;
    sub.expires = now + chrono::Duration::seconds(secs);
    Ok(format!(
        "<wsnt:RenewResponse><wsnt:TerminationTime>{}</wsnt:TerminationTime><wsnt:CurrentTime>{}</wsnt:CurrentTime></wsnt:RenewResponse>",
        ts(sub.expires),
        ts(now)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses_are_stable_distinct_and_local() {
        assert_eq!(mac_address("cam-01"), mac_address("cam-01"));
        let macs: std::collections::HashSet<String> = (0..1000).map(|i| mac_address(&format!("cam-{i:04}"))).collect();
        assert_eq!(macs.len(), 1000);
        for m in &macs {
            assert_eq!(m.len(), 17, "{m}");
            assert!(m.starts_with("02:"), "locally administered, unicast: {m}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT60S"), Some(60.0));
        assert_eq!(parse_duration("PT1M30S"), Some(90.0));
        assert_eq!(parse_duration("P1DT1H"), Some(90000.0));
        assert_eq!(parse_duration("PT0.5S"), Some(0.5));
        assert_eq!(parse_duration("60"), None);
        assert_eq!(parse_duration("PT"), None);
        assert_eq!(parse_duration("PTXS"), None);
    }
}
