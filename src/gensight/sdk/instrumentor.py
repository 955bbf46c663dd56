"""What is wrapped: the ``openai`` client methods that make LLM calls.

``OpenAIInstrumentor(...).instrument()`` replaces each method below on its class with
a traced version (``patch.wrap_sync`` / ``patch.wrap_async``), when its module is
imported (openai 3 loads each resource on first use; see ``imports``);
``uninstrument()`` puts the originals back. Both helpers (``chat.completions.stream`` and
``responses.stream``) and ``with_raw_response`` go through ``create``, so wrapping
``create`` covers them; ``parse`` posts on its own and is wrapped too.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

from gensight.sdk import operations as ops
from gensight.sdk.imports import cancel, when_imported
from gensight.sdk.patch import wrap_async, wrap_sync
from gensight.sdk.telemetry import Gateway, Telemetry

log = logging.getLogger("gensight.sdk")

#: The instrumentation scope of every span and metric (the server knows it as
#: producer ``gensight-sdk``).
SCOPE = "gensight.sdk"

#: (module, class, method, operation, is_async)
WRAPPED: tuple[tuple[str, str, str, ops.Operation, bool], ...] = (
    ("openai.resources.chat.completions.completions", "Completions", "create", ops.CHAT, False),
    ("openai.resources.chat.completions.completions", "Completions", "parse", ops.CHAT, False),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", "create", ops.CHAT, True),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", "parse", ops.CHAT, True),
    ("openai.resources.completions", "Completions", "create", ops.TEXT_COMPLETION, False),
    ("openai.resources.completions", "AsyncCompletions", "create", ops.TEXT_COMPLETION, True),
    ("openai.resources.embeddings", "Embeddings", "create", ops.EMBEDDINGS, False),
    ("openai.resources.embeddings", "AsyncEmbeddings", "create", ops.EMBEDDINGS, True),
    ("openai.resources.responses.responses", "Responses", "create", ops.RESPONSES, False),
    ("openai.resources.responses.responses", "Responses", "parse", ops.RESPONSES, False),
    ("openai.resources.responses.responses", "AsyncResponses", "create", ops.RESPONSES, True),
    ("openai.resources.responses.responses", "AsyncResponses", "parse", ops.RESPONSES, True),
)


class OpenAIInstrumentor:
    """Traces the ``openai`` client with the given OpenTelemetry providers.

    ``gensight.init()`` builds one from its configuration; tests and apps that manage
    their own providers can use it directly::

        instrumentor = OpenAIInstrumentor(tracer_provider=tp, meter_provider=mp)
        instrumentor.instrument()
        ...
        instrumentor.uninstrument()

    ``meter`` (instead of ``meter_provider``) is any object with OpenTelemetry's
    ``create_histogram``: ``gensight.init()`` passes its faster ``histograms.Meter``.
    ``capture_content`` is ``False``, ``True`` (messages as span attributes) or one of
    the util-genai modes ``"span_only"``, ``"event_only"``, ``"span_and_event"``
    (events are ``gen_ai.client.inference.operation.details`` log records).
    """

    def __init__(
        self,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        meter: Any = None,
        logger_provider: Any = None,
        capture_content: bool | str = False,
        pricer: Any = None,
        gateway_endpoint: str | None = None,
        app: str | None = None,
        stream_usage: bool = True,
    ) -> None:
        from opentelemetry import metrics, trace
        from opentelemetry._logs import get_logger

        scope_version = version()
        mode = capture_content if isinstance(capture_content, str) else None
        capture_span = capture_content is True or mode in ("span_only", "span_and_event")
        capture_event = mode in ("event_only", "span_and_event")
        self.telemetry = Telemetry(
            trace.get_tracer(SCOPE, scope_version, tracer_provider),
            meter if meter is not None else metrics.get_meter(SCOPE, scope_version, meter_provider),
            get_logger(SCOPE, scope_version, logger_provider) if capture_event else None,
            capture_span=capture_span,
            capture_event=capture_event,
            pricer=pricer,
            gateway=Gateway(gateway_endpoint) if gateway_endpoint else None,
            app=app,
            stream_usage=stream_usage,
        )
        self._originals: list[tuple[type, str, Any]] = []
        self._hook: Any = None

    @property
    def is_instrumented(self) -> bool:
        """Whether ``instrument()`` is in effect."""
        return self._hook is not None

    def instrument(self) -> bool:
        """Wrap the methods in ``WRAPPED``: now if their module is loaded, else on import.

        False if ``openai`` is not installed.
        """
        if self._hook is not None:
            return True
        try:
            import openai  # noqa: F401
        except ImportError:
            return False
        self._hook = self._wrap_module
        for module_name in dict.fromkeys(m for m, *_ in WRAPPED):
            when_imported(module_name, self._hook)
        return True

    def _wrap_module(self, module: ModuleType) -> None:
        for module_name, class_name, method, op, is_async in WRAPPED:
            if module_name != module.__name__:
                continue
            cls = getattr(module, class_name, None)
            original = getattr(cls, "__dict__", {}).get(method)
            if original is None:
                log.debug("gensight: %s.%s.%s not found", module_name, class_name, method)
                continue
            if getattr(original, "__gensight_original__", None) is not None:
                log.warning("gensight: %s.%s is already instrumented", class_name, method)
                continue
            wrap = wrap_async if is_async else wrap_sync
            setattr(cls, method, wrap(original, op, self.telemetry))
            self._originals.append((cls, method, original))

    def uninstrument(self) -> None:
        """Put the original methods back (and forget modules not imported yet)."""
        if self._hook is not None:
            cancel(self._hook)
            self._hook = None
        while self._originals:
            cls, method, original = self._originals.pop()
            setattr(cls, method, original)


def version() -> str:
    """The installed gensight version (the instrumentation scope's version)."""
    try:
        from importlib.metadata import version as installed

        return installed("gensight")
    except Exception:
        return ""
