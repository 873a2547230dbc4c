"""Two `vigil scheduler` processes share four cameras through leases in one Redis: each camera
is scheduled by one of them; when one is SIGKILLed mid-stream its cameras continue on the other
within the lease TTL, and the packets that come out are exactly those one scheduler alone makes
of the same frames: none lost, none twice, the same ids and frames."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus import messages
from bus.connection import Bus
from bus.messages import Camera, Frame, Packet, StreamEnd
from bus.names import Keys
from bus.registry import Registry
from scheduler.offline import decode_luma
from scheduler.service import SchedulerService
from scheduler.settings import SchedulerSettings
from tests.conftest import ROOT
from tests.support.cameras import wait_for

pytestmark = pytest.mark.integration
TTL = 4.0
POLL = 0.5
CLIPS = {"cam0": "car-detection.mp4", "cam1": "vtest.avi", "cam2": "bikes.mp4", "cam3": "car-detection.mp4"}
RATE = 12.0  # frames written per second per camera (2.4x real time at 5 fps)
REF = Keys("ref:")  # the same frames, for one in-process scheduler: the reference


def _scheduler(cfg: Path, redis_url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "REDIS_URL": redis_url}
    return subprocess.Popen([sys.executable, "-m", "vigil.cli", "scheduler", "-c", str(cfg)], cwd=ROOT, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


async def _owners(bus: Bus) -> dict[str, str | None]:
    out = {}
    for cam in CLIPS:
        raw = await bus.r.get(bus.keys.scheduler_lease(cam))
        out[cam] = raw.decode() if raw else None
    return out


async def _packets(bus: Bus, keys: Keys) -> dict[str, list[Packet]]:
    by_cam: dict[str, list[Packet]] = {c: [] for c in CLIPS}
    for _, p in await bus.range(keys.packets, Packet):
        by_cam[p.camera].append(p)
    return by_cam


async def test_killed_schedulers_cameras_continue_elsewhere_exactly_once(bus, media, tmp_path: Path):
    reg = Registry(bus)
    ref_bus = Bus(bus.r, REF)
    for cam in CLIPS:
        for b in (reg, Registry(ref_bus)):
            await b.put_camera(Camera(id=cam, url=f"file://{cam}.mp4", pace="fast"))
    clips = {cam: list(decode_luma(media / clip, luma_width=160, duration=30.0)) for cam, clip in CLIPS.items()}
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(f"scheduler:\n  lease_ttl_s: {TTL}\n  poll_s: {POLL}\n")
    procs = [_scheduler(cfg, bus.url, tmp_path / f"s{i}.log") for i in range(2)]

    async def write_frames() -> None:
        """Frames arrive as a camera's would; both prefixes get identical entries (same ids)."""
        base = int(time.time() * 1000)
        n = max(len(f) for f in clips.values())
        for i in range(n):
            pipe = bus.r.pipeline(transaction=False)
            for cam, frames in clips.items():
                if i < len(frames):
                    f = frames[i]
                    msg = Frame(camera=cam, seq=i, ts=f.ts, wall=time.time(), width=f.width, height=f.height,
                                jpeg=b"\xff\xd8" + f"{cam}-{i}".encode(), luma=f.luma.tobytes(),
                                luma_w=f.luma.shape[1], luma_h=f.luma.shape[0], src_width=768, src_height=432)
                elif i == len(frames):
                    msg = StreamEnd(camera=cam, wall=time.time(), frames=len(frames))
                else:
                    continue
                for keys in (bus.keys, REF):
                    pipe.xadd(keys.frames(cam), {"m": messages.encode(msg)}, id=f"{base + i}-0")
            await pipe.execute()
            await asyncio.sleep(1 / RATE)
        pipe = bus.r.pipeline(transaction=False)
        for cam, frames in clips.items():
            if len(frames) >= n:
                end = messages.encode(StreamEnd(camera=cam, wall=time.time(), frames=len(frames)))
                for keys in (bus.keys, REF):
                    pipe.xadd(keys.frames(cam), {"m": end}, id=f"{base + n}-0")
        await pipe.execute()

    try:
        # Both schedulers up, two cameras each (the first one hands two back as the second joins).
        async def balanced():
            owners = await _owners(bus)
            counts = sorted(list(owners.values()).count(w) for w in set(owners.values()) if w)
            return owners if None not in owners.values() and counts == [2, 2] else None

        writer = asyncio.create_task(write_frames())
        owners = await wait_for(balanced, 40, what="four cameras split 2/2 between two schedulers")
        await asyncio.sleep(4.0)  # mid-stream: activities and packets under way on every camera

        victim_id = owners["cam0"]
        victim = next(p for p in procs if p.pid == int(victim_id.split("-")[-2]))
        survivor_id = next(w for w in owners.values() if w != victim_id)
        moved = [c for c, w in owners.items() if w == victim_id]
        cursors = {c: await bus.r.get(bus.keys.scheduler_cursor(c)) for c in moved}
        victim.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        took: dict[str, float] = {}

        async def moved_on():
            for cam in moved:
                if cam in took:
                    continue
                owner = (await _owners(bus))[cam]
                cursor = await bus.r.get(bus.keys.scheduler_cursor(cam))
                # Reading on (a camera whose stream had already ended has nothing left to read).
                ended = await bus.r.exists(bus.keys.scheduler_done(cam))
                if owner == survivor_id and (cursor != cursors[cam] or ended):
                    took[cam] = time.monotonic() - killed
            return len(took) == len(moved)

        await wait_for(moved_on, TTL + 10, interval=0.05, what="the dead scheduler's cameras on the survivor")
        await writer

        async def all_done(b: Bus):
            return all([await b.r.exists(b.keys.scheduler_done(c)) for c in CLIPS])

        await wait_for(lambda: all_done(bus), 60, what="every camera's end of stream")
        got = await _packets(bus, bus.keys)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()

    # The reference: one scheduler alone over the same frames.
    ref = SchedulerService(ref_bus, SchedulerSettings(poll_s=POLL), worker_id="reference")
    stop = asyncio.Event()
    task = asyncio.create_task(ref.run(stop))
    await wait_for(lambda: all_done(ref_bus), 60, what="the reference run")
    stop.set()
    await asyncio.wait_for(task, 15)
    want = await _packets(bus, REF)

    worst = max(took.values())
    total = sum(len(v) for v in got.values())
    print(f"\nscheduler failover after SIGKILL: cameras {moved} moved in {worst:.2f}s (lease ttl {TTL:g}s); "
          f"{total} packets, same as one scheduler alone: "
          f"{all(len(got[c]) == len(want[c]) for c in CLIPS)}")
    assert worst <= TTL + 1.0, took
    for cam in CLIPS:
        ids = [p.id for p in got[cam]]
        assert len(ids) == len(set(ids)), f"{cam}: a packet was published twice"
        assert ids == [p.id for p in want[cam]], f"{cam}: packets differ from a single scheduler's"
        assert [[f.seq for f in p.frames] for p in got[cam]] == [[f.seq for f in p.frames] for p in want[cam]]
        assert want[cam], f"{cam}: no packets at all (the test would prove nothing)"
    stats = {k.decode(): int(v) for k, v in (await bus.r.hgetall(bus.keys.scheduler_stats)).items()}
    assert stats.get("takeovers", 0) >= 4 + len(moved)
