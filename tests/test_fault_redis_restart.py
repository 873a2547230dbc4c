"""Redis restarts under a running `vigil serve`: stages reconnect by themselves and what was
acknowledged survives (embedded-style server with AOF everysec)."""

from __future__ import annotations

import os
import socket
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


def test_pending_webhook_deliveries_survive_redis_restart(tmp_path: Path):
    """Deliveries queued while the receiver is down outlive a Redis restart (AOF everysec) and
    go out, each exactly once, when the receiver comes up after it."""
    from tests.faults import VigilProcess, poll
    from tests.receiver import Receiver
    from tests.webhook_faults import KEYS, SECRET, EventFeed, alert_changes, alerts_config, check_exactly_once, settled

    with socket.socket() as s:  # a port nobody listens on yet: the receiver is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path / "redis"
    server = EmbeddedRedis(data_dir=data, persist=True)
    url = server.start()
    cfg = alerts_config(tmp_path / "vigil.yaml", f"http://127.0.0.1:{port}/hook")
    vigil = VigilProcess(["alerts", "-c", str(cfg)], url, tmp_path / "vigil.log", env={"HOOK_SECRET": SECRET})
    rec: Receiver | None = None
    r = redis.Redis.from_url(url)
    try:
        poll(lambda: r.exists(KEYS.webhooks), 30, "the alerts stage up", proc=vigil)
        feed = EventFeed(r)
        until = time.monotonic() + 6
        while time.monotonic() < until:
            feed.tick()
            time.sleep(0.5)
        # Queued and already tried (refused) at least once.
        poll(lambda: any(int(r.hget(KEYS.delivery(d.decode()), "attempts") or 0) >= 1
                         for d in r.zrange(KEYS.deliveries_due, 0, -1)), 20, "failed tries", proc=vigil)
        time.sleep(1.5)  # AOF everysec has flushed
        before = alert_changes(r)
        pending = r.zcard(KEYS.deliveries_index)
        assert before and pending
        r.close()
        server.stop()
        time.sleep(3)
        assert vigil.proc.poll() is None, "vigil exited when Redis went away"
        server = EmbeddedRedis(data_dir=data, persist=True)
        server.start()
        r = redis.Redis.from_url(url)
        assert alert_changes(r)[: len(before)] == before and r.zcard(KEYS.deliveries_index) >= pending  # survived
        rec = Receiver(SECRET, port=port).start()
        poll(lambda: settled(r, [rec]), 60, "the queued deliveries after the restart", proc=vigil)
        figures = check_exactly_once(r, [rec])
        print(f"\nredis restart with {pending} deliveries queued: {figures}")
        vigil.alive()
    finally:
        vigil.stop()
        if rec:
            rec.stop()
        r.close()
        server.stop()
