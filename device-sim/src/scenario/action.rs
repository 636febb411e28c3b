//! What can be done to a running branch: one [`Action`] type shared by the scenario timeline
//! and the control API, so that "camera cam-03 down" means exactly the same thing whether a
//! file or an installer's `curl` asked for it, and both are logged and journaled alike.
//!
//! The names here (`down`, `clock-skew`, `no-answer`, `signal-loss`…) are the vocabulary of
//! the scenario format and the control API; docs/SIMULATOR.md lists them.

use std::time::Duration;

use i18n::{Text, text};
use serde_json::{Value, json};

use crate::camera::{CameraEventKind, CameraFault};
use crate::panel::PanelFaultSim;

/// Camera fault names, in documentation order.
pub const CAMERA_FAULTS: [&str; 13] = [
    "down",
    "hung",
    "slow",
    "auth-failure",
    "soap-fault",
    "http-500",
    "clock-skew",
    "rtsp-down",
    "frozen",
    "covered",
    "dark",
    "blurred",
    "low-resolution",
];
/// Panel fault names, in documentation order.
pub const PANEL_FAULTS: [&str; 5] = ["no-answer", "slow", "exception", "drop-connection", "wrong-transaction-id"];
/// Camera event (health condition) names.
pub const CAMERA_EVENTS: [&str; 3] = ["signal-loss", "tamper", "storage-failure"];
/// The exception code a panel answers with when a scenario or request names none
/// (4: server device failure — what integration modules send when the panel behind them is gone).
pub const DEFAULT_EXCEPTION_CODE: u8 = 4;

/// A value that does not fit: what is wrong and how to put it right, in both languages.
/// Callers add where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub message: Text,
    pub fix: Text,
}

impl Invalid {
    pub(crate) fn new(message: Text, fix: Text) -> Invalid {
        Invalid { message, fix }
    }

    /// `message (fix: fix)` in both languages (what the control API answers).
    pub fn text(&self) -> Text {
        let (me, fe, mz, fz) = (&self.message.en, &self.fix.en, &self.message.zh, &self.fix.zh);
        Text::new(format!("{me} (fix: {fe})"), format!("{mz}（修正：{fz}）"))
    }
}

/// English.
impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text().en)
    }
}

/// Why a value cannot be written to a panel point, in both languages.
pub fn encode_error(e: &protocols::modbus::EncodeError) -> Text {
    use protocols::modbus::EncodeError;
    match e {
        EncodeError::OutOfRange { point, value, data_type } => text!(
            "{value} does not fit point {point:?} of type {data_type}",
            "{value} 放不进类型为 {data_type} 的点位 {point:?}"
        ),
        EncodeError::UnknownState { point, state, known } => text!(
            "point {point:?} has no state {state:?} (it knows: {known})",
            "点位 {point:?} 没有状态 {state:?}（它的状态有：{known}）"
        ),
        EncodeError::Unreachable { point, state } => text!(
            "point {point:?}: no value decodes to state {state:?} (an earlier rule always wins)",
            "点位 {point:?}：没有哪个值能解出状态 {state:?}（前面的规则总是先匹配）"
        ),
    }
}

/// What to write to a panel point.
#[derive(Debug, Clone, PartialEq)]
pub enum PointSet {
    /// Whatever bits make the profile decode the point to this state.
    State(String),
    /// This raw number (0/1 for bits).
    Raw(f64),
}

/// One change to a running branch.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CameraFault {
        camera: String,
        fault: CameraFault,
        on: bool,
    },
    CameraEvent {
        camera: String,
        kind: CameraEventKind,
        active: bool,
    },
    Point {
        panel: String,
        point: String,
        value: PointSet,
    },
    PanelFault {
        panel: String,
        fault: PanelFaultSim,
        on: bool,
    },
    Heartbeat {
        panel: String,
        running: bool,
    },
    /// The MQTT link proxy: `false` cuts the gateway's link to the broker.
    Link {
        up: bool,
    },
}

