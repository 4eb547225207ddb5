"""The built production image, run as a user would: `make image-test`.

One container of FACESVC_IMAGE on free ports with --network host, its own HEALTHCHECK,
then what an operator types (grpcurl) and what a client sends, real photos from
../shared/faces; then what it left behind (`docker diff`) and how it stops.
The tests run in file order against the one container; each fails loudly.

Left out of `make test` (marker `image`): it needs a Docker engine and a built image.
    make image-test [VARIANT=slim] [PYTHON_IMAGE=local/python:3.11-bookworm]
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from facesvc.rpc.workers import EXIT_CANNOT_START
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests.conftest import CELEBS, photo, rejection
from tests.image.conftest import FIGURES

pytestmark = pytest.mark.image

DOCKER = os.environ.get("DOCKER", "docker")
GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")
#: Seconds `docker stop` waits before SIGKILL, by default; the image's grace is below it.
DOCKER_STOP_TIMEOUT = 10.0
IMAGE_UID = "10001"
#: The image's HEALTHCHECK: first check after --interval (15 s), within --start-period (60 s).
HEALTHY_WITHIN = 120.0
MESSAGE_LIMIT = 10 * 1024 * 1024


def docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def free_port() -> int:
    """A port free on every address, as the server binds [::] (IPv4 too) by default."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
        probe.bind(("::", 0))
        return int(probe.getsockname()[1])


def report(line: str) -> None:
    """A measured figure, for the summary `make image-test` ends with."""
    FIGURES.append(line)


@dataclass
class Container:
    image: str
    name: str
    port: int
    metrics_port: int
    http_port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def logs(self) -> list[dict[str, object]]:
        result = docker("logs", self.name)
        entries = []
        for line in (result.stdout + result.stderr).splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # OpenCV's own warnings go to stderr as plain text
        return entries

    def health(self) -> str:
        return docker("inspect", "--format", "{{.State.Health.Status}}", self.name).stdout.strip()

    def running(self) -> bool:
        return docker("inspect", "--format", "{{.State.Running}}", self.name).stdout.strip() == "true"


@pytest.fixture(scope="module")
def image() -> str:
    name = os.environ.get("FACESVC_IMAGE")
    if not name:
        pytest.fail("FACESVC_IMAGE is not set: run `make image-test`, which builds the image first")
    docker("image", "inspect", name)
    return name


def grpc_serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return response.status == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[Container]:
    started = Container(
        image, f"facesvc-image-test-{uuid.uuid4().hex[:8]}", free_port(), free_port(), free_port()
    )
    began = time.monotonic()
    docker(
        "run",
        "--detach",
        "--network",
        "host",
        "--name",
        started.name,
        "--env",
        f"FACESVC_PORT={started.port}",
        "--env",
        f"FACESVC_METRICS_PORT={started.metrics_port}",
        "--env",
        f"FACESVC_HTTP_PORT={started.http_port}",
        image,
    )
    try:
        serving_after = None
        while time.monotonic() - began < HEALTHY_WITHIN:
            if not started.running():
                raise AssertionError(f"the container exited:\n{docker('logs', started.name).stderr[-3000:]}")
            if serving_after is None and grpc_serving(started.target):
                serving_after = time.monotonic() - began
            if started.health() == "healthy":
                break
            time.sleep(0.2)
        assert started.health() == "healthy", f"not healthy within {HEALTHY_WITHIN} s: {started.health()}"
        assert serving_after is not None
        report(
            f"{image}: SERVING {serving_after:.1f} s after `docker run`; HEALTHCHECK healthy after "
            f"{time.monotonic() - began:.1f} s (its first check comes after --interval=15s)"
        )
        yield started
    finally:
        docker("rm", "--force", started.name, check=False)


def grpcurl(container: Container, *args: str, data: object = None) -> subprocess.CompletedProcess[str]:
    assert GRPCURL, "grpcurl is not installed: `make install` puts it in .venv/bin"
    command = [GRPCURL, "-plaintext", *(["-d", "@"] if data is not None else []), container.target, *args]
    return subprocess.run(
        command, input=None if data is None else json.dumps(data), capture_output=True, text=True, timeout=60
    )


