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
own rates and the rest at the plain input/output rate. Inconsistent counts (more
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
Self-hosted servers (Ollama, vLLM, llama.cpp…) are never priced from the
public price list: only overrides price them.

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
import math
import threading
import tomllib
from bisect import bisect_left
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from gensight.model.records import CallRecord

__all__ = ["Pricer"]

log = logging.getLogger(__name__)

_MTOK = 1_000_000

#: Gensight / convention provider spellings → genai-prices provider ids.
#: Keys are normalized by ``_normalize_name`` (lowercase, spaces → ``_``).
_PROVIDER_ALIASES: dict[str, str] = {
    # OpenAI
    "openai": "openai",
    # Azure (azure has OpenAI, Anthropic, DeepSeek, xAI and Moonshot models as fallbacks)
    "azure": "azure",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "az_ai_inference": "azure",
    "azure_openai": "azure",
    "azure-openai": "azure",
    "azureopenai": "azure",
    "azure_ai_inference": "azure",
    # Anthropic
    "anthropic": "anthropic",
    # AWS Bedrock
    "aws.bedrock": "aws",
    "aws_bedrock": "aws",
    "amazon_bedrock": "aws",
    "bedrock": "aws",
    "aws": "aws",
    # Google
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "google": "google",
    "gemini": "google",
    "google_ai_studio": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "vertex": "google",
    # Mistral
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    # xAI
    "x_ai": "x-ai",
    "xai": "x-ai",
    "x-ai": "x-ai",
    # DeepSeek, Moonshot
    "deepseek": "deepseek",
    "moonshot_ai": "moonshotai",
    "moonshotai": "moonshotai",
    "moonshot": "moonshotai",
    # others
    "groq": "groq",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "together": "together",
    "together_ai": "together",
    "togetherai": "together",
    "together.ai": "together",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "fireworksai": "fireworks",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
    "zhipuai": "zhipuai",
    "minimax": "minimax",
}

#: Servers people run themselves: the public price list does not apply to them.
_SELF_HOSTED = frozenset(
    {
        "ollama",
        "vllm",
        "llama.cpp",
        "llama_cpp",
        "llamacpp",
        "llamafile",
        "lmstudio",
        "lm_studio",
        "localai",
        "tgi",
        "text-generation-inference",
        "huggingface_tgi",
        "sglang",
        "gpt4all",
    }
)

_OVERRIDE_KEYS = ("provider", "input", "output", "cache_read", "cache_write")
_MAX_CACHE = 50_000  # (provider, model) pairs come from the wire: keep the cache bounded


def _normalize_name(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


class _Plan:
    """A price as affine coefficients, per input-token tier.

    ``cost = (c + ai*input + ao*output + ar*cache_read + aw*cache_write + az*reasoning) / 1e6``
    with the coefficients (USD per million tokens, so they read like price lists and
    round-trip exactly) of the tier ``input`` falls in. ``thresholds`` are the tier
    starts: a tier applies when input tokens exceed its start.
    """

    __slots__ = ("thresholds", "coeffs")

    def __init__(
        self,
        thresholds: tuple[int, ...],
        coeffs: tuple[tuple[float, float, float, float, float, float], ...],
    ) -> None:
        self.thresholds = thresholds
        self.coeffs = coeffs

    def cost(self, i: int, o: int, r: int, w: int, z: int) -> float:
        if r + w > i:
            i = r + w
        if z > o:
            o = z
        if self.thresholds:
            c, ai, ao, ar, aw, az = self.coeffs[bisect_left(self.thresholds, i)]
        else:
            c, ai, ao, ar, aw, az = self.coeffs[0]
        total = (c + ai * i + ao * o + ar * r + aw * w + az * z) / 1_000_000
        return total if total > 0.0 else 0.0


class _Override:
    __slots__ = ("name", "providers", "plan")

    def __init__(self, name: str, providers: frozenset[str] | None, plan: _Plan) -> None:
        self.name = name
        self.providers = providers
        self.plan = plan


# A resolved price: (cost_source, fixed plan or None, genai-prices ModelInfo when the
# plan depends on the call's time). ``None`` in the cache means "not priced".
_Entry = tuple[str, _Plan | None, Any]


class Pricer:
    """Prices calls: user overrides, then genai-prices data. Safe to share between threads."""

    def __init__(self, overrides: Path | None = None) -> None:
        """Load the user's prices, if any.

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
        """
        self._overrides: dict[str, _Override] = (
            _load_overrides(Path(overrides)) if overrides is not None else {}
        )
        self._cache: dict[tuple[Any, ...], _Entry | None] = {}
        self._plans: dict[int, tuple[Any, _Plan | None]] = {}  # id(ModelPrice) → plan
        self._lock = threading.Lock()
        self._snapshot: Any = None
        self._gp_ids: frozenset[str] = frozenset()

    # -- public API -------------------------------------------------------------------

    def price(self, call: CallRecord) -> None:
        """Set ``call.cost_usd`` and ``call.cost_source`` in place (see the module docstring)."""
        it = call.input_tokens
        ot = call.output_tokens
        if it is not None or ot is not None:
            key = (call.provider, call.response_model, call.request_model)
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
                    )
                    call.cost_source = source
                    return
        if call.reported_cost_usd is not None:
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
    ) -> tuple[float | None, str]:
        """``(cost_usd, cost_source)`` for one call's usage; ``(None, "unknown")`` if unpriced.

        ``ts`` is the call's start time (selects dated and time-of-day prices); default now.
        """
        if input_tokens is None and output_tokens is None:
            return None, "unknown"
        key = (provider, model, None)
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

    # -- resolution (cache misses) ----------------------------------------------------

    def _resolve(self, key: tuple[Any, ...]) -> _Entry | None:
        provider, *models = key
        names = []
        for m in models:
            if isinstance(m, str) and m.strip() and m.strip() not in names:
                names.append(m.strip())
        entry = self._resolve_names(provider if isinstance(provider, str) else None, names)
        with self._lock:
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            self._cache[key] = entry
        return entry

    def _resolve_names(self, provider: str | None, names: list[str]) -> _Entry | None:
        if not names:
            return None
        self._load_snapshot()
        canon = self._canonical_provider(provider)
        found = None
        if canon not in _SELF_HOSTED:
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
        name = _canonical_name(provider)
        if not name or name in self._gp_ids or name in _SELF_HOSTED:
            return name or None
        if name not in _PROVIDER_ALIASES.values():
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

            snapshot = get_snapshot()
            self._gp_ids = frozenset(p.id for p in snapshot.providers)
            self._snapshot = snapshot

    def _timed_plan(self, info: Any, ts: datetime | None) -> _Plan | None:
        if ts is None:
            ts = datetime.now(tz=UTC)
        return self._plan_for(info.get_prices(ts))

    def _plan_for(self, model_price: Any) -> _Plan | None:
        cached = self._plans.get(id(model_price))
        if cached is not None and cached[0] is model_price:
            return cached[1]
        try:
            plan = _plan_from_model_price(model_price)
        except Exception:  # malformed price data: leave the model unpriced
            log.warning("cannot use genai-prices price %r", model_price, exc_info=True)
            plan = None
        with self._lock:
            self._plans[id(model_price)] = (model_price, plan)
        return plan


