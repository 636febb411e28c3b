//! The branch-gateway `.deb` as an installer gets it: the files it installs and their modes,
//! the conffile, the systemd unit's sandbox, the packaged binary against the packaged configs,
//! and the maintainer scripts run against a scratch tree (the outbox survives everything but a
//! purge). The package is built by `scripts/package`, which `scripts/test` runs before the
//! tests; `BSG_DEB` points at another one.

use crate::packaging_common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use harness::{which, workspace_root};
use packaging_common::{SANDBOX, Unpacked, assert_settings, check_scripts, run_script, service_settings, stdout};

const UNIT: &str = "usr/lib/systemd/system/branch-gateway.service";
const CONFFILE: &str = "etc/branch-gateway/branch.toml";
const EXAMPLES: &str = "usr/share/doc/branch-gateway/examples";

/// The package under test: `$BSG_DEB`, else the newest `branch-gateway_*_{this machine's
/// architecture}.deb` in the target directory's `debian/` (the arm64 one has its own test,
/// packaging_arm64.rs).
fn deb() -> PathBuf {
    packaging_common::deb("branch-gateway", &packaging_common::native_arch(), "BSG_DEB")
}

fn unpack() -> Unpacked {
    packaging_common::unpack(&deb())
}

fn listing() -> std::collections::BTreeMap<String, (String, String)> {
    packaging_common::listing(&deb())
}

#[test]
fn package_installs_the_binary_the_unit_the_examples_and_the_site_file() {
    let files = listing();
    let expect = [
        ("usr/bin/branch-gateway", "-rwxr-xr-x"),
        (UNIT, "-rw-r--r--"),
        (CONFFILE, "-rw-r-----"),
        ("usr/share/doc/branch-gateway/examples/branch.toml", "-rw-r--r--"),
        ("usr/share/doc/branch-gateway/examples/minimal.toml", "-rw-r--r--"),
        ("usr/share/doc/branch-gateway/examples/secrets/mqtt.pass", "-rw-r--r--"),
        ("usr/share/doc/branch-gateway/INSTALL.md", "-rw-r--r--"),
        ("usr/share/doc/branch-gateway/CONFIG.md", "-rw-r--r--"),
        ("usr/share/doc/branch-gateway/INSTALL.zh-CN.md", "-rw-r--r--"),
        ("usr/share/doc/branch-gateway/CONFIG.zh-CN.md", "-rw-r--r--"),
    ];
    for (path, mode) in expect {
        let (got, owner) = files.get(path).unwrap_or_else(|| panic!("{path} is not in the package: {files:#?}"));
        assert_eq!(got, mode, "mode of {path}");
        assert!(
            ["0/0", "root/root"].contains(&owner.as_str()),
            "{path} is {owner}: root in the archive (postinst sets the group)"
        );
    }
    // Nothing under /var: dpkg must never own (and so never remove) the outbox. Under /etc only
    // the site file: secrets are the installer's, never the package's.
    let etc: Vec<&String> = files.keys().filter(|p| p.starts_with("etc/") && *p != "etc/branch-gateway").collect();
    assert_eq!(etc, [CONFFILE], "files under /etc");
    assert!(!files.keys().any(|p| p.starts_with("var")), "the package ships nothing under /var: {files:#?}");
}

#[test]
fn control_declares_the_conffile_the_dependencies_and_the_maintainer_scripts() {
    let info = stdout(Command::new("dpkg-deb").arg("-I").arg(deb()));
    for part in ["conffiles", "postinst", "prerm", "postrm", "Package: branch-gateway"] {
        assert!(info.contains(part), "dpkg-deb -I lacks {part}:\n{info}");
    }
    let u = unpack();
    let conffiles = fs::read_to_string(u.control.join("conffiles")).expect("conffiles");
    assert_eq!(conffiles.lines().collect::<Vec<_>>(), ["/etc/branch-gateway/branch.toml"]);
    let depends = stdout(Command::new("dpkg-deb").arg("-f").arg(deb()).arg("Depends"));
    assert!(depends.contains("adduser"), "postinst runs adduser, so Depends names it: {depends}");
    assert!(depends.contains("libc6"), "Depends comes from the binary's libraries: {depends}");
    for script in ["postinst", "prerm", "postrm"] {
        let mode = fs::metadata(u.control.join(script)).expect(script).permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{script} is executable");
    }
}

