"""The tools a request offered the model, as ``gen_ai.tool.definitions`` (OTel GenAI).

Each wire spells a tool its own way; the record keeps them in the convention's one
shape, ``{"type": "function", "name", "description", "parameters"}`` (a provider's
built-in tool, such as web search, as ``{"type", "name"?}``), so a call's page shows what
the model could call and with which schema, whatever API carried it:

- Chat Completions: ``{"type": "function", "function": {name, description, parameters}}``;
- Responses API: ``{"type": "function", name, description, parameters}`` or a built-in;
- Anthropic Messages: ``{name, description, input_schema}`` or a server tool ``{type, name}``;
- Gemini: ``{"functionDeclarations": [{name, description, parameters|parametersJsonSchema}]}``
  or ``{"googleSearch": {}}``-like built-ins.

Definitions can be large (a schema per tool): past ``MAX_DEFINITIONS`` characters of JSON
the parameters are left out, then the tools past the limit, and
``gensight.tool_definitions_truncated`` says so. ``gen_ai.request.tools`` keeps the names.
"""

from __future__ import annotations

from typing import Any

import orjson

#: Most characters of JSON kept for a request's tool definitions.
MAX_DEFINITIONS = 16 * 1024
_MAX_DESCRIPTION = 1024


def _function(name: Any, description: Any, parameters: Any) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "function", "name": str(name)}
    if isinstance(description, str) and description:
        tool["description"] = description[:_MAX_DESCRIPTION]
    if isinstance(parameters, dict):
        tool["parameters"] = parameters
    return tool


def _builtin(kind: Any, name: Any = None) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": str(kind)}
    if isinstance(name, str) and name:
        tool["name"] = name
    return tool


def definitions(tools: Any, wire: str = "openai") -> list[dict[str, Any]]:
    """The request's ``tools`` in the convention's shape (empty when there are none)."""
    out: list[dict[str, Any]] = []
    if not isinstance(tools, list):
        return out
    for t in tools:
        if not isinstance(t, dict):
            continue
        if wire == "gemini":
            declared = t.get("functionDeclarations") or t.get("function_declarations")
            if isinstance(declared, list):
                for fn in declared:
                    if isinstance(fn, dict) and fn.get("name"):
                        params = (
                            fn.get("parameters")
                            or fn.get("parametersJsonSchema")
                            or fn.get("parameters_json_schema")
                        )
                        out.append(_function(fn["name"], fn.get("description"), params))
            else:
                out.extend(_builtin(kind) for kind in t)
        elif wire == "anthropic":
            if "input_schema" in t or not t.get("type") or t.get("type") == "custom":
                out.append(_function(t.get("name"), t.get("description"), t.get("input_schema")))
            else:
                out.append(_builtin(t["type"], t.get("name")))
        elif isinstance(t.get("function"), dict):  # Chat Completions
            fn = t["function"]
            out.append(_function(fn.get("name"), fn.get("description"), fn.get("parameters")))
        elif t.get("type") == "function" or (t.get("name") and "parameters" in t):
            out.append(_function(t.get("name"), t.get("description"), t.get("parameters")))
        elif t.get("type"):  # a provider's built-in tool (web_search, file_search…)
            out.append(_builtin(t["type"], t.get("name")))
    return out


def record(attrs: dict[str, Any], tools: Any, wire: str = "openai") -> None:
    """Set ``gen_ai.request.tools`` (names) and ``gen_ai.tool.definitions`` (bounded)."""
    defs = definitions(tools, wire)
    if not defs:
        return
    attrs["gen_ai.request.tools"] = _dumps([d.get("name") or d["type"] for d in defs])
    text = _dumps(defs)
    if len(text) > MAX_DEFINITIONS:
        attrs["gensight.tool_definitions_truncated"] = True
        defs = [{k: v for k, v in d.items() if k != "parameters"} for d in defs]
        while defs and len(text := _dumps(defs)) > MAX_DEFINITIONS:
            defs = defs[: len(defs) // 2]
    if defs:
        attrs["gen_ai.tool.definitions"] = text


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()
