"""Settings on the command line: ``--config``, one option per setting, ``settings``.

Every setting of :class:`~riskstream.settings.Settings` is also an option of
the commands that take settings, named after it with dashes
(``batch_timeout_s`` is ``--batch-timeout-s``). Options a command defines
itself, with their own help, are kept.
"""

from __future__ import annotations

import argparse
import types
from typing import Any, Literal, Union, get_args, get_origin

from riskstream.settings import (
    CONFIG_FILE_ENV,
    ENV_PREFIX,
    Settings,
    dump_settings,
    load_settings,
    settings_table,
)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE``, the YAML settings file."""
    parser.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        help=f"YAML settings file (or {CONFIG_FILE_ENV}); the command line and "
        "RISKSTREAM_* environment variables override its values",
    )


def add_setting_options(parser: argparse.ArgumentParser) -> None:
    """Add an option for every setting that ``parser`` has no option for yet."""
    present = {action.dest for action in parser._actions}
    for name, field in Settings.model_fields.items():
        if name in present:
            continue
        option_type, choices = _option_type(field.annotation)
        if name == "log_level":
            # Levels are accepted in any case, as in RISKSTREAM_LOG_LEVEL.
            option_type = str.upper
        extra = field.json_schema_extra
        unit = extra.get("unit") if isinstance(extra, dict) else None
        default = "unset" if field.default is None else field.default
        help_text = (
            f"{field.description} (default {default}"
            + (f", in {unit}" if unit else "")
            + f"; or {ENV_PREFIX}{name.upper()})"
        )
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=option_type,
            choices=choices,
            help=help_text.replace("%", "%%"),
        )


def _option_type(annotation: Any) -> tuple[Any, list[str] | None]:
    """Return the argparse type and choices of a setting's annotation."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        inner = [arg for arg in get_args(annotation) if arg is not type(None)]
        return _option_type(inner[0])
    if origin is Literal:
        return str, [str(arg) for arg in get_args(annotation)]
    if annotation in (int, float):
        return annotation, None
    return str, None


def overrides_of(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """Return the settings given on the command line, ``extra`` on top."""
    values = {
        key: value
        for key, value in vars(args).items()
        if key in Settings.model_fields and value is not None
    }
    values.update(extra)
    return values


def settings_from_args(args: argparse.Namespace, **extra: Any) -> Settings:
    """Build the settings from the command line, the environment and the file."""
    return load_settings(**overrides_of(args, **extra))


def add_settings_command(commands: Any) -> None:
    """Register ``riskstream settings``."""
    parser = commands.add_parser(
        "settings",
        help="print the effective settings and where each comes from",
        description="Print every setting with its value and source: the "
        "command line, an environment variable, the settings file (with its "
        "line) or the default.",
    )
    add_config_option(parser)
    parser.add_argument(
        "--table",
        action="store_true",
        help="print the Markdown table of all settings in docs/configuration.md",
    )
    add_setting_options(parser)
    parser.set_defaults(handler=_settings_command)


def _settings_command(args: argparse.Namespace) -> int:
    if args.table:
        print(settings_table(), end="")
        return 0
    overrides = overrides_of(args)
    print(dump_settings(load_settings(**overrides), overrides), end="")
    return 0
