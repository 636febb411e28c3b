//! Shared pieces of the simulator tests: the `device-sim` binary with its stdout read line by
//! line (each line timestamped as it arrives, so a test can relate the simulator's clock to
//! what head office sees), and a tiny HTTP client for the control API.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use harness::{Proc, bin};
use serde_json::Value;

/// A running `device-sim` whose stdout lines are collected with their arrival time.
pub struct Sim {
    pub proc: Proc,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Sim {
    /// Spawns `device-sim ARGS…`; stderr (the log) goes to `dir/device-sim.log`.
    pub fn spawn(args: &[&str], dir: &Path) -> Result<Sim> {
        Self::spawn_cmd(device_sim(), args, dir)
    }

    /// [`Sim::spawn`] from `cmd` as prepared (its locale, say).
    pub fn spawn_cmd(mut cmd: Command, args: &[&str], dir: &Path) -> Result<Sim> {
        let log = std::fs::File::create(dir.join("device-sim.log"))?;
        let mut child = cmd
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("spawn device-sim (built? run cargo build --workspace)")?;
        let stdout = child.stdout.take().context("device-sim stdout")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push((Instant::now(), line));
                }
            }
        });
        Ok(Sim { proc: Proc { child, name: "device-sim".into() }, lines })
    }

    /// Waits for a stdout line matching `pred`; returns it with the time it arrived.
    pub fn wait_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Result<(Instant, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(hit) = self.lines.lock().ok().and_then(|l| l.iter().find(|(_, s)| pred(s)).cloned()) {
                return Ok(hit);
            }
            if let Ok(Some(status)) = self.proc.child.try_wait() {
                bail!("device-sim exited ({status}) before the expected line; stdout: {:?}", self.stdout());
            }
            if Instant::now() > deadline {
                bail!("no expected line from device-sim within {timeout:?}; stdout so far: {:?}", self.stdout());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The control API's base URL, from the `control http://…` line.
    pub fn control(&mut self) -> Result<String> {
        let (_, line) = self.wait_line(Duration::from_secs(20), |l| l.starts_with("control "))?;
        Ok(line.trim_start_matches("control ").trim().to_string())
    }

    /// When the simulator started its clock (the `serving` line follows it at once).
    pub fn started(&mut self) -> Result<Instant> {
        Ok(self.wait_line(Duration::from_secs(20), |l| l.starts_with("serving"))?.0)
    }

    pub fn stdout(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.iter().map(|(_, s)| s.clone()).collect()).unwrap_or_default()
    }

    /// The `--events-json` lines so far.
    pub fn events(&self) -> Vec<Value> {
        self.stdout().iter().filter(|l| l.starts_with('{')).filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The `host:port` a camera's ONVIF service listens on, from its `camera ID onvif=…` line.
    pub fn camera_port(&self, id: &str) -> Option<u16> {
        let prefix = format!("camera {id} onvif=http://");
        self.stdout().iter().find_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            rest.split('/').next()?.rsplit(':').next()?.parse().ok()
        })
    }

    /// The Modbus address of a panel, from its `panel  ID modbus=…` line.
    pub fn panel_addr(&self, id: &str) -> Option<std::net::SocketAddr> {
        let prefix = format!("panel  {id} modbus=");
        self.stdout().iter().find_map(|l| l.strip_prefix(&prefix)?.split_whitespace().next()?.parse().ok())
    }
}

/// `cmd` in an English locale whatever the test runner's: the tests read the English texts
/// (`serving`, `wrote a matching gateway config`, problems); sim_i18n checks the Chinese ones.
pub fn english(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("LC_ALL").env_remove("LC_MESSAGES").env("LANG", "C")
}

/// `device-sim` in an English locale.
pub fn device_sim() -> Command {
    let mut cmd = Command::new(bin("device-sim"));
    english(&mut cmd);
    cmd
}

/// One HTTP/1.1 request to `base` (`http://127.0.0.1:PORT`); returns the status and the JSON
/// body (`Null` when the body is not JSON).
pub fn http(base: &str, method: &str, path: &str, body: &str) -> Result<(u16, Value)> {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let (head, body) = buf.split_once("\r\n\r\n").context("not HTTP")?;
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no status")?;
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` right now.
pub fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&std::net::SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(500)).is_ok()
}

/// Polls `f` until it is true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    f()
}

/// Runs `branch-gateway check-config FILE` in English; returns (exit code, stdout + stderr).
pub fn check_config(file: &Path) -> Result<(i32, String)> {
    let out = english(&mut Command::new(bin("branch-gateway"))).arg("check-config").arg(file).output()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.code().unwrap_or(-1), text))
}
