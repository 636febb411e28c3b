//! Scenario 6 — head office at bank scale: how fast `hq listen` stores what the branches
//! publish, and how fast `hq report` and `hq coverage` answer over a bank's history, on
//! PostgreSQL (the bank's database; budgets apply) and on SQLite (the embedded default;
//! reported with the same budgets, to show where it stops being enough).
//!
//! **Ingest** ([`ingest`]). A throw-away PostgreSQL cluster with durability at its defaults
//! (`fsync`, `synchronous_commit`, `full_page_writes` on: the figure is about committed, durable
//! data), a fresh database (`createdb` + `hq migrate`) and a fresh mosquitto without queue or
//! in-flight limits every run; two release `hq listen` processes in one `$share` group. The bench
//! process publishes 200,000 alerts (quick: 40,000) from 200 branches over 4 QoS 1 connections
//! (100 in flight each): every 10 alerts 5 door-status, 2 alarm-link, 2 camera-offline, 1
//! device-fault, each branch's `seq` contiguous from 1, payloads built from the `protocols`
//! types and serialised before the clock starts. Timed from the first publish until `hq stats`
//! (polled every 200 ms) counts every alert. 3 runs (quick: 1); the listeners' CPU
//! (`/proc/PID/stat`) per 1,000 alerts and their peak RSS (`VmHWM`) alongside. Then one run
//! into a SQLite file, for comparison.
//!
//! **History** ([`history`], [`gen_sql`]). 2,000 branches (quick: 200) × 180 days: 2,800
//! alerts per branch (5.6 million), the cameras', zones' and gateways' timelines, repairs,
//! subjects, sequence state and each branch's latest retained state, generated in the
//! database with `INSERT … SELECT` (not through MQTT), then `VACUUM ANALYZE` / `ANALYZE`. Then
//! `hq report --from -30d --to now --format json` and `hq coverage --format json` as child
//! processes of the release `hq` (stdout to /dev/null), 3 runs each (quick: 2): wall time from
//! spawn to exit, and the exact peak RSS from `wait4`'s `rusage`. One captured run of each
//! first checks the answers (every branch reported, alarms counted).

mod gen_sql;
mod history;
pub mod ingest;

use std::time::Duration;

use anyhow::{Context, Result};
use harness::pg::Postgres;

use super::{Ctx, ms};
use crate::report::{Budget, Row, num};
use crate::rusage::{self, Measured};
use crate::stats::Summary;
use gen_sql::{Dialect, Plan};

const SCENARIO: &str = "6 head office";

const MIB: f64 = 1024.0 * 1024.0;

pub async fn run(ctx: &Ctx) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let pg = tokio::task::spawn_blocking(Postgres::start_durable)
        .await
        .context("start PostgreSQL")?
        .context("start a PostgreSQL cluster (durable settings)")?;
    let settings = durability(&pg.url("postgres")).await?;
    eprintln!("  PostgreSQL on 127.0.0.1:{}: {settings}", pg.port);

    let (alerts, runs) = ctx.pick((200_000, 3), (40_000, 1));
    collect(&mut rows, "ingest (PostgreSQL)", ingest_postgres(ctx, &pg, alerts, runs).await);
    collect(&mut rows, "ingest (SQLite)", ingest_sqlite(ctx, alerts).await);

    let branches = ctx.pick(2_000, 200);
    let r = match pg.create_db("history") {
        Ok(url) => history(ctx, Dialect::Postgres, &url, None, branches).await,
        Err(e) => Err(e),
    };
    collect(&mut rows, "history (PostgreSQL)", r);
    // The cluster (several GB by now) goes before the SQLite history is written.
    drop(pg);
    let file = ctx.dir("hq-history.db");
    let url = format!("sqlite://{}", file.display());
    collect(&mut rows, "history (SQLite)", history(ctx, Dialect::Sqlite, &url, Some(&file), branches).await);
    Ok(rows)
}

/// `bsg-bench hq-history`: the history alone, into the migrated, empty database at `url`.
pub fn generate_only(url: &str, branches: u64) -> Result<()> {
    let (dialect, file) = match url.strip_prefix("sqlite://") {
        Some(path) => (Dialect::Sqlite, Some(std::path::PathBuf::from(path.split('?').next().unwrap_or(path)))),
        None => (Dialect::Postgres, None),
    };
    let plan = Plan { dialect, branches, now_ms: chrono::Utc::now().timestamp_millis() };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let g = rt.block_on(history::generate(url, file.as_deref(), plan))?;
    println!(
        "{} alerts in {:.0} s, analyzed in {:.0} s, {:.0} MiB",
        num(g.alerts as f64),
        g.insert.as_secs_f64(),
        g.analyze.as_secs_f64(),
        g.bytes as f64 / MIB
    );
    Ok(())
}

