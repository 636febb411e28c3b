//! A real PostgreSQL server for one test: its own cluster in a temporary directory, on a free
//! loopback port, trusting local connections, gone when the test ends.
//!
//! Debian's `postgresql` package provides the server (`/usr/lib/postgresql/N/bin`). PostgreSQL
//! refuses to run as root, so as root (CI) the cluster belongs to the `postgres` user the
//! package creates and every server command runs as that user. Nothing here skips: a machine
//! without PostgreSQL fails the test with the command that installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::{free_port, wait_for_port};

pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// `Some("postgres")` when running as root.
    run_as: Option<String>,
    running: bool,
    /// PostgreSQL's durability defaults (see [`Postgres::start_durable`]) instead of the test
    /// settings.
    durable: bool,
}

/// The newest installed server's bin directory.
fn server_bin() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("postgres").exists().then_some((v, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().map(|(_, b)| b).context(
        "PostgreSQL is not installed (no /usr/lib/postgresql/N/bin/postgres): run scripts/test --setup-only, \
         or apt-get install postgresql",
    )
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

impl Postgres {
    /// initdb + start. About a second. Tuned for test speed: no fsync, no synchronous commit,
    /// no full-page writes (a crash loses the cluster, which a test throws away anyway).
    pub fn start() -> Result<Postgres> {
        Self::start_with(false)
    }

    /// initdb + start with PostgreSQL's durability defaults (`fsync`, `synchronous_commit` and
    /// `full_page_writes` on): for measurements about committed, durable data (bsg-bench).
    pub fn start_durable() -> Result<Postgres> {
        Self::start_with(true)
    }

    /// [`Postgres::start`] (`durable: false`) or [`Postgres::start_durable`] (`durable: true`).
    pub fn start_with(durable: bool) -> Result<Postgres> {
        let bin = server_bin()?;
        let run_as = is_root().then(|| "postgres".to_string());
        // Under /tmp rather than the test's own temp dir, so that the postgres user can reach it.
        let dir = tempfile::Builder::new().prefix("bsg-pg-").tempdir_in("/tmp")?;
        if let Some(user) = &run_as {
            let st = Command::new("chown").arg(format!("{user}:{user}")).arg(dir.path()).status()?;
            if !st.success() {
                bail!("chown {} to {user} failed (is the postgresql package installed?)", dir.path().display());
            }
        }
        let mut pg = Postgres { port: free_port(), dir, bin, run_as, running: false, durable };
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &["-D", &data.display().to_string(), "-U", "hq", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        )?;
        pg.start_again()?;
        Ok(pg)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<()> {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {}", exe.display()))?;
        if !out.status.success() {
            bail!(
                "{tool} {args:?} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Starts the server (again) on the same port and data.
    pub fn start_again(&mut self) -> Result<()> {
        let data = self.data_dir().display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        let tuning = if self.durable {
            // Durability stays at PostgreSQL's defaults. The bench generates millions of rows in
            // bulk: a bigger buffer pool than the 128 MB default keeps the indexes being filled
            // in memory, and a bigger WAL allowance than the 1 GB default keeps checkpoints
            // (and the full-page writes after each) from running back to back.
            "-c shared_buffers=256MB -c max_wal_size=4GB"
        } else {
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        };
        let opts = format!("-p {} -c listen_addresses=127.0.0.1 -k {} {tuning}", self.port, self.dir.path().display());
        self.run("pg_ctl", &["-D", &data, "-l", &log, "-o", &opts, "-w", "-t", "30", "start"])?;
        self.running = true;
        wait_for_port(self.port, Duration::from_secs(10))
    }

    /// Stops the server (fast shutdown: connections are cut).
    pub fn stop(&mut self) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        let data = self.data_dir().display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "-t", "30", "stop"])?;
        self.running = false;
        Ok(())
    }

    /// Creates database `name` and returns its URL.
    pub fn create_db(&self, name: &str) -> Result<String> {
        let port = self.port.to_string();
        let exe = self.bin.join("createdb");
        let out = Command::new(&exe)
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "hq", name])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {}", exe.display()))?;
        if !out.status.success() {
            bail!("createdb {name} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(self.url(name))
    }

    /// From now on TCP clients must log in as `hq` with `password` (SCRAM), as a bank's server
    /// would ask; the test cluster otherwise trusts every local connection.
    pub fn require_password(&self, password: &str) -> Result<()> {
        let port = self.port.to_string();
        let sql = format!("ALTER ROLE hq PASSWORD '{}'", password.replace('\'', "''"));
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "hq", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", &sql])
            .stdin(Stdio::null())
            .output()
            .context("run psql")?;
        if !out.status.success() {
            bail!("setting the password failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let hba = self.data_dir().join("pg_hba.conf");
        // Written as root, read by the server (owned by postgres): keep the file, change its text.
        std::fs::write(&hba, "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
            .with_context(|| format!("write {}", hba.display()))?;
        let data = self.data_dir().display().to_string();
        self.run("pg_ctl", &["-D", &data, "reload"])
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://hq@127.0.0.1:{}/{db}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let data = self.data_dir().display().to_string();
            let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        }
    }
}
