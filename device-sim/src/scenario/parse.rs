//! Reading and checking scenario files. Every problem is collected (not just the first), and
//! each names the line of its entry (from the TOML parser's spans), the entry, the field and
//! the fix — an
//! installer fixing a 60-camera file should not have to run the checker 20 times.
//!
//! Why not plain `#[derive(Deserialize)]`: serde stops at the first error and its messages
//! name neither the entry nor the fix. Fields are read one by one through [`Entry`] instead;
//! it also reports unknown fields, so a typo is never silently ignored.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use i18n::{Text, text};
use protocols::modbus::{Point, Profile, Role};
use site::Locator;
use toml::Value;

use super::action::{self, Action, Invalid, PointSet};
use super::{
    AlarmZoneDef, BranchDef, CameraDef, DoorDef, GatewayDef, LinkDef, MAX_DEVICES, MAX_STEPS, PanelDef, Problem,
    Scenario, ScenarioError, Step, ZoneDef,
};
use crate::camera::{AuthMode, CameraEventKind, CameraFault};
use crate::panel::{PanelFaultSim, PanelKindSim};

const SECTIONS: [&str; 10] =
    ["scenario", "branch", "gateway", "link", "zone", "camera", "panel", "alarm_zone", "door", "timeline"];
/// Largest `at`: a week is longer than any commissioning session.
const MAX_AT: Duration = Duration::from_secs(7 * 86400);
/// Shortest `every`: below it the timeline is a busy loop, not a scenario.
const MIN_EVERY: Duration = Duration::from_millis(10);
/// Largest `count` on a camera or panel entry.
const MAX_COUNT: i64 = 1000;

/// Reads the fields of one table, recording problems against the entry.
struct Entry<'a> {
    table: &'a toml::Table,
    line: Option<usize>,
    name: String,
    seen: Vec<&'static str>,
    problems: Vec<Problem>,
}

impl<'a> Entry<'a> {
    fn new(table: &'a toml::Table, line: Option<usize>, name: String) -> Entry<'a> {
        Entry { table, line, name, seen: Vec::new(), problems: Vec::new() }
    }

    fn problem(&mut self, field: &str, message: Text, fix: Text) {
        self.problems.push(Problem::new(field, message, fix).with_line(self.line).with_entry(self.name.clone()));
    }

    fn invalid(&mut self, field: &str, inv: Invalid) {
        self.problem(field, inv.message, inv.fix);
    }

    fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.seen.push(key);
        self.table.get(key)
    }

    fn string(&mut self, key: &'static str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                let (en, zh) = type_names(other);
                self.problem(
                    key,
                    text!("expected a string, found {en}", "应为字符串，实际是{zh}"),
                    text!("write {key} = \"…\"", "写成 {key} = \"…\""),
                );
                None
            }
        }
    }

    fn required_string(&mut self, key: &'static str, example: &str) -> Option<String> {
        if !self.has(key) {
            self.seen.push(key);
            self.problem(
                key,
                text!("is required", "必须填写"),
                text!("add {key} = {example}", "加上 {key} = {example}"),
            );
            return None;
        }
        self.string(key)
    }

    fn boolean(&mut self, key: &'static str) -> Option<bool> {
        match self.get(key)? {
            Value::Boolean(b) => Some(*b),
            other => {
                let (en, zh) = type_names(other);
                self.problem(
                    key,
                    text!("expected true or false, found {en}", "应为 true 或 false，实际是{zh}"),
                    text!("write {key} = true", "写成 {key} = true"),
                );
                None
            }
        }
    }

    fn int(&mut self, key: &'static str, min: i64, max: i64) -> Option<i64> {
        match self.get(key)? {
            Value::Integer(i) if (min..=max).contains(i) => Some(*i),
            Value::Integer(i) => {
                self.problem(
                    key,
                    text!("{i} is out of range", "{i} 超出范围"),
                    text!("give a whole number from {min} to {max}", "填 {min} 到 {max} 之间的整数"),
                );
                None
            }
            other => {
                let (en, zh) = type_names(other);
                self.problem(
                    key,
                    text!("expected a whole number, found {en}", "应为整数，实际是{zh}"),
                    text!("write {key} = {min} (no quotes)", "写成 {key} = {min}（不加引号）"),
                );
                None
            }
        }
    }

    fn number(&mut self, key: &'static str) -> Option<f64> {
        match self.get(key)? {
            Value::Integer(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            other => {
                let (en, zh) = type_names(other);
                self.problem(
                    key,
                    text!("expected a number, found {en}", "应为数字，实际是{zh}"),
                    text!("write {key} = 1", "写成 {key} = 1"),
                );
                None
            }
        }
    }

    fn duration(&mut self, key: &'static str) -> Option<Duration> {
        let s = match self.get(key)? {
            Value::String(s) => s.clone(),
            other => {
                let (en, zh) = type_names(other);
                self.problem(
                    key,
                    text!("expected a duration string, found {en}", "应为时长字符串，实际是{zh}"),
                    text!(
                        "write {key} = \"10s\" (or \"250ms\", \"2m\", \"1m 30s\")",
                        "写成 {key} = \"10s\"（或 \"250ms\"、\"2m\"、\"1m 30s\"）"
                    ),
                );
                return None;
            }
        };
        match humantime::parse_duration(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(
                    key,
                    text!("{s:?} is not a duration: {e}", "{s:?} 不是时长：{e}"),
                    text!("write e.g. {key} = \"10s\"", "例如写成 {key} = \"10s\""),
                );
                None
            }
        }
    }

    fn duration_in(&mut self, key: &'static str, min: Duration, max: Duration) -> Option<Duration> {
        let d = self.duration(key)?;
        if d < min || d > max {
            let (d, min, max) =
                (humantime::format_duration(d), humantime::format_duration(min), humantime::format_duration(max));
            self.problem(
                key,
                text!("{d} is out of range", "{d} 超出范围"),
                text!("give a duration from {min} to {max}", "填 {min} 到 {max} 之间的时长"),
            );
            return None;
        }
        Some(d)
    }

    fn strings(&mut self, key: &'static str) -> Option<Vec<String>> {
        let v = self.get(key)?;
        let bad = |e: &mut Entry<'_>| {
            e.problem(
                key,
                text!("expected a list of strings", "应为字符串列表"),
                text!("write {key} = [\"a\", \"b\"]", "写成 {key} = [\"a\", \"b\"]"),
            );
            None
        };
        let Value::Array(items) = v else { return bad(self) };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::String(s) => out.push(s.clone()),
                _ => return bad(self),
            }
        }
        Some(out)
    }

    /// An id that becomes an MQTT topic segment in the gateway.
    fn id(&mut self, key: &'static str, example: &str) -> Option<String> {
        let id = self.required_string(key, example)?;
        if let Err(e) = protocols::ids::validate_segment(&id) {
            self.problem(key, id_problem(&id, &e), id_fix());
            return None;
        }
        Some(id)
    }

    /// Reports every field that was never asked for.
    fn finish(mut self, out: &mut Vec<Problem>) {
        let unknown: Vec<String> = self.table.keys().filter(|k| !self.seen.contains(&k.as_str())).cloned().collect();
        if !unknown.is_empty() {
            let mut known: Vec<&str> = self.seen.clone();
            known.sort_unstable();
            known.dedup();
            let known = known.join(", ");
            for k in unknown {
                self.problem(
                    &k,
                    text!("unknown field", "未知字段"),
                    text!("remove it; this entry knows: {known}", "删掉它；这一项可用的字段：{known}"),
                );
            }
        }
        out.append(&mut self.problems);
    }
}

