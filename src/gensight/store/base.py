"""The store seam: what every backend (DuckDB, ClickHouse) offers the layers above."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Protocol

from gensight.model.records import CallRecord, ContentEvent, Score, SpanRecord
from gensight.model.vocab import FILTER_NAMES


@dataclass(frozen=True)
class CallFilters:
    """The filters shared by the call log, stats and analysis (the API's query parameters)."""

    since: datetime | None = None
    until: datetime | None = None
    app: str | None = None
    model: str | None = None  # the request model, else the response model (as group_by)
    provider: str | None = None
    status: str | None = None
    error_class: str | None = None
    user: str | None = None
    session: str | None = None
    environment: str | None = None
    operation: str | None = None
    source: str | None = None
    deployment: str | None = None
    api_version: str | None = None
    template_id: str | None = None
    q: str | None = None  # substring of message content, case-insensitive
    score: str | None = None  # a score the call has (``model.scores.parse_score_filter``)
    trace_id: str | None = None

    def active(self) -> dict[str, Any]:
        """The filters that are set."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


# The filters are vocab's, plus the trace a trace view asks for: fail at import, not at
# the first request, when the two drift apart.
if tuple(f.name for f in fields(CallFilters)) != (*FILTER_NAMES, "trace_id"):
    raise RuntimeError("CallFilters must have the fields of vocab.CALL_FILTERS, then trace_id")


@dataclass(frozen=True)
class Cursor:
    """Position after the last item of a page: in the page's order (``key`` then ts, then
    id; newest first by default), with the last item's ``value`` of ``key``."""

    ts: datetime
    id: str
    key: str = "ts"
    value: float | int | None = None
    order: str = "desc"

    def encode(self) -> str:
        """Opaque URL-safe form (the newest-first time order keeps its short form)."""
        if self.key == "ts" and self.order == "desc":
            raw = f"{self.ts.isoformat()}|{self.id}".encode()
        else:
            raw = json.dumps(
                {"ts": self.ts.isoformat(), "id": self.id, "k": self.key, "v": self.value,
                 "o": self.order}, separators=(",", ":"),
            ).encode()  # fmt: skip
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Parse an opaque cursor; ValueError when it is not one of ours."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            if raw.startswith("{"):
                data = json.loads(raw)
                ts, id_ = data["ts"], data["id"]
                key, value, order = str(data["k"]), data["v"], str(data["o"])
                if value is not None and not isinstance(value, int | float):
                    raise ValueError("not a sort value")
            else:
                ts, _, id_ = raw.partition("|")
                key, value, order = "ts", None, "desc"
            parsed = datetime.fromisoformat(ts)
        except Exception as e:
            raise ValueError("not a valid cursor") from e
        if not id_ or not isinstance(id_, str):
            raise ValueError("not a valid cursor")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return cls(parsed, id_, key, value, order)


class Store(Protocol):
    """A backend: writes batches, answers the query layer."""

    def write(
        self,
        calls: Sequence[CallRecord],
        spans: Sequence[SpanRecord],
        events: Sequence[ContentEvent],
        scores: Sequence[Score] = (),
    ) -> None:
        """Insert one batch (called only from the pipeline's writer thread)."""
        ...

    def list_calls(
        self,
        filters: CallFilters,
        limit: int,
        cursor: Cursor | None,
        full: bool = False,
        sort: str = "ts",
        order: str = "desc",
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """A page of calls (newest first unless ``sort``/``order`` say otherwise; calls
        without a value of ``sort`` last), without message content unless ``full``; and
        the next cursor."""
        ...

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        """One call with its messages (joined with content events), or None."""
        ...

    def trace_window(self, trace_id: str) -> tuple[datetime, datetime] | None:
        """From the first start to the last end of what is stored of a trace, when the
        backend keeps it (else None: a trace is then found by its spans)."""
        ...

    def get_trace(
        self, trace_id: str, window: tuple[datetime, datetime] | None = None
    ) -> dict[str, Any] | None:
        """All spans and calls of a trace (within ``window``, its ``trace_window``, when
        given), or None when nothing of it is stored."""
        ...

    def health(self) -> dict[str, Any]:
        """Backend name, reachability and sizes."""
        ...

    def close(self) -> None:
        """Release the backend."""
        ...
