"""``POST /v1/files``: a multipart upload read as it arrives, answered as OpenAI does.

The body is counted while it streams in (``Exchange.received``), so a test can see that
a proxy passes an upload on before it has all of it; the answer is OpenAI's file object,
and the exchange's ``body`` holds what was uploaded (filename, purpose, size, SHA-256).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from gensight.demo.upstream.base import UpstreamBase
from gensight.demo.upstream.errors import error_body, invalid
from gensight.demo.upstream.recording import Exchange

#: OpenAI's limit for one file.
MAX_FILE_BYTES = 512 * 1024 * 1024
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


def _parts(body: bytes, boundary: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``name -> (filename, content)`` of a ``multipart/form-data`` body."""
    parts: dict[str, tuple[str | None, bytes]] = {}
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk.partition(b"\r\n\r\n")
        disposition = next(
            (
                line
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-disposition")
            ),
            b"",
        ).decode("utf-8", "replace")
        fields = dict(
            (k.strip(), v.strip().strip('"'))
            for k, _, v in (item.partition("=") for item in disposition.split(";")[1:])
        )
        if "name" in fields:
            parts[fields["name"]] = (fields.get("filename"), content.removesuffix(b"\r\n"))
    return parts


class FilesAPI(UpstreamBase):
    """The Files API's upload."""

    async def create_file(self, request: Request) -> Response:
        started = time.monotonic()
        ex = Exchange(
            id=uuid.uuid4().hex,
            ts=time.time(),
            method=request.method,
            path=request.url.path,
            headers=dict(request.headers),
            body=None,
        )
        self.log.add(ex)
        key = self.config.api_key
        if key is not None and request.headers.get("authorization") != f"Bearer {key}":
            return self._json(ex, started, 401, error_body(401))
        ctype = request.headers.get("content-type", "")
        boundary = ctype.partition("boundary=")[2].strip('"').encode()
        if not ctype.startswith("multipart/form-data") or not boundary:
            err = invalid("Invalid Content-Type header, expected multipart/form-data.")
            return self._json(ex, started, 400, err)
        chunks = []
        try:
            async for chunk in request.stream():
                chunks.append(chunk)
                ex.received += len(chunk)
        except ClientDisconnect:  # the sender gave up (or was cut off) mid-upload
            ex.abandoned = True
            return Response(status_code=400)  # nobody is left to read it
        parts = _parts(b"".join(chunks), boundary)
        filename, content = parts.get("file", (None, b""))
        purpose = parts.get("purpose", (None, b""))[1].decode("utf-8", "replace")
        if filename is None:
            return self._json(
                ex, started, 400, invalid("Missing required parameter: 'file'.", "file")
            )
        if purpose not in PURPOSES:
            message = f"'{purpose}' is not one of {list(PURPOSES)} - 'purpose'"
            return self._json(ex, started, 400, invalid(message, "purpose"))
        if len(content) > MAX_FILE_BYTES:
            return self._json(ex, started, 413, error_body(413))
        ex.body = {
            "filename": filename,
            "purpose": purpose,
            "bytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        }
        answer: dict[str, Any] = {
            "id": "file-" + uuid.uuid4().hex[:24],
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        return self._json(ex, started, 200, answer)