def test_the_healthcheck_passes_and_the_server_runs_as_the_non_root_user(container: Container) -> None:
    checks = json.loads(docker("inspect", "--format", "{{json .State.Health.Log}}", container.name).stdout)
    assert checks and checks[-1]["ExitCode"] == 0 and "SERVING" in checks[-1]["Output"]
    assert docker("inspect", "--format", "{{.Config.User}}", container.image).stdout.strip() == "10001:10001"
    status = docker("exec", container.name, "cat", "/proc/1/status").stdout
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert uids == [IMAGE_UID] * 4  # real, effective, saved and filesystem
    command = docker("exec", container.name, "cat", "/proc/1/cmdline").stdout.split("\0")
    assert command[:2] == ["python", "/app/server.py"]


def test_grpcurl_lists_the_service_enrolls_a_photo_and_refuses_two_faces(container: Container) -> None:
    listed = grpcurl(container, "list")
    assert listed.returncode == 0, listed.stderr
    assert {"facesvc.v1.FaceService", "grpc.health.v1.Health"} <= set(listed.stdout.split())

    image = base64.b64encode(photo("img1.jpg")).decode()
    enrolled = grpcurl(container, "facesvc.v1.FaceService/Enroll", data={"image": image})
    assert enrolled.returncode == 0, enrolled.stderr
    embedding = json.loads(enrolled.stdout)["embedding"]
    assert embedding["model"] == "SFace" and len(embedding["values"]) == 128

    couple = base64.b64encode((CELEBS / "couple.jpg").read_bytes()).decode()
    refused = grpcurl(container, "facesvc.v1.FaceService/Enroll", data={"image": couple})
    assert refused.returncode != 0
    assert "InvalidArgument" in refused.stderr and '"reason":"MULTIPLE_FACES"' in refused.stderr


def test_a_photo_above_the_message_limit_is_refused_with_its_reason(container: Container) -> None:
    options = [("grpc.max_send_message_length", -1)]
    with grpc.insecure_channel(container.target, options=options) as channel:
        stub = pb_grpc.FaceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Enroll(pb.EnrollRequest(image=photo("img1.jpg") * 5), timeout=30)  # 11.4 MB
        code, reason, metadata = rejection(caught.value)
        assert (code, reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "MESSAGE_TOO_LARGE")
        assert metadata["max_message_bytes"] == str(MESSAGE_LIMIT)
        # The same server, still serving, verifies the photo it enrolled.
        enrolled = stub.Enroll(pb.EnrollRequest(image=photo("img1.jpg")), timeout=30).embedding
        verified = stub.Verify(
            pb.VerifyRequest(image=photo("img2.jpg"), stored_embeddings=[enrolled]), timeout=30
        )
        assert verified.match


def test_each_call_is_one_request_log_line_without_biometrics(container: Container) -> None:
    requests = [e for e in container.logs() if e.get("message") == "request"]
    outcomes = [(e["rpc"], e["code"], e["reason"]) for e in requests if "FaceService" in str(e["rpc"])]
    enroll = "facesvc.v1.FaceService/Enroll"
    assert outcomes == [
        (enroll, "OK", ""),
        (enroll, "INVALID_ARGUMENT", "MULTIPLE_FACES"),
        (enroll, "RESOURCE_EXHAUSTED", "MESSAGE_TOO_LARGE"),
        (enroll, "OK", ""),
        ("facesvc.v1.FaceService/Verify", "OK", ""),
    ]
    text = docker("logs", container.name).stderr
    assert base64.b64encode(photo("img1.jpg")[1000:1030]).decode() not in text


def test_metrics_answer_with_the_calls_and_their_reasons(container: Container) -> None:
    url = f"http://127.0.0.1:{container.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        (found,) = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
        return found

    assert value("grpc_server_handled_total", grpc_method="Enroll", grpc_code="OK") == 2
    assert value("facesvc_rejections_total", grpc_method="Enroll", reason="MULTIPLE_FACES") == 1
    assert value("facesvc_rejections_total", grpc_method="Enroll", reason="MESSAGE_TOO_LARGE") == 1
    assert value("facesvc_serving") == 1
    (build,) = [ls for (n, ls), _ in samples.items() if n == "facesvc_build_info"]
    assert dict(build)["model"] == "SFace"
    rss = value("process_resident_memory_bytes")
    size = int(docker("image", "inspect", "--format", "{{.Size}}", container.image).stdout)
    report(f"{container.image}: image {size / 1e9:.2f} GB; server RSS {rss / 2**20:.0f} MiB after 6 calls")


