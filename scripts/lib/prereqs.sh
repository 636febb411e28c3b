# shellcheck shell=bash
# Prerequisites of the tests and the demo: Debian packages (mosquitto, mosquitto-clients,
# mbpoll, openssl, postgresql, a Python that can make virtualenvs; chromium and chromium-driver
# for the browser tests, with fonts-wqy-zenhei for their Chinese screenshots; libmodbus-dev, gcc and patch for libmodbus's test server;
# systemd, util-linux and mount for the packaging tests, iproute2 for the discovery tests in
# network namespaces, git for the tidy test; gcc-aarch64-linux-gnu and libc6-dev-arm64-cross to
# cross-compile the arm64 gateway package, qemu-user to run it), the Python
# peers in a virtualenv, the npm peers, libmodbus's unit-test-server built into target/peers,
# cargo-deb (for scripts/package), cargo-machete (unused dependencies) and the rustup target
# aarch64-unknown-linux-gnu.
# Sourced by scripts/test (and by any script that needs the same peers); every step is
# skipped when it is already satisfied, so a second run costs well under a second.
#
#   source scripts/lib/prereqs.sh
#   bsg_prereqs            # installs what is missing, or exits 2 saying what to install
#
# Installs only as root, or with CI=true (through `sudo -n` when not root). Anywhere else it
# prints the exact commands and exits 2; it never prompts and never reads stdin.
#
# Environment:
#   BSG_ROOT         the workspace root (default: two levels above this file)
#   BSG_VENV         the virtualenv (default: $BSG_ROOT/.venv)
#   BSG_VENV_PYTHON  the Python that creates it (default: python3)
#   BSG_CHROMIUM     the Chromium the browser tests drive (default: /usr/bin/chromium)
#   BSG_CHROMEDRIVER its WebDriver server (default: /usr/bin/chromedriver)
# Exports BSG_PYTHON=$BSG_VENV/bin/python, which the Rust test harness uses, and
# BSG_LIBMODBUS_SERVER (the unit-test-server binary) when it could be built.

