"""The ``gensight`` command (``gensight serve``, ``demo``, ``stats``, ``export``, ``import``)."""

from gensight.cli.main import main

__all__ = ["main"]
