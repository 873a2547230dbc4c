"""temporal_ids: hand-worked values, then the official algorithm re-derived independently."""

from __future__ import annotations

import random

import numpy as np
import pytest

from scheduler.temporal import TIME_SCALE, temporal_ids


def test_six_frames_at_5fps():
    # 0.2 s apart -> grid points 0, 0.2, ... 1.0 -> ids 0, 2, 4, 6, 8, 10 (one packet)
    assert temporal_ids([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]) == [[0, 2, 4, 6, 8, 10]]


def test_truncation_4_3_seconds_is_42():
    # The grid point for 4.3 s is stored as 4.29999...; /0.1 -> 42.999..., truncated -> 42.
    assert temporal_ids([0.0, 4.3]) == [[0, 42]]
    # ... while 4.2 s stays 42 and 4.4 s stays 44: neighbouring ids can repeat.
    assert temporal_ids([0.0, 4.2, 4.3, 4.4]) == [[0, 42, 42, 44]]


def test_relative_to_first_frame():
    # Absolute capture times (stream clock 100 s in) count from the clip's first frame.
    assert temporal_ids([100.0, 100.5, 101.0]) == temporal_ids([0.0, 0.5, 1.0]) == [[0, 5, 10]]


def test_group_shorter_than_packing():
    # 8 frames, packing 6 -> a full group then a group of 2.
    ts = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4]
    assert temporal_ids(ts, packing=6) == [[0, 2, 4, 6, 8, 10], [12, 14]]
    assert temporal_ids([0.0, 0.5, 1.0], packing=2) == [[0, 5], [10]]


def test_nearest_grid_point_not_floor():
    # 0.26 s is nearer 0.3 than 0.2 -> 3; 0.24 s -> 2.
    assert temporal_ids([0.0, 0.24, 0.26]) == [[0, 2, 3]]


def test_errors():
    assert temporal_ids([]) == []
    with pytest.raises(ValueError):
        temporal_ids([0.0, 1.0], packing=7)
    with pytest.raises(ValueError):
        temporal_ids([1.0, 0.5])
    with pytest.raises(ValueError):
        temporal_ids([0.0, 1.0], clip_duration=1.0)


def _reference(ts: list[float], packing: int, duration: float) -> list[list[int]]:
    """DESIGN §3 written out again, independently: a nearest-point search by loop."""
    rel = [t - ts[0] for t in ts]
    scale = np.arange(0, duration, TIME_SCALE)
    ids = []
    for t in rel:
        best = min(range(len(scale)), key=lambda i: (abs(scale[i] - t), i))
        ids.append(int(np.int32(scale[best] / TIME_SCALE)))
    return [ids[i : i + packing] for i in range(0, len(ids), packing)]


@pytest.mark.parametrize("packing", [1, 2, 3, 4, 5, 6])
def test_matches_official_algorithm_on_random_clips(packing: int):
    rng = random.Random(packing)
    for _ in range(60):
        n = rng.randint(1, 18)
        start = rng.uniform(0, 500)
        ts = sorted(start + rng.uniform(0, 12) for _ in range(n))
        duration = ts[-1] - ts[0] + rng.choice([TIME_SCALE, 0.37, 1.0])
        got = temporal_ids(ts, packing=packing, clip_duration=duration)
        assert got == _reference(ts, packing, duration)
        assert sum(len(g) for g in got) == n
        flat = [i for g in got for i in g]
        assert flat == sorted(flat)
