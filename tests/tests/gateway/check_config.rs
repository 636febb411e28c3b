//! `branch-gateway check-config` and start-up with bad input: every class of bad
//! configuration is rejected with a message naming the file, the field and the fix; every
//! shipped example is accepted; nothing panics; the exit code is 2.

use std::process::Command;

use harness::{bin, workspace_root, write_file};

const GOOD: &str = r#"
[branch]
id = "b01"
name = "Test"
[uplink]
broker = "mqtt://127.0.0.1:1883"
[[zone]]
id = "vault"
name = "Vault"
coverage_required = true
[[camera]]
id = "cam-1"
name = "Cam"
onvif = "http://127.0.0.1:8000/onvif/device_service"
zones = ["vault"]
[[panel]]
id = "alarm-1"
name = "Panel"
kind = "alarm"
address = "127.0.0.1:502"
profile = "generic-alarm"
[[alarm_zone]]
id = "z1"
name = "Zone 1"
panel = "alarm-1"
point = "zone.1"
linked_cameras = ["cam-1"]
"#;

/// `check-config` on `text` as `site.toml`, in English: exit code and stdout+stderr.
fn check(text: &str) -> (i32, String) {
    check_in(text, "C", None)
}

fn rejects(text: &str, needles: &[&str]) {
    let (code, out) = check(text);
    assert_eq!(code, 2, "expected exit 2, got {code}: {out}");
    assert!(out.contains("site.toml"), "message does not name the file: {out}");
    assert!(out.contains("fix"), "message gives no fix: {out}");
    for n in needles {
        assert!(out.contains(n), "expected {n:?} in:\n{out}");
    }
}

#[test]
fn a_good_config_passes() {
    let (code, out) = check(GOOD);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok"), "{out}");
}

#[test]
fn every_shipped_example_is_accepted() {
    let dir = workspace_root().join("deploy/examples");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        n += 1;
        let out = Command::new(bin("branch-gateway")).arg("check-config").arg(&p).output().unwrap();
        assert!(out.status.success(), "{} rejected:\n{}", p.display(), String::from_utf8_lossy(&out.stderr));
    }
    assert!(n >= 2, "expected example configs in {}", dir.display());
}

#[test]
fn duplicate_ids_are_rejected() {
    let text = GOOD.to_string()
        + r#"
[[camera]]
id = "cam-1"
name = "Again"
onvif = "http://127.0.0.1:8001/onvif/device_service"
"#;
    rejects(&text, &["camera[1].id", "duplicate device id \"cam-1\""]);
}

#[test]
fn references_to_unknown_ids_are_rejected() {
    let text = GOOD
        .replace("linked_cameras = [\"cam-1\"]", "linked_cameras = [\"cam-9\"]")
        .replace("zones = [\"vault\"]", "zones = [\"attic\"]");
    rejects(
        &text,
        &[
            "alarm_zone[0].linked_cameras[0]",
            "unknown camera \"cam-9\"",
            "camera[0].zones[0]",
            "unknown zone \"attic\"",
        ],
    );
    let text = GOOD.replace("panel = \"alarm-1\"", "panel = \"alarm-7\"");
    rejects(&text, &["alarm_zone[0].panel", "unknown panel \"alarm-7\""]);
    let text = GOOD.replace("point = \"zone.1\"", "point = \"zone.99\"");
    rejects(&text, &["alarm_zone[0].point", "no point \"zone.99\""]);
}

#[test]
fn out_of_range_intervals_are_rejected() {
    let text = GOOD.replace("zones = [\"vault\"]", "zones = [\"vault\"]\npoll_interval = \"10ms\"");
    rejects(&text, &["camera[0].poll_interval", "out of range"]);
    let text = GOOD.replace("profile = \"generic-alarm\"", "profile = \"generic-alarm\"\npoll_interval = \"2h\"");
    rejects(&text, &["panel[0].poll_interval"]);
}

#[test]
fn bad_picture_check_settings_are_rejected_and_good_ones_accepted() {
    let good = GOOD
        .replace("coverage_required = true\n", "coverage_required = true\nmin_resolution = \"1920x1080\"\n")
        .replace(
            "zones = [\"vault\"]\n",
            "zones = [\"vault\"]\npicture = { ir = false, night_hours = \"19:00-07:00\", defocus_ratio = 0.5 }\n",
        )
        + "[health.picture]\ndark_below = 30\nmin_resolution = \"1280x720\"\n";
    let (code, out) = check(&good);
    assert_eq!(code, 0, "{out}");
    let bad =
        GOOD.replace("coverage_required = true\n", "coverage_required = true\nmin_resolution = \"hd\"\n").replace(
            "zones = [\"vault\"]\n",
            "zones = [\"vault\"]\npicture = { night_hours = \"7pm-7am\", defocus_ratio = 1.5 }\n",
        ) + "[health.picture]\ndark_below = 300\n";
    rejects(
        &bad,
        &[
            "zone[0].min_resolution",
            "WIDTHxHEIGHT",
            "camera[0].picture.night_hours",
            "HH:MM-HH:MM",
            "camera[0].picture.defocus_ratio",
            "health.picture.dark_below",
        ],
    );
    // An unknown field is named with its line.
    rejects(&(GOOD.to_string() + "[health.picture]\ndark_threshold = 3\n"), &["dark_threshold"]);
}

