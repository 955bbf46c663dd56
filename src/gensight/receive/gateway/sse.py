"""Incremental Server-Sent Events framing, on raw bytes.

The gateway forwards an upstream's stream as it arrives and reads a copy of it.
``SSESplitter.feed`` takes whatever bytes arrived and returns the complete events in
them (each the exact bytes of the event, blank-line terminator included), keeping an
incomplete tail for the next chunk; nothing is ever re-encoded, so the bytes a client
receives are the upstream's bytes.
"""

from __future__ import annotations

import re

# An event ends at a blank line; the SSE spec allows LF, CRLF and CR line endings.
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\n|\r")


class SSESplitter:
    """Splits a byte stream into complete SSE events."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The events completed by ``chunk``, as raw bytes (terminator included)."""
        buf = self._buf + chunk if self._buf else chunk
        events: list[bytes] = []
        start = 0
        if b"\r" in buf:
            while m := _EVENT_END.search(buf, start):
                events.append(buf[start : m.end()])
                start = m.end()
        else:  # the common case: LF only, str.find beats the regex
            while (i := buf.find(b"\n\n", start)) != -1:
                events.append(buf[start : i + 2])
                start = i + 2
        self._buf = buf[start:]
        return events

    def tail(self) -> bytes:
        """Bytes of an unterminated last event (at end of stream), then cleared."""
        tail, self._buf = self._buf, b""
        return tail


def parse_event(raw: bytes) -> tuple[str | None, bytes | None]:
    """``(event name, data)`` of one raw event; data lines are joined with LF.

    ``data`` is None for an event without data lines (comments, keep-alives).
    """
    event: str | None = None
    data: list[bytes] = []
    lines = raw.split(b"\n") if b"\r" not in raw else _LINE.split(raw)
    for line in lines:
        if not line or line[:1] == b":":
            continue
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            event = value.decode("utf-8", "replace")
    if not data:
        return event, None
    return event, data[0] if len(data) == 1 else b"\n".join(data)
