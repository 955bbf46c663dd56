"""Sizes and durations as people write them in flags and settings (``16MiB``, ``30s``)."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_BYTES = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def is_duration(text: str) -> bool:
    """Whether ``text`` is a duration ``parse_duration`` reads (``30s``, ``7d``…)."""
    return _DURATION.match(text) is not None


def parse_duration(text: str) -> timedelta:
    """``30s``, ``5m``, ``1h``, ``7d``, ``2w`` as a timedelta (ValueError otherwise)."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h, 7d")
    try:
        return timedelta(seconds=float(m.group(1)) * _SECONDS[m.group(2).lower()])
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None


def parse_seconds(value: object) -> float:
    """Seconds from a number (``0.5``, ``"600"``) or a duration (``"30s"``, ``"10m"``)."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        return parse_duration(text).total_seconds()


def parse_size(value: object) -> int:
    """Bytes from a number or a size like ``16MiB``, ``512k``, ``1G`` (binary units)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    t = text.lower().removesuffix("ib").removesuffix("b")
    try:
        if t and t[-1] in _BYTES:
            return int(float(t[:-1]) * _BYTES[t[-1]])
        return int(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a size like 16MiB, 512KiB or 1GiB") from None
