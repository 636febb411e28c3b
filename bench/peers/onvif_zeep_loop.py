#!/usr/bin/env python3
"""The ONVIF peer of bench scenario 9: a camera monitor on onvif-zeep-async 4.x (Home
Assistant's ONVIF client), probing every camera of a list at a fixed interval.

usage: onvif_zeep_loop.py --cameras FILE --interval S [--user U --password P]

FILE is a JSON list of device service URLs (http://127.0.0.1:PORT/onvif/device_service). Set-up,
once per camera and not part of a probe: `ONVIFCamera` with `adjust_time=True` (the clock
offset, as Home Assistant does), `update_xaddrs` (GetCapabilities), the device and media
services, `GetProfiles` for the first profile's token. A probe, what Home Assistant's client
asks a camera to tell it is alive and watching, 4 requests in sequence:
  GetSystemDateAndTime, GetDeviceInformation, GetStreamUri (first profile), the snapshot
  (GetSnapshotUri is cached by the library after its first call; the picture over HTTP).
Every camera probes once per interval at its own stable phase (i × interval / cameras), so the
probes are spread over the interval as the gateway's are.

Commands, one per line on stdin; one JSON line each on stdout:
  counts    {"probes": done, "requests": done, "errors": failed probes}
EOF on stdin stops it. Prints {"ready": true, "cameras": n, "setup_failed": k} after set-up.
"""

import argparse
import asyncio
import json
import sys
import time
from urllib.parse import urlparse

from onvif import ONVIFCamera

REQUESTS_PER_PROBE = 4
STEP_TIMEOUT = 5.0


class Counts:
    probes = 0
    requests = 0
    errors = 0


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def set_up(url, user, password, sem):
    u = urlparse(url)
    async with sem:
        cam = ONVIFCamera(u.hostname, u.port or 80, user, password, adjust_time=True)
        try:
            await asyncio.wait_for(cam.update_xaddrs(), 20)
            device = await cam.create_devicemgmt_service()
            media = await cam.create_media_service()
            profiles = await asyncio.wait_for(media.GetProfiles(), 10)
            return cam, device, media, profiles[0].token
        except Exception as err:  # noqa: BLE001 - a camera that cannot be set up is counted
            await cam.close()
            return err


async def probe(cam, device, media, token, counts):
    await asyncio.wait_for(device.GetSystemDateAndTime(), STEP_TIMEOUT)
    counts.requests += 1
    await asyncio.wait_for(device.GetDeviceInformation(), STEP_TIMEOUT)
    counts.requests += 1
    await asyncio.wait_for(
        media.GetStreamUri(
            {"StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}, "ProfileToken": token}
        ),
        STEP_TIMEOUT,
    )
    counts.requests += 1
    picture = await asyncio.wait_for(cam.get_snapshot(token), STEP_TIMEOUT)
    counts.requests += 1
    if not picture:
        raise RuntimeError("empty snapshot")


async def camera_loop(i, n, interval, cam, device, media, token, counts, start):
    phase = i * interval / max(n, 1)
    k = 0
    while True:
        due = start + phase + k * interval
        k += 1
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        try:
            await probe(cam, device, media, token, counts)
            counts.probes += 1
        except Exception:  # noqa: BLE001 - a failed probe is a figure, not a crash
            counts.errors += 1


async def commands(counts):
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        if line.strip() == "counts":
            reply({"probes": counts.probes, "requests": counts.requests, "errors": counts.errors})
        else:
            reply({"error": f"unknown command {line.strip()!r}"})


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", required=True)
    ap.add_argument("--interval", type=float, default=10.0)
    ap.add_argument("--user", default="admin")
    ap.add_argument("--password", default="admin")
    a = ap.parse_args()
    with open(a.cameras, encoding="utf-8") as f:
        urls = json.load(f)
    sem = asyncio.Semaphore(16)
    made = await asyncio.gather(*(set_up(u, a.user, a.password, sem) for u in urls))
    cams = [m for m in made if isinstance(m, tuple)]
    failed = [m for m in made if not isinstance(m, tuple)]
    reply({"ready": True, "cameras": len(cams), "setup_failed": len(failed), "first_error": str(failed[0]) if failed else None})
    counts = Counts()
    start = time.monotonic()
    loops = [
        asyncio.create_task(camera_loop(i, len(cams), a.interval, *c, counts, start)) for i, c in enumerate(cams)
    ]
    await commands(counts)
    for t in loops:
        t.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    await asyncio.gather(*(c[0].close() for c in cams), return_exceptions=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        pass
