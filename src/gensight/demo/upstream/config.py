"""The fake upstream's settings: per-model latency profiles and ``UpstreamConfig``."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelProfile:
    """Latency (and optional random failure) behaviour of one model.

    ``ttft_ms`` is the median time to the first chunk, ``ms_per_token`` the median
    time between output tokens; both are multiplied by ``exp(N(0, jitter))``.
    ``error_rates`` maps an HTTP status to the probability of failing with it
    (e.g. ``{429: 0.02, 500: 0.005}``); zero by default, which keeps tests
    deterministic.
    """

    ttft_ms: float = 0.0
    ms_per_token: float = 0.0
    jitter: float = 0.0
    error_rates: Mapping[int, float] = field(default_factory=dict)

    def sample_ttft(self, rng: random.Random) -> float:
        """Time to first chunk for one request, in milliseconds."""
        return self._jittered(self.ttft_ms, rng)

    def sample_token_gap(self, rng: random.Random) -> float:
        """Delay between two output tokens, in milliseconds."""
        return self._jittered(self.ms_per_token, rng)

    def _jittered(self, value: float, rng: random.Random) -> float:
        if value <= 0:
            return 0.0
        if self.jitter <= 0:
            return value
        return value * math.exp(rng.gauss(0.0, self.jitter))


#: Realistic per-model latency for ``gensight demo`` (orders of magnitude seen on
#: the public API: TTFT a few hundred ms, 5-25 ms per output token).
DEMO_PROFILES: dict[str, ModelProfile] = {
    "gpt-4o-mini": ModelProfile(ttft_ms=280, ms_per_token=9, jitter=0.35),
    "gpt-4o": ModelProfile(ttft_ms=420, ms_per_token=16, jitter=0.4),
    "gpt-4.1-nano": ModelProfile(ttft_ms=220, ms_per_token=6, jitter=0.3),
    "gpt-4.1-mini": ModelProfile(ttft_ms=300, ms_per_token=10, jitter=0.35),
    "gpt-4.1": ModelProfile(ttft_ms=450, ms_per_token=18, jitter=0.4),
    "o3-mini": ModelProfile(ttft_ms=1800, ms_per_token=8, jitter=0.5),
    "o4-mini": ModelProfile(ttft_ms=1500, ms_per_token=8, jitter=0.5),
    "gpt-5-mini": ModelProfile(ttft_ms=1200, ms_per_token=9, jitter=0.5),
    "deepseek-chat": ModelProfile(ttft_ms=650, ms_per_token=22, jitter=0.5),
    "text-embedding-3-small": ModelProfile(ttft_ms=60, jitter=0.3),
    "text-embedding-3-large": ModelProfile(ttft_ms=110, jitter=0.3),
}

#: Models listed by ``GET /v1/models`` unless configured otherwise.
DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "gpt-4.1",
    "o3-mini",
    "o4-mini",
    "gpt-5-mini",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
)


@dataclass
class UpstreamConfig:
    """Settings of one fake upstream.

    ``profiles`` maps a model name (or a prefix of one) to its latency profile;
    unknown models use ``default_profile`` (instantaneous by default).
    With ``api_key`` set, requests need ``Authorization: Bearer <api_key>`` (or, as
    Azure OpenAI takes it, ``api-key: <api_key>``).
    """

    profiles: Mapping[str, ModelProfile] = field(default_factory=dict)
    default_profile: ModelProfile = field(default_factory=ModelProfile)
    api_key: str | None = None
    models: Sequence[str] = DEFAULT_MODELS
    retry_after_s: int = 1
    honor_include_usage: bool = True
    #: Answer 400 "Unrecognized request argument supplied: stream_options", as Azure
    #: OpenAI does on api-versions before 2024-09-01-preview.
    reject_stream_options: bool = False
    #: Gzip streamed answers for clients that accept gzip (as some proxies in front of
    #: providers do).
    gzip_sse: bool = False
    #: Prompt tokens a self-hosted server's chat template adds, as (per prompt, per
    #: message): a default system message and each message's framing, as llama.cpp's
    #: template for SmolLM2 does. Its ``prompt_tokens`` then exceed what a client-side
    #: count of the messages finds (0, 0: counted as OpenAI counts).
    template_tokens: tuple[int, int] = (0, 0)
    seed: int = 0
    log_limit: int = 10_000
    organization: str = "org-fake"

    def profile_for(self, model: str) -> ModelProfile:
        """The profile of ``model``: exact match, else longest matching prefix, else default."""
        if model in self.profiles:
            return self.profiles[model]
        best = ""
        for name in self.profiles:
            if model.startswith(name) and len(name) > len(best):
                best = name
        return self.profiles[best] if best else self.default_profile
