"""A merchant's endpoint for local development: prints each event it receives, signature checked.

    .venv/bin/python manage.py listen_webhooks --port 9000 --secret whsec_…
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, HTTPServer

from django.core.management.base import BaseCommand
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Command(BaseCommand):
    help = "Listen on 127.0.0.1 for merchant webhooks and print each event, with its signature verified."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=9000)
        parser.add_argument("--secret", required=True, help="the endpoint's whsec_… secret")

    def handle(self, *args, port: int, secret: str, **options):
        verifier = Webhook(secret)
        out = self.stdout

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    event = verifier.verify(body, {k.lower(): v for k, v in self.headers.items()})
                except WebhookVerificationError as exc:
                    out.write(f"refused ({exc}): {body[:200]!r}")
                    self.send_response(400)
                    self.end_headers()
                    return
                data = event.get("data", {})
                out.write(f"{event['type']} {event['id']} verified: {json.dumps(data)[:300]}")
                self.send_response(200)
                self.end_headers()

        out.write(f"listening on http://127.0.0.1:{port}/ (Ctrl-C stops)")
        server = HTTPServer(("127.0.0.1", port), Handler)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
