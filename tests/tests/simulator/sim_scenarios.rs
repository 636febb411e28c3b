//! Scenario files as an installer meets them: every shipped scenario is valid, and a broken
//! one gets errors that name the file, the line of the entry, the entry, the field and the
//! fix — all problems at once, never a panic.

use crate::sim_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use device_sim::scenario::{self, Action, PointSet, ScenarioError};
use harness::{workspace_root, write_file};

fn shipped() -> Vec<PathBuf> {
    let dir = workspace_root().join("deploy/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/scenarios exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_scenario_is_valid() {
    let files = shipped();
    let names: Vec<String> =
        files.iter().filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned())).collect();
    for want in ["small-branch", "large-branch", "bad-day"] {
        assert!(names.iter().any(|n| n == want), "deploy/scenarios/{want}.toml is missing: {names:?}");
    }
    for f in &files {
        let s = scenario::load(f).unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.timeline.is_empty(), "{}: a shipped scenario should do something", f.display());
        assert!(s.timeline.windows(2).all(|w| w[0].at <= w[1].at), "{}: timeline not sorted", f.display());
    }
    let small = scenario::load(&workspace_root().join("deploy/scenarios/small-branch.toml")).unwrap();
    assert!((4..=8).contains(&small.cameras.len()));
    assert_eq!(small.panels.len(), 2, "one alarm panel and one door controller");
    let large = scenario::load(&workspace_root().join("deploy/scenarios/large-branch.toml")).unwrap();
    assert!((55..=65).contains(&large.cameras.len()), "{}", large.cameras.len());
    let bad = scenario::load(&workspace_root().join("deploy/scenarios/bad-day.toml")).unwrap();
    assert!(bad.link.is_some(), "bad-day cuts the link through the proxy");
    assert!(bad.timeline.iter().any(|s| s.action == Action::Link { up: false }));

    // The CLI agrees, and says so on stdout.
    let out = sim_common::device_sim().arg("check").args(&files).output().expect("run device-sim check");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().filter(|l| l.contains(": ok (")).count(), files.len(), "{text}");
}

#[test]
fn flapping_expands_into_alternating_steps_in_time_order() {
    let text = r#"
[branch]
id = "b1"
[[camera]]
id = "cam-1"
[[panel]]
id = "alarm-1"
kind = "alarm"
[[timeline]]
at = "2s"
camera = "cam-1"
fault = "down"
every = "5s"
until = "17s"
alternate = true
[[timeline]]
at = "12s"
panel = "alarm-1"
point = "zone.3"
state = "alarm"
[[timeline]]
at = "1s"
panel = "alarm-1"
arm = "partition.2"
"#;
    let s = scenario::parse(text, Path::new("flap.toml")).unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<(u64, usize, String)> =
        s.timeline.iter().map(|st| (st.at.as_secs(), st.entry, st.action.describe())).collect();
    assert_eq!(
        got,
        vec![
            (1, 3, "panel alarm-1 point partition.2 = armed".to_string()),
            (2, 1, "camera cam-1 fault down on".into()),
            (7, 1, "camera cam-1 fault down off".into()),
            (12, 1, "camera cam-1 fault down on".into()),
            (12, 2, "panel alarm-1 point zone.3 = alarm".into()),
            (17, 1, "camera cam-1 fault down off".into()),
        ]
    );
    assert_eq!(
        s.timeline[4].action,
        Action::Point { panel: "alarm-1".into(), point: "zone.3".into(), value: PointSet::State("alarm".into()) }
    );
}

