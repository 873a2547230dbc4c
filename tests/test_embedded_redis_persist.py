"""`redis.persist_dir` comes back every time (probe finding 2): the embedded server is up
only once the whole AOF is loaded, whatever its size, and `vigil serve` restarts after a
SIGKILL, again and again, with what it had acknowledged still there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from bus.server import EmbeddedRedis, EmbeddedRedisError
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
TOKEN = "persist-token-" + "abcdefgh12345678"
AOF_MB = 96


def write_big_aof(path: Path, mb: int = AOF_MB) -> int:
    """An AOF of `mb` MB of small SETs (what loads slowest per byte), ending with a marker.
    Written as RESP directly: seconds, not the minutes a client would take."""
    value = b"v" * 100
    block = []
    for i in range(10_000):
        key = f"fill:{i % 5000}".encode()
        block.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(value), value))
    chunk = b"".join(block)
    n = 0
    with open(path, "wb") as f:
        while f.tell() < mb * 1024 * 1024:
            f.write(chunk)
            n += len(block)
        f.write(b"*3\r\n$3\r\nSET\r\n$6\r\nmarker\r\n$4\r\ndone\r\n")
    return n + 1


def test_start_returns_only_after_a_large_aof_is_loaded(tmp_path: Path):
    data = tmp_path / "redis"
    data.mkdir()
    commands = write_big_aof(data / "appendonly.aof")
    server = EmbeddedRedis(data_dir=data, persist=True)
    t0 = time.monotonic()
    url = server.start()
    took = time.monotonic() - t0
    try:
        r = redis.Redis.from_url(url)
        # The very first command works: no "Redis is loading the dataset in memory".
        assert r.get("marker") == b"done"
        assert r.info("persistence")["loading"] == 0
        assert r.dbsize() == 5001
        r.close()
    finally:
        server.stop()
    print(f"{AOF_MB} MB AOF ({commands} commands) loaded, server up in {took:.2f}s")


def test_a_second_server_on_the_same_directory_waits_for_the_first(tmp_path: Path):
    data = tmp_path / "redis"
    first = EmbeddedRedis(data_dir=data, persist=True)
    first.start()
    try:
        with pytest.raises(EmbeddedRedisError, match="in use"):
            EmbeddedRedis(data_dir=data, persist=True)._lock(wait_s=0.5)  # noqa: SLF001
    finally:
        first.stop()
    again = EmbeddedRedis(data_dir=data, persist=True)
    again.start()  # free again once the first has exited
    again.stop()


def _events(client: httpx.Client) -> list[str]:
    res = client.get("/api/events", params={"limit": 500})
    res.raise_for_status()
    return [e["id"] for e in res.json()["items"]]


def _wait(pred, timeout: float, what: str, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"vigil exited with {proc.returncode} ({what}):\n{log.read_text()[-4000:]}")
        try:
            got = pred()
            if got:
                return got
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.3)


def test_vigil_serve_comes_back_after_every_sigkill(media, tmp_path: Path, free_port):
    """Restart under load: a looping camera, the cpu backend and a motion rule write frames,
    packets, events and alerts; vigil serve (and with it its embedded Redis) is SIGKILLed
    three times and must come back every time over a large AOF, losing nothing it had
    acknowledged more than a second before."""
    data = tmp_path / "redis"
    data.mkdir()
    write_big_aof(data / "appendonly.aof")
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(
        f"redis:\n  persist_dir: {data}\n"
        f"cameras:\n  - {{id: lot, url: '{media / 'car-detection.mp4'}', pace: realtime, loop: true}}\n"
        "rules:\n  - {id: moving, label: motion, severity: info}\n"
        f"web:\n  port: {free_port}\n"
    )
    env = {**os.environ, "VIGIL_TOKEN": TOKEN}
    env.pop("REDIS_URL", None)
    base = f"http://127.0.0.1:{free_port}"
    kept: list[str] = []
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    try:
        for run in range(4):
            log = tmp_path / f"vigil-{run}.log"
            with open(log, "w") as out:
                proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", "serve", "-c", str(cfg)], cwd=ROOT,
                                        env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                _wait(lambda: client.get("/healthz").status_code == 200, 90, f"run {run}: /healthz", proc, log)
                now = _events(client)
                missing = [e for e in kept if e not in now]
                assert not missing, f"run {run}: acknowledged events lost after the SIGKILL: {missing[:5]}"
                _wait(lambda: len(_events(client)) >= len(now) + 2, 60, f"run {run}: new events", proc, log)
                if run == 3:
                    break
                time.sleep(1.5)  # AOF everysec: what was written a second ago is on disk
                kept = _events(client)
                os.kill(proc.pid, signal.SIGKILL)  # its Redis gets SIGTERM (PR_SET_PDEATHSIG) on the way
                proc.wait(10)
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
            text = log.read_text()
            assert "loading the dataset" not in text, text[-3000:]
    finally:
        client.close()
