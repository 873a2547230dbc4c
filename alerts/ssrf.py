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


class TargetRefused(ValueError):
    pass


def blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT))


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
