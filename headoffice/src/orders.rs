//! Rectification orders (整改): every fault that lasts is tracked to a verified fix.
//!
//! A condition that has lasted beyond its threshold (a camera offline, a required zone
//! unwatched, a panel in fault, a gateway offline) opens an order with a requirement, a
//! deadline by severity and an assignee by branch or region. The order then follows the
//! condition:
//!
//! ```text
//! open ──take──▶ in-progress ──(condition clears)──▶ fixed ──(healthy for verify_for)──▶ verified
//!   │                 │                                 │
//!   └──(clears)───────┴────────────▶ fixed              └──(condition returns)──▶ open (reopened)
//! open / in-progress past the deadline: marked overdue (once; escalated)
//! any active order: closed by hand with a reason
//! ```
//!
//! [`plan`] is pure: from what holds now and the active orders it says which transitions to
//! make. The database applies them idempotently (one active order per condition; a transition
//! applies only from the state it expects), so several `hq` processes may run the check at once.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use protocols::BranchId;
use protocols::time::Timestamp;
use serde::Deserialize;

use crate::directory::Directory;
use crate::records::Snapshot;

/// What an order is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Condition {
    /// A camera offline, frozen, without a stream (any state but online).
    CameraOffline,
    /// A required zone without its live cameras.
    ZoneUncovered,
    /// A panel or controller fault, or its heartbeat stopped.
    DeviceFault,
    GatewayOffline,
    /// Opened by an operator (e.g. a cash-counting machine moved out of view).
    Manual,
}

impl Condition {
    pub const ALL: [Condition; 5] = [
        Condition::CameraOffline,
        Condition::ZoneUncovered,
        Condition::DeviceFault,
        Condition::GatewayOffline,
        Condition::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::CameraOffline => "camera-offline",
            Condition::ZoneUncovered => "zone-uncovered",
            Condition::DeviceFault => "device-fault",
            Condition::GatewayOffline => "gateway-offline",
            Condition::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<Condition> {
        Condition::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// An order's severity, which sets its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OrderSeverity {
    Critical,
    Major,
    Minor,
}

impl OrderSeverity {
    pub const ALL: [OrderSeverity; 3] = [OrderSeverity::Critical, OrderSeverity::Major, OrderSeverity::Minor];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderSeverity::Critical => "critical",
            OrderSeverity::Major => "major",
            OrderSeverity::Minor => "minor",
        }
    }

