//! One site model (the `site` crate) writes and reads the site file: for every shipped
//! scenario, the file the simulator's emitter writes passes the real `branch-gateway
//! check-config`, and reading it, writing it and reading it again with the site types gives
//! the same site.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{bin, spawn_bin, workspace_root, write_file};
use site::SiteConfig;

/// Runs `device-sim run SCENARIO --emit-config DIR/site.toml` until the config is written;
/// returns its text.
fn emit(scenario: &Path, dir: &Path) -> String {
    let cfg = dir.join("site.toml");
    let args =
        ["run", scenario.to_str().unwrap(), "--emit-config", cfg.to_str().unwrap(), "--broker", "mqtt://127.0.0.1:1"];
    let _sim = spawn_bin("device-sim", &args, dir, &[]).unwrap();
    let log = dir.join("device-sim.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("wrote a matching gateway config") {
        assert!(
            Instant::now() < deadline,
            "{}: no config emitted; log:\n{}",
            scenario.display(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::read_to_string(&cfg).unwrap()
}

fn check_config(path: &Path, lang: &str) -> (i32, String) {
    let out = Command::new(bin("branch-gateway"))
        .env("LANG", lang)
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), all)
}

#[test]
fn every_shipped_scenario_emits_a_site_file_that_check_config_accepts_and_that_round_trips() {
    let mut scenarios: Vec<_> = std::fs::read_dir(workspace_root().join("deploy/scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|x| x.to_str()) == Some("toml"))
        .collect();
    scenarios.sort();
    assert!(scenarios.len() >= 3, "{scenarios:?}");
    for scenario in &scenarios {
        let dir = tempfile::tempdir().unwrap();
        let text = emit(scenario, dir.path());
        let path = dir.path().join("site.toml");
        let (code, out) = check_config(&path, "C");
        assert_eq!(code, 0, "{}: check-config refused the emitted site file:\n{out}\n{text}", scenario.display());
        assert!(out.contains(": ok ("), "{out}");

        // Read, write, read: nothing lost, nothing changed.
        let first = SiteConfig::parse_str(&text).unwrap_or_else(|d| panic!("{}: {d}", scenario.display()));
        let written = first.to_toml().unwrap();
        let second = SiteConfig::parse_str(&written).unwrap_or_else(|d| panic!("{d}\n{written}"));
        assert_eq!(second, first, "{}: the round trip changed the site; written:\n{written}", scenario.display());
        // What was written back is a site file the gateway accepts too.
        let again = write_file(dir.path(), "again.toml", &written).unwrap();
        let (code, out) = check_config(&again, "C");
        assert_eq!(code, 0, "{}: the rewritten file was refused:\n{out}", scenario.display());
    }
}

#[test]
fn check_config_names_the_line_of_each_problem_in_both_languages() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[branch]\nid = \"b01\"\nname = \"Lines\"\n[uplink]\nbroker = \"mqtt://127.0.0.1:1883\"\n\
                [[zone]]\nid = \"vault\"\nname = \"Vault\"\n[[camera]]\nid = \"cam-1\"\nname = \"Cam\"\n\
                onvif = \"http://127.0.0.1:8000/onvif/device_service\"\nzones = [\"attic\"]\n\
                poll_interval = \"10ms\"\n";
    let path = write_file(dir.path(), "site.toml", text).unwrap();
    let (code, en) = check_config(&path, "C");
    assert_eq!(code, 2, "{en}");
    assert!(en.contains("  - camera[0].zones[0]: line 13: unknown zone \"attic\" (fix: "), "{en}");
    assert!(en.contains("  - camera[0].poll_interval: line 14: 10ms is out of range"), "{en}");
    let (code, zh) = check_config(&path, "zh_CN.UTF-8");
    assert_eq!(code, 2, "{zh}");
    assert!(zh.contains("  - camera[0].zones[0]：第 13 行：未知区域 \"attic\"（修正："), "{zh}");
}

#[test]
fn a_scenario_problem_is_placed_by_the_parser_not_by_searching_for_its_header() {
    // A description quoting a header, and an entry written inline: searching the text for
    // `[[camera]]` put the problem on the description's line, or on none.
    let text = "[scenario]\ndescription = \"\"\"\n[[camera]]\n\"\"\"\n[branch]\nid = \"b01\"\nname = \"B\"\n\n\
                [[camera]]\nid = \"cam-01\"\nname = \"A\"\n\n[[camera]]\nid = \"cam-02\"\nname = \"B\"\npasword = \"x\"\n\
                \n[[panel]]\nid = \"p1\"\nname = \"P\"\nkind = \"alarm\"\nprofile = \"generic-alarm\"\n\
                faults = [{ fault = \"dwn\" }]\n";
    let err = device_sim::scenario::parse(text, Path::new("s.toml")).unwrap_err();
    let problems = err.problems();
    let typo = problems.iter().find(|p| p.field == "pasword").unwrap_or_else(|| panic!("{err}"));
    assert_eq!((typo.line, typo.entry.as_str()), (Some(13), "camera #2 (cam-02)"), "{err}");
    assert_eq!(typo.file.as_deref(), Some(Path::new("s.toml")));
    assert!(err.to_string().contains("s.toml:13: camera #2 (cam-02): pasword: unknown field (fix: "), "{err}");
}
