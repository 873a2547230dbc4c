"""Webhook endpoints and the durable delivery queue, shared by the alerts stage (which
enqueues and sends) and the web API (which lists and replays).

Layout (names in bus/names.py): one hash per delivery; a sorted set of due times holding
only the head of each chain; one list per (endpoint, alert) chain so changes of one alert
reach one endpoint in order; a dead-letter list. Every state change is one Lua script, so
several senders (processes) can share the queue, and a restart loses nothing: a claimed
delivery whose sender died becomes due again when its lease runs out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from bus import messages
from bus.connection import Bus
from bus.messages import WebhookEndpoint

_ENQUEUE = """
-- KEYS: delivery hash, chain, due, index, wake ; ARGV: id endpoint event order body now
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'endpoint', ARGV[2], 'event', ARGV[3], 'order', ARGV[4],
  'body', ARGV[5], 'status', 'pending', 'attempts', 0, 'created', ARGV[6], 'updated', ARGV[6], 'due', ARGV[6])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
if redis.call('RPUSH', KEYS[2], ARGV[1]) == 1 then redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1]) end
redis.call('LPUSH', KEYS[5], '1')
redis.call('LTRIM', KEYS[5], 0, 0)
return 1
"""

_CLAIM = """
-- KEYS: due ; ARGV: now lease_until count prefix
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  local h = ARGV[4] .. 'wh:dlv:' .. id
  if redis.call('EXISTS', h) == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    local n = redis.call('HINCRBY', h, 'attempts', 1)
    redis.call('HSET', h, 'status', 'delivering', 'updated', ARGV[1], 'due', ARGV[2])
    table.insert(out, id)
    table.insert(out, n)
  end
end
return out
"""

_COMPLETE = """
-- KEYS: delivery hash, due, dead, wake ; ARGV: id outcome attempt now next_due error code prefix ttl
redis.call('LPUSH', KEYS[4], '1')  -- the next due time may have changed: idle senders look again
redis.call('LTRIM', KEYS[4], 0, 0)
if redis.call('HGET', KEYS[1], 'status') ~= 'delivering' or redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[3] then
  return 0  -- a stale sender (its lease ran out and another took over)
end
redis.call('HSET', KEYS[1], 'updated', ARGV[4], 'last_error', ARGV[6], 'last_code', ARGV[7])
if ARGV[2] == 'retry' then
  redis.call('HSET', KEYS[1], 'status', 'pending', 'due', ARGV[5])
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
  return 1
end
local chain = ARGV[8] .. 'wh:chain:' .. redis.call('HGET', KEYS[1], 'endpoint') .. ':' .. redis.call('HGET', KEYS[1], 'order')
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[2] == 'delivered' then
  redis.call('HSET', KEYS[1], 'status', 'delivered', 'delivered_at', ARGV[4], 'due', '')
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[9]))
  redis.call('LREM', chain, 1, ARGV[1])
  local nxt = redis.call('LINDEX', chain, 0)
  if nxt then redis.call('ZADD', KEYS[2], ARGV[4], nxt) end
  return 1
end
-- dead: it and everything queued behind it for this alert and endpoint, in order, so a
-- replay delivers them in order too.
local rest = redis.call('LRANGE', chain, 0, -1)
redis.call('HSET', KEYS[1], 'status', 'dead', 'due', '')
redis.call('RPUSH', KEYS[3], ARGV[1])
for _, id in ipairs(rest) do
  if id ~= ARGV[1] then
    local h = ARGV[8] .. 'wh:dlv:' .. id
    redis.call('HSET', h, 'status', 'dead', 'due', '', 'updated', ARGV[4], 'last_error', 'queued behind a dead letter')
    redis.call('ZREM', KEYS[2], id)
    redis.call('RPUSH', KEYS[3], id)
  end
end
redis.call('DEL', chain)
return 1
"""

_REPLAY = """
-- KEYS: dead, due, wake ; ARGV: now prefix id...  (no ids: every dead letter)
local ids = {}
if #ARGV > 2 then
  local want = {}
  for i = 3, #ARGV do want[ARGV[i]] = true end
  for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do if want[id] then table.insert(ids, id) end end
else
  ids = redis.call('LRANGE', KEYS[1], 0, -1)
end
local n = 0
for _, id in ipairs(ids) do
  redis.call('LREM', KEYS[1], 1, id)
  local h = ARGV[2] .. 'wh:dlv:' .. id
  if redis.call('EXISTS', h) == 1 then
    redis.call('HSET', h, 'status', 'pending', 'attempts', 0, 'due', ARGV[1], 'updated', ARGV[1], 'last_error', 'replayed')
    local chain = ARGV[2] .. 'wh:chain:' .. redis.call('HGET', h, 'endpoint') .. ':' .. redis.call('HGET', h, 'order')
    if redis.call('RPUSH', chain, id) == 1 then redis.call('ZADD', KEYS[2], ARGV[1], id) end
    n = n + 1
  end
