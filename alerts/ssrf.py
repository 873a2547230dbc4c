"""SSRF guard for webhook targets: a target that resolves to a private, loopback,
link-local, multicast or reserved address is refused unless its endpoint says
`allow_private: true`. The request then goes to the address that was checked (the URL's
host is kept for the Host header and TLS SNI), so DNS cannot change between check and use."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from bus.webhooks import TargetRefused, blocked, check_url

__all__ = ["Target", "TargetRefused", "blocked", "check_url", "resolve"]


@dataclass(slots=True)
class Target:
    url: str  # what to connect to
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict = field(default_factory=dict)


async def resolve(url: str, allow_private: bool) -> Target:
    check_url(url, allow_private)
    if allow_private:
        return Target(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot resolve the target host ({exc.strerror})") from None
    addrs = [ipaddress.ip_address(i[4][0].split("%")[0]) for i in infos]
    bad = [a for a in addrs if blocked(a)]
    if bad or not addrs:
        raise TargetRefused(f"target resolves to a private/loopback/link-local address ({bad[0] if bad else 'none'})")
    ip = addrs[0]
    netloc = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
    host_header = parts.netloc.rsplit("@", 1)[-1]
    ext = {"sni_hostname": host} if parts.scheme == "https" else {}
    return Target(urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), {"Host": host_header}, ext)