    pub fn parse(s: &str) -> Option<OrderSeverity> {
        OrderSeverity::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderState {
    Open,
    InProgress,
    Fixed,
    Verified,
    Closed,
}

impl OrderState {
    pub const ALL: [OrderState; 5] =
        [OrderState::Open, OrderState::InProgress, OrderState::Fixed, OrderState::Verified, OrderState::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Open => "open",
            OrderState::InProgress => "in-progress",
            OrderState::Fixed => "fixed",
            OrderState::Verified => "verified",
            OrderState::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<OrderState> {
        OrderState::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Open, in progress or fixed (awaiting verification): at most one per condition.
    pub fn is_active(self) -> bool {
        matches!(self, OrderState::Open | OrderState::InProgress | OrderState::Fixed)
    }
}

/// `[orders]` of the head-office configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrdersConfig {
    /// Open orders automatically (false: only by hand).
    pub enabled: bool,
    /// How often the conditions are checked.
    #[serde(with = "humantime_serde")]
    pub check_every: Duration,
    /// A camera not online this long opens an order (major).
    #[serde(with = "humantime_serde")]
    pub camera_offline: Duration,
    /// A required zone uncovered this long opens an order (critical).
    #[serde(with = "humantime_serde")]
    pub zone_uncovered: Duration,
    /// A panel or controller fault (or stopped heartbeat) this long opens an order (major).
    #[serde(with = "humantime_serde")]
    pub device_fault: Duration,
    /// A gateway offline this long opens an order (critical).
    #[serde(with = "humantime_serde")]
    pub gateway_offline: Duration,
    /// A fixed order is verified once its condition has stayed away this long (the re-check,
    /// 跟踪复查); if the condition returns first, the order is reopened.
    #[serde(with = "humantime_serde")]
    pub verify_for: Duration,
    pub deadline: Deadlines,
    /// Who an order is assigned to: the first rule that matches the branch (by id, then by
    /// region), else `default_assignee`.
    pub assign: Vec<AssignRule>,
    pub default_assignee: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Deadlines {
    #[serde(with = "humantime_serde")]
    pub critical: Duration,
    #[serde(with = "humantime_serde")]
    pub major: Duration,
    #[serde(with = "humantime_serde")]
    pub minor: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            critical: Duration::from_secs(24 * 3600),
            major: Duration::from_secs(72 * 3600),
            minor: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl Deadlines {
    pub fn of(&self, s: OrderSeverity) -> Duration {
        match s {
            OrderSeverity::Critical => self.critical,
            OrderSeverity::Major => self.major,
            OrderSeverity::Minor => self.minor,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignRule {
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    pub to: String,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        OrdersConfig {
            enabled: true,
            check_every: Duration::from_secs(30),
            camera_offline: Duration::from_secs(30 * 60),
            zone_uncovered: Duration::from_secs(10 * 60),
            device_fault: Duration::from_secs(15 * 60),
            gateway_offline: Duration::from_secs(30 * 60),
            verify_for: Duration::from_secs(24 * 3600),
            deadline: Deadlines::default(),
            assign: Vec::new(),
            default_assignee: String::new(),
        }
    }
}

impl OrdersConfig {
    /// The threshold and severity of an automatic condition.
    pub fn rule(&self, c: Condition) -> (Duration, OrderSeverity) {
        match c {
            Condition::CameraOffline => (self.camera_offline, OrderSeverity::Major),
            Condition::ZoneUncovered => (self.zone_uncovered, OrderSeverity::Critical),
            Condition::DeviceFault => (self.device_fault, OrderSeverity::Major),
            Condition::GatewayOffline => (self.gateway_offline, OrderSeverity::Critical),
            Condition::Manual => (Duration::ZERO, OrderSeverity::Major),
        }
    }

    /// Who gets an order of `branch`.
    pub fn assignee(&self, branch: &BranchId, dir: &Directory) -> String {
        let region = dir.get(branch).map(|i| i.region.as_str()).unwrap_or_default();
        self.assign
            .iter()
            .find(|r| r.branch.as_deref() == Some(branch.as_str()))
            .or_else(|| self.assign.iter().find(|r| r.branch.is_none() && r.region.as_deref() == Some(region)))
            .map(|r| r.to.clone())
            .unwrap_or_else(|| self.default_assignee.clone())
    }
}

/// `[score]`: the branch score of the assessment, out of 100, and how it is made.
///
/// `score = 100 − availability × max(0, target − camera availability %)
///               − uncovered × hours of required zones uncovered
///               − camera_down × alarms raised while a linked camera was down
///               − overdue × rectification orders past their deadline`, at least 0.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreConfig {
    /// Camera availability the bank asks for, in percent.
    pub availability_target: f64,
    /// Points per percentage point below the target.
    pub availability: f64,
    /// Points per hour of a required zone uncovered.
    pub uncovered: f64,
    /// Points per alarm with a linked camera down.
    pub camera_down: f64,
    /// Points per overdue order.
    pub overdue: f64,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig { availability_target: 99.0, availability: 2.0, uncovered: 1.0, camera_down: 5.0, overdue: 5.0 }
    }
}

impl ScoreConfig {
    pub fn score(
        &self,
        availability_pct: Option<f64>,
        uncovered_minutes: f64,
        camera_down: usize,
        overdue: usize,
    ) -> f64 {
        let below = availability_pct.map_or(0.0, |a| (self.availability_target - a).max(0.0));
        let s = 100.0
            - self.availability * below
            - self.uncovered * uncovered_minutes / 60.0
            - self.camera_down * camera_down as f64
            - self.overdue * overdue as f64;
        s.clamp(0.0, 100.0)
    }
}

/// Per branch, the orders opened in a period.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderStats {
    pub opened: usize,
    pub fixed_on_time: usize,
    pub overdue: usize,
    /// Opened → fixed, over the fixed ones.
    pub mean_rectify_minutes: Option<f64>,
}

/// One branch's line of the ranking.
#[derive(Debug, Clone, PartialEq)]
pub struct BranchScore {
    pub branch: BranchId,
    pub score: f64,
    pub camera_availability_pct: Option<f64>,
    pub uncovered_minutes: f64,
    pub alarms_with_camera_down: usize,
    pub orders: OrderStats,
}

/// Every branch of the report (and any with orders), scored and ranked best first.
pub fn rank(r: &crate::report::Report, stats: &HashMap<BranchId, OrderStats>, cfg: &ScoreConfig) -> Vec<BranchScore> {
    let mut out: Vec<BranchScore> = r
        .branches
        .iter()
        .map(|b| {
            let uncovered: f64 = b.zones.iter().map(|z| z.uncovered_minutes).sum();
            let orders = stats.get(&b.branch).cloned().unwrap_or_default();
            BranchScore {
                score: cfg.score(b.camera_availability_pct, uncovered, b.alarms_with_camera_down.len(), orders.overdue),
                branch: b.branch.clone(),
                camera_availability_pct: b.camera_availability_pct,
                uncovered_minutes: uncovered,
                alarms_with_camera_down: b.alarms_with_camera_down.len(),
                orders,
            }
        })
        .collect();
    for (b, s) in stats {
        if !out.iter().any(|x| &x.branch == b) {
            out.push(BranchScore {
                branch: b.clone(),
                score: cfg.score(None, 0.0, 0, s.overdue),
                camera_availability_pct: None,
                uncovered_minutes: 0.0,
                alarms_with_camera_down: 0,
                orders: s.clone(),
            });
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.branch.cmp(&b.branch)));
    out
}

/// The head-office configuration file (`--config`, TOML).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HqConfig {
    pub orders: OrdersConfig,
    pub score: ScoreConfig,
    pub notify: crate::notify::NotifyConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read it: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: {detail}")]
    Bad { path: String, detail: String },
}

impl HqConfig {
    pub fn load(path: &Path) -> Result<HqConfig, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read { path: p.clone(), error })?;
        HqConfig::parse(&text).map_err(|detail| ConfigError::Bad { path: p, detail })
    }

    /// Parses and checks; the error names the field and the fix.
    pub fn parse(text: &str) -> Result<HqConfig, String> {
        let c: HqConfig = toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))?;
        let o = &c.orders;
        for (field, d) in [
            ("orders.check_every", o.check_every),
            ("orders.deadline.critical", o.deadline.critical),
            ("orders.deadline.major", o.deadline.major),
            ("orders.deadline.minor", o.deadline.minor),
        ] {
            if d.is_zero() {
                return Err(format!("{field} is 0: give a duration such as \"30s\" or \"24h\""));
            }
        }
        for (i, r) in o.assign.iter().enumerate() {
            if r.branch.is_none() == r.region.is_none() {
                return Err(format!(
                    "orders.assign[{i}] (to = {:?}): give exactly one of branch = \"ID\" or region = \"NAME\"",
                    r.to
                ));
            }
            if let Some(b) = &r.branch
                && let Err(e) = BranchId::new(b.clone())
            {
                return Err(format!("orders.assign[{i}].branch {b:?}: a branch id {e}"));
            }
        }
        let s = &c.score;
        for (field, v) in [
            ("score.availability_target", s.availability_target),
            ("score.availability", s.availability),
            ("score.uncovered", s.uncovered),
            ("score.camera_down", s.camera_down),
            ("score.overdue", s.overdue),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{field} = {v}: give a number of 0 or more"));
            }
        }
        if s.availability_target > 100.0 {
            return Err(format!("score.availability_target = {}: a percentage, at most 100", s.availability_target));
        }
        c.notify.check()?;
        Ok(c)
    }
}