#[test]
fn unit_runs_sandboxed_as_its_own_user_and_writes_only_to_the_state_directory() {
    let u = unpack();
    let unit = fs::read_to_string(u.root.join(UNIT)).expect("unit");
    let s = service_settings(&unit);
    let want = [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "30s"),
        ("User", "branch-gateway"),
        ("Group", "branch-gateway"),
        ("ExecStartPre", "/usr/bin/branch-gateway check-config /etc/branch-gateway/branch.toml"),
        ("ExecStart", "/usr/bin/branch-gateway run /etc/branch-gateway/branch.toml"),
        ("Restart", "on-failure"),
        ("RestartSec", "5s"),
        ("RestartPreventExitStatus", "2"),
        ("KillSignal", "SIGTERM"),
        ("TimeoutStopSec", "30s"),
        ("StateDirectory", "branch-gateway"),
        ("StateDirectoryMode", "0750"),
        ("ConfigurationDirectory", "branch-gateway"),
    ];
    assert_settings(&s, &want, "branch-gateway.service");
    // The sandbox every packaged unit has (hq's are held to the same list).
    assert_settings(&s, SANDBOX, "branch-gateway.service");
    let nofile: u64 = s.get("LimitNOFILE").and_then(|v| v.first()?.parse().ok()).expect("LimitNOFILE= a number");
    assert!(nofile >= 8192, "LimitNOFILE={nofile} is too low for 1,000 cameras");
    // Writable: the state directory and nothing else. ProtectSystem=strict makes the rest read-only.
    for rw in s.get("ReadWritePaths").into_iter().flatten() {
        assert_eq!(rw, "/var/lib/branch-gateway", "ReadWritePaths= beyond the state directory");
    }
    for key in ["RuntimeDirectory", "CacheDirectory", "LogsDirectory", "ReadOnlyPaths", "BindPaths"] {
        assert!(!s.contains_key(key), "{key}= would give the service more to write to");
    }
    for key in ["AmbientCapabilities", "DynamicUser"] {
        assert!(s.get(key).is_none_or(|v| v.iter().all(|x| x.is_empty() || x == "no")), "{key}= grants too much");
    }
    assert!(unit.contains("WantedBy=multi-user.target"), "the unit can be enabled");
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let analyze = which("systemd-analyze").unwrap_or_else(|| {
        panic!(
            "systemd-analyze is not installed, so the unit cannot be verified: install the Debian package \
             systemd (scripts/test installs it as root or in CI; scripts/lib/prereqs.sh)"
        )
    });
    let u = unpack();
    let bin = u.root.join("usr/bin/branch-gateway");
    // The unit names /usr/bin/branch-gateway; verify checks that it exists, so point it at the
    // unpacked binary. Unknown or misspelt directives only print warnings: any output fails.
    let unit =
        fs::read_to_string(u.root.join(UNIT)).expect("unit").replace("/usr/bin/branch-gateway", &bin.to_string_lossy());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("branch-gateway.service");
    fs::write(&path, unit).expect("write unit");
    let out = Command::new(&analyze).arg("verify").arg(&path).output().expect("systemd-analyze");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.trim().is_empty(), "systemd-analyze verify ({}):\n{text}", out.status);

    let out = Command::new(&analyze).args(["security", "--offline=true"]).arg(&path).output().expect("security");
    let text = String::from_utf8_lossy(&out.stdout);
    let score = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for branch-gateway.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok());
    match score {
        Some(score) => assert!(score <= 2.0, "systemd-analyze security exposure {score} (want <= 2.0):\n{text}"),
        None => panic!(
            "systemd-analyze security --offline=true gave no exposure score; it needs systemd 250 or later \
             (Debian 12 has 252):\n{text}"
        ),
    }
}

fn gateway(u: &Unpacked) -> Command {
    let mut c = Command::new(u.root.join("usr/bin/branch-gateway"));
    packaging_common::english(&mut c);
    c.env("HOME", "/root"); // minimal.toml reads its password from $HOME, any set variable
    c
}

#[test]
fn packaged_binary_runs_and_accepts_the_packaged_examples() {
    let u = unpack();
    let version = stdout(gateway(&u).arg("--version"));
    assert!(version.starts_with("branch-gateway "), "--version: {version}");
    for example in ["branch.toml", "minimal.toml"] {
        let path = u.root.join(EXAMPLES).join(example);
        let out = stdout(gateway(&u).arg("check-config").arg(&path));
        assert!(out.contains(": ok"), "check-config {example}: {out}");
    }
}