end
redis.call('LPUSH', KEYS[3], '1')
redis.call('LTRIM', KEYS[3], 0, 0)
return n
"""

# --------------------------------------------------------------------------- SSRF (static part)
class TargetRefused(ValueError):
    pass

def blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None:
            return blocked(embedded)
        if ip.sixtofour is not None or ip.teredo is not None or ip.is_site_local or any(ip in n for n in _V6_RELAYED):
            # 6to4 (2002::/16), Teredo (2001::/32) and NAT64 reach IPv4 hosts through relays:
            # deprecated or tunnels, never a webhook receiver's address. fec0::/10: site-local.
            return True
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT))


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside a mapped (::ffff:a.b.c.d) or compatible (::a.b.c.d) one."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip in _V4_COMPATIBLE and int(ip) > 1:  # ::/96 beyond :: and ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


_V4_COMPATIBLE = ipaddress.ip_network("::/96")
_V6_RELAYED = ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")

def check_url(url: str, allow_private: bool) -> None:
    """Static checks, at registration: scheme, host, no credentials, literal private IPs."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"invalid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("only http and https URLs are allowed")
    if not parts.hostname:
        raise TargetRefused("the URL has no host")
    if parts.username or parts.password:
        raise TargetRefused("credentials in the URL are not allowed; the secret signs requests")
    del port
    try:
        ip = ipaddress.ip_address(parts.hostname)
    except ValueError:
        if parts.hostname.lower() in ("localhost", "localhost.localdomain") and not allow_private:
            raise TargetRefused("localhost is refused unless allow_private is set") from None
        return
    if blocked(ip) and not allow_private:
        raise TargetRefused(f"{ip} is a private/loopback/link-local address; set allow_private to allow it")