/// A condition that holds now, and since when.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub branch: BranchId,
    pub condition: Condition,
    /// The device (or device/fault), the zone, or "" for the gateway.
    pub subject: String,
    pub subject_name: String,
    pub since: Timestamp,
    /// What is wrong, in the gateway's words (a device's state, a fault's reason).
    pub detail: String,
}

/// A device fault still raised (from the database's open faults).
#[derive(Debug, Clone, PartialEq)]
pub struct OpenFault {
    pub branch: BranchId,
    pub device: String,
    pub device_type: String,
    pub fault: String,
    pub raised_at: Timestamp,
}

/// What holds now, from the latest retained state and the faults still open.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    pub holding: Vec<Observed>,
    /// Branches whose gateway is offline: their devices' and zones' state is the last known,
    /// not current, so their orders neither open nor close on it (the gateway's order stands
    /// for them).
    pub unknown: HashSet<BranchId>,
}

/// What holds now, from the latest retained state and the faults still open. A branch whose
/// gateway is offline counts as one condition (the gateway), not as each of its devices.
pub fn observe(s: &Snapshot, faults: &[OpenFault]) -> Observation {
    use protocols::status::GatewayState;
    let mut out = Vec::new();
    let mut offline: HashSet<&BranchId> = HashSet::new();
    for (b, g) in &s.gateways {
        if g.value.status == GatewayState::Offline {
            offline.insert(b);
            out.push(Observed {
                branch: b.clone(),
                condition: Condition::GatewayOffline,
                subject: String::new(),
                subject_name: String::new(),
                since: g.since.or(g.value.at).unwrap_or(g.received_at),
                detail: g.value.reason.clone().unwrap_or_default(),
            });
        }
    }
    for ((b, _), d) in &s.devices {
        // Planned work (maintenance) and not-yet-known devices are not faults.
        if offline.contains(b) || matches!(d.value.state.as_str(), "online" | "unknown" | "maintenance") {
            continue;
        }
        if d.value.device.device_type == protocols::DeviceType::Camera {
            out.push(Observed {
                branch: b.clone(),
                condition: Condition::CameraOffline,
                subject: d.value.device.id.to_string(),
                subject_name: d.value.device.name.clone(),
                since: d.value.since,
                detail: d.value.detail().to_string(),
            });
        }
    }
    for (b, c) in &s.coverage {
        if offline.contains(b) {
            continue;
        }
        for z in c.value.uncovered() {
            out.push(Observed {
                branch: b.clone(),
                condition: Condition::ZoneUncovered,
                subject: z.id.to_string(),
                subject_name: z.name.clone(),
                since: z.uncovered_since.unwrap_or(c.value.at),
                detail: format!("{}/{}", z.cameras_live_video, z.min_live_cameras),
            });
        }
    }
    for f in faults {
        if offline.contains(&f.branch) || f.device_type == "camera" {
            continue;
        }
        out.push(Observed {
            branch: f.branch.clone(),
            condition: Condition::DeviceFault,
            subject: format!("{}/{}", f.device, f.fault),
            subject_name: f.device.clone(),
            since: f.raised_at,
            detail: f.fault.clone(),
        });
    }
    Observation { holding: out, unknown: offline.into_iter().cloned().collect() }
}

