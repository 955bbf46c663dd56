"""Which reader a request gets: the upstream's wire format picks its ``Capture``."""

from __future__ import annotations

from gensight.receive.gateway.anthropic import AnthropicCapture
from gensight.receive.gateway.capture import Capture
from gensight.receive.gateway.gemini import GeminiCapture
from gensight.receive.gateway.native import NativeCapture
from gensight.receive.gateway.upstreams import Upstream

AnyCapture = Capture | NativeCapture


def capture_for(upstream: Upstream, method: str, path: str, body: bytes) -> AnyCapture:
    """The reader of one request to ``upstream`` (OpenAI's wire unless it is native)."""
    if upstream.wire == "anthropic":
        return AnthropicCapture(method, path, body)
    if upstream.wire == "gemini":
        return GeminiCapture(method, path, body)
    return Capture(method, path, body)
