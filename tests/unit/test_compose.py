"""docker-compose.yml checked without a Docker engine.

The file is parsed with PyYAML, and each riskstream service's command and
environment go through the real command-line parser and Settings. When the
``docker compose`` plugin is installed, ``docker compose config -q`` checks
the file against the Compose specification too; it needs no engine.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from riskstream_agents.app import create_worker

from riskstream.cli import build_parser
from riskstream.settings import Settings

ROOT = Path(__file__).parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
MONITORING_MOUNTS = {
    "./deploy/prometheus/prometheus.yml": "/etc/prometheus/prometheus.yml",
    "./deploy/prometheus/rules": "/etc/prometheus/rules",
    "./deploy/grafana/provisioning": "/etc/grafana/provisioning",
    "./deploy/grafana/dashboards": "/var/lib/grafana/dashboards",
}


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


COMPOSE = load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """Return (instruction, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def image_environment() -> dict[str, str]:
    """Return the ENV variables the Dockerfile sets."""
    environment = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction == "ENV":
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                environment[name] = value
    return environment


def uses_project_image(service: dict[str, Any]) -> bool:
    return "build" in service


def worker_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in SERVICES.items()
        if uses_project_image(service) and service.get("command", [])[:1] == ["worker"]
    }


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    """Return the container's environment: the image's, then the service's."""
    environment = dict(image_environment()) if uses_project_image(service) else {}
    for name, value in (service.get("environment") or {}).items():
        environment[name] = "" if value is None else str(value)
    return environment


def riskstream_commands(service: dict[str, Any]) -> list[list[str]]:
    """Return the riskstream command lines a project-image service runs."""
    entrypoint = service.get("entrypoint")
    command = service.get("command", ["worker"])
    if entrypoint is None:
        return [list(command)]
    assert entrypoint == ["sh", "-c"], f"unexpected entrypoint {entrypoint}"
    lines = []
    for part in " ".join(command).split("&&"):
        words = shlex.split(part)
        assert words[0] == "riskstream", f"{part!r} does not run riskstream"
        lines.append(words[1:])
    return lines


def parse_command(argv: list[str]) -> Any:
    try:
        return build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"riskstream {' '.join(argv)} is not a valid command line")


def settings_env(service: dict[str, Any]) -> dict[str, str]:
    return {
        name: value
        for name, value in environment_of(service).items()
        if name.startswith("RISKSTREAM_")
    }


def test_images_pinned():
    for name, service in SERVICES.items():
        if "image" not in service:
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag, f"{name}: image {image} has no tag"
        assert tag != "latest", f"{name}: image {image} is not pinned"
        assert re.search(r"\d", tag), f"{name}: tag {tag} names no version"


def test_dockerfile_base_image_pinned():
    bases = [
        args for instruction, args in dockerfile_instructions() if instruction == "FROM"
    ]

    assert bases, "the Dockerfile has no FROM"
    for base in bases:
        tag = base.split()[0].rpartition(":")[2]
        assert re.match(r"\d+\.\d+\.\d+", tag), f"base image {base} is not pinned"


def test_build_contexts_exist():
    for name, service in SERVICES.items():
        if "build" not in service:
            continue
        build = service["build"]
        context = ROOT / build["context"]
        assert context.is_dir(), f"{name}: build context {context} is missing"
        assert (context / build.get("dockerfile", "Dockerfile")).is_file()


def bind_mounts() -> list[Any]:
    mounts = []
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                mounts.append(pytest.param(name, volume, id=f"{name}:{source}"))
    return mounts


@pytest.mark.parametrize(("service", "volume"), bind_mounts())
def test_bind_mount_source_exists(service, volume):
    source = volume.split(":")[0]

    assert (ROOT / source).exists(), f"{service}: {source} is missing in the repository"


def test_monitoring_mounts_at_expected_paths():
    mounted = {
        volume.split(":")[0]: volume.split(":")[1]
        for service in SERVICES.values()
        for volume in service.get("volumes", [])
    }

    for source, target in MONITORING_MOUNTS.items():
        assert mounted.get(source) == target, source


def test_named_volumes_declared():
    declared = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"


def published_ports() -> list[tuple[str, str, str, str]]:
    """Return (service, host address, host port, container port) of each port."""
    ports = []
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            host_ip, host_port, container_port = str(port).split(":")
            ports.append((name, host_ip, host_port, container_port))
    return ports


def test_published_ports_unique():
    seen: dict[tuple[str, str], str] = {}
    for name, host_ip, host_port, _ in published_ports():
        key = (host_ip, host_port)
        assert key not in seen, f"{name} and {seen[key]} both publish {key}"
        seen[key] = name


def test_published_ports_loopback_only():
    for name, host_ip, host_port, _ in published_ports():
        assert host_ip == "127.0.0.1", f"{name}: port {host_port} binds to {host_ip}"


def test_no_replicas_with_fixed_ports_or_volumes():
    for name, service in SERVICES.items():
        replicas = (service.get("deploy") or {}).get("replicas", 1)
        if replicas > 1:
            assert not service.get("ports"), f"{name}: replicas share host ports"
            assert not service.get("volumes"), f"{name}: replicas share a volume"


def test_environment_names_are_settings():
    fields = set(Settings.model_fields)
    for name, service in SERVICES.items():
        for variable in settings_env(service):
            setting = variable.removeprefix("RISKSTREAM_").lower()
            assert setting in fields, f"{name}: {variable} is not a setting"


def test_image_environment_names_are_settings():
    for variable in image_environment():
        if variable.startswith("RISKSTREAM_"):
            setting = variable.removeprefix("RISKSTREAM_").lower()
            assert setting in Settings.model_fields, f"Dockerfile: {variable}"


