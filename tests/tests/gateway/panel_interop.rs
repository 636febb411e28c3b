//! Interop of our Modbus code with independent implementations, in both directions:
//!
//! - (a) pymodbus (client) reads the simulated panels' documented registers;
//! - (b) `mbpoll` (libmodbus-based CLI) reads them with 1-based and 0-based references,
//!   and writes one, which the simulator's state reflects;
//! - (c) the gateway's poller polls a pymodbus *server* laid out by a custom profile file
//!   written here, and sees register and coil flips made with FC 5/6/16;
//! - (d) the gateway's poller polls libmodbus's own `unit-test-server` (built from Debian's
//!   libmodbus source package by `tests/peers/modbus_libmodbus_build.py`).
//!
//! A missing peer is a failure that says to run `scripts/test`, never a silent skip.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use device_sim::panel::{PanelFleet, PanelKindSim, PanelSpec};
use gateway::config::{PanelConfig, PanelKind};
use gateway::pollers::panel::{ProfileStore, spawn_panel_poller};
use gateway::pollers::{Observation, PanelOutcome};
use harness::{Proc, free_port, python, wait_for_port, which, workspace_root};
use tokio::sync::mpsc;
use tokio_modbus::client::{Client, Context};
use tokio_modbus::{Request, Slave};
use tokio_util::sync::CancellationToken;