impl Action {
    /// One line for logs: `camera cam-03 fault down on`.
    pub fn describe(&self) -> String {
        let onoff = |b: bool| if b { "on" } else { "off" };
        match self {
            Action::CameraFault { camera, fault, on } => {
                format!(
                    "camera {camera} fault {}{} {}",
                    camera_fault_name(*fault),
                    camera_fault_param(*fault),
                    onoff(*on)
                )
            }
            Action::CameraEvent { camera, kind, active } => format!(
                "camera {camera} event {} {}",
                camera_event_name(*kind),
                if *active { "active" } else { "inactive" }
            ),
            Action::Point { panel, point, value: PointSet::State(s) } => format!("panel {panel} point {point} = {s}"),
            Action::Point { panel, point, value: PointSet::Raw(r) } => format!("panel {panel} point {point} = raw {r}"),
            Action::PanelFault { panel, fault, on } => {
                format!("panel {panel} fault {}{} {}", panel_fault_name(*fault), panel_fault_param(*fault), onoff(*on))
            }
            Action::Heartbeat { panel, running } => {
                format!("panel {panel} heartbeat {}", if *running { "running" } else { "stopped" })
            }
            Action::Link { up } => format!("link {}", if *up { "up" } else { "down" }),
        }
    }

    /// The action as JSON, in the control API's vocabulary (what `--events-json` prints).
    pub fn to_json(&self) -> Value {
        match self {
            Action::CameraFault { camera, fault, on } => {
                let mut v =
                    json!({"action": "camera-fault", "camera": camera, "fault": camera_fault_name(*fault), "on": on});
                match fault {
                    CameraFault::Slow(d) => v["ms"] = json!(millis(*d)),
                    CameraFault::ClockSkew(s) => v["seconds"] = json!(s),
                    _ => {}
                }
                v
            }
            Action::CameraEvent { camera, kind, active } => {
                json!({"action": "camera-event", "camera": camera, "kind": camera_event_name(*kind), "active": active})
            }
            Action::Point { panel, point, value } => {
                let mut v = json!({"action": "point", "panel": panel, "point": point});
                match value {
                    PointSet::State(s) => v["state"] = json!(s),
                    PointSet::Raw(r) => v["raw"] = json!(r),
                }
                v
            }
            Action::PanelFault { panel, fault, on } => {
                let mut v =
                    json!({"action": "panel-fault", "panel": panel, "fault": panel_fault_name(*fault), "on": on});
                match fault {
                    PanelFaultSim::Slow(d) => v["ms"] = json!(millis(*d)),
                    PanelFaultSim::Exception(c) => v["code"] = json!(c),
                    _ => {}
                }
                v
            }
            Action::Heartbeat { panel, running } => json!({"action": "heartbeat", "panel": panel, "running": running}),
            Action::Link { up } => json!({"action": "link", "up": up}),
        }
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn camera_fault_param(f: CameraFault) -> String {
    match f {
        CameraFault::Slow(d) => format!(" {}", humantime::format_duration(d)),
        CameraFault::ClockSkew(s) => format!(" {s:+}s"),
        _ => String::new(),
    }
}

fn panel_fault_param(f: PanelFaultSim) -> String {
    match f {
        PanelFaultSim::Slow(d) => format!(" {}", humantime::format_duration(d)),
        PanelFaultSim::Exception(c) => format!(" {c}"),
        _ => String::new(),
    }
}

pub fn camera_fault_name(f: CameraFault) -> &'static str {
    match f {
        CameraFault::Down => "down",
        CameraFault::Hung => "hung",
        CameraFault::Slow(_) => "slow",
        CameraFault::AuthFailure => "auth-failure",
        CameraFault::SoapFault => "soap-fault",
        CameraFault::Http500 => "http-500",
        CameraFault::ClockSkew(_) => "clock-skew",
        CameraFault::RtspDown => "rtsp-down",
        CameraFault::Frozen => "frozen",
        CameraFault::Covered => "covered",
        CameraFault::Dark => "dark",
        CameraFault::Blurred => "blurred",
        CameraFault::LowResolution => "low-resolution",
    }
}

/// What a camera fault does, in both languages (the control API's index says it in the
/// asker's language); `None` for a name that is not a camera fault.
pub fn camera_fault_help(name: &str) -> Option<Text> {
    Some(match name {
        "down" => text!(
            "both listeners closed: connection refused; back on the same ports",
            "两个监听端口都关闭：连接被拒绝；恢复后仍用原端口"
        ),
        "hung" => text!("requests read, never answered", "读取请求，但从不应答"),
        "slow" => text!("every answer delayed by ms", "每个应答都延迟 ms 毫秒"),
        "auth-failure" => text!("every credential refused", "拒绝一切凭据"),
        "soap-fault" => text!("every SOAP call answered with a fault", "每个 SOAP 调用都以故障应答"),
        "http-500" => text!("every HTTP request answered with HTTP 500", "每个 HTTP 请求都以 HTTP 500 应答"),
        "clock-skew" => text!(
            "the camera clock runs seconds ahead (negative: behind); WS-Security fails beyond 60 s",
            "摄像机时钟快 seconds 秒（负数为慢）；超过 60 秒时 WS-Security 认证失败"
        ),
        "rtsp-down" => text!("the RTSP listener closed", "RTSP 监听端口关闭"),
        "frozen" => text!("the snapshot stops changing", "抓图不再变化"),
        "covered" => text!(
            "lens covered with tape: the snapshot is a nearly uniform dark grey",
            "镜头被胶带遮挡：抓图几乎是一片均匀的深灰"
        ),
        "dark" => text!(
            "lights out: the snapshot is the scene at about 5 % brightness, with noise",
            "灯光熄灭：抓图是亮度约 5 % 的原场景，带噪点"
        ),
        "blurred" => text!(
            "lens out of focus: the snapshot is the scene strongly blurred, with noise",
            "镜头失焦：抓图是严重模糊的原场景，带噪点"
        ),
        "low-resolution" => text!(
            "the main profile's video encoder reports 640×480 instead of 1920×1080; the snapshot is unchanged",
            "主码流的视频编码配置报告 640×480，而不是 1920×1080；抓图不变"
        ),
        _ => return None,
    })
}

/// What a panel fault does, in both languages; `None` for a name that is not a panel fault.
pub fn panel_fault_help(name: &str) -> Option<Text> {
    Some(match name {
        "no-answer" => text!("requests read, never answered", "读取请求，但从不应答"),
        "slow" => text!("every answer delayed by ms", "每个应答都延迟 ms 毫秒"),
        "exception" => text!(
            "every request answered with Modbus exception code (default 4)",
            "每个请求都以 Modbus 异常码 code 应答（默认 4）"
        ),
        "drop-connection" => text!("the connection closed on the next request", "下一个请求时关闭连接"),
        "wrong-transaction-id" => text!("answers carry the wrong transaction id", "应答带错误的事务号"),
        _ => return None,
    })
}

pub fn panel_fault_name(f: PanelFaultSim) -> &'static str {
    match f {
        PanelFaultSim::NoAnswer => "no-answer",
        PanelFaultSim::Slow(_) => "slow",
        PanelFaultSim::Exception(_) => "exception",
        PanelFaultSim::DropConnection => "drop-connection",
        PanelFaultSim::WrongTransactionId => "wrong-transaction-id",
    }
}

