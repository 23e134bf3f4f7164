"""YAML configuration files whose errors name the file, the line and the field."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from riskstream.errors import ConfigError


def read_yaml(
    path: str | Path | None, packaged: str, what: str
) -> tuple[str, yaml.Node | None, Any]:
    """Read a YAML file, or the packaged file ``packaged`` when ``path`` is None.

    Returns the name to show in errors, the node tree (for line numbers) and
    the loaded data.

    Raises:
        ConfigError: the file cannot be read or is not valid YAML.
    """
    if path is None:
        text = resources.files("riskstream").joinpath(packaged).read_text()
        name = f"riskstream/{packaged}"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the {what} ({exc})") from None
        name = str(path)
    try:
        return name, yaml.compose(text), yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = "" if mark is None else f"{mark.line + 1}:"
        problem = exc.problem or exc.context or "cannot be parsed"
        raise ConfigError(
            f"{name}:{line} invalid YAML: {problem}; check the indentation and "
            "quoting on that line"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: invalid YAML ({exc})") from None


def validation_error(
    name: str, document: yaml.Node | None, exc: ValidationError
) -> ConfigError:
    """Turn the first pydantic error into one naming the file, line and field."""
    error = exc.errors(include_url=False)[0]
    location = [part for part in error["loc"] if not str(part).startswith("function")]
    line = line_of(document, location)
    where = ".".join(str(part) for part in location) or "top level"
    entry = name_of_entry(document, location)
    if entry is not None:
        where += f" (of {entry})"
    message = str(error["msg"]).removeprefix("Value error, ")
    return ConfigError(f"{name}:{line}: {where}: {message}")


def name_of_entry(node: yaml.Node | None, location: list[int | str]) -> str | None:
    """Return the ``name`` of the innermost list entry on the way to ``location``.

    A rule or a scenario event is easier to find by its name than by its index.
    """
    found = None
    for part in location:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if key.value == "name" and isinstance(value, yaml.ScalarNode):
                        found = value.value
        else:
            break
    return found


def line_of(node: yaml.Node | None, location: list[int | str]) -> int:
    """Find the 1-based line of the YAML node at ``location``, or its nearest parent."""
    line = 1 if node is None else node.start_mark.line + 1
    for part in location:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        else:
            child = None
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line
