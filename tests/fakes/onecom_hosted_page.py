"""A stand-in for One.com's hosted payment page, for end-to-end tests on 127.0.0.1.

GET /pay?reference=…&amount=…&currency=…&return_url=…&notify_url=…&signature=… checks the
redirect signature, sends a Standard-Webhooks-signed `payment.succeeded` (or `payment.failed`
when the query has outcome=failure) to notify_url, and redirects the customer to return_url.

Usage: python onecom_hosted_page.py <whsec_secret>   (prints the port it listens on)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sys
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from standardwebhooks.webhooks import Webhook

SECRET = sys.argv[1]
KEY = base64.b64decode(SECRET.removeprefix("whsec_") + "==")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802
        url = urlsplit(self.path)
        if url.path != "/pay":
            self.send_error(404)
            return
        query = dict(parse_qsl(url.query))
        signature = query.pop("signature", "")
        outcome = query.pop("outcome", "success")
        message = "&".join(f"{k}={query[k]}" for k in sorted(query))
        expected = "v1," + base64.b64encode(hmac.new(KEY, message.encode(), hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(signature, expected):
            self.send_error(400, "bad redirect signature")
            return
        event_type = "payment.succeeded" if outcome == "success" else "payment.failed"
        body = json.dumps({"type": event_type, "data": {
            "session_id": query["reference"], "payment_id": "pay_" + secrets.token_hex(8),
            "amount": query["amount"], "currency": query["currency"]}})
        msg_id = "msg_" + secrets.token_hex(12)
        now = datetime.now(tz=UTC)
        headers = {"Content-Type": "application/json", "webhook-id": msg_id,
                   "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": Webhook(SECRET).sign(msg_id, now, body)}
        request = urllib.request.Request(query["notify_url"], data=body.encode(), headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback in tests
            response.read()
        self.send_response(303)
        self.send_header("Location", query["return_url"])
        self.end_headers()


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
