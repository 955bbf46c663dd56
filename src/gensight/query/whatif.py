"""What-if prices: the recorded usage of a filter repriced under other models' prices.

For every matching call that reported usage, its own token counts (input, output,
cache reads, cache writes, reasoning) are priced with the target model's price at the
call's start time, through the same ``Pricer`` that priced it when it was stored
(genai-prices' data and the user's prices file). So the call keeps its cache-read and
cache-write shares and its reasoning tokens, priced as the target prices them; tiers and
dated prices apply per call, as genai-prices' ``calc_price`` applies them.

Next to each target's total stands the real cost (the stored ``cost_usd``). A target in
another provider's family is marked ``estimate``: its tokenizer would count the same
text differently, so the figure is the recorded counts at its prices, not what it would
have billed. A target the price data does not know is refused (``ParamError``: a 400),
never answered as $0.
"""

from __future__ import annotations

from typing import Any

from gensight.model.vocab import GROUP_BY, one_of
from gensight.query.params import ParamError
from gensight.store.base import CallFilters

#: Targets one question may compare at most.
MAX_TARGETS = 5
TOKENIZER_NOTE = "estimate: token counts differ between tokenizers"


def parse_targets(text: str | None, param: str = "as") -> list[tuple[str | None, str]]:
    """``gpt-4o-mini,anthropic:claude-3-5-haiku`` → ``[(provider, model), …]``."""
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    if not items:
        raise ParamError(param, "required: the model(s) to reprice as, e.g. gpt-4o-mini")
    if len(items) > MAX_TARGETS:
        raise ParamError(param, f"at most {MAX_TARGETS} models")
    out: list[tuple[str | None, str]] = []
    for item in items:
        provider, sep, model = item.partition(":")
        if not sep:
            provider, model = "", item
        if not model.strip():
            raise ParamError(param, f"{item!r} names no model")
        out.append((provider.strip() or None, model.strip()))
    return out


def _target_name(provider: str | None, model: str) -> str:
    return f"{provider}:{model}" if provider else model


def what_if(
    store: Any,
    pricer: Any,
    filters: CallFilters,
    targets: list[tuple[str | None, str]],
    group_by: str = "model",
) -> dict[str, Any]:
    """Real cost and each target's cost of the matching calls' usage, in total and per group.

    ``targets`` are ``(provider or None, model)``; an unpriced one raises ``ParamError``.
    """
    if group_by not in GROUP_BY:
        raise ParamError("group_by", one_of(GROUP_BY))
    families: list[str] = []
    for provider, model in targets:
        ident = pricer.price_id(provider, model)
        probe, _ = pricer.cost(provider=provider, model=model, input_tokens=1, output_tokens=1)
        if ident is None or probe is None:
            raise ParamError(
                "as",
                f"no price for {_target_name(provider, model)!r} in the price data or the"
                " prices file: it cannot be repriced (never shown as $0)",
            )
        families.append(ident[0])
    names = [_target_name(p, m) for p, m in targets]
    family_of: dict[tuple[str | None, str | None], str | None] = {}

    def family(provider: str | None, model: str | None) -> str | None:
        key = (provider, model)
        if key not in family_of:
            ident = pricer.price_id(provider, model)
            family_of[key] = ident[0] if ident else None
        return family_of[key]

    groups: dict[Any, dict[str, Any]] = {}
    for r in store.usage_rows(filters, group_by):
        g = groups.get(r["grp"])
        if g is None:
            g = groups[r["grp"]] = {
                "group": r["grp"],
                "calls": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "reasoning_tokens": 0,
                "cost_usd": 0.0,
                "unpriced_calls": 0,
                "targets": [{"model": n, "cost_usd": 0.0, "estimate": False} for n in names],
            }
        g["calls"] += 1
        counts = {
            k: int(r[k] or 0)
            for k in (
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_write_tokens",
                "reasoning_tokens",
            )
        }
        for k, v in counts.items():
            g[k] += v
        if r["cost_usd"] is None:
            g["unpriced_calls"] += 1
        else:
            g["cost_usd"] += float(r["cost_usd"])
        ts = r["ts"]
        own = family(r["provider"], r["model"])
        for i, (provider, model) in enumerate(targets):
            cost, _ = pricer.cost(provider=provider, model=model, ts=ts, **counts)
            t = g["targets"][i]
            t["cost_usd"] += cost or 0.0
            if own != families[i]:
                t["estimate"] = True
    items = sorted(groups.values(), key=lambda g: (-g["cost_usd"], -g["calls"], str(g["group"])))
    totals = {
        "calls": sum(g["calls"] for g in items),
        "cost_usd": sum(g["cost_usd"] for g in items),
        "unpriced_calls": sum(g["unpriced_calls"] for g in items),
        "targets": [
            {
                "model": n,
                "cost_usd": sum(g["targets"][i]["cost_usd"] for g in items),
                "estimate": any(g["targets"][i]["estimate"] for g in items),
            }
            for i, n in enumerate(names)
        ],
    }
    for block in (totals, *items):
        for t in block["targets"]:
            # the real cost of unpriced calls is unknown: no saving is claimed against it
            t["saving_usd"] = (
                block["cost_usd"] - t["cost_usd"] if not block["unpriced_calls"] else None
            )
    return {
        "group_by": group_by,
        "targets": names,
        "totals": totals,
        "groups": items,
        "note": TOKENIZER_NOTE if any(t["estimate"] for t in totals["targets"]) else None,
    }
