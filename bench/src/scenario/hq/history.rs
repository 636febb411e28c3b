//! A bank's history, generated in the database ([`super::gen_sql`]), then the questions head
//! office asks of it, timed as child processes of the release `hq`.
//!
//! The latest retained state (each branch's gateway status, 23 devices' health, coverage
//! report) is small — a few rows per branch — and its payloads are what `hq coverage` parses,
//! so it is built here from the `protocols` types and serialised with serde (the wire format by
//! construction), then inserted in multi-row statements. The cameras the latest health calls
//! offline (about 3 %) get the timeline fact `hq listen` would have recorded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use protocols::coverage::COVERAGE_SCHEMA;
use protocols::status::{DEVICE_HEALTH_SCHEMA, GATEWAY_STATUS_SCHEMA};
use protocols::{
    BranchId, CoverageReport, CoverageTotals, DeviceHealth, DeviceId, DeviceRef, DeviceType, GatewayState,
    GatewayStatus, ZoneCoverage, ZoneId,
};
use sqlx::{AnyConnection, AssertSqlSafe, Connection};

use super::gen_sql::{CHUNKS, Dialect, Plan};

/// What generating one history took and left.
#[derive(Debug, Clone, Copy)]
pub struct Generated {
    /// Every row written, up to the last commit (alerts, their consequences, the rest).
    pub insert: Duration,
    /// `VACUUM ANALYZE` (PostgreSQL) or `ANALYZE` and a WAL checkpoint (SQLite).
    pub analyze: Duration,
    pub alerts: u64,
    /// The database on disk: `pg_database_size`, or the SQLite file.
    pub bytes: u64,
}

/// Generates `plan` into the migrated, empty database at `url` (`sqlite_file`: its file, for
/// SQLite). Prints progress to stderr.
pub async fn generate(url: &str, sqlite_file: Option<&Path>, plan: Plan) -> Result<Generated> {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(url).await.with_context(|| format!("connect to {url}"))?;
    if plan.dialect == Dialect::Sqlite {
        // Bulk load: a page cache that holds the growing indexes (2 GiB), sorts in memory.
        exec(&mut conn, "PRAGMA cache_size = -2097152").await?;
        exec(&mut conn, "PRAGMA temp_store = MEMORY").await?;
    }
    let t0 = Instant::now();
    for chunk in 0..CHUNKS {
        let mut tx = conn.begin().await.context("begin")?;
        for stmt in plan.alert_chunk(chunk) {
            exec(&mut tx, &stmt).await?;
        }
        tx.commit().await.context("commit a chunk of alerts")?;
        if (chunk + 1) % 5 == 0 {
            eprintln!(
                "    {} of {} alerts ({:.0} s)",
                crate::report::num((plan.alerts() * (chunk + 1) / CHUNKS) as f64),
                crate::report::num(plan.alerts() as f64),
                t0.elapsed().as_secs_f64()
            );
        }
    }
    let mut tx = conn.begin().await.context("begin")?;
    for stmt in plan.the_rest() {
        exec(&mut tx, &stmt).await?;
    }
    latest_state(&mut tx, &plan).await?;
    tx.commit().await.context("commit the latest state")?;
    let insert = t0.elapsed();

    let t1 = Instant::now();
    match plan.dialect {
        // What autovacuum would have done by then; done now so that it does not start in the
        // middle of the timed runs.
        Dialect::Postgres => exec(&mut conn, "VACUUM ANALYZE").await?,
        Dialect::Sqlite => {
            exec(&mut conn, "ANALYZE").await?;
            exec(&mut conn, "PRAGMA wal_checkpoint(TRUNCATE)").await?;
        }
    }
    let analyze = t1.elapsed();
    let bytes = match (plan.dialect, sqlite_file) {
        (Dialect::Postgres, _) => {
            let n: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(&mut conn)
                .await
                .context("pg_database_size")?;
            u64::try_from(n).unwrap_or(0)
        }
        (Dialect::Sqlite, Some(file)) => {
            let wal = PathBuf::from(format!("{}-wal", file.display()));
            file_len(file)? + if wal.exists() { file_len(&wal)? } else { 0 }
        }
        (Dialect::Sqlite, None) => bail!("a SQLite history needs its file"),
    };
    conn.close().await.context("close the connection")?;
    Ok(Generated { insert, analyze, alerts: plan.alerts(), bytes })
}

