"""One vocabulary: every copy of a closed list is vocab's, and validators speak it."""

from __future__ import annotations

from dataclasses import fields

import pytest

from gensight.alerts import FILTER_KEYS, MEASURES, OPS, RuleError, parse_rule
from gensight.export.prometheus import TOKEN_TYPES
from gensight.model import vocab
from gensight.model.records import CallRecord
from gensight.query.analysis import totals_row
from gensight.query.params import ParamError, call_filters, parse_group_by
from gensight.store import dimensions
from gensight.store.base import CallFilters


def test_the_store_groups_by_exactly_the_vocabulary():
    assert tuple(dimensions.GROUP_BY) == vocab.GROUP_BY
    assert dimensions.GROUP_BY["model"] == dimensions.MODEL
    assert dimensions.CORRELATION_DIMENSIONS["model"] == dimensions.MODEL


def test_call_filters_are_the_vocabulary_plus_the_trace():
    assert [f.name for f in fields(CallFilters)] == [*vocab.FILTER_NAMES, "trace_id"]
    assert tuple(n for n in vocab.FILTER_NAMES if vocab.FILTERS[n].in_rules) == FILTER_KEYS
    special = ("since", "until", "q", "score")
    assert tuple(n for n in vocab.FILTER_NAMES if n not in special) == FILTER_KEYS


def test_record_fields_named_by_the_vocabulary_exist():
    names = {f.name for f in fields(CallRecord)}
    assert {field for _, field in vocab.TOKEN_TYPES} <= names
    assert set(vocab.CALL_SORT_KEYS) <= names
    special = ("since", "until", "q", "model", "score")
    assert {n for n in vocab.FILTER_NAMES if n not in special} <= names
    assert TOKEN_TYPES == vocab.TOKEN_TYPES


@pytest.mark.parametrize("f", [f for f in vocab.CALL_FILTERS if f.choices], ids=lambda f: f.name)
def test_closed_filters_accept_their_choices_and_name_them_when_refusing(f):
    for choice in f.choices:
        assert getattr(call_filters(**{f.name: choice}), f.name) == choice
    with pytest.raises(ParamError) as e:
        call_filters(**{f.name: "nope"})
    assert e.value.param == f.name and vocab.one_of(f.choices) in str(e.value)


def test_unknown_filters_and_group_by_are_refused_by_name():
    with pytest.raises(ParamError) as e:
        call_filters(service="checkout")
    assert e.value.param == "service"
    assert [parse_group_by(g) for g in vocab.GROUP_BY] == list(vocab.GROUP_BY)
    with pytest.raises(ParamError) as e:
        parse_group_by("service")
    assert e.value.param == "group_by" and "operation, source" in str(e.value)


def test_alert_measures_read_the_totals_they_name():
    row = {"calls": 4, "errors": 1, "input_tokens": 7, "output_tokens": 3, "cost_usd": 0.5}
    row |= {"lat_q": [10.0, 20.0, 30.0], "ttft_q": [1.0, 2.0]}
    totals = totals_row(row)
    assert tuple(MEASURES) == tuple(vocab.ALERT_MEASURES)
    got = {name: read(totals) for name, read in MEASURES.items()}
    assert got == {
        "cost_usd": 0.5,
        "calls": 4,
        "errors": 1,
        "error_rate": 0.25,
        "latency_p95_ms": 20.0,
        "ttft_p95_ms": 2.0,
        "input_tokens": 7,
        "output_tokens": 3,
        "score_mean": None,  # measured apart, for rules that name their score
    }
    assert tuple(OPS) == vocab.ALERT_OPS


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("measure", "latency", "measure"),
        ("op", "!=", "op"),
        ("action", "page", "action"),
        ("format", "xml", "format"),
        ("filters", {"service": "x"}, "filters.service"),
        ("filters", {"status": "bad"}, "filters.status"),
    ],
)
def test_rule_errors_list_the_vocabulary(field, value, named):
    rule = {"name": "r", "measure": "calls", "threshold": 1, field: value}
    with pytest.raises(RuleError) as e:
        parse_rule(rule)
    assert e.value.field == named
    choices = {
        "measure": tuple(vocab.ALERT_MEASURES),
        "op": vocab.ALERT_OPS,
        "action": vocab.ALERT_ACTIONS,
        "format": vocab.ALERT_FORMATS,
        "filters.service": vocab.RULE_FILTERS,
        "filters.status": vocab.STATUSES,
    }[named]
    assert ", ".join(choices) in str(e.value)


def test_one_term_per_field():
    assert vocab.label("duration_ms") == "latency"
    assert (
        vocab.label("ttft_ms") == "TTFT" and vocab.LONG_LABELS["ttft_ms"] == "time to first token"
    )
    assert "service" not in vocab.LABELS.values()


def test_every_error_class_has_its_colour():
    from gensight.web.charts import ERROR_COLOURS

    assert set(ERROR_COLOURS) == set(vocab.ERROR_CLASSES)


def test_every_alert_measure_has_a_unit() -> None:
    """The alerts form shows each measure with its unit: a new measure needs one."""
    from gensight.model import vocab

    assert set(vocab.MEASURE_UNITS) == set(vocab.ALERT_MEASURES)
