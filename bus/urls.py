"""URLs users type: redaction that holds for any string, and the camera source policy.

Both are shared by every stage that shows or opens a camera URL (config check, API, ingest,
logs), so one place decides what a credential looks like and which sources are allowed.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field

# What FFmpeg would open for each allowed scheme, and nothing more: an HLS playlist over
# http cannot pull in file: segments, an RTSP camera cannot redirect to a local file.
PROTOCOLS = {
    "rtsp": "rtsp,rtsps,rtp,srtp,udp,tcp,tls",
    "rtsps": "rtsp,rtsps,rtp,srtp,udp,tcp,tls",
    "http": "http,https,tcp,tls,crypto",
    "https": "http,https,tcp,tls,crypto",
    "rtmp": "rtmp,rtmps,rtmpt,tcp,tls",
    "rtmps": "rtmp,rtmps,rtmpt,tcp,tls",
    "srt": "srt,udp",
    "file": "file",
}
NETWORK = {"rtsp", "rtsps", "http", "https", "rtmp", "rtmps", "srt"}
# Sources Vigil itself understands (not FFmpeg protocols).
BUILTIN = {"testsrc", "whip", "v4l2"}
DEFAULT_SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp", "rtmps", "srt", "whip", "testsrc", "v4l2", "file")

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_HOST = re.compile(r"^[A-Za-z0-9._~%-]+$")
_DEVICE = re.compile(r"^([0-9]{1,3}|video[0-9]{1,3}|/dev/video[0-9]{1,3}|/dev/v4l/by-(id|path)/[A-Za-z0-9_.:-]+)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ENCODE_HINT = "percent-encode it in the URL (@ as %40, / as %2F, ? as %3F, # as %23, : as %3A)"


class SourceRefused(ValueError):
    """A camera source that is malformed or not allowed; the message never repeats credentials."""


def redact_url(url: str) -> str:
    """The URL without credentials, query or fragment. Never raises, whatever was typed.

    Everything before the last `@` is taken as credentials, even past a `/`, `?` or `#`
    (an unescaped one in a password ends the authority for a URL parser but not for the
    person who typed it). That hides more than needed for a path with an `@`, never less."""
    url = _CONTROL.sub("", str(url))
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.match(scheme):
        # Not a URL: a path, or garbage. Only an `@` can mark credentials here.
        return "***@" + url.rsplit("@", 1)[1] if "@" in url else url
    creds = "@" in rest
    if creds:
        rest = rest.rsplit("@", 1)[1]
    for mark in ("?", "#"):
        rest = rest.split(mark, 1)[0]
    return f"{scheme}://{'***@' if creds else ''}{rest}"


def display_source(url: str) -> str:
    """What people see of a camera source: a redacted URL, or a file's name."""
    if "://" in url and not url.startswith("file://"):
        return redact_url(url)
    name = url.removeprefix("file://").rstrip("/").rsplit("/", 1)[-1]
    return redact_url(name)


@dataclass(frozen=True)
class SourcePolicy:
    """Which camera sources may be opened: URL schemes, and (optionally) the directories
    local files may come from. Empty `paths`: any readable file."""

    schemes: tuple[str, ...] = DEFAULT_SCHEMES
    paths: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Source:
    kind: str  # the scheme ("rtsp", ...), "file" for plain paths, "v4l2" for /dev/video*
    path: str = ""  # files: the local path


def scheme_of(url: str) -> str:
    if url == "whip":
        return "whip"
    if url.startswith("/dev/video"):
        return "v4l2"
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else "file"


def check_source(url: str, policy: SourcePolicy | None = None) -> Source:
    """Refuse a camera source that is malformed or outside the policy, with a message that
    says how to fix it. Static checks only (config and API time); ingest checks again when
    it opens the source (a file's real path, after links)."""
    policy = policy or SourcePolicy()
    if _CONTROL.search(url):
        raise SourceRefused("the source contains control characters (a newline or tab?)")
    kind = scheme_of(url)
    if "://" in url and not _SCHEME.match(url.partition("://")[0]):
        raise SourceRefused("the source's scheme is malformed")
    if kind not in policy.schemes:
        raise SourceRefused(f"scheme {kind!r} is not allowed (ingest.allowed_schemes: {', '.join(policy.schemes)})")
    if kind in NETWORK:
        _check_network(url)
        return Source(kind)
    if kind == "file":
        path = url[len("file://"):] if url.startswith("file://") else url
        if not url.startswith("file://") and ":" in path.split("/", 1)[0]:
            # FFmpeg reads "concat:a|b", "pipe:0", "subfile,,...:" as protocols, not file names.
            raise SourceRefused("the source looks like an FFmpeg protocol (name:...); use a URL with :// "
                                "or a path (./name:with-colon.mp4)")
        if not path:
            raise SourceRefused("the file source has no path")
        check_path(path, policy)
        return Source("file", path)
    if kind == "v4l2":
        dev = url.removeprefix("v4l2://")
        if not _DEVICE.match(dev):
            raise SourceRefused("a V4L2 source names a capture device: v4l2://0, v4l2://video0 or /dev/video0")
        return Source(kind)
    if kind in BUILTIN:
        return Source(kind)
    # An operator allowed another FFmpeg protocol by name: accepted as is.
    return Source(kind)


def check_path(path: str, policy: SourcePolicy, *, real: bool = False) -> None:
    """With `policy.paths` set, a file must lie inside one of them (after `..`, and with
    `real`, after symbolic links too: ingest checks the real path when it opens the file)."""
    if not policy.paths:
        return
    resolved = os.path.realpath(path) if real else os.path.normpath(os.path.abspath(path))
    for root in policy.paths:
        base = os.path.realpath(root) if real else os.path.normpath(os.path.abspath(root))
        if resolved == base or resolved.startswith(base.rstrip("/") + "/"):
            return
    raise SourceRefused(f"files may only be read from ingest.allowed_paths ({', '.join(policy.paths)})")


def _check_network(url: str) -> None:
    rest = url.partition("://")[2]
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in tail:
        raise SourceRefused(f"an '@' after the host: if the user name or password holds / ? # or @, {ENCODE_HINT}")
    userinfo, at, hostport = authority.rpartition("@")
    if at and "@" in userinfo:
        raise SourceRefused(f"the user name or password holds an '@': {ENCODE_HINT}")
    if not hostport:
        raise SourceRefused("the URL has no host")
    if hostport.startswith("["):
        host, close, port = hostport[1:].partition("]")
        if not close:
            raise SourceRefused("an IPv6 address opened with '[' is not closed with ']'")
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise SourceRefused("the bracketed host is not an IPv6 address") from None
        if port and not port.startswith(":"):
            raise SourceRefused("after ']' only ':port' may follow")
        port = port[1:]
    else:
        if hostport.count(":") > 1:
            raise SourceRefused("an IPv6 address must be in brackets, e.g. rtsp://user:pass@[fe80::1]:554/stream")
        host, _, port = hostport.partition(":")
        if not host or not _HOST.match(host):
            raise SourceRefused("the host is empty or holds characters a host name cannot have")
        if ":" in hostport and not port:
            raise SourceRefused("a ':' after the host needs a port number")
    if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise SourceRefused("the port must be a number from 1 to 65535")
