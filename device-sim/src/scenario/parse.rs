//! Reading and checking scenario files. Every problem is collected (not just the first), and
//! each names the line of its entry's header, the entry, the field and the fix — an
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

use protocols::modbus::{Point, Profile, Role};
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

    fn problem(&mut self, field: &str, message: impl Into<String>, fix: impl Into<String>) {
        self.problems.push(Problem {
            line: self.line,
            entry: self.name.clone(),
            field: field.to_string(),
            message: message.into(),
            fix: fix.into(),
        });
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
                self.problem(
                    key,
                    format!("expected a string, found {}", other.type_str()),
                    format!("write {key} = \"…\""),
                );
                None
            }
        }
    }

    fn required_string(&mut self, key: &'static str, example: &str) -> Option<String> {
        if !self.has(key) {
            self.seen.push(key);
            self.problem(key, "is required", format!("add {key} = {example}"));
            return None;
        }
        self.string(key)
    }

    fn boolean(&mut self, key: &'static str) -> Option<bool> {
        match self.get(key)? {
            Value::Boolean(b) => Some(*b),
            other => {
                self.problem(
                    key,
                    format!("expected true or false, found {}", other.type_str()),
                    format!("write {key} = true"),
                );
                None
            }
        }
    }

    fn int(&mut self, key: &'static str, min: i64, max: i64) -> Option<i64> {
        match self.get(key)? {
            Value::Integer(i) if (min..=max).contains(i) => Some(*i),
            Value::Integer(i) => {
                self.problem(key, format!("{i} is out of range"), format!("give a whole number from {min} to {max}"));
                None
            }
            other => {
                self.problem(
                    key,
                    format!("expected a whole number, found {}", other.type_str()),
                    format!("write {key} = {min} (no quotes)"),
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
                self.problem(key, format!("expected a number, found {}", other.type_str()), format!("write {key} = 1"));
                None
            }
        }
    }

    fn duration(&mut self, key: &'static str) -> Option<Duration> {
        let s = match self.get(key)? {
            Value::String(s) => s.clone(),
            other => {
                self.problem(
                    key,
                    format!("expected a duration string, found {}", other.type_str()),
                    format!("write {key} = \"10s\" (or \"250ms\", \"2m\", \"1m 30s\")"),
                );
                return None;
            }
        };
        match humantime::parse_duration(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(key, format!("{s:?} is not a duration: {e}"), format!("write e.g. {key} = \"10s\""));
                None
            }
        }
    }

    fn duration_in(&mut self, key: &'static str, min: Duration, max: Duration) -> Option<Duration> {
        let d = self.duration(key)?;
        if d < min || d > max {
            self.problem(
                key,
                format!("{} is out of range", humantime::format_duration(d)),
                format!(
                    "give a duration from {} to {}",
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ),
            );
            return None;
        }
        Some(d)
    }

    fn strings(&mut self, key: &'static str) -> Option<Vec<String>> {
        let v = self.get(key)?;
        let bad = |e: &mut Entry<'_>| {
            e.problem(key, "expected a list of strings", format!("write {key} = [\"a\", \"b\"]"));
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
            self.problem(key, format!("{id:?} {e}"), "use 1–64 letters, digits, '-', '_' or '.'");
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
            for k in unknown {
                self.problem(&k, "unknown field", format!("remove it; this entry knows: {}", known.join(", ")));
            }
        }
        out.append(&mut self.problems);
    }
}

/// 1-based line numbers of `[[name]]` (or `[name]`) headers, in file order. Best effort: a
/// file written with inline arrays simply gets no line numbers.
fn header_lines(text: &str, name: &str, array: bool) -> Vec<usize> {
    let header = if array { format!("[[{name}]]") } else { format!("[{name}]") };
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let squeezed: String = l.chars().filter(|c| !c.is_whitespace()).collect();
            squeezed.starts_with(&header)
        })
        .map(|(i, _)| i + 1)
        .collect()
}

