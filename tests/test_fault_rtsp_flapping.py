"""A real RTSP camera goes down and up again and again for about a minute under a running
`vigil ingest` process (real Redis): no threads, sockets/descriptors or memory leak in the
ingest process, the status says what is happening at each moment, frames flow again after the
last restart, and a file camera next to it streams throughout."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import msgspec
import pytest
import redis

from bus.messages import CameraStatus
from bus.names import Keys
from bus.server import EmbeddedRedis
from tests.faults import ProcSample, VigilProcess, poll, sample
from tests.support.cameras import cam_h264, rtsp_factory  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration
KEYS = Keys()
# Enough outages to make a leak per reconnect show, within about a minute of flapping.
CYCLES = int(os.environ.get("VIGIL_FLAP_CYCLES", "5"))


def _status(r: redis.Redis, camera: str) -> CameraStatus | None:
    raw = r.get(KEYS.camera_status(camera))
    return msgspec.json.decode(raw, type=CameraStatus) if raw else None


def _last_frame_ms(r: redis.Redis, camera: str) -> int:
    """Redis time (ms) of the newest entry in the camera's frames stream; 0: none."""
    rows = r.xrevrange(KEYS.frames(camera), count=1)
    return int(rows[0][0].decode().split("-")[0]) if rows else 0


def _fresh(r: redis.Redis, camera: str, since: float) -> bool:
    return _last_frame_ms(r, camera) / 1000 > since


def _settled(pid: int) -> ProcSample:
    """A sample taken while both cameras stream, after a short settle (decoder threads up)."""
    time.sleep(2.0)
    return sample(pid)


def test_rtsp_flapping_leaks_nothing_and_status_stays_true(media, rtsp_factory, tmp_path: Path):
    cam = rtsp_factory("/flap")
    server = EmbeddedRedis()
    url = server.start()
    r = redis.Redis.from_url(url)
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(
        "cameras:\n"
        f"  - {{id: flap, url: '{cam.url()}', open_timeout_s: 5, read_timeout_s: 3, stall_s: 3}}\n"
        f"  - {{id: lot, url: '{media / 'car-detection.mp4'}', pace: realtime, loop: true}}\n"
        # Short backoff cap: the camera is back within a few seconds, we want to see it quickly.
        "ingest: {reconnect_min_s: 0.3, reconnect_max_s: 1.5, poll_s: 0.5, decode_threads: 1}\n"
    )
    vigil = VigilProcess(["ingest", "-c", str(cfg)], url, tmp_path / "vigil.log")
    rng = random.Random(8)
    recoveries: list[float] = []
    try:
        poll(lambda: (s := _status(r, "flap")) and s.state == "streaming" and _fresh(r, "flap", time.time() - 2),
             40, "the RTSP camera streaming", proc=vigil)
        poll(lambda: _fresh(r, "lot", time.time() - 2), 20, "the file camera streaming", proc=vigil)
        baseline: ProcSample | None = None
        for cycle in range(CYCLES + 1):  # cycle 0 warms up (first reconnect loads what stays loaded)
            cam.kill()
            down_at = time.time()
            # While down: retrying, with the reason and when it tries next.
            retrying = poll(lambda: (s := _status(r, "flap")) and s.state == "retrying" and s.next_attempt
                            and s.updated > down_at and s, 12, f"status 'retrying' (outage {cycle})", proc=vigil)
            assert retrying.last_error and retrying.last_error_at and retrying.last_error_at >= down_at - 1
            assert retrying.next_attempt >= retrying.updated - 0.5  # a future (or just due) attempt
            assert retrying.next_attempt <= retrying.updated + 1.5 + 0.5  # within the backoff cap
            time.sleep(max(0.0, down_at + rng.uniform(5, 8) - time.time()))
            st = _status(r, "flap")
            assert st and st.state in ("retrying", "connecting"), st
            # The file camera never noticed.
            assert _fresh(r, "lot", time.time() - 2), "the file camera stopped while the RTSP one was down"

            up = cam.start()
            up_wall = time.time() - (time.monotonic() - up)
            poll(lambda: _fresh(r, "flap", up_wall), 15, f"frames after restart {cycle}", every=0.05, proc=vigil)
            recoveries.append(time.time() - up_wall)
            streaming = poll(lambda: (s := _status(r, "flap")) and s.state == "streaming" and s.updated > up_wall
                             and s, 5, f"status 'streaming' after restart {cycle}", proc=vigil)
            assert streaming.next_attempt is None
            assert abs(streaming.outages - (cycle + 1)) <= 1, (streaming.outages, cycle + 1)
            assert streaming.reconnects >= streaming.outages
            if cycle == 0:
                baseline = _settled(vigil.pid)
            else:
                time.sleep(rng.uniform(1, 3))  # stay up a little (the flapping period is 5-8 s down, ~5-8 s up)
        end = _settled(vigil.pid)
        assert _fresh(r, "flap", time.time() - 2) and _fresh(r, "lot", time.time() - 2)
        final = _status(r, "flap")
        lot = _status(r, "lot")
        vigil.alive()
    finally:
        vigil.stop()
        cam.kill()
        r.close()
        server.stop()

    assert baseline is not None and final is not None and lot is not None
    print(f"\nflapping: {CYCLES} outages after warm-up; recovery (server up -> first frame) "
          f"max {max(recoveries):.1f}s mean {sum(recoveries) / len(recoveries):.1f}s; "
          f"warm {baseline}; end {end}; reconnects={final.reconnects} outages={final.outages}")
    assert abs(final.outages - (CYCLES + 1)) <= 1
    assert lot.state == "streaming" and lot.outages == 0 and lot.reconnects == 0
    # No leak: the same state (both cameras streaming) at the warm-up mark and at the end.
    assert end.threads - baseline.threads <= 2, (baseline, end)
    assert end.fds - baseline.fds <= 3, (baseline, end)
    assert end.sockets - baseline.sockets <= 2, (baseline, end)
    # PyAV/FFmpeg allocate per connection; a leak would add megabytes per outage. Allow some
    # allocator noise, far below what CYCLES leaked connections would add.
    assert end.rss_kb - baseline.rss_kb <= 20 * 1024, (baseline, end)
