//! What types cannot check in a site file: duplicate ids, dangling references, out-of-range
//! intervals, unusable topic segments, unreadable credential files, profile points of the
//! wrong role. [`SiteConfig::validate`] lists every problem at once, each naming the field and
//! the fix, so that an installer sees them all in one run.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use i18n::{Lang, Text, text};
use protocols::ids::validate_segment;

use crate::diagnostic::Diagnostic;
use crate::model::{MqttVersion, PanelKind, PictureConfig, Secret, SiteConfig};
use crate::picture::{NightHours, Resolution};

/// How to write a good id, with an example when given.
fn id_fix(example: &str) -> Text {
    if example.is_empty() {
        text!("use letters, digits, `-` or `_`", "只用字母、数字、`-` 或 `_`")
    } else {
        text!("use letters, digits, `-` or `_`, e.g. {example:?}", "只用字母、数字、`-` 或 `_`，例如 {example:?}")
    }
}

/// A checker for profile references: returns the point ids of a profile and their roles, or
/// the problems found in it. Implemented where profiles are loaded (the gateway's panel
/// poller), so that the site model stays independent of the Modbus code.
pub trait ProfileResolver {
    /// `Ok(points)` as (point id, role name); `Err(problems)` in the profile itself, each
    /// naming the profile's file and line when it has them.
    fn points(&self, profile: &str, base_dir: &Path) -> Result<Vec<(String, String)>, Vec<Diagnostic>>;
}

impl SiteConfig {
    /// Things that are valid but probably wrong, each as `(field, what, why)`; the gateway runs
    /// with them and `check-config` prints them.
    pub fn warnings(&self) -> Vec<(&'static str, Text)> {
        let mut w = Vec::new();
        if let Some(user) = &self.uplink.username
            && user != &self.branch.id
        {
            w.push((
                "uplink.username",
                text!(
                    "is {user:?} but the branch id is {:?}: head office's shipped ACL (pattern write {}/%u/#) lets a \
                     user publish only under its own name, so the broker would refuse every alert unless head office \
                     added this user to its ACL (branch-gateway commission checks it)",
                    "是 {user:?}，而网点 id 是 {:?}：总行随附的 ACL（pattern write {}/%u/#）只允许用户在自己名下发布，\
                     除非总行把这个用户加进 ACL，消息服务器会拒收所有告警（branch-gateway commission 会检查这一点）",
                    self.branch.id,
                    self.uplink.topic_prefix
                ),
            ));
        }
        if self.uplink.mqtt_version == MqttVersion::V311 {
            w.push((
                "uplink.mqtt_version",
                text!(
                    "is \"3.1.1\": a publish the broker refuses is acknowledged like a delivered one and is lost; use \
                     \"5\" unless the broker cannot speak MQTT 5",
                    "是 \"3.1.1\"：消息服务器拒收的消息会像已送达一样被确认，从而丢失；除非消息服务器不支持 MQTT 5，\
                     请用 \"5\""
                ),
            ));
        }
        w
    }

