"""Compare-and-set leases in Redis: a key holding its owner's id with a PX TTL.

Shared by the stages that need one owner at a time (ingest: one worker per camera; scheduler:
one process per camera; alerts: one lifecycle leader). The scripts make renew and release
safe against an owner that lost its lease while paused (GC, a stalled host) and came back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from bus.connection import Bus

# 1: still ours (renewed); 2: it had lapsed and is ours now; 0: someone else holds it.
_RENEW = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]); return 1 end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]); return 2 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Writes KEYS[2..] = ARGV[2..] only while KEYS[1] (the lease) is held by ARGV[1], so an owner
# that lost its lease while paused cannot overwrite what the new owner keeps.
_SET_IF_OWNER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #KEYS do redis.call('SET', KEYS[i], ARGV[i]) end
return 1
"""

HELD, TAKEN, LOST = 1, 2, 0


class LeaseScripts:
    def __init__(self, bus: Bus) -> None:
        self._renew = bus.r.register_script(_RENEW)
        self._release = bus.r.register_script(_RELEASE)
        self._set_if_owner = bus.r.register_script(_SET_IF_OWNER)

    async def renew(self, key: str, owner: str, ttl_ms: int) -> int:
        """HELD, TAKEN (it was free) or LOST (another owner has it)."""
        return int(await self._renew(keys=[key], args=[owner, ttl_ms]))

    async def release(self, key: str, owner: str) -> bool:
        return bool(await self._release(keys=[key], args=[owner]))

    async def set_if_owner(self, key: str, owner: str, values: dict[str, bytes | str]) -> bool:
        """SET every key of `values` if `owner` still holds the lease `key`."""
        return bool(await self._set_if_owner(keys=[key, *values], args=[owner, *values.values()]))


class LeaseSet:
    """One owner per item (camera) among several workers, plus a membership set so that each
    worker can take a fair share.

    A lease is a key holding the owner's worker id with a PX TTL, renewed every poll. Keys
    live ttl - poll: another worker notices an expired lease only at its next poll, so a dead
    worker's items are taken over within ttl of its death."""

    def __init__(self, bus: Bus, worker: str, ttl_s: float, poll_s: float, *, lease_key: Callable[[str], str],
                 members_key: str) -> None:
        self.bus = bus
        self.worker = worker
        self.ttl_s = ttl_s
        self.ttl_ms = int(max(ttl_s - poll_s, ttl_s / 2) * 1000)
        self.key = lease_key
        self.members_key = members_key
        self.scripts = LeaseScripts(bus)

    async def acquire(self, item: str) -> bool:
        """Take a free lease (or keep one this worker already holds, e.g. after a restart of
        its stage in the same process)."""
        return await self.scripts.renew(self.key(item), self.worker, self.ttl_ms) != LOST

    async def renew(self, items: list[str]) -> set[str]:
        """Renew every lease we hold; returns the items whose lease another worker now has."""
        lost: set[str] = set()
        for item in items:
            if await self.scripts.renew(self.key(item), self.worker, self.ttl_ms) == LOST:
                lost.add(item)
        return lost

    async def release(self, item: str) -> None:
        await self.scripts.release(self.key(item), self.worker)

    async def owner(self, item: str) -> str | None:
        raw = await self.bus.r.get(self.key(item))
        return raw.decode() if raw else None

    async def set_if_owner(self, item: str, values: dict[str, bytes | str]) -> bool:
        return await self.scripts.set_if_owner(self.key(item), self.worker, values)

    async def heartbeat(self) -> int:
        """Announce this worker until now + ttl; returns how many workers are alive."""
        now = time.time()
        pipe = self.bus.r.pipeline(transaction=False)
        pipe.zadd(self.members_key, {self.worker: now + self.ttl_ms / 1000})  # gone when its leases are
        pipe.zremrangebyscore(self.members_key, "-inf", now)
        pipe.zcard(self.members_key)
        return max(1, int((await pipe.execute())[-1]))

    async def leave(self) -> None:
        await self.bus.r.zrem(self.members_key, self.worker)


def fair_share(items: int, workers: int, cap: int = 0) -> int:
    share = math.ceil(items / max(1, workers)) if items else 0
    return min(share, cap) if cap else share
