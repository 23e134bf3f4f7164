"""The Kubernetes example in deploy/k8s, checked against the code.

No cluster runs here, so the manifests are parsed as YAML and compared with
the settings, the command-line parser and the worker's registered pages.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from riskstream_agents.app import create_worker

from riskstream.cli import build_parser
from riskstream.settings import Settings

K8S = Path(__file__).parents[2] / "deploy" / "k8s"


def load_documents() -> list[dict[str, Any]]:
    documents = []
    for path in sorted(K8S.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                document["__file__"] = path.name
                documents.append(document)
    return documents


DOCUMENTS = load_documents()


def only(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        document
        for document in DOCUMENTS
        if document["kind"] == kind
        and (name is None or document["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


STATEFULSET = only("StatefulSet")
POD = STATEFULSET["spec"]["template"]
WORKER = POD["spec"]["containers"][0]
CONFIGMAP = only("ConfigMap")
JOB = only("Job")


def expand(value: str, environment: dict[str, str]) -> str:
    """Replace Kubernetes ``$(NAME)`` references as the kubelet does."""
    return re.sub(
        r"\$\((\w+)\)", lambda m: environment.get(m.group(1), m.group(0)), value
    )


def container_environment(container: dict[str, Any]) -> dict[str, str]:
    """Return the container's variables; a field reference becomes riskstream-0."""
    environment: dict[str, str] = {}
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = expand(variable["value"], environment)
        else:
            environment[variable["name"]] = "riskstream-0"
    return environment