def test_service_commands_parse_and_validate(deployed_settings, tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text("")
    written: set[str] = set()
    for name, service in SERVICES.items():
        if not uses_project_image(service):
            continue
        for argv in riskstream_commands(service):
            if argv[0] == "produce":
                assert argv[1] in written, f"{name}: produce reads an unwritten file"
                argv = [argv[0], str(events), *argv[2:]]
            args = parse_command(argv)
            if argv[0] == "datasets":
                written.add(str(args.out))
            if argv[0] in ("worker", "topics", "produce"):
                deployed_settings(settings_env(service), argv=argv)


def test_at_least_two_workers():
    assert len(worker_services()) >= 2


def test_workers_have_own_volume_and_url(deployed_settings):
    volumes, urls = set(), set()
    for name, service in worker_services().items():
        settings = deployed_settings(settings_env(service))
        mounts = {
            volume.split(":")[1]: volume.split(":")[0]
            for volume in service.get("volumes", [])
        }
        url = urlsplit(settings.web_url or "")

        assert settings.data_dir in mounts, f"{name}: data_dir is not a volume"
        assert settings.store == "rocksdb://"
        assert url.hostname == name, f"{name}: web_url names {url.hostname}"
        assert url.port == settings.web_port
        volumes.add(mounts[settings.data_dir])
        urls.add(settings.web_url)

    assert len(volumes) == len(worker_services()), "workers share a data volume"
    assert len(urls) == len(worker_services()), "workers share a web_url"


def test_workers_listen_where_published(deployed_settings):
    for name, service in worker_services().items():
        settings = deployed_settings(settings_env(service))
        targets = {port.split(":")[-1] for port in service.get("ports", [])}

        assert settings.web_host == "0.0.0.0", f"{name}: web server is unreachable"
        assert settings.metrics_host == "0.0.0.0", f"{name}: metrics are unreachable"
        assert str(settings.web_port) in targets
        assert str(settings.metrics_port) in targets


def test_worker_healthcheck_on_registered_page(deployed_settings):
    pages = set(create_worker(Settings(store="memory://")).app.web.views)
    for name, service in worker_services().items():
        settings = deployed_settings(settings_env(service))
        probe = " ".join(service["healthcheck"]["test"])
        url = urlsplit(re.search(r"http://[^'\"\s]+", probe).group(0))

        assert url.path in pages, f"{name}: {url.path} is not a page of the worker"
        assert url.port == settings.web_port


def test_depends_on_names_exist():
    for name, service in SERVICES.items():
        for dependency, rule in dependencies(service).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            condition = rule.get("condition", "service_started")
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], dependency
            if condition == "service_completed_successfully":
                assert SERVICES[dependency].get("restart") in (None, "no")


def dependencies(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return {name: {} for name in depends}
    return dict(depends)


def kafka_listeners(environment: dict[str, str], key: str) -> dict[str, str]:
    """Map listener name to its host:port, from KAFKA_LISTENERS or similar."""
    listeners = {}
    for entry in environment[key].split(","):
        name, _, address = entry.partition("://")
        listeners[name] = address
    return listeners


def test_kafka_is_kraft_single_node():
    kafka = SERVICES["kafka"]
    environment = environment_of(kafka)
    roles = set(environment["KAFKA_PROCESS_ROLES"].split(","))
    node_id = environment["KAFKA_NODE_ID"]
    voters = environment["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    listeners = kafka_listeners(environment, "KAFKA_LISTENERS")
    controller = environment["KAFKA_CONTROLLER_LISTENER_NAMES"]

    assert roles == {"broker", "controller"}
    assert len(voters) == 1
    voter_id, _, voter_address = voters[0].partition("@")
    assert voter_id == node_id
    assert voter_address.split(":") == ["kafka", listeners[controller].split(":")[1]]
    for variable in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert environment[variable] == "1", variable
    assert environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_broker_url_reaches_kafka_listener(deployed_settings):
    environment = environment_of(SERVICES["kafka"])
    advertised = kafka_listeners(environment, "KAFKA_ADVERTISED_LISTENERS")
    listeners = kafka_listeners(environment, "KAFKA_LISTENERS")
    for name, service in SERVICES.items():
        if not uses_project_image(service):
            continue
        broker = deployed_settings(settings_env(service)).broker
        address = broker.removeprefix("kafka://")

        assert {"kafka", "topics"} & set(dependencies(service)), f"{name}: no order"
        assert address in advertised.values(), f"{name}: {broker} is not advertised"
        listener = next(key for key, value in advertised.items() if value == address)
        assert listeners[listener].endswith(":" + address.split(":")[1])


def test_external_kafka_listener_published():
    environment = environment_of(SERVICES["kafka"])
    advertised = kafka_listeners(environment, "KAFKA_ADVERTISED_LISTENERS")
    listeners = kafka_listeners(environment, "KAFKA_LISTENERS")
    published = {
        (host_port, container_port)
        for service, _, host_port, container_port in published_ports()
        if service == "kafka"
    }
    host, port = advertised["EXTERNAL"].split(":")

    assert host == "localhost"
    assert (port, listeners["EXTERNAL"].split(":")[1]) in published


def test_prometheus_scrapes_workers(deployed_settings):
    path = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    if not path.exists():
        pytest.skip("deploy/prometheus/prometheus.yml is absent; the mount test fails")
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    targets = {
        target
        for job in config.get("scrape_configs", [])
        for static in job.get("static_configs", [])
        for target in static.get("targets", [])
    }

    for name, service in worker_services().items():
        settings = deployed_settings(settings_env(service))
        assert f"{name}:{settings.metrics_port}" in targets, name


def test_compose_config_valid():
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker client is not installed")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")

    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
