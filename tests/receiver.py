"""A real HTTP webhook receiver for the tests: verifies Vigil's signatures the way the docs
tell users to (the official Standard Webhooks library, and the legacy header while Vigil
sends it), and can refuse, stall or redirect on demand."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Hit:
    delivery: str
    event: str
    attempt: int
    body: dict
    signed_ok: bool
    status: int
    at: float
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""


@dataclass
class Receiver:
    secret: str
    port: int = 0
    refuse_first: int = 0  # answer 503 to this many requests, then 200
    status: int = 200
    stall_s: float = 0.0  # hold the first request this long before answering
    redirect_to: str | None = None
    hits: list[Hit] = field(default_factory=list)
    started: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> "Receiver":
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                ok = rec.verify(raw, headers)
                with rec._lock:
                    n = len(rec.hits)
                    rec.started += 1
                    first = rec.started == 1
                    if rec.redirect_to:
                        code = 302
                    elif n < rec.refuse_first:
                        code = 503
                    else:
                        code = rec.status
                    stall = rec.stall_s if first else 0.0
                if stall:
                    time.sleep(stall)
                with rec._lock:
                    rec.hits.append(Hit(self.headers.get("Vigil-Delivery", ""), self.headers.get("Vigil-Event", ""),
                                        int(self.headers.get("Vigil-Attempt", "0")), json.loads(raw or b"{}"), ok,
                                        code, time.time(), headers, raw))
                self.send_response(code)
                if code == 302:
                    self.send_header("Location", rec.redirect_to or "/")
                body = b"x" * 100_000 if code == 200 else b"no"  # more than Vigil reads
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def verify(self, raw: bytes, headers: dict[str, str]) -> bool:
        """Standard Webhooks with the official library (a whsec_ secret as is; an older plain
        secret as its bytes, as docs/alerts.md says), and the legacy header if present."""
        key = self.secret if self.secret.startswith("whsec_") else self.secret.encode()
        try:
            Webhook(key).verify(raw, headers)
        except WebhookVerificationError:
            return False
        legacy = headers.get("vigil-signature")
        if legacy is None:
            return True
        parts = dict(p.split("=", 1) for p in legacy.split(",") if "=" in p)
        expected = hmac.new(self.secret.encode(), f"{parts.get('t', '')}.".encode() + raw, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, parts.get("v1", "")) and abs(time.time() - int(parts.get("t", 0))) < 300

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def accepted(self) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if 200 <= h.status < 300]
