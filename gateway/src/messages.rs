//! Human-readable alert messages, in English or Simplified Chinese.
//!
//! Security staff read the `message` field of an alert; most of them read Chinese. Only the
//! message is translated: payload field names and codes (`status`, `fault`, `zone_state`…)
//! stay English and stable, so head-office software never depends on the language. Device
//! and zone names come from the site config as written (they may themselves be Chinese).

/// The language of alert messages (`[branch] language`: `en` or `zh-CN`).
pub use i18n::Lang;

/// Every message the gateway writes into an alert.
#[derive(Debug, Clone)]
pub enum Msg<'a> {
    CameraLost {
        name: &'a str,
        status: &'a str,
    },
    CameraFlapping {
        name: &'a str,
        losses: usize,
        settle_secs: u64,
    },
    CameraBack {
        name: &'a str,
    },
    /// The main stream is below the camera's minimum resolution.
    LowResolution {
        name: &'a str,
        actual: &'a str,
        minimum: &'a str,
    },
    ResolutionMet {
        name: &'a str,
        actual: &'a str,
        minimum: &'a str,
    },
    /// Appended: required zones left unwatched (names).
    ZonesUnwatched {
        zones: &'a [String],
    },
    /// Appended: the alarm system is armed.
    Armed,
    /// Appended: a camera linked to an alarm or door is down.
    LinkedCameraDown,
    ZoneAlarm {
        zone: &'a str,
    },
    ZoneTamper {
        zone: &'a str,
    },
    ZoneRestored {
        zone: &'a str,
        state: &'a str,
    },
    DoorForced {
        door: &'a str,
    },
    DoorHeld {
        door: &'a str,
        secs: u64,
    },
    DoorClosed {
        door: &'a str,
    },
    PanelUnreadable {
        name: &'a str,
        reason: &'a str,
    },
    PanelReadable {
        name: &'a str,
    },
    PanelHung {
        name: &'a str,
        secs: u64,
    },
    PanelHeartbeatBack {
        name: &'a str,
    },
    Fault {
        device: &'a str,
        fault: &'a str,
        detail: &'a str,
    },
    FaultCleared {
        device: &'a str,
        fault: &'a str,
    },
    /// The gateway's link to head office.
    LinkDown {
        secs: u64,
    },
    LinkRestored {
        secs: u64,
    },
    LinkRestoredAfterRestart,
    PublishRefused {
        topic: &'a str,
        reason: &'a str,
    },
    PublishAccepted,
    EventsDropped {
        count: u64,
    },
    /// Appended to a clear found at the first observation after a gateway restart.
    ObservedAfterRestart,
    /// Appended to a clear made because the device left the configuration.
    RemovedFromConfig,
    /// Appended to a clear made because the device is now in maintenance.
    InMaintenance,
    /// A condition raised before a restart that can no longer be observed.
    Ended {
        raised: &'a str,
    },
    /// Follow-up of an alarm: `taken` of `total` linked cameras gave a picture.
    Snapshots {
        what: &'a str,
        taken: usize,
        total: usize,
    },
}