    /// Every problem in the file; empty when it is usable.
    pub fn validate(&self, profiles: &dyn ProfileResolver) -> Vec<Diagnostic> {
        let mut v = Validator::default();
        v.segment(
            "branch.id",
            &self.branch.id,
            text!(
                "use letters, digits, `-`, `_` or `.`, e.g. \"b0101\"",
                "只用字母、数字、`-`、`_` 或 `.`，例如 \"b0101\""
            ),
        );
        if self.branch.name.trim().is_empty() {
            v.push(
                "branch.name",
                text!("is empty", "为空"),
                text!("give the branch a human-readable name", "填写网点名称"),
            );
        }

        // Uplink.
        // The one broker URL parser, the one the uplink connects with (mqtt-setup): what passes
        // here is what `run` accepts.
        let broker = match mqtt_setup::BrokerUrl::parse(&self.uplink.broker) {
            Ok(url) => Some(url),
            Err(e) => {
                v.push(
                    "uplink.broker",
                    e.text(),
                    text!(
                        "write mqtt://HOST[:PORT] or mqtts://HOST[:PORT]; an IPv6 address in brackets, e.g. mqtt://[fd00::5]:1883",
                        "写成 mqtt://主机[:端口] 或 mqtts://主机[:端口]；IPv6 地址加方括号，例如 mqtt://[fd00::5]:1883"
                    ),
                );
                None
            }
        };
        if broker.as_ref().is_some_and(|b| b.tls) && self.uplink.tls.is_none() {
            v.push(
                "uplink.tls",
                text!("mqtts:// needs a [uplink.tls] section", "mqtts:// 需要 [uplink.tls] 一节"),
                text!("add [uplink.tls] with ca_file", "加上 [uplink.tls] 并填写 ca_file"),
            );
        }
        for (i, seg) in self.uplink.topic_prefix.split('/').enumerate() {
            if let Err(e) = validate_segment(seg) {
                v.push(
                    "uplink.topic_prefix",
                    {
                        let (n, e) = (i + 1, e.text());
                        Text::new(format!("level {n} ({seg:?}) {}", e.en), format!("第 {n} 级（{seg:?}）{}", e.zh))
                    },
                    text!(
                        "use plain words separated by single `/`, e.g. \"branches\"",
                        "用单个 `/` 分隔的简单单词，例如 \"branches\""
                    ),
                );
            }
        }
        if let Some(cid) = &self.uplink.client_id
            && (cid.is_empty() || cid.len() > 128)
        {
            v.push(
                "uplink.client_id",
                text!("must be 1 to 128 characters", "长度须为 1 到 128 个字符"),
                text!("shorten it or remove it to use the default", "改短，或删掉这一项以使用默认值"),
            );
        }
        v.secret("uplink", &self.uplink.password, &self.base_dir);
        if self.uplink.password.is_set() && self.uplink.username.is_none() {
            v.push(
                "uplink.username",
                text!("a password is set but no username", "设置了密码却没有用户名"),
                text!("add username = \"...\"", "加上 username = \"...\""),
            );
        }
        v.duration("uplink.keep_alive", self.uplink.keep_alive, Duration::from_secs(5), Duration::from_secs(3600));
        if let Some(tls) = &self.uplink.tls {
            v.readable("uplink.tls.ca_file", &self.base_dir.join(&tls.ca_file));
            match (&tls.client_cert_file, &tls.client_key_file) {
                (Some(c), Some(k)) => {
                    v.readable("uplink.tls.client_cert_file", &self.base_dir.join(c));
                    v.readable("uplink.tls.client_key_file", &self.base_dir.join(k));
                }
                (None, None) => {}
                _ => v.push(
                    "uplink.tls",
                    text!(
                        "client_cert_file and client_key_file go together",
                        "client_cert_file 与 client_key_file 必须同时设置"
                    ),
                    text!("set both or neither", "两项都设或都不设"),
                ),
            }
        }

        // Storage and health.
        if self.storage.max_events < 1000 {
            v.push(
                "storage.max_events",
                text!("is below 1000", "小于 1000"),
                text!("allow at least 1000 events (the default is 1000000)", "至少允许 1000 条事件（默认 1000000）"),
            );
        }
        if self.storage.max_bytes < 1024 * 1024 {
            v.push(
                "storage.max_bytes",
                text!("is below 1 MiB", "小于 1 MiB"),
                text!("allow at least \"1MiB\" (the default is \"1GiB\")", "至少允许 \"1MiB\"（默认 \"1GiB\"）"),
            );
        }
        if !(1..=100).contains(&self.health.offline_after) {
            v.push(
                "health.offline_after",
                text!("must be 1 to 100 probes", "须为 1 到 100 次探测"),
                text!("set e.g. 3", "例如设为 3"),
            );
        }
        if !(1..=100).contains(&self.health.online_after) {
            v.push(
                "health.online_after",
                text!("must be 1 to 100 probes", "须为 1 到 100 次探测"),
                text!("set e.g. 2", "例如设为 2"),
            );
        }
        v.frozen_check_every("health.frozen_check_every", self.health.frozen_check_every);
        v.snapshot_max_bytes("health.snapshot_max_bytes", self.health.snapshot_max_bytes);
        v.picture("health.picture", &self.health.picture);
        v.duration(
            "health.coverage_period",
            self.health.coverage_period,
            Duration::from_secs(1),
            Duration::from_secs(86400),
        );

        if self.metrics.enabled && self.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
            v.push(
                "metrics.listen",
                text!("{:?} is not IP:PORT", "{:?} 不是 IP:端口", self.metrics.listen),
                text!(
                    "write e.g. \"127.0.0.1:9464\" (port 0 picks a free port)",
                    "写成例如 \"127.0.0.1:9464\"（端口 0 表示自动选空闲端口）"
                ),
            );
        }

