"""Run any ASGI app on a free loopback port in a background thread.

Used by tests (the fake OpenAI upstream, the gateway, OTLP receivers) and by
``gensight demo``::

    with serve_in_thread(app) as base_url:      # "http://127.0.0.1:54321"
        httpx.get(base_url + "/healthz")

or, when the server must outlive a ``with`` block::

    server = ServerThread(app).start()
    ...
    server.stop()
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

__all__ = ["ServerThread", "free_port", "serve_in_thread"]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now (racy; prefer binding port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """A uvicorn server for ``app`` running in a daemon thread.

    The listening socket is bound before the thread starts (port 0 picks a free
    port), so there is no race between choosing a port and listening on it.
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_level: str = "warning",
        **config_kwargs: Any,
    ) -> None:
        self.app = app
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port: int = int(self._sock.getsockname()[1])
        config_kwargs.setdefault("lifespan", "auto")
        config_kwargs.setdefault("ws", "none")
        config = uvicorn.Config(app, log_level=log_level, **config_kwargs)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """Base URL of the server, e.g. ``http://127.0.0.1:54321`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self._sock])
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc

    def start(self, timeout: float = 10.0) -> ServerThread:
        """Start serving and wait until the server accepts connections."""
        self._thread = threading.Thread(
            target=self._run, name=f"asgi-server-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"server on {self.url} failed to start") from self._error
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"server on {self.url} did not start within {timeout}s")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to exit and wait for its thread (open streams are cut after timeout)."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout / 2)
            if self._thread.is_alive():
                self.server.force_exit = True
                self._thread.join(timeout / 2)
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve_in_thread(
    app: Any, host: str = "127.0.0.1", port: int = 0, **config_kwargs: Any
) -> Iterator[str]:
    """Serve ``app`` in a background thread; yield its base URL; stop it on exit."""
    server = ServerThread(app, host, port, **config_kwargs).start()
    try:
        yield server.url
    finally:
        server.stop()
