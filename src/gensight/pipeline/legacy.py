"""One-time migration of journals written by the release before the versioned format
(f3c7c51 and earlier): entries ``[seq u64][kind u16][len u32][kind][payload]`` without
a checksum, gateway records pickled under the module name ``gensight.records``.

Why migrate the pickles rather than drop them: they are calls the server acknowledged
(gateway traffic during an outage or just before the upgrade), and dropping them would
lose exactly what the journal exists to keep. Why it is safe: the unpickler below
resolves only the three record classes and ``datetime`` types (anything else is refused,
so a pickle cannot run code), and it never builds the old classes themselves: it takes
each record's state, a list of values in the field order of that release (frozen here),
and rebuilds the record by field *name* through the tolerant JSON path. Unpickling into
today's classes would assign values by position, wrong as soon as a field is added.
"""

from __future__ import annotations

import datetime as _dt
import io
import pickle
import struct
from typing import Any

from gensight.pipeline.codec import DecodeResult, decode_tables, record_dict

#: The old entry header: seq, kind length, payload length.
HEADER = struct.Struct(">QHI")
#: The kind under which that release journaled pickled record batches.
PICKLED = "records"

#: Field order of the record classes in f3c7c51 (a pickled slots dataclass's state).
FIELDS = {
    "CallRecord": (
        "id", "trace_id", "span_id", "ts", "duration_ms", "source", "producer",
        "parent_span_id", "ttft_ms", "app", "environment", "provider", "operation",
        "request_model", "response_model", "response_id", "stream", "input_tokens",
        "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
        "tokens_estimated", "cost_usd", "cost_source", "reported_cost_usd", "status",
        "error_class", "http_status", "error_message", "finish_reasons", "temperature",
        "top_p", "max_tokens", "frequency_penalty", "presence_penalty", "seed", "user",
        "session", "tags", "server_address", "attempts", "input_messages",
        "output_messages", "system_instructions", "attributes",
    ),
    "SpanRecord": (
        "trace_id", "span_id", "name", "ts", "duration_ms", "parent_span_id", "kind",
        "status", "status_message", "app", "call_id", "attributes", "events",
    ),
    "ContentEvent": ("trace_id", "span_id", "ts", "seq", "kind", "message"),
}  # fmt: skip

_MODULES = ("gensight.records", "gensight.model.records")
_DATETIME = {"datetime": _dt.datetime, "timezone": _dt.timezone, "timedelta": _dt.timedelta,
             "date": _dt.date}  # fmt: skip


class _State:
    """Stands in for an old record class: keeps the pickled state, runs nothing."""

    name = ""

    def __init__(self, *args: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def fields(self) -> dict[str, Any]:
        names = FIELDS[self.name]
        state = self.state
        if isinstance(state, tuple) and len(state) == 2 and state[0] is None:
            state = state[1]  # a slots object pickled without __getstate__: (None, slots)
        if isinstance(state, dict):
            return dict(state)
        return dict(zip(names, state or (), strict=False))


_STAND_INS = {name: type(name, (_State,), {"name": name}) for name in FIELDS}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module in _MODULES and name in _STAND_INS:
            return _STAND_INS[name]
        if module == "datetime" and name in _DATETIME:
            return _DATETIME[name]
        raise pickle.UnpicklingError(f"legacy journal entry refers to {module}.{name}")


def decode_pickled(payload: bytes, classes: tuple[type, type, type]) -> DecodeResult:
    """Records of a pickled batch from the old journal, rebuilt by field name."""
    batch = _Unpickler(io.BytesIO(payload)).load()
    if not (isinstance(batch, tuple) and len(batch) == 3):
        raise ValueError("legacy journal entry is not a (calls, spans, events) batch")
    tables: dict[str, list[dict[str, Any]]] = {}
    for table, records in zip(("calls", "spans", "events"), batch, strict=True):
        tables[table] = [
            record_dict(r.fields()) if isinstance(r, _State) else {"value": repr(r)}
            for r in records
        ]
    return decode_tables(tables, classes)