def test_the_default_pipeline_loads_neither_tensorflow_nor_deepface(container: Container) -> None:
    maps = docker("exec", container.name, "cat", "/proc/1/maps").stdout
    assert "cv2" in maps  # the check can see a loaded library
    loaded = {word for word in ("tensorflow", "deepface", "dlib", "keras") if word in maps}
    assert not loaded


def test_no_file_was_written_in_the_container(container: Container) -> None:
    """The no-image-storage promise, in the real image: after enrolling, refusing and
    verifying photos, the container's writable layer holds nothing."""
    changes = docker("diff", container.name).stdout.strip()
    assert changes == "", changes


def test_the_http_door_answers_health_and_enroll_as_json(container: Container) -> None:
    """The image serves the HTTP door too (FACESVC_HTTP_PORT): Health, and Enroll with a
    base64 photo, as a plain HTTP client sends them; still nothing written."""
    base = f"http://127.0.0.1:{container.http_port}"
    with urllib.request.urlopen(f"{base}/v1/health", timeout=10) as response:
        health = json.loads(response.read())
    assert health["status"] == "SERVING_STATUS_SERVING" and health["model"] == "SFace"
    # The calibration tables ship inside the package: the open-set rule is published.
    assert health["openSet"]["templateWeights"][0] == 1.0, health.get("openSet")
    body = json.dumps({"image": base64.b64encode(photo("img1.jpg")).decode()}).encode()
    request = urllib.request.Request(
        f"{base}/v1/faces:enroll", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        enrolled = json.loads(response.read())
    assert len(enrolled["embedding"]["values"]) == 128 and enrolled["face"]["faceCount"] == 1
    # ... and the quality fusion's table: the unified score and its components.
    assert 0 < enrolled["quality"]["unified"] <= 100 and enrolled["quality"]["components"]
    assert docker("diff", container.name).stdout.strip() == ""


def test_docker_stop_drains_and_exits_zero_within_the_grace_period(container: Container) -> None:
    began = time.monotonic()
    docker("stop", container.name, timeout=DOCKER_STOP_TIMEOUT + 20)
    took = time.monotonic() - began
    state = json.loads(docker("inspect", "--format", "{{json .State}}", container.name).stdout)
    assert (state["ExitCode"], state["OOMKilled"]) == (0, False)  # 137 would be the SIGKILL
    assert took < DOCKER_STOP_TIMEOUT
    messages = [(e.get("message"), e.get("signal")) for e in container.logs()]
    assert ("shutting down", "SIGTERM") in messages and messages[-1] == ("stopped", None), messages[-5:]
    report(f"{container.image}: `docker stop` took {took:.1f} s, exit code 0")


def test_a_model_the_image_lacks_fails_at_start_with_a_clear_message(image: str) -> None:
    """The full image carries DeepFace; the slim one says which image to use instead."""
    has_deepface = (
        docker(
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "python",
            "-c",
            "import importlib.util, sys; sys.exit(importlib.util.find_spec('deepface') is None)",
            check=False,
        ).returncode
        == 0
    )
    if has_deepface:
        assert docker(
            "run", "--rm", "--network", "none", image, "python", "-c", "import deepface, tensorflow"
        )
        return
    started = docker(
        "run",
        "--rm",
        "--network",
        "host",
        "--env",
        f"FACESVC_PORT={free_port()}",
        "--env",
        f"FACESVC_METRICS_PORT={free_port()}",
        "--env",
        "FACESVC_MODEL=Facenet512",
        image,
        check=False,
        timeout=120,
    )
    assert started.returncode == EXIT_CANNOT_START, started.stderr[-2000:]
    assert "needs the Python package 'deepface'" in started.stderr and "full image" in started.stderr
