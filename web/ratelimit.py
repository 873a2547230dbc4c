"""Brute-force limit: failed token guesses per client address (login, Bearer, websocket).

Only failures count, so a user who types the token right is never slowed down. An address
over the limit gets 429 for every token it presents until the window has passed, before
the token is even looked at (else a correct guess would still show as a 200). A valid
session cookie keeps working: it proves an earlier login and cannot be guessed, so an
attacker sharing a NAT address with a logged-in user does not lock them out.

The address is the TCP peer, or what a configured trusted proxy says (web.trusted_proxies;
uvicorn applies it). IPv6 clients count per /64, the block one host usually holds. Kept in
memory per web process: N processes behind a balancer allow N times the budget.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque

from fastapi import HTTPException, Request
from starlette.requests import HTTPConnection


def client_key(conn: HTTPConnection | Request) -> str:
    host = conn.client.host if conn.client else "?"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class FailureLimiter:
    def __init__(self, limit: int = 10, window_s: float = 60.0, max_keys: int = 10_000) -> None:
        self.limit, self.window_s, self.max_keys = limit, window_s, max_keys
        self.fails: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        q = self.fails.get(key)
        if q is None:
            return None
        while q and now - q[0] > self.window_s:
            q.popleft()
        if not q:
            del self.fails[key]
            return None
        return q

    def retry_after(self, key: str) -> float:
        """Seconds until this address may try again (0: it may now)."""
        now = time.monotonic()
        q = self._recent(key, now)
        if q is None or len(q) < self.limit:
            return 0.0
        return max(0.0, self.window_s - (now - q[-self.limit]))

    def check(self, key: str) -> None:
        wait = self.retry_after(key)
        if wait > 0:
            raise HTTPException(429, "too many failed attempts from this address; wait and try again",
                                headers={"Retry-After": str(math.ceil(wait))})

    def fail(self, key: str) -> None:
        now = time.monotonic()
        q = self._recent(key, now)
        if q is None:
            q = self.fails[key] = deque(maxlen=self.limit * 2)
        q.append(now)
        self.fails.move_to_end(key)
        while len(self.fails) > self.max_keys:
            # Bounded memory: forget the addresses that failed longest ago (not all of them,
            # which would let a flood of addresses reset everyone's count).
            self.fails.popitem(last=False)
