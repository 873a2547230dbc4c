"""Activity segmentation, keyframe selection and packet assembly for one camera (pure logic).

Idle scenes cost nothing: frames become packets only inside an activity or on an optional
heartbeat. An activity starts after `start_frames` samples with motion of at least
`start_area` and lasts until motion stays below `end_area` for `post_roll_s` (hysteresis).

- The onset packet holds up to `pre_roll_s` of frames from just before the motion began,
  then every distinct frame until it has six or `onset_budget_s` has passed since onset:
  the first packet of an activity leaves within about a second.
- Later packets each cover `packet_span_s` (`sports_span_s` in sports mode) of stream time,
  cut into one slot per frame; each slot gives the frame that differs most from the last
  keyframe (motion change), and a frame that barely differs (`min_change`) is never taken
  (no near-duplicates). A packet leaves when its span is over or the activity ends; one
  holding only post-roll frames without motion is not sent.
Packets of one camera come out in capture order and never share a frame.

With `notes=True` (the service) the packer also says what happens to the activity as
ActivityNotes in `self.notes`: `start` the moment the onset is confirmed (the first moving
frame's capture time, its motion boxes and zones, the frame with the most motion, and the id
the onset packet will have), and `end` when the activity is over (post-roll passed, the
source ended, or a live source stalled). Packets carry their activity's id.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from bus.messages import ActivityNote, MotionSummary, Packet, PacketFrame, Reason
from scheduler.motion import MotionResult, thumb_change
from scheduler.settings import SchedulerSettings
from scheduler.state import Array, CandidateState, MotionState, PackerState, PendingState
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
    start: float  # stream time the packet's span counts from
    frames: list[Candidate] = field(default_factory=list)
    slot: int = 0  # current slot (motion packets)
    best: Candidate | None = None  # the current slot's choice so far
    best_score: float = -1.0


class Packer:
    def __init__(self, camera: str, settings: SchedulerSettings, *, notes: bool = False) -> None:
        self.camera = camera
        self.s = settings
        self.span = settings.sports_span_s if settings.sports else settings.packet_span_s
        self.active = False
        self.moving_run = 0
        self.onset_ts = 0.0
        self.onset_wall = 0.0
        self.last_motion_ts = -math.inf
        self.last_motion_wall = 0.0
        self.last_wall: float | None = None  # capture time of the newest frame pushed
        self.activity = ""  # id of the activity going on ("" when idle)
        self.notes: list[ActivityNote] | None = [] if notes else None
        self.last_packet_ts: float | None = None
        self.last_key: Candidate | None = None  # last frame put into a packet
        self.history: deque[Candidate] = deque(maxlen=64)
        self.pending: _Pending | None = None

    # -- public ------------------------------------------------------------------------
    def push(self, c: Candidate) -> list[Packet]:
        out: list[Packet] = []
        self.last_wall = c.wall
        if self.pending and self.pending.frames and (c.width, c.height) != self._size(self.pending):
            out += self._close()  # a packet never mixes frame sizes
        area = c.motion.area
        moving = area >= self.s.start_area
        self.moving_run = self.moving_run + 1 if moving else 0
        if not self.active:
            self.history.append(c)
            if self.moving_run >= self.s.start_frames:
                out += self._start(c)
            else:
                out += self._heartbeat(c)
            return out
        if area >= self.s.end_area:
            self.last_motion_ts, self.last_motion_wall = c.ts, c.wall
        if c.ts - self.last_motion_ts > self.s.post_roll_s:
            out += self._end()
            self.history.append(c)
            return out
        p = self.pending
        if p is not None and p.reason == "onset":
            if self._distinct(c, p.frames[-1] if p.frames else self.last_key):
                p.frames.append(c)
            if len(p.frames) >= self.s.frames_per_packet or c.ts - self.onset_ts >= self.s.onset_budget_s:
                out += self._close()
            return out
        if p is None:
            p = self.pending = _Pending("motion", start=c.ts)
        out += self._slot(p, c)
        return out

    def flush(self) -> list[Packet]:
        """End of stream: what is pending leaves now; the activity ends."""
        out = self._end()
        self.moving_run = 0
        return out

    def due(self, now_wall: float) -> list[Packet]:
        """A live camera that stalls must not hold a pending packet forever, nor an activity:
        without frames for post-roll (plus a second) the activity ends."""
        if self.active and self.last_wall is not None and now_wall - self.last_wall > self.s.post_roll_s + 1.0:
            self.moving_run = 0
            return self._end()
        p = self.pending
        if p is None:
            return []
        first = p.frames[0] if p.frames else p.best
        if first is None:
            return []
        budget = self.s.onset_budget_s if p.reason == "onset" else self.span
        if now_wall - first.wall > budget + 1.0:
            return self._close()
        return []

    # -- activity ------------------------------------------------------------------------
    def _end(self) -> list[Packet]:
        out = self._close()
        if self.active and self.notes is not None:
            self.notes.append(self._note("end", self.last_motion_wall, self.last_motion_ts))
        self.active = False
        self.activity = ""
        self.history.clear()
        return out

    def _note(self, state, wall: float, ts: float, **kw) -> ActivityNote:
        return ActivityNote(camera=self.camera, activity=self.activity, state=state, onset_wall=self.onset_wall,
                            onset_ts=self.onset_ts, wall=wall, ts=ts, created=time.time(), **kw)

    def _start(self, c: Candidate) -> list[Packet]:
        self.active = True
        run = list(self.history)[-self.moving_run :]
        self.onset_ts, self.onset_wall = run[0].ts, run[0].wall
        self.activity = f"{self.camera}-{run[0].entry_id}"
        self.last_motion_ts, self.last_motion_wall = c.ts, c.wall
        after = self.last_packet_ts if self.last_packet_ts is not None else -math.inf
        pre = [f for f in self.history if self.onset_ts - self.s.pre_roll_s - 1e-6 <= f.ts < self.onset_ts and f.ts > after]
        frames: list[Candidate] = []
        for f in pre + run:
            if f.ts > after and (f.width, f.height) == (c.width, c.height) and self._distinct(f, frames[-1] if frames else None):
                frames.append(f)
        # Keep the motion frames; drop the oldest pre-roll first if there are too many.
        while len(frames) > self.s.frames_per_packet:
            frames.pop(0)
        self.history.clear()
        self.pending = _Pending("onset", start=self.onset_ts, frames=frames)
        if self.notes is not None:
            # The onset evidence, the moment the onset is confirmed: no packet has to fill first.
            best = max(run, key=lambda f: f.motion.area)
            zones = sorted({z for f in run for z in f.motion.zones})
            self.notes.append(self._note(
                "start", c.wall, c.ts, packet_id=f"{self.camera}-{frames[0].entry_id}",
                motion=MotionSummary(area=round(best.motion.area, 5), boxes=best.motion.boxes, zones=zones),
                jpeg=best.jpeg, width=best.width, height=best.height))
        if len(frames) >= self.s.frames_per_packet or c.ts - self.onset_ts >= self.s.onset_budget_s:
            return self._close()
        return []

    def _slot(self, p: _Pending, c: Candidate) -> list[Packet]:
        out: list[Packet] = []
        width = self.span / self.s.frames_per_packet
        k = int((c.ts - p.start) / width + 1e-9)
        if k != p.slot:
            self._settle(p)
            if k >= self.s.frames_per_packet or len(p.frames) >= self.s.frames_per_packet:
                out += self._close()
                p = self.pending = _Pending("motion", start=c.ts)
                k = 0
            p.slot = k
        if c.motion.recalibrated:
            return out  # the frame a lighting change hit shows the change, not the scene
        ref = p.frames[-1] if p.frames else self.last_key
        score = thumb_change(c.motion.thumb, ref.motion.thumb if ref else None)
        if score >= self.s.min_change and score > p.best_score:
            p.best, p.best_score = c, score
        return out

    def _settle(self, p: _Pending) -> None:
        """The slot is over: its best frame becomes a keyframe."""
        if p.best is not None and len(p.frames) < self.s.frames_per_packet:
            p.frames.append(p.best)
        p.best, p.best_score = None, -1.0

    def _distinct(self, c: Candidate, ref: Candidate | None) -> bool:
        if ref is None:
            return True
        return thumb_change(c.motion.thumb, ref.motion.thumb) >= self.s.min_change

    def _heartbeat(self, c: Candidate) -> list[Packet]:
        if self.s.heartbeat_s is None:
            return []
        if self.last_packet_ts is None:
            self.last_packet_ts = c.ts  # the first heartbeat comes one interval after the start
            return []
        if c.ts - self.last_packet_ts < self.s.heartbeat_s:
            return []
        self.pending = _Pending("heartbeat", start=c.ts, frames=[c])
        return self._close()

    # -- packets -------------------------------------------------------------------------
    @staticmethod
    def _size(p: _Pending) -> tuple[int, int]:
        return p.frames[0].width, p.frames[0].height

    def _close(self) -> list[Packet]:
        p, self.pending = self.pending, None
        if p is None:
            return []
        if p.reason == "motion":
            self._settle(p)
            # Post-roll alone (nothing moving) is not worth a model call.
            if not any(f.motion.area >= self.s.end_area for f in p.frames):
                return []
        if not p.frames:
            return []
        return [self._packet(p.reason, p.frames[: self.s.frames_per_packet])]

    def _packet(self, reason: Reason, frames: list[Candidate]) -> Packet:
        self.last_packet_ts = frames[-1].ts
        self.last_key = frames[-1]
        ids = temporal_ids([f.ts for f in frames], packing=len(frames))
        flat = [i for g in ids for i in g]
        best = max(frames, key=lambda f: f.motion.area)
        zones = sorted({z for f in frames for z in f.motion.zones})
        return Packet(
            id=f"{self.camera}-{frames[0].entry_id}",
            camera=self.camera,
            reason=reason,
            width=frames[0].width,
            height=frames[0].height,
            frames=[
                PacketFrame(seq=f.seq, ts=f.ts, wall=f.wall, temporal_id=t, motion=round(f.motion.area, 5), jpeg=f.jpeg)
                for f, t in zip(frames, flat)
            ],
            temporal_ids=ids,
            motion=MotionSummary(area=round(best.motion.area, 5), boxes=best.motion.boxes, zones=zones),
            created=time.time(),
            activity=self.activity if reason != "heartbeat" else "",
        )

    # -- state, for a failover or restart (scheduler/state.py) ---------------------------------
    def state(self) -> PackerState:
        hist = list(self.history)
        if hist:
            # Only the frames a later onset can still reach: the current moving run and the
            # pre-roll before it (what _start looks at).
            anchor = hist[-max(self.moving_run, 1)].ts - self.s.pre_roll_s - 1e-6
            hist = [c for c in hist if c.ts >= anchor]
        p = self.pending
        pending = None if p is None else PendingState(
            reason=p.reason, start=p.start, frames=[_cand_state(c) for c in p.frames], slot=p.slot,
            best=_cand_state(p.best) if p.best is not None else None, best_score=p.best_score)
        return PackerState(
            active=self.active, moving_run=self.moving_run, onset_ts=self.onset_ts, last_motion_ts=self.last_motion_ts,
            last_packet_ts=self.last_packet_ts,
            # The last keyframe serves only as a reference for changes: its image is not kept.
            last_key=_cand_state(self.last_key, jpeg=False) if self.last_key else None,
            history=[_cand_state(c) for c in hist], pending=pending, activity=self.activity,
            onset_wall=self.onset_wall, last_motion_wall=self.last_motion_wall, last_wall=self.last_wall)

    def load(self, st: PackerState) -> None:
        self.active, self.moving_run, self.onset_ts = st.active, st.moving_run, st.onset_ts
        self.last_motion_ts, self.last_packet_ts = st.last_motion_ts, st.last_packet_ts
        self.activity, self.onset_wall, self.last_motion_wall = st.activity, st.onset_wall, st.last_motion_wall
        self.last_wall = st.last_wall
        self.last_key = _cand(st.last_key) if st.last_key is not None else None
        self.history = deque((_cand(c) for c in st.history), maxlen=self.history.maxlen)
        p = st.pending
        self.pending = None if p is None else _Pending(
            reason=p.reason, start=p.start, frames=[_cand(c) for c in p.frames], slot=p.slot,  # type: ignore[arg-type]
            best=_cand(p.best) if p.best is not None else None, best_score=p.best_score)


def _cand_state(c: Candidate, jpeg: bool = True) -> CandidateState:
    m = c.motion
    return CandidateState(
        entry_id=c.entry_id, seq=c.seq, ts=c.ts, wall=c.wall, width=c.width, height=c.height,
        jpeg=c.jpeg if jpeg else b"",
        motion=MotionState(area=m.area, boxes=m.boxes, zones=m.zones, recalibrated=m.recalibrated,
                           global_motion=m.global_motion, thumb=Array.of(m.thumb) if m.thumb is not None else None))


def _cand(c: CandidateState) -> Candidate:
    m = c.motion
    motion = MotionResult(m.area, m.boxes, m.zones, recalibrated=m.recalibrated, global_motion=m.global_motion,
                          thumb=m.thumb.array() if m.thumb is not None else None)
    return Candidate(entry_id=c.entry_id, seq=c.seq, ts=c.ts, wall=c.wall, width=c.width, height=c.height,
                     jpeg=c.jpeg, motion=motion)