        // Zones.
        let mut zone_ids = HashSet::new();
        for (i, z) in self.zones.iter().enumerate() {
            let f = format!("zone[{i}]");
            v.segment(&format!("{f}.id"), &z.id, id_fix(""));
            v.unique(&mut zone_ids, &format!("{f}.id"), &z.id, text!("zone", "区域"));
            if let Some(r) = &z.min_resolution {
                v.resolution(&format!("{f}.min_resolution"), r);
            }
            if z.coverage_required && z.min_live_cameras == 0 {
                v.push(
                    &format!("{f}.min_live_cameras"),
                    text!("is 0 for a required zone", "必防区域不能为 0"),
                    text!("set at least 1", "至少设为 1"),
                );
            }
        }

        // Devices share one id space: they share the devices/ topic subtree.
        let mut device_ids = HashSet::new();
        let mut camera_ids = HashSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            let f = format!("camera[{i}]");
            v.segment(&format!("{f}.id"), &c.id, id_fix("cam-01"));
            v.unique(&mut device_ids, &format!("{f}.id"), &c.id, text!("device", "设备"));
            camera_ids.insert(c.id.clone());
            if !(c.onvif.starts_with("http://") || c.onvif.starts_with("https://")) {
                v.push(
                    &format!("{f}.onvif"),
                    text!("{:?} is not an http(s) URL", "{:?} 不是 http(s) 地址", c.onvif),
                    text!("write http://HOST/onvif/device_service", "写成 http://主机/onvif/device_service"),
                );
            }
            v.duration(
                &format!("{f}.poll_interval"),
                c.poll_interval,
                Duration::from_secs(1),
                Duration::from_secs(3600),
            );
            v.duration(&format!("{f}.timeout"), c.timeout, Duration::from_millis(100), Duration::from_secs(60));
            if c.timeout >= c.poll_interval {
                v.push(
                    &format!("{f}.timeout"),
                    text!("is not shorter than poll_interval", "不短于 poll_interval"),
                    text!("make the timeout shorter than the interval", "超时须短于轮询间隔"),
                );
            }
            if let Some(n) = c.frozen_check_every {
                v.frozen_check_every(&format!("{f}.frozen_check_every"), n);
            }
            if let Some(n) = c.snapshot_max_bytes {
                v.snapshot_max_bytes(&format!("{f}.snapshot_max_bytes"), n);
            }
            v.picture(&format!("{f}.picture"), &c.picture);
            v.secret(&f, &c.password, &self.base_dir);
            for (j, z) in c.zones.iter().enumerate() {
                if !self.zones.iter().any(|zc| &zc.id == z) {
                    v.push(
                        &format!("{f}.zones[{j}]"),
                        text!("unknown zone {z:?}", "未知区域 {z:?}"),
                        text!("add a [[zone]] with that id or fix the spelling", "添加该 id 的 [[zone]]，或改正拼写"),
                    );
                }
            }
        }
        let mut panel_points: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (i, p) in self.panels.iter().enumerate() {
            let f = format!("panel[{i}]");
            v.segment(&format!("{f}.id"), &p.id, id_fix("alarm-1"));
            v.unique(&mut device_ids, &format!("{f}.id"), &p.id, text!("device", "设备"));
            if p.address.parse::<std::net::SocketAddr>().is_err() && split_host_port(&p.address, 502).is_none() {
                v.push(
                    &format!("{f}.address"),
                    text!("{:?} is not HOST:PORT", "{:?} 不是 主机:端口", p.address),
                    text!("write e.g. \"10.1.2.50:502\"", "写成例如 \"10.1.2.50:502\""),
                );
            }
            v.duration(
                &format!("{f}.poll_interval"),
                p.poll_interval,
                Duration::from_millis(20),
                Duration::from_secs(3600),
            );
            v.duration(&format!("{f}.timeout"), p.timeout, Duration::from_millis(20), Duration::from_secs(60));
            if p.pace > Duration::from_secs(1) {
                v.push(
                    &format!("{f}.pace"),
                    text!("is longer than 1 s", "超过 1 秒"),
                    text!("use a few milliseconds, e.g. \"20ms\"", "用几毫秒即可，例如 \"20ms\""),
                );
            }
            match profiles.points(&p.profile, &self.base_dir) {
                Ok(points) => {
                    panel_points.insert(p.id.clone(), points);
                }
                Err(errs) => {
                    for e in errs {
                        let (en, zh) = (e.render_brief(Lang::En), e.render_brief(Lang::Zh));
                        v.push(
                            &format!("{f}.profile"),
                            Text::new(
                                format!("profile {:?}: {en}", p.profile),
                                format!("配置模板 {:?}：{zh}", p.profile),
                            ),
                            text!(
                                "fix the profile file (see docs/PROFILES.md)",
                                "修改配置模板文件（见 docs/PROFILES.zh-CN.md）"
                            ),
                        );
                    }
                }
            }
        }

        let mut point_ids = HashSet::new();
        let mut check_point = |v: &mut Validator,
                               f: &str,
                               id: &str,
                               panel: &str,
                               point: &str,
                               area: &Option<String>,
                               cams: &[String],
                               want_kind: PanelKind,
                               roles: &[&str]| {
            v.segment(&format!("{f}.id"), id, id_fix(""));
            v.unique(&mut point_ids, &format!("{f}.id"), id, text!("alarm zone or door", "防区或门"));
            match self.panels.iter().find(|p| p.id == panel) {
                None => v.push(
                    &format!("{f}.panel"),
                    text!("unknown panel {panel:?}", "未知的主机 {panel:?}"),
                    text!("use the id of a [[panel]]", "填写某个 [[panel]] 的 id"),
                ),
                Some(p) => {
                    if p.kind != want_kind {
                        let (want, want_zh) = if want_kind == PanelKind::Alarm {
                            ("alarm", "报警主机")
                        } else {
                            ("access", "门禁控制器")
                        };
                        v.push(
                            &format!("{f}.panel"),
                            text!("panel {panel:?} is not an {want} panel", "{panel:?} 不是{want_zh}"),
                            text!("point it at a panel with kind = \"{want}\"", "改为 kind = \"{want}\" 的主机"),
                        );
                    }
                    if let Some(points) = panel_points.get(panel) {
                        match points.iter().find(|(pid, _)| pid == point) {
                            None => v.push(
                                &format!("{f}.point"),
                                text!(
                                    "profile {:?} has no point {point:?}",
                                    "配置模板 {:?} 中没有点位 {point:?}",
                                    p.profile
                                ),
                                text!(
                                    "use a point id from the panel's profile (see docs/PROFILES.md)",
                                    "填写该主机配置模板中的点位 id（见 docs/PROFILES.zh-CN.md）"
                                ),
                            ),
                            Some((_, role)) if !roles.contains(&role.as_str()) => v.push(
                                &format!("{f}.point"),
                                text!(
                                    "point {point:?} has role {role:?}, expected {}",
                                    "点位 {point:?} 的角色是 {role:?}，应为 {}",
                                    roles.join(" / ")
                                ),
                                text!("pick a point of the right role", "选一个角色正确的点位"),
                            ),
                            Some(_) => {}
                        }
                    }
                }
            }
            if let Some(a) = area
                && !self.zones.iter().any(|z| &z.id == a)
            {
                v.push(
                    &format!("{f}.area"),
                    text!("unknown zone {a:?}", "未知区域 {a:?}"),
                    text!("add a [[zone]] with that id or remove area", "添加该 id 的 [[zone]]，或删掉 area"),
                );
            }
            for (j, c) in cams.iter().enumerate() {
                if !camera_ids.contains(c) {
                    v.push(
                        &format!("{f}.linked_cameras[{j}]"),
                        text!("unknown camera {c:?}", "未知摄像机 {c:?}"),
                        text!("use the id of a [[camera]]", "填写某个 [[camera]] 的 id"),
                    );
                }
            }
        };
        for (i, a) in self.alarm_zones.iter().enumerate() {
            let f = format!("alarm_zone[{i}]");
            check_point(&mut v, &f, &a.id, &a.panel, &a.point, &a.area, &a.linked_cameras, PanelKind::Alarm, &["zone"]);
            if let (Some(part), Some(points)) = (&a.partition, panel_points.get(&a.panel))
                && !points.iter().any(|(pid, role)| pid == part && role == "partition")
            {
                v.push(
                    &format!("{f}.partition"),
                    text!(
                        "no partition point {part:?} in the panel's profile",
                        "该主机的配置模板中没有分区点位 {part:?}"
                    ),
                    text!(
                        "use a point of role \"partition\" or remove partition",
                        "填写角色为 \"partition\" 的点位，或删掉 partition"
                    ),
                );
            }
        }
        for (i, d) in self.doors.iter().enumerate() {
            let f = format!("door[{i}]");
            check_point(
                &mut v,
                &f,
                &d.id,
                &d.panel,
                &d.point,
                &d.area,
                &d.linked_cameras,
                PanelKind::Access,
                &["door"],
            );
            v.duration(
                &format!("{f}.held_open_limit"),
                d.held_open_limit,
                Duration::from_secs(1),
                Duration::from_secs(86400),
            );
        }
        v.problems
    }
}

