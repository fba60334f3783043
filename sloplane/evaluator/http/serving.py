"""The HTTP server `sloplane serve` runs: uvicorn, with deadlines for headers and idle connections.

uvicorn closes an idle keep-alive connection only after a response, and sets no deadline at all
for a request's head: a client that connects and sends half a header line (or nothing) keeps its
connection, and a thousand such clients keep a thousand. `TimelyHttpProtocol` arms a deadline when
a connection opens and whenever a request begins, and cancels it once the head is complete; a head
that takes longer is cut off. Idle keep-alive connections close after `KEEP_ALIVE_SECONDS`, and at
most `MAX_CONNECTIONS` are served at once (more are answered 503 by uvicorn).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_SECONDS = 10.0
"""How long a request's line and headers may take to arrive (a pipeline sends them at once)."""
KEEP_ALIVE_SECONDS = 5.0
"""How long an idle keep-alive connection is kept between requests."""
MAX_CONNECTIONS = 1000
"""Connections and requests in flight at once; more are answered 503 Service Unavailable."""


def timely_protocol(header_timeout: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a deadline for each request head."""

    class TimelyHttpProtocol(HttpToolsProtocol):
        """Closes a connection whose request head does not arrive within `header_timeout`."""

        _head_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._head_deadline = self.loop.call_later(header_timeout, self._head_too_slow)

        def _disarm(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _head_too_slow(self) -> None:
            self._head_deadline = None
            if not self.transport.is_closing():
                self.transport.close()

    return TimelyHttpProtocol


def server_config(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    header_timeout: float = HEADER_TIMEOUT_SECONDS,
    keep_alive: float = KEEP_ALIVE_SECONDS,
) -> uvicorn.Config:
    """The uvicorn configuration `serve` runs with (and tests, through `serve_in_thread`)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=timely_protocol(header_timeout),
        timeout_keep_alive=keep_alive,  # type: ignore[arg-type]  # declared int; used as call_later's seconds
        limit_concurrency=MAX_CONNECTIONS,
        log_level="warning",
        access_log=False,
    )


def run(app: Any, host: str, port: int) -> None:
    """Serve until interrupted (SIGINT, SIGTERM), as `sloplane serve` does."""
    uvicorn.Server(server_config(app, host, port)).run()


@contextmanager
def serve_in_thread(
    app: Any, *, header_timeout: float = HEADER_TIMEOUT_SECONDS, keep_alive: float = KEEP_ALIVE_SECONDS
) -> Iterator[str]:
    """The same server on a free loopback port in a thread; yields its base URL, stops it afterwards."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(server_config(app, port=port, header_timeout=header_timeout, keep_alive=keep_alive))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the HTTP server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
