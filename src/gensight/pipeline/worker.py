"""One background thread guarded by a condition: the shape of the writer, the webhook
notifier and the OTLP forwarder."""

from __future__ import annotations

import threading


class Worker:
    """``start()`` runs ``_run`` in a daemon thread; ``stop()`` sets ``_stopping``, wakes
    the thread through ``_cond`` and waits for it. ``_run`` returns once ``_stopping`` is
    set and its work is done."""

    thread_name = "gensight-worker"

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to finish its work and stop; wait at most ``timeout`` seconds."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        raise NotImplementedError
