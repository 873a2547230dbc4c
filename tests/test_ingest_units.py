"""Small ingest pieces: reconnect backoff, source selection, devices without a device."""

from __future__ import annotations

import random
import threading
import time

import pytest

from bus.messages import Camera
from ingest.backoff import Backoff
from ingest.leases import fair_share
from ingest.sources import DeviceSource, PyAVSource, SourceError, TestPatternSource, open_source
from ingest.sources.device import device_path


def test_backoff_grows_caps_jitters_and_resets():
    b = Backoff(base=0.5, cap=8, factor=2, jitter=0.25, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(8)]
    raw = [0.5, 1, 2, 4, 8, 8, 8, 8]
    for d, r in zip(delays, raw):
        assert 0.75 * r <= d <= r  # jitter only ever shortens, never exceeds the cap
    assert len(set(delays[4:])) > 1  # capped delays still differ: no lockstep reconnects
    b.reset()
    assert 0.375 <= b.next_delay() <= 0.5
    with pytest.raises(ValueError):
        Backoff(base=2, cap=1)


def test_fair_share():
    assert fair_share(4, 2) == 2 and fair_share(5, 2) == 3 and fair_share(4, 1) == 4
    assert fair_share(0, 3) == 0 and fair_share(10, 3, cap=2) == 2


def test_source_selection_by_url():
    def src(url: str, **kw):
        return open_source(Camera(id="c", url=url, **kw), threads=1)

    rtsp = src("rtsp://u:p@cam.local/stream", transport="udp", open_timeout_s=3)
    assert isinstance(rtsp, PyAVSource) and rtsp.live
    assert rtsp.options["rtsp_transport"] == "udp" and rtsp.open_timeout == 3
    assert rtsp.describe() == "rtsp://***@cam.local/stream"
    assert src("rtsp://cam.local/s").options["rtsp_transport"] == "tcp"  # TCP by default
    f = src("/videos/a.mp4", loop=True)
    assert isinstance(f, PyAVSource) and not f.live and f.loop and f.describe() == "a.mp4"
    assert isinstance(src("testsrc://"), TestPatternSource)
    assert isinstance(src("v4l2:///dev/video7"), DeviceSource)
    assert isinstance(src("/dev/video3"), DeviceSource)
    assert type(src("whip://")).__name__ == "WhipSource"


def test_device_paths():
    assert device_path("v4l2://0") == "/dev/video0"
    assert device_path("v4l2://video2") == "/dev/video2"
    assert device_path("v4l2:///dev/video1") == "/dev/video1"
    assert device_path("/dev/video5") == "/dev/video5"


def test_missing_device_is_a_clear_error():
    dev = DeviceSource("v4l2:///dev/video-vigil-absent", threads=1)
    assert dev.live
    with pytest.raises(SourceError, match="no such device"):
        next(iter(dev.frames(threading.Event())))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="no such file: gone.mp4"):
        next(iter(PyAVSource(str(tmp_path / "gone.mp4")).frames(threading.Event())))


def test_camera_options_round_trip_through_the_registry_codec():
    from bus import messages

    cam = Camera(id="c", url="rtsp://x/y", transport="udp", stall_s=4, keyframes_only="auto")
    back = messages.decode(messages.encode(cam), Camera)
    assert back == cam
    # An entry written before these fields existed still decodes, with the defaults.
    import msgspec

    old = msgspec.msgpack.encode({"type": "camera", "v": 1, "id": "o", "url": "rtsp://x/y", "sample_fps": 2.0})
    back = messages.decode(old, Camera)
    assert back.transport == "tcp" and back.stall_s == 10.0 and back.keyframes_only == "off"


def test_a_camera_seen_away_is_retried_as_soon_as_it_answers():
    """The probe's verdict holds for the whole outage: a camera that was away during one
    backoff wait and answers in the next one is reopened at once, not at the wait's end."""
    from ingest.camera import CameraIngest
    from ingest.settings import IngestSettings
    from ingest.sources.base import Source

    class Camera_(Source):
        def __init__(self, up: bool):
            self.up = up

        def frames(self, stop):
            return iter(())

        def probe(self):
            return self.up

    def ingest(src: Source) -> CameraIngest:
        cam = Camera(id="c", url="rtsp://cam.local/s")
        return CameraIngest(None, cam, IngestSettings(probe_s=0.01), source=src)  # type: ignore[arg-type]

    src = Camera_(up=False)
    away_then_back = ingest(src)
    assert away_then_back._wait_to_retry(0.05) is False  # away all along: the wait runs out
    src.up = True  # it comes back between two waits
    t0 = time.monotonic()
    assert away_then_back._wait_to_retry(5.0) is True  # answers again: retry now
    assert time.monotonic() - t0 < 1.0
    always_up = ingest(Camera_(up=True))  # answers, but the stream fails: keep the backoff
    t0 = time.monotonic()
    assert always_up._wait_to_retry(0.2) is False
    assert time.monotonic() - t0 >= 0.19
