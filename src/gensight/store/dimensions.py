"""The SQL expression of each dimension the store groups by, keyed by vocab's names.

``GROUP_BY`` has exactly the keys of ``vocab.GROUP_BY`` (checked at import): a
dimension the API offers is one the store can group on. ``model`` is the one expression
the ``model=`` filter matches too, so a group's row counts what its link lists.
"""

from __future__ import annotations

from gensight.model import vocab

#: The model of a call: the one asked for, else the one that answered.
MODEL = "coalesce(request_model, response_model)"

GROUP_BY = {
    "app": "app",
    "model": MODEL,
    "provider": "provider",
    "user": '"user"',
    "error_class": "error_class",
    "environment": "environment",
    "operation": "operation",
    "source": "source",
    "template": "template_id",
}
if tuple(GROUP_BY) != vocab.GROUP_BY:
    raise RuntimeError("store.dimensions.GROUP_BY must have the keys of vocab.GROUP_BY")

#: Record fields whose values the correlations analysis compares.
CORRELATION_DIMENSIONS = {
    **{name: GROUP_BY[name] for name in ("app", "model", "provider", "operation")},
    "environment": "environment",
    "user": '"user"',
    "stream": "stream",
    "error_class": "error_class",
    "server_address": "server_address",
    "source": "source",
    "producer": "producer",
}
