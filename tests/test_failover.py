"""Faults survived: real replicas (server.py children) under four callers through the SDK;
one is stopped (SIGTERM, as a rolling update does) or killed (SIGKILL, a crash) mid-load,
and no call fails and every call gets its real answer. Also a rolling restart of three
replicas one after another, and a liveness session whose replica dies."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
import pytest

from facesvc.config import Settings
from facesvc.engine import FaceEngine
from facesvc_client import (
    AsyncFaceClient,
    Embedding,
    FaceClient,
    FaceServiceError,
    LivenessResult,
    LivenessSessionLostError,
    RetryPolicy,
)
from tests.conftest import CELEBS, identities, log_lines, spawn_server, start_server
from tests.test_liveness import BLINK_CLIP, read_clip

#: The smallest replica that serves the test's calls: one engine slot and OpenCV thread,
#: no presentation-attack model, no HTTP door (the SIGTERM test keeps one, to stop both).
SMALL = {
    "FACESVC_ENGINE_SLOTS": "1",
    "FACESVC_OPENCV_THREADS": "1",
    "FACESVC_MAX_CONCURRENT_RPCS": "8",
    "FACESVC_PRESENTATION_ATTACK": "off",
    "FACESVC_PRESENTATION_ATTACK_ENROLL": "off",
    "FACESVC_HTTP_PORT": "0",
    "FACESVC_GRACE_SECONDS": "5",
}
CALLERS = 4
#: Seconds of load before and after the fault.
BEFORE, AFTER = 4.0, 5.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Replica:
    proc: subprocess.Popen[str]
    port: int
    drain: threading.Thread | None = None


def start_replica(started: list[subprocess.Popen[str]], port: int = 0, **env: str) -> Replica:
    """A server.py child, once its log says "serving"; its stderr is drained from then on
    (a full pipe would stall it)."""
    proc = spawn_server(started, **{**SMALL, "FACESVC_PORT": str(port), **env})
    entries = list(log_lines(proc, "serving", time.monotonic() + 120))
    assert entries and entries[-1]["message"] == "serving", f"the replica exited with {proc.poll()}"
    assert proc.stderr is not None
    stderr = proc.stderr
    drain = threading.Thread(target=lambda: [None for _ in stderr], daemon=True)
    drain.start()
    return Replica(proc, int(entries[-1]["port"]), drain)


@pytest.fixture(scope="module")
def references() -> dict[str, Embedding]:
    """Small labelled photos and the embedding each must get: enrolled once, before any
    fault, by a replica of the same build."""
    started: list[subprocess.Popen[str]] = []
    try:
        replica = start_replica(started)
        names = sorted(identities(CELEBS), key=lambda n: (CELEBS / n).stat().st_size)[:12]
        with FaceClient(f"127.0.0.1:{replica.port}", timeout=30) as client:
            found = {}
            for name in names:
                try:
                    found[name] = client.enroll(CELEBS / name).embedding
                except FaceServiceError:  # a photo the service refuses is left out
                    continue
    finally:
        for proc in started:
            proc.kill()
            proc.wait(timeout=30)
    assert len(found) >= 6, found.keys()
    return found


@dataclass
class Load:
    """Callers enrolling the reference photos in turn; what each call returned."""

    references: dict[str, Embedding]
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, name: str, embedding: Embedding) -> None:
        expected = self.references[name].values
        drift = max(abs(a - b) for a, b in zip(embedding.values, expected, strict=True))
        with self.lock:
            if embedding.model != self.references[name].model or drift > 1e-4:
                self.wrong.append(f"{name}: {drift}")
            else:
                self.ok += 1

    def failed(self, name: str, error: BaseException) -> None:
        with self.lock:
            self.failures.append(f"{name}: {error!r}")

    def caller(self, client: FaceClient, offset: int) -> None:
        names = list(self.references)
        photos = {name: (CELEBS / name).read_bytes() for name in names}
        turn = offset
        while not self.stop.is_set():
            name = names[turn % len(names)]
            turn += 1
            try:
                self.check(name, client.enroll(photos[name], timeout=20).embedding)
            except Exception as error:
                self.failed(name, error)

    def assert_no_call_lost(self, minimum: int) -> None:
        assert self.failures == [], f"{len(self.failures)} calls failed: {self.failures[:5]}"
        assert self.wrong == [], f"wrong answers: {self.wrong[:5]}"
        assert self.ok >= minimum, f"only {self.ok} calls answered"


def under_load(
    references: dict[str, Embedding], targets: list[str], fault: Callable[[], None]
) -> tuple[Load, int, int]:
    """Four callers on one SDK client over `targets`; `fault` runs after BEFORE seconds,
    the load goes on AFTER seconds more. Returns the load and the answers before and after."""
    load = Load(references)
    with FaceClient(targets, timeout=20, retries=RetryPolicy(attempts=6)) as client:
        callers = [threading.Thread(target=load.caller, args=(client, i)) for i in range(CALLERS)]
        for thread in callers:
            thread.start()
        try:
            time.sleep(BEFORE)
            before = load.ok
            fault()
            faulted = load.ok
            time.sleep(AFTER)
        finally:
            load.stop.set()
            for thread in callers:
                thread.join(timeout=60)
    return load, before, load.ok - faulted


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_one_of_two_replicas_stopped_or_killed_under_load_costs_no_call(
    process: list[subprocess.Popen[str]], references: dict[str, Embedding], stop: signal.Signals
) -> None:
    # The stopped one serves HTTP too: SIGTERM stops both doors, draining both.
    extra = {"FACESVC_HTTP_PORT": "-1"} if stop == signal.SIGTERM else {}
    first, second = start_replica(process, **extra), start_replica(process)
    targets = [f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
    load, before, after = under_load(references, targets, lambda: first.proc.send_signal(stop))
    load.assert_no_call_lost(minimum=8)
    assert before >= 4 and after >= 4, (before, after)
    code = first.proc.wait(timeout=30)
    assert code == (0 if stop == signal.SIGTERM else -signal.SIGKILL)


def test_a_rolling_restart_of_three_replicas_under_load_loses_no_call(
    process: list[subprocess.Popen[str]], references: dict[str, Embedding]
) -> None:
    ports = [free_port() for _ in range(3)]
    replicas = [start_replica(process, port) for port in ports]
    restarted: list[int] = []

    def roll() -> None:
        for index, port in enumerate(ports):
            old = replicas[index].proc
            old.send_signal(signal.SIGTERM)
            assert old.wait(timeout=30) == 0
            replicas[index] = start_replica(process, port)  # the new version, same address
            restarted.append(port)

    load, before, after = under_load(references, [f"127.0.0.1:{port}" for port in ports], roll)
    assert restarted == ports
    load.assert_no_call_lost(minimum=12)
    assert before >= 4 and after >= 4, (before, after)


def test_graceful_stops_at_a_high_call_rate_cost_no_call(engine: FaceEngine) -> None:
    """gRPC's server cancels (CANCELLED) a call that reaches it between its stop and the
    caller's receipt of the GOAWAY: rare at a few calls a second, about one in two stops
    at thousands (Health calls here). The SDK sends such a call again elsewhere."""
    steady = start_server(Settings(port=0, host="127.0.0.1"), engine)
    port = free_port()
    ok, failures, stop = [0], [], threading.Event()
    stops = 8
    try:
        with FaceClient([f"127.0.0.1:{steady.port}", f"127.0.0.1:{port}"], timeout=10) as client:

            def caller() -> None:
                while not stop.is_set():
                    try:
                        # A stopping replica answers NOT_SERVING: an answer, not a failure.
                        assert client.health().model == "SFace"
                        ok[0] += 1
                    except Exception as error:  # every failure is the finding
                        failures.append(repr(error))

            for _ in range(stops):
                stopping = start_server(Settings(port=port, host="127.0.0.1", grace_seconds=2), engine)
                deadline = time.monotonic() + 10  # until the client uses it (it reconnects within 2 s)
                while client._connectivity.state_of(1) != grpc.ChannelConnectivity.READY:
                    assert time.monotonic() < deadline, "the client did not reconnect"
                    time.sleep(0.02)
                stop.clear()
                callers = [threading.Thread(target=caller) for _ in range(6)]
                for thread in callers:
                    thread.start()
                time.sleep(0.3)
                stopping.stop(2).wait()
                time.sleep(0.1)
                stop.set()
                for thread in callers:
                    thread.join(timeout=30)
    finally:
        steady.stop(None).wait()
    assert failures == [], f"{len(failures)} calls failed: {failures[:3]}"
    assert ok[0] > 100 * stops


def test_the_async_client_survives_a_killed_replica(
    process: list[subprocess.Popen[str]], references: dict[str, Embedding]
) -> None:
    first, second = start_replica(process), start_replica(process)
    targets = [f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
    load = Load(references)
    names = list(references)

    async def scenario() -> None:
        async with AsyncFaceClient(targets, timeout=20) as client:

            async def caller(offset: int) -> None:
                turn = offset
                while not load.stop.is_set():
                    name = names[turn % len(names)]
                    turn += 1
                    try:
                        result = await client.enroll((CELEBS / name).read_bytes(), timeout=20)
                        load.check(name, result.embedding)
                    except Exception as error:
                        load.failed(name, error)

            tasks = [asyncio.ensure_future(caller(i)) for i in range(CALLERS)]
            await asyncio.sleep(BEFORE)
            first.proc.kill()
            await asyncio.sleep(AFTER)
            load.stop.set()
            await asyncio.gather(*tasks)

    asyncio.run(scenario())
    load.assert_no_call_lost(minimum=8)


def test_a_liveness_session_whose_replica_dies_ends_with_a_clear_error_and_a_new_one_runs(
    process: list[subprocess.Popen[str]],
) -> None:
    clip = read_clip(BLINK_CLIP, limit=40)
    spare = free_port()  # the second replica starts later: the first session runs on the first
    first = start_replica(process)
    started: list[object] = []
    with FaceClient([f"127.0.0.1:{first.port}", f"127.0.0.1:{spare}"], timeout=30) as client:

        def frames() -> Iterator[tuple[bytes, float]]:
            for index, image in enumerate(clip.frames):
                if index == 3:  # the session runs, and its replica dies
                    first.proc.kill()
                    first.proc.wait(timeout=30)
                yield image, clip.times[index]

        with pytest.raises(LivenessSessionLostError) as caught:
            client.check_liveness(frames(), frame_rate=16, on_event=started.append)
        assert started, "the session had started"
        assert caught.value.reason is None and "start a new session" in str(caught.value)
        # Start again: the client finds the replica that is up now (retrying the start,
        # which took no frame yet, while it connects).
        start_replica(process, spare)
        again = client.check_liveness(
            ((image, clip.times[n]) for n, image in enumerate(clip.frames)), frame_rate=16
        )
        assert isinstance(again, LivenessResult) and again.session_id and again.frames > 0
