//! Coverage: which required zones are watched by enough live cameras right now.
//!
//! Head office reads this for every branch at once (the bank's security assessment asks
//! exactly this), so it is computed from the *debounced* camera states kept by
//! [`crate::health`]: a single failed probe does not make a zone uncovered.

use std::collections::BTreeMap;

use protocols::coverage::COVERAGE_SCHEMA;
use protocols::time::Timestamp;
use protocols::{BranchId, CoverageReport, CoverageTotals, DeviceId, ZoneCoverage, ZoneId};

use crate::site::Site;

/// What coverage needs to know about one camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CameraView {
    /// Has answered at least once (or been given up on): unknown cameras count as down.
    pub known: bool,
    /// ONVIF answers (debounced).
    pub online: bool,
    /// The stream answers and the picture changes (debounced).
    pub live_video: bool,
}

#[derive(Debug, Clone)]
struct ZoneDef {
    id: ZoneId,
    name: String,
    required: bool,
    min_live: u32,
    cameras: Vec<DeviceId>,
}

/// Keeps the zone definitions and when each zone lost coverage.
#[derive(Debug, Clone)]
pub struct Coverage {
    branch: BranchId,
    zones: Vec<ZoneDef>,
    uncovered_since: BTreeMap<ZoneId, Timestamp>,
    last: Option<CoverageReport>,
}

impl Coverage {
    pub fn new(site: &Site) -> Coverage {
        let zones = site
            .zones
            .iter()
            .map(|z| ZoneDef {
                id: z.id.clone(),
                name: z.name.clone(),
                required: z.required,
                min_live: z.min_live,
                cameras: site.cameras.iter().filter(|c| c.zones.contains(&z.id)).map(|c| c.id.clone()).collect(),
            })
            .collect();
        Coverage { branch: site.branch.clone(), zones, uncovered_since: BTreeMap::new(), last: None }
    }

    /// Required zones that would be left below their minimum if `lost` went down, given the
    /// current views (`lost` itself counted as live now). Used to raise a camera loss's
    /// severity and to name the zones it leaves unwatched.
    pub fn zones_uncovered_without(&self, lost: &DeviceId, views: &BTreeMap<DeviceId, CameraView>) -> Vec<ZoneId> {
        self.zones
            .iter()
            .filter(|z| z.required && z.cameras.contains(lost))
            .filter(|z| {
                let live =
                    z.cameras.iter().filter(|c| *c != lost && views.get(*c).is_some_and(|v| v.live_video)).count()
                        as u32;
                live < z.min_live
            })
            .map(|z| z.id.clone())
            .collect()
    }

    /// Recomputes the report. Returns `Some` when it differs from the last one in anything
    /// but its timestamp (the caller publishes it), `None` when nothing changed.
    pub fn update(&mut self, views: &BTreeMap<DeviceId, CameraView>, now: Timestamp) -> Option<CoverageReport> {
        let report = self.compute(views, now);
        let changed = match &self.last {
            None => true,
            Some(prev) => prev.totals != report.totals || prev.zones != report.zones,
        };
        self.last = Some(report.clone());
        changed.then_some(report)
    }

    /// The latest report, for periodic re-publication.
    pub fn last(&self) -> Option<&CoverageReport> {
        self.last.as_ref()
    }

    fn compute(&mut self, views: &BTreeMap<DeviceId, CameraView>, now: Timestamp) -> CoverageReport {
        let mut zones = Vec::with_capacity(self.zones.len());
        for z in &self.zones {
            let online = z.cameras.iter().filter(|c| views.get(*c).is_some_and(|v| v.online)).count() as u32;
            let live = z.cameras.iter().filter(|c| views.get(*c).is_some_and(|v| v.live_video)).count() as u32;
            let covered = live >= z.min_live;
            let since = if covered {
                self.uncovered_since.remove(&z.id);
                None
            } else {
                Some(*self.uncovered_since.entry(z.id.clone()).or_insert(now))
            };
            zones.push(ZoneCoverage {
                id: z.id.clone(),
                name: z.name.clone(),
                required: z.required,
                min_live_cameras: z.min_live,
                cameras: z.cameras.clone(),
                cameras_online: online,
                cameras_live_video: live,
                covered,
                uncovered_since: since,
            });
        }
        let totals = CoverageTotals {
            cameras_configured: views.len() as u32,
            cameras_online: views.values().filter(|v| v.online).count() as u32,
            cameras_live_video: views.values().filter(|v| v.live_video).count() as u32,
            required_zones: zones.iter().filter(|z| z.required).count() as u32,
            required_zones_uncovered: zones.iter().filter(|z| z.required && !z.covered).count() as u32,
        };
        CoverageReport { schema: COVERAGE_SCHEMA.to_string(), branch: self.branch.clone(), at: now, totals, zones }
    }
}
