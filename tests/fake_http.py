"""A tiny local HTTP server whose answers a test scripts (status, body, delay), for fault injection."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Script:
    """Replies in order; the last one repeats. Requests are kept for assertions."""

    replies: list[Reply]
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    def next(self) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def answer(self, method: str, path: str, body: bytes) -> Reply:
        """The reply to one request; subclasses may shape it from the request (the default: `next`)."""
        return self.next()


@dataclass
class EventReceiver(Script):
    """PagerDuty's Events API and webhooks as a receiver sees them: accepted events are kept by path.

    A 202 scripted without a body answers as PagerDuty does, echoing the event's dedup key.
    """

    replies: list[Reply] = field(default_factory=lambda: [Reply(202)])
    accepted: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, path: str, body: bytes) -> Reply:
        with self.lock:
            reply = self.next()
            event = json.loads(body) if body else {}
            if 200 <= reply.status < 300:
                self.accepted.append((path, event))
        if reply.status == 202 and not reply.body:
            answer = {"status": "success", "message": "Event processed", "dedup_key": event.get("dedup_key")}
            return Reply(202, json.dumps(answer).encode(), reply.delay, {"Content-Type": "application/json"})
        return reply

    def events(self, path: str) -> list[dict[str, Any]]:
        """Accepted bodies posted to `path`, in arrival order."""
        with self.lock:
            return [event for where, event in self.accepted if where == path]


@contextmanager
def serve(script: Script, port: int = 0) -> Iterator[str]:
    """Run the scripted server on 127.0.0.1 (on `port`, or any free one); yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            script.requests.append((self.command, self.path, dict(self.headers), body))
            reply = script.answer(self.command, self.path, body)
            time.sleep(reply.delay)
            try:
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up first (a timeout being tested): nothing to answer

        do_GET = do_POST = do_PATCH = _answer  # noqa: N815

        def log_message(self, *_: object) -> None:
            return None

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the default 5 drops connects when a gate asks 8 queries at once

    server = Server(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
