"""Token estimates that learn from the upstream's own counts (per upstream and model).

When a stream brings no usage (llama.cpp and some vLLM builds ignore
``stream_options.include_usage``), the gateway counts tokens itself. Its count cannot see
what the server's chat template adds (a default system message, per-message framing) nor
the model's own vocabulary: with llama.cpp and SmolLM2, input estimates run 2.5-3x low on
short prompts. So calls of the same upstream and model that did report usage are used to
calibrate: each gives a sample (our estimate, their count) for input and for output, and
an estimate is corrected by a line fitted through the samples (``reported = a x + b``:
the template's tokens are the intercept, a vocabulary's difference the slope) or, while
the samples are too alike to fit a line, by their median ratio. Calibrated counts are
still ``tokens_estimated``; ``gensight.tokens_calibration`` says from how many samples.

Learning costs a local count per call, so it is done for the first ``FIRST_SAMPLES`` calls
of each (upstream, model) and, once that pair has needed an estimate, for every call.
"""

from __future__ import annotations

import statistics
import threading
from collections import OrderedDict, deque
from collections.abc import Callable

#: Samples kept per (upstream, model) and kind (the most recent).
MAX_SAMPLES = 32
#: Calls learned from before any estimate was needed, per (upstream, model).
FIRST_SAMPLES = 8
#: (upstream, model) pairs remembered (the least recently used are forgotten).
MAX_KEYS = 1024
#: A line is fitted once the samples' estimates span at least this many tokens.
MIN_SPREAD = 8

Key = tuple[str, str]


def fit(samples: list[tuple[int, int]]) -> Callable[[int], int] | None:
    """``estimate -> corrected`` from ``(estimate, reported)`` samples (None: no samples)."""
    usable = [(x, y) for x, y in samples if x > 0 and y > 0]
    if not usable:
        return None
    xs = [x for x, _ in usable]
    if len(usable) >= 3 and max(xs) - min(xs) >= MIN_SPREAD:
        mx = statistics.fmean(xs)
        my = statistics.fmean(y for _, y in usable)
        sxx = sum((x - mx) ** 2 for x in xs)
        a = sum((x - mx) * (y - my) for x, y in usable) / sxx
        b = my - a * mx
        if 0.25 <= a <= 4:
            return lambda x: max(1, round(a * x + b))
    ratio = statistics.median(y / x for x, y in usable)
    return lambda x: max(1, round(x * ratio))


class _Pair:
    __slots__ = ("input", "learned", "output", "wanted")

    def __init__(self) -> None:
        self.input: deque[tuple[int, int]] = deque(maxlen=MAX_SAMPLES)
        self.output: deque[tuple[int, int]] = deque(maxlen=MAX_SAMPLES)
        self.learned = 0
        self.wanted = False


class Calibration:
    """What the gateway has learned of each (upstream, model)'s counts (thread-safe:
    estimates may run in a worker thread)."""

    def __init__(self) -> None:
        self._pairs: OrderedDict[Key, _Pair] = OrderedDict()
        self._lock = threading.Lock()

    def _pair(self, key: Key) -> _Pair:
        pair = self._pairs.get(key)
        if pair is None:
            pair = self._pairs[key] = _Pair()
            if len(self._pairs) > MAX_KEYS:
                self._pairs.popitem(last=False)
        else:
            self._pairs.move_to_end(key)
        return pair

    def should_learn(self, key: Key, counter_ready: bool) -> bool:
        """Whether a call that reported usage should be counted locally to learn from:
        always once the pair needed an estimate; before, only its first few calls, and only
        if the local counter is loaded already (it is not loaded just to learn)."""
        with self._lock:
            pair = self._pair(key)
            return pair.wanted or (counter_ready and pair.learned < FIRST_SAMPLES)

    def learn(
        self,
        key: Key,
        input_estimate: int | None,
        input_reported: int | None,
        output_estimate: int | None,
        output_reported: int | None,
    ) -> None:
        """Add one call's (estimate, reported) pairs."""
        with self._lock:
            pair = self._pair(key)
            pair.learned += 1
            if input_estimate and input_reported:
                pair.input.append((input_estimate, input_reported))
            if output_estimate and output_reported:
                pair.output.append((output_estimate, output_reported))

    def correct(
        self, key: Key, input_estimate: int | None, output_estimate: int | None
    ) -> tuple[int | None, int | None, int]:
        """The estimates corrected by what was learned, and from how many samples (0: not
        corrected). Marks the pair as needing estimates, so every later call teaches it."""
        with self._lock:
            pair = self._pair(key)
            pair.wanted = True
            fit_in, fit_out = fit(list(pair.input)), fit(list(pair.output))
            n = max(len(pair.input), len(pair.output)) if (fit_in or fit_out) else 0
        if fit_in is not None and input_estimate:
            input_estimate = fit_in(input_estimate)
        if fit_out is not None and output_estimate:
            output_estimate = fit_out(output_estimate)
        return input_estimate, output_estimate, n
