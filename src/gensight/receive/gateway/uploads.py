"""Uploads (files, audio, batch input): streamed to the upstream, never held whole.

A request whose body is not JSON (``multipart/form-data``, ``application/octet-stream``,
JSON lines…) is an upload: it may be far larger than a chat request (OpenAI takes files
of 512 MB), so it is passed on as it arrives, bounded by ``--max-upload``, while JSON
bodies are read whole (the gateway reads and may rewrite them) within ``--max-body``.
A body known to be too large (``Content-Length``) is refused before any upstream is
asked; one that grows too large on the way is cut off upstream and refused with a 413.
An upload is sent once: it cannot be replayed for a retry or a fallback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

from starlette.types import Receive

#: Media types read whole as JSON (everything else is an upload).
_JSON_TYPES = (b"application/json", b"text/json")


def is_upload(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request's body is an upload (not JSON, and not empty)."""
    ctype: bytes | None = None
    for key, value in headers:
        if key == b"content-type":
            ctype = value.split(b";", 1)[0].strip().lower()
        elif key == b"content-length" and value.strip() == b"0":
            return False
    if ctype is None:
        return False  # a client that names no type sends JSON (or nothing)
    return not (ctype in _JSON_TYPES or ctype.endswith(b"+json"))


def content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The request's ``Content-Length`` when it has a valid one."""
    for key, value in headers:
        if key == b"content-length":
            value = value.strip()
            return int(value) if value.isdigit() else None
    return None


class TooLarge(Exception):
    """An upload passed ``--max-upload`` on the way."""


class Disconnected(Exception):
    """The client went away in the middle of its upload."""


class Upload:
    """The request body as an async iterable of chunks, for the upstream request."""

    def __init__(self, receive: Receive, limit: int, length: int | None) -> None:
        self.receive = receive
        self.limit = limit
        self.length = length
        self.size = 0
        self.too_large = False
        self.disconnected = False
        #: Called once the whole body has been read (the gateway then watches for the
        #: client leaving); what it returns is kept to be cancelled at the end.
        self.on_done: Callable[[], asyncio.Task] | None = None
        self.watcher: asyncio.Task | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                raise Disconnected
            chunk: bytes = message.get("body", b"")
            self.size += len(chunk)
            if self.size > self.limit:
                self.too_large = True
                raise TooLarge
            if chunk:
                yield chunk
            if not message.get("more_body"):
                break
        if self.on_done is not None:
            self.watcher = self.on_done()
