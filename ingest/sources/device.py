"""Local capture devices (V4L2 webcams, HDMI grabbers) through PyAV's v4l2 input."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ingest.sources.base import SourceError
from ingest.sources.pyav import PyAVSource


def device_path(url: str) -> str:
    """`v4l2:///dev/video0`, `v4l2://video0`, `v4l2://0` or `/dev/video0` -> `/dev/video0`."""
    if url.startswith("v4l2://"):
        rest = url.removeprefix("v4l2://")
        if rest.isdigit():
            return f"/dev/video{rest}"
        return rest if rest.startswith("/") else f"/dev/{rest}"
    return url


def is_device_url(url: str) -> bool:
    return url.startswith("v4l2://") or url.startswith("/dev/video")


class DeviceSource(PyAVSource):
    """A V4L2 device: live, so it reconnects like a network camera when unplugged."""

    def __init__(self, url: str, *, size: str | None = None, fps: float | None = None, **kw) -> None:
        opts: dict[str, str] = {}
        if size:
            opts["video_size"] = size
        if fps:
            opts["framerate"] = f"{fps:g}"
        super().__init__(device_path(url), format="v4l2", options=opts, **kw)
        self.live = True

    def describe(self) -> str:
        return f"v4l2 {self.url}"

    def _open(self):  # type: ignore[override]
        path = Path(self.url)
        if not sys.platform.startswith("linux"):
            raise SourceError(f"{self.describe()}: V4L2 devices exist only on Linux")
        if not path.exists():
            raise SourceError(f"{self.describe()}: no such device (is the camera plugged in?)")
        if not os.access(path, os.R_OK):
            raise SourceError(f"{self.describe()}: permission denied (add the user to the 'video' group)")
        return super()._open()
