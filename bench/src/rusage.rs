//! Wall time and exact peak RSS of a short-lived command, from `wait4`'s `rusage`.
//!
//! Linux seeds a new program's `ru_maxrss` at `exec` with the high-water mark of the memory it
//! replaces — with `posix_spawn` (what `std::process::Command` uses), the spawning process's
//! own. Spawned from the bench, which holds pre-serialised messages and a database page cache,
//! every child would report at least the bench's peak. So the command runs under a launcher,
//! `bsg-bench rusage -- CMD…`: a fresh process of a few MiB that spawns CMD (stdout to
//! /dev/null, stderr inherited), reaps it with `wait4` and prints one JSON line. A figure is then
//! `max(the launcher's peak, the command's own)`: exact whenever it is above the launcher's,
//! which is printed alongside (`launcher_rss`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// What the launcher prints.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Measured {
    /// Spawn → reaped, milliseconds.
    pub wall_ms: f64,
    /// Peak RSS of the command (`ru_maxrss`), bytes.
    pub max_rss: u64,
    /// The launcher's own peak RSS when it spawned the command (the floor of `max_rss`), bytes.
    pub launcher_rss: u64,
    /// The command's exit code; `None` if a signal ended it.
    pub code: Option<i32>,
}

/// The launcher (`bsg-bench rusage`): runs `command`, prints [`Measured`] as JSON.
pub fn launch(command: &[String], timeout: Duration) -> Result<()> {
    let (program, args) = command.split_first().context("rusage: no command given")?;
    let launcher_rss = crate::procfs::memory(std::process::id()).map(|m| m.1).unwrap_or(0);
    let t0 = Instant::now();
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("spawn {program}"))?;
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid and writable for the call; `pid` is our own
        // child, which nothing else reaps (`child` is never waited on).
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).context("wait4");
            }
        } else if t0.elapsed() > timeout {
            // SAFETY: kill(2) and wait4(2) on our own child, not reaped yet (r == 0).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::wait4(pid, &mut status, 0, &mut usage);
            }
            bail!("{program} did not finish within {timeout:?}");
        }
        // The polling period bounds what it adds to the wall time.
        std::thread::sleep(Duration::from_micros(250));
    }
    let wall_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let max_rss = u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024;
    let m = Measured { wall_ms, max_rss, launcher_rss, code };
    println!("{}", serde_json::to_string(&m)?);
    Ok(())
}

/// Runs `program args` under the launcher (`self_bin rusage`), its stderr to `err_log`. Fails
/// unless the command exits 0.
pub fn measure(self_bin: &Path, program: &Path, args: &[&str], err_log: &Path, timeout: Duration) -> Result<Measured> {
    let err = std::fs::File::create(err_log).with_context(|| format!("create {}", err_log.display()))?;
    let out = Command::new(self_bin)
        .args(["rusage", "--timeout-s", &timeout.as_secs().to_string(), "--"])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(err)
        .output()
        .context("run bsg-bench rusage")?;
    let log = || std::fs::read_to_string(err_log).unwrap_or_default().trim().to_string();
    if !out.status.success() {
        bail!("bsg-bench rusage failed ({}): {}", out.status, log());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let m: Measured =
        serde_json::from_str(text.trim()).with_context(|| format!("bsg-bench rusage printed {text:?}"))?;
    if m.code != Some(0) {
        bail!("{} {} exited {:?}: {}", program.display(), args.join(" "), m.code, log());
    }
    Ok(m)
}
