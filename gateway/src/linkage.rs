//! Linkage: when an alarm zone fires or a door is forced, head office's first question is
//! "what do the cameras there show, and are they even alive?". This module answers it from
//! the cameras' live state at the moment of the alarm.

use std::collections::BTreeMap;

use protocols::{DeviceId, LinkedCamera};

/// What linkage needs to know about one camera right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CameraLive {
    pub name: String,
    pub online: bool,
    pub stream_alive: bool,
    pub frozen: bool,
    /// The picture check's raised fault (`obstructed`, `dark`, `defocused`).
    pub picture: Option<String>,
    pub stream_uri: Option<String>,
    pub snapshot_uri: Option<String>,
}

/// The linked cameras of an alarm zone or door, in configured order (the ids are resolved
/// when the site is typed, see `site.rs`).
pub fn linked_cameras(ids: &[DeviceId], cameras: &BTreeMap<DeviceId, CameraLive>) -> Vec<LinkedCamera> {
    ids.iter()
        .filter_map(|id| {
            let c = cameras.get(id)?;
            Some(LinkedCamera {
                id: id.clone(),
                name: c.name.clone(),
                online: c.online,
                stream_alive: c.stream_alive,
                frozen: c.frozen,
                picture: c.picture.clone(),
                stream_uri: c.stream_uri.clone(),
                snapshot_uri: c.snapshot_uri.clone(),
            })
        })
        .collect()
}

/// Whether any linked camera is down (offline, stream dead, frozen, or a picture that shows
/// nothing usable) — an alarm whose camera is down is the case head office must see first.
pub fn any_down(linked: &[LinkedCamera]) -> bool {
    linked.iter().any(LinkedCamera::is_down)
}
