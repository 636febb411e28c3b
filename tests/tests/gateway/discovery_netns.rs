//! Multicast WS-Discovery for real: two network namespaces joined by a veth pair, the
//! simulated cameras answering on 10.222.0.1 in one, and in the other an independent client
//! (python WSDiscovery, which skips loopback — hence the namespaces) and our own
//! `branch-gateway discover`, both probing the multicast group 239.255.255.250:3702.
//!
//! The namespaces are our own test hosts: unique names per process and test (pid + counter)
//! so parallel runs never clash, deleted by a Drop guard however the test ends, and any left
//! behind by a killed run (its pid gone) are swept on the next start. Creating namespaces
//! needs root (CI runs as root); without it the tests fail and say so — they never pass
//! silently.

use crate::discovery_common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use discovery_common::{responder_example, run, site_config};
use harness::Proc;

const PREFIX: &str = "bsgd-";
const SIM_IP: &str = "10.222.0.1";
const CLIENT_IP: &str = "10.222.0.2";

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run `ip` (install iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Two namespaces, `sim` and `client`, joined by a veth pair (10.222.0.1/30 – 10.222.0.2/30)
/// with a multicast route on each end. Deleted on drop (which also removes the veth pair).
struct NetnsPair {
    sim: String,
    client: String,
    created: Vec<String>,
}

impl NetnsPair {
    fn create() -> NetnsPair {
        static N: AtomicU32 = AtomicU32::new(0);
        sweep_stale();
        let id = format!("{PREFIX}{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let mut pair = NetnsPair { sim: format!("{id}-s"), client: format!("{id}-c"), created: Vec::new() };
        if let Err(e) = pair.setup() {
            panic!(
                "cannot build the test network ({e}).\nThe multicast discovery tests create network namespaces \
                 and a veth pair, which needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and iproute2; CI runs \
                 as root. Run the tests as root (scripts/test does under CI)."
            );
        }
        pair
    }

    fn setup(&mut self) -> Result<(), String> {
        for ns in [self.sim.clone(), self.client.clone()] {
            ip(&["netns", "add", &ns])?;
            self.created.push(ns);
        }
        // Created directly inside the namespaces, so the fixed names cannot clash.
        ip(&[
            "link",
            "add",
            "bsg0",
            "netns",
            &self.sim,
            "type",
            "veth",
            "peer",
            "name",
            "bsg1",
            "netns",
            &self.client,
        ])?;
        for (ns, dev, addr) in [(&self.sim, "bsg0", SIM_IP), (&self.client, "bsg1", CLIENT_IP)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", dev])?;
        }
        Ok(())
    }

    /// `program args…` inside namespace `ns`.
    fn command(&self, ns: &str, program: &std::path::Path, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program).args(args);
        c
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in &self.created {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Deletes namespaces left by test processes that no longer exist (killed runs).
fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|rest| rest.split('-').next()) else { continue };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// The responder example in the sim namespace; returns it and its cameras' (id, device URL).
fn start_cameras(net: &NetnsPair, cameras: usize, down: &[&str]) -> (Proc, Vec<(String, String)>) {
    let n = cameras.to_string();
    let mut args = vec!["--bind", SIM_IP, "--cameras", &n];
    for d in down {
        args.extend(["--down", d]);
    }
    let mut child = net
        .command(&net.sim, &responder_example(), &args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the discovery responder");
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc { child, name: "discovery_responder".into() };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut cams = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(line) if line.starts_with("ready") => break,
            Ok(line) => {
                let mut w = line.split_whitespace().skip(1);
                if let (Some(id), Some(url)) = (w.next(), w.next()) {
                    cams.push((id.to_string(), url.to_string()));
                }
            }
            Err(_) => panic!("the discovery responder did not become ready within 15 s"),
        }
    }
    (proc, cams)
}

#[test]
fn wsdiscovery_finds_the_simulated_cameras_by_multicast() {
    let net = NetnsPair::create();
    let (_sim, cams) = start_cameras(&net, 3, &["cam-03"]);
    let script = harness::workspace_root().join("tests/peers/wsdiscovery_probe.py");
    let py = harness::python();
    let ok = Command::new(&py).args(["-c", "import wsdiscovery"]).output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "python WSDiscovery is not installed for {} — run scripts/test (tests/requirements.txt)", py.display());

    for types in [vec!["nvt"], vec!["device"]] {
        let mut args = vec![script.display().to_string(), "3".to_string()];
        args.extend(types.iter().map(|t| t.to_string()));
        let mut full = vec!["netns".to_string(), "exec".to_string(), net.client.clone(), py.display().to_string()];
        full.extend(args);
        let out = run(std::path::Path::new("ip"), &full, Duration::from_secs(30));
        assert_eq!(out.code, 0, "WSDiscovery run failed: {out:?}");
        let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        let services = v["services"].as_array().unwrap_or_else(|| panic!("no services in {v}"));
        let mut found: Vec<&str> = services.iter().filter_map(|s| s["xaddrs"][0].as_str()).collect();
        found.sort_unstable();
        // cam-03 is down: a powered-off camera does not answer.
        let mut want: Vec<&str> = cams.iter().filter(|(id, _)| id != "cam-03").map(|(_, u)| u.as_str()).collect();
        want.sort_unstable();
        assert_eq!(found, want, "{types:?}: {v}");
        for s in services {
            let types = s["types"].to_string();
            assert!(types.contains("http://www.onvif.org/ver10/network/wsdl|NetworkVideoTransmitter"), "{s}");
            assert!(types.contains("http://www.onvif.org/ver10/device/wsdl|Device"), "{s}");
            assert!(s["scopes"].to_string().contains("onvif://www.onvif.org/name/Camera_"), "{s}");
            assert!(s["epr"].as_str().is_some_and(|e| e.starts_with("urn:uuid:")), "{s}");
        }
    }
}

#[test]
fn discover_by_multicast_finds_the_cameras_and_checks_the_config() {
    let net = NetnsPair::create();
    let (_sim, cams) = start_cameras(&net, 3, &["cam-03"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let listed: Vec<(&str, &str)> =
        cams.iter().filter(|(id, _)| id != "cam-02").map(|(i, u)| (i.as_str(), u.as_str())).collect();
    let config = harness::write_file(dir.path(), "site.toml", &site_config(&listed)).expect("config");
    let gw = harness::bin("branch-gateway");

    // Every non-loopback interface (here: the veth), and one chosen by address.
    for pick in [None, Some(CLIENT_IP)] {
        let mut args = vec!["netns", "exec", &net.client].into_iter().map(String::from).collect::<Vec<_>>();
        args.push(gw.display().to_string());
        args.extend(["discover", "--timeout", "2s", "--json", "--config"].map(String::from));
        args.push(config.display().to_string());
        if let Some(ip) = pick {
            args.extend(["--interface-addr".to_string(), ip.to_string()]);
        }
        let out = run(std::path::Path::new("ip"), &args, Duration::from_secs(30));
        assert_eq!(out.code, 0, "{out:?}");
        let v = out.json();
        let mut found: Vec<&str> = v["report"]["devices"]
            .as_array()
            .map(|d| d.iter().filter_map(|d| d["xaddrs"][0].as_str()).collect())
            .unwrap_or_default();
        found.sort_unstable();
        let mut want = [cams[0].1.as_str(), cams[1].1.as_str()];
        want.sort_unstable();
        assert_eq!(found, want, "{pick:?}: {v}");
        assert!(v["report"]["probed"].to_string().contains(&format!("via {CLIENT_IP}")), "{v}");
        assert!(
            v["report"]["devices"].to_string().contains(&format!("{SIM_IP}:3702")),
            "replies come from the camera's address: {v}"
        );
        let ids = |k: &str| -> Vec<String> {
            v["config"][k]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x["id"].as_str().map(String::from)).collect())
                .unwrap_or_default()
        };
        assert_eq!(ids("answered"), ["cam-01"], "{v}");
        assert_eq!(ids("missing"), ["cam-03"], "{v}");
        assert_eq!(v["config"]["unconfigured"].as_array().map(Vec::len), Some(1), "cam-02 is not configured: {v}");
    }
}