/// The server's durability settings, as it reports them; an error unless at the defaults.
async fn durability(url: &str) -> Result<String> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.with_context(|| format!("connect to {url}"))?;
    let mut said = Vec::new();
    for name in ["fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "max_wal_size"] {
        let v: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT current_setting('{name}')")))
            .fetch_one(&mut conn)
            .await
            .with_context(|| format!("read the setting {name}"))?;
        if ["fsync", "synchronous_commit", "full_page_writes"].contains(&name) && v != "on" {
            anyhow::bail!("PostgreSQL runs with {name} = {v}; the ingest budget is about durable data");
        }
        said.push(format!("{name}={v}"));
    }
    conn.close().await.context("close")?;
    Ok(said.join(" "))
}

/// A part's rows, or an ERROR row saying why it could not measure.
fn collect(rows: &mut Vec<Row>, part: &str, r: Result<Vec<Row>>) {
    match r {
        Ok(r) => rows.extend(r),
        Err(e) => {
            eprintln!("  ERROR in {part}: {e:#}");
            rows.push(Row::error(SCENARIO, part, format!("{e:#}")));
        }
    }
}

/// Ingest rows for one backend: alerts/s (judged or not), CPU per 1,000 alerts, peak RSS.
fn ingest_rows(backend: &str, alerts: u64, runs: &[ingest::Run], budget: Option<Budget>) -> Vec<Row> {
    let over = format!("{} run(s) of {} alerts", runs.len(), num(alerts as f64));
    let rate: Vec<f64> = runs.iter().map(|r| alerts as f64 / r.elapsed.as_secs_f64()).collect();
    let cpu: Vec<f64> = runs.iter().map(|r| ms(r.listeners_cpu) / (alerts as f64 / 1000.0)).collect();
    let rss: Vec<f64> = runs.iter().map(|r| r.peak_rss as f64 / MIB).collect();
    vec![
        Row::new(
            SCENARIO,
            &format!("ingest into {backend}, 2 listeners, MQTT included"),
            "alerts/s",
            Summary::of(&rate),
            &over,
            budget,
        )
        .with_note(
            "200 branches over 4 QoS 1 connections → mosquitto → 2 `hq listen` ($share group) → one database; \
             first publish → `hq stats` counts every alert (polled every 200 ms)",
        ),
        Row::new(
            SCENARIO,
            &format!("ingest ({backend}): listeners' CPU per 1,000 alerts"),
            "ms",
            Summary::of(&cpu),
            &over,
            None,
        )
        .with_note("user + system time of both `hq listen` processes together"),
        Row::new(SCENARIO, &format!("ingest ({backend}): listener peak RSS"), "MiB", Summary::of(&rss), &over, None)
            .with_note("VmHWM of the larger of the two"),
    ]
}

async fn ingest_postgres(ctx: &Ctx, pg: &Postgres, alerts: u64, runs: usize) -> Result<Vec<Row>> {
    let mut done = Vec::new();
    for run in 1..=runs {
        let url = pg.create_db(&format!("ingest{run}"))?;
        history::output(&ctx.hq_bin, &["migrate", "--db", &url])?;
        let r = ingest::run_once(&ctx.hq_bin, &url, alerts, &ctx.dir(&format!("hq-ingest-pg-{run}"))).await?;
        eprintln!(
            "  PostgreSQL run {run}: {} alerts in {:.2} s = {} alerts/s; listeners' CPU {:.1} s",
            num(alerts as f64),
            r.elapsed.as_secs_f64(),
            num(alerts as f64 / r.elapsed.as_secs_f64()),
            r.listeners_cpu.as_secs_f64()
        );
        done.push(r);
    }
    Ok(ingest_rows("PostgreSQL", alerts, &done, Budget::at_least(20_000.0)))
}

async fn ingest_sqlite(ctx: &Ctx, alerts: u64) -> Result<Vec<Row>> {
    let dir = ctx.dir("hq-ingest-sqlite");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let url = format!("sqlite://{}", dir.join("hq.db").display());
    history::output(&ctx.hq_bin, &["migrate", "--db", &url])?;
    let r = ingest::run_once(&ctx.hq_bin, &url, alerts, &dir).await?;
    eprintln!(
        "  SQLite: {} alerts in {:.2} s = {} alerts/s",
        num(alerts as f64),
        r.elapsed.as_secs_f64(),
        num(alerts as f64 / r.elapsed.as_secs_f64())
    );
    let mut rows = ingest_rows("SQLite", alerts, &[r], None);
    if let Some(first) = rows.first_mut() {
        first.note = Some("as for PostgreSQL, into one SQLite file (WAL); reported, no budget".into());
    }
    Ok(rows)
}

