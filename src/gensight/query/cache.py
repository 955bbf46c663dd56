"""Cache opportunities: what a response cache or the providers' prompt caching would save.

**Response cache.** Successful calls with equal ``request_hash`` (same model, messages,
tools and output-changing parameters: ``gensight.enrich.fingerprint``) are walked in time
order; a call within ``window`` of the request that filled the cache entry is a hit, and
its whole recorded cost is what the cache would have saved. A repeat after the window
refills the entry (it is paid).

**Prompt caching.** Calls whose shared prefix (system prompt, tools, every message but
the last) has at least ``min_prefix_tokens`` (1,024: the providers' minimum) are walked
per prefix in time order; a call within ``lifetime`` (default 5 minutes, refreshed by each
use, as OpenAI's and Anthropic's caches are) of the prefix's previous use that shows no
cached input tokens would have read ``prefix_tokens`` from the cache: its saving is its
recorded cost minus its cost with that many tokens priced as cache reads. Where the
provider charges for writing the cache (Anthropic's ``cache_control``), the first call
of each run pays that premium, subtracted from the saving; a prefix is listed only
when it comes out ahead. Calls that did read the cache are the **realised** savings:
their cost without the cache minus their recorded cost. Prices are the ``Pricer``'s
(genai-prices or the user's file) at each call's time; an unpriced call adds nothing.

Limits: ``prefix_tokens`` is an offline estimate (OpenAI's tokenizer family); Gemini's
context caching also bills storage per hour, which is not subtracted; prompt caching
needs the prefix to be byte-identical, which the hash checks, but the providers also
cache shorter prefixes in 128-token steps, which it does not model.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from gensight.store.base import CallFilters

#: Providers' minimum cacheable prompt (OpenAI, Anthropic's Sonnet/Opus, Gemini's implicit).
MIN_PREFIX_TOKENS = 1024
DEFAULT_WINDOW = timedelta(hours=1)
DEFAULT_LIFETIME = timedelta(minutes=5)
TOP = 20

#: How each provider family caches a prompt prefix, in the user's words.
MECHANISMS = {
    "openai": "OpenAI automatic prompt caching (keep the shared prefix first and identical)",
    "anthropic": "Anthropic cache_control breakpoint after the shared prefix",
    "google": "Gemini context caching of the shared prefix",
}
_WRITE_PREMIUM = ("anthropic",)


def _as_utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _family(provider: str | None) -> str:
    p = (provider or "").lower()
    if "anthropic" in p:
        return "anthropic"
    if any(x in p for x in ("gemini", "google", "vertex")):
        return "google"
    return "openai" if "openai" in p or not p else p


def response_cache(rows: Iterable[dict[str, Any]], window: timedelta) -> dict[str, Any]:
    """Hits and savings of a response cache over ``repeated_request_rows``."""
    by_hash: dict[str, dict[str, Any]] = {}
    by_place: dict[tuple[Any, Any], dict[str, Any]] = {}
    entry_at: dict[str, datetime] = {}
    for r in rows:
        h = r["request_hash"]
        ts = _as_utc(r["ts"])
        item = by_hash.get(h)
        if item is None:
            item = by_hash[h] = {
                "request_hash": h,
                "app": r["app"],
                "model": r["model"],
                "calls": 0,
                "hits": 0,
                "saving_usd": 0.0,
                "first_ts": ts.isoformat(),
                "last_ts": ts.isoformat(),
                "sample_call_id": r["id"],
            }
        item["calls"] += 1
        item["last_ts"] = ts.isoformat()
        start = entry_at.get(h)
        if start is not None and ts - start <= window:
            item["hits"] += 1
            item["saving_usd"] += float(r["cost_usd"] or 0.0)
        else:
            entry_at[h] = ts  # the cache is (re)filled by this paid call
    for item in by_hash.values():
        key = (item["app"], item["model"])
        place = by_place.setdefault(
            key, {"app": key[0], "model": key[1], "calls": 0, "hits": 0, "saving_usd": 0.0}
        )
        for k in ("calls", "hits", "saving_usd"):
            place[k] += item[k]
    hashes = sorted(by_hash.values(), key=lambda x: (-x["saving_usd"], -x["hits"]))
    places = sorted(by_place.values(), key=lambda x: (-x["saving_usd"], -x["hits"]))
    return {
        "window_seconds": int(window.total_seconds()),
        "repeated_calls": sum(x["calls"] for x in hashes),
        "hits": sum(x["hits"] for x in hashes),
        "saving_usd": sum(x["saving_usd"] for x in hashes),
        "by_app_model": places,
        "top_requests": [x for x in hashes if x["hits"]][:TOP],
    }


def prompt_cache(
    rows: Iterable[dict[str, Any]], pricer: Any, lifetime: timedelta
) -> dict[str, Any]:
    """Missed and realised prompt-caching savings over ``prefix_rows``."""

    def cost(r: dict[str, Any], cache_read: int, cache_write: int) -> float | None:
        value, _ = pricer.cost(
            provider=r["provider"],
            model=r["model"],
            input_tokens=r["input_tokens"],
            output_tokens=r["output_tokens"],
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            reasoning_tokens=r["reasoning_tokens"],
            ts=_as_utc(r["ts"]),
            server_address=r["server_address"],
        )
        return value

    prefixes: dict[tuple[Any, Any], dict[str, Any]] = {}
    realised: dict[Any, dict[str, Any]] = {}
    last_use: dict[Any, datetime] = {}
    for r in rows:
        ts = _as_utc(r["ts"])
        read = int(r["cache_read_tokens"] or 0)
        written = int(r["cache_write_tokens"] or 0)
        if read > 0:
            with_cache = cost(r, read, written)
            without = cost(r, 0, 0)
            got = realised.setdefault(
                r["app"],
                {"app": r["app"], "calls": 0, "cache_read_tokens": 0, "saving_usd": 0.0},
            )
            got["calls"] += 1
            got["cache_read_tokens"] += read
            if with_cache is not None and without is not None:
                got["saving_usd"] += without - with_cache
        h = r["prefix_hash"]
        if h is None or not r["prefix_tokens"] or r["prefix_tokens"] < MIN_PREFIX_TOKENS:
            continue
        family = _family(r["provider"])
        key = (r["app"], h)
        p = prefixes.get(key)
        if p is None:
            p = prefixes[key] = {
                "app": r["app"],
                "prefix_hash": h,
                "model": r["model"],
                "provider": r["provider"],
                "mechanism": MECHANISMS.get(family, "the provider's prompt caching"),
                "prefix_tokens": int(r["prefix_tokens"]),
                "calls": 0,
                "uncached_calls": 0,
                "would_hit": 0,
                "write_premium_usd": 0.0,
                "saving_usd": 0.0,
            }
        p["calls"] += 1
        previous = last_use.get(key)
        last_use[key] = ts
        if read > 0:
            continue  # it did use the cache: realised, above
        p["uncached_calls"] += 1
        prefix = min(int(r["prefix_tokens"]), int(r["input_tokens"] or 0))
        actual = cost(r, 0, written)
        if actual is None:
            continue
        if previous is not None and ts - previous <= lifetime:
            cached = cost(r, prefix, written)
            if cached is not None:
                p["would_hit"] += 1
                p["saving_usd"] += actual - cached
        elif family in _WRITE_PREMIUM:
            writing = cost(r, 0, prefix)
            if writing is not None:
                p["write_premium_usd"] += writing - actual
    items = []
    for p in prefixes.values():
        p["net_saving_usd"] = p["saving_usd"] - p["write_premium_usd"]
        if p["would_hit"] and p["net_saving_usd"] > 0:
            items.append(p)
    items.sort(key=lambda x: (-x["net_saving_usd"], x["app"] or "", x["prefix_hash"]))
    by_app: dict[Any, dict[str, Any]] = {}
    for p in items:
        a = by_app.setdefault(p["app"], {"app": p["app"], "would_hit": 0, "net_saving_usd": 0.0})
        a["would_hit"] += p["would_hit"]
        a["net_saving_usd"] += p["net_saving_usd"]
    return {
        "lifetime_seconds": int(lifetime.total_seconds()),
        "min_prefix_tokens": MIN_PREFIX_TOKENS,
        "missed_saving_usd": sum(p["net_saving_usd"] for p in items),
        "would_hit": sum(p["would_hit"] for p in items),
        "by_app": sorted(by_app.values(), key=lambda a: -a["net_saving_usd"]),
        "prefixes": items[:TOP],
        "realised_saving_usd": sum(a["saving_usd"] for a in realised.values()),
        "realised": sorted(realised.values(), key=lambda a: -a["saving_usd"]),
    }


def cache_opportunities(
    store: Any,
    pricer: Any,
    filters: CallFilters,
    window: timedelta = DEFAULT_WINDOW,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> dict[str, Any]:
    """``/api/analysis/cache``: the response cache's and prompt caching's savings."""
    coverage = store.fingerprint_coverage(filters)
    return {
        "calls": int(coverage["calls"] or 0),
        "fingerprinted_calls": int(coverage["hashed"] or 0),
        "response_cache": response_cache(store.repeated_request_rows(filters), window),
        "prompt_cache": prompt_cache(
            store.prefix_rows(filters, MIN_PREFIX_TOKENS), pricer, lifetime
        ),
    }
