"""Fixtures shared by the unit and integration tests."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator

import pytest

BOOTSTRAP_ENV_VAR = "RISKSTREAM_TEST_BOOTSTRAP"
"""Bootstrap servers of a broker that the user runs. If set, tests start none."""


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of the Kafka broker shared by the whole test session.

    Returns RISKSTREAM_TEST_BOOTSTRAP when it is set. Otherwise starts one
    riskstream.devbroker.KafkaBroker (Java 17+, jars fetched by Maven on the
    first run) and stops it when the session ends. Tests share the broker, so
    each test creates its own topics under ``topic_prefix``.
    """
    external = os.environ.get(BOOTSTRAP_ENV_VAR)
    if external:
        yield external
        return

    # Imported here so that tests without a broker do not depend on this module.
    from riskstream.devbroker import KafkaBroker

    with KafkaBroker() as broker:
        yield broker.bootstrap


@pytest.fixture
def topic_prefix() -> str:
    """Unique topic name prefix for one test, such as ``"t-3f9a0c1e-"``.

    Append a name directly (``f"{topic_prefix}payments"``). The prefix also
    suits consumer group ids.
    """
    return f"t-{secrets.token_hex(4)}-"


def prometheus_tool(name: str) -> str:
    """Return the path of ``prometheus`` or ``promtool`` from Debian's package.

    Skips the test when the program is not on PATH, except in CI
    (``CI=true``), where ``.ci/run`` installs it and its absence fails the test.
    """
    path = shutil.which(name)
    if path is not None:
        return path
    message = (
        f"{name} is not on PATH; install Debian's prometheus package "
        "(apt-get install prometheus), as bash .ci/run does"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool, from Debian's prometheus package."""
    return prometheus_tool("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Path of the prometheus server, from Debian's prometheus package."""
    return prometheus_tool("prometheus")