impl Msg<'_> {
    pub fn render(&self, lang: Lang) -> String {
        match lang {
            Lang::En => self.en(),
            Lang::Zh => self.zh(),
        }
    }

    fn en(&self) -> String {
        match self {
            Msg::CameraLost { name, status } => match *status {
                "auth-failed" => format!("Camera {name} refuses the configured credentials"),
                "frozen" => format!("Camera {name}: the picture is frozen"),
                "stream-down" => format!("Camera {name}: the video stream does not answer"),
                "signal-lost" => format!("Camera {name} lost its video signal"),
                "tcp-only" => format!("Camera {name} connects but does not answer ONVIF"),
                "obstructed" => format!("Camera {name}: the picture is blocked (lens covered or obstructed)"),
                "dark" => format!("Camera {name}: the picture is too dark"),
                "defocused" => format!("Camera {name}: the picture is out of focus"),
                _ => format!("Camera {name} is offline ({status})"),
            },
            Msg::CameraFlapping { name, losses, settle_secs } => format!(
                "Camera {name} is flapping (lost {losses} times in 10 min); holding the alert until it stays up for {settle_secs} s"
            ),
            Msg::CameraBack { name } => format!("Camera {name} is back online"),
            Msg::LowResolution { name, actual, minimum } => {
                format!("Camera {name} streams {actual}, below the required {minimum} (not HD)")
            }
            Msg::ResolutionMet { name, actual, minimum } => {
                format!("Camera {name} streams {actual} again, meeting the required {minimum}")
            }
            Msg::ZonesUnwatched { zones } => format!("; required zone(s) now unwatched: {}", zones.join(", ")),
            Msg::Armed => "; the alarm system is armed".to_string(),
            Msg::LinkedCameraDown => "; a linked camera is DOWN".to_string(),
            Msg::ZoneAlarm { zone } => format!("Alarm in zone {zone}"),
            Msg::ZoneTamper { zone } => format!("Tamper on alarm zone {zone}"),
            Msg::ZoneRestored { zone, state } => format!("Alarm zone {zone} back to {state}"),
            Msg::DoorForced { door } => format!("Door {door} forced open"),
            Msg::DoorHeld { door, secs } => format!("Door {door} held open for more than {secs} s"),
            Msg::DoorClosed { door } => format!("Door {door} closed"),
            Msg::PanelUnreadable { name, reason } => format!("Panel {name} cannot be read: {reason}"),
            Msg::PanelReadable { name } => format!("Panel {name} can be read again"),
            Msg::PanelHung { name, secs } => {
                format!("Panel {name} is hung: its heartbeat has not changed for {secs} s")
            }
            Msg::PanelHeartbeatBack { name } => format!("Panel {name}: the heartbeat is changing again"),
            Msg::Fault { device, fault, detail } => format!("{device}: {fault} — {detail}"),
            Msg::FaultCleared { device, fault } => format!("{device}: {fault} cleared"),
            Msg::Snapshots { what, taken, total } => {
                format!("Snapshots for {what}: {taken} of {total} linked camera(s) gave a picture")
            }
            Msg::LinkDown { secs } => format!("Link to head office down for {secs} s"),
            Msg::LinkRestored { secs } => format!("Link to head office restored after {secs} s"),
            Msg::LinkRestoredAfterRestart => "Link to head office restored (observed after a gateway restart)".into(),
            Msg::PublishRefused { topic, reason } => format!(
                "Head office's broker refuses the gateway's messages ({reason}, topic {topic}); they are kept and retried: check the broker's user and ACL for this branch"
            ),
            Msg::PublishAccepted => "Head office's broker accepts the gateway's messages again".into(),
            Msg::EventsDropped { count } => format!("Outbox full: {count} buffered events were dropped"),
            Msg::ObservedAfterRestart => " (observed after a gateway restart)".into(),
            Msg::RemovedFromConfig => " (removed from the configuration)".into(),
            Msg::InMaintenance => " (now in maintenance)".into(),
            Msg::Ended { raised } => format!("Ended: {raised}"),
        }
    }

    fn zh(&self) -> String {
        match self {
            Msg::CameraLost { name, status } => match *status {
                "auth-failed" => format!("摄像机 {name} 拒绝配置的用户名或密码"),
                "frozen" => format!("摄像机 {name} 画面冻结"),
                "stream-down" => format!("摄像机 {name} 视频流无响应"),
                "signal-lost" => format!("摄像机 {name} 视频信号丢失"),
                "tcp-only" => format!("摄像机 {name} 网络可达但 ONVIF 无响应"),
                "obstructed" => format!("摄像机 {name} 画面被遮挡（镜头被遮盖或阻挡）"),
                "dark" => format!("摄像机 {name} 画面过暗"),
                "defocused" => format!("摄像机 {name} 画面失焦（模糊）"),
                _ => format!("摄像机 {name} 离线（{}）", status_zh(status)),
            },
            Msg::CameraFlapping { name, losses, settle_secs } => {
                format!("摄像机 {name} 频繁掉线（10 分钟内掉线 {losses} 次），需持续在线 {settle_secs} 秒后才恢复告警")
            }
            Msg::CameraBack { name } => format!("摄像机 {name} 已恢复在线"),
            Msg::LowResolution { name, actual, minimum } => {
                format!("摄像机 {name} 主码流分辨率 {actual}，低于要求的 {minimum}（非高清）")
            }
            Msg::ResolutionMet { name, actual, minimum } => {
                format!("摄像机 {name} 主码流分辨率已恢复为 {actual}，达到要求的 {minimum}")
            }
            Msg::ZonesUnwatched { zones } => format!("；必须监控的区域已无人看守：{}", zones.join("、")),
            Msg::Armed => "；报警系统处于布防状态".to_string(),
            Msg::LinkedCameraDown => "；联动摄像机离线".to_string(),
            Msg::ZoneAlarm { zone } => format!("防区 {zone} 报警"),
            Msg::ZoneTamper { zone } => format!("防区 {zone} 防拆报警"),
            Msg::ZoneRestored { zone, state } => format!("防区 {zone} 已恢复（{}）", zone_state_zh(state)),
            Msg::DoorForced { door } => format!("门 {door} 被强行打开"),
            Msg::DoorHeld { door, secs } => format!("门 {door} 开门超时（超过 {secs} 秒）"),
            Msg::DoorClosed { door } => format!("门 {door} 已关闭"),
            Msg::PanelUnreadable { name, reason } => format!("控制器 {name} 无法读取：{reason}"),
            Msg::PanelReadable { name } => format!("控制器 {name} 已恢复通信"),
            Msg::PanelHung { name, secs } => format!("控制器 {name} 死机：心跳 {secs} 秒未变化"),
            Msg::PanelHeartbeatBack { name } => format!("控制器 {name} 心跳已恢复"),
            Msg::Fault { device, fault, detail } => format!("{device}：{} — {detail}", fault_zh(fault)),
            Msg::FaultCleared { device, fault } => format!("{device}：{}已恢复", fault_zh(fault)),
            Msg::Snapshots { what, taken, total } => format!("{what} 联动抓图：{total} 台摄像机中 {taken} 台已抓图"),
            Msg::LinkDown { secs } => format!("与总行的上行链路中断已 {secs} 秒"),
            Msg::LinkRestored { secs } => format!("与总行的上行链路已恢复（中断 {secs} 秒）"),
            Msg::LinkRestoredAfterRestart => "与总行的上行链路已恢复（网关重启后确认）".into(),
            Msg::PublishRefused { topic, reason } => format!(
                "总行 MQTT 服务器拒绝接收本网关的消息（{reason}，主题 {topic}）；消息已保留并将重试，请核对该支行的用户名和 ACL 配置"
            ),
            Msg::PublishAccepted => "总行 MQTT 服务器已恢复接收本网关的消息".into(),
            Msg::EventsDropped { count } => format!("本地缓存已满：丢弃了 {count} 条缓存事件"),
            Msg::ObservedAfterRestart => "（网关重启后确认）".into(),
            Msg::RemovedFromConfig => "（已从配置中删除）".into(),
            Msg::InMaintenance => "（设备已进入维护状态）".into(),
            Msg::Ended { raised } => format!("已结束：{raised}"),
        }
    }
}