struct Parser<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl Parser<'_> {
    fn top(&mut self, field: &str, message: impl Into<String>, fix: impl Into<String>) {
        self.problems.push(Problem {
            line: None,
            entry: "(top level)".into(),
            field: field.into(),
            message: message.into(),
            fix: fix.into(),
        });
    }

    /// The tables of `[[name]]`, each with its header line.
    fn array<'d>(&mut self, doc: &'d toml::Table, name: &str) -> Vec<(&'d toml::Table, Option<usize>)> {
        let Some(v) = doc.get(name) else { return Vec::new() };
        let lines = header_lines(self.text, name, true);
        match v {
            Value::Array(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::Table(t) => out.push((t, lines.get(i).copied())),
                        other => self.top(
                            name,
                            format!("item {} is {}, not a table", i + 1, other.type_str()),
                            format!("write each entry as a [[{name}]] table"),
                        ),
                    }
                }
                out
            }
            _ => {
                self.top(
                    name,
                    "must be a list of tables",
                    format!("write [[{name}]] (double brackets) for each entry"),
                );
                Vec::new()
            }
        }
    }

    fn table<'d>(&mut self, doc: &'d toml::Table, name: &str) -> Option<(&'d toml::Table, Option<usize>)> {
        match doc.get(name)? {
            Value::Table(t) => Some((t, header_lines(self.text, name, false).first().copied())),
            _ => {
                self.top(name, "must be a table", format!("write a [{name}] section"));
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
    let mut p = Parser { text, problems: Vec::new() };
    for key in doc.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            let singular = key.strip_suffix('s').unwrap_or(key);
            let fix = if SECTIONS.contains(&singular) {
                format!("the section is called {singular:?} (singular): write [[{singular}]]")
            } else {
                format!("remove it; sections are: {}", SECTIONS.join(", "))
            };
            p.top(key, "unknown section", fix);
        }
    }

    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "scenario".into());
    let (name, description, duration) = scenario_section(&mut p, &doc, &stem);
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
            p.problems.push(Problem {
                line: None,
                entry: format!("panel {}", pn.id),
                field: "id".into(),
                message: format!("id {:?} is already used by a {kind}", pn.id),
                fix: "give every camera and panel its own id (they share one id space)".into(),
            });
        }
    }
    if cameras.len() + panels.len() > MAX_DEVICES {
        p.top(
            "camera",
            format!("{} devices; the simulator runs at most {MAX_DEVICES} per process", cameras.len() + panels.len()),
            "split the branch over several scenarios",
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
            p.problems.push(Problem {
                line: None,
                entry: format!("alarm zone / door {id}"),
                field: "id".into(),
                message: format!("id {id:?} is used more than once"),
                fix: "give every alarm zone and door its own id (they share one id space)".into(),
            });
        }
    }
    let timeline = timeline(&mut p, &doc, &refs, &alarm_zones, &doors, link.is_some());

    if !p.problems.is_empty() {
        return Err(ScenarioError::Invalid { path: path.to_path_buf(), problems: p.problems });
    }
    Ok(Scenario {
        source: path.to_path_buf(),
        name,
        description,
        duration,
        branch,
        gateway,
        link,
        zones,
        cameras,
        panels,
        alarm_zones,
        doors,
        timeline,
    })
}

fn scenario_section(p: &mut Parser<'_>, doc: &toml::Table, stem: &str) -> (String, String, Option<Duration>) {
    let Some((t, line)) = p.table(doc, "scenario") else { return (stem.to_string(), String::new(), None) };
    let mut e = Entry::new(t, line, "[scenario]".into());
    let name = e.string("name").unwrap_or_else(|| stem.to_string());
    let description = e.string("description").unwrap_or_default();
    let duration = e.duration_in("duration", Duration::ZERO, MAX_AT);
    e.finish(&mut p.problems);
    (name, description, duration)
}

