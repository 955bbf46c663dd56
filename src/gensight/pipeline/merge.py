"""One call, one record, whoever reports it and however often.

Two producers may report the same LLM call (the anthropic SDK's own span and
OpenLLMetry's; openai-v2 and OpenLIT on one client): both carry the provider's
``response_id``, in one trace, or in two when their spans are siblings at the root (then
a failed call, which has no response id, is known by the provider's request id). An
exporter may resend a span, and the journal replays a batch whose acknowledgement was
lost. The writer runs every batch through ``CallMerger.resolve`` before pricing it:
calls of the batch that are the same call become one, then each is merged with what the
store already holds for it (same id, or one of the keys in ``_keys``), so the store gets one
record per call, written again only when the merge added something.

``merge_calls`` is the rule, field by field: the first record's identity (id, trace,
span, start time, source, producer) stays; a value beats an absent one; counts the
provider reported beat estimated ones; an error outcome beats ``ok``; attributes are
united (the first wins a conflict) and ``gensight.merged_from`` lists the records folded
in. Merging is idempotent: merging a record into a merge that already holds it changes
nothing, which is what makes a resend a no-op.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from gensight.conventions.providers import self_hosted_reason
from gensight.model.records import CALL_FIELD_NAMES, CallRecord, SpanRecord

#: Attribute listing the reports folded into a record: ``[{"id", "span_id", "producer"}]``.
MERGED_FROM = "gensight.merged_from"

TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
#: What a price is computed from: when a merge changes one, the price is computed again.
_PRICE_INPUTS = (
    *TOKEN_FIELDS,
    "provider",
    "request_model",
    "response_model",
    "server_address",
    "reported_cost_usd",
)
_IDENTITY = frozenset({"id", "trace_id", "span_id", "ts", "source", "producer"})
_SPECIAL = frozenset(
    {*TOKEN_FIELDS, "tokens_estimated", "cost_usd", "cost_source", "attributes"}
) | {"duration_ms", "stream", "status", "attempts", "tags", "finish_reasons"}

StoredCalls = Callable[[Sequence[CallRecord]], list[CallRecord]]


def _token_rank(call: CallRecord) -> int:
    """2: counts the provider reported, 1: estimated counts, 0: none."""
    if all(getattr(call, f) is None for f in TOKEN_FIELDS):
        return 0
    return 1 if call.tokens_estimated else 2


def _provenance(call: CallRecord) -> list[dict[str, Any]]:
    entries = call.attributes.get(MERGED_FROM)
    return list(entries) if isinstance(entries, list) else []


def _attributes(first: CallRecord, other: CallRecord) -> dict[str, Any]:
    attrs = {**other.attributes, **first.attributes}
    folded = _provenance(first)
    incoming = _provenance(other)
    if other.id != first.id:
        incoming.append({"id": other.id, "span_id": other.span_id, "producer": other.producer})
    for entry in incoming:
        if entry not in folded and entry.get("id") != first.id:
            folded.append(entry)
    if folded:
        attrs[MERGED_FROM] = folded
    return attrs


def merge_calls(first: CallRecord, other: CallRecord) -> CallRecord:
    """One record from two reports of the same call; ``first`` was stored (or seen) first.

    Neither argument is changed. ``merge_calls(merge_calls(a, b), b) == merge_calls(a, b)``.
    """
    if first == other:
        return first
    values: dict[str, Any] = {}
    for name in CALL_FIELD_NAMES:
        if name in _SPECIAL:
            continue
        a = getattr(first, name)
        values[name] = a if name in _IDENTITY or a is not None else getattr(other, name)
    # a producer that saw only the request may report no duration: take the other's
    values["duration_ms"] = first.duration_ms or other.duration_ms
    values["stream"] = first.stream or other.stream
    values["status"] = "error" if "error" in (first.status, other.status) else first.status
    values["attempts"] = max(first.attempts, other.attempts)
    values["tags"] = [*first.tags, *(t for t in other.tags if t not in first.tags)]
    values["finish_reasons"] = list(first.finish_reasons or other.finish_reasons)
    values["attributes"] = _attributes(first, other)

    # token counts travel together, from the better-ranked report; gaps are filled only
    # from a report of the same rank (an estimate never fills a reported count)
    best, rest = (other, first) if _token_rank(other) > _token_rank(first) else (first, other)
    same_rank = _token_rank(best) == _token_rank(rest)
    for name in TOKEN_FIELDS:
        v = getattr(best, name)
        values[name] = v if v is not None or not same_rank else getattr(rest, name)
    values["tokens_estimated"] = best.tokens_estimated

    # a price stays only while what it was computed from is unchanged; else the
    # writer's pricer computes it again (or it stays unknown: never a wrong number)
    donor = first if first.cost_usd is not None else other
    if donor.cost_usd is not None and all(values[p] == getattr(donor, p) for p in _PRICE_INPUTS):
        values["cost_usd"], values["cost_source"] = donor.cost_usd, donor.cost_source
    else:
        values["cost_usd"], values["cost_source"] = None, "unknown"
    merged = CallRecord(**values)
    return first if merged == first else merged


#: Two reports in different traces are one call only if they started this close.
CROSS_TRACE_WINDOW_S = 10.0


def _same_call(a: CallRecord, b: CallRecord) -> bool:
    """Whether two reports sharing a provider id across traces describe one call: they
    started together and name the same model. Ids alone are not enough there (a local
    server may hand out ``chatcmpl-1`` twice), hence also no cross-trace match for a
    self-hosted model, whose ids nobody guarantees unique."""
    if abs((a.ts - b.ts).total_seconds()) > CROSS_TRACE_WINDOW_S:
        return False
    for name in ("response_model", "request_model"):
        x, y = getattr(a, name), getattr(b, name)
        if x and y:
            return x == y
    return True


#: Whether a call went to the user's own server: ``(provider, server_address) -> bool``.
SelfHosted = Callable[[str | None, str | None], bool]


def _self_hosted(provider: str | None, server_address: str | None) -> bool:
    return self_hosted_reason(provider, server_address) is not None


def _keys(call: CallRecord, self_hosted: SelfHosted) -> list[tuple[str, str, str]]:
    """What identifies a call besides its record id: the provider's response id within a
    trace; across traces (two producers whose spans are siblings at the root) the
    response id or the HTTP request id the provider gave, for a public provider."""
    keys: list[tuple[str, str, str]] = []
    if call.response_id:
        keys.append(("trace", call.trace_id, call.response_id))
    if not self_hosted(call.provider, call.server_address):
        if call.response_id:
            keys.append(("response", call.provider or "", call.response_id))
        if call.upstream_request_id:
            keys.append(("request", call.provider or "", call.upstream_request_id))
    return keys


#: Two producers' reports of one failed call start this close to each other.
FAILED_WINDOW_S = 0.5


def failed_key(call: CallRecord) -> tuple[str, str] | None:
    """``(provider, request model)`` of a failed call that carries no response id (a 429,
    a 529, a refused request), when a producer reported it; else None."""
    if call.status != "error" or call.response_id or not call.producer:
        return None
    if not call.request_model:
        return None
    return (call.provider or "", call.request_model)


def _folded(record: CallRecord, field_name: str) -> list[str]:
    """``field_name`` (``producer``, ``span_id``) of each report folded into a record."""
    folded = record.attributes.get(MERGED_FROM) if record.attributes else None
    if not isinstance(folded, list):
        return []
    return [f[field_name] for f in folded if isinstance(f, dict) and f.get(field_name)]


def _producers(record: CallRecord) -> set[str]:
    """The producers whose reports a record folds in."""
    names = set(_folded(record, "producer"))
    if record.producer:
        names.add(record.producer)
    return names


def _span_ids(record: CallRecord) -> list[str]:
    """The spans a record stands for: its own and those of the reports folded into it."""
    return [record.span_id, *_folded(record, "span_id")]


def _same_failure(a: CallRecord, b: CallRecord) -> bool:
    """Whether two failed calls without a response id are one call told by two producers:
    no producer in common, started together, the same error if both say, and no two
    different request ids. Concurrent identical failures pair up one to one, so the count
    stays right even when the pairing is not the true one (their records are alike)."""
    if _producers(a) & _producers(b):
        return False
    if abs((a.ts - b.ts).total_seconds()) > FAILED_WINDOW_S:
        return False
    if a.error_class and b.error_class and a.error_class != b.error_class:
        return False
    ra, rb = a.upstream_request_id, b.upstream_request_id
    return not (ra and rb and ra != rb)


def _nested_same(parent: CallRecord, child: CallRecord) -> bool:
    """Whether an inference span and the inference span directly inside it are one call
    told twice (a second instrumentation wrapping the same client call, a framework's
    span around its provider call, the Vercel AI SDK's embed around its doEmbed): same
    operation and model, the same outcome, and no two different response ids. A failed
    attempt inside a retrying wrapper stays its own call."""
    if parent.operation != child.operation or parent.status != child.status:
        return False
    for name in ("request_model", "response_id"):
        x, y = getattr(parent, name), getattr(child, name)
        if x and y and x != y:
            return False
    return True


class _Index:
    """Records by id and by each of their keys; ``find`` is the rule of what is one call."""

    def __init__(self, self_hosted: SelfHosted) -> None:
        memo: dict[tuple[str | None, str | None], bool] = {}

        def cached(provider: str | None, server_address: str | None) -> bool:
            key = (provider, server_address)
            if key not in memo:
                memo[key] = self_hosted(provider, server_address)
            return memo[key]

        self.self_hosted = cached
        self.by_id: dict[str, CallRecord] = {}
        self.by_key: dict[tuple[str, str, str], CallRecord] = {}
        self.failed: dict[tuple[str, str], dict[str, CallRecord]] = {}
        #: (trace, span id) -> the record holding that span; (trace, parent) -> child
        self.spans: dict[tuple[str, str], CallRecord] = {}
        self.children: dict[tuple[str, str], CallRecord] = {}

    def add(self, record: CallRecord) -> None:
        self.by_id[record.id] = record
        for key in _keys(record, self.self_hosted):
            self.by_key[key] = record
        fk = failed_key(record)
        if fk is not None:
            self.failed.setdefault(fk, {})[record.id] = record
        for span_id in _span_ids(record):
            self.spans[(record.trace_id, span_id)] = record
        if record.parent_span_id:
            self.children[(record.trace_id, record.parent_span_id)] = record

    def find(self, call: CallRecord) -> CallRecord | None:
        found = self.by_id.get(call.id)
        if found is not None:
            return found
        for key in _keys(call, self.self_hosted):
            found = self.by_key.get(key)
            if found is not None and (key[0] == "trace" or _same_call(found, call)):
                return found
        if call.parent_span_id:  # inside a span already known as this very call?
            parent = self.spans.get((call.trace_id, call.parent_span_id))
            if parent is not None and _nested_same(parent, call):
                return parent
        child = self.children.get((call.trace_id, call.span_id))
        if child is not None and _nested_same(call, child):
            return child
        fk = failed_key(call)
        if fk is None:
            return None
        near = [r for r in self.failed.get(fk, {}).values() if _same_failure(r, call)]
        return min(near, key=lambda r: abs((r.ts - call.ts).total_seconds()), default=None)


class CallMerger:
    """The writer's merge step; remembers which calls its observers have not been told of.

    Observers (Prometheus counters, alerts) must see each call once. A call is told when
    the store did not hold it before this batch, or when an earlier attempt of this
    writer stored it but failed before telling (a lost acknowledgement, then a retry).
    """

    #: Ids remembered at most while their writes keep failing (then forgotten).
    MAX_PENDING = 1_000_000

    def __init__(self, self_hosted: SelfHosted | None = None) -> None:
        """``self_hosted`` decides which calls went to the user's own server (the
        pricer's rule, with its ``priced_hosts``); their ids never match across traces."""
        self._untold: set[str] = set()
        self._self_hosted = self_hosted or _self_hosted

    def resolve(
        self,
        calls: Sequence[CallRecord],
        spans: Sequence[SpanRecord],
        stored_calls: StoredCalls | None,
    ) -> tuple[list[CallRecord], list[SpanRecord], list[CallRecord]]:
        """``(calls to write, spans, calls to tell observers of)`` for one batch.

        Calls to write are the new ones and the stored ones a merge changed; spans keep
        every report, their ``call_id`` pointing at the record that was kept.
        """
        alias: dict[str, str] = {}
        kept = self._within(calls, alias)
        stored = stored_calls(kept) if stored_calls is not None and kept else []
        index = _Index(self._self_hosted)
        for s in stored:
            index.add(s)
        changed: dict[str, CallRecord] = {}
        told: dict[str, CallRecord] = {}
        for call in kept:
            base = index.find(call)
            if base is None:
                record = call
                changed[call.id] = call
                self._untold.add(call.id)
            else:
                record = merge_calls(base, call)
                if record != base:
                    changed[record.id] = record
                if record.id != call.id:
                    alias[call.id] = record.id
            # later calls of the batch matching the same stored record build on this one
            index.add(record)
            if record.id in self._untold:
                told[record.id] = record
        if len(self._untold) > self.MAX_PENDING:
            self._untold.clear()
        return list(changed.values()), _repoint(spans, alias), list(told.values())

    def told(self, calls: Sequence[CallRecord]) -> None:
        """The observers have been told of ``calls`` (their batch is stored)."""
        for call in calls:
            self._untold.discard(call.id)

    def _within(self, calls: Sequence[CallRecord], alias: dict[str, str]) -> list[CallRecord]:
        """The batch with each call once (the same id, or one call by ``_Index.find``)."""
        kept: dict[str, CallRecord] = {}
        index = _Index(self._self_hosted)
        for call in calls:
            base = index.find(call)
            if base is None:
                record = call
            else:
                record = merge_calls(base, call)
                if record.id != call.id:
                    alias[call.id] = record.id
            kept[record.id] = record
            index.add(record)
        return list(kept.values())


def _repoint(spans: Sequence[SpanRecord], alias: dict[str, str]) -> list[SpanRecord]:
    """Spans whose call was folded into another record, pointing at that record."""
    if not alias:
        return list(spans)

    def final(call_id: str) -> str:
        seen = set()
        while call_id in alias and call_id not in seen:
            seen.add(call_id)
            call_id = alias[call_id]
        return call_id

    return [
        dataclasses.replace(s, call_id=final(s.call_id)) if s.call_id in alias else s for s in spans
    ]