/// Generates the history into the database at `url`, checks it, and times the questions.
async fn history(
    ctx: &Ctx,
    dialect: Dialect,
    url: &str,
    sqlite_file: Option<&std::path::Path>,
    branches: u64,
) -> Result<Vec<Row>> {
    let backend = match dialect {
        Dialect::Postgres => "PostgreSQL",
        Dialect::Sqlite => "SQLite",
    };
    let hq = ctx.hq_bin.clone();
    history::output(&hq, &["migrate", "--db", url])?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let plan = Plan { dialect, branches, now_ms };
    eprintln!(
        "  {backend}: generating {} branches × 180 days ({} alerts)",
        num(branches as f64),
        num(plan.alerts() as f64)
    );
    let g = history::generate(url, sqlite_file, plan).await?;
    let rate = g.alerts as f64 / g.insert.as_secs_f64();
    eprintln!(
        "  {backend}: generated in {:.0} s ({} alerts/s), analyzed in {:.0} s, {:.0} MiB",
        g.insert.as_secs_f64(),
        num(rate),
        g.analyze.as_secs_f64(),
        g.bytes as f64 / MIB
    );

    let runs = ctx.pick(3, 2);
    let (url_owned, dir) = (url.to_string(), ctx.dir(&format!("hq-history-{}", backend.to_lowercase())));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let self_bin = ctx.self_bin.clone();
    let timed = tokio::task::spawn_blocking(move || -> Result<Vec<(Measured, Measured)>> {
        history::validate(&hq, &url_owned, branches)?;
        let report = ["report", "--db", &url_owned, "--from", "-30d", "--to", "now", "--format", "json"];
        let coverage = ["coverage", "--db", &url_owned, "--format", "json"];
        let limit = Duration::from_secs(300);
        let mut out = Vec::new();
        for _ in 0..runs {
            let r = rusage::measure(&self_bin, &hq, &report, &dir.join("report.err"), limit)?;
            let c = rusage::measure(&self_bin, &hq, &coverage, &dir.join("coverage.err"), limit)?;
            eprintln!(
                "    report {:.0} ms, {:.1} MiB; coverage {:.0} ms, {:.1} MiB (launcher {:.1} MiB)",
                r.wall_ms,
                r.max_rss as f64 / MIB,
                c.wall_ms,
                c.max_rss as f64 / MIB,
                r.launcher_rss.max(c.launcher_rss) as f64 / MIB
            );
            out.push((r, c));
        }
        Ok(out)
    })
    .await
    .context("the timed hq runs")??;

    let size = format!("{} branches × 180 d", num(branches as f64));
    let over = format!("{runs} runs");
    let report_ms: Vec<f64> = timed.iter().map(|(r, _)| r.wall_ms).collect();
    let report_rss: Vec<f64> = timed.iter().map(|(r, _)| r.max_rss as f64 / MIB).collect();
    let coverage_ms: Vec<f64> = timed.iter().map(|(_, c)| c.wall_ms).collect();
    let floor = timed.iter().map(|(r, c)| r.launcher_rss.max(c.launcher_rss)).max().unwrap_or(0) as f64 / MIB;
    let rss_note = format!(
        "ru_maxrss from wait4, spawned through a {floor:.1} MiB launcher (exact above that; see bench/src/rusage.rs)"
    );
    let coverage_rss: Vec<f64> = timed.iter().map(|(_, c)| c.max_rss as f64 / MIB).collect();
    let one = |v: f64| Summary::of(&[v]);
    Ok(vec![
        Row::new(
            SCENARIO,
            &format!("history ({backend}): generate {size}"),
            "s",
            one(g.insert.as_secs_f64()),
            "1 run",
            None,
        )
        .with_note(format!(
            "{} alerts plus timelines, repairs, subjects and latest state, INSERT … SELECT in the database; \
             then {} in {:.0} s",
            num(g.alerts as f64),
            if dialect == Dialect::Postgres { "VACUUM ANALYZE" } else { "ANALYZE" },
            g.analyze.as_secs_f64()
        )),
        Row::new(SCENARIO, &format!("history ({backend}): generation rate"), "alerts/s", one(rate), "1 run", None),
        Row::new(
            SCENARIO,
            &format!("history ({backend}): database size"),
            "MiB",
            one(g.bytes as f64 / MIB),
            "1 run",
            None,
        )
        .with_note(if dialect == Dialect::Postgres {
            "pg_database_size, after VACUUM ANALYZE"
        } else {
            "the file, after a WAL checkpoint"
        }),
        Row::new(
            SCENARIO,
            &format!("history ({backend}): bytes per alert"),
            "B",
            one(g.bytes as f64 / g.alerts as f64),
            "1 run",
            None,
        )
        .with_note("the whole database (indexes, timelines, repairs, latest state) ÷ alerts"),
        Row::new(
            SCENARIO,
            &format!("`hq report` -30d, {size} ({backend})"),
            "ms",
            Summary::of(&report_ms),
            &over,
            Budget::at_most(3000.0),
        )
        .with_note("spawn → reaped, of the release hq, stdout to /dev/null"),
        Row::new(
            SCENARIO,
            &format!("`hq report` peak RSS ({backend})"),
            "MiB",
            Summary::of(&report_rss),
            &over,
            Budget::at_most(100.0),
        )
        .with_note(rss_note.clone()),
        Row::new(
            SCENARIO,
            &format!("`hq coverage`, {} branches ({backend})", num(branches as f64)),
            "ms",
            Summary::of(&coverage_ms),
            &over,
            Budget::at_most(200.0),
        ),
        Row::new(
            SCENARIO,
            &format!("`hq coverage` peak RSS ({backend})"),
            "MiB",
            Summary::of(&coverage_rss),
            &over,
            Budget::at_most(100.0),
        )
        .with_note(rss_note),
    ])
}
