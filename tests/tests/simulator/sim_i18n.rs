//! The simulator speaks the installer's language: Chinese when the locale says `zh_*` (or with
//! `--lang zh-CN`), English otherwise or with `--lang en`. Only the words change: a problem
//! keeps its file, line, entry and field, the exit status stays, and the lines scripts read
//! (device addresses, `control`) are the same in every language.

use crate::sim_common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use device_sim::scenario;
use harness::{bin, write_file};
use sim_common::Sim;

/// `device-sim` with exactly this locale (`LANG`), whatever the runner's.
fn in_locale(lang: &str) -> Command {
    let mut cmd = Command::new(bin("device-sim"));
    cmd.env_remove("LC_ALL").env_remove("LC_MESSAGES").env("LANG", lang);
    cmd
}

fn has_chinese(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

const BROKEN: &str = r#"[branch]
id = "b1"

[[zone]]
id = "vault"

[[camera]]
id = "cam-01"
zones = ["vault", "lobby"]
pasword = "x"

[[panel]]
id = "alarm-1"
kind = "alarm"

[[timeline]]
at = "1s"
camera = "cam-01"
fault = "dwn"

[[timeline]]
at = "2s"
panel = "alarm-1"
point = "zone.2"
state = "burning"
"#;

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr).lines().map(str::to_string).collect()
}

#[test]
fn a_broken_scenario_gets_chinese_problems_with_the_same_places_and_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "broken.toml", BROKEN).unwrap();
    let err = scenario::load(&file).unwrap_err();
    let problems = err.problems();
    assert_eq!(problems.len(), 4, "{err}");

    for args in [vec!["check"], vec!["run", "--exit-when-done"]] {
        let zh = in_locale("zh_CN.UTF-8").args(&args).arg(&file).output().unwrap();
        let en = in_locale("C").args(&args).arg(&file).output().unwrap();
        assert_eq!(zh.status.code(), Some(2), "{args:?}");
        assert_eq!(en.status.code(), Some(2), "{args:?}");
        let (zh, en) = (stderr_lines(&zh), stderr_lines(&en));
        assert_eq!(zh.len(), problems.len(), "{zh:?}");
        assert_eq!(en.len(), problems.len(), "{en:?}");
        for ((p, z), e) in problems.iter().zip(&zh).zip(&en) {
            // FILE:LINE: ENTRY: FIELD stay as the file says them; the words after are Chinese.
            let mut place = format!("{}:{}: {}", file.display(), p.line.unwrap(), p.entry);
            if !p.field.is_empty() {
                place.push_str(&format!(": {}", p.field));
            }
            assert!(e.starts_with(&format!("{place}: {} (fix: ", p.message.en)), "{e}");
            let rest = z.strip_prefix(&place).unwrap_or_else(|| panic!("{z:?} does not start with {place:?}"));
            assert!(rest.starts_with('：') && rest.contains("（修正：") && rest.ends_with('）'), "{z}");
            assert!(has_chinese(rest), "{z}");
            assert_eq!(rest, format!("：{}（修正：{}）", p.message.zh, p.fix.zh));
        }
        assert!(zh.iter().any(|l| l.contains("未知字段")), "{zh:?}");
        assert!(zh.iter().any(|l| l.contains("未知的摄像机故障 \"dwn\"")), "{zh:?}");
    }
}

#[test]
fn the_lang_flag_overrides_the_locale_and_other_locales_are_english() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "broken.toml", BROKEN).unwrap();
    let english = in_locale("C").arg("check").arg(&file).output().unwrap();
    let text = String::from_utf8_lossy(&english.stderr).to_string();
    assert!(!has_chinese(&text) && text.contains("unknown field"), "{text}");

    // --lang en in a Chinese locale, before or after the subcommand: the English text.
    for args in [vec!["--lang", "en", "check"], vec!["check", "--lang", "en"]] {
        let out = in_locale("zh_CN.UTF-8").args(&args).arg(&file).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(String::from_utf8_lossy(&out.stderr), text, "{args:?}");
    }
    // --lang zh-CN in an English locale; LC_ALL before LANG, as POSIX orders them.
    let out = in_locale("C").args(["--lang", "zh-CN", "check"]).arg(&file).output().unwrap();
    assert!(has_chinese(&String::from_utf8_lossy(&out.stderr)));
    let out = in_locale("zh_CN.UTF-8").env("LC_ALL", "C").arg("check").arg(&file).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), text, "LC_ALL=C wins over LANG");
    let out = in_locale("de_DE.UTF-8").arg("check").arg(&file).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), text, "a language we do not have is English");
    // A language we do not have on the flag is a usage error.
    let out = in_locale("C").args(["--lang", "fr", "check"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    // A good file: `ok` in English, 正常 in Chinese, on stdout.
    let good = harness::workspace_root().join("deploy/scenarios/small-branch.toml");
    let out = in_locale("zh_CN.UTF-8").arg("check").arg(&good).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("：正常（网点 ") && stdout.contains("摄像机 6 台"), "{stdout}");
}

#[test]
fn in_chinese_the_lines_scripts_read_are_unchanged_and_the_rest_is_chinese() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("site.toml");
    let mut sim = Sim::spawn_cmd(
        in_locale("zh_CN.UTF-8"),
        &["serve", "--cameras", "1", "--emit-config", cfg.to_str().unwrap(), "--broker", "mqtt://127.0.0.1:1"],
        dir.path(),
    )
    .unwrap();
    let control = sim.control().unwrap();
    sim.wait_line(Duration::from_secs(20), |l| l.starts_with("正在运行")).unwrap();
    let out = sim.stdout();
    assert!(out.iter().any(|l| l.starts_with("camera cam-01 onvif=http://127.0.0.1:")), "{out:?}");
    assert!(out.iter().any(|l| l.starts_with("panel  alarm-1 modbus=127.0.0.1:")), "{out:?}");
    assert!(control.starts_with("http://127.0.0.1:"), "{control}");
    assert!(out.iter().any(|l| l.starts_with("已把匹配的网关配置写到 ")), "{out:?}");
    assert!(sim.camera_port("cam-01").is_some() && sim.panel_addr("alarm-1").is_some());

    // ctl: the API's refusal comes back in the client's language; the exit status is the same.
    let bad = ["ctl", "--control", control.as_str(), "camera", "cam-01", "dwn", "on"];
    let zh = in_locale("zh_CN.UTF-8").args(bad).output().unwrap();
    assert_eq!(zh.status.code(), Some(1));
    let err = String::from_utf8_lossy(&zh.stderr);
    assert!(err.contains("HTTP 400: 未知的摄像机故障 \"dwn\"（修正："), "{err}");
    let en = in_locale("zh_CN.UTF-8").arg("--lang").arg("en").args(bad).output().unwrap();
    assert!(String::from_utf8_lossy(&en.stderr).contains("HTTP 400: unknown camera fault \"dwn\" (fix: "));
    // A control address nobody listens on: a Chinese error, exit 1.
    let gone = in_locale("zh_CN.UTF-8").args(["ctl", "--control", "127.0.0.1:1", "devices"]).output().unwrap();
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("无法连接"), "{}", String::from_utf8_lossy(&gone.stderr));
    assert!(Path::new(&cfg).exists());
}
