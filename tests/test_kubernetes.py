"""deploy/kubernetes: the manifests parse, agree with each other, with Settings and with the image."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from facesvc.config import Settings
from facesvc.rpc.server import SERVICE_NAME

KUSTOMIZE = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
DOCKERFILE = KUSTOMIZE.parents[1] / "Dockerfile"


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((KUSTOMIZE / name).read_text())
    assert isinstance(document, dict), name
    return document


def settings_env() -> dict[str, str]:
    pairs = {}
    for line in (KUSTOMIZE / "settings.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def by_kind() -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for name in load("kustomization.yaml")["resources"]:
        document = load(name)
        kinds.setdefault(document["kind"], []).append(document)
    return kinds


def container() -> dict[str, Any]:
    (deployment,) = by_kind()["Deployment"]
    (first,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(first, dict)
    return first


def test_the_kustomization_lists_every_manifest_and_each_parses() -> None:
    kustomization = load("kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in KUSTOMIZE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    kinds = by_kind()
    assert {k: len(v) for k, v in kinds.items()} == {
        "Deployment": 1,
        "Service": 2,
        "HorizontalPodAutoscaler": 1,
        "PodDisruptionBudget": 1,
    }
    (generator,) = kustomization["configMapGenerator"]
    assert generator["envs"] == ["settings.env"]
    assert container()["envFrom"] == [{"configMapRef": {"name": generator["name"]}}]


def test_every_setting_named_exists_in_settings_and_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    names = dict(settings_env())
    for variable in container().get("env", []):
        names[variable["name"]] = variable.get("value", "")
    assert names
    unknown = sorted(
        n for n in names if not n.startswith("FACESVC_") or n[8:].lower() not in Settings.model_fields
    )
    assert not unknown, f"not settings of facesvc: {unknown}"
    for key in [k for k in os.environ if k.startswith("FACESVC_")]:
        monkeypatch.delenv(key)
    for key, value in names.items():
        monkeypatch.setenv(key, value)
    Settings()  # the values validate as the pods would read them


def test_probes_ask_grpc_health_on_the_grpc_port() -> None:
    settings = settings_env()
    ports = {port["name"]: port["containerPort"] for port in container()["ports"]}
    assert ports == {
        "grpc": int(settings["FACESVC_PORT"]),
        "metrics": int(settings["FACESVC_METRICS_PORT"]),
        "http": int(settings["FACESVC_HTTP_PORT"]),
    }
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        spec = container()[probe]
        assert set(spec) & {"grpc", "exec", "httpGet", "tcpSocket"} == {"grpc"}, probe
        assert spec["grpc"]["port"] == ports["grpc"], probe
        # "" is the whole server; any other name must be one the server reports on.
        assert spec["grpc"].get("service", "") in ("", SERVICE_NAME), probe
    assert container()["readinessProbe"]["grpc"]["service"] == SERVICE_NAME
    (deployment,) = by_kind()["Deployment"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == settings["FACESVC_METRICS_PORT"]


def test_shutdown_fits_in_the_termination_grace_period() -> None:
    (deployment,) = by_kind()["Deployment"]
    period = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    grace = float(settings_env()["FACESVC_GRACE_SECONDS"])
    assert float(command[1]) + grace + 5 <= period


def test_services_select_the_pods_and_the_headless_one_has_no_cluster_ip() -> None:
    kinds = by_kind()
    (deployment,) = kinds["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    services = {s["metadata"]["name"]: s["spec"] for s in kinds["Service"]}
    assert services["facesvc-headless"]["clusterIP"] == "None"
    assert services["facesvc"].get("type", "ClusterIP") == "ClusterIP"
    named_ports = {port["name"] for port in container()["ports"]}
    for spec in services.values():
        assert spec["selector"].items() <= pod_labels.items()
        grpc_port = next(p for p in spec["ports"] if p["name"] == "grpc")
        assert grpc_port["targetPort"] in named_ports and grpc_port["appProtocol"] == "grpc"
    http_port = next(p for p in services["facesvc"]["ports"] if p["name"] == "http")
    assert http_port["targetPort"] in named_ports and http_port["appProtocol"] == "http"


def test_autoscaler_and_disruption_budget_keep_a_pod_serving() -> None:
    kinds = by_kind()
    (deployment,) = kinds["Deployment"]
    (hpa,) = kinds["HorizontalPodAutoscaler"]
    (pdb,) = kinds["PodDisruptionBudget"]
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"]
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    resources = container()["resources"]
    assert "cpu" in resources["requests"]  # Utilization is a share of the request


def _quantity(text: str) -> float:
    units = {"Mi": 2**20, "Gi": 2**30, "m": 1e-3, "": 1}
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(text)).groups()  # type: ignore[union-attr]
    return float(number) * units[unit]


def test_cpu_derived_settings_are_pinned_to_the_cpu_limit() -> None:
    """In a pod, os.cpu_count() is the node's core count, not the CPU limit: every setting
    whose default follows the core count must be set, and fit the limit."""
    settings = settings_env()
    cores = _quantity(container()["resources"]["limits"]["cpu"])
    derived = {
        "FACESVC_ENGINE_SLOTS",
        "FACESVC_MAX_CONCURRENT_RPCS",
        "FACESVC_PROCESSES",
        "FACESVC_OPENCV_THREADS",
    }
    assert derived <= settings.keys()
    assert int(settings["FACESVC_ENGINE_SLOTS"]) <= cores
    assert int(settings["FACESVC_PROCESSES"]) <= cores
    assert 1 <= int(settings["FACESVC_OPENCV_THREADS"]) <= cores
    assert int(settings["FACESVC_MAX_CONCURRENT_RPCS"]) <= 8 * cores


def test_resources_requests_fit_their_limits_and_the_pod_matches_the_image_user() -> None:
    resources = container()["resources"]
    for kind in ("cpu", "memory"):
        assert _quantity(resources["requests"][kind]) <= _quantity(resources["limits"][kind])
    (deployment,) = by_kind()["Deployment"]
    pod_security = deployment["spec"]["template"]["spec"]["securityContext"]
    user = re.search(r"^USER (\d+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert user and pod_security["runAsUser"] == int(user.group(1)) and pod_security["runAsNonRoot"]
    mounts = {mount["mountPath"] for mount in container()["volumeMounts"]}
    assert container()["securityContext"]["readOnlyRootFilesystem"] and "/tmp" in mounts


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_renders_the_layout() -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(KUSTOMIZE)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    config_map = next(d for d in documents if d["kind"] == "ConfigMap")
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    # The generated, hashed name is the one the pods read.
    (pod_container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert pod_container["envFrom"][0]["configMapRef"]["name"] == config_map["metadata"]["name"]
    assert config_map["data"] == settings_env()
    assert pod_container["image"].startswith("facesvc:")
