"""SIGKILL a real `vigil analyzer` process in the middle of a packet: another worker process
reclaims it after the visibility timeout and the packet yields exactly one event."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bus import open_bus
from bus.messages import Event
from bus.server import EmbeddedRedis
from tests.analyzer_helpers import make_packet, synthetic
from tests.conftest import ROOT
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.integration


def _worker(cfg: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vigil.cli", "analyzer", "-c", str(cfg)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=log.open("w"))


def _wait(cond, timeout: float, what: str, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        for p in procs:
            assert p.poll() is None, f"worker exited early ({p.returncode}) while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_killed_worker_packet_is_reclaimed_and_yields_one_event(tmp_path: Path):
    redis = EmbeddedRedis()
    url = redis.start()
    server = FakeOpenAI().start()
    server.script.append("hang")  # the first worker's request never returns: it dies mid-packet
    procs: list[subprocess.Popen] = []
    try:
        cfg = tmp_path / "vigil.yaml"
        cfg.write_text(yaml.safe_dump({
            "redis": {"url": url},
            "analyzer": {"backend": "openai", "visibility_timeout_s": 2, "metrics_interval_s": 0.5,
                         "openai": {"base_url": server.base_url, "timeout_s": 120, "max_retries": 0}},
        }))
        packet = make_packet(synthetic(6), camera="gate", pid="gate-1700000000000-0")

        async def publish() -> None:
            async with open_bus(url) as bus:
                await bus.publish(bus.keys.packets, packet)

        async def state() -> tuple[list[Event], dict | None]:
            async with open_bus(url) as bus:
                events = [e for _, e in await bus.range(bus.keys.events, Event)]
                return events, await bus.group_info(bus.keys.packets, bus.keys.ANALYZERS)

        asyncio.run(publish())
        first = _worker(cfg, tmp_path / "w1.log")
        procs.append(first)
        _wait(lambda: len(server.requests) == 1, 60, "the first worker's request", [first])
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)

        second = _worker(cfg, tmp_path / "w2.log")
        procs.append(second)
        _wait(lambda: len(asyncio.run(state())[0]) == 1, 60, "the reclaimed packet's event", [second])
        time.sleep(1.5)  # give a duplicate every chance to appear
        events, group = asyncio.run(state())
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
        log = (tmp_path / "w2.log").read_text()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        server.stop()
        redis.stop()
    assert len(events) == 1, events
    [e] = events
    assert e.id == "evt-gate-1700000000000-0" and e.status == "ok" and e.summary == "fake model: 6 images"
    assert group is not None and group["pending"] == 0 and group["consumers"] == 2
    assert len(server.requests) == 2  # the dead worker's try, then the second worker's
    assert "reclaimed 1 packet(s)" in log
