//! The hq `.deb` as head office's administrator gets it: the binary, both units (`hq listen`,
//! `hq serve`) and their sandbox, the conffiles (hq.toml, hq.env) and their group, the maintainer
//! scripts against a scratch tree, and dpkg installing, upgrading, removing and purging it in a
//! throw-away overlay (the database in /var/lib/hq survives everything but a purge). Built by
//! `scripts/package` (which `scripts/test` runs before the tests); `BSG_DEB_HQ` points at another.

use crate::packaging_common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use harness::workspace_root;
use packaging_common::{
    SANDBOX, Unpacked, assert_files, assert_settings, check_scripts, field, listing, run_script, service_settings,
    stdout,
};

const LISTEN: &str = "usr/lib/systemd/system/hq-listen.service";
const SERVE: &str = "usr/lib/systemd/system/hq-serve.service";
const CONF: &str = "etc/hq/hq.toml";
const ENV: &str = "etc/hq/hq.env";

fn deb() -> PathBuf {
    packaging_common::deb("hq", &packaging_common::native_arch(), "BSG_DEB_HQ")
}

fn unpack() -> Unpacked {
    packaging_common::unpack(&deb())
}

#[test]
fn hq_package_installs_the_binary_both_units_the_conffiles_and_the_docs() {
    let files = listing(&deb());
    assert_files(
        &files,
        &[
            ("usr/bin/hq", "-rwxr-xr-x"),
            (LISTEN, "-rw-r--r--"),
            (SERVE, "-rw-r--r--"),
            (CONF, "-rw-r-----"),
            (ENV, "-rw-r-----"),
            ("usr/share/doc/hq/HQ.md", "-rw-r--r--"),
            ("usr/share/doc/hq/HQ.zh-CN.md", "-rw-r--r--"),
            ("usr/share/doc/hq/CONSOLE.zh-CN.md", "-rw-r--r--"),
            ("usr/share/doc/hq/CONSOLE.md", "-rw-r--r--"),
            ("usr/share/doc/hq/ORDERS.md", "-rw-r--r--"),
            ("usr/share/doc/hq/NOTIFY.md", "-rw-r--r--"),
            ("usr/share/doc/hq/examples/hq-console.conf", "-rw-r--r--"),
        ],
    );
    // Nothing under /var: dpkg must never own (and so never remove) the database. Under /etc only
    // the two conffiles: the branch directory and the certificates are the administrator's.
    let etc: Vec<&String> = files.keys().filter(|p| p.starts_with("etc/") && *p != "etc/hq").collect();
    assert_eq!(etc, [ENV, CONF], "files under /etc");
    assert!(!files.keys().any(|p| p.starts_with("var")), "the package ships nothing under /var: {files:#?}");
}

#[test]
fn hq_control_declares_the_conffiles_the_dependencies_and_the_maintainer_scripts() {
    let deb = deb();
    assert_eq!(field(&deb, "Package"), "hq");
    assert_eq!(field(&deb, "Architecture"), packaging_common::native_arch());
    let depends = field(&deb, "Depends");
    assert!(depends.contains("adduser"), "postinst runs adduser, so Depends names it: {depends}");
    assert!(depends.contains("libc6"), "Depends comes from the binary's libraries: {depends}");
    let u = unpack();
    let conffiles = fs::read_to_string(u.control.join("conffiles")).expect("conffiles");
    let mut conffiles: Vec<&str> = conffiles.lines().collect();
    conffiles.sort_unstable();
    assert_eq!(conffiles, ["/etc/hq/hq.env", "/etc/hq/hq.toml"]);
    for script in ["postinst", "prerm", "postrm"] {
        let mode = fs::metadata(u.control.join(script)).expect(script).permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{script} is executable");
    }
    // Both units are handled by the generated snippets: an upgrade restarts running ones.
    let postinst = fs::read_to_string(u.control.join("postinst")).expect("postinst");
    for unit in ["hq-listen.service", "hq-serve.service"] {
        assert!(postinst.contains(&format!("try-restart {unit}")), "postinst restarts {unit}:\n{postinst}");
    }
}

