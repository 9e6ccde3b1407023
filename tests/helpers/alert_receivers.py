"""Real receivers on 127.0.0.1 for the alert tests: an SMTP server (aiosmtpd) and an HTTP webhook
receiver (the standard library's http.server in a thread). Each can be told to refuse, to play a
channel that is down."""

from __future__ import annotations

import json
import socket
import threading
from contextlib import contextmanager
from email import message_from_bytes
from email.policy import default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpInbox:
    """What the SMTP server received: (envelope recipients, parsed message) per mail."""

    def __init__(self) -> None:
        self.mails: list = []
        self.refusing = False

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        if self.refusing:
            return "554 5.0.0 refused by the test"
        self.mails.append(
            (list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=default))
        )
        return "250 OK"

    def to(self, address: str) -> list:
        return [mail for rcpts, mail in self.mails if address in rcpts]


@contextmanager
def smtp_server():
    """(port, inbox) of a plain SMTP server on 127.0.0.1 (no TLS: the tests send without it)."""
    from aiosmtpd.controller import Controller

    inbox = SmtpInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


class WebhookInbox:
    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        self.failing = False


@contextmanager
def webhook_receiver():
    """(base URL host:port, inbox) of an HTTP server taking JSON POSTs; 500 while ``failing``."""
    inbox = WebhookInbox()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's hook name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if inbox.failing:
                self.send_response(500)
                self.end_headers()
                return
            inbox.posts.append((self.path, json.loads(body or b"{}")))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", inbox
    finally:
        server.shutdown()
        server.server_close()
