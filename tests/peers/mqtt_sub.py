#!/usr/bin/env python3
"""An independent head-office subscriber (paho-mqtt): prints every message it receives as one
JSON line on stdout: {"topic", "payload" (text), "retain", "qos"}. Prints {"ready": true}
once subscribed, so the test knows when publishing may begin.

usage: mqtt_sub.py HOST PORT TOPIC [TOPIC...] [--user U --password P] [--cafile F --cert F --key F]
"""
import argparse
import json
import sys

import paho.mqtt.client as mqtt


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("topics", nargs="+")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--cafile")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--client-id", default="")
    ap.add_argument("--qos", type=int, default=1)
    args = ap.parse_args()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id)
    if args.user:
        client.username_pw_set(args.user, args.password)
    if args.cafile:
        client.tls_set(ca_certs=args.cafile, certfile=args.cert, keyfile=args.key)

    pending = {"n": len(args.topics)}

    def on_connect(c, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            print(json.dumps({"error": f"connect failed: {reason_code}"}), flush=True)
            sys.exit(3)
        for t in args.topics:
            c.subscribe(t, qos=args.qos)

    def on_subscribe(c, userdata, mid, reason_codes, properties):
        pending["n"] -= 1
        if pending["n"] == 0:
            print(json.dumps({"ready": True}), flush=True)

    def on_message(c, userdata, msg):
        print(
            json.dumps(
                {
                    "topic": msg.topic,
                    "payload": msg.payload.decode("utf-8", "replace"),
                    "retain": bool(msg.retain),
                    "qos": msg.qos,
                }
            ),
            flush=True,
        )

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(args.host, args.port, keepalive=30)
    try:
        client.loop_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
