#!/usr/bin/env python3
"""The receivers of head office's notifications, as the real services check them: a WeCom
group robot, a DingTalk robot with signing, a signed webhook and an SMS gateway, on one
loopback HTTP server. Each request is checked the way the service would (the URL's key or
token, the JSON shape, DingTalk's signature, the webhook's HMAC) and printed as a JSON line
on stdout: {"channel": ..., "ok": true|false, "why": ..., "query": ..., "headers": ..., "body": ...}.

    notify_receiver.py PORT WECOM_KEY DINGTALK_TOKEN DINGTALK_SECRET WEBHOOK_SECRET SMS_TOKEN
"""

import base64
import hashlib
import hmac
import json
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT, WECOM_KEY, DT_TOKEN, DT_SECRET, HOOK_SECRET, SMS_TOKEN = sys.argv[1:7]


def say(**kw):
    print(json.dumps(kw, ensure_ascii=False), flush=True)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        raw = self.rfile.read(int(self.headers.get("content-length", "0")))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        rec = {"query": query, "body": body, "headers": {k.lower(): v for k, v in self.headers.items()}}
        if url.path == "/wecom/send":
            # WeCom: POST cgi-bin/webhook/send?key=KEY, {"msgtype": "markdown", "markdown": {"content": ...}}.
            if query.get("key") != WECOM_KEY:
                say(channel="wecom", ok=False, why="invalid webhook url (key)", **rec)
                return self.answer(200, {"errcode": 93000, "errmsg": "invalid webhook url"})
            if not (isinstance(body, dict) and body.get("msgtype") == "markdown"
                    and isinstance(body.get("markdown", {}).get("content"), str) and body["markdown"]["content"]):
                say(channel="wecom", ok=False, why="bad message shape", **rec)
                return self.answer(200, {"errcode": 40008, "errmsg": "invalid message type"})
            say(channel="wecom", ok=True, **rec)
            return self.answer(200, {"errcode": 0, "errmsg": "ok"})
        if url.path == "/dingtalk/send":
            # DingTalk with signing: ?access_token=T&timestamp=MS&sign=urlencode(base64(HMAC-SHA256(secret, "MS\nsecret"))).
            ts = query.get("timestamp", "")
            want = base64.b64encode(hmac.new(DT_SECRET.encode(), f"{ts}\n{DT_SECRET}".encode(), hashlib.sha256).digest()).decode()
            fresh = ts.isdigit() and abs(int(ts) - time.time() * 1000) < 3600 * 1000
            if query.get("access_token") != DT_TOKEN or query.get("sign") != want or not fresh:
                say(channel="dingtalk", ok=False, why="sign not match or token", **rec)
                return self.answer(200, {"errcode": 310000, "errmsg": "sign not match"})
            md = body.get("markdown", {}) if isinstance(body, dict) else {}
            if body.get("msgtype") != "markdown" or not md.get("title") or not md.get("text"):
                say(channel="dingtalk", ok=False, why="bad message shape", **rec)
                return self.answer(200, {"errcode": 40035, "errmsg": "missing parameter"})
            say(channel="dingtalk", ok=True, **rec)
            return self.answer(200, {"errcode": 0, "errmsg": "ok"})
        if url.path == "/hook":
            ts = self.headers.get("x-hq-timestamp", "")
            sig = self.headers.get("x-hq-signature", "")
            want = "sha256=" + hmac.new(HOOK_SECRET.encode(), ts.encode() + b"." + raw, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(sig, want):
                say(channel="webhook", ok=False, why="bad signature", **rec)
                return self.answer(401, {"error": "bad signature"})
            say(channel="webhook", ok=True, **rec)
            return self.answer(200, {"ok": True})
        if url.path == "/sms":
            if self.headers.get("authorization") != f"Bearer {SMS_TOKEN}" or not (
                    isinstance(body, dict) and body.get("to") and body.get("text")):
                say(channel="sms", ok=False, why="token or shape", **rec)
                return self.answer(401, {"error": "refused"})
            say(channel="sms", ok=True, **rec)
            return self.answer(200, {"id": str(time.time())})
        say(channel="?", ok=False, why="unknown path " + url.path, **rec)
        return self.answer(404, {"error": "no such path"})


server = HTTPServer(("127.0.0.1", int(PORT)), Handler)
say(ready=True)
server.serve_forever()
