"""Python values as OTLP ``AnyValue`` / ``KeyValue`` (what forwarded spans and events carry)."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def any_value(v: Any) -> AnyValue:
    """One attribute value: bool, int, float, a list of them, else its text."""
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, list | tuple):
        out = AnyValue()
        out.array_value.values.extend(any_value(x) for x in v)
        return out
    return AnyValue(string_value=str(v))


def kvs(attrs: dict[str, Any]) -> list[KeyValue]:
    """Attributes as key-values, leaving out the ones that are None."""
    return [KeyValue(key=k, value=any_value(v)) for k, v in attrs.items() if v is not None]
