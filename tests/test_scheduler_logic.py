"""Packer, settings and fairness logic on hand-made inputs (fast, no media, no Redis)."""

from __future__ import annotations

import numpy as np
import pytest

from bus.messages import MotionSummary, Packet, PacketFrame
from scheduler.motion import THUMB, MotionDetector, MotionResult, thumb_change
from scheduler.packer import Candidate, Packer
from scheduler.service import interleave
from scheduler.settings import SchedulerSettings
from scheduler.temporal import temporal_ids
from vigil.config import ConfigError, parse_config

RNG = np.random.default_rng(7)


def _thumb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (THUMB[1], THUMB[0])).astype(np.float32)


def _cand(i: int, ts: float, area: float, thumb: np.ndarray | None = None, size=(448, 252)) -> Candidate:
    return Candidate(entry_id=f"{i + 1}-0", seq=i, ts=ts, wall=1000.0 + ts, width=size[0], height=size[1],
                     jpeg=b"", motion=MotionResult(area, thumb=_thumb(i) if thumb is None else thumb))


def _feed(packer: Packer, areas: list[float], fps: float = 5.0, thumbs=None) -> list[Packet]:
    out: list[Packet] = []
    for i, a in enumerate(areas):
        out += packer.push(_cand(i, round(i / fps, 6), a, None if thumbs is None else thumbs(i)))
    return out + packer.flush()


def test_idle_camera_emits_nothing_by_default():
    assert _feed(Packer("c", SchedulerSettings()), [0.0] * 300) == []


def test_heartbeat_on_idle_camera():
    packets = _feed(Packer("c", SchedulerSettings(heartbeat_s=10)), [0.0] * 300)  # 60 s
    assert [p.reason for p in packets] == ["heartbeat"] * 5
    assert [p.frames[0].ts for p in packets] == [10.0, 20.0, 30.0, 40.0, 50.0]


def test_onset_within_budget_with_pre_roll_then_spread_packets():
    s = SchedulerSettings()
    areas = [0.0] * 10 + [0.05] * 50 + [0.0] * 30  # activity from 2.0 s to 12 s
    packets = _feed(Packer("c", s), areas)
    onset, *rest = packets
    assert onset.reason == "onset"
    assert onset.frames[0].ts == pytest.approx(1.6)  # pre-roll: 0.4 s before onset
    assert onset.frames[-1].ts - 2.0 <= s.onset_budget_s + 1e-9
    assert len(onset.frames) == 6
    assert rest and all(p.reason == "motion" for p in rest)
    for p in rest[:-1]:
        ts = [f.ts for f in p.frames]
        assert len(ts) == 6 and ts[-1] - ts[0] >= s.packet_span_s * 0.6  # temporal coverage
    # Nothing after the post-roll.
    assert max(f.ts for p in packets for f in p.frames) <= 12.0 + s.post_roll_s


def test_onset_packet_may_hold_fewer_frames_rather_than_wait():
    s = SchedulerSettings(onset_budget_s=0.5, pre_roll_s=0)
    packets = _feed(Packer("c", s), [0.0] * 5 + [0.05] * 20, fps=2.0)  # 2 fps: 0.5 s between frames
    onset = packets[0]
    assert onset.reason == "onset" and 1 < len(onset.frames) < 6
    assert onset.frames[-1].ts - onset.frames[0].ts <= 0.5 + 1e-9


def test_start_hysteresis_ignores_a_single_twitch():
    s = SchedulerSettings(start_frames=2)
    assert _feed(Packer("c", s), [0.0, 0.05, 0.0, 0.0, 0.05, 0.0, 0.0] * 10) == []


def test_end_hysteresis_keeps_one_activity_through_weak_motion():
    s = SchedulerSettings(start_area=0.01, end_area=0.002)
    areas = [0.0] * 5 + [0.05] * 5 + [0.004] * 20 + [0.05] * 5 + [0.0] * 20
    packets = _feed(Packer("c", s), areas)
    assert [p.reason for p in packets].count("onset") == 1


