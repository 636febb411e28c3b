//! `bsg-bench --stress`'s load (bench/src/stress.rs): the disk worker writes and fsyncs on the
//! directory it is given, the CPU worker spins, and both stop and clean up when their stdin
//! closes, the way the bench stops them (or its death would).

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::bin;

fn worker(kind: &str, dir: &std::path::Path) -> Child {
    Command::new(bin("bsg-bench"))
        .args(["stress-worker", "--kind", kind, "--dir"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bsg-bench stress-worker")
}

/// User plus system CPU time of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn stops_when_stdin_closes(mut c: Child) {
    drop(c.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = c.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = c.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            assert!(status.success(), "{status}: {err}");
            return;
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            panic!("the worker did not stop within 10 s of its stdin closing");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_stress_workers_load_the_disk_and_a_core_and_stop_when_told() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = worker("disk", dir.path());
    let cpu = worker("cpu", dir.path());
    let file = dir.path().join(format!("stress-{}.bin", disk.id()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) < 8 << 20 {
        assert!(Instant::now() < deadline, "the disk worker wrote no 8 MiB into {} within 20 s", file.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    let t0 = cpu_ticks(cpu.id());
    std::thread::sleep(Duration::from_millis(1500));
    let spun = cpu_ticks(cpu.id()) - t0;
    assert!(spun >= 10, "the CPU worker used {spun} ticks in 1.5 s");
    stops_when_stdin_closes(disk);
    stops_when_stdin_closes(cpu);
    assert!(!file.exists(), "the disk worker leaves no file behind");
}
