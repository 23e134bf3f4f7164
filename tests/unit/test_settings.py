"""Settings: precedence of their sources, error messages, the docs table."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from riskstream.cli import build_parser, main
from riskstream.cli_settings import settings_from_args
from riskstream.errors import ConfigError
from riskstream.settings import Settings, load_settings, settings_table

ROOT = Path(__file__).parents[2]
CONFIGURATION_DOC = ROOT / "docs" / "configuration.md"
EXAMPLE_FILE = ROOT / "deploy" / "riskstream.example.yaml"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove RISKSTREAM_* variables of the caller's shell from every test."""
    for name in list(os.environ):
        if name.upper().startswith("RISKSTREAM_"):
            monkeypatch.delenv(name)


@pytest.fixture
def settings_file(tmp_path: Path):
    def write(text: str) -> Path:
        path = tmp_path / "riskstream.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def worker_settings(*argv: str) -> Settings:
    """Parse ``riskstream worker ARGV`` with the real parser and build settings."""
    return settings_from_args(build_parser().parse_args(["worker", *argv]))


def test_defaults_without_sources():
    settings = load_settings()

    assert settings.web_port == 6066
    assert settings.metrics_port == 9108
    assert settings.metrics_host == "127.0.0.1"
    assert settings.config_file is None


def test_file_overrides_defaults(settings_file):
    path = settings_file("web_port: 7001\nclock: event\n")

    settings = worker_settings("--config", str(path))

    assert settings.web_port == 7001
    assert settings.clock == "event"
    assert settings.metrics_port == 9108


def test_environment_overrides_file(settings_file, monkeypatch):
    path = settings_file("web_port: 7001\nclock: event\n")
    monkeypatch.setenv("RISKSTREAM_WEB_PORT", "7002")

    settings = worker_settings("--config", str(path))

    assert settings.web_port == 7002
    assert settings.clock == "event"


def test_command_line_overrides_environment(settings_file, monkeypatch):
    path = settings_file("web_port: 7001\nbatch_size: 10\n")
    monkeypatch.setenv("RISKSTREAM_WEB_PORT", "7002")
    monkeypatch.setenv("RISKSTREAM_BATCH_SIZE", "20")

    settings = worker_settings("--config", str(path), "--web-port", "7003")

    assert settings.web_port == 7003
    assert settings.batch_size == 20


def test_generic_option_overrides_environment(monkeypatch):
    monkeypatch.setenv("RISKSTREAM_BATCH_TIMEOUT_S", "0.5")

    settings = worker_settings("--batch-timeout-s", "0.7", "--log-level", "debug")

    assert settings.batch_timeout_s == 0.7
    assert settings.log_level == "DEBUG"


def test_config_file_named_by_environment(settings_file, monkeypatch, tmp_path):
    monkeypatch.setenv("RISKSTREAM_CONFIG_FILE", str(settings_file("web_port: 7001\n")))
    other = tmp_path / "other.yaml"
    other.write_text("web_port: 7004\n")

    assert worker_settings().web_port == 7001
    assert worker_settings("--config", str(other)).web_port == 7004


def test_file_value_error_names_line(settings_file):
    path = settings_file("clock: event\nweb_port: 70000\n")

    with pytest.raises(ConfigError) as raised:
        worker_settings("--config", str(path))

    message = str(raised.value)
    assert "setting web_port" in message
    assert "less than or equal to 65535" in message
    assert "70000" in message
    assert f"{path}:2" in message


def test_environment_error_names_variable(monkeypatch):
    monkeypatch.setenv("RISKSTREAM_CLOCK", "sundial")

    with pytest.raises(ConfigError) as raised:
        load_settings()

    message = str(raised.value)
    assert "setting clock" in message
    assert "'event' or 'wall'" in message
    assert "'sundial'" in message
    assert "environment variable RISKSTREAM_CLOCK" in message


