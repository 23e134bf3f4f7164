"""The worker's handling of a message whose processing raised."""

from __future__ import annotations

import base64
from types import SimpleNamespace

from faust.types import TP
from riskstream_agents.app import MessageFailed, set_aside_letter

from riskstream.runner import Source


def test_failure_names_message():
    error = MessageFailed(TP("erp.orders", 3), 41, ValueError("broken"))

    assert error.tp == TP("erp.orders", 3)
    assert error.offset == 41
    assert error.reason == "ValueError('broken')"
    assert str(error) == "erp.orders[3]@41: ValueError('broken')"


def test_set_aside_letter_keeps_message(event_bytes):
    raw = event_bytes("order.placed")
    source = Source("erp.orders", 3, 41, b"c1")

    letter = set_aside_letter(SimpleNamespace(value=raw), source, "ValueError('x')")

    assert letter["rule"] == "processing_failed"
    assert letter["field"] == "body"
    assert letter["event_id"] == "evt-1"
    assert "raised ValueError('x')" in letter["reason"]
    assert letter["source"]["offset"] == 41
    assert base64.b64decode(letter["original_base64"]) == raw
