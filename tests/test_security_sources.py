"""Camera sources are restricted (probe finding 9, and the source-resolution cap): FFmpeg
protocols outside the scheme allow-list are refused by the API and by ingest, a still image
on the host never becomes a snapshot, files outside `ingest.allowed_paths` (links included)
are refused, a frame size above `ingest.max_source_pixels` is refused before decoding, and
viewers never see the raw error (it can reveal a port or a file)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import msgspec
import pytest
from PIL import Image

from bus import messages
from bus.messages import Camera, Frame, FrameStreamItem
from tests.faults import VigilProcess, wait_healthy
from web.auth import hash_token

pytestmark = pytest.mark.integration
ADMIN = "sources-admin-token-" + "abcdefgh1234"
VIEWER = "sources-viewer-token-" + "ijklmnop5678"


@pytest.fixture
def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once it is closed


async def test_sources_are_restricted_under_vigil_serve(bus, media, tmp_path: Path, free_port, closed_port):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.mp4").write_bytes((media / "car-detection.mp4").read_bytes())
    os.symlink(outside / "secret.mp4", allowed / "link.mp4")  # a link out of the allowed folder
    Image.new("RGB", (64, 64), (200, 30, 30)).save(allowed / "secret.png")
    (allowed / "clip.mp4").write_bytes((media / "car-detection.mp4").read_bytes())
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(
        f"ingest:\n  poll_s: 0.5\n  allowed_paths: ['{allowed}']\n  max_source_pixels: 100000\n"
        f"web:\n  port: {free_port}\n  tokens:\n    - {{name: wall, role: viewer, sha256: {hash_token(VIEWER)}}}\n"
    )
    vigil = VigilProcess(["serve", "-c", str(cfg)], bus.url, tmp_path / "vigil.log", env={"VIGIL_TOKEN": ADMIN})
    base = f"http://127.0.0.1:{free_port}"
    admin, viewer = {"Authorization": f"Bearer {ADMIN}"}, {"Authorization": f"Bearer {VIEWER}"}
    try:
        wait_healthy(base, vigil)
        async with httpx.AsyncClient(base_url=base) as c:
            # The API refuses what the policy does not allow, naming the setting.
            for url in ("concat:/etc/passwd|/etc/hosts", "pipe:0", "ftp://10.0.0.1/x.mp4", "/etc/passwd",
                        "subfile,,start,0,end,0,,:/etc/passwd", f"file://{outside}/secret.mp4"):
                res = await c.post("/api/cameras", json={"id": "x", "url": url}, headers=admin)
                assert res.status_code == 422, (url, res.status_code, res.text)
            cams = {"png": str(allowed / "secret.png"), "link": str(allowed / "link.mp4"),
                    "huge": str(allowed / "clip.mp4"), "closed": f"rtsp://127.0.0.1:{closed_port}/live"}
            for cam_id, url in cams.items():
                res = await c.post("/api/cameras", json={"id": cam_id, "url": url, "loop": True}, headers=admin)
                assert res.status_code == 201, (cam_id, res.text)
            # Written around the API (an older version, or by hand): ingest refuses it too.
            await bus.r.hset(bus.keys.cameras, "concat",
                             messages.encode(Camera(id="concat", url=f"concat:{allowed}/clip.mp4|{allowed}/clip.mp4")))

            async def statuses() -> dict | None:
                out = {}
                for cam_id in [*cams, "concat"]:
                    raw = await bus.r.get(bus.keys.camera_status(cam_id))
                    st = msgspec.json.decode(raw) if raw else {}
                    if not st.get("last_error"):
                        return None
                    out[cam_id] = st
                return out

            got = await _wait(statuses, 30, "an error for every refused camera", vigil)
            assert "still image" in got["png"]["last_error"], got["png"]
            assert "allowed_paths" in got["link"]["last_error"], got["link"]
            assert "max_source_pixels" in got["huge"]["last_error"] and "768x432" in got["huge"]["last_error"]
            assert "FFmpeg protocol" in got["concat"]["last_error"], got["concat"]
            for cam_id in ("png", "huge", "link", "concat"):
                rows = await bus.range(bus.keys.frames(cam_id), FrameStreamItem)
                assert not [m for _, m in rows if isinstance(m, Frame)], f"{cam_id} produced frames"
            # No picture of the host's files for anyone.
            for cam_id in ("png", "link", "huge"):
                assert (await c.get(f"/api/cameras/{cam_id}/snapshot.jpg", headers=viewer)).status_code == 404
            # Viewers learn that a camera failed, not a port state or a file name; admins see why.
            listing = (await c.get("/api/cameras", headers=viewer)).json()
            for cam in listing:
                err = cam["status"].get("last_error", "")
                assert err in ("", "the source failed; an admin can see why"), cam
                assert str(closed_port) not in str(cam["status"]) or str(closed_port) in cam["source"]
            one = (await c.get("/api/cameras/closed/status", headers=viewer)).json()
            assert "refused" not in one["last_error"].lower() and str(closed_port) not in one["last_error"]
            full = (await c.get("/api/cameras/closed/status", headers=admin)).json()
            assert full["last_error"] and full["last_error"] != one["last_error"]
    finally:
        vigil.stop()
    log = vigil.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]


async def _wait(pred, timeout: float, what: str, proc: VigilProcess):
    deadline = time.monotonic() + timeout
    while True:
        got = await pred()
        if got:
            return got
        proc.alive()
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{proc.log_tail()}")
        await asyncio.sleep(0.3)