/// A TOML value's type, in English and in Chinese.
fn type_names(v: &Value) -> (&'static str, &'static str) {
    match v {
        Value::String(_) => ("string", "字符串"),
        Value::Integer(_) => ("integer", "整数"),
        Value::Float(_) => ("float", "小数"),
        Value::Boolean(_) => ("boolean", "布尔值"),
        Value::Datetime(_) => ("datetime", "日期时间"),
        Value::Array(_) => ("array", "数组"),
        Value::Table(_) => ("table", "表"),
    }
}

/// What is wrong with an id (`"cam 1" contains whitespace…`), in both languages.
fn id_problem(id: &str, e: &protocols::ids::IdError) -> Text {
    let t = e.text();
    Text::new(format!("{id:?} {}", t.en), format!("{id:?} {}", t.zh))
}

fn id_fix() -> Text {
    text!("use 1–64 letters, digits, '-', '_' or '.'", "只用 1–64 个字母、数字、'-'、'_' 或 '.'")
}

struct Parser<'t> {
    /// Where each entry starts, from the parser's spans.
    lines: Locator<'t>,
    problems: Vec<Problem>,
}

impl Parser<'_> {
    fn top(&mut self, field: &str, message: Text, fix: Text) {
        self.problems.push(Problem::new(field, message, fix).with_entry("(top level)"));
    }

    /// The tables of `[[name]]`, each with the line it starts on.
    fn array<'d>(&mut self, doc: &'d toml::Table, name: &str) -> Vec<(&'d toml::Table, Option<usize>)> {
        let Some(v) = doc.get(name) else { return Vec::new() };
        match v {
            Value::Array(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::Table(t) => out.push((t, self.lines.line(&format!("{name}[{i}]")))),
                        other => {
                            let (n, (en, zh)) = (i + 1, type_names(other));
                            self.top(
                                name,
                                text!("item {n} is {en}, not a table", "第 {n} 项是{zh}，不是表"),
                                text!("write each entry as a [[{name}]] table", "每一项写成一个 [[{name}]] 表"),
                            )
                        }
                    }
                }
                out
            }
            _ => {
                self.top(
                    name,
                    text!("must be a list of tables", "必须是表的列表"),
                    text!("write [[{name}]] (double brackets) for each entry", "每一项写一个 [[{name}]]（双方括号）"),
                );
                Vec::new()
            }
        }
    }

    fn table<'d>(&mut self, doc: &'d toml::Table, name: &str) -> Option<(&'d toml::Table, Option<usize>)> {
        match doc.get(name)? {
            Value::Table(t) => Some((t, self.lines.line(name))),
            _ => {
                self.top(
                    name,
                    text!("must be a table", "必须是表"),
                    text!("write a [{name}] section", "写成一个 [{name}] 节"),
                );
                None
            }
        }
    }
}

pub(super) fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
    let doc: toml::Table = toml::from_str(text).map_err(|e| ScenarioError::Syntax {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let mut p = Parser { lines: Locator::new(text), problems: Vec::new() };
    for key in doc.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            let singular = key.strip_suffix('s').unwrap_or(key);
            let fix = if SECTIONS.contains(&singular) {
                text!(
                    "the section is called {singular:?} (singular): write [[{singular}]]",
                    "这一节叫 {singular:?}（单数）：写成 [[{singular}]]"
                )
            } else {
                let sections = SECTIONS.join(", ");
                text!("remove it; sections are: {sections}", "删掉它；可用的节：{sections}")
            };
            p.top(key, text!("unknown section", "未知的节"), fix);
        }
    }

    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "scenario".into());
    let (name, description, duration, base_port) = scenario_section(&mut p, &doc, &stem);
    let branch = branch_section(&mut p, &doc);
    let gateway = gateway_section(&mut p, &doc);
    let link = link_section(&mut p, &doc);
    let zones = zones(&mut p, &doc);
    let zone_ids: HashSet<String> = zones.iter().map(|z| z.id.clone()).collect();
    let cameras = cameras(&mut p, &doc, &zone_ids, &gateway);
    let panels = panels(&mut p, &doc);

    let mut device_ids: HashMap<String, &str> = HashMap::new();
    for c in &cameras {
        device_ids.insert(c.id.clone(), "camera");
    }
    for pn in &panels {
        if let Some(kind) = device_ids.insert(pn.id.clone(), "panel") {
            let (id, kind_zh) = (&pn.id, if kind == "camera" { "摄像机" } else { "报警主机或门禁控制器" });
            p.problems.push(
                Problem::new(
                    "id",
                    text!("id {id:?} is already used by a {kind}", "id {id:?} 已被一台{kind_zh}使用"),
                    text!(
                        "give every camera and panel its own id (they share one id space)",
                        "每台摄像机、报警主机和门禁控制器的 id 都要不同（它们共用一套 id）"
                    ),
                )
                .with_entry(format!("panel {}", pn.id)),
            );
        }
    }
    if cameras.len() + panels.len() > MAX_DEVICES {
        let n = cameras.len() + panels.len();
        p.top(
            "camera",
            text!(
                "{n} devices; the simulator runs at most {MAX_DEVICES} per process",
                "共 {n} 台设备；模拟器每个进程最多运行 {MAX_DEVICES} 台"
            ),
            text!("split the branch over several scenarios", "把网点拆到几个场景文件里"),
        );
    }
    let camera_ids: HashSet<&str> = cameras.iter().map(|c| c.id.as_str()).collect();
    let panel_by_id: HashMap<&str, &PanelDef> = panels.iter().map(|pn| (pn.id.as_str(), pn)).collect();
    let refs = Refs { zones: &zone_ids, cameras: &camera_ids, panels: &panel_by_id };
    let alarm_zones = alarm_zones(&mut p, &doc, &refs);
    let doors = doors(&mut p, &doc, &refs);
    let mut linkage_ids = HashSet::new();
    for id in alarm_zones.iter().map(|a| &a.id).chain(doors.iter().map(|d| &d.id)) {
        if !linkage_ids.insert(id.clone()) {
            p.problems.push(
                Problem::new(
                    "id",
                    text!("id {id:?} is used more than once", "id {id:?} 用了不止一次"),
                    text!(
                        "give every alarm zone and door its own id (they share one id space)",
                        "每个防区和门的 id 都要不同（它们共用一套 id）"
                    ),
                )
                .with_entry(format!("alarm zone / door {id}")),
            );
        }
    }
    let timeline = timeline(&mut p, &doc, &refs, &alarm_zones, &doors, link.is_some());

    if !p.problems.is_empty() {
        return Err(ScenarioError::invalid(path, p.problems));
    }
    let scenario = Scenario {
        source: path.to_path_buf(),
        name,
        description,
        duration,
        base_port,
        branch,
        gateway,
        link,
        zones,
        cameras,
        panels,
        alarm_zones,
        doors,
        timeline,
    };
    // The ports the file asks for must fit and not collide (`--base-port` is checked at run).
    if let Err(errors) = super::ports::plan(&scenario, None, 0) {
        let problems = errors
            .into_iter()
            .map(|e| {
                let (line, entry) = if e.field == "base_port" {
                    (p.lines.line("scenario"), "[scenario]")
                } else {
                    (None, "(top level)")
                };
                Problem::new(e.field, e.message, e.fix).with_line(line).with_entry(entry)
            })
            .collect();
        return Err(ScenarioError::invalid(path, problems));
    }
    Ok(scenario)
}