/// `host:port` or `host` → (host, port); an IPv6 address in brackets (`[::1]:1883`, `[::1]`).
pub fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    if s.is_empty() || s.contains('/') {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        return match after {
            "" => Some((host.to_string(), default_port)),
            p => Some((host.to_string(), p.strip_prefix(':')?.parse().ok()?)),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?)),
        Some(_) => None,
        None => Some((s.to_string(), default_port)),
    }
}

#[derive(Default)]
struct Validator {
    problems: Vec<Diagnostic>,
}

impl Validator {
    fn push(&mut self, field: &str, message: Text, fix: Text) {
        self.problems.push(Diagnostic::new(field, message, fix));
    }

    fn segment(&mut self, field: &str, value: &str, fix: Text) {
        if let Err(e) = validate_segment(value) {
            let e = e.text();
            self.push(field, Text::new(format!("{value:?} {}", e.en), format!("{value:?} {}", e.zh)), fix);
        }
    }

    fn unique(&mut self, seen: &mut HashSet<String>, field: &str, value: &str, what: Text) {
        if !seen.insert(value.to_string()) {
            self.push(
                field,
                Text::new(format!("duplicate {} id {value:?}", what.en), format!("{}的 id {value:?} 重复", what.zh)),
                text!("give each one a unique id", "每一项的 id 都不能相同"),
            );
        }
    }