/// Parses `text` and returns its problems rendered as the CLI prints them.
fn problems(text: &str) -> Vec<String> {
    match scenario::parse(text, Path::new("site/branch.toml")) {
        Ok(_) => panic!("accepted a broken scenario:\n{text}"),
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

fn has(problems: &[String], parts: &[&str]) -> bool {
    problems.iter().any(|p| parts.iter().all(|part| p.contains(part)))
}

const HEAD: &str = r#"[branch]
id = "b1"

[[zone]]
id = "vault"

[[camera]]
id = "cam-01"
zones = ["vault"]

[[panel]]
id = "alarm-1"
kind = "alarm"

[[panel]]
id = "access-1"
kind = "access"
"#;

#[test]
fn a_typo_in_a_field_name_is_named_with_its_entry_and_line() {
    let p = problems(&format!("{HEAD}\n[[camera]]\nid = \"cam-02\"\npasword = \"x\"\n"));
    // [[camera]] #2 starts on line 19 of the file.
    assert!(
        has(&p, &["site/branch.toml:19:", "camera #2 (cam-02)", "pasword", "unknown field", "fix:", "password"]),
        "{p:?}"
    );
    // A section name in the plural is spotted.
    let p = problems(&format!("{HEAD}\n[[cameras]]\nid = \"x\"\n"));
    assert!(has(&p, &["cameras", "unknown section", "[[camera]]"]), "{p:?}");
}

#[test]
fn references_to_things_that_do_not_exist_are_refused() {
    let p = problems(&format!(
        "{HEAD}
[[door]]
id = \"staff-door\"
panel = \"alarm-1\"
point = \"door.1\"

[[alarm_zone]]
id = \"vault-contact\"
panel = \"alarm-1\"
point = \"zone.1\"
linked_cameras = [\"cam-09\"]
area = \"vaults\"

[[timeline]]
at = \"10s\"
camera = \"cam-03\"
fault = \"down\"
"
    ));
    assert!(has(&p, &["door #1 (staff-door)", "panel", "not an access panel", "kind = \"access\""]), "{p:?}");
    assert!(has(&p, &["alarm_zone #1 (vault-contact)", "linked_cameras", "\"cam-09\""]), "{p:?}");
    assert!(has(&p, &["alarm_zone #1 (vault-contact)", "area", "\"vaults\""]), "{p:?}");
    assert!(has(&p, &["timeline #1 (at 10s)", "camera", "no [[camera]] has id \"cam-03\""]), "{p:?}");
    assert_eq!(p.len(), 4, "every problem once, nothing else: {p:?}");
}

#[test]
fn bad_values_say_what_is_allowed() {
    let p = problems(&format!(
        "{HEAD}
[[timeline]]
at = \"10 parsecs\"
camera = \"cam-01\"
fault = \"down\"

[[timeline]]
at = \"11s\"
camera = \"cam-01\"
fault = \"dwn\"

[[timeline]]
at = \"12s\"
panel = \"access-1\"
point = \"door.1\"
state = \"alarm\"

[[timeline]]
at = \"13s\"
camera = \"cam-01\"
fault = \"slow\"

[[timeline]]
at = \"14s\"
panel = \"alarm-1\"
fault = \"exception\"
code = 300
"
    ));
    assert!(has(&p, &["timeline #1", "at", "\"10 parsecs\" is not a duration", "\"10s\""]), "{p:?}");
    assert!(has(&p, &["timeline #2 (at 11s)", "fault", "unknown camera fault \"dwn\"", "down, hung, slow"]), "{p:?}");
    assert!(has(&p, &["timeline #3 (at 12s)", "point", "\"alarm\"", "closed, open, forced, held-open"]), "{p:?}");
    assert!(has(&p, &["timeline #4 (at 13s)", "needs a delay", "delay = \"1500ms\""]), "{p:?}");
    assert!(has(&p, &["timeline #5 (at 14s)", "code", "between 1 and 255"]), "{p:?}");
}

#[test]
fn steps_that_are_ambiguous_or_incomplete_are_refused() {
    let p = problems(&format!(
        "{HEAD}
[[timeline]]
at = \"1s\"
camera = \"cam-01\"
panel = \"alarm-1\"

[[timeline]]
at = \"2s\"
camera = \"cam-01\"
event = \"tamper\"
every = \"1s\"

[[timeline]]
at = \"3s\"
link = \"down\"

[[timeline]]
camera = \"cam-01\"
fault = \"down\"

[[timeline]]
at = \"4s\"
panel = \"alarm-1\"
heartbeat = false
state = \"alarm\"

[[timeline]]
at = \"5s\"
door = \"nowhere\"
"
    ));
    assert!(has(&p, &["timeline #1 (at 1s)", "one step does one thing", "split"]), "{p:?}");
    assert!(has(&p, &["timeline #2 (at 2s)", "every", "needs `times` or `until`"]), "{p:?}");
    assert!(has(&p, &["timeline #3 (at 3s)", "link", "no [link] proxy", "add a [link] section"]), "{p:?}");
    assert!(has(&p, &["timeline #4", "at", "is required"]), "{p:?}");
    assert!(has(&p, &["timeline #5 (at 4s)", "state", "does not apply to this step"]), "{p:?}");
    assert!(has(&p, &["timeline #6 (at 5s)", "door", "\"nowhere\""]), "{p:?}");
}

#[test]
fn duplicates_and_bad_ids_are_refused() {
    let p = problems(&format!(
        "{HEAD}
[[camera]]
id = \"alarm-1\"

[[camera]]
id = \"cam {{n}}\"
count = 2

[[zone]]
id = \"vault\"
"
    ));
    assert!(has(&p, &["id \"alarm-1\" is already used by a camera", "one id space"]), "{p:?}");
    assert!(has(&p, &["camera #3", "\"cam 1\"", "whitespace"]), "{p:?}");
    assert!(has(&p, &["zone #2 (vault)", "defined twice"]), "{p:?}");
}

#[test]
fn unreadable_and_malformed_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let syntax = write_file(dir.path(), "syntax.toml", "[branch\nid = 1\n").unwrap();
    let e = scenario::load(&syntax).unwrap_err();
    assert!(matches!(e, ScenarioError::Syntax { .. }), "{e}");
    assert!(e.to_string().contains("syntax.toml") && e.to_string().contains("line 1"), "{e}");
    let missing = dir.path().join("missing.toml");
    let e = scenario::load(&missing).unwrap_err();
    assert!(e.to_string().contains("missing.toml") && e.to_string().contains("fix:"), "{e}");
    let binary = dir.path().join("binary.toml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    assert!(scenario::load(&binary).is_err());

    // The CLI: exit 2, every problem on stderr, for `check` and for `run` alike.
    let broken = write_file(
        dir.path(),
        "broken.toml",
        &format!("{HEAD}\n[[timeline]]\nat = \"1s\"\ncamera = \"cam-01\"\nfault = \"dwn\"\n"),
    )
    .unwrap();
    for args in [vec!["check"], vec!["run", "--exit-when-done"]] {
        let out = sim_common::device_sim().args(&args).arg(&broken).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("broken.toml:19: timeline #1 (at 1s): fault: unknown camera fault \"dwn\""), "{err}");
    }
    let out = sim_common::device_sim().args(["run", "--speed", "0"]).arg(&syntax).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--speed"));
}

#[test]
fn a_scenario_plays_on_schedule_and_exits_when_done() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "short.toml",
        &format!(
            "{HEAD}
[scenario]
duration = \"1500ms\"

[[timeline]]
at = \"200ms\"
camera = \"cam-01\"
fault = \"slow\"
delay = \"300ms\"

[[timeline]]
at = \"600ms\"
panel = \"alarm-1\"
point = \"zone.2\"
raw = 3
note = \"zone 2 fault code\"

[[timeline]]
at = \"800ms\"
panel = \"alarm-1\"
heartbeat = false
every = \"200ms\"
times = 2
alternate = true
"
        ),
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    let mut sim = sim_common::Sim::spawn(
        &["run", file.to_str().unwrap(), "--events-json", "--exit-when-done", "--speed", "2"],
        dir.path(),
    )
    .unwrap();
    let code = sim.proc.wait_exit(Duration::from_secs(20));
    assert_eq!(code, Some(0), "stdout: {:?}", sim.stdout());
    // Exits after the duration (1.5 s at speed 2 = 0.75 s), not before.
    assert!(t0.elapsed() >= Duration::from_millis(700));
    std::thread::sleep(Duration::from_millis(100));
    let ev = sim.events();
    assert_eq!(ev.len(), 4, "{ev:?}");
    let actions: Vec<&str> = ev.iter().map(|e| e["action"].as_str().unwrap_or_default()).collect();
    assert_eq!(actions, ["camera-fault", "point", "heartbeat", "heartbeat"]);
    assert_eq!(ev[0]["ms"], 300);
    assert_eq!(ev[1]["raw"], 3.0);
    assert_eq!(ev[1]["note"], "zone 2 fault code");
    assert_eq!((ev[2]["running"].as_bool(), ev[3]["running"].as_bool()), (Some(false), Some(true)));
    for e in &ev {
        assert_eq!(e["source"], "timeline");
        assert_eq!(e["ok"], true);
        // Speed 2: each step at half its scenario offset, within a scheduling margin.
        let (at, t) = (e["at_ms"].as_u64().unwrap(), e["t_ms"].as_u64().unwrap());
        assert!(t + 5 >= at / 2 && t <= at / 2 + 150, "step at {at} ms ran at {t} ms: {e}");
    }
}
