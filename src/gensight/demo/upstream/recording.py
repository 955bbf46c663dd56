"""What the fake upstream received and answered: ``Exchange`` and ``RequestLog``, and
``int_header``, how the fakes read their ``x-fake-*`` numbers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


def int_header(headers: Mapping[str, str], name: str) -> int | None:
    """A header's whole number (``"2"``, ``"1.5"`` → 1); None when absent or not a number."""
    value = headers.get(name)
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except (ValueError, OverflowError):
        return None


@dataclass
class Exchange:
    """One request received by the fake upstream and what it answered."""

    id: str
    ts: float
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0
    stream: bool = False
    response: Any = None
    chunks: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    usage_sent: bool = False
    completed: bool = False
    #: The client hung up before a non-streamed answer was ready.
    abandoned: bool = False
    ttft_ms: float | None = None
    duration_ms: float | None = None
    #: Bytes of the request body received so far (uploads are read as they arrive).
    received: int = 0

    @property
    def model(self) -> str | None:
        """The requested model, if the body had one."""
        return self.body.get("model") if isinstance(self.body, dict) else None

    def events(self) -> list[Any]:
        """The streamed payloads parsed from JSON (``[DONE]`` omitted)."""
        out = []
        for raw in self.chunks:
            data = raw.split("data: ", 1)[-1].strip()
            if data != "[DONE]":
                out.append(json.loads(data))
        return out


class RequestLog:
    """Thread-safe, bounded, in-memory list of :class:`Exchange` objects."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._items: list[Exchange] = []
        self._lock = threading.Lock()

    def add(self, item: Exchange) -> None:
        with self._lock:
            self._items.append(item)
            if len(self._items) > self.limit:
                del self._items[: len(self._items) - self.limit]

    @property
    def entries(self) -> list[Exchange]:
        """A snapshot of all recorded exchanges, oldest first."""
        with self._lock:
            return list(self._items)

    def last(self, path: str | None = None) -> Exchange:
        """The most recent exchange (on ``path`` if given, e.g. ``/v1/embeddings``)."""
        for item in reversed(self.entries):
            if path is None or item.path == path:
                return item
        raise LookupError(f"no request recorded for {path or 'any path'}")

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Exchange]:
        return iter(self.entries)