SECRET_PREFIX = "whsec_"  # Standard Webhooks: base64 of the key bytes after this prefix
MIN_KEY_BYTES = 24  # the standard's minimum for whsec_ keys (192 bits)


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: base64-decoded after `whsec_`, else the text's UTF-8 bytes
    (secrets from before Standard Webhooks stay valid; receivers pass them as bytes)."""
    if secret.startswith(SECRET_PREFIX):
        raw = secret[len(SECRET_PREFIX):]
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    return secret.encode()


def secret_problem(secret: str) -> str | None:
    """Why a secret cannot sign (never repeating it), or None."""
    if secret.startswith(SECRET_PREFIX):
        try:
            key = signing_key(secret)
        except (ValueError, binascii.Error):
            return "a whsec_ secret must be base64 after the prefix"
        if len(key) < MIN_KEY_BYTES:
            return f"a whsec_ secret must hold at least {MIN_KEY_BYTES} bytes"
    return None


Outcome = Literal["delivered", "retry", "dead"]
_PUBLIC = ("id", "endpoint", "event", "order", "status", "attempts", "created", "updated", "due", "delivered_at",
           "last_error", "last_code")


@dataclass(slots=True)
class Delivery:
    id: str
    endpoint: str
    event: str
    order: str  # the alert id (or event id): deliveries with one order key go out in order
    body: bytes
    attempt: int  # this try's number, from 1


def delivery_id(endpoint: str, source: str) -> str:
    """Deterministic, so re-enqueueing the same alert change for the same endpoint is a no-op;
    it is the `Vigil-Delivery` idempotency key, stable across every retry and replay."""
    return "dlv_" + hashlib.sha256(f"{endpoint}|{source}".encode()).hexdigest()[:32]


def _s(v: bytes | str | None) -> str:
    return v.decode() if isinstance(v, bytes) else (v or "")


class WebhookStore:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.k = bus.keys
        r = bus.r
        self._enqueue = r.register_script(_ENQUEUE)
        self._claim = r.register_script(_CLAIM)
        self._complete = r.register_script(_COMPLETE)
        self._replay = r.register_script(_REPLAY)

    # -- endpoints ---------------------------------------------------------------------
    async def put_endpoint(self, ep: WebhookEndpoint) -> None:
        await self.bus.r.hset(self.k.webhooks, ep.id, messages.encode(ep))

    async def endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        raw = await self.bus.r.hget(self.k.webhooks, endpoint_id)
        return messages.decode(raw, WebhookEndpoint) if raw else None

    async def remove_endpoint(self, endpoint_id: str) -> bool:
        return bool(await self.bus.r.hdel(self.k.webhooks, endpoint_id))

    async def endpoints(self) -> dict[str, WebhookEndpoint]:
        out = {}
        for k, raw in (await self.bus.r.hgetall(self.k.webhooks)).items():
            try:
                out[_s(k)] = messages.decode(raw, WebhookEndpoint)
            except msgspec.DecodeError:
                continue
        return out

    # -- the queue -----------------------------------------------------------------------
    async def enqueue(self, endpoint: str, event: str, order: str, body: bytes, dlv_id: str,
                      now: float | None = None) -> bool:
        """False when this delivery id was already enqueued (a re-processed alert change)."""
        k = self.k
        return bool(await self._enqueue(
            keys=[k.delivery(dlv_id), k.delivery_chain(endpoint, order), k.deliveries_due, k.deliveries_index,
                  k.deliveries_wake],
            args=[dlv_id, endpoint, event, order, body, repr(now or time.time())],
        ))

    async def claim(self, count: int, lease_s: float, now: float | None = None) -> list[Delivery]:
        now = now or time.time()
        flat = await self._claim(keys=[self.k.deliveries_due],
                                 args=[repr(now), repr(now + lease_s), count, self.k.prefix])
        out: list[Delivery] = []
        pairs = [(_s(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]
        if not pairs:
            return out
        pipe = self.bus.r.pipeline(transaction=False)
        for dlv_id, _ in pairs:
            pipe.hmget(self.k.delivery(dlv_id), "endpoint", "event", "order", "body")
        for (dlv_id, attempt), (ep, ev, order, body) in zip(pairs, await pipe.execute()):
            out.append(Delivery(dlv_id, _s(ep), _s(ev), _s(order), body or b"", attempt))
        return out

    async def complete(self, d: Delivery, outcome: Outcome, *, next_due: float = 0.0, error: str = "",
                       code: int | None = None, retention_s: int = 7 * 86400) -> bool:
        k = self.k
        return bool(await self._complete(
            keys=[k.delivery(d.id), k.deliveries_due, k.dead_letters, k.deliveries_wake],
            args=[d.id, outcome, d.attempt, repr(time.time()), repr(next_due), error[:300],
                  "" if code is None else str(code), k.prefix, retention_s],
        ))

    async def replay(self, ids: list[str] | None = None) -> int:
        """Dead letters (all, or these ids) go back to the queue, in their original order,
        with their attempts reset and the same delivery ids."""
        k = self.k
        return int(await self._replay(keys=[k.dead_letters, k.deliveries_due, k.deliveries_wake],
                                      args=[repr(time.time()), k.prefix, *(ids or [])]))

    async def next_due(self) -> float | None:
        rows = await self.bus.r.zrange(self.k.deliveries_due, 0, 0, withscores=True)
        return float(rows[0][1]) if rows else None

    async def wait_for_work(self, timeout_s: float) -> None:
        """Sleep until something is enqueued or replayed (any process), or the timeout."""
        await self.bus.r.blpop([self.k.deliveries_wake], timeout=max(0.01, timeout_s))

    # -- listing -------------------------------------------------------------------------
    async def get(self, dlv_id: str, *, body: bool = False) -> dict | None:
        raw = await self.bus.r.hgetall(self.k.delivery(dlv_id))
        return self._public(raw, body) if raw else None

    async def deliveries(self, *, limit: int = 50, status: str | None = None, endpoint: str | None = None) -> list[dict]:
        out: list[dict] = []
        start = 0
        while len(out) < limit:
            ids = await self.bus.r.zrevrange(self.k.deliveries_index, start, start + 199)
            if not ids:
                break
            start += len(ids)
            pipe = self.bus.r.pipeline(transaction=False)
            for i in ids:
                pipe.hgetall(self.k.delivery(_s(i)))
            gone = []
            for i, raw in zip(ids, await pipe.execute()):
                if not raw:
                    gone.append(i)  # expired after delivery: drop it from the index
                    continue
                d = self._public(raw, False)
                if (status is None or d["status"] == status) and (endpoint is None or d["endpoint"] == endpoint):
                    out.append(d)
            if gone:
                await self.bus.r.zrem(self.k.deliveries_index, *gone)
        return out[:limit]

    async def dead(self, limit: int = 100) -> list[dict]:
        ids = await self.bus.r.lrange(self.k.dead_letters, 0, limit - 1)
        pipe = self.bus.r.pipeline(transaction=False)
        for i in ids:
            pipe.hgetall(self.k.delivery(_s(i)))
        return [self._public(raw, False) for raw in await pipe.execute() if raw]

    async def trim(self, retention_s: int, now: float | None = None) -> None:
        """Forget index entries older than the retention (dead letters stay until replayed)."""
        await self.bus.r.zremrangebyscore(self.k.deliveries_index, "-inf", (now or time.time()) - retention_s)

    @staticmethod
    def _public(raw: dict, body: bool) -> dict:
        d = {f: _s(raw.get(f.encode())) for f in _PUBLIC}
        d["attempts"] = int(d["attempts"] or 0)
        for f in ("created", "updated", "due", "delivered_at"):
            d[f] = float(d[f]) if d[f] else None
        d["last_code"] = int(d["last_code"]) if d["last_code"] else None
        if body:
            d["body"] = _s(raw.get(b"body"))
        return d
