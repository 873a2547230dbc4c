"""Redis restarts under a running `vigil serve`: stages reconnect by themselves and what was
acknowledged survives (embedded-style server with AOF everysec)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from bus.server import EmbeddedRedis
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def _events(url: str) -> list[bytes]:
    r = redis.Redis.from_url(url)
    try:
        return [i for i, _ in r.xrange("vigil:events")]
    finally:
        r.close()


def _wait(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except redis.ConnectionError:
            pass
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


def test_stages_recover_after_redis_restart(media, tmp_path: Path, free_port):
    data = tmp_path / "redis"
    server = EmbeddedRedis(data_dir=data, persist=True)
    url = server.start()
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(f"cameras:\n  - id: lot\n    url: {media / 'car-detection.mp4'}\n    pace: realtime\n    loop: true\n"
                   f"web:\n  port: {free_port}\n")
    env = {**os.environ, "REDIS_URL": url, "VIGIL_TOKEN": "fault-token-1234567890"}
    log = open(tmp_path / "vigil.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", "serve", "-c", str(cfg)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: len(_events(url)) >= 2, 60, "events before the restart")
        time.sleep(1.5)  # > 1 s: AOF everysec has flushed what was acknowledged
        before = _events(url)
        server.stop()  # SIGTERM: Redis goes away under the running stages
        time.sleep(3)
        assert proc.poll() is None, "vigil exited when Redis went away"
        server = EmbeddedRedis(data_dir=data, persist=True)
        server.start()
        survived = _events(url)
        assert survived[: len(before)] == before  # acknowledged events survived the restart
        _wait(lambda: len(_events(url)) > len(survived) + 1, 60, "new events after the restart")
        assert httpx.get(f"http://127.0.0.1:{free_port}/healthz", timeout=5).status_code == 200
        assert proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.stop()
        log.close()