/// An active order as the planner needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveOrder {
    pub id: i64,
    pub branch: BranchId,
    pub condition: Condition,
    pub subject: String,
    pub state: OrderState,
    pub deadline: Timestamp,
    pub fixed_at: Option<Timestamp>,
    pub overdue: bool,
}

/// One change the check makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Open {
        obs: Observed,
        severity: OrderSeverity,
        deadline: Timestamp,
        assignee: String,
    },
    /// The condition is gone: open or in-progress → fixed.
    Fix {
        id: i64,
        from: OrderState,
    },
    /// Healthy through the verification period: fixed → verified.
    Verify {
        id: i64,
    },
    /// The condition came back during verification: fixed → open.
    Reopen {
        id: i64,
        detail: String,
    },
    /// Past the deadline and not fixed: marked once.
    Overdue {
        id: i64,
    },
}

/// The transitions due at `now`.
pub fn plan(
    now: Timestamp,
    obs: &Observation,
    active: &[ActiveOrder],
    cfg: &OrdersConfig,
    dir: &Directory,
) -> Vec<Transition> {
    let observed = &obs.holding;
    let key = |b: &BranchId, c: Condition, s: &str| (b.clone(), c, s.to_string());
    let holding: HashMap<_, &Observed> =
        observed.iter().map(|o| (key(&o.branch, o.condition, &o.subject), o)).collect();
    let mut out = Vec::new();
    let mut has_active = HashSet::new();
    for a in active {
        let k = key(&a.branch, a.condition, &a.subject);
        has_active.insert(k.clone());
        if a.condition == Condition::Manual {
            // Closed by hand only; overdue like any other.
            if !a.overdue && matches!(a.state, OrderState::Open | OrderState::InProgress) && now > a.deadline {
                out.push(Transition::Overdue { id: a.id });
            }
            continue;
        }
        let holds = holding.get(&k);
        if holds.is_none() && a.condition != Condition::GatewayOffline && obs.unknown.contains(&a.branch) {
            // Not known now: neither fixed nor reopened until the gateway is back.
            if !a.overdue && matches!(a.state, OrderState::Open | OrderState::InProgress) && now > a.deadline {
                out.push(Transition::Overdue { id: a.id });
            }
            continue;
        }
        match a.state {
            OrderState::Open | OrderState::InProgress => {
                if holds.is_none() {
                    out.push(Transition::Fix { id: a.id, from: a.state });
                } else if !a.overdue && now > a.deadline {
                    out.push(Transition::Overdue { id: a.id });
                }
            }
            OrderState::Fixed => match holds {
                Some(o) => out.push(Transition::Reopen { id: a.id, detail: o.detail.clone() }),
                None => {
                    let fixed = a.fixed_at.unwrap_or(now);
                    let verify = chrono::Duration::from_std(cfg.verify_for).unwrap_or(chrono::Duration::MAX);
                    if now.signed_duration_since(fixed) >= verify {
                        out.push(Transition::Verify { id: a.id });
                    }
                }
            },
            OrderState::Verified | OrderState::Closed => {}
        }
    }
    if cfg.enabled {
        for o in observed {
            let k = key(&o.branch, o.condition, &o.subject);
            if has_active.contains(&k) {
                continue;
            }
            let (threshold, severity) = cfg.rule(o.condition);
            let threshold = chrono::Duration::from_std(threshold).unwrap_or(chrono::Duration::MAX);
            if now.signed_duration_since(o.since) >= threshold {
                let d = chrono::Duration::from_std(cfg.deadline.of(severity)).unwrap_or(chrono::Duration::MAX);
                out.push(Transition::Open {
                    obs: o.clone(),
                    severity,
                    deadline: now.checked_add_signed(d).unwrap_or(now),
                    assignee: cfg.assignee(&o.branch, dir),
                });
            }
        }
    }
    out
}

