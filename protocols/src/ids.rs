//! Identifier newtypes. Every id ends up as an MQTT topic segment, so the rules are the
//! topic rules: non-empty, at most 64 bytes, none of `+ # /`, no whitespace or control
//! characters (a space in a topic is legal MQTT but a trap in every shell and ACL file).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Why a string cannot be used as an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is empty")]
    Empty,
    #[error("is {0} bytes long; the limit is 64")]
    TooLong(usize),
    #[error("contains {0:?}, which MQTT reserves in topics (`+`, `#` and `/` are not allowed)")]
    TopicWildcard(char),
    #[error("contains whitespace or a control character ({0:?})")]
    Whitespace(char),
}

impl IdError {
    /// What is wrong, in both languages (the English is the `Display`), for the gateway's and
    /// the simulator's problem lists.
    pub fn text(&self) -> i18n::Text {
        use i18n::text;
        match self {
            IdError::Empty => text!("is empty", "为空"),
            IdError::TooLong(n) => text!("is {n} bytes long; the limit is 64", "长 {n} 字节，上限为 64"),
            IdError::TopicWildcard(c) => text!(
                "contains {c:?}, which MQTT reserves in topics (`+`, `#` and `/` are not allowed)",
                "含有 {c:?}，MQTT 主题保留了它（不能用 `+`、`#`、`/`）"
            ),
            IdError::Whitespace(c) => {
                text!("contains whitespace or a control character ({c:?})", "含有空白或控制字符（{c:?}）")
            }
        }
    }
}

/// Checks that `s` can stand alone as one MQTT topic segment.
pub fn validate_segment(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > 64 {
        return Err(IdError::TooLong(s.len()));
    }
    for c in s.chars() {
        match c {
            '+' | '#' | '/' => return Err(IdError::TopicWildcard(c)),
            c if c.is_whitespace() || c.is_control() => return Err(IdError::Whitespace(c)),
            _ => {}
        }
    }
    Ok(())
}

macro_rules! segment_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `s` as a topic segment.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate_segment(&s)?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

segment_id!(
    /// A branch: the second segment of every topic the branch publishes.
    BranchId
);
segment_id!(
    /// A device (camera, panel, the gateway itself), unique within a branch.
    DeviceId
);
segment_id!(
    /// A zone: an area of the branch (coverage) or an alarm zone / door point.
    ZoneId
);

/// The per-gateway sequence number of an alert: contiguous from 1, persisted across restarts,
/// so head office can detect a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
    /// Big-endian bytes: the sled key order equals the numeric order.
    pub fn to_key(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
    pub fn from_key(k: &[u8]) -> Option<Seq> {
        let arr: [u8; 8] = k.try_into().ok()?;
        Some(Seq(u64::from_be_bytes(arr)))
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_wildcards_and_separators_are_rejected() {
        assert_eq!(DeviceId::new("cam+1"), Err(IdError::TopicWildcard('+')));
        assert_eq!(DeviceId::new("cam#1"), Err(IdError::TopicWildcard('#')));
        assert_eq!(DeviceId::new("a/b"), Err(IdError::TopicWildcard('/')));
        assert_eq!(DeviceId::new(""), Err(IdError::Empty));
        assert_eq!(DeviceId::new("a b"), Err(IdError::Whitespace(' ')));
        assert!(DeviceId::new("cam-01").is_ok());
        assert!(ZoneId::new("金库").is_ok());
    }

    #[test]
    fn seq_keys_sort_numerically() {
        assert!(Seq(255).to_key() < Seq(256).to_key());
        assert_eq!(Seq::from_key(&Seq(42).to_key()), Some(Seq(42)));
        assert_eq!(Seq::from_key(b"short"), None);
    }

    #[test]
    fn ids_deserialize_with_validation() {
        let ok: Result<BranchId, _> = serde_json::from_str("\"b0101\"");
        assert!(ok.is_ok());
        let bad: Result<BranchId, _> = serde_json::from_str("\"b/0101\"");
        assert!(bad.is_err());
    }
}
