"""An independent ONVIF client (onvif-zeep-async, the client Home Assistant uses) run against
a camera along Home Assistant's onvif setup path: the clock (adjust_time), the services
(GetServices, GetCapabilities), the device information, the network interfaces (the MAC is
Home Assistant's unique id), the profiles (H264 ones), media and events
GetServiceCapabilities (snapshot and pull-point support), the stream and snapshot URIs, a
snapshot itself (HTTP Digest) and a pull-point subscription with one PullMessages. Prints one
JSON object on stdout. Exit status 0 on success, 2 when the camera refused the credentials,
1 on any other failure.

usage: onvif_zeep_client.py HOST PORT USER PASSWORD
"""

import asyncio
import datetime as dt
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
        # Home Assistant's setup: the MAC of the first enabled interface is the unique id.
        interfaces = await asyncio.wait_for(devicemgmt.GetNetworkInterfaces(), 10)
        macs = [i.Info.HwAddress for i in interfaces if i.Enabled and i.Info is not None]
        media_caps = await asyncio.wait_for(media.GetServiceCapabilities(), 10)
        events = await cam.create_events_service()
        events_caps = await asyncio.wait_for(events.GetServiceCapabilities(), 10)
        caps = await asyncio.wait_for(cam.get_capabilities(), 10)
        picture = await asyncio.wait_for(cam.get_snapshot(token), 10)
        manager = await asyncio.wait_for(cam.create_pullpoint_manager(dt.timedelta(seconds=60), lambda: None), 10)
        pullpoint = manager.get_service()
        pulled = await asyncio.wait_for(pullpoint.PullMessages({"Timeout": dt.timedelta(seconds=1), "MessageLimit": 10}), 10)
        topics = sorted({m.Topic._value_1 for m in (pulled.NotificationMessage or [])})
        await asyncio.wait_for(manager.shutdown(), 10)
        print(
            json.dumps(
                {
                    "manufacturer": info.Manufacturer,
                    "model": info.Model,
                    "serial": info.SerialNumber,
                    "profiles": [p.token for p in profiles],
                    "encodings": [p.VideoEncoderConfiguration.Encoding for p in profiles],
                    "stream_uri": stream.Uri,
                    "snapshot_uri": snapshot.Uri,
                    "xaddrs": sorted(cam.xaddrs.keys()),
                    "macs": macs,
                    "media_snapshot_uri": bool(media_caps.SnapshotUri),
                    "media_rtp_rtsp_tcp": bool(media_caps.StreamingCapabilities.RTP_RTSP_TCP),
                    "events_pull_point": bool(events_caps.WSPullPointSupport),
                    "capability_categories": sorted(k for k in caps if caps[k] is not None) if caps else [],
                    "snapshot_bytes": len(picture or b""),
                    "snapshot_is_jpeg": bool(picture) and picture[:2] == b"\xff\xd8",
                    "pulled_topics": topics,
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
