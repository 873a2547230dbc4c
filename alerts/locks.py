"""A short Redis lock per rule and scope, so several alerts processes (and the event,
onset and tick loops of one process) never interleave a read-modify-write of one alert."""

from __future__ import annotations

import asyncio
import secrets
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

from bus.connection import Bus

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LockTimeout(RuntimeError):
    pass


class ScopeLocks:
    def __init__(self, bus: Bus, ttl_s: float = 10.0, wait_s: float = 30.0) -> None:
        self.bus = bus
        self.ttl_ms = int(ttl_s * 1000)
        self.wait_s = wait_s
        self._release = bus.r.register_script(_RELEASE)
        # Loops of this process queue on a local lock first (no polling among themselves); the
        # Redis lock then keeps other processes out.
        self._local: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        local = self._local.setdefault(key, asyncio.Lock())
        async with local:
            async with self._redis(key):
                yield

    @asynccontextmanager
    async def _redis(self, key: str) -> AsyncIterator[None]:
        token = secrets.token_hex(8)
        deadline = time.monotonic() + self.wait_s
        delay = 0.001
        # The TTL frees the lock of a crashed holder; work under the lock is a few Redis calls.
        while not await self.bus.r.set(key, token, nx=True, px=self.ttl_ms):
            if time.monotonic() > deadline:
                raise LockTimeout(f"could not lock {key} in {self.wait_s:.0f}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
        try:
            yield
        finally:
            await self._release(keys=[key], args=[token])
