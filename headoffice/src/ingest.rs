//! Decoding what arrives from the broker: a topic and a payload become one typed message, or a
//! precise reason why not.
//!
//! Head office listens to hundreds of gateways of different versions (and to whatever else can
//! publish under the prefix), so a bad payload is an expected input, not a bug: it must be
//! rejected with a reason an operator can act on and must never reach the store. Checks beyond
//! the JSON shape are the contract's cross-field rules: the topic's branch equals the payload's
//! `branch`, the topic's kind equals the alert's `kind`, a device topic names its own device.

use protocols::alert::ALERT_SCHEMA;
use protocols::coverage::COVERAGE_SCHEMA;
use protocols::status::{DEVICE_HEALTH_SCHEMA, GATEWAY_STATUS_SCHEMA};
use protocols::topics::{self, TopicKind};
use protocols::{Alert, BranchId, CoverageReport, DeviceHealth, DeviceId, GatewayStatus};

/// One message from a branch, checked against the contract.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Gateway(GatewayStatus),
    Alert(Box<Alert>),
    Device(DeviceHealth),
    Coverage(CoverageReport),
    /// An empty retained payload: the publisher deleted the retained value (a decommissioned
    /// device, a branch taken out of service).
    DeviceRemoved {
        branch: BranchId,
        device: DeviceId,
    },
    CoverageRemoved {
        branch: BranchId,
    },
    GatewayRemoved {
        branch: BranchId,
    },
}

impl Message {
    pub fn branch(&self) -> &BranchId {
        match self {
            Message::Gateway(g) => &g.branch,
            Message::Alert(a) => &a.branch,
            Message::Device(d) => &d.branch,
            Message::Coverage(c) => &c.branch,
            Message::DeviceRemoved { branch, .. }
            | Message::CoverageRemoved { branch }
            | Message::GatewayRemoved { branch } => branch,
        }
    }
}

