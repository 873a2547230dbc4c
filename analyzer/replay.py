"""Replay: run one rule over stored packets of a time range and record what it would have
matched. Jobs arrive on `replay:jobs` (consumer group `replayers`); results and progress go to
per-job keys that the web stage reads. Uses the worker's backend, so it obeys its limits."""

from __future__ import annotations

import asyncio
import logging
import time

from analyzer.backends.base import Backend
from analyzer.events import frame_url
from bus import messages
from bus.connection import Bus
from bus.messages import EventFrame, Packet, ReplayJob, ReplayResult, utc
from bus.registry import Registry

log = logging.getLogger("vigil.analyzer")
RESULT_TTL_S = 3600
SCAN_CAP = 5000  # packets one job may look at


class ReplayWorker:
    def __init__(self, bus: Bus, backend: Backend, consumer: str) -> None:
        self.bus = bus
        self.backend = backend
        self.consumer = consumer
        self.registry = Registry(bus)

    async def run(self, stop: asyncio.Event) -> None:
        k = self.bus.keys
        await self.bus.ensure_group(k.replay_jobs, k.REPLAYERS, start="$")
        while not stop.is_set():
            rows = await self.bus.read_group(k.replay_jobs, k.REPLAYERS, self.consumer, ReplayJob, count=1,
                                             block_ms=500)
            for entry_id, job in rows:
                if job is not None:
                    try:
                        await self.run_job(job)
                    except Exception as exc:  # a failed job is reported, never retried forever
                        log.exception("replay %s failed", job.id)
                        await self._state(job.id, state="error", error=f"{type(exc).__name__}: {exc}"[:500])
                await self.bus.ack(k.replay_jobs, k.REPLAYERS, entry_id)

    async def run_job(self, job: ReplayJob) -> None:
        k = self.bus.keys
        await self._state(job.id, state="running", scanned=0)
        contexts = {c.id: c.context for c in (await self.registry.cameras()).values()}
        packets: list[Packet] = []
        start, end = str(int(job.since * 1000)), str(int(job.until * 1000))
        for _, p in await self.bus.range(k.packets, Packet, start=start, end=end, count=SCAN_CAP):
            if job.camera is None or p.camera == job.camera:
                packets.append(p)
        packets = packets[-job.limit:]
        scanned = 0
        step = max(1, self.backend.max_batch)
        for i in range(0, len(packets), step):
            batch = packets[i:i + step]
            analyses = await self.backend.analyze(batch, {p.camera: [job.rule] for p in batch}, contexts)
            pipe = self.bus.r.pipeline(transaction=False)
            for p, a in zip(batch, analyses):
                verdict = next((m for m in a.rules if m.rule == job.rule.id), None)
                result = ReplayResult(
                    packet_id=p.id, camera=p.camera, start=utc(p.frames[0].wall),
                    match=bool(verdict and verdict.match), confidence=verdict.confidence if verdict else 0.0,
                    evidence=verdict.evidence if verdict else f"no verdict ({a.status})", summary=a.summary,
                    frames=[EventFrame(ts=f.ts, temporal_id=f.temporal_id, url=frame_url(p.id, j))
                            for j, f in enumerate(p.frames)],
                )
                pipe.rpush(k.replay_results(job.id), messages.encode(result))
            pipe.expire(k.replay_results(job.id), RESULT_TTL_S)
            await pipe.execute()
            scanned += len(batch)
            await self._state(job.id, scanned=scanned)
        await self._state(job.id, state="done", scanned=scanned, finished=time.time())

    async def _state(self, job_id: str, **fields: object) -> None:
        key = self.bus.keys.replay_state(job_id)
        await self.bus.r.hset(key, mapping={f: str(v) for f, v in fields.items()})
        await self.bus.r.expire(key, RESULT_TTL_S)
