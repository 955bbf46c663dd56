"""Run a function when a module is imported, or now if it already is.

openai 3 imports each resource module (``openai.resources.responses.responses``…)
on the first use of that resource; importing them all at ``init()`` would cost an
app that only chats about a second. So the instrumentor wraps a resource's methods
when its module is first imported, through a finder placed first on
``sys.meta_path`` that lets the normal machinery load the module and then calls
the hooks.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

log = logging.getLogger("gensight.sdk")

Hook = Callable[[ModuleType], None]

_lock = threading.RLock()
_hooks: dict[str, list[Hook]] = {}


class _Loader(importlib.abc.Loader):
    """Delegates to the real loader, then runs the module's hooks."""

    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        with _lock:
            hooks = _hooks.pop(self._name, [])
        for hook in hooks:
            try:
                hook(module)
            except Exception:
                log.warning("gensight: could not instrument %s", self._name, exc_info=True)

    def __getattr__(self, name: str) -> Any:  # get_code, get_source, is_package…
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _hooks:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, fullname)
                return spec
        return None


_finder = _Finder()


def when_imported(name: str, hook: Hook) -> None:
    """Call ``hook(module)`` once ``name`` is imported (now, if it already is)."""
    with _lock:
        module = sys.modules.get(name)
        if module is None:
            _hooks.setdefault(name, []).append(hook)
            if _finder not in sys.meta_path:
                sys.meta_path.insert(0, _finder)
            return
    hook(module)


def cancel(hook: Hook) -> None:
    """Forget ``hook`` for every module not imported yet."""
    with _lock:
        for name in list(_hooks):
            _hooks[name] = [h for h in _hooks[name] if h is not hook]
            if not _hooks[name]:
                del _hooks[name]
        if not _hooks and _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