#[test]
fn topic_segments_with_wildcards_are_rejected() {
    rejects(&GOOD.replace("id = \"b01\"", "id = \"b+01\""), &["branch.id", "`+`"]);
    rejects(&GOOD.replace("id = \"cam-1\"", "id = \"cam#1\"").replace("[\"cam-1\"]", "[\"cam#1\"]"), &["camera[0].id"]);
    rejects(
        &GOOD.replace(
            "broker = \"mqtt://127.0.0.1:1883\"",
            "broker = \"mqtt://127.0.0.1:1883\"\ntopic_prefix = \"bank/+/x\"",
        ),
        &["uplink.topic_prefix"],
    );
    rejects(&GOOD.replace("id = \"vault\"", "id = \"va/ult\"").replace("[\"vault\"]", "[\"va/ult\"]"), &["zone[0].id"]);
}

#[test]
fn unreadable_credential_files_are_rejected() {
    let text = GOOD.replace(
        "broker = \"mqtt://127.0.0.1:1883\"",
        "broker = \"mqtt://127.0.0.1:1883\"\nusername = \"b01\"\npassword_file = \"/nonexistent/mqtt.pass\"",
    );
    rejects(&text, &["uplink.password_file", "/nonexistent/mqtt.pass"]);
    let text = GOOD.replace("zones = [\"vault\"]", "zones = [\"vault\"]\npassword_env = \"BSG_SURELY_UNSET_VAR\"");
    rejects(&text, &["camera[0].password_env", "BSG_SURELY_UNSET_VAR"]);
}

#[test]
fn every_problem_is_listed_not_just_the_first() {
    let text = GOOD
        .replace("id = \"b01\"", "id = \"b/01\"")
        .replace("linked_cameras = [\"cam-1\"]", "linked_cameras = [\"cam-9\"]")
        .replace("broker = \"mqtt://127.0.0.1:1883\"", "broker = \"http://x\"");
    rejects(&text, &["branch.id", "alarm_zone[0].linked_cameras[0]", "uplink.broker", "3 problem(s)"]);
}

#[test]
fn invalid_toml_and_wrong_types_exit_2_with_the_line() {
    rejects("[branch\nid = 1", &["line"]);
    let (code, out) = check(&GOOD.replace("unit_id", "x").replace("address = \"127.0.0.1:502\"", "address = 502"));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("line"), "{out}");
    let (code, out) = check(&GOOD.replace("[[camera]]", "[[camera]]\nbogus_field = 1"));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("bogus_field"), "{out}");
}

#[test]
fn missing_or_unreadable_config_exits_2_for_run_and_check() {
    for sub in ["run", "check-config"] {
        let out = Command::new(bin("branch-gateway")).arg(sub).arg("/nonexistent/site.toml").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{sub}: {err}");
        assert!(err.contains("/nonexistent/site.toml") && err.contains("cannot read"), "{sub}: {err}");
        assert!(!err.contains("panicked"));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin("branch-gateway")).arg("run").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a directory is not a config");
    let out = Command::new(bin("branch-gateway")).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "unknown subcommand");
}

#[test]
fn invalid_profile_files_are_reported_through_the_panel() {
    let dir = tempfile::tempdir().unwrap();
    write_file(
        dir.path(),
        "bad-profile.toml",
        "name = \"bad\"\n[[point]]\nid = \"zone.1\"\nrole = \"zone\"\ntable = \"holding\"\naddress = 70000\ntype = \"u16\"\n",
    )
    .unwrap();
    let text = GOOD.replace("profile = \"generic-alarm\"", "profile = \"bad-profile.toml\"");
    let path = write_file(dir.path(), "site.toml", &text).unwrap();
    let out = Command::new(bin("branch-gateway")).arg("check-config").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("panel[0].profile"), "{err}");
}

/// `check-config` in a locale: exit code and stdout+stderr.
fn check_in(text: &str, lang_var: &str, flag: Option<&str>) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "site.toml", text).unwrap();
    let mut cmd = Command::new(bin("branch-gateway"));
    cmd.env("LANG", lang_var).env_remove("LC_ALL").env_remove("LC_MESSAGES");
    if let Some(l) = flag {
        cmd.args(["--lang", l]);
    }
    let out = cmd.arg("check-config").arg(&path).output().unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains("panicked"), "panic: {all}");
    (out.status.code().unwrap_or(-1), all)
}

