"""A real RTSP camera (GStreamer) goes away and comes back: ingest reconnects by itself,
says so in its status, and a second camera streams on regardless."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from bus.messages import Camera
from bus.registry import Registry
from ingest.service import IngestService
from ingest.settings import IngestSettings
from tests.support.cameras import cam_h264, frames, frames_after, raw_status, rtsp_factory, status, wait_for  # noqa: F401

pytestmark = pytest.mark.integration
SECRET = "s3cr3t-pa55"


@pytest.fixture
async def ingest(bus):
    settings = IngestSettings(reconnect_min_s=0.3, reconnect_max_s=1.0, poll_s=0.3, decode_threads=1)
    svc = IngestService(bus, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    yield svc
    stop.set()
    await asyncio.wait_for(task, 20)


async def test_rtsp_camera_reconnects_and_others_keep_streaming(bus, ingest, rtsp_factory):
    flaky, steady = rtsp_factory("/flaky"), rtsp_factory("/steady")
    reg = Registry(bus)
    await reg.put_camera(Camera(id="flaky", url=flaky.url(), sample_fps=5, open_timeout_s=5, read_timeout_s=3))
    # Credentials in the URL: the server does not ask for them, but they must never show.
    await reg.put_camera(Camera(id="steady", url=steady.url(f"admin:{SECRET}"), sample_fps=5))

    for cam in ("flaky", "steady"):
        await wait_for(lambda c=cam: frames(bus, c), 30, what=f"first frames from {cam}")
    st = await wait_for(lambda: _state_is(bus, "flaky", "streaming"), 5, what="status 'streaming'")
    assert st.worker == ingest.worker

    flaky.kill()
    killed = time.time()
    retrying = await wait_for(
        lambda: _state_is(bus, "flaky", "retrying"), 15, what="status 'retrying' after the server died")
    assert retrying.next_attempt is not None and retrying.next_attempt >= killed - 1
    assert retrying.last_error and retrying.reconnects >= 1

    await asyncio.sleep(2.0)  # stay down across a few reconnect attempts
    back = flaky.start()
    back_wall = time.time() - (time.monotonic() - back)
    await wait_for(lambda: frames_after(bus, "flaky", back_wall), 5.0, interval=0.05,
                   what="frames from the restarted server within 5 s")
    after = await wait_for(lambda: _state_is(bus, "flaky", "streaming"), 5, what="status 'streaming' again")
    assert after.reconnects >= 1

    # The other camera never stopped: frames all through the outage.
    steady_frames = await frames(bus, "steady")
    outage = [f for f in steady_frames if killed <= f.wall <= back_wall]
    assert len(outage) >= 5 * (back_wall - killed) * 0.7
    ts = [f.ts for f in await frames(bus, "flaky")]
    assert ts == sorted(ts), "stream time must keep increasing across a reconnect"

    # Credentials appear nowhere in what ingest publishes.
    for cam in ("flaky", "steady"):
        text = str(await raw_status(bus, cam))
        assert SECRET not in text
    st = await status(bus, "steady")
    assert st.source == f"rtsp://***@127.0.0.1:{steady.port}/steady" and st.fps_in > 0


async def _state_is(bus, camera: str, state: str):
    st = await status(bus, camera)
    return st if st and st.state == state else None


async def test_udp_transport_is_selectable_per_camera(bus, ingest, rtsp_factory):
    server = rtsp_factory("/udp")
    await Registry(bus).put_camera(Camera(id="udp", url=server.url(), transport="udp", sample_fps=5))
    got = await wait_for(lambda: _frames_at_least(bus, "udp", 5), 30, what="frames over RTP/UDP")
    assert [f.seq for f in got] == sorted(f.seq for f in got)
    st = await wait_for(lambda: _state_is(bus, "udp", "streaming"), 5, what="status 'streaming'")
    assert st.reconnects == 0


async def _frames_at_least(bus, camera: str, n: int):
    got = await frames(bus, camera)
    return got if len(got) >= n else None


async def test_stall_watchdog_reconnects_a_frozen_camera(bus, ingest, rtsp_factory):
    """The server process freezes (SIGSTOP): the TCP connection stays open but nothing comes.
    The watchdog gives up after stall_s and reconnects once the camera thaws."""
    server = rtsp_factory("/frozen")
    await Registry(bus).put_camera(Camera(id="frozen", url=server.url(), stall_s=2, open_timeout_s=2))
    await wait_for(lambda: _state_is(bus, "frozen", "streaming"), 30, what="streaming")
    server.proc.send_signal(signal.SIGSTOP)
    try:
        frozen = time.monotonic()
        st = await wait_for(lambda: _state_is(bus, "frozen", "retrying"), 10, what="the watchdog to fire")
        assert time.monotonic() - frozen < 2 + 3  # stall_s plus a status period or two
        assert "stalled" in st.last_error or "no answer" in st.last_error, st.last_error
    finally:
        server.proc.send_signal(signal.SIGCONT)
    thawed = time.time()
    await wait_for(lambda: frames_after(bus, "frozen", thawed), 10, what="frames after the camera thawed")