#[test]
fn default_site_file_passes_check_config_once_the_installer_adds_the_secrets() {
    let u = unpack();
    let conf = u.root.join(CONFFILE);
    let out = gateway(&u).arg("check-config").arg(&conf).output().expect("check-config");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "an unfilled site file is a bad config: {err}");
    assert!(err.contains("uplink.password_file") && err.contains("secrets/mqtt.pass"), "names the password: {err}");
    assert!(err.contains("uplink.tls.ca_file") && err.contains("secrets/ca.crt"), "names the CA: {err}");
    assert_eq!(err.matches("\n  - ").count(), 2, "the secrets are all that is missing: {err}");

    let secrets = conf.parent().expect("conf dir").join("secrets");
    fs::create_dir_all(&secrets).expect("secrets dir");
    fs::write(secrets.join("mqtt.pass"), "s3cret\n").expect("mqtt.pass");
    fs::write(secrets.join("ca.crt"), "").expect("ca.crt");
    let ok = stdout(gateway(&u).arg("check-config").arg(&conf));
    assert!(ok.contains(": ok"), "{ok}");
}

#[test]
fn maintainer_scripts_are_valid_sh_and_shellcheck_clean() {
    let u = unpack();
    // The scripts as shipped (ours plus cargo-deb's systemd snippets) and as written.
    check_scripts(&u, &workspace_root().join("deploy/debian"), &["postinst", "prerm", "postrm"]);
}

#[test]
fn postinst_creates_the_service_user_once_and_gives_the_site_file_to_its_group() {
    let u = unpack();
    let scratch = tempfile::tempdir().expect("temp dir");
    let root = scratch.path().join("root");
    fs::create_dir_all(root.join("etc/branch-gateway")).expect("etc");

    let first = run_script(&u, "postinst", &["configure", ""], &root, false, false);
    assert!(
        first.contains(
            "adduser --system --group --no-create-home --home /var/lib/branch-gateway --quiet branch-gateway"
        ),
        "first install creates the system user and group:\n{first}"
    );
    assert!(
        first.contains("dpkg-statoverride --update --add root branch-gateway 0640 /etc/branch-gateway/branch.toml"),
        "{first}"
    );
    assert!(
        first.contains("dpkg-statoverride --update --add root branch-gateway 0750 /etc/branch-gateway\n"),
        "{first}"
    );
    assert!(first.contains("-g branch-gateway -m 0750") && root.join("etc/branch-gateway/secrets").is_dir(), "{first}");
    assert!(
        first.contains("-o branch-gateway -g branch-gateway -m 0750") && root.join("var/lib/branch-gateway").is_dir()
    );
    assert!(first.contains("systemctl enable --now branch-gateway"), "tells the installer what to do next:\n{first}");
    assert!(!first.contains("deb-systemd-helper enable"), "not enabled before it is configured:\n{first}");

    // An upgrade: the user, the overrides and the directories exist; nothing is redone.
    let again = run_script(&u, "postinst", &["configure", "0.1.0-1"], &root, true, true);
    for absent in ["adduser", "--add", "install "] {
        assert!(!again.contains(absent), "a second configure does not run {absent}:\n{again}");
    }
}

#[test]
fn outbox_survives_remove_and_upgrade_and_is_deleted_only_on_purge_with_a_warning() {
    let u = unpack();
    let scratch = tempfile::tempdir().expect("temp dir");
    let root = scratch.path().join("root");
    let outbox = root.join("var/lib/branch-gateway");
    let secrets = root.join("etc/branch-gateway/secrets");
    fs::create_dir_all(&outbox).expect("outbox");
    fs::create_dir_all(&secrets).expect("secrets");
    fs::write(outbox.join("db"), vec![7u8; 4096]).expect("outbox db");
    fs::write(secrets.join("mqtt.pass"), "s3cret\n").expect("secret");

    for (script, arg) in [("prerm", "upgrade"), ("postrm", "upgrade"), ("prerm", "remove"), ("postrm", "remove")] {
        let out = run_script(&u, script, &[arg], &root, true, true);
        assert!(outbox.join("db").is_file(), "{script} {arg} deleted the outbox:\n{out}");
        assert!(secrets.join("mqtt.pass").is_file(), "{script} {arg} deleted the secrets:\n{out}");
    }

    let out = run_script(&u, "postrm", &["purge"], &root, true, true);
    assert!(!outbox.exists() && !secrets.exists(), "purge removes the outbox and the secrets:\n{out}");
    assert!(out.contains("deleting the outbox") && out.contains("not acknowledged are lost"), "says so:\n{out}");
    assert!(out.contains("dpkg-statoverride --remove /etc/branch-gateway/branch.toml"), "{out}");
}