    fn frozen_check_every(&mut self, field: &str, n: u32) {
        if !(1..=360).contains(&n) {
            self.push(
                field,
                text!("must be 1 to 360 probes", "须为 1 到 360 次探测"),
                text!("set e.g. 6 (a snapshot every sixth probe)", "例如设为 6（每 6 次探测取一次快照）"),
            );
        }
    }

    fn picture(&mut self, field: &str, p: &PictureConfig) {
        let mut range = |name: &str, value: Option<f32>, min: f32, max: f32, example: &str| {
            if let Some(x) = value
                && !(x.is_finite() && (min..=max).contains(&x))
            {
                self.push(
                    &format!("{field}.{name}"),
                    text!("{x} is out of range", "{x} 超出范围"),
                    text!(
                        "use a value from {min} to {max}, e.g. {example}",
                        "取值须在 {min} 到 {max} 之间，例如 {example}"
                    ),
                );
            }
        };
        range("dark_below", p.dark_below, 0.0, 255.0, "25");
        range("uniform_below", p.uniform_below, 0.0, 128.0, "8");
        range("defocus_ratio", p.defocus_ratio, 0.0, 1.0, "0.6");
        range("sharpness_baseline", p.sharpness_baseline, 0.001, 100.0, "0.3");
        if let Some(n) = &p.night_hours
            && NightHours::parse(n).is_none()
        {
            self.push(
                &format!("{field}.night_hours"),
                text!("{n:?} is not HH:MM-HH:MM", "{n:?} 不是 时:分-时:分 格式"),
                text!("write e.g. \"19:00-07:00\" (local time)", "写成例如 \"19:00-07:00\"（当地时间）"),
            );
        }
        if let Some(r) = &p.min_resolution {
            self.resolution(&format!("{field}.min_resolution"), r);
        }
    }

