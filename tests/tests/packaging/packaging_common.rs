//! Shared pieces of the package tests (packaging.rs: branch-gateway, packaging_hq.rs: hq,
//! packaging_sim.rs: device-sim, packaging_arm64.rs: the arm64 branch-gateway): finding a `.deb`
//! that `scripts/package` built, unpacking and listing it, reading a unit's `[Service]` settings,
//! `systemd-analyze verify`, running a maintainer script against a scratch tree with stubs, and
//! dpkg in a throw-away overlay of `/`. Every missing prerequisite fails with what to install:
//! nothing here ever passes without having run.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use harness::{which, workspace_root};

/// The package `name` for Debian architecture `arch`: the path in the environment variable
/// `env` when set, else the newest `{name}_*_{arch}.deb` in the target directory's `debian/`.
pub fn deb(name: &str, arch: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        return PathBuf::from(p);
    }
    // target/{profile}/deps/packaging-xxxx → target/debian
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent()?.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| workspace_root().join("target"));
    let dir = target.join("debian");
    let (prefix, suffix) = (format!("{name}_"), format!("_{arch}.deb"));
    let newest = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            file.starts_with(&prefix) && file.ends_with(&suffix)
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path());
    let how = if arch == "arm64" { "scripts/package --arch arm64 (or --arch all)" } else { "scripts/package" };
    newest.unwrap_or_else(|| {
        panic!(
            "no {prefix}*{suffix} in {}: run scripts/test (it builds the packages with scripts/package before the \
             tests), or {how} alone; {env} points at another one",
            dir.display()
        )
    })
}

/// `cmd` in an English locale whatever the test runner's (the programs pick their language from
/// it; the tests read the English texts).
pub fn english(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("LC_ALL").env_remove("LC_MESSAGES").env("LANG", "C")
}

/// The Debian architecture of this machine (`dpkg --print-architecture`).
pub fn native_arch() -> String {
    stdout(Command::new("dpkg").arg("--print-architecture")).trim().to_string()
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run(cmd).stdout).into_owned()
}

/// A control field of the package (`dpkg-deb -f`).
pub fn field(deb: &Path, name: &str) -> String {
    stdout(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name)).trim().to_string()
}

/// The package unpacked into a temporary directory: `root` holds the files (`dpkg-deb -x`),
/// `control` the control files and maintainer scripts (`dpkg-deb -e`).
pub struct Unpacked {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub control: PathBuf,
}

pub fn unpack(deb: &Path) -> Unpacked {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root));
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control));
    Unpacked { _dir: dir, root, control }
}

/// `dpkg-deb -c`: path (without the leading `./`) → (mode string, owner/group).
pub fn listing(deb: &Path) -> BTreeMap<String, (String, String)> {
    stdout(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let path = f.last()?.trim_start_matches("./").trim_end_matches('/').to_string();
            Some((path, (f.first()?.to_string(), f.get(1)?.to_string())))
        })
        .collect()
}

/// Asserts that each `(path, mode)` is in the listing with that mode, owned by root.
pub fn assert_files(files: &BTreeMap<String, (String, String)>, expect: &[(&str, &str)]) {
    for (path, mode) in expect {
        let (got, owner) = files.get(*path).unwrap_or_else(|| panic!("{path} is not in the package: {files:#?}"));
        assert_eq!(got, mode, "mode of {path}");
        assert!(
            ["0/0", "root/root"].contains(&owner.as_str()),
            "{path} is {owner}: root in the archive (postinst sets any group)"
        );
    }
}

