//! `branch-gateway`: the CLI over the gateway library.
//!
//! Exit codes: 0 success; 1 a runtime failure; 2 bad usage or a bad configuration (so a
//! systemd unit can tell "fix the file" from "try again").

// Data here comes from devices, networks, files, databases and users: no unwrap or expect
// outside tests (a test's panic is its failure).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::config::{ConfigError, SiteConfig};
use gateway::pollers::panel::ProfileStore;
use i18n::{Lang, tr};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

#[derive(Parser)]
#[command(
    name = "branch-gateway",
    version,
    about = "Branch security gateway: watches cameras and panels, tells head office"
)]
struct Cli {
    /// The language of what a person reads (en or zh-CN); default: the locale (LC_ALL,
    /// LC_MESSAGES, LANG), English unless it is zh_*. Field names, codes and exit statuses
    /// never change.
    #[arg(long, global = true, value_name = "LANG", value_parser = i18n::parse_flag)]
    lang: Option<Lang>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway for one branch.
    Run {
        /// The site configuration (TOML).
        config: PathBuf,
        /// Log lines as text (colours only on a terminal) or as one JSON object per line.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Validate configuration files and list every problem; exit 2 if any.
    CheckConfig {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Poll every configured device once with full diagnostics and print a pass/fail report
    /// with the fix for each failure. Exit 0 when the branch is ready, 1 when not, 2 on a bad
    /// config.
    Commission {
        config: PathBuf,
        /// Print the report as JSON (for tooling).
        #[arg(long)]
        json: bool,
    },
    /// Find ONVIF devices on the LAN (WS-Discovery) and, with --config, compare them with the
    /// configured cameras. Exit 0 whatever was found, 2 on a bad config.
    Discover {
        /// Site configuration: report which configured cameras answered, which did not, and
        /// which devices found are not configured.
        #[arg(long)]
        config: Option<PathBuf>,
        /// How long to collect answers (100ms – 60s).
        #[arg(long, default_value = "3s", value_parser = discover_timeout)]
        timeout: std::time::Duration,
        /// Probe through the interface with this address (repeatable; default: every
        /// non-loopback IPv4 interface).
        #[arg(long = "interface-addr", value_name = "IP")]
        interface_addr: Vec<std::net::IpAddr>,
        /// Probe this device by unicast instead of multicast (IP or IP:PORT, port 3702 by
        /// default; repeatable). For devices on other subnets, and for tests on loopback.
        #[arg(long, value_name = "IP[:PORT]", value_parser = discover_target)]
        target: Vec<std::net::SocketAddr>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // clap's own handling: help and version on stdout with exit 0, a usage error on stderr with
    // exit 2 — the same in every program of the workspace.
    let cli = Cli::parse();
    let lang = Lang::choose(cli.lang);
    lang.set_current();
    match cli.command {
        Command::CheckConfig { files } => check_config(&files, lang),
        Command::Run { config, log_format } => run(config, log_format, lang),
        Command::Commission { config, json } => commission(config, json, lang),
        Command::Discover { config, timeout, interface_addr, target, json } => {
            discover(config, timeout, interface_addr, target, json, lang)
        }
    }
}

fn discover_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (write e.g. 3s or 500ms)"))?;
    if d < std::time::Duration::from_millis(100) || d > std::time::Duration::from_secs(60) {
        return Err("must be between 100ms and 60s".into());
    }
    Ok(d)
}

fn discover_target(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse::<std::net::SocketAddr>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| (ip, gateway::discover::WSD_PORT).into()))
        .map_err(|_| format!("{s:?} is not IP or IP:PORT"))
}

/// `discover`: probe, then print what answered (and how it compares with the config).
fn discover(
    config: Option<PathBuf>,
    timeout: std::time::Duration,
    interfaces: Vec<std::net::IpAddr>,
    targets: Vec<std::net::SocketAddr>,
    json: bool,
    lang: Lang,
) -> ExitCode {
    use gateway::discover;
    let cfg = match config.map(|c| SiteConfig::load(&c, &ProfileStore)).transpose() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", e.render(lang));
            return ExitCode::from(2);
        }
    };
    let Some(rt) = runtime(false, lang) else { return ExitCode::from(1) };
    let opts = discover::Options { timeout, interfaces, targets };
    let report = match rt.block_on(discover::discover(&opts)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("branch-gateway discover: {}", discover_error(&e, lang));
            return ExitCode::from(if matches!(e, discover::DiscoverError::Ipv6Multicast(_)) { 2 } else { 1 });
        }
    };
    let matched = cfg.as_ref().map(|c| discover::match_config(&c.cameras, &report.devices));
    if json {
        println!("{}", serde_json::json!({ "report": report, "config": matched }));
    } else {
        print!("{}", discover::render_text(&report, matched.as_ref(), timeout, lang));
    }
    ExitCode::SUCCESS
}

