"""The scheduler's pure logic (motion + packer) on real footage, without Redis.

Activity intervals of car-detection.mp4, labelled by looking at its frames (seconds from the
file's start): a white car drives in at the bottom at 4.45 s and leaves at the top by 8.6 s;
a silver car comes in at the top at 14.4 s while a red one enters at the bottom, both gone by
19.0 s; a white car enters at the top at 25.2 s and leaves at the bottom by 27.9 s. In between
the car park is empty (the camera's auto-exposure darkens while a white car is in view and
recovers for a second or two after it leaves).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bus.messages import Packet
from scheduler.motion import MotionDetector
from scheduler.offline import LumaFrame, decode_luma, run_offline
from scheduler.settings import SchedulerSettings
from scheduler.temporal import temporal_ids

ACTIVITY = [(4.45, 8.6), (14.4, 19.0), (25.2, 27.9)]
# Empty stretches, shortened by the pre-roll before each onset and the exposure recovery after.
IDLE = [(0.0, 3.9), (11.0, 13.6), (21.0, 24.4), (29.0, 30.3)]


@pytest.fixture(scope="module")
def car(media) -> list[LumaFrame]:
    return list(decode_luma(media / "car-detection.mp4"))


@pytest.fixture(scope="module")
def car_packets(car) -> list[Packet]:
    return run_offline(car, SchedulerSettings(), camera="car")


def _frame_ts(packets: list[Packet]) -> list[float]:
    return [f.ts for p in packets for f in p.frames]


def _inside(t: float, spans: list[tuple[float, float]]) -> bool:
    return any(a <= t <= b for a, b in spans)


def test_packets_cover_every_activity(car_packets):
    ts = _frame_ts(car_packets)
    for a, b in ACTIVITY:
        hits = [t for t in ts if a <= t <= b]
        # Recall, and coverage: keyframes spread across the activity, not bunched at its start.
        assert len(hits) >= 5, (a, b, hits)
        assert max(hits) - min(hits) >= 0.6 * (b - a), (a, b, hits)


def test_idle_stretches_cost_nothing(car_packets):
    in_idle = [t for t in _frame_ts(car_packets) if _inside(t, IDLE)]
    assert in_idle == []
    # Packets cluster in the activities: at most two per activity (onset + one later).
    assert len(car_packets) <= 2 * len(ACTIVITY)


def test_onset_packet_leaves_within_a_second(car, car_packets):
    onsets = [p for p in car_packets if p.reason == "onset"]
    assert len(onsets) == len(ACTIVITY)
    for p, (a, _) in zip(onsets, ACTIVITY):
        moving = [f.ts for f in p.frames if f.motion > 0]
        assert moving, p.frame_ts
        # Its last frame (when it can leave) is at most one second after the motion began,
        # and it starts with the pre-roll: a frame from just before onset.
        assert p.frames[-1].ts - moving[0] <= 1.0
        assert p.frames[0].ts < moving[0] and p.frames[0].ts >= a - 1.0
    assert all(p.reason == "motion" for p in car_packets if p not in onsets)


def test_every_packet_keeps_the_contract(car_packets):
    seen: set[int] = set()
    last = -1.0
    for p in car_packets:
        assert 1 <= len(p.frames) <= 6
        assert p.camera == "car" and (p.width, p.height) == (602, 336)  # 768x432 at the model processor's size
        ts = [f.ts for f in p.frames]
        assert ts == sorted(ts) and ts[0] > last  # one camera's packets never reorder or overlap
        last = ts[-1]
        assert p.temporal_ids == temporal_ids(ts, packing=len(ts))
        assert [f.temporal_id for f in p.frames] == [i for g in p.temporal_ids for i in g]
        seqs = {f.seq for f in p.frames}
        assert not seqs & seen
        seen |= seqs


def test_motion_area_is_the_object_not_a_ghost(car):
    """The old detector reported 0.65 of the picture for one car; a car here covers ~0.1-0.2."""
    det = MotionDetector(SchedulerSettings().motion)
    areas = {f.ts: det.score(f.luma, f.ts).area for f in car}
    assert max(a for t, a in areas.items() if 4.4 <= t <= 8.6) <= 0.3
    # Once the car has gone and exposure has settled, nothing is left behind.
    assert all(a == 0.0 for t, a in areas.items() if _inside(t, IDLE))


# ------------------------------------------------------------------------------ masks and zones
def test_motion_only_inside_the_mask_yields_no_packets(car):
    # The cars all drive within x < 0.8; the bottom-right corner marker flickers with exposure.
    mask = [[[0, 0], [0.8, 0], [0.8, 1], [0, 1]], [[0.94, 0], [1, 0], [1, 1], [0.94, 1]]]
    s = SchedulerSettings(cameras={"car": {"mask": mask}})
    assert run_offline(car, s, camera="car") == []
    # Control: masking an area without cars changes nothing about the activities found.
    s = SchedulerSettings(cameras={"car": {"mask": [[[0.8, 0], [0.94, 0], [0.94, 1], [0.8, 1]]]}})
    packets = run_offline(car, s, camera="car")
    assert sum(p.reason == "onset" for p in packets) == len(ACTIVITY)
    # Only the named camera is masked.
    assert len(run_offline(car, s, camera="other")) == len(run_offline(car, SchedulerSettings(), camera="other"))


def test_zones_touched_are_recorded(car):
    zones = {"bottom": [[0, 0.7], [1, 0.7], [1, 1], [0, 1]], "top": [[0, 0], [1, 0], [1, 0.3], [0, 0.3]]}
    packets = run_offline(car, SchedulerSettings(cameras={"car": {"zones": zones}}), camera="car")
    first = packets[0]
    assert first.reason == "onset" and first.motion.zones == ["bottom"]  # the white car enters at the bottom
    assert "top" in packets[1].motion.zones  # ... and leaves at the top
    assert all(set(p.motion.zones) <= {"bottom", "top"} for p in packets)


# ------------------------------------------------------------------------------ lighting and sports
def _brighter(at: float, gain: float, bias: float):
    return lambda ts, luma: luma if ts < at else cv2.convertScaleAbs(luma, alpha=gain, beta=bias)


_GAMMA = np.clip(((np.arange(256) / 255.0) ** 0.5) * 255, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name, transform", [
    ("lights on in an idle stretch", _brighter(11.0, 1.5, 10)),
    ("lights dim in an idle stretch", _brighter(11.0, 0.5, 0)),
    ("IR-like tone change", lambda ts, luma: luma if ts < 11.0 else cv2.LUT(luma, _GAMMA)),
    ("exposure jump while a car moves", _brighter(6.0, 1.6, 0)),
    ("flicker every 3 s", lambda ts, luma: luma if int(ts / 3) % 2 == 0 else cv2.convertScaleAbs(luma, alpha=1.4, beta=20)),
])
def test_lighting_changes_do_not_burst_packets(car, car_packets, name, transform):
    packets = run_offline(car, SchedulerSettings(), camera="car", transform=transform)
    assert len(packets) <= len(car_packets), name
    assert sum(p.reason == "onset" for p in packets) == len(ACTIVITY), name
    # No packet starts in an idle stretch (the first jump lands inside the 11-13.6 s one); at
    # most one post-roll frame of the activity before may show the new lighting.
    assert [p.frames[0].ts for p in packets if _inside(p.frames[0].ts, IDLE)] == [], name
    assert len([t for t in _frame_ts(packets) if _inside(t, IDLE)]) <= 1, name


def test_global_change_recalibrates_outside_sports_mode(car):
    det = MotionDetector(SchedulerSettings().motion)
    results = [det.score(f.luma if f.ts < 11 else cv2.LUT(f.luma, _GAMMA), f.ts) for f in car]
    at = next(i for i, f in enumerate(car) if f.ts >= 11)
    assert results[at].recalibrated and results[at].area == 0.0


def _pan(ts: float, luma: np.ndarray) -> np.ndarray:
    # A camera sweeping back and forth across the scene: motion everywhere, all the time.
    off = int(abs(((ts * 60) % 240) - 120))
    return np.ascontiguousarray(luma[:, off : off + 200])


def test_sports_mode_keeps_a_steady_cadence(media):
    frames = list(decode_luma(media / "vtest.avi", duration=20))
    sports = SchedulerSettings(cameras={"pitch": {"sports": True}})
    packets = run_offline(frames, sports, camera="pitch", transform=_pan)
    starts = [p.frames[0].ts for p in packets]
    gaps = np.diff(starts)
    span = sports.for_camera("pitch").sports_span_s
    assert len(packets) >= 20 / span - 1
    assert gaps.max() <= span + 0.5 and gaps[1:].min() >= span - 0.5  # steady, no bursts
    assert all(len(p.frames) >= 3 for p in packets[:-1])
    # The same sweep outside sports mode is mostly recalibration: far fewer packets.
    normal = run_offline(frames, SchedulerSettings(), camera="pitch", transform=_pan)
    assert len(normal) * 2 <= len(packets)


def test_full_resolution_luma_plane_gives_the_same_activities(media, car_packets):
    """A camera's own 720p Y plane (no ingest shrink) goes through the strided fast path."""
    frames = list(decode_luma(media / "car-detection.mp4", luma_width=768, duration=12.0))
    up = lambda ts, luma: cv2.resize(luma, (1280, 720), interpolation=cv2.INTER_LINEAR)  # noqa: E731
    packets = run_offline(frames, SchedulerSettings(), camera="car", transform=up)
    assert [p.reason for p in packets] == ["onset", "motion"]
    assert abs(packets[0].frames[0].ts - car_packets[0].frames[0].ts) <= 0.25
    assert not [t for t in _frame_ts(packets) if _inside(t, IDLE)]