/// The unit's `[Service]` settings, each key with all its values in order.
pub fn service_settings(unit: &str) -> BTreeMap<String, Vec<String>> {
    let mut section = "";
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Continuation lines (a trailing backslash) belong to the setting they continue.
    let mut joined = Vec::new();
    let mut pending = String::new();
    for line in unit.lines().map(str::trim) {
        if pending.is_empty() && (line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        joined.push(std::mem::take(&mut pending));
    }
    for line in &joined {
        let line = line.as_str();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if let Some((k, v)) = line.split_once('=')
            && section == "[Service]"
        {
            let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
            out.entry(k.trim().to_string()).or_default().push(v);
        }
    }
    out
}

/// Asserts each `(key, value)` is set exactly once to `value`.
pub fn assert_settings(s: &BTreeMap<String, Vec<String>>, want: &[(&str, &str)], unit: &str) {
    for (key, value) in want {
        assert_eq!(s.get(*key).map(Vec::as_slice), Some(&[value.to_string()][..]), "{key}= in {unit}");
    }
}

/// The sandbox every packaged unit has: what the gateway's unit is held to, less ProcSubset=
/// (hq derives its default MQTT client id from /proc/sys/kernel/hostname).
pub const SANDBOX: &[(&str, &str)] = &[
    ("NoNewPrivileges", "yes"),
    ("CapabilityBoundingSet", ""),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("ProtectHostname", "yes"),
    ("ProtectProc", "invisible"),
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ("RestrictNamespaces", "yes"),
    ("RestrictRealtime", "yes"),
    ("RestrictSUIDSGID", "yes"),
    ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("RemoveIPC", "yes"),
    ("PrivateMounts", "yes"),
    ("SystemCallArchitectures", "native"),
];

/// `systemd-analyze verify` of `unit` (file name `file_name`) with every `(from, to)` replaced
/// first (verify checks that ExecStart='s binary exists: point it at the unpacked one); any
/// output fails. Then `systemd-analyze security --offline=true`: the exposure must be at most
/// `max_exposure`. Returns the exposure.
pub fn verify_unit(unit: &str, file_name: &str, replace: &[(&str, &str)], max_exposure: f64) -> f64 {
    let analyze = which("systemd-analyze").unwrap_or_else(|| {
        panic!(
            "systemd-analyze is not installed, so the unit cannot be verified: install the Debian package \
             systemd (scripts/test installs it as root or in CI; scripts/lib/prereqs.sh)"
        )
    });
    let mut text = unit.to_string();
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(file_name);
    fs::write(&path, text).expect("write unit");
    let out = Command::new(&analyze).arg("verify").arg(&path).output().expect("systemd-analyze");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify {file_name} ({}):\n{text}",
        out.status
    );

    let out = Command::new(&analyze).args(["security", "--offline=true"]).arg(&path).output().expect("security");
    let text = String::from_utf8_lossy(&out.stdout);
    let marker = format!("Overall exposure level for {file_name}:");
    let score = text
        .lines()
        .find_map(|l| l.split(marker.as_str()).nth(1))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok());
    match score {
        Some(score) => {
            assert!(
                score <= max_exposure,
                "systemd-analyze security exposure {score} (want <= {max_exposure}):\n{text}"
            );
            score
        }
        None => panic!(
            "systemd-analyze security --offline=true gave no exposure score; it needs systemd 250 or later \
             (Debian 12 has 252):\n{text}"
        ),
    }
}

/// `sh -n` and shellcheck on the shipped maintainer scripts and their sources. Fails without
/// shellcheck (scripts/test installs it): a check that cannot look must not pass.
pub fn check_scripts(u: &Unpacked, sources: &Path, scripts: &[&str]) {
    let sc = which("shellcheck").expect("shellcheck is not installed (apt install shellcheck; scripts/test does)");
    for script in scripts {
        for path in [u.control.join(script), sources.join(script)] {
            let text = fs::read_to_string(&path).expect("script");
            assert!(text.starts_with("#!/bin/sh\n") && text.contains("\nset -e\n"), "{}", path.display());
            run(Command::new("sh").arg("-n").arg(&path));
            run(Command::new(&sc).args(["-s", "sh"]).arg(&path));
        }
    }
}

/// Runs a maintainer script the way dpkg would, against `root` (DPKG_ROOT) with every command
/// that touches the real system replaced by a stub that logs its arguments. `user_exists` and
/// `overridden` answer `getent passwd` and `dpkg-statoverride --list`. Returns the calls and the
/// script's stdout.
pub fn run_script(
    u: &Unpacked,
    script: &str,
    args: &[&str],
    root: &Path,
    user_exists: bool,
    overridden: bool,
) -> String {
    let stubs = root.parent().expect("scratch").join("stubs");
    let log = root.parent().expect("scratch").join("calls.log");
    fs::create_dir_all(&stubs).expect("stubs");
    let stub = |name: &str, body: &str| {
        let p = stubs.join(name);
        fs::write(&p, format!("#!/bin/sh\necho \"{name} $*\" >>\"$STUB_LOG\"\n{body}\n")).expect("stub");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod stub");
    };
    stub("getent", "exit $STUB_USER");
    stub("adduser", "exit 0");
    stub("addgroup", "exit 0");
    stub("dpkg-statoverride", "case $1 in --list) exit $STUB_OVERRIDE;; esac; exit 0");
    // install -d -o OWNER -g GROUP -m MODE DIR: the owner and group may not exist here.
    stub("install", "for last; do :; done; mkdir -p \"$last\"");
    // A first install: deb-systemd-helper has no state for the unit yet.
    stub("deb-systemd-helper", "case $1 in debian-installed) exit 1;; esac; exit 0");
    stub("deb-systemd-invoke", "exit 0");
    stub("systemctl", "exit 0");
    let _ = fs::remove_file(&log);
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", stubs.display());
    let out = run(Command::new("sh")
        .arg(u.control.join(script))
        .args(args)
        .env("PATH", path)
        .env("DPKG_ROOT", root)
        .env("STUB_LOG", &log)
        .env("STUB_USER", if user_exists { "0" } else { "2" })
        .env("STUB_OVERRIDE", if overridden { "0" } else { "1" }));
    let calls = fs::read_to_string(&log).unwrap_or_default();
    format!("{}{}", calls, String::from_utf8_lossy(&out.stdout))
}