type ScenarioSection = (String, String, Option<Duration>, Option<u16>);

fn scenario_section(p: &mut Parser<'_>, doc: &toml::Table, stem: &str) -> ScenarioSection {
    let Some((t, line)) = p.table(doc, "scenario") else { return (stem.to_string(), String::new(), None, None) };
    let mut e = Entry::new(t, line, "[scenario]".into());
    let name = e.string("name").unwrap_or_else(|| stem.to_string());
    let description = e.string("description").unwrap_or_default();
    let duration = e.duration_in("duration", Duration::ZERO, MAX_AT);
    let base_port = e.int("base_port", 1, i64::from(u16::MAX)).map(|v| v as u16);
    e.finish(&mut p.problems);
    (name, description, duration, base_port)
}

/// An entry's `port`: a camera's (which also takes the next port for RTSP, so `per` is 2) or
/// a panel's (`per` 1); with `count`, copy k listens on port + per × k.
fn port_of(e: &mut Entry<'_>, per: i64) -> Option<i64> {
    e.int("port", 1, i64::from(u16::MAX) - (per - 1))
}

fn check_port_room(e: &mut Entry<'_>, port: Option<i64>, per: i64, count: i64) {
    if let Some(p) = port {
        let last = p + per * count - 1;
        if last > i64::from(u16::MAX) {
            e.problem(
                "port",
                text!(
                    "{count} copies from port {p} need ports up to {last}, past 65535",
                    "从端口 {p} 起的 {count} 份需要用到端口 {last}，超过了 65535"
                ),
                text!("give a lower port", "改用更小的端口"),
            );
        }
    }
}

fn branch_section(p: &mut Parser<'_>, doc: &toml::Table) -> BranchDef {
    let fallback = BranchDef { id: "sim-branch".into(), name: "Simulated branch".into() };
    let Some((t, line)) = p.table(doc, "branch") else {
        p.top(
            "branch",
            text!("is required", "必须填写"),
            text!(
                "add [branch] with id = \"sh-pudong-0101\" and name = \"…\"",
                "加上 [branch]，并写 id = \"sh-pudong-0101\" 和 name = \"…\""
            ),
        );
        return fallback;
    };
    let mut e = Entry::new(t, line, "[branch]".into());
    let id = e.id("id", "\"sh-pudong-0101\"");
    let name = e.string("name");
    e.finish(&mut p.problems);
    match id {
        Some(id) => BranchDef { name: name.unwrap_or_else(|| id.clone()), id },
        None => fallback,
    }
}

fn gateway_section(p: &mut Parser<'_>, doc: &toml::Table) -> GatewayDef {
    let mut g = GatewayDef::default();
    let Some((t, line)) = p.table(doc, "gateway") else { return g };
    let mut e = Entry::new(t, line, "[gateway]".into());
    if let Some(b) = e.string("broker") {
        // The gateway's own broker URL parser: an emitted site file never carries a broker the
        // gateway would refuse.
        match mqtt_setup::BrokerUrl::parse(&b) {
            Ok(_) => g.broker = b,
            Err(err) => e.problem(
                "broker",
                err.text(),
                text!(
                    "write broker = \"mqtt://HOST[:PORT]\" or \"mqtts://HOST[:PORT]\"",
                    "写成 broker = \"mqtt://主机[:端口]\" 或 \"mqtts://主机[:端口]\""
                ),
            ),
        }
    }
    g.client_id = e.string("client_id");
    g.topic_prefix = e.string("topic_prefix");
    g.keep_alive = e.duration_in("keep_alive", Duration::from_secs(5), Duration::from_secs(3600));
    g.storage_path = e.string("storage");
    g.offline_after = e.int("offline_after", 1, 100).map(|v| v as u32);
    g.online_after = e.int("online_after", 1, 100).map(|v| v as u32);
    g.coverage_period = e.duration_in("coverage_period", Duration::from_secs(1), Duration::from_secs(86400));
    g.camera_poll_interval = e.duration_in("camera_poll_interval", Duration::from_secs(1), Duration::from_secs(3600));
    g.camera_timeout = e.duration_in("camera_timeout", Duration::from_millis(10), Duration::from_secs(3600));
    g.panel_poll_interval = e.duration_in("panel_poll_interval", Duration::from_millis(20), Duration::from_secs(3600));
    g.panel_timeout = e.duration_in("panel_timeout", Duration::from_millis(10), Duration::from_secs(3600));
    if let Some(m) = e.string("metrics_listen") {
        match m.parse::<SocketAddr>() {
            Ok(a) => g.metrics_listen = Some(a),
            Err(_) => e.problem(
                "metrics_listen",
                text!("{m:?} is not IP:PORT", "{m:?} 不是 IP:端口"),
                text!(
                    "write metrics_listen = \"127.0.0.1:9464\" (port 0: a free port)",
                    "写成 metrics_listen = \"127.0.0.1:9464\"（端口 0 表示任选空闲端口）"
                ),
            ),
        }
    }
    if camera_timeout(&g) >= camera_interval(&g, None) {
        e.problem(
            "camera_timeout",
            text!("is not shorter than camera_poll_interval", "不短于 camera_poll_interval"),
            text!(
                "make the timeout shorter than the poll interval (gateway defaults: 2s and 10s)",
                "超时须短于轮询间隔（网关默认分别为 2s 和 10s）"
            ),
        );
    }
    e.finish(&mut p.problems);
    g
}

fn camera_interval(g: &GatewayDef, own: Option<Duration>) -> Duration {
    own.or(g.camera_poll_interval).unwrap_or(Duration::from_secs(10))
}

fn camera_timeout(g: &GatewayDef) -> Duration {
    g.camera_timeout.unwrap_or(Duration::from_secs(2))
}

fn link_section(p: &mut Parser<'_>, doc: &toml::Table) -> Option<LinkDef> {
    let (t, line) = p.table(doc, "link")?;
    let mut e = Entry::new(t, line, "[link]".into());
    let listen = match e.string("listen") {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        Some(s) => match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                e.problem(
                    "listen",
                    text!("{s:?} is not an address", "{s:?} 不是地址"),
                    text!(
                        "write listen = \"127.0.0.1:18830\" (port 0: any free port)",
                        "写成 listen = \"127.0.0.1:18830\"（端口 0 表示任选空闲端口）"
                    ),
                );
                None
            }
        },
    };
    e.finish(&mut p.problems);
    listen.map(|listen| LinkDef { listen })
}

fn zones(p: &mut Parser<'_>, doc: &toml::Table) -> Vec<ZoneDef> {
    let mut out: Vec<ZoneDef> = Vec::new();
    for (i, (t, line)) in p.array(doc, "zone").into_iter().enumerate() {
        let mut e = Entry::new(t, line, format!("zone #{}", i + 1));
        let id = e.id("id", "\"vault\"");
        let name = e.string("name");
        let coverage_required = e.boolean("coverage_required").unwrap_or(false);
        let min_live_cameras = e.int("min_live_cameras", 1, 1000).map(|v| v as u32);
        if let Some(id) = id {
            e.name = format!("zone #{} ({id})", i + 1);
            if out.iter().any(|z| z.id == id) {
                e.problem(
                    "id",
                    text!("zone {id:?} is defined twice", "区域 {id:?} 定义了两次"),
                    text!("give every zone its own id", "每个区域的 id 都要不同"),
                );
            }
            out.push(ZoneDef { name: name.unwrap_or_else(|| id.clone()), id, coverage_required, min_live_cameras });
        }
        e.finish(&mut p.problems);
    }
    out
}

