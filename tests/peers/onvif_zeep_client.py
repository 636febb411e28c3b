"""An independent ONVIF client (onvif-zeep-async, the client Home Assistant uses) run against
a camera: reads the device information, profiles, stream URI and snapshot URI, and prints
one JSON object on stdout. Exit status 0 on success, 2 when the camera refused the
credentials, 1 on any other failure.

usage: onvif_zeep_client.py HOST PORT USER PASSWORD
"""

import asyncio
import json
import sys

from onvif import ONVIFCamera
from onvif.exceptions import ONVIFError
import zeep.exceptions


def is_auth_error(err: Exception) -> bool:
    text = str(err).lower()
    return any(k in text for k in ("notauthorized", "not authorized", "unauthorized", "401"))


async def main() -> int:
    host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    cam = ONVIFCamera(host, port, user, password, adjust_time=True)
    try:
        await asyncio.wait_for(cam.update_xaddrs(), 20)
        devicemgmt = await cam.create_devicemgmt_service()
        info = await asyncio.wait_for(devicemgmt.GetDeviceInformation(), 10)
        media = await cam.create_media_service()
        profiles = await asyncio.wait_for(media.GetProfiles(), 10)
        token = profiles[0].token
        stream = await asyncio.wait_for(
            media.GetStreamUri(
                {
                    "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                    "ProfileToken": token,
                }
            ),
            10,
        )
        snapshot = await asyncio.wait_for(media.GetSnapshotUri({"ProfileToken": token}), 10)
        print(
            json.dumps(
                {
                    "manufacturer": info.Manufacturer,
                    "model": info.Model,
                    "serial": info.SerialNumber,
                    "profiles": [p.token for p in profiles],
                    "stream_uri": stream.Uri,
                    "snapshot_uri": snapshot.Uri,
                    "xaddrs": sorted(cam.xaddrs.keys()),
                }
            ),
            flush=True,
        )
        return 0
    except (ONVIFError, zeep.exceptions.Fault, zeep.exceptions.TransportError) as err:
        print(json.dumps({"error": str(err), "auth": is_auth_error(err)}), flush=True)
        return 2 if is_auth_error(err) else 1
    except Exception as err:  # noqa: BLE001 - report anything as a failed run
        print(json.dumps({"error": f"{type(err).__name__}: {err}", "auth": is_auth_error(err)}), flush=True)
        return 2 if is_auth_error(err) else 1
    finally:
        await cam.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
