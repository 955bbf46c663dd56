"""What the SDK's wrappers, calls and streams share: the warn-once log, the orphaned
streams' queue and the fast attribute setter.

Kept apart so that ``call`` (the span's life cycle) and ``streams`` (the stream
wrappers), which need each other's work, both depend on this and not on each other.
"""

from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gensight.sdk.call import Call

log = logging.getLogger("gensight.sdk")

#: Streams dropped by the app without being closed, waiting for their span to end.
#: Their finalizer runs inside the garbage collector, where ending a span (which
#: takes the span processor's locks) could deadlock; the next call ends them instead.
orphans: collections.deque[tuple[Call, float, int]] = collections.deque()

_warned: set[str] = set()


def warn_once(key: str, message: str, *args: Any) -> None:
    """Log ``message`` once per ``key`` (a broken instrumentation must not flood the log)."""
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args, exc_info=log.isEnabledFor(logging.DEBUG))


def drain_orphans() -> None:
    """End the spans of streams the app dropped (see ``orphans``)."""
    while orphans:
        try:
            call, end_perf, end_ns = orphans.popleft()
        except IndexError:
            return
        call.end_abandoned(end_perf, end_ns)


def set_attributes(span: Any, attrs: dict[str, Any]) -> None:
    """``span.set_attributes(attrs)``, minus the SDK's per-value cleaning when it is moot.

    The values built here are already valid attribute values (str, int, float, bool,
    lists of str), so on an SDK span with no value-length limit they go straight into
    its attribute dict: the cleaning costs ~0.7 µs per attribute per call.
    """
    bounded = getattr(span, "_attributes", None)
    target = getattr(bounded, "_dict", None)
    if (
        type(target) is dict
        and getattr(bounded, "max_value_len", 0) is None
        and getattr(bounded, "maxlen", 0) is not None
        and len(target) + len(attrs) <= bounded.maxlen
        and getattr(span, "_end_time", 0) is None
        and not getattr(bounded, "_immutable", True)
    ):
        for key, value in attrs.items():
            # sequences are stored as tuples, as the SDK's cleaning would
            target[key] = tuple(value) if type(value) is list else value
    else:
        span.set_attributes(attrs)
