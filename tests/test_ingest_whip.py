"""A real aiortc publisher streams a file to the WHIP endpoint of `vigil web`; the media
terminates in a separate `vigil ingest` process (signalling relayed through Redis); frames
land in Redis with increasing timestamps; DELETE ends the session cleanly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, need
from tests.support.cameras import frames, frames_after, status, wait_for

pytestmark = pytest.mark.integration
TOKEN = "whip-test-token-" + "y" * 16


@pytest.fixture
def stack(bus, tmp_path: Path, free_port):
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text("cameras:\n  - {id: door, url: 'whip://', sample_fps: 5}\n"
                   "  - {id: plain, url: 'testsrc://'}\n"
                   f"ingest:\n  poll_s: 0.5\nweb:\n  port: {free_port}\n")
    env = {**os.environ, "REDIS_URL": bus.url, "VIGIL_TOKEN": TOKEN}
    procs = []
    for stage in ("ingest", "web"):
        log = (tmp_path / f"{stage}.log").open("w")
        procs.append(subprocess.Popen([sys.executable, "-m", "vigil.cli", stage, "-c", str(cfg)], cwd=ROOT, env=env,
                                      stdout=log, stderr=subprocess.STDOUT))
    base = f"http://127.0.0.1:{free_port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    yield base, tmp_path
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            pytest.fail("a vigil stage did not stop on SIGTERM")
    for stage in ("ingest", "web"):
        text = (tmp_path / f"{stage}.log").read_text()
        assert "Traceback" not in text, text[-3000:]


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_whip_publisher_streams_into_redis(bus, media, stack, codec):
    import importlib.util

    need(importlib.util.find_spec("aiortc") is not None, "aiortc (Python package)")
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaPlayer

    base, _ = stack
    auth = {"Authorization": f"Bearer {TOKEN}"}
    await wait_for(lambda: bus.r.exists(bus.keys.ingest_lease("door")), 20, what="ingest to take the WHIP camera")

    player = MediaPlayer(str(media / "car-detection.mp4"))
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    transceiver = pc.addTransceiver(player.video, direction="sendonly")
    from aiortc.rtcrtpsender import RTCRtpSender

    # Offer only the codec under test, so the answer proves ingest accepts it.
    caps = RTCRtpSender.getCapabilities("video").codecs
    transceiver.setCodecPreferences([c for c in caps if c.mimeType.upper() in (f"VIDEO/{codec}", "VIDEO/RTX")])
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    async with httpx.AsyncClient(base_url=base, timeout=20) as http:
        # No token, a viewer-less request, the wrong content type: refused before any media.
        assert (await http.post("/api/whip/door", content=offer, headers={"Content-Type": "application/sdp"})).status_code == 401
        assert (await http.post("/api/whip/door", content=offer, headers={**auth, "Content-Type": "text/plain"})).status_code == 415
        assert (await http.post("/api/whip/nope", content=offer, headers={**auth, "Content-Type": "application/sdp"})).status_code == 404
        assert (await http.post("/api/whip/plain", content=offer, headers={**auth, "Content-Type": "application/sdp"})).status_code == 409

        res = await http.post("/api/whip/door", content=offer, headers={**auth, "Content-Type": "application/sdp"})
        assert res.status_code == 201, res.text
        assert res.headers["content-type"].startswith("application/sdp")
        assert f"{codec}/90000" in res.text
        location = res.headers["location"]
        assert location.startswith("/api/whip/door/")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=res.text, type="answer"))
        started = time.time()

        got = await wait_for(lambda: _at_least(bus, "door", 10), 30, what="10 WHIP frames in Redis")
        ts = [f.ts for f in got]
        assert ts == sorted(ts) and ts[-1] > ts[0]
        assert [f.seq for f in got] == sorted(f.seq for f in got)
        assert all(f.jpeg[:2] == b"\xff\xd8" and f.src_width == 768 for f in got)
        assert all(f.wall >= started - 1 for f in got)
        st = await wait_for(lambda: _state(bus, "door", "streaming"), 5, what="status 'streaming'")
        assert st.fps_out > 0

        assert (await http.patch(location, headers=auth)).status_code == 405
        bye = await http.delete(location, headers=auth)
        assert bye.status_code == 200, bye.text
        ended = time.time()
        assert (await http.delete(location, headers=auth)).status_code == 404  # already gone
    await pc.close()
    player.video.stop()

    # The session is over: no more frames, the camera waits for its next publisher.
    await asyncio.sleep(1.5)
    late = [f for f in await frames_after(bus, "door", ended + 0.5)]
    assert not late, "frames kept arriving after DELETE"
    st = await status(bus, "door")
    assert st.state == "connecting" and "ended" in st.last_error
    # The other camera in the same worker never noticed.
    assert await frames_after(bus, "plain", ended)


async def _at_least(bus, cam: str, n: int):
    got = await frames(bus, cam)
    return got if len(got) >= n else None


async def _state(bus, cam: str, state: str):
    st = await status(bus, cam)
    return st if st and st.state == state else None