/// Checks the orders every `cfg.check_every` until `shutdown` (in `hq serve`; several consoles
/// on one database may all check: the database applies each transition once).
pub async fn run(
    store: crate::db::Store,
    cfg: OrdersConfig,
    dir: std::sync::Arc<Directory>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(cfg.check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.check_orders(&cfg, &dir, protocols::time::now()).await {
            Ok(done) => {
                if failing {
                    tracing::info!("rectification orders: the database is back");
                    failing = false;
                }
                for (id, action) in done {
                    tracing::info!(order = id, action, "rectification order");
                }
            }
            Err(e) => {
                if !failing {
                    tracing::error!(error = %e, "rectification orders: cannot check; trying again");
                    failing = true;
                }
            }
        }
    }
}

/// The requirement written on an automatic order, in both languages (the console shows the
/// reader's).
pub fn requirement(c: Condition, name: &str) -> (String, String) {
    match c {
        Condition::CameraOffline => (
            format!("Restore camera {name}: power, network, video stream and picture"),
            format!("恢复摄像机 {name}：检查供电、网络、视频流与画面"),
        ),
        Condition::ZoneUncovered => (
            format!("Restore live video coverage of the required zone {name}"),
            format!("恢复必防区 {name} 的视频覆盖"),
        ),
        Condition::DeviceFault => (
            format!("Clear the fault of {name} and confirm it reports normally"),
            format!("排除 {name} 的故障并确认其上报正常"),
        ),
        Condition::GatewayOffline => (
            "Bring the branch gateway back online (power, network, uplink)".into(),
            "恢复网点网关在线（检查供电、网络、上联）".into(),
        ),
        Condition::Manual => (name.to_string(), name.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn t(s: i64) -> Timestamp {
        Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }
    fn b() -> BranchId {
        BranchId::new("b1").unwrap()
    }
    fn obs(c: Condition, since: i64) -> Observed {
        Observed {
            branch: b(),
            condition: c,
            subject: "cam-1".into(),
            subject_name: "Vault".into(),
            since: t(since),
            detail: "offline".into(),
        }
    }
    fn seen(v: Vec<Observed>) -> Observation {
        Observation { holding: v, unknown: HashSet::new() }
    }
    fn cfg() -> OrdersConfig {
        OrdersConfig {
            camera_offline: Duration::from_secs(60),
            verify_for: Duration::from_secs(100),
            deadline: Deadlines {
                critical: Duration::from_secs(300),
                major: Duration::from_secs(600),
                minor: Duration::from_secs(900),
            },
            default_assignee: "desk".into(),
            ..OrdersConfig::default()
        }
    }
    fn order(state: OrderState, fixed_at: Option<i64>) -> ActiveOrder {
        ActiveOrder {
            id: 7,
            branch: b(),
            condition: Condition::CameraOffline,
            subject: "cam-1".into(),
            state,
            deadline: t(600),
            fixed_at: fixed_at.map(t),
            overdue: false,
        }
    }

    #[test]
    fn an_order_opens_only_after_the_threshold() {
        let d = Directory::default();
        assert!(plan(t(59), &seen(vec![obs(Condition::CameraOffline, 0)]), &[], &cfg(), &d).is_empty());
        let p = plan(t(60), &seen(vec![obs(Condition::CameraOffline, 0)]), &[], &cfg(), &d);
        match &p[..] {
            [Transition::Open { severity, deadline, assignee, .. }] => {
                assert_eq!((*severity, *deadline, assignee.as_str()), (OrderSeverity::Major, t(660), "desk"));
            }
            other => panic!("{other:?}"),
        }
        // One active order per condition: no second one.
        assert!(
            plan(t(90), &seen(vec![obs(Condition::CameraOffline, 0)]), &[order(OrderState::Open, None)], &cfg(), &d)
                .is_empty()
        );
    }

    #[test]
    fn the_life_cycle_follows_the_condition() {
        let d = Directory::default();
        let c = cfg();
        assert_eq!(
            plan(t(100), &seen(vec![]), &[order(OrderState::InProgress, None)], &c, &d),
            vec![Transition::Fix { id: 7, from: OrderState::InProgress }]
        );
        assert!(plan(t(150), &seen(vec![]), &[order(OrderState::Fixed, Some(100))], &c, &d).is_empty());
        assert_eq!(
            plan(t(200), &seen(vec![]), &[order(OrderState::Fixed, Some(100))], &c, &d),
            vec![Transition::Verify { id: 7 }]
        );
        assert_eq!(
            plan(
                t(150),
                &seen(vec![obs(Condition::CameraOffline, 140)]),
                &[order(OrderState::Fixed, Some(100))],
                &c,
                &d
            ),
            vec![Transition::Reopen { id: 7, detail: "offline".into() }]
        );
        assert_eq!(
            plan(t(601), &seen(vec![obs(Condition::CameraOffline, 0)]), &[order(OrderState::Open, None)], &c, &d),
            vec![Transition::Overdue { id: 7 }]
        );
        let mut marked = order(OrderState::Open, None);
        marked.overdue = true;
        assert!(plan(t(700), &seen(vec![obs(Condition::CameraOffline, 0)]), &[marked], &c, &d).is_empty());
    }

    #[test]
    fn a_branch_whose_gateway_is_offline_keeps_its_orders_as_they_are() {
        let d = Directory::default();
        let mut o = seen(vec![]);
        o.unknown.insert(b());
        assert!(plan(t(100), &o, &[order(OrderState::Open, None)], &cfg(), &d).is_empty());
        assert!(plan(t(500), &o, &[order(OrderState::Fixed, Some(100))], &cfg(), &d).is_empty());
    }

    #[test]
    fn assignees_by_branch_then_region_then_default() {
        let d = Directory::parse("id,name,region\nb1,x,华北\nb2,y,华东\n".as_bytes()).unwrap();
        let mut c = cfg();
        c.assign = vec![
            AssignRule { branch: None, region: Some("华北".into()), to: "north".into() },
            AssignRule { branch: Some("b1".into()), region: None, to: "b1 team".into() },
        ];
        assert_eq!(c.assignee(&b(), &d), "b1 team");
        assert_eq!(c.assignee(&BranchId::new("b2").unwrap(), &d), "desk");
        c.assign.remove(1);
        assert_eq!(c.assignee(&b(), &d), "north");
    }

    #[test]
    fn configuration_mistakes_name_the_field() {
        let c = HqConfig::parse("[orders]\ncamera_offline = \"5m\"\n[orders.deadline]\ncritical = \"12h\"\n").unwrap();
        assert_eq!(c.orders.camera_offline, Duration::from_secs(300));
        assert_eq!(c.orders.deadline.major, Duration::from_secs(72 * 3600));
        for (text, says) in [
            ("[orders]\ncamera_ofline = \"5m\"\n", "camera_ofline"),
            ("[orders]\ncamera_offline = \"soon\"\n", "camera_offline"),
            ("[orders]\ncheck_every = \"0s\"\n", "orders.check_every"),
            ("[[orders.assign]]\nto = \"x\"\n", "orders.assign[0]"),
            ("[[orders.assign]]\nbranch = \"b 1\"\nto = \"x\"\n", "whitespace"),
            ("[score]\novercome = 1\n", "overcome"),
            ("[score]\navailability_target = 120.0\n", "at most 100"),
        ] {
            let e = HqConfig::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn the_example_configuration_is_the_defaults() {
        let c = HqConfig::parse(include_str!("../../deploy/hq/hq.toml")).unwrap();
        assert_eq!(c, HqConfig::default());
    }

    #[test]
    fn the_score_is_the_documented_formula() {
        let s = ScoreConfig::default();
        assert_eq!(s.score(Some(99.5), 0.0, 0, 0), 100.0);
        assert_eq!(s.score(Some(97.0), 120.0, 1, 2), 100.0 - 4.0 - 2.0 - 5.0 - 10.0);
        assert_eq!(s.score(Some(0.0), 0.0, 0, 0), 0.0);
    }
}
