//! Head office's storage: one interface ([`Store`]) over two databases, chosen by a URL.
//!
//! - `sqlite://PATH` (the embedded default: one file, nothing to install) — the demo and
//!   single-machine head offices.
//! - `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` — a whole bank: any number of `hq listen`
//!   processes and readers on one server the bank's IT already runs.
//!
//! Everything else in the crate talks to [`Store`] and never knows which one it has. The SQL is
//! written once, in the subset both dialects share (`$N` parameters, `ON CONFLICT`, `RETURNING`,
//! window functions), and runs through sqlx's `Any` driver; times are BIGINT milliseconds so no
//! type differs between the two. The schema is versioned in `migrations/{sqlite,postgres}/`
//! (the only place the dialects differ), embedded in the binary, applied at start by writers
//! and by `hq migrate`.
//!
//! The store holds no state of its own between calls: several listeners and readers may use one
//! database at once. Writes are idempotent (unique keys with `ON CONFLICT DO NOTHING`), so a
//! batch retried after a lost connection, or a message redelivered to another listener, changes
//! nothing twice.

mod console;
mod notify;
mod orders;
mod prune;
mod read;
mod write;

use std::borrow::Cow;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, SqlSafeStr as _};

pub use console::{
    Ack, AckOutcome, AlarmRow, AlertListQuery, AuditRow, BranchState, ChangeMarker, ListState, Role, SessionInfo,
    UserChange, UserRow,
};
pub use notify::{NewNotification, NotificationRow, UnnotifiedAlert, UnnotifiedOrderEvent};
pub use orders::{OrderEvent, OrderQuery, OrderRefusal, OrderRow};
pub use prune::{PruneOutcome, Retention, RetentionError};
pub use read::{AlertQuery, GapRow};
pub use write::{BatchOutcome, Incoming, SeqNote};

/// What storing one message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new alert, stored.
    NewAlert,
    /// An alert already stored (same branch and id): a redelivery, nothing stored.
    DuplicateAlert,
    /// Retained state that differs from the last value: a change was recorded.
    Changed,
    /// Retained state equal to the last value (re-sent after a reconnect), or older than it.
    Unchanged,
    /// A retained value was deleted by its publisher.
    Removed,
}

/// The database's counters (`hq stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Distinct alerts stored.
    pub alerts: u64,
    /// Redeliveries of an alert already stored.
    pub duplicates: u64,
    /// Messages rejected (bad JSON, wrong schema, branch or kind not matching the topic).
    pub malformed: u64,
    pub gateway_changes: u64,
    pub device_changes: u64,
    pub zone_changes: u64,
    /// Alerts removed by `hq prune` (retention).
    pub pruned: u64,
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Whether opening may create the database (writers) or needs it to exist (readers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    Create,
    Existing,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "database URL {0:?} is not sqlite://PATH or postgres://USER@HOST[:PORT]/DB (e.g. sqlite:///var/lib/hq/hq.db)"
    )]
    BadUrl(String),
    #[error("no database at {path} (start `hq listen` or run `hq migrate --db {url}` first, or pass the right --db)")]
    NoFile { path: String, url: String },
    #[error("{url}: the server refused the credentials ({detail}); check the user and password in --db")]
    Auth { url: String, detail: String },
    #[error("{url}: {detail} (create it, e.g. `createdb`, or fix the name in --db)")]
    NoDatabase { url: String, detail: String },
    #[error("{url}: cannot reach the database: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("{url}: the schema is older than this `hq` (run `hq migrate --db {url}`)")]
    NotMigrated { url: String },
    #[error("{url}: cannot apply the schema migrations: {detail}")]
    Migrate { url: String, detail: String },
    // The driver's error is part of the message, not a `source`: one line, said once.
    #[error("{url}: {what}: {error}")]
    Query { url: String, what: &'static str, error: sqlx::Error },
    #[error("{url}: a stored record cannot be read ({what}): {detail}")]
    Corrupt { url: String, what: &'static str, detail: String },
}

impl DbError {
    /// The error in `lang` (the English is the `Display` above; the driver's own detail stays as
    /// the driver says it).
    pub fn render(&self, lang: i18n::Lang) -> String {
        use DbError as E;
        if lang == i18n::Lang::En {
            return self.to_string();
        }
        match self {
            E::BadUrl(u) => format!(
                "数据库地址 {u:?} 既不是 sqlite://路径，也不是 postgres://用户@主机[:端口]/库名（例如 sqlite:///var/lib/hq/hq.db）"
            ),
            E::NoFile { path, url } => format!(
                "{path} 处没有数据库（先启动 `hq listen`，或运行 `hq migrate --db {url}`，或用 --db 指定正确的数据库）"
            ),
            E::Auth { url, detail } => {
                format!("{url}：数据库服务器拒绝了账号（{detail}）；请检查 --db 中的用户名和密码")
            }
            E::NoDatabase { url, detail } => {
                format!("{url}：{detail}（请先建库，例如用 `createdb`，或改正 --db 中的库名）")
            }
            E::Unreachable { url, detail } => format!("{url}：无法连接数据库：{detail}"),
            E::NotMigrated { url } => format!("{url}：数据库结构比这个 `hq` 旧（请运行 `hq migrate --db {url}`）"),
            E::Migrate { url, detail } => format!("{url}：无法升级数据库结构：{detail}"),
            E::Query { url, what, error } => format!("{url}：{what}：{error}"),
            E::Corrupt { url, what, detail } => format!("{url}：一条已存记录无法读取（{what}）：{detail}"),
        }
    }

    /// Whether waiting and trying again may help (the server is down or restarting, the
    /// connection was lost, SQLite is busy), as opposed to a mistake that needs a person.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Unreachable { .. } => true,
            DbError::Query { error, .. } => is_transient(error),
            _ => false,
        }
    }

    /// A mistake in how `hq` was called (exit status 2) rather than a failure.
    pub fn is_usage(&self) -> bool {
        matches!(self, DbError::BadUrl(_))
    }
}

fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(d) => {
            let code = d.code().unwrap_or_default();
            // PostgreSQL: 08* connection exceptions, 57P* operator intervention (shutdown,
            // cannot connect now), 40001/40P01 serialization failure / deadlock, 53* out of
            // resources. SQLite: 5 SQLITE_BUSY, 6 SQLITE_LOCKED.
            code.starts_with("08")
                || code.starts_with("57P")
                || code.starts_with("53")
                || code == "40001"
                || code == "40P01"
                || code == "5"
                || code == "6"
                || d.message().contains("database is locked")
        }
        _ => false,
    }
}

/// The embedded migrations of one backend.
fn migrator(backend: Backend) -> Migrator {
    let files: &[(i64, &str, &'static str)] = match backend {
        Backend::Sqlite => &[
            (1, "init", include_str!("../../migrations/sqlite/0001_init.sql")),
            (2, "console", include_str!("../../migrations/sqlite/0002_console.sql")),
            (3, "orders", include_str!("../../migrations/sqlite/0003_orders.sql")),
            (4, "notify", include_str!("../../migrations/sqlite/0004_notify.sql")),
        ],
        Backend::Postgres => &[
            (1, "init", include_str!("../../migrations/postgres/0001_init.sql")),
            (2, "console", include_str!("../../migrations/postgres/0002_console.sql")),
            (3, "orders", include_str!("../../migrations/postgres/0003_orders.sql")),
            (4, "notify", include_str!("../../migrations/postgres/0004_notify.sql")),
        ],
    };
    let migrations: Vec<Migration> = files
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, sql.into_sql_str(), false)
        })
        .collect();
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

/// The newest schema version this `hq` knows.
pub fn schema_version(backend: Backend) -> i64 {
    migrator(backend).migrations.iter().map(|m| m.version).max().unwrap_or(0)
}

/// A parsed `--db` URL.
#[derive(Debug, Clone)]
pub struct DbUrl {
    pub backend: Backend,
    /// The URL given to the driver.
    url: String,
    /// The URL with any password replaced, for messages and logs.
    pub display: String,
    /// SQLite only: the file.
    pub path: Option<String>,
}

impl DbUrl {
    pub fn parse(s: &str) -> Result<DbUrl, DbError> {
        let bad = || DbError::BadUrl(s.to_string());
        if let Some(rest) = s.strip_prefix("sqlite:") {
            // sqlite:///abs/path, sqlite://rel/path, sqlite:rel/path; options after `?`.
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if path.is_empty() || path == ":memory:" {
                return Err(bad());
            }
            let url = if query.is_empty() { format!("sqlite://{path}") } else { format!("sqlite://{path}?{query}") };
            return Ok(DbUrl { backend: Backend::Sqlite, display: url.clone(), url, path: Some(path.to_string()) });
        }
        let rest = s.strip_prefix("postgres://").or_else(|| s.strip_prefix("postgresql://")).ok_or_else(bad)?;
        let (authority, _) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() && !rest.contains("host=") {
            return Err(bad());
        }
        let display = match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => s.replacen(authority, &format!("{user}:***@{host}"), 1),
                None => s.to_string(),
            },
            None => s.to_string(),
        };
        Ok(DbUrl { backend: Backend::Postgres, url: s.to_string(), display, path: None })
    }
}

/// The storage interface: see the module documentation.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    url: String,
    /// Schema versions this `open` applied.
    migrated_now: Vec<i64>,
}