def settings_file_of(pod_spec: dict[str, Any], container: dict[str, Any]) -> str:
    """Return the ConfigMap text that the container's RISKSTREAM_CONFIG_FILE names."""
    path = Path(container_environment(container)["RISKSTREAM_CONFIG_FILE"])
    mount = next(
        m for m in container["volumeMounts"] if path.parent == Path(m["mountPath"])
    )
    volume = next(v for v in pod_spec["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == CONFIGMAP["metadata"]["name"]
    return str(CONFIGMAP["data"][path.name])


def deployed(deployed_settings, pod_spec, container) -> Settings:
    environment = {
        name: value
        for name, value in container_environment(container).items()
        if name.startswith("RISKSTREAM_") and name != "RISKSTREAM_CONFIG_FILE"
    }
    text = settings_file_of(pod_spec, container)
    return deployed_settings(environment, text, argv=container["args"])


def test_kustomization_lists_existing_files():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())

    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource


def test_images_pinned():
    for document in (STATEFULSET, JOB):
        for container in document["spec"]["template"]["spec"]["containers"]:
            tag = container["image"].rpartition(":")[2]
            assert tag and tag != "latest", container["image"]
            assert re.search(r"\d", tag), container["image"]


def test_environment_names_are_settings():
    for document in (STATEFULSET, JOB):
        for container in document["spec"]["template"]["spec"]["containers"]:
            for name in container_environment(container):
                if name.startswith("RISKSTREAM_"):
                    setting = name.removeprefix("RISKSTREAM_").lower()
                    assert setting in Settings.model_fields, name


def test_worker_settings_valid(deployed_settings):
    settings = deployed(deployed_settings, POD["spec"], WORKER)

    assert settings.web_url == "http://riskstream-0.riskstream-workers:6066"
    assert settings.store == "rocksdb://"
    assert settings.web_host == "0.0.0.0"
    assert settings.metrics_host == "0.0.0.0"


def test_worker_command_parses():
    args = build_parser().parse_args(WORKER["args"])

    assert args.command == "worker"


def test_job_creates_topics_with_worker_settings(deployed_settings):
    job_pod = JOB["spec"]["template"]["spec"]
    container = job_pod["containers"][0]
    settings = deployed(deployed_settings, job_pod, container)
    worker = deployed(deployed_settings, POD["spec"], WORKER)

    assert container["args"][0] == "topics"
    assert job_pod["restartPolicy"] in ("OnFailure", "Never")
    assert settings.broker == worker.broker
    assert settings.partitions == worker.partitions
    assert settings.replication_factor == worker.replication_factor


def test_container_ports_match_settings(deployed_settings):
    settings = deployed(deployed_settings, POD["spec"], WORKER)
    ports = {port["name"]: port["containerPort"] for port in WORKER["ports"]}

    assert ports["http"] == settings.web_port
    assert ports["metrics"] == settings.metrics_port


def test_scrape_annotations_match_metrics_port(deployed_settings):
    settings = deployed(deployed_settings, POD["spec"], WORKER)
    annotations = POD["metadata"]["annotations"]

    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(settings.metrics_port)
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("probe", ["startupProbe", "livenessProbe", "readinessProbe"])
def test_probe_path_registered(probe):
    pages = set(create_worker(Settings(store="memory://")).app.web.views)
    check = WORKER[probe]["httpGet"]

    assert check["path"] in pages
    assert check["port"] in {port["name"] for port in WORKER["ports"]}


def test_readiness_uses_ready_page():
    assert WORKER["readinessProbe"]["httpGet"]["path"] == "/ready/"
    assert WORKER["livenessProbe"]["httpGet"]["path"] == "/health/"


def test_data_dir_on_claim_template(deployed_settings):
    settings = deployed(deployed_settings, POD["spec"], WORKER)
    claims = {
        c["metadata"]["name"] for c in STATEFULSET["spec"]["volumeClaimTemplates"]
    }
    mounts = {m["mountPath"]: m["name"] for m in WORKER["volumeMounts"]}

    assert mounts[settings.data_dir] in claims


def test_pod_user_owns_data_volume():
    security = POD["spec"]["securityContext"]

    assert security["runAsNonRoot"] is True
    assert security["fsGroup"] == security["runAsUser"]


def test_resources_requested_and_limited():
    for document in (STATEFULSET, JOB):
        for container in document["spec"]["template"]["spec"]["containers"]:
            resources = container["resources"]
            assert resources["requests"]["cpu"], container["name"]
            assert resources["requests"]["memory"], container["name"]
            assert resources["limits"]["memory"], container["name"]


def test_headless_service_of_statefulset():
    service = only("Service", STATEFULSET["spec"]["serviceName"])
    labels = POD["metadata"]["labels"]

    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"].items() <= labels.items()


def test_selectors_match_pod_labels():
    labels = POD["metadata"]["labels"]

    assert STATEFULSET["spec"]["selector"]["matchLabels"].items() <= labels.items()
    for document in DOCUMENTS:
        if document["kind"] == "Service":
            assert document["spec"]["selector"].items() <= labels.items()
        if document["kind"] == "PodDisruptionBudget":
            assert document["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_service_ports_target_container_ports():
    names = {port["name"] for port in WORKER["ports"]}
    for document in DOCUMENTS:
        if document["kind"] == "Service":
            for port in document["spec"]["ports"]:
                assert port["targetPort"] in names, document["metadata"]["name"]


def test_web_url_names_headless_service():
    url = container_environment(WORKER)["RISKSTREAM_WEB_URL"]
    host = url.removeprefix("http://").split(":")[0]

    assert host == f"riskstream-0.{STATEFULSET['spec']['serviceName']}"
    assert STATEFULSET["metadata"]["name"] == "riskstream"


def test_servicemonitor_scrapes_metrics_port():
    monitor = only("ServiceMonitor")
    matching = [
        document
        for document in DOCUMENTS
        if document["kind"] == "Service"
        and monitor["spec"]["selector"]["matchLabels"].items()
        <= document["metadata"]["labels"].items()
    ]
    port_names = {
        port["name"] for service in matching for port in service["spec"]["ports"]
    }

    assert matching
    assert monitor["spec"]["endpoints"][0]["port"] in port_names
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
