"""The journal's record format: JSON (orjson), versioned and tolerant of schema change.

Gateway calls and imported records have no wire payload of their own to journal (OTLP
bodies are journaled as received), so they are journaled as

    {"v": 1, "calls": [{field: value, ...}], "spans": [...], "events": [...],
     "scores": [...]}

with records keyed by field *name*. Decoding takes the fields the running release's
record classes know, gives missing ones their defaults and keeps unknown ones in the
record's ``attributes`` (a field a newer release added is not lost when an older one
replays the journal). A record that still cannot be built (a required field missing) is
returned apart, to be set aside, never dropped silently. Never pickle: a pickled slots
dataclass restores its fields by position, so adding a field shifts every value after it.
"""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime
from typing import Any

import orjson

from gensight.model.records import CallRecord, ContentEvent, Score, SpanRecord

#: Journal kind of a JSON record batch.
RECORDS = "records.json"
#: Version of the JSON layout above; decoders accept any version (fields are by name).
FORMAT_VERSION = 1

Batch = tuple[list[CallRecord], list[SpanRecord], list[ContentEvent], list[Score]]
#: ``scores`` (#20) came last: a journal written before it has three tables, and a
#: release before it ignores the fourth
_TABLES = ("calls", "spans", "events", "scores")


def _default(value: Any) -> Any:
    # attributes come from producers: tuples and sets become lists, bytes base64 text
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    # anything else as its text: journaling must never refuse an acknowledged batch
    return str(value)


def record_dict(record: Any) -> dict[str, Any]:
    """A record's fields by name (datetimes as ISO 8601 text), JSON-ready."""
    return orjson.loads(dumps(record))


def dumps(value: Any) -> bytes:
    """orjson with the options the journal needs (dataclasses, non-str keys, bytes)."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


def encode_batch(
    calls: list[Any], spans: list[Any], events: list[Any], scores: list[Any] | None = None
) -> bytes:
    """One batch as the journal's JSON record format."""
    doc = {"v": FORMAT_VERSION, "calls": calls, "spans": spans, "events": events}
    if scores:
        doc["scores"] = scores
    return dumps(doc)


class DecodeResult:
    """A decoded batch plus the records that could not be rebuilt (``(table, dict, why)``)."""

    __slots__ = ("batch", "unreadable")

    def __init__(self, batch: Batch, unreadable: list[tuple[str, dict[str, Any], str]]):
        self.batch = batch
        self.unreadable = unreadable


def decode_batch(
    payload: bytes,
    call_cls: type = CallRecord,
    span_cls: type = SpanRecord,
    event_cls: type = ContentEvent,
    score_cls: type = Score,
) -> DecodeResult:
    """Records of a JSON batch, built with the given classes (the running release's)."""
    doc = orjson.loads(payload)
    if not isinstance(doc, dict):
        raise ValueError("journal record batch is not a JSON object")
    classes = (call_cls, span_cls, event_cls, score_cls)
    return decode_tables({t: doc.get(t) or [] for t in _TABLES}, classes)


def decode_tables(
    tables: dict[str, list[dict[str, Any]]], classes: tuple[type, ...]
) -> DecodeResult:
    """Build records from field dicts per table (shared by the JSON and legacy formats;
    the legacy one has no scores class)."""
    out: tuple[list, list, list, list] = ([], [], [], [])
    unreadable: list[tuple[str, dict[str, Any], str]] = []
    for i, table in enumerate(_TABLES[: len(classes)]):
        for d in tables.get(table, []):
            try:
                out[i].append(from_dict(classes[i], d))
            except (TypeError, ValueError, AttributeError) as e:
                unreadable.append((table, d if isinstance(d, dict) else {"value": d}, str(e)))
    return DecodeResult(out, unreadable)


def from_dict(cls: type, d: dict[str, Any]) -> Any:
    """One record of ``cls`` from its fields by name, tolerating added and removed fields."""
    if not isinstance(d, dict):
        raise TypeError(f"a {cls.__name__} must be a JSON object, not {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in d.items():
        f = fields.get(key)
        if f is None:
            extra[key] = value
        elif value is not None and "datetime" in str(f.type) and isinstance(value, str):
            ts = datetime.fromisoformat(value)
            values[key] = ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
        else:
            values[key] = value
    if extra and "attributes" in fields:
        # a field this release does not know (a newer release wrote it): kept, visible
        attrs = dict(values.get("attributes") or {})
        for key, value in extra.items():
            attrs.setdefault(key, value)
        values["attributes"] = attrs
    return cls(**values)
