"""Camera leases in Redis: one ingest worker owns a camera; a dead worker's leases expire.

A lease is a plain key holding the owner's worker id with a PX TTL. The owner renews it every
poll; compare-and-set scripts make renew and release safe against a worker that lost its
lease while paused (GC, a stalled host) and came back.
"""

from __future__ import annotations

import math
import time

from bus.connection import Bus
from bus.lease import LOST, LeaseScripts

class Leases:
    def __init__(self, bus: Bus, worker: str, ttl_s: float, poll_s: float = 1.0) -> None:
        self.bus = bus
        self.worker = worker
        self.ttl_s = ttl_s
        # Keys live ttl - poll: another worker notices an expired lease only at its next
        # poll, so a dead worker's cameras are taken over within ttl of its death.
        self.ttl_ms = int(max(ttl_s - poll_s, ttl_s / 2) * 1000)
        self._scripts = LeaseScripts(bus)

    async def acquire(self, camera: str) -> bool:
        return bool(await self.bus.r.set(self.bus.keys.ingest_lease(camera), self.worker, nx=True, px=self.ttl_ms))

    async def renew(self, cameras: list[str]) -> set[str]:
        """Renew every lease we hold; returns the cameras whose lease another worker now has."""
        lost: set[str] = set()
        for cam in cameras:
            if await self._scripts.renew(self.bus.keys.ingest_lease(cam), self.worker, self.ttl_ms) == LOST:
                lost.add(cam)
        return lost

    async def release(self, camera: str) -> None:
        await self._scripts.release(self.bus.keys.ingest_lease(camera), self.worker)

    async def owner(self, camera: str) -> str | None:
        raw = await self.bus.r.get(self.bus.keys.ingest_lease(camera))
        return raw.decode() if raw else None

    # -- worker membership (for fair shares) ----------------------------------------------
    async def heartbeat(self) -> int:
        """Announce this worker until now + ttl; returns how many workers are alive."""
        now = time.time()
        key = self.bus.keys.ingest_workers
        pipe = self.bus.r.pipeline(transaction=False)
        pipe.zadd(key, {self.worker: now + self.ttl_ms / 1000})  # gone when its leases are
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zcard(key)
        return max(1, int((await pipe.execute())[-1]))

    async def leave(self) -> None:
        await self.bus.r.zrem(self.bus.keys.ingest_workers, self.worker)


def fair_share(cameras: int, workers: int, cap: int = 0) -> int:
    share = math.ceil(cameras / max(1, workers)) if cameras else 0
    return min(share, cap) if cap else share