/// The real thing: dpkg installs, upgrades, removes and purges the package inside a throw-away
/// overlay of this machine's own root file system, in a private mount namespace, so the real
/// system never changes. It needs root, `unshare` and overlayfs (CI has them); without one of
/// them it fails and says what is missing — it never passes without having run.
#[test]
fn dpkg_install_upgrade_remove_purge_in_a_scratch_overlay_keeps_config_and_outbox_until_purge() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let s = scratch.path();
    // A later version (99.0.0-1) of the same package whose default site file changed: the upgrade must
    // keep the installer's edited file and put the new default beside it.
    packaging_common::next_version(&deb(), s, |raw| {
        let conf = raw.join(CONFFILE);
        let mut text = fs::read_to_string(&conf).expect("conffile");
        text.push_str("# changed in the next version\n");
        fs::write(&conf, text).expect("conffile");
    });
    let text = packaging_common::in_scratch_overlay(
        s,
        r#"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine: what anything else left on this one goes first (in the overlay only).
rm -rf /var/lib/branch-gateway /etc/branch-gateway
dpkg -i /tmp/bg/first.deb >/dev/null
echo "USER $(id -un branch-gateway) $(id -gn branch-gateway) $(getent passwd branch-gateway | cut -d: -f6,7)"
echo "MODES $(stat -c "%U:%G:%a" /etc/branch-gateway /etc/branch-gateway/branch.toml /etc/branch-gateway/secrets /var/lib/branch-gateway | tr "\n" " ")"
echo "ENABLED $(deb-systemd-helper was-enabled branch-gateway.service >/dev/null 2>&1 && echo yes || echo no)"
sed -i "s/^id = \"b0000\".*/id = \"b0101\"  # edited by the installer/" /etc/branch-gateway/branch.toml
printf "pw\n" >/etc/branch-gateway/secrets/mqtt.pass
: >/etc/branch-gateway/secrets/ca.crt
chgrp branch-gateway /etc/branch-gateway/secrets/mqtt.pass /etc/branch-gateway/secrets/ca.crt
chmod 0640 /etc/branch-gateway/secrets/mqtt.pass /etc/branch-gateway/secrets/ca.crt
echo "CHECK $(su -s /bin/sh branch-gateway -c "branch-gateway check-config /etc/branch-gateway/branch.toml" 2>&1)"
echo event >/var/lib/branch-gateway/db
dpkg --force-confold -i /tmp/bg/next.deb >/dev/null
echo "UPGRADED $(dpkg-query -W -f="\${Version}" branch-gateway) $(grep -c "edited by the installer" /etc/branch-gateway/branch.toml) $(ls /etc/branch-gateway | tr "\n" " ")$(stat -c "%U:%G:%a" /etc/branch-gateway/branch.toml) $(cat /var/lib/branch-gateway/db)"
dpkg -r branch-gateway >/dev/null
echo "REMOVED $(ls /etc/branch-gateway | tr "\n" " ")$(cat /var/lib/branch-gateway/db) $(test -e /usr/bin/branch-gateway && echo bin || echo nobin)"
dpkg -P branch-gateway 2>&1 | sed "s/^/PURGE /"
echo "PURGED $(test -e /etc/branch-gateway && echo etc || echo noetc) $(test -e /var/lib/branch-gateway && echo state || echo nostate)"
"#,
    );
    let line = |tag: &str| packaging_common::tagged(&text, tag);
    assert_eq!(line("USER"), "branch-gateway branch-gateway /var/lib/branch-gateway:/usr/sbin/nologin");
    assert_eq!(
        line("MODES"),
        "root:branch-gateway:750 root:branch-gateway:640 root:branch-gateway:750 branch-gateway:branch-gateway:750 "
    );
    assert_eq!(line("ENABLED"), "no", "not enabled before it is configured");
    assert!(line("CHECK").contains(": ok"), "the service user can read the site file and the secrets:\n{text}");
    assert_eq!(
        line("UPGRADED"),
        "99.0.0-1 1 branch.toml branch.toml.dpkg-dist secrets root:branch-gateway:640 event",
        "the upgrade keeps the edited site file, its group, the secrets and the outbox"
    );
    assert_eq!(
        line("REMOVED"),
        "branch.toml branch.toml.dpkg-dist secrets event nobin",
        "remove keeps config, secrets and outbox"
    );
    assert!(text.contains("PURGE branch-gateway: purge: deleting the branch's credentials"), "{text}");
    assert!(text.contains("deleting the outbox"), "{text}");
    assert_eq!(line("PURGED"), "noetc nostate");
}
