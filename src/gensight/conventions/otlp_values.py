"""OTLP protobuf values to plain Python: AnyValue, attribute lists, ids, times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: ``Span.kind`` enum values as the API names them.
SPAN_KINDS = {0: "internal", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def any_value(v: Any) -> Any:
    """Convert an OTLP ``AnyValue`` to str/bool/int/float/bytes-hex/list/dict/None."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return v.bytes_value.hex()
    return None


def attributes(kvs: Any) -> dict[str, Any]:
    """An OTLP ``repeated KeyValue`` as a dict (later keys win, as in the SDKs)."""
    out: dict[str, Any] = {}
    for kv in kvs:
        v = kv.value
        which = v.WhichOneof("value")
        # the common scalar cases inline: this runs for every attribute of every span
        if which == "string_value":
            out[kv.key] = v.string_value
        elif which == "int_value":
            out[kv.key] = v.int_value
        elif which == "double_value":
            out[kv.key] = v.double_value
        elif which == "bool_value":
            out[kv.key] = v.bool_value
        else:
            out[kv.key] = any_value(v)
    return out


def hex_id(b: bytes) -> str | None:
    """A trace or span id as lowercase hex; ``None`` for an empty or all-zero id."""
    if not b or not any(b):
        return None
    return b.hex()


def nanos_to_datetime(ns: int) -> datetime:
    """Unix nanoseconds to an aware UTC datetime (microsecond precision)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)
