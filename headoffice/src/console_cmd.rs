//! `hq serve` and `hq user`: the web console's commands.

use i18n::{Lang, tr};
use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use headoffice::db::{Role, Store, UserChange};
use headoffice::directory::Directory;
use headoffice::listen::{self, ListenConfig};
use headoffice::orders::HqConfig;
use headoffice::web::{self, Clock, ServeConfig};
use tokio_util::sync::CancellationToken;

use super::{Format, db_error, emit, print_json, render, usage};

#[derive(Args)]
pub struct ServeArgs {
    /// Address and port to serve on. Anything but loopback should sit behind a TLS reverse
    /// proxy (docs/CONSOLE.md).
    #[arg(long, env = "HQ_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// The branch directory: CSV with a header row, columns id,name,region,address,contacts.
    #[arg(long, env = "HQ_DIRECTORY", value_name = "FILE")]
    pub directory: Option<PathBuf>,
    /// Also subscribe to the broker and store what arrives, in this process (a one-machine
    /// head office). Takes the same broker flags as `hq listen`.
    #[arg(long)]
    pub with_listener: bool,
    /// With --with-listener: join shared subscription group G.
    #[arg(long, value_name = "G", requires = "with_listener")]
    pub share_group: Option<String>,
    /// Browsers reach the console over HTTPS: mark the session cookie Secure.
    #[arg(long)]
    pub secure_cookies: bool,
    /// Behind a reverse proxy: the client address comes from X-Forwarded-For and HTTPS from
    /// X-Forwarded-Proto. Only with a proxy that sets them.
    #[arg(long)]
    pub behind_proxy: bool,
    /// How long a sign-in lasts.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "12h")]
    pub session_ttl: Duration,
    /// A gateway that says it is online but has sent nothing for this long is shown as stale
    /// (gateways send a coverage report every minute by default).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3m")]
    pub stale_after: Duration,
    /// Prune hourly: keep alarm and video records this long (at least 30d, GA 38). Needs
    /// --retain-access.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub retain_alarms: Option<Duration>,
    /// Prune hourly: keep access-control records (door events) this long (at least 180d).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub retain_access: Option<Duration>,
    /// The UTC offset pages show times in.
    #[arg(long, default_value = "+08:00", allow_hyphen_values = true, value_parser = parse_offset)]
    pub utc_offset: chrono::FixedOffset,
}

fn parse_offset(s: &str) -> Result<chrono::FixedOffset, String> {
    s.parse::<chrono::FixedOffset>().map_err(|_| format!("{s:?} is not a UTC offset like +08:00 or -05:00"))
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// Add a console user. The password is read from --user-password-file, or from standard
    /// input (asked for without echo on a terminal).
    Add {
        name: String,
        /// viewer (sees every branch, alarm and assessment), operator (also acknowledges alarms),
        /// admin (also manages users and reads the audit log).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// File whose first line is the user's password (not the broker's: that is --password-file).
        #[arg(long, value_name = "FILE")]
        user_password_file: Option<PathBuf>,
    },
    /// List the console's users.
    List {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Change a user: role, password, disabled. Disabling or a new password ends the user's
    /// sessions.
    Set {
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// Set a new password (from --user-password-file or standard input).
        #[arg(long)]
        password: bool,
        #[arg(long, value_name = "FILE", requires = "password")]
        user_password_file: Option<PathBuf>,
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| "expected viewer, operator or admin".into())
}

pub async fn serve(
    args: &ServeArgs,
    store: Store,
    listener: Option<ListenConfig>,
    config: HqConfig,
    shutdown: CancellationToken,
) -> Result<()> {
    let directory = match &args.directory {
        Some(p) => {
            let d = Directory::load(p).map_err(|e| usage(e.to_string()))?;
            tracing::info!(file = %p.display(), branches = d.len(), regions = d.regions().len(), "branch directory");
            d
        }
        None => Directory::default(),
    };
    if !args.bind.ip().is_loopback() && !args.secure_cookies {
        tracing::warn!(
            bind = %args.bind,
            "serving plain HTTP beyond this machine: put the console behind a TLS reverse proxy and pass \
             --secure-cookies (docs/CONSOLE.md)"
        );
    }
    if store.users().await.map_err(db_error)?.is_empty() {
        tracing::warn!("no console users yet: add one with `hq user add NAME --role admin`");
    }
    // The listener in this process tells the console after each commit: no wait for the poll.
    let committed = listener.as_ref().map(|_| Arc::new(tokio::sync::Notify::new()));
    let listener = listener.map(|l| ListenConfig { committed: committed.clone(), ..l });
    let directory = Arc::new(directory);
    let checker = tokio::spawn(headoffice::orders::run(
        store.clone(),
        config.orders.clone(),
        directory.clone(),
        shutdown.clone(),
    ));
    let notifier = (!config.notify.rule.is_empty()).then(|| {
        let n = headoffice::notify::run::Notifier {
            store: store.clone(),
            cfg: config.notify.clone(),
            dir: directory.clone(),
            offset: args.utc_offset,
        };
        tokio::spawn(n.run(shutdown.clone()))
    });
    let cfg = ServeConfig {
        changed: committed,
        directory,
        hq: Arc::new(config),
        secure_cookies: args.secure_cookies,
        behind_proxy: args.behind_proxy,
        session_ttl: args.session_ttl,
        stale_after: args.stale_after,
        clock: Clock { offset: args.utc_offset },
        ..ServeConfig::default()
    };
    let tcp = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot serve on {} (in use, or not an address of this machine)", args.bind))?;
    let addr = tcp.local_addr().unwrap_or(args.bind);
    tracing::info!(url = %format!("http://{addr}/"), db = %store.url(), "console serving");
    let listen_task = listener.map(|cfg| {
        let (store, stop) = (store.clone(), shutdown.clone());
        tokio::spawn(async move {
            let r = listen::listen(&cfg, &store, stop.clone()).await;
            // Without its listener the console would show a frozen picture: stop both.
            stop.cancel();
            r
        })
    });
    let served = web::serve(tcp, store, cfg, shutdown.clone()).await;
    shutdown.cancel();
    let _ = checker.await;
    if let Some(n) = notifier {
        let _ = n.await;
    }
    if let Some(t) = listen_task {
        match t.await {
            Ok(Ok(stats)) => {
                tracing::info!(received = stats.received, new_alerts = stats.new_alerts, "listener stopped")
            }
            Ok(Err(e)) => return Err(anyhow::Error::new(e).context("listen")),
            Err(e) => return Err(anyhow::anyhow!("the listener task failed: {e}")),
        }
    }
    served.context("serve the console")
}

/// The password for `name`: the first line of `file`, else standard input (without echo on a
/// terminal, asked twice).
fn read_password(name: &str, file: Option<&Path>) -> Result<String> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f).with_context(|| format!("read the password from {}", f.display()))?;
        return Ok(text.lines().next().unwrap_or_default().to_string());
    }
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password(format!("password for {name}: ")).context("read the password")?;
        let b = rpassword::prompt_password("again: ").context("read the password")?;
        if a != b {
            return Err(usage("the two passwords differ"));
        }
        return Ok(a);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn hash(password: &str) -> Result<String> {
    web::hash_password(password).map_err(|e| usage(e.to_string()))
}

