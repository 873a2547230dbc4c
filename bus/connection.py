"""The Bus: one Redis connection plus the stream operations every stage uses."""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from typing import AsyncIterator, TypeVar

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from bus import messages
from bus.names import Keys
from bus.server import EmbeddedRedis
from bus.urls import redact_url  # noqa: F401 - re-exported: stages import it from here

log = logging.getLogger("vigil.bus")
T = TypeVar("T")
FIELD = b"m"  # every stream entry holds one msgpack message under this field

# Writes a stream entry only if its marker key is new, atomically: a packet analysed twice
# (after a crash and XAUTOCLAIM) still yields one event. The marker keeps the entry id, so
# it doubles as the lookup from an item id to its stream entry.
_ADD_ONCE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local args = {KEYS[1]}
if ARGV[2] ~= '' then table.insert(args, 'MAXLEN'); table.insert(args, '~'); table.insert(args, ARGV[2]) end
if ARGV[4] and ARGV[4] ~= '' then table.insert(args, 'MINID'); table.insert(args, '~'); table.insert(args, ARGV[4]) end
table.insert(args, '*'); table.insert(args, 'm'); table.insert(args, ARGV[1])
local id = redis.call('XADD', unpack(args))
redis.call('SET', KEYS[2], id, 'EX', ARGV[3])
return id
"""


def _sid(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Bus:
    def __init__(self, client: aioredis.Redis, keys: Keys | None = None, url: str = "") -> None:
        self.r = client
        self.keys = keys or Keys()
        self.url = url
        self._add_once = client.register_script(_ADD_ONCE)

    # -- plain streams -----------------------------------------------------------------
    async def publish(
        self, stream: str, msg: msgspec.Struct, *, maxlen: int | None = None, minid: str | None = None
    ) -> str:
        entry = await self.r.xadd(
            stream, {FIELD: messages.encode(msg)}, maxlen=maxlen, minid=minid, approximate=True
        )
        return _sid(entry)

    async def publish_many(
        self, stream: str, msgs: list[msgspec.Struct], *, maxlen: int | None = None
    ) -> list[str]:
        """XADD several messages in one round trip (MULTI/EXEC: all of them or none, so a
        retry after a lost connection never writes some twice)."""
        if len(msgs) == 1:
            return [await self.publish(stream, msgs[0], maxlen=maxlen)]
        pipe = self.r.pipeline(transaction=True)
        for msg in msgs:
            pipe.xadd(stream, {FIELD: messages.encode(msg)}, maxlen=maxlen, approximate=True)
        return [_sid(e) for e in await pipe.execute()]

    async def publish_once(
        self, stream: str, marker: str, msg: msgspec.Struct, *, ttl_s: int = 7 * 86400, maxlen: int | None = None,
        minid: str | None = None,
    ) -> str | None:
        """XADD unless `marker` was already set; returns the entry id, or None for a duplicate."""
        entry = await self._add_once(
            keys=[stream, marker], args=[messages.encode(msg), str(maxlen or ""), str(ttl_s), minid or ""]
        )
        return _sid(entry) if entry else None

    async def entry_of(self, marker: str) -> str | None:
        """The stream entry id a publish_once marker points at."""
        raw = await self.r.get(marker)
        return raw.decode() if raw and raw != b"1" else None

    async def read(
        self, cursors: dict[str, str], kind: type[T], *, count: int = 100, block_ms: int | None = 1000,
        keep_bad: bool = False, set_first: dict[str, str] | None = None,
    ) -> list[tuple[str, str, T]]:
        """XREAD from several streams; returns (stream, entry id, message) in stream order.
        With keep_bad, undecodable entries come back as None so a cursor can move past them.
        `set_first`: keys to SET in the same round trip, just before the read."""
        if not cursors:
            return []
        if set_first:
            pipe = self.r.pipeline(transaction=False)
            pipe.mset(set_first)
            pipe.xread(cursors, count=count, block=block_ms)
            reply = (await pipe.execute())[-1]
        else:
            reply = await self.r.xread(cursors, count=count, block=block_ms)
        return self._decode_reply(reply, kind, keep_bad=keep_bad)

    async def range(
        self, stream: str, kind: type[T], *, start: str = "-", end: str = "+", count: int | None = None,
        reverse: bool = False,
    ) -> list[tuple[str, T]]:
        if reverse:
            rows = await self.r.xrevrange(stream, max=end, min=start, count=count)
        else:
            rows = await self.r.xrange(stream, min=start, max=end, count=count)
        return [(_sid(i), messages.decode(f[FIELD], kind)) for i, f in rows if FIELD in f]

    # -- consumer groups -----------------------------------------------------------------
    async def ensure_group(self, stream: str, group: str, start: str = "0") -> None:
        try:
            await self.r.xgroup_create(stream, group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_group(
        self, stream: str, group: str, consumer: str, kind: type[T], *, count: int = 10, block_ms: int = 1000
    ) -> list[tuple[str, T | None]]:
        """New entries for this consumer. A message that fails to decode comes back as None."""
        reply = await self.r.xreadgroup(group, consumer, {stream: ">"}, count=count, block=block_ms)
        return [(i, m) for _, i, m in self._decode_reply(reply, kind, keep_bad=True)]

    async def ack(self, stream: str, group: str, *ids: str) -> int:
        return await self.r.xack(stream, group, *ids) if ids else 0

    async def autoclaim(
        self, stream: str, group: str, consumer: str, kind: type[T], *, min_idle_ms: int, count: int = 10
    ) -> list[tuple[str, T | None]]:
        """Take over entries another consumer left pending for `min_idle_ms` (a dead worker)."""
        reply = await self.r.xautoclaim(stream, group, consumer, min_idle_ms, start_id="0-0", count=count)
        rows = reply[1] if reply else []
        out: list[tuple[str, T | None]] = []
        for entry_id, fields in rows:
            out.append((_sid(entry_id), self._decode_fields(fields, kind)))
        return out

    async def group_info(self, stream: str, group: str) -> dict | None:
        try:
            groups = await self.r.xinfo_groups(stream)
        except ResponseError:
            return None
        for g in groups:
            if _sid(g["name"]) == group:
                return {k: (_sid(v) if isinstance(v, bytes) else v) for k, v in g.items()}
        return None

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def decode_entry(fields: dict | None, kind: type[T]) -> T | None:
        """One raw stream entry's message, or None if it is missing or undecodable."""
        return Bus._decode_fields(fields, kind)

    @staticmethod
    def _decode_fields(fields: dict | None, kind: type[T]) -> T | None:
        if not fields or FIELD not in fields:
            return None
        try:
            return messages.decode(fields[FIELD], kind)
        except msgspec.DecodeError as exc:
            log.warning("undecodable bus message skipped: %s", exc)
            return None

    def _decode_reply(self, reply: list, kind: type[T], keep_bad: bool = False) -> list:
        out = []
        for stream, rows in reply or []:
            for entry_id, fields in rows:
                msg = self._decode_fields(fields, kind)
                if msg is not None or keep_bad:
                    out.append((_sid(stream), _sid(entry_id), msg))
        return out

    async def close(self) -> None:
        await self.r.aclose()


@asynccontextmanager
async def open_bus(url: str | None = None, *, prefix: str = "vigil:", persist_dir: str | None = None) -> AsyncIterator[Bus]:
    """Connect to `url`, else REDIS_URL, else start an embedded redis-server for the duration."""
    url = url or os.environ.get("REDIS_URL") or None
    embedded: EmbeddedRedis | None = None
    if url is None:
        embedded = EmbeddedRedis(data_dir=persist_dir, persist=persist_dir is not None)
        url = embedded.start()
    # Blocking reads each hold a connection: leave room for every stage and the web's clients.
    # At the cap a caller waits for a free connection (up to 20 s) instead of failing: a flood
    # of requests to one stage must slow it, not raise in every other stage of the process.
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=512, timeout=20, health_check_interval=15)
    client = aioredis.Redis.from_pool(pool)  # owns the pool: closing the client closes its connections
    bus = Bus(client, Keys(prefix), url)
    try:
        await client.ping()
        yield bus
    finally:
        await bus.close()
        if embedded:
            embedded.stop()
