"""Garbage bytes on an RTSP port: a clear status, retries with backoff, no crash, and the
other camera streams on."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import pytest

from bus.messages import Camera
from bus.registry import Registry
from ingest.service import IngestService
from ingest.settings import IngestSettings
from tests.support.cameras import frames_after, status, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def junk_server():
    """Accepts connections and answers anything with random bytes, then hangs up."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    stop = threading.Event()
    served = [0]

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.settimeout(1.0)
                    conn.recv(4096)
                    conn.sendall(os.urandom(8192))
                    served[0] += 1
                except OSError:
                    pass

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield srv.getsockname()[1], served
    stop.set()
    t.join(2)
    srv.close()


async def test_garbage_on_an_rtsp_port(bus, media, junk_server):
    port, served = junk_server
    svc = IngestService(bus, IngestSettings(reconnect_min_s=0.3, reconnect_max_s=1.0, poll_s=0.3, decode_threads=1))
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    reg = Registry(bus)
    await reg.put_camera(Camera(id="junk", url=f"rtsp://viewer:s3cret@127.0.0.1:{port}/stream", open_timeout_s=2,
                                read_timeout_s=2))
    await reg.put_camera(Camera(id="good", url=str(media / "car-detection.mp4"), loop=True))
    try:
        async def retried():
            st = await status(bus, "junk")
            return st if st and st.state == "retrying" and st.reconnects >= 2 else None

        st = await wait_for(retried, 40, what="the junk camera to be retrying")
        assert st.last_error and "s3cret" not in st.last_error and "s3cret" not in st.source
        assert served[0] >= 2  # it really reconnected, with backoff, and did not crash
        mark = time.time()
        await wait_for(lambda: frames_after(bus, "good", mark), 10, what="frames from the good camera")
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
