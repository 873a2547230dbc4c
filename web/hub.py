"""One reader per web process fans events and alerts out to every websocket client.

A blocking XREAD per client would hold one Redis connection each and multiply the reads;
the hub reads once and hands entries to bounded per-client queues. A client whose queue
fills (it cannot keep up) is told so and dropped, so it never slows the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bus.connection import Bus
from bus.messages import PublicMessage

log = logging.getLogger("vigil.web")
Item = tuple[str, str, PublicMessage]  # stream, entry id, message


class Subscriber:
    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=maxsize)
        self.overflowed = asyncio.Event()

    def offer(self, item: Item) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed.set()


class Hub:
    def __init__(self, bus: Bus, *, queue_size: int = 1000) -> None:
        self.bus = bus
        self.queue_size = queue_size
        self.subscribers: set[Subscriber] = set()
        self._task: asyncio.Task | None = None

    @property
    def streams(self) -> list[str]:
        return [self.bus.keys.events, self.bus.keys.alerts]

    def subscribe(self) -> Subscriber:
        sub = Subscriber(self.queue_size)
        self.subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="ws-hub")
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    async def _run(self) -> None:
        cursors = {}
        for stream in self.streams:
            last = await self.bus.r.xrevrange(stream, count=1)
            cursors[stream] = last[0][0].decode() if last else "0-0"
        while self.subscribers:
            try:
                rows = await self.bus.read(cursors, PublicMessage, count=200, block_ms=1000)
            except Exception as exc:  # Redis away: keep trying, clients stay connected
                log.warning("live hub read failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            for stream, entry_id, msg in rows:
                cursors[stream] = entry_id
                for sub in list(self.subscribers):
                    sub.offer((stream, entry_id, msg))

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
