"""JSON Schemas of the event contract, generated from the pydantic models.

``python -m riskstream.schemas DIR`` writes one file per event type; the
repository keeps them in ``schemas/`` and a test fails when they drift.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from riskstream.events import EVENT_TYPES, TOPIC_FOR_TYPE


def event_schemas() -> dict[str, dict[str, Any]]:
    """Return the JSON Schema of every event type, keyed by file name."""
    schemas = {}
    for kind, model in EVENT_TYPES.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://riskstream.invalid/schemas/{kind}.json"
        schema["description"] = (
            f"{(model.__doc__ or '').strip()} Published to topic "
            f"{TOPIC_FOR_TYPE[kind]}, keyed by customer_id."
        )
        schemas[f"{kind}.json"] = schema
    return schemas


def render(schema: dict[str, Any]) -> bytes:
    """Serialise a schema the way the committed files are written."""
    return (
        orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )


def write_schemas(folder: Path) -> list[Path]:
    """Write every schema into ``folder``; return the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in event_schemas().items():
        path = folder / name
        path.write_bytes(render(schema))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(written)
