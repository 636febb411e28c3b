//! Measuring a process from outside, through `/proc`: CPU time (utime + stime of every thread,
//! `/proc/PID/stat`), resident memory (`VmRSS`) and its peak (`VmHWM`, `/proc/PID/status`).
//! Also the machine description that heads the report, and the open-files limit.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

/// Clock ticks per second of `/proc/PID/stat` times (100 on every Linux we know of).
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// User + system CPU time consumed so far by process `pid` (all its threads).
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let after = stat.rsplit_once(')').map(|x| x.1).context("malformed /proc/PID/stat")?;
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| -> Result<u64> {
        f.get(i).and_then(|s| s.parse().ok()).with_context(|| format!("field {} of /proc/{pid}/stat", i + 3))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / clock_ticks()))
}

/// `VmRSS` and `VmHWM` of process `pid`, in bytes.
pub fn memory(pid: u32) -> Result<(u64, u64)> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("read /proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .with_context(|| format!("{name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets the peak-RSS mark (`VmHWM`) of `pid` so that a later reading covers only what
/// follows (`echo 5 > /proc/PID/clear_refs`, Linux ≥ 4.0). Returns whether it worked.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// One window of a process's life: CPU used, wall time, and memory seen.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub cpu: Duration,
    pub wall: Duration,
    /// Largest `VmRSS` sampled during the window (sampled every `sample` period).
    pub rss_max: u64,
    /// `VmHWM` at the end of the window (since the last [`reset_peak`], if it worked).
    pub hwm: u64,
}

impl Window {
    /// CPU as a percentage of one core.
    pub fn cpu_percent(&self) -> f64 {
        100.0 * self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Measures `pid` over `length`, sampling RSS every `sample`. Fails if the process dies.
pub async fn measure(pid: u32, length: Duration, sample: Duration) -> Result<Window> {
    let (c0, t0) = (cpu_time(pid)?, Instant::now());
    let mut rss_max = memory(pid)?.0;
    let end = t0 + length;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        tokio::time::sleep(sample.min(end - now)).await;
        rss_max = rss_max.max(memory(pid)?.0);
    }
    let (c1, wall) = (cpu_time(pid)?, t0.elapsed());
    let (rss, hwm) = memory(pid)?;
    Ok(Window { cpu: c1.saturating_sub(c0), wall, rss_max: rss_max.max(rss), hwm })
}

/// Raises this process's soft open-files limit to the hard limit (children inherit it): a
/// thousand cameras cost the simulator two listeners each and the gateway a few sockets each.
/// Returns the soft limit now in force.
pub fn raise_nofile_limit() -> Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        bail!("getrlimit(RLIMIT_NOFILE): {}", std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: `want` is a valid rlimit; raising the soft limit up to the hard one is allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } != 0 {
            bail!("setrlimit(RLIMIT_NOFILE, {}): {}", lim.rlim_max, std::io::Error::last_os_error());
        }
        return Ok(lim.rlim_max);
    }
    Ok(lim.rlim_cur)
}

/// What the figures were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_gib: f64,
    pub open_files_limit: u64,
}

impl Machine {
    pub fn describe(open_files_limit: u64) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Machine {
            nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_model,
            kernel: kernel.unwrap_or_else(|_| "unknown".into()),
            memory_gib: mem_kib / (1024.0 * 1024.0),
            open_files_limit,
        }
    }

    pub fn line(&self) -> String {
        format!(
            "machine: {} CPU(s), {}, {:.0} GiB RAM, Linux {}, open-files limit {}",
            self.nproc, self.cpu_model, self.memory_gib, self.kernel, self.open_files_limit
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let (rss, hwm) = memory(me).unwrap();
        assert!(rss > 0 && hwm >= rss);
        // Burn a little CPU so the counter moves.
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(cpu_time(me).unwrap() > Duration::ZERO);
        assert!(cpu_time(u32::MAX).is_err());
    }
}