/// `count`/`first` expansion of `{n}` (or zero-padded `{n:02}`) in ids and names.
fn expand(template: &str, n: i64) -> String {
    let mut s = template.replace("{n}", &n.to_string());
    for width in 2..=6 {
        s = s.replace(&format!("{{n:0{width}}}"), &format!("{n:0width$}", width = width as usize));
    }
    s
}

fn repeat_count(e: &mut Entry<'_>, id_template: &str) -> (i64, i64) {
    let count = e.int("count", 1, MAX_COUNT).unwrap_or(1);
    let first = e.int("first", 0, 1_000_000).unwrap_or(1);
    if count > 1 && !id_template.contains("{n") {
        e.problem(
            "count",
            text!("repeats an entry whose id has no {{n}}", "重复了一项，但它的 id 里没有 {{n}}"),
            text!(
                "put {{n}} (or {{n:02}}) in the id, e.g. id = \"cam-{{n:02}}\"",
                "在 id 里写上 {{n}}（或 {{n:02}}），例如 id = \"cam-{{n:02}}\""
            ),
        );
        return (1, first);
    }
    (count, first)
}

fn cameras(p: &mut Parser<'_>, doc: &toml::Table, zones: &HashSet<String>, g: &GatewayDef) -> Vec<CameraDef> {
    let mut out: Vec<CameraDef> = Vec::new();
    let mut seen = HashSet::new();
    for (i, (t, line)) in p.array(doc, "camera").into_iter().enumerate() {
        let mut e = Entry::new(t, line, format!("camera #{}", i + 1));
        let id = e.required_string("id", "\"cam-01\" (or \"cam-{n:02}\" with count)");
        if let Some(id) = id.as_deref().filter(|id| !id.contains("{n")) {
            e.name = format!("camera #{} ({id})", i + 1);
        }
        let name = e.string("name");
        let cam_zones = e.strings("zones").unwrap_or_default();
        for z in &cam_zones {
            if !zones.contains(z) {
                e.problem(
                    "zones",
                    text!("no [[zone]] has id {z:?}", "没有 id 为 {z:?} 的 [[zone]]"),
                    text!("add the zone, or fix the id", "加上这个区域，或改正 id"),
                );
            }
        }
        let auth = match e.string("auth").as_deref() {
            None | Some("username-token") => AuthMode::UsernameToken,
            Some("digest") => AuthMode::Digest,
            Some(other) => {
                e.problem(
                    "auth",
                    text!("unknown auth mode {other:?}", "未知的认证方式 {other:?}"),
                    text!("use \"username-token\" or \"digest\"", "使用 \"username-token\" 或 \"digest\""),
                );
                AuthMode::UsernameToken
            }
        };
        let username = e.string("username").unwrap_or_else(|| "admin".into());
        let password = e.string("password").unwrap_or_else(|| "admin".into());
        let faults = camera_faults(&mut e);
        let events: Vec<CameraEventKind> = e
            .strings("events")
            .unwrap_or_default()
            .iter()
            .filter_map(|n| action::camera_event(n).map_err(|inv| e.invalid("events", inv)).ok())
            .collect();
        let maintenance = e.boolean("maintenance").unwrap_or(false);
        let poll_interval = e.duration_in("poll_interval", Duration::from_secs(1), Duration::from_secs(3600));
        let port = port_of(&mut e, 2);
        if poll_interval.is_some() && camera_timeout(g) >= camera_interval(g, poll_interval) {
            e.problem(
                "poll_interval",
                text!("is not longer than [gateway] camera_timeout", "不长于 [gateway] camera_timeout"),
                text!("give a longer poll interval", "把轮询间隔设长一些"),
            );
        }
        let Some(id_t) = id else {
            e.finish(&mut p.problems);
            continue;
        };
        let (count, first) = repeat_count(&mut e, &id_t);
        check_port_room(&mut e, port, 2, count);
        for n in first..first + count {
            let id = if count > 1 || id_t.contains("{n") { expand(&id_t, n) } else { id_t.clone() };
            let port = port.map(|p| (p + 2 * (n - first)).clamp(0, i64::from(u16::MAX)) as u16);
            if let Err(err) = protocols::ids::validate_segment(&id) {
                e.problem("id", id_problem(&id, &err), id_fix());
                break;
            }
            if !seen.insert(id.clone()) {
                e.problem(
                    "id",
                    text!("camera {id:?} is defined twice", "摄像机 {id:?} 定义了两次"),
                    text!("give every camera its own id", "每台摄像机的 id 都要不同"),
                );
                continue;
            }
            let name = name.as_deref().map(|t| expand(t, n)).unwrap_or_else(|| id.clone());
            out.push(CameraDef {
                id,
                name,
                zones: cam_zones.clone(),
                auth,
                username: username.clone(),
                password: password.clone(),
                faults: faults.clone(),
                events: Vec::clone(&events),
                maintenance,
                poll_interval,
                port,
            });
        }
        e.finish(&mut p.problems);
    }
    out
}

/// `faults = ["frozen", { fault = "slow", delay = "2s" }]` on a camera.
fn camera_faults(e: &mut Entry<'_>) -> Vec<CameraFault> {
    let mut out = Vec::new();
    for (name, t) in fault_list(e) {
        let delay = t.and_then(|t| t.get("delay")).and_then(|v| v.as_str()).map(humantime::parse_duration);
        let seconds = t.and_then(|t| t.get("seconds")).and_then(Value::as_integer);
        let delay = match delay.transpose() {
            Ok(d) => d,
            Err(err) => {
                e.problem(
                    "faults",
                    text!("delay of {name}: {err}", "{name} 的延迟：{err}"),
                    text!("write delay = \"1500ms\"", "写成 delay = \"1500ms\""),
                );
                continue;
            }
        };
        match action::camera_fault(&name, true, delay, seconds, ("delay", "seconds")) {
            Ok(f) => out.push(f),
            Err(inv) => e.invalid("faults", inv),
        }
    }
    out
}

fn panel_faults(e: &mut Entry<'_>) -> Vec<PanelFaultSim> {
    let mut out = Vec::new();
    for (name, t) in fault_list(e) {
        let delay = t.and_then(|t| t.get("delay")).and_then(|v| v.as_str()).map(humantime::parse_duration);
        let code = t.and_then(|t| t.get("code")).and_then(Value::as_integer);
        let delay = match delay.transpose() {
            Ok(d) => d,
            Err(err) => {
                e.problem(
                    "faults",
                    text!("delay of {name}: {err}", "{name} 的延迟：{err}"),
                    text!("write delay = \"1500ms\"", "写成 delay = \"1500ms\""),
                );
                continue;
            }
        };
        match action::panel_fault(&name, true, delay, code, "delay") {
            Ok(f) => out.push(f),
            Err(inv) => e.invalid("faults", inv),
        }
    }
    out
}

