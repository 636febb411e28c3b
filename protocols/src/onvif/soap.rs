//! SOAP envelopes: reading a request or response into header + body, building responses and
//! faults, and classifying faults.
//!
//! Dispatch is on the Body's first element (namespace + local name), never on the SOAPAction:
//! clients differ in what they send there (SOAP 1.1 header, SOAP 1.2 `action=` parameter, or
//! nothing), while the body element is what the message *is*.

use super::ns;
use super::xml::{self, Element, Limits, XmlError};

/// The SOAP version of a message, from its envelope namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoapVersion {
    V11,
    V12,
}

impl SoapVersion {
    pub fn namespace(self) -> &'static str {
        match self {
            SoapVersion::V11 => ns::SOAP11,
            SoapVersion::V12 => ns::SOAP12,
        }
    }

    /// The HTTP `Content-Type` a reply in this version carries.
    pub fn content_type(self) -> &'static str {
        match self {
            SoapVersion::V11 => "text/xml; charset=utf-8",
            SoapVersion::V12 => "application/soap+xml; charset=utf-8",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoapError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("root element is {{{ns}}}{name}, not a SOAP Envelope")]
    NotEnvelope { ns: String, name: String },
    #[error("SOAP Envelope has no Body")]
    NoBody,
    #[error("SOAP Body is empty")]
    EmptyBody,
}

/// A parsed SOAP message.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub version: SoapVersion,
    pub header: Option<Element>,
    pub body: Element,
}

/// Limits for SOAP messages: requests to a camera are small; responses may list many
/// profiles, so the caller chooses `max_bytes`.
pub fn limits(max_bytes: usize) -> Limits {
    Limits { max_bytes, ..Limits::default() }
}

impl Envelope {
    /// Parses and checks a SOAP 1.1 or 1.2 envelope.
    pub fn parse(input: &str, max_bytes: usize) -> Result<Envelope, SoapError> {
        let mut root = xml::parse(input, limits(max_bytes))?;
        let version = if root.is(ns::SOAP12, "Envelope") {
            SoapVersion::V12
        } else if root.is(ns::SOAP11, "Envelope") {
            SoapVersion::V11
        } else {
            return Err(SoapError::NotEnvelope { ns: root.ns.unwrap_or_default(), name: root.name });
        };
        let env_ns = version.namespace();
        let mut header = None;
        let mut body = None;
        for child in std::mem::take(&mut root.children) {
            if child.is(env_ns, "Header") && header.is_none() {
                header = Some(child);
            } else if child.is(env_ns, "Body") && body.is_none() {
                body = Some(child);
            }
        }
        let body = body.ok_or(SoapError::NoBody)?;
        Ok(Envelope { version, header, body })
    }

    /// The first element inside the Body: the operation of a request, the response or Fault
    /// of a reply.
    pub fn operation(&self) -> Result<&Element, SoapError> {
        self.body.children.first().ok_or(SoapError::EmptyBody)
    }

    /// The Fault in the Body, if the message is one.
    pub fn fault(&self) -> Option<Fault> {
        let f = self.body.children.first().filter(|e| e.is(self.version.namespace(), "Fault"))?;
        Some(Fault::from_element(f))
    }
}

/// Just the local name of the Body's first element (for logs and quick dispatch).
pub fn body_operation_name(input: &str, max_bytes: usize) -> Result<String, SoapError> {
    let env = Envelope::parse(input, max_bytes)?;
    Ok(env.operation()?.name.clone())
}

/// The namespace declarations every reply of ours carries.
const DECLS: &str = concat!(
    " xmlns:tds=\"http://www.onvif.org/ver10/device/wsdl\"",
    " xmlns:trt=\"http://www.onvif.org/ver10/media/wsdl\"",
    " xmlns:tev=\"http://www.onvif.org/ver10/events/wsdl\"",
    " xmlns:tt=\"http://www.onvif.org/ver10/schema\"",
    " xmlns:ter=\"http://www.onvif.org/ver10/error\"",
    " xmlns:wsnt=\"http://docs.oasis-open.org/wsn/b-2\"",
    " xmlns:wsa=\"http://www.w3.org/2005/08/addressing\"",
    " xmlns:wstop=\"http://docs.oasis-open.org/wsn/t-1\"",
    " xmlns:tns1=\"http://www.onvif.org/ver10/topics\"",
    " xmlns:xs=\"http://www.w3.org/2001/XMLSchema\""
);

/// Wraps `body` (already-serialised XML using the usual ONVIF prefixes: tds, trt, tev, tt, ter,
/// wsnt, wsa, wstop, tns1) in an envelope. `header` is optional raw header content.
pub fn envelope(version: SoapVersion, header: Option<&str>, body: &str) -> String {
    let env_ns = version.namespace();
    let header = header.map(|h| format!("<s:Header>{h}</s:Header>")).unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<s:Envelope xmlns:s=\"{env_ns}\"{DECLS}>{header}<s:Body>{body}</s:Body></s:Envelope>"
    )
}

/// Who is to blame for a fault (SOAP 1.2 `Sender`/`Receiver`, SOAP 1.1 `Client`/`Server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    Sender,
    Receiver,
}

