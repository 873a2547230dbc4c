"""The model server gets slow (10x its normal latency), then fails (HTTP 500), then recovers,
under a running `vigil serve` (openai backend, real Redis, two file cameras paced like cameras):

- the analyzer's share of the packet queue stays bounded (group pending <= prefetch; requests in
  flight at the server <= the backend's concurrency),
- packets that waited too long are skipped and counted (metrics snapshot and /metrics),
- a fast (two-phase) motion rule still opens alerts from onset packets, seen on a websocket,
  while the model is slow and while it fails,
- when the server recovers, fresh events with status ok flow again (no late backlog)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import redis
import websockets

from bus import messages
from bus.connection import FIELD
from bus.messages import Event
from bus.names import Keys
from bus.server import EmbeddedRedis
from tests.fake_openai import FakeOpenAI
from tests.faults import VigilProcess, sample, wait_healthy

pytestmark = pytest.mark.integration
KEYS = Keys()
TOKEN = "fault-model-token-" + "m" * 20
NORMAL_S = 0.3
PREFETCH = 4
STALE_S = 3.0


def _snapshot(r: redis.Redis) -> dict:
    for key in r.scan_iter(match=KEYS.analyzer_metrics_pattern):
        raw = r.get(key)
        if raw:
            return json.loads(raw)
    return {}


def _pending(r: redis.Redis) -> int:
    for g in r.xinfo_groups(KEYS.packets):
        if g["name"].decode() == KEYS.ANALYZERS:
            return int(g["pending"])
    return 0


def _events_since(r: redis.Redis, t: float) -> list[tuple[float, dict]]:
    """(written at, public JSON) of events written after epoch `t` (stream ids carry Redis time)."""
    out = []
    for entry_id, fields in r.xrange(KEYS.events, min=f"{int(t * 1000)}-0"):
        msg = messages.decode(fields[FIELD], Event)
        out.append((int(entry_id.decode().split("-")[0]) / 1000, messages.to_builtins(msg)))
    return out


def _iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Watch:
    """Samples what must stay bounded, every 0.25 s, while the phases run."""

    def __init__(self, r: redis.Redis, fake: FakeOpenAI) -> None:
        self.r, self.fake = r, fake
        self.max_pending = 0
        self.max_server_active = 0
        self.phase = "normal"
        self.pending_by_phase: dict[str, int] = {}

    async def run(self) -> None:
        while True:
            try:
                p = _pending(self.r)
            except redis.ResponseError:
                p = 0  # the group does not exist yet
            self.max_pending = max(self.max_pending, p)
            self.pending_by_phase[self.phase] = max(self.pending_by_phase.get(self.phase, 0), p)
            self.max_server_active = max(self.max_server_active, self.fake.active)
            await asyncio.sleep(0.25)


async def _ws_reader(url: str, got: list[tuple[float, dict]]) -> None:
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"token": TOKEN}))
        while True:
            msg = json.loads(await ws.recv())
            got.append((time.time(), msg))


async def test_slow_then_failing_model_backend(media, tmp_path: Path, free_port: int):
    fake = FakeOpenAI(delay_s=NORMAL_S).start()
    server = EmbeddedRedis()
    url = server.start()
    r = redis.Redis.from_url(url)
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(
        "cameras:\n"
        f"  - {{id: lot, url: '{media / 'car-detection.mp4'}', pace: realtime, loop: true}}\n"
        f"  - {{id: walk, url: '{media / 'vtest.avi'}', pace: realtime, loop: true}}\n"
        "rules:\n"
        # Two-phase: onset packets open the alert from the scheduler's motion evidence alone.
        "  - {id: moving, kind: motion, min_area: 0.003, fast: true, cameras: [lot], confirm_s: 4,\n"
        "     quiet_s: 2, consolidate_s: 2, severity: info}\n"
        # 2 s packets: enough packets that a 10x slower model cannot keep up.
        "scheduler: {packet_span_s: 2.0}\n"
        "analyzer:\n"
        f"  backend: openai\n  prefetch: {PREFETCH}\n  stale_after_s: {STALE_S}\n  metrics_interval_s: 0.5\n"
        "  visibility_timeout_s: 30\n"
        f"  openai: {{base_url: '{fake.base_url}', concurrency: 1, max_retries: 1, backoff_s: 0.2,\n"
        "            max_backoff_s: 0.5, breaker_failures: 3, breaker_reset_s: 2, timeout_s: 15}\n"
        f"web: {{port: {free_port}}}\n"
    )
    vigil = VigilProcess(["serve", "-c", str(cfg)], url, tmp_path / "vigil.log", env={"VIGIL_TOKEN": TOKEN})
    base = f"http://127.0.0.1:{free_port}"
    got: list[tuple[float, dict]] = []
    watch = Watch(r, fake)
    tasks: list[asyncio.Task] = []
    try:
        await asyncio.to_thread(wait_healthy, base, vigil)
        tasks = [asyncio.create_task(_ws_reader(base.replace("http", "ws") + "/ws", got)),
                 asyncio.create_task(watch.run())]

        async def until(pred, timeout: float, what: str):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                vigil.alive()
                for t in tasks:
                    if t.done():
                        t.result()  # surface a websocket failure
                value = pred()
                if value:
                    return value
                await asyncio.sleep(0.2)
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}\n{vigil.log_tail()}")

        # -- normal: events with status ok -------------------------------------------------
        t_normal = time.time()
        await until(lambda: [e for _, e in _events_since(r, t_normal) if e["status"] == "ok"], 40, "ok events")
        normal_latency = fake.delay_s

        # -- slow: 10x -----------------------------------------------------------------------
        watch.phase = "slow"
        fake.delay_s = NORMAL_S * 10
        t_slow = time.time()
        await asyncio.sleep(25)
        slow_snap = _snapshot(r)
        slow_requests = [q for q in fake.requests if q.at > t_slow]

        # -- failing: every request answers 500 ----------------------------------------------
        watch.phase = "failing"
        fake.delay_s = NORMAL_S
        fake.script.extend(["500"] * 100_000)
        t_fail = time.time()
        await asyncio.sleep(24)  # car-detection (30 s, looped) has an onset in any ~20 s window
        fail_snap = _snapshot(r)

        # -- recovered ---------------------------------------------------------------------------
        watch.phase = "recovered"
        fake.script.clear()
        t_back = time.time()
        fresh_ok = await until(lambda: [(w, e) for w, e in _events_since(r, t_back)
                                        if e["status"] == "ok" and w > t_back], 30, "ok events after recovery")
        recovery_s = fresh_ok[0][0] - t_back
        await asyncio.sleep(4)  # let a few more through
        after = _events_since(r, t_back)
        end_snap = _snapshot(r)
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            prom = (await client.get("/metrics")).text
        proc_end = sample(vigil.pid)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        vigil.stop()
        fake.stop()
        r.close()
        server.stop()

    alerts = [(at, m) for at, m in got if m.get("type") == "alert"]
    onsets = [(at, m) for at, m in alerts if m["state"] == "open" and m.get("phase") == "onset"]
    print(f"\nmodel backend fault: normal {normal_latency:.1f}s -> slow {NORMAL_S * 10:.1f}s -> 500s -> recovered; "
          f"max group pending {watch.max_pending} (prefetch {PREFETCH}) by phase {watch.pending_by_phase}; "
          f"max requests in flight {watch.max_server_active}; skipped_stale slow={slow_snap.get('skipped_stale')} "
          f"failing={fail_snap.get('skipped_stale')} end={end_snap.get('skipped_stale')}; circuit opened "
          f"{end_snap.get('circuit_opened')}x; first ok event {recovery_s:.1f}s after recovery; "
          f"onset alerts on ws: {len(onsets)}; vigil {proc_end}")

    # Bounded: the worker never holds more than its window; the server sees <= concurrency 1.
    assert 0 < watch.max_pending <= PREFETCH, watch.pending_by_phase
    assert watch.max_server_active <= 1
    assert slow_requests, "the analyzer stopped calling the slow server"
    # Stale packets are skipped and counted, in the snapshot and in /metrics.
    assert slow_snap.get("skipped_stale", 0) > 0, slow_snap
    assert end_snap["skipped_stale"] > slow_snap["skipped_stale"], (slow_snap, end_snap)
    assert end_snap.get("circuit_opened", 0) >= 1, end_snap  # the breaker spared the failing server
    stale_lines = [ln for ln in prom.splitlines() if ln.startswith("vigil_analyzer_skipped_stale_packets_total")]
    assert stale_lines and float(stale_lines[0].split()[-1]) == pytest.approx(end_snap["skipped_stale"], abs=3)
    # Fast alerts went out from onset evidence while the model was slow, and while it failed.
    assert any(t_slow < at < t_fail for at, _ in onsets), [(round(a - t_slow, 1), m["state"]) for a, m in alerts]
    assert any(t_fail < at < t_back for at, _ in onsets), [(round(a - t_fail, 1), m["state"]) for a, m in alerts]
    for _, m in onsets:
        assert m["rule"] == "moving" and m["camera"] == "lot" and m["event_ids"] == []
    # Recovered: fresh events again, and no late backlog (what waited too long was skipped).
    assert recovery_s < 15
    for written, e in after:
        if e["status"] == "ok":
            assert written - _iso(e["end"]) < STALE_S + 2 * NORMAL_S + 2.0, (written - _iso(e["end"]), e["id"])