/// The items of a `faults` list: names, or tables with `fault` and parameters.
fn fault_list<'a>(e: &mut Entry<'a>) -> Vec<(String, Option<&'a toml::Table>)> {
    let Some(v) = e.get("faults") else { return Vec::new() };
    let fix = || {
        text!(
            "write faults = [\"frozen\", {{ fault = \"slow\", delay = \"2s\" }}]",
            "写成 faults = [\"frozen\", {{ fault = \"slow\", delay = \"2s\" }}]"
        )
    };
    let Value::Array(items) = v else {
        e.problem("faults", text!("expected a list", "应为列表"), fix());
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::String(s) => out.push((s.clone(), None)),
            Value::Table(t) => {
                match t.get("fault").and_then(Value::as_str) {
                    Some(name) => out.push((name.to_string(), Some(t))),
                    None => e.problem("faults", text!("a fault table without `fault`", "故障表里缺少 `fault`"), fix()),
                }
                for k in t.keys() {
                    if !["fault", "delay", "seconds", "code"].contains(&k.as_str()) {
                        e.problem(
                            "faults",
                            text!("unknown key {k:?} in a fault", "故障里有未知的键 {k:?}"),
                            text!("use fault, delay, seconds or code", "只用 fault、delay、seconds 或 code"),
                        );
                    }
                }
            }
            other => {
                let (en, zh) = type_names(other);
                e.problem("faults", text!("an item is {en}", "有一项是{zh}"), fix())
            }
        }
    }
    out
}

fn panels(p: &mut Parser<'_>, doc: &toml::Table) -> Vec<PanelDef> {
    let mut out: Vec<PanelDef> = Vec::new();
    let mut seen = HashSet::new();
    for (i, (t, line)) in p.array(doc, "panel").into_iter().enumerate() {
        let mut e = Entry::new(t, line, format!("panel #{}", i + 1));
        let id = e.required_string("id", "\"alarm-1\"");
        if let Some(id) = id.as_deref().filter(|id| !id.contains("{n")) {
            e.name = format!("panel #{} ({id})", i + 1);
        }
        let name = e.string("name");
        let kind = match e.required_string("kind", "\"alarm\"").as_deref() {
            Some("alarm") => Some(PanelKindSim::Alarm),
            Some("access") => Some(PanelKindSim::Access),
            Some(other) => {
                e.problem(
                    "kind",
                    text!("unknown panel kind {other:?}", "未知的主机类型 {other:?}"),
                    text!("use \"alarm\" or \"access\"", "使用 \"alarm\"（报警主机）或 \"access\"（门禁控制器）"),
                );
                None
            }
            None => None,
        };
        let profile_name = e.string("profile").or_else(|| kind.map(|k| k.profile_name().to_string()));
        let profile = profile_name.as_deref().and_then(|n| match protocols::modbus::builtin(n) {
            Some(prof) => Some(Arc::new(prof)),
            None => {
                let names = protocols::modbus::BUILTIN_NAMES.join(", ");
                e.problem(
                    "profile",
                    text!("{n:?} is not a built-in profile", "{n:?} 不是内置的寄存器表"),
                    text!(
                        "use one of: {names} (the simulator serves built-in layouts only)",
                        "使用以下之一：{names}（模拟器只提供内置的寄存器布局）"
                    ),
                );
                None
            }
        });
        let unit_id = e.int("unit_id", 1, 255).map(|v| v as u8).unwrap_or(1);
        let faults = panel_faults(&mut e);
        let heartbeat = e.boolean("heartbeat").unwrap_or(true);
        let poll_interval = e.duration_in("poll_interval", Duration::from_millis(20), Duration::from_secs(3600));
        let port = port_of(&mut e, 1);
        let mut points = Vec::new();
        if let Some(v) = e.get("points") {
            match v {
                Value::Table(pt) => {
                    for (point, val) in pt {
                        let set = match val {
                            Value::String(s) => PointSet::State(s.clone()),
                            Value::Integer(n) => PointSet::Raw(*n as f64),
                            Value::Float(f) => PointSet::Raw(*f),
                            _ => {
                                e.problem(
                                    "points",
                                    text!("{point}: expected a state or a number", "{point}：应为状态名或数字"),
                                    text!("write \"partition.1\" = \"armed\"", "写成 \"partition.1\" = \"armed\""),
                                );
                                continue;
                            }
                        };
                        if let Some(prof) = &profile
                            && let Err(inv) = check_point(prof, point, &set, None)
                        {
                            e.invalid("points", inv);
                        }
                        points.push((point.clone(), set));
                    }
                }
                _ => e.problem(
                    "points",
                    text!("expected a table", "应为表"),
                    text!(
                        "write points = {{ \"partition.1\" = \"armed\" }}",
                        "写成 points = {{ \"partition.1\" = \"armed\" }}"
                    ),
                ),
            }
        }
        let (Some(id_t), Some(kind), Some(profile), Some(profile_name)) = (id, kind, profile, profile_name) else {
            e.finish(&mut p.problems);
            continue;
        };
        let (count, first) = repeat_count(&mut e, &id_t);
        check_port_room(&mut e, port, 1, count);
        for n in first..first + count {
            let id = if count > 1 || id_t.contains("{n") { expand(&id_t, n) } else { id_t.clone() };
            let port = port.map(|p| (p + (n - first)).clamp(0, i64::from(u16::MAX)) as u16);
            if let Err(err) = protocols::ids::validate_segment(&id) {
                e.problem("id", id_problem(&id, &err), id_fix());
                break;
            }
            if !seen.insert(id.clone()) {
                e.problem(
                    "id",
                    text!("panel {id:?} is defined twice", "主机 {id:?} 定义了两次"),
                    text!("give every panel its own id", "每台报警主机和门禁控制器的 id 都要不同"),
                );
                continue;
            }
            out.push(PanelDef {
                name: name.as_deref().map(|t| expand(t, n)).unwrap_or_else(|| id.clone()),
                id,
                kind,
                profile_name: profile_name.clone(),
                profile: profile.clone(),
                unit_id,
                faults: faults.clone(),
                heartbeat,
                points: points.clone(),
                poll_interval,
                port,
            });
        }
        e.finish(&mut p.problems);
    }
    out
}

/// Whether `set` can be written to `point` of `profile` (and, with `role`, whether the point
/// has that role).
fn check_point(profile: &Profile, point: &str, set: &PointSet, role: Option<Role>) -> Result<(), Invalid> {
    let Some(pt) = profile.point(point) else {
        let mut ids: Vec<&str> =
            profile.points().iter().filter(|p| role.is_none_or(|r| p.role == r)).map(|p| p.id.as_str()).collect();
        ids.truncate(8);
        let (name, ids) = (&profile.name, ids.join(", "));
        return Err(Invalid::new(
            text!("profile {name} has no point {point:?}", "寄存器表 {name} 没有点位 {point:?}"),
            text!("use a point of the profile, e.g. {ids}", "使用该寄存器表里的点位，例如 {ids}"),
        ));
    };
    if let Some(r) = role
        && pt.role != r
    {
        let role = &pt.role;
        return Err(Invalid::new(
            text!("point {point:?} is a {role} point, not a {r}", "点位 {point:?} 的角色是 {role}，不是 {r}"),
            text!(
                "name a point of role {r} (see docs/PROFILES.md)",
                "写一个角色为 {r} 的点位（见 docs/PROFILES.zh-CN.md）"
            ),
        ));
    }
    check_value(pt, set)
}

fn check_value(pt: &Point, set: &PointSet) -> Result<(), Invalid> {
    let raw = match set {
        PointSet::State(s) => pt.raw_for_state(s, 0.0).map_err(|e| {
            let known: Vec<&str> = pt.states.as_deref().map(|m| m.states().collect()).unwrap_or_default();
            let fix = if known.is_empty() {
                text!("this point has no states: give a raw number instead", "这个点位没有状态名：请改填 raw 数值")
            } else {
                let names = dedup(known).join(", ");
                text!("use one of: {names}", "使用以下之一：{names}")
            };
            Invalid::new(action::encode_error(&e), fix)
        })?,
        PointSet::Raw(r) => *r,
    };
    pt.encode(raw).map(|_| ()).map_err(|e| {
        let (lo, hi) = pt.data_type.range();
        Invalid::new(action::encode_error(&e), text!("give a value from {lo} to {hi}", "填 {lo} 到 {hi} 之间的值"))
    })
}

