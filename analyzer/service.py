"""The analyzer stage: a worker on the `packets` consumer group.

At-least-once: a packet is acked only after its event is in the `events` stream; packets
left pending by a dead worker are reclaimed with XAUTOCLAIM after the visibility timeout;
event ids derive from packet ids and are written once, so a retry never duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from analyzer.backends import Backend
from analyzer.backends.base import Analysis
from analyzer.events import build_event, event_id
from analyzer.settings import AnalyzerSettings
from bus.connection import Bus
from bus.messages import Packet

log = logging.getLogger("vigil.analyzer")


class AnalyzerService:
    def __init__(self, bus: Bus, settings: AnalyzerSettings, backend: Backend, consumer: str | None = None) -> None:
        self.bus = bus
        self.s = settings
        self.backend = backend
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._slots = asyncio.Semaphore(backend.concurrency)
        self._tasks: set[asyncio.Task] = set()
        self.done = 0
        self.skipped_stale = 0
        self.failures = 0

    async def run(self, stop: asyncio.Event) -> None:
        stream, group = self.bus.keys.packets, self.bus.keys.ANALYZERS
        await self.bus.ensure_group(stream, group, start="0")
        await self.backend.start()
        last_claim = 0.0
        try:
            while not stop.is_set():
                await self._slots.acquire()  # read only as much as we can work on
                self._slots.release()
                free = max(1, self._free())
                rows: list = []
                if time.monotonic() - last_claim > min(5.0, self.s.visibility_timeout_s / 2):
                    last_claim = time.monotonic()
                    rows = await self.bus.autoclaim(
                        stream, group, self.consumer, Packet,
                        min_idle_ms=int(self.s.visibility_timeout_s * 1000), count=free,
                    )
                    if rows:
                        log.info("reclaimed %d packet(s) from a dead worker", len(rows))
                if not rows:
                    rows = await self.bus.read_group(stream, group, self.consumer, Packet, count=free, block_ms=500)
                for entry_id, packet in rows:
                    if packet is None:
                        log.warning("packet %s undecodable; acked and dropped", entry_id)
                        await self.bus.ack(stream, group, entry_id)
                        continue
                    await self._slots.acquire()
                    task = asyncio.create_task(self._handle(entry_id, packet))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.backend.close()

    def _free(self) -> int:
        return self._slots._value  # noqa: SLF001 - asyncio exposes no public accessor

    async def _handle(self, entry_id: str, packet: Packet) -> None:
        stream, group = self.bus.keys.packets, self.bus.keys.ANALYZERS
        try:
            age = time.time() - packet.frames[-1].wall
            if age > self.s.stale_after_s:
                self.skipped_stale += 1
                log.warning("packet %s skipped: %.1fs old (stale_after_s=%.0f)", packet.id, age, self.s.stale_after_s)
                await self.bus.ack(stream, group, entry_id)
                return
            t0 = time.perf_counter()
            try:
                analysis = (await self.backend.analyze([packet]))[0]
            except Exception as exc:  # the packet is never lost: it becomes an error event
                self.failures += 1
                log.exception("backend %s failed on %s", self.backend.name, packet.id)
                analysis = Analysis(summary="analysis failed", labels=[], status="error", raw=f"{type(exc).__name__}: {exc}")
            latency = (time.perf_counter() - t0) * 1000
            event = build_event(packet, analysis, backend=self.backend.name, model=self.backend.model, latency_ms=latency)
            await self.bus.publish_once(self.bus.keys.events, self.bus.keys.once("event", event.id), event)
            await self.bus.ack(stream, group, entry_id)
            self.done += 1
        except Exception:
            # Left pending: another worker (or this one) reclaims it after the visibility timeout.
            log.exception("packet %s not acked", packet.id)
        finally:
            self._slots.release()


__all__ = ["AnalyzerService", "event_id"]