fn file_len(p: &Path) -> Result<u64> {
    Ok(std::fs::metadata(p).with_context(|| format!("stat {}", p.display()))?.len())
}

async fn exec(conn: &mut AnyConnection, sql: &str) -> Result<()> {
    sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(conn)
        .await
        .with_context(|| format!("the generator statement failed: {}", head(sql)))?;
    Ok(())
}

/// The start of a long statement, for an error message.
fn head(sql: &str) -> String {
    let s: String = sql.chars().take(300).collect();
    if s.len() < sql.len() { format!("{s}…") } else { s }
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn id<T: std::str::FromStr>(s: &str) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    s.parse::<T>().with_context(|| format!("id {s:?}"))
}

/// Rows of one multi-row INSERT.
const ROWS_PER_INSERT: usize = 200;

/// One bound value.
enum V {
    S(String),
    I(i64),
}

/// `INSERT INTO table (cols) VALUES (…), (…)` in statements of [`ROWS_PER_INSERT`] rows.
async fn insert_rows(conn: &mut AnyConnection, table: &str, cols: &[&str], rows: Vec<Vec<V>>) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
        let mut n = 0;
        for (r, _) in chunk.iter().enumerate() {
            if r > 0 {
                sql.push_str(", ");
            }
            let ps: Vec<String> = (0..cols.len())
                .map(|_| {
                    n += 1;
                    format!("${n}")
                })
                .collect();
            sql.push_str(&format!("({})", ps.join(", ")));
        }
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for row in chunk {
            for v in row {
                q = match v {
                    V::S(s) => q.bind(s.clone()),
                    V::I(i) => q.bind(*i),
                };
            }
        }
        q.execute(&mut *conn).await.with_context(|| format!("insert into {table}"))?;
    }
    Ok(())
}

/// Whether the latest health of camera `n` of branch `b` says offline (about 3 % of cameras,
/// never both cameras of one zone).
fn camera_offline(b: u64, n: u64) -> bool {
    (b * 20 + n).is_multiple_of(33)
}

