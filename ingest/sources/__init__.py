"""Camera sources: one small class each behind `Source` (see base.py)."""

from __future__ import annotations

from ingest.sources.base import Decoded, Source, SourceError
from ingest.sources.pyav import PyAVSource
from ingest.sources.testsrc import TestPatternSource


def open_source(url: str, *, realtime: bool, loop: bool, threads: int) -> Source:
    """Pick the source class for a camera URL. `testsrc://` is the synthetic pattern."""
    if url.startswith("testsrc://"):
        return TestPatternSource(realtime=realtime)
    options: dict[str, str] = {}
    if url.startswith("rtsp://") or url.startswith("rtsps://"):
        options = {"rtsp_transport": "tcp"}
    return PyAVSource(url, realtime=realtime, loop=loop, threads=threads, options=options)


__all__ = ["Decoded", "Source", "SourceError", "PyAVSource", "TestPatternSource", "open_source"]
