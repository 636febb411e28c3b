//! `branch-gateway`: the CLI over the gateway library.
//!
//! Exit codes: 0 success; 1 a runtime failure; 2 bad usage or a bad configuration (so a
//! systemd unit can tell "fix the file" from "try again").

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::config::{ConfigError, SiteConfig};
use gateway::pollers::panel::ProfileStore;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

#[derive(Parser)]
#[command(
    name = "branch-gateway",
    version,
    about = "Branch security gateway: watches cameras and panels, tells head office"
)]
struct Cli {
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
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(2),
            };
        }
    };
    match cli.command {
        Command::CheckConfig { files } => check_config(&files),
        Command::Run { config, log_format } => run(config, log_format),
        Command::Commission { config, json } => commission(config, json),
        Command::Discover { config, timeout, interface_addr, target, json } => {
            discover(config, timeout, interface_addr, target, json)
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
) -> ExitCode {
    use gateway::discover;
    let cfg = match config.map(|c| SiteConfig::load(&c, &ProfileStore)).transpose() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let opts = discover::Options { timeout, interfaces, targets };
    let report = match rt.block_on(discover::discover(&opts)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("branch-gateway discover: {e}");
            return ExitCode::from(if matches!(e, discover::DiscoverError::Ipv6Multicast(_)) { 2 } else { 1 });
        }
    };
    let matched = cfg.as_ref().map(|c| discover::match_config(&c.cameras, &report.devices));
    if json {
        println!("{}", serde_json::json!({ "report": report, "config": matched }));
    } else {
        print!("{}", discover::render_text(&report, matched.as_ref(), timeout));
    }
    ExitCode::SUCCESS
}

fn check_config(files: &[PathBuf]) -> ExitCode {
    let mut bad = false;
    for f in files {
        match SiteConfig::load(f, &ProfileStore) {
            Ok(cfg) => {
                println!(
                    "{}: ok (branch {}, {} camera(s), {} panel(s), {} zone(s), {} alarm zone(s), {} door(s))",
                    f.display(),
                    cfg.branch.id,
                    cfg.cameras.len(),
                    cfg.panels.len(),
                    cfg.zones.len(),
                    cfg.alarm_zones.len(),
                    cfg.doors.len()
                );
                for (field, what) in cfg.warnings() {
                    println!("{}: warning: {field} {what}", f.display());
                }
            }
            Err(e) => {
                bad = true;
                eprintln!("{e}");
            }
        }
    }
    if bad { ExitCode::from(2) } else { ExitCode::SUCCESS }
}

fn commission(config: PathBuf, json: bool) -> ExitCode {
    let cfg = match SiteConfig::load(&config, &ProfileStore) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let report = rt.block_on(gateway::commission::commission(&cfg));
    if json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("cannot render the report: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{}", gateway::commission::render_text(&report));
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

fn run(config: PathBuf, log_format: LogFormat) -> ExitCode {
    let cfg = match SiteConfig::load(&config, &ProfileStore) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return match e {
                ConfigError::Read { .. } | ConfigError::Parse { .. } | ConfigError::Invalid { .. } => ExitCode::from(2),
            };
        }
    };
    init_logging(log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let s = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("signal received, shutting down");
            s.cancel();
        });
        match gateway::app::run(cfg, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!("{e:#}");
                eprintln!("branch-gateway: {e:#}");
                ExitCode::from(1)
            }
        }
    })
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
