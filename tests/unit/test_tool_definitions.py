"""Tool definitions in the OTel GenAI shape, from each wire's spelling (issue 14.10)."""

from __future__ import annotations

import json

from gensight.receive.gateway import tools

WEATHER = {
    "type": "object",
    "properties": {"location": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
    "required": ["location"],
}
EXPECTED = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": WEATHER,
}


def _recorded(value: object, wire: str = "openai") -> dict:
    attrs: dict = {}
    tools.record(attrs, value, wire)
    return attrs


def test_every_wire_gives_the_same_definition() -> None:
    chat = [{"type": "function", "function": {"name": "get_weather",
             "description": "Weather in a city", "parameters": WEATHER}}]  # fmt: skip
    responses = [{"type": "function", "name": "get_weather",
                  "description": "Weather in a city", "parameters": WEATHER},
                 {"type": "web_search"}]  # fmt: skip
    anthropic = [{"name": "get_weather", "description": "Weather in a city",
                  "input_schema": WEATHER},
                 {"type": "web_search_20250305", "name": "web_search"}]  # fmt: skip
    gemini = [{"functionDeclarations": [{"name": "get_weather",
               "description": "Weather in a city", "parameters": WEATHER}]},
              {"googleSearch": {}}]  # fmt: skip
    assert json.loads(_recorded(chat)["gen_ai.tool.definitions"]) == [EXPECTED]
    r = _recorded(responses)
    assert json.loads(r["gen_ai.tool.definitions"]) == [EXPECTED, {"type": "web_search"}]
    assert json.loads(r["gen_ai.request.tools"]) == ["get_weather", "web_search"]
    a = _recorded(anthropic, "anthropic")
    assert json.loads(a["gen_ai.tool.definitions"]) == [
        EXPECTED, {"type": "web_search_20250305", "name": "web_search"}]  # fmt: skip
    assert json.loads(a["gen_ai.request.tools"]) == ["get_weather", "web_search"]
    g = _recorded(gemini, "gemini")
    assert json.loads(g["gen_ai.tool.definitions"]) == [EXPECTED, {"type": "googleSearch"}]
    assert "gensight.tool_definitions_truncated" not in g


def test_no_tools_no_attributes_and_junk_is_skipped() -> None:
    assert _recorded(None) == {} and _recorded([]) == {} and _recorded("x") == {}
    assert _recorded([1, "a", None]) == {}


def test_large_definitions_are_bounded_keeping_the_names() -> None:
    big = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "d" * 200}
                                            for i in range(20)}}  # fmt: skip
    many = [{"type": "function", "function": {"name": f"tool_{i}", "parameters": big}}
            for i in range(40)]  # fmt: skip
    r = _recorded(many)
    assert len(r["gen_ai.tool.definitions"]) <= tools.MAX_DEFINITIONS
    assert r["gensight.tool_definitions_truncated"] is True
    kept = json.loads(r["gen_ai.tool.definitions"])
    assert kept[0] == {"type": "function", "name": "tool_0"}  # schemas dropped first
    assert len(json.loads(r["gen_ai.request.tools"])) == 40
    huge = [{"type": "function", "function": {"name": "t" * 900, "description": "x" * 1000}}
            for _ in range(200)]  # fmt: skip
    r = _recorded(huge)
    assert 0 < len(r["gen_ai.tool.definitions"]) <= tools.MAX_DEFINITIONS
