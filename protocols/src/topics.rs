//! The head-office topic scheme: everything a branch publishes lives under
//! `{prefix}/{branch}/…`, so a broker ACL can confine a branch's credentials to its subtree.

use crate::alert::AlertKind;
use crate::ids::{BranchId, DeviceId, IdError, validate_segment};

/// Default topic prefix.
pub const DEFAULT_PREFIX: &str = "branches";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
    branch: BranchId,
}

impl Topics {
    /// `prefix` may have several levels (`bank/branches`), each a valid segment.
    pub fn new(prefix: &str, branch: BranchId) -> Result<Self, IdError> {
        for seg in prefix.split('/') {
            validate_segment(seg)?;
        }
        Ok(Self { prefix: prefix.to_string(), branch })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    pub fn branch(&self) -> &BranchId {
        &self.branch
    }

    /// `{p}/{b}/gateway` — retained gateway status, also the MQTT Will topic.
    pub fn gateway(&self) -> String {
        format!("{}/{}/gateway", self.prefix, self.branch)
    }
    /// `{p}/{b}/alerts/{kind}` — one alert, QoS 1, not retained.
    pub fn alert(&self, kind: AlertKind) -> String {
        format!("{}/{}/alerts/{}", self.prefix, self.branch, kind.as_str())
    }
    /// `{p}/{b}/devices/{device}` — retained latest health of one device.
    pub fn device(&self, device: &DeviceId) -> String {
        format!("{}/{}/devices/{}", self.prefix, self.branch, device)
    }
    /// `{p}/{b}/coverage` — retained coverage report.
    pub fn coverage(&self) -> String {
        format!("{}/{}/coverage", self.prefix, self.branch)
    }
    /// `{p}/{b}/commission` — `branch-gateway commission`'s test publish (QoS 1, not retained),
    /// which shows that the broker lets this branch publish into its subtree. Head office
    /// does not subscribe to it.
    pub fn commission(&self) -> String {
        format!("{}/{}/commission", self.prefix, self.branch)
    }
    /// The subtree of this branch, for ACLs: `{p}/{b}/#`.
    pub fn subtree(&self) -> String {
        format!("{}/{}/#", self.prefix, self.branch)
    }
}

/// What a received topic is, for head-office consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicKind {
    Gateway { branch: String },
    Alert { branch: String, kind: AlertKind },
    Device { branch: String, device: String },
    Coverage { branch: String },
}

/// Parses a topic under `prefix`; `None` for anything outside the scheme.
pub fn parse(prefix: &str, topic: &str) -> Option<TopicKind> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let mut it = rest.split('/');
    let branch = it.next()?.to_string();
    let kind = match (it.next()?, it.next(), it.next()) {
        ("gateway", None, _) => TopicKind::Gateway { branch },
        ("coverage", None, _) => TopicKind::Coverage { branch },
        ("alerts", Some(k), None) => TopicKind::Alert { branch, kind: AlertKind::parse(k)? },
        ("devices", Some(d), None) => TopicKind::Device { branch, device: d.to_string() },
        _ => return None,
    };
    Some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_contract() {
        let t = Topics::new("branches", BranchId::new("b01").unwrap()).unwrap();
        assert_eq!(t.gateway(), "branches/b01/gateway");
        assert_eq!(t.alert(AlertKind::AlarmLink), "branches/b01/alerts/alarm-link");
        assert_eq!(t.device(&DeviceId::new("cam-1").unwrap()), "branches/b01/devices/cam-1");
        assert_eq!(t.coverage(), "branches/b01/coverage");
        assert_eq!(
            parse("branches", "branches/b01/alerts/door-status"),
            Some(TopicKind::Alert { branch: "b01".into(), kind: AlertKind::DoorStatus })
        );
        assert_eq!(parse("branches", "other/b01/gateway"), None);
    }

    #[test]
    fn prefix_with_wildcards_is_rejected() {
        let b = BranchId::new("b").unwrap();
        assert!(Topics::new("bank/branches", b.clone()).is_ok());
        assert!(Topics::new("bank/+", b.clone()).is_err());
        assert!(Topics::new("bank//x", b.clone()).is_err());
        assert!(Topics::new("#", b).is_err());
    }
}
