"""The scheduler stage through a real Redis: several cameras' frame streams in, packets out.

Fairness (a camera with a long backlog does not hold back another's onset), freshness (a live
camera's stale packets are dropped and counted in the stats hash), and a malformed entry that
costs only itself.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from bus import messages
from bus.messages import Camera, Frame, Packet, StreamEnd
from bus.registry import Registry
from scheduler.offline import decode_luma
from scheduler.service import SchedulerService
from scheduler.settings import SchedulerSettings

pytestmark = pytest.mark.integration


async def _write(bus, camera: str, path, duration: float, wall_offset: float) -> int:
    now = time.time()
    n = 0
    pipe = bus.r.pipeline(transaction=False)
    for f in decode_luma(path, duration=duration):
        msg = Frame(camera=camera, seq=n, ts=f.ts, wall=now + wall_offset, width=f.width, height=f.height,
                    jpeg=b"\xff\xd8jpeg", luma=f.luma.tobytes(), luma_w=f.luma.shape[1], luma_h=f.luma.shape[0],
                    src_width=768, src_height=432)
        pipe.xadd(bus.keys.frames(camera), {"m": messages.encode(msg)})
        n += 1
    await pipe.execute()
    return n


async def test_scheduler_service_fairness_freshness_and_stats(bus, media):
    reg = Registry(bus)
    for cam in ("busy", "car", "late"):
        await reg.put_camera(Camera(id=cam, url=f"file://{cam}.mp4", pace="realtime"))
    # A long backlog on one camera (people walking all the time) ...
    await _write(bus, "busy", media / "vtest.avi", 40.0, wall_offset=-1.0)
    await bus.r.xadd(bus.keys.frames("busy"), {"m": b"\x00not msgpack"})  # one malformed entry
    # ... next to a camera whose car appears after 4.4 s, and one whose frames are two minutes old.
    await _write(bus, "car", media / "car-detection.mp4", 10.0, wall_offset=-1.0)
    await _write(bus, "late", media / "car-detection.mp4", 10.0, wall_offset=-120.0)
    for cam in ("busy", "car", "late"):
        await bus.publish(bus.keys.frames(cam), StreamEnd(camera=cam, wall=time.time(), frames=0))

    svc = SchedulerService(bus, SchedulerSettings(max_age_s=15.0), batch=25)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = [await bus.r.exists(bus.keys.scheduler_done(c)) for c in ("busy", "car", "late")]
        if all(done):
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert all(done), "scheduler did not finish the streams"

    packets = [p for _, p in await bus.range(bus.keys.packets, Packet)]
    by_cam: dict[str, list[Packet]] = {}
    for p in packets:
        by_cam.setdefault(p.camera, []).append(p)
    assert len(by_cam["busy"]) >= 6
    assert "late" not in by_cam  # every packet of the stale camera was dropped ...
    stats = {k.decode(): int(v) for k, v in (await bus.r.hgetall(bus.keys.scheduler_stats)).items()}
    assert stats["stale_dropped:late"] >= 1 and stats["stale_dropped"] == stats["stale_dropped:late"]  # ... and counted
    assert stats["packets"] == len(packets) == svc.packets_out
    assert stats["bad_frames"] == 1
    # The car's onset was not held back by the other camera's 200-frame backlog.
    car_onset = next(i for i, p in enumerate(packets) if p.camera == "car" and p.reason == "onset")
    busy_after = [p for p in packets[car_onset:] if p.camera == "busy"]
    assert len(busy_after) >= len(by_cam["busy"]) - 3
    # Per camera: in order, frames never shared, ids from the stream.
    for cam, ps in by_cam.items():
        starts = [p.frames[0].ts for p in ps]
        assert starts == sorted(starts)
        assert ps[0].reason == "onset"
    assert 4.0 <= by_cam["car"][0].frames[0].ts <= 4.5
