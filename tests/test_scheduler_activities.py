"""The scheduler says when an activity starts, which packets belong to it, and when it ends
(ActivityNote on the `activities` stream): by hand-made inputs, and on real footage through a
real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest

from bus.activities import ActivityStore
from bus.messages import ActivityNote, Camera, Packet, StreamEnd
from bus.registry import Registry
from scheduler.packer import Packer
from scheduler.service import SchedulerService
from scheduler.settings import SchedulerSettings
from tests.test_scheduler_logic import _cand
from tests.test_scheduler_service import _write


def _run(packer: Packer, areas: list[float]) -> list[Packet | ActivityNote]:
    """Packets and notes in the order the service publishes them: a push's starts, its
    packets, then its ends."""
    out: list[Packet | ActivityNote] = []

    def take(packets: list[Packet]) -> None:
        notes = packer.notes or []
        out.extend([n for n in notes if n.state == "start"] + packets + [n for n in notes if n.state != "start"])
        packer.notes = []

    for i, a in enumerate(areas):
        take(packer.push(_cand(i, round(i / 5, 6), a)))
    take(packer.flush())
    return out


def test_notes_say_start_packets_and_end_of_each_activity():
    # idle 2 s, motion 10 s, idle 4 s (longer than post_roll 1.5 s), motion 3 s, end of stream.
    areas = [0.0] * 10 + [0.05] * 50 + [0.0] * 20 + [0.05] * 15
    out = _run(Packer("cam", SchedulerSettings(), notes=True), areas)
    notes = [x for x in out if isinstance(x, ActivityNote)]
    packets = [x for x in out if isinstance(x, Packet)]
    assert [n.state for n in notes] == ["start", "end", "start", "end"]
    first, second = notes[0], notes[2]
    # The start: the first moving frame's capture time (frame 10 at 1000 + 2.0 s), confirmed by
    # the second (start_frames 2), before any packet; its onset packet id is announced.
    assert first.onset_wall == pytest.approx(1002.0) and first.wall == pytest.approx(1002.2)
    assert out.index(first) < out.index(packets[0]) and first.packet_id == packets[0].id
    assert first.motion.area == 0.05 and first.activity == "cam-11-0"
    mine = [p for p in packets if p.activity == first.activity]
    assert mine[0].reason == "onset" and all(p.reason == "motion" for p in mine[1:])
    assert {p.activity for p in packets} == {first.activity, second.activity}
    assert second.packet_id == next(p for p in packets if p.activity == second.activity).id
    # The end: after the activity's last packet, at its last moving frame (frame 59).
    assert out.index(notes[1]) > out.index(mine[-1]) and notes[1].wall == pytest.approx(1000 + 59 / 5)
    assert notes[3].activity == second.activity  # the end of stream ends the second one


def test_a_stalled_live_camera_ends_its_activity():
    packer = Packer("cam", SchedulerSettings(), notes=True)
    for i in range(10):
        packer.push(_cand(i, i / 5, 0.05))
    assert [n.state for n in packer.notes] == ["start"] and packer.active
    packer.notes = []
    assert packer.due(1000.0 + 1.8 + 2.0) == [] and packer.notes == []  # within post-roll + 1 s
    late = packer.due(1000.0 + 1.8 + 3.0)
    assert [n.state for n in packer.notes] == ["end"] and not packer.active
    assert all(p.activity == packer.notes[0].activity for p in late)


def test_heartbeats_belong_to_no_activity():
    out = _run(Packer("cam", SchedulerSettings(heartbeat_s=5), notes=True), [0.0] * 60)
    assert [x.activity for x in out if isinstance(x, Packet)] == ["", ""] and not [
        x for x in out if isinstance(x, ActivityNote)]


@pytest.mark.integration
async def test_service_publishes_notes_before_packets_in_capture_order(bus, media):
    await Registry(bus).put_camera(Camera(id="lot", url="file://lot.mp4", pace="realtime"))
    await _write(bus, "lot", media / "car-detection.mp4", 30.0, wall_offset=-1.0)  # cars come and go
    await bus.publish(bus.keys.frames("lot"), StreamEnd(camera="lot", wall=time.time(), frames=0))
    svc = SchedulerService(bus, SchedulerSettings(max_age_s=None), batch=25)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not await bus.r.exists(bus.keys.scheduler_done("lot")):
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 10)

    def order(entry: str) -> tuple[int, int]:
        ms, seq = entry.split("-")
        return int(ms), int(seq)

    notes = await bus.range(bus.keys.activities, ActivityNote)
    packets = {p.id: (order(e), p) for e, p in await bus.range(bus.keys.packets, Packet)}
    starts = [n for _, n in notes if n.state == "start"]
    assert len(starts) >= 2, "car-detection.mp4 has several cars coming and going"
    for start in starts:
        mine = [(order(e), n) for e, n in notes if n.activity == start.activity]
        states = [n.state for _, n in mine]
        assert states[0] == "start" and states[-1] == "end" and set(states[1:-1]) == {"packet"}
        announced = [n.packet_id for _, n in mine if n.state == "packet"]
        assert announced[0] == start.packet_id  # the onset packet the start announced
        assert announced == [pid for pid, (_, p) in sorted(packets.items(), key=lambda kv: kv[1][0])
                             if p.activity == start.activity]
        for at, n in mine:
            if n.state == "packet":
                assert at[0] <= packets[n.packet_id][0][0]  # announced before the packet itself
                assert n.wall == packets[n.packet_id][1].frames[-1].wall
        assert mine[-1][1].packets == len(announced)
        assert await ActivityStore(bus).onset_frame(start.activity) == b"\xff\xd8jpeg"  # the onset frame
    # Captured in order: each activity starts after the previous one ended.
    ends = {n.activity: n for _, n in notes if n.state == "end"}
    for a, b in zip(starts, starts[1:]):
        assert ends[a.activity].ts < b.onset_ts
