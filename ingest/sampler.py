"""Which decoded frames become sampled frames: `sample_fps` on the stream's own clock."""

from __future__ import annotations


class Sampler:
    def __init__(self, sample_fps: float) -> None:
        self.period = 1.0 / sample_fps if sample_fps > 0 else 0.0
        self.next_ts: float | None = None

    def take(self, ts: float) -> bool:
        if self.next_ts is None or ts + 1e-6 >= self.next_ts:
            # Anchor on the grid, but never schedule into the past after a gap or a seek.
            nxt = (self.next_ts if self.next_ts is not None else ts) + self.period
            self.next_ts = nxt if nxt > ts else ts + self.period
            return True
        return False
