"""Worker and driver settings, from the command line, environment and a file.

Each setting comes from the first of these that sets it:

1. a command-line option (``--web-port 7000``);
2. an environment variable ``RISKSTREAM_<NAME>`` (``RISKSTREAM_WEB_PORT``);
3. the YAML settings file named by ``--config`` or ``RISKSTREAM_CONFIG_FILE``;
4. the default below.

:func:`load_settings` builds the settings and turns validation errors into a
:class:`~riskstream.errors.ConfigError` that names the setting, the rule, the
value and where the value came from. docs/configuration.md lists every
setting; :func:`settings_table` renders that list.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from riskstream.errors import ConfigError
from riskstream.yamlfile import line_of, read_yaml

ENV_PREFIX = "RISKSTREAM_"
CONFIG_FILE_ENV = "RISKSTREAM_CONFIG_FILE"


def _unit(unit: str) -> dict[str, Any]:
    return {"unit": unit}


class Settings(BaseSettings):
    """Settings of the Faust worker and the commands that talk to Kafka."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    config_file: str | None = Field(
        None,
        description="YAML settings file; its values rank below the command line "
        "and the environment",
    )
    broker: str = Field(
        "kafka://localhost:9092",
        description="Kafka bootstrap URL, kafka://HOST:PORT; separate several "
        "brokers with ;",
    )
    app_id: str = Field(
        "riskstream",
        min_length=1,
        description="Faust app id, Kafka consumer group and prefix of the "
        "table changelog topics",
    )
    topic_prefix: str = Field("", description="prefix of every topic name")
    partitions: int = Field(
        4, ge=1, description="partitions of every topic the worker creates"
    )
    replication_factor: int = Field(
        1, ge=1, description="replicas of every topic the worker creates"
    )
    store: Literal["rocksdb://", "memory://"] = Field(
        "rocksdb://",
        description="table store: rocksdb:// on disk under data_dir, or memory://",
    )
    data_dir: str = Field(
        "./riskstream-data",
        min_length=1,
        description="folder of the worker's local tables (RocksDB)",
    )
    rules_file: str | None = Field(
        None, description="scoring rules YAML; unset uses the packaged rules"
    )
    playbook_file: str | None = Field(
        None,
        description="playbook YAML, the owner and actions per signal kind; unset "
        "uses the packaged playbook",
    )
    clock: Literal["event", "wall"] = Field(
        "wall",
        description="what drives overdue checks between events: the wall clock "
        "(live) or only event time (backfills, replay comparisons)",
    )
    tick_interval_s: float = Field(
        5.0,
        gt=0,
        description="period of the wall-clock tick",
        json_schema_extra=_unit("seconds"),
    )
    batch_size: int = Field(
        8000,
        ge=1,
        description="maximum events per processing batch; each changed customer "
        "is scored and written once per batch, so a backlog is worked off faster "
        "in larger batches",
        json_schema_extra=_unit("events"),
    )
    batch_timeout_s: float = Field(
        0.2,
        gt=0,
        description="maximum wait to fill a batch",
        json_schema_extra=_unit("seconds"),
    )
    state_cache_size: int = Field(
        20_000,
        ge=0,
        description="decoded customer states kept in memory per partition "
        "between batches",
        json_schema_extra=_unit("customers"),
    )
    merge_hold_s: float = Field(
        1.0,
        gt=0,
        description="maximum wait for a topic that has sent nothing since the "
        "partition was assigned, before the event-time merge goes on without it",
        json_schema_extra=_unit("seconds"),
    )
    max_future_s: float = Field(
        86400.0,
        ge=0,
        description="events dated more than this far ahead of the wall clock are "
        "dead-lettered, because one would move its partition's event clock "
        "forward; 0 turns the check off",
        json_schema_extra=_unit("seconds"),
    )
    web_host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="address the worker's web server binds to; 0.0.0.0 for all",
    )
    web_port: int = Field(
        6066,
        ge=0,
        le=65535,
        description="TCP port of the worker's web server",
    )
    web_url: str | None = Field(
        None,
        pattern=r"^https?://[^/\s]+/?$",
        description="URL at which other workers and riskstream explain reach this "
        "worker's web server; unset means http://WEB_HOST:WEB_PORT",
    )
    metrics_host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="address the Prometheus metrics endpoint binds to; 0.0.0.0 for all",
    )
    metrics_port: int = Field(
        9108,
        ge=0,
        le=65535,
        description="TCP port of the Prometheus metrics endpoint; 0 turns it off",
    )
    session_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Kafka group session timeout; Faust's 60 s default made a "
        "restarted worker wait for its departed predecessor",
        json_schema_extra=_unit("seconds"),
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto",
        description="log output: JSON lines, readable console lines, or auto "
        "(console when stderr is a terminal, JSON otherwise)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="lowest level logged; any case is accepted"
    )

    @field_validator("broker")
    @classmethod
    def _check_broker(cls, value: str) -> str:
        for url in value.split(";"):
            scheme, _, host = url.partition("://")
            if scheme not in ("kafka", "aiokafka") or not host.strip("/"):
                raise ValueError(
                    "each broker must be a URL kafka://HOST:PORT, such as "
                    "kafka://localhost:9092"
                )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Rank the command line over the environment over the settings file."""
        path = config_file_of(init_settings)
        return init_settings, env_settings, YamlFileSource(settings_cls, path)

    def topic(self, name: str) -> str:
        """Return the full name of topic ``name``."""
        return f"{self.topic_prefix}{name}"

    def web_url_or_default(self) -> str:
        """Return the URL other workers use to reach this worker's web server."""
        return self.web_url or f"http://{self.web_host}:{self.web_port}"