fn check_config(files: &[PathBuf], lang: Lang) -> ExitCode {
    let mut bad = false;
    for f in files {
        match SiteConfig::load(f, &ProfileStore) {
            Ok(cfg) => {
                let (file, branch) = (f.display(), &cfg.branch.id);
                let (cams, panels, zones) = (cfg.cameras.len(), cfg.panels.len(), cfg.zones.len());
                let (alarm_zones, doors) = (cfg.alarm_zones.len(), cfg.doors.len());
                println!(
                    "{}",
                    tr!(
                        lang,
                        "{file}: ok (branch {branch}, {cams} camera(s), {panels} panel(s), {zones} zone(s), \
                         {alarm_zones} alarm zone(s), {doors} door(s))",
                        "{file}：正常（网点 {branch}，摄像机 {cams} 台，报警主机/门禁控制器 {panels} 台，区域 {zones} 个，\
                         防区 {alarm_zones} 个，门 {doors} 个）"
                    )
                );
                for (field, what) in cfg.warnings() {
                    let what = what.get(lang);
                    println!("{}", tr!(lang, "{file}: warning: {field} {what}", "{file}：警告：{field} {what}"));
                }
            }
            Err(e) => {
                bad = true;
                eprintln!("{}", e.render(lang));
            }
        }
    }
    if bad { ExitCode::from(2) } else { ExitCode::SUCCESS }
}

fn commission(config: PathBuf, json: bool, lang: Lang) -> ExitCode {
    let cfg = match SiteConfig::load(&config, &ProfileStore) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", e.render(lang));
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let Some(rt) = runtime(true, lang) else { return ExitCode::from(1) };
    let report = rt.block_on(gateway::commission::commission(&cfg));
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("{}", tr!(lang, "cannot render the report: {e}", "无法生成报告：{e}"));
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{}", gateway::commission::render_text(&report, lang));
    }
    if report.ready { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sled=warn,rumqttc=warn"));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        // journald and log files get no ANSI escape codes.
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => fmt.json().with_current_span(true).with_span_list(false).init(),
    }
}

fn run(config: PathBuf, log_format: LogFormat, lang: Lang) -> ExitCode {
    let cfg = match SiteConfig::load(&config, &ProfileStore) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", e.render(lang));
            return match e {
                ConfigError::Read { .. } | ConfigError::Parse { .. } | ConfigError::Invalid { .. } => ExitCode::from(2),
            };
        }
    };
    init_logging(log_format);
    let Some(rt) = runtime(true, lang) else { return ExitCode::from(1) };
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let s = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("{}", lang.t("signal received, shutting down", "收到信号，正在停止"));
            s.cancel();
        });
        match gateway::app::run(cfg, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!("{e:#}");
                eprintln!("branch-gateway: {}", tr!(lang, "stopped: {e:#}", "已停止：{e:#}"));
                ExitCode::from(1)
            }
        }
    })
}

/// A tokio runtime, or `None` after saying why not.
fn runtime(multi_thread: bool, lang: Lang) -> Option<tokio::runtime::Runtime> {
    let mut b = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    match b.enable_all().build() {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("{}", tr!(lang, "cannot start the async runtime: {e}", "无法启动异步运行时：{e}"));
            None
        }
    }
}

/// Why discovery could not run, in `lang`.
fn discover_error(e: &gateway::discover::DiscoverError, lang: Lang) -> String {
    use gateway::discover::DiscoverError as E;
    match (lang, e) {
        (Lang::En, _) => e.to_string(),
        (Lang::Zh, E::Ipv6Multicast(a)) => {
            format!("组播发现需要 IPv4 网卡地址；{a} 是 IPv6 地址（IPv6 设备请用 --target）")
        }
        (Lang::Zh, other) => format!("无法探测：{other}"),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
