"""temporal_ids: the one function that tells MiniCPM-V 4.5's 3D resampler when frames were taken.

It reproduces the model's official video example bit for bit (the model was trained on it):
timestamps are snapped to the nearest point of a 0.1 s grid, divided by the grid step and
*truncated* to int32 -- so 4.3 s becomes 42, because the grid point 4.3 is stored as
4.29999... -- then grouped `packing` at a time, one group per packet of frames.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

TIME_SCALE = 0.1
MAX_PACKING = 6


def temporal_ids(
    timestamps: Sequence[float], packing: int = MAX_PACKING, clip_duration: float | None = None
) -> list[list[int]]:
    """Temporal ids for the frames of one model call ("clip"), grouped `packing` per packet.

    timestamps: capture times in seconds of every frame in the call, in order, on any clock;
        they are made relative to the first frame, so `ts[0]` becomes 0.
    packing: frames per group (1..6); the last group may be shorter.
    clip_duration: end of the grid; must exceed the last relative timestamp. Defaults to the
        last timestamp plus one grid step, so the last frame always has its nearest grid point.

    Returns one list of ints per group; flattened, exactly one id per frame. Ids never
    decrease for increasing timestamps, but neighbours closer than 0.1 s may share an id.
    """
    if not 1 <= packing <= MAX_PACKING:
        raise ValueError(f"packing must be 1..{MAX_PACKING}, got {packing}")
    if len(timestamps) == 0:
        return []
    ts = np.asarray(timestamps, dtype=np.float64)
    if np.any(np.diff(ts) < 0):
        raise ValueError("timestamps must not decrease")
    ts = ts - ts[0]
    duration = float(ts[-1]) + TIME_SCALE if clip_duration is None else float(clip_duration)
    if duration <= ts[-1]:
        raise ValueError("clip_duration must exceed the last relative timestamp")
    grid = np.arange(0, duration, TIME_SCALE)
    nearest = grid[np.abs(grid[None, :] - ts[:, None]).argmin(axis=1)]
    ids = (nearest / TIME_SCALE).astype(np.int32)
    flat = ids.tolist()
    return [flat[i : i + packing] for i in range(0, len(flat), packing)]