/// What both units share: the user, the database, /etc/hq, restarts, the sandbox.
fn assert_common_unit_settings(unit: &str, name: &str) {
    let s = service_settings(unit);
    assert_settings(
        &s,
        &[
            ("Type", "simple"),
            ("User", "hq"),
            ("Group", "hq"),
            ("EnvironmentFile", "-/etc/hq/hq.env"),
            ("KillSignal", "SIGTERM"),
            ("Restart", "on-failure"),
            ("RestartSec", "5s"),
            ("RestartPreventExitStatus", "2"),
            ("SyslogIdentifier", name),
            ("UMask", "0027"),
            ("StateDirectory", "hq"),
            ("StateDirectoryMode", "0750"),
            ("ConfigurationDirectory", "hq"),
            ("ConfigurationDirectoryMode", "0750"),
        ],
        name,
    );
    assert_settings(&s, SANDBOX, name);
    assert_eq!(
        s.get("SystemCallFilter").map(Vec::as_slice),
        Some(&["@system-service".to_string(), "~@privileged @resources".to_string()][..]),
        "SystemCallFilter= in {name}"
    );
    let env = s.get("Environment").cloned().unwrap_or_default();
    assert!(env.contains(&"HQ_DB=sqlite:///var/lib/hq/hq.db".to_string()), "{name}: the default database: {env:?}");
    for rw in s.get("ReadWritePaths").into_iter().flatten() {
        assert_eq!(rw, "/var/lib/hq", "{name}: ReadWritePaths= beyond the state directory");
    }
    for key in ["RuntimeDirectory", "CacheDirectory", "LogsDirectory", "BindPaths", "DynamicUser"] {
        assert!(!s.contains_key(key), "{name}: {key}= would give the service more to write to");
    }
    assert!(
        s.get("AmbientCapabilities").is_none_or(|v| v.iter().all(String::is_empty)),
        "{name}: AmbientCapabilities= grants too much"
    );
    assert!(unit.contains("WantedBy=multi-user.target"), "{name} can be enabled");
    assert!(!unit.contains("/usr/local/bin"), "{name} runs the packaged /usr/bin/hq");
}

#[test]
fn hq_units_run_listen_and_serve_sandboxed_as_hq_and_write_only_to_var_lib_hq() {
    let u = unpack();
    let listen = fs::read_to_string(u.root.join(LISTEN)).expect("hq-listen.service");
    assert_common_unit_settings(&listen, "hq-listen");
    let s = service_settings(&listen);
    assert_settings(&s, &[("ExecStart", "/usr/bin/hq listen $HQ_LISTEN_ARGS")], "hq-listen");
    // The administrator's broker, credentials and flags come from hq.env, which the unit reads
    // after its own defaults (systemd: EnvironmentFile= wins over Environment=).
    assert!(listen.contains("HQ_BROKER") && listen.contains("HQ_MQTT_USERNAME"), "the comments say how to configure");

    let serve = fs::read_to_string(u.root.join(SERVE)).expect("hq-serve.service");
    assert_common_unit_settings(&serve, "hq-serve");
    let s = service_settings(&serve);
    assert_settings(
        &s,
        &[(
            "ExecStart",
            "/usr/bin/hq serve --directory /etc/hq/branches.csv --config /etc/hq/hq.toml --bind 127.0.0.1:8080 \
             --behind-proxy --secure-cookies $HQ_SERVE_ARGS",
        )],
        "hq-serve",
    );

    // The conffile the units read holds nothing active: the administrator fills it in.
    let env = fs::read_to_string(u.root.join(ENV)).expect("hq.env");
    let active: Vec<&str> = env.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).collect();
    assert!(active.is_empty(), "hq.env ships commented out: {active:?}");
    for var in ["HQ_BROKER", "HQ_MQTT_USERNAME", "HQ_MQTT_PASSWORD", "HQ_DB", "HQ_LISTEN_ARGS", "HQ_SERVE_ARGS"] {
        assert!(env.contains(&format!("#{var}=")), "hq.env shows {var}");
    }
}

