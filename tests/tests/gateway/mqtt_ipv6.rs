//! IPv6 broker addresses through the one MQTT connection setup (the `mqtt-setup` crate): a
//! mosquitto that listens on ::1 only, with a user and password, reached as `mqtt://[::1]:PORT`
//! by every MQTT client of the workspace — the gateway's uplink under MQTT 3.1.1 and MQTT 5,
//! `branch-gateway commission`, and `hq` — and an IPv6 address written without brackets
//! refused with the same advice by the gateway and by `hq`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use harness::{Mosquitto, Proc, bin, spawn_bin, which, write_file};

/// A mosquitto on ::1 only (nothing on 127.0.0.1) that knows one user, `v6` / `pw-v6`.
fn broker_on_ipv6_loopback(dir: &Path) -> Result<Mosquitto> {
    let passwd = dir.join("passwd");
    let tool = which("mosquitto_passwd").context("mosquitto_passwd (run scripts/test)")?;
    let st = Command::new(tool).arg("-b").arg("-c").arg(&passwd).arg("v6").arg("pw-v6").status()?;
    anyhow::ensure!(st.success(), "mosquitto_passwd failed");
    // As root, mosquitto would drop to its own user, who cannot read our private temp dir.
    let broker = Mosquitto::start_with(&format!(
        "user root\nlistener {{port}} ::1\nallow_anonymous false\npassword_file {}\n",
        passwd.display()
    ))?;
    anyhow::ensure!(
        std::net::TcpStream::connect(("127.0.0.1", broker.port)).is_err(),
        "the broker must not be reachable over IPv4 in this test"
    );
    Ok(broker)
}

/// A site with no devices whose uplink goes to `broker` as user `v6`, the password in a file.
fn site(dir: &Path, branch: &str, broker: &str, version: &str) -> Result<std::path::PathBuf> {
    write_file(dir, "mqtt-password", "pw-v6\n")?;
    let text = format!(
        "[branch]\nid = \"{branch}\"\nname = \"IPv6\"\n[uplink]\nbroker = \"{broker}\"\nusername = \"v6\"\n\
         password_file = \"mqtt-password\"\nmqtt_version = \"{version}\"\n[storage]\npath = \"outbox\"\n\
         [metrics]\nenabled = false\n"
    );
    write_file(dir, "site.toml", &text)
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `hq coverage --live` against `url` with the broker's user, as JSON.
fn hq_live(cwd: &Path, url: &str) -> Result<serde_json::Value> {
    let pw = write_file(cwd, "hq-password", "pw-v6\n")?;
    let out = Command::new(bin("hq"))
        .args(["coverage", "--live", "2s", "--format", "json", "--broker", url, "--username", "v6"])
        .arg("--password-file")
        .arg(&pw)
        .current_dir(cwd)
        .output()?;
    if !out.status.success() {
        bail!("hq coverage --live exited {:?}:\n{}", out.status.code(), text(&out));
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("not JSON:\n{}", text(&out)))
}

fn gateway_online(live: &serde_json::Value, branch: &str) -> bool {
    live["branches"].as_array().is_some_and(|b| b.iter().any(|b| b["branch"] == branch && b["gateway"] == "online"))
}

fn stop(p: &mut Proc) -> Option<i32> {
    p.signal("TERM");
    p.wait_exit(Duration::from_secs(10))
}

/// The gateway's uplink publishes over ::1 under both protocol versions, with a password from a
/// file, and `hq` reads its retained status there with its own credentials.
#[test]
fn the_gateway_under_both_mqtt_versions_and_hq_reach_a_broker_by_its_ipv6_address() -> Result<()> {
    let work = tempfile::tempdir()?;
    let broker = broker_on_ipv6_loopback(work.path())?;
    let url = format!("mqtt://[::1]:{}", broker.port);
    for (branch, version) in [("v6-311", "3.1.1"), ("v6-5", "5")] {
        let dir = work.path().join(branch);
        std::fs::create_dir_all(&dir)?;
        let cfg = site(&dir, branch, &url, version)?;
        let mut gateway = spawn_bin("branch-gateway", &["run", &cfg.display().to_string()], &dir, &[])?;
        let deadline = Instant::now() + Duration::from_secs(20);
        let live = loop {
            let live = hq_live(&dir, &url)?;
            if gateway_online(&live, branch) {
                break live;
            }
            if Instant::now() > deadline {
                bail!("{branch} (MQTT {version}) not online at head office over {url}: {live}\n{}", broker.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(gateway_online(&live, branch), "{live}");
        assert_eq!(stop(&mut gateway), Some(0), "{branch}");
    }
    Ok(())
}

/// `commission` connects, logs in and makes its test publish over ::1.
#[test]
fn commission_checks_the_uplink_over_ipv6() -> Result<()> {
    let work = tempfile::tempdir()?;
    let broker = broker_on_ipv6_loopback(work.path())?;
    let cfg = site(work.path(), "v6-c", &format!("mqtt://[::1]:{}", broker.port), "5")?;
    let out = Command::new(bin("branch-gateway")).arg("commission").arg(&cfg).arg("--json").output()?;
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| text(&out))?;
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    let uplink = r["devices"].as_array().and_then(|d| d.iter().find(|d| d["id"] == "uplink")).context("uplink")?;
    let checks = uplink["checks"].as_array().context("checks")?;
    for name in ["broker", "publish"] {
        let c = checks.iter().find(|c| c["name"] == name).with_context(|| format!("{name} in {uplink}"))?;
        assert_eq!(c["verdict"], "pass", "{c}");
    }
    assert!(uplink["checks"].to_string().contains("::1"), "the report names the broker: {uplink}");
    Ok(())
}

/// An IPv6 address written without brackets is ambiguous (`::1:1883`): the gateway's
/// `check-config` and `run` and `hq` refuse it with the same advice, in English and Chinese,
/// before connecting anywhere (one parser: what check-config passes, `run` takes).
#[test]
fn an_ipv6_address_without_brackets_is_refused_by_both_with_the_same_fix() -> Result<()> {
    let work = tempfile::tempdir()?;
    let cfg = site(work.path(), "v6-b", "mqtt://::1:1883", "5")?;
    for (lang, needle) in [("C", "mqtt://[::1]:1883"), ("zh_CN.UTF-8", "方括号")] {
        let out = Command::new(bin("branch-gateway"))
            .env("LANG", lang)
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .arg("check-config")
            .arg(&cfg)
            .current_dir(work.path())
            .output()?;
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "check-config refuses the site file: {all}");
        assert!(all.contains("uplink.broker") && all.contains(needle), "{lang}: {all}");

        let mut gateway = Command::new(bin("branch-gateway"));
        gateway.env("LANG", lang).env_remove("LC_ALL").env_remove("LC_MESSAGES").arg("run").arg(&cfg);
        let out = gateway.current_dir(work.path()).output()?;
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "run refuses it as check-config does (docs/CONFIG.md): {all}");
        assert!(all.contains("uplink.broker") && all.contains(needle), "{lang}: {all}");

        let out = Command::new(bin("hq"))
            .env("LANG", lang)
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .args(["coverage", "--live", "1s", "--broker", "mqtt://::1:1883"])
            .current_dir(work.path())
            .output()?;
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "a usage error: {all}");
        assert!(all.contains(needle), "{lang}: {all}");
        assert!(!all.contains("panicked"), "{all}");
    }
    Ok(())
}
