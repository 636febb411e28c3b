#!/usr/bin/env python3
"""Builds libmodbus's own `unit-test-server` for the interop tests, from Debian's source
package (Debian ships the library but not its test programs).

Usage: modbus_libmodbus_build.py OUT_DIR

Needs: apt-get (with network access to Debian), gcc, libmodbus-dev. Fetches the source
package with a private apt configuration (the system's sources are left untouched),
applies Debian's patches, and compiles tests/unit-test-server.c against the installed
libmodbus. The server normally listens on the fixed port 1502; a forced include lets the
UT_PORT environment variable choose another, so tests can use free ports. Prints the path
of the binary. Idempotent: does nothing when OUT_DIR/unit-test-server exists.
"""
import glob
import os
import subprocess
import sys
import tarfile
import tempfile

SOURCES = """\
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian {suite} main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security {suite}-security main
"""

PORT_OVERRIDE = """\
#include <stdlib.h>
#include <modbus.h>
#define modbus_new_tcp(ip, port) \\
    modbus_new_tcp((ip), getenv("UT_PORT") ? atoi(getenv("UT_PORT")) : (port))
"""


def suite():
    with open("/etc/os-release") as f:
        for line in f:
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    return "bookworm"


def main():
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/peers")
    binary = os.path.join(out, "unit-test-server")
    if os.path.exists(binary):
        print(binary)
        return 0
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        apt = os.path.join(tmp, "apt")
        for d in ("lists/partial", "cache/archives/partial"):
            os.makedirs(os.path.join(apt, d))
        with open(os.path.join(apt, "sources.list"), "w") as f:
            f.write(SOURCES.format(suite=suite()))
        opts = [
            "-o", f"Dir::Etc::SourceList={apt}/sources.list",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={apt}/lists",
            "-o", f"Dir::Cache={apt}/cache",
            "-o", "APT::Sandbox::User=root",
        ]
        subprocess.run(["apt-get", *opts, "update", "-qq"], check=True)
        src = os.path.join(tmp, "src")
        os.makedirs(src)
        subprocess.run(["apt-get", *opts, "source", "--download-only", "-qq", "libmodbus"], check=True, cwd=src)
        orig = glob.glob(os.path.join(src, "libmodbus_*.orig.tar.gz"))[0]
        deb = glob.glob(os.path.join(src, "libmodbus_*.debian.tar.*"))[0]
        with tarfile.open(orig) as t:
            t.extractall(src)
        with tarfile.open(deb) as t:
            t.extractall(src)
        tree = [d for d in glob.glob(os.path.join(src, "libmodbus-*")) if os.path.isdir(d)][0]
        series = os.path.join(src, "debian/patches/series")
        if os.path.exists(series):
            for name in open(series).read().split():
                if not name.startswith("#"):
                    with open(os.path.join(src, "debian/patches", name)) as p:
                        subprocess.run(["patch", "-p1", "-s"], stdin=p, check=True, cwd=tree)
        tests = os.path.join(tree, "tests")
        header = open(os.path.join(tests, "unit-test.h.in")).read()
        header = header.replace("@HAVE_INTTYPES_H@", "1").replace("@HAVE_STDINT_H@", "1")
        with open(os.path.join(tests, "unit-test.h"), "w") as f:
            f.write(header)
        with open(os.path.join(tests, "port_override.h"), "w") as f:
            f.write(PORT_OVERRIDE)
        subprocess.run(
            ["gcc", "-O1", "-I/usr/include/modbus", "-include", "port_override.h",
             "-o", binary, "unit-test-server.c", "-lmodbus"],
            check=True, cwd=tests,
        )
    print(binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
