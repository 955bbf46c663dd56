"""The rows behind the savings analyses (issue #19): what-if repricing, cache
opportunities, prompt templates, the miner's state, and repricing stored calls.

Rows only, like the rest of the store: the numbers are computed in ``gensight.query``
(``whatif``, ``cache``, ``templates``, ``forecast``). The SQL is shared by both stores
through their dialects, values always bound as parameters.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gensight.model.records import CALL_FIELD_NAMES, CallRecord
from gensight.store.base import CallFilters
from gensight.store.dialect import Dialect, Query
from gensight.store.dimensions import GROUP_BY, MODEL
from gensight.store.sql import where

_USAGE = (
    "c.input_tokens, c.output_tokens, c.cache_read_tokens, c.cache_write_tokens,"
    " c.reasoning_tokens, c.cost_usd, c.cost_source"
)


def usage_rows(d: Dialect, filters: CallFilters, group: str) -> Query:
    """Per call with usage: its group, provider, model, start and token counts."""
    q = Query(d)
    q.sql = (
        f"SELECT {GROUP_BY[group]} AS grp, c.provider, {MODEL} AS model, c.ts,"
        f" c.server_address, {_USAGE} FROM {d.table('calls', 'c')}"
        f" WHERE {where(d, q, filters)}"
        " AND (c.input_tokens IS NOT NULL OR c.output_tokens IS NOT NULL)"
    )
    return q


def repeated_requests(d: Dialect, filters: CallFilters) -> Query:
    """Successful calls whose ``request_hash`` occurs more than once, by hash then time."""
    q = Query(d)
    outer = where(d, q, filters)
    inner = where(d, q, filters)
    q.sql = (
        f"SELECT c.id, c.request_hash, c.ts, c.app, {MODEL} AS model, c.cost_usd"
        f" FROM {d.table('calls', 'c')} WHERE {outer} AND c.status = 'ok'"
        " AND c.request_hash IN (SELECT c.request_hash"
        f" FROM {d.table('calls', 'c')} WHERE {inner} AND c.status = 'ok'"
        " AND c.request_hash IS NOT NULL GROUP BY c.request_hash HAVING count(*) > 1)"
        " ORDER BY c.request_hash, c.ts, c.id"
    )
    return q


def prefix_calls(d: Dialect, filters: CallFilters, min_tokens: int) -> Query:
    """Successful calls with a long shared-prefix candidate, or that read the cache."""
    q = Query(d)
    q.sql = (
        f"SELECT c.id, c.ts, c.app, c.provider, {MODEL} AS model, c.server_address,"
        f" c.prefix_hash, c.prefix_tokens, {_USAGE} FROM {d.table('calls', 'c')}"
        f" WHERE {where(d, q, filters)} AND c.status = 'ok'"
        f" AND ((c.prefix_hash IS NOT NULL AND c.prefix_tokens >= {int(min_tokens)})"
        " OR c.cache_read_tokens > 0)"
        " ORDER BY c.prefix_hash, c.ts, c.id"
    )
    return q


def fingerprint_coverage(d: Dialect, filters: CallFilters) -> Query:
    """How many matching calls there are, and how many carry a request hash."""
    q = Query(d)
    q.sql = (
        f"SELECT count(*) AS calls, {d.countif('c.request_hash IS NOT NULL')} AS hashed"
        f" FROM {d.table('calls', 'c')} WHERE {where(d, q, filters)}"
    )
    return q


def calls_to_reprice(d: Dialect, filters: CallFilters, limit: int, after: str | None) -> Query:
    """Whole call rows (for rewriting), by id, ``limit`` at a time after ``after``."""
    q = Query(d)
    w = where(d, q, filters)
    if after is not None:
        w += f" AND c.id > {d.param(q, after)}"
    cols = ", ".join(f'c."{n}"' for n in CALL_FIELD_NAMES)
    q.sql = (
        f"SELECT {cols} FROM {d.table('calls', 'c')} WHERE {w}"
        " AND (c.input_tokens IS NOT NULL OR c.output_tokens IS NOT NULL"
        " OR c.reported_cost_usd IS NOT NULL)"
        f" ORDER BY c.id LIMIT {int(limit)}"
    )
    return q


def template_state(d: Dialect, name: str) -> Query:
    q = Query(d)
    q.sql = (
        f"SELECT state FROM template_state WHERE name = {d.param(q, name)}"
        " ORDER BY updated_at DESC LIMIT 1"
    )
    return q


def save_template_state(d: Dialect, name: str, state: str, at: datetime) -> Query:
    q = Query(d)
    q.sql = (
        "INSERT INTO template_state (name, state, updated_at) VALUES"
        f" ({d.param(q, name)}, {d.param(q, state)}, {d.param_ts(q, at)})"
    )
    return q


def prune_template_state(d: Dialect, name: str, before: datetime) -> Query:
    q = Query(d)
    q.sql = (
        f"DELETE FROM template_state WHERE name = {d.param(q, name)}"
        f" AND updated_at < {d.param_ts(q, before)}"
    )
    return q


class SavingsQueries:
    """The store methods of the savings analyses (mixed into ``SQLStore``)."""

    dialect: Dialect

    def _rows(self, q: Query) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _exec(self, q: Query) -> None:
        raise NotImplementedError

    def usage_rows(self, filters: CallFilters, group: str) -> list[dict[str, Any]]:
        """Every matching call with usage: ``grp``, provider, model, ts, tokens, cost."""
        return self._rows(usage_rows(self.dialect, filters, group))

    def repeated_request_rows(self, filters: CallFilters) -> list[dict[str, Any]]:
        """Successful calls sharing a ``request_hash`` with another matching call."""
        return self._rows(repeated_requests(self.dialect, filters))

    def fingerprint_coverage(self, filters: CallFilters) -> dict[str, Any]:
        """``calls`` and ``hashed`` (with a ``request_hash``) among the matching calls."""
        (row,) = self._rows(fingerprint_coverage(self.dialect, filters))
        return row

    def prefix_rows(self, filters: CallFilters, min_tokens: int) -> list[dict[str, Any]]:
        """Calls with a shared-prefix candidate of at least ``min_tokens``, or cache reads."""
        return self._rows(prefix_calls(self.dialect, filters, min_tokens))

    def calls_to_reprice(
        self, filters: CallFilters, limit: int, after: str | None
    ) -> list[CallRecord]:
        """A page of whole stored calls by id (after ``after``), as records to rewrite."""
        from gensight.store.common import call_record

        return [
            call_record(r)
            for r in self._rows(calls_to_reprice(self.dialect, filters, limit, after))
        ]

    def load_template_state(self, name: str) -> str | None:
        """The prompt-template miner's last saved state (``gensight.enrich.templates``)."""
        rows = self._rows(template_state(self.dialect, name))
        return rows[0]["state"] if rows else None

    def save_template_state(self, name: str, state: str) -> None:
        """Save the miner's state (the latest one is read back; older ones are pruned)."""
        now = datetime.now(UTC)
        self._exec(save_template_state(self.dialect, name, state, now))
        if self.dialect.name == "duckdb":  # ClickHouse folds them (ReplacingMergeTree)
            self._exec(prune_template_state(self.dialect, name, now))
