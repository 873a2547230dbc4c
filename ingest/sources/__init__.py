"""Camera sources: one small class each behind `Source` (see base.py)."""

from __future__ import annotations

from bus.messages import Camera
from bus.urls import PROTOCOLS, SourcePolicy, check_source, scheme_of
from ingest.sources.base import Decoded, Source, SourceError
from ingest.sources.device import DeviceSource, is_device_url
from ingest.sources.pyav import PyAVSource
from ingest.sources.testsrc import TestPatternSource


def is_whip_url(url: str) -> bool:
    return url.startswith("whip://") or url == "whip"


def open_source(camera: Camera, *, threads: int, ice_servers: list[str] | None = None,
                policy: SourcePolicy | None = None, max_pixels: int = 0) -> Source:
    """Pick the source class for a camera URL, once the policy allows it (SourceError if not).

    `testsrc://` is the synthetic pattern; `whip://` waits for a WebRTC publisher on the WHIP
    endpoint; `v4l2://` and `/dev/video*` are capture devices; everything else goes to FFmpeg
    (files, rtsp://, rtsps://, http(s)://, ...), limited to the protocols its scheme needs."""
    url = camera.url
    policy = policy or SourcePolicy()
    try:
        check_source(url, policy)
    except ValueError as exc:
        raise SourceError(f"source refused: {exc}") from None
    realtime = camera.pace != "fast"
    if url.startswith("testsrc://"):
        return TestPatternSource(realtime=realtime)
    if is_whip_url(url):
        from ingest.sources.webrtc import WhipSource  # aiortc is only imported when needed

        return WhipSource(camera.id, stall_s=camera.stall_s, ice_servers=ice_servers or [])
    common = dict(threads=threads, open_timeout=camera.open_timeout_s, read_timeout=camera.read_timeout_s,
                  stall_s=camera.stall_s, keyframes_only=camera.keyframes_only, sample_fps=camera.sample_fps,
                  max_pixels=max_pixels, policy=policy)
    if is_device_url(url):
        return DeviceSource(url, **common)
    options: dict[str, str] = {}
    if url.startswith("rtsp://") or url.startswith("rtsps://"):
        # A 1 s probe instead of FFmpeg's 5 s: the SDP already names the codec, and every
        # reconnect pays this wait again.
        options = {"rtsp_transport": camera.transport, "analyzeduration": "1000000"}
    whitelist = PROTOCOLS.get(scheme_of(url))
    if whitelist:
        options["protocol_whitelist"] = whitelist
    return PyAVSource(url, realtime=realtime, loop=camera.loop, options=options, **common)


__all__ = ["Decoded", "Source", "SourceError", "PyAVSource", "DeviceSource", "TestPatternSource", "open_source",
           "is_whip_url"]