    fn resolution(&mut self, field: &str, r: &str) {
        if Resolution::parse(r).is_none() {
            self.push(
                field,
                text!("{r:?} is not WIDTHxHEIGHT", "{r:?} 不是 宽x高 格式"),
                text!(
                    "write e.g. \"1280x720\" (the default) or \"1920x1080\"",
                    "写成例如 \"1280x720\"（默认）或 \"1920x1080\""
                ),
            );
        }
    }

    fn snapshot_max_bytes(&mut self, field: &str, n: u64) {
        if !(64 * 1024..=64 * 1024 * 1024).contains(&n) {
            self.push(
                field,
                text!("{n} bytes is out of range", "{n} 字节超出范围"),
                text!(
                    "use a size from \"64KiB\" to \"64MiB\" (the default is \"4MiB\")",
                    "取值须在 \"64KiB\" 到 \"64MiB\" 之间（默认 \"4MiB\"）"
                ),
            );
        }
    }

    fn duration(&mut self, field: &str, d: Duration, min: Duration, max: Duration) {
        if d < min || d > max {
            self.push(
                field,
                text!("{} is out of range", "{} 超出范围", humantime::format_duration(d)),
                text!(
                    "use a value from {} to {}",
                    "取值须在 {} 到 {} 之间",
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ),
            );
        }
    }

    fn readable(&mut self, field: &str, path: &Path) {
        if let Err(e) = std::fs::File::open(path) {
            self.push(
                field,
                text!("cannot read {}: {e}", "无法读取 {}：{e}", path.display()),
                text!("check the path and that the gateway user may read it", "检查路径，并确认网关用户有读权限"),
            );
        }
    }