fn dedup(mut v: Vec<&str>) -> Vec<&str> {
    let mut seen = HashSet::new();
    v.retain(|s| seen.insert(*s));
    v
}

struct Refs<'a> {
    zones: &'a HashSet<String>,
    cameras: &'a HashSet<&'a str>,
    panels: &'a HashMap<&'a str, &'a PanelDef>,
}

impl Refs<'_> {
    fn area(&self, e: &mut Entry<'_>) -> Option<String> {
        let area = e.string("area")?;
        if !self.zones.contains(&area) {
            e.problem(
                "area",
                text!("no [[zone]] has id {area:?}", "没有 id 为 {area:?} 的 [[zone]]"),
                text!("add the zone, or fix the id", "加上这个区域，或改正 id"),
            );
        }
        Some(area)
    }

    fn linked(&self, e: &mut Entry<'_>) -> Vec<String> {
        let cams = e.strings("linked_cameras").unwrap_or_default();
        for c in &cams {
            if !self.cameras.contains(c.as_str()) {
                e.problem("linked_cameras", no_camera(c), fix_camera());
            }
        }
        cams
    }

    /// The panel named by `panel`, which must be of `kind`.
    fn panel(&self, e: &mut Entry<'_>, kind: PanelKindSim) -> Option<(String, Arc<Profile>)> {
        let id = e.required_string("panel", "\"alarm-1\"")?;
        let Some(pn) = self.panels.get(id.as_str()) else {
            e.problem("panel", no_panel(&id), fix_panel());
            return None;
        };
        if pn.kind != kind {
            let (want, want_zh) =
                if kind == PanelKindSim::Alarm { ("alarm", "报警主机") } else { ("access", "门禁控制器") };
            e.problem(
                "panel",
                text!("panel {id:?} is not an {want} panel", "{id:?} 不是{want_zh}"),
                text!("name a panel with kind = \"{want}\"", "写一台 kind = \"{want}\" 的{want_zh}"),
            );
            return None;
        }
        Some((id, pn.profile.clone()))
    }
}

fn point_of_role(e: &mut Entry<'_>, key: &'static str, profile: &Profile, role: Role, example: &str) -> Option<String> {
    let point = if key == "point" { e.required_string(key, example)? } else { e.string(key)? };
    match profile.point(&point) {
        Some(pt) if pt.role == role => Some(point),
        found => {
            let of_role: Vec<&str> =
                profile.points().iter().filter(|p| p.role == role).map(|p| p.id.as_str()).take(4).collect();
            let msg = match found {
                Some(pt) => {
                    let has = &pt.role;
                    text!("point {point:?} has role {has}, not {role}", "点位 {point:?} 的角色是 {has}，不是 {role}")
                }
                None => {
                    let name = &profile.name;
                    text!("profile {name} has no point {point:?}", "寄存器表 {name} 没有点位 {point:?}")
                }
            };
            let of_role = of_role.join(", ");
            e.problem(
                key,
                msg,
                text!("name a {role} point, e.g. {of_role}", "写一个角色为 {role} 的点位，例如 {of_role}"),
            );
            None
        }
    }
}

fn alarm_zones(p: &mut Parser<'_>, doc: &toml::Table, refs: &Refs<'_>) -> Vec<AlarmZoneDef> {
    let mut out = Vec::new();
    for (i, (t, line)) in p.array(doc, "alarm_zone").into_iter().enumerate() {
        let mut e = Entry::new(t, line, format!("alarm_zone #{}", i + 1));
        let id = e.id("id", "\"vault-contact\"");
        if let Some(id) = &id {
            e.name = format!("alarm_zone #{} ({id})", i + 1);
        }
        let name = e.string("name");
        let panel = refs.panel(&mut e, PanelKindSim::Alarm);
        let (point, partition) = match &panel {
            Some((_, prof)) => (
                point_of_role(&mut e, "point", prof, Role::Zone, "\"zone.1\""),
                point_of_role(&mut e, "partition", prof, Role::Partition, "\"partition.1\""),
            ),
            None => {
                e.get("point");
                e.get("partition");
                (None, None)
            }
        };
        let twenty_four_hour = e.boolean("twenty_four_hour").unwrap_or(false);
        let area = refs.area(&mut e);
        let linked_cameras = refs.linked(&mut e);
        if let (Some(id), Some((panel, _)), Some(point)) = (id, panel, point) {
            out.push(AlarmZoneDef {
                name: name.unwrap_or_else(|| id.clone()),
                id,
                panel,
                point,
                partition,
                twenty_four_hour,
                area,
                linked_cameras,
            });
        }
        e.finish(&mut p.problems);
    }
    out
}

fn doors(p: &mut Parser<'_>, doc: &toml::Table, refs: &Refs<'_>) -> Vec<DoorDef> {
    let mut out = Vec::new();
    for (i, (t, line)) in p.array(doc, "door").into_iter().enumerate() {
        let mut e = Entry::new(t, line, format!("door #{}", i + 1));
        let id = e.id("id", "\"staff-door\"");
        if let Some(id) = &id {
            e.name = format!("door #{} ({id})", i + 1);
        }
        let name = e.string("name");
        let panel = refs.panel(&mut e, PanelKindSim::Access);
        let point = match &panel {
            Some((_, prof)) => point_of_role(&mut e, "point", prof, Role::Door, "\"door.1\""),
            None => {
                e.get("point");
                None
            }
        };
        let area = refs.area(&mut e);
        let linked_cameras = refs.linked(&mut e);
        let held_open_limit = e.duration_in("held_open_limit", Duration::from_secs(1), Duration::from_secs(86400));
        if let (Some(id), Some((panel, _)), Some(point)) = (id, panel, point) {
            out.push(DoorDef {
                name: name.unwrap_or_else(|| id.clone()),
                id,
                panel,
                point,
                area,
                linked_cameras,
                held_open_limit,
            });
        }
        e.finish(&mut p.problems);
    }
    out
}

/// Fields every step may have, whatever it does.
const COMMON: [&str; 6] = ["at", "note", "every", "times", "until", "alternate"];