# -- genai-prices price → plan ------------------------------------------------------


def _plan_from_model_price(mp: Any) -> _Plan | None:
    """Derive affine coefficients by asking genai-prices to price a few usages.

    Within one input-token tier the cost genai-prices computes is affine in the five
    counts we have, so two input points and one probe per other count give it
    exactly, with genai-prices' own rules (what counts inside what, request fees).
    """
    from genai_prices.types import TieredPrices, Usage

    if all(getattr(mp, k, None) is None for k in ("input_mtok", "output_mtok", "requests_kcount")):
        return None  # priced by characters, seconds, images…: token usage can't price it

    def f(i: int, o: int = 0, r: int = 0, w: int = 0, z: int = 0) -> Decimal:
        usage: dict[str, int] = {"input_tokens": i, "output_tokens": o}
        if r:
            usage["cache_read_tokens"] = r
        if w:
            usage["cache_write_tokens"] = w
        if z:
            usage["output_reasoning_tokens"] = z
        return mp.calc_price(Usage(**usage))["total_price"]

    thresholds = sorted(
        {
            tier.start
            for value in vars(mp).values()
            if isinstance(value, TieredPrices)
            for tier in value.tiers
        }
    )
    # Interval k holds input counts with exactly k thresholds below them: [lo, hi].
    bounds = []
    lo = 0
    for t in thresholds:
        bounds.append((lo, t))
        lo = t + 1
    bounds.append((lo, lo + _MTOK))

    n = _MTOK
    coeffs = []
    for lo, hi in bounds:
        f_hi = f(hi)
        ai = (f_hi - f(lo)) / (hi - lo) if hi > lo else Decimal(0)
        c = f_hi - ai * hi
        ao = (f(hi, o=n) - f_hi) / n
        az = (f(hi, o=n, z=n) - f(hi, o=n)) / n
        ar = (f(hi, r=hi) - f_hi) / hi if hi else Decimal(0)
        aw = (f(hi, w=hi) - f_hi) / hi if hi else Decimal(0)
        coeffs.append(tuple(float(x * _MTOK) for x in (c, ai, ao, ar, aw, az)))
    return _Plan(tuple(thresholds), tuple(coeffs))  # type: ignore[arg-type]