/// Builds a complete fault envelope. `subcode` is a QName using a prefix declared on our
/// envelopes (e.g. `ter:NotAuthorized`); in SOAP 1.1 it becomes the faultcode.
pub fn fault_envelope(version: SoapVersion, code: FaultCode, subcode: Option<&str>, reason: &str) -> String {
    let reason = xml::escape(reason);
    let body = match version {
        SoapVersion::V12 => {
            let code = match code {
                FaultCode::Sender => "s:Sender",
                FaultCode::Receiver => "s:Receiver",
            };
            let sub = subcode.map(|s| format!("<s:Subcode><s:Value>{s}</s:Value></s:Subcode>")).unwrap_or_default();
            format!(
                "<s:Fault><s:Code><s:Value>{code}</s:Value>{sub}</s:Code><s:Reason><s:Text xml:lang=\"en\">{reason}</s:Text></s:Reason></s:Fault>"
            )
        }
        SoapVersion::V11 => {
            let code = subcode.unwrap_or(match code {
                FaultCode::Sender => "s:Client",
                FaultCode::Receiver => "s:Server",
            });
            format!("<s:Fault><faultcode>{code}</faultcode><faultstring>{reason}</faultstring></s:Fault>")
        }
    };
    envelope(version, None, &body)
}

/// A fault as read from a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `Code/Value` (1.2) or `faultcode` (1.1), as written (prefix kept).
    pub code: String,
    /// Every `Subcode/Value`, outermost first.
    pub subcodes: Vec<String>,
    pub reason: String,
}

impl Fault {
    pub fn from_element(f: &Element) -> Fault {
        let code = f.text_at(&["Code", "Value"]).or_else(|| f.text_at(&["faultcode"])).unwrap_or("").to_string();
        let mut subcodes = Vec::new();
        let mut cur = f.child("Code");
        while let Some(sub) = cur.and_then(|c| c.child("Subcode")) {
            if let Some(v) = sub.text_at(&["Value"]) {
                subcodes.push(v.to_string());
            }
            cur = Some(sub);
        }
        let reason = f.text_at(&["Reason", "Text"]).or_else(|| f.text_at(&["faultstring"])).unwrap_or("").to_string();
        Fault { code, subcodes, reason }
    }

    /// Whether the fault says our credentials were refused. Devices spell it differently —
    /// `ter:NotAuthorized` subcode, `wsse:FailedAuthentication`, or only a reason text — and
    /// often send it with HTTP 200 or 400, so this looks at the body only.
    pub fn is_auth_failure(&self) -> bool {
        is_auth_fault_text(&self.code, &self.subcodes, &self.reason)
    }
}

/// [`Fault::is_auth_failure`] on loose parts (for faults parsed by another library).
pub fn is_auth_fault_text(code: &str, subcodes: &[String], reason: &str) -> bool {
    const NAMES: [&str; 6] = [
        "NotAuthorized",
        "FailedAuthentication",
        "InvalidSecurityToken",
        "InvalidSecurity",
        "FailedCheck",
        "Unauthorized",
    ];
    let local = |q: &str| q.rsplit(':').next().unwrap_or("").to_string();
    if subcodes.iter().chain(std::iter::once(&code.to_string())).any(|c| NAMES.contains(&local(c).as_str())) {
        return true;
    }
    let r = reason.to_ascii_lowercase();
    ["not authorized", "unauthorized", "authentication", "sender not authorized", "password", "credential"]
        .iter()
        .any(|k| r.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_operation_of_both_versions() {
        let v12 = r#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Header/><e:Body><GetProfiles xmlns="http://www.onvif.org/ver10/media/wsdl"/></e:Body></e:Envelope>"#;
        let env = Envelope::parse(v12, 65536).unwrap();
        assert_eq!(env.version, SoapVersion::V12);
        let op = env.operation().unwrap();
        assert!(op.is(ns::TRT, "GetProfiles"));
        let v11 = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><x:Foo xmlns:x="urn:x"/></soap:Body></soap:Envelope>"#;
        assert_eq!(body_operation_name(v11, 65536).unwrap(), "Foo");
    }

    #[test]
    fn rejects_wrong_namespace_and_missing_body() {
        let wrong = r#"<s:Envelope xmlns:s="http://example.com/not-soap"><s:Body><a/></s:Body></s:Envelope>"#;
        assert!(matches!(Envelope::parse(wrong, 65536), Err(SoapError::NotEnvelope { .. })));
        let nobody = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header/></s:Envelope>"#;
        assert!(matches!(Envelope::parse(nobody, 65536), Err(SoapError::NoBody)));
        let empty = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body> </s:Body></s:Envelope>"#;
        assert!(matches!(Envelope::parse(empty, 65536).unwrap().operation(), Err(SoapError::EmptyBody)));
    }

    #[test]
    fn faults_round_trip_and_classify() {
        for v in [SoapVersion::V11, SoapVersion::V12] {
            let xml = fault_envelope(v, FaultCode::Sender, Some("ter:NotAuthorized"), "Sender not Authorized <x>");
            let env = Envelope::parse(&xml, 65536).unwrap();
            let f = env.fault().unwrap();
            assert!(f.is_auth_failure(), "{f:?}");
            assert_eq!(f.reason, "Sender not Authorized <x>");
            let other = fault_envelope(v, FaultCode::Receiver, Some("ter:Action"), "no such profile");
            assert!(!Envelope::parse(&other, 65536).unwrap().fault().unwrap().is_auth_failure());
        }
        let ok = envelope(SoapVersion::V12, None, "<tds:GetDeviceInformationResponse/>");
        assert!(Envelope::parse(&ok, 65536).unwrap().fault().is_none());
    }
}
