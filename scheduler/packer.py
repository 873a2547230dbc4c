"""Activity segmentation and packet assembly for one camera (pure logic, no I/O).

Idle scenes cost nothing: frames only become packets inside an activity (motion above
`start_area`, ended after `post_roll_s` of quiet) or on an optional heartbeat. The first
packet of an activity (`onset`) holds the pre-roll frames and leaves within
`onset_budget_s`, so alerts can act at once; later packets each cover `packet_span_s`
with frames spread across it for temporal coverage.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from bus.messages import MotionSummary, Packet, PacketFrame, Reason
from scheduler.motion import MotionResult
from scheduler.settings import SchedulerSettings
from scheduler.temporal import temporal_ids


@dataclass(slots=True)
class Candidate:
    entry_id: str  # frames-stream id, unique per camera forever
    seq: int
    ts: float
    wall: float
    width: int
    height: int
    jpeg: bytes
    motion: MotionResult


@dataclass
class _Pending:
    reason: Reason
    frames: list[Candidate] = field(default_factory=list)


class Packer:
    def __init__(self, camera: str, settings: SchedulerSettings) -> None:
        self.camera = camera
        self.s = settings
        self.active = False
        self.moving_run = 0
        self.last_motion_ts = 0.0
        self.last_packet_ts: float | None = None
        self.preroll: deque[Candidate] = deque(maxlen=max(settings.pre_roll_frames, 1))
        self.pending: _Pending | None = None

    # -- public ------------------------------------------------------------------------
    def push(self, c: Candidate) -> list[Packet]:
        out: list[Packet] = []
        if self.pending and self.pending.frames and (c.width, c.height) != self._size():
            out += self._flush()  # a packet never mixes frame sizes
        moving = c.motion.area >= self.s.start_area
        self.moving_run = self.moving_run + 1 if moving else 0
        if not self.active:
            if self.moving_run >= self.s.start_frames:
                self.active = True
                self.last_motion_ts = c.ts
                pre = list(self.preroll)[-self.s.pre_roll_frames :] if self.s.pre_roll_frames else []
                pre = [p for p in pre if (p.width, p.height) == (c.width, c.height)]
                self.pending = _Pending("onset", pre + [c])
                self.preroll.clear()
                out += self._maybe_emit(c.ts)
            else:
                self.preroll.append(c)
                out += self._heartbeat(c)
            return out
        if moving:
            self.last_motion_ts = c.ts
        if c.ts - self.last_motion_ts > self.s.post_roll_s:
            out += self._flush()
            self.active = False
            self.preroll.append(c)
            return out
        if self.pending is None:
            self.pending = _Pending("motion", [])
        if self._accepts(c):
            self.pending.frames.append(c)
        out += self._maybe_emit(c.ts)
        return out

    def flush(self) -> list[Packet]:
        """End of stream: whatever is pending leaves now."""
        self.active = False
        return self._flush()

    def due(self, now_wall: float) -> list[Packet]:
        """Live cameras that stall must not hold a pending packet forever."""
        if self.pending and self.pending.frames:
            first = self.pending.frames[0]
            if now_wall - first.wall > self._span() + 1.0:
                return self._flush()
        return []

    # -- internals ---------------------------------------------------------------------
    def _size(self) -> tuple[int, int]:
        f = self.pending.frames[0]  # type: ignore[union-attr]
        return f.width, f.height

    def _span(self) -> float:
        return self.s.onset_budget_s if self.pending and self.pending.reason == "onset" else self.s.packet_span_s

    def _accepts(self, c: Candidate) -> bool:
        frames = self.pending.frames  # type: ignore[union-attr]
        if not frames:
            return True
        # Spread the frames of a later packet over its span instead of the first second of it.
        min_gap = 0.0 if self.pending.reason == "onset" else self.s.packet_span_s / self.s.frames_per_packet  # type: ignore[union-attr]
        return c.ts - frames[-1].ts >= min_gap * 0.9

    def _maybe_emit(self, ts: float) -> list[Packet]:
        p = self.pending
        if p is None or not p.frames:
            return []
        full = len(p.frames) >= self.s.frames_per_packet
        if p.reason == "onset":
            late = ts - self._onset_ts(p) >= self.s.onset_budget_s
        else:
            late = ts - p.frames[0].ts >= self.s.packet_span_s
        return self._flush() if full or late else []

    def _onset_ts(self, p: _Pending) -> float:
        for f in p.frames:
            if f.motion.area >= self.s.start_area:
                return f.ts
        return p.frames[0].ts

    def _heartbeat(self, c: Candidate) -> list[Packet]:
        if self.s.heartbeat_s is None:
            return []
        if self.last_packet_ts is not None and c.ts - self.last_packet_ts < self.s.heartbeat_s:
            return []
        if self.last_packet_ts is None:
            self.last_packet_ts = c.ts
            return []
        self.pending = _Pending("heartbeat", [c])
        return self._flush()

    def _flush(self) -> list[Packet]:
        p, self.pending = self.pending, None
        if p is None or not p.frames:
            return []
        frames = p.frames[: self.s.frames_per_packet]
        self.last_packet_ts = frames[-1].ts
        ids = temporal_ids([f.ts for f in frames], packing=len(frames))
        flat = [i for g in ids for i in g]
        best = max(frames, key=lambda f: f.motion.area)
        return [
            Packet(
                id=f"{self.camera}-{frames[0].entry_id}",
                camera=self.camera,
                reason=p.reason,
                width=frames[0].width,
                height=frames[0].height,
                frames=[
                    PacketFrame(seq=f.seq, ts=f.ts, wall=f.wall, temporal_id=t, motion=round(f.motion.area, 5), jpeg=f.jpeg)
                    for f, t in zip(frames, flat)
                ],
                temporal_ids=ids,
                motion=MotionSummary(area=round(best.motion.area, 5), boxes=best.motion.boxes),
                created=time.time(),
            )
        ]