fn timeline(
    p: &mut Parser<'_>,
    doc: &toml::Table,
    refs: &Refs<'_>,
    alarm_zones: &[AlarmZoneDef],
    doors: &[DoorDef],
    has_link: bool,
) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for (i, (t, line)) in p.array(doc, "timeline").into_iter().enumerate() {
        let entry = i + 1;
        let mut e = Entry::new(t, line, format!("timeline #{entry}"));
        let at = match e.has("at") {
            true => e.duration_in("at", Duration::ZERO, MAX_AT),
            false => {
                e.seen.push("at");
                e.problem(
                    "at",
                    text!("is required", "必须填写"),
                    text!(
                        "add at = \"10s\" (the offset from the start of play)",
                        "加上 at = \"10s\"（从播放开始算起的时间）"
                    ),
                );
                None
            }
        };
        if let Some(at) = at {
            e.name = format!("timeline #{entry} (at {})", humantime::format_duration(at));
        }
        let note: Option<Arc<str>> = e.string("note").map(Arc::from);
        let every = e.duration_in("every", MIN_EVERY, MAX_AT);
        let times = e.int("times", 1, MAX_STEPS as i64);
        let until = e.duration_in("until", Duration::ZERO, MAX_AT);
        let alternate = e.boolean("alternate").unwrap_or(false);
        let built = step_action(&mut e, refs, alarm_zones, doors, has_link);
        let Some((action, allowed)) = built else {
            e.finish(&mut p.problems);
            continue;
        };
        // Fields that belong to another kind of step: mention them precisely rather than
        // as "unknown" (they are known, just not here).
        let extra: Vec<String> = e
            .table
            .keys()
            .filter(|k| !COMMON.contains(&k.as_str()) && !allowed.contains(&k.as_str()))
            .filter(|k| all_step_fields().contains(&k.as_str()))
            .cloned()
            .collect();
        for k in extra {
            let allowed = allowed.join(" + ");
            e.problem(
                &k,
                text!("does not apply to this step ({allowed})", "不适用于这一步（{allowed}）"),
                text!("remove {k}, or split the entry", "删掉 {k}，或把这一项拆开"),
            );
        }
        let Some(at) = at else {
            e.finish(&mut p.problems);
            continue;
        };
        let occurrences: u64 = match (every, times, until) {
            (None, None, None) => 1,
            (None, _, _) => {
                let f = if times.is_some() { "times" } else { "until" };
                e.problem(
                    f,
                    text!("repeats nothing without `every`", "没有 `every` 就没有东西可重复"),
                    text!("add every = \"5s\", or remove it", "加上 every = \"5s\"，或删掉它"),
                );
                1
            }
            (Some(_), Some(_), Some(_)) => {
                e.problem(
                    "until",
                    text!("`times` and `until` both say when to stop", "`times` 和 `until` 都在规定何时停止"),
                    text!("keep one of them", "只留其中一个"),
                );
                1
            }
            (Some(_), None, None) => {
                e.problem(
                    "every",
                    text!("needs `times` or `until`", "需要 `times` 或 `until`"),
                    text!("add times = 12 or until = \"65s\"", "加上 times = 12 或 until = \"65s\""),
                );
                1
            }
            (Some(_), Some(n), None) => n as u64,
            (Some(_), None, Some(u)) if u < at => {
                let at = humantime::format_duration(at);
                e.problem(
                    "until",
                    text!("is before `at`", "早于 `at`"),
                    text!("give until ≥ {at}", "until 须不小于 {at}"),
                );
                1
            }
            (Some(ev), None, Some(u)) => ((u - at).as_nanos() / ev.as_nanos().max(1)) as u64 + 1,
        };
        if alternate && every.is_none() {
            e.problem(
                "alternate",
                text!("alternates nothing without `every`", "没有 `every` 就没有东西可交替"),
                text!("add every and times, or remove alternate", "加上 every 和 times，或删掉 alternate"),
            );
        }
        let opposite = if alternate && every.is_some() {
            match opposite(&action, refs) {
                Ok(o) => Some(o),
                Err(inv) => {
                    e.invalid("alternate", inv);
                    None
                }
            }
        } else {
            None
        };
        if steps.len() as u64 + occurrences > MAX_STEPS as u64 {
            e.problem(
                "every",
                text!("the timeline would exceed {MAX_STEPS} steps", "时间线会超过 {MAX_STEPS} 步"),
                text!("repeat less often or for less time", "降低重复频率，或缩短重复时长"),
            );
            e.finish(&mut p.problems);
            continue;
        }
        let every = every.unwrap_or_default();
        for k in 0..occurrences {
            let Some(offset) =
                u32::try_from(k).ok().and_then(|k32| every.checked_mul(k32)).and_then(|d| at.checked_add(d))
            else {
                break;
            };
            let action = match (&opposite, k % 2) {
                (Some(o), 1) => o.clone(),
                _ => action.clone(),
            };
            steps.push(Step { at: offset, entry, repeat: k as u32, note: note.clone(), action });
        }
        e.finish(&mut p.problems);
    }
    // Stable: ties keep file order (then repetition order), so play is deterministic.
    steps.sort_by_key(|s| s.at);
    steps
}

fn all_step_fields() -> &'static [&'static str] {
    &[
        "camera",
        "panel",
        "door",
        "alarm_zone",
        "link",
        "fault",
        "event",
        "on",
        "active",
        "delay",
        "seconds",
        "code",
        "point",
        "state",
        "raw",
        "heartbeat",
        "arm",
        "disarm",
    ]
}

