//! `device-sim --emit-config`: the installer's starting point is a site config that matches
//! the simulated branch exactly and that the real `branch-gateway check-config` accepts — for
//! every shipped scenario and for `serve` — with the camera passwords in private files next
//! to it, never inline.

use crate::sim_common;

use std::path::Path;
use std::time::Duration;

use harness::workspace_root;
use sim_common::{Sim, check_config};

/// Runs `device-sim ARGS… --emit-config DIR/site.toml`, waits for the config, checks it.
fn emit_and_check(args: &[&str], dir: &Path) -> (Sim, String) {
    let cfg = dir.join("site.toml");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--emit-config", cfg.to_str().unwrap(), "--broker", "mqtt://127.0.0.1:1"]);
    let mut sim = Sim::spawn(&all, dir).unwrap();
    sim.wait_line(Duration::from_secs(30), |l| l.starts_with("wrote a matching gateway config")).unwrap();
    let (code, out) = check_config(&cfg).unwrap();
    assert_eq!(code, 0, "branch-gateway check-config refused the emitted config:\n{out}");
    assert!(out.contains(": ok ("), "{out}");
    (sim, std::fs::read_to_string(&cfg).unwrap())
}

#[test]
fn the_small_branch_config_passes_check_config_and_points_at_the_live_devices() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = workspace_root().join("deploy/scenarios/small-branch.toml");
    let (sim, text) = emit_and_check(&["run", scenario.to_str().unwrap()], dir.path());
    let site: toml::Table = toml::from_str(&text).unwrap();

    assert_eq!(site["uplink"]["broker"].as_str(), Some("mqtt://127.0.0.1:1"), "--broker wins over the scenario's");
    let cams = site["camera"].as_array().unwrap();
    assert_eq!(cams.len(), 6);
    for c in cams {
        let id = c["id"].as_str().unwrap();
        // The URL is the one the simulator serves, and it answers.
        let port = sim.camera_port(id).unwrap_or_else(|| panic!("no stdout line for {id}"));
        assert_eq!(c["onvif"].as_str().unwrap(), format!("http://127.0.0.1:{port}/onvif/device_service"));
        assert!(sim_common::accepts(port), "{id} does not accept connections");
        assert!(c.get("password").is_none(), "passwords never inline");
        assert_eq!(c["password_file"].as_str(), Some("site-cameras.pass"));
        assert_eq!(c["poll_interval"].as_str(), Some("2s"), "the scenario's [gateway] settings are carried over");
    }
    assert_eq!(cams[3]["auth"].as_str(), Some("digest"));
    let pass = dir.path().join("site-cameras.pass");
    assert_eq!(std::fs::read_to_string(&pass).unwrap(), "sim-camera-pw\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&pass).unwrap().permissions().mode() & 0o077, 0, "password file is private");
    }
    for p in site["panel"].as_array().unwrap() {
        let id = p["id"].as_str().unwrap();
        assert_eq!(p["address"].as_str().unwrap(), sim.panel_addr(id).unwrap().to_string());
    }
    assert_eq!(site["alarm_zone"].as_array().unwrap().len(), 3);
    assert_eq!(site["door"].as_array().unwrap().len(), 2);
    assert_eq!(site["door"][0]["held_open_limit"].as_str(), Some("20s"));
}

#[test]
fn every_shipped_scenario_and_serve_emit_configs_that_pass_check_config() {
    for name in ["large-branch", "bad-day"] {
        let dir = tempfile::tempdir().unwrap();
        let scenario = workspace_root().join(format!("deploy/scenarios/{name}.toml"));
        let (sim, text) = emit_and_check(&["run", scenario.to_str().unwrap()], dir.path());
        let site: toml::Table = toml::from_str(&text).unwrap();
        if name == "bad-day" {
            // The link proxy sits between the gateway and the broker.
            let line = sim.stdout().into_iter().find(|l| l.starts_with("link ")).expect("a link line");
            let listen = line.split_whitespace().find_map(|w| w.strip_prefix("listen=")).unwrap().to_string();
            assert_eq!(site["uplink"]["broker"].as_str().unwrap(), format!("mqtt://{listen}"));
            assert!(line.contains("target=127.0.0.1:1"), "{line}");
        } else {
            // Two camera passwords, two files.
            assert!(dir.path().join("site-cameras-1.pass").exists() && dir.path().join("site-cameras-2.pass").exists());
            assert_eq!(site["camera"].as_array().unwrap().len(), 60);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (_sim, text) = emit_and_check(
        &["serve", "--cameras", "3", "--alarm-panels", "2", "--access-panels", "1", "--auth", "digest"],
        dir.path(),
    );
    let site: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(site["camera"].as_array().unwrap().len(), 3);
    assert_eq!(site["panel"].as_array().unwrap().len(), 3);
    assert_eq!(site["camera"][0]["auth"].as_str(), Some("digest"));
}
