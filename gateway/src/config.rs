//! The site file: its model, parsing and validation live in the `site` crate (shared with the
//! simulator, which writes site files with the same types); re-exported here so that the
//! gateway reads `config::SiteConfig` as before.

pub use ::site::model::*;
pub use ::site::{Diagnostic, ProfileResolver, split_host_port};

/// One thing wrong with a site file (the gateway's older name for [`Diagnostic`]).
pub type Problem = Diagnostic;

/// The site file's `mqtt_version` as the MQTT link speaks it.
impl From<MqttVersion> for crate::mqtt::MqttVersion {
    fn from(v: MqttVersion) -> Self {
        match v {
            MqttVersion::V5 => crate::mqtt::MqttVersion::V5,
            MqttVersion::V311 => crate::mqtt::MqttVersion::V311,
        }
    }
}
