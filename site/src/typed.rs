//! The site as the health engine sees it: the validated site file turned into typed ids with
//! every reference resolved (a camera's zones, an alarm zone's panel and linked cameras, a
//! door's panel), and each panel's point roles from its profile. Built once at start; an id
//! that does not parse or a reference to nothing is a [`Diagnostic`] here, so the engine never
//! meets a bad id.

use std::collections::BTreeMap;
use std::time::Duration;

use protocols::modbus::Role;
use protocols::{BranchId, DeviceId, ZoneId};

use i18n::Lang;

use crate::diagnostic::Diagnostic;
use crate::model::{PanelKind, SiteConfig};

#[derive(Debug, Clone)]
pub struct Site {
    pub branch: BranchId,
    pub name: String,
    pub lang: Lang,
    pub offline_after: u32,
    pub online_after: u32,
    pub coverage_period: Duration,
    /// The outbox's bound (events, bytes), named in the overflow alert.
    pub bound: (u64, u64),
    pub zones: Vec<Zone>,
    pub cameras: Vec<Camera>,
    pub panels: Vec<Panel>,
    pub alarm_zones: Vec<AlarmZone>,
    pub doors: Vec<Door>,
}

#[derive(Debug, Clone)]
pub struct Zone {
    pub id: ZoneId,
    pub name: String,
    pub required: bool,
    pub min_live: u32,
}

#[derive(Debug, Clone)]
pub struct Camera {
    pub id: DeviceId,
    pub name: String,
    pub zones: Vec<ZoneId>,
    pub maintenance: bool,
}

#[derive(Debug, Clone)]
pub struct Panel {
    pub id: DeviceId,
    pub name: String,
    pub kind: PanelKind,
    pub maintenance: bool,
    /// Point id → role, from the panel's profile.
    pub roles: BTreeMap<String, Role>,
}

#[derive(Debug, Clone)]
pub struct AlarmZone {
    pub id: ZoneId,
    pub name: String,
    pub panel: DeviceId,
    /// The profile point that carries the zone's state.
    pub point: String,
    /// The partition point whose armed state applies; none: always armed.
    pub partition: Option<String>,
    pub twenty_four_hour: bool,
    pub area: Option<ZoneId>,
    pub linked_cameras: Vec<DeviceId>,
    pub snapshot: bool,
}

#[derive(Debug, Clone)]
pub struct Door {
    pub id: ZoneId,
    pub name: String,
    pub panel: DeviceId,
    pub point: String,
    pub held_open_limit: Duration,
    pub linked_cameras: Vec<DeviceId>,
    pub snapshot: bool,
}

impl Site {
    /// Types and resolves `cfg` (which `SiteConfig::validate` accepted); `roles` gives each
    /// panel's point roles from its profile.
    pub fn new(cfg: &SiteConfig, roles: &BTreeMap<String, Vec<(String, Role)>>) -> Result<Site, Vec<Diagnostic>> {
        let mut r = Resolver::default();
        let branch = r.parse::<BranchId>("branch.id", &cfg.branch.id);
        let zones: Vec<Zone> = cfg
            .zones
            .iter()
            .enumerate()
            .filter_map(|(i, z)| {
                Some(Zone {
                    id: r.parse(&format!("zone[{i}].id"), &z.id)?,
                    name: z.name.clone(),
                    required: z.coverage_required,
                    min_live: z.min_live_cameras,
                })
            })
            .collect();
        let zone_ids: Vec<ZoneId> = zones.iter().map(|z| z.id.clone()).collect();
        let cameras: Vec<Camera> = cfg
            .cameras
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let zones =
                    c.zones.iter().filter_map(|z| r.known(&format!("camera[{i}].zones"), z, &zone_ids)).collect();
                Some(Camera {
                    id: r.parse(&format!("camera[{i}].id"), &c.id)?,
                    name: c.name.clone(),
                    zones,
                    maintenance: c.maintenance,
                })
            })
            .collect();
        let camera_ids: Vec<DeviceId> = cameras.iter().map(|c| c.id.clone()).collect();
        let panels: Vec<Panel> = cfg
            .panels
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                Some(Panel {
                    id: r.parse(&format!("panel[{i}].id"), &p.id)?,
                    name: p.name.clone(),
                    kind: p.kind,
                    maintenance: p.maintenance,
                    roles: roles.get(&p.id).map(|v| v.iter().cloned().collect()).unwrap_or_default(),
                })
            })
            .collect();
        let panel_ids: Vec<DeviceId> = panels.iter().map(|p| p.id.clone()).collect();
        let alarm_zones = cfg
            .alarm_zones
            .iter()
            .enumerate()
            .filter_map(|(i, z)| {
                let f = |name: &str| format!("alarm_zone[{i}].{name}");
                let linked =
                    z.linked_cameras.iter().filter_map(|c| r.known(&f("linked_cameras"), c, &camera_ids)).collect();
                let area = z.area.as_ref().and_then(|a| r.known(&f("area"), a, &zone_ids));
                Some(AlarmZone {
                    id: r.parse(&f("id"), &z.id)?,
                    name: z.name.clone(),
                    panel: r.known(&f("panel"), &z.panel, &panel_ids)?,
                    point: z.point.clone(),
                    partition: z.partition.clone(),
                    twenty_four_hour: z.twenty_four_hour,
                    area,
                    linked_cameras: linked,
                    snapshot: z.snapshot,
                })
            })
            .collect();
        let doors = cfg
            .doors
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                let f = |name: &str| format!("door[{i}].{name}");
                let linked =
                    d.linked_cameras.iter().filter_map(|c| r.known(&f("linked_cameras"), c, &camera_ids)).collect();
                Some(Door {
                    id: r.parse(&f("id"), &d.id)?,
                    name: d.name.clone(),
                    panel: r.known(&f("panel"), &d.panel, &panel_ids)?,
                    point: d.point.clone(),
                    held_open_limit: d.held_open_limit,
                    linked_cameras: linked,
                    snapshot: d.snapshot,
                })
            })
            .collect();
        match branch {
            Some(branch) if r.problems.is_empty() => Ok(Site {
                branch,
                name: cfg.branch.name.clone(),
                lang: cfg.branch.language,
                offline_after: cfg.health.offline_after,
                online_after: cfg.health.online_after,
                coverage_period: cfg.health.coverage_period,
                bound: (cfg.storage.max_events, cfg.storage.max_bytes),
                zones,
                cameras,
                panels,
                alarm_zones,
                doors,
            }),
            _ => Err(r.problems),
        }
    }

    pub fn zone(&self, id: &ZoneId) -> Option<&Zone> {
        self.zones.iter().find(|z| &z.id == id)
    }
}