def test_near_duplicates_are_never_keyframes():
    s = SchedulerSettings()
    same = _thumb(1)
    # Motion is reported, but every frame looks the same: only the first is worth sending.
    packets = _feed(Packer("c", s), [0.0] * 5 + [0.05] * 60 + [0.0] * 10, thumbs=lambda i: same)
    assert sum(len(p.frames) for p in packets) == 1
    # With a view that changes every 5th frame, frames inside a packet all differ.
    packets = _feed(Packer("c", s), [0.0] * 5 + [0.05] * 60 + [0.0] * 10, thumbs=lambda i: _thumb(i // 5))
    for p in packets:
        seqs = [f.seq for f in p.frames]
        assert len({q // 5 for q in seqs}) == len(seqs)


def test_packets_never_mix_frame_sizes():
    packer = Packer("c", SchedulerSettings())
    out: list[Packet] = []
    for i in range(40):
        size = (448, 252) if i < 20 else (336, 252)
        out += packer.push(_cand(i, i / 5, 0.05 if i >= 2 else 0.0, size=size))
    out += packer.flush()
    assert out and all(len({(p.width, p.height)}) == 1 for p in out)
    assert {(p.width, p.height) for p in out} == {(448, 252), (336, 252)}


def test_due_flushes_a_stalled_live_camera():
    packer = Packer("c", SchedulerSettings())
    for i in range(12):
        assert not [p for p in packer.push(_cand(i, i / 5, 0.05 if i > 1 else 0.0)) if p.reason == "motion"]
    assert packer.pending is not None
    assert packer.due(1000.0 + 3.0) == []  # still within its span
    late = packer.due(1000.0 + 60.0)
    assert len(late) == 1 and late[0].reason == "motion"


def test_temporal_ids_of_packets_come_from_the_one_function():
    packets = _feed(Packer("c", SchedulerSettings()), [0.0] * 5 + [0.05] * 40, fps=12.5 / 3)
    for p in packets:
        assert p.temporal_ids == temporal_ids([f.ts for f in p.frames], packing=len(p.frames))


def test_thumb_change_ignores_brightness_and_contrast():
    a = _thumb(3)
    assert thumb_change(a, a * 0.8 + 20) < 0.01
    assert thumb_change(a, _thumb(4)) > 0.5


def test_detector_rejects_bad_planes():
    det = MotionDetector(SchedulerSettings().motion)
    with pytest.raises(ValueError):
        det.score(np.zeros((10, 10), np.float32))
    with pytest.raises(ValueError):
        det.score(np.zeros((10, 10, 3), np.uint8))


def test_detector_boxes_and_mask_on_a_synthetic_square():
    s = SchedulerSettings(cameras={"m": {"mask": [[[0.5, 0], [1, 0], [1, 1], [0.5, 1]]]}})
    base = RNG.normal(110, 8, (180, 320)).clip(0, 255).astype(np.uint8)
    for x in (40, 220):
        plain, masked = MotionDetector(s.motion), MotionDetector(s.for_camera("m").motion)
        for i in range(5):
            plain.score(base, i * 0.2)
            masked.score(base, i * 0.2)
        frame = base.copy()
        frame[60:120, x : x + 60] = 230  # a bright object
        r1 = plain.score(frame, 1.0)
        r2 = masked.score(frame, 1.0)
        assert r1.area > 0.03 and len(r1.boxes) == 1
        bx, by, bw, bh = r1.boxes[0]
        assert abs(bx - x / 320) < 0.03 and abs(by - 60 / 180) < 0.05
        assert (r2.area > 0) == (x < 160)  # the mask covers the right half only


# ------------------------------------------------------------------------------ settings
def test_per_camera_overrides_merge_with_defaults():
    s = SchedulerSettings.model_validate({
        "packet_span_s": 5.0,
        "motion": {"threshold": 30},
        "cameras": {
            "gate": {"sports": True, "motion": {"min_box_area": 0.01}, "zones": {"gate": [[0, 0], [1, 0], [1, 1]]},
                     "heartbeat_s": 600},
        },
    })
    gate = s.for_camera("gate")
    assert gate.sports and gate.heartbeat_s == 600 and gate.packet_span_s == 5.0
    assert gate.motion.threshold == 30 and gate.motion.min_box_area == 0.01 and "gate" in gate.motion.zones
    other = s.for_camera("other")
    assert not other.sports and other.motion.zones == {} and other.heartbeat_s is None


@pytest.mark.parametrize("section, where", [
    ({"cameras": {"gate": {"mask": [[[0, 0], [1.5, 0], [1, 1]]]}}}, "scheduler.cameras.gate.mask"),
    ({"cameras": {"gate": {"zones": {"z": [[0, 0], [1, 1]]}}}}, "scheduler.cameras.gate.zones"),
    ({"cameras": {"gate": {"motion": {"threshold": 0}}}}, "threshold"),
    ({"cameras": {"gate": {"motion": {"nope": 1}}}}, "nope"),
    ({"cameras": {"gate": {"colour": "red"}}}, "scheduler.cameras.gate.colour"),
    ({"start_area": 0.001, "end_area": 0.01}, "end_area"),
])
def test_bad_scheduler_settings_name_the_key(section, where):
    with pytest.raises(ConfigError) as exc:
        parse_config({"scheduler": section})
    assert where in str(exc.value)


# ------------------------------------------------------------------------------ fairness
def _pkt(camera: str, n: int, reason: str = "motion") -> Packet:
    return Packet(id=f"{camera}-{n}", camera=camera, reason=reason, width=2, height=2,
                  frames=[PacketFrame(seq=n, ts=float(n), wall=0.0, temporal_id=0, motion=0.0, jpeg=b"")],
                  temporal_ids=[[0]], motion=MotionSummary(area=0.0), created=0.0)


def test_interleave_is_fair_and_keeps_each_cameras_order():
    busy = [_pkt("busy", i) for i in range(20)]
    quiet = [_pkt("quiet", 0, "onset"), _pkt("quiet", 1)]
    out = interleave(busy + quiet)
    assert out[0].id == "quiet-0"  # an onset does not wait behind another camera's backlog
    assert [p.id for p in out if p.camera == "busy"] == [p.id for p in busy]
    assert [p.id for p in out if p.camera == "quiet"] == ["quiet-0", "quiet-1"]
    assert max(i for i, p in enumerate(out) if p.camera == "quiet") <= 3
