"""Helpers shared by the benchmarks: servers in subprocesses, memory of a process tree,
free ports, tables. Standard library only (plus httpx, which the dev venv has)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
BENCH_ENVS = REPO / ".cache" / "bench-envs"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- process tree memory ------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        out += [int(c) for c in text.split()]
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux /proc)."""
    seen: list[int] = []
    stack = [pid]
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.append(p)
        stack += _children(p)
    return seen


def status_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds (``/proc/PID/stat``), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TreeMemory:
    """Samples a process tree: each process's peak resident set (``VmHWM``, which the
    kernel tracks exactly, so no spike between samples is missed) and the largest sum of
    current ``VmRSS`` seen. ``peak_mb`` is the sum of the per-process peaks."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.hwm_kb: dict[int, int] = {}
        self.rss_sum_peak_kb = 0
        self.cpu_s: dict[int, float] = {}  # utime + stime of each process, last seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)

    def start(self) -> TreeMemory:
        self._thread.start()
        return self

    def sample(self) -> None:
        rss_sum = 0
        for p in process_tree(self.pid):
            hwm = status_kb(p, "VmHWM")
            if hwm is not None:
                self.hwm_kb[p] = max(self.hwm_kb.get(p, 0), hwm)
            rss_sum += status_kb(p, "VmRSS") or 0
            cpu = cpu_seconds(p)
            if cpu is not None:
                self.cpu_s[p] = cpu
        self.rss_sum_peak_kb = max(self.rss_sum_peak_kb, rss_sum)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def stop(self) -> None:
        """Take a last sample and stop (call before the process exits)."""
        self.sample()
        self._stop.set()
        self._thread.join(2)

    @property
    def cpu_total_s(self) -> float:
        """CPU seconds used by the tree's processes (each as last sampled)."""
        return sum(self.cpu_s.values())

    @property
    def peak_mb(self) -> float:
        return max(sum(self.hwm_kb.values()), self.rss_sum_peak_kb) / 1024


# -- servers -------------------------------------------------------------------


class Server:
    """A server started in its own session (process group), logging to a file."""

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        log_path: Path,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            list(cmd),
            env={**os.environ, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, url: str, timeout: float) -> float:
        """Poll ``url`` until it answers 200; returns the seconds it took."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc.returncode} before it was ready;"
                        f" see {self.log_path}:\n{self.tail()}"
                    )
                try:
                    if client.get(url).status_code == 200:
                        return time.monotonic() - t0
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready at {url} within {timeout:.0f}s")

    def tail(self, n: int = 20) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM the server's process group (the one it was started in), then SIGKILL."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode


class PySpy:
    """``py-spy record`` attached to a running process until ``stop()``."""

    def __init__(self, pid: int, out: Path, fmt: str = "flamegraph", rate: int = 100) -> None:
        exe = VENV_BIN / "py-spy"
        if not exe.exists():
            raise FileNotFoundError(
                f"{exe} missing: .venv/bin/uv pip install --python .venv/bin/python py-spy"
            )
        self.out = out
        self.proc = subprocess.Popen(
            [str(exe), "record", "--pid", str(pid), "--rate", str(rate), "--threads"]
            + ["--format", fmt, "--output", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return (err or b"").decode(errors="replace").strip()


# -- output --------------------------------------------------------------------


def fmt_num(v: Any, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, int]]) -> None:
    """Print ``rows`` as a plain-text table; ``columns`` are (key, header, float digits)."""
    cells = [[fmt_num(r.get(k), d) for k, _, d in columns] for r in rows]
    headers = [h for _, h, _ in columns]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))


# -- machine and disk ----------------------------------------------------------------


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def dir_size(path: Path) -> int:
    """Bytes of a file, or of every file under a directory (a DuckDB file's ``.wal`` too)."""
    path = Path(path)
    if path.is_file():
        wal = path.with_name(path.name + ".wal")
        return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