fn branch_section(p: &mut Parser<'_>, doc: &toml::Table) -> BranchDef {
    let fallback = BranchDef { id: "sim-branch".into(), name: "Simulated branch".into() };
    let Some((t, line)) = p.table(doc, "branch") else {
        p.top("branch", "is required", "add [branch] with id = \"sh-pudong-0101\" and name = \"…\"");
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
        if b.starts_with("mqtt://") || b.starts_with("mqtts://") {
            g.broker = b;
        } else {
            e.problem(
                "broker",
                format!("{b:?} is not an MQTT URL"),
                "write broker = \"mqtt://HOST:PORT\" or \"mqtts://HOST:PORT\"",
            );
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
                format!("{m:?} is not IP:PORT"),
                "write metrics_listen = \"127.0.0.1:9464\" (port 0: a free port)",
            ),
        }
    }
    if camera_timeout(&g) >= camera_interval(&g, None) {
        e.problem(
            "camera_timeout",
            "is not shorter than camera_poll_interval",
            "make the timeout shorter than the poll interval (gateway defaults: 2s and 10s)",
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
                    format!("{s:?} is not an address"),
                    "write listen = \"127.0.0.1:18830\" (port 0: any free port)",
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
                e.problem("id", format!("zone {id:?} is defined twice"), "give every zone its own id");
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
            "repeats an entry whose id has no {n}",
            "put {n} (or {n:02}) in the id, e.g. id = \"cam-{n:02}\"",
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
                e.problem("zones", format!("no [[zone]] has id {z:?}"), "add the zone, or fix the id");
            }
        }
        let auth = match e.string("auth").as_deref() {
            None | Some("username-token") => AuthMode::UsernameToken,
            Some("digest") => AuthMode::Digest,
            Some(other) => {
                e.problem("auth", format!("unknown auth mode {other:?}"), "use \"username-token\" or \"digest\"");
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
        if poll_interval.is_some() && camera_timeout(g) >= camera_interval(g, poll_interval) {
            e.problem("poll_interval", "is not longer than [gateway] camera_timeout", "give a longer poll interval");
        }
        let Some(id_t) = id else {
            e.finish(&mut p.problems);
            continue;
        };
        let (count, first) = repeat_count(&mut e, &id_t);
        for n in first..first + count {
            let id = if count > 1 || id_t.contains("{n") { expand(&id_t, n) } else { id_t.clone() };
            if let Err(err) = protocols::ids::validate_segment(&id) {
                e.problem("id", format!("{id:?} {err}"), "use 1–64 letters, digits, '-', '_' or '.'");
                break;
            }
            if !seen.insert(id.clone()) {
                e.problem("id", format!("camera {id:?} is defined twice"), "give every camera its own id");
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
                e.problem("faults", format!("delay of {name}: {err}"), "write delay = \"1500ms\"");
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
                e.problem("faults", format!("delay of {name}: {err}"), "write delay = \"1500ms\"");
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
    let fix = "write faults = [\"frozen\", { fault = \"slow\", delay = \"2s\" }]";
    let Value::Array(items) = v else {
        e.problem("faults", "expected a list", fix);
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::String(s) => out.push((s.clone(), None)),
            Value::Table(t) => {
                match t.get("fault").and_then(Value::as_str) {
                    Some(name) => out.push((name.to_string(), Some(t))),
                    None => e.problem("faults", "a fault table without `fault`", fix),
                }
                for k in t.keys() {
                    if !["fault", "delay", "seconds", "code"].contains(&k.as_str()) {
                        e.problem(
                            "faults",
                            format!("unknown key {k:?} in a fault"),
                            "use fault, delay, seconds or code",
                        );
                    }
                }
            }
            other => e.problem("faults", format!("an item is {}", other.type_str()), fix),
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
                e.problem("kind", format!("unknown panel kind {other:?}"), "use \"alarm\" or \"access\"");
                None
            }
            None => None,
        };
        let profile_name = e.string("profile").or_else(|| kind.map(|k| k.profile_name().to_string()));
        let profile = profile_name.as_deref().and_then(|n| match protocols::modbus::builtin(n) {
            Some(prof) => Some(Arc::new(prof)),
            None => {
                e.problem(
                    "profile",
                    format!("{n:?} is not a built-in profile"),
                    format!(
                        "use one of: {} (the simulator serves built-in layouts only)",
                        protocols::modbus::BUILTIN_NAMES.join(", ")
                    ),
                );
                None
            }
        });
        let unit_id = e.int("unit_id", 1, 255).map(|v| v as u8).unwrap_or(1);
        let faults = panel_faults(&mut e);
        let heartbeat = e.boolean("heartbeat").unwrap_or(true);
        let poll_interval = e.duration_in("poll_interval", Duration::from_millis(20), Duration::from_secs(3600));
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
                                    format!("{point}: expected a state or a number"),
                                    "write \"partition.1\" = \"armed\"",
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
                _ => e.problem("points", "expected a table", "write points = { \"partition.1\" = \"armed\" }"),
            }
        }
        let (Some(id_t), Some(kind), Some(profile), Some(profile_name)) = (id, kind, profile, profile_name) else {
            e.finish(&mut p.problems);
            continue;
        };
        let (count, first) = repeat_count(&mut e, &id_t);
        for n in first..first + count {
            let id = if count > 1 || id_t.contains("{n") { expand(&id_t, n) } else { id_t.clone() };
            if let Err(err) = protocols::ids::validate_segment(&id) {
                e.problem("id", format!("{id:?} {err}"), "use 1–64 letters, digits, '-', '_' or '.'");
                break;
            }
            if !seen.insert(id.clone()) {
                e.problem("id", format!("panel {id:?} is defined twice"), "give every panel its own id");
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
        return Err(Invalid::new(
            format!("profile {} has no point {point:?}", profile.name),
            format!("use a point of the profile, e.g. {}", ids.join(", ")),
        ));
    };
    if let Some(r) = role
        && pt.role != r
    {
        return Err(Invalid::new(
            format!("point {point:?} is a {} point, not a {}", pt.role, r),
            format!("name a point of role {r} (see docs/PROFILES.md)"),
        ));
    }
    check_value(pt, set)
}

fn check_value(pt: &Point, set: &PointSet) -> Result<(), Invalid> {
    let raw = match set {
        PointSet::State(s) => pt.raw_for_state(s, 0.0).map_err(|e| {
            let known: Vec<&str> = pt.states.as_deref().map(|m| m.states().collect()).unwrap_or_default();
            let fix = if known.is_empty() {
                "this point has no states: give a raw number instead".to_string()
            } else {
                format!("use one of: {}", dedup(known).join(", "))
            };
            Invalid::new(e.to_string(), fix)
        })?,
        PointSet::Raw(r) => *r,
    };
    pt.encode(raw).map(|_| ()).map_err(|e| {
        let (lo, hi) = pt.data_type.range();
        Invalid::new(e.to_string(), format!("give a value from {lo} to {hi}"))
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
            e.problem("area", format!("no [[zone]] has id {area:?}"), "add the zone, or fix the id");
        }
        Some(area)
    }

    fn linked(&self, e: &mut Entry<'_>) -> Vec<String> {
        let cams = e.strings("linked_cameras").unwrap_or_default();
        for c in &cams {
            if !self.cameras.contains(c.as_str()) {
                e.problem("linked_cameras", format!("no [[camera]] has id {c:?}"), "fix the id, or add the camera");
            }
        }
        cams
    }

    /// The panel named by `panel`, which must be of `kind`.
    fn panel(&self, e: &mut Entry<'_>, kind: PanelKindSim) -> Option<(String, Arc<Profile>)> {
        let id = e.required_string("panel", "\"alarm-1\"")?;
        let Some(pn) = self.panels.get(id.as_str()) else {
            e.problem("panel", format!("no [[panel]] has id {id:?}"), "fix the id, or add the panel");
            return None;
        };
        if pn.kind != kind {
            let want = if kind == PanelKindSim::Alarm { "alarm" } else { "access" };
            e.problem(
                "panel",
                format!("panel {id:?} is not an {want} panel"),
                format!("name a panel with kind = \"{want}\""),
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
                Some(pt) => format!("point {point:?} has role {}, not {role}", pt.role),
                None => format!("profile {} has no point {point:?}", profile.name),
            };
            e.problem(key, msg, format!("name a {role} point, e.g. {}", of_role.join(", ")));
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
                e.problem("at", "is required", "add at = \"10s\" (the offset from the start of play)");
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
            e.problem(
                &k,
                format!("does not apply to this step ({})", allowed.join(" + ")),
                format!("remove {k}, or split the entry"),
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
                e.problem(f, "repeats nothing without `every`", "add every = \"5s\", or remove it");
                1
            }
            (Some(_), Some(_), Some(_)) => {
                e.problem("until", "`times` and `until` both say when to stop", "keep one of them");
                1
            }
            (Some(_), None, None) => {
                e.problem("every", "needs `times` or `until`", "add times = 12 or until = \"65s\"");
                1
            }
            (Some(_), Some(n), None) => n as u64,
            (Some(_), None, Some(u)) if u < at => {
                e.problem("until", "is before `at`", format!("give until ≥ {}", humantime::format_duration(at)));
                1
            }
            (Some(ev), None, Some(u)) => ((u - at).as_nanos() / ev.as_nanos().max(1)) as u64 + 1,
        };
        if alternate && every.is_none() {
            e.problem("alternate", "alternates nothing without `every`", "add every and times, or remove alternate");
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
                format!("the timeline would exceed {MAX_STEPS} steps"),
                "repeat less often or for less time",
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
                "says nothing to do",
                "add exactly one of camera, panel, door, alarm_zone or link (see docs/SIMULATOR.md)",
            );
            return None;
        }
        [_] => {}
        many => {
            e.problem(
                many[1],
                format!("one step does one thing; it names {}", many.join(" and ")),
                "split it into two [[timeline]] entries",
            );
            return None;
        }
    }
    let on = |e: &mut Entry<'_>, key: &'static str| e.boolean(key).unwrap_or(true);
    match targets[0] {
        "camera" => {
            let camera = e.string("camera")?;
            if !refs.cameras.contains(camera.as_str()) {
                e.problem("camera", format!("no [[camera]] has id {camera:?}"), "fix the id, or add the camera");
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
                        "a camera step needs exactly one of `fault` or `event`",
                        "add fault = \"down\" or event = \"tamper\"",
                    );
                    None
                }
            }
        }
        "panel" => {
            let panel = e.string("panel")?;
            let Some(pn) = refs.panels.get(panel.as_str()) else {
                e.problem("panel", format!("no [[panel]] has id {panel:?}"), "fix the id, or add the panel");
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
                                "needs exactly one of `state` or `raw`",
                                "add state = \"alarm\" (or raw = 1)",
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
                        "says nothing to do to the panel",
                        "add one of point (+ state/raw), fault, heartbeat, arm or disarm",
                    );
                    None
                }
                many => {
                    e.problem(
                        many[1],
                        format!("one step does one thing; it has {}", many.join(" and ")),
                        "split it into two [[timeline]] entries",
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
                e.problem(key, format!("no {what} has id {id:?}"), "fix the id, or define it");
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
                        format!("{other:?} is neither up nor down"),
                        "write link = \"down\" or link = \"up\"",
                    );
                    return None;
                }
            };
            if !has_link {
                e.problem(
                    "link",
                    "the scenario has no [link] proxy to cut",
                    "add a [link] section (the emitted config then reaches the broker through it)",
                );
                return None;
            }
            Some((Action::Link { up }, &["link"]))
        }
    }
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
                "a raw value has no opposite",
                "use state = … to alternate, or write two entries",
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
                        format!("{s:?} is the point's resting state; alternating would not change anything"),
                        "give the non-resting state (e.g. \"alarm\" or \"forced\"); alternate returns to rest",
                    ));
                }
            };
            Action::Point { panel, point, value: PointSet::State(back.into()) }
        }
    })
}
