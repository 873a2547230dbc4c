"""Bad sources get a clear status and error, never crash ingest, and leave other cameras be."""

from __future__ import annotations

import asyncio
import functools
import http.server
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from bus.messages import Camera, FrameStreamItem, StreamEnd
from bus.registry import Registry
from ingest.service import IngestService
from ingest.settings import IngestSettings
from tests.conftest import need, which
from tests.support.cameras import (  # noqa: F401
    cam_h264, frames, frames_after, free_port, rtsp_factory, status, wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def bad_files(media, tmp_path: Path) -> dict[str, Path]:
    need(which("ffmpeg") is not None, "ffmpeg (Debian package)")
    faststart = tmp_path / "faststart.mp4"
    # moov first, so a cut-off file still opens and the frames before the cut decode.
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(media / "car-detection.mp4"), "-an", "-c:v", "copy",
                    "-movflags", "+faststart", str(faststart)], check=True, timeout=60)
    data = faststart.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(300_000))
    return {"truncated": truncated, "garbage": garbage, "dir": tmp_path}


@pytest.fixture
def http_garbage(bad_files):
    """A real HTTP server handing out random bytes as if they were a video file."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(bad_files["dir"]))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/garbage.mp4"
    server.shutdown()


async def test_bad_sources_fail_clearly_and_alone(bus, media, bad_files, http_garbage, rtsp_factory):
    server = rtsp_factory("/cam")
    settings = IngestSettings(reconnect_min_s=0.5, reconnect_max_s=2.0, poll_s=0.3, decode_threads=1,
                              backpressure_frames=100_000, frames_maxlen=100_000)
    svc = IngestService(bus, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    reg = Registry(bus)
    cams = [
        Camera(id="good", url=str(media / "car-detection.mp4"), loop=True),
        Camera(id="wrong-host", url=f"rtsp://user:pw@127.0.0.1:{free_port()}/cam", open_timeout_s=3),
        Camera(id="wrong-path", url=f"rtsp://127.0.0.1:{server.port}/no-such-path", open_timeout_s=3),
        Camera(id="garbage-file", url=str(bad_files["garbage"])),
        Camera(id="garbage-http", url=http_garbage, open_timeout_s=3),
        Camera(id="truncated", url=str(bad_files["truncated"]), pace="fast"),
    ]
    for cam in cams:
        await reg.put_camera(cam)
    started = time.time()
    try:
        async def settled():
            sts = {c.id: await status(bus, c.id) for c in cams}
            if any(s is None for s in sts.values()):
                return None
            ok = (sts["wrong-host"].state == "retrying" and sts["wrong-path"].state == "retrying"
                  and sts["garbage-http"].state == "retrying" and sts["garbage-file"].state == "error"
                  and sts["truncated"].state == "error" and sts["good"].state == "streaming")
            return sts if ok else None

        sts = await wait_for(settled, 30, what="every bad camera to settle in a clear state")
        assert "cannot open" in sts["wrong-host"].last_error and "refused" in sts["wrong-host"].last_error.lower()
        assert "pw" not in sts["wrong-host"].last_error and sts["wrong-host"].source.startswith("rtsp://***@")
        assert "404" in sts["wrong-path"].last_error or "not found" in sts["wrong-path"].last_error.lower()
        assert "garbage.mp4" in sts["garbage-file"].last_error and "invalid data" in sts["garbage-file"].last_error.lower()
        assert "cannot open" in sts["garbage-http"].last_error
        for cid in ("wrong-host", "wrong-path", "garbage-http"):
            assert sts[cid].next_attempt and sts[cid].reconnects >= 1

        # The truncated file keeps what decoded before the damage and says where it stopped.
        assert "damaged after" in sts["truncated"].last_error or "truncated" in sts["truncated"].last_error
        kept = await frames(bus, "truncated", 10_000)
        assert len(kept) >= 40 and kept[-1].ts > 8.0
        rows = await bus.range(bus.keys.frames("truncated"), FrameStreamItem, reverse=True, count=1)
        assert isinstance(rows[0][1], StreamEnd) and rows[0][1].error

        # The good camera streams on, and retries of the others go on without a crash.
        mark = time.time()
        await wait_for(lambda: frames_after(bus, "good", mark), 5, what="fresh frames on the good camera")
        assert not task.done()
        for cid in ("wrong-host", "wrong-path"):
            before = sts[cid].reconnects
            await wait_for(lambda c=cid, b=before: _more_retries(bus, c, b), 10, what=f"{cid} to keep retrying")
        assert time.time() - started < 60
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def _more_retries(bus, camera: str, before: int):
    st = await status(bus, camera)
    return st if st and st.reconnects > before else None
