//! `hq`: the head-office command line. Parses flags, wires the library together, prints.
//!
//! Results go to stdout (tables, CSV, JSON, HTML); logs go to stderr through `tracing`.
//! Exit status: 0 done, 1 failed, 2 usage error (bad flag, bad time, bad combination).

// Data here comes from devices, networks, files, databases and users: no unwrap or expect
// outside tests (a test's panic is its failure).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use i18n::{Lang, tr};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use headoffice::coverage;
use headoffice::db::{AlertQuery, DbError, DbUrl, OpenMode, Retention, Store};
use headoffice::gaps;
use headoffice::listen::{self, AlertFilter, ListenConfig};
use headoffice::mqtt::{Backoff, BrokerSettings, stable_client_id};
use headoffice::orders::HqConfig;
use headoffice::records::Snapshot;
use headoffice::render;
use headoffice::report::{self, Window};
use headoffice::timespec;
use protocols::{AlertKind, BranchId, Severity};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

mod console_cmd;
mod orders_cmd;

const DEFAULT_DB: &str = "sqlite://hq.db";

#[derive(Parser)]
#[command(
    name = "hq",
    version,
    about = "Head office: every branch's camera coverage, availability, alarms and alert gaps, from the MQTT data alone.",
    after_help = "Times: RFC 3339 (2026-11-24T08:00:00Z), a date (2026-11-24), `now`, or relative (-1h, -30m, -7d).\n\
                  Password: --password-file, else the HQ_MQTT_PASSWORD environment variable.\n\
                  Database: --db sqlite:///var/lib/hq/hq.db (default ./hq.db) or --db postgres://USER@HOST/DB.\n\
                  See docs/HQ.md for the JSON output shapes."
)]
struct Cli {
    #[command(flatten)]
    conn: ConnArgs,
    /// Topic prefix the branches publish under.
    #[arg(long, global = true, default_value = protocols::topics::DEFAULT_PREFIX)]
    prefix: String,
    /// The database: sqlite://PATH (one file, the default: sqlite://hq.db) or
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DB. Every listener and reader of one head office
    /// uses the same one.
    #[arg(long, global = true, env = "HQ_DB", value_name = "URL")]
    db: Option<String>,
    /// Head office's configuration (TOML): rectification orders and the assessment's score
    /// (docs/ORDERS.md). Without it, the defaults.
    #[arg(long, global = true, env = "HQ_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The language of tables, reports and messages (en or zh-CN); default: the locale
    /// (LC_ALL, LC_MESSAGES, LANG), English unless it is zh_*. CSV and JSON field names, codes
    /// and exit statuses never change. (The web console picks each user's language itself.)
    #[arg(long, global = true, value_name = "LANG", value_parser = i18n::parse_flag)]
    lang: Option<Lang>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct ConnArgs {
    /// Broker URL: mqtt://HOST[:PORT] or mqtts://HOST[:PORT].
    #[arg(long, global = true, env = "HQ_BROKER", default_value = "mqtt://127.0.0.1:1883")]
    broker: String,
    #[arg(long, global = true, env = "HQ_MQTT_USERNAME")]
    username: Option<String>,
    /// File whose first line is the password (else $HQ_MQTT_PASSWORD).
    #[arg(long, global = true, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the broker's certificate; implies TLS.
    #[arg(long, global = true, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --key-file.
    #[arg(long, global = true, value_name = "FILE")]
    cert_file: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS; needs --cert-file.
    #[arg(long, global = true, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// MQTT client id for `listen` (default: derived from the host name and --db, stable across
    /// runs). Give each listener on one machine its own.
    #[arg(long, global = true)]
    client_id: Option<String>,
    /// MQTT keep-alive.
    #[arg(long, global = true, value_parser = humantime::parse_duration, default_value = "30s")]
    keep_alive: Duration,
}

#[derive(Subcommand)]
enum Cmd {
    /// Subscribe to every branch and store history until SIGTERM or Ctrl-C.
    Listen {
        /// Join shared subscription group G ($share/G/…): instances of one group split the load.
        #[arg(long, value_name = "G")]
        share_group: Option<String>,
        /// Prune hourly: keep alarm and video records this long (at least 30d, GA 38). Needs
        /// --retain-access.
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        retain_alarms: Option<Duration>,
        /// Prune hourly: keep access-control records (door events) this long (at least 180d).
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        retain_access: Option<Duration>,
    },
    /// Create the database's tables, or bring them up to this version of hq (writers also do
    /// this at start).
    Migrate,
    /// Remove records older than the retention; refuses less than GA 38's floors.
    Prune {
        /// Keep alarm, camera and fault records (and state history) this long: at least 30d.
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        alarms: Duration,
        /// Keep access-control records (door events) this long: at least 180d.
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        access: Duration,
        /// Count what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// One line per branch: gateway, cameras online, live video, required zones uncovered.
    Coverage {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// First subscribe this long to the retained state topics (e.g. 3s) and lay it over the
        /// database (or use it alone when there is no database).
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        live: Option<Duration>,
    },
    /// Past alerts from the database, or live with --follow.
    Alerts {
        /// Subscribe and print alerts as they arrive (deduped), instead of reading the store.
        #[arg(long)]
        follow: bool,
        /// With --follow: stop after this long.
        #[arg(long = "for", value_parser = humantime::parse_duration, value_name = "DURATION")]
        for_: Option<Duration>,
        #[arg(long, value_parser = parse_branch)]
        branch: Option<BranchId>,
        /// camera-offline, alarm-link, door-status or device-fault.
        #[arg(long, value_parser = parse_kind)]
        kind: Option<AlertKind>,
        /// info, warning, major or critical.
        #[arg(long, value_parser = parse_severity)]
        severity_min: Option<Severity>,
        /// Only alerts that occurred at or after this time.
        #[arg(long, allow_hyphen_values = true)]
        from: Option<String>,
        /// Only alerts that occurred before this time.
        #[arg(long, allow_hyphen_values = true)]
        to: Option<String>,
        /// Only the last N.
        #[arg(long)]
        limit: Option<usize>,
        /// json prints one alert per line (as published).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Availability, uncovered minutes, alarms with a camera down, MTTR, gateway offline periods.
    Report {
        /// Start of the window (e.g. -30d, 2026-11-01, 2026-11-01T00:00:00Z).
        #[arg(long, allow_hyphen_values = true)]
        from: String,
        /// End of the window (exclusive).
        #[arg(long, allow_hyphen_values = true, default_value = "now")]
        to: String,
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
        /// Write to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Missing alert sequence numbers per branch.
    Gaps {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// A gap is `missing` (not `pending`) once its branch has sent nothing for this long.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "2m")]
        settle: Duration,
    },
    /// Serve the web console: every branch at a glance, alarms to acknowledge, the assessment.
    Serve(console_cmd::ServeArgs),
    /// Rectification orders (整改): list, show, take, note, close, open by hand, check now.
    Orders {
        #[command(subcommand)]
        cmd: orders_cmd::OrdersCmd,
    },
    /// Notifications: send a test message on a channel, list the queue.
    Notify {
        #[command(subcommand)]
        cmd: NotifyCmd,
    },
    /// Console users: add, list, change (role, password, disable).
    User {
        #[command(subcommand)]
        cmd: console_cmd::UserCmd,
    },
    /// The database's counters: alerts, duplicates, malformed messages, state changes.
    Stats {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Subcommand)]
enum NotifyCmd {
    /// Send a test message on CHANNEL (a [notify.channel.NAME] of --config) to each of its
    /// recipients and print what the receiver answered.
    Test { channel: String },
    /// The newest queued messages: sent, pending (with the last error) or expired.
    List {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    Table,
    Json,
    Csv,
    Html,
}

fn parse_branch(s: &str) -> Result<BranchId, String> {
    BranchId::new(s).map_err(|e| format!("branch id {e}"))
}
fn parse_kind(s: &str) -> Result<AlertKind, String> {
    AlertKind::parse(s).ok_or_else(|| "expected camera-offline, alarm-link, door-status or device-fault".into())
}
fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| "expected info, warning, major or critical".into())
}

/// A mistake in how `hq` was called: exit status 2.
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let lang = Lang::choose(cli.lang);
    lang.set_current();
    let long_running = matches!(cli.cmd, Cmd::Listen { .. } | Cmd::Serve(_) | Cmd::Alerts { follow: true, .. });
    // sqlx's own statement logs (a bank's report has slow statements by nature; PostgreSQL's
    // notices) are for debugging: RUST_LOG=sqlx=debug shows them.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if long_running { "info,sqlx=warn" } else { "warn,sqlx=error" })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hq: {}", tr!(lang, "cannot start the async runtime: {e}", "无法启动异步运行时：{e}"));
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<UsageError>() => {
            eprintln!("hq: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            // A database error is said in the reader's language (what the driver adds stays as is).
            let e = match e.downcast_ref::<DbError>() {
                Some(db) if lang == Lang::Zh => db.render(lang),
                _ => format!("{e:#}"),
            };
            eprintln!("hq: {}", tr!(lang, "error: {e}", "错误：{e}"));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let now = protocols::time::now();
    let explicit_db = cli.db.is_some();
    let db_url = DbUrl::parse(cli.db.as_deref().unwrap_or(DEFAULT_DB)).map_err(db_error)?;
    // Read by the commands that use it (serve, orders, notify): a file only they can read
    // does not stop `hq coverage`.
    let uses_config = matches!(cli.cmd, Cmd::Serve(_) | Cmd::Orders { .. } | Cmd::Notify { .. });
    let config = match &cli.config {
        Some(p) if uses_config => HqConfig::load(p).map_err(|e| usage(e.to_string()))?,
        _ => HqConfig::default(),
    };
    match cli.cmd {
        Cmd::Listen { ref share_group, retain_alarms, retain_access } => {
            let retention = retention(retain_alarms, retain_access)?;
            let shutdown = CancellationToken::new();
            spawn_signal_handler(shutdown.clone());
            let Some(store) = open_writer(&db_url, &shutdown).await? else { return Ok(()) };
            let client_id =
                cli.conn.client_id.clone().unwrap_or_else(|| default_client_id(&db_url, share_group.as_deref()));
            let cfg = ListenConfig {
                broker: broker(&cli.conn, client_id, false)?,
                prefix: cli.prefix.clone(),
                share_group: share_group.clone(),
                committed: None,
            };
            if let Some(r) = retention {
                spawn_pruner(store.clone(), r, shutdown.clone());
            }
            let stats = listen::listen(&cfg, &store, shutdown).await.context("listen")?;
            let totals = store.counters().await.map_err(db_error);
            tracing::info!(
                received = stats.received,
                new_alerts = stats.new_alerts,
                duplicates = stats.duplicates,
                malformed = stats.malformed,
                state_changes = stats.state_changes,
                db_alerts = totals.as_ref().map(|t| t.alerts).unwrap_or_default(),
                "stopped"
            );
            store.close().await;
            Ok(())
        }
        Cmd::Migrate => {
            let store = Store::open(&db_url, OpenMode::Create).await.map_err(db_error)?;
            let applied = store.migrated_now().to_vec();
            let version = headoffice::db::schema_version(store.backend());
            if applied.is_empty() {
                let db = &db_url.display;
                emit(&tr!(
                    Lang::current(),
                    "{db}: schema up to date (version {version})\n",
                    "{db}：数据库结构已是最新（版本 {version}）\n"
                ))?;
            } else {
                let db = &db_url.display;
                emit(&tr!(
                    Lang::current(),
                    "{db}: schema at version {version} (applied now: {applied:?})\n",
                    "{db}：数据库结构已升级到版本 {version}（本次执行：{applied:?}）\n"
                ))?;
            }
            store.close().await;
            Ok(())
        }
        Cmd::Prune { alarms, access, dry_run, format } => {
            let r = Retention::new(alarms, access).map_err(|e| usage(e.to_string()))?;
            let store = open_reader(&db_url).await?;
            let out = store.prune(r, now, dry_run).await.map_err(db_error)?;
            store.close().await;
            let headers = ["dry_run", "alerts", "access_alerts", "state_changes", "repairs"];
            let rows = vec![vec![
                dry_run.to_string(),
                out.alerts.to_string(),
                out.access_alerts.to_string(),
                out.state_changes.to_string(),
                out.repairs.to_string(),
            ]];
            match format {
                Format::Json => {
                    print_json(&serde_json::json!({"schema": "hq-prune/1", "dry_run": dry_run, "removed": out}))
                }
                Format::Table => emit(&render::table(Lang::current(), &headers, &rows)),
                Format::Csv => emit(&render::csv(&headers, &rows)),
            }
        }
        Cmd::Coverage { format, live } => {
            let mut snap = Snapshot::default();
            match Store::open(&db_url, OpenMode::Existing).await {
                Ok(store) => {
                    snap = store.snapshot().await.map_err(db_error)?;
                    store.close().await;
                }
                // `--live` alone needs no database.
                Err(DbError::NoFile { .. }) if live.is_some() && !explicit_db => {}
                Err(e) => return Err(db_error(e)),
            }
            if let Some(d) = live {
                let b = broker(&cli.conn, random_client_id(), true)?;
                let (live_snap, malformed) = listen::live_snapshot(&b, &cli.prefix, d)
                    .await
                    .with_context(|| format!("live snapshot from {}", cli.conn.broker))?;
                if malformed > 0 {
                    tracing::warn!(malformed, "malformed retained messages ignored");
                }
                snap.merge(live_snap);
            }
            let view = coverage::summarize(&snap, now);
            match format {
                Format::Json => print_json(&view),
                Format::Table => {
                    emit(&render::table(Lang::current(), &render::COVERAGE_HEADERS, &render::coverage_rows(&view)))
                }
                Format::Csv => emit(&render::csv(&render::COVERAGE_HEADERS, &render::coverage_rows(&view))),
            }
        }
        Cmd::Alerts { follow, for_, ref branch, kind, severity_min, ref from, ref to, limit, format } => {
            let filter = AlertFilter { branch: branch.clone(), kind, severity_min };
            if follow {
                if from.is_some() || to.is_some() || limit.is_some() {
                    return Err(usage("--from, --to and --limit read the database; they do not go with --follow"));
                }
                return follow_alerts(&cli, filter, for_, format).await;
            }
            if for_.is_some() {
                return Err(usage("--for goes with --follow"));
            }
            let from =
                from.as_deref().map(|s| timespec::parse(s, now)).transpose().map_err(|e| usage(e.to_string()))?;
            let to = to.as_deref().map(|s| timespec::parse(s, now)).transpose().map_err(|e| usage(e.to_string()))?;
            let q = AlertQuery { branch: branch.clone(), kind, severity_min, from, to, limit };
            let store = open_reader(&db_url).await?;
            let mut rows: Vec<Vec<String>> = Vec::new();
            if format == Format::Csv {
                emit(&render::csv(&render::ALERT_HEADERS, &[]))?;
            }
            let printed = store
                .for_each_alert(&q, |payload| -> Result<()> {
                    match format {
                        Format::Json => emit(&format!("{payload}\n")),
                        Format::Csv | Format::Table => {
                            let a: protocols::Alert = serde_json::from_str(payload).context("a stored alert")?;
                            if format == Format::Csv {
                                emit(&render::csv(&[], &[render::alert_row(&a)]))
                            } else {
                                // A table aligns its columns over every row: it holds them. For
                                // long exports use --format csv or json, which stream.
                                rows.push(render::alert_row(&a));
                                Ok(())
                            }
                        }
                    }
                })
                .await
                .map_err(db_error)?;
            store.close().await;
            printed?;
            if format == Format::Table {
                emit(&render::table(Lang::current(), &render::ALERT_HEADERS, &rows))?;
            }
            Ok(())
        }
        Cmd::Report { ref from, ref to, format, ref out } => {
            let from = timespec::parse(from, now).map_err(|e| usage(format!("--from: {e}")))?;
            let to = timespec::parse(to, now).map_err(|e| usage(format!("--to: {e}")))?;
            let w = Window::new(from, to).map_err(|e| usage(e.to_string()))?;
            let store = open_reader(&db_url).await?;
            let data = store.report_data(w).await.map_err(db_error)?;
            store.close().await;
            let r = report::build(data, w);
            if format == ReportFormat::Json {
                // Streamed: a bank's report is tens of megabytes of JSON; never hold it twice.
                return match out {
                    Some(path) => {
                        if path.is_dir() {
                            bail!("--out {} is a directory; give a file name", path.display());
                        }
                        let f = std::fs::File::create(path)
                            .with_context(|| format!("write the report to {}", path.display()))?;
                        write_json(std::io::BufWriter::new(f), &r)
                            .with_context(|| format!("write the report to {}", path.display()))
                    }
                    None => match write_json(std::io::BufWriter::new(std::io::stdout().lock()), &r) {
                        Err(e) if is_broken_pipe(&e) => Ok(()),
                        r => r.context("write to stdout"),
                    },
                };
            }
            let text = match format {
                ReportFormat::Json => String::new(),
                ReportFormat::Table => render::report_table(&r, Lang::current()),
                ReportFormat::Csv => render::report_csv(&r),
                ReportFormat::Html => render::report_html(&r, Lang::current()),
            };
            match out {
                Some(path) => write_file(path, &text),
                None => emit(&text),
            }
        }
        Cmd::Gaps { format, settle } => {
            let store = open_reader(&db_url).await?;
            let rows = store.gaps().await.map_err(db_error)?;
            store.close().await;
            let view = gaps::view(rows, now, settle);
            match format {
                Format::Json => print_json(&view),
                Format::Table => emit(&render::table(Lang::current(), &render::GAP_HEADERS, &render::gap_rows(&view))),
                Format::Csv => emit(&render::csv(&render::GAP_HEADERS, &render::gap_rows(&view))),
            }
        }
        Cmd::Serve(ref args) => {
            let retention = retention(args.retain_alarms, args.retain_access)?;
            let shutdown = CancellationToken::new();
            spawn_signal_handler(shutdown.clone());
            let Some(store) = open_writer(&db_url, &shutdown).await? else { return Ok(()) };
            if let Some(r) = retention {
                spawn_pruner(store.clone(), r, shutdown.clone());
            }
            let listener = match args.with_listener.then(|| {
                let client_id = cli
                    .conn
                    .client_id
                    .clone()
                    .unwrap_or_else(|| default_client_id(&db_url, args.share_group.as_deref()));
                broker(&cli.conn, client_id, false)
            }) {
                Some(b) => Some(ListenConfig {
                    broker: b?,
                    prefix: cli.prefix.clone(),
                    share_group: args.share_group.clone(),
                    committed: None,
                }),
                None => None,
            };
            let r = console_cmd::serve(args, store.clone(), listener, config, shutdown).await;
            store.close().await;
            r
        }
        Cmd::Orders { ref cmd } => {
            let store = open_reader(&db_url).await?;
            let r = orders_cmd::orders(cmd, &store, &config).await;
            store.close().await;
            r
        }
        Cmd::Notify { ref cmd } => notify_cmd(cmd, &config, &db_url).await,
        Cmd::User { ref cmd } => {
            // An existing, migrated database: a mistyped --db must not create an empty one.
            let store = open_reader(&db_url).await?;
            let r = console_cmd::user(cmd, &store).await;
            store.close().await;
            r
        }
        Cmd::Stats { format } => {
            let store = open_reader(&db_url).await?;
            let counters = store.counters().await.map_err(db_error)?;
            store.close().await;
            #[derive(Serialize)]
            struct StatsView<'a> {
                schema: &'static str,
                db: &'a str,
                backend: &'static str,
                #[serde(flatten)]
                counters: headoffice::db::Counters,
            }
            let rows = vec![render::stats_row(&db_url.display, &counters)];
            let v = StatsView { schema: "hq-stats/2", db: &db_url.display, backend: db_url.backend.as_str(), counters };
            match format {
                Format::Json => print_json(&v),
                Format::Table => emit(&render::table(Lang::current(), &render::STATS_HEADERS, &rows)),
                Format::Csv => emit(&render::csv(&render::STATS_HEADERS, &rows)),
            }
        }
    }
}

async fn notify_cmd(cmd: &NotifyCmd, config: &HqConfig, db_url: &DbUrl) -> Result<()> {
    match cmd {
        NotifyCmd::Test { channel } => {
            let c = config.notify.channel.get(channel).ok_or_else(|| {
                let mut names: Vec<&String> = config.notify.channel.keys().collect();
                names.sort();
                usage(format!(
                    "no channel {channel:?} in the configuration (--config; defined: {})",
                    names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ))
            })?;
            let lang = config.notify.channel_lang(c);
            let text = lang.t(
                "[Branch security] Test message from head office: this channel works.",
                "【网点安防】总行监控中心测试消息：此通道工作正常。",
            );
            let payload = serde_json::json!({"schema": "hq-notification/1", "test": true, "text": text});
            let out = headoffice::notify::channel::Outgoing { subject: text, text, payload: &payload };
            let mut failed = 0;
            for r in c.recipients() {
                let who = if r.is_empty() { channel.clone() } else { format!("{channel} → {r}") };
                match headoffice::notify::channel::send(c, &r, &out).await {
                    Ok(answer) => emit(&tr!(
                        Lang::current(),
                        "{who}: delivered; the receiver answered: {answer}\n",
                        "{who}：已送达；接收方应答：{answer}\n"
                    ))?,
                    Err(e) => {
                        failed += 1;
                        eprintln!("hq: {}", tr!(Lang::current(), "{who}: not delivered: {e}", "{who}：未送达：{e}"));
                    }
                }
            }
            if failed > 0 { bail!("{failed} test message(s) not delivered") } else { Ok(()) }
        }
        NotifyCmd::List { limit, format } => {
            let store = open_reader(db_url).await?;
            let rows = store.recent_notifications(*limit).await.map_err(db_error)?;
            store.close().await;
            let t = protocols::time::format;
            let headers = [
                "id",
                "created_at",
                "channel",
                "recipient",
                "branch",
                "kind",
                "state",
                "attempts",
                "sent_at",
                "last_error",
                "subject",
            ];
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|n| {
                    vec![
                        n.id.to_string(),
                        t(&n.created_at),
                        n.channel.clone(),
                        n.recipient.clone(),
                        n.branch.clone(),
                        n.kind.clone(),
                        n.state.clone(),
                        n.attempts.to_string(),
                        n.sent_at.as_ref().map(t).unwrap_or_default(),
                        n.last_error.clone().unwrap_or_default(),
                        n.subject.clone(),
                    ]
                })
                .collect();
            match format {
                Format::Json => print_json(&serde_json::json!({
                    "schema": "hq-notifications/1",
                    "notifications": rows.iter().map(|n| serde_json::json!({
                        "id": n.id, "created_at": t(&n.created_at), "channel": n.channel, "recipient": n.recipient,
                        "branch": n.branch, "kind": n.kind, "state": n.state, "attempts": n.attempts,
                        "next_at": t(&n.next_at), "expires_at": t(&n.expires_at), "sent_at": n.sent_at.as_ref().map(t),
                        "answer": n.answer, "last_error": n.last_error, "subject": n.subject, "body": n.body,
                    })).collect::<Vec<_>>(),
                })),
                Format::Table => emit(&render::table(Lang::current(), &headers, &table)),
                Format::Csv => emit(&render::csv(&headers, &table)),
            }
        }
    }
}

/// `--retain-alarms` and `--retain-access`, both or neither, checked against GA 38's floors.
fn retention(alarms: Option<Duration>, access: Option<Duration>) -> Result<Option<Retention>> {
    match (alarms, access) {
        (Some(a), Some(d)) => Ok(Some(Retention::new(a, d).map_err(|e| usage(e.to_string()))?)),
        (None, None) => Ok(None),
        _ => Err(usage("--retain-alarms and --retain-access go together")),
    }
}

/// A listener's MQTT client id when none is given: stable across runs of one head office
/// (host, database, group), so the broker keeps its session.
fn default_client_id(db_url: &DbUrl, share_group: Option<&str>) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    stable_client_id(&format!("{}|{}|{}", host.trim(), db_url.display, share_group.unwrap_or("")))
}

/// A database error as `hq` reports it: a bad URL is a usage mistake (exit 2).
fn db_error(e: DbError) -> anyhow::Error {
    if e.is_usage() { usage(e.render(Lang::current())) } else { anyhow::Error::new(e) }
}

async fn open_reader(url: &DbUrl) -> Result<Store> {
    Store::open(url, OpenMode::Existing).await.map_err(db_error)
}

/// Opens the database for a long-running writer: while the server is unreachable it waits and
/// retries with backoff (a head office restarts its database too); a mistake (wrong password,
/// no such database) fails at once. `None` when asked to stop while waiting.
async fn open_writer(url: &DbUrl, shutdown: &CancellationToken) -> Result<Option<Store>> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
    let mut said = false;
    loop {
        match Store::open(url, OpenMode::Create).await {
            Ok(s) => {
                if said {
                    tracing::info!(db = %url.display, "the database is reachable now");
                }
                return Ok(Some(s));
            }
            Err(e) if e.is_transient() => {
                if !said {
                    tracing::error!(error = %e, "cannot reach the database; retrying with backoff");
                    said = true;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
            Err(e) => return Err(db_error(e)),
        }
    }
}

/// Prunes at start and then hourly, while the listener runs.
fn spawn_pruner(store: Store, r: Retention, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            match store.prune(r, protocols::time::now(), false).await {
                Ok(out) => tracing::info!(
                    alerts = out.alerts,
                    access_alerts = out.access_alerts,
                    state_changes = out.state_changes,
                    "pruned old records"
                ),
                Err(e) => tracing::warn!(error = %e, "pruning failed; trying again in an hour"),
            }
        }
    });
}