#[test]
fn systemd_analyze_verify_accepts_both_hq_units() {
    let u = unpack();
    let bin = u.root.join("usr/bin/hq");
    let bin = bin.to_string_lossy();
    for (path, file) in [(LISTEN, "hq-listen.service"), (SERVE, "hq-serve.service")] {
        let unit = fs::read_to_string(u.root.join(path)).expect("unit");
        let score = packaging_common::verify_unit(&unit, file, &[("/usr/bin/hq", &bin)], 2.0);
        eprintln!("{file}: systemd-analyze security exposure {score}");
    }
}

#[test]
fn packaged_hq_runs_and_accepts_the_packaged_configuration() {
    let u = unpack();
    let hq = u.root.join("usr/bin/hq");
    let version = stdout(Command::new(&hq).arg("--version"));
    assert!(version.starts_with("hq "), "--version: {version}");
    // The conffile as shipped is a valid configuration (a reader: the database must exist).
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}/hq.db", dir.path().display());
    stdout(Command::new(&hq).args(["migrate", "--db", &db]));
    stdout(Command::new(&hq).args(["orders", "list", "--db", &db, "--config"]).arg(u.root.join(CONF)));
}

#[test]
fn hq_maintainer_scripts_are_valid_sh_and_shellcheck_clean() {
    check_scripts(&unpack(), &workspace_root().join("deploy/debian-hq"), &["postinst", "prerm", "postrm"]);
}

#[test]
fn hq_postinst_creates_the_user_once_and_gives_the_configuration_to_its_group() {
    let u = unpack();
    let scratch = tempfile::tempdir().expect("temp dir");
    let root = scratch.path().join("root");
    fs::create_dir_all(root.join("etc/hq")).expect("etc");

    let first = run_script(&u, "postinst", &["configure", ""], &root, false, false);
    assert!(
        first.contains("adduser --system --group --no-create-home --home /var/lib/hq --quiet hq"),
        "first install creates the system user and group:\n{first}"
    );
    for (mode, path) in [("0750", "/etc/hq\n"), ("0640", "/etc/hq/hq.toml\n"), ("0640", "/etc/hq/hq.env\n")] {
        assert!(first.contains(&format!("dpkg-statoverride --update --add root hq {mode} {path}")), "{path}:\n{first}");
    }
    assert!(first.contains("-o hq -g hq -m 0750") && root.join("var/lib/hq").is_dir(), "{first}");
    assert!(first.contains("systemctl enable --now hq-listen hq-serve"), "says what to do next:\n{first}");
    assert!(!first.contains("deb-systemd-helper enable"), "not enabled before it is configured:\n{first}");

    let again = run_script(&u, "postinst", &["configure", "0.1.0-1"], &root, true, true);
    for absent in ["adduser", "--add", "install ", "enable --now"] {
        assert!(!again.contains(absent), "a second configure does not run or print {absent}:\n{again}");
    }
}

#[test]
fn hq_database_survives_remove_and_upgrade_and_is_deleted_only_on_purge_with_a_warning() {
    let u = unpack();
    let scratch = tempfile::tempdir().expect("temp dir");
    let root = scratch.path().join("root");
    let state = root.join("var/lib/hq");
    fs::create_dir_all(&state).expect("state");
    fs::create_dir_all(root.join("etc/hq")).expect("etc");
    fs::write(state.join("hq.db"), vec![7u8; 4096]).expect("db");

    for (script, arg) in [("prerm", "upgrade"), ("postrm", "upgrade"), ("prerm", "remove"), ("postrm", "remove")] {
        let out = run_script(&u, script, &[arg], &root, true, true);
        assert!(state.join("hq.db").is_file(), "{script} {arg} deleted the database:\n{out}");
    }
    let out = run_script(&u, "postrm", &["purge"], &root, true, true);
    assert!(!state.exists(), "purge removes the database:\n{out}");
    assert!(out.contains("deleting the database directory /") && out.contains("are lost"), "says so:\n{out}");
    for path in ["/etc/hq/hq.toml", "/etc/hq/hq.env", "/etc/hq\n"] {
        assert!(out.contains(&format!("dpkg-statoverride --remove {path}")), "{path}:\n{out}");
    }
    assert!(!root.join("etc/hq").exists(), "an empty /etc/hq goes:\n{out}");
}

