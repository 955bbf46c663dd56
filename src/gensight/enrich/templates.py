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
The state is saved as this module's own JSON (clusters and prefix tree), never as
drain3's jsonpickle snapshot, which would run whatever the stored text names on load.
Calls stored without their text (metadata-only capture) get no mined template.
Limits: one miner per server; replicas sharing a ClickHouse store each mine and save
their own state (the last saved wins at the next start), so their ids may differ.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from gensight.model.records import CallRecord

log = logging.getLogger("gensight.enrich.templates")

#: The store's name of the prompt miner's state.
STATE_NAME = "prompts"
#: Words of a prompt the miner reads (templates differ early; long tails are variables).
MAX_TOKENS = 100
#: Characters of a word the miner reads (a longer word is a variable; the masks stay cheap).
MAX_WORD = 64
#: Templates kept at most (least recently matched dropped first).
MAX_TEMPLATES = 5000
MINED_PREFIX = "mined-"
#: The saved state's format tag (this module's JSON, see state_json).
STATE_FORMAT = "gensight-drain-1"
NAME_ATTRIBUTE = "gen_ai.prompt.name"
VERSION_ATTRIBUTE = "gen_ai.prompt.version"

#: drain3 masking instructions: values that are variables wherever they appear.
MASKS = (
    (r"(?<![\w.+-])[\w.+-]+@[\w-]+\.[\w.-]+", "EMAIL"),  # from a word's start: linear
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
    return " ".join(w[:MAX_WORD] for w in words[:MAX_TOKENS]) or None


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
    return TemplateMiner(None, config)


# The saved state is this module's own JSON, never drain3's snapshot: drain3 saves and
# loads with jsonpickle, which rebuilds whatever objects the text names (code run on
# load), so a store's text must not reach it. Saved: the id counter, each cluster (id,
# template tokens, size) and the prefix tree as nested {"c": {token: node}, "i": [ids]};
# loading validates the types and builds drain3's own objects from them.


def _node_json(node: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"i": list(node.cluster_ids)}
    if node.key_to_child_node:
        out["c"] = {k: _node_json(v) for k, v in node.key_to_child_node.items()}
    return out


def state_json(miner: Any) -> str:
    """The miner's state as plain JSON (clusters, id counter, prefix tree)."""
    drain = miner.drain
    clusters = [[c.cluster_id, list(c.log_template_tokens), c.size] for c in drain.clusters]
    state = {
        "format": STATE_FORMAT,
        "counter": drain.clusters_counter,
        "clusters": clusters,
        "tree": _node_json(drain.root_node),
    }
    return orjson.dumps(state).decode()


def _parse(state: str) -> dict[str, Any]:
    data = orjson.loads(state)
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise ValueError("not a saved prompt-template state")
    if not isinstance(data.get("counter"), int) or not isinstance(data.get("clusters"), list):
        raise ValueError("prompt-template state lacks its counter or clusters")
    for c in data["clusters"]:
        ok = isinstance(c, list) and len(c) == 3 and isinstance(c[0], int)
        if not ok or not isinstance(c[2], int) or not isinstance(c[1], list):
            raise ValueError("a prompt-template cluster is malformed")
        if not all(isinstance(t, str) for t in c[1]):
            raise ValueError("a prompt-template cluster's tokens are not text")
    return data


def _build_node(data: Any, node_cls: type, depth: int = 0) -> Any:
    if not isinstance(data, dict) or depth > 64:
        raise ValueError("the prompt-template tree is malformed")
    node = node_cls()
    ids = data.get("i", [])
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise ValueError("the prompt-template tree's ids are malformed")
    node.cluster_ids = ids
    children = data.get("c", {})
    if not isinstance(children, dict):
        raise ValueError("the prompt-template tree is malformed")
    node.key_to_child_node = {
        str(k): _build_node(v, node_cls, depth + 1) for k, v in children.items()
    }
    return node


def load_state_json(miner: Any, state: str) -> None:
    """Rebuild ``miner``'s clusters and prefix tree from :func:`state_json`'s text."""
    from drain3.drain import LogCluster, Node

    data = _parse(state)
    drain = miner.drain
    root = _build_node(data.get("tree", {}), Node)
    for cid, tokens, size in data["clusters"]:
        cluster = LogCluster(tokens, cid)
        cluster.size = size
        drain.id_to_cluster[cid] = cluster
    drain.root_node = root
    drain.clusters_counter = data["counter"]


def patterns_from_state(state: str | None) -> dict[str, dict[str, Any]]:
    """``{template_id: {"pattern", "size"}}`` of a saved miner state (the query layer's view)."""
    if not state:
        return {}
    return {
        f"{MINED_PREFIX}{cid}": {"pattern": " ".join(tokens), "size": size}
        for cid, tokens, size in _parse(state)["clusters"]
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
                    state = self._load(STATE_NAME)
                    if state:
                        load_state_json(miner, state)
                except Exception as e:  # a damaged state: start afresh, say so
                    log.warning("prompt templates: could not load the saved state: %s", e)
                    miner = _new_miner()
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
                try:
                    self._save(STATE_NAME, state_json(miner))
                except Exception as e:  # the templates are kept; the state is saved next time
                    self.save_errors += 1
                    log.warning("prompt templates: could not save the state: %s", e)