/// The step's action and the fields that kind of step uses (besides [`COMMON`]).
fn step_action(
    e: &mut Entry<'_>,
    refs: &Refs<'_>,
    alarm_zones: &[AlarmZoneDef],
    doors: &[DoorDef],
    has_link: bool,
) -> Option<(Action, &'static [&'static str])> {
    // Mark every step field as known so `finish` reports only true typos.
    for f in all_step_fields() {
        e.seen.push(f);
    }
    let targets: Vec<&str> =
        ["camera", "panel", "door", "alarm_zone", "link"].into_iter().filter(|k| e.has(k)).collect();
    match targets.as_slice() {
        [] => {
            e.problem(
                "",
                text!("says nothing to do", "没有说要做什么"),
                text!(
                    "add exactly one of camera, panel, door, alarm_zone or link (see docs/SIMULATOR.md)",
                    "在 camera、panel、door、alarm_zone、link 中恰好加上一个（见 docs/SIMULATOR.zh-CN.md）"
                ),
            );
            return None;
        }
        [_] => {}
        many => {
            let names = many.join(" and ");
            let names_zh = many.join(" 和 ");
            e.problem(
                many[1],
                text!("one step does one thing; it names {names}", "一步只做一件事；这一步写了 {names_zh}"),
                split_fix(),
            );
            return None;
        }
    }
    let on = |e: &mut Entry<'_>, key: &'static str| e.boolean(key).unwrap_or(true);
    match targets[0] {
        "camera" => {
            let camera = e.string("camera")?;
            if !refs.cameras.contains(camera.as_str()) {
                e.problem("camera", no_camera(&camera), fix_camera());
                return None;
            }
            match (e.has("fault"), e.has("event")) {
                (true, false) => {
                    let name = e.string("fault")?;
                    let on = on(e, "on");
                    let delay = e.duration("delay");
                    let seconds = e.int("seconds", i64::MIN, i64::MAX);
                    let fault = action::camera_fault(&name, on, delay, seconds, ("delay", "seconds"))
                        .map_err(|inv| e.invalid("fault", inv))
                        .ok()?;
                    Some((Action::CameraFault { camera, fault, on }, &["camera", "fault", "on", "delay", "seconds"]))
                }
                (false, true) => {
                    let kind = action::camera_event(&e.string("event")?).map_err(|inv| e.invalid("event", inv)).ok()?;
                    let active = on(e, "active");
                    Some((Action::CameraEvent { camera, kind, active }, &["camera", "event", "active"]))
                }
                _ => {
                    e.problem(
                        "camera",
                        text!(
                            "a camera step needs exactly one of `fault` or `event`",
                            "摄像机的一步须在 `fault` 和 `event` 中恰好写一个"
                        ),
                        text!(
                            "add fault = \"down\" or event = \"tamper\"",
                            "加上 fault = \"down\" 或 event = \"tamper\""
                        ),
                    );
                    None
                }
            }
        }
        "panel" => {
            let panel = e.string("panel")?;
            let Some(pn) = refs.panels.get(panel.as_str()) else {
                e.problem("panel", no_panel(&panel), fix_panel());
                return None;
            };
            let profile = pn.profile.clone();
            let what: Vec<&str> =
                ["point", "fault", "heartbeat", "arm", "disarm"].into_iter().filter(|k| e.has(k)).collect();
            match what.as_slice() {
                ["point"] => {
                    let point = e.string("point")?;
                    let value = match (e.has("state"), e.has("raw")) {
                        (true, false) => PointSet::State(e.string("state")?),
                        (false, true) => PointSet::Raw(e.number("raw")?),
                        _ => {
                            e.problem(
                                "point",
                                text!("needs exactly one of `state` or `raw`", "须在 `state` 和 `raw` 中恰好写一个"),
                                text!("add state = \"alarm\" (or raw = 1)", "加上 state = \"alarm\"（或 raw = 1）"),
                            );
                            return None;
                        }
                    };
                    check_point(&profile, &point, &value, None).map_err(|inv| e.invalid("point", inv)).ok()?;
                    Some((Action::Point { panel, point, value }, &["panel", "point", "state", "raw"]))
                }
                ["fault"] => {
                    let name = e.string("fault")?;
                    let on = on(e, "on");
                    let delay = e.duration("delay");
                    let code = e.int("code", i64::MIN, i64::MAX);
                    let fault = action::panel_fault(&name, on, delay, code, "delay")
                        .map_err(|inv| e.invalid("fault", inv))
                        .ok()?;
                    Some((Action::PanelFault { panel, fault, on }, &["panel", "fault", "on", "delay", "code"]))
                }
                ["heartbeat"] => {
                    let running = e.boolean("heartbeat")?;
                    Some((Action::Heartbeat { panel, running }, &["panel", "heartbeat"]))
                }
                [k @ ("arm" | "disarm")] => {
                    let key: &'static str = if *k == "arm" { "arm" } else { "disarm" };
                    let point = point_of_role(e, key, &profile, Role::Partition, "\"partition.1\"")?;
                    let state = if key == "arm" { "armed" } else { "disarmed" };
                    Some((
                        Action::Point { panel, point, value: PointSet::State(state.into()) },
                        &["panel", "arm", "disarm"],
                    ))
                }
                [] => {
                    e.problem(
                        "panel",
                        text!("says nothing to do to the panel", "没有说要对主机做什么"),
                        text!(
                            "add one of point (+ state/raw), fault, heartbeat, arm or disarm",
                            "加上 point（及 state/raw）、fault、heartbeat、arm（布防）或 disarm（撤防）之一"
                        ),
                    );
                    None
                }
                many => {
                    let names = many.join(" and ");
                    let names_zh = many.join(" 和 ");
                    e.problem(
                        many[1],
                        text!("one step does one thing; it has {names}", "一步只做一件事；这一步有 {names_zh}"),
                        split_fix(),
                    );
                    None
                }
            }
        }
        key @ ("door" | "alarm_zone") => {
            let id = e.string(if key == "door" { "door" } else { "alarm_zone" })?;
            let target = if key == "door" {
                doors.iter().find(|d| d.id == id).map(|d| (d.panel.clone(), d.point.clone()))
            } else {
                alarm_zones.iter().find(|a| a.id == id).map(|a| (a.panel.clone(), a.point.clone()))
            };
            let Some((panel, point)) = target else {
                let what = if key == "door" { "[[door]]" } else { "[[alarm_zone]]" };
                e.problem(
                    key,
                    text!("no {what} has id {id:?}", "没有 id 为 {id:?} 的 {what}"),
                    text!("fix the id, or define it", "改正 id，或定义它"),
                );
                return None;
            };
            let example = if key == "door" { "\"forced\" (closed, open, forced, held-open)" } else { "\"alarm\"" };
            let state = e.required_string("state", example)?;
            let value = PointSet::State(state);
            if let Some(pn) = refs.panels.get(panel.as_str()) {
                check_point(&pn.profile, &point, &value, None).map_err(|inv| e.invalid("state", inv)).ok()?;
            }
            let allowed: &'static [&'static str] =
                if key == "door" { &["door", "state"] } else { &["alarm_zone", "state"] };
            Some((Action::Point { panel, point, value }, allowed))
        }
        _ => {
            let up = match e.string("link")?.as_str() {
                "up" => true,
                "down" => false,
                other => {
                    e.problem(
                        "link",
                        text!("{other:?} is neither up nor down", "{other:?} 既不是 up 也不是 down"),
                        text!("write link = \"down\" or link = \"up\"", "写成 link = \"down\" 或 link = \"up\""),
                    );
                    return None;
                }
            };
            if !has_link {
                e.problem(
                    "link",
                    text!("the scenario has no [link] proxy to cut", "场景里没有可切断的 [link] 代理"),
                    text!(
                        "add a [link] section (the emitted config then reaches the broker through it)",
                        "加上 [link] 一节（生成的配置会经由它连接消息服务器）"
                    ),
                );
                return None;
            }
            Some((Action::Link { up }, &["link"]))
        }
    }
}

fn no_camera(id: &str) -> Text {
    text!("no [[camera]] has id {id:?}", "没有 id 为 {id:?} 的 [[camera]]")
}

fn fix_camera() -> Text {
    text!("fix the id, or add the camera", "改正 id，或加上这台摄像机")
}

fn no_panel(id: &str) -> Text {
    text!("no [[panel]] has id {id:?}", "没有 id 为 {id:?} 的 [[panel]]")
}

fn fix_panel() -> Text {
    text!("fix the id, or add the panel", "改正 id，或加上这台主机")
}

fn split_fix() -> Text {
    text!("split it into two [[timeline]] entries", "把它拆成两个 [[timeline]] 项")
}

/// What an `alternate` step does every other time.
fn opposite(action: &Action, refs: &Refs<'_>) -> Result<Action, Invalid> {
    Ok(match action.clone() {
        Action::CameraFault { camera, fault, on } => Action::CameraFault { camera, fault, on: !on },
        Action::CameraEvent { camera, kind, active } => Action::CameraEvent { camera, kind, active: !active },
        Action::PanelFault { panel, fault, on } => Action::PanelFault { panel, fault, on: !on },
        Action::Heartbeat { panel, running } => Action::Heartbeat { panel, running: !running },
        Action::Link { up } => Action::Link { up: !up },
        Action::Point { value: PointSet::Raw(_), .. } => {
            return Err(Invalid::new(
                text!("a raw value has no opposite", "raw 数值没有相反值"),
                text!("use state = … to alternate, or write two entries", "交替时用 state = …，或写成两项"),
            ));
        }
        Action::Point { panel, point, value: PointSet::State(s) } => {
            let resting = refs
                .panels
                .get(panel.as_str())
                .and_then(|pn| pn.profile.point(&point))
                .and_then(|pt| pt.role.resting_state());
            let back = match (resting, s.as_str()) {
                (_, "armed") => "disarmed",
                (_, "disarmed") => "armed",
                (Some(r), s) if r != s => r,
                _ => {
                    return Err(Invalid::new(
                        text!(
                            "{s:?} is the point's resting state; alternating would not change anything",
                            "{s:?} 是该点位的静止状态；交替不会改变任何东西"
                        ),
                        text!(
                            "give the non-resting state (e.g. \"alarm\" or \"forced\"); alternate returns to rest",
                            "写非静止状态（例如 \"alarm\" 或 \"forced\"）；交替时会回到静止状态"
                        ),
                    ));
                }
            };
            Action::Point { panel, point, value: PointSet::State(back.into()) }
        }
    })
}