pub fn camera_event_name(k: CameraEventKind) -> &'static str {
    match k {
        CameraEventKind::SignalLoss => "signal-loss",
        CameraEventKind::Tamper => "tamper",
        CameraEventKind::StorageFailure => "storage-failure",
    }
}

/// Longest `slow` delay accepted: beyond it a client's own deadline has long fired, and a
/// typo (`"20m"` for `"20ms"`) would wedge the simulator's tasks for nothing.
pub const MAX_SLOW: Duration = Duration::from_secs(600);
/// Largest clock skew accepted, in seconds (a year either way).
pub const MAX_SKEW_SECS: i64 = 366 * 86400;

/// A camera fault from its name and parameters. `delay` is needed for `slow` and `seconds`
/// for `clock-skew` when switching them on; `param_names` says how the caller spells them
/// (`("delay", "seconds")` in scenario files, `("ms", "seconds")` in the control API).
pub fn camera_fault(
    name: &str,
    on: bool,
    delay: Option<Duration>,
    seconds: Option<i64>,
    param_names: (&str, &str),
) -> Result<CameraFault, Invalid> {
    let (delay_name, seconds_name) = param_names;
    let fault = match name {
        "down" => CameraFault::Down,
        "hung" => CameraFault::Hung,
        "slow" => CameraFault::Slow(slow_delay(on, delay, delay_name)?),
        "auth-failure" => CameraFault::AuthFailure,
        "soap-fault" => CameraFault::SoapFault,
        "http-500" => CameraFault::Http500,
        "clock-skew" => match (seconds, on) {
            (Some(s), _) if s.abs() > MAX_SKEW_SECS => {
                return Err(Invalid::new(
                    text!("a clock skew of {s} s is beyond a year", "时钟偏差 {s} 秒，超过了一年"),
                    text!(
                        "give {seconds_name} between -{MAX_SKEW_SECS} and {MAX_SKEW_SECS}",
                        "{seconds_name} 须在 -{MAX_SKEW_SECS} 到 {MAX_SKEW_SECS} 之间"
                    ),
                ));
            }
            (Some(s), _) => CameraFault::ClockSkew(s),
            (None, false) => CameraFault::ClockSkew(0),
            (None, true) => {
                return Err(Invalid::new(
                    text!("clock-skew needs the skew in seconds", "clock-skew 需要以秒为单位的偏差"),
                    text!(
                        "add {seconds_name} = 120 (negative: the camera runs behind)",
                        "加上 {seconds_name} = 120（负数表示摄像机时钟偏慢）"
                    ),
                ));
            }
        },
        "rtsp-down" => CameraFault::RtspDown,
        "frozen" => CameraFault::Frozen,
        "covered" => CameraFault::Covered,
        "dark" => CameraFault::Dark,
        "blurred" => CameraFault::Blurred,
        "low-resolution" => CameraFault::LowResolution,
        other => {
            let names = CAMERA_FAULTS.join(", ");
            return Err(Invalid::new(
                text!("unknown camera fault {other:?}", "未知的摄像机故障 {other:?}"),
                text!("use one of: {names}", "使用以下之一：{names}"),
            ));
        }
    };
    if delay.is_some() && !matches!(fault, CameraFault::Slow(_)) {
        return Err(only_for(delay_name, "slow"));
    }
    if seconds.is_some() && !matches!(fault, CameraFault::ClockSkew(_)) {
        return Err(only_for(seconds_name, "clock-skew"));
    }
    Ok(fault)
}