fn status_zh(status: &str) -> &str {
    match status {
        "unreachable" => "网络不可达",
        "tcp-only" => "ONVIF 无响应",
        _ => status,
    }
}

fn zone_state_zh(state: &str) -> &str {
    match state {
        "normal" => "正常",
        "bypassed" => "旁路",
        "disabled" => "禁用",
        "fault" => "故障",
        _ => state,
    }
}

fn fault_zh(fault: &str) -> &str {
    match fault {
        "unreachable" => "通信中断",
        "modbus-exception" => "Modbus 异常应答",
        "protocol-error" => "协议错误",
        "heartbeat-stopped" => "心跳停止",
        "tamper" => "防拆报警",
        "signal-loss" => "视频信号丢失",
        "storage-failure" => "存储故障",
        "ac-loss" => "交流电源断电",
        "battery-low" => "蓄电池欠压",
        "comm-failure" => "通信故障",
        "lock-fault" => "门锁故障",
        "reader-fault" => "读卡器故障",
        "uplink-down" => "上行链路中断",
        "outbox-overflow" => "缓存溢出",
        "uplink-denied" => "上行消息被拒收",
        "low-resolution" => "分辨率不达标",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_messages_keep_configured_names() {
        let m = Msg::DoorForced { door: "金库门" }.render(Lang::Zh);
        assert_eq!(m, "门 金库门 被强行打开");
        let m = Msg::CameraLost { name: "营业厅", status: "unreachable" }.render(Lang::Zh);
        assert!(m.contains("营业厅") && m.contains("离线"), "{m}");
        assert_eq!(Msg::DoorForced { door: "Vault" }.render(Lang::En), "Door Vault forced open");
    }
}
