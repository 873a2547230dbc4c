"""Ingest efficiency: keyframe-only decoding, and buffers that stay bounded (the memory per
camera stated in docs/ingest.md)."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from pathlib import Path

import pytest

from bus.messages import Camera, FrameStreamItem
from ingest.camera import CameraIngest
from ingest.settings import IngestSettings
from ingest.sources.pyav import PyAVSource
from tests.conftest import need, which


def _count(src: PyAVSource) -> tuple[int, int, list[float]]:
    n = keys = 0
    ts: list[float] = []
    for item in src.frames(threading.Event()):
        n += 1
        keys += item.keyframe
        ts.append(item.ts)
    return n, keys, ts


def test_keyframes_only_decodes_just_the_keyframes(media):
    clip = str(media / "car-detection.mp4")
    all_n, all_keys, _ = _count(PyAVSource(clip))
    n, keys, ts = _count(PyAVSource(clip, keyframes_only="on"))
    assert all_n == 377 and all_keys == 7
    assert n == keys == all_keys
    assert ts == sorted(ts) and ts[-1] > 25  # spread over the whole clip, on the file's clock


@pytest.fixture(scope="module")
def short_gop(media, tmp_path_factory) -> Path:
    need(which("ffmpeg") is not None, "ffmpeg (Debian package)")
    out = tmp_path_factory.mktemp("gop") / "gop2.mp4"
    # A keyframe every 2 frames at 12.5 fps: 6.25 keyframes per second.
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-t", "8", "-i", str(media / "car-detection.mp4"), "-an",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "2", "-keyint_min", "2", "-sc_threshold", "0",
                    str(out)], check=True, timeout=120)
    return out


def test_auto_mode_switches_when_keyframes_outpace_sampling(short_gop):
    total, _, _ = _count(PyAVSource(str(short_gop)))
    src = PyAVSource(str(short_gop), keyframes_only="auto", sample_fps=5)
    n, keys, _ = _count(src)
    assert src.keyframes_only and n < 0.6 * total and keys >= n - 6
    # Sampling faster than the keyframe rate needs the frames in between: no switch.
    src = PyAVSource(str(short_gop), keyframes_only="auto", sample_fps=10)
    assert _count(src)[0] == total and not src.keyframes_only


async def test_frames_stream_is_a_bounded_ring(bus, media):
    """Redis keeps at most frames_maxlen + one stream node (100 entries) per camera."""
    settings = IngestSettings(frames_maxlen=20, backpressure_frames=1_000_000, decode_threads=1)
    cam = Camera(id="ring", url=str(media / "car-detection.mp4"), pace="fast", sample_fps=12.5)
    stats = await CameraIngest(bus, cam, settings).run()
    assert stats.written > 300 and not stats.last_error
    key = bus.keys.frames("ring")
    length = await bus.r.xlen(key)
    assert length <= 20 + 100
    rows = await bus.r.xrange(key)
    biggest = max(len(f[b"m"]) for _, f in rows)
    used = await bus.r.memory_usage(key)
    assert used <= (20 + 100) * biggest * 1.3, (used, biggest)


async def test_live_queue_drops_oldest_instead_of_growing(bus, media):
    """Redis stalls (writes paused): the in-process queue stays at queue_frames, the decoder
    drops the oldest frames and counts them, and frames flow again once Redis is back."""
    settings = IngestSettings(queue_frames=8, decode_threads=1)
    cam = Camera(id="stall", url=str(media / "car-detection.mp4"), loop=True, sample_fps=12.5)
    worker = CameraIngest(bus, cam, settings)
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(100):
            if worker.stats.written:
                break
            await asyncio.sleep(0.05)
        await bus.r.execute_command("CLIENT", "PAUSE", "2500", "WRITE")
        peak = 0
        for _ in range(24):
            await asyncio.sleep(0.1)
            peak = max(peak, worker._queue.qsize())
        assert peak <= settings.queue_frames
        for _ in range(60):
            if worker.stats.dropped:
                break
            await asyncio.sleep(0.1)
        assert worker.stats.dropped >= 5
        written = worker.stats.written
        await asyncio.sleep(1.5)
        assert worker.stats.written > written  # recovered
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)
    rows = await bus.range(bus.keys.frames("stall"), FrameStreamItem)
    seqs = [m.seq for _, m in rows if hasattr(m, "seq")]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_camera_rides_out_a_redis_restart(tmp_path):
    """Redis goes away for a moment: the live camera drops (and counts) what it cannot write,
    and writes again once Redis is back, without a restart."""
    from bus import open_bus
    from bus.server import EmbeddedRedis

    server = EmbeddedRedis(data_dir=tmp_path / "redis")
    url = server.start()
    try:
        async with open_bus(url) as bus:
            worker = CameraIngest(bus, Camera(id="t", url="testsrc://", sample_fps=10), IngestSettings())
            task = asyncio.create_task(worker.run())
            for _ in range(100):
                if worker.stats.written >= 3:
                    break
                await asyncio.sleep(0.05)
            server.stop()
            await asyncio.sleep(1.5)
            assert worker.stats.dropped >= 3 and not task.done()
            server.start()
            written = worker.stats.written
            for _ in range(100):
                if worker.stats.written > written + 3:
                    break
                await asyncio.sleep(0.05)
            assert worker.stats.written > written + 3
            assert await bus.r.xlen(bus.keys.frames("t")) >= 3
            worker.stop()
            await asyncio.wait_for(task, 10)
    finally:
        server.stop()
