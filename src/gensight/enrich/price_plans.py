"""Prices as plans: affine coefficients per input-token tier, from genai-prices' data
or from the user's prices file (``Pricer``'s overrides)."""

from __future__ import annotations

import math
import tomllib
from bisect import bisect_left
from decimal import Decimal
from pathlib import Path
from typing import Any

from gensight.conventions.providers import price_id

_MTOK = 1_000_000
_OVERRIDE_KEYS = ("provider", "input", "output", "cache_read", "cache_write")


class Plan:
    """A price as affine coefficients, per input-token tier.

    ``cost = (c + ai*input + ao*output + ar*cache_read + aw*cache_write + az*reasoning
    + ah*cache_write_1h) / 1e6`` with the coefficients (USD per million tokens, so they
    read like price lists and round-trip exactly) of the tier ``input`` falls in.
    ``cache_write_1h`` are the cache writes (already inside ``cache_write``) kept for an
    hour, which Anthropic charges more for: ``ah`` is their surcharge over a 5-minute
    write (0 where genai-prices has no 1-hour price). ``thresholds`` are the tier starts:
    a tier applies when input tokens exceed its start.
    """

    __slots__ = ("thresholds", "coeffs")

    def __init__(
        self,
        thresholds: tuple[int, ...],
        coeffs: tuple[tuple[float, ...], ...],
    ) -> None:
        self.thresholds = thresholds
        self.coeffs = coeffs

    def cost(self, i: int, o: int, r: int, w: int, z: int, h: int = 0) -> float:
        """USD for input, output, cache-read, cache-write, reasoning and 1-hour
        cache-write (part of the cache writes) token counts."""
        if h > w:
            w = h
        if r + w > i:
            i = r + w
        if z > o:
            o = z
        if self.thresholds:
            c, ai, ao, ar, aw, az, *ah = self.coeffs[bisect_left(self.thresholds, i)]
        else:
            c, ai, ao, ar, aw, az, *ah = self.coeffs[0]
        total = (c + ai * i + ao * o + ar * r + aw * w + az * z) / 1_000_000
        if h and ah:
            total += ah[0] * h / 1_000_000
        return total if total > 0.0 else 0.0


class Override:
    __slots__ = ("name", "providers", "plan")

    def __init__(self, name: str, providers: frozenset[str] | None, plan: Plan) -> None:
        self.name = name
        self.providers = providers
        self.plan = plan


# -- genai-prices price → plan ------------------------------------------------------


def plan_from_model_price(mp: Any) -> Plan | None:
    """Derive affine coefficients by asking genai-prices to price a few usages.

    Within one input-token tier the cost genai-prices computes is affine in the five
    counts we have, so two input points and one probe per other count give it
    exactly, with genai-prices' own rules (what counts inside what, request fees).
    """
    from genai_prices.types import TieredPrices, Usage

    if all(getattr(mp, k, None) is None for k in ("input_mtok", "output_mtok", "requests_kcount")):
        return None  # priced by characters, seconds, images…: token usage can't price it

    def f(i: int, o: int = 0, r: int = 0, w: int = 0, z: int = 0, h: int = 0) -> Decimal:
        usage: dict[str, int] = {"input_tokens": i, "output_tokens": o}
        if r:
            usage["cache_read_tokens"] = r
        if w:
            usage["cache_write_tokens"] = w
        if h:
            usage["cache_write_1h_tokens"] = h
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
        ah = (f(hi, w=hi, h=hi) - f(hi, w=hi)) / hi if hi else Decimal(0)
        coeffs.append(tuple(float(x * _MTOK) for x in (c, ai, ao, ar, aw, az, ah)))
    return Plan(tuple(thresholds), tuple(coeffs))  # type: ignore[arg-type]


# -- overrides file -----------------------------------------------------------------


def load_overrides(path: Path) -> dict[str, Override]:
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

    out: dict[str, Override] = {}
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
            providers = frozenset(canonical_name(p) for p in items)

        inp = rates["input"]
        plan = Plan(
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
        out[lname] = Override(name, providers, plan)
    return out


def canonical_name(provider: str) -> str:
    """genai-prices' id for a provider name in any spelling (the one provider table)."""
    return price_id(provider) or provider.strip().lower()
