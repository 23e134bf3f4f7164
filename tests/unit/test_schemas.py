from __future__ import annotations

from pathlib import Path

import jsonschema
import orjson
import pytest

from riskstream.errors import InvalidEvent
from riskstream.events import parse_event
from riskstream.schemas import event_schemas, render

ROOT = Path(__file__).parents[2]
SCHEMAS = ROOT / "schemas"
SAMPLE = ROOT / "examples" / "events.jsonl"


@pytest.mark.parametrize("name", sorted(event_schemas()))
def test_committed_schema_matches_models(name):
    committed = SCHEMAS / name

    assert committed.is_file(), f"run: python -m riskstream.schemas {SCHEMAS}"
    assert committed.read_bytes() == render(event_schemas()[name]), (
        f"{name} drifted from the models; run: python -m riskstream.schemas schemas"
    )


def test_no_stale_schema_files():
    assert sorted(p.name for p in SCHEMAS.glob("*.json")) == sorted(event_schemas())


def test_valid_sample_events_match_schemas():
    checked = 0
    for line in SAMPLE.read_bytes().splitlines():
        try:
            event = parse_event(line)
        except InvalidEvent:
            continue
        schema = orjson.loads((SCHEMAS / f"{event.type}.json").read_bytes())

        jsonschema.validate(orjson.loads(line), schema)
        checked += 1

    assert checked > 50
