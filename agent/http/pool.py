"""An HTTP server with a bounded number of threads, whatever the number of connections.

``PooledHTTPServer`` accepts connections on its serving thread and parks each one in a waiting room (one
selector on one thread) until its first bytes arrive: a connection that sends nothing (a slow-loris
client, a forgotten keep-alive) costs a file descriptor, never a thread, and is closed after ``idle``
seconds, or sooner when more than ``max_waiting`` connections wait (the oldest go first). A connection
with bytes to read goes to one of ``workers`` threads; up to ``backlog`` more queue for them, and past
that a connection is answered 503 at once. So a flood of connections neither grows the threads nor stops
``/healthz`` from answering: a health check sends its request at once and gets the next free worker.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from http.server import HTTPServer
from typing import Any

import structlog

log = structlog.get_logger()

_BUSY_BODY = b'{"error": "too many requests at once; retry"}\n'
BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)


class PooledHTTPServer(HTTPServer):
    """See the module docstring. ``stats()`` says how many connections wait, queue and run."""

    request_queue_size = 128  # the listen backlog: the serving thread accepts quickly

    def __init__(
        self,
        address: tuple[str, int],
        handler: Any,
        workers: int = 8,
        backlog: int = 64,
        max_waiting: int = 512,
        idle: float = 10.0,
    ) -> None:
        self.workers = workers
        self.backlog = backlog
        self.max_waiting = max_waiting
        self.idle = idle
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http")
        self._queued = 0  # handed to the pool and not finished yet
        self._count = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._waiting: OrderedDict[socket.socket, tuple[Any, float]] = OrderedDict()  # conn -> (addr, since)
        self._arrivals: list[tuple[socket.socket, Any]] = []
        self._arrived = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._closing = False
        self._room = threading.Thread(target=self._wait_room, name="http-waiting", daemon=True)
        super().__init__(address, handler)  # binds: may raise OSError (then server_close runs)
        self._room.start()

    def stats(self) -> dict[str, int]:
        return {"waiting": len(self._waiting), "queued": self._queued, "threads": len(self._pool._threads)}

    # -- the serving thread hands each accepted connection to the waiting room ----------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._arrived:
            self._arrivals.append((request, client_address))
        self._wake()

    def _wake(self) -> None:
        # OSError: the wake-up pipe is full (the room will read it) or closed (shutting down)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # -- the waiting room ---------------------------------------------------------------------------------

    def _wait_room(self) -> None:
        while not self._closing:
            for key, _ in self._selector.select(timeout=1.0):
                if key.fileobj is self._wake_r:
                    self._drain_wake()
                    continue
                conn = key.fileobj
                addr, _ = self._waiting.pop(conn)  # type: ignore[call-overload]
                self._selector.unregister(conn)
                self._dispatch(conn, addr)  # type: ignore[arg-type]
            self._admit()
            self._expire()
        for conn in list(self._waiting):
            self._drop(conn)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _admit(self) -> None:
        with self._arrived:
            arrivals, self._arrivals = self._arrivals, []
        now = time.monotonic()
        for conn, addr in arrivals:
            if self._closing:
                self.shutdown_request(conn)
                continue
            while len(self._waiting) >= self.max_waiting:
                self._drop(next(iter(self._waiting)))  # the connection that has waited longest
            self._waiting[conn] = (addr, now)
            self._selector.register(conn, selectors.EVENT_READ)

    def _expire(self) -> None:
        limit = time.monotonic() - self.idle
        while self._waiting:
            conn, (_, since) = next(iter(self._waiting.items()))
            if since > limit:
                break
            self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        self._waiting.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn)
        self.shutdown_request(conn)

    # -- the workers ----------------------------------------------------------------------------------------

    def _dispatch(self, conn: socket.socket, addr: Any) -> None:
        with self._count:
            full = self._queued >= self.workers + self.backlog
            if not full:
                self._queued += 1
        if full:
            self._refuse(conn)
            return
        try:
            self._pool.submit(self._work, conn, addr)
        except RuntimeError:  # the pool is shut down
            with self._count:
                self._queued -= 1
            self.shutdown_request(conn)

    def _work(self, conn: socket.socket, addr: Any) -> None:
        try:
            self.finish_request(conn, addr)
        except Exception:
            self.handle_error(conn, addr)
        finally:
            self.shutdown_request(conn)
            with self._count:
                self._queued -= 1

    def _refuse(self, conn: socket.socket) -> None:
        """Answer 503 without reading the request (its first bytes are dropped, so the close is clean)."""
        log.warning("http.busy", queued=self._queued, workers=self.workers)
        try:
            conn.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                conn.recv(65536)
            conn.settimeout(1.0)
            conn.sendall(BUSY)
        except OSError:
            pass
        self.shutdown_request(conn)

    def server_close(self) -> None:
        self._closing = True
        self._wake()
        if self._room.ident is not None:
            self._room.join(timeout=5)
        self._pool.shutdown(wait=False)
        super().server_close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