/// A panel fault from its name and parameters (`delay` for `slow`, `code` for `exception`,
/// default [`DEFAULT_EXCEPTION_CODE`]).
pub fn panel_fault(
    name: &str,
    on: bool,
    delay: Option<Duration>,
    code: Option<i64>,
    delay_name: &str,
) -> Result<PanelFaultSim, Invalid> {
    let fault = match name {
        "no-answer" => PanelFaultSim::NoAnswer,
        "slow" => PanelFaultSim::Slow(slow_delay(on, delay, delay_name)?),
        "exception" => match code {
            None => PanelFaultSim::Exception(DEFAULT_EXCEPTION_CODE),
            Some(c) => match u8::try_from(c) {
                Ok(c) if c >= 1 => PanelFaultSim::Exception(c),
                _ => {
                    return Err(Invalid::new(
                        text!("exception code {c} is not a Modbus exception code", "异常码 {c} 不是 Modbus 异常码"),
                        text!(
                            "give code between 1 and 255 (2 illegal address, 4 device failure, 6 busy, 11 gateway target failed)",
                            "code 须在 1 到 255 之间（2 非法地址，4 设备故障，6 设备忙，11 网关目标无响应）"
                        ),
                    ));
                }
            },
        },
        "drop-connection" => PanelFaultSim::DropConnection,
        "wrong-transaction-id" => PanelFaultSim::WrongTransactionId,
        other => {
            let names = PANEL_FAULTS.join(", ");
            return Err(Invalid::new(
                text!("unknown panel fault {other:?}", "未知的主机故障 {other:?}"),
                text!("use one of: {names}", "使用以下之一：{names}"),
            ));
        }
    };
    if delay.is_some() && !matches!(fault, PanelFaultSim::Slow(_)) {
        return Err(only_for(delay_name, "slow"));
    }
    if code.is_some() && !matches!(fault, PanelFaultSim::Exception(_)) {
        return Err(only_for("code", "exception"));
    }
    Ok(fault)
}