/// Every branch's retained gateway status, device health and coverage report, plus the
/// timeline facts of the cameras whose health is offline.
async fn latest_state(conn: &mut AnyConnection, plan: &Plan) -> Result<()> {
    let now = plan.now_ms;
    // The gateway has been online since its last reconnection (the last gateway fact).
    let back: Vec<(String, i64)> =
        sqlx::query_as("SELECT branch, MAX(at) FROM timeline WHERE subject_kind = 'gateway' GROUP BY branch")
            .fetch_all(&mut *conn)
            .await
            .context("read the gateways' last reconnection")?;
    let back: std::collections::HashMap<String, i64> = back.into_iter().collect();
    let (mut gateways, mut devices, mut coverage, mut facts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for b in 1..=plan.branches {
        let name = format!("b{b}");
        let branch: BranchId = id(&name)?;
        let since = back.get(&name).copied().unwrap_or(now - 86_400_000);
        let status_at = now - (b as i64 % 60) * 1000;
        let g = GatewayStatus {
            schema: GATEWAY_STATUS_SCHEMA.into(),
            branch: branch.clone(),
            status: GatewayState::Online,
            reason: None,
            at: Some(at(since)),
            version: "0.1.0".into(),
        };
        gateways.push(vec![
            V::S(name.clone()),
            V::S("online".into()),
            V::I(since),
            V::I(since),
            V::I(since + 500),
            V::S(serde_json::to_string(&g)?),
        ]);

        let mut health = |dev: DeviceRef, state: &str, since: i64| -> Result<()> {
            let h = DeviceHealth {
                schema: DEVICE_HEALTH_SCHEMA.into(),
                branch: branch.clone(),
                state: state.into(),
                status: (state == "offline").then(|| "unreachable".into()),
                since: at(since),
                updated_at: at(status_at),
                reason: (state != "online").then(|| "connect: connection refused".to_string()),
                clock_skew_ms: None,
                resolution: None,
                encoding: None,
                device: dev,
            };
            devices.push(vec![
                V::S(name.clone()),
                V::S(h.device.id.as_str().to_string()),
                V::S(h.device.device_type.as_str().to_string()),
                V::S(state.to_string()),
                V::I(status_at),
                V::I(status_at + 500),
                V::S(serde_json::to_string(&h)?),
            ]);
            Ok(())
        };
        let mut down_since = std::collections::HashMap::new();
        for n in 1..=20u64 {
            let zones = if n <= 8 { vec![id::<ZoneId>(&format!("z{}", n.div_ceil(2)))?] } else { vec![] };
            let dev = DeviceRef {
                id: id(&format!("cam-{n}"))?,
                device_type: DeviceType::Camera,
                name: format!("Camera {n}"),
                zones,
            };
            if camera_offline(b, n) {
                let since = now - ((b * 7 + n) % 48 + 1) as i64 * 3_600_000;
                down_since.insert(n, since);
                facts.push(vec![
                    V::S(name.clone()),
                    V::S("camera".into()),
                    V::S(format!("cam-{n}")),
                    V::I(since),
                    V::I(1),
                    V::S("offline".into()),
                    V::S("health".into()),
                    V::I(since + 500),
                ]);
                health(dev, "offline", since)?;
            } else {
                health(dev, "online", now - ((b + n) % 20 + 10) as i64 * 86_400_000)?;
            }
        }
        let long_ago = now - 30 * 86_400_000;
        for (dev, ty, label) in [
            ("panel-1", DeviceType::AlarmPanel, "Intrusion panel"),
            ("door-1", DeviceType::AccessController, "Door controller 1"),
            ("door-2", DeviceType::AccessController, "Door controller 2"),
        ] {
            let d = DeviceRef { id: id(dev)?, device_type: ty, name: label.into(), zones: vec![] };
            health(d, "online", long_ago)?;
        }

        let mut zones = Vec::new();
        for (z, zname, required) in
            [(1u64, "Vault", true), (2, "Cash office", true), (3, "Lobby", false), (4, "ATM room", false)]
        {
            let cams = [2 * z - 1, 2 * z];
            let online = cams.iter().filter(|n| !down_since.contains_key(n)).count() as u32;
            let covered = online >= 1;
            zones.push(ZoneCoverage {
                id: id(&format!("z{z}"))?,
                name: zname.into(),
                required,
                min_live_cameras: 1,
                cameras: cams.iter().map(|n| id::<DeviceId>(&format!("cam-{n}"))).collect::<Result<_>>()?,
                cameras_online: online,
                cameras_live_video: online,
                covered,
                uncovered_since: (!covered)
                    .then(|| cams.iter().filter_map(|n| down_since.get(n)).max().copied().map(at))
                    .flatten(),
            });
        }
        let online = 20 - down_since.len() as u32;
        let report = CoverageReport {
            schema: COVERAGE_SCHEMA.into(),
            branch: branch.clone(),
            at: at(status_at),
            totals: CoverageTotals {
                cameras_configured: 20,
                cameras_online: online,
                cameras_live_video: online,
                required_zones: zones.iter().filter(|z| z.required).count() as u32,
                required_zones_uncovered: zones.iter().filter(|z| z.required && !z.covered).count() as u32,
            },
            zones,
        };
        coverage.push(vec![
            V::S(name.clone()),
            V::I(status_at),
            V::I(status_at + 500),
            V::S(serde_json::to_string(&report)?),
        ]);
    }
    insert_rows(conn, "latest_gateways", &["branch", "status", "since", "at", "received_at", "payload"], gateways)
        .await?;
    insert_rows(
        conn,
        "latest_devices",
        &["branch", "device", "device_type", "state", "updated_at", "received_at", "payload"],
        devices,
    )
    .await?;
    insert_rows(conn, "latest_coverage", &["branch", "at", "received_at", "payload"], coverage).await?;
    insert_rows(
        conn,
        "timeline",
        &["branch", "subject_kind", "subject", "at", "bad", "reason", "source", "received_at"],
        facts,
    )
    .await
}

/// Runs `hq args` and returns its stdout; fails unless it exits 0.
pub fn output(hq: &Path, args: &[&str]) -> Result<String> {
    let out =
        Command::new(hq).args(args).stdin(Stdio::null()).output().with_context(|| format!("run {}", hq.display()))?;
    if !out.status.success() {
        bail!("hq {} failed ({}): {}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8(out.stdout).context("hq printed something that is not UTF-8")
}

/// Checks what `hq` reads back: a few alerts decode as `branch-alert/1`, the report covers
/// every branch and counts alarms (with a camera down, too), the coverage lists every branch.
pub fn validate(hq: &Path, url: &str, branches: u64) -> Result<()> {
    let alerts = output(hq, &["alerts", "--db", url, "--limit", "3", "--format", "json"])?;
    let mut n = 0;
    for line in alerts.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<protocols::Alert>(line).with_context(|| format!("a stored alert: {line}"))?;
        n += 1;
    }
    if n != 3 {
        bail!("hq alerts --limit 3 printed {n} alerts");
    }
    let text = output(hq, &["report", "--db", url, "--from", "-30d", "--to", "now", "--format", "json"])?;
    let r: serde_json::Value = serde_json::from_str(&text).context("hq report printed no JSON")?;
    let t = &r["totals"];
    if t["branches"].as_u64() != Some(branches) || t["alarms"].as_u64().unwrap_or(0) == 0 {
        bail!("the report does not cover the history: totals {t}");
    }
    if t["alarms_with_camera_down"].as_u64().unwrap_or(0) == 0 {
        bail!("the report found no alarm with a camera down: totals {t}");
    }
    let text = output(hq, &["coverage", "--db", url, "--format", "json"])?;
    let c: serde_json::Value = serde_json::from_str(&text).context("hq coverage printed no JSON")?;
    let listed = c["branches"].as_array().map(Vec::len).unwrap_or(0);
    if listed as u64 != branches {
        bail!("hq coverage lists {listed} branches, not {branches}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQLITE_SCHEMA: &str = include_str!("../../../../headoffice/migrations/sqlite/0001_init.sql");
    const POSTGRES_SCHEMA: &str = include_str!("../../../../headoffice/migrations/postgres/0001_init.sql");

    type AlertRow = (String, String, i64, String, String, i64, String, String, i64, i64, i64, String);

    /// Every alert row, in a fixed order.
    async fn alerts(url: &str) -> Vec<AlertRow> {
        let mut conn = AnyConnection::connect(url).await.unwrap();
        sqlx::query_as(
            "SELECT branch, id, seq, kind, state, severity, device, device_type, occurred_at, received_at, \
             camera_down, payload FROM alerts ORDER BY branch, seq",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap()
    }

    async fn count(url: &str, sql: &'static str) -> i64 {
        let mut conn = AnyConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
    }

    /// Generates 3 branches into `url` (schema applied here) and checks the result.
    async fn generate_and_check(url: &str, schema: &str, file: Option<&Path>, dialect: Dialect, now_ms: i64) {
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect(url).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(schema.to_string())).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        let plan = Plan { dialect, branches: 3, now_ms };
        let g = generate(url, file, plan).await.unwrap();
        assert_eq!(g.alerts, 3 * 2_800);

        let rows = alerts(url).await;
        assert_eq!(rows.len(), 3 * 2_800);
        let mut kinds = std::collections::BTreeMap::new();
        let (mut down, mut last) = (0, (String::new(), 0i64, 0i64));
        for (branch, id, seq, kind, state, severity, device, device_type, occurred, received, camera_down, payload) in
            &rows
        {
            let a: protocols::Alert = serde_json::from_str(payload).unwrap_or_else(|e| panic!("{e}: {payload}"));
            assert_eq!(
                (a.branch.as_str(), a.id.as_str(), a.seq.0 as i64, a.kind().as_str(), a.device.id.as_str()),
                (branch.as_str(), id.as_str(), *seq, kind.as_str(), device.as_str())
            );
            assert_eq!(a.device.device_type.as_str(), device_type);
            assert_eq!(a.occurred_at.timestamp_millis(), *occurred, "{payload}");
            assert_eq!(*received, occurred + 500);
            assert_eq!(a.state == protocols::AlertState::Raised, state == "raised");
            assert_eq!(severity_rank(a.severity), *severity);
            assert_eq!(id.len(), 36, "UUID-shaped: {id}");
            let linked_down = match &a.body {
                protocols::AlertBody::AlarmLink(d) => {
                    state == "raised" && d.cameras.iter().any(|c| !c.online || !c.stream_alive || c.frozen)
                }
                _ => false,
            };
            assert_eq!(linked_down, *camera_down == 1, "{payload}");
            down += camera_down;
            // seq contiguous from 1 and time-ordered within a branch, every time in the window.
            if last.0 == *branch {
                assert_eq!(*seq, last.1 + 1);
                assert!(*occurred > last.2, "{payload}");
            } else {
                assert_eq!(*seq, 1);
            }
            assert!(*occurred >= now_ms - gen_sql_span() && *occurred < now_ms, "{payload}");
            last = (branch.clone(), *seq, *occurred);
            *kinds.entry(kind.clone()).or_insert(0) += 1;
        }
        let per_branch: Vec<(String, i32)> = kinds.into_iter().map(|(k, n)| (k, n / 3)).collect();
        let want = [("alarm-link", 600), ("camera-offline", 600), ("device-fault", 200), ("door-status", 1_400)];
        assert_eq!(per_branch, want.map(|(k, n)| (k.to_string(), n)));
        assert_eq!(down, 3 * 12);
        assert_eq!(count(url, "SELECT COUNT(*) FROM repairs").await, 3 * 400);
        assert_eq!(count(url, "SELECT COUNT(*) FROM repairs WHERE cleared_at <= raised_at").await, 0);
        let cams = "SELECT COUNT(*) FROM timeline WHERE subject_kind = 'camera' AND source = 'alert'";
        assert_eq!(count(url, cams).await, 3 * 600);
        assert_eq!(count(url, "SELECT COUNT(*) FROM timeline WHERE subject_kind = 'zone'").await, 3 * 100);
        assert_eq!(count(url, "SELECT COUNT(*) FROM timeline WHERE subject_kind = 'gateway'").await, 3 * 20);
        assert_eq!(count(url, "SELECT COUNT(*) FROM subjects").await, 3 * 25);
        assert_eq!(count(url, "SELECT COUNT(*) FROM branch_seq WHERE max_seq = 2800").await, 3);
        assert_eq!(count(url, "SELECT COUNT(*) FROM latest_devices").await, 3 * 23);
        assert_eq!(count(url, "SELECT COUNT(*) FROM latest_coverage").await, 3);
        assert_eq!(count(url, "SELECT COUNT(*) FROM latest_gateways").await, 3);
        assert_eq!(count(url, "SELECT value FROM counters WHERE name = 'alerts'").await, 3 * 2_800);
    }

    /// The `severity` column's value for a severity, as `hq listen` stores it.
    fn severity_rank(s: protocols::Severity) -> i64 {
        match s {
            protocols::Severity::Info => 0,
            protocols::Severity::Warning => 1,
            protocols::Severity::Major => 2,
            protocols::Severity::Critical => 3,
        }
    }

    fn gen_sql_span() -> i64 {
        super::super::gen_sql::SPAN_MS
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn both_dialects_generate_the_same_valid_history() {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hq.db");
        std::fs::File::create(&file).unwrap();
        let lite = format!("sqlite://{}", file.display());
        generate_and_check(&lite, SQLITE_SCHEMA, Some(&file), Dialect::Sqlite, now_ms).await;

        let pg = tokio::task::spawn_blocking(harness::pg::Postgres::start).await.unwrap().unwrap();
        let url = pg.create_db("gen").unwrap();
        generate_and_check(&url, POSTGRES_SCHEMA, None, Dialect::Postgres, now_ms).await;
        assert!(alerts(&lite).await == alerts(&url).await, "the dialects generate different alerts");
    }
}