BSG_ROOT=${BSG_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BSG_VENV=${BSG_VENV:-$BSG_ROOT/.venv}
BSG_VENV_PYTHON=${BSG_VENV_PYTHON:-python3}
BSG_REQUIREMENTS=$BSG_ROOT/tests/requirements.txt
BSG_NODE_PEERS=$BSG_ROOT/tests/peers
BSG_LIBMODBUS_BUILD=$BSG_ROOT/tests/peers/modbus_libmodbus_build.py
# The modules the Python peers import: a stamped venv that cannot import them is rebuilt.
BSG_PY_MODULES=(paho.mqtt.client pymodbus onvif wsdiscovery jsonschema rfc3339_validator rfc3986_validator aiosmtpd)

bsg_info() { printf '  %s\n' "$*"; }
bsg_warn() { printf '  warning: %s\n' "$*" >&2; }
bsg_err() { printf 'error: %s\n' "$*" >&2; }

# Whether we may install system packages, and how: sets BSG_SUDO to "" (root) or "sudo -n".
bsg_can_install() {
    BSG_SUDO=""
    if [[ $(id -u) -eq 0 ]]; then
        return 0
    fi
    if [[ ${CI:-} == true ]] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        BSG_SUDO="sudo -n"
        return 0
    fi
    return 1
}

bsg_have() { command -v "$1" >/dev/null 2>&1; }

# mosquitto lives in /usr/sbin, which a non-root PATH often lacks.
bsg_have_sbin() {
    bsg_have "$1" || [[ -x /usr/sbin/$1 || -x /usr/local/sbin/$1 || -x /sbin/$1 ]]
}

# Prints the Debian packages whose commands are missing, one per line.
bsg_missing_debs() {
    bsg_have_sbin mosquitto || echo mosquitto
    { bsg_have mosquitto_pub && bsg_have mosquitto_sub; } || echo mosquitto-clients
    bsg_have mbpoll || echo mbpoll
    bsg_have openssl || echo openssl
    # Head office's PostgreSQL backend is tested against a real server that each test starts
    # in a temporary directory (tests/src/pg.rs): the server binaries and createdb.
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || echo postgresql
    compgen -G '/usr/lib/postgresql/*/bin/createdb' >/dev/null || echo postgresql-client
    # The browser tests drive a headless Chromium through chromedriver (tests/src/browser.rs),
    # at these paths unless BSG_CHROMIUM / BSG_CHROMEDRIVER point elsewhere.
    [[ -x ${BSG_CHROMIUM:-/usr/bin/chromium} ]] || echo chromium
    [[ -x ${BSG_CHROMEDRIVER:-/usr/bin/chromedriver} ]] || echo chromium-driver
    # A Chinese font, so that the console's zh-CN screenshots show characters, not boxes.
    compgen -G '/usr/share/fonts/truetype/wqy/wqy-zenhei.tt*' >/dev/null || echo fonts-wqy-zenhei
    # The packaging tests (tests/tests/packaging/packaging.rs) verify the systemd unit with systemd-analyze
    # and run dpkg in a scratch overlay of / inside a private mount namespace (unshare, mount).
    bsg_have systemd-analyze || echo systemd
    bsg_have unshare || echo util-linux
    bsg_have_sbin mount || echo mount
    # The multicast discovery tests build network namespaces and a veth pair with `ip`
    # (tests/tests/gateway/discovery_netns.rs); ip lives in /usr/sbin.
    bsg_have_sbin ip || echo iproute2
    # The packaging tests check every maintainer script with shellcheck.
    bsg_have shellcheck || echo shellcheck
    # The tidy test (tests/tests/tidy.rs) lists the repository's files with `git ls-files`.
    bsg_have git || echo git
    # The arm64 gateway package (scripts/package --arch arm64): Debian's cross linker and the
    # AArch64 C library to link against (also the sysroot qemu loads it from), and qemu-user's
    # qemu-aarch64 to run it in tests/tests/packaging/packaging_arm64.rs (qemu-user-static's binary is
    # qemu-aarch64-static on Debian 12).
    bsg_have aarch64-linux-gnu-gcc || echo gcc-aarch64-linux-gnu
    [[ -f /usr/aarch64-linux-gnu/lib/crt1.o && -f /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]] ||
        echo libc6-dev-arm64-cross
    bsg_have qemu-aarch64 || echo qemu-user
    if ! bsg_have "$BSG_VENV_PYTHON"; then
        echo python3
        echo python3-venv
    elif ! "$BSG_VENV_PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        # Debian's python3 ships venv without ensurepip until python3-venv is installed.
        echo python3-venv
    fi
    if [[ -f $BSG_NODE_PEERS/package.json ]] && ! bsg_have npm; then
        echo npm
    fi
    # libmodbus's own test server is compiled from Debian's source package (Debian ships the
    # library, not its test programs): tests/peers/modbus_libmodbus_build.py.
    if [[ -f $BSG_LIBMODBUS_BUILD ]]; then
        [[ -f /usr/include/modbus/modbus.h ]] || echo libmodbus-dev
        bsg_have gcc || echo gcc
        bsg_have patch || echo patch
    fi
    return 0
}

BSG_APT_UPDATED=""
bsg_apt() {
    # A concurrent apt (another test run, unattended-upgrades) holds the lock: wait for it.
    # shellcheck disable=SC2086  # BSG_SUDO is empty or "sudo -n"
    DEBIAN_FRONTEND=noninteractive $BSG_SUDO apt-get -q -o DPkg::Lock::Timeout=300 "$@" </dev/null
}

bsg_ensure_debs() {
    local missing
    mapfile -t missing < <(bsg_missing_debs)
    if [[ ${#missing[@]} -eq 0 ]]; then
        bsg_info "system packages: all present"
        return 0
    fi
    if ! bsg_have apt-get; then
        bsg_err "missing: ${missing[*]}; this is not a Debian-like system, install them with your package manager"
        return 2
    fi
    if ! bsg_can_install; then
        bsg_err "missing system packages: ${missing[*]}"
        cat >&2 <<EOF
scripts/test installs them only as root, or with CI=true (then through passwordless sudo);
it never asks for a password.
Run:
    sudo apt-get update
    sudo apt-get install -y --no-install-recommends ${missing[*]}
then run scripts/test again.
EOF
        return 2
    fi
    bsg_info "installing: ${missing[*]}"
    if [[ -z $BSG_APT_UPDATED ]]; then
        bsg_apt update || return 1
        BSG_APT_UPDATED=1
    fi
    bsg_apt install -y --no-install-recommends "${missing[@]}" || return 1
    mapfile -t missing < <(bsg_missing_debs)
    if [[ ${#missing[@]} -ne 0 ]]; then
        bsg_err "still missing after apt-get install: ${missing[*]}"
        return 1
    fi
}

# The SHA-256 of the files that exist among "$@", on one line.
bsg_sha256() {
    local f out=""
    for f in "$@"; do
        [[ -f $f ]] && out+="$(sha256sum "$f" | cut -d' ' -f1) "
    done
    printf '%s\n' "${out% }"
}

# Runs "$@" holding an exclusive lock on $1-file, so that two test runs in one tree do not
# pip-install into the same venv at once. Without flock it just runs.
bsg_locked() {
    local lock=$1
    shift
    if bsg_have flock; then
        (
            flock -w 600 9 || { bsg_err "waited 600 s for $lock"; exit 1; }
            "$@"
        ) 9>"$lock"
    else
        "$@"
    fi
}

bsg_venv_stamp() {
    printf '%s %s\n' "$(bsg_sha256 "$BSG_REQUIREMENTS")" "$("$BSG_VENV/bin/python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)"
}

bsg_venv_ok() {
    local stamp=$BSG_VENV/.bsg-requirements.stamp
    [[ -x $BSG_VENV/bin/python && -f $stamp ]] || return 1
    [[ $(cat "$stamp") == "$(bsg_venv_stamp)" ]] || return 1
    # find_spec: present and importable in principle, without paying for the imports.
    "$BSG_VENV/bin/python" - "${BSG_PY_MODULES[@]}" >/dev/null 2>&1 <<'PY'
import importlib.util, sys
sys.exit(any(importlib.util.find_spec(m) is None for m in sys.argv[1:]))
PY
}

bsg_venv_install() {
    bsg_venv_ok && return 0 # another run did it while we waited for the lock
    if [[ -e $BSG_VENV ]] && ! "$BSG_VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        bsg_info "the virtualenv at $BSG_VENV is broken (its Python is gone): recreating it"
        rm -rf "$BSG_VENV"
    fi
    if [[ ! -x $BSG_VENV/bin/python ]]; then
        bsg_info "creating the virtualenv: $BSG_VENV_PYTHON -m venv $BSG_VENV"
        "$BSG_VENV_PYTHON" -m venv "$BSG_VENV" || return 1
    fi
    bsg_info "pip install -r tests/requirements.txt"
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
        "$BSG_VENV/bin/python" -m pip install -q -r "$BSG_REQUIREMENTS" </dev/null || return 1
    bsg_venv_stamp >"$BSG_VENV/.bsg-requirements.stamp"
}

bsg_ensure_venv() {
    if bsg_venv_ok; then
        bsg_info "python peers: $BSG_VENV is up to date with tests/requirements.txt"
        return 0
    fi
    # The lock lives in target/ (ignored by git), not in the venv, which may be recreated.
    mkdir -p "$BSG_ROOT/target" || return 1
    bsg_locked "$BSG_ROOT/target/.bsg-venv.lock" bsg_venv_install || return 1
    bsg_venv_ok || { bsg_err "the virtualenv at $BSG_VENV cannot import: ${BSG_PY_MODULES[*]}"; return 1; }
}

bsg_ensure_node_peers() {
    local pkg=$BSG_NODE_PEERS/package.json
    if [[ ! -f $pkg ]]; then
        bsg_info "node peers: none (no tests/peers/package.json)"
        return 0
    fi
    local lock=$BSG_NODE_PEERS/package-lock.json stamp=$BSG_NODE_PEERS/node_modules/.bsg-stamp want
    want=$(bsg_sha256 "$pkg" "$lock")
    if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
        bsg_info "node peers: tests/peers/node_modules is up to date"
        return 0
    fi
    if [[ -f $lock ]]; then
        bsg_info "npm ci (tests/peers)"
        (cd "$BSG_NODE_PEERS" && npm ci --no-audit --no-fund </dev/null) || return 1
    else
        bsg_info "npm install (tests/peers)"
        (cd "$BSG_NODE_PEERS" && npm install --no-audit --no-fund </dev/null) || return 1
        want=$(bsg_sha256 "$pkg" "$lock") # npm install wrote the lock
    fi
    printf '%s\n' "$want" >"$stamp"
}

# Builds libmodbus's unit-test-server into target/peers (once; the builder does nothing when
# the binary exists) and exports BSG_LIBMODBUS_SERVER. A failure is a warning: the tests that
# need the server say so themselves.
bsg_build_native_peers() {
    [[ -f $BSG_LIBMODBUS_BUILD ]] || return 0
    local out=$BSG_ROOT/target/peers path
    if [[ -x $out/unit-test-server ]]; then
        bsg_info "libmodbus unit-test-server: $out/unit-test-server (built earlier)"
    else
        bsg_info "building libmodbus's unit-test-server (tests/peers/modbus_libmodbus_build.py)"
    fi
    if path=$("$BSG_VENV/bin/python" "$BSG_LIBMODBUS_BUILD" "$out" </dev/null | tail -n 1) && [[ -x $path ]]; then
        export BSG_LIBMODBUS_SERVER=$path
    else
        bsg_warn "could not build libmodbus's unit-test-server; the libmodbus interop tests will fail"
    fi
}

# A cargo subcommand installed with `cargo install NAME --version VERSION --locked` when missing:
# bsg_ensure_cargo_tool NAME SUBCOMMAND VERSION WHAT-IT-IS-FOR. `cargo SUBCOMMAND --version`
# working is the cache, so a second run costs nothing.
bsg_ensure_cargo_tool() {
    local name=$1 sub=$2 version=$3 why=$4
    bsg_have cargo || return 0 # scripts/test reports a missing cargo itself
    if cargo "$sub" --version >/dev/null 2>&1 </dev/null; then
        bsg_info "$name: $(cargo "$sub" --version 2>/dev/null </dev/null | head -n 1)"
        return 0
    fi
    local cmd=(cargo install "$name" --version "$version" --locked)
    if ! bsg_can_install; then
        bsg_err "missing: $name ($why)"
        printf 'Run:\n    %s\nthen run scripts/test again.\n' "${cmd[*]}" >&2
        return 2
    fi
    bsg_info "installing $name $version: ${cmd[*]}"
    "${cmd[@]}" </dev/null || return 1
}

# cargo-deb, which scripts/package uses to build the .debs that tests/tests/packaging/ check.
# Pinned: a new cargo-deb may lay the packages out differently. Compiling it takes a minute or
# two, once.
BSG_CARGO_DEB_VERSION=3.8.0
bsg_ensure_cargo_deb() {
    bsg_ensure_cargo_tool cargo-deb deb "$BSG_CARGO_DEB_VERSION" "builds the .debs for the packaging tests"
}

# cargo-machete, which scripts/test runs after clippy so that a dependency nothing uses fails the
# run (a Cargo.toml's [package.metadata.cargo-machete] names the few it cannot see). Pinned, as
# cargo-deb is; compiling it takes about a minute, once.
BSG_CARGO_MACHETE_VERSION=0.9.2
bsg_ensure_cargo_machete() {
    bsg_ensure_cargo_tool cargo-machete machete "$BSG_CARGO_MACHETE_VERSION" "finds unused dependencies"
}

# The Rust standard library for the arm64 gateway package (scripts/package --arch arm64). Only
# with rustup: a toolchain from elsewhere must bring the target itself.
BSG_ARM64_TARGET=aarch64-unknown-linux-gnu
bsg_ensure_rust_target() {
    bsg_have rustup || return 0
    if rustup target list --installed 2>/dev/null </dev/null | grep -qx "$BSG_ARM64_TARGET"; then
        bsg_info "rust target: $BSG_ARM64_TARGET"
        return 0
    fi
    if ! bsg_can_install; then
        bsg_err "missing: the Rust target $BSG_ARM64_TARGET (builds the arm64 gateway package)"
        printf 'Run:\n    rustup target add %s\nthen run scripts/test again.\n' "$BSG_ARM64_TARGET" >&2
        return 2
    fi
    bsg_info "rustup target add $BSG_ARM64_TARGET"
    rustup target add "$BSG_ARM64_TARGET" </dev/null || return 1
}

# All of the above. Returns 2 when something is missing that we may not install.
bsg_prereqs() {
    bsg_ensure_debs || return $?
    bsg_ensure_venv || return 1
    bsg_ensure_node_peers || return 1
    bsg_ensure_cargo_deb || return $?
    bsg_ensure_cargo_machete || return $?
    bsg_ensure_rust_target || return $?
    export BSG_PYTHON=$BSG_VENV/bin/python
    bsg_build_native_peers
    bsg_info "BSG_PYTHON=$BSG_PYTHON"
}
