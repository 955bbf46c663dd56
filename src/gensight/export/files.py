"""Moving calls in and out: ``gensight export`` and ``gensight import``.

Both talk to a running server's API (the store file belongs to that server): export
pages through ``/api/calls?full=true`` newest first, import posts JSON lines to
``/api/import``. JSONL keeps every field as the API shows it; Parquet uses the same
columns as the stores (messages and attributes as JSON text).

Each exported call carries its ``scores`` (#20): its own, its trace's and its session's,
as a list (JSONL) or JSON text (Parquet's ``scores`` column). A trace's score repeats on
each of its calls; importing stores it once (scores are idempotent by id).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from gensight.model import vocab
from gensight.model.records import CALL_FIELD_NAMES, CallRecord, Score
from gensight.model.scores import ScoreError, score_from_dict
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


def scores_from_value(value: Any) -> list[Score]:
    """A call row's ``scores`` (a list, or JSON text from Parquet) as Scores."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = orjson.loads(value)
    if not isinstance(value, list):
        raise BadRecord("field 'scores' must be a list")
    try:
        return [score_from_dict(d, where=f"scores[{i}].") for i, d in enumerate(value)]
    except ScoreError as e:
        raise BadRecord(str(e)) from None


def calls_from_jsonl(data: bytes) -> list[CallRecord]:
    """Parse JSON lines of call records (BadRecord naming the line)."""
    return records_from_jsonl(data)[0]


def records_from_jsonl(data: bytes) -> tuple[list[CallRecord], list[Score]]:
    """Parse JSON lines of call records and their scores (BadRecord naming the line).

    Every field must fit its store column: a record the writer could not insert would be
    retried forever and hold up everything queued behind it.
    """
    from gensight.store.arrow import calls_table

    calls = []
    scores: dict[str, Score] = {}
    lines = []
    for n, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
            if not isinstance(obj, dict):
                raise BadRecord("not a JSON object")
            calls.append(call_from_dict(obj))
            for score in scores_from_value(obj.get("scores")):
                scores[score.id] = score
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
    return calls, list(scores.values())


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
        import pyarrow as pa
        import pyarrow.parquet as pq

        from gensight.store import arrow

        self._pa = pa
        self._arrow = arrow
        self._schema = arrow.CALL_SCHEMA.append(pa.field("scores", pa.string()))
        self._writer = pq.ParquetWriter(out, self._schema)
        self._rows: list[CallRecord] = []
        self._scores: list[str | None] = []

    def write(self, row: dict[str, Any]) -> None:
        self._rows.append(call_from_dict(row))
        scores = row.get("scores")
        self._scores.append(orjson.dumps(scores).decode() if scores else None)
        if len(self._rows) >= 10_000:
            self.flush()

    def flush(self) -> None:
        if self._rows:
            table = self._arrow.calls_table(self._rows)
            table = table.append_column("scores", self._pa.array(self._scores, self._pa.string()))
            self._writer.write_table(table)
            self._rows = []
            self._scores = []

    def close(self) -> None:
        self.flush()
        self._writer.close()


def read_parquet(path: Path) -> Iterator[tuple[CallRecord, list[Score]]]:
    """Call records and their scores from a Parquet file written by ``gensight export``."""
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    names = set(f.schema_arrow.names)
    if not {"id", "ts", "trace_id"} <= names:
        raise BadRecord(f"{path} has no call columns (id, ts, trace_id)")
    for batch in f.iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            call = call_from_dict({k: v for k, v in row.items() if k in CALL_FIELD_NAMES})
            yield call, scores_from_value(row.get("scores"))


def to_jsonl(call: CallRecord | dict[str, Any]) -> bytes:
    """One JSON line."""
    d = call.to_dict() if isinstance(call, CallRecord) else call
    return orjson.dumps(d, default=str) + b"\n"