    fn secret(&mut self, prefix: &str, s: &Secret, base_dir: &Path) {
        let n =
            [s.password.is_some(), s.password_file.is_some(), s.password_env.is_some()].iter().filter(|b| **b).count();
        if n > 1 {
            self.push(
                &format!("{prefix}.password"),
                text!(
                    "more than one of password, password_file, password_env is set",
                    "password、password_file、password_env 设置了不止一项"
                ),
                text!("keep exactly one", "只保留一项"),
            );
            return;
        }
        if let Some(f) = &s.password_file {
            let path = base_dir.join(f);
            if let Err(e) = std::fs::read_to_string(&path) {
                self.push(
                    &format!("{prefix}.password_file"),
                    text!("cannot read {}: {e}", "无法读取 {}：{e}", path.display()),
                    text!(
                        "create the file or fix the path; it must be readable by the gateway user",
                        "创建该文件或改正路径；网关用户须能读取它"
                    ),
                );
            }
        }
        if let Some(var) = &s.password_env
            && std::env::var_os(var).is_none()
        {
            self.push(
                &format!("{prefix}.password_env"),
                text!("environment variable {var} is not set", "环境变量 {var} 未设置"),
                text!("export {var}=... in the service environment", "在服务的环境中设置 {var}=..."),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_addresses_split() {
        assert_eq!(split_host_port("127.0.0.1:1502", 502), Some(("127.0.0.1".into(), 1502)));
        assert_eq!(split_host_port("panel.local", 502), Some(("panel.local".into(), 502)));
        assert_eq!(split_host_port("[::1]:1502", 502), Some(("::1".into(), 1502)));
        assert_eq!(split_host_port("[fd00::5]", 502), Some(("fd00::5".into(), 502)));
        assert_eq!(split_host_port("[::1", 502), None);
        assert_eq!(split_host_port("[nonsense]:1", 502), None);
        assert_eq!(split_host_port("", 502), None);
    }

    /// The broker is checked by the uplink's own parser: what check-config passes, `run` takes.
    #[test]
    fn the_broker_url_is_checked_by_the_uplinks_parser() {
        let site = |broker: &str, tls: &str| {
            format!("[branch]\nid = \"b01\"\nname = \"B\"\n\n[uplink]\nbroker = \"{broker}\"\n{tls}")
        };
        let tls = "[uplink.tls]\nca_file = \"ca.pem\"\n";
        for ok in ["mqtt://127.0.0.1:1883", "tcp://ho.example", "mqtt://[::1]:1883", "mqtt://[fd00::5]"] {
            let problems = SiteConfig::check_str(&site(ok, ""), &AnyProfile).err().unwrap_or_default();
            assert!(!problems.iter().any(|p| p.field.starts_with("uplink")), "{ok}: {problems:?}");
        }
        for ok in ["mqtts://ho.example", "ssl://ho.example:8884"] {
            let problems = SiteConfig::check_str(&site(ok, tls), &AnyProfile).err().unwrap_or_default();
            // (The CA file is not there: only the URL and the section are in question.)
            assert!(
                !problems.iter().any(|p| p.field == "uplink.broker" || p.field == "uplink.tls"),
                "{ok}: {problems:?}"
            );
            let problems = SiteConfig::check_str(&site(ok, ""), &AnyProfile).expect_err("TLS without [uplink.tls]");
            assert!(problems.iter().any(|p| p.field == "uplink.tls"), "{ok}: {problems:?}");
        }
        for (bad, says) in [
            ("mqtt://::1:1883", "brackets"),
            ("http://ho.example", "not MQTT"),
            ("ho.example:1883", "no scheme"),
            ("mqtt://ho.example:0", "port"),
            ("mqtt://user@ho.example", "more than a host"),
        ] {
            let problems = SiteConfig::check_str(&site(bad, ""), &AnyProfile).expect_err(bad);
            let p =
                problems.iter().find(|p| p.field == "uplink.broker").unwrap_or_else(|| panic!("{bad}: {problems:?}"));
            assert!(p.message.en.contains(says) && !p.message.zh.is_empty(), "{bad}: {p:?}");
            assert_eq!(p.line, Some(6), "{bad}");
        }
    }

    /// Every profile has one point of each role the site file asks for.
    struct AnyProfile;
    impl ProfileResolver for AnyProfile {
        fn points(&self, _: &str, _: &Path) -> Result<Vec<(String, String)>, Vec<Diagnostic>> {
            Ok(vec![("zone.1".into(), "zone".into()), ("door.1".into(), "door".into())])
        }
    }

    #[test]
    fn each_problem_names_its_field_and_the_line_it_is_on() {
        let src = "\
[branch]
id = \"b/01\"
name = \"Lines\"

[uplink]
broker = \"mqtt://127.0.0.1:1883\"

[[camera]]
id = \"cam-1\"
name = \"Cam\"
onvif = \"http://127.0.0.1:1/onvif/device_service\"
zones = [\"vault\", \"attic\"]
picture = { night_hours = \"7pm-7am\" }

[[panel]]
id = \"alarm-1\"
name = \"Panel\"
kind = \"alarm\"
address = \"127.0.0.1:502\"
profile = \"generic-alarm\"

[[alarm_zone]]
id = \"z1\"
name = \"Contact\"
panel = \"alarm-1\"
point = \"zone.1\"
linked_cameras = [\"cam-9\"]
";
        let problems = SiteConfig::check_str(src, &AnyProfile).expect_err("refused");
        let found: Vec<(&str, Option<usize>)> = problems.iter().map(|p| (p.field.as_str(), p.line)).collect();
        assert_eq!(
            found,
            vec![
                ("branch.id", Some(2)),
                ("camera[0].picture.night_hours", Some(13)),
                ("camera[0].zones[0]", Some(12)),
                ("camera[0].zones[1]", Some(12)),
                ("alarm_zone[0].linked_cameras[0]", Some(27)),
            ]
        );
        let zone = &problems[2];
        assert_eq!(zone.message.en, "unknown zone \"vault\"");
        assert!(zone.fix.en.contains("[[zone]]") && zone.fix.zh.contains("[[zone]]"), "{zone:?}");
        assert_eq!(zone.file, None, "a text checked on its own names no file");
        assert!(
            zone.render_item(Lang::En).starts_with("camera[0].zones[0]: line 12: unknown zone \"vault\" (fix: "),
            "{}",
            zone.render_item(Lang::En)
        );
    }
}
