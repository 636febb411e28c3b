//! The arm64 branch-gateway `.deb` (cross-compiled for aarch64-unknown-linux-gnu by
//! `scripts/package --arch arm64`, which `scripts/test` runs): its control says arm64, its binary
//! is AArch64, and that binary runs under qemu-aarch64 — `--version`, `check-config` on the
//! packaged examples, and a real `run` against the native simulator and a mosquitto on loopback,
//! whose panel state and alarm reach the broker, ending with exit 0 on SIGTERM.
//! `BSG_DEB_ARM64` points at another package. Needs qemu-user (qemu-aarch64) and
//! libc6-arm64-cross (the AArch64 C library under /usr/aarch64-linux-gnu); scripts/test installs
//! both as root or in CI, and without them these tests fail saying so.

use crate::packaging_common;
use crate::sim_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::{Mosquitto, PahoSubscriber, Proc, which};
use packaging_common::{Unpacked, assert_files, field, listing, stdout};
use sim_common::{Sim, http};

const BIN: &str = "usr/bin/branch-gateway";
const EXAMPLES: &str = "usr/share/doc/branch-gateway/examples";
/// Where Debian's libc6-arm64-cross puts the AArch64 dynamic loader and C library.
const SYSROOT: &str = "/usr/aarch64-linux-gnu";

fn deb() -> PathBuf {
    packaging_common::deb("branch-gateway", "arm64", "BSG_DEB_ARM64")
}

fn unpack() -> Unpacked {
    packaging_common::unpack(&deb())
}

/// `qemu-aarch64 -L /usr/aarch64-linux-gnu BINARY`, ready for arguments.
fn qemu(bin: &Path) -> Command {
    let qemu = which("qemu-aarch64").unwrap_or_else(|| {
        panic!(
            "qemu-aarch64 is not installed, so the arm64 gateway cannot run here: install the Debian package \
             qemu-user (scripts/test installs it as root or in CI; scripts/lib/prereqs.sh)"
        )
    });
    assert!(
        Path::new(SYSROOT).join("lib/ld-linux-aarch64.so.1").exists(),
        "{SYSROOT}/lib/ld-linux-aarch64.so.1 is missing, so qemu-aarch64 cannot load the arm64 gateway: install \
         the Debian package libc6-arm64-cross (scripts/test installs it as root or in CI)"
    );
    let mut c = Command::new(qemu);
    c.arg("-L").arg(SYSROOT).arg(bin);
    packaging_common::english(&mut c);
    c.env("HOME", "/root"); // minimal.toml reads its password from $HOME, any set variable
    c
}

#[test]
fn arm64_package_says_arm64_and_holds_an_aarch64_gateway() {
    let deb = deb();
    assert_eq!(field(&deb, "Package"), "branch-gateway");
    assert_eq!(field(&deb, "Architecture"), "arm64");
    let depends = field(&deb, "Depends");
    assert!(depends.contains("adduser") && depends.contains("libc6"), "Depends: {depends}");
    // The same layout as the amd64 package (packaging.rs checks it in detail).
    assert_files(
        &listing(&deb),
        &[
            (BIN, "-rwxr-xr-x"),
            ("usr/lib/systemd/system/branch-gateway.service", "-rw-r--r--"),
            ("etc/branch-gateway/branch.toml", "-rw-r-----"),
            ("usr/share/doc/branch-gateway/examples/branch.toml", "-rw-r--r--"),
        ],
    );
    let u = unpack();
    let elf = fs::read(u.root.join(BIN)).expect("binary");
    assert!(elf.starts_with(b"\x7fELF\x02\x01"), "a 64-bit little-endian ELF file");
    let machine = elf.get(18..20).map(|b| u16::from_le_bytes([b[0], b[1]]));
    assert_eq!(machine, Some(0xb7), "e_machine is EM_AARCH64 (183)");
    assert!(u.control.join("postinst").exists() && u.control.join("conffiles").exists());
}

