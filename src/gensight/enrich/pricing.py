"""Cost of a call from its token usage, offline.

``Pricer.price(call)`` sets ``call.cost_usd`` and ``call.cost_source`` in place;
``Pricer.cost(...)`` answers the same question from plain arguments.

Where the price comes from (``cost_source``), first match wins:

1. ``override``: the user's prices file (``--prices FILE``, TOML, USD per million
   tokens, see ``Pricer.__init__``) prices the model, by the call's response model,
   its request model, or the canonical model id genai-prices matched them to
   (an override of ``gpt-4o`` also covers ``gpt-4o-2024-08-06``). An override with
   ``provider = "…"`` applies only to calls of that provider.
2. ``computed``: the price data shipped in the installed ``genai-prices`` package.
3. ``reported``: no price, but the producer sent its own figure
   (``call.reported_cost_usd``, e.g. OpenLIT's ``gen_ai.usage.cost``).
4. ``unknown``: ``cost_usd`` is ``None``, never 0. Also when the call has no usage
   at all (input and output tokens both missing) and no reported cost.

Usage follows the OTel GenAI rule: input tokens include cache reads and cache
writes, output tokens include reasoning tokens. Cache reads, cache writes (and
reasoning tokens, for the few models that price them apart) are charged at their
own rates and the rest at the plain input/output rate; Anthropic's 1-hour cache
writes (the attribute ``CACHE_WRITE_1H``, part of the cache writes) pay genai-prices'
1-hour write rate. Inconsistent counts (more
cached than input tokens, more reasoning than output tokens) are read as "input
(output) is at least the sum of its parts" instead of failing. Tiered prices
(the whole call pays the tier its input token count reaches), per-request fees,
dated price changes and time-of-day prices (DeepSeek off-peak) follow genai-prices,
using the call's start time.

Model matching: the response model (often a dated snapshot such as
``gpt-4o-mini-2024-07-18``) is tried first, then the request model. Provider names
(``gen_ai.provider.name`` values such as ``azure.ai.openai``, ``aws.bedrock``,
``gcp.vertex_ai``, ``x_ai``, ``moonshot_ai`` and the other conventions' spellings,
any case) are mapped to genai-prices provider ids. An unknown or missing provider
lets genai-prices match by the model name alone, then tries OpenAI (every call
Gensight sees speaks the OpenAI API). Since OpenAI client instrumentations call
every OpenAI-compatible service ``openai``, a model OpenAI does not sell
(``deepseek-chat``, ``kimi-k2``…) reported under ``openai`` is matched by name too.

Self-hosted calls are never priced from the public price list: a call whose provider
is a self-hosted server (ollama, vllm, llama.cpp, lm_studio, localai, tgi, sglang …,
see ``gensight.conventions.providers``) or whose ``server.address`` is loopback,
private (RFC 1918, link-local, ``::1``, fc00::/7) or ``localhost``/``*.local``/
``*.internal``. Only an override prices it; otherwise ``cost_usd`` is null,
``cost_source`` ``unknown`` (a producer's reported cost is not used either: it comes
from a public list too) and the attribute ``gensight.cost_reason`` is
``self_hosted``. An ``openai-v2`` span of Ollama's ``deepseek-r1`` on localhost is
therefore not priced at DeepSeek's rates. Hosts listed in ``priced_hosts`` (or the
``GENSIGHT_PRICED_HOSTS`` environment variable) are priced publicly even so: a private
proxy in front of a public provider, or a local stand-in for one (the demo, tests).

Implausible inputs (negative or non-finite token counts or costs, counts above 10^9)
are refused before pricing (``gensight.conventions.plausible``): stored as null with
the original kept as ``gensight.refused.<field>``, never priced or summed.

Offline: genai-prices can refresh its data from GitHub, but only through its
``UpdatePrices`` background task, which Gensight never starts; lookups read the
data snapshot bundled with the installed package and never touch the network.

Speed: the price of each (provider, response model, request model) is resolved
once and kept as a few float coefficients per price tier, derived from genai-prices'
own ``calc_price``; a cached ``price()`` is a dict lookup and a handful of
multiplications.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gensight.conventions.plausible import refuse_implausible_call
from gensight.conventions.providers import (
    PRICE_IDS,
    SELF_HOSTED,
    host_of,
    is_private_host,
    is_self_hosted_provider,
)
from gensight.enrich.price_data import load_bundled
from gensight.enrich.price_plans import (
    Override,
    Plan,
    canonical_name,
    load_overrides,
    plan_from_model_price,
)
from gensight.model.records import CallRecord

__all__ = ["COST_REASON", "PRICED_HOSTS_ENV", "Pricer", "plan_from_model_price"]

log = logging.getLogger(__name__)

#: Attribute saying why a call has no cost although it has usage.
COST_REASON = "gensight.cost_reason"
#: Hosts (comma list) priced from the public list although loopback or private.
PRICED_HOSTS_ENV = "GENSIGHT_PRICED_HOSTS"
_SELF_HOSTED_IDS = frozenset(canonical_name(p) for p in SELF_HOSTED)
_KNOWN_IDS = frozenset(PRICE_IDS.values())

_MAX_CACHE = 50_000  # (provider, model) pairs come from the wire: keep the cache bounded


# A resolved price: (cost_source, fixed plan or None, genai-prices ModelInfo when the
# plan depends on the call's time). ``None`` in the cache means "not priced".
_Entry = tuple[str, Plan | None, Any]


#: Attribute holding how many of a call's cache writes are kept for an hour (Anthropic's
#: ``usage.cache_creation.ephemeral_1h_input_tokens``): priced at their own rate.
CACHE_WRITE_1H = "anthropic.usage.cache_creation.ephemeral_1h_input_tokens"


def _write_1h(call: CallRecord) -> int:
    attrs = call.attributes
    value = attrs.get(CACHE_WRITE_1H) if isinstance(attrs, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class Pricer:
    """Prices calls: user overrides, then genai-prices data. Safe to share between threads."""

    def __init__(
        self,
        overrides: Path | None = None,
        priced_hosts: Iterable[str] | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        """Load the user's prices, if any.

        ``priced_hosts``: hosts (``host`` or ``host:port``; the port is ignored) that are
        priced from the public list although their address is loopback or private —
        a private proxy in front of a public provider, a test double of one. Default:
        the ``GENSIGHT_PRICED_HOSTS`` environment variable (comma list), else none.

        The file is TOML, prices in USD per million tokens::

            [models."my-llama-70b"]
            input = 0.6          # required
            output = 0.8         # required
            cache_read = 0.06    # optional, default: the input price
            cache_write = 0.75   # optional, default: the input price
            [models."gpt-4o"]
            provider = "openai"  # optional: only for this provider (or a list of them)
            input = 2.0
            output = 8.0

        Raises ``ValueError`` naming the file, model and key for anything invalid.

        ``cache_dir``: where genai-prices' data may be kept compiled
        (``gensight.enrich.price_data``); None imports it as Python does.
        """
        self._cache_dir = cache_dir
        self._overrides: dict[str, Override] = (
            load_overrides(Path(overrides)) if overrides is not None else {}
        )
        if priced_hosts is None:
            priced_hosts = os.environ.get(PRICED_HOSTS_ENV, "").split(",")
        self._priced_hosts = frozenset(
            h for h in (host_of(x.strip()) for x in priced_hosts if x and x.strip()) if h
        )
        self._private: dict[str | None, bool] = {}  # server address → self-hosted?
        self._cache: dict[tuple[Any, ...], _Entry | None] = {}
        self._plans: dict[int, tuple[Any, Plan | None]] = {}  # id(ModelPrice) → plan
        self._lock = threading.Lock()
        self._snapshot: Any = None
        self._gp_ids: frozenset[str] = frozenset()

    # -- public API -------------------------------------------------------------------
    def reload(self, overrides: Path | None) -> None:
        """Read the prices file again (``gensight reprice``); ValueError as at start, and
        then the old prices stay."""
        loaded = load_overrides(Path(overrides)) if overrides is not None else {}
        with self._lock:
            self._overrides = loaded
            self._cache = {}
            self._plans = {}

    def price(self, call: CallRecord) -> None:
        """Set ``call.cost_usd`` and ``call.cost_source`` in place (see the module docstring)."""
        refuse_implausible_call(call)  # a negative count or cost never reaches a total
        it = call.input_tokens
        ot = call.output_tokens
        local = self.self_hosted(call.provider, call.server_address)
        if it is not None or ot is not None:
            key = (call.provider, call.response_model, call.request_model, local)
            try:
                entry = self._cache[key]
            except KeyError:
                entry = self._resolve(key)
            if entry is not None:
                source, plan, model = entry
                if plan is None:
                    plan = self._timed_plan(model, call.ts)
                if plan is not None:
                    call.cost_usd = plan.cost(
                        it or 0,
                        ot or 0,
                        call.cache_read_tokens or 0,
                        call.cache_write_tokens or 0,
                        call.reasoning_tokens or 0,
                        _write_1h(call),
                    )
                    call.cost_source = source
                    return
        if local:
            # A model on the user's own server costs what the user says (an override),
            # not what a public provider charges for a model of that name.
            call.cost_usd = None
            call.cost_source = "unknown"
            if it is not None or ot is not None or call.reported_cost_usd is not None:
                attrs = call.attributes
                if not isinstance(attrs, dict):
                    attrs = call.attributes = dict(attrs or {})
                attrs[COST_REASON] = "self_hosted"
        elif call.reported_cost_usd is not None:
            call.cost_usd = call.reported_cost_usd
            call.cost_source = "reported"
        else:
            call.cost_usd = None
            call.cost_source = "unknown"

    def cost(
        self,
        *,
        provider: str | None,
        model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        ts: datetime | None = None,
        server_address: str | None = None,
    ) -> tuple[float | None, str]:
        """``(cost_usd, cost_source)`` for one call's usage; ``(None, "unknown")`` if unpriced.

        ``ts`` is the call's start time (selects dated and time-of-day prices); default now.
        ``server_address``: the host the call went to; a self-hosted one (see
        ``self_hosted``) is priced by overrides only.
        """
        if input_tokens is None and output_tokens is None:
            return None, "unknown"
        counts = (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)
        if any(n is not None and n < 0 for n in (*counts, reasoning_tokens)):
            return None, "unknown"
        key = (provider, model, None, self.self_hosted(provider, server_address))
        try:
            entry = self._cache[key]
        except KeyError:
            entry = self._resolve(key)
        if entry is None:
            return None, "unknown"
        source, plan, info = entry
        if plan is None:
            plan = self._timed_plan(info, ts)
            if plan is None:
                return None, "unknown"
        return (
            plan.cost(
                input_tokens or 0,
                output_tokens or 0,
                cache_read_tokens or 0,
                cache_write_tokens or 0,
                reasoning_tokens or 0,
            ),
            source,
        )

    def price_id(self, provider: str | None, model: str | None) -> tuple[str, str] | None:
        """``(provider id, model id)`` genai-prices matches ``model`` to (``("override",
        name)`` for the user's price), or None when the model is not priced."""
        if not model or not model.strip():
            return None
        entry = self._resolve((provider, model, None, False))
        if entry is None:
            return None
        if entry[0] == "override":
            return ("override", model.strip().lower())
        found = self._find(self._canonical_provider(provider), model.strip())
        if found is None:
            return None
        return (found[0].id, found[1].id)

    def self_hosted(self, provider: str | None, server_address: str | None) -> bool:
        """Whether a call ran on the user's own server: a self-hosted provider (ollama,
        vllm …), or a loopback/private/``*.local`` address not in ``priced_hosts``."""
        if provider is not None and is_self_hosted_provider(provider):
            return True
        try:
            return self._private[server_address]
        except KeyError:
            pass
        host = host_of(server_address)
        private = is_private_host(host) and host not in self._priced_hosts
        with self._lock:
            if len(self._private) >= _MAX_CACHE:
                self._private.clear()
            self._private[server_address] = private
        return private

    # -- resolution (cache misses) ----------------------------------------------------

    def _resolve(self, key: tuple[Any, ...]) -> _Entry | None:
        provider, *models, local = key
        names = []
        for m in models:
            if isinstance(m, str) and m.strip() and m.strip() not in names:
                names.append(m.strip())
        entry = self._resolve_names(provider if isinstance(provider, str) else None, names, local)
        with self._lock:
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            self._cache[key] = entry
        return entry

    def _resolve_names(
        self, provider: str | None, names: list[str], local: bool = False
    ) -> _Entry | None:
        if not names:
            return None
        self._load_snapshot()
        canon = self._canonical_provider(provider)
        found = None
        if not local and canon not in _SELF_HOSTED_IDS:
            for name in names:
                found = self._find(canon, name)
                if found is not None:
                    break
        if self._overrides:
            effective = canon if canon is not None else (found[0].id if found else None)
            candidates = names + ([found[1].id] if found is not None else [])
            for name in candidates:
                ov = self._overrides.get(name.lower())
                if ov is not None and (ov.providers is None or effective in ov.providers):
                    return ("override", ov.plan, None)
        if found is None:
            return None
        _, info = found
        from genai_prices.types import ModelPrice

        if isinstance(info.prices, ModelPrice):
            plan = self._plan_for(info.prices)
            return None if plan is None else ("computed", plan, None)
        return ("computed", None, info)  # dated / time-of-day prices: chosen per call

    def _find(self, canon: str | None, model: str) -> Any:
        """genai-prices' (Provider, ModelInfo) for a model, or None."""
        gp_id = canon if canon in self._gp_ids else None
        attempts: list[str | None] = []
        if gp_id is not None:
            attempts.append(gp_id)
        if gp_id is None or gp_id == "openai":
            attempts.append(None)  # match by model name alone
        if gp_id is None:
            attempts.append("openai")
        if canon == "litellm":
            attempts.insert(0, "litellm")
        for pid in attempts:
            try:
                return self._snapshot.find_provider_model(model, None, pid, None)
            except LookupError:
                pass
        # "vendor/model" spellings (LiteLLM, OpenRouter, some gateways)
        prefix, sep, rest = model.partition("/")
        if sep and rest:
            pid = self._canonical_provider(prefix)
            if pid in self._gp_ids:
                try:
                    return self._snapshot.find_provider_model(rest, None, pid, None)
                except LookupError:
                    pass
        return None

    def _canonical_provider(self, provider: str | None) -> str | None:
        """genai-prices' id for a provider name, else the normalized name itself."""
        if provider is None:
            return None
        name = canonical_name(provider)
        if not name or name in self._gp_ids or name in _SELF_HOSTED_IDS:
            return name or None
        if name not in _KNOWN_IDS:
            # genai-prices' own provider matching ("together-ai", "cloudflare-workers-ai"…)
            from genai_prices.data_snapshot import find_provider_by_id

            match = find_provider_by_id(self._snapshot.providers, name)
            if match is not None:
                return match.id
        return name

    def _load_snapshot(self) -> None:
        if self._snapshot is None:
            # Imported here: genai-prices' data takes ~1 s to import. Only the bundled
            # snapshot is read; ``genai_prices.UpdatePrices`` (the one network path) is
            # never started.
            from genai_prices.data_snapshot import get_snapshot

            load_bundled(self._cache_dir)

            snapshot = get_snapshot()
            self._gp_ids = frozenset(p.id for p in snapshot.providers)
            self._snapshot = snapshot

    def _timed_plan(self, info: Any, ts: datetime | None) -> Plan | None:
        if ts is None:
            ts = datetime.now(tz=UTC)
        return self._plan_for(info.get_prices(ts))

    def _plan_for(self, model_price: Any) -> Plan | None:
        cached = self._plans.get(id(model_price))
        if cached is not None and cached[0] is model_price:
            return cached[1]
        try:
            plan = plan_from_model_price(model_price)
        except Exception:  # malformed price data: leave the model unpriced
            log.warning("cannot use genai-prices price %r", model_price, exc_info=True)
            plan = None
        with self._lock:
            self._plans[id(model_price)] = (model_price, plan)
        return plan
