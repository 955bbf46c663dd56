"""What the writer does to a batch's new calls before storing them, in this order:
estimate missing counts, price, fingerprint, redact, mine prompt templates.

Each step that can fail on one odd record is guarded: enrichment never costs a record.
"""

from __future__ import annotations

import logging
from typing import Any

from gensight.enrich import fingerprint
from gensight.enrich.estimate import estimate_missing
from gensight.enrich.redaction import Redactor
from gensight.enrich.templates import Templater
from gensight.model.records import CallRecord, ContentEvent, SpanRecord

log = logging.getLogger("gensight.pipeline.writer")


def prepare(
    calls: list[CallRecord],
    spans: list[SpanRecord],
    events: list[ContentEvent],
    pricer: Any,
    redactor: Redactor,
    templater: Templater | None,
) -> None:
    """Enrich ``calls`` (and mask ``spans``/``events``) in place."""
    for call in calls:  # content but no usage: counts from the messages, marked estimated
        estimate_missing(call)
    if pricer is not None:
        for call in calls:
            if call.cost_source == "unknown" and call.cost_usd is None:
                try:
                    pricer.price(call)
                except Exception as e:  # pricing must never cost the record
                    log.debug("pricing failed for %s: %s", call.request_model, e)
    for call in calls:
        try:  # before redaction: a masked secret must not make equal requests differ
            fingerprint.fill_from_record(call)
        except Exception as e:  # a fingerprint must never cost the record
            log.debug("fingerprint failed for %s: %s", call.id, e)
    redactor.apply(calls, spans, events)  # after pricing, before anything keeps it
    if templater is not None:
        try:  # after redaction: a mined pattern never holds a masked secret
            templater.assign(calls)
        except Exception as e:  # templates must never cost the records
            log.warning("prompt templates failed: %s", e)