# -- overrides file -----------------------------------------------------------------


def _load_overrides(path: Path) -> dict[str, _Override]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"prices file {path}: not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"prices file {path}: cannot read: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"prices file {path}: invalid TOML: {e}") from e

    for key in data:
        if key != "models":
            raise ValueError(
                f'prices file {path}: unknown top-level key "{key}" (expected [models."NAME"])'
            )
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise ValueError(f'prices file {path}: "models" must be a table of [models."NAME"] tables')

    out: dict[str, _Override] = {}
    for name, spec in models.items():
        where = f'prices file {path}: [models."{name}"]'
        if not name.strip():
            raise ValueError(f"{where}: the model name is empty")
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: must be a table with input and output prices")
        for key in spec:
            if key not in _OVERRIDE_KEYS:
                raise ValueError(
                    f'{where}: unknown key "{key}" (allowed: {", ".join(_OVERRIDE_KEYS)})'
                )
        rates: dict[str, float] = {}
        for key in ("input", "output", "cache_read", "cache_write"):
            if key not in spec:
                if key in ("input", "output"):
                    raise ValueError(f'{where}: missing "{key}" (USD per 1M tokens)')
                continue
            value = spec[key]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(
                    f'{where}: "{key}" must be a non-negative number (USD per 1M tokens), '
                    f"got {value!r}"
                )
            rates[key] = float(value)

        providers: frozenset[str] | None = None
        if "provider" in spec:
            raw = spec["provider"]
            items = [raw] if isinstance(raw, str) else raw
            if (
                not isinstance(items, list)
                or not items
                or not all(isinstance(p, str) and p.strip() for p in items)
            ):
                raise ValueError(
                    f'{where}: "provider" must be a provider name or a list of them, got {raw!r}'
                )
            providers = frozenset(_canonical_name(p) for p in items)

        inp = rates["input"]
        plan = _Plan(
            (),
            (
                (
                    0.0,
                    inp,
                    rates["output"],
                    rates.get("cache_read", inp) - inp,
                    rates.get("cache_write", inp) - inp,
                    0.0,
                ),
            ),
        )
        lname = name.strip().lower()
        if lname in out:
            raise ValueError(f'{where}: model "{name}" is listed twice (names ignore case)')
        out[lname] = _Override(name, providers, plan)
    return out


def _canonical_name(provider: str) -> str:
    name = _normalize_name(provider)
    return _PROVIDER_ALIASES.get(name, name)
