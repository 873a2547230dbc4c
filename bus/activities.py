"""The `activities` stream: the scheduler writes ActivityNotes, the alerts stage reads them,
the web API serves an activity's onset frame (the snapshot of an alert opened at onset,
available before the onset packet exists)."""

from __future__ import annotations

from bus.connection import Bus
from bus.messages import ActivityNote


class ActivityStore:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def publish(self, note: ActivityNote, *, retention_s: int, minid: str | None = None) -> str:
        k = self.bus.keys
        entry = await self.bus.publish(k.activities, note, minid=minid)
        if note.state == "start":
            await self.bus.r.set(k.activity_ref(note.activity), entry, ex=retention_s)
        return entry

    async def start(self, activity: str) -> ActivityNote | None:
        ref = await self.bus.r.get(self.bus.keys.activity_ref(activity))
        if ref is None:
            return None
        rows = await self.bus.range(self.bus.keys.activities, ActivityNote, start=ref.decode(), end=ref.decode())
        return rows[0][1] if rows else None

    async def onset_frame(self, activity: str) -> bytes | None:
        note = await self.start(activity)
        return note.jpeg if note is not None and note.jpeg else None


def onset_frame_path(activity: str) -> str:
    """The web API's path of an activity's onset frame."""
    return f"/api/activities/{activity}/onset.jpg"
