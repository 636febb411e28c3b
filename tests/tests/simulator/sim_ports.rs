//! Stable ports: with `--base-port` (or `base_port`/`port` in the scenario) every simulated
//! device listens where it did last time, so the site file an installer emitted once still
//! points at live devices after the simulator restarts; ports that are taken, run past 65535
//! or collide are refused with the device, the port and the fix.

use crate::sim_common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use device_sim::scenario;
use sim_common::{Sim, accepts, device_sim};
use tokio_modbus::Slave;
use tokio_modbus::client::Reader;

/// `n` consecutive ports free on 127.0.0.1 right now, below Linux's ephemeral range (where
/// other tests' port-0 listeners land) and spread by process id and time so that parallel
/// test binaries rarely try the same ones.
fn free_range(n: u16) -> u16 {
    let seed = std::process::id() as u64 * 7919
        + std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos() as u64);
    for attempt in 0..200u64 {
        let base = 20_000 + ((seed + attempt * 104_729) % 12_000) as u16;
        let held: Vec<TcpListener> =
            (base..base + n).map_while(|p| TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], p))).ok()).collect();
        if held.len() == usize::from(n) {
            return base;
        }
    }
    panic!("no {n} consecutive free ports on 127.0.0.1 between 20000 and 32000");
}

/// 2 cameras, an alarm panel and a door controller: 2×2 + 2 ports, the link's slot, the
/// control API's.
const SERVE: [&str; 7] = ["serve", "--cameras", "2", "--alarm-panels", "1", "--access-panels", "1"];
const PORTS: u16 = 8;

fn start(base: u16, cfg: &Path, dir: &Path) -> Sim {
    let base = base.to_string();
    let mut args: Vec<&str> = SERVE.to_vec();
    args.extend(["--base-port", &base, "--emit-config", cfg.to_str().unwrap(), "--broker", "mqtt://127.0.0.1:1"]);
    let mut sim = Sim::spawn(&args, dir).unwrap();
    sim.wait_line(Duration::from_secs(30), |l| l.starts_with("wrote a matching gateway config")).unwrap();
    sim
}

fn stop(mut sim: Sim) {
    sim.proc.signal("TERM");
    assert_eq!(sim.proc.wait_exit(Duration::from_secs(10)), Some(0), "device-sim did not stop cleanly on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_simulator_keeps_its_ports_and_the_emitted_config_stays_right() {
    let dir = tempfile::tempdir().unwrap();
    let (first_cfg, second_cfg) = (dir.path().join("first/site.toml"), dir.path().join("second/site.toml"));
    std::fs::create_dir_all(first_cfg.parent().unwrap()).unwrap();
    std::fs::create_dir_all(second_cfg.parent().unwrap()).unwrap();
    let base = free_range(PORTS);

    let mut sim = start(base, &first_cfg, dir.path());
    // The documented order: cameras (ONVIF, RTSP) in order, then panels, then the control API.
    assert_eq!(sim.camera_port("cam-01"), Some(base));
    assert_eq!(sim.camera_port("cam-02"), Some(base + 2));
    assert!(sim.stdout().iter().any(|l| l.starts_with("camera cam-02 ") && l.contains(&format!(":{}/", base + 3))));
    assert_eq!(sim.panel_addr("alarm-1").map(|a| a.port()), Some(base + 4));
    assert_eq!(sim.panel_addr("access-1").map(|a| a.port()), Some(base + 5));
    assert_eq!(sim.control().unwrap(), format!("http://127.0.0.1:{}", base + 7));
    stop(sim);

    let sim = start(base, &second_cfg, dir.path());
    let first = std::fs::read_to_string(&first_cfg).unwrap();
    let second = std::fs::read_to_string(&second_cfg).unwrap();
    assert_eq!(first, second, "the emitted config changed across a restart");

    // The first file's devices answer: the cameras accept, the alarm panel reads over Modbus.
    let site: toml::Table = toml::from_str(&first).unwrap();
    for c in site["camera"].as_array().unwrap() {
        let url = c["onvif"].as_str().unwrap();
        let port: u16 = url.trim_start_matches("http://127.0.0.1:").split('/').next().unwrap().parse().unwrap();
        assert!(accepts(port), "{url} does not answer after the restart");
    }
    let alarm = site["panel"].as_array().unwrap().iter().find(|p| p["id"].as_str() == Some("alarm-1")).unwrap();
    let addr: SocketAddr = alarm["address"].as_str().unwrap().parse().unwrap();
    let mut ctx =
        tokio::time::timeout(Duration::from_secs(5), tokio_modbus::client::tcp::connect_slave(addr, Slave(1)))
            .await
            .expect("connect in time")
            .expect("the alarm panel of the first config accepts Modbus");
    let regs = tokio::time::timeout(Duration::from_secs(5), ctx.read_holding_registers(1, 1)).await;
    assert!(matches!(regs, Ok(Ok(Ok(ref v))) if v.len() == 1), "{regs:?}");
    stop(sim);
}

#[test]
fn a_taken_port_is_named_with_its_device_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_range(4);
    // Something else holds the first camera's RTSP port.
    let _squatter = TcpListener::bind(("127.0.0.1", base + 1)).unwrap();
    let args = ["serve", "--cameras", "1", "--alarm-panels", "0", "--access-panels", "0", "--base-port"];
    let out = device_sim().args(args).arg(base.to_string()).current_dir(dir.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let port = base + 1;
    for part in [&format!("port {port} "), "is taken", "camera cam-01 (RTSP)", "fix:", "--base-port", "ss -ltnp"] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains("control "), "nothing is served on a failed start");

    // In Chinese, the same facts.
    let out = device_sim()
        .env("LANG", "zh_CN.UTF-8")
        .args(args)
        .arg(base.to_string())
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for part in [&format!("端口 {port} "), "已被占用", "摄像机 cam-01（RTSP）", "修正：", "--base-port"] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
}

