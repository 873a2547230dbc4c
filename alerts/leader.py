"""A renewable lease that lets exactly one alerts process do an ordered job at a time.

Fan-out from the `alerts` stream must keep each alert's changes in order; two processes
reading one consumer group would split them and could enqueue them out of order. The
job is cheap, so one process does it and another takes over when the lease lapses."""

from __future__ import annotations

from bus.connection import Bus
from bus.lease import LeaseScripts


class Leader:
    def __init__(self, bus: Bus, role: str, me: str, ttl_s: float = 5.0) -> None:
        self.key = bus.keys.leader(role)
        self.me = me
        self.ttl_ms = int(ttl_s * 1000)
        self._scripts = LeaseScripts(bus)

    async def hold(self) -> int:
        """0: another process leads; 1: still ours; 2: just became ours (take over its backlog)."""
        return await self._scripts.renew(self.key, self.me, self.ttl_ms)

    async def resign(self) -> None:
        await self._scripts.release(self.key, self.me)
