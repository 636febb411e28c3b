//! `--stress`: a CPU and disk load beside the gateway, so the alarm scenario measures the tail on
//! a busy machine (issue 15) rather than on an idle one.
//!
//! The load is child processes of this binary (`stress-worker`, hidden): one per core spinning on
//! arithmetic, and one writing 4 MiB chunks into the scenario's scratch directory (the filesystem
//! of the gateway's outbox) with an fsync after each, rewinding every 256 MiB. They run at the
//! gateway's priority and stop when their stdin closes (the bench dropping the load, or dying).
//! Written here rather than taken from stress-ng: one binary, nothing more to install, and the
//! disk load lands on the outbox's own filesystem.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Kind {
    Cpu,
    Disk,
}

/// The running load; dropping it stops every worker.
pub struct Load {
    children: Vec<Child>,
    pub description: String,
}

impl Load {
    pub fn start(self_bin: &Path, dir: &Path) -> Result<Load> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let mut load = Load {
            children: Vec::new(),
            description: format!(
                "{cores} CPU spinner(s) and 1 disk writer (4 MiB chunks, fsync after each) at nice 0 beside the gateway"
            ),
        };
        for kind in std::iter::repeat_n(Kind::Cpu, cores).chain([Kind::Disk]) {
            let child = Command::new(self_bin)
                .arg("stress-worker")
                .arg("--kind")
                .arg(match kind {
                    Kind::Cpu => "cpu",
                    Kind::Disk => "disk",
                })
                .arg("--dir")
                .arg(dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("start a {kind:?} stress worker"))?;
            load.children.push(child);
        }
        Ok(load)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.children {
            drop(c.stdin.take());
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The worker: loads until stdin closes.
pub fn worker(kind: Kind, dir: PathBuf) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        flag.store(true, Ordering::Relaxed);
    });
    match kind {
        Kind::Cpu => {
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..100_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                }
                std::hint::black_box(x);
            }
            Ok(())
        }
        Kind::Disk => {
            let path = dir.join(format!("stress-{}.bin", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&path)
                .with_context(|| format!("open {}", path.display()))?;
            let chunk: Vec<u8> = (0..4 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
            let mut written = 0u64;
            while !stop.load(Ordering::Relaxed) {
                f.write_all(&chunk).context("write")?;
                f.sync_data().context("fsync")?;
                written += chunk.len() as u64;
                if written >= 256 << 20 {
                    f.set_len(0).context("truncate")?;
                    f.seek(SeekFrom::Start(0)).context("rewind")?;
                    written = 0;
                }
            }
            drop(f);
            let _ = std::fs::remove_file(&path);
            Ok(())
        }
    }
}