/// The field of each listed problem (`  - FIELD: …` or `  - FIELD：…`).
fn problem_fields(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("  - "))
        .filter_map(|l| l.split([':', '：']).next())
        .map(str::to_string)
        .collect()
}

#[test]
fn a_chinese_locale_gets_the_problems_in_chinese_with_the_same_fields_and_exit_code() {
    let bad = GOOD
        .replace("id = \"cam-1\"", "id = \"cam/1\"")
        .replace("zones = [\"vault\"]", "zones = [\"vualt\"]")
        .replace("linked_cameras = [\"cam-1\"]", "linked_cameras = [\"cam-9\"]");
    let (code_en, en) = check_in(&bad, "C", None);
    let (code_zh, zh) = check_in(&bad, "zh_CN.UTF-8", None);
    assert_eq!((code_en, code_zh), (2, 2), "{en}\n{zh}");
    assert!(en.contains("unknown zone \"vualt\"") && en.contains("(fix: "), "{en}");
    for s in ["site.toml：", "处问题", "未知区域 \"vualt\"", "未知摄像机 \"cam-9\"", "（修正：", "只用字母、数字"]
    {
        assert!(zh.contains(s), "no {s:?} in:\n{zh}");
    }
    assert!(!zh.contains("unknown zone"), "untranslated: {zh}");
    let fields = problem_fields(&en);
    assert!(fields.contains(&"camera[0].zones[0]".to_string()), "{fields:?}");
    assert_eq!(problem_fields(&zh), fields, "the same fields, in the same order");

    // --lang beats the locale; LC_ALL beats LANG.
    let (code, forced) = check_in(&bad, "zh_CN.UTF-8", Some("en"));
    assert_eq!((code, forced.contains("unknown zone")), (2, true), "{forced}");
    let (_, flag_zh) = check_in(&bad, "C", Some("zh-CN"));
    assert!(flag_zh.contains("未知区域"), "{flag_zh}");
    let (code, bad_flag) = check_in(&bad, "C", Some("fr"));
    assert_eq!(code, 2, "an unknown --lang is a usage error: {bad_flag}");

    // A good file says so in Chinese too; a TOML syntax error keeps its line.
    let (code, ok) = check_in(GOOD, "zh_CN.UTF-8", None);
    assert_eq!(code, 0, "{ok}");
    assert!(ok.contains("正常") && ok.contains("摄像机 1 台"), "{ok}");
    let (code, syntax) = check_in("[branch\nid = 1\n", "zh_CN.UTF-8", None);
    assert_eq!(code, 2, "{syntax}");
    assert!(syntax.contains("第 1 行") && syntax.contains("修正"), "{syntax}");
}

#[test]
fn the_log_lines_an_operator_reads_follow_the_locale() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    // No broker at port 1: the gateway starts, keeps its events and says so. The outbox in the
    // test's own directory (the default is /var/lib/branch-gateway).
    let site = GOOD.replace("mqtt://127.0.0.1:1883", "mqtt://127.0.0.1:1").replace(
        "[[zone]]",
        &format!("[storage]\npath = {:?}\n[[zone]]", dir.path().join("outbox").display().to_string()),
    );
    let path = write_file(dir.path(), "site.toml", &site).unwrap();
    let mut child = Command::new(bin("branch-gateway"))
        .args(["run", "--log-format", "json"])
        .arg(&path)
        .env("LANG", "zh_CN.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    // SIGTERM: the gateway stops cleanly and says so in Chinese too.
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    assert!(status.success(), "{status}: {log}");
    for s in ["网关正在启动", "收到信号，正在停止", "网关已停止"] {
        assert!(log.contains(s), "no {s:?} in the log:\n{log}");
    }
    // Field names stay English: tools parse them.
    assert!(log.contains("\"last_seq\"") && log.contains("\"waiting\""), "{log}");
}

#[test]
fn a_site_without_devices_runs_until_told_to_stop() {
    // A branch commissioned before its devices: the gateway used to exit at once (exit 0), as if
    // stopped, because no poller kept its observation channel open.
    let dir = tempfile::tempdir().unwrap();
    let site = format!(
        "[branch]\nid = \"b01\"\nname = \"Empty\"\n[uplink]\nbroker = \"mqtt://127.0.0.1:1\"\n[storage]\npath = {:?}\n\
         [metrics]\nenabled = false\n",
        dir.path().join("outbox").display().to_string()
    );
    let path = write_file(dir.path(), "site.toml", &site).unwrap();
    let mut child = Command::new(bin("branch-gateway")).arg("run").arg(&path).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(child.try_wait().unwrap().is_none(), "the gateway stopped by itself");
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    assert!(child.wait().unwrap().success());
}
