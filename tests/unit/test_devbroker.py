"""Unit tests for riskstream.devbroker that need neither Java nor Maven."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import stat
from pathlib import Path

import pytest

from riskstream import devbroker
from riskstream.devbroker import (
    KAFKA_POM,
    LOG4J2_PROPERTIES,
    BrokerStartError,
    DevBrokerError,
    KafkaBroker,
    java_major_version,
    new_cluster_id,
    render_server_properties,
    resolve_jars,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# Fake java launcher that prints a JDK 17 version banner for "-version". Each test
# appends what the StorageTool and kafka.Kafka invocations do.
FAKE_JAVA_HEADER = """#!/bin/sh
if [ "$1" = "-version" ]; then
  echo 'openjdk version "17.0.15" 2025-04-15' >&2
  exit 0
fi
case "$*" in
  *kafka.tools.StorageTool*) is_format=1 ;;
  *) is_format=0 ;;
esac
"""


def normalise_whitespace(text: str) -> str:
    return " ".join(text.split())


def parse_properties(text: str) -> dict[str, str]:
    entries = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            entries[key] = value
    return entries


def write_script(path: Path, body: str) -> Path:
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def write_complete_cache(lib_dir: Path) -> None:
    lib_dir.mkdir(parents=True)
    (lib_dir / "kafka_2.13-4.1.1.jar").write_bytes(b"")
    marker = {
        "kafka_version": "4.1.1",
        "pom_sha256": hashlib.sha256(KAFKA_POM.encode()).hexdigest(),
        "jars": ["kafka_2.13-4.1.1.jar"],
    }
    (lib_dir / devbroker.MARKER_NAME).write_text(json.dumps(marker))


def test_embedded_pom_matches_deploy_file() -> None:
    deploy_pom = (REPO_ROOT / "deploy" / "kafka" / "pom.xml").read_text()
    assert normalise_whitespace(KAFKA_POM) == normalise_whitespace(deploy_pom)


def test_embedded_log4j_config_matches_deploy_file() -> None:
    deploy_config = (REPO_ROOT / "deploy" / "kafka" / "log4j2.properties").read_text()
    assert normalise_whitespace(LOG4J2_PROPERTIES) == normalise_whitespace(
        deploy_config
    )


def test_server_properties_listen_on_loopback(tmp_path: Path) -> None:
    text = render_server_properties(
        port=19092, controller_port=19093, log_dir=tmp_path / "data"
    )
    properties = parse_properties(text)

    assert properties["listeners"] == (
        "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    )
    assert properties["advertised.listeners"] == (
        "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    )
    assert properties["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert properties["process.roles"] == "broker,controller"
    assert properties["log.dirs"] == (tmp_path / "data").as_posix()


def test_server_properties_single_node_settings(tmp_path: Path) -> None:
    properties = parse_properties(
        render_server_properties(
            port=1, controller_port=2, log_dir=tmp_path, num_partitions=6
        )
    )

    assert properties["offsets.topic.replication.factor"] == "1"
    assert properties["transaction.state.log.replication.factor"] == "1"
    assert properties["transaction.state.log.min.isr"] == "1"
    assert properties["group.initial.rebalance.delay.ms"] == "0"
    assert properties["auto.create.topics.enable"] == "true"
    assert properties["num.partitions"] == "6"


def test_cluster_id_format() -> None:
    for _ in range(200):
        cluster_id = new_cluster_id()
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


@pytest.mark.parametrize(
    ("banner", "expected"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "25-ea" 2025-09-16', 25),
    ],
)
def test_java_major_version_parsing(tmp_path: Path, banner: str, expected: int) -> None:
    java = write_script(tmp_path / "java", f"#!/bin/sh\necho '{banner}' >&2\n")
    assert java_major_version(java) == expected


def test_start_rejects_old_java(tmp_path: Path) -> None:
    java = write_script(
        tmp_path / "java", "#!/bin/sh\necho 'java version \"1.8.0_392\"' >&2\n"
    )
    broker = KafkaBroker(tmp_path / "work", jars_dir=tmp_path, java=java)
    with pytest.raises(DevBrokerError, match="Java 8, but Kafka 4.1.1 needs Java 17"):
        broker.start()


def test_start_rejects_non_empty_workdir(tmp_path: Path) -> None:
    java = write_script(tmp_path / "java", FAKE_JAVA_HEADER)
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "meta.properties").write_text("node.id=1\n")
    broker = KafkaBroker(workdir, jars_dir=tmp_path, java=java)

    with pytest.raises(DevBrokerError, match="is not empty"):
        broker.start()
    assert (workdir / "meta.properties").exists()


def test_start_reports_format_failure(tmp_path: Path) -> None:
    java = write_script(
        tmp_path / "java",
        FAKE_JAVA_HEADER + 'echo "Invalid cluster.id" >&2\nexit 3\n',
    )
    broker = KafkaBroker(tmp_path / "work", jars_dir=tmp_path, java=java)

    with pytest.raises(DevBrokerError, match="exit code 3") as excinfo:
        broker.start()
    assert "Invalid cluster.id" in str(excinfo.value)


def test_start_reports_broker_exit_with_log(tmp_path: Path) -> None:
    java = write_script(
        tmp_path / "java",
        FAKE_JAVA_HEADER
        + '[ "$is_format" = 1 ] && exit 0\n'
        + 'echo "ERROR Exiting Kafka due to fatal exception"\nexit 1\n',
    )
    broker = KafkaBroker(tmp_path / "work", jars_dir=tmp_path, java=java)

    with pytest.raises(BrokerStartError, match="exited with code 1") as excinfo:
        broker.start()
    message = str(excinfo.value)
    assert str(tmp_path / "work" / "kafka.log") in message
    assert "Exiting Kafka due to fatal exception" in message
    # The work directory stays after a failed start so the log can be read.
    assert (tmp_path / "work" / "kafka.log").is_file()
    assert (tmp_path / "work" / "server.properties").is_file()


def test_start_retries_port_conflicts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    java = write_script(
        tmp_path / "java",
        FAKE_JAVA_HEADER
        + '[ "$is_format" = 1 ] && exit 0\n'
        + 'echo "java.net.BindException: Address already in use"\nexit 1\n',
    )
    broker = KafkaBroker(tmp_path / "work", jars_dir=tmp_path, java=java)

    with caplog.at_level(logging.WARNING, logger="riskstream.devbroker"):
        with pytest.raises(BrokerStartError, match="exited with code 1"):
            broker.start()
    log_lines = (tmp_path / "work" / "kafka.log").read_text().splitlines()
    assert log_lines.count("java.net.BindException: Address already in use") == 3
    retries = [r for r in caplog.records if "could not bind its ports" in r.message]
    assert len(retries) == 2


def test_start_times_out_and_stops_process(tmp_path: Path) -> None:
    java = write_script(
        tmp_path / "java",
        FAKE_JAVA_HEADER + '[ "$is_format" = 1 ] && exit 0\nexec sleep 30\n',
    )
    broker = KafkaBroker(
        tmp_path / "work", jars_dir=tmp_path, java=java, startup_timeout=1.0
    )

    with pytest.raises(BrokerStartError, match="did not respond to a Metadata request"):
        broker.start()
    assert not broker.is_running()


def test_stop_without_start_is_noop(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path / "work")
    broker.stop()
    broker.stop()
    assert not broker.is_running()
    with pytest.raises(DevBrokerError, match="not running"):
        _ = broker.bootstrap


def test_resolve_skips_maven_for_complete_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib_dir = tmp_path / "lib"
    write_complete_cache(lib_dir)
    # With an empty PATH any attempt to run mvn fails.
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    assert resolve_jars(lib_dir) == lib_dir.resolve()


def test_resolve_uses_cache_env_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib_dir = tmp_path / "from-env"
    write_complete_cache(lib_dir)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv(devbroker.CACHE_ENV_VAR, str(lib_dir))

    assert resolve_jars() == lib_dir.resolve()


def test_resolve_reruns_maven_for_changed_pom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib_dir = tmp_path / "lib"
    write_complete_cache(lib_dir)
    marker_path = lib_dir / devbroker.MARKER_NAME
    marker = json.loads(marker_path.read_text())
    marker["pom_sha256"] = "0" * 64
    marker_path.write_text(json.dumps(marker))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    # The stale cache needs Maven, which the empty PATH hides.
    with pytest.raises(DevBrokerError, match="Maven \\('mvn'\\) was not found"):
        resolve_jars(lib_dir)


def test_cli_resolve_prints_jar_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lib_dir = tmp_path / "lib"
    write_complete_cache(lib_dir)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    exit_code = devbroker.main(["resolve", "--cache-dir", str(lib_dir)])

    assert exit_code == 0
    assert capsys.readouterr().out.strip() == str(lib_dir.resolve())
