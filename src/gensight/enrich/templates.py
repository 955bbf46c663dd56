"""Prompt templates, mined: each call's prompt gets a ``template_id``.

A producer that names its prompt (the semconv ``gen_ai.prompt.name`` and
``gen_ai.prompt.version`` attributes) gets that name (``name@version``). Every other call
with recorded text is clustered by drain3, the log-template miner (Drain: a fixed-depth
parse tree over whitespace tokens, variables masked): its system text and first user
message, cut to the first ``MAX_TOKENS`` words, with numbers, ids, e-mail addresses and
URLs masked before mining; the cluster's id is the call's ``template_id``
(``mined-<n>``), its template (``<*>`` where the variables were) the pattern a template's
page shows.

Incremental and durable: the writer mines each batch as it is stored (after redaction,
so no masked secret reaches a pattern) and saves the miner's state in the store
(``template_state``) when a batch changed it, so a restart carries on with the same ids.
Calls stored without their text (metadata-only capture) get no mined template.
Limits: one miner per server; replicas sharing a ClickHouse store each mine and save
their own state (the last saved wins at the next start), so their ids may differ.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from gensight.model.records import CallRecord

log = logging.getLogger("gensight.enrich.templates")

#: The store's name of the prompt miner's state.
STATE_NAME = "prompts"
#: Words of a prompt the miner reads (templates differ early; long tails are variables).
MAX_TOKENS = 100
#: Templates kept at most (least recently matched dropped first).
MAX_TEMPLATES = 5000
MINED_PREFIX = "mined-"
NAME_ATTRIBUTE = "gen_ai.prompt.name"
VERSION_ATTRIBUTE = "gen_ai.prompt.version"

#: drain3 masking instructions: values that are variables wherever they appear.
MASKS = (
    (r"[\w.+-]+@[\w-]+\.[\w.-]+", "EMAIL"),
    (r"https?://\S+", "URL"),
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "UUID"),
    (r"((?<=[^A-Za-z0-9])|^)[A-Za-z]*\d[\w-]*((?=[^A-Za-z0-9])|$)", "ID"),
)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p.get("text") or p.get("content") or "" for p in content if isinstance(p, dict)
        )
    return ""


def prompt_text(call: CallRecord) -> str | None:
    """What the miner reads of a call: system text, then the first user message."""
    parts: list[str] = []
    for m in call.system_instructions or ():
        if isinstance(m, dict):
            parts.append(_text(m.get("content")))
    user = None
    for m in call.input_messages or ():
        if not isinstance(m, dict):
            continue
        if m.get("role") == "system":
            parts.append(_text(m.get("content")))
        elif user is None and m.get("role") in ("user", None):
            user = _text(m.get("content"))
    if user:
        parts.append(user)
    words = " ".join(p for p in parts if p).split()
    return " ".join(words[:MAX_TOKENS]) or None


def named_template(call: CallRecord) -> str | None:
    """``name@version`` (or ``name``) when the producer named its prompt."""
    attrs = call.attributes if isinstance(call.attributes, dict) else {}
    name = attrs.get(NAME_ATTRIBUTE)
    if not isinstance(name, str) or not name.strip():
        return None
    version = attrs.get(VERSION_ATTRIBUTE)
    return f"{name.strip()}@{version}" if version not in (None, "") else name.strip()


def _new_miner() -> Any:
    from drain3 import TemplateMiner
    from drain3.masking import MaskingInstruction
    from drain3.template_miner_config import TemplateMinerConfig

    config = TemplateMinerConfig()
    config.masking_instructions = [MaskingInstruction(p, name) for p, name in MASKS]
    config.drain_max_clusters = MAX_TEMPLATES
    config.drain_sim_th = 0.5
    config.drain_depth = 5
    config.snapshot_compress_state = True
    return TemplateMiner(None, config)


class _Buffer:
    """A drain3 persistence handler between the miner and the store's two callables."""

    def __init__(self, text: str | None = None) -> None:
        self.text = text

    def save_state(self, state: bytes) -> None:
        self.text = state.decode()

    def load_state(self) -> bytes | None:
        return self.text.encode() if self.text else None


def patterns_from_state(state: str | None) -> dict[str, dict[str, Any]]:
    """``{template_id: {"pattern", "size"}}`` of a saved miner state (the query layer's view)."""
    if not state:
        return {}
    miner = _new_miner()
    miner.persistence_handler = _Buffer(state)
    miner.load_state()
    return {
        f"{MINED_PREFIX}{c.cluster_id}": {"pattern": c.get_template(), "size": c.size}
        for c in miner.drain.clusters
    }


class Templater:
    """Assigns ``template_id`` to calls; the miner's state lives in the store."""

    def __init__(
        self,
        load: Callable[[str], str | None] | None = None,
        save: Callable[[str, str], None] | None = None,
    ) -> None:
        self._load = load
        self._save = save
        self._miner: Any = None
        self._lock = threading.Lock()
        self.mined = 0
        self.save_errors = 0

    def _ready(self) -> Any:
        if self._miner is None:
            miner = _new_miner()
            if self._load is not None:
                try:
                    miner.persistence_handler = _Buffer(self._load(STATE_NAME))
                    miner.load_state()
                except Exception as e:  # a damaged state: start afresh, say so
                    log.warning("prompt templates: could not load the saved state: %s", e)
                    miner = _new_miner()
                miner.persistence_handler = None
            self._miner = miner
        return self._miner

    def assign(self, calls: Sequence[CallRecord]) -> None:
        """Set ``template_id`` on the calls that have none; save the state if it changed."""
        todo = [c for c in calls if c.template_id is None]
        if not todo:
            return
        changed = False
        with self._lock:
            miner = None
            for call in todo:
                name = named_template(call)
                if name is not None:
                    call.template_id = name
                    continue
                text = prompt_text(call)
                if text is None:
                    continue
                if miner is None:
                    miner = self._ready()
                result = miner.add_log_message(text)
                call.template_id = f"{MINED_PREFIX}{result['cluster_id']}"
                changed = changed or result["change_type"] != "none"
                self.mined += 1
            if changed and self._save is not None and miner is not None:
                buffer = _Buffer()
                miner.persistence_handler = buffer
                try:
                    miner.save_state("batch")
                    self._save(STATE_NAME, buffer.text or "")
                except Exception as e:  # the templates are kept; the state is saved next time
                    self.save_errors += 1
                    log.warning("prompt templates: could not save the state: %s", e)
                finally:
                    miner.persistence_handler = None
