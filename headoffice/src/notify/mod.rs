//! Notifications: the right people are told at once, on the channels Chinese banks use.
//!
//! ```text
//! alerts, order events (notified = 0) ─▶ rules (event, severity, branch/region, hours)
//!     ─▶ grouped per branch and channel (a storm is one message) ─▶ notifications (queued in
//!        the database, one row per channel and recipient) ─▶ senders (webhook, WeCom, DingTalk,
//!        e-mail, SMS), retried with backoff until delivered or expired
//! open alarms not acknowledged within a rule's escalate_after ─▶ the rule named escalate_to
//! ```
//!
//! Every event is taken once (its `notified` flag flips in the transaction that queues its
//! messages), and every message is unique per (what it is about, channel, recipient), so
//! several `hq serve` processes can notify from one database without telling anyone twice.

pub mod channel;
pub mod run;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{FixedOffset, NaiveTime, Timelike};
use protocols::time::Timestamp;
use protocols::{BranchId, Severity};
use serde::Deserialize;

use crate::directory::Directory;

/// `[notify]` of the head-office configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Where the console is, as people open it: messages link to its pages.
    pub console_url: String,
    /// Events of one branch within this long go out as one message (a power cut: 12 cameras,
    /// one message).
    #[serde(with = "humantime_serde")]
    pub group_window: Duration,
    /// A message not delivered within this long is given up (marked expired).
    #[serde(with = "humantime_serde")]
    pub retry_for: Duration,
    /// The language of messages, unless a channel says otherwise: zh-CN or en.
    pub lang: String,
    pub channel: HashMap<String, ChannelConfig>,
    pub rule: Vec<Rule>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            console_url: String::new(),
            group_window: Duration::from_secs(10),
            retry_for: Duration::from_secs(24 * 3600),
            lang: "zh-CN".into(),
            channel: HashMap::new(),
            rule: Vec::new(),
        }
    }
}

/// One way to reach people.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ChannelConfig {
    /// POST of the event as JSON, signed: `X-Hq-Signature: sha256=HEX(HMAC-SHA256(secret,
    /// timestamp + "." + body))` with `X-Hq-Timestamp`.
    Webhook {
        url: String,
        #[serde(default)]
        secret: String,
        #[serde(default)]
        lang: Option<String>,
    },
    /// A WeCom (企业微信) group robot: its webhook URL with the key.
    Wecom {
        url: String,
        #[serde(default)]
        lang: Option<String>,
    },
    /// A DingTalk (钉钉) group robot with signing ("加签"): its webhook URL with the access token,
    /// and the robot's secret (SEC…).
    Dingtalk {
        url: String,
        secret: String,
        #[serde(default)]
        lang: Option<String>,
    },
    /// E-mail over SMTP.
    Email {
        /// host:port
        smtp: String,
        /// starttls (the default), tls (implicit, port 465) or none (only on a trusted network).
        #[serde(default = "default_security")]
        security: String,
        #[serde(default)]
        username: String,
        /// A file whose first line is the SMTP password.
        #[serde(default)]
        password_file: Option<String>,
        /// The CA certificate (PEM) that signed the SMTP server's certificate, when it is not
        /// one the system trusts (a bank's own CA).
        #[serde(default)]
        ca_file: Option<String>,
        from: String,
        to: Vec<String>,
        #[serde(default)]
        lang: Option<String>,
    },
    /// Text messages through the bank's SMS gateway: a POST of `{"to": PHONE, "text": TEXT}`
    /// per recipient, with `Authorization: Bearer TOKEN` when a token is given.
    Sms {
        url: String,
        #[serde(default)]
        token: String,
        to: Vec<String>,
        #[serde(default)]
        lang: Option<String>,
    },
}

fn default_security() -> String {
    "starttls".into()
}

impl ChannelConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Webhook { .. } => "webhook",
            ChannelConfig::Wecom { .. } => "wecom",
            ChannelConfig::Dingtalk { .. } => "dingtalk",
            ChannelConfig::Email { .. } => "email",
            ChannelConfig::Sms { .. } => "sms",
        }
    }

    fn lang_field(&self) -> Option<&str> {
        match self {
            ChannelConfig::Webhook { lang, .. }
            | ChannelConfig::Wecom { lang, .. }
            | ChannelConfig::Dingtalk { lang, .. }
            | ChannelConfig::Email { lang, .. }
            | ChannelConfig::Sms { lang, .. } => lang.as_deref(),
        }
    }

    /// Who receives one message each: the addresses or phone numbers; a robot or a webhook is
    /// one recipient ("").
    pub fn recipients(&self) -> Vec<String> {
        match self {
            ChannelConfig::Email { to, .. } | ChannelConfig::Sms { to, .. } => to.clone(),
            _ => vec![String::new()],
        }
    }
}

