"""Compare-and-set leases in Redis: a key holding its owner's id with a PX TTL.

Shared by the stages that need one owner at a time (ingest: one worker per camera; alerts:
one lifecycle leader). The scripts make renew and release safe against an owner that lost
its lease while paused (GC, a stalled host) and came back.
"""

from __future__ import annotations

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

HELD, TAKEN, LOST = 1, 2, 0


class LeaseScripts:
    def __init__(self, bus: Bus) -> None:
        self._renew = bus.r.register_script(_RENEW)
        self._release = bus.r.register_script(_RELEASE)

    async def renew(self, key: str, owner: str, ttl_ms: int) -> int:
        """HELD, TAKEN (it was free) or LOST (another owner has it)."""
        return int(await self._renew(keys=[key], args=[owner, ttl_ms]))

    async def release(self, key: str, owner: str) -> bool:
        return bool(await self._release(keys=[key], args=[owner]))
