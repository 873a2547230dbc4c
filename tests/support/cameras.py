"""Real cameras for ingest tests: GStreamer RTSP servers, plus helpers that read ingest's
status and frames straight from Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bus.connection import Bus
from bus.messages import CameraStatus, Frame, FrameStreamItem
from tests.conftest import need, which

SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
# GStreamer's Python bindings come from Debian (python3-gi), so the server runs under the
# system interpreter rather than the project's virtualenv.
GST_PYTHON = os.environ.get("VIGIL_GST_PYTHON", "/usr/bin/python3")


def gst_rtsp_available() -> bool:
    if not Path(GST_PYTHON).is_file():
        return False
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
             "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
             "assert Gst.ElementFactory.find('x264enc') and Gst.ElementFactory.find('avdec_h264')")
    return subprocess.run([GST_PYTHON, "-c", probe], capture_output=True, timeout=30).returncode == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspCamera:
    """A real RTSP camera: start, kill (SIGKILL, like a power cut) and restart on the same port."""

    def __init__(self, h264: Path, port: int | None = None, path: str = "/cam") -> None:
        self.h264 = h264
        self.port = port or free_port()
        self.path = path
        self.proc: subprocess.Popen[str] | None = None

    def url(self, auth: str = "") -> str:
        return f"rtsp://{auth + '@' if auth else ''}127.0.0.1:{self.port}{self.path}"

    def start(self, timeout: float = 20.0) -> float:
        """Start serving; returns the monotonic time it became ready."""
        self.proc = subprocess.Popen(
            [GST_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), "--path", self.path, "--file", str(self.h264)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("READY"):
                return time.monotonic()
            if not line and self.proc.poll() is not None:
                break
        self.kill()
        raise RuntimeError(f"RTSP server did not start on port {self.port}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture(scope="session")
def cam_h264(media, tmp_path_factory) -> Path:
    """car-detection.mp4's H.264 elementary stream (Annex B), for GStreamer's multifilesrc."""
    need(which("ffmpeg") is not None, "ffmpeg (Debian package)")
    out = tmp_path_factory.mktemp("rtsp") / "cam.h264"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(media / "car-detection.mp4"), "-an",
                    "-c:v", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "h264", str(out)], check=True, timeout=60)
    return out


@pytest.fixture
def rtsp_factory(cam_h264):
    need(gst_rtsp_available(), "GStreamer RTSP server (python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-*)")
    started: list[RtspCamera] = []

    def make(path: str = "/cam") -> RtspCamera:
        cam = RtspCamera(cam_h264, path=path)
        cam.start()
        started.append(cam)
        return cam

    yield make
    for cam in started:
        cam.kill()


# -- reading ingest's output ------------------------------------------------------------
async def status(bus: Bus, camera: str) -> CameraStatus | None:
    raw = await bus.r.get(bus.keys.camera_status(camera))
    return msgspec.json.decode(raw, type=CameraStatus) if raw else None


async def raw_status(bus: Bus, camera: str) -> dict[str, Any]:
    raw = await bus.r.get(bus.keys.camera_status(camera))
    return msgspec.json.decode(raw) if raw else {}


async def frames(bus: Bus, camera: str, count: int = 1000) -> list[Frame]:
    rows = await bus.range(bus.keys.frames(camera), FrameStreamItem, count=count, reverse=True)
    return [m for _, m in reversed(rows) if isinstance(m, Frame)]


async def frames_after(bus: Bus, camera: str, wall: float) -> list[Frame]:
    return [f for f in await frames(bus, camera, 200) if f.wall > wall]


async def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Await `predicate()` (async) until truthy; returns its value or fails naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)