/// Which events go to which channels.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    /// Alert kinds (camera-offline, alarm-link, door-status, device-fault) and order events
    /// (order-opened, order-overdue, order-reopened, order-fixed, order-verified,
    /// order-closed).
    pub events: Vec<String>,
    #[serde(default = "default_severity")]
    pub severity_min: String,
    #[serde(default)]
    pub branches: Vec<String>,
    #[serde(default)]
    pub regions: Vec<String>,
    /// "HH:MM-HH:MM" in the console's offset (may wrap midnight, e.g. "18:00-08:00").
    #[serde(default)]
    pub hours: Option<String>,
    pub channels: Vec<String>,
    /// Alarms only: not acknowledged this long after they occurred → the rule `escalate_to`.
    #[serde(default, with = "humantime_serde")]
    pub escalate_after: Option<Duration>,
    #[serde(default)]
    pub escalate_to: Option<String>,
}

fn default_severity() -> String {
    "info".into()
}

/// Every event a rule may name.
pub const EVENTS: [&str; 10] = [
    "camera-offline",
    "alarm-link",
    "door-status",
    "device-fault",
    "order-opened",
    "order-overdue",
    "order-reopened",
    "order-fixed",
    "order-verified",
    "order-closed",
];

impl NotifyConfig {
    /// Checks names, URLs, addresses and references; the error names the field and the fix.
    pub fn check(&self) -> Result<(), String> {
        if !self.console_url.is_empty() && reqwest::Url::parse(&self.console_url).is_err() {
            return Err(format!(
                "notify.console_url {:?} is not a URL (e.g. https://hq.bank.example/)",
                self.console_url
            ));
        }
        if crate::web::Lang::parse(&self.lang).is_none() {
            return Err(format!("notify.lang {:?}: zh-CN or en", self.lang));
        }
        let mut names: Vec<&String> = self.channel.keys().collect();
        names.sort();
        for (name, c) in &self.channel {
            let f = |field: &str| format!("notify.channel.{name}.{field}");
            if let Some(l) = c.lang_field()
                && crate::web::Lang::parse(l).is_none()
            {
                return Err(format!("{} {l:?}: zh-CN or en", f("lang")));
            }
            match c {
                ChannelConfig::Webhook { url, .. }
                | ChannelConfig::Wecom { url, .. }
                | ChannelConfig::Sms { url, .. } => check_url(&f("url"), url)?,
                ChannelConfig::Dingtalk { url, secret, .. } => {
                    check_url(&f("url"), url)?;
                    if secret.trim().is_empty() {
                        return Err(format!(
                            "{} is empty: give the robot's signing secret (加签, SEC…) from its DingTalk settings",
                            f("secret")
                        ));
                    }
                }
                ChannelConfig::Email { smtp, security, from, to, password_file, username, ca_file, .. } => {
                    if let Some(ca) = ca_file {
                        let pem =
                            std::fs::read(ca).map_err(|e| format!("{} {ca:?}: cannot read it: {e}", f("ca_file")))?;
                        let is_pem = String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----");
                        if !is_pem || lettre::transport::smtp::client::Certificate::from_pem(&pem).is_err() {
                            return Err(format!(
                                "{} {ca:?}: not a PEM certificate (-----BEGIN CERTIFICATE-----)",
                                f("ca_file")
                            ));
                        }
                    }
                    let ok = smtp.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
                    if !ok {
                        return Err(format!("{} {smtp:?}: give host:port, e.g. smtp.bank.example:587", f("smtp")));
                    }
                    if !matches!(security.as_str(), "starttls" | "tls" | "none") {
                        return Err(format!("{} {security:?}: starttls, tls or none", f("security")));
                    }
                    for a in std::iter::once(from).chain(to.iter()) {
                        if a.parse::<lettre::message::Mailbox>().is_err() {
                            return Err(format!(
                                "{}: {a:?} is not an e-mail address",
                                f(if a == from { "from" } else { "to" })
                            ));
                        }
                    }
                    if to.is_empty() {
                        return Err(format!("{} is empty: give at least one address", f("to")));
                    }
                    if !username.is_empty() && password_file.is_none() {
                        return Err(format!("{} is missing: a username needs the password's file", f("password_file")));
                    }
                }
            }
            if let ChannelConfig::Sms { to, .. } = c
                && to.is_empty()
            {
                return Err(format!("{} is empty: give at least one phone number", f("to")));
            }
        }
        let rule_names: Vec<&str> = self.rule.iter().map(|r| r.name.as_str()).collect();
        for (i, r) in self.rule.iter().enumerate() {
            let f = |field: &str| format!("notify.rule[{i}] ({:?}).{field}", r.name);
            if r.name.trim().is_empty() {
                return Err(format!("notify.rule[{i}].name is empty: give each rule a name"));
            }
            if rule_names.iter().filter(|n| **n == r.name).count() > 1 {
                return Err(format!("{}: two rules have this name", f("name")));
            }
            for e in &r.events {
                if !EVENTS.contains(&e.as_str()) {
                    return Err(format!("{} {e:?}: expected one of {}", f("events"), EVENTS.join(", ")));
                }
            }
            if Severity::parse(&r.severity_min).is_none() {
                return Err(format!("{} {:?}: info, warning, major or critical", f("severity_min"), r.severity_min));
            }
            for c in &r.channels {
                if !self.channel.contains_key(c) {
                    return Err(format!(
                        "{}: no channel named {c:?} (defined: {})",
                        f("channels"),
                        names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            if r.channels.is_empty() {
                return Err(format!("{} is empty: name at least one channel", f("channels")));
            }
            if let Some(h) = &r.hours {
                parse_hours(h).map_err(|e| format!("{} {h:?}: {e}", f("hours")))?;
            }
            for b in &r.branches {
                BranchId::new(b.clone()).map_err(|e| format!("{} {b:?}: a branch id {e}", f("branches")))?;
            }
            match (&r.escalate_after, &r.escalate_to) {
                (Some(_), Some(to)) if !rule_names.contains(&to.as_str()) => {
                    return Err(format!("{} {to:?}: no rule has this name", f("escalate_to")));
                }
                (Some(_), None) | (None, Some(_)) => {
                    return Err(format!("{}: escalate_after and escalate_to go together", f("escalate_after")));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn channel_lang(&self, c: &ChannelConfig) -> crate::web::Lang {
        c.lang_field()
            .and_then(crate::web::Lang::parse)
            .or_else(|| crate::web::Lang::parse(&self.lang))
            .unwrap_or(crate::web::Lang::Zh)
    }
}

fn check_url(field: &str, url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        _ => Err(format!("{field} {url:?} is not an http(s) URL: copy the whole address from the receiver's settings")),
    }
}

/// "HH:MM-HH:MM" → (from, to).
pub fn parse_hours(s: &str) -> Result<(NaiveTime, NaiveTime), String> {
    let (a, b) = s.split_once('-').ok_or("write HH:MM-HH:MM, e.g. 18:00-08:00")?;
    let t = |x: &str| {
        let x = x.trim();
        if x == "24:00" {
            return NaiveTime::from_hms_opt(23, 59, 59).ok_or_else(|| "bad time".to_string());
        }
        NaiveTime::parse_from_str(x, "%H:%M").map_err(|_| format!("{x:?} is not HH:MM"))
    };
    Ok((t(a)?, t(b)?))
}

/// One thing to tell people about.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What the message is about, unique: `alert:BRANCH/ID`, `order:PK`, `esc:BRANCH/ID:RULE`.
    pub key: String,
    pub branch: BranchId,
    /// An alert kind, `order-<action>`, or `escalation`.
    pub kind: String,
    pub severity: Severity,
    pub at: Timestamp,
    /// What happened, a line in each language.
    pub what_en: String,
    pub what_zh: String,
    /// The console page (a path: /branch/ID, /orders/N, /alerts).
    pub page: String,
}

impl Rule {
    /// Whether the rule takes this event (at this local time of day).
    pub fn matches(&self, e: &Event, dir: &Directory, offset: FixedOffset) -> bool {
        let kind_ok = self.events.contains(&e.kind);
        let sev_ok = Severity::parse(&self.severity_min).is_none_or(|m| e.severity >= m);
        let branch_ok = (self.branches.is_empty() && self.regions.is_empty())
            || self.branches.iter().any(|b| b == e.branch.as_str())
            || dir.get(&e.branch).is_some_and(|i| self.regions.contains(&i.region));
        let hours_ok = match self.hours.as_deref().map(parse_hours) {
            Some(Ok((from, to))) => {
                let now = e.at.with_timezone(&offset).time();
                let now = NaiveTime::from_hms_opt(now.hour(), now.minute(), now.second()).unwrap_or(now);
                if from <= to { from <= now && now <= to } else { now >= from || now <= to }
            }
            _ => true,
        };
        kind_ok && sev_ok && branch_ok && hours_ok
    }
}

/// One message for a channel: events of one branch, grouped.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub branch: BranchId,
    pub subject: String,
    pub text: String,
    /// The console page it links to, as a full URL when the console's address is configured.
    pub link: String,
    pub events: Vec<Event>,
}

/// The text of a message about `events` (one branch), in `lang`.
pub fn compose(
    events: &[Event],
    lang: crate::web::Lang,
    dir: &Directory,
    console_url: &str,
    offset: FixedOffset,
) -> Message {
    use crate::web::Lang;
    let first = &events[0];
    let branch = &first.branch;
    let name = dir.get(branch).map(|i| i.name.as_str()).filter(|n| !n.is_empty()).unwrap_or(branch.as_str());
    let page =
        if events.len() == 1 { first.page.clone() } else { format!("/branch/{}", crate::web::encode(branch.as_str())) };
    let link =
        if console_url.is_empty() { page.clone() } else { format!("{}{}", console_url.trim_end_matches('/'), page) };
    let when = |e: &Event| e.at.with_timezone(&offset).format("%m-%d %H:%M:%S").to_string();
    let escalated = events.iter().any(|e| e.kind == "escalation");
    let (subject, mut text) = match lang {
        Lang::Zh => {
            let tag = if escalated { "【升级】" } else { "【网点安防】" };
            if events.len() == 1 {
                (
                    format!("{tag}{name}：{}", first.what_zh),
                    format!("{tag}{name}（{branch}）：{}，时间 {}。", first.what_zh, when(first)),
                )
            } else {
                let mut t = format!("{tag}{name}（{branch}）{} 条事件：\n", events.len());
                for e in events.iter().take(20) {
                    t.push_str(&format!("· {} {}\n", when(e), e.what_zh));
                }
                if events.len() > 20 {
                    t.push_str(&format!("…… 另有 {} 条\n", events.len() - 20));
                }
                (format!("{tag}{name}：{} 条事件", events.len()), t)
            }
        }
        Lang::En => {
            let tag = if escalated { "[ESCALATED] " } else { "[Branch security] " };
            if events.len() == 1 {
                (
                    format!("{tag}{name}: {}", first.what_en),
                    format!("{tag}{name} ({branch}): {}, at {}.", first.what_en, when(first)),
                )
            } else {
                let mut t = format!("{tag}{name} ({branch}), {} events:\n", events.len());
                for e in events.iter().take(20) {
                    t.push_str(&format!("- {} {}\n", when(e), e.what_en));
                }
                if events.len() > 20 {
                    t.push_str(&format!("... and {} more\n", events.len() - 20));
                }
                (format!("{tag}{name}: {} events", events.len()), t)
            }
        }
    };
    text.push_str(&match lang {
        Lang::Zh => format!("\n详情：{link}"),
        Lang::En => format!("\nDetails: {link}"),
    });
    Message { branch: branch.clone(), subject, text, link, events: events.to_vec() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ev(kind: &str, sev: Severity, h: u32) -> Event {
        Event {
            key: format!("alert:b1/{kind}{h}"),
            branch: BranchId::new("b1").unwrap(),
            kind: kind.into(),
            severity: sev,
            at: Utc.with_ymd_and_hms(2026, 1, 1, h, 0, 0).unwrap(),
            what_en: "camera Vault offline".into(),
            what_zh: "摄像机 金库 离线".into(),
            page: "/branch/b1".into(),
        }
    }

    fn rule() -> Rule {
        Rule {
            name: "night".into(),
            events: vec!["camera-offline".into()],
            severity_min: "major".into(),
            branches: vec![],
            regions: vec!["华北".into()],
            hours: Some("18:00-08:00".into()),
            channels: vec!["x".into()],
            escalate_after: None,
            escalate_to: None,
        }
    }

    #[test]
    fn rules_match_kind_severity_region_and_hours() {
        let dir = Directory::parse("id,name,region\nb1,朝阳支行,华北\n".as_bytes()).unwrap();
        let cst = FixedOffset::east_opt(8 * 3600).unwrap();
        let r = rule();
        // 14:00 UTC is 22:00 in Beijing: inside 18:00–08:00.
        assert!(r.matches(&ev("camera-offline", Severity::Critical, 14), &dir, cst));
        assert!(!r.matches(&ev("camera-offline", Severity::Critical, 4), &dir, cst), "12:00 Beijing");
        assert!(!r.matches(&ev("camera-offline", Severity::Warning, 14), &dir, cst));
        assert!(!r.matches(&ev("door-status", Severity::Critical, 14), &dir, cst));
        assert!(!r.matches(&ev("camera-offline", Severity::Critical, 14), &Directory::default(), cst), "region");
    }

    #[test]
    fn a_storm_is_one_message_naming_the_branch_and_the_page() {
        let dir = Directory::parse("id,name,region\nb1,朝阳支行,华北\n".as_bytes()).unwrap();
        let cst = FixedOffset::east_opt(8 * 3600).unwrap();
        let evs: Vec<Event> = (0..12).map(|i| ev("camera-offline", Severity::Critical, i)).collect();
        let m = compose(&evs, crate::web::Lang::Zh, &dir, "https://hq.bank/", cst);
        assert!(m.subject.contains("朝阳支行") && m.subject.contains("12 条"), "{}", m.subject);
        assert!(m.text.contains("https://hq.bank/branch/b1"), "{}", m.text);
        let one = compose(&evs[..1], crate::web::Lang::En, &dir, "", cst);
        assert!(one.text.contains("朝阳支行 (b1): camera Vault offline"), "{}", one.text);
    }

    #[test]
    fn configuration_mistakes_name_the_field_and_the_fix() {
        let ok = r#"
[notify]
console_url = "https://hq.bank/"
[notify.channel.duty]
type = "wecom"
url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"
[notify.channel.boss]
type = "dingtalk"
url = "https://oapi.dingtalk.com/robot/send?access_token=t"
secret = "SECabc"
[notify.channel.mail]
type = "email"
smtp = "127.0.0.1:2525"
security = "none"
from = "hq@bank.example"
to = ["duty@bank.example"]
[[notify.rule]]
name = "alarms"
events = ["alarm-link"]
channels = ["duty", "mail"]
escalate_after = "5m"
escalate_to = "boss"
[[notify.rule]]
name = "boss"
events = ["alarm-link"]
channels = ["boss"]
"#;
        crate::orders::HqConfig::parse(ok).unwrap();
        for (from, to, says) in [
            ("channels = [\"duty\", \"mail\"]", "channels = [\"duty\", \"pager\"]", "no channel named \"pager\""),
            ("secret = \"SECabc\"", "secret = \"\"", "notify.channel.boss.secret"),
            ("type = \"wecom\"", "type = \"telegram\"", "telegram"),
            ("smtp = \"127.0.0.1:2525\"", "smtp = \"mailhost\"", "notify.channel.mail.smtp"),
            ("to = [\"duty@bank.example\"]", "to = [\"duty\"]", "not an e-mail address"),
            ("escalate_to = \"boss\"", "escalate_to = \"bosses\"", "no rule has this name"),
            (
                "events = [\"alarm-link\"]\nchannels = [\"duty\", \"mail\"]",
                "events = [\"alarm\"]\nchannels = [\"duty\", \"mail\"]",
                "notify.rule[0] (\"alarms\").events",
            ),
            (
                "url = \"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k\"",
                "url = \"qyapi\"",
                "notify.channel.duty.url",
            ),
        ] {
            let text = ok.replacen(from, to, 1);
            let e = crate::orders::HqConfig::parse(&text).unwrap_err();
            assert!(e.contains(says), "{to}: {e}");
        }
    }
}
