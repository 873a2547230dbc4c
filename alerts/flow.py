"""What the alerts stage knows about one camera's activities (pure logic, kept in Redis).

The scheduler announces every activity (`start`, each `packet`, `end`) on the `activities`
stream in capture order. From that the stage knows, per camera:

- the packets whose verdicts are still to come, in capture order (`slots`): events are
  applied in that order, whatever order the analyzer workers finish in, so `first_seen` is
  the earliest evidence and a replay gives the same alerts;
- the activities going on (`spans`): while one goes on, or one of its packets still awaits
  its verdict, nothing after that point is known yet.

`frontier()` is the capture time up to which everything on the camera has been evaluated;
quiet time counts only up to it, so an alert never resolves between two packets of one
activity, however long the packets are or the analyzer takes.
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec

from bus.messages import ActivityNote

DONE_KEPT = 256  # packets applied lately: a late note or a repeated event for them is ignored
ENDS_KEPT = 32  # ended activities whose end is remembered


class Slot(msgspec.Struct, kw_only=True):
    packet: str
    activity: str
    start: float  # capture epoch of its first frame
    end: float  # ... of its last frame
    noted: float  # wall clock when the stage learned of it
    entry: str = ""  # its event's entry id in `events`, once the event is in
    arrived: float = 0.0  # wall clock when its event came
    skipped: bool = False  # the analyzer said it will never analyse it


class Span(msgspec.Struct, kw_only=True):
    id: str
    onset: float  # capture epoch of the first moving frame
    last: float  # frames up to here are in announced packets (or it is the onset)
    ended: bool = False
    end: float = 0.0  # capture epoch of its last moving frame, once ended
    heard: float = 0.0  # wall clock of its latest note


class Flow(msgspec.Struct, kw_only=True):
    camera: str
    spans: list[Span] = []
    slots: list[Slot] = []
    done: list[str] = []
    lost: int = 0  # verdicts given up on (evidence_wait_s)
    progress: float = 0.0  # wall clock of the latest verdict (event or skip) of this camera
    ends: dict[str, float] = {}  # activities forgotten lately -> their end (alerts bound to them ask)

    # -- notes ---------------------------------------------------------------------------
    def note(self, n: ActivityNote, now: float) -> None:
        span = self._span(n.activity)
        if n.state == "start":
            # One activity at a time per camera: a new start means any other one is over (the
            # scheduler restarted, or the camera moved to another scheduler, mid-activity).
            for s in self.spans:
                if s.id != n.activity and not s.ended:
                    s.ended, s.end = True, s.last
            if span is None:
                self.spans.append(Span(id=n.activity, onset=n.onset_wall, last=n.onset_wall, heard=now))
            return
        if n.state == "packet":
            if span is None:
                span = Span(id=n.activity, onset=n.packet_start, last=n.packet_start)
                self.spans.append(span)
            span.last, span.heard = max(span.last, n.wall), now
            if n.packet_id not in self.done and not any(s.packet == n.packet_id for s in self.slots):
                self.slots.append(Slot(packet=n.packet_id, activity=n.activity, start=n.packet_start, end=n.wall,
                                       noted=now))
            return
        if n.state == "end" and span is not None:
            span.ended, span.end, span.heard = True, max(n.wall, span.onset), now

    def _span(self, activity: str) -> Span | None:
        return next((s for s in self.spans if s.id == activity), None)

    # -- verdicts ---------------------------------------------------------------------------
    def arrive(self, packet: str, entry: str, now: float) -> Literal["now", "held", "repeat"]:
        """An event for `packet`: `now` if it is no packet of an announced activity (apply it
        at once), `held` if it waits for its turn, `repeat` if it was applied already."""
        if packet in self.done:
            return "repeat"
        self.progress = max(self.progress, now)
        for s in self.slots:
            if s.packet == packet:
                if s.entry:
                    return "repeat"
                s.entry, s.arrived = entry, now
                return "held"
        self._mark_done(packet)
        return "now"

    def skip(self, packet: str, now: float) -> None:
        self.progress = max(self.progress, now)
        for s in self.slots:
            if s.packet == packet:
                s.skipped = True
                return
        self._mark_done(packet)  # a note that comes later for it is not waited for

    def ready(self, now: float, wait_s: float, activity_timeout_s: float) -> tuple[list[Slot], int]:
        """Leading slots whose turn has come, in capture order: those with an event (`entry`:
        apply it), skipped ones and ones given up (no `entry`: their time is unknown, not
        quiet). Returns them and how many were given up.

        A verdict is given up on when a later packet's verdict has waited behind it for
        `wait_s`, or when no verdict at all came for this camera for `wait_s` since it was
        announced. A slow replay whose verdicts keep coming in order loses nothing."""
        out: list[Slot] = []
        lost = 0
        while self.slots:
            s = self.slots[0]
            if not s.entry and not s.skipped:
                behind = [x.arrived for x in self.slots[1:] if x.entry]
                stuck = (bool(behind) and now - min(behind) > wait_s) or now - max(s.noted, self.progress) > wait_s
                if not stuck:
                    break
                lost += 1
            out.append(s)
            self.slots.pop(0)
            self._mark_done(s.packet)
        for sp in self.spans:
            if not sp.ended and now - sp.heard > activity_timeout_s:
                sp.ended, sp.end = True, sp.last  # nothing heard for long: its scheduler is gone
        self.lost += lost
        self.prune()
        return out, lost

    def prune(self) -> None:
        """Activities that ended and have no packet left to wait for are forgotten (their end
        is kept a while for the alerts bound to them)."""
        waiting = {s.activity for s in self.slots}
        keep = []
        for s in self.spans:
            if not s.ended or s.id in waiting:
                keep.append(s)
            else:
                self.ends[s.id] = s.end
        self.spans = keep
        if len(self.ends) > ENDS_KEPT:
            self.ends = dict(list(self.ends.items())[-ENDS_KEPT:])

    def activity(self, activity: str) -> tuple[bool, bool, float | None]:
        """(ended, verdicts still to come, its end's capture time if known) of one activity."""
        span = self._span(activity)
        pending = any(s.activity == activity for s in self.slots)
        if span is not None:
            return span.ended, pending, span.end if span.ended else None
        if activity in self.ends:
            return True, pending, self.ends[activity]
        return True, pending, None  # long forgotten: over

    def _mark_done(self, packet: str) -> None:
        self.done = (self.done + [packet])[-DONE_KEPT:]

    # -- what is known ----------------------------------------------------------------------
    def frontier(self) -> float:
        """Capture epoch up to which every piece of evidence of this camera has been applied
        (+inf: nothing is going on and nothing awaits its verdict)."""
        edge = math.inf
        if self.slots:
            edge = self.slots[0].start
        for s in self.spans:
            if not s.ended:
                edge = min(edge, s.last)
        return edge

    def busy(self) -> bool:
        return bool(self.slots) or any(not s.ended for s in self.spans)

    def idle(self) -> bool:
        return not self.slots and not self.spans
