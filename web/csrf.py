"""Cross-site request forgery: state-changing requests must come from Vigil's own origin
and carry JSON.

A browser attaches the session cookie to a form post or a `text/plain` fetch from any site;
SameSite=Strict is one guard, these are two more that do not depend on the browser's cookie
rules: a foreign `Origin` (or `Sec-Fetch-Site: cross-site`) is refused with 403, and a body
that is not JSON (forms and text/plain need no CORS preflight; JSON does) with 415. The
live websocket honours the cookie only from Vigil's own origin.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# Bodies a route takes besides JSON: WHIP offers (the route checks its own type).
OTHER_TYPES = {"/api/whip/": "application/sdp"}


def _host_port(netloc: str) -> tuple[str, int | None]:
    try:
        parts = urlsplit(f"//{netloc}")
        return (parts.hostname or "").lower(), parts.port
    except ValueError:
        return "", None


def same_origin(origin: str, headers: Headers, allowed: frozenset[str] = frozenset()) -> bool:
    """The Origin names the host the request was sent to (its Host header), or is listed in
    web.allowed_origins (a proxy that rewrites Host)."""
    origin = origin.strip().rstrip("/").lower()
    if origin in allowed:
        return True
    try:
        o = urlsplit(origin)
        o_host, o_port = (o.hostname or "").lower(), o.port or DEFAULT_PORTS.get(o.scheme)
    except ValueError:
        return False
    if not o_host or o.scheme not in DEFAULT_PORTS:
        return False  # "null" (sandboxed frames, file://) and anything odd
    h_host, h_port = _host_port(headers.get("host", ""))
    if o_host != h_host:
        return False
    # A Host without a port came through a default port; which one, a TLS proxy may hide.
    return o_port == h_port if h_port is not None else o_port in (80, 443)


def refusal(method: str, path: str, headers: Headers, allowed: frozenset[str]) -> tuple[int, str] | None:
    """(status, reason) for a request to refuse, or None."""
    if method not in UNSAFE:
        return None
    origin = headers.get("origin")
    if origin is not None:
        if not same_origin(origin, headers, allowed):
            return 403, "cross-origin request refused (see web.allowed_origins)"
    elif headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return 403, "cross-site request refused"
    has_body = headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers
    if has_body:
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        other = next((t for p, t in OTHER_TYPES.items() if path.startswith(p)), None)
        if ctype != "application/json" and ctype != other:
            return 415, "send the body as JSON (Content-Type: application/json)"
    return None
