"""Where a producer's own convention plugs into the span mapper.

A convention module (MLflow, the Vercel AI SDK, logfire …) defines a ``Convention``
and is listed in ``_MODULES`` below; nothing else changes. For each span the mapper
asks every registered convention, in order, for the OTel GenAI attributes its own
ones mean (``translate``): e.g. MLflow's ``mlflow.spanType = "CHAT_MODEL"`` means
``gen_ai.operation.name = "chat"``, ``mlflow.chat.tokenUsage`` holds
``gen_ai.usage.input_tokens``. What a convention returns fills in only what the span
does not say itself under the standard name; the span's stored attributes stay as
sent. Then, once the CallRecord is built, ``refine(call, attrs)`` may set what has no
standard attribute (messages from a JSON body, a real duration …).

Deciding what is a call follows from the translated attributes (see
``gensight.conventions.operations``): a convention that maps its agent spans to
``gen_ai.operation.name = "invoke_agent"`` (or to nothing) keeps them spans.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Translate = Callable[[dict[str, Any], str], dict[str, Any] | None]
Refine = Callable[[Any, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Convention:
    """A producer convention: ``name`` (also the record's ``producer`` when the scope
    does not say), ``translate(attrs, scope_name)`` → OTel GenAI attributes (or None
    when the span is not this convention's), optional ``refine(call, attrs)``."""

    name: str
    translate: Translate
    refine: Refine | None = None


#: Modules that define ``CONVENTION`` (a ``Convention``), in order of precedence.
#: Adding a convention: write ``gensight/conventions/<name>.py`` and list it here.
_MODULES: tuple[str, ...] = ()

_registered: list[Convention] = []
_loaded = False


def register(convention: Convention) -> None:
    """Add a convention after the listed ones (tests, plugins)."""
    _registered.append(convention)


def conventions() -> list[Convention]:
    """Every convention: the listed modules' (imported once), then registered ones."""
    global _loaded
    if not _loaded:
        _loaded = True
        listed = []
        for name in _MODULES:
            module = importlib.import_module(f"gensight.conventions.{name}")
            listed.append(module.CONVENTION)
        _registered[:0] = listed
    return _registered


def translate(attrs: dict[str, Any], scope_name: str) -> tuple[dict[str, Any], list[Convention]]:
    """The span's attributes as the mapper reads them: its own, plus what the
    conventions translate (never overriding a key the span sets), and which
    conventions applied (for ``refine``)."""
    convs = conventions()
    if not convs:
        return attrs, []
    view: dict[str, Any] | None = None
    applied: list[Convention] = []
    for conv in convs:
        extra = conv.translate(attrs, scope_name)
        if not extra:
            continue
        applied.append(conv)
        if view is None:
            view = dict(attrs)
        for k, v in extra.items():
            if view.get(k) in (None, ""):
                view[k] = v
    return (view if view is not None else attrs), applied