/// Collects the problems met while typing the site.
#[derive(Default)]
struct Resolver {
    problems: Vec<Diagnostic>,
}

impl Resolver {
    fn parse<T: std::str::FromStr>(&mut self, field: &str, value: &str) -> Option<T> {
        match value.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                self.problems.push(Diagnostic::new(
                    field,
                    i18n::text!("{value:?} is not a valid id", "{value:?} 不是有效的 id"),
                    i18n::text!(
                        "use letters, digits, `-`, `_` or `.` (1 to 64 bytes)",
                        "只用字母、数字、`-`、`_` 或 `.`（1 到 64 字节）"
                    ),
                ));
                None
            }
        }
    }

    /// `value` as one of `known`, or a problem naming the field.
    fn known<T: Clone + AsRef<str>>(&mut self, field: &str, value: &str, known: &[T]) -> Option<T> {
        let found = known.iter().find(|k| k.as_ref() == value).cloned();
        if found.is_none() {
            self.problems.push(Diagnostic::new(
                field,
                i18n::text!("{value:?} names nothing configured", "{value:?} 不是任何已配置项的 id"),
                i18n::text!("use the id of a configured item", "填写某个已配置项的 id"),
            ));
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = r#"
[branch]
id = "b01"
name = "Typed"
[uplink]
broker = "mqtt://127.0.0.1:1883"
[[zone]]
id = "vault"
name = "Vault"
coverage_required = true
[[camera]]
id = "cam-1"
name = "Vault cam"
onvif = "http://127.0.0.1:1/onvif/device_service"
zones = ["vault"]
[[panel]]
id = "alarm-1"
name = "Panel"
kind = "alarm"
address = "127.0.0.1:502"
profile = "generic-alarm"
[[alarm_zone]]
id = "z1"
name = "Contact"
panel = "alarm-1"
point = "zone.1"
area = "vault"
linked_cameras = ["cam-1"]
"#;

    #[test]
    fn references_are_resolved_to_typed_ids() {
        let cfg = SiteConfig::parse_str(SITE).expect("parse");
        let roles = BTreeMap::from([("alarm-1".to_string(), vec![("zone.1".to_string(), Role::Zone)])]);
        let site = Site::new(&cfg, &roles).expect("site");
        assert_eq!(site.cameras[0].zones, vec![ZoneId::new("vault").expect("id")]);
        let z = &site.alarm_zones[0];
        assert_eq!(z.panel.as_str(), "alarm-1");
        assert_eq!(z.linked_cameras[0].as_str(), "cam-1");
        assert_eq!(z.area.as_ref().map(ZoneId::as_str), Some("vault"));
        assert_eq!(site.panels[0].roles.get("zone.1"), Some(&Role::Zone));
    }

    #[test]
    fn a_dangling_reference_or_a_bad_id_is_a_problem_not_a_panic() {
        // Past validation only by a hand-built config: the typed site refuses it with fields.
        let text = SITE
            .replace("linked_cameras = [\"cam-1\"]", "linked_cameras = [\"cam-9\"]")
            .replace("id = \"z1\"", "id = \"z 1\"");
        let cfg = SiteConfig::parse_str(&text).expect("parse");
        let problems = Site::new(&cfg, &BTreeMap::new()).expect_err("refused");
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert!(fields.contains(&"alarm_zone[0].linked_cameras") && fields.contains(&"alarm_zone[0].id"), "{fields:?}");
    }
}
