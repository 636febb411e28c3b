//! The device-sim `.deb` for installers' laptops: the simulator, the shipped scenarios in
//! /usr/share/device-sim/scenarios/, its manual; no service, no user, no configuration. The
//! packaged binary accepts the packaged scenarios, and dpkg installs, upgrades, removes and purges
//! it cleanly in a throw-away overlay. Built by `scripts/package` (which `scripts/test` runs before
//! the tests); `BSG_DEB_DEVICE_SIM` points at another one.

use crate::packaging_common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use harness::workspace_root;
use packaging_common::{Unpacked, assert_files, field, listing, stdout};

const SCENARIOS: &str = "usr/share/device-sim/scenarios";

fn deb() -> PathBuf {
    packaging_common::deb("device-sim", &packaging_common::native_arch(), "BSG_DEB_DEVICE_SIM")
}

fn unpack() -> Unpacked {
    packaging_common::unpack(&deb())
}

/// The scenarios in deploy/scenarios/: every one of them is shipped.
fn shipped_scenarios() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(workspace_root().join("deploy/scenarios"))
        .expect("deploy/scenarios")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "deploy/scenarios/ has the shipped scenarios: {names:?}");
    names
}

#[test]
fn device_sim_package_installs_the_binary_the_scenarios_and_the_manual_and_nothing_else() {
    let files = listing(&deb());
    let mut expect = vec![
        ("usr/bin/device-sim".to_string(), "-rwxr-xr-x"),
        ("usr/share/doc/device-sim/SIMULATOR.md".to_string(), "-rw-r--r--"),
        ("usr/share/doc/device-sim/SIMULATOR.zh-CN.md".to_string(), "-rw-r--r--"),
    ];
    expect.extend(shipped_scenarios().into_iter().map(|n| (format!("{SCENARIOS}/{n}"), "-rw-r--r--")));
    let expect: Vec<(&str, &str)> = expect.iter().map(|(p, m)| (p.as_str(), *m)).collect();
    assert_files(&files, &expect);
    for p in files.keys() {
        assert!(
            !(p.starts_with("etc") || p.starts_with("var") || p.contains("systemd")),
            "a tool for laptops: no configuration, no state, no service ({p})"
        );
    }
}

#[test]
fn device_sim_control_has_no_maintainer_scripts_and_no_conffiles() {
    let deb = deb();
    assert_eq!(field(&deb, "Package"), "device-sim");
    assert_eq!(field(&deb, "Architecture"), packaging_common::native_arch());
    let depends = field(&deb, "Depends");
    assert!(depends.contains("libc6") && !depends.contains("adduser"), "Depends: {depends}");
    let u = unpack();
    for file in ["conffiles", "preinst", "postinst", "prerm", "postrm"] {
        assert!(!u.control.join(file).exists(), "device-sim has no {file}: no user, no service, no configuration");
    }
}

#[test]
fn packaged_device_sim_runs_and_accepts_the_packaged_scenarios() {
    let u = unpack();
    let sim = u.root.join("usr/bin/device-sim");
    let version = stdout(Command::new(&sim).arg("--version"));
    assert!(version.starts_with("device-sim "), "--version: {version}");
    let mut check = Command::new(&sim);
    check.arg("check");
    for n in shipped_scenarios() {
        check.arg(u.root.join(SCENARIOS).join(n));
    }
    stdout(&mut check);
}

#[test]
fn device_sim_dpkg_install_upgrade_remove_purge_in_a_scratch_overlay_leaves_nothing_behind() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let s = scratch.path();
    packaging_common::next_version(&deb(), s, |_| {});
    let text = packaging_common::in_scratch_overlay(
        s,
        r#"
export DEBIAN_FRONTEND=noninteractive
dpkg -i /tmp/bg/first.deb >/dev/null
echo "CHECK $(device-sim check /usr/share/device-sim/scenarios/*.toml >/dev/null 2>&1 && echo ok || echo refused)"
echo "USER $(getent passwd device-sim >/dev/null && echo user || echo nouser)"
dpkg -i /tmp/bg/next.deb >/dev/null
echo "UPGRADED $(dpkg-query -W -f="\${Version}" device-sim) $(ls /usr/share/device-sim/scenarios | wc -l)"
dpkg -r device-sim >/dev/null
echo "REMOVED $(test -e /usr/bin/device-sim && echo bin || echo nobin) $(test -e /usr/share/device-sim && echo share || echo noshare)"
dpkg -P device-sim >/dev/null
echo "PURGED $(dpkg-query -W device-sim >/dev/null 2>&1 && echo known || echo gone)"
"#,
    );
    let line = |tag: &str| packaging_common::tagged(&text, tag);
    assert_eq!(line("CHECK"), "ok", "the installed simulator accepts the installed scenarios:\n{text}");
    assert_eq!(line("USER"), "nouser");
    assert_eq!(line("UPGRADED"), format!("99.0.0-1 {}", shipped_scenarios().len()));
    assert_eq!(line("REMOVED"), "nobin noshare", "remove takes everything: there is no configuration");
    assert_eq!(line("PURGED"), "gone");
}
