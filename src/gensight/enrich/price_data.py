"""genai-prices' bundled price data, loaded without compiling it in the server.

genai-prices ships its prices as one 1.6 MB Python module (``genai_prices.data``).
Imported from source, as happens whenever no bytecode can be used (a read-only
``site-packages`` without ``__pycache__``, ``PYTHONDONTWRITEBYTECODE``, an install made
without compiling bytecode, as ``uv`` does by default), Python compiles it at every
start: measured at +50 MB peak and +30 MB kept RSS in the server, against ~4 MB for the
price objects themselves (loaded from bytecode).

``load_bundled(cache_dir)`` makes sure the module is loaded from bytecode: the
interpreter's own ``.pyc`` when there is one, else a ``.pyc`` kept in ``cache_dir``,
compiled once by a child process (so its peak is not the server's) and named for the
module's source size and mtime and the interpreter's bytecode version, so a changed
genai-prices or Python is compiled again. The module run is genai-prices' own, so every
price and every match is exactly genai-prices'; on any failure the plain import is used.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import threading
from importlib.machinery import SourcelessFileLoader
from pathlib import Path

log = logging.getLogger(__name__)

MODULE = "genai_prices.data"
#: The module is run by hand, outside the import system's per-module lock: one at a time
#: (the start-up warm-up and the writer's first price may ask together).
_LOCK = threading.Lock()

_COMPILE = (
    "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)"
)


def cached_bytecode(cache_dir: Path) -> Path | None:
    """The ``.pyc`` of genai-prices' data module under ``cache_dir`` (compiled now if
    missing), or None when the interpreter's own bytecode will serve or none can be had."""
    spec = importlib.util.find_spec(MODULE)
    source = spec.origin if spec is not None else None
    if not source or not source.endswith(".py"):
        return None
    try:
        if os.path.exists(importlib.util.cache_from_source(source)):
            return None  # the usual import reads the interpreter's bytecode
    except (NotImplementedError, ValueError):
        pass
    st = os.stat(source)
    tag = importlib.util.MAGIC_NUMBER.hex()
    target = cache_dir / f"genai_prices_data-{st.st_size}-{st.st_mtime_ns}-{tag}.pyc"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        subprocess.run(
            [sys.executable, "-c", _COMPILE, source, str(partial)],
            check=True,
            capture_output=True,
            timeout=120,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def load_bundled(cache_dir: Path | None) -> None:
    """Import ``genai_prices.data`` from bytecode (see the module docstring)."""
    if MODULE in sys.modules or cache_dir is None:
        return
    with _LOCK:
        if MODULE not in sys.modules:
            _load(cache_dir)


def _load(cache_dir: Path) -> None:
    try:
        pyc = cached_bytecode(cache_dir)
        if pyc is None:
            return
        import genai_prices  # the parent package, for the module's relative imports

        loader = SourcelessFileLoader(MODULE, str(pyc))
        spec = importlib.util.spec_from_file_location(MODULE, str(pyc), loader=loader)
        if spec is None:
            return
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        # listed only once complete: a thread that finds it listed uses it at once
        sys.modules[MODULE] = module
        genai_prices.data = module  # type: ignore[attr-defined]
    except Exception:  # a read-only cache dir, a killed compile: the plain import works
        log.info("genai-prices data loaded from source", exc_info=True)
