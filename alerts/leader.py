"""A renewable lease that lets exactly one alerts process do an ordered job at a time.

Fan-out from the `alerts` stream must keep each alert's changes in order; two processes
reading one consumer group would split them and could enqueue them out of order. The
job is cheap, so one process does it and another takes over when the lease lapses."""

from __future__ import annotations

from bus.connection import Bus

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 2 end
return 0
"""
_RESIGN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Leader:
    def __init__(self, bus: Bus, role: str, me: str, ttl_s: float = 5.0) -> None:
        self.key = bus.keys.leader(role)
        self.me = me
        self.ttl_ms = int(ttl_s * 1000)
        self._renew = bus.r.register_script(_RENEW)
        self._resign = bus.r.register_script(_RESIGN)

    async def hold(self) -> int:
        """0: another process leads; 1: still ours; 2: just became ours (take over its backlog)."""
        return int(await self._renew(keys=[self.key], args=[self.me, self.ttl_ms]))

    async def resign(self) -> None:
        await self._resign(keys=[self.key], args=[self.me])