def test_command_line_error_names_option():
    with pytest.raises(ConfigError) as raised:
        worker_settings("--metrics-port", "-1")

    message = str(raised.value)
    assert "setting metrics_port" in message
    assert "greater than or equal to 0" in message
    assert "command line (--metrics-port)" in message


def test_every_invalid_setting_listed(monkeypatch):
    monkeypatch.setenv("RISKSTREAM_BROKER", "localhost:9092")
    monkeypatch.setenv("RISKSTREAM_PARTITIONS", "0")

    with pytest.raises(ConfigError) as raised:
        load_settings()

    message = str(raised.value)
    assert "setting broker" in message
    assert "kafka://HOST:PORT" in message
    assert "setting partitions" in message


def test_unknown_file_key_rejected(settings_file):
    path = settings_file("web_port: 7001\nweb_prot: 7002\n")

    with pytest.raises(ConfigError) as raised:
        worker_settings("--config", str(path))

    assert f"{path}:2" in str(raised.value)
    assert "'web_prot' is not a setting" in str(raised.value)


def test_config_file_key_rejected_in_file(settings_file):
    path = settings_file("config_file: other.yaml\n")

    with pytest.raises(ConfigError) as raised:
        worker_settings("--config", str(path))

    assert "only come from --config" in str(raised.value)


def test_non_mapping_file_rejected(settings_file):
    path = settings_file("- web_port\n")

    with pytest.raises(ConfigError) as raised:
        worker_settings("--config", str(path))

    assert "must be a mapping" in str(raised.value)


def test_missing_file_rejected(tmp_path):
    with pytest.raises(ConfigError) as raised:
        worker_settings("--config", str(tmp_path / "absent.yaml"))

    assert "absent.yaml: cannot read the settings file" in str(raised.value)


def test_invalid_setting_exit_status(settings_file, capsys):
    path = settings_file("partitions: 0\n")

    status = main(["settings", "--config", str(path)])

    error = capsys.readouterr().err
    assert status == 2
    assert "setting partitions" in error
    assert "Traceback" not in error


def test_settings_command_shows_sources(settings_file, monkeypatch, capsys):
    path = settings_file("web_port: 7001\nclock: event\n")
    monkeypatch.setenv("RISKSTREAM_CLOCK", "wall")

    status = main(["settings", "--config", str(path), "--batch-size", "5"])

    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert f"web_port: 7001  # {path}:1" in lines
    assert "clock: wall  # the environment variable RISKSTREAM_CLOCK" in lines
    assert "batch_size: 5  # the command line (--batch-size)" in lines
    assert "metrics_port: 9108  # the default" in lines


def test_example_file_sets_defaults():
    settings = worker_settings("--config", str(EXAMPLE_FILE))

    for name, field in Settings.model_fields.items():
        if name != "config_file":
            assert getattr(settings, name) == field.default, name


def test_every_setting_has_worker_option():
    parser = build_parser()
    worker = parser._subparsers._group_actions[0].choices["worker"]  # type: ignore[union-attr]
    destinations = {action.dest for action in worker._actions}

    assert set(Settings.model_fields) <= destinations


def documented_table() -> str:
    text = CONFIGURATION_DOC.read_text(encoding="utf-8")
    found = re.search(
        r"<!-- settings-table:start -->\n(.*?)<!-- settings-table:end -->",
        text,
        re.DOTALL,
    )
    assert found, "docs/configuration.md has no settings-table markers"
    return found.group(1)


def test_docs_table_lists_every_setting():
    rows = [line for line in documented_table().splitlines() if line.startswith("| `")]
    names = [row.split("`")[1] for row in rows]

    assert sorted(names) == sorted(Settings.model_fields)
    for row in rows:
        name = row.split("`")[1]
        assert f"`RISKSTREAM_{name.upper()}`" in row


def test_docs_table_matches_fields():
    # Regenerate the table with: riskstream settings --table
    assert documented_table() == settings_table()