impl Store {
    /// Connects. Writers (`OpenMode::Create`) create a missing SQLite file and apply the
    /// migrations; readers need the database to exist and be migrated.
    pub async fn open(url: &DbUrl, mode: OpenMode) -> Result<Store, DbError> {
        sqlx::any::install_default_drivers();
        let mut driver_url = url.url.clone();
        if let (Backend::Sqlite, Some(path)) = (url.backend, &url.path) {
            if mode == OpenMode::Existing && !std::path::Path::new(path).exists() {
                return Err(DbError::NoFile { path: path.clone(), url: url.display.clone() });
            }
            if !driver_url.contains("mode=") {
                let sep = if driver_url.contains('?') { '&' } else { '?' };
                let m = if mode == OpenMode::Create { "rwc" } else { "rw" };
                driver_url = format!("{driver_url}{sep}mode={m}");
            }
        }
        let opts: AnyConnectOptions = driver_url.parse().map_err(|_| DbError::BadUrl(url.display.clone()))?;
        let backend = url.backend;
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers run beside a writer; busy_timeout makes several
                        // writers on one file wait for each other instead of failing.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await
            .map_err(|e| classify_connect(&url.display, e))?;
        let mut store = Store { pool, backend, url: url.display.clone(), migrated_now: Vec::new() };
        match mode {
            OpenMode::Create => store.migrated_now = store.migrate().await?,
            OpenMode::Existing => store.check_schema().await?,
        }
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The schema versions applied when this store was opened (writers migrate at start).
    pub fn migrated_now(&self) -> &[i64] {
        &self.migrated_now
    }

    /// The URL, password hidden.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Applies every migration this `hq` has that the database lacks; returns the versions
    /// applied now.
    pub async fn migrate(&self) -> Result<Vec<i64>, DbError> {
        let before = self.applied_versions().await.unwrap_or_default();
        migrator(self.backend)
            .run(&self.pool)
            .await
            .map_err(|e| DbError::Migrate { url: self.url.clone(), detail: e.to_string() })?;
        let after = self.applied_versions().await?;
        Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
    }

    async fn applied_versions(&self) -> Result<Vec<i64>, DbError> {
        let rows: Vec<(i64,)> = sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("read the schema version"))?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    async fn check_schema(&self) -> Result<(), DbError> {
        let have = self.applied_versions().await.map_err(|e| match e {
            DbError::Query { error, .. } if !is_transient(&error) => DbError::NotMigrated { url: self.url.clone() },
            e => e,
        })?;
        if have.iter().copied().max().unwrap_or(0) < schema_version(self.backend) {
            return Err(DbError::NotMigrated { url: self.url.clone() });
        }
        Ok(())
    }

    fn err(&self, what: &'static str) -> impl Fn(sqlx::Error) -> DbError + '_ {
        move |error| DbError::Query { url: self.url.clone(), what, error }
    }

    fn corrupt(&self, what: &'static str, detail: impl ToString) -> DbError {
        DbError::Corrupt { url: self.url.clone(), what, detail: detail.to_string() }
    }

    /// Closes every connection (waits for them to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn classify_connect(url: &str, e: sqlx::Error) -> DbError {
    let detail = e.to_string();
    if let sqlx::Error::Database(d) = &e {
        match d.code().as_deref() {
            Some("28P01" | "28000") => return DbError::Auth { url: url.to_string(), detail },
            Some("3D000") => return DbError::NoDatabase { url: url.to_string(), detail },
            _ => {}
        }
    }
    if matches!(e, sqlx::Error::Configuration(_)) {
        return DbError::BadUrl(url.to_string());
    }
    if is_transient(&e) {
        return DbError::Unreachable { url: url.to_string(), detail };
    }
    DbError::Query { url: url.to_string(), what: "connect", error: e }
}

/// Milliseconds since the epoch, as stored.
pub(crate) fn ms(t: protocols::time::Timestamp) -> i64 {
    t.timestamp_millis()
}

/// A stored time back as a timestamp (out-of-range values clamp to the epoch).
pub(crate) fn ts(ms: i64) -> protocols::time::Timestamp {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_backend_and_hide_the_password() {
        let u = DbUrl::parse("sqlite:///var/lib/hq/hq.db").unwrap();
        assert_eq!((u.backend, u.path.as_deref()), (Backend::Sqlite, Some("/var/lib/hq/hq.db")));
        let u = DbUrl::parse("sqlite://hq.db").unwrap();
        assert_eq!(u.path.as_deref(), Some("hq.db"));
        let u = DbUrl::parse("postgres://hq:s3cret@db.bank:5432/hq").unwrap();
        assert_eq!(u.backend, Backend::Postgres);
        assert!(!u.display.contains("s3cret"), "{}", u.display);
        assert!(u.display.contains("hq:***@db.bank:5432/hq"), "{}", u.display);
        for bad in ["mysql://x/y", "hq.db", "sqlite://", "postgres://", ""] {
            assert!(DbUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