#[test]
fn ports_past_65535_are_refused_before_anything_listens() {
    // 8 cameras need 16 ports, the panels 2 more, then the link and control slots.
    let out = device_sim().args(["serve", "--base-port", "65530"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--base-port 65530") && err.contains("65535") && err.contains("fix:"), "{err}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    // Port 0 is no base; clap refuses it as a usage error.
    let out = device_sim().args(["serve", "--base-port", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn scenario_ports_are_checked_with_the_rest_of_the_file() {
    let text = r#"
[scenario]
base_port = 30000

[branch]
id = "b1"

[[camera]]
id = "cam-{n}"
count = 2
port = 31000

[[panel]]
id = "alarm-1"
kind = "alarm"
port = 31003
"#;
    // cam-1 takes 31000/31001, cam-2 31002/31003: the panel's port is cam-2's RTSP.
    let e = scenario::parse(text, Path::new("p.toml")).unwrap_err();
    let p = e.to_string();
    assert!(p.contains("port 31003 is planned for both camera cam-2 (RTSP) and panel alarm-1 (Modbus)"), "{p}");
    assert!(p.contains("fix:"), "{p}");

    let ok = text.replace("port = 31003", "port = 31004");
    let s = scenario::parse(&ok, Path::new("p.toml")).unwrap_or_else(|e| panic!("{e}"));
    let plan = scenario::ports::plan(&s, None, 0).unwrap();
    assert_eq!(plan.cameras, vec![(31000, 31001), (31002, 31003)]);
    assert_eq!(plan.panels, vec![31004]);
    // The base port places what has no port of its own: the control API after 2 cameras and
    // a panel (and the link's slot); --base-port overrides the file's.
    assert_eq!(plan.control, 30000 + 2 * 2 + 1 + 1);
    assert_eq!(scenario::ports::plan(&s, Some(40000), 0).unwrap().control, 40006);
    assert_eq!(scenario::ports::plan(&s, None, 9999).unwrap().control, 9999, "--control's own port wins");

    let far = text.replace("base_port = 30000", "base_port = 65533").replace("port = 31003", "port = 31004");
    let p = scenario::parse(&far, Path::new("p.toml")).unwrap_err().to_string();
    assert!(p.contains("[scenario]: base_port: base_port 65533 leaves no room"), "{p}");
    let wide = text.replace("count = 2\nport = 31000", "count = 3\nport = 65531");
    let p = scenario::parse(&wide, Path::new("p.toml")).unwrap_err().to_string();
    assert!(p.contains("camera #1: port: 3 copies from port 65531 need ports up to 65536"), "{p}");
}
