"""The server around the app: slow clients closed, requests admitted as memory allows.

``dlrn serve`` runs uvicorn with :func:`server_config`:

* a client has ``HEADER_SECONDS`` from connecting (or from its previous answer) to send a
  request's headers, else the connection is closed (:class:`TimedH11Protocol`: uvicorn's
  own ``timeout_keep_alive`` only closes idle connections between requests, and h11 has
  no header timeout, so half-open connections would stay open for ever);
* an idle keep-alive connection is closed after ``KEEP_ALIVE_SECONDS``;
* at most ``MAX_CONNECTIONS`` connections are served at once (503 beyond);
* the body's own timeouts and size limit are the app's (``dlrn.serve.app``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
MAX_CONNECTIONS = 64
MAX_HEADER_BYTES = 16 * 1024  # request line and headers (h11's default is 16 KiB too)
_REQUEST_OVERHEAD = 256 * 1024 * 1024  # form parsing, buffers, one answer's pictures


class TimedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for the request's headers."""

    header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers arrived: the app's turn
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()  # the next request's headers, on the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self.header_timer = self.loop.call_later(HEADER_SECONDS, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_too_slow(self) -> None:
        self.header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class Admission:
    """At most ``slots`` requests past this point at once; the others wait their turn.

    A counter under a thread lock, polled: unlike an asyncio semaphore it is bound to no
    event loop (the test client runs each request in a loop of its own).
    """

    def __init__(self, slots: int) -> None:
        self.slots, self.active, self._lock = slots, 0, threading.Lock()

    def _enter(self) -> bool:
        with self._lock:
            if self.active >= self.slots:
                return False
            self.active += 1
            return True

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        while not self._enter():
            await asyncio.sleep(0.02)
        try:
            yield
        finally:
            with self._lock:
                self.active -= 1


def admission_slots(max_upload_bytes: int) -> int:
    """How many requests may hold their uploads in memory at once: what the available
    memory holds (two files and the request's overhead each), at least 1, at most twice
    the CPUs (the work itself runs one request at a time)."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume 4 GiB
        available = 4 * 1024**3
    fits = available // (2 * max_upload_bytes + _REQUEST_OVERHEAD)
    return int(max(1, min(2 * (os.cpu_count() or 1), fits)))


def server_config(app, host: str, port: int, *, log_level: str = "warning",
                  access_log: bool = False):
    """uvicorn's settings for ``dlrn serve`` (and the tests that start it)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level=log_level,
                          access_log=access_log, server_header=False, http=TimedH11Protocol,
                          timeout_keep_alive=KEEP_ALIVE_SECONDS,
                          limit_concurrency=MAX_CONNECTIONS,
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES)