/// Who did it, for the audit log: the operating-system user at the command line.
pub fn cli_actor() -> String {
    format!("cli:{}", std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "?".into()))
}

pub async fn user(cmd: &UserCmd, store: &Store) -> Result<()> {
    let now = protocols::time::now();
    match cmd {
        UserCmd::Add { name, role, user_password_file } => {
            web::check_user_name(name).map_err(usage)?;
            let h = hash(&read_password(name, user_password_file.as_deref())?)?;
            if !store.create_user(name, &h, *role, now).await.map_err(db_error)? {
                return Err(anyhow::anyhow!("a user named {name:?} exists already (change it with `hq user set`)"));
            }
            store.audit(&cli_actor(), "user-add", name, role.as_str(), now).await.map_err(db_error)?;
            let role = role.as_str();
            emit(&tr!(Lang::current(), "added {name} ({role})\n", "已添加 {name}（{role}）\n"))
        }
        UserCmd::List { format } => {
            let users = store.users().await.map_err(db_error)?;
            let headers = ["name", "role", "disabled", "lang", "created_at"];
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    vec![
                        u.name.clone(),
                        u.role.as_str().to_string(),
                        u.disabled.to_string(),
                        u.lang.clone().unwrap_or_default(),
                        protocols::time::format(&u.created_at),
                    ]
                })
                .collect();
            match format {
                Format::Json => print_json(&serde_json::json!({
                    "schema": "hq-users/1",
                    "users": users.iter().map(|u| serde_json::json!({
                        "name": u.name, "role": u.role.as_str(), "disabled": u.disabled, "lang": u.lang,
                        "created_at": protocols::time::format(&u.created_at),
                    })).collect::<Vec<_>>(),
                })),
                Format::Table => emit(&render::table(Lang::current(), &headers, &rows)),
                Format::Csv => emit(&render::csv(&headers, &rows)),
            }
        }
        UserCmd::Set { name, role, password, user_password_file, disable, enable } => {
            let mut change = UserChange { role: *role, ..UserChange::default() };
            if *disable {
                change.disabled = Some(true);
            } else if *enable {
                change.disabled = Some(false);
            }
            if *password {
                change.password_hash = Some(hash(&read_password(name, user_password_file.as_deref())?)?);
            }
            if change.role.is_none() && change.disabled.is_none() && change.password_hash.is_none() {
                return Err(usage("nothing to change: give --role, --password, --disable or --enable"));
            }
            if !store.update_user(name, &change, now).await.map_err(db_error)? {
                return Err(anyhow::anyhow!("no user named {name:?} (see `hq user list`)"));
            }
            let what: Vec<&str> = [
                change.role.map(|r| r.as_str()),
                change.disabled.map(|d| if d { "disabled" } else { "enabled" }),
                change.password_hash.as_ref().map(|_| "password"),
            ]
            .into_iter()
            .flatten()
            .collect();
            store.audit(&cli_actor(), "user-set", name, &what.join(" "), now).await.map_err(db_error)?;
            let what = what.join(", ");
            emit(&tr!(Lang::current(), "changed {name}: {what}\n", "已修改 {name}：{what}\n"))
        }
    }
}