async fn follow_alerts(cli: &Cli, filter: AlertFilter, for_: Option<Duration>, format: Format) -> Result<()> {
    let b = broker(&cli.conn, random_client_id(), true)?;
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    if let Some(d) = for_ {
        let s = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            s.cancel();
        });
    }
    if format == Format::Csv {
        emit(&render::csv(&render::ALERT_HEADERS, &[]))?;
    }
    let mut failed: Option<anyhow::Error> = None;
    let stop = shutdown.clone();
    listen::follow_alerts(&b, &cli.prefix, &filter, shutdown, |a| {
        let line = match format {
            Format::Json => serde_json::to_string(a).map(|s| s + "\n").map_err(anyhow::Error::from),
            Format::Table => Ok(render::alert_row(a).join("  ") + "\n"),
            Format::Csv => Ok(render::csv(&[], &[render::alert_row(a)])),
        };
        if let Err(e) = line.and_then(|l| emit(&l)) {
            failed.get_or_insert(e);
            stop.cancel();
        }
    })
    .await
    .with_context(|| format!("follow alerts on {}", cli.conn.broker))?;
    failed.map_or(Ok(()), Err)
}

/// The connection `c` describes, set up by `mqtt_setup` (the gateway's too): the URL parsed, the
/// password and the TLS files read and checked.
fn broker(c: &ConnArgs, client_id: String, clean_session: bool) -> Result<BrokerSettings> {
    let lang = Lang::current();
    let url = mqtt_setup::BrokerUrl::parse(&c.broker).map_err(|e| usage(e.text().get(lang).to_string()))?;
    let password = match &c.password_file {
        Some(p) => Some(mqtt_setup::password_from_file(p).map_err(|e| anyhow::anyhow!("{}", e.text().get(lang)))?),
        None => mqtt_setup::password_from_env("HQ_MQTT_PASSWORD").ok(),
    };
    if password.is_some() && c.username.is_none() {
        return Err(usage("a password needs --username (or HQ_MQTT_USERNAME)"));
    }
    if c.cert_file.is_some() != c.key_file.is_some() {
        return Err(usage("--cert-file and --key-file go together"));
    }
    let files = mqtt_setup::TlsFiles {
        ca_file: c.ca_file.clone(),
        client_cert_file: c.cert_file.clone(),
        client_key_file: c.key_file.clone(),
    };
    let tls = files.load().map_err(|e| anyhow::anyhow!("{}", e.text().get(lang)))?;
    let mut o = BrokerSettings::new(url, client_id);
    o.username = c.username.clone();
    o.password = password;
    o.keep_alive = c.keep_alive;
    o.clean_session = clean_session;
    o.tls = tls;
    Ok(o)
}

fn random_client_id() -> String {
    format!("hq-tmp-{:016x}", rand::random::<u64>())
}

fn spawn_signal_handler(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM; Ctrl-C still works");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        token.cancel();
    });
}

/// Pretty JSON and a final newline, straight into `w`.
fn write_json<T: Serialize>(mut w: impl Write, v: &T) -> Result<()> {
    serde_json::to_writer_pretty(&mut w, v)?;
    w.write_all(b"\n")?;
    w.flush()?;
    Ok(())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>().and_then(|j| j.io_error_kind())
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}

fn print_json<T: Serialize>(v: &T) -> Result<()> {
    emit(&(serde_json::to_string_pretty(v).context("encode JSON")? + "\n"))
}

/// Writes to stdout; a closed pipe (`hq … | head`) is not an error.
fn emit(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("write to stdout"),
    }
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if path.is_dir() {
        bail!("--out {} is a directory; give a file name", path.display());
    }
    std::fs::write(path, text).with_context(|| format!("write the report to {}", path.display()))
}