/// Why a received message was rejected.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("topic {0:?} is not part of the head-office contract under this prefix")]
    UnknownTopic(String),
    #[error("topic {topic:?}: the branch {branch:?} is not a valid id: {source}")]
    BadBranch { topic: String, branch: String, source: protocols::IdError },
    #[error("topic {topic:?}: the payload is not a valid {what}: {source}")]
    Json { topic: String, what: &'static str, source: serde_json::Error },
    #[error("topic {topic:?}: schema {got:?} is not supported (expected {expected:?})")]
    Schema { topic: String, got: String, expected: &'static str },
    #[error("topic {topic:?}: the payload says branch {payload:?}, the topic says {topic_branch:?}")]
    BranchMismatch { topic: String, topic_branch: String, payload: String },
    #[error("topic {topic:?}: the payload is a {payload} alert, the topic says {topic_kind}")]
    KindMismatch { topic: String, topic_kind: &'static str, payload: &'static str },
    #[error("topic {topic:?}: the payload is about device {payload:?}, the topic names {topic_device:?}")]
    DeviceMismatch { topic: String, topic_device: String, payload: String },
    #[error("topic {topic:?}: empty payload on a topic that is never deleted")]
    Empty { topic: String },
}

/// Decodes one publish received under `prefix`.
pub fn decode(prefix: &str, topic: &str, payload: &[u8]) -> Result<Message, DecodeError> {
    let kind = topics::parse(prefix, topic).ok_or_else(|| DecodeError::UnknownTopic(topic.to_string()))?;
    let topic_branch = match &kind {
        TopicKind::Gateway { branch }
        | TopicKind::Alert { branch, .. }
        | TopicKind::Device { branch, .. }
        | TopicKind::Coverage { branch } => branch.clone(),
    };
    let branch = BranchId::new(topic_branch.clone()).map_err(|source| DecodeError::BadBranch {
        topic: topic.to_string(),
        branch: topic_branch.clone(),
        source,
    })?;
    let check_branch = |payload: &BranchId| {
        if *payload == branch {
            Ok(())
        } else {
            Err(DecodeError::BranchMismatch {
                topic: topic.to_string(),
                topic_branch: topic_branch.clone(),
                payload: payload.to_string(),
            })
        }
    };
    let check_schema = |got: &str, expected: &'static str| {
        if got == expected {
            Ok(())
        } else {
            Err(DecodeError::Schema { topic: topic.to_string(), got: got.to_string(), expected })
        }
    };
    let json_err = |what: &'static str| move |source| DecodeError::Json { topic: topic.to_string(), what, source };

    match kind {
        TopicKind::Alert { kind, .. } => {
            if payload.is_empty() {
                return Err(DecodeError::Empty { topic: topic.to_string() });
            }
            let alert: Alert = serde_json::from_slice(payload).map_err(json_err("branch-alert"))?;
            check_schema(&alert.schema, ALERT_SCHEMA)?;
            check_branch(&alert.branch)?;
            if alert.kind() != kind {
                return Err(DecodeError::KindMismatch {
                    topic: topic.to_string(),
                    topic_kind: kind.as_str(),
                    payload: alert.kind().as_str(),
                });
            }
            Ok(Message::Alert(Box::new(alert)))
        }
        TopicKind::Gateway { .. } => {
            if payload.is_empty() {
                return Ok(Message::GatewayRemoved { branch });
            }
            let st: GatewayStatus = serde_json::from_slice(payload).map_err(json_err("gateway status"))?;
            check_schema(&st.schema, GATEWAY_STATUS_SCHEMA)?;
            check_branch(&st.branch)?;
            Ok(Message::Gateway(st))
        }
        TopicKind::Device { device, .. } => {
            let device_id = DeviceId::new(device.clone()).map_err(|_| DecodeError::UnknownTopic(topic.to_string()))?;
            if payload.is_empty() {
                return Ok(Message::DeviceRemoved { branch, device: device_id });
            }
            let h: DeviceHealth = serde_json::from_slice(payload).map_err(json_err("device health"))?;
            check_schema(&h.schema, DEVICE_HEALTH_SCHEMA)?;
            check_branch(&h.branch)?;
            if h.device.id != device_id {
                return Err(DecodeError::DeviceMismatch {
                    topic: topic.to_string(),
                    topic_device: device,
                    payload: h.device.id.to_string(),
                });
            }
            Ok(Message::Device(h))
        }
        TopicKind::Coverage { .. } => {
            if payload.is_empty() {
                return Ok(Message::CoverageRemoved { branch });
            }
            let c: CoverageReport = serde_json::from_slice(payload).map_err(json_err("coverage report"))?;
            check_schema(&c.schema, COVERAGE_SCHEMA)?;
            check_branch(&c.branch)?;
            Ok(Message::Coverage(c))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocols::status::GatewayState;

    fn gw(branch: &str) -> Vec<u8> {
        serde_json::to_vec(&GatewayStatus {
            schema: GATEWAY_STATUS_SCHEMA.into(),
            branch: BranchId::new(branch).unwrap(),
            status: GatewayState::Online,
            reason: None,
            at: None,
            version: "1".into(),
        })
        .unwrap()
    }

    #[test]
    fn a_gateway_status_on_its_own_topic_decodes() {
        let m = decode("branches", "branches/b1/gateway", &gw("b1")).unwrap();
        assert!(matches!(m, Message::Gateway(_)));
        assert_eq!(m.branch().as_str(), "b1");
    }

    #[test]
    fn a_branch_cannot_speak_for_another() {
        let e = decode("branches", "branches/b1/gateway", &gw("b2")).unwrap_err();
        assert!(matches!(e, DecodeError::BranchMismatch { .. }), "{e}");
    }

    #[test]
    fn garbage_is_rejected_with_the_topic_named() {
        let e = decode("branches", "branches/b1/alerts/alarm-link", b"{not json").unwrap_err();
        assert!(e.to_string().contains("branches/b1/alerts/alarm-link"), "{e}");
        let e = decode("branches", "branches/b1/alerts/unknown-kind", b"{}").unwrap_err();
        assert!(matches!(e, DecodeError::UnknownTopic(_)));
        let e = decode("branches", "branches/b1/alerts/alarm-link", b"").unwrap_err();
        assert!(matches!(e, DecodeError::Empty { .. }));
    }

    #[test]
    fn an_empty_retained_payload_is_a_deletion() {
        let m = decode("branches", "branches/b1/devices/cam-1", b"").unwrap();
        assert!(matches!(m, Message::DeviceRemoved { .. }));
    }

    #[test]
    fn an_unknown_schema_version_is_rejected() {
        let mut v: serde_json::Value = serde_json::from_slice(&gw("b1")).unwrap();
        v["schema"] = "branch-gateway-status/2".into();
        let e = decode("branches", "branches/b1/gateway", &serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(matches!(e, DecodeError::Schema { .. }), "{e}");
    }
}