def config_file_of(init_settings: PydanticBaseSettingsSource) -> str | None:
    """Return the settings file named on the command line or in the environment."""
    if isinstance(init_settings, InitSettingsSource):
        named = init_settings.init_kwargs.get("config_file")
        if named is not None:
            return str(named)
    return os.environ.get(CONFIG_FILE_ENV) or None


class YamlFileSource(PydanticBaseSettingsSource):
    """Settings from a flat YAML mapping of setting names to values.

    Raises:
        ConfigError: the file cannot be read, is not a mapping, or has a key
            that is not a setting.
    """

    def __init__(self, settings_cls: type[BaseSettings], path: str | None) -> None:
        super().__init__(settings_cls)
        self.path = path
        self.values = {} if path is None else read_settings_file(path)

    def get_field_value(
        self, field: FieldInfo, field_name: str
    ) -> tuple[Any, str, bool]:
        """Return the file's value of one setting, or None when it has none."""
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        """Return the settings the file sets."""
        return dict(self.values)


def read_settings_file(path: str | Path) -> dict[str, Any]:
    """Read a settings file and check its keys; values are checked by Settings.

    Raises:
        ConfigError: the file cannot be read, is not a mapping, or has a key
            that is not a setting.
    """
    name, document, data = read_yaml(path, "", "settings file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{name}:1: a settings file must be a mapping of setting names to "
            f"values, not a {type(data).__name__}"
        )
    known = set(Settings.model_fields) - {"config_file"}
    for key in data:
        if key in known:
            continue
        line = line_of(document, [key])
        hint = (
            "it can only come from --config or " + CONFIG_FILE_ENV
            if key == "config_file"
            else "riskstream settings --table lists the valid names"
        )
        raise ConfigError(f"{name}:{line}: {key!r} is not a setting; {hint}")
    return dict(data)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, with ``overrides`` from the command line ranked first.

    Raises:
        ConfigError: a value is invalid; the message names the setting, the
            rule, the value and its source.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, overrides)) from None


def describe_errors(exc: ValidationError, overrides: dict[str, Any]) -> str:
    """Describe each invalid setting with its rule, value and source."""
    lines = []
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else "settings"
        rule = str(error["msg"]).removeprefix("Value error, ")
        source = source_of(name, overrides)
        field = Settings.model_fields.get(name)
        default = "" if field is None else f" {field.default!r}"
        lines.append(
            f"setting {name}: {rule}; got {error['input']!r} from {source}. Fix "
            f"the value, or remove it to use the default{default}."
        )
    return "invalid settings:\n  " + "\n  ".join(lines)


def source_of(name: str, overrides: dict[str, Any]) -> str:
    """Name where the value of setting ``name`` comes from, by precedence."""
    if overrides.get(name) is not None:
        option = "config" if name == "config_file" else name.replace("_", "-")
        return f"the command line (--{option})"
    env_name = ENV_PREFIX + name.upper()
    if any(key.upper() == env_name for key in os.environ):
        return f"the environment variable {env_name}"
    path = overrides.get("config_file") or os.environ.get(CONFIG_FILE_ENV)
    if path and name != "config_file":
        name_shown, document, data = read_yaml(path, "", "settings file")
        if isinstance(data, dict) and name in data:
            return f"{name_shown}:{line_of(document, [name])}"
    return "the default"


def settings_table() -> str:
    """Render the Markdown table of every setting for docs/configuration.md."""
    rows = [
        "| setting | environment variable | default | unit | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra
        unit = extra.get("unit", "") if isinstance(extra, dict) else ""
        default = "unset" if field.default is None else f"`{field.default}`"
        if field.default == "":
            default = "empty"
        rows.append(
            f"| `{name}` | `{ENV_PREFIX}{name.upper()}` | {default} | {unit} "
            f"| {field.description} |"
        )
    return "\n".join(rows) + "\n"


def dump_settings(settings: Settings, overrides: dict[str, Any]) -> str:
    """Render the effective settings as YAML, each with its source as a comment."""
    lines = []
    for name in Settings.model_fields:
        value = yaml.safe_dump(
            {name: getattr(settings, name)}, default_flow_style=True, width=1000
        ).strip()
        lines.append(f"{value.strip('{}')}  # {source_of(name, overrides)}")
    return "\n".join(lines) + "\n"
