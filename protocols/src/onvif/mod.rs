//! ONVIF helpers shared by the gateway's camera poller and the simulator's cameras.
//!
//! Pure functions and types, no I/O: the simulator and the gateway each bring their own
//! sockets. What lives here is what both sides must agree on byte for byte —
//! WS-Security PasswordDigest ([`wsse`]), HTTP Digest ([`http_digest`]), SOAP envelopes and
//! faults ([`soap`]), a bounded XML reader for everything that arrives from the network
//! ([`xml`]), and the sliver of RTSP/SDP a health probe needs ([`rtsp`]).
//!
//! Every parser here takes input that a stranger controls; each has explicit size and depth
//! limits and is a fuzz target (`fuzz/`).

pub mod http_digest;
pub mod rtsp;
pub mod soap;
pub mod wsse;
pub mod xml;

/// Namespace URIs.
pub mod ns {
    pub const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
    pub const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
    pub const TDS: &str = "http://www.onvif.org/ver10/device/wsdl";
    pub const TRT: &str = "http://www.onvif.org/ver10/media/wsdl";
    pub const TEV: &str = "http://www.onvif.org/ver10/events/wsdl";
    pub const TT: &str = "http://www.onvif.org/ver10/schema";
    pub const TER: &str = "http://www.onvif.org/ver10/error";
    pub const WSNT: &str = "http://docs.oasis-open.org/wsn/b-2";
    pub const WSA: &str = "http://www.w3.org/2005/08/addressing";
    pub const WSSE: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
    pub const WSU: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
    pub const PASSWORD_DIGEST: &str =
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
    pub const BASE64_BINARY: &str =
        "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";
    pub const TOPICS: &str = "http://www.onvif.org/ver10/topics";
}

/// The camera health event topics we understand, as ONVIF names them (prefix `tns1:`), with
/// the data item that carries the state and the fault name the gateway reports.
pub const HEALTH_TOPICS: [(&str, &str, &str); 4] = [
    ("VideoSource/SignalLoss", "State", "signal-loss"),
    ("RuleEngine/TamperDetector/Tamper", "IsTamper", "tamper"),
    ("VideoSource/GlobalSceneChange", "State", "tamper"),
    ("Device/HardwareFailure/StorageFailure", "Failed", "storage-failure"),
];

/// Maps an event topic (any prefix, e.g. `tns1:VideoSource/SignalLoss`) to
/// (fault name, state item name). `GlobalSceneChange/*` sub-topics count as tamper.
pub fn classify_topic(topic: &str) -> Option<(&'static str, &'static str)> {
    let t = topic.trim();
    let path = t.split_once(':').map(|(_, p)| p).unwrap_or(t);
    HEALTH_TOPICS
        .iter()
        .find(|(p, _, _)| path == *p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/')))
        .map(|(_, item, fault)| (*fault, *item))
}

/// Reads an `xs:boolean` as devices write it.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "true" | "1" | "True" | "TRUE" => Some(true),
        "false" | "0" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_classify() {
        assert_eq!(classify_topic("tns1:VideoSource/SignalLoss"), Some(("signal-loss", "State")));
        assert_eq!(classify_topic("ns2:RuleEngine/TamperDetector/Tamper"), Some(("tamper", "IsTamper")));
        assert_eq!(classify_topic("tns1:VideoSource/GlobalSceneChange/ImagingService"), Some(("tamper", "State")));
        assert_eq!(classify_topic("tns1:Device/HardwareFailure/StorageFailure"), Some(("storage-failure", "Failed")));
        assert_eq!(classify_topic("tns1:VideoSource/MotionAlarm"), None);
        assert_eq!(classify_topic("tns1:VideoSource/SignalLossX"), None);
    }
}