/// A parameter given to a fault that does not take it.
fn only_for(param: &str, fault: &str) -> Invalid {
    Invalid::new(
        text!("{param} applies only to the {fault} fault", "{param} 只用于 {fault} 故障"),
        text!("remove {param}", "删掉 {param}"),
    )
}

fn slow_delay(on: bool, delay: Option<Duration>, delay_name: &str) -> Result<Duration, Invalid> {
    match delay {
        Some(d) if d > MAX_SLOW => {
            let d = humantime::format_duration(d);
            Err(Invalid::new(
                text!("a delay of {d} is longer than the 10m limit", "延迟 {d} 超过了 10m 的上限"),
                text!(
                    "give a shorter {delay_name}; a client's deadline fires long before",
                    "把 {delay_name} 改短；客户端的超时早就到了"
                ),
            ))
        }
        Some(d) => Ok(d),
        None if !on => Ok(Duration::ZERO),
        None => Err(Invalid::new(
            text!("the slow fault needs a delay", "slow 故障需要延迟时间"),
            if delay_name == "ms" {
                text!("add \"ms\": 1500", "加上 \"ms\": 1500")
            } else {
                text!("add {delay_name} = \"1500ms\"", "加上 {delay_name} = \"1500ms\"")
            },
        )),
    }
}

pub fn camera_event(name: &str) -> Result<CameraEventKind, Invalid> {
    match name {
        "signal-loss" => Ok(CameraEventKind::SignalLoss),
        "tamper" => Ok(CameraEventKind::Tamper),
        "storage-failure" => Ok(CameraEventKind::StorageFailure),
        other => {
            let names = CAMERA_EVENTS.join(", ");
            Err(Invalid::new(
                text!("unknown camera event {other:?}", "未知的摄像机事件 {other:?}"),
                text!("use one of: {names}", "使用以下之一：{names}"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_name_round_trips() {
        for name in CAMERA_FAULTS {
            let f = camera_fault(
                name,
                true,
                (name == "slow").then_some(Duration::from_millis(5)),
                (name == "clock-skew").then_some(9),
                ("delay", "seconds"),
            )
            .unwrap();
            assert_eq!(camera_fault_name(f), name);
        }
        for name in PANEL_FAULTS {
            let f =
                panel_fault(name, true, (name == "slow").then_some(Duration::from_millis(5)), None, "delay").unwrap();
            assert_eq!(panel_fault_name(f), name);
        }
        for name in CAMERA_EVENTS {
            assert_eq!(camera_event_name(camera_event(name).unwrap()), name);
        }
        for name in CAMERA_FAULTS {
            assert!(camera_fault_help(name).is_some(), "{name} has no help");
        }
        for name in PANEL_FAULTS {
            assert!(panel_fault_help(name).is_some(), "{name} has no help");
        }
        assert!(camera_fault_help("no-answer").is_none() && panel_fault_help("down").is_none());
    }

    #[test]
    fn parameters_are_checked() {
        let e = camera_fault("slow", true, None, None, ("ms", "seconds")).unwrap_err();
        assert!(e.fix.en.contains("\"ms\"") && e.fix.zh.contains("\"ms\""), "{e}");
        assert!(camera_fault("slow", false, None, None, ("ms", "seconds")).is_ok());
        assert!(camera_fault("down", true, Some(Duration::from_secs(1)), None, ("delay", "seconds")).is_err());
        assert!(camera_fault("clock-skew", true, None, None, ("delay", "seconds")).is_err());
        assert!(panel_fault("exception", true, None, Some(0), "delay").is_err());
        assert_eq!(panel_fault("exception", true, None, None, "delay").unwrap(), PanelFaultSim::Exception(4));
        assert!(camera_fault("dwn", true, None, None, ("delay", "seconds")).unwrap_err().fix.en.contains("down"));
    }
}
