"""An independent WS-Discovery client (python WSDiscovery, pinned in tests/requirements.txt)
probing for ONVIF cameras, run against device-sim's responder. It probes by multicast on
every non-loopback interface (it skips loopback, so the tests run it inside a network
namespace joined to the simulator's by a veth pair) and prints one JSON object on stdout:

    {"services": [{"epr": ..., "xaddrs": [...], "types": ["NS|local", ...], "scopes": [...]}]}

Exit status 0 when the search ran (whatever it found), 1 on any failure.

usage: wsdiscovery_probe.py [TIMEOUT_SECONDS] [TYPE ...]
TYPE is "nvt" (dn:NetworkVideoTransmitter, the default) or "device" (tds:Device).
"""

import json
import sys

from wsdiscovery import QName
from wsdiscovery.discovery import ThreadedWSDiscovery

TYPES = {
    "nvt": QName("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter"),
    "device": QName("http://www.onvif.org/ver10/device/wsdl", "Device"),
}


def main() -> int:
    timeout = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    types = [TYPES[t] for t in (sys.argv[2:] or ["nvt"])]
    wsd = ThreadedWSDiscovery()
    wsd.start()
    try:
        services = wsd.searchServices(types=types, timeout=timeout)
        out = [
            {
                "epr": s.getEPR(),
                "xaddrs": s.getXAddrs(),
                "types": [f"{t.getNamespace()}|{t.getLocalname()}" for t in s.getTypes()],
                "scopes": [sc.getValue() for sc in s.getScopes()],
            }
            for s in services
        ]
        print(json.dumps({"services": out}), flush=True)
        return 0
    except Exception as err:  # the test prints this; any failure is a failed run
        print(json.dumps({"error": repr(err)}), flush=True)
        return 1
    finally:
        wsd.stop()


if __name__ == "__main__":
    sys.exit(main())
