//! Stable ports: which port each simulated device listens on, so that the site file
//! `--emit-config` writes stays right when the simulator restarts.
//!
//! Why: by default every device takes a free port, which differs from run to run, and an
//! installer's gateway config then points at ports nobody listens on any more. A port plan
//! makes them fixed. A device gets, in this order of precedence:
//!
//! 1. its own `port` in the scenario file (a camera's ONVIF/snapshot port; its RTSP port is
//!    the next one; with `count`, the k-th copy adds 2k for a camera and k for a panel);
//! 2. its slot after the base port (`--base-port`, else `[scenario] base_port`): camera i (in
//!    file order, from 0) gets base + 2i (ONVIF) and base + 2i + 1 (RTSP); panel j gets
//!    base + 2C + j, where C is the number of cameras; the link proxy (when `[link] listen`
//!    names port 0 or none) gets base + 2C + P, where P is the number of panels; the control
//!    API (when `--control` names port 0) gets base + 2C + P + 1. The link's slot is kept even
//!    without a `[link]` section, so the control API's port depends only on C and P;
//! 3. otherwise a free port, as before.
//!
//! A plan whose ports run past 65535 or give one port to two devices is refused before
//! anything listens, with the devices named and the fix.

use i18n::{Lang, Text, text, tr};

use super::Scenario;

/// The ports to listen on; 0 means "a free port".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortPlan {
    /// (ONVIF/snapshot HTTP, RTSP) per camera, in scenario order.
    pub cameras: Vec<(u16, u16)>,
    /// Modbus TCP per panel, in scenario order.
    pub panels: Vec<u16>,
    /// The link proxy's port (the scenario's own `[link] listen` port when it names one).
    pub link: u16,
    /// The control API's port (`--control`'s when it names one).
    pub control: u16,
    /// Where the base port came from and its value, for messages.
    pub base: Option<(&'static str, u16)>,
}

impl PortPlan {
    /// Which device `port` was planned for (`camera cam-01 (ONVIF)`), for a bind error.
    pub fn owner(&self, scn: &Scenario, port: u16) -> Option<Text> {
        if port == 0 {
            return None;
        }
        owners(scn, self).into_iter().find(|(p, _)| *p == port).map(|(_, who)| who)
    }
}

/// A plan that cannot work: what is wrong and how to put it right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortError {
    /// The scenario field at fault (`base_port` or `port`), for `check`'s problems.
    pub field: &'static str,
    pub message: Text,
    pub fix: Text,
}

impl PortError {
    pub fn render(&self, lang: Lang) -> String {
        let (message, fix) = (self.message.get(lang), self.fix.get(lang));
        tr!(lang, "{message} (fix: {fix})", "{message}（修正：{fix}）")
    }
}

/// English.
impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(Lang::En))
    }
}

/// The plan for `scn`: `base` is `--base-port` (it overrides `[scenario] base_port`), and
/// `control` the port `--control` names (0: planned from the base, or free).
pub fn plan(scn: &Scenario, base: Option<u16>, control: u16) -> Result<PortPlan, Vec<PortError>> {
    let base = match base {
        Some(b) => Some(("--base-port", b)),
        None => scn.base_port.map(|b| ("base_port", b)),
    };
    let (cams, panels) = (scn.cameras.len() as u32, scn.panels.len() as u32);
    let mut errors = Vec::new();
    if let Some((from, b)) = base {
        // The highest slot is the control API's: base + 2C + P + 1.
        let last = u32::from(b) + 2 * cams + panels + 1;
        if b == 0 || last > u32::from(u16::MAX) {
            let count = 2 * cams + panels + 2;
            let max = (u32::from(u16::MAX) + 1).saturating_sub(count);
            errors.push(PortError {
                field: "base_port",
                message: text!(
                    "{from} {b} leaves no room: this branch needs {count} ports from it (2 per camera, 1 per panel, the link proxy and the control API), up to {last}, past 65535",
                    "{from} {b} 之后放不下：这个网点从它开始需要 {count} 个端口（每台摄像机 2 个，每台主机 1 个，外加链路代理和控制接口），要用到 {last}，超过了 65535"
                ),
                fix: text!("choose a base port from 1024 to {max}", "选一个 1024 到 {max} 之间的起始端口"),
            });
            return Err(errors);
        }
    }
    let slot = |i: u32| base.map_or(0, |(_, b)| (u32::from(b) + i) as u16);
    let mut out = PortPlan { base, ..PortPlan::default() };
    for (i, c) in scn.cameras.iter().enumerate() {
        out.cameras.push(match c.port {
            Some(p) => (p, p.saturating_add(1)),
            None => (slot(2 * i as u32), slot(2 * i as u32 + 1)),
        });
    }
    for (j, p) in scn.panels.iter().enumerate() {
        out.panels.push(p.port.unwrap_or_else(|| slot(2 * cams + j as u32)));
    }
    out.link = match &scn.link {
        Some(l) if l.listen.port() != 0 => l.listen.port(),
        _ => slot(2 * cams + panels),
    };
    out.control = if control != 0 { control } else { slot(2 * cams + panels + 1) };
    // One port, one device.
    let all = owners(scn, &out);
    for (i, (port, who)) in all.iter().enumerate() {
        if let Some((_, first)) = all[..i].iter().find(|(p, _)| p == port) {
            let (a, b, az, bz) = (&first.en, &who.en, &first.zh, &who.zh);
            errors.push(PortError {
                field: "port",
                message: Text::new(
                    format!("port {port} is planned for both {a} and {b}"),
                    format!("端口 {port} 同时分给了{az}和{bz}"),
                ),
                fix: text!(
                    "give one of them another `port`, or choose another base port (a camera takes 2 ports, its `port` and the next)",
                    "给其中一个换一个 `port`，或换一个起始端口（一台摄像机占 2 个端口：它的 `port` 和下一个）"
                ),
            });
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// Every planned (non-zero) port with the device it belongs to, in plan order.
fn owners(scn: &Scenario, plan: &PortPlan) -> Vec<(u16, Text)> {
    let mut out = Vec::new();
    for (c, (http, rtsp)) in scn.cameras.iter().zip(&plan.cameras) {
        let id = &c.id;
        out.push((*http, text!("camera {id} (ONVIF)", "摄像机 {id}（ONVIF）")));
        out.push((*rtsp, text!("camera {id} (RTSP)", "摄像机 {id}（RTSP）")));
    }
    for (p, port) in scn.panels.iter().zip(&plan.panels) {
        let id = &p.id;
        out.push((*port, text!("panel {id} (Modbus)", "主机 {id}（Modbus）")));
    }
    if scn.link.is_some() {
        out.push((plan.link, text!("the link proxy", "链路代理")));
    }
    out.push((plan.control, text!("the control API", "控制接口")));
    out.retain(|(p, _)| *p != 0);
    out
}