/// Makes `dir/next.deb`: the package at `deb` as version 99.0.0-1, with `edit` applied to its
/// unpacked tree first (e.g. a changed default conffile). Also copies `deb` to `dir/first.deb`.
pub fn next_version(deb: &Path, dir: &Path, edit: impl FnOnce(&Path)) {
    let raw = dir.join("raw");
    run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&raw));
    let control = fs::read_to_string(raw.join("DEBIAN/control")).expect("control");
    let version = control.lines().find_map(|l| l.strip_prefix("Version: ")).expect("Version").to_string();
    fs::write(raw.join("DEBIAN/control"), control.replace(&format!("Version: {version}"), "Version: 99.0.0-1"))
        .expect("control");
    edit(&raw);
    run(Command::new("dpkg-deb").args(["-Zgzip", "-b"]).arg(&raw).arg(dir.join("next.deb")));
    fs::copy(deb, dir.join("first.deb")).expect("copy deb");
}

/// The real thing: runs `inner` (a `/bin/sh -eu` script) with dpkg inside a throw-away overlay of
/// this machine's own root file system, in a private mount namespace, so the real system never
/// changes. `dir`'s `first.deb` and `next.deb` are in `/tmp/bg/` there. Needs root, `unshare` and
/// overlayfs (CI has them); without one of them it fails and says what is missing — it never
/// passes without having run. Returns stdout and stderr.
pub fn in_scratch_overlay(dir: &Path, inner: &str) -> String {
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    assert!(
        is_root,
        "the dpkg round trip mounts an overlay in a private mount namespace, which needs root: run the tests \
         as root (CI does; scripts/test installs what else is missing when run as root)"
    );
    let unshare = which("unshare").unwrap_or_else(|| {
        panic!("unshare is not installed: install the Debian package util-linux (scripts/test does as root)")
    });
    let private = Command::new(&unshare).args(["-m", "true"]).output().expect("run unshare -m true");
    assert!(
        private.status.success(),
        "cannot make a private mount namespace (`unshare -m true`: {}): run the tests as root with \
         CAP_SYS_ADMIN (in a container: --privileged, or --cap-add SYS_ADMIN without a seccomp or \
         AppArmor profile that forbids unshare and mount)",
        String::from_utf8_lossy(&private.stderr).trim()
    );
    fs::write(dir.join("inner.sh"), inner).expect("inner script");
    let script = r#"
set -eu
S=$1
mkdir -p "$S/upper" "$S/work" "$S/merged"
if ! mount -t overlay overlay -o "lowerdir=/,upperdir=$S/upper,workdir=$S/work" "$S/merged" 2>"$S/mount.err"; then
    echo "NO-OVERLAY: $(cat "$S/mount.err")"; exit 0
fi
mount --bind /proc "$S/merged/proc"
mount --bind /dev "$S/merged/dev"
mkdir -p "$S/merged/tmp/bg"
cp "$S/first.deb" "$S/next.deb" "$S/inner.sh" "$S/merged/tmp/bg/"
chroot "$S/merged" /bin/sh -eu /tmp/bg/inner.sh
"#;
    let mut cmd = Command::new(unshare);
    english(cmd.args(["-m", "--propagation", "private", "sh", "-c", script, "sh"]).arg(dir));
    let out = cmd.output();
    let out = out.expect("unshare");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if let Some(reason) = text.lines().find_map(|l| l.strip_prefix("NO-OVERLAY: ")) {
        panic!(
            "cannot mount an overlay of / ({reason}): the dpkg round trip needs overlayfs (`modprobe overlay`; \
             `grep overlay /proc/filesystems`) and a temporary directory overlayfs accepts as its upper \
             directory (TMPDIR on ext4, xfs or tmpfs)"
        );
    }
    assert!(out.status.success(), "the round trip failed ({}):\n{text}", out.status);
    text
}

/// The text after `TAG ` on the first line that starts with it.
pub fn tagged<'a>(text: &'a str, tag: &str) -> &'a str {
    let prefix = format!("{tag} ");
    text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).unwrap_or_else(|| panic!("no {tag}:\n{text}"))
}
