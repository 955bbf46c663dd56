"""Test support: a real `gensight serve` subprocess, free ports, the stores tests run on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running `gensight serve` subprocess and an HTTP client for it."""

    def __init__(
        self, data_dir: Path, *args: str, env: dict[str, str] | None = None, via_env: bool = False
    ) -> None:
        """Start it on a free port; ``via_env``: give port and data dir as GENSIGHT_* variables."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = data_dir / "server.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        where = {"GENSIGHT_PORT": str(self.port), "GENSIGHT_DATA_DIR": str(data_dir)}
        flags = [] if via_env else ["--port", str(self.port), "--data-dir", str(data_dir)]
        cmd = [sys.executable, "-m", "gensight.cli", "serve", *flags, *args]
        env = {**os.environ, **(where if via_env else {}), **(env or {})}
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.client = httpx.Client(base_url=self.url, timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gensight serve exited: {self.log_path.read_text()}")
            try:
                if self.client.get("/api/health").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.proc.kill()  # not left running after the test that gave up on it
        self.proc.wait(10)
        self._log.close()
        raise RuntimeError("gensight serve did not start")

    def wait_calls(self, n: int, timeout: float = 10, **params: str) -> list[dict]:
        """Poll /api/calls until at least ``n`` calls match, and return them."""
        deadline = time.monotonic() + timeout
        items: list[dict] = []
        while time.monotonic() < deadline:
            items = self.client.get("/api/calls", params={"limit": 1000, **params}).json()["items"]
            if len(items) >= n:
                return items
            time.sleep(0.1)
        raise AssertionError(f"expected {n} calls matching {params}, got {len(items)}")

    def stop(self, sig: int = 15) -> int:
        """Stop the server (SIGTERM by default) and return its exit code."""
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


STORES = ["duckdb", "chdb"]


def store_args(kind: str, data_dir: Path) -> list[str]:
    """`gensight serve` flags for a store kind (the default DuckDB file, or chDB)."""
    return [] if kind == "duckdb" else ["--store", f"chdb://{data_dir / 'chdb'}"]


def served(app: Any, base: str = "") -> Iterator[Any]:
    """Run a fake upstream's ``app`` in a server thread and yield it, with
    ``app.state.url`` its base URL (the server's root plus ``base``, e.g. ``/v1``)."""
    from gensight.demo import ServerThread

    with ServerThread(app) as srv:
        app.state.url = srv.url + base
        yield app