/// dpkg itself, in a throw-away overlay of this machine's root (see packaging_common): the user is
/// created once, both units stay disabled, the edited conffile and the database survive upgrade
/// and remove, purge deletes them and keeps what the administrator added.
#[test]
fn hq_dpkg_install_upgrade_remove_purge_in_a_scratch_overlay_keeps_config_and_database_until_purge() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let s = scratch.path();
    packaging_common::next_version(&deb(), s, |raw| {
        let conf = raw.join(CONF);
        let mut text = fs::read_to_string(&conf).expect("conffile");
        text.push_str("# changed in the next version\n");
        fs::write(&conf, text).expect("conffile");
    });
    let text = packaging_common::in_scratch_overlay(
        s,
        r#"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine: what anything else left on this one goes first (in the overlay only).
rm -rf /var/lib/hq /etc/hq
dpkg -i /tmp/bg/first.deb >/dev/null
echo "USER $(id -un hq) $(id -gn hq) $(getent passwd hq | cut -d: -f6,7)"
echo "MODES $(stat -c "%U:%G:%a" /etc/hq /etc/hq/hq.toml /etc/hq/hq.env /var/lib/hq | tr "\n" " ")"
for u in hq-listen hq-serve; do
    echo "ENABLED $u $(deb-systemd-helper was-enabled $u.service >/dev/null 2>&1 && echo yes || echo no)"
done
echo "VERSION $(su -s /bin/sh hq -c "hq --version")"
su -s /bin/sh hq -c "hq migrate --db sqlite:///var/lib/hq/hq.db" >/dev/null
echo "ORDERS $(su -s /bin/sh hq -c "hq orders list --db sqlite:///var/lib/hq/hq.db --config /etc/hq/hq.toml" >/dev/null 2>&1 && echo ok || echo refused)"
sed -i "s/^check_every = .*/check_every = \"1m\"  # edited by the administrator/" /etc/hq/hq.toml
dpkg --force-confold -i /tmp/bg/next.deb >/dev/null
echo "UPGRADED $(dpkg-query -W -f="\${Version}" hq) $(grep -c "edited by the administrator" /etc/hq/hq.toml) $(ls /etc/hq | tr "\n" " ")$(stat -c "%U:%G:%a" /etc/hq/hq.toml) $(ls /var/lib/hq | grep -c "^hq.db$") users=$(grep -c "^hq:" /etc/passwd)"
dpkg -r hq >/dev/null
echo "REMOVED $(ls /etc/hq | tr "\n" " ")$(ls /var/lib/hq | grep -c "^hq.db$") $(test -e /usr/bin/hq && echo bin || echo nobin)"
install -m 0640 -o root -g hq /dev/null /etc/hq/branches.csv
dpkg -P hq 2>&1 | sed "s/^/PURGE /"
echo "PURGED $(ls /etc/hq | tr "\n" " ")$(test -e /var/lib/hq && echo state || echo nostate)"
"#,
    );
    let line = |tag: &str| packaging_common::tagged(&text, tag);
    assert_eq!(line("USER"), "hq hq /var/lib/hq:/usr/sbin/nologin");
    assert_eq!(line("MODES"), "root:hq:750 root:hq:640 root:hq:640 hq:hq:750 ");
    assert!(text.contains("ENABLED hq-listen no") && text.contains("ENABLED hq-serve no"), "not enabled:\n{text}");
    assert!(line("VERSION").starts_with("hq "), "the service user runs the packaged hq:\n{text}");
    assert_eq!(line("ORDERS"), "ok", "the service user reads the shipped hq.toml:\n{text}");
    assert_eq!(
        line("UPGRADED"),
        "99.0.0-1 1 hq.env hq.toml hq.toml.dpkg-dist root:hq:640 1 users=1",
        "the upgrade keeps the edited hq.toml, its group and the database, and adds no second user"
    );
    assert_eq!(line("REMOVED"), "hq.env hq.toml hq.toml.dpkg-dist 1 nobin", "remove keeps config and database");
    assert!(text.contains("PURGE hq: purge: deleting the database directory /var/lib/hq"), "{text}");
    assert!(text.contains("PURGE hq: purge: kept /etc/hq"), "{text}");
    assert_eq!(line("PURGED"), "branches.csv nostate", "purge deletes the conffiles and the database");
}