const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn require_pymodbus() -> PathBuf {
    let py = python();
    let ok = std::process::Command::new(&py)
        .args(["-c", "import pymodbus"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "pymodbus is not importable by {}; run scripts/test (it installs tests/requirements.txt into .venv)",
        py.display()
    );
    py
}

fn require_mbpoll() -> PathBuf {
    which("mbpoll")
        .unwrap_or_else(|| panic!("mbpoll is not installed; run scripts/test (it installs the Debian package mbpoll)"))
}

/// Runs `tests/peers/modbus_read.py` and returns its JSON answer.
async fn py_read(py: &PathBuf, addr: SocketAddr, unit: u8, table: &str, address: u16, count: u16) -> serde_json::Value {
    let script = workspace_root().join("tests/peers/modbus_read.py");
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(py)
            .arg(&script)
            .args([
                "127.0.0.1",
                &addr.port().to_string(),
                &unit.to_string(),
                table,
                &address.to_string(),
                &count.to_string(),
            ])
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("pymodbus client finished in time")
    .expect("run the pymodbus client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("pymodbus client said {stdout:?}; stderr: {}", String::from_utf8_lossy(&out.stderr)))
}

fn values(v: &serde_json::Value) -> Vec<i64> {
    v["values"].as_array().unwrap_or_else(|| panic!("no values in {v}")).iter().filter_map(|x| x.as_i64()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pymodbus_client_reads_the_simulated_panels() {
    let py = require_pymodbus();
    let f = PanelFleet::start(
        LOCALHOST,
        vec![PanelSpec::new("alarm-1", PanelKindSim::Alarm, 1), PanelSpec::new("access-1", PanelKindSim::Access, 2)],
    )
    .await
    .unwrap();
    let alarm = f.addr("alarm-1").unwrap();
    let access = f.addr("access-1").unwrap();
    f.set_point("alarm-1", "zone.3", "alarm").unwrap();
    f.set_point("alarm-1", "zone.5", "bypassed").unwrap();
    f.set_point("alarm-1", "partition.1", "armed").unwrap();
    f.set_point("alarm-1", "panel.battery-low", "battery-low").unwrap();
    f.set_heartbeat_running("alarm-1", false).unwrap();
    f.set_raw("alarm-1", "heartbeat", 1234.0).unwrap();
    f.set_point("access-1", "door.2", "forced").unwrap();
    f.set_point("access-1", "lock.1", "unlocked").unwrap();
    f.set_point("access-1", "reader.2", "reader-fault").unwrap();
    f.set_point("access-1", "panel.battery-low", "battery-low").unwrap();

    // generic-alarm, as documented: holding 0..=15 zones, 16..=19 partitions, 20 fault bits, 21 heartbeat.
    let v = values(&py_read(&py, alarm, 1, "holding", 0, 22).await);
    assert_eq!(v.len(), 22);
    assert_eq!(v[2], 1, "zone.3 = alarm code 1");
    assert_eq!(v[4], 4, "zone.5 = bypassed code 4");
    assert_eq!(v[0], 0);
    assert_eq!(v[16], 1, "partition.1 armed");
    assert_eq!(v[20], 0b10, "battery-low is bit 1");
    assert_eq!(v[21], 1234);
    // generic-access: holding doors + reader bits, lock coils, fault discrete inputs, heartbeat input.
    let v = values(&py_read(&py, access, 2, "holding", 0, 9).await);
    assert_eq!(&v[..3], &[0, 2, 0], "door.2 forced = code 2");
    assert_eq!(v[8], 0b10, "reader.2 fault = bit 1");
    assert_eq!(values(&py_read(&py, access, 2, "coil", 0, 8).await), vec![0, 1, 1, 1, 1, 1, 1, 1]);
    assert_eq!(values(&py_read(&py, access, 2, "discrete-input", 0, 3).await), vec![0, 1, 0]);
    assert_eq!(values(&py_read(&py, access, 2, "input", 0, 1).await).len(), 1);
    // Far beyond the map: exception 2 (illegal data address).
    let e = py_read(&py, alarm, 1, "holding", 5000, 2).await;
    assert_eq!(e["exception"], 2, "{e}");
    f.shutdown().await;
}

/// `[ref]: \tvalue` lines of mbpoll's output.
fn mbpoll_values(out: &str) -> Vec<(u32, i64)> {
    out.lines()
        .filter_map(|l| {
            let (r, v) = l.trim().split_once("]:")?;
            Some((r.trim_start_matches('[').parse().ok()?, v.trim().parse().ok()?))
        })
        .collect()
}

async fn mbpoll(bin: &PathBuf, args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(bin).args(args).stdin(Stdio::null()).output(),
    )
    .await
    .expect("mbpoll finished in time")
    .expect("run mbpoll");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "mbpoll {args:?} failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbpoll_reads_and_writes_the_simulated_panels() {
    let bin = require_mbpoll();
    let f = PanelFleet::start(
        LOCALHOST,
        vec![PanelSpec::new("alarm-1", PanelKindSim::Alarm, 3), PanelSpec::new("access-1", PanelKindSim::Access, 4)],
    )
    .await
    .unwrap();
    let port = f.addr("alarm-1").unwrap().port().to_string();
    f.set_point("alarm-1", "zone.3", "alarm").unwrap();
    f.set_point("alarm-1", "zone.4", "tamper").unwrap();
    // 1-based references (mbpoll's default, like vendor manuals): zone.3 is reference 3
    // ("40003"), which is protocol address 2.
    let out =
        mbpoll(&bin, &["-m", "tcp", "-a", "3", "-r", "3", "-c", "2", "-t", "4", "-1", "-p", &port, "127.0.0.1"]).await;
    assert_eq!(mbpoll_values(&out), vec![(3, 1), (4, 2)], "{out}");
    // 0-based (-0): the same registers are 2 and 3.
    let out =
        mbpoll(&bin, &["-m", "tcp", "-a", "3", "-0", "-r", "2", "-c", "2", "-t", "4", "-1", "-p", &port, "127.0.0.1"])
            .await;
    assert_eq!(mbpoll_values(&out), vec![(2, 1), (3, 2)], "{out}");
    // A write (FC 6) from mbpoll changes what the simulator decodes.
    mbpoll(&bin, &["-m", "tcp", "-a", "3", "-0", "-r", "2", "-t", "4", "-p", &port, "127.0.0.1", "0"]).await;
    assert_eq!(f.state("alarm-1", "zone.3").unwrap().as_deref(), Some("normal"));
    // Coils (-t 0) of the access panel: lock.1..lock.8.
    let aport = f.addr("access-1").unwrap().port().to_string();
    f.set_point("access-1", "lock.2", "unlocked").unwrap();
    let out =
        mbpoll(&bin, &["-m", "tcp", "-a", "4", "-0", "-r", "0", "-c", "3", "-t", "0", "-1", "-p", &aport, "127.0.0.1"])
            .await;
    assert_eq!(mbpoll_values(&out), vec![(0, 1), (1, 0), (2, 1)], "{out}");
    f.shutdown().await;
}

fn panel_cfg(id: &str, addr: SocketAddr, unit_id: u8, profile: &str) -> PanelConfig {
    PanelConfig {
        pace: std::time::Duration::ZERO,
        id: id.into(),
        name: id.into(),
        kind: PanelKind::Alarm,
        address: addr.to_string(),
        unit_id,
        profile: profile.into(),
        poll_interval: Duration::from_millis(100),
        timeout: Duration::from_millis(1000),
        maintenance: false,
    }
}

/// Waits until the panel, as the poller's hand-overs add up in `known` (a poll hands over only
/// what changed), satisfies `pred`; returns that picture.
async fn wait_read(
    rx: &mut mpsc::Receiver<Observation>,
    known: &mut std::collections::BTreeMap<String, gateway::pollers::PointValue>,
    within: Duration,
    what: &str,
    pred: impl Fn(&std::collections::BTreeMap<String, gateway::pollers::PointValue>) -> bool,
) -> std::collections::BTreeMap<String, gateway::pollers::PointValue> {
    let deadline = tokio::time::Instant::now() + within;
    let mut last = None;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(Observation::Panel(p))) => {
                if let PanelOutcome::Read(read) = &p.outcome {
                    read.merge_into(known);
                    if pred(known) {
                        return known.clone();
                    }
                }
                last = Some(p.outcome);
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("the poller stopped"),
            Err(_) => panic!("no read with {what} within {within:?}; last: {last:?}"),
        }
    }
}

const CUSTOM_PROFILE: &str = r#"
# A site's own map, as an installer would write it (0-based addresses).
name = "site-custom"
slow_every = 2

[states.codes]
rules = [
  { value = 0, state = "normal" },
  { value = 1, state = "alarm" },
  { value = 7, state = "tamper" },
]
default = "fault"

[[point]]
id = "zone.{n}"
role = "zone"
table = "holding"
address = 10
count = 4
states = "codes"

[[point]]
id = "door.front"
role = "door"
table = "coil"
address = 5
rules = [{ value = 1, state = "open" }, { value = 0, state = "closed" }]

[[point]]
id = "partition.1"
role = "partition"
table = "holding"
address = 50
bit = 3
rules = [{ value = 1, state = "armed" }]
default = "disarmed"

[[point]]
id = "counter"
role = "value"
table = "holding"
address = 40
type = "u32"
word_order = "little"
tier = "slow"

[[point]]
id = "heartbeat"
role = "heartbeat"
table = "holding"
address = 60
tier = "slow"
"#;

async fn write_fc(ctx: &mut Context, req: Request<'_>) {
    let r = tokio::time::timeout(Duration::from_secs(5), ctx.call(req)).await;
    assert!(matches!(r, Ok(Ok(Ok(_)))), "write failed: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_reads_a_pymodbus_server_through_a_custom_profile() {
    let py = require_pymodbus();
    let port = free_port();
    let child = std::process::Command::new(&py)
        .arg(workspace_root().join("tests/peers/modbus_server.py"))
        .args([port.to_string(), "5".to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the pymodbus server (run scripts/test to set up .venv)");
    let _server = Proc { child, name: "pymodbus-server".into() };
    wait_for_port(port, Duration::from_secs(20)).expect("the pymodbus server listens");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("site-custom.toml"), CUSTOM_PROFILE).unwrap();
    let profile = ProfileStore.load("site-custom.toml", dir.path()).unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(profile.points().len(), 8);
    let (tx, mut rx) = mpsc::channel(64);
    let stop = CancellationToken::new();
    let handle = spawn_panel_poller(panel_cfg("py-panel", addr, 5, "site-custom.toml"), profile, tx, stop.clone());
    let mut known = std::collections::BTreeMap::new();

    let first = wait_read(&mut rx, &mut known, Duration::from_secs(10), "all points", |m| m.len() == 8).await;
    let m = &first;
    assert_eq!(m["zone.1"].state.as_deref(), Some("normal"));
    assert_eq!(m["door.front"].state.as_deref(), Some("closed"));
    assert_eq!(m["partition.1"].state.as_deref(), Some("disarmed"));

    // Flip registers and a coil on the pymodbus server with a separate client.
    let mut ctx = tokio_modbus::client::tcp::connect_slave(addr, Slave(5)).await.expect("connect to pymodbus");
    write_fc(&mut ctx, Request::WriteSingleRegister(11, 1)).await; // zone.2 alarm
    write_fc(&mut ctx, Request::WriteSingleRegister(13, 7)).await; // zone.4 tamper
    write_fc(&mut ctx, Request::WriteSingleRegister(12, 99)).await; // zone.3 unknown code → fault
    write_fc(&mut ctx, Request::WriteSingleCoil(5, true)).await; // door open
    write_fc(&mut ctx, Request::WriteSingleRegister(50, 0b1000)).await; // partition armed (bit 3)
    // u32 with the low word first: 0x0001_0002 = 65538.
    write_fc(&mut ctx, Request::WriteMultipleRegisters(40, vec![0x0002, 0x0001].into())).await;
    write_fc(&mut ctx, Request::WriteSingleRegister(60, 42)).await;
    drop(ctx);

    let obs = wait_read(&mut rx, &mut known, Duration::from_secs(5), "the flips", |m| {
        m["zone.2"].state.as_deref() == Some("alarm")
            && m["door.front"].state.as_deref() == Some("open")
            && m["counter"].raw == 65538.0
            && m["heartbeat"].raw == 42.0
    })
    .await;
    let m = &obs;
    assert_eq!(m["zone.1"].state.as_deref(), Some("normal"));
    assert_eq!(m["zone.3"].state.as_deref(), Some("fault"));
    assert_eq!(m["zone.4"].state.as_deref(), Some("tamper"));
    assert_eq!(m["partition.1"].state.as_deref(), Some("armed"));
    assert_eq!(m["counter"].state, None);

    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
}

fn libmodbus_server() -> PathBuf {
    // scripts/test exports BSG_LIBMODBUS_SERVER after building it into target/peers.
    let p = std::env::var_os("BSG_LIBMODBUS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/peers/unit-test-server"));
    assert!(
        p.is_file(),
        "libmodbus's unit-test-server is not built at {}; run scripts/test (it runs \
         tests/peers/modbus_libmodbus_build.py target/peers, which needs gcc and libmodbus-dev)",
        p.display()
    );
    p
}

// What libmodbus's tests/unit-test.h sets up: input register 0x108 = 0x000A; 22 discrete
// inputs from 0x1C4 = bytes AC DB 35 (LSB first); 0x20 holding registers from 0x160 (zero).
const LIBMODBUS_PROFILE: &str = r#"
name = "libmodbus-unit-test"

[[point]]
id = "ir"
role = "value"
table = "input"
address = 0x108

[[point]]
id = "di.{n}"
role = "value"
table = "discrete-input"
address = 0x1C4
count = 8
first = 0

[[point]]
id = "zone.{n}"
role = "zone"
table = "holding"
address = 0x160
count = 3
rules = [{ value = 0, state = "normal" }]
default = "alarm"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_reads_libmodbus_unit_test_server() {
    let bin = libmodbus_server();
    let port = free_port();
    let child = std::process::Command::new(&bin)
        .arg("tcp")
        .env("UT_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn unit-test-server");
    let _server = Proc { child, name: "unit-test-server".into() };
    // Do not probe the port with a connection: the server accepts exactly one client.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let profile = protocols::modbus::parse(LIBMODBUS_PROFILE).unwrap_or_else(|e| panic!("{e:#?}"));
    let (tx, mut rx) = mpsc::channel(64);
    let stop = CancellationToken::new();
    let handle = spawn_panel_poller(panel_cfg("libmodbus", addr, 1, "inline"), profile, tx, stop.clone());
    let mut known = std::collections::BTreeMap::new();
    let obs = wait_read(&mut rx, &mut known, Duration::from_secs(15), "every point", |m| m.len() == 12).await;
    let m = &obs;
    assert_eq!(m["ir"].raw, 10.0);
    let bits: Vec<f64> = (0..8).map(|i| m[&format!("di.{i}")].raw).collect();
    assert_eq!(bits, vec![0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0], "0xAC, least significant bit first");
    assert_eq!(m["zone.1"].state.as_deref(), Some("normal"));
    // The single connection keeps working cycle after cycle.
    for _ in 0..3 {
        wait_read(&mut rx, &mut known, Duration::from_secs(3), "another read", |_| true).await;
    }
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
}
