"""Moving calls in and out: ``gensight export`` and ``gensight import``.

Both talk to a running server's API (the store file belongs to that server): export
pages through ``/api/calls?full=true`` newest first, import posts JSON lines to
``/api/import``. JSONL keeps every field as the API shows it; Parquet uses the same
columns as the stores (messages and attributes as JSON text).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from gensight.model import vocab
from gensight.model.records import CALL_FIELD_NAMES, CallRecord
from gensight.model.vocab import one_of

_FIELDS = {f.name: f for f in dataclasses.fields(CallRecord)}
_JSON_FIELDS = ("input_messages", "output_messages", "system_instructions", "attributes")
#: Fields with a closed list of values: an import holds only values every reader knows.
_CLOSED = {
    "source": vocab.SOURCES,
    "status": vocab.STATUSES,
    "error_class": vocab.ERROR_CLASSES,
    "cost_source": vocab.COST_SOURCES,
}


class BadRecord(ValueError):
    """A line or row that is not a call record; the message says which and why."""


def call_from_dict(d: dict[str, Any]) -> CallRecord:
    """A CallRecord from its API form (unknown keys ignored, JSON text columns decoded)."""
    missing = [
        k for k in ("id", "trace_id", "span_id", "ts", "duration_ms", "source") if d.get(k) is None
    ]
    if missing:
        raise BadRecord(f"missing field(s) {', '.join(missing)}")
    values = {k: v for k, v in d.items() if k in _FIELDS}
    for name, allowed in _CLOSED.items():
        value = values.get(name)
        if value is not None and value not in allowed:
            raise BadRecord(f"field {name!r} {one_of(allowed)}, not {value!r}")
    ts = values["ts"]
    ts = datetime.fromisoformat(ts) if isinstance(ts, str) else ts
    values["ts"] = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
    for name in _JSON_FIELDS:
        if isinstance(values.get(name), str):
            values[name] = orjson.loads(values[name])
    for name in ("finish_reasons", "tags"):
        values[name] = list(values.get(name) or [])
    if values.get("attributes") is None:
        values["attributes"] = {}
    return CallRecord(**values)


_WRONG_TYPE = (TypeError, ValueError, AttributeError, OverflowError, NotImplementedError)


def calls_from_jsonl(data: bytes) -> list[CallRecord]:
    """Parse JSON lines of call records (BadRecord naming the line).

    Every field must fit its store column: a record the writer could not insert would be
    retried forever and hold up everything queued behind it.
    """
    from gensight.store.arrow import calls_table

    calls = []
    lines = []
    for n, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
            if not isinstance(obj, dict):
                raise BadRecord("not a JSON object")
            calls.append(call_from_dict(obj))
            lines.append(n)
        except (orjson.JSONDecodeError, BadRecord, *_WRONG_TYPE) as e:
            raise BadRecord(f"line {n}: {e}") from None
    try:
        calls_table(calls)  # all at once; one by one only to name a bad line
    except _WRONG_TYPE:
        for n, call in zip(lines, calls, strict=True):
            try:
                calls_table([call])
            except _WRONG_TYPE as e:
                raise BadRecord(f"line {n}: a field has the wrong type: {e}") from None
        raise
    return calls


def iter_export(client: Any, params: dict[str, Any], page: int = 1000) -> Iterator[dict]:
    """Every call matching ``params``, newest first, with messages (pages of ``page``)."""
    cursor = None
    while True:
        q = {**params, "limit": page, "full": "true", **({"cursor": cursor} if cursor else {})}
        r = client.get("/api/calls", params=q)
        r.raise_for_status()
        body = r.json()
        yield from body["items"]
        cursor = body["next"]
        if not cursor:
            return


class ParquetSink:
    """Writes call dicts to Parquet in row groups, with the stores' column types."""

    def __init__(self, out: IO[bytes] | Path) -> None:
        import pyarrow.parquet as pq

        from gensight.store import arrow

        self._arrow = arrow
        self._writer = pq.ParquetWriter(out, arrow.CALL_SCHEMA)
        self._rows: list[CallRecord] = []

    def write(self, row: dict[str, Any]) -> None:
        self._rows.append(call_from_dict(row))
        if len(self._rows) >= 10_000:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            self._writer.write_table(self._arrow.calls_table(self._rows))
            self._rows = []

    def close(self) -> None:
        self.flush()
        self._writer.close()


def read_parquet(path: Path) -> Iterator[CallRecord]:
    """Call records from a Parquet file written by ``gensight export``."""
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    names = set(f.schema_arrow.names)
    if not {"id", "ts", "trace_id"} <= names:
        raise BadRecord(f"{path} has no call columns (id, ts, trace_id)")
    for batch in f.iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            yield call_from_dict({k: v for k, v in row.items() if k in CALL_FIELD_NAMES})


def to_jsonl(call: CallRecord | dict[str, Any]) -> bytes:
    """One JSON line."""
    d = call.to_dict() if isinstance(call, CallRecord) else call
    return orjson.dumps(d, default=str) + b"\n"