#[test]
fn arm64_gateway_under_qemu_prints_its_version_and_accepts_the_packaged_examples() {
    let u = unpack();
    let bin = u.root.join(BIN);
    let version = stdout(qemu(&bin).arg("--version"));
    assert!(version.starts_with("branch-gateway "), "--version: {version}");
    for example in ["branch.toml", "minimal.toml"] {
        let out = stdout(qemu(&bin).arg("check-config").arg(u.root.join(EXAMPLES).join(example)));
        assert!(out.contains(": ok"), "check-config {example}: {out}");
    }
}

#[test]
fn arm64_gateway_under_qemu_reports_a_simulated_panel_and_its_alarm_to_the_broker_and_stops_on_sigterm() {
    let u = unpack();
    let bin = u.root.join(BIN);
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let broker = Mosquitto::start().expect("mosquitto");

    // The native simulator: one camera, one alarm panel, the site file pointing at them and at
    // the broker.
    let site = d.join("site.toml");
    let site_arg = site.to_string_lossy().into_owned();
    let url = broker.url();
    let args = [
        "serve",
        "--cameras",
        "1",
        "--alarm-panels",
        "1",
        "--access-panels",
        "0",
        "--emit-config",
        &site_arg,
        "--broker",
        &url,
    ];
    let mut sim = Sim::spawn(&args, d).expect("device-sim");
    sim.wait_line(Duration::from_secs(30), |l| l.starts_with("wrote a matching gateway config")).expect("config");
    let control = sim.control().expect("control API");
    let mut text = fs::read_to_string(&site).expect("site file");
    assert!(!text.contains("[metrics]"), "the emitted config has no [metrics]: add one on a free port");
    text.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    fs::write(&site, &text).expect("site file");
    let branch =
        text.lines().find_map(|l| l.strip_prefix("id = \"")?.strip_suffix('"')).expect("[branch] id").to_string();

    let mut sub = PahoSubscriber::start(broker.port, &["branches/#"]).expect("paho subscriber");
    let log = fs::File::create(d.join("gateway-arm64.log")).expect("log");
    let child = qemu(&bin)
        .arg("run")
        .arg(&site)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn the arm64 gateway under qemu-aarch64");
    let mut gw = Proc { child, name: "branch-gateway (arm64, qemu)".into() };
    let gw_log = || fs::read_to_string(d.join("gateway-arm64.log")).unwrap_or_default();

    let panel_topic = format!("branches/{branch}/devices/alarm-1");
    let online = sub.wait_for(Duration::from_secs(90), |m| m.topic == panel_topic && m.json()["state"] == "online");
    assert!(
        online.is_some(),
        "no `online` on {panel_topic} from the arm64 gateway; seen {:?}\nlog:\n{}",
        sub.seen,
        gw_log()
    );

    // Arm the partition, then the zone goes into alarm: the gateway raises alarm-link.
    for (point, state) in [("partition.1", "armed"), ("zone.1", "alarm")] {
        let (status, body) =
            http(&control, "POST", &format!("/panels/alarm-1/points/{point}"), &format!("{{\"state\":\"{state}\"}}"))
                .expect("control API");
        assert_eq!(status, 200, "{point} {state}: {body}");
        if point == "partition.1" {
            std::thread::sleep(Duration::from_secs(2)); // a poll or two, so the zone fires armed
        }
    }
    let alarm_topic = format!("branches/{branch}/alerts/alarm-link");
    let alarm = sub.wait_for(Duration::from_secs(60), |m| m.topic == alarm_topic && m.json()["state"] == "raised");
    let alarm = alarm.unwrap_or_else(|| {
        panic!("no raised alarm-link from the arm64 gateway; seen {:?}\nlog:\n{}", sub.seen, gw_log())
    });
    assert_eq!(alarm.json()["device"]["id"], "alarm-1", "{}", alarm.payload);

    gw.signal("TERM");
    let code = gw.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "the arm64 gateway exits 0 on SIGTERM\nlog:\n{}", gw_log());
    drop(sim);
}
